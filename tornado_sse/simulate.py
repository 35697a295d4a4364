"""``run.py simulate``: a steady stream of changes, made the way psql makes them.

The changes come from ``sql/simulate.sql`` run by PostgreSQL's own pgbench
at the requested rate: ordinary transactions on an ordinary connection, so
the triggers, the event log and every listening server see exactly what a
shop or a ``psql`` session would produce, and the script runs by hand too.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

from tornado_sse.pgclients import client_invocation, client_program, run_client
from tornado_sse.sqlfiles import sql_path

SCRIPT = "simulate.sql"
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


def run_simulation(dsn: str, rate: float, duration: float) -> int:
    """Make changes at ``rate`` per second for ``duration`` seconds.

    Prints a one-line summary and returns pgbench's exit status; pgbench's
    own error messages go straight to stderr.
    """
    conn, env = client_invocation(dsn)
    with sql_path(SCRIPT) as script:
        status, report = run_client(pgbench_argv(conn, rate, duration, script), env, capture=True)
    if status == 0:
        print(summary(report, rate, duration))
    return status
