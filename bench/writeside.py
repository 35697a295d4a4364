"""The write scenario: what the event triggers cost a writer (pgbench
INSERT throughput on the trigger table against a plain copy), in the
bench's own database.

The pure comparison runs with nothing LISTENing (the server is stopped).
With --write-breakdown, each round also runs the trigger table with parts
of the event machinery switched off (restored right after), to show what
costs: the NOTIFY trigger, the commit-order advisory lock, or the row
writing itself. With --write-with-server, it runs again with tornado_sse
listening (the deployment view).
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable
from typing import Any

import psycopg
from harness import HarnessError, log
from scenarios import Result, Rig
from systems import INSERT_SQL, TornadoSSE

Step = Callable[[], None] | None


def pgbench(rig: Rig, table: str, secs: float) -> Result:
    """One pgbench run: --write-clients clients, one INSERT per transaction."""
    clients = rig.args.write_clients
    script = rig.workdir / f"insert_{table}.sql"
    script.write_text(INSERT_SQL.replace("appointments", table, 1) + ";\n")
    argv = [str(rig.db.bin / "pgbench"), "-n", "-c", str(clients), "-j", str(min(2, clients)),
            "-T", str(int(secs)), "-f", str(script), rig.db.dsn]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=secs + 60)
    if out.returncode != 0:
        raise HarnessError(f"pgbench failed: {out.stderr.strip()[-500:]}")
    m = re.search(r"tps = ([\d.]+) \(without initial connection time\)", out.stdout)
    if m is None:
        raise HarnessError(f"no tps in pgbench output: {out.stdout[-500:]}")
    lat = re.search(r"latency average = ([\d.]+) ms", out.stdout)
    return {"tps": float(m.group(1)), "latency_ms": float(lat.group(1)) if lat else None}


def breakdown(conn: psycopg.Connection[Any]) -> list[tuple[str, str, Step, Step]]:
    """(label, table, switch off, switch back on) for the diagnostic runs."""
    row = conn.execute("SELECT pg_get_functiondef('tornado_sse_next_event_id'::regproc)").fetchone()
    lock_fn = str(row[0]) if row else ""
    no_lock = ("CREATE OR REPLACE FUNCTION tornado_sse_next_event_id() RETURNS bigint"
               " LANGUAGE sql VOLATILE AS $$ SELECT nextval('sse_events_id_seq') $$")

    def sql(*stmts: str) -> Callable[[], None]:
        def run() -> None:
            for st in stmts:
                conn.execute(st)
        return run

    off_notify = "ALTER TABLE sse_events DISABLE TRIGGER sse_events_notify"
    on_notify = "ALTER TABLE sse_events ENABLE TRIGGER sse_events_notify"
    off_events = "ALTER TABLE appointments DISABLE TRIGGER appointments_events"
    on_events = "ALTER TABLE appointments ENABLE TRIGGER appointments_events"
    return [
        ("appointments, event trigger disabled", "appointments", sql(off_events), sql(on_events)),
        ("triggers, no NOTIFY", "appointments", sql(off_notify), sql(on_notify)),
        ("triggers, no advisory lock", "appointments", sql(no_lock), sql(lock_fn)),
        ("triggers, neither", "appointments", sql(off_notify, no_lock), sql(on_notify, lock_fn)),
    ]


def write_side(rig: Rig, server: TornadoSSE | None, results: dict[str, list[Result]]) -> None:
    """Every variant, --write-rounds times; results by label."""
    a = rig.args
    if server is not None:
        server.stop()
    variants: list[tuple[str, str, Step, Step]] = [
        ("plain", "appointments_plain", None, None), ("triggers", "appointments", None, None)]
    conn = psycopg.connect(rig.db.dsn, autocommit=True)
    try:
        if a.write_breakdown:
            variants += breakdown(conn)
        for rnd in range(1, a.write_rounds + 1):
            for label, table, before, after in variants:
                log(f"write round {rnd}/{a.write_rounds}: {label} ({table}) ...")
                if before:
                    before()
                try:
                    r = pgbench(rig, table, a.write_secs)
                finally:
                    if after:
                        after()
                results.setdefault(label, []).append(r)
                log(f"  tps {r['tps']:.0f}")
    finally:
        conn.close()
    # Deployment view: tornado_sse listening and reading every event.
    if server is not None and a.write_with_server:
        server.start()
        for rnd in range(1, a.write_rounds + 1):
            for label, table in (("plain+server", "appointments_plain"),
                                 ("triggers+server", "appointments")):
                log(f"write round {rnd}/{a.write_rounds}: {label} ...")
                meter = rig.meter(server.procs)
                meter.start()
                r = pgbench(rig, table, a.write_secs)
                r["cpu"] = meter.stop()
                results.setdefault(label, []).append(r)
                log(f"  tps {r['tps']:.0f}")
