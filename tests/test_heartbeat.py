"""The opt-in heartbeat (SPEC §3, ``?heartbeat=S``) over real HTTP with a
real SSE parser: an event a page can observe on a quiet stream, without an
``id:`` so the resume cursor stays where it is."""

from __future__ import annotations

import time

import pytest

from tests.fix_db import insert_appointment
from tests.fix_server import auth
from tornado_sse.testing.sse_client import Response, open_stream, request


@pytest.mark.gen_test(timeout=30)
async def test_quiet_stream_gets_a_heartbeat_with_its_cursor_and_no_id(make_server, db):
    insert_appointment(db)
    server = await make_server(keepalive=1.0)
    await server.ctx.listener.catch_up()
    beating = await open_stream(server.url + "/sse?since_id=0&heartbeat=5", auth())
    plain = await open_stream(server.url + "/sse?since_id=0", auth())
    assert (await beating.next()).id == "1" and (await plain.next()).id == "1"
    quiet_from = time.monotonic()
    beat = await beating.next(timeout=8)
    waited = time.monotonic() - quiet_from
    assert beat.event == "heartbeat" and beat.json() == {"last_id": 1}
    assert 4.5 <= waited <= 7.0, waited
    # No id line: the cursor a browser would resume from is still event 1.
    assert beat.id == "1" and beating.parser.last_event_id == "1"
    assert b'event: heartbeat\ndata: {"last_id": 1}\n\n' in beating.raw
    assert b"id: " not in beating.raw.split(b"event: heartbeat", 1)[1]
    # The heartbeat replaces the keepalive comment on that stream only.
    assert b": keepalive" not in beating.raw
    # Without the parameter the protocol is unchanged: comments, no event.
    assert plain.raw.count(b": keepalive\n\n") >= 3
    assert b"heartbeat" not in plain.raw and plain.drain_now() == []
    beating.close()
    plain.close()


@pytest.mark.gen_test(timeout=20)
async def test_bad_heartbeat_is_a_400_naming_it(server):
    for path in ("/sse", "/wc-appointments/v2/sse"):
        for value in ("4", "301", "abc", "5.5", "-5", "%D9%A1%D9%A0"):
            for method in ("GET", "HEAD"):
                resp = await request(server.url + f"{path}?heartbeat={value}", method=method,
                                     headers=auth())
                assert isinstance(resp, Response) and resp.status == 400, (path, value, method)
                if method == "GET":
                    assert list(resp.json()["data"]["params"]) == ["heartbeat"]
    for value in ("5", "300"):  # the bounds themselves are fine
        conn = await open_stream(server.url + f"/sse?heartbeat={value}", auth())
        conn.close()
