"""``GET /api/appointments.ics`` (issue 23): a staff member's range as
iCalendar, written by hand (tornado_sse/ical.py) and read back here with an
independent parser (the ``icalendar`` package), over real HTTP."""

from __future__ import annotations

import datetime as dt

import pytest
from icalendar import Calendar

from tests.fix_db import execute, insert_appointment
from tests.fix_directory import add_directory
from tests.fix_server import auth, staff_token
from tornado_sse.ical import escape, fold
from tornado_sse.testing.sse_client import Response, request

UTC = dt.timezone.utc
DAY = "start=2025-03-10T00:00:00Z&end=2025-03-11T00:00:00Z"


# -- the encoding, on exact text ------------------------------------------------------


def test_text_values_escape_backslash_semicolon_comma_and_newlines():
    assert escape("a\\b;c,d\ne\r\nf") == "a\\\\b\\;c\\,d\\ne\\nf"
    assert escape("Haircut · Anna") == "Haircut · Anna"


def test_lines_fold_at_75_octets_without_splitting_a_character():
    assert fold("X" * 75) == "X" * 75 + "\r\n"
    assert fold("X" * 76) == "X" * 75 + "\r\n X\r\n"
    # "é" is two octets: the first line holds 37 of them (74 octets), not 37.5.
    folded = fold("é" * 40)
    lines = folded.split("\r\n")
    assert lines[0] == "é" * 37 and lines[1] == " " + "é" * 3 and lines[2] == ""
    long = fold("SUMMARY:" + "ü" * 200)
    assert all(len(line.encode()) <= 75 for line in long.split("\r\n"))
    assert long.replace("\r\n ", "") == "SUMMARY:" + "ü" * 200 + "\r\n"


# -- over HTTP --------------------------------------------------------------------------


async def get(server, query: str, token: str | None = None) -> Response:
    resp = await request(server.url + "/api/appointments.ics?" + query, headers=auth(token), stream=False)
    assert isinstance(resp, Response)
    return resp


def events(resp: Response) -> dict[str, dict]:
    """The VEVENTs by UID, parsed by the icalendar package."""
    assert resp.status == 200, resp.body
    assert resp.headers["content-type"] == "text/calendar; charset=utf-8"
    assert b"\r\n" in resp.body and b"\n" not in resp.body.replace(b"\r\n", b"")
    cal = Calendar.from_ical(resp.body)
    assert str(cal["VERSION"]) == "2.0" and "PRODID" in cal
    found = {}
    for ev in cal.walk("VEVENT"):
        found[str(ev["UID"])] = {
            "start": ev.decoded("DTSTART"), "end": ev.decoded("DTEND") if "DTEND" in ev else None,
            "summary": str(ev["SUMMARY"]), "status": str(ev["STATUS"]),
            "description": str(ev["DESCRIPTION"]), "sequence": ev.decoded("SEQUENCE")}
    return found


def at(hour: int, minute: int = 0) -> str:
    return f"2025-03-10T{hour:02d}:{minute:02d}:00Z"


def setup_day(db: str) -> dict[str, int]:
    add_directory(db, customers={1000: "Anna Berg", 1001: "Berg, Ben; \"VIP\"\\"})
    ids = {
        "anna": insert_appointment(db, staff_ids=[1], customer_id=1000, product_id=101,
                                   start_at=at(9), end_at=at(9, 45), status="paid"),
        "ben": insert_appointment(db, staff_ids=[1, 2], customer_id=1001, product_id=102,
                                  start_at=at(11), end_at=at(12), status="pending-confirmation"),
        "cancelled": insert_appointment(db, staff_ids=[1], customer_id=None, product_id=None,
                                        start_at=at(14), end_at=at(15), status="cancelled"),
        "mia": insert_appointment(db, staff_ids=[2], customer_id=1000, product_id=101,
                                  start_at=at(10), end_at=at(10, 45)),
        "trash": insert_appointment(db, staff_ids=[1], customer_id=1000, product_id=101,
                                    start_at=at(16), end_at=at(17), status="trash"),
        "next_day": insert_appointment(db, staff_ids=[1], customer_id=1000, product_id=101,
                                       start_at="2025-03-11T09:00:00Z", end_at="2025-03-11T10:00:00Z"),
    }
    return ids


@pytest.mark.gen_test(timeout=20)
async def test_a_staff_members_day_as_icalendar_events(server, db):
    ids = setup_day(db)
    execute(db, "UPDATE appointments SET notes = 'moved' WHERE id = %s", (ids["anna"],))  # version 2
    resp = await get(server, "staff_id=1&" + DAY)
    assert 'filename="appointments-staff-1.ics"' in resp.headers["content-disposition"]
    found = events(resp)
    host = "127.0.0.1"
    assert set(found) == {f"appointment-{ids[k]}@{host}" for k in ("anna", "ben", "cancelled")}
    anna = found[f"appointment-{ids['anna']}@{host}"]
    assert anna == {"start": dt.datetime(2025, 3, 10, 9, tzinfo=UTC),
                    "end": dt.datetime(2025, 3, 10, 9, 45, tzinfo=UTC),
                    "summary": "Haircut · Anna Berg", "status": "CONFIRMED",
                    "description": "Status: Paid\nWith: Jonas", "sequence": 1}
    ben = found[f"appointment-{ids['ben']}@{host}"]
    assert ben["summary"] == 'Massage · Berg, Ben; "VIP"\\'  # intact when parsed,
    assert 'SUMMARY:Massage · Berg\\, Ben\\; "VIP"\\\\\r\n'.encode() in resp.body  # escaped on the wire
    assert ben["status"] == "TENTATIVE"
    assert ben["description"] == "Status: Waiting for confirmation\nWith: Jonas, Mia"
    cancelled = found[f"appointment-{ids['cancelled']}@{host}"]
    assert cancelled["summary"] == "Appointment" and cancelled["status"] == "CANCELLED"
    assert "Status: Cancelled" in cancelled["description"]
    # The calendar is named after the staff member; events are in time order.
    assert b"X-WR-CALNAME:Appointments \xc2\xb7 Jonas\r\n" in resp.body
    assert resp.body.index(b"Haircut") < resp.body.index(b"Massage")
    # The same request again: the same UIDs (a re-import updates, never duplicates).
    assert set(events(await get(server, "staff_id=1&" + DAY))) == set(found)


@pytest.mark.gen_test(timeout=20)
async def test_staff_export_their_own_appointments_only(server, db):
    ids = setup_day(db)
    own = events(await get(server, DAY, staff_token(2)))
    assert {uid.split("@")[0] for uid in own} == {f"appointment-{ids['ben']}", f"appointment-{ids['mia']}"}
    assert own == events(await get(server, "staff_id=2&" + DAY, staff_token(2)))
    resp = await get(server, "staff_id=1&" + DAY, staff_token(2))
    assert resp.status == 403
    body = resp.json()
    assert body["code"] == "rest_forbidden" and body["data"]["status"] == 403
    # An admin without staff_id exports everyone's.
    assert len(events(await get(server, DAY))) == 4
    assert len(events(await get(server, "staff_id=3&" + DAY))) == 0


@pytest.mark.gen_test(timeout=20)
async def test_bad_ranges_and_ids_are_400_naming_the_parameter(server, db):
    cases = {
        "start=2025-03-11T00:00:00Z&end=2025-03-10T00:00:00Z": {"end"},
        "start=2024-01-01T00:00:00Z&end=2025-03-10T00:00:00Z": {"end"},  # more than 400 days
        "start=yesterday": {"start"},
        "end=99999999999999": {"end"},
        "staff_id=abc&" + DAY: {"staff_id"},
        "staff_id=0&" + DAY: {"staff_id"},
    }
    for query, fields in cases.items():
        resp = await get(server, query)
        assert resp.status == 400, query
        assert resp.json()["code"] == "rest_invalid_param"
        assert set(resp.json()["data"]["params"]) == fields, (query, resp.json())
    anonymous = await request(server.url + "/api/appointments.ics?" + DAY, stream=False)
    assert isinstance(anonymous, Response) and anonymous.status == 401


@pytest.mark.gen_test(timeout=20)
async def test_the_default_range_is_the_snapshots_and_an_empty_one_is_a_valid_calendar(server, db):
    add_directory(db)
    soon = insert_appointment(db, staff_ids=[1], product_id=101, customer_id=1000,
                              start_at=dt.datetime.now(UTC) + dt.timedelta(days=1),
                              end_at=dt.datetime.now(UTC) + dt.timedelta(days=1, hours=1))
    assert [uid.split("@")[0] for uid in events(await get(server, "staff_id=1"))] == [f"appointment-{soon}"]
    assert events(await get(server, "staff_id=1&" + DAY)) == {}
