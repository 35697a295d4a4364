"""OpenTelemetry traces, when the packages are installed (``tornado_sse[otel]``).

Two kinds of span, the two things an operator follows through a system:

- one per HTTP request (``GET /sse``, ``PATCH /api/appointments/{id}``), a
  SERVER span with the route template, status, request id and, for a
  stream, the events sent and why it ended; a ``traceparent`` header from a
  proxy or the caller makes it a child of their trace. Only the path is
  recorded, never the query, which may carry a token (SPEC §4);
- one per batch the listener publishes to the hub, with the event ids, how
  many deliveries and bytes it made and how long the fan-out took: the
  "when did event 42 go out" question, answered in the trace viewer.

Spans are recorded when a request or batch is done, with its real start
time, so nothing here runs while a request is being served and the hot path
is untouched. Without the opentelemetry packages (the default install), or
with the API but no tracer provider set up when the server starts, the
:class:`Tracing` object is disabled and costs one attribute check. Which
exporter receives the spans is the deployment's choice: run the server under
``opentelemetry-instrument`` (README), or give a ``TracerProvider``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

from . import __version__
from .events import Event

#: Event ids recorded on one batch span at most (a batch holds up to 1,000).
MAX_IDS = 1000


class Tracing:
    """Records request and batch spans through OpenTelemetry, if present."""

    def __init__(self, tracer_provider: Any = None) -> None:
        try:
            from opentelemetry import propagate, trace
        except ImportError:
            self._tracer: Any = None
            return
        self._trace = trace
        self._propagate = propagate
        provider = tracer_provider if tracer_provider is not None else trace.get_tracer_provider()
        if isinstance(provider, (trace.ProxyTracerProvider, trace.NoOpTracerProvider)):
            # The API without an SDK (installed as some other package's
            # dependency): every span would be a no-op, yet building it cost
            # ~6 % of a scoped event's CPU. The OpenTelemetry launcher sets
            # its provider before the server starts, so this sees it.
            self._tracer = None
            return
        self._tracer = trace.get_tracer("tornado_sse", __version__, tracer_provider=provider)

    @property
    def enabled(self) -> bool:
        return self._tracer is not None

    def request(self, *, method: str, path: str, route: str | None, status: int, duration: float,
                headers: Mapping[str, str], attributes: Mapping[str, Any]) -> None:
        """Record the span of one finished request (``duration`` in seconds)."""
        if self._tracer is None:
            return
        trace = self._trace
        end = time.time_ns()
        span = self._tracer.start_span(
            f"{method} {route}" if route else method,
            # W3C trace context from the caller; the propagator looks names up in lower case.
            context=self._propagate.extract({k.lower(): v for k, v in headers.items()}),
            kind=trace.SpanKind.SERVER, start_time=end - int(duration * 1e9),
            attributes={"http.request.method": method, "url.path": path, "http.response.status_code": status,
                        **({"http.route": route} if route else {}),
                        **{f"tornado_sse.{k}": v for k, v in attributes.items() if v is not None}})
        if status >= 500:
            span.set_status(trace.Status(trace.StatusCode.ERROR))
        span.end(end_time=end)

    def batch(self, events: Sequence[Event], fanout_seconds: float, deliveries: int, sent: int) -> None:
        """Record the span of one batch the hub fanned out (the listener's ``on_batch``)."""
        if self._tracer is None or not events:
            return
        end = time.time_ns()
        span = self._tracer.start_span(
            "tornado_sse.publish", kind=self._trace.SpanKind.PRODUCER, start_time=end - int(fanout_seconds * 1e9),
            attributes={"tornado_sse.event_ids": [e.id for e in events[:MAX_IDS]],
                        "tornado_sse.first_event_id": events[0].id, "tornado_sse.last_event_id": events[-1].id,
                        "tornado_sse.events": len(events), "tornado_sse.deliveries": deliveries,
                        "tornado_sse.bytes": sent})
        span.end(end_time=end)
