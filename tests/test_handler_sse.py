"""The SSE endpoint over real HTTP with a real parser (SPEC §3)."""

from __future__ import annotations

import pytest

from tests.fix_db import insert_appointment
from tests.fix_server import auth
from tests.streams import assert_exactly_once_in_order, event_ids, insert_many
from tornado_sse.stream import open_streams
from tornado_sse.testing.sse_client import open_stream


@pytest.mark.gen_test(timeout=20)
async def test_row_inserted_elsewhere_reaches_open_stream(server, db):
    conn = await open_stream(server.url + "/sse", auth())
    assert conn.status == 200
    h = conn.response.headers
    assert h["content-type"] == "text/event-stream; charset=utf-8"
    assert h["cache-control"] == "no-cache"
    assert h["x-accel-buffering"] == "no"
    assert "content-encoding" not in h
    appt = insert_appointment(db)
    msg = await conn.next()
    assert msg.event == "appointment.created"
    body = msg.json()
    assert body["resource_id"] == appt and body["payload"]["id"] == appt
    assert msg.id == str(body["id"])
    assert conn.parser.retry == 3000
    conn.close()


@pytest.mark.gen_test(timeout=20)
async def test_since_id_replays_history_then_goes_live(make_server, db):
    for _ in range(5):
        insert_appointment(db)
    server = await make_server()
    conn = await open_stream(server.url + "/sse?since_id=2", auth())
    replayed = await conn.take(3)
    assert event_ids(replayed) == [3, 4, 5]
    insert_appointment(db)
    assert event_ids([await conn.next()]) == [6]
    conn.close()


@pytest.mark.gen_test(timeout=20)
async def test_last_event_id_header_beats_since_id(server, db):
    for _ in range(4):
        insert_appointment(db)
    await server.ctx.listener.catch_up()
    conn = await open_stream(server.url + "/sse?since_id=0", {**auth(), "Last-Event-ID": "3"})
    assert event_ids([await conn.next()]) == [4]
    conn.close()


@pytest.mark.gen_test(timeout=20)
async def test_without_cursor_stream_starts_live_at_newest(server, db):
    insert_appointment(db)
    await server.ctx.listener.catch_up()
    conn = await open_stream(server.url + "/sse", auth())
    insert_appointment(db)
    assert event_ids([await conn.next()]) == [2]
    conn.close()


@pytest.mark.parametrize("window", [0, 10000], ids=["replay-from-db", "replay-from-memory"])
@pytest.mark.gen_test(timeout=60)
async def test_300_inserts_racing_a_replay_from_zero_arrive_exactly_once(make_server, db, window):
    import asyncio

    first = await insert_many(db, 50)
    server = await make_server(window=window)
    writer = asyncio.ensure_future(insert_many(db, 300))
    await asyncio.sleep(0.05)  # the replay starts while rows are being committed
    conn = await open_stream(server.url + "/sse?since_id=0", auth())
    await writer
    messages = await conn.take(350, timeout=30)
    assert_exactly_once_in_order(event_ids(messages), 350)
    assert event_ids(messages)[0] == 1 and len(first) == 50
    await asyncio.sleep(0.3)
    assert conn.drain_now() == []
    conn.close()


@pytest.mark.gen_test(timeout=20)
async def test_cursor_newer_than_newest_event_gets_reset(server, db):
    insert_appointment(db)
    await server.ctx.listener.catch_up()
    conn = await open_stream(server.url + "/sse?since_id=1000", auth())
    msg = await conn.next()
    assert msg.event == "reset"
    assert msg.json() == {"reason": "cursor_ahead", "last_id": 1}
    assert msg.id == "1"
    insert_appointment(db)  # and the stream continues live from there
    assert event_ids([await conn.next()]) == [2]
    conn.close()


@pytest.mark.gen_test(timeout=20)
async def test_cursor_older_than_retained_history_gets_reset(make_server, db):
    from tests.fix_db import execute

    for _ in range(5):
        insert_appointment(db)
    execute(db, "UPDATE sse_events SET created_at = now() - interval '8 days' WHERE id <= 3")
    execute(db, "SELECT tornado_sse_prune(interval '7 days')")
    server = await make_server()
    conn = await open_stream(server.url + "/sse?since_id=1", auth())
    msg = await conn.next()
    assert msg.event == "reset"
    assert msg.json() == {"reason": "cursor_expired", "last_id": 5}
    conn.close()
    # A cursor at the pruned boundary lost nothing: plain replay.
    conn = await open_stream(server.url + "/sse?since_id=3", auth())
    assert event_ids(await conn.take(2)) == [4, 5]
    conn.close()


@pytest.mark.gen_test(timeout=20)
async def test_filters_topics_staff_and_product(server, db):
    from tests.fix_db import execute

    by_topic = await open_stream(server.url + "/sse?topics=appointment.rescheduled,availability.*", auth())
    by_staff = await open_stream(server.url + "/sse?staff_id=7", auth())
    by_product = await open_stream(server.url + "/sse?product_id=99", auth())
    a = insert_appointment(db, staff_ids=[7], product_id=1)  # 1 created (staff 7)
    insert_appointment(db, staff_ids=[5], product_id=99)  # 2 created (product 99)
    execute(db, "UPDATE appointments SET start_at = start_at + interval '1 hour',"
                " end_at = end_at + interval '1 hour' WHERE id = %s", (a,))  # 3 rescheduled
    execute(db, "INSERT INTO availabilities (scope, title) VALUES ('global', 'open')")  # 4
    assert event_ids(await by_topic.take(2)) == [3, 4]
    assert event_ids(await by_staff.take(3)) == [1, 3, 4]
    assert event_ids(await by_product.take(2)) == [2, 4]
    for c in (by_topic, by_staff, by_product):
        c.close()


@pytest.mark.parametrize("path", ["/sse", "/wc-appointments/v2/sse", "/wp-json/wc-appointments/v2/sse"])
@pytest.mark.gen_test(timeout=20)
async def test_max_events_ends_the_stream_cleanly(server, db, path):
    for _ in range(5):
        insert_appointment(db)
    await server.ctx.listener.catch_up()
    conn = await open_stream(server.url + path + "?since_id=0&max_events=3", auth())
    assert event_ids(await conn.take(3)) == [1, 2, 3]
    assert await conn.wait_end() == "finished"
    assert conn.drain_now() == []


@pytest.mark.gen_test(timeout=30)
async def test_woocommerce_routes_end_after_their_own_limits(make_server, db):
    server = await make_server(wc_max_events=2, wc_stream_timeout=1.0)
    for _ in range(3):
        insert_appointment(db)
    await server.ctx.listener.catch_up()
    for path in ("/wc-appointments/v2/sse", "/wp-json/wc-appointments/v2/sse"):
        conn = await open_stream(server.url + path + "?since_id=0", auth())
        assert event_ids(await conn.take(2)) == [1, 2]
        assert await conn.wait_end() == "finished"
        conn = await open_stream(server.url + path + "?since_id=3", auth())
        assert await conn.wait_end(timeout=5) == "finished"  # the 1 s limit
    plain = await open_stream(server.url + "/sse?since_id=0", auth())
    assert event_ids(await plain.take(3)) == [1, 2, 3]  # /sse stays open
    assert not plain.ended.done()
    plain.close()


def test_woocommerce_defaults_are_50_events_or_30_seconds():
    from tornado_sse.settings import Settings

    s = Settings()
    assert (s.wc_max_events, s.wc_stream_timeout, s.max_events, s.stream_timeout) == (50, 30.0, 0, 0.0)


@pytest.mark.gen_test(timeout=20)
async def test_keepalive_comment_after_each_quiet_second(make_server):
    import asyncio

    server = await make_server(keepalive=1.0)
    conn = await open_stream(server.url + "/sse", auth())
    await asyncio.sleep(3.4)
    count = conn.raw.count(b": keepalive\n\n")
    assert 2 <= count <= 4, count
    conn.close()


@pytest.mark.gen_test(timeout=60)
async def test_listener_backend_killed_during_200_inserts_loses_nothing(make_server, db):
    import asyncio

    from tests.fix_db import kill_listener

    server = await make_server()
    conn = await open_stream(server.url + "/sse", auth())
    writer = asyncio.ensure_future(insert_many(db, 200))
    listener = server.ctx.listener
    killed = 0
    while not writer.done() and killed < 3:
        await asyncio.sleep(0.05)
        if kill_listener(db):
            killed += 1
            await asyncio.sleep(0.05)
            await listener.wait_connected(10)
    await writer
    assert killed >= 1
    messages = await conn.take(200, timeout=30)
    assert_exactly_once_in_order(event_ids(messages), 200)
    await asyncio.sleep(0.5)
    assert conn.drain_now() == []
    assert listener.reconnects >= 1
    conn.close()


@pytest.mark.gen_test(timeout=60)
async def test_reader_that_stops_reading_is_cut_and_resumes_with_everything(make_server, db):
    """A client that stops reading must not grow server memory: once its
    unsent bytes pass max_buffer it is cut; resuming loses nothing."""
    import asyncio
    import socket

    from tornado_sse.testing.sse_client import SSEParser

    server = await make_server(max_buffer=64 * 1024)
    big = "x" * 16000
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connect: small window
    sock.connect(("127.0.0.1", server.port))
    sock.sendall(b"GET /sse HTTP/1.1\r\nHost: x\r\nAuthorization: " +
                 auth()["Authorization"].encode() + b"\r\n\r\n")
    await asyncio.sleep(0.3)
    assert len(open_streams(server.ctx.hub)) == 1
    import psycopg
    async with await psycopg.AsyncConnection.connect(db, autocommit=True) as c:
        for _i in range(400):  # ~6.4 MB of events: past the kernel's buffers and the 64 KiB bound
            await c.execute("INSERT INTO availabilities (scope, title) VALUES ('global', %s)", (big,))
    for _ in range(100):
        if not open_streams(server.ctx.hub):
            break
        await asyncio.sleep(0.05)
    assert not open_streams(server.ctx.hub), "slow stream was not cut"
    assert server.ctx.metrics.streams_ended.labels("sse", "slow_client")._value.get() == 1
    # The client now reads what it had received, then resumes from there.
    sock.setblocking(False)
    received = b""
    loop = asyncio.get_running_loop()
    while True:
        try:
            data = await asyncio.wait_for(loop.sock_recv(sock, 65536), 2)
        except (asyncio.TimeoutError, ConnectionError):
            break
        if not data:
            break
        received += data
    sock.close()
    parser = SSEParser()
    body = received.split(b"\r\n\r\n", 1)[1]
    # De-chunk.
    payload = b""
    while body:
        size_line, _, rest = body.partition(b"\r\n")
        size = int(size_line, 16) if size_line.strip() else 0
        if size == 0 or len(rest) < size + 2:
            payload += rest[:size]
            break
        payload += rest[:size]
        body = rest[size + 2:]
    got = [int(m.id) for m in parser.feed(payload) if m.event == "availability.created"]
    assert len(got) < 400
    resume_from = parser.last_event_id or "0"
    conn = await open_stream(server.url + "/sse", {**auth(), "Last-Event-ID": resume_from})
    resumed = await conn.take(400 - len(got), timeout=30)
    assert got + event_ids(resumed) == list(range(1, 401))
    conn.close()


@pytest.mark.gen_test(timeout=20)
async def test_client_that_goes_away_is_dropped_at_once(server):
    import asyncio

    conn = await open_stream(server.url + "/sse", auth())
    await asyncio.sleep(0.1)
    assert len(open_streams(server.ctx.hub)) == 1
    conn.close()
    for _ in range(40):
        if not open_streams(server.ctx.hub):
            break
        await asyncio.sleep(0.05)
    assert not open_streams(server.ctx.hub) and len(server.ctx.hub) == 0


@pytest.mark.gen_test(timeout=20)
async def test_shutdown_ends_every_stream_cleanly(make_server):
    server = await make_server()
    conns = [await open_stream(server.url + "/sse", auth()) for _ in range(5)]
    await server.stop()
    for conn in conns:
        assert await conn.wait_end(5) == "finished"


@pytest.mark.gen_test(timeout=20)
async def test_http10_client_gets_unchunked_stream(server, db):
    conn = await open_stream(server.url + "/sse", auth(), version="HTTP/1.0")
    assert "transfer-encoding" not in conn.response.headers
    insert_appointment(db)
    assert event_ids([await conn.next()]) == [1]
    conn.close()
