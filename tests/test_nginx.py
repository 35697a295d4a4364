"""Scale-out through a real load balancer (issue 13): two servers behind
nginx with the shipped ``deploy/nginx/tornado_sse.conf``; one is stopped
with SIGTERM while events are being written, and every client, SSE and
long-poll, ends with every event exactly once, in order, through the other.

By hand: two ``python run.py --port 8001/8002 --dsn ...``, nginx with the
site file, ``curl -N localhost/sse`` and ``kill -TERM`` one server.
"""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

import psycopg
import pytest

from tests.fix_db import execute
from tests.fix_nginx import nginx_binary, running_nginx
from tests.fix_server import SECRET
from tests.resuming_clients import Record, poll_client, sse_client
from tornado_sse.testing.processes import serving

pytestmark = pytest.mark.pg_independent

EVENTS = 150
STOP_AFTER = 50  # events written before one server is stopped
SSE_CLIENTS = 6


async def write_events(dsn: str, n: int, written: list[int], pause: float = 0.02) -> None:
    """``n`` appointments, one committed transaction each, as psql makes them."""
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        for _ in range(n):
            await conn.execute("INSERT INTO appointments (product_id, staff_ids, start_at, end_at, overlap_allowed)"
                               " VALUES (456, '{5}', now(), now() + interval '1 hour', true)")
            written.append(1)
            await asyncio.sleep(pause)


@pytest.mark.slow
def test_one_server_stopped_mid_stream_behind_nginx_loses_nothing(db: str, tmp_path: Path) -> None:
    nginx_binary()  # skips, saying why, when nginx is missing
    common = ("--dsn", db, "--jwt-secret", SECRET, "--port", "0", "--log-level", "info")
    logs: tuple[list[str], list[str]] = ([], [])
    with serving(*common, "--data-dir", str(tmp_path / "a"), cwd=tmp_path, log=logs[0]) as (one, url_one), \
         serving(*common, "--data-dir", str(tmp_path / "b"), cwd=tmp_path, log=logs[1]) as (two, url_two):
        ports = [int(url.rsplit(":", 1)[1]) for url in (url_one, url_two)]
        with running_nginx(tmp_path / "nginx", ports) as base:
            records = [Record(f"sse-{i}") for i in range(SSE_CLIENTS)] + [Record("poll")]

            async def scenario() -> None:
                deadline = time.monotonic() + 90
                await wait_both_ready([url_one, url_two])
                # Every client opens (and the poller has its cursor) before the
                # first event, so each is entitled to all of them.
                clients = [asyncio.ensure_future(sse_client(base, r, EVENTS, deadline))
                           for r in records[:-1]]
                clients.append(asyncio.ensure_future(poll_client(base, records[-1], EVENTS, deadline)))
                await until(lambda: all(r.connects for r in records), 20)
                written: list[int] = []
                writer = asyncio.ensure_future(write_events(db, EVENTS, written))
                await until(lambda: len(written) >= STOP_AFTER, 30)
                one.send_signal(signal.SIGTERM)
                await writer
                await asyncio.wait_for(asyncio.gather(*clients), max(1.0, deadline - time.monotonic()))

            asyncio.run(scenario())
            assert one.wait(20) == 0, "the stopped server did not exit cleanly"
            assert two.poll() is None, "the other server must still be running"

    for name, log in zip("ab", logs, strict=True):  # for whoever reads a failure
        (tmp_path / f"server-{name}.log").write_text("".join(log), encoding="utf-8")
    expected = [r[0] for r in execute(db, "SELECT id FROM sse_events ORDER BY id")]
    assert len(expected) == EVENTS
    for r in records:
        assert r.ids == expected, (f"{r.name}: {len(r.ids)} events, "
                                   f"missing {sorted(set(expected) - set(r.ids))[:10]}, "
                                   f"{len(r.ids) - len(set(r.ids))} duplicates; {r.log}")
    streams = records[:-1]
    # Round robin put streams on both servers: the stopped one ended its
    # streams cleanly, and those clients came back through nginx.
    assert any("finished" in r.ends for r in streams), [r.ends for r in streams]
    assert any(r.connects > 1 for r in streams), [r.connects for r in streams]
    # nginx sent every reconnect to the live server: no client saw an error.
    assert [r.errors for r in records] == [[] for _ in records], f"see {tmp_path}/server-*.log"
    # A 503 is expected and logged at ERROR by Tornado: /healthz before the
    # listener connected, a poll during shutdown (nginx retried it elsewhere).
    assert not [line for log in logs for line in log if "Traceback" in line or (
        " ERROR " in line and "tornado.access: 503 GET " not in line)], \
        f"see {tmp_path}/server-*.log"


async def wait_both_ready(urls: list[str], timeout: float = 30) -> None:
    """Each server's /healthz is 200 once its listener is connected."""
    from tornado_sse.testing.sse_client import Response, request

    for url in urls:
        async def ready(url: str = url) -> bool:
            resp = await request(url + "/healthz")
            return isinstance(resp, Response) and resp.status == 200
        deadline = time.monotonic() + timeout
        while not await ready():
            assert time.monotonic() < deadline, f"{url} not ready"
            await asyncio.sleep(0.1)


async def until(condition, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)
