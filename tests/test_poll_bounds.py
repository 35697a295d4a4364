"""Bounded answers and abandoned replays (issue 19, SPEC §7).

``GET /poll?since_id=0&max_events=9223372036854775807`` once made one
request build a 37 MB answer over 100,000 events, and 96 abandoned ones
took a server from 2.7 to 9.7 GB while their replays went on for nobody.
Now ``max_events`` is at most 1,000, an answer stops past a byte bound, and
a replay whose client hung up stops where it is.
"""

from __future__ import annotations

import asyncio
import time

import psycopg
import pytest

from tests.fix_db import execute, insert_appointment
from tests.fix_server import auth
from tests.streams import poll
from tornado_sse.handlers.poll import MAX_ANSWER_BYTES
from tornado_sse.testing.sse_client import Response, request


@pytest.mark.parametrize("path", ["/poll", "/sse"])
@pytest.mark.gen_test(timeout=20)
async def test_max_events_above_1000_is_400_naming_it(server, path):
    for value in ("1001", "9223372036854775807"):
        resp = await request(f"{server.url}{path}?since_id=0&max_events={value}", headers=auth())
        assert isinstance(resp, Response) and resp.status == 400, (value, resp.status)
        assert list(resp.json()["data"]["params"]) == ["max_events"]
        assert "at most 1000" in resp.json()["data"]["params"]["max_events"]
    if path == "/poll":
        assert (await poll(server, "since_id=0&max_events=1000&timeout=0"))["events"] == []


@pytest.mark.gen_test(timeout=30)
async def test_answer_stops_past_the_byte_bound_and_the_next_poll_continues(server, db):
    """Twelve 150 KB events (an rrule written by psql) with max_events=1000:
    the first answer stops near 1 MB with last_id on its last event, and
    following last_id yields every event once."""
    execute(db, "INSERT INTO availabilities (scope, title, range_type, rrule)"
                " SELECT 'global', 'big ' || g, 'custom', repeat('x', 150000)"
                " FROM generate_series(1, 12) g")
    await server.ctx.listener.catch_up()
    resp = await request(server.url + "/poll?since_id=0&max_events=1000", headers=auth())
    assert isinstance(resp, Response) and resp.status == 200
    first = resp.json()
    ids = [e["id"] for e in first["events"]]
    assert 1 <= len(ids) < 12, len(ids)
    assert len(resp.body) <= MAX_ANSWER_BYTES + 200_000, len(resp.body)
    assert first["last_id"] == ids[-1]
    cursor, seen = first["last_id"], ids
    while cursor < 12:
        body = await poll(server, f"since_id={cursor}&max_events=1000&timeout=0")
        seen += [e["id"] for e in body["events"]]
        cursor = body["last_id"]
    assert seen == list(range(1, 13))


@pytest.mark.gen_test(timeout=40)
async def test_replay_whose_client_hung_up_stops_and_returns_its_connection(make_server, db):
    """The replay's query waits behind a lock; the client hangs up. The query
    is cancelled in PostgreSQL at once (not when the lock goes, which could
    be never) and the poll's quota and pooled connection come back.

    By hand: in psql ``BEGIN; LOCK TABLE sse_events;``, then
    ``curl --max-time 1 '.../poll?since_id=0'`` and watch pg_stat_activity.
    """
    for _ in range(3):
        insert_appointment(db)
    server = await make_server(window=0)  # resumes read the table
    async with await psycopg.AsyncConnection.connect(db) as locker:
        await locker.execute("LOCK TABLE sse_events IN ACCESS EXCLUSIVE MODE")
        _reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"GET /poll?since_id=0&max_events=1000 HTTP/1.1\r\nHost: x\r\nAuthorization: "
                     + auth()["Authorization"].encode() + b"\r\n\r\n")
        await writer.drain()
        waiting_sql = ("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                       " AND application_name = 'tornado_sse' AND wait_event_type = 'Lock'")
        deadline = time.monotonic() + 5
        while execute(db, waiting_sql) != [(1,)] and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert execute(db, waiting_sql) == [(1,)], "the replay never reached the database"
        assert server.ctx.quota.open == 1
        writer.close()  # the client gives up
        hung_up = time.monotonic()
        while time.monotonic() - hung_up < 5 and (execute(db, waiting_sql) != [(0,)]
                                                   or server.ctx.quota.open != 0):
            await asyncio.sleep(0.05)
        stopped_after = time.monotonic() - hung_up
        # The lock is still held: only the hang-up can have ended the query.
        assert execute(db, waiting_sql) == [(0,)], "the abandoned replay still waits in PostgreSQL"
        assert server.ctx.quota.open == 0 and len(server.ctx.hub) == 0
        assert stopped_after < 2, stopped_after
        await locker.rollback()
    # The pooled connection works for the next client.
    body = await poll(server, "since_id=0&timeout=0")
    assert [e["id"] for e in body["events"]] == [1, 2, 3]
