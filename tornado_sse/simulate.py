"""``run.py simulate``: a steady stream of changes, made the way psql makes them.

The changes come from ``sql/simulate.sql`` run by PostgreSQL's own pgbench
at the requested rate: ordinary transactions on an ordinary connection, so
the triggers, the event log and every listening server see exactly what a
shop or a ``psql`` session would produce, and the script runs by hand too.

PostgreSQL refuses double bookings (sql/005), so the script books, moves
and reassigns into time the staff have free, and only when none is left
makes a deliberate overlap (``overlap_allowed``, with a note). The summary
says how many appointments overlap on purpose before and after the run, so
a demo shows which of its bookings are such overlaps.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import psycopg

from tornado_sse.pgclients import client_invocation, client_program, run_client
from tornado_sse.sqlfiles import sql_path

SCRIPT = "simulate.sql"
#: The note the script gives an appointment it could only place as an overlap.
OVERLAP_NOTE = "simulate: no free slot, overlap on purpose"
_PROCESSED = re.compile(r"number of transactions actually processed: (\d+)")


def pgbench_argv(conn: str, rate: float, duration: float, script: Path) -> list[str]:
    """pgbench's command line: one client, ``rate`` changes a second.

    ``-n`` skips the vacuum of pgbench's own tables, which this script does
    not use; ``-T`` takes whole seconds, so the duration is rounded up;
    ``step=0`` starts the script's deck of changes (see the script).
    """
    return [client_program("pgbench"), "-n", "-f", str(script), "-D", "step=0",
            "-R", f"{rate:g}", "-T", str(math.ceil(duration)), "-c", "1", conn]


def summary(report: str, rate: float, duration: float) -> str:
    """One line from pgbench's report: how many changes, how fast."""
    seconds = math.ceil(duration)
    found = _PROCESSED.search(report)
    if found is None:
        return f"simulate: ran {seconds} s at {rate:g} changes/s"
    changes = int(found.group(1))
    return (f"simulate: {changes} changes in {seconds} s "
            f"({changes / seconds:.1f}/s, asked {rate:g}/s)")


def overlaps_on_purpose(dsn: str) -> int:
    """Appointments the script placed as deliberate overlaps (still so)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute("SELECT count(*) FROM appointments WHERE overlap_allowed AND notes = %s",
                           (OVERLAP_NOTE,)).fetchone()
    return int(row[0]) if row is not None else 0


def run_simulation(dsn: str, rate: float, duration: float) -> int:
    """Make changes at ``rate`` per second for ``duration`` seconds.

    Prints a one-line summary and a line on double bookings, and returns
    pgbench's exit status; pgbench's own error messages go straight to
    stderr.
    """
    before = overlaps_on_purpose(dsn)
    conn, env = client_invocation(dsn)
    with sql_path(SCRIPT) as script:
        status, report = run_client(pgbench_argv(conn, rate, duration, script), env, capture=True)
    if status == 0:
        print(summary(report, rate, duration))
        print(f"simulate: bookings, moves and reassignments go to free time; where none was left they "
              f"overlap on purpose (overlap_allowed, note {OVERLAP_NOTE!r}): {overlaps_on_purpose(dsn)} "
              f"such appointments now, {before} before")
    return status
