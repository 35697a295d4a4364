"""Snapshots that nobody reads (issue 19, SPEC §7).

25 staff clients that opened 400-day snapshots and read nothing once held a
pooled connection each, 10 s per page, and admin writes got 503 busy or
took 3 s. Now a snapshot lets its connection go before it waits for a
small client, a large one holds at most the snapshots' share of the pool,
and one token has at most ``--max-snapshots-per-token`` in progress.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time

import pytest

from tests.fix_db import execute, insert_appointment
from tests.fix_server import admin_token, auth
from tornado_sse.testing.sse_client import Response, request

T0 = 1733044800
IN_TRANSACTION = ("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                  " AND application_name = 'tornado_sse' AND xact_start IS NOT NULL")


def rows(dsn: str, n: int) -> None:
    # Overlapping on purpose (SPEC §8's flag): rows, not a plausible day.
    execute(dsn, "INSERT INTO appointments (product_id, staff_ids, start_at, end_at, overlap_allowed)"
                 " SELECT 1, '{5}', to_timestamp(%s + g * 60), to_timestamp(%s + g * 60 + 1800), true"
                 " FROM generate_series(1, %s) g", (T0, T0, n))


def non_reading_snapshot(port: int, token: str, path: str = "") -> socket.socket:
    """Ask for a snapshot and never read a byte of it."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    target = path or f"/api/appointments?start={T0}&end={T0 + 86400 * 30}"
    sock.sendall(f"GET {target} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\r\n".encode())
    return sock


async def timed_patch(server, row: int, cost: int) -> tuple[int, float]:
    started = time.monotonic()
    resp = await request(f"{server.url}/api/appointments/{row}", method="PATCH", stream=False,
                         headers={**auth(), "Content-Type": "application/json"},
                         body=json.dumps({"cost": cost}).encode())
    assert isinstance(resp, Response)
    return resp.status, time.monotonic() - started


async def wait_for(predicate, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate() and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    return bool(predicate())


@pytest.mark.gen_test(timeout=60)
async def test_25_non_reading_large_snapshots_leave_admin_writes_answering_promptly(make_server, db):
    rows(db, 20000)  # ~5 MB of JSON: far past the in-memory bound and the socket buffers
    row = insert_appointment(db)
    server = await make_server(pool_size=6)  # snapshots may hold 3 of the 6
    tokens = [admin_token(sub=f"desk-{i}") for i in range(25)]
    socks = [non_reading_snapshot(server.port, token) for token in tokens]
    try:
        await asyncio.sleep(1.5)
        held = execute(db, IN_TRANSACTION)[0][0]
        assert 1 <= held <= 3, f"{held} connections held by snapshots nobody reads"
        for cost in range(5):
            status, took = await timed_patch(server, row, cost)
            assert status == 200, status
            assert took < 1.0, f"a write took {took:.2f} s behind unread snapshots"
    finally:
        for sock in socks:
            sock.close()
    # Hung up: their transactions end at once, not after the page timeout.
    assert await wait_for(lambda: execute(db, IN_TRANSACTION)[0][0] == 0, timeout=3)


@pytest.mark.gen_test(timeout=60)
async def test_small_snapshots_nobody_reads_hold_no_database_connection(make_server, db):
    rows(db, 3000)  # ~900 KB: past the socket buffers, within the in-memory bound
    row = insert_appointment(db)
    server = await make_server(pool_size=2, max_snapshots_per_token=0)
    socks = [non_reading_snapshot(server.port, admin_token()) for _ in range(25)]
    try:
        # Each is read in a moment; none then waits for its client in a transaction.
        assert await wait_for(lambda: execute(db, IN_TRANSACTION) == [(0,)], timeout=5), \
            "a snapshot nobody reads holds a database connection"
        status, took = await timed_patch(server, row, 1)
        assert status == 200 and took < 1.0, (status, took)
    finally:
        for sock in socks:
            sock.close()


@pytest.mark.gen_test(timeout=60)
async def test_a_fifth_concurrent_snapshot_of_one_token_is_429_others_unaffected(make_server, db):
    rows(db, 20000)
    server = await make_server()
    token = admin_token(sub="greedy")
    socks = [non_reading_snapshot(server.port, token) for _ in range(4)]
    try:
        await asyncio.sleep(1.0)
        fifth = await request(server.url + "/api/availabilities", headers=auth(token), stream=False)
        assert isinstance(fifth, Response) and fifth.status == 429, fifth.body
        assert fifth.json()["code"] == "rest_too_many_snapshots"
        assert fifth.headers["retry-after"] == "5"
        other = await request(server.url + "/api/availabilities", headers=auth(), stream=False)
        assert isinstance(other, Response) and other.status == 200
    finally:
        for sock in socks:
            sock.close()
    # The four hung up: the token may snapshot again.
    deadline = time.monotonic() + 5
    while True:
        again = await request(server.url + "/api/availabilities", headers=auth(token), stream=False)
        assert isinstance(again, Response)
        if again.status == 200 or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.1)
    assert again.status == 200, again.body
