"""The SSE endpoint over real HTTP with a real parser (SPEC §3)."""

from __future__ import annotations

import pytest

from tests.fix_db import insert_appointment
from tests.fix_server import auth
from tests.sse_client import open_stream


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
