#!/usr/bin/env python3
"""tornado_sse fan-out benchmark, side by side with Nchan and sse-starlette.

One command::

    python bench/run.py            # full default run, every scenario (about 10 minutes on 2 cores)
    python bench/run.py --quick    # smoke test, < 2 minutes; fails only on harness errors

See bench/README.md for what each scenario measures and how. Everything runs
on 127.0.0.1: a dedicated embedded PostgreSQL in a temp dir, the servers
under test as child processes, and one load client process
(bench/loadclient.py) that all systems share, driven round by round
(A B C A B C ...) so that drift on the machine hits every system alike.

This file only reads the command line and writes the report; the work is in
harness.py (paths, errors), systems.py (the servers and the database),
meters.py (CPU, RSS, the load client), scenarios.py and writeside.py (what
is measured), session.py (one run) and report.py (the Markdown).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shlex
import shutil
import sys
import tempfile
import time
import traceback
import warnings
from pathlib import Path
from typing import Any

from harness import BENCH, HarnessError, log, raise_nofile, snapshot_source
from meters import REST_CPU, SERVER_CPU, machine
from nchan import Nchan, nchan_version
from report import render
from session import EXTRA_SYSTEMS, SCENARIOS, SYSTEMS, Session

warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")  # platformdirs, harmless

#: --quick: every size small, one round; a flag given explicitly still wins.
QUICK = {"rounds": 1, "write_rounds": 1, "paced_rounds": 1, "idle_rounds": 1,
         "burst_streams": 200, "burst_events": 50, "paced_streams": 200, "paced_secs": 3.0,
         "idle_streams": 500, "idle_secs": 2.0, "idle_settle": 0.5, "write_secs": 2.0,
         "write_with_server": False, "write_breakdown": False, "deliver_timeout": 20.0,
         "open_timeout": 60.0,
         "pause": 0.2, "scoped_sizes": "100", "scoped_events": 200, "scoped_rounds": 1,
         "servers_counts": "1,2", "servers_streams": 5, "servers_events": 200, "servers_rounds": 1}


def ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def parser() -> argparse.ArgumentParser:
    doc = __doc__ or ""
    p = argparse.ArgumentParser(description=doc.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--quick", action="store_true",
                   help="smoke test: every scenario at small sizes, 1 round (< 2 minutes)")
    p.add_argument("--scenarios", default=",".join(SCENARIOS), help="comma list of " + ",".join(SCENARIOS))
    p.add_argument("--systems", default=",".join(SYSTEMS),
                   help="comma list of " + ",".join(SYSTEMS) + " (and the yardstick " + ",".join(EXTRA_SYSTEMS) + ")")
    p.add_argument("--rounds", type=int, default=5, help="rounds of the burst scenario")
    p.add_argument("--paced-rounds", type=int, default=1)
    p.add_argument("--idle-rounds", type=int, default=1)
    p.add_argument("--burst-streams", type=int, default=1000)
    p.add_argument("--burst-events", type=int, default=200)
    p.add_argument("--paced-streams", type=int, default=1000)
    p.add_argument("--paced-rate", type=float, default=20.0, help="events per second")
    p.add_argument("--paced-secs", type=float, default=30.0)
    p.add_argument("--idle-streams", type=int, default=10000)
    p.add_argument("--idle-secs", type=float, default=10.0, help="CPU measured over this")
    p.add_argument("--idle-settle", type=float, default=2.0)
    p.add_argument("--scoped-sizes", default="100,1000,5000,10000",
                   help="scoped: comma list of stream counts (one distinct staff member each)")
    p.add_argument("--scoped-events", type=int, default=0,
                   help="scoped: events per size, round-robin over the staff ids "
                        "(0: one per stream, at least 1,000)")
    p.add_argument("--scoped-rate", type=float, default=0.0,
                   help="scoped: events per second (0: back to back)")
    p.add_argument("--scoped-rounds", type=int, default=1)
    p.add_argument("--servers-counts", default="1,2,4,8",
                   help="servers: comma list of server process counts on one database")
    p.add_argument("--servers-streams", type=int, default=20, help="servers: admin streams per server")
    p.add_argument("--servers-events", type=int, default=2000,
                   help="servers: one-row INSERTs, one per transaction, back to back")
    p.add_argument("--servers-rounds", type=int, default=1)
    p.add_argument("--write-rounds", type=int, default=2)
    p.add_argument("--write-secs", type=float, default=10.0, help="seconds per pgbench run")
    p.add_argument("--write-clients", type=int, default=8)
    p.add_argument("--write-with-server", action=argparse.BooleanOptionalAction, default=True,
                   help="also run the write scenario with tornado_sse listening")
    p.add_argument("--write-breakdown", action=argparse.BooleanOptionalAction, default=True,
                   help="also run the trigger table without NOTIFY / without the advisory lock "
                        "(in the bench's own database) to attribute the trigger cost")
    p.add_argument("--processes", type=int, default=1, help="tornado_sse --processes")
    p.add_argument("--tornado-patch", default="",
                   help="diagnostics: run tornado_sse with hooks from bench/tsse_patched.py "
                        "(gclog, memtrace)")
    p.add_argument("--nginx-workers", type=int, default=1, help="nginx worker_processes")
    p.add_argument("--concurrency", type=int, default=200, help="handshakes in flight")
    p.add_argument("--open-timeout", type=float, default=180.0)
    p.add_argument("--deliver-timeout", type=float, default=60.0,
                   help="seconds after the last publish before missing frames count as lost")
    p.add_argument("--pause", type=float, default=0.5, help="seconds between measurements")
    p.add_argument("--pin", action="store_true",
                   help="the server under test on CPU 0, everything else (this process, the load client,"
                        " PostgreSQL, the writer) on CPU 1: issue 21's protocol; steadier CPU figures,"
                        " since the server's caches are no longer shared with the database")
    p.add_argument("--out", default=str(BENCH / "results"), help="directory for latest.md/json")
    return p


def parse(argv: list[str]) -> argparse.Namespace:
    p = parser()
    a = p.parse_args(argv)
    if a.quick:
        given = {x.split("=")[0] for x in argv}
        for name, value in QUICK.items():
            if f"--{name.replace('_', '-')}" not in given:
                setattr(a, name, value)
    a.scenarios = [s for s in a.scenarios.split(",") if s]
    a.systems = [s for s in a.systems.split(",") if s]
    for s in a.scenarios:
        if s not in SCENARIOS:
            p.error(f"unknown scenario {s}")
    for s in a.systems:
        if s not in SYSTEMS + EXTRA_SYSTEMS:
            p.error(f"unknown system {s}")
    if "pyfloor" in a.systems and a.scenarios != ["scoped"]:
        p.error("pyfloor (the Python floor, bench/pyfloor.py) runs the scoped scenario only: --scenarios scoped")
    try:
        a.scoped_sizes = ints(str(a.scoped_sizes))
        a.servers_counts = ints(str(a.servers_counts))
    except ValueError:
        p.error("--scoped-sizes and --servers-counts take comma lists of integers")
    if any(n < 1 for n in a.scoped_sizes + a.servers_counts):
        p.error("--scoped-sizes and --servers-counts must be positive")
    if a.pin and not {SERVER_CPU, REST_CPU} <= os.sched_getaffinity(0):
        p.error(f"--pin needs CPUs {SERVER_CPU} and {REST_CPU}")
    return a


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    a = parse(args)
    raise_nofile()
    if a.pin:  # inherited by every process started from here on; servers move to theirs (scenarios.py)
        os.sched_setaffinity(0, {REST_CPU})
    command = "python bench/run.py" + (" " + shlex.join(args) if args else "")
    started = time.time()
    workdir = Path(tempfile.mkdtemp(prefix="tornado_sse_bench-"))
    os.chmod(workdir, 0o755)
    src, source = snapshot_source(workdir)
    session = Session(a, workdir, src)
    info = machine()
    info["source"] = source
    fatal = None
    try:
        session.run()
    except HarnessError as exc:
        fatal = str(exc)
        log(f"HARNESS FAILURE: {exc}")
    except KeyboardInterrupt:
        fatal = "interrupted"
    except Exception as exc:  # still report what was measured
        traceback.print_exc()
        fatal = f"{type(exc).__name__}: {exc}"
    finally:
        session.shutdown()
    db = session.db
    info["db"] = {"version": db.version, **db.settings} if db is not None else {"version": "?"}
    nchan = session.systems.get("nchan")
    if isinstance(nchan, Nchan):
        info["versions"]["nginx"] = nchan.version()
        info["versions"]["nchan"] = nchan_version()
    doc: dict[str, Any] = {
        "command": command, "started": dt.datetime.fromtimestamp(started).isoformat(timespec="seconds"),
        "duration_secs": round(time.time() - started, 1), "machine": info, "args": vars(a),
        "notes": session.notes, "event_frame_bytes": session.event_frame_bytes,
        "client": {"uvloop": session.client.info.get("uvloop") if session.client else None},
        "results": session.results, "harness_errors": session.harness_errors, "fatal": fatal}
    md = render(doc)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "latest.md").write_text(md)
    (out / "latest.json").write_text(json.dumps(doc, indent=1, default=str))
    print(md)
    log(f"wrote {out / 'latest.md'} and {out / 'latest.json'} ({doc['duration_secs']} s)")
    logs = out / "logs"
    shutil.rmtree(logs, ignore_errors=True)
    logs.mkdir()
    for f in list(workdir.glob("*.log")) + list(workdir.glob("nginx/*.log")):
        shutil.copy(f, logs / f.name)
    shutil.rmtree(workdir, ignore_errors=True)
    if fatal or session.harness_errors:
        log("exit 1: harness failure (not a performance target)")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
