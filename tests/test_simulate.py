"""``run.py simulate`` (SPEC §6): pgbench drives every kind of change, and the
tables stay about the size they were.

A client that hits an SQL error aborts pgbench with exit status 2, so a zero
status also proves no statement failed (on an empty table included).
"""

from __future__ import annotations

import re

import pytest

from tests.cli_process import run_cli
from tests.fix_db import execute
from tornado_sse.seed import seed_if_empty
from tornado_sse.simulate import run_simulation

EVERY_TOPIC = {
    "appointment.created", "appointment.trashed", "appointment.cancelled",
    "appointment.rescheduled", "appointment.updated", "appointment.deleted",
    "availability.created", "availability.updated", "availability.deleted",
}


def last_id(dsn: str) -> int:
    return int(execute(dsn, "SELECT coalesce(max(id), 0) FROM sse_events")[0][0])


def topics_after(dsn: str, cursor: int) -> set[str]:
    return {r[0] for r in execute(dsn, "SELECT DISTINCT topic FROM sse_events WHERE id > %s", (cursor,))}


def sizes(dsn: str) -> tuple[int, int]:
    """(appointments, availability rules)."""
    [(appointments, rules)] = execute(
        dsn, "SELECT (SELECT count(*) FROM appointments), (SELECT count(*) FROM availabilities)")
    return int(appointments), int(rules)


def test_simulate_20_per_second_for_2_seconds_writes_every_topic(db: str) -> None:
    """40 changes are two deals of the script's deck of 20, each holding every kind."""
    seed_if_empty(db)
    cursor = last_id(db)
    result = run_cli("simulate", "--rate", "20", "--duration", "2", "--dsn", db)
    assert result.returncode == 0, result.stderr
    assert re.fullmatch(r"simulate: \d+ changes in 2 s \(\d+\.\d/s, asked 20/s\)\n"
                        r"simulate: bookings, moves and reassignments go to free time; .*: \d+ such appointments"
                        r" now, 0 before\n", result.stdout)
    assert topics_after(db, cursor) == EVERY_TOPIC


def test_simulation_keeps_the_seeded_tables_steady(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    """Each deal of 20 books 3 and deletes 3, adds a rule and removes one."""
    seed_if_empty(db)
    appointments, rules = sizes(db)
    cursor = last_id(db)
    assert run_simulation(db, rate=400, duration=1) == 0
    changes = int(re.findall(r"simulate: (\d+) changes", capsys.readouterr().out)[0])
    assert changes >= 200
    assert last_id(db) - cursor == changes  # every change really changed a row
    after_appointments, after_rules = sizes(db)
    assert abs(after_appointments - appointments) <= 3
    assert abs(after_rules - rules) <= 1


def test_simulation_fills_an_empty_database_without_errors(db: str,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    """Updates and deletes that find no row change nothing; deletion waits for more
    than 20 appointments and 3 rules, and a deal of 20 adds at most 3 and 1."""
    assert run_simulation(db, rate=400, duration=1) == 0
    assert capsys.readouterr().out.startswith("simulate: ")
    appointments, rules = sizes(db)
    assert 20 <= appointments <= 20 + 2 * 3
    assert 3 <= rules <= 3 + 2 * 1


def test_simulation_with_no_free_time_left_overlaps_on_purpose_and_says_so(
        db: str, capsys: pytest.CaptureFixture[str]) -> None:
    """Issue 20: PostgreSQL refuses double bookings; with every staff member
    booked all week, the script's bookings, moves and reassignments become
    deliberate overlaps (overlap_allowed, noted) instead of failing."""
    execute(db, "INSERT INTO appointments (staff_ids, start_at, end_at, status)"
                " SELECT ARRAY[s]::bigint[], date_trunc('week', now()) + d * interval '1 day',"
                "        date_trunc('week', now()) + (d + 1) * interval '1 day', 'confirmed'"
                " FROM generate_series(1, 4) AS s, generate_series(0, 5) AS d")
    assert run_simulation(db, rate=200, duration=1) == 0
    out = capsys.readouterr().out
    made = int(re.findall(r": (\d+) such appointments now, 0 before", out)[0])
    assert made > 0
    assert made == execute(db, "SELECT count(*) FROM appointments WHERE overlap_allowed")[0][0]
