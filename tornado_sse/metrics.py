"""Prometheus metrics for one server process.

A registry per :class:`Metrics` (not the library's global one) so several
servers in one test process do not collide. The hot path only increments
counters; histograms are observed per wake-up, not per stream.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from .events import Event

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class Metrics:
    """What /metrics shows."""

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.open_streams = Gauge("tornado_sse_open_streams", "Open SSE streams", ["route"], registry=r)
        self.open_polls = Gauge("tornado_sse_open_polls", "Waiting long-poll requests", ["route"], registry=r)
        self.streams_ended = Counter("tornado_sse_streams_ended", "SSE streams ended, by reason",
                                     ["route", "reason"], registry=r)
        self.events_published = Counter("tornado_sse_events_published", "Events read from the log and fanned out",
                                        registry=r)
        self.deliveries = Counter("tornado_sse_deliveries", "Events handed to live streams and pollers",
                                  registry=r)
        self.bytes_sent = Counter("tornado_sse_bytes_sent", "Event bytes handed to live SSE streams",
                                  registry=r)
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
        self.commit_to_send = Histogram("tornado_sse_commit_to_send_seconds",
                                        "Event commit (row created) to fan-out", buckets=_LATENCY_BUCKETS,
                                        registry=r)
        self.fanout = Histogram("tornado_sse_fanout_seconds", "Time to fan one wake-up out to every stream",
                                buckets=_LATENCY_BUCKETS, registry=r)

        #: Commit-to-fan-out delay of the newest batch, seconds (for /healthz).
        self.last_lag: float | None = None

    def stream_opened(self, route: str) -> None:
        self.open_streams.labels(route).inc()

    def stream_closed(self, route: str, reason: str) -> None:
        self.open_streams.labels(route).dec()
        self.streams_ended.labels(route, reason).inc()

    def reset_sent(self) -> None:
        self.resets.inc()

    def published(self, events: Sequence[Event], fanout_seconds: float, deliveries: int,
                  sent: int) -> None:
        now = time.time()
        self.events_published.inc(len(events))
        self.deliveries.inc(deliveries)
        self.bytes_sent.inc(sent)
        self.fanout.observe(fanout_seconds)
        self.last_lag = round(max(0.0, now - events[-1].created_at), 6)
        self.commit_to_send.observe(self.last_lag)

    def render(self) -> bytes:
        return generate_latest(self.registry)
