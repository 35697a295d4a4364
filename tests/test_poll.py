"""GET /poll: long-polling with the same cursor, filters and auth as /sse (SPEC §5)."""

from __future__ import annotations

import asyncio
import time

import pytest

from tests.fix_db import execute, insert_appointment, kill_listener
from tests.fix_server import auth, staff_token
from tests.streams import assert_exactly_once_in_order, insert_many, poll, poll_loop
from tornado_sse.testing.sse_client import request


@pytest.mark.gen_test(timeout=20)
async def test_without_cursor_answers_at_once_with_the_newest_id(server, db):
    insert_appointment(db)
    insert_appointment(db)
    await server.ctx.listener.catch_up()
    started = time.monotonic()
    assert await poll(server) == {"events": [], "last_id": 2}
    assert time.monotonic() - started < 1


@pytest.mark.gen_test(timeout=20)
async def test_pending_events_answer_at_once_at_most_max_events(server, db):
    for _ in range(60):
        insert_appointment(db)
    await server.ctx.listener.catch_up()
    first = await poll(server, "since_id=0")
    assert [e["id"] for e in first["events"]] == list(range(1, 51))  # default 50
    assert first["last_id"] == 50
    assert first["events"][0]["topic"] == "appointment.created"
    rest = await poll(server, "since_id=50&max_events=5")
    assert [e["id"] for e in rest["events"]] == [51, 52, 53, 54, 55] and rest["last_id"] == 55


@pytest.mark.gen_test(timeout=20)
async def test_waits_then_answers_when_an_event_arrives(server, db):
    waiting = asyncio.ensure_future(poll(server, "since_id=0&timeout=10"))
    await asyncio.sleep(0.3)
    assert not waiting.done()
    started = time.monotonic()
    insert_appointment(db)
    body = await waiting
    assert [e["id"] for e in body["events"]] == [1] and body["last_id"] == 1
    assert time.monotonic() - started < 2


@pytest.mark.gen_test(timeout=20)
async def test_empty_answer_after_timeout_moves_past_hidden_events(server, db):
    insert_appointment(db, staff_ids=[5])  # 1: hidden by the filter below
    await server.ctx.listener.catch_up()
    started = time.monotonic()
    body = await poll(server, "since_id=0&staff_id=7&timeout=1")
    assert body == {"events": [], "last_id": 1}
    assert 0.9 <= time.monotonic() - started < 3
    # And for a staff token's own scope: events of others are skipped over too.
    insert_appointment(db, staff_ids=[9])  # 2
    await server.ctx.listener.catch_up()
    body = await poll(server, "since_id=1&timeout=1", auth(staff_token(5)))
    assert body == {"events": [], "last_id": 2}


@pytest.mark.gen_test(timeout=20)
async def test_expired_and_future_cursors_carry_a_reset(make_server, db):
    for _ in range(3):
        insert_appointment(db)
    execute(db, "UPDATE sse_events SET created_at = now() - interval '9 days' WHERE id = 1")
    execute(db, "SELECT tornado_sse_prune(interval '7 days')")
    server = await make_server()
    body = await poll(server, "since_id=0")
    assert body == {"events": [], "last_id": 3, "reset": {"reason": "cursor_expired", "last_id": 3}}
    body = await poll(server, "since_id=99")
    assert body["reset"] == {"reason": "cursor_ahead", "last_id": 3}


@pytest.mark.gen_test(timeout=20)
async def test_waiting_client_that_disconnects_is_released_at_once(server):
    _reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(b"GET /poll?since_id=0&timeout=30 HTTP/1.1\r\nHost: x\r\nAuthorization: "
                 + auth()["Authorization"].encode() + b"\r\n\r\n")
    await writer.drain()
    await asyncio.sleep(0.3)
    assert len(server.ctx.hub) == 1
    writer.close()  # the client goes away without an answer
    for _ in range(40):
        if len(server.ctx.hub) == 0:
            break
        await asyncio.sleep(0.05)
    assert len(server.ctx.hub) == 0


@pytest.mark.parametrize("query, names", [
    ("since_id=x", ["since_id"]), ("timeout=61", ["timeout"]), ("timeout=abc", ["timeout"]),
    ("max_events=0", ["max_events"]), ("topics=nope", ["topics"]),
    ("timeout=%D9%A1", ["timeout"]), ("timeout=1_0", ["timeout"]), ("timeout=nan", ["timeout"]),
])
@pytest.mark.gen_test(timeout=10)
async def test_bad_parameters_get_400_naming_each(server, query, names):
    resp = await request(server.url + "/poll?" + query, headers=auth())
    assert resp.status == 400
    assert sorted(resp.json()["data"]["params"]) == names


@pytest.mark.gen_test(timeout=10)
async def test_poll_requires_a_token(server):
    resp = await request(server.url + "/wc-appointments/v2/poll?since_id=0")
    assert resp.status == 401 and resp.json()["code"] == "rest_forbidden"


@pytest.mark.gen_test(timeout=60)
async def test_polling_loop_during_500_inserts_gets_each_event_once_in_order(server, db):
    writer = asyncio.ensure_future(insert_many(db, 500))
    got = await poll_loop(server, 500)
    await writer
    assert_exactly_once_in_order(got, 500)


@pytest.mark.gen_test(timeout=60)
async def test_polling_loop_survives_listener_kills(server, db):
    writer = asyncio.ensure_future(insert_many(db, 300))
    reader = asyncio.ensure_future(poll_loop(server, 300))
    kills = 0
    while not writer.done():
        await asyncio.sleep(0.1)
        kills += kill_listener(db)
    await writer
    got = await reader
    assert kills >= 1
    assert_exactly_once_in_order(got, 300)
