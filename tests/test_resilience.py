"""Database resilience (issue 12, SPEC §7): bounded writes, a listener that
never waits behind requests, streamed snapshots, cancelled abandoned writes.

Each test holds real locks or real connections on a real PostgreSQL.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time

import psycopg
import pytest

from tests.fix_db import execute, insert_appointment
from tests.fix_server import auth
from tests.streams import event_ids
from tornado_sse.testing.sse_client import Response, open_stream, request

T0 = 1733044800  # 2024-12-01T09:20:00Z


async def patch(server, row_id: int, body: dict[str, object]) -> Response:
    resp = await request(f"{server.url}/api/appointments/{row_id}", method="PATCH",
                         headers={**auth(), "Content-Type": "application/json"},
                         body=json.dumps(body).encode(), stream=False)
    assert isinstance(resp, Response)
    return resp


@pytest.mark.gen_test(timeout=30)
async def test_patch_of_a_row_held_by_an_open_transaction_is_503_busy_within_the_lock_timeout(
        make_server, db):
    server = await make_server(db_lock_timeout=1.0)
    row = insert_appointment(db)
    async with await psycopg.AsyncConnection.connect(db) as held:
        await held.execute("UPDATE appointments SET cost = 1 WHERE id = %s", (row,))  # BEGIN; UPDATE; ...
        started = time.monotonic()
        resp = await patch(server, row, {"status": "paid"})
        waited = time.monotonic() - started
        assert resp.status == 503, resp.body
        assert resp.json()["code"] == "rest_busy" and resp.json()["data"]["reason"] == "busy"
        assert resp.headers["retry-after"] == "1"
        assert 0.8 <= waited < 5, waited
        await held.rollback()
    # The refused write changed nothing.
    assert execute(db, "SELECT status FROM appointments WHERE id = %s", (row,)) == [("confirmed",)]


@pytest.mark.gen_test(timeout=40)
async def test_exhausted_pool_answers_busy_while_live_events_and_healthz_carry_on(make_server, db):
    """Every pooled connection is stuck behind a row lock; the listener has its
    own connections, so a change made elsewhere still streams at once and
    /healthz stays 200, while another request gets 503 busy, not a hang."""
    row = insert_appointment(db)
    server = await make_server(pool_size=1, db_lock_timeout=8.0)  # starts live after that row
    stream = await open_stream(server.url + "/sse", auth())
    async with await psycopg.AsyncConnection.connect(db) as held:
        await held.execute("UPDATE appointments SET cost = 1 WHERE id = %s", (row,))
        stuck = asyncio.ensure_future(patch(server, row, {"status": "paid"}))  # takes the one connection
        await asyncio.sleep(0.5)
        fresh = insert_appointment(db)
        started = time.monotonic()
        msg = await asyncio.wait_for(stream.next(), 5)
        assert msg.json()["resource_id"] == fresh
        assert time.monotonic() - started < 1.5
        health = await request(server.url + "/healthz")
        assert isinstance(health, Response) and health.status == 200, health.body
        snap = await request(server.url + "/api/appointments", headers=auth(), stream=False)
        assert isinstance(snap, Response)
        assert snap.status == 503 and snap.json()["code"] == "rest_busy", snap.body
        assert "retry-after" in snap.headers
        await held.rollback()
    assert (await stuck).status == 200  # the lock came free within its timeout
    stream.close()


@pytest.mark.gen_test(timeout=40)
async def test_write_whose_client_hung_up_is_cancelled_not_committed_later(make_server, db):
    server = await make_server(db_lock_timeout=20.0)
    row = insert_appointment(db)
    async with await psycopg.AsyncConnection.connect(db) as held:
        await held.execute("UPDATE appointments SET cost = 1 WHERE id = %s", (row,))
        body = json.dumps({"status": "paid"}).encode()
        sock = socket.create_connection(("127.0.0.1", server.port))
        sock.sendall(f"PATCH /api/appointments/{row} HTTP/1.1\r\nHost: x\r\n"
                     f"Authorization: {auth()['Authorization']}\r\nContent-Type: application/json\r\n"
                     f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
        await asyncio.sleep(0.7)  # the PATCH now waits for the row lock
        sock.close()  # the client gives up
        await asyncio.sleep(0.7)
        await held.rollback()  # the lock comes free
    await asyncio.sleep(1.0)
    assert execute(db, "SELECT status FROM appointments WHERE id = %s", (row,)) == [("confirmed",)]
    waiting = execute(db, "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                          " AND wait_event_type = 'Lock'")
    assert waiting == [(0,)]


@pytest.mark.gen_test(timeout=60)
async def test_large_snapshot_streams_in_pages_and_stays_consistent(make_server, db):
    execute(db, "INSERT INTO appointments (product_id, staff_ids, start_at, end_at, overlap_allowed)"
                " SELECT 1, '{5}', to_timestamp(%s + g * 60), to_timestamp(%s + g * 60 + 1800), true"
                " FROM generate_series(1, 5000) g", (T0, T0))
    server = await make_server()
    resp = await request(f"{server.url}/api/appointments?start={T0}&end={T0 + 86400 * 30}",
                         headers=auth(), stream=False)
    assert isinstance(resp, Response) and resp.status == 200
    assert resp.headers.get("transfer-encoding") == "chunked"  # streamed, not built whole
    body = resp.json()
    assert len(body["appointments"]) == 5000
    assert [r["id"] for r in body["appointments"]] == list(range(1, 5001))
    assert body["last_event_id"] == 5000


@pytest.mark.gen_test(timeout=60)
async def test_snapshot_client_that_does_not_read_is_cut_and_frees_its_connection(make_server, db):
    """A client that asks for a big snapshot and reads nothing holds at most a
    page in the server and its database connection only until the send bound."""
    execute(db, "INSERT INTO appointments (product_id, staff_ids, start_at, end_at, overlap_allowed)"
                " SELECT 1, '{5}', to_timestamp(%s + g), to_timestamp(%s + g + 1800), true"
                " FROM generate_series(1, 60000) g", (T0, T0))
    server = await make_server(pool_size=1)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", server.port))
    sock.sendall(f"GET /api/appointments?start={T0}&end={T0 + 86400 * 30} HTTP/1.1\r\nHost: x\r\n"
                 f"Authorization: {auth()['Authorization']}\r\n\r\n".encode())
    sock.setblocking(False)
    started = time.monotonic()
    # While it is stuck, the one pooled connection is its: another snapshot is busy.
    await asyncio.sleep(1.0)
    busy = await request(server.url + "/api/availabilities", headers=auth(), stream=False)
    assert isinstance(busy, Response) and busy.status == 503
    # Then the server gives up on it (PAGE_SEND_TIMEOUT) and the connection is free again.
    while time.monotonic() - started < 25:
        ok = await request(server.url + "/api/availabilities", headers=auth(), stream=False)
        assert isinstance(ok, Response)
        if ok.status == 200:
            break
        await asyncio.sleep(0.5)
    assert ok.status == 200, "the non-reading snapshot kept its database connection"
    assert time.monotonic() - started < 20
    # ...and its socket was closed by the server: draining it ends in EOF.
    loop = asyncio.get_running_loop()
    received = 0
    while True:
        chunk = await asyncio.wait_for(loop.sock_recv(sock, 65536), 10)
        if not chunk:
            break
        received += len(chunk)
    sock.close()
    assert received < 60000 * 250, "the whole snapshot was sent to a client that did not read"


@pytest.mark.gen_test(timeout=40)
async def test_replay_after_byte_bounded_window_reads_the_table_and_loses_nothing(make_server, db):
    """--window-bytes small: the memory window holds only the newest events,
    a resume from before it reads the log, and nothing is lost or doubled."""
    server = await make_server(window_bytes=4096)
    for _ in range(30):
        insert_appointment(db)
    deadline = time.monotonic() + 10
    while server.ctx.hub.last_id < 30 and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert server.ctx.hub.events_after(0) is None  # the window no longer reaches back
    conn = await open_stream(server.url + "/sse?since_id=0", auth())
    got = await conn.take(30)
    assert event_ids(got) == list(range(1, 31))
    conn.close()


@pytest.mark.gen_test(timeout=30)
async def test_write_field_sizes_are_bounded_and_named(server, db):
    """SPEC §7: staff_ids at most 100 ids, text at most 1,000 characters; a
    7 MB staff_ids list once became an 85 MB entry in the resume window."""
    cases = [("/api/appointments", {"start": T0, "end": T0 + 3600, "staff_ids": list(range(1, 102))}, "staff_ids"),
             ("/api/availabilities", {"scope": "global", "rrule": "x" * 1001}, "rrule")]
    for path, body, field in cases:
        resp = await request(server.url + path, method="POST", stream=False,
                             headers={**auth(), "Content-Type": "application/json"},
                             body=json.dumps(body).encode())
        assert isinstance(resp, Response) and resp.status == 400, (path, resp.status)
        assert field in resp.json()["data"]["params"]
    # SPEC §8: the API books only staff the directory knows.
    execute(db, "INSERT INTO staff (id, name) SELECT g, 'Staff ' || g FROM generate_series(1, 100) g")
    ok = await request(server.url + "/api/appointments", method="POST", stream=False,
                       headers={**auth(), "Content-Type": "application/json"},
                       body=json.dumps({"start": T0, "end": T0 + 3600,
                                        "staff_ids": list(range(1, 101))}).encode())
    assert isinstance(ok, Response) and ok.status == 201
    assert execute(db, "SELECT count(*) FROM appointments") == [(1,)]


@pytest.mark.gen_test(timeout=120)
async def test_thirty_concurrent_large_snapshots_do_not_delay_live_events_or_healthz(make_server, db):
    execute(db, "INSERT INTO appointments (product_id, staff_ids, start_at, end_at, overlap_allowed)"
                " SELECT 1, '{5}', to_timestamp(%s + g * 10), to_timestamp(%s + g * 10 + 1800), true"
                " FROM generate_series(1, 10000) g", (T0, T0))
    server = await make_server()
    stream = await open_stream(server.url + "/sse", auth())
    url = f"{server.url}/api/appointments?start={T0}&end={T0 + 86400 * 30}"
    snapshots = [asyncio.ensure_future(request(url, headers=auth(), stream=False)) for _ in range(30)]
    await asyncio.sleep(0.3)  # the pool is now taken by snapshots
    fresh = insert_appointment(db)
    started = time.monotonic()
    msg = await asyncio.wait_for(stream.next(), 5)
    assert msg.json()["resource_id"] == fresh
    assert time.monotonic() - started < 1.0
    health_codes = []
    while not all(s.done() for s in snapshots):
        health = await request(server.url + "/healthz")
        assert isinstance(health, Response)
        health_codes.append(health.status)
        await asyncio.sleep(0.2)
    assert health_codes and set(health_codes) == {200}
    answers = [s.result() for s in snapshots]
    # Each got its rows, or (pool exhausted past its wait) a 503 busy: never a hang or a 500.
    assert all(a.status in (200, 503) for a in answers)
    assert any(a.status == 200 and len(a.json()["appointments"]) == 10000 for a in answers)
    assert all(a.json()["code"] == "rest_busy" for a in answers if a.status == 503)
    stream.close()
