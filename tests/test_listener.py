"""The listener's fast path (issue 14): a notification that carries its event
is published as it is, with no query; anything it cannot be sure of is read
by cursor, and nothing is lost or repeated either way."""

from __future__ import annotations

import asyncio
import hmac

import psycopg
import pytest

from tests.fix_db import execute, insert_appointment
from tests.fix_roles import notify_key, proven_body
from tests.fix_server import auth
from tests.streams import event_ids
from tornado_sse import listener as listener_module
from tornado_sse.eventlog import events_after
from tornado_sse.events import COLUMNS, Event, from_proven_notification
from tornado_sse.hub import Hub
from tornado_sse.listener import _Mac
from tornado_sse.testing.sse_client import open_stream


def notifications_for(dsn: str, sql: str, params: tuple[object, ...] = ()) -> list[str]:
    """Run ``sql`` in its own transaction and return the NOTIFY payloads it caused."""
    with psycopg.connect(dsn, autocommit=True) as listener, psycopg.connect(dsn, autocommit=True) as writer:
        listener.execute("LISTEN sse_events")
        writer.execute(sql, params)
        return [n.payload for n in listener.notifies(timeout=2, stop_after=50)]


def test_event_from_its_notification_is_byte_for_byte_the_event_from_its_row(db):
    payloads = notifications_for(
        db, "WITH a AS (INSERT INTO appointments (product_id, staff_ids, start_at, end_at, cost)"
            " VALUES (456, '{5,6}', '2024-12-01T09:20:00Z', '2024-12-01T10:20:00Z', 50) RETURNING id)"
            " INSERT INTO availabilities (scope, title) VALUES ('global', 'Ünïcode \"quotes\" \\ ✓')")
    payloads += notifications_for(db, "DELETE FROM appointments")
    assert len(payloads) == 3
    with psycopg.connect(db) as conn:
        rows = conn.execute(f"SELECT {COLUMNS} FROM sse_events ORDER BY id").fetchall()
    key = notify_key(db)
    for text, row in zip(payloads, rows, strict=True):
        a, b = Event.from_notification(proven_body(key, text)), Event.from_row(row)
        assert a == b, (a, b)
        assert a.json.encode() == b.json.encode() and a.frame == b.frame and a.chunk == b.chunk


@pytest.mark.parametrize("length", [1, 32, 63, 64, 65, 200])
def test_the_precomputed_mac_is_the_standard_hmac_for_any_key_length(length):
    """_Mac (the listener's HMAC with its pads hashed once) gives exactly
    hmac.digest's answer, for sql/004's 32-byte keys and any other length."""
    key = bytes((7 * i) % 256 for i in range(length))
    mac = _Mac(key)
    for body in (b"", b"{}", "é".encode() * 500):
        assert mac.hexdigest(body) == hmac.digest(key, body, "sha256").hex().encode()


@pytest.mark.parametrize("text", [
    "42", "{}", '{"id":1}', "1 2 - - appointment.created appointment 3",
    '1 2 - - appointment.made appointment 3 {"id":1}', '1 2 - - appointment.created room 3 {"id":1}',
    '1 2 x - appointment.created appointment 3 {"id":1}', '1 2 - - appointment.created appointment 3 [1]',
    'x 2 - - appointment.created appointment 3 {"id":1}'])
def test_a_notification_in_another_shape_is_refused_not_misread(text):
    with pytest.raises(ValueError):
        Event.from_notification(text)


@pytest.mark.parametrize("path", ["C", "Python"])
@pytest.mark.gen_test(timeout=10)
async def test_forgeries_during_a_catch_up_ask_only_for_the_rate_limited_read(path, monkeypatch):
    """A payload without a proof that arrives while a catch-up reads asks for
    the read that forgeries get (at most one per UNPROVEN_READ_EVERY); only a
    proven one asks for an immediate read after it (it may have committed
    after the read's snapshot). Before, any notification during a read asked
    for an immediate one, so a flood timed over reads made the listener read
    back to back (tests/test_trust.py's ten-a-second bound, broken under load)."""
    if path == "Python":
        monkeypatch.setattr(listener_module, "from_proven_notification", None)
    key = bytes(range(32))
    listener = listener_module.Listener("", Hub())
    listener._key = _Mac(key)
    body = (b'1 1733044800.5 5 456 appointment.created appointment 9 {"id":1,"topic":"appointment.created",'
            b'"resource":"appointment","resource_id":9,"payload":{},"ts":1733044800,"actor":null}')
    genuine = hmac.new(key, body, "sha256").hexdigest().encode() + b" " + body
    forged = b"0" * 64 + b" " + body
    async with listener._reading:  # a catch-up is reading
        listener._take([(forged, 1)])
        asked = (listener._wanted.is_set(), listener._must_read)
        assert asked == (True, False)
        assert listener.rejected["unproven"] == 1
        listener._take([(genuine, 1)])
        assert listener._must_read
    assert listener.cursor == 0  # nothing published while the read was running


@pytest.mark.parametrize("path", ["C", "Python"])
@pytest.mark.gen_test(timeout=40)
async def test_single_event_commits_reach_streams_with_no_query_per_wake_up(make_server, db, path, monkeypatch):
    """Either way of taking a notification (the C extension's, or the
    listener's Python path where it is not built) publishes it as it is."""
    if path == "Python":
        monkeypatch.setattr(listener_module, "from_proven_notification", None)
    elif from_proven_notification is None:
        pytest.skip("C extension not built (tests/test_notice.py says whether it should be)")
    server = await make_server()
    conn = await open_stream(server.url + "/sse", auth())
    reads = server.ctx.listener.log_reads
    for _ in range(20):
        insert_appointment(db)
        await asyncio.sleep(0.05)  # one wake-up each
    got = await conn.take(20)
    assert event_ids(got) == list(range(1, 21))
    assert server.ctx.listener.log_reads == reads  # no query for any of them
    conn.close()


@pytest.mark.gen_test(timeout=40)
async def test_gap_left_by_a_rolled_back_id_is_settled_by_one_read_and_loses_nothing(make_server, db):
    server = await make_server()
    conn = await open_stream(server.url + "/sse", auth())
    insert_appointment(db)  # id 1
    assert event_ids([await conn.next()]) == [1]
    with psycopg.connect(db) as tx:  # draws id 2 at once, then rolls back
        tx.execute("INSERT INTO appointments (product_id, staff_ids, start_at, end_at)"
                   " VALUES (1, '{5}', now(), now())")
        tx.execute("SET CONSTRAINTS ALL IMMEDIATE")
        tx.rollback()
    reads = server.ctx.listener.log_reads
    insert_appointment(db)  # id 3: its notification does not continue the cursor
    insert_appointment(db)  # id 4
    assert event_ids(await conn.take(2)) == [3, 4]
    assert server.ctx.listener.log_reads > reads
    with pytest.raises(asyncio.TimeoutError):
        await conn.next(timeout=0.5)
    conn.close()


@pytest.mark.gen_test(timeout=40)
async def test_event_too_large_for_a_notification_is_read_by_cursor(make_server, db):
    server = await make_server()
    conn = await open_stream(server.url + "/sse", auth())
    reads = server.ctx.listener.log_reads
    execute(db, "INSERT INTO availabilities (scope, title) VALUES ('global', %s)", ("x" * 9000,))
    insert_appointment(db)
    got = await conn.take(2)
    assert event_ids(got) == [1, 2]
    assert len(got[0].json()["payload"]["title"]) == 9000
    assert server.ctx.listener.log_reads > reads
    rows = await events_after(server.ctx.pool, 0)
    assert [e.json for e in rows] == [m.data for m in got]
    conn.close()
