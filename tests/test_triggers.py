"""The event log written by the triggers: topics, payloads, audience (SPEC §1, §2, §4).

Every change goes through SQL the way a shop or psql would make it, and the
assertions read ``sse_events`` back: the rows a listener would serve.
"""

from __future__ import annotations

import json
import time
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row

from tests.fix_db import execute, insert_appointment

Params = tuple[Any, ...] | dict[str, Any] | None
# 2024-12-01 09:20 and 10:20 UTC, the SPEC §2 example.
START, END = 1733044800, 1733048400


def events(dsn: str, after: int = 0) -> list[dict[str, Any]]:
    """The visible event rows with id > ``after``, oldest first."""
    with psycopg.connect(dsn, autocommit=True, row_factory=dict_row) as conn:
        return conn.execute("SELECT * FROM sse_events WHERE id > %s ORDER BY id", (after,)).fetchall()


def last_id(dsn: str) -> int:
    """The newest event id (0 for none): a cursor for "what came after"."""
    return int(execute(dsn, "SELECT coalesce(max(id), 0) FROM sse_events")[0][0])


def change(dsn: str, sql: str, params: Params = None) -> list[dict[str, Any]]:
    """Run one statement and return the events it wrote."""
    before = last_id(dsn)
    execute(dsn, sql, params)
    return events(dsn, before)


def topics_of(dsn: str, sql: str, params: Params = None) -> list[str]:
    """The topics of the events one statement wrote, in order."""
    return [e["topic"] for e in change(dsn, sql, params)]


# -- appointment topics -------------------------------------------------------


def test_insert_writes_appointment_created_with_the_spec_envelope(db: str) -> None:
    before = time.time()
    aid = insert_appointment(db, product_id=456, staff_ids=[5], customer_id=789, order_id=101112,
                             order_item_id=131415, start_at="2024-12-01T09:20:00Z",
                             end_at="2024-12-01T10:20:00Z", status="confirmed", cost="50.00")
    [event] = events(db)
    assert event["topic"] == "appointment.created"
    assert event["resource"] == "appointment"
    assert event["resource_id"] == aid
    assert event["payload"] == {
        "id": aid, "start": START, "end": END, "product_id": 456, "staff_ids": [5], "staff_id": 5,
        "status": "confirmed", "customer_id": 789, "order_id": 101112, "order_item_id": 131415,
        "cost": "50.00", "all_day": False, "customer_status": "expected",
        # SPEC §8 (sql/005): notes, the overlap flag and the row version.
        "notes": None, "overlap_allowed": True, "version": 1,
    }
    assert type(event["ts"]) is int
    assert int(before) <= event["ts"] <= time.time()


@pytest.mark.parametrize("assignment, topic", [
    ("status = 'trash'", "appointment.trashed"),
    ("status = 'cancelled'", "appointment.cancelled"),
    ("start_at = start_at - interval '1 hour'", "appointment.rescheduled"),
    ("end_at = end_at + interval '30 minutes'", "appointment.rescheduled"),
    ("status = 'paid'", "appointment.updated"),
    ("cost = 75", "appointment.updated"),
    ("customer_status = 'arrived'", "appointment.updated"),
    ("staff_ids = '{6}'", "appointment.updated"),
    ("all_day = true", "appointment.updated"),
])
def test_update_topic_follows_the_spec_table(db: str, assignment: str, topic: str) -> None:
    aid = insert_appointment(db)
    assert topics_of(db, f"UPDATE appointments SET {assignment} WHERE id = %s", (aid,)) == [topic]


@pytest.mark.parametrize("assignment, topic", [
    ("status = 'cancelled', start_at = start_at + interval '1 day', end_at = end_at + interval '1 day'",
     "appointment.cancelled"),
    ("status = 'trash', start_at = start_at + interval '1 day', end_at = end_at + interval '1 day'",
     "appointment.trashed"),
    ("status = 'trash', staff_ids = '{6}', cost = 0", "appointment.trashed"),
    ("start_at = start_at + interval '1 hour', end_at = end_at + interval '1 hour', cost = 10, "
     "staff_ids = '{6}'", "appointment.rescheduled"),
])
def test_topic_precedence_trash_and_cancel_over_reschedule_over_update(
        db: str, assignment: str, topic: str) -> None:
    aid = insert_appointment(db)
    assert topics_of(db, f"UPDATE appointments SET {assignment} WHERE id = %s", (aid,)) == [topic]


def test_moving_an_already_cancelled_appointment_is_rescheduled(db: str) -> None:
    """Only the UPDATE that *sets* cancelled is appointment.cancelled."""
    aid = insert_appointment(db, status="cancelled")
    sql = "UPDATE appointments SET start_at = start_at + interval '1 hour' WHERE id = %s"
    assert topics_of(db, sql, (aid,)) == ["appointment.rescheduled"]


def test_delete_writes_appointment_deleted_with_the_old_row_as_payload(db: str) -> None:
    aid = insert_appointment(db, staff_ids=[3, 4], cost="12.30")
    execute(db, "UPDATE appointments SET customer_status = 'arrived' WHERE id = %s", (aid,))
    last_state = events(db)[-1]["payload"]
    [event] = change(db, "DELETE FROM appointments WHERE id = %s", (aid,))
    assert event["topic"] == "appointment.deleted"
    assert event["resource_id"] == aid
    assert event["payload"] == last_state
    assert event["payload"]["customer_status"] == "arrived"


def test_noop_update_writes_no_event(db: str) -> None:
    aid = insert_appointment(db, cost="50.00", staff_ids=[5])
    assert change(db, "UPDATE appointments SET status = status, cost = 50, staff_ids = '{5}'"
                      " WHERE id = %s", (aid,)) == []


def test_multi_row_update_writes_one_event_per_row(db: str) -> None:
    ids = [insert_appointment(db) for _ in range(3)]
    written = change(db, "UPDATE appointments SET status = 'paid' WHERE id = ANY(%s)", (ids,))
    assert sorted(e["resource_id"] for e in written) == ids
    assert {e["topic"] for e in written} == {"appointment.updated"}


def test_rolled_back_change_leaves_no_event(db: str) -> None:
    """The event is written in the change's own transaction."""
    with psycopg.connect(db) as conn:
        conn.execute("INSERT INTO appointments (start_at, end_at) VALUES (now(), now())")
        conn.rollback()
    assert events(db) == []


# -- payload types (SPEC §2) --------------------------------------------------


@pytest.mark.parametrize("cost, text", [
    ("50", "50.00"), ("0.5", "0.50"), ("0", "0.00"), ("1234.56", "1234.56"),
    ("9999999999.99", "9999999999.99"), ("-7.1", "-7.10"),
])
def test_cost_is_a_string_with_two_decimals(db: str, cost: str, text: str) -> None:
    insert_appointment(db, cost=cost)
    assert events(db)[0]["payload"]["cost"] == text


def test_start_end_are_epoch_integers_rounded_down(db: str) -> None:
    insert_appointment(db, start_at="2024-12-01T09:20:00.900Z", end_at="2024-12-01T10:20:00.100+00")
    payload = events(db)[0]["payload"]
    assert (payload["start"], payload["end"]) == (START, END)
    assert type(payload["start"]) is int and type(payload["end"]) is int


def test_staff_id_is_the_first_of_staff_ids(db: str) -> None:
    insert_appointment(db, staff_ids=[7, 3])
    payload = events(db)[0]["payload"]
    assert (payload["staff_ids"], payload["staff_id"]) == ([7, 3], 7)


def test_staff_id_is_null_and_staff_ids_empty_list_without_staff(db: str) -> None:
    insert_appointment(db, staff_ids=[])
    payload = events(db)[0]["payload"]
    assert payload["staff_ids"] == []
    assert payload["staff_id"] is None


def test_missing_ids_are_json_null_and_flags_json_booleans(db: str) -> None:
    insert_appointment(db, product_id=None, customer_id=None, all_day=True)
    payload = events(db)[0]["payload"]
    assert (payload["product_id"], payload["customer_id"], payload["order_id"]) == (None, None, None)
    assert payload["all_day"] is True


# -- audience (SPEC §4) -------------------------------------------------------


def test_audience_of_a_reassignment_holds_previous_and_new_staff(db: str) -> None:
    aid = insert_appointment(db, staff_ids=[1, 2])
    [event] = change(db, "UPDATE appointments SET staff_ids = '{2,3}' WHERE id = %s", (aid,))
    assert event["staff_ids"] == [1, 2, 3]
    assert event["payload"]["staff_ids"] == [2, 3]


def test_audience_of_created_and_deleted_is_the_row_staff(db: str) -> None:
    aid = insert_appointment(db, staff_ids=[4])
    execute(db, "DELETE FROM appointments WHERE id = %s", (aid,))
    assert [e["staff_ids"] for e in events(db)] == [[4], [4]]


def test_audience_of_an_unassigned_appointment_is_no_staff(db: str) -> None:
    insert_appointment(db, staff_ids=[])
    assert events(db)[0]["staff_ids"] == []


def test_product_audience_holds_previous_and_new_product(db: str) -> None:
    aid = insert_appointment(db, product_id=101)
    [event] = change(db, "UPDATE appointments SET product_id = 102 WHERE id = %s", (aid,))
    assert event["product_ids"] == [101, 102]


# -- availability rules -------------------------------------------------------


def insert_rule(dsn: str, **cols: object) -> int:
    """Insert one availability rule and return its id."""
    names = ", ".join(cols)
    marks = ", ".join(f"%({k})s" for k in cols)
    rows = execute(dsn, f"INSERT INTO availabilities ({names}) VALUES ({marks}) RETURNING id", cols)
    return int(rows[0][0])


def test_availability_insert_update_delete_topics(db: str) -> None:
    rid = insert_rule(db, title="Opening hours")
    execute(db, "UPDATE availabilities SET priority = 3 WHERE id = %s", (rid,))
    execute(db, "DELETE FROM availabilities WHERE id = %s", (rid,))
    written = events(db)
    assert [e["topic"] for e in written] == [
        "availability.created", "availability.updated", "availability.deleted"]
    assert {(e["resource"], e["resource_id"]) for e in written} == {("availability", rid)}


def test_availability_payload_carries_the_rule_columns(db: str) -> None:
    rid = insert_rule(db, scope="product", product_id=103, title="Wednesdays", range_type="time:3",
                      from_range="13:00", to_range="18:00", appointable=False, priority=8, qty=2,
                      ordering=4, rrule="FREQ=WEEKLY")
    payload = events(db)[0]["payload"]
    created = payload.pop("created")
    updated = payload.pop("updated")
    assert payload == {
        "id": rid, "scope": "product", "product_id": 103, "staff_id": None, "title": "Wednesdays",
        "range_type": "time:3", "from_range": "13:00", "to_range": "18:00", "appointable": False,
        "priority": 8, "qty": 2, "ordering": 4, "rrule": "FREQ=WEEKLY",
        "version": 1,  # SPEC §8 (sql/005)
    }
    assert type(created) is int and created == updated


def test_availability_noop_update_writes_no_event(db: str) -> None:
    rid = insert_rule(db, priority=4)
    assert change(db, "UPDATE availabilities SET priority = 4 WHERE id = %s", (rid,)) == []


def test_global_rule_audience_is_null(db: str) -> None:
    insert_rule(db, scope="global")
    assert events(db)[0]["staff_ids"] is None


def test_staff_rule_audience_is_its_staff_member(db: str) -> None:
    insert_rule(db, scope="staff", staff_id=3)
    assert events(db)[0]["staff_ids"] == [3]


def test_staff_rule_moved_to_another_staff_member_reaches_both(db: str) -> None:
    rid = insert_rule(db, scope="staff", staff_id=3)
    [event] = change(db, "UPDATE availabilities SET staff_id = 4 WHERE id = %s", (rid,))
    assert event["staff_ids"] == [3, 4]


def test_staff_rule_made_global_reaches_everyone(db: str) -> None:
    rid = insert_rule(db, scope="staff", staff_id=3)
    [event] = change(db, "UPDATE availabilities SET scope = 'global', staff_id = NULL"
                         " WHERE id = %s", (rid,))
    assert event["staff_ids"] is None


# -- NOTIFY -------------------------------------------------------------------


def notifications(dsn: str, changes: list[str], count: int) -> list[str]:
    """The payloads of the ``count`` notifications that ``changes`` (each
    committed on its own) send on ``sse_events``."""
    with psycopg.connect(dsn, autocommit=True) as listener:
        listener.execute("LISTEN sse_events")
        for sql in changes:
            execute(dsn, sql)
        return [n.payload for n in listener.notifies(timeout=2, stop_after=count)]


def test_notify_carries_the_whole_event_as_compact_json_when_it_fits(db: str) -> None:
    """SPEC §1: a notification may carry the event, so the listener needs no
    query; the keys are the sse_events columns the listener reads."""
    received = notifications(db, [
        "INSERT INTO appointments (staff_ids, product_id, start_at, end_at)"
        " VALUES ('{5,6}', 456, '2024-12-01T09:20Z', '2024-12-01T10:20Z')",
        "INSERT INTO availabilities (scope, title) VALUES ('global', 'Opening \"hours\"')",
    ], count=2)
    rows = execute(db, "SELECT id, topic, resource, resource_id, payload::text, ts, staff_ids,"
                       " product_ids, extract(epoch FROM created_at)::float8"
                       " FROM sse_events ORDER BY id")
    assert len(received) == len(rows) == 2
    for text, (eid, topic, resource, rid, payload, ts, staff, products, created) in zip(received, rows, strict=True):
        assert json.loads(text) == {
            "id": eid, "topic": topic, "resource": resource, "resource_id": rid,
            "payload": json.loads(payload), "ts": ts, "staff_ids": staff,
            "product_ids": products, "created_at": created,
        }
        # Compact: no whitespace but what the payload's own text carries,
        # which is the payload::text a cursor read returns, byte for byte.
        assert f',"payload":{payload},' in text
        assert " " not in text.replace(payload, "")
        assert len(text.encode()) < 7900
    assert json.loads(received[1])["staff_ids"] is None  # a global rule: everyone


def test_notify_of_an_event_too_large_for_a_notification_is_its_bare_id(db: str) -> None:
    """Past 7,900 bytes the notification is the id alone, as under 001, and
    the listener reads the event by cursor; the write itself succeeds."""
    staff = "{" + ",".join(str(100000 + i) for i in range(1000)) + "}"
    received = notifications(db, [
        "INSERT INTO appointments (start_at, end_at) VALUES (now(), now())",
        f"INSERT INTO appointments (staff_ids, start_at, end_at) VALUES ('{staff}', now(), now())",
    ], count=2)
    [[size]] = execute(db, "SELECT octet_length(payload::text) FROM sse_events WHERE id = 2")
    assert size > 8000
    assert received[0].startswith("{")
    assert received[1] == "2"


# -- retention ----------------------------------------------------------------


def age_events(dsn: str, ids: list[int], days: int) -> None:
    """Pretend the events ``ids`` were written ``days`` ago."""
    execute(dsn, "UPDATE sse_events SET created_at = now() - make_interval(days => %s)"
                 " WHERE id = ANY(%s)", (days, ids))


def remaining_ids(dsn: str) -> list[int]:
    return [int(r[0]) for r in execute(dsn, "SELECT id FROM sse_events ORDER BY id")]


def pruned_through(dsn: str) -> int:
    return int(execute(dsn, "SELECT pruned_through FROM sse_retention")[0][0])


def test_prune_deletes_the_prefix_through_the_newest_old_event(db: str) -> None:
    for _ in range(5):
        insert_appointment(db)
    age_events(db, [1, 3], days=10)  # 2 is recent, yet inside the prefix
    [[deleted]] = execute(db, "SELECT tornado_sse_prune(interval '7 days')")
    assert deleted == 3
    assert remaining_ids(db) == [4, 5]
    assert pruned_through(db) == 3


def test_prune_with_nothing_old_deletes_nothing(db: str) -> None:
    insert_appointment(db)
    assert execute(db, "SELECT tornado_sse_prune(interval '7 days')") == [(0,)]
    assert remaining_ids(db) == [1]
    assert pruned_through(db) == 0


def test_pruned_through_never_moves_back(db: str) -> None:
    for _ in range(3):
        insert_appointment(db)
    age_events(db, [3], days=10)
    execute(db, "SELECT tornado_sse_prune(interval '7 days')")
    insert_appointment(db)  # id 4
    execute(db, "UPDATE sse_retention SET pruned_through = 10")
    age_events(db, [4], days=10)
    execute(db, "SELECT tornado_sse_prune(interval '7 days')")
    assert remaining_ids(db) == []
    assert pruned_through(db) == 10
