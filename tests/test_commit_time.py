"""Event ids assigned at commit time (issue 12, SPEC §1, sql/002_commit_time_ids.sql).

Ordering must not stall writers: a transaction that changes a row and stays
open delays nobody else's writes or events, and gets its own event ids when
it commits. Where a test can pass for the wrong reason, a control plays the
same steps on a database migrated with 001 only (the lock held from the
first change to commit) and shows the failure the test rules out.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import Future
from typing import Any

import psycopg
import pytest

from tests.fix_db import execute, insert_appointment
from tests.fix_server import auth
from tests.txn_steps import Session
from tornado_sse.migrate import migrate
from tornado_sse.server import Server
from tornado_sse.testing.sse_client import open_stream

#: Generous for a loaded 2-core machine; under 001 each of these waited for
#: as long as the open transaction stayed open.
BOOKING_BOUND = 1.0
STREAM_BOUND = 2.0
HOLD = 10.0
INSERT_NOW = "INSERT INTO appointments (start_at, end_at) VALUES (now(), now())"


def write_with_lock_timeout(dsn: str, sql: str, params: tuple[Any, ...] = (),
                            timeout: str = "500ms") -> None:
    """One committed write that gives up when it waits longer than ``timeout``
    for a lock, at its statement or at its commit."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SELECT set_config('lock_timeout', %s, false)", (timeout,))
        conn.execute(sql, params)


def event_rows(dsn: str, after: int = 0) -> list[tuple[Any, ...]]:
    """(id, topic, resource_id, payload) of the visible events past ``after``."""
    return execute(dsn, "SELECT id, topic, resource_id, payload FROM sse_events"
                        " WHERE id > %s ORDER BY id", (after,))


# -- an open transaction stalls nobody -----------------------------------------


async def booking(dsn: str, i: int, update_ids: list[int]) -> tuple[int, float]:
    """One booking from a connection of its own: even ``i`` inserts an
    appointment, odd ``i`` moves another one. Returns (appointment id, the
    seconds from the statement to the end of its commit)."""
    async with await psycopg.AsyncConnection.connect(dsn) as conn:
        started = time.monotonic()
        if i % 2 == 0:
            cur = await conn.execute(
                "INSERT INTO appointments (staff_ids, start_at, end_at, overlap_allowed)"
                " VALUES ('{5}', now(), now() + interval '1 hour', true) RETURNING id")
        else:
            cur = await conn.execute(
                "UPDATE appointments SET start_at = start_at + interval '1 hour',"
                " end_at = end_at + interval '1 hour' WHERE id = %s RETURNING id",
                (update_ids[i // 2],))
        row = await cur.fetchone()
        await conn.commit()
        assert row is not None
        return int(row[0]), time.monotonic() - started


@pytest.mark.gen_test(timeout=60)
async def test_open_transaction_delays_no_other_booking_nor_its_event(
        make_server: Callable[..., Awaitable[Server]], db: str) -> None:
    """BEGIN; UPDATE one appointment; hold 10 s: 20 other bookings commit
    within 1 s each and reach an open stream within 2 s; the held change,
    committed afterwards, gets a higher id than all of them."""
    held = insert_appointment(db)
    others = [insert_appointment(db) for _ in range(10)]
    server = await make_server()
    stream = await open_stream(server.url + "/sse", auth())
    assert stream.status == 200

    holder = await psycopg.AsyncConnection.connect(db)
    try:
        await holder.execute("UPDATE appointments SET status = 'paid' WHERE id = %s", (held,))
        hold_started = time.monotonic()
        # The setup is real: the held row is locked (a writer of that row
        # waits and gives up at its lock_timeout) and the session sits idle
        # in its transaction, as a forgotten psql session does.
        with pytest.raises(psycopg.errors.LockNotAvailable):
            write_with_lock_timeout(db, "UPDATE appointments SET cost = 1 WHERE id = %s", (held,),
                                    "200ms")
        [[state]] = execute(db, "SELECT state FROM pg_stat_activity WHERE pid = %s",
                            (holder.info.backend_pid,))
        assert state == "idle in transaction"

        seen: list[int] = []
        for i in range(20):
            aid, took = await asyncio.wait_for(booking(db, i, others), 10)
            assert took < BOOKING_BOUND, f"booking {i} took {took:.2f} s"
            [(eid, _topic, rid, _)] = event_rows(db, max(seen, default=11))
            assert rid == aid
            message = await stream.next(timeout=STREAM_BOUND)
            assert (message.json()["id"], message.json()["resource_id"]) == (eid, aid)
            seen.append(eid)
        assert time.monotonic() - hold_started < HOLD, "the bookings took the whole hold"
        # Nothing of the held change is written while it is open.
        assert [r for r in event_rows(db, 11) if r[2] == held] == []

        await asyncio.sleep(max(0.0, HOLD - (time.monotonic() - hold_started)))
        await holder.commit()
    finally:
        await holder.close()
    message = await stream.next(timeout=STREAM_BOUND)
    body = message.json()
    assert (body["resource_id"], body["topic"]) == (held, "appointment.updated")
    assert body["id"] > max(seen)
    assert len(seen) == 20
    stream.close()


def test_control_under_001_an_open_transaction_blocks_other_bookings(
        schema_db: Callable[[str], str]) -> None:
    """The check above can fail: with 001's immediate triggers, a booking
    waits for the open transaction (here it gives up at a 1 s lock_timeout)."""
    dsn = schema_db("001_schema.sql")
    held = insert_appointment(dsn)
    with psycopg.connect(dsn) as holder:
        holder.execute("UPDATE appointments SET status = 'paid' WHERE id = %s", (held,))
        with pytest.raises(psycopg.errors.LockNotAvailable):
            write_with_lock_timeout(dsn, INSERT_NOW, timeout="1s")
        holder.rollback()
    migrate(dsn)  # and 002 lifts it, in place
    with psycopg.connect(dsn) as holder:
        holder.execute("UPDATE appointments SET status = 'paid' WHERE id = %s", (held,))
        write_with_lock_timeout(dsn, INSERT_NOW, timeout="1s")
        holder.rollback()


# -- the deadlock of the old design --------------------------------------------


def play_deadlock_interleaving(dsn: str) -> tuple[list[BaseException], list[tuple[Any, ...]], bool]:
    """T1 locks row a; T2 writes b; T1 writes a; T2 writes a; then each commits.

    Under 001, T2's write of b took the event lock, T1's write of a waits
    for it, T2's write of a waits for T1: a cycle, which PostgreSQL breaks
    with a deadlock error after deadlock_timeout. Returns the errors, the
    events written, and whether T2's write of a had to wait.
    """
    a = insert_appointment(dsn)
    b = insert_appointment(dsn)
    start = int(execute(dsn, "SELECT max(id) FROM sse_events")[0][0])
    t1, t2 = Session(dsn), Session(dsn)
    errors: list[BaseException] = []

    def finish(session: Session, own_steps: list[Future[object]]) -> None:
        """Wait for the session's steps; commit it, or roll back after an error."""
        own = [e for e in (f.exception(timeout=10) for f in own_steps) if e is not None]
        errors.extend(own)
        end: Callable[[psycopg.Connection[Any]], None] = (
            (lambda c: c.rollback()) if own or errors else (lambda c: c.commit()))
        session.step(end).result(timeout=10)

    try:
        t1_locks_a = t1.step("SELECT id FROM appointments WHERE id = %s FOR UPDATE", (a,))
        t2_writes_b = t2.step("UPDATE appointments SET cost = 2 WHERE id = %s", (b,))
        t1_writes_a = t1.step("UPDATE appointments SET cost = 1 WHERE id = %s", (a,))
        t2_writes_a = t2.step("UPDATE appointments SET status = 'paid' WHERE id = %s", (a,))
        t2_waited = not t2_writes_a.done()
        finish(t1, [t1_locks_a, t1_writes_a])
        finish(t2, [t2_writes_b, t2_writes_a])
    finally:
        t1.close()
        t2.close()
    return errors, [(r[1], r[2]) for r in event_rows(dsn, start)], t2_waited


def test_deadlock_interleaving_of_the_old_design_now_only_waits(db: str) -> None:
    errors, written, t2_waited = play_deadlock_interleaving(db)
    assert errors == []
    assert t2_waited, "T2's write of a should wait for T1's row lock"
    # T1 committed first (its write of a), then T2 (b, then a), in that order.
    assert written == [("appointment.updated", 1), ("appointment.updated", 2),
                       ("appointment.updated", 1)]


def test_control_under_001_the_interleaving_deadlocks(schema_db: Callable[[str], str]) -> None:
    dsn = schema_db("001_schema.sql")
    errors, written, _ = play_deadlock_interleaving(dsn)
    assert [type(e) for e in errors] == [psycopg.errors.DeadlockDetected]
    assert written == []  # the victim failed; the test rolled the other back


# -- what the trigger sees at commit ---------------------------------------------


def test_several_changes_to_one_row_give_one_event_each_in_order(db: str) -> None:
    """Each deferred call sees OLD and NEW as of its own change."""
    with psycopg.connect(db) as conn:
        [[aid]] = conn.execute(
            "INSERT INTO appointments (staff_ids, start_at, end_at, status)"
            " VALUES ('{1}', '2024-12-01T09:00Z', '2024-12-01T10:00Z', 'unpaid') RETURNING id")
        conn.execute("UPDATE appointments SET status = 'paid', staff_ids = '{2}' WHERE id = %s", (aid,))
        conn.execute("UPDATE appointments SET status = status WHERE id = %s", (aid,))  # no-op
        conn.execute("UPDATE appointments SET start_at = '2024-12-02T09:00Z',"
                     " end_at = '2024-12-02T10:00Z' WHERE id = %s", (aid,))
        conn.execute("UPDATE appointments SET status = 'cancelled' WHERE id = %s", (aid,))
        conn.execute("DELETE FROM appointments WHERE id = %s", (aid,))
        # A behaviour change of 002: nothing is written before commit, not
        # even as seen from inside the writing transaction.
        assert conn.execute("SELECT count(*) FROM sse_events").fetchone() == (0,)
        conn.commit()
    rows = execute(db, "SELECT topic, payload->>'status', payload->>'start', staff_ids"
                       " FROM sse_events ORDER BY id")
    day1, day2 = "1733043600", "1733130000"
    assert rows == [
        ("appointment.created", "unpaid", day1, [1]),
        ("appointment.updated", "paid", day1, [1, 2]),
        ("appointment.rescheduled", "paid", day2, [2]),
        ("appointment.cancelled", "cancelled", day2, [2]),
        ("appointment.deleted", "cancelled", day2, [2]),
    ]


def test_set_constraints_all_immediate_writes_at_once_and_holds_the_lock(db: str) -> None:
    """Documented in 002: SET CONSTRAINTS ALL IMMEDIATE brings back 001's
    behaviour for that transaction, the stall included."""
    aid = insert_appointment(db)
    with psycopg.connect(db) as conn:
        conn.execute("SET CONSTRAINTS ALL IMMEDIATE")
        conn.execute("UPDATE appointments SET status = 'paid' WHERE id = %s", (aid,))
        assert conn.execute("SELECT topic FROM sse_events WHERE id = 2").fetchone() == (
            "appointment.updated",)
        with pytest.raises(psycopg.errors.LockNotAvailable):
            write_with_lock_timeout(db, INSERT_NOW)
        conn.commit()
    assert [r[1] for r in event_rows(db)] == ["appointment.created", "appointment.updated"]


# -- commit order, raced at commit time ----------------------------------------

PAUSE_KEY = 4242
PAUSE_SQL = f"""
CREATE FUNCTION tsse_test_pause() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('tsse_test.pause', true) = 'on' THEN
        PERFORM pg_advisory_xact_lock_shared({PAUSE_KEY});
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER tsse_test_pause AFTER INSERT ON sse_events
    FOR EACH ROW EXECUTE FUNCTION tsse_test_pause();
"""
UNPAUSE_SQL = "DROP TRIGGER tsse_test_pause ON sse_events; DROP FUNCTION tsse_test_pause()"


def race_at_commit(dsn: str) -> tuple[set[int], set[int]]:
    """A commits and stops between drawing its event id and the end of its
    commit (a test trigger waits on a lock the test holds); meanwhile B
    writes and commits. Returns the ids a reader saw then, and after both."""
    insert_appointment(dsn)  # event 1: the reader's cursor is not at zero
    execute(dsn, PAUSE_SQL)
    gate = psycopg.connect(dsn, autocommit=True)
    a, b = Session(dsn), Session(dsn)
    try:
        gate.execute("SELECT pg_advisory_lock(%s)", (PAUSE_KEY,))
        a.step("SET tsse_test.pause = 'on'").result(timeout=5)
        a.step("INSERT INTO appointments (start_at, end_at) VALUES (now(), now())").result(timeout=5)
        a_commit = a.commit()
        assert not a_commit.done(), "A should be paused inside its commit"
        b.step("INSERT INTO appointments (start_at, end_at) VALUES (now(), now())").result(timeout=5)
        b_commit = b.commit()
        seen_early = {int(r[0]) for r in execute(dsn, "SELECT id FROM sse_events")}
        gate.execute("SELECT pg_advisory_unlock(%s)", (PAUSE_KEY,))
        a_commit.result(timeout=10)
        b_commit.result(timeout=10)
    finally:
        gate.close()
        a.close()
        b.close()
        execute(dsn, UNPAUSE_SQL)
    return seen_early, {int(r[0]) for r in execute(dsn, "SELECT id FROM sse_events")}


def committed_below_cursor(seen_early: set[int], seen_late: set[int]) -> set[int]:
    """Ids that became visible after a reader's cursor had passed them."""
    cursor = max(seen_early, default=0)
    return {i for i in seen_late - seen_early if i < cursor}


def test_ids_drawn_at_commit_still_become_visible_in_commit_order(db: str) -> None:
    seen_early, seen_late = race_at_commit(db)
    assert seen_early == {1}  # B waits for A's commit to end
    assert seen_late == {1, 2, 3}
    assert committed_below_cursor(seen_early, seen_late) == set()


def test_control_without_the_event_lock_the_commit_race_loses_an_event(
        schema_db: Callable[[str], str]) -> None:
    """The same race with tornado_sse_next_event_id() drawing a bare
    nextval: B's id 3 is visible while A's 2 is still to come."""
    dsn = schema_db("002_commit_time_ids.sql")
    execute(dsn, "CREATE OR REPLACE FUNCTION tornado_sse_next_event_id() RETURNS bigint"
                 " LANGUAGE sql VOLATILE AS $$ SELECT nextval('sse_events_id_seq') $$")
    seen_early, seen_late = race_at_commit(dsn)
    assert seen_early == {1, 3}
    assert committed_below_cursor(seen_early, seen_late) == {2}


def test_commit_order_holds_for_concurrent_writers_and_a_polling_reader(db: str) -> None:
    """Four writers commit 100 bookings each while a reader polls by cursor,
    as the listener does: it never finds an id below its cursor later."""
    stop = threading.Event()
    late: list[int] = []
    polls = 0

    def read() -> None:
        nonlocal polls
        cursor, seen = 0, set[int]()
        with psycopg.connect(db, autocommit=True) as conn:
            while True:
                done = stop.is_set()
                new = {r[0] for r in conn.execute("SELECT id FROM sse_events")} - seen
                late.extend(i for i in new if i < cursor)
                seen |= new
                cursor = max(seen, default=0)
                polls += 1
                if done:
                    return

    def write(kind: int) -> None:
        with psycopg.connect(db, autocommit=True) as conn:
            for _ in range(100):
                if kind % 2:
                    conn.execute("INSERT INTO availabilities (title) VALUES ('x')")
                else:
                    conn.execute("INSERT INTO appointments (start_at, end_at) VALUES (now(), now())")

    reader = threading.Thread(target=read)
    reader.start()
    writers = [threading.Thread(target=write, args=(k,)) for k in range(4)]
    for w in writers:
        w.start()
    for w in writers:
        w.join(timeout=60)
    stop.set()
    reader.join(timeout=30)
    assert late == []
    assert polls > 10
    assert execute(db, "SELECT count(*), max(id) FROM sse_events") == [(400, 400)]


# -- the upgrade in place ------------------------------------------------------


def trigger_timing(dsn: str) -> dict[str, tuple[bool, bool]]:
    """Event trigger name -> (deferrable, initially deferred)."""
    return {r[0]: (r[1], r[2]) for r in execute(
        dsn, "SELECT tgname, tgdeferrable, tginitdeferred FROM pg_trigger"
             " WHERE tgname IN ('appointments_events', 'availabilities_events')")}


def test_migration_upgrades_a_001_database_in_place(schema_db: Callable[[str], str]) -> None:
    dsn = schema_db("001_schema.sql")
    assert trigger_timing(dsn) == {"appointments_events": (False, False),
                                   "availabilities_events": (False, False)}
    aid = insert_appointment(dsn)
    execute(dsn, "UPDATE appointments SET status = 'paid' WHERE id = %s", (aid,))
    execute(dsn, "INSERT INTO availabilities (title) VALUES ('Opening hours')")
    tables = ("appointments", "availabilities", "sse_events", "sse_retention")
    before = {t: execute(dsn, f"SELECT * FROM {t} ORDER BY 1") for t in tables}

    assert migrate(dsn)[0] == "002_commit_time_ids.sql"  # and any later files
    # Later migrations may add columns (005: version, notes, ...), at the end
    # of each row: what was there is unchanged.
    after = {t: [r[:len(b)] for r, b in zip(execute(dsn, f"SELECT * FROM {t} ORDER BY 1"), before[t], strict=True)]
             for t in tables}
    assert after == before
    assert trigger_timing(dsn) == {"appointments_events": (True, True),
                                   "availabilities_events": (True, True)}
    insert_appointment(dsn)  # the id sequence continues where 001 left it
    assert [r[0] for r in event_rows(dsn)] == [1, 2, 3, 4]
    assert migrate(dsn) == []


def test_running_002_again_after_001_again_ends_deferred(db: str) -> None:
    """A lost migration record reruns every file in order: 001 re-creates
    its immediate triggers, 002 replaces them again."""
    execute(db, "DELETE FROM tornado_sse_migrations")
    migrate(db)
    assert trigger_timing(db) == {"appointments_events": (True, True),
                                  "availabilities_events": (True, True)}
    with psycopg.connect(db, autocommit=True) as listener:
        listener.execute("LISTEN sse_events")
        insert_appointment(db)
        [note] = [n.payload for n in listener.notifies(timeout=2, stop_after=1)]
    assert json.loads(note)["id"] == 1
