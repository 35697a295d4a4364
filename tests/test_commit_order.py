"""Event ids become visible in commit order (SPEC §1), which makes resume lossless.

The property: once a reader has seen id N, no id below N commits later. The
race that breaks it: transaction A draws id 2 and is still open when B draws
id 3 and commits; a reader sees 3, moves its cursor there, and never sees 2.
Each test plays exactly that race. The control plays it on a table with a
plain sequence and shows the property broken, so the check can fail.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import psycopg
import pytest

from tests.fix_db import execute, insert_appointment

INSERT_APPOINTMENT = ("INSERT INTO appointments (start_at, end_at)"
                      " VALUES ('2024-12-01T09:00Z', '2024-12-01T10:00Z')")
#: How long B may take to commit while A is open before the reader looks.
BLOCK_WAIT = 1.0


def visible_ids(dsn: str, table: str) -> set[int]:
    """The ids a reader sees right now."""
    return {int(r[0]) for r in execute(dsn, f"SELECT id FROM {table}")}


def wait_blocked_or_done(dsn: str, pid: int, done: threading.Event) -> None:
    """Until B has committed or waits on a lock, at most BLOCK_WAIT seconds."""
    deadline = time.monotonic() + BLOCK_WAIT
    while not done.is_set() and time.monotonic() < deadline:
        rows = execute(dsn, "SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s", (pid,))
        if rows and rows[0][0] == "Lock":
            return
        time.sleep(0.01)


def race(dsn: str, write: str, table: str) -> tuple[set[int], set[int]]:
    """A writes and stays open; B writes and tries to commit; then A commits.

    Returns what a reader saw while A was open (R1) and after both (R2).
    """
    with psycopg.connect(dsn) as a, psycopg.connect(dsn) as b:
        a.execute(write)  # draws an id, not committed
        done = threading.Event()

        def commit_b() -> None:
            b.execute(write)
            b.commit()
            done.set()

        thread = threading.Thread(target=commit_b)
        thread.start()
        try:
            wait_blocked_or_done(dsn, b.info.backend_pid, done)
            seen_early = visible_ids(dsn, table)
            a.commit()
        finally:
            thread.join(timeout=5)
        assert done.is_set(), "B never committed"
    return seen_early, visible_ids(dsn, table)


def committed_later_below_cursor(seen_early: set[int], seen_late: set[int]) -> set[int]:
    """Ids that became visible after the reader's cursor had passed them."""
    cursor = max(seen_early, default=0)
    return {i for i in seen_late - seen_early if i < cursor}


def test_event_ids_become_visible_in_commit_order(db: str) -> None:
    insert_appointment(db)  # event 1: the reader's cursor is not at zero
    seen_early, seen_late = race(db, INSERT_APPOINTMENT, "sse_events")
    assert seen_late - seen_early, "neither transaction's event became visible"
    assert committed_later_below_cursor(seen_early, seen_late) == set()
    assert seen_late == {1, 2, 3}


@pytest.fixture
def plain_sequence_table(db: str) -> Iterator[str]:
    """A table whose ids come from a plain bigserial, as a naive event log would."""
    execute(db, "CREATE TABLE commit_order_control (id bigserial PRIMARY KEY, note text)")
    try:
        yield "commit_order_control"
    finally:
        execute(db, "DROP TABLE commit_order_control")


def test_control_plain_sequence_breaks_commit_order(db: str, plain_sequence_table: str) -> None:
    """Same race on a plain sequence: B's id 3 is seen before A's 2 commits."""
    execute(db, f"INSERT INTO {plain_sequence_table} (note) VALUES ('first')")
    seen_early, seen_late = race(db, f"INSERT INTO {plain_sequence_table} (note) VALUES ('x')",
                                 plain_sequence_table)
    assert seen_early == {1, 3}
    assert committed_later_below_cursor(seen_early, seen_late) == {2}
