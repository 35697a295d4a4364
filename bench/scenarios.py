"""The fan-out scenarios: what each opens, publishes and measures.

Each scenario function takes the :class:`Rig` (everything session.py
started) and a system, runs one measurement and returns its result dict;
session.py runs them round by round, interleaving the systems. Every run
that publishes checks exactly-once, in-order delivery on every stream; a
miss is recorded as a harness error (exit 1), never hidden in a median.

- burst: N admin/broadcast streams, E events back to back: frames/s.
- paced: N streams, R events/s: publish → client and commit → client latency.
- idle: a fresh server, N idle streams: KB per stream, idle CPU.
- scoped: N streams, each one staff member's calendar (a staff token; Nchan:
  one channel per staff member), events round-robin over the staff ids so
  each reaches exactly one stream: server CPU per event, p99 latency.
- servers: K separate server processes on one database, S admin streams
  each, E one-row commits: PostgreSQL and server CPU per event, commit rate.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
from harness import HarnessError, log
from meters import SERVER_CPU, CpuMeter, LoadClient, Procs, pin, rss_of, tree
from systems import Database, DbPublished, System, TornadoSSE

Result = dict[str, Any]


@dataclass
class Rig:
    """What the scenarios run on, started once per run by session.py."""

    args: argparse.Namespace
    workdir: Path
    src: Path
    client: LoadClient
    db: Database
    harness_errors: list[str] = field(default_factory=list)

    def meter(self, server: Procs) -> CpuMeter:
        me = psutil.Process()
        return CpuMeter({"server": server, "client": lambda: [self.client.ps],
                         "postgres": self.db.procs, "driver": lambda: [me]})

    def open_streams(self, system: System, n: int, tag: str = "",
                     streams: list[dict[str, Any]] | None = None) -> Result:
        """Open ``n`` streams to ``system`` (or one per entry of ``streams``)."""
        system.alive()
        a = self.args
        if a.pin:  # every scenario opens streams first, after any (re)start of the server
            pin(system.procs(), SERVER_CPU)
        r = self.client.call("open", reply_timeout=a.open_timeout + 30, host="127.0.0.1",
                             port=system.port, path=system.path, headers=system.headers(), n=n,
                             concurrency=a.concurrency, timeout=a.open_timeout, tag=tag,
                             streams=streams)
        if r["failed"]:
            raise HarnessError(f"{system.name}: {sum(r['failed'].values())} of "
                               f"{len(streams) if streams else n} streams failed to open: {r['failed']}")
        return r

    def close_streams(self) -> None:
        self.client.call("close", reply_timeout=60)

    def publish_run(self, system: System, staffs: list[int | None], rate: float | None,
                    latency: bool = False, tags: dict[int, str] | None = None) -> Result:
        """Publish one event per entry of ``staffs`` (None: to everyone),
        back to back or at ``rate``/s; wait for delivery and verify it. With
        ``tags`` (staff -> stream tag) each stream expects only the events
        of its staff member. Latency is computed when paced or ``latency``."""
        self.client.call("arm")
        time.sleep(0.2)
        system.begin_publishing()
        meter = self.meter(system.procs)
        provisional: list[int] = []
        sent: list[float] = []
        committed: list[float] = []
        count = len(staffs)
        meter.start()
        t0 = time.time()
        for k, staff in enumerate(staffs):
            if rate:
                delay = t0 + k / rate - time.time()
                if delay > 0:
                    time.sleep(delay)
            sent.append(time.time())
            provisional.append(system.publish_one(staff))
            committed.append(time.time())
        publish_secs = committed[-1] - t0
        ids = system.resolve_ids(provisional)
        expect: dict[str, list[int]] | None = None
        if tags is not None:
            expect = {}
            for staff, ev in zip(staffs, ids, strict=True):
                assert staff is not None
                expect.setdefault(tags[staff], []).append(ev)
        timeout = self.args.deliver_timeout + (count / rate if rate else 0)
        w = self.client.call("wait", reply_timeout=timeout + 30, ids=ids, timeout=timeout,
                             expect=expect)
        cpu = meter.stop()
        # Latency references: "publish" = just before the INSERT / POST was
        # sent; "commit" = when the commit (POST) returned.
        v = self.client.call("verify", reply_timeout=300, ids=ids, expect=expect,
                             refs={"publish": sent, "commit": committed} if rate or latency else None)
        out: Result = {"events": count, "streams": w["streams"], "publish_secs": round(publish_secs, 4),
                       "cpu": cpu, "verify": v, "complete_streams": w["complete"]}
        if w["last_arrival"] is not None:
            out["secs"] = round(w["last_arrival"] - sent[0], 4)
        for ref, lat in (v.pop("latency", None) or {}).items():
            out[f"latency_{ref}_ms"] = {k: (round(x * 1000, 2) if k != "n" else x)
                                        for k, x in lat.items() if k != "per_event_max"}
            out[f"per_event_max_{ref}_ms"] = [None if x is None else round(x * 1000, 1)
                                              for x in lat["per_event_max"]]
        if v["lost_frames"] or v["duplicate_frames"] or v["unexpected_frames"] or \
                v["disordered_streams"] or w["incomplete"] or v["frames"] != v["expected_frames"]:
            msg = (f"{system.name}: delivery not exact: lost={v['lost_frames']} "
                   f"dup={v['duplicate_frames']} unexpected={v['unexpected_frames']} "
                   f"disordered_streams={v['disordered_streams']} incomplete={w['incomplete']} "
                   f"frames={v['frames']}/{v['expected_frames']}")
            log("HARNESS/DELIVERY ERROR " + msg)
            self.harness_errors.append(msg)
            out["error"] = msg
        return out


def per_event_us(cpu_s: float, events: int) -> float:
    return round(cpu_s / events * 1e6, 1) if events else 0.0


# -- 1. burst ------------------------------------------------------------------
def burst(rig: Rig, system: System) -> Result:
    a = rig.args
    opened = rig.open_streams(system, a.burst_streams)
    try:
        r = rig.publish_run(system, [None] * a.burst_events, None)
    finally:
        rig.close_streams()
    r["open_secs"] = opened["secs"]
    if "secs" in r:
        r["frames_per_sec"] = round(r["verify"]["frames"] / r["secs"], 1)
    return r


# -- 2. paced ------------------------------------------------------------------
def paced(rig: Rig, system: System) -> Result:
    a = rig.args
    rig.open_streams(system, a.paced_streams)
    try:
        return rig.publish_run(system, [None] * int(a.paced_rate * a.paced_secs), a.paced_rate)
    finally:
        rig.close_streams()


# -- 3. idle -------------------------------------------------------------------
def idle(rig: Rig, system: System) -> Result:
    a = rig.args
    system.restart()  # a fresh process: the delta is the streams' own memory
    time.sleep(1.0)
    rss0 = rss_of(system.procs())
    opened = rig.open_streams(system, a.idle_streams)
    try:
        time.sleep(a.idle_settle)
        rss1 = rss_of(system.procs())
        meter = rig.meter(system.procs)
        meter.start()
        time.sleep(a.idle_secs)
        cpu = meter.stop()
        rss2 = rss_of(system.procs())
        status = rig.client.call("status")
    finally:
        rig.close_streams()
    n = a.idle_streams
    return {"streams": n, "open_secs": opened["secs"], "rss0_mb": round(rss0 / 2**20, 1),
            "rss_mb": round(rss1 / 2**20, 1), "rss_end_mb": round(rss2 / 2**20, 1),
            "kb_per_stream": round((max(rss1, rss2) - rss0) / n / 1024, 2),
            "cpu": cpu, "server_cpu_pct": round(100 * cpu["server"] / cpu["wall"], 2),
            "still_open": status["open"] - status["closed"]}


# -- 4. scoped -----------------------------------------------------------------
def scoped_events(args: argparse.Namespace, streams: int) -> int:
    """--scoped-events, or by default one per stream but at least 1,000 (so
    CPU per event is not a handful of events' noise)."""
    return int(args.scoped_events) or max(streams, 1000)


def scoped(rig: Rig, system: System, streams: int) -> Result:
    """``streams`` calendars of distinct staff members; events round-robin."""
    a = rig.args
    staffs = list(range(1, streams + 1))
    specs = system.scoped_streams(staffs)
    opened = rig.open_streams(system, len(specs), streams=specs)
    events = scoped_events(a, streams)
    try:
        r = rig.publish_run(system, [staffs[k % streams] for k in range(events)],
                            a.scoped_rate or None, latency=True,
                            tags={s: str(s) for s in staffs})
    finally:
        rig.close_streams()
    r["open_secs"] = opened["secs"]
    r["server_us_per_event"] = per_event_us(r["cpu"]["server"], events)
    r["postgres_us_per_event"] = per_event_us(r["cpu"]["postgres"], events)
    r["client_us_per_event"] = per_event_us(r["cpu"]["client"], events)
    return r


# -- 5. servers ----------------------------------------------------------------
class Fleet(DbPublished):
    """K separate tornado_sse processes (own ports, own listeners) on one
    database, fed by one writer: the README's scale-out story."""

    name = "tornado_sse"

    def __init__(self, rig: Rig, count: int) -> None:
        super().__init__(rig.workdir, rig.db, f"servers{count}")
        self.servers = [TornadoSSE(rig.workdir, rig.db, rig.src, label=f"servers{count}-{k}")
                        for k in range(count)]

    def start(self) -> None:
        for s in self.servers:
            s.start()

    def stop(self) -> None:
        for s in self.servers:
            s.stop()
        self.close_db()

    def alive(self) -> None:
        for s in self.servers:
            s.alive()

    def procs(self) -> list[psutil.Process]:
        return [p for s in self.servers if s.proc is not None for p in tree(s.proc.pid)]


def servers(rig: Rig, count: int) -> Result:
    """``count`` servers, --servers-streams admin streams each, one writer
    committing --servers-events one-row INSERTs back to back."""
    a = rig.args
    fleet = Fleet(rig, count)
    try:
        fleet.start()
        time.sleep(0.5)  # every listener has LISTENed
        for s in fleet.servers:
            rig.open_streams(s, a.servers_streams)
        try:
            r = rig.publish_run(fleet, [None] * a.servers_events, None)
        finally:
            rig.close_streams()
    finally:
        fleet.stop()
    events = a.servers_events
    r["servers"] = count
    r["commits_per_sec"] = round(events / r["publish_secs"], 1) if r["publish_secs"] else None
    r["postgres_us_per_event"] = per_event_us(r["cpu"]["postgres"], events)
    r["server_us_per_event"] = per_event_us(r["cpu"]["server"], events)
    return r
