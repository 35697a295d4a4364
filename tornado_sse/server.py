"""Start-up and shutdown of a server process, and ``run.py serve``.

Start-up never waits for the database: HTTP comes up first (``/healthz``
says 503 and why), a bootstrap task applies the migrations as soon as the
database answers, then starts the listener, which catches up from its
cursor. So a server started during a database outage, or before the
database, simply becomes ready when it can.

Shutdown order matters for "nothing lost": the port stops accepting, every
stream is ended cleanly and every poller answered (clients resume elsewhere
with their cursor), in-flight responses get a bounded grace period, then
the listener, the pool and the embedded database stop.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
import socket
import sys

import psycopg
from psycopg_pool import AsyncConnectionPool
from tornado.httpserver import HTTPServer
from tornado.ioloop import PeriodicCallback
from tornado.netutil import bind_sockets

from .app import make_app
from .auth import Authenticator, issue_token, signing_secret
from .context import Context
from .database import DatabaseError, check_connection
from .hub import Hub
from .listener import Backoff, Listener
from .metrics import Metrics
from .migrate import migrate
from .settings import Settings, SettingsError
from .stream import END_SHUTDOWN, Ticker

log = logging.getLogger("tornado_sse.server")

#: How long shutdown waits for ended streams and in-flight responses to drain.
SHUTDOWN_GRACE = 5.0
#: A request waits at most this long for a pooled connection, then gets 503.
POOL_TIMEOUT = 5.0
#: How often each server offers to run retention; one server per period does.
RETENTION_EVERY = 3600.0
# TCP keepalives on every connection: a peer that vanished is noticed by the
# kernel within about 25 s even when no query is running.
_KEEPALIVES = {"keepalives": 1, "keepalives_idle": 10, "keepalives_interval": 5,
               "keepalives_count": 3}


class Server:
    """One tornado_sse server on an event loop: pool, listener, hub, HTTP."""

    def __init__(self, settings: Settings, dsn: str, *, check_interval: float = 10.0,
                 check_timeout: float = 10.0, seed: bool = False) -> None:
        self.settings = settings
        self.dsn = dsn
        self._seed = seed
        s = settings
        auth = Authenticator(s)  # validates keys before anything else starts
        pool = AsyncConnectionPool(
            dsn, min_size=1, max_size=s.pool_size, open=False, timeout=POOL_TIMEOUT,
            kwargs={"autocommit": True, "application_name": "tornado_sse", **_KEEPALIVES},
            name="tornado_sse")
        hub = Hub(window=s.window)
        metrics = Metrics()
        listener = Listener(dsn, pool, hub, check_interval=check_interval,
                            check_timeout=check_timeout, on_batch=metrics.published)
        self.ctx = Context(settings=s, hub=hub, pool=pool, listener=listener,
                           ticker=Ticker(s.keepalive), auth=auth, metrics=metrics)
        self._http: HTTPServer | None = None
        self._bootstrap: asyncio.Task[None] | None = None
        self._retention = PeriodicCallback(self._run_retention, RETENTION_EVERY * 1000)
        self.port = s.port

    async def start(self, sockets: list[socket.socket] | None = None) -> None:
        """Serve HTTP now; connect to the database as soon as it answers."""
        ctx = self.ctx
        await ctx.pool.open(wait=False)  # the pool keeps trying in the background
        ctx.ticker.start()
        self._http = HTTPServer(make_app(ctx))
        if sockets is None:
            sockets = bind_sockets(self.settings.port, self.settings.host)
        self._http.add_sockets(sockets)
        self.port = sockets[0].getsockname()[1]
        self._bootstrap = asyncio.create_task(self._connect(), name="tornado_sse.bootstrap")

    async def wait_ready(self, timeout: float | None = None) -> None:
        """Wait until the listener is connected and caught up."""
        await self.ctx.listener.wait_connected(timeout)

    async def _connect(self) -> None:
        backoff = Backoff(base=0.5, cap=10.0)
        while True:
            try:
                applied = await asyncio.to_thread(migrate, self.dsn)
                if applied:
                    log.info("applied migrations: %s", ", ".join(applied))
                if self._seed:
                    from .seed import seed_if_empty

                    await asyncio.to_thread(seed_if_empty, self.dsn)
                break
            except psycopg.Error as exc:
                self.ctx.listener.last_error = str(exc).strip().splitlines()[0]
                delay = backoff.next_delay()
                log.warning("database not ready (%s); retrying in %.1fs",
                            self.ctx.listener.last_error, delay)
                await asyncio.sleep(delay)
        self.ctx.listener.start()
        self._retention.start()
        self._run_retention()

    def _run_retention(self) -> None:
        asyncio.ensure_future(self._prune())

    async def _prune(self) -> None:
        keep = f"{self.settings.retention * 86400:.0f} seconds"
        try:
            async with self.ctx.pool.connection() as conn:
                cur = await conn.execute("SELECT tornado_sse_prune_due(%s::interval, %s::interval)",
                                         (keep, f"{RETENTION_EVERY:.0f} seconds"))
                row = await cur.fetchone()
        except psycopg.Error as exc:
            log.warning("retention skipped: %s", str(exc).strip().splitlines()[0])
            return
        if row is not None and row[0] is not None:
            log.info("retention: deleted %d events older than %g days", row[0],
                     self.settings.retention)

    @property
    def url(self) -> str:
        return _url(self.settings.host, self.port)

    async def stop(self, grace: float = SHUTDOWN_GRACE) -> None:
        """Stop accepting, end every stream, then close database resources."""
        ctx = self.ctx
        if self._http is not None:
            self._http.stop()
        self._retention.stop()
        if self._bootstrap is not None:
            self._bootstrap.cancel()
        ctx.hub.close(END_SHUTDOWN)  # ends streams, answers pollers
        ctx.ticker.stop()
        # Let the answers go out: close_all_connections closes sockets at once.
        deadline = asyncio.get_running_loop().time() + grace
        while ctx.inflight > 0 and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.01)
        if ctx.inflight:
            log.warning("%d requests still in flight after %.0fs; closing anyway", ctx.inflight, grace)
        if self._http is not None:
            await self._http.close_all_connections()
        await ctx.listener.stop()
        await ctx.pool.close()


def serve(settings: Settings) -> int:
    """``run.py serve``: run until SIGTERM or SIGINT; return the exit status.

    The port is bound first, so a port in use fails before a database starts.
    A database that refuses us (bad password, unknown database) is a
    configuration error: one line, exit 2. One that does not answer yet is
    waited for while /healthz says 503. The embedded database stops last.
    """
    from .dbsetup import database

    try:
        sockets = bind_sockets(settings.port, settings.host)
    except OSError as exc:
        raise SettingsError(f"--port: cannot listen on {settings.host}:{settings.port}: "
                            f"{exc.strerror}") from None
    Authenticator(settings)  # a key that does not fit fails here, with one line
    processes = settings.processes or os.cpu_count() or 1
    if settings.embedded:
        with database(settings) as dsn:
            return _run_processes(settings, dsn, sockets, processes, seed=True)
    assert settings.dsn is not None
    try:
        check_connection(settings.dsn)
    except DatabaseError as exc:
        if not exc.transient:
            raise
        log.warning("%s; serving 503 until it answers", exc)
    return _run_processes(settings, settings.dsn, sockets, processes, seed=False)


def _run_processes(settings: Settings, dsn: str, sockets: list[socket.socket], n: int, *,
                   seed: bool) -> int:
    """One server in this process, or ``n`` forked ones sharing the sockets.

    Each process has its own listener, pool and hub (that is the scaling
    model: see README). The parent only supervises: it forwards SIGTERM and
    SIGINT, restarts a child that dies on its own, and exits when all have.
    """
    url = _url(settings.host, sockets[0].getsockname()[1])
    if n == 1:
        return asyncio.run(_serve(settings, dsn, sockets, seed=seed, url=url))
    announce(settings, url)
    children: dict[int, int] = {}
    stopping = False

    def spawn(index: int) -> None:
        pid = os.fork()
        if pid == 0:  # child: serve, then leave without the parent's atexit hooks
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            code = 1
            try:
                code = asyncio.run(_serve(settings, dsn, sockets, seed=seed and index == 0, url=None))
            finally:
                os._exit(code)
        children[pid] = index

    def forward(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True
        for pid in children:
            try:
                os.kill(pid, signum)
            except ProcessLookupError:
                pass

    for index in range(n):
        spawn(index)
    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    status = 0
    while children:
        try:
            pid, code = os.wait()
        except ChildProcessError:
            break
        index = children.pop(pid, None)
        if index is None:
            continue
        if code != 0:
            status = 1
            if not stopping:
                log.error("server process %d exited (status %d); starting another", pid, code)
                spawn(index)
    return 0 if stopping else status


async def _serve(settings: Settings, dsn: str, sockets: list[socket.socket], *, seed: bool,
                 url: str | None) -> int:
    server = Server(settings, dsn, seed=seed)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    await server.start(sockets)
    quiet_collector()
    if url is not None:
        announce(settings, url)
    await stopping.wait()
    log.info("shutting down")
    await server.stop()
    log.info("stopped")
    return 0


def quiet_collector() -> None:
    """Keep full garbage collections off the fan-out's latency.

    Everything alive after start-up (modules, the app, the pool) is moved out
    of the collector's view, and full collections run ten times less often
    (the thresholds' first value counts allocations). Measured in the paced
    benchmark: full collections of 75-100 ms every few seconds were the p99
    (bench/RESULTS.md).
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)


def _url(host: str, port: int) -> str:
    return f"http://{'[' + host + ']' if ':' in host else host}:{port}"


def announce(settings: Settings, url: str) -> None:
    """Tell a developer where to look; with the development secret, hand
    them a ready admin token (the secret never leaves the data folder)."""
    if settings.log_format == "json":
        # For log shippers: a record, and no token (tokens never reach a log).
        log.info("tornado_sse listening on %s", url)
        return
    print(f"tornado_sse listening on {url}", file=sys.stderr, flush=True)
    if settings.jwt_secret is None and settings.jwt_public_key is None:
        token = issue_token(signing_secret(settings), role="admin", ttl=12 * 3600)
        print(f"admin token (12 h, development secret): {token}", file=sys.stderr)
        print(f"calendar: {url}/?token={token}", file=sys.stderr, flush=True)
