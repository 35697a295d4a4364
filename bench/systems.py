"""The systems under test and their database: start, stop, publish, and
say where a stream connects.

- PostgreSQL: a dedicated embedded PostgreSQL in the run's temp dir,
  migrated with the server's own ``migrate`` command.
- tornado_sse: ``python -m tornado_sse serve`` from the source snapshot; it
  gets its events the production way, one ``INSERT INTO appointments`` per
  transaction whose trigger writes ``sse_events`` and NOTIFYs.
- sse-starlette (bench/starlette_app.py) and Nchan (bench/nchan.py):
  events are POSTed over one keep-alive connection, carrying the very
  envelope tornado_sse sent for a real appointment.

The harness relies only on what SPEC.md promises (the HTTP/SSE protocol,
the tables' documented columns, HS256 tokens with ``role``/``staff_id``/
``exp``) and on flags the server's ``--help`` lists; it imports nothing
from the server, which other engineers change while it is measured.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import time
from functools import cache
from pathlib import Path
from typing import Any

import jwt
import psutil
import psycopg
from harness import BENCH, JWT_SECRET, PY, HarnessError, free_port, log, raise_nofile, wait_port
from meters import tree

#: One appointment for staff member 1, as pgbench inserts it (write side):
#: zero length, so that repeated bookings never double-book (sql/005).
INSERT_SQL = ("INSERT INTO appointments (product_id, staff_ids, start_at, end_at)"
              " VALUES (1, '{1}', now(), now())")


def insert_for(staff: int) -> str:
    """One appointment concerning ``staff`` only (an int: safe to format)."""
    return INSERT_SQL.replace("'{1}'", f"'{{{int(staff)}}}'")


def make_token(role: str, staff_id: int | None = None, ttl: int = 6 * 3600) -> str:
    """A token as SPEC §4 describes it (HS256, ``role``, ``exp``, a staff
    member's ``staff_id``), signed with the bench's secret."""
    now = int(time.time())
    claims: dict[str, Any] = {"role": role, "iat": now, "exp": now + ttl}
    if staff_id is not None:
        claims["staff_id"] = staff_id
    return jwt.encode(claims, JWT_SECRET, algorithm="HS256")


@cache
def server_flags(src: Path) -> frozenset[str]:
    """The flags ``python -m tornado_sse --help`` of the snapshot lists, so
    the bench passes an option (``--max-streams-per-token``) only where the
    server under test has it."""
    out = subprocess.run([PY, "-m", "tornado_sse", "--help"], cwd=src, capture_output=True,
                         text=True, timeout=60, env={**os.environ, "PYTHONPATH": str(src)})
    return frozenset(w.strip("[],") for w in out.stdout.split() if w.startswith(("--", "[--")))


class Database:
    """An embedded PostgreSQL of the run's own, deleted afterwards."""

    def __init__(self, workdir: Path, src: Path) -> None:
        from tornado_sse.pgembedded import bin_dir, get_server

        self.bin = bin_dir()
        parent = workdir / "pg"
        parent.mkdir()
        os.chmod(workdir, 0o755)
        os.chmod(parent, 0o755)
        self.server = get_server(parent / "pgdata", cleanup_mode="delete")
        self.dsn: str = self.server.get_uri()
        pid = self.server.get_pid()
        if pid is None:
            raise HarnessError("the embedded PostgreSQL did not start")
        self.postmaster_pid = pid
        done = subprocess.run([PY, "-m", "tornado_sse", "migrate", "--dsn", self.dsn], cwd=src,
                              capture_output=True, text=True, timeout=120,
                              env={**os.environ, "PYTHONPATH": str(src)})
        if done.returncode != 0:
            raise HarnessError(f"migrate failed: {done.stderr[-1000:]}")
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            conn.execute("CREATE TABLE IF NOT EXISTS appointments_plain"
                         " (LIKE appointments INCLUDING DEFAULTS)")
            self.version = self.show(conn, "server_version")
            self.settings = {k: self.show(conn, k) for k in
                             ("fsync", "synchronous_commit", "shared_buffers", "max_connections")}

    @staticmethod
    def show(conn: psycopg.Connection[Any], name: str) -> str:
        row = conn.execute(f"SHOW {name}").fetchone()
        return str(row[0]) if row else "?"

    def procs(self) -> list[psutil.Process]:
        """The postmaster and every backend and auxiliary process."""
        return tree(self.postmaster_pid)

    def stop(self) -> None:
        try:
            self.server._cleanup()
        except Exception as exc:  # report and go on shutting the rest down
            log(f"stopping PostgreSQL: {exc}")


class DbWriter:
    """Commits appointments one per transaction, like a booking does, and
    finds the event ids they made."""

    def __init__(self, dsn: str) -> None:
        self.conn = psycopg.connect(dsn, autocommit=True)
        self._base = 0
        self._count = 0

    def begin(self) -> None:
        row = self.conn.execute("SELECT coalesce(max(id), 0) FROM sse_events").fetchone()
        self._base = int(row[0]) if row else 0
        self._count = 0

    def insert(self, staff: int) -> int:
        """Commit one appointment for ``staff``; returns its sequence number."""
        self.conn.execute(insert_for(staff))
        self._count += 1
        return self._count

    def resolve_ids(self, count: int) -> list[int]:
        """The event ids of the inserts since begin(), in commit order. The
        bench is the only writer and ids are visible in commit order (SPEC
        §1), so the k-th commit made the k-th new event; checked by count."""
        rows = self.conn.execute("SELECT id FROM sse_events WHERE id > %s ORDER BY id",
                                 (self._base,)).fetchall()
        ids = [int(r[0]) for r in rows]
        if len(ids) != count:
            raise HarnessError(f"expected {count} new events, found {len(ids)}")
        return ids

    def close(self) -> None:
        self.conn.close()


class System:
    """A server under test: its processes, where streams connect, how an
    event is published."""

    name = "?"
    #: Can serve one stream per staff member (the scoped scenario)?
    scoped = False

    def __init__(self, workdir: Path, label: str | None = None) -> None:
        self.workdir = workdir
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self.logfile = workdir / f"{label or self.name}.log"

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

    path = "/sse"

    def headers(self) -> dict[str, str]:
        return {}

    def scoped_streams(self, staffs: list[int]) -> list[dict[str, Any]]:
        """One stream per staff member: path, headers and tag (the staff id)."""
        raise NotImplementedError

    def begin_publishing(self) -> None:
        pass

    def publish_one(self, staff: int | None = None) -> int:
        """Publish one event (to everyone, or concerning ``staff`` only);
        return its number."""
        raise NotImplementedError

    def resolve_ids(self, provisional: list[int]) -> list[int]:
        return provisional

    def _popen(self, argv: list[str], **kw: Any) -> subprocess.Popen[bytes]:
        out = open(self.logfile, "ab")  # noqa: SIM115 - the child keeps it
        return subprocess.Popen(argv, stdout=out, stderr=out, preexec_fn=raise_nofile,
                                start_new_session=True, **kw)


class DbPublished(System):
    """A system whose events are rows committed to its database (tornado_sse,
    one server or a fleet): one writer, one INSERT per event."""

    def __init__(self, workdir: Path, db: Database, label: str | None = None) -> None:
        super().__init__(workdir, label)
        self.db = db
        self.writer: DbWriter | None = None

    def begin_publishing(self) -> None:
        if self.writer is None:
            self.writer = DbWriter(self.db.dsn)
        self.writer.begin()

    def publish_one(self, staff: int | None = None) -> int:
        assert self.writer is not None
        return self.writer.insert(1 if staff is None else staff)  # returns once committed

    def resolve_ids(self, provisional: list[int]) -> list[int]:
        assert self.writer is not None
        return self.writer.resolve_ids(len(provisional))

    def close_db(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


class TornadoSSE(DbPublished):
    """One ``python -m tornado_sse serve`` (``--processes N`` inside)."""

    name = "tornado_sse"
    scoped = True

    def __init__(self, workdir: Path, db: Database, src: Path, processes: int = 1,
                 patches: list[str] | None = None, label: str | None = None) -> None:
        super().__init__(workdir, db, label)
        self.src = src
        self.patches = patches or []
        self.processes = processes
        self.token = make_token("admin")

    def argv(self) -> list[str]:
        argv = [PY, "-m", "tornado_sse", "serve"]
        if self.patches:
            argv = [PY, str(BENCH / "tsse_patched.py"), ",".join(self.patches), "serve"]
        argv += ["--dsn", self.db.dsn, "--jwt-secret", JWT_SECRET,
                 "--port", str(self.port), "--log-level", "warning"]
        if self.processes != 1:
            argv += ["--processes", str(self.processes)]
        if "--max-streams-per-token" in server_flags(self.src):
            argv += ["--max-streams-per-token", "0"]  # 10,000 streams on one admin token
        if "--max-connects-per-second" in server_flags(self.src):
            argv += ["--max-connects-per-second", "0"]  # ... opened as fast as the bench can
        return argv

    def start(self) -> None:
        self.port = free_port()
        size0 = self.logfile.stat().st_size if self.logfile.exists() else 0
        self.proc = self._popen(self.argv(), cwd=self.src,
                                env={**os.environ, "TSSE_SRC": str(self.src),
                                     "PYTHONPATH": str(self.src)})
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise HarnessError(f"tornado_sse exited with {self.proc.returncode}: "
                                   f"{self.logfile.read_text()[-2000:]}")
            with open(self.logfile, "rb") as f:
                f.seek(size0)
                if b"tornado_sse listening on" in f.read():
                    break
            time.sleep(0.1)
        else:
            raise HarnessError("tornado_sse did not announce itself within 60 s")
        # Listening is not yet listening to the database: /healthz says 200
        # once the listener is connected (SPEC §6).
        while time.monotonic() < deadline:
            if self.status("/healthz") == 200:
                return
            time.sleep(0.1)
        raise HarnessError("tornado_sse's /healthz did not answer 200 within 60 s")

    def status(self, path: str) -> int:
        """The status of GET ``path`` (0 when the connection fails)."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            conn.request("GET", path)
            resp = conn.getresponse()
            resp.read()
            return resp.status
        except OSError:
            return 0
        finally:
            conn.close()

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def scoped_streams(self, staffs: list[int]) -> list[dict[str, Any]]:
        # The deployment: each calendar holds its staff member's own token,
        # which scopes its audience (SPEC §4).
        return [{"path": "/sse", "tag": str(s),
                 "headers": {"Authorization": f"Bearer {make_token('staff', s)}"}} for s in staffs]

    def get_json(self, path: str) -> Any:
        """GET ``path`` with the admin token; the decoded JSON body."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.request("GET", path, headers=self.headers())
            resp = conn.getresponse()
            body = resp.read()
        finally:
            conn.close()
        if resp.status != 200:
            raise HarnessError(f"GET {path}: {resp.status} {body[:300]!r}")
        return json.loads(body)

    def event_template(self) -> tuple[dict[str, Any], int]:
        """A real envelope (SPEC §2), fetched over /poll after one INSERT, and
        its size as an SSE frame: every system then carries the same bytes."""
        last = int(self.get_json("/poll")["last_id"])
        writer = DbWriter(self.db.dsn)
        try:
            writer.conn.execute(INSERT_SQL)
        finally:
            writer.close()
        events = self.get_json(f"/poll?since_id={last}&timeout=10")["events"]
        if not events:
            raise HarnessError("tornado_sse did not deliver the template event over /poll")
        ev: dict[str, Any] = events[0]
        data = json.dumps(ev, separators=(",", ":"))
        frame = f"id: {ev['id']}\nevent: {ev['topic']}\ndata: {data}\n\n"
        return ev, len(frame.encode())


def envelope(template: dict[str, Any], n: int) -> str:
    """The tornado_sse event JSON with event number ``n`` (same size, same shape)."""
    t = dict(template)
    t["id"] = n
    return json.dumps(t, separators=(",", ":"))


class HTTPPublisher(System):
    """Publishes the event envelope by HTTP POST over one keep-alive connection."""

    publish_path = "/"
    seq = 10_000_000  # event numbers of the HTTP systems (shared, increasing)

    def __init__(self, workdir: Path, template: dict[str, Any]) -> None:
        super().__init__(workdir)
        self.template = template
        self.http: http.client.HTTPConnection | None = None

    def begin_publishing(self) -> None:
        # A fresh keep-alive connection per run (servers time idle ones out).
        if self.http is not None:
            self.http.close()
        self.http = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        self.http.connect()
        assert self.http.sock is not None
        self.http.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def publish_path_for(self, staff: int | None) -> str:
        return self.publish_path

    def publish_one(self, staff: int | None = None) -> int:
        HTTPPublisher.seq += 1
        n = HTTPPublisher.seq
        body = envelope(self.template, n).encode()
        assert self.http is not None
        self.http.request("POST", self.publish_path_for(staff), body=body,
                          headers={"Content-Type": "application/json"})
        resp = self.http.getresponse()
        resp.read()
        if resp.status not in (200, 201, 202):
            raise HarnessError(f"{self.name} publish answered {resp.status}")
        return n

    def stop(self) -> None:
        if self.http is not None:
            self.http.close()
            self.http = None
        super().stop()


class PyFloor(DbPublished):
    """bench/pyfloor.py: the least a Python asyncio server does per scoped
    event, on the same database and inserts (a yardstick, not a product)."""

    name = "pyfloor"
    scoped = True

    def start(self) -> None:
        self.port = free_port()
        self.proc = self._popen([PY, str(BENCH / "pyfloor.py"), self.db.dsn, str(self.port)])
        wait_port(self.port, 30, self.proc)

    def scoped_streams(self, staffs: list[int]) -> list[dict[str, Any]]:
        return [{"path": f"/sse?staff={s}", "tag": str(s), "headers": {}} for s in staffs]


class Starlette(HTTPPublisher):
    """sse-starlette: one in-memory broadcast (no per-staff streams)."""

    name = "starlette"
    publish_path = "/publish"

    def start(self) -> None:
        self.port = free_port()
        argv = [PY, "-m", "uvicorn", "starlette_app:app", "--app-dir", str(BENCH),
                "--host", "127.0.0.1", "--port", str(self.port), "--log-level", "warning",
                "--no-access-log", "--backlog", "4096"]
        self.proc = self._popen(argv, cwd=BENCH)
        wait_port(self.port, 30, self.proc)
