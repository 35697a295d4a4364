"""Regressions found behind a load balancer (tests/test_nginx.py), pinned
on one in-process server so they fail every time, not one run in ten.

1. A poller's cursor can come from a server whose listener is ahead of this
   one: the events up to it were answered there and must not come again.
   By hand: two servers behind nginx, a tight /poll loop while inserting;
   before the fix some ``since_id=N`` answered with event N.
2. During shutdown nginx still sends requests on kept-alive connections:
   they got a 500 (the hub refuses subscribers once closed). A poll now gets
   503 (nginx retries another server); a stream gets 200,
   ``retry:`` and its end (SPEC §3: a stream is never refused).
"""

from __future__ import annotations

import asyncio

import pytest

from tests.fix_db import insert_appointment
from tests.fix_server import auth
from tornado_sse import eventlog
from tornado_sse.testing.sse_client import Response, SSEConnection, request


@pytest.mark.gen_test(timeout=30)
async def test_poll_cursor_ahead_of_this_servers_listener_gets_only_newer_events(server, db):
    await server.ctx.listener.stop()  # this server falls behind
    first, second = insert_appointment(db), insert_appointment(db)
    assert server.ctx.hub.last_id == 0
    # Another server already answered event 1: the client's cursor is 1.
    poll = asyncio.ensure_future(request(server.url + "/poll?since_id=1&timeout=10", headers=auth()))
    await asyncio.sleep(0.3)
    assert not poll.done()
    # The listener catches up: events 1 and 2 in one batch, as after a wake-up.
    server.ctx.hub.publish(await eventlog.events_after(server.ctx.pool, 0))
    resp = await asyncio.wait_for(poll, 5)
    assert isinstance(resp, Response) and resp.status == 200, resp
    body = resp.json()
    assert [e["payload"]["id"] for e in body["events"]] == [second], body
    assert [e["id"] for e in body["events"]] == [2] and body["last_id"] == 2
    assert first != second


@pytest.mark.gen_test(timeout=30)
async def test_requests_during_shutdown_get_503_for_poll_and_an_ended_stream(server):
    server.ctx.hub.close("shutdown")  # what Server.stop does before connections close
    resp = await request(server.url + "/poll?since_id=0&timeout=5", headers=auth())
    assert isinstance(resp, Response)
    assert resp.status == 503, (resp.status, resp.body)
    assert resp.json()["code"] == "rest_unavailable"

    conn = await request(server.url + "/sse?since_id=0", headers={"Accept": "text/event-stream", **auth()})
    assert isinstance(conn, SSEConnection), (conn.status, conn.body)
    assert await conn.wait_end(5) == "finished"
    assert bytes(conn.raw).startswith(b"retry: ")


@pytest.mark.gen_test(timeout=30)
async def test_stream_cursor_ahead_of_this_servers_listener_gets_only_newer_events(server, db):
    """The /sse twin of the poll regression: live deliveries at or below the
    client's cursor are dropped by the stream itself."""
    await server.ctx.listener.stop()
    first, second = insert_appointment(db), insert_appointment(db)
    conn = await request(server.url + "/sse", headers={**auth(), "Last-Event-ID": "1"})
    assert isinstance(conn, SSEConnection)
    server.ctx.hub.publish(await eventlog.events_after(server.ctx.pool, 0))
    msg = await conn.next()
    assert msg.json()["id"] == 2 and msg.json()["resource_id"] == second != first
    with pytest.raises(asyncio.TimeoutError):
        await conn.next(timeout=0.5)
    conn.close()
