"""Faults, outages and shutdown: nothing lost, nothing repeated (issue 6)."""

from __future__ import annotations

import asyncio
import signal
import time

import pytest

from tests.fix_db import execute, insert_appointment
from tests.fix_server import SECRET, auth
from tests.streams import assert_exactly_once_in_order, event_ids, insert_many
from tests.tcp_proxy import PgProxy
from tornado_sse.stream import open_streams
from tornado_sse.testing.processes import serving
from tornado_sse.testing.sse_client import open_stream, request


async def wait_until(predicate, timeout: float = 10.0, interval: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(interval)


async def health(server) -> tuple[int, dict]:
    resp = await request(server.url + "/healthz")
    return resp.status, resp.json()


@pytest.mark.gen_test(timeout=60)
async def test_postgres_restarted_mid_stream_loses_nothing(make_server, own_pg):
    server = await make_server(dsn=own_pg.dsn, check_interval=1, check_timeout=2)
    conn = await open_stream(server.url + "/sse", auth())
    await insert_many(own_pg.dsn, 50)
    await asyncio.to_thread(own_pg.restart)
    await insert_many(own_pg.dsn, 50)
    messages = await conn.take(100, timeout=30)
    assert_exactly_once_in_order(event_ids(messages), 100)
    assert server.ctx.listener.reconnects >= 1
    await asyncio.sleep(0.5)
    assert conn.drain_now() == []
    conn.close()


@pytest.mark.gen_test(timeout=60)
async def test_healthz_flips_to_503_with_reason_while_postgres_is_down_and_back(make_server, own_pg):
    server = await make_server(dsn=own_pg.dsn, check_interval=1, check_timeout=2, keepalive=1)
    assert (await health(server))[0] == 200
    conn = await open_stream(server.url + "/sse", auth())
    await asyncio.to_thread(own_pg.stop)
    await wait_until(lambda: not server.ctx.listener.connected)
    status, body = await health(server)
    assert status == 503 and body["status"] == "unavailable" and body["reason"]
    # Open streams stay open through the outage, with keepalives.
    before = conn.raw.count(b": keepalive")
    await asyncio.sleep(2.5)
    assert conn.raw.count(b": keepalive") > before and not conn.ended.done()
    # A request that needs the database gets 503, not a hang or a 500.
    snap = await request(server.url + "/api/appointments", headers=auth())
    assert snap.status == 503 and snap.json()["code"] == "rest_unavailable"
    await asyncio.to_thread(own_pg.start)
    await wait_until(lambda: server.ctx.listener.connected, timeout=20)
    assert (await health(server))[0] == 200
    insert_appointment(own_pg.dsn)
    assert event_ids([await conn.next(10)]) == [1]  # and the stream carries on
    conn.close()


@pytest.mark.gen_test(timeout=60)
async def test_half_open_listener_connection_is_detected_and_nothing_is_lost(make_server, db):
    """The proxy silences the LISTEN connection without closing it: no error,
    no data. The liveness check must notice and the catch-up deliver all."""
    proxy = PgProxy(db)
    await proxy.start()
    try:
        server = await make_server(dsn=proxy.dsn, check_interval=1, check_timeout=1)
        conn = await open_stream(server.url + "/sse", auth())
        insert_appointment(db)
        assert event_ids([await conn.next()]) == [1]
        assert proxy.blackhole_listeners() == 1
        started = time.monotonic()
        await insert_many(db, 20)  # committed while the listener hears nothing
        messages = await conn.take(20, timeout=20)
        assert_exactly_once_in_order(event_ids(messages), 20)
        assert event_ids(messages)[0] == 2
        # Found within the configured bound: check interval + timeout (+ backoff).
        assert time.monotonic() - started < 5
        assert server.ctx.listener.reconnects >= 1
        conn.close()
    finally:
        await proxy.stop()


@pytest.mark.gen_test(timeout=60)
async def test_server_started_while_database_is_down_serves_503_then_catches_up(make_server, db):
    proxy = PgProxy(db)
    await proxy.start()
    port = proxy.port
    await proxy.stop()  # nothing answers on the DSN yet
    server = await make_server(dsn=proxy.dsn, wait=False, check_interval=1)
    status, body = await health(server)
    assert status == 503 and body["listener"] == "starting" and body["reason"]
    resp = await request(server.url + "/poll?since_id=0", headers=auth())
    assert resp.status == 503
    insert_appointment(db)  # a change made while the server cannot see the database
    await proxy.start(port)
    try:
        await server.wait_ready(20)
        assert (await health(server))[0] == 200
        conn = await open_stream(server.url + "/sse?since_id=0", auth())
        assert event_ids([await conn.next()]) == [1]
        conn.close()
    finally:
        await proxy.stop()


@pytest.mark.gen_test(timeout=30)
async def test_metrics_move_as_a_known_scenario_says(make_server, db):
    server = await make_server(max_buffer=64 * 1024)
    a = await open_stream(server.url + "/sse", auth())
    b = await open_stream(server.url + "/wc-appointments/v2/sse", auth())
    reset = await open_stream(server.url + "/sse?since_id=999", auth())
    assert (await reset.next()).event == "reset"
    for _ in range(3):
        insert_appointment(db)
    await a.take(3)
    await b.take(3)
    b.close()
    reset.close()
    await wait_until(lambda: len(open_streams(server.ctx.hub)) == 1)
    text = (await request(server.url + "/metrics")).body.decode()

    def value(line_start: str) -> float:
        for line in text.splitlines():
            if line.startswith(line_start + " "):
                return float(line.split()[-1])
        raise AssertionError(f"{line_start} not in metrics")

    assert value('tornado_sse_open_streams{route="sse"}') == 1
    assert value('tornado_sse_open_streams{route="wc"}') == 0
    assert value('tornado_sse_streams_ended_total{reason="client_closed",route="sse"}') == 1
    assert value('tornado_sse_streams_ended_total{reason="client_closed",route="wc"}') == 1
    assert value("tornado_sse_events_published_total") == 3
    assert value("tornado_sse_resets_total") == 1
    assert value("tornado_sse_commit_to_send_seconds_count") >= 1
    assert value("tornado_sse_fanout_seconds_count") >= 1
    assert value("tornado_sse_deliveries_total") == 9  # 3 events x 3 streams (reset goes on live)
    a.close()


@pytest.mark.gen_test(timeout=10)
async def test_retention_runs_once_per_period_however_many_servers(db):
    for _ in range(3):
        insert_appointment(db)
    execute(db, "UPDATE sse_events SET created_at = now() - interval '10 days' WHERE id <= 2")
    first = execute(db, "SELECT tornado_sse_prune_due('7 days', '1 hour')")[0][0]
    second = execute(db, "SELECT tornado_sse_prune_due('7 days', '1 hour')")[0][0]
    assert (first, second) == (2, None)
    assert execute(db, "SELECT pruned_through FROM sse_retention")[0][0] == 2


@pytest.mark.slow
def test_sigterm_with_100_open_streams_exits_within_10s_and_ends_every_stream(db, tmp_path):
    # One token opens all 105: lift the per-token stream limit (SPEC §7: 0 = none).
    with serving("--dsn", db, "--jwt-secret", SECRET, "--port", "0", "--log-level", "warning",
                 "--max-streams-per-token", "0", "--max-connects-per-second", "0", "--data-dir", str(tmp_path),
                 cwd=tmp_path) as (proc, url):
        assert url.startswith("http://127.0.0.1:")

        async def scenario() -> None:
            streams = [await open_stream(url + "/sse", auth()) for _ in range(100)]
            polls = [asyncio.ensure_future(request(url + "/poll?since_id=0&timeout=30", headers=auth()))
                     for _ in range(5)]
            await asyncio.sleep(0.5)
            started = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            ends = await asyncio.gather(*(s.wait_end(10) for s in streams))
            answers = await asyncio.gather(*polls)
            assert ends == ["finished"] * 100  # a clean end of every response
            assert all(a.status == 200 and a.json()["events"] == [] for a in answers)
            assert time.monotonic() - started < 10

        asyncio.run(scenario())
        assert proc.wait(10) == 0
