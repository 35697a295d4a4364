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
import logging
import os
import resource
import signal
import socket
from collections.abc import Callable
from typing import Any

import psycopg
from tornado.ioloop import PeriodicCallback
from tornado.netutil import bind_sockets

from . import eventlog
from .app import make_app
from .auth import Authenticator
from .collector import quiet_collector
from .context import Context
from .dbserver import DatabaseError, check_connection
from .edge import GuardedHTTPServer, connection_budget, raise_open_file_limit
from .hub import Hub
from .listener import Backoff, Listener
from .metrics import Metrics
from .migrate import migrate
from .pool import CheckedPool
from .quota import StreamQuota
from .readiness import Readiness
from .settings import Settings, SettingsError
from .snapshots import SnapshotGate
from .stream import END_SHUTDOWN, Ticker
from .supervisor import supervise
from .tracing import Tracing

log = logging.getLogger("tornado_sse.server")

#: How long shutdown waits for ended streams and in-flight responses to drain.
SHUTDOWN_GRACE = 5.0
#: A request waits at most this long for a pooled connection, then gets 503 busy.
POOL_TIMEOUT = 3.0
#: How often each server offers to run retention; one server per period does.
RETENTION_EVERY = 3600.0
# TCP keepalives on every connection: a peer that vanished is noticed by the
# kernel within about 25 s even when no query is running.
_KEEPALIVES = {"keepalives": 1, "keepalives_idle": 10, "keepalives_interval": 5,
               "keepalives_count": 3}


class Server:
    """One tornado_sse server on an event loop: pool, listener, hub, HTTP."""

    def __init__(self, settings: Settings, dsn: str, *, check_interval: float = 10.0,
                 check_timeout: float = 10.0, seed: bool = False, tracer_provider: Any = None) -> None:
        self.settings = settings
        self.dsn = dsn
        self._seed = seed
        s = settings
        auth = Authenticator(s)  # validates keys before anything else starts
        # Checked on checkout: a dead pooled connection (failover, restart,
        # pg_terminate_backend) is replaced, never a client's error (SPEC §7).
        pool = CheckedPool(
            dsn, min_size=1, max_size=s.pool_size, open=False, timeout=POOL_TIMEOUT,
            kwargs={"autocommit": True, "application_name": "tornado_sse", **_KEEPALIVES},
            name="tornado_sse")
        hub = Hub(window=s.window, window_bytes=s.window_bytes)
        metrics = Metrics()
        tracing = Tracing(tracer_provider)
        listener = Listener(dsn, hub, check_interval=check_interval, check_timeout=check_timeout,
                            on_batch=_both(metrics.published, tracing.batch) if tracing.enabled
                            else metrics.published)
        metrics.rejected = listener.rejected
        quota = StreamQuota(per_token=s.max_streams_per_token, total=s.max_streams,
                            connects_per_second=s.max_connects_per_second)
        ticker = Ticker(hub, s.keepalive, quota=quota, metrics=metrics, max_buffer=s.max_buffer, tracing=tracing)
        self.ctx = Context(settings=s, hub=hub, pool=pool, listener=listener, ticker=ticker, auth=auth,
                           metrics=metrics, quota=quota, tracing=tracing,
                           readiness=Readiness(pool, listener, hub),
                           # Snapshots may hold half the pool; the rest stays
                           # for writes, polls and replays (issue 19).
                           snapshots=SnapshotGate(per_token=s.max_snapshots_per_token,
                                                  connections=max(1, s.pool_size // 2), wait=POOL_TIMEOUT))
        self._http: GuardedHTTPServer | None = None
        self._bootstrap: asyncio.Task[None] | None = None
        self._pruning: asyncio.Future[None] | None = None
        self._retention = PeriodicCallback(self._run_retention, RETENTION_EVERY * 1000)
        self.port = s.port

    async def start(self, sockets: list[socket.socket] | None = None) -> None:
        """Serve HTTP now; connect to the database as soon as it answers."""
        ctx = self.ctx
        await ctx.pool.open(wait=False)  # the pool keeps trying in the background
        if ctx.auth.jwks is not None:
            ctx.auth.jwks.start()  # the identity provider's keys, fetched in the background
        ctx.ticker.start()
        s = self.settings
        open_files = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        budget = connection_budget(s, open_files)
        refused = ctx.metrics.refused.labels("connections")
        self._http = GuardedHTTPServer(
            make_app(ctx), max_connections=budget, on_refuse=refused.inc, detached=ctx.ticker.readiness.__len__,
            write_timeout=s.write_timeout, on_stall=ctx.metrics.refused.labels("write_timeout").inc,
            idle_connection_timeout=s.header_timeout or None, body_timeout=s.body_timeout or None,
            max_body_size=s.max_body_size, max_buffer_size=max(s.max_body_size, 1 << 20) + (64 << 10))
        if sockets is None:
            sockets = bind_sockets(self.settings.port, self.settings.host)
        self._http.add_sockets(sockets)
        http = self._http
        ctx.metrics.connection_limit.set(budget)
        ctx.metrics.connections.set_function(lambda: http.open_connections)
        ctx.metrics.in_flight.set_function(lambda: ctx.inflight)
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
        if self._pruning is None or self._pruning.done():
            self._pruning = asyncio.ensure_future(self._prune())

    async def _prune(self) -> None:
        try:
            deleted = await eventlog.prune_due(self.ctx.pool, keep_seconds=self.settings.retention * 86400,
                                               every_seconds=RETENTION_EVERY)
        except psycopg.Error as exc:
            log.warning("retention skipped: %s", str(exc).strip().splitlines()[0])
            return
        if deleted is not None:
            log.info("retention: deleted %d events older than %g days", deleted, self.settings.retention)

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
        # Let the answers go out: close_all_connections closes sockets at
        # once, and so does the ticker for streams still sending their end.
        # A request whose client hung up no longer counts as in flight, but
        # its handler may still hold a pooled connection mid-transaction (a
        # snapshot being read): wait for those too, or closing the pool
        # leaves them idle in transaction, holding their locks.
        deadline = asyncio.get_running_loop().time() + grace
        while ((ctx.inflight > 0 or ctx.ticker.lingering or ctx.pool.lent)
               and asyncio.get_running_loop().time() < deadline):
            await asyncio.sleep(0.01)
        if ctx.inflight or ctx.ticker.lingering or ctx.pool.lent:
            log.warning("%d requests, %d streams and %d database connections still in use after"
                        " %.0fs; closing anyway", ctx.inflight, len(ctx.ticker.lingering),
                        ctx.pool.lent, grace)
        ctx.ticker.stop()
        if self._http is not None:
            await self._http.close_all_connections()
        await ctx.listener.stop()
        await ctx.pool.close()
        if ctx.auth.jwks is not None:
            await ctx.auth.jwks.stop()


def serve(settings: Settings, *, on_listening: Callable[[str], None] | None = None) -> int:
    """``run.py serve``: run until SIGTERM or SIGINT; return the exit status.

    The port is bound first, so a port in use fails before a database starts.
    A database that refuses us (bad password, unknown database) is a
    configuration error: one line, exit 2. One that does not answer yet is
    waited for while /healthz says 503. The embedded database stops last.
    ``on_listening`` is called once with the URL when the port serves.
    """
    from .dbserver import database

    try:
        sockets = bind_sockets(settings.port, settings.host)
    except OSError as exc:
        raise SettingsError(f"--port: cannot listen on {settings.host}:{settings.port}: "
                            f"{exc.strerror}") from None
    Authenticator(settings)  # a key that does not fit fails here, with one line
    processes = settings.processes or os.cpu_count() or 1
    open_files = raise_open_file_limit()
    budget = connection_budget(settings, open_files)
    log.info("open-file limit %d; up to %s connections per process; %d database connections per "
             "process (%d pooled + 2 for the listener)", open_files, budget or "unlimited",
             settings.pool_size + 2, settings.pool_size)
    url = _url(settings.host, sockets[0].getsockname()[1])
    announce = on_listening or (lambda _url: None)

    def run(dsn: str, seed: bool) -> int:
        if processes == 1:
            return asyncio.run(_serve(settings, dsn, sockets, seed=seed,
                                      on_listening=lambda: announce(url)))
        announce(url)
        return supervise(processes, lambda index: asyncio.run(
            _serve(settings, dsn, sockets, seed=seed and index == 0, on_listening=None)))

    if settings.embedded:
        with database(settings) as dsn:
            return run(dsn, seed=True)
    assert settings.dsn is not None
    try:
        check_connection(settings.dsn)
    except DatabaseError as exc:
        if not exc.transient:
            raise
        log.warning("%s; serving 503 until it answers", exc)
    return run(settings.dsn, seed=False)


async def _serve(settings: Settings, dsn: str, sockets: list[socket.socket], *, seed: bool,
                 on_listening: Callable[[], None] | None) -> int:
    server = Server(settings, dsn, seed=seed)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    await server.start(sockets)
    frozen = quiet_collector()
    log.info("gc: %d objects frozen after start-up (never walked by a collection)", frozen)
    if on_listening is not None:
        on_listening()
    await stopping.wait()
    log.info("shutting down")
    await server.stop()
    log.info("stopped")
    return 0


def _both(first: Callable[..., None], second: Callable[..., None]) -> Callable[..., None]:
    """One ``on_batch`` callback that feeds the metrics and then the traces."""

    def call(*args: Any) -> None:
        first(*args)
        second(*args)

    return call


def _url(host: str, port: int) -> str:
    return f"http://{'[' + host + ']' if ':' in host else host}:{port}"
