"""Writes that are safe under concurrency (SPEC §8, issue 20), over real HTTP
against real PostgreSQL: versions and If-Match, no double booking,
Event-Id, idempotent creates, references and availability rules.

By hand: ``curl -i -X PATCH -H 'If-Match: "1"' ...`` twice (README, "Writes").
"""

from __future__ import annotations

import asyncio
import json

import psycopg
import pytest

from tests.fix_db import execute, insert_appointment
from tests.fix_directory import add_directory
from tests.fix_server import admin_token, auth, staff_token
from tests.txn_steps import Session
from tornado_sse.migrate import migrate
from tornado_sse.sqlfiles import sql_file
from tornado_sse.testing.sse_client import open_stream, request

T0 = 1733131200  # 2024-12-02T09:20:00Z, a Monday


async def call(server, method: str, path: str, body=None, headers=None, token=None):
    h = {**auth(token)}
    data = b""
    if body is not None:
        data = json.dumps(body).encode()
        h["Content-Type"] = "application/json"
    h.update(headers or {})
    return await request(server.url + path, method=method, headers=h, body=data, stream=False)


def desk(db: str) -> None:
    """The directory the API checks ids against (SPEC §8)."""
    add_directory(db, staff={5: "Eva", 6: "Jonas", 7: "Mia"}, products={456: ("Haircut", 60, "50.00")},
                  customers={789: "Anna Berg"})


def booked(db: str, **cols: object) -> int:
    """An appointment that holds its time (no overlap allowed)."""
    return insert_appointment(db, overlap_allowed=False, **cols)


# -- versions ---------------------------------------------------------------------

def test_every_update_bumps_the_version_whoever_writes_and_a_no_op_does_not(db):
    aid = booked(db)
    execute(db, "UPDATE appointments SET cost = 70 WHERE id = %s", (aid,))
    execute(db, "UPDATE appointments SET cost = 70 WHERE id = %s", (aid,))  # changes nothing
    execute(db, "UPDATE appointments SET version = 1, notes = 'x' WHERE id = %s", (aid,))  # cannot go back
    assert execute(db, "SELECT version FROM appointments WHERE id = %s", (aid,)) == [(3,)]
    payloads = [r[0] for r in execute(db, "SELECT payload FROM sse_events ORDER BY id")]
    assert [p["version"] for p in payloads] == [1, 2, 3]
    rid = int(execute(db, "INSERT INTO availabilities (title) VALUES ('a') RETURNING id")[0][0])
    execute(db, "UPDATE availabilities SET priority = 3 WHERE id = %s", (rid,))
    assert execute(db, "SELECT version FROM availabilities WHERE id = %s", (rid,)) == [(2,)]


@pytest.mark.gen_test(timeout=20)
async def test_get_one_row_with_its_version_as_etag(server, db):
    aid = booked(db)
    execute(db, "UPDATE appointments SET notes = 'allergic to lavender' WHERE id = %s", (aid,))
    resp = await call(server, "GET", f"/api/appointments/{aid}")
    assert resp.status == 200 and resp.headers["etag"] == '"2"'
    row = resp.json()
    assert row["id"] == aid and row["version"] == 2 and row["notes"] == "allergic to lavender"
    assert (await call(server, "GET", "/api/appointments/999")).status == 404
    assert (await call(server, "GET", f"/api/appointments/{aid}", token=staff_token(5))).status == 200
    assert (await call(server, "GET", f"/api/appointments/{aid}", token=staff_token(6))).status == 404
    rid = int(execute(db, "INSERT INTO availabilities (title) VALUES ('a') RETURNING id")[0][0])
    rule = await call(server, "GET", f"/api/availabilities/{rid}")
    assert rule.status == 200 and rule.headers["etag"] == '"1"' and rule.json()["title"] == "a"


@pytest.mark.gen_test(timeout=20)
async def test_two_patches_with_the_same_if_match_one_wins_one_gets_412_with_the_current_row(server, db):
    """Issue 20: A cancels, B marks paid 51 ms later on the same stale card."""
    aid = booked(db, status="confirmed")
    stale = {"If-Match": '"1"'}
    # A psql session holds the row, so both writes are in flight at once
    # and queue on it: the version check must happen under the lock.
    holder = Session(db)
    try:
        holder.step("SELECT 1 FROM appointments WHERE id = %s FOR UPDATE", (aid,)).result(timeout=5)
        writes = [asyncio.ensure_future(call(server, "PATCH", f"/api/appointments/{aid}", body, stale))
                  for body in ({"status": "cancelled"}, {"status": "paid"})]
        for _ in range(200):
            if execute(db, "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                           " AND wait_event_type = 'Lock'") == [(2,)]:
                break
            await asyncio.sleep(0.02)
        else:
            pytest.fail("the two PATCHes never waited on the row together")
        holder.commit().result(timeout=5)
        cancel, pay = await asyncio.gather(*writes)
    finally:
        holder.close()
    assert sorted([cancel.status, pay.status]) == [200, 412]
    winner, loser = (cancel, pay) if cancel.status == 200 else (pay, cancel)
    assert winner.headers["etag"] == '"2"' and winner.json()["version"] == 2
    err = loser.json()
    assert err["code"] == "rest_precondition_failed" and err["data"]["status"] == 412
    assert err["data"]["current"] == winner.json()
    [(status, version)] = execute(db, "SELECT status, version FROM appointments WHERE id = %s", (aid,))
    assert (status, version) == (winner.json()["status"], 2)
    assert execute(db, "SELECT count(*) FROM sse_events")[0][0] == 2  # created + the winner only


@pytest.mark.gen_test(timeout=20)
async def test_if_match_on_delete_and_without_if_match_a_write_applies(server, db):
    aid = booked(db)
    execute(db, "UPDATE appointments SET cost = 1 WHERE id = %s", (aid,))
    refused = await call(server, "DELETE", f"/api/appointments/{aid}", headers={"If-Match": '"1"'})
    assert refused.status == 412 and refused.json()["data"]["current"]["status"] == "confirmed"
    ok = await call(server, "DELETE", f"/api/appointments/{aid}", headers={"If-Match": '"7", "2"'})
    assert ok.status == 200 and ok.json()["status"] == "trash" and ok.headers["etag"] == '"3"'
    plain = await call(server, "PATCH", f"/api/appointments/{aid}", {"notes": "no header"})
    assert plain.status == 200 and plain.json()["version"] == 4
    bad = await call(server, "PATCH", f"/api/appointments/{aid}", {"notes": "x"}, {"If-Match": "W/\"4\""})
    assert bad.status == 400 and list(bad.json()["data"]["params"]) == ["If-Match"]


@pytest.mark.gen_test(timeout=20)
async def test_event_id_of_a_write_is_the_id_that_arrives_on_the_stream(server, db):
    desk(db)
    conn = await open_stream(server.url + "/sse", auth())
    created = await call(server, "POST", "/api/appointments",
                         {"start": T0, "end": T0 + 3600, "staff_ids": [5]})
    assert created.status == 201
    moved = await call(server, "PATCH", f"/api/appointments/{created.json()['id']}",
                       {"start": T0 + 3600, "end": T0 + 7200}, {"If-Match": created.headers["etag"]})
    assert moved.status == 200
    first, second = await conn.take(2)
    assert created.headers["event-id"] == first.id and first.event == "appointment.created"
    assert moved.headers["event-id"] == second.id and second.event == "appointment.rescheduled"
    assert second.json()["payload"]["version"] == 2
    conn.close()
    # A write that changes nothing produces no event, so it names none.
    same = await call(server, "PATCH", f"/api/appointments/{created.json()['id']}", {"start": T0 + 3600})
    assert same.status == 200 and "event-id" not in same.headers


@pytest.mark.skipif(not any(p.name.startswith("004_") for p in __import__("pathlib").Path(
    __file__).resolve().parent.parent.joinpath("sql").iterdir()),
    reason="the actor column comes with sql/004 (branch bridge); runs once both are merged")
@pytest.mark.gen_test(timeout=20)
async def test_an_api_write_records_the_token_role_and_subject_as_the_event_actor(server, db):
    created = await call(server, "POST", "/api/appointments", {"start": T0, "end": T0 + 3600},
                         token=admin_token(sub="front-desk"))
    [(actor,)] = execute(db, "SELECT actor FROM sse_events WHERE id = %s", (int(created.headers["event-id"]),))
    assert (json.loads(actor) if isinstance(actor, str) else actor) == {"role": "admin", "sub": "front-desk"}


# -- no double booking --------------------------------------------------------------

def test_two_concurrent_transactions_booking_one_staff_slot_one_fails(db):
    """Two psql sessions book staff 5 at 09:20 at once: the second waits on
    the first's row in the exclusion index and fails when it commits."""
    insert = ("INSERT INTO appointments (staff_ids, start_at, end_at)"
              " VALUES ('{5}', '2024-12-02T09:00Z', '2024-12-02T10:00Z')")
    a, b = Session(db), Session(db)
    try:
        a.step(insert).result(timeout=5)
        second = b.step(insert)
        assert not second.done() and b.waiting_on_lock(), "B should wait for A's booking"
        a.commit().result(timeout=5)
        with pytest.raises(psycopg.errors.ExclusionViolation):
            second.result(timeout=5)
    finally:
        a.close()
        b.close()
    assert execute(db, "SELECT count(*) FROM appointments") == [(1,)]


def test_bookings_that_hold_no_time_or_allow_overlap_or_touch_end_to_start_may_coexist(db):
    first = booked(db, staff_ids=[5, 6])
    booked(db, staff_ids=[5], start_at="2024-12-01T10:20:00Z", end_at="2024-12-01T11:00:00Z")  # back to back
    booked(db, staff_ids=[7])  # another staff member
    insert_appointment(db, staff_ids=[6], overlap_allowed=True)
    for status in ("cancelled", "trash", "was-in-cart"):
        booked(db, staff_ids=[5], status=status)
    with pytest.raises(psycopg.errors.ExclusionViolation):
        booked(db, staff_ids=[6])
    execute(db, "UPDATE appointments SET status = 'cancelled' WHERE id = %s", (first,))
    booked(db, staff_ids=[6])  # the cancelled one freed the slot
    with pytest.raises(psycopg.errors.ExclusionViolation):  # and reviving it double-books
        execute(db, "UPDATE appointments SET status = 'confirmed' WHERE id = %s", (first,))
    execute(db, "TRUNCATE appointments")  # the derived table follows
    assert execute(db, "SELECT count(*) FROM appointment_staff_times") == [(0,)]


@pytest.mark.gen_test(timeout=20)
async def test_api_409_names_the_other_appointment_and_overlap_allowed_books_anyway(server, db):
    desk(db)
    other = booked(db, staff_ids=[5], start_at="2024-12-02T09:00:00Z", end_at="2024-12-02T10:00:00Z")
    body = {"start": "2024-12-02T09:30:00Z", "end": "2024-12-02T10:30:00Z", "staff_ids": [6, 5]}
    refused = await call(server, "POST", "/api/appointments", body)
    assert refused.status == 409
    err = refused.json()
    assert err["code"] == "rest_conflict" and err["data"]["conflicts"] == [other]
    assert execute(db, "SELECT count(*) FROM appointments") == [(1,)]
    anyway = await call(server, "POST", "/api/appointments", {**body, "overlap_allowed": True})
    assert anyway.status == 201 and anyway.json()["overlap_allowed"] is True
    mine = await call(server, "POST", "/api/appointments",
                      {"start": T0 + 86400, "end": T0 + 90000, "staff_ids": [6]})
    moved = await call(server, "PATCH", f"/api/appointments/{mine.json()['id']}",
                       {"start": "2024-12-02T08:30:00Z", "end": "2024-12-02T09:30:00Z", "staff_ids": [5]})
    assert moved.status == 409 and moved.json()["data"]["conflicts"] == [other]


def test_migration_keeps_existing_double_bookings_by_allowing_the_later_ones(schema_db):
    """A database with double bookings from before sql/005 upgrades without
    failing; the later appointment of each overlapping pair gets
    overlap_allowed (README "Writes"), and running 005 again changes nothing."""
    dsn = schema_db("003_directory.sql")
    for staff, status in (([5], "confirmed"), ([5, 6], "paid"), ([6], "unpaid"), ([5], "cancelled"), ([7], "paid")):
        execute(dsn, "INSERT INTO appointments (staff_ids, start_at, end_at, status)"
                     " VALUES (%s, '2024-12-02T09:00Z', '2024-12-02T10:00Z', %s)", (staff, status))
    migrate(dsn)
    rows = execute(dsn, "SELECT id, overlap_allowed, version FROM appointments ORDER BY id")
    assert rows == [(1, False, 1), (2, True, 2), (3, True, 2), (4, False, 1), (5, False, 1)]
    execute(dsn, sql_file("005_booking.sql").read_text(encoding="utf-8"))
    assert execute(dsn, "SELECT id, overlap_allowed, version FROM appointments ORDER BY id") == rows
    assert execute(dsn, "SELECT appointment_id, staff_id FROM appointment_staff_times ORDER BY 1, 2") == [
        (1, 5), (5, 7)]


# -- references, ranges, availability -------------------------------------------------

@pytest.mark.parametrize("body, field", [
    ({"staff_ids": [5, 99]}, "staff_ids"),
    ({"staff_id": 99}, "staff_id"),
    ({"product_id": 4}, "product_id"),
    ({"customer_id": 5}, "customer_id"),
    ({"end": T0}, "end"),  # no length
    ({"end": T0 + 25 * 3600}, "end"),  # longer than --max-duration-hours
    ({"status": "trash"}, "status"),
    ({"start": "1066-10-14T09:00:00Z", "end": "1066-10-14T10:00:00Z"}, "start"),
    ({"notes": "x" * 1001}, "notes"),
    ({"override_availability": "yes"}, "override_availability"),
])
@pytest.mark.gen_test(timeout=10)
async def test_unknown_ids_and_impossible_ranges_are_400_naming_the_field(server, db, body, field):
    desk(db)
    resp = await call(server, "POST", "/api/appointments", {"start": T0, "end": T0 + 3600, **body})
    assert resp.status == 400 and field in resp.json()["data"]["params"]
    assert execute(db, "SELECT count(*) FROM appointments") == [(0,)]


@pytest.mark.gen_test(timeout=10)
async def test_all_day_may_be_long_and_patch_checks_the_merged_row(server, db):
    desk(db)
    two_days = await call(server, "POST", "/api/appointments",
                          {"start": T0, "end": T0 + 2 * 86400, "all_day": True, "staff_ids": [5]})
    assert two_days.status == 201
    aid = two_days.json()["id"]
    no_longer = await call(server, "PATCH", f"/api/appointments/{aid}", {"all_day": False})
    assert no_longer.status == 400 and list(no_longer.json()["data"]["params"]) == ["end"]
    rule = int(execute(db, "INSERT INTO availabilities (scope, title, range_type, from_range, to_range)"
                           " VALUES ('global', 'x', 'days', '1', '1') RETURNING id")[0][0])
    staff = await call(server, "PATCH", f"/api/availabilities/{rule}", {"scope": "staff"})
    assert staff.status == 400 and list(staff.json()["data"]["params"]) == ["staff_id"]
    unreadable = await call(server, "PATCH", f"/api/availabilities/{rule}", {"range_type": "time"})
    assert unreadable.status == 400 and list(unreadable.json()["data"]["params"]) == ["from_range"]
    assert execute(db, "SELECT version FROM availabilities") == [(1,)]


def seed_rules(db: str) -> dict[str, int]:
    """The demo seed's opening hours and closed Sundays, and a holiday."""
    ids = {}
    for title, scope, staff, kind, first, last, appointable, priority in (
            ("Opening hours", "global", None, "time", "09:00", "18:00", True, 10),
            ("Sundays off", "global", None, "days", "7", "7", False, 5),
            ("Holiday", "staff", 6, "custom", "2024-12-03", "2024-12-04", False, 5)):
        ids[title] = int(execute(
            db, "INSERT INTO availabilities (scope, staff_id, title, range_type, from_range, to_range,"
                " appointable, priority) VALUES (%s, %s, %s, %s, %s, %s, %s, %s) RETURNING id",
            (scope, staff, title, kind, first, last, appointable, priority))[0][0])
    return ids


@pytest.mark.gen_test(timeout=20)
async def test_a_sunday_booking_is_409_naming_the_rule_and_an_override_books_it(server, db):
    desk(db)
    rules = seed_rules(db)
    sunday = {"start": "2024-12-08T10:00:00Z", "end": "2024-12-08T11:00:00Z", "staff_ids": [5]}
    refused = await call(server, "POST", "/api/appointments", sunday)
    assert refused.status == 409
    err = refused.json()
    assert err["code"] == "rest_unavailable"
    assert err["data"]["rule"]["id"] == rules["Sundays off"] and err["data"]["rule"]["title"] == "Sundays off"
    evening = await call(server, "POST", "/api/appointments",
                         {**sunday, "start": "2024-12-02T18:30:00Z", "end": "2024-12-02T19:00:00Z"})
    assert evening.status == 409 and evening.json()["data"]["rule"]["title"] == "Opening hours"
    holiday = await call(server, "POST", "/api/appointments",
                         {**sunday, "start": "2024-12-03T10:00:00Z", "end": "2024-12-03T11:00:00Z",
                          "staff_ids": [6]})
    assert holiday.status == 409 and holiday.json()["data"]["rule"]["id"] == rules["Holiday"]
    assert execute(db, "SELECT count(*) FROM appointments") == [(0,)]
    forced = await call(server, "POST", "/api/appointments", {**sunday, "override_availability": True})
    assert forced.status == 201
    # Marking it paid is not a move: no rule is asked; moving it is.
    aid = forced.json()["id"]
    assert (await call(server, "PATCH", f"/api/appointments/{aid}", {"status": "paid"})).status == 200
    moved = await call(server, "PATCH", f"/api/appointments/{aid}",
                       {"start": "2024-12-08T12:00:00Z", "end": "2024-12-08T13:00:00Z"})
    assert moved.status == 409 and moved.json()["data"]["rule"]["title"] == "Sundays off"
    monday = await call(server, "PATCH", f"/api/appointments/{aid}",
                        {"start": "2024-12-09T12:00:00Z", "end": "2024-12-09T13:00:00Z"})
    assert monday.status == 200


@pytest.mark.gen_test(timeout=10)
async def test_unavailable_time_for_the_calendar_to_draw(server, db):
    rules = seed_rules(db)
    resp = await call(server, "GET", "/api/unavailable?start=2024-12-03T00:00:00Z&end=2024-12-04T00:00:00Z"
                                     "&staff_ids=5,6")
    assert resp.status == 200
    body = resp.json()
    day = 1733184000  # 2024-12-03T00:00:00Z
    by_staff = {s: [(c["start"] - day, c["end"] - day, c["rule"]["id"]) for c in body["closed"]
                    if c["staff_id"] == s] for s in (None, 5, 6)}
    hours = rules["Opening hours"]
    assert by_staff[None] == by_staff[5] == [(0, 9 * 3600, hours), (18 * 3600, 24 * 3600, hours)]
    assert by_staff[6] == [(0, 24 * 3600, rules["Holiday"])]
    bad = await call(server, "GET", "/api/unavailable?start=2024-12-03T00:00:00Z&end=2025-12-03T00:00:00Z")
    assert bad.status == 400 and list(bad.json()["data"]["params"]) == ["end"]


# -- idempotent creates -----------------------------------------------------------------

@pytest.mark.gen_test(timeout=20)
async def test_an_idempotent_post_sent_twice_creates_one_row_and_answers_the_same(server, db):
    desk(db)
    body = {"start": T0, "end": T0 + 3600, "staff_ids": [5]}
    key = {"Idempotency-Key": "booking-7f3a"}
    first = await call(server, "POST", "/api/appointments", body, key)
    again = await call(server, "POST", "/api/appointments", body, key)
    assert first.status == again.status == 201
    assert again.json() == first.json() and again.headers["event-id"] == first.headers["event-id"]
    assert again.headers["idempotent-replayed"] == "true"
    assert execute(db, "SELECT count(*) FROM appointments") == [(1,)]
    other = await call(server, "POST", "/api/appointments", {**body, "start": T0 + 7200, "end": T0 + 9000}, key)
    assert other.status == 422 and other.json()["code"] == "rest_idempotency_key_reused"
    # Keys belong to their token's subject: another client's same key is its own.
    theirs = await call(server, "POST", "/api/appointments", {**body, "start": T0 + 7200, "end": T0 + 9000},
                        key, token=admin_token(sub="web-shop"))
    assert theirs.status == 201
    bad = await call(server, "POST", "/api/appointments", body, {"Idempotency-Key": "x" * 201})
    assert bad.status == 400 and list(bad.json()["data"]["params"]) == ["Idempotency-Key"]


@pytest.mark.gen_test(timeout=20)
async def test_concurrent_posts_with_one_key_create_one_row(server, db):
    desk(db)
    body = {"start": T0, "end": T0 + 3600, "staff_ids": [5], "overlap_allowed": True}
    answers = await asyncio.gather(*[
        call(server, "POST", "/api/appointments", body, {"Idempotency-Key": "retry-storm"}) for _ in range(5)])
    assert [a.status for a in answers] == [201] * 5
    assert len({a.json()["id"] for a in answers}) == 1
    assert execute(db, "SELECT count(*) FROM appointments") == [(1,)]
    # Pruned with the event log's retention once 24 hours old.
    execute(db, "UPDATE api_idempotency SET created_at = now() - interval '25 hours'")
    execute(db, "UPDATE sse_retention SET last_run_at = 'epoch'")  # due now, not in an hour
    execute(db, "SELECT tornado_sse_prune_due('7 days', '1 hour')")
    assert execute(db, "SELECT count(*) FROM api_idempotency") == [(0,)]
