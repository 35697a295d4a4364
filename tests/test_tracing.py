"""OpenTelemetry spans (issue 22): one per request and one per published batch,
recorded with the SDK's in-memory exporter from a real server over real HTTP."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from tests.fix_db import insert_appointment
from tests.fix_server import SECRET, admin_token, auth
from tornado_sse.server import Server
from tornado_sse.settings import Settings
from tornado_sse.testing.sse_client import Response, open_stream, request
from tornado_sse.tracing import Tracing

pytestmark = pytest.mark.pg_independent  # spans, not PostgreSQL's version

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"


async def traced_server(db: str, tmp_path: Path, exporter: InMemorySpanExporter) -> Server:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    server = Server(Settings(host="127.0.0.1", port=0, dsn=db, jwt_secret=SECRET, data_dir=tmp_path / "data"),
                    db, tracer_provider=provider)
    await server.start()
    await server.wait_ready(30)
    return server


@pytest.mark.gen_test(timeout=30)
async def test_a_span_per_request_and_per_published_batch(db, tmp_path):
    exporter = InMemorySpanExporter()
    server = await traced_server(db, tmp_path, exporter)
    try:
        stream = await open_stream(server.url + "/sse?max_events=2",
                                   {**auth(), "traceparent": TRACEPARENT, "X-Request-Id": "trace-me"})
        insert_appointment(db)
        insert_appointment(db)
        events = await stream.take(2)
        assert await stream.wait_end(10) == "finished"
        token = admin_token()
        resp = await request(server.url + "/api/appointments?token=" + token, stream=False)
        assert isinstance(resp, Response) and resp.status == 200
    finally:
        await server.stop()
    spans: list[Any] = list(exporter.get_finished_spans())  # ReadableSpan fields are Optional

    batches = [s for s in spans if s.name == "tornado_sse.publish"]
    published = [i for s in batches for i in s.attributes["tornado_sse.event_ids"]]
    assert published == [int(e.id) for e in events]  # every event, in order, once
    assert all(s.kind == SpanKind.PRODUCER and s.end_time >= s.start_time for s in batches)
    assert sum(s.attributes["tornado_sse.deliveries"] for s in batches) == 2

    (sse,) = [s for s in spans if s.name == "GET /sse"]
    assert sse.kind == SpanKind.SERVER
    assert format(sse.context.trace_id, "032x") == TRACE_ID  # a child of the caller's trace
    attrs = dict(sse.attributes)
    assert attrs["http.route"] == "/sse" and attrs["http.response.status_code"] == 200
    assert attrs["tornado_sse.events"] == 2 and attrs["tornado_sse.reason"] == "max_events"
    assert attrs["tornado_sse.request_id"] == "trace-me"
    # The stream's span covers the stream: it starts before the batches it carried.
    assert sse.start_time <= min(s.start_time for s in batches)

    (snapshot,) = [s for s in spans if s.name == "GET /api/appointments"]
    assert snapshot.attributes["url.path"] == "/api/appointments"
    everything = repr([dict(s.attributes) for s in spans])
    assert token not in everything and token.split(".")[2] not in everything  # SPEC §4


def test_without_the_packages_tracing_is_off(monkeypatch):
    monkeypatch.setitem(sys.modules, "opentelemetry", None)  # import fails as if not installed
    tracing = Tracing()
    assert not tracing.enabled
    tracing.batch([], 0.0, 0, 0)  # and does nothing, without error
    args: dict[str, Any] = {"method": "GET", "path": "/", "route": "/", "status": 200, "duration": 0.1,
                            "headers": {}, "attributes": {}}
    tracing.request(**args)


def test_the_api_without_a_configured_provider_records_nothing_and_stays_off_the_hot_path():
    """opentelemetry-api alone (another package's dependency) gives a proxy
    provider whose spans are no-ops: tracing stays off rather than build them."""
    from opentelemetry import trace

    assert isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)  # no SDK set globally here
    assert not Tracing().enabled
    assert not Tracing(trace.NoOpTracerProvider()).enabled
    assert Tracing(TracerProvider()).enabled
