"""The instruments: CPU seconds and RSS of process trees (psutil reads
/proc), the machine's description, and the pipe to the load client, which
timestamps every read and so measures delivery and latency.

CPU is read per thread before and after a measurement and the difference
summed per named group (server, client, postgres, driver), so a process or
thread that starts during the measurement (a new PostgreSQL backend) counts
from zero; what the machine did beyond those groups is reported as "other",
a noise indicator on a shared box. Per-thread CPU comes from
/proc/PID/task/TID/schedstat (nanoseconds; /proc/PID/stat counts 10 ms
ticks, too coarse for a few hundred events at tens of µs each); a thread
that exits during the measurement loses its share (none of the measured
servers starts or ends threads per event).
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import threading
import time
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path
from typing import Any

import psutil
from harness import BENCH, PY, HarnessError, raise_nofile

Procs = Callable[[], list[psutil.Process]]


def tree(pid: int) -> list[psutil.Process]:
    """The process and all its descendants (nginx workers, postgres backends)."""
    try:
        p = psutil.Process(pid)
        return [p, *p.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


#: --pin: the servers' CPU and everyone else's (issue 21's protocol).
SERVER_CPU, REST_CPU = 0, 1


def pin(procs: list[psutil.Process], cpu: int) -> None:
    """Every thread of ``procs`` on ``cpu`` (affinity is per thread on
    Linux, and a server's helper threads count in its CPU too)."""
    for p in procs:
        try:
            threads = p.threads()
        except psutil.Error:
            continue
        for t in threads:
            try:
                os.sched_setaffinity(t.id, {cpu})
            except OSError:  # the thread ended meanwhile
                pass


def thread_cpu(pid: int) -> dict[int, float]:
    """CPU seconds of each thread of ``pid``, from schedstat; {} once it is gone."""
    out: dict[int, float] = {}
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                out[int(tid)] = int(f.read().split()[0]) / 1e9
        except (OSError, ValueError, IndexError):
            pass
    return out


def rss_of(procs: list[psutil.Process]) -> int:
    """Resident bytes summed over ``procs`` (gone processes count 0)."""
    total = 0
    for p in procs:
        try:
            total += p.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return total


class CpuMeter:
    """CPU seconds of named process groups between start() and stop()."""

    def __init__(self, groups: dict[str, Procs]) -> None:
        self.groups = groups
        self._start: dict[str, dict[int, float]] = {}
        self.wall0 = 0.0

    @staticmethod
    def _busy() -> float:
        t = psutil.cpu_times()
        return float(t.user + t.nice + t.system + getattr(t, "irq", 0) + getattr(t, "softirq", 0))

    def _snap(self) -> dict[str, dict[int, float]]:
        """Group -> thread id -> CPU seconds."""
        out: dict[str, dict[int, float]] = {"machine": {0: self._busy()}}
        for name, fn in self.groups.items():
            d: dict[int, float] = {}
            for p in fn():
                d.update(thread_cpu(p.pid))
            out[name] = d
        return out

    def start(self) -> None:
        self._start = self._snap()
        self.wall0 = time.monotonic()

    def stop(self) -> dict[str, float]:
        end = self._snap()
        out = {}
        for name, d in end.items():
            before = self._start.get(name, {})
            out[name] = round(sum(v - before.get(pid, 0.0) for pid, v in d.items()), 3)
        # Everything else the machine did meanwhile (other users of the box,
        # kernel work not charged to a process): a noise indicator.
        machine_busy = out.pop("machine")
        out["other"] = round(max(0.0, machine_busy - sum(out.values())), 3)
        out["wall"] = round(time.monotonic() - self.wall0, 3)
        return out


def machine() -> dict[str, Any]:
    """What the report says about the box and the software versions."""
    model = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import tornado

    versions = {"python": platform.python_version(), "tornado": tornado.version}
    for mod in ("uvicorn", "sse_starlette", "starlette", "uvloop", "psycopg", "psutil"):
        try:
            versions[mod] = version(mod.replace("_", "-"))
        except Exception:  # not installed: the report just omits it
            pass
    return {"nproc": os.cpu_count(), "cpu_model": model,
            "mem_gb": round(psutil.virtual_memory().total / 2**30, 1),
            "kernel": platform.release(), "versions": versions,
            "loadavg_at_start": os.getloadavg()}


class LoadClient:
    """bench/loadclient.py in its own process, driven one JSON line at a
    time: its own open-file limit, and its CPU apart from the driver's."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen([PY, str(BENCH / "loadclient.py")], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True, bufsize=1,
                                     preexec_fn=raise_nofile)
        hello = self._read(30)
        self.pid = int(hello["pid"])
        self.info = hello
        self.ps = psutil.Process(self.pid)

    def _read(self, timeout: float) -> dict[str, Any]:
        stdout = self.proc.stdout
        assert stdout is not None
        result: list[str] = []
        t = threading.Thread(target=lambda: result.append(stdout.readline()), daemon=True)
        t.start()
        t.join(timeout)
        if not result or not result[0]:
            raise HarnessError(f"load client did not answer within {timeout:.0f}s")
        reply: dict[str, Any] = json.loads(result[0])
        if "error" in reply:
            raise HarnessError(f"load client: {reply['error']}")
        return reply

    def call(self, cmd: str, reply_timeout: float = 300, **kw: Any) -> dict[str, Any]:
        """One command (see loadclient.py's docstring) and its reply."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"cmd": cmd, **kw}) + "\n")
        self.proc.stdin.flush()
        return self._read(reply_timeout)

    def close(self) -> None:
        try:
            self.call("quit", reply_timeout=10)
        except Exception:  # already gone: nothing to say goodbye to
            pass
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
