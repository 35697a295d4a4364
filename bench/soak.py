"""Soak: under load, faults and reconnects, no client loses or repeats an event.

    python bench/soak.py --duration 60

Runs a real server process (``run.py``) on a private embedded PostgreSQL
and, for ``--duration`` seconds:

- writers change rows at ``--rate`` per second (``run.py simulate``: pgbench
  with sql/simulate.sql, every topic);
- SSE and long-poll clients, admin and staff, disconnect at random and
  resume from their cursor (``Last-Event-ID`` / ``since_id``);
- the listener's backend is terminated every ``--kill-every`` seconds;
- PostgreSQL is restarted once, half-way;
- one SSE client stops reading while large events are written, until the
  server cuts it (its backlog passes --max-buffer), then resumes.

At the end each client must hold exactly the events its role entitles it
to, once each, in id order. The entitlement is computed independently of
the server, in SQL: an admin gets every event, a staff member every
availability event and every appointment event whose audience includes
them. Prints a table; exits 1 on any loss, duplicate or disorder.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import socket
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tornado_sse.auth import issue_token  # noqa: E402
from tornado_sse.seed import seed_if_empty  # noqa: E402
from tornado_sse.testing.postgres import OwnPostgres  # noqa: E402
from tornado_sse.testing.processes import serving  # noqa: E402
from tornado_sse.testing.sse_client import SSEConnection, SSEParser, request  # noqa: E402

SECRET = "soak-secret-soak-secret-soak-secret!"
MAX_BUFFER = 64 * 1024


@dataclass
class Client:
    name: str
    kind: str  # sse | poll | slow
    staff_id: int | None  # None: admin
    cursor: int
    got: list[int] = field(default_factory=list)
    reconnects: int = 0
    resets: int = 0
    cut: bool = False

    def token(self) -> str:
        if self.staff_id is None:
            return issue_token(SECRET, role="admin", ttl=3600)
        return issue_token(SECRET, role="staff", staff_id=self.staff_id, ttl=3600)

    def take(self, ids: list[int]) -> None:
        self.got += ids
        if ids:
            self.cursor = max(self.cursor, ids[-1])


async def sse_client(url: str, c: Client, stop: asyncio.Event) -> None:
    """Connect, read for a random while, hang up, resume: until ``stop``."""
    while not stop.is_set():
        headers = {"Authorization": "Bearer " + c.token(), "Last-Event-ID": str(c.cursor)}
        try:
            conn = await request(url + "/sse", headers=headers)
        except OSError:
            await asyncio.sleep(0.5)
            continue
        if not isinstance(conn, SSEConnection):
            await asyncio.sleep(0.5)  # e.g. 503 while the database restarts
            continue
        c.reconnects += 1
        until = time.monotonic() + random.uniform(0.5, 6)
        try:
            while time.monotonic() < until and not stop.is_set():
                try:
                    msg = await conn.next(timeout=0.5)
                except asyncio.TimeoutError:
                    if conn.ended.done() and conn.messages.empty():
                        break
                    continue
                if msg.event == "reset":
                    c.resets += 1
                    c.cursor = int(msg.id)
                    continue
                c.take([int(msg.id)])
        finally:
            conn.close()


async def poll_client(url: str, c: Client, stop: asyncio.Event) -> None:
    while not stop.is_set():
        try:
            resp = await request(f"{url}/poll?since_id={c.cursor}&timeout={random.uniform(0.2, 4):.1f}",
                                 headers={"Authorization": "Bearer " + c.token()})
        except OSError:
            await asyncio.sleep(0.5)
            continue
        if isinstance(resp, SSEConnection):  # /poll never streams; a server bug
            resp.close()
            await asyncio.sleep(0.5)
            continue
        if resp.status != 200:
            await asyncio.sleep(0.5)
            continue
        body = resp.json()
        if "reset" in body:
            c.resets += 1
        c.take([e["id"] for e in body["events"]])
        c.cursor = max(c.cursor, body["last_id"])
        c.reconnects += 1
        if random.random() < 0.2:
            await asyncio.sleep(random.uniform(0, 2))  # away for a while


async def slow_client(url: str, dsn: str, c: Client, start_after: float) -> None:
    """Stop reading while ~6 MB of events are written; the server must cut us
    (and not buffer it all); then read what arrived and resume."""
    await asyncio.sleep(start_after)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    loop = asyncio.get_running_loop()
    await loop.sock_connect(sock, ("127.0.0.1", int(url.rsplit(":", 1)[1])))
    await loop.sock_sendall(sock, (f"GET /sse HTTP/1.1\r\nHost: soak\r\nAuthorization: Bearer {c.token()}"
                                   f"\r\nLast-Event-ID: {c.cursor}\r\n\r\n").encode())
    big = "x" * 100_000
    written = 0
    while written < 60:  # a writer like any other: the restart may interrupt it
        try:
            async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
                while written < 60:
                    await conn.execute("INSERT INTO availabilities (scope, title) VALUES ('global', %s)",
                                       (big,))
                    written += 1
        except psycopg.OperationalError:
            await asyncio.sleep(0.5)
    await asyncio.sleep(1)
    received = bytearray()
    while True:  # read everything the kernel held, until the server's cut
        try:
            data = await asyncio.wait_for(loop.sock_recv(sock, 1 << 20), 5)
        except (asyncio.TimeoutError, ConnectionError):
            break
        if not data:
            c.cut = True
            break
        received += data
    sock.close()
    parser = SSEParser()
    _head, _, body = bytes(received).partition(b"\r\n\r\n")
    payload = bytearray()
    while body:  # de-chunk what we have; a partial last chunk is dropped
        size_line, sep, rest = body.partition(b"\r\n")
        if not sep or not size_line.strip():
            break
        size = int(size_line, 16)
        if size == 0 or len(rest) < size + 2:
            payload += rest[:size]
            break
        payload += rest[:size]
        body = rest[size + 2:]
    c.take([int(m.id) for m in parser.feed(bytes(payload)) if m.event != "reset"])


async def chaos(dsn: str, pg: OwnPostgres | None, duration: float, kill_every: float,
                stop: asyncio.Event, counts: dict[str, int]) -> None:
    started = time.monotonic()
    restarted = pg is None
    while not stop.is_set():
        await asyncio.sleep(kill_every)
        elapsed = time.monotonic() - started
        if elapsed > duration:
            return
        if not restarted and elapsed > duration / 2:
            await asyncio.to_thread(pg.restart)  # type: ignore[union-attr]
            restarted = True
            counts["pg_restarts"] += 1
            continue
        try:
            async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
                cur = await conn.execute(
                    "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity"
                    " WHERE application_name = 'tornado_sse_listener'")
                counts["listener_kills"] += (await cur.fetchone())[0]  # type: ignore[index]
        except psycopg.Error:
            pass  # the database is restarting


def entitled(dsn: str, after: int, staff_id: int | None) -> list[int]:
    """The events a client may see, computed in SQL, not by the server's code."""
    with psycopg.connect(dsn) as conn:
        if staff_id is None:
            rows = conn.execute("SELECT id FROM sse_events WHERE id > %s ORDER BY id", (after,))
        else:
            rows = conn.execute("SELECT id FROM sse_events WHERE id > %s AND"
                                " (resource <> 'appointment' OR %s = ANY(staff_ids)) ORDER BY id",
                                (after, staff_id))
        return [r[0] for r in rows]


async def soak(dsn: str, pg: OwnPostgres | None, args: argparse.Namespace) -> int:
    with psycopg.connect(dsn) as conn:
        start_id = conn.execute("SELECT coalesce(max(id), 0) FROM sse_events").fetchone()[0]  # type: ignore[index]
    data_dir = Path(tempfile.mkdtemp(prefix="soak-data-"))
    with serving("--dsn", dsn, "--jwt-secret", SECRET, "--port", "0", "--max-buffer", str(MAX_BUFFER),
                 "--log-level", "warning", "--data-dir", str(data_dir), cwd=data_dir) as (proc, url):
        try:
            return await _run(dsn, pg, args, start_id, url)
        finally:
            proc.terminate()
            proc.wait(15)


async def _run(dsn: str, pg: OwnPostgres | None, args: argparse.Namespace, start_id: int,
               url: str) -> int:
    clients = [Client("sse-admin-1", "sse", None, start_id), Client("sse-admin-2", "sse", None, start_id),
               Client("sse-staff-1", "sse", 1, start_id), Client("sse-staff-2", "sse", 2, start_id),
               Client("poll-admin", "poll", None, start_id), Client("poll-staff-3", "poll", 3, start_id),
               Client("slow-admin", "slow", None, start_id)]
    stop = asyncio.Event()
    counts = {"listener_kills": 0, "pg_restarts": 0}
    writer = await asyncio.create_subprocess_exec(
        sys.executable, str(ROOT / "run.py"), "simulate", "--dsn", dsn, "--rate", str(args.rate),
        "--duration", str(args.duration), "--log-level", "warning",
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
    tasks = [asyncio.ensure_future(sse_client(url, c, stop)) for c in clients if c.kind == "sse"]
    tasks += [asyncio.ensure_future(poll_client(url, c, stop)) for c in clients if c.kind == "poll"]
    slow = next(c for c in clients if c.kind == "slow")
    chaos_task = asyncio.ensure_future(chaos(dsn, pg, args.duration, args.kill_every, stop, counts))
    await slow_client(url, dsn, slow, start_after=args.duration / 4)
    tasks.append(asyncio.ensure_future(sse_client(url, slow, stop)))  # resumes after the cut
    await writer.wait()
    await chaos_task
    # Writers are done and faults are over: let every client catch up.
    final = entitled(dsn, start_id, None)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if all(c.cursor >= (entitled(dsn, start_id, c.staff_id) or [start_id])[-1] for c in clients):
            break
        await asyncio.sleep(0.5)
    stop.set()
    for result in await asyncio.gather(*tasks, return_exceptions=True):
        if isinstance(result, BaseException):
            print(f"soak: a client failed: {result!r}")

    failures = 0
    print(f"soak: {args.duration:g}s, {len(final)} events written, {counts['listener_kills']} listener kills,"
          f" {counts['pg_restarts']} PostgreSQL restart(s), slow client cut: {slow.cut}")
    print(f"{'client':<14} {'entitled':>9} {'received':>9} {'lost':>5} {'dup':>4} {'ordered':>8}"
          f" {'connects':>9} {'resets':>7}")
    for c in clients:
        want = entitled(dsn, start_id, c.staff_id)
        lost = len(set(want) - set(c.got))
        dup = len(c.got) - len(set(c.got))
        ordered = c.got == sorted(c.got)
        extra = len(set(c.got) - set(want))
        ok = lost == 0 and dup == 0 and ordered and extra == 0 and c.resets == 0
        failures += not ok
        print(f"{c.name:<14} {len(want):>9} {len(c.got):>9} {lost:>5} {dup:>4} {ordered!s:>8}"
              f" {c.reconnects:>9} {c.resets:>7}" + ("" if ok else f"  FAIL (not entitled: {extra})"))
    if not slow.cut:
        print("FAIL: the slow client was never cut")
        failures += 1
    print("soak:", "OK: 0 lost, 0 duplicated" if not failures else f"FAILED ({failures})")
    return 1 if failures else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of writes and faults")
    parser.add_argument("--rate", type=float, default=40.0, help="changes per second")
    parser.add_argument("--kill-every", type=float, default=3.0, help="seconds between listener kills")
    parser.add_argument("--seed", type=int, default=None, help="random seed (reproduce a run)")
    args = parser.parse_args()
    seed = args.seed if args.seed is not None else random.randrange(1 << 30)
    random.seed(seed)
    print(f"soak: random seed {seed}")
    base = Path(tempfile.mkdtemp(prefix="soak-pg-"))
    os.chmod(base, 0o755)
    pg = OwnPostgres(base)
    try:
        seed_if_empty(pg.dsn)
        return asyncio.run(soak(pg.dsn, pg, args))
    finally:
        pg.cleanup()


if __name__ == "__main__":
    sys.exit(main())
