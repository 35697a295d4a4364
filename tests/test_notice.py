"""The C fast path for trigger notifications (tornado_sse/_notice.c, issue 21).

It may only ever agree with the Python path: for any payload it returns
either None (the listener then decides in Python) or exactly the Event the
Python path builds after checking the same proof. These tests hold it to
that on real trigger output, on every shape the trigger makes, and on
thousands of hostile variations; and they check that it is built here, so
the suite and the benchmark run the path production runs.
"""

from __future__ import annotations

import hmac
import os
import random
import shutil
import sysconfig
from pathlib import Path

import psycopg
import pytest

from tests.fix_roles import notify_key
from tornado_sse import events
from tornado_sse.events import TOPICS, Event
from tornado_sse.listener import _Mac

KEY = bytes(range(32))
MAC = _Mac(KEY)


def notifications(dsn: str, *statements: str) -> list[bytes]:
    """The NOTIFY payloads of ``statements``, each its own transaction."""
    with psycopg.connect(dsn, autocommit=True) as listener, psycopg.connect(dsn, autocommit=True) as writer:
        listener.execute("LISTEN sse_events")
        for sql in statements:
            writer.execute(sql)
        writer.execute("NOTIFY sse_events, 'end'")
        out = []
        for note in listener.notifies(timeout=10):
            if note.payload == "end":
                break
            out.append(note.payload.encode())
        return out


def fast(payload: bytes, mac: _Mac = MAC) -> Event | None:
    assert events.from_proven_notification is not None
    return events.from_proven_notification(payload, mac.inner, mac.outer)


def python_path(payload: bytes, mac: _Mac = MAC) -> Event | None:
    """What the listener's Python path makes of ``payload``: the Event, or
    None for anything it does not publish as one (unproven, malformed, an id)."""
    if len(payload) <= 64 or payload[64] != 0x20:
        return None
    body = payload[65:]
    if not hmac.compare_digest(mac.hexdigest(body), payload[:64]):
        return None
    try:
        return Event.from_notification(body.decode())
    except ValueError:
        return None


def signed(body: str | bytes, key: bytes = KEY) -> bytes:
    raw = body.encode() if isinstance(body, str) else body
    return hmac.new(key, raw, "sha256").hexdigest().encode() + b" " + raw


def same(a: Event, b: Event) -> bool:
    """Field for field, and both the Event class (the fast path never reads
    a NaN: its created field allows digits, '.', 'e', '+' and '-' only)."""
    return type(a) is type(b) is Event and tuple(a) == tuple(b)


def body(eid: int = 7, *, created: str = "1733044800.123456", staff: str = "5", products: str = "456",
         topic: str = "appointment.created", resource: str = "appointment", rid: int = 9,
         envelope: str | None = None) -> str:
    env = envelope if envelope is not None else (
        f'{{"id":{eid},"topic":"{topic}","resource":"{resource}","resource_id":{rid},'
        f'"payload":{{"id": {rid}, "staff_ids": [5]}},"ts":1733044800,"actor":{{"db_user": "postgres"}}}}')
    return f"{eid} {created} {staff} {products} {topic} {resource} {rid} {env}"


def test_the_extension_is_built_where_there_is_a_compiler():
    """setup.py builds it optionally; where a C compiler exists a missing
    build is a broken install, not a fallback to accept quietly."""
    compiler = (sysconfig.get_config_var("CC") or "cc").split()[0]
    headers = Path(sysconfig.get_paths()["include"]) / "Python.h"
    if shutil.which(compiler) is None or not headers.exists():
        pytest.skip(f"no C compiler ({compiler}) or no {headers}: the listener runs its Python path")
    assert events.from_proven_notification is not None


needs_fast = pytest.mark.skipif(events.from_proven_notification is None, reason="C extension not built")


@needs_fast
def test_real_trigger_notifications_take_the_fast_path_and_build_the_same_events(db):
    """Payloads as sql/004 sends them for every kind of change (several staff,
    no product, a global availability rule with quotes and non-ASCII text,
    deletes) are accepted and give exactly the Python path's Event."""
    payloads = notifications(
        db, "WITH a AS (INSERT INTO appointments (product_id, staff_ids, start_at, end_at, cost)"
            " VALUES (456, '{5,6}', '2024-12-01T09:20:00Z', '2024-12-01T10:20:00Z', 50) RETURNING id),"
            " b AS (INSERT INTO appointments (staff_ids, start_at, end_at)"
            " VALUES ('{}', '2024-12-02T09:00:00Z', '2024-12-02T10:00:00Z') RETURNING id)"
            " INSERT INTO availabilities (scope, title) VALUES ('global', 'Ünïcode \"quotes\" \\ ✓')",
        "UPDATE appointments SET status = 'paid'", "DELETE FROM appointments", "DELETE FROM availabilities")
    assert len(payloads) == 8
    mac = _Mac(notify_key(db))
    for payload in payloads:
        a, b = fast(payload, mac), python_path(payload, mac)
        assert a is not None and b is not None, payload
        assert same(a, b), (a, b)
        assert type(a) is Event and a.frame == b.frame and a.chunk == b.chunk and a.size == b.size


@needs_fast
@pytest.mark.parametrize("text", [
    body(), body(staff="-"), body(staff=""), body(staff="1,2,30"), body(products="-"),
    body(products="456,457"), body(eid=10**17 + 3, rid=123456789012345678),
    body(created="1.7e+09"), body(created="-5.5"), body(created="1733044800"),
    *(body(topic=t, resource=t.split(".")[0]) for t in TOPICS),
    body(envelope='{"id":7,"payload":{"title":"Ünïcode ✓ \\"q\\" \\\\"}}'),
    body(envelope='{"id":7}'),
])
def test_every_shape_the_trigger_makes_is_accepted_and_equal(text):
    payload = signed(text)
    a, b = fast(payload), python_path(payload)
    assert a is not None and b is not None
    assert same(a, b), (a, b)


@needs_fast
@pytest.mark.parametrize("payload", [
    b"", b"x", signed("42"),  # an event too large to carry: its id, read by cursor
    signed(body()).upper(),  # uppercase hex: not what the trigger writes
    signed(body(), key=bytes(32)),  # another key
    signed(body())[:-1],  # the proof no longer covers the body
    b"unsigned " + body().encode(),  # sql/004 with its key deleted
    signed(body()).replace(b" ", b"  ", 1),
    signed(body(topic="appointment.made")), signed(body(resource="room")),
    signed(body(staff="x")), signed(body(staff="1,")), signed(body(staff=",1")), signed(body(staff="+1")),
    signed(body(staff="1" * 19)), signed(body(eid=10**18)), signed(body(created="nan")),
    signed(body(created="1_0")), signed(body(created="")), signed(body(envelope="[1]")),
    signed(body(envelope='{"id":7,\n"x":1}')),  # a line break: the general framing rules, in Python
    signed(body(envelope='{"id":7,"x":"\0"}')),
    signed(body().encode()[:-3] + b"\xff\xfe}"),  # not UTF-8
])
def test_anything_else_is_left_to_the_python_path(payload):
    """None from the fast path: the listener then checks, counts and logs in Python."""
    assert fast(payload) is None


@needs_fast
def test_hostile_variations_never_make_the_fast_path_disagree():
    """Thousands of payloads a forger (or a bug) could send: bytes flipped,
    cut, inserted, fields swapped, each signed or not. Whatever the fast path
    accepts, the Python path accepts as the same Event; it rejects at least
    every payload the Python path rejects."""
    rng = random.Random(21)
    seeds = [signed(body(staff=s, products=p, topic=t, resource=t.split(".")[0]))
             for s in ("5", "-", "", "1,2") for p in ("456", "-") for t in TOPICS]
    alphabet = b"0123456789abcdef -,.e+{}\"\n\r\0\xc3\xa9\xff"
    accepted = 0
    for n in range(6000):
        payload = bytearray(rng.choice(seeds))
        for _ in range(rng.randint(1, 4)):
            op, at = rng.randrange(4), rng.randrange(len(payload))
            if op == 0:
                payload[at] = rng.choice(alphabet)
            elif op == 1:
                del payload[at:at + rng.randint(1, 8)]
            elif op == 2:
                payload[at:at] = bytes(rng.choice(alphabet) for _ in range(rng.randint(1, 4)))
            else:
                payload = payload[:at]
            if not payload:
                break
        raw = bytes(payload)
        if n % 2 and len(raw) > 65:  # re-signed: the shape, not the proof, is then under test
            raw = signed(raw[65:])
        a, b = fast(raw), python_path(raw)
        if a is not None:
            accepted += 1
            assert b is not None and same(a, b), (raw, a, b)
    assert accepted > 100  # the re-signed half keeps many well-formed: the comparison did run


@needs_fast
def test_a_wrong_proof_is_refused_at_every_position():
    """Each of the 64 hex digits, changed, makes the payload unproven."""
    good = signed(body())
    assert fast(good) is not None
    for at in range(64):
        bad = bytearray(good)
        bad[at] = ord("0") if bad[at] != ord("0") else ord("1")
        assert fast(bytes(bad)) is None


@needs_fast
def test_any_key_length_works_like_the_python_mac():
    for length in (1, 32, 64, 65, 200):
        key = os.urandom(length)
        payload = signed(body(), key=key)
        a, b = fast(payload, _Mac(key)), python_path(payload, _Mac(key))
        assert a is not None and b is not None and same(a, b)
