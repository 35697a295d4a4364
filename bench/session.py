"""One bench run: start the load client, the database and the systems once,
run the chosen scenarios round by round with the systems interleaved
(A B C A B C ...) so that drift on a shared machine hits every system
alike, collect the results, and stop everything whatever happened.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import scenarios
from harness import HarnessError, log
from meters import LoadClient
from nchan import Nchan, find_nginx
from scenarios import Result, Rig
from systems import Database, DbPublished, PyFloor, Starlette, System, TornadoSSE
from writeside import write_side

SYSTEMS = ("tornado_sse", "nchan", "starlette")
#: Named only on purpose (--systems), never in a default run: yardsticks.
EXTRA_SYSTEMS = ("pyfloor",)
SCENARIOS = ("burst", "paced", "idle", "scoped", "servers", "write")


class Session:
    """Owns every process of the run; :meth:`shutdown` stops them all."""

    def __init__(self, args: argparse.Namespace, workdir: Path, src: Path) -> None:
        self.args = args
        self.workdir = workdir
        self.src = src
        self.systems: dict[str, System] = {}
        self.notes: list[str] = []
        #: scenario -> system (or write variant) -> one result per run.
        self.results: dict[str, dict[str, list[Result]]] = {s: {} for s in SCENARIOS}
        self.harness_errors: list[str] = []
        self.rig: Rig | None = None
        self.client: LoadClient | None = None
        self.db: Database | None = None
        self.event_frame_bytes: int | None = None

    def run(self) -> None:
        a = self.args
        self.client = LoadClient()
        log(f"load client pid {self.client.pid} (uvloop={self.client.info['uvloop']}, "
            f"nofile={self.client.info['nofile']})")
        self.db = Database(self.workdir, self.src)
        log(f"PostgreSQL {self.db.version} at {self.db.dsn}")
        self.rig = Rig(a, self.workdir, self.src, self.client, self.db, self.harness_errors)
        template = self.event_template()
        self.make_systems(template)
        for s in self.systems.values():
            s.start()
            log(f"{s.name} listening on 127.0.0.1:{s.port} (pid {s.proc.pid if s.proc else '?'})")
        for scen in a.scenarios:
            if scen in ("burst", "paced", "idle"):
                self.fan_out(scen)
            elif scen == "scoped":
                self.scoped()
            elif scen == "servers":
                self.servers()
        if "write" in a.scenarios:
            ts = self.systems.get("tornado_sse")
            write_side(self.rig, ts if isinstance(ts, TornadoSSE) else None, self.results["write"])

    def measure(self, scen: str, name: str, what: str, fn: Any, *fn_args: Any) -> None:
        """One measurement; a harness error is recorded, and the run goes on."""
        log(f"{scen} {what}: {name} ...")
        try:
            r: Result = fn(*fn_args)
        except HarnessError as exc:
            log(f"HARNESS ERROR in {scen}/{name}: {exc}")
            self.harness_errors.append(f"{scen}/{name}: {exc}")
            r = {"error": str(exc)}
        self.results[scen].setdefault(name, []).append(r)
        log(f"  {summary(scen, r)}")

    def fan_out(self, scen: str) -> None:
        a = self.args
        rounds = {"burst": a.rounds, "paced": a.paced_rounds, "idle": a.idle_rounds}[scen]
        fn = {"burst": scenarios.burst, "paced": scenarios.paced, "idle": scenarios.idle}[scen]
        for rnd in range(1, rounds + 1):
            for name, system in self.ordered():
                self.measure(scen, name, f"round {rnd}/{rounds}", fn, self.rig, system)
                self.pause()

    def scoped(self) -> None:
        a = self.args
        for size in a.scoped_sizes:
            for rnd in range(1, a.scoped_rounds + 1):
                for name, system in self.ordered():
                    if not system.scoped:
                        continue
                    self.measure("scoped", name, f"{size:,} streams, round {rnd}/{a.scoped_rounds}",
                                 scenarios.scoped, self.rig, system, size)
                    self.pause()

    def servers(self) -> None:
        """The fleet must be the only reader of the database: the session's
        own tornado_sse stops meanwhile and starts again after."""
        a = self.args
        ts = self.systems.get("tornado_sse")
        if ts is not None:
            ts.stop()
        try:
            for count in a.servers_counts:
                for rnd in range(1, a.servers_rounds + 1):
                    self.measure("servers", "tornado_sse",
                                 f"{count} server(s), round {rnd}/{a.servers_rounds}",
                                 scenarios.servers, self.rig, count)
                    self.pause()
        finally:
            if ts is not None:
                ts.start()

    def ordered(self) -> list[tuple[str, System]]:
        return [(s, self.systems[s]) for s in SYSTEMS + EXTRA_SYSTEMS if s in self.systems]

    def pause(self) -> None:
        time.sleep(self.args.pause)

    def event_template(self) -> dict[str, Any]:
        """A real tornado_sse envelope, from a server started for the
        purpose when tornado_sse itself is not among the systems."""
        assert self.db is not None
        server = TornadoSSE(self.workdir, self.db, self.src, label="tornado_sse-template")
        server.start()
        try:
            template, self.event_frame_bytes = server.event_template()
        finally:
            server.stop()
        return template

    def make_systems(self, template: dict[str, Any]) -> None:
        a = self.args
        assert self.db is not None
        for name in a.systems:
            if name == "tornado_sse":
                self.systems[name] = TornadoSSE(self.workdir, self.db, self.src, a.processes,
                                                [x for x in a.tornado_patch.split(",") if x])
            elif name == "starlette":
                self.systems[name] = Starlette(self.workdir, template)
            elif name == "pyfloor":
                self.systems[name] = PyFloor(self.workdir, self.db)
            elif name == "nchan":
                nginx, module = find_nginx()
                if not nginx or not module:
                    note = ("Nchan skipped: nginx and/or the nchan module are not installed "
                            "(apt-get install -y nginx libnginx-mod-nchan)")
                    log(note)
                    self.notes.append(note)
                    continue
                self.systems[name] = Nchan(self.workdir, template, nginx, module, a.nginx_workers)

    def shutdown(self) -> None:
        for s in self.systems.values():
            try:
                s.stop()
            except Exception as exc:  # stop the others all the same
                log(f"stopping {s.name}: {exc}")
            if isinstance(s, DbPublished):
                s.close_db()
        if self.client is not None:
            self.client.close()
        if self.db is not None:
            self.db.stop()


def summary(scen: str, r: Result) -> str:
    """One log line per measurement."""
    if "error" in r and "verify" not in r:
        return "ERROR " + str(r["error"])
    cpu = r.get("cpu", {})
    cpu_s = " ".join(f"{k}={v}" for k, v in cpu.items())
    v = r.get("verify", {})
    exact = f"exact streams {v.get('streams_exact')}/{v.get('streams')}, lost {v.get('lost_frames')}"
    if scen == "burst":
        return f"{r.get('frames_per_sec', 'n/a')} frames/s in {r.get('secs', 'n/a')} s ({exact}) cpu: {cpu_s}"
    if scen == "paced":
        lat = r.get("latency_commit_ms", {})
        return (f"commit->client p50 {lat.get('p50')} ms p99 {lat.get('p99')} ms max {lat.get('max')} ms "
                f"({exact}) cpu: {cpu_s}")
    if scen == "idle":
        return (f"{r['kb_per_stream']} KB/stream (rss {r['rss0_mb']} -> {r['rss_mb']} MB), "
                f"idle cpu {r['server_cpu_pct']}% cpu: {cpu_s}")
    if scen == "scoped":
        lat = r.get("latency_publish_ms", {})
        return (f"{r.get('server_us_per_event')} µs server CPU/event, publish->client p99 "
                f"{lat.get('p99')} ms, frames {v.get('frames')}/{v.get('expected_frames')} ({exact})")
    if scen == "servers":
        return (f"{r.get('servers')} servers: {r.get('postgres_us_per_event')} µs PostgreSQL CPU/event, "
                f"{r.get('server_us_per_event')} µs server CPU/event, {r.get('commits_per_sec')} "
                f"commits/s ({exact})")
    return str(r)
