"""Trust at the bridge (issue 19, SPEC §1 and §8): a notification is an event
only when it proves it comes from the trigger; the commit-order lock is one
no other role can take; every event says who made it.

Each test logs in as another role, as an attacker would: ``make_role()`` is
a LOGIN role with no rights at all (PostgreSQL has no privilege on NOTIFY,
LISTEN or advisory locks, which is the whole problem).
"""

from __future__ import annotations

import asyncio
import json
import threading
import time

import psycopg
import pytest

from tests.fix_db import execute, insert_appointment
from tests.fix_roles import notify_key, proven_body
from tests.fix_server import auth
from tests.streams import event_ids, poll
from tornado_sse.testing.sse_client import open_stream, request

#: The global advisory key 001 drew event ids under (anyone could take it).
OLD_ORDERING_KEY = 7624735193842


async def wait_until(predicate, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


def forged_payloads(eid: int) -> dict[str, tuple[str, str]]:
    """Payloads another role might send for event ``eid``, and the reason
    they must be counted under."""
    envelope = json.dumps({"id": eid, "topic": "appointment.created", "resource": "appointment",
                           "resource_id": 999, "payload": {"id": 999, "forged": True}, "ts": 1,
                           "actor": None}, separators=(",", ":"))
    return {
        # sql/004's shape with a made-up proof.
        "wrong proof": ("unproven", "ab" * 32 + f" {eid} 1.0 - - appointment.created appointment 999 {envelope}"),
        # sql/002's shape, which main published as it was.
        "002 json": ("malformed", envelope[:-len(',"actor":null}')] + ',"staff_ids":null,"product_ids":null,'
                                  '"created_at":1.0}'),
        "empty": ("malformed", ""),
    }


def rejected(server) -> dict[str, int]:
    return dict(server.ctx.listener.rejected)


async def metric(server, sample: str) -> float:
    resp = await request(server.url + "/metrics")
    for line in resp.body.decode().splitlines():
        if line.startswith(sample + " "):
            return float(line.split(" ")[1])
    raise AssertionError(f"{sample} not in /metrics")


@pytest.mark.parametrize("kind", ["wrong proof", "002 json", "empty"])
@pytest.mark.gen_test(timeout=40)
async def test_forged_notification_with_the_next_id_reaches_no_stream_and_the_real_event_arrives_once(
        make_server, make_role, db, kind):
    """Reproduces issue 19 High #1 by hand: as a role with no rights,
    ``NOTIFY sse_events, '<envelope with the next id>'``, then commit a
    real change. Before: the forgery went out as event 2, the real one was
    lost. Now: the forgery is counted and read past; event 2 is the real one."""
    server = await make_server()
    stream = await open_stream(server.url + "/sse", auth())
    insert_appointment(db)
    assert event_ids([await stream.next()]) == [1]
    reason, payload = forged_payloads(2)[kind]
    before = rejected(server)
    reads = server.ctx.listener.log_reads
    with psycopg.connect(make_role(), autocommit=True) as forger:
        forger.execute("SELECT pg_notify('sse_events', %s)", (payload,))
    await wait_until(lambda: rejected(server)[reason] == before[reason] + 1)
    await wait_until(lambda: server.ctx.listener.log_reads > reads)  # a wake-up, read by cursor
    assert server.ctx.listener.cursor == 1  # the payload's word moved nothing
    with pytest.raises(asyncio.TimeoutError):
        await stream.next(timeout=0.3)

    real_id = insert_appointment(db, staff_ids=[7])
    [message] = [await stream.next()]
    assert message.id == "2" and message.json()["resource_id"] == real_id
    assert message.json()["payload"]["staff_ids"] == [7]
    with pytest.raises(asyncio.TimeoutError):
        await stream.next(timeout=0.3)
    body = await poll(server, "since_id=1&timeout=0")
    assert [(e["id"], e["resource_id"]) for e in body["events"]] == [(2, real_id)]
    assert await metric(server, f'tornado_sse_notifications_rejected_total{{reason="{reason}"}}') \
        == before[reason] + 1
    stream.close()


@pytest.mark.gen_test(timeout=40)
async def test_a_flood_of_forgeries_costs_at_most_ten_reads_a_second_and_loses_nothing(
        make_server, make_role, db):
    """Each forgery is a wake-up, but wake-ups asked for only by payloads
    without a proof are read at most every UNPROVEN_READ_EVERY (0.1 s)."""
    server = await make_server()
    stream = await open_stream(server.url + "/sse", auth())
    forger_dsn = make_role()

    def flood() -> None:  # in a thread: the server shares this test's event loop
        with psycopg.connect(forger_dsn, autocommit=True) as forger:
            for i in range(300):
                forger.execute("SELECT pg_notify('sse_events', %s)", (f"{i:064d} {i + 1} forged",))
                if i == 150:
                    insert_appointment(db)  # a real event in the middle of the flood
                time.sleep(0.002)

    reads = server.ctx.listener.log_reads
    started = time.monotonic()
    await asyncio.to_thread(flood)
    await wait_until(lambda: rejected(server)["unproven"] == 300)
    await asyncio.sleep(0.2)  # the last rate-limited read
    elapsed = time.monotonic() - started
    # One read per 0.1 s, plus the few the real event asks for (it may land in a read).
    assert 2 <= server.ctx.listener.log_reads - reads <= elapsed / 0.1 + 5
    assert event_ids(await stream.take(1)) == [1]
    insert_appointment(db)
    assert event_ids(await stream.take(1)) == [2]
    with pytest.raises(asyncio.TimeoutError):
        await stream.next(timeout=0.3)
    stream.close()


@pytest.mark.gen_test(timeout=40)
async def test_a_captured_genuine_payload_replayed_by_another_role_adds_nothing(make_server, make_role, db):
    """Any role may LISTEN and copy a genuine, signed payload. Sent again it
    is the same committed event with its own id: skipped as already seen."""
    server = await make_server()
    stream = await open_stream(server.url + "/sse", auth())
    spy_dsn = make_role()
    with psycopg.connect(spy_dsn, autocommit=True) as spy:
        spy.execute("LISTEN sse_events")
        insert_appointment(db)
        [captured] = [n.payload for n in spy.notifies(timeout=5, stop_after=1)]
        assert event_ids([await stream.next()]) == [1]
        spy.execute("SELECT pg_notify('sse_events', %s)", (captured,))
    await asyncio.sleep(0.3)
    insert_appointment(db)
    assert event_ids(await stream.take(1)) == [2]
    with pytest.raises(asyncio.TimeoutError):
        await stream.next(timeout=0.3)
    assert rejected(server) == {"unproven": 0, "malformed": 0}  # it was genuine, just old
    stream.close()


def test_a_role_without_rights_can_neither_read_the_key_nor_take_the_ordering_lock(make_role, db):
    """The proof and the ordering are the owner's alone (sql/004)."""
    with psycopg.connect(make_role(), autocommit=True) as other:
        for sql in ("SELECT key FROM tornado_sse_notify_key",
                    "SELECT tornado_sse_next_event_id()",
                    "SELECT tornado_sse_rotate_notify_key()",
                    "INSERT INTO sse_events (topic, resource, resource_id, payload)"
                    " VALUES ('appointment.created', 'appointment', 1, '{}')"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                other.execute(sql)
        with pytest.raises(psycopg.errors.InsufficientPrivilege), other.transaction():
            other.execute("LOCK TABLE tornado_sse_commit_order IN EXCLUSIVE MODE")


@pytest.mark.gen_test(timeout=40)
async def test_the_old_advisory_ordering_key_held_by_another_role_stalls_no_booking(make_server, make_role, db):
    """Issue 19 (medium): ``SELECT pg_advisory_lock(<the ordering key>)`` by
    any role stalled every event-writing commit. The key means nothing now."""
    server = await make_server()
    stream = await open_stream(server.url + "/sse", auth())
    with psycopg.connect(make_role(), autocommit=True) as other:
        other.execute("SELECT pg_advisory_lock(%s)", (OLD_ORDERING_KEY,))
        started = time.monotonic()
        resp = await request(server.url + "/api/appointments", method="POST",
                             headers={**auth(), "Content-Type": "application/json"},
                             body=json.dumps({"start": 1733044800, "end": 1733048400}).encode(),
                             stream=False)
        assert 200 <= resp.status < 300, resp.body
        done = threading.Event()

        def psql_write() -> None:
            insert_appointment(db)
            done.set()

        threading.Thread(target=psql_write, daemon=True).start()
        assert await asyncio.to_thread(done.wait, 5), "a psql write did not commit"
        assert time.monotonic() - started < 5
        assert event_ids(await stream.take(2)) == [1, 2]
    stream.close()


@pytest.mark.gen_test(timeout=40)
async def test_an_event_names_the_database_user_that_wrote_it(make_server, make_role, db):
    """SPEC §8: a write that is not the API's carries {"db_user": ...}, in
    the live envelope, the replay and the row. A role that may only insert
    appointments makes its events all the same (the triggers run as owner)."""
    server = await make_server()
    stream = await open_stream(server.url + "/sse", auth())
    [[owner]] = execute(db, "SELECT session_user")
    insert_appointment(db)
    writer_dsn = make_role("INSERT ON appointments", "USAGE ON SEQUENCE appointments_id_seq")
    with psycopg.connect(writer_dsn, autocommit=True) as writer:
        writer.execute("INSERT INTO appointments (start_at, end_at) VALUES (now(), now())")
        [[writer_name]] = writer.execute("SELECT session_user").fetchall()
    live = await stream.take(2)
    assert [m.json()["actor"] for m in live] == [{"db_user": owner}, {"db_user": writer_name}]
    replayed = (await poll(server, "since_id=0&timeout=0"))["events"]
    assert [e["actor"] for e in replayed] == [{"db_user": owner}, {"db_user": writer_name}]
    assert [m.json() for m in live] == replayed
    stream.close()


def test_the_actor_a_transaction_sets_is_its_events_actor_and_a_bad_one_is_ignored(db):
    """The API sets ``tornado_sse.actor`` for its write transaction (SET
    LOCAL); a value that is not a JSON object never fails the write."""
    [[owner]] = execute(db, "SELECT session_user")
    for setting, expected in (('{"role": "admin", "sub": "front-desk"}', {"role": "admin", "sub": "front-desk"}),
                              ("not json", {"db_user": owner}), ("[1]", {"db_user": owner}),
                              ('{"sub": "' + "x" * 1000 + '"}', {"db_user": owner})):
        with psycopg.connect(db) as conn:
            conn.execute("SELECT set_config('tornado_sse.actor', %s, true)", (setting,))
            conn.execute("INSERT INTO appointments (start_at, end_at) VALUES (now(), now())")
        [[actor]] = execute(db, "SELECT actor FROM sse_events ORDER BY id DESC LIMIT 1")
        assert actor == expected, setting
    insert_appointment(db)  # SET LOCAL ended with its transaction
    [[actor]] = execute(db, "SELECT actor FROM sse_events ORDER BY id DESC LIMIT 1")
    assert actor == {"db_user": owner}


def test_the_trigger_signs_with_hmac_sha256_of_the_body(db):
    """The proof is RFC 2104 HMAC-SHA256 built from sha256() in SQL; Python's
    hmac module (the listener's) checks it, for non-ASCII bodies too."""
    key = notify_key(db)
    assert len(key) == 32
    with psycopg.connect(db, autocommit=True) as listener:
        listener.execute("LISTEN sse_events")
        execute(db, "INSERT INTO availabilities (scope, title) VALUES ('global', 'Ünïcödé ✓ \"q\"')")
        [payload] = [n.payload for n in listener.notifies(timeout=2, stop_after=1)]
    assert "Ünïcödé ✓" in proven_body(key, payload)


@pytest.mark.gen_test(timeout=40)
async def test_after_a_key_rotation_events_still_arrive_and_the_no_query_path_comes_back(make_server, db):
    """KEY ROTATION in sql/004: until the listener re-reads the key (at most
    once per check interval after a failed check), genuine notifications are
    read by cursor; nothing is lost either way."""
    server = await make_server(check_interval=1)
    stream = await open_stream(server.url + "/sse", auth())
    execute(db, "SELECT tornado_sse_rotate_notify_key()")
    insert_appointment(db)
    assert event_ids([await stream.next()]) == [1]
    assert rejected(server)["unproven"] == 1
    await asyncio.sleep(1.1)
    insert_appointment(db)  # fails the check too, and makes the listener re-read the key
    assert event_ids([await stream.next()]) == [2]
    await asyncio.sleep(0.3)
    reads = server.ctx.listener.log_reads
    insert_appointment(db)
    assert event_ids([await stream.next()]) == [3]
    assert server.ctx.listener.log_reads == reads  # proven again: no query
    stream.close()
