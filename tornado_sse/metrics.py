"""Prometheus metrics for one server process.

A registry per :class:`Metrics` (not the library's global one) so several
servers in one test process do not collide. What changes once per event
batch (published events, deliveries, bytes, the two latency histograms)
is kept in plain numbers and exported by a collector when /metrics is
scraped: the publish path then costs a few additions, not a lock and a
label lookup per metric (issue 21). Per-request metrics stay ordinary
prometheus_client objects.
"""

from __future__ import annotations

import bisect
import time
from collections.abc import Iterable, Mapping, Sequence

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from .events import Event

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class _Histogram:
    """A histogram as plain numbers: per-bucket counts (the last is +Inf) and a sum."""

    __slots__ = ("counts", "total")

    def __init__(self) -> None:
        self.counts = [0] * (len(_LATENCY_BUCKETS) + 1)
        self.total = 0.0

    def observe(self, value: float) -> None:
        # bisect_left: a value equal to a bound counts in that bucket (le).
        self.counts[bisect.bisect_left(_LATENCY_BUCKETS, value)] += 1
        self.total += value

    def family(self, name: str, doc: str) -> HistogramMetricFamily:
        cumulative, buckets = 0, []
        for bound, count in zip([*map(str, _LATENCY_BUCKETS), "+Inf"], self.counts, strict=True):
            cumulative += count
            buckets.append((bound, float(cumulative)))
        return HistogramMetricFamily(name, doc, buckets=buckets, sum_value=self.total)


class _HotPath(Collector):
    """Exports the plain numbers of :class:`Metrics` at scrape time."""

    def __init__(self, metrics: Metrics) -> None:
        self._m = metrics

    def collect(self) -> Iterable[Metric]:
        m = self._m
        yield CounterMetricFamily("tornado_sse_events_published", "Events read from the log and fanned out",
                                  value=m.events_published)
        yield CounterMetricFamily("tornado_sse_deliveries", "Events handed to live streams and pollers",
                                  value=m.deliveries)
        yield CounterMetricFamily("tornado_sse_bytes_sent", "Event bytes handed to live SSE streams",
                                  value=m.bytes_sent)
        yield m.commit_to_send.family("tornado_sse_commit_to_send_seconds",
                                      "Event commit (row created) to fan-out")
        yield m.fanout.family("tornado_sse_fanout_seconds", "Time to fan one wake-up out to every stream")
        rejected = CounterMetricFamily(
            "tornado_sse_notifications_rejected",
            "NOTIFY payloads on sse_events not published as events, by reason: unproven (no valid "
            "proof of origin: forged, or signed with another key) or malformed (not in the "
            "trigger's shape); each was a wake-up at most (SPEC §1)", labels=["reason"])
        for reason, count in m.rejected.items():
            rejected.add_metric([reason], count)
        yield rejected


class Metrics:
    """What /metrics shows."""

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.open_streams = Gauge("tornado_sse_open_streams", "Open SSE streams", ["route"], registry=r)
        self.open_polls = Gauge("tornado_sse_open_polls", "Waiting long-poll requests", ["route"], registry=r)
        self.streams_ended = Counter("tornado_sse_streams_ended", "SSE streams ended, by reason",
                                     ["route", "reason"], registry=r)
        self.refused = Counter("tornado_sse_refused", "Requests and connections refused by a limit, by limit",
                               ["limit"], registry=r)
        self.connections = Gauge("tornado_sse_open_connections", "Open client connections", registry=r)
        self.in_flight = Gauge("tornado_sse_requests_in_flight",
                               "Requests being handled (streams and waiting polls included)", registry=r)
        self.connection_limit = Gauge("tornado_sse_connection_limit",
                                      "Connections this process accepts at once (0: no cap)", registry=r)
        self.resets = Counter("tornado_sse_resets", "Reset frames or poll resets sent", registry=r)
        self.log_reads = Gauge("tornado_sse_listener_log_reads",
                               "Queries of the event log by the listener (events that arrive in their "
                               "notification cost none)", registry=r)
        self.listener_reconnects = Gauge("tornado_sse_listener_reconnects",
                                         "Times the LISTEN connection was re-established", registry=r)
        # The publish path: plain numbers, exported by _HotPath.
        self.events_published = 0
        self.deliveries = 0
        self.bytes_sent = 0
        self.commit_to_send = _Histogram()
        self.fanout = _Histogram()
        #: The listener's rejected-notification counts, by reason (its own dict).
        self.rejected: Mapping[str, int] = {}
        r.register(_HotPath(self))

        # Commit-to-fan-out delay of the newest batch, seconds, as measured
        # (rounded only when /healthz reads it: a float round costs a decimal
        # conversion, too much for every event).
        self._last_lag: float | None = None

    def stream_opened(self, route: str) -> None:
        self.open_streams.labels(route).inc()

    def stream_closed(self, route: str, reason: str) -> None:
        self.open_streams.labels(route).dec()
        self.streams_ended.labels(route, reason).inc()

    def reset_sent(self) -> None:
        self.resets.inc()

    def published(self, events: Sequence[Event], fanout_seconds: float, deliveries: int,
                  sent: int) -> None:
        self.events_published += len(events)
        self.deliveries += deliveries
        self.bytes_sent += sent
        self.fanout.observe(fanout_seconds)
        lag = time.time() - events[-1].created_at
        if lag < 0.0:  # another host's clock, a little ahead
            lag = 0.0
        self._last_lag = lag
        self.commit_to_send.observe(lag)

    @property
    def last_lag(self) -> float | None:
        """Commit-to-fan-out delay of the newest batch, seconds (for /healthz)."""
        return None if self._last_lag is None else round(self._last_lag, 6)

    def render(self) -> bytes:
        return generate_latest(self.registry)
