"""Streams that own their socket (issue 21): once the head is out, an SSE
stream leaves Tornado's HTTP machinery, and everything a connection did for
it still holds: hang-ups noticed, the quota and the connection cap kept,
slow readers cut, shutdown ends them cleanly. Real server, real sockets,
real SSE parsing."""

from __future__ import annotations

import asyncio
import gc
import re
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest
from tornado.http1connection import HTTP1Connection, HTTP1ServerConnection
from tornado.httputil import HTTPServerRequest

from tests.fix_server import SECRET, admin_token, auth
from tornado_sse.edge import raise_open_file_limit
from tornado_sse.handlers.sse import SSEHandler
from tornado_sse.stream import SSEStream, open_streams
from tornado_sse.testing.processes import COMMAND, clean_env
from tornado_sse.testing.sse_client import Response, SSEConnection, SSEParser, open_stream, request

pytestmark = pytest.mark.pg_independent  # sockets and the collector, not PostgreSQL's version


async def _until(check: Callable[[], bool], timeout: float) -> float:
    """Seconds until ``check()`` holds; fails after ``timeout``."""
    started = time.monotonic()
    while not check():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"not within {timeout}s")
        await asyncio.sleep(0.02)
    return time.monotonic() - started


@pytest.mark.gen_test(timeout=30)
async def test_hang_up_frees_quota_and_connection_slot_within_a_second(make_server, caplog):
    """The connection cap counts a detached stream (the next connection is
    refused), and a client's hang-up is noticed without a write: its quota
    and its connection slot are free again within a second."""
    caplog.set_level("INFO", logger="tornado.access")
    server = await make_server(max_connections=1, max_streams_per_token=1)
    http = server._http
    assert http is not None
    conn = await open_stream(server.url + "/sse", auth())
    await _until(lambda: len(open_streams(server.ctx.hub)) == 1, 2)
    # Detached: no longer one of Tornado's connections, still counted.
    assert len(http._connections) == 0 and http.open_connections == 1
    assert server.ctx.quota.open == 1
    refused = await request(server.url + "/healthz")
    assert isinstance(refused, Response) and refused.status == 503
    assert refused.json()["data"]["reason"] == "busy"
    conn.close()
    took = await _until(lambda: server.ctx.quota.open == 0 and http.open_connections == 0, 1.0)
    assert took < 1.0 and len(server.ctx.hub) == 0
    again = await open_stream(server.url + "/sse", auth())  # the slot and the quota are free
    assert again.status == 200
    again.close()
    await _until(lambda: server.ctx.quota.open == 0, 1.0)
    # One access-log line per stream, written when it ends.
    lines = [r.getMessage() for r in caplog.records if r.name == "tornado.access"]
    assert len([line for line in lines if line.startswith("200 GET /sse")]) == 2, lines


@pytest.mark.gen_test(timeout=60)
async def test_slow_reader_of_a_detached_stream_is_cut_and_resumes_without_loss(make_server, db):
    server = await make_server(max_buffer=16 * 1024)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connect: small window
    sock.connect(("127.0.0.1", server.port))
    sock.sendall(b"GET /sse HTTP/1.0\r\nAuthorization: " + auth()["Authorization"].encode() + b"\r\n\r\n")
    await _until(lambda: len(open_streams(server.ctx.hub)) == 1, 2)
    assert server._http is not None and len(server._http._connections) == 0  # detached
    big = "x" * 16000
    async with await psycopg.AsyncConnection.connect(db, autocommit=True) as c:
        for _i in range(400):  # ~6.4 MB: past the kernel's buffers and the 16 KiB backlog
            await c.execute("INSERT INTO availabilities (scope, title) VALUES ('global', %s)", (big,))
    await _until(lambda: not open_streams(server.ctx.hub), 5)
    assert server.ctx.metrics.streams_ended.labels("sse", "slow_client")._value.get() == 1
    # The client reads what it had received (HTTP/1.0: no chunks), then resumes.
    sock.setblocking(False)
    received = b""
    loop = asyncio.get_running_loop()
    while True:
        try:
            data = await asyncio.wait_for(loop.sock_recv(sock, 65536), 2)
        except (asyncio.TimeoutError, ConnectionError):
            break
        if not data:
            break
        received += data
    sock.close()
    parser = SSEParser()
    got = [int(m.id) for m in parser.feed(received.split(b"\r\n\r\n", 1)[1])
           if m.event == "availability.created"]
    assert len(got) < 400
    resume = await open_stream(server.url + "/sse", {**auth(), "Last-Event-ID": parser.last_event_id or "0"})
    resumed = await resume.take(400 - len(got), timeout=30)
    assert got + [int(m.id) for m in resumed] == list(range(1, 401))
    resume.close()


@pytest.mark.gen_test(timeout=90)
async def test_shutdown_ends_1000_detached_streams_each_with_a_clean_last_chunk(make_server):
    if raise_open_file_limit() < 2200:  # 1,000 client and 1,000 server sockets in this process
        pytest.skip("the open-file limit is below 2,200")
    server = await make_server()
    gate = asyncio.Semaphore(100)

    async def one(i: int) -> SSEConnection:
        async with gate:  # a token each: no per-token limit applies
            return await open_stream(server.url + "/sse", auth(admin_token(ttl=3600 + i)))

    conns = await asyncio.gather(*(one(i) for i in range(1000)))
    await _until(lambda: len(open_streams(server.ctx.hub)) == 1000, 10)
    assert server._http is not None and server._http.open_connections == 1000
    started = time.monotonic()
    await server.stop()
    assert time.monotonic() - started < 3  # nothing waited for its grace period
    ends = await asyncio.gather(*(c.wait_end(10) for c in conns))
    assert ends == ["finished"] * 1000  # each body ended with its last chunk
    assert all(c.raw.endswith(b"retry: 3000\n\n") for c in conns)  # and nothing after it
    for c in conns:
        c.close()


@pytest.mark.gen_test(timeout=30)
async def test_closed_streams_leave_no_cyclic_garbage(make_server):
    """What gc.freeze makes safe: a stream that ended is freed by reference
    counting alone, so nothing of it (handler, request, Tornado's
    connection) waits for a collection, and nothing frozen leaks."""
    server = await make_server(max_connects_per_second=0)  # 20 streams at once on one token
    gc.collect()
    gc.disable()  # no automatic collection may hide the garbage from us
    try:
        conns = [await open_stream(server.url + "/sse", auth()) for _ in range(20)]
        await _until(lambda: len(open_streams(server.ctx.hub)) == 20, 2)
        for conn in conns:
            conn.close()
        await _until(lambda: server.ctx.quota.open == 0, 2)
        gc.set_debug(gc.DEBUG_SAVEALL)
        gc.collect()
        kinds = (SSEHandler, SSEStream, HTTPServerRequest, HTTP1Connection, HTTP1ServerConnection)
        leftover = [type(o).__name__ for o in gc.garbage if isinstance(o, kinds)]
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()
    assert leftover == []


def test_gc_freeze_is_in_effect_after_start_up(db: str, tmp_path: Path) -> None:
    """The real start-up path (``serve``) moves what it built out of the
    collector's sight and says how much, before it listens."""
    proc = subprocess.Popen([*COMMAND, "--dsn", db, "--jwt-secret", SECRET, "--port", "0",
                             "--log-level", "info", "--data-dir", str(tmp_path)],
                            stderr=subprocess.PIPE, text=True, env=clean_env(), cwd=tmp_path)
    assert proc.stderr is not None
    lines: list[str] = []
    try:
        deadline = time.monotonic() + 30
        while not any("listening on" in line for line in lines):
            assert time.monotonic() < deadline and proc.poll() is None, lines
            lines.append(proc.stderr.readline())
    finally:
        proc.kill()
        proc.wait()
        proc.stderr.close()
    frozen = [int(m.group(1)) for line in lines if (m := re.search(r"gc: (\d+) objects frozen", line))]
    assert frozen and frozen[0] > 10_000, lines


@pytest.mark.gen_test(timeout=30)
async def test_a_tick_visits_only_the_streams_whose_keepalive_is_due(make_server, monkeypatch):
    """The ticker ticks every keepalive/4 but visits a quiet stream about
    once per keepalive, not at every tick (a tick that walked every stream
    made each event cost more as quiet streams grew: issue 21's flatness),
    and every quiet stream still gets its keepalive on time."""
    visits: list[int] = []
    real_tick = SSEStream.tick

    def counted(self: SSEStream, now: float) -> None:
        visits.append(id(self))
        real_tick(self, now)

    monkeypatch.setattr(SSEStream, "tick", counted)
    server = await make_server(keepalive=4.0, max_streams_per_token=0,
                               max_connects_per_second=0)  # ticks every second
    opened = time.monotonic()
    conns = await asyncio.gather(*(open_stream(server.url + "/sse", auth()) for _ in range(40)))
    await _until(lambda: len(open_streams(server.ctx.hub)) == 40, 2.5)
    all_open = time.monotonic()
    await asyncio.sleep(max(0.0, 1.5 - (all_open - opened)))  # a tick or two; no keepalive due before 3 s
    assert visits == []  # walking every stream would have made 40-80 visits
    await asyncio.sleep(5.2 - (time.monotonic() - all_open))  # the last one's keepalive (4 s) and a tick
    for conn in conns:
        assert conn.raw.count(b": keepalive\n\n") == 1
    # One visit per stream at its keepalive, sometimes one a tick early:
    # at most two each (every tick for every stream: 5 or 6 each by now).
    assert 40 <= len(visits) <= 80, len(visits)
    for conn in conns:
        conn.close()
