"""Start-up and shutdown of a server process, and ``run.py serve``.

Order matters for "nothing lost": the listener starts (LISTEN, then a
catch-up from its cursor) before the HTTP port accepts a stream, and at
shutdown the port stops accepting, every stream is ended cleanly (clients
resume elsewhere with Last-Event-ID), then the listener, the pool and the
embedded database stop.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
import sys

from psycopg_pool import AsyncConnectionPool
from tornado.httpserver import HTTPServer
from tornado.netutil import bind_sockets

from .app import make_app
from .auth import Authenticator, issue_token, signing_secret
from .context import Context
from .hub import Hub
from .listener import Listener
from .metrics import Metrics
from .settings import Settings, SettingsError
from .stream import END_SHUTDOWN, Ticker

log = logging.getLogger("tornado_sse.server")

#: How long shutdown waits for ended streams and in-flight responses to drain.
SHUTDOWN_GRACE = 5.0


class Server:
    """One tornado_sse server on an event loop: pool, listener, hub, HTTP."""

    def __init__(self, settings: Settings, dsn: str, *, check_interval: float = 10.0) -> None:
        self.settings = settings
        self.dsn = dsn
        self._check_interval = check_interval
        self.ctx: Context | None = None
        self._http: HTTPServer | None = None
        self.port = settings.port

    async def start(self, sockets: list[socket.socket] | None = None) -> None:
        s = self.settings
        auth = Authenticator(s)  # validates keys before anything else starts
        pool = AsyncConnectionPool(self.dsn, min_size=1, max_size=s.pool_size, open=False,
                                   kwargs={"autocommit": True, "application_name": "tornado_sse"},
                                   name="tornado_sse")
        await pool.open(wait=True, timeout=30)
        hub = Hub(window=s.window)
        metrics = Metrics()
        listener = Listener(self.dsn, pool, hub, check_interval=self._check_interval,
                            on_batch=metrics.published)
        ticker = Ticker(s.keepalive)
        self.ctx = Context(settings=s, hub=hub, pool=pool, listener=listener, ticker=ticker,
                           auth=auth, metrics=metrics)
        await listener.start()
        await listener.wait_connected(30)
        ticker.start()
        self._http = HTTPServer(make_app(self.ctx))
        if sockets is None:
            sockets = bind_sockets(s.port, s.host)
        self._http.add_sockets(sockets)
        self.port = sockets[0].getsockname()[1]

    @property
    def url(self) -> str:
        host = self.settings.host
        return f"http://{'[' + host + ']' if ':' in host else host}:{self.port}"

    async def stop(self, grace: float = SHUTDOWN_GRACE) -> None:
        """Stop accepting, end every stream, then close database resources."""
        ctx = self.ctx
        if self._http is not None:
            self._http.stop()
        if ctx is None:
            return
        ctx.hub.close(END_SHUTDOWN)
        ctx.ticker.stop()
        if self._http is not None:
            try:
                await asyncio.wait_for(self._http.close_all_connections(), grace)
            except asyncio.TimeoutError:
                log.warning("connections still open after %.0fs; closing anyway", grace)
        await ctx.listener.stop()
        await ctx.pool.close()


def serve(settings: Settings) -> int:
    """``run.py serve``: run until SIGTERM or SIGINT; return the exit status.

    The port is bound first, so a port in use fails before a database starts.
    The embedded database (if that is the database) stops last.
    """
    from .dbsetup import database
    from .migrate import migrate
    from .seed import seed_if_empty

    try:
        sockets = bind_sockets(settings.port, settings.host)
    except OSError as exc:
        raise SettingsError(f"--port: cannot listen on {settings.host}:{settings.port}: "
                            f"{exc.strerror}") from None
    Authenticator(settings)  # a key that does not fit fails here, with one line
    with database(settings) as dsn:
        migrate(dsn)
        if settings.embedded:
            seed_if_empty(dsn)
        return asyncio.run(_serve(settings, dsn, sockets))


async def _serve(settings: Settings, dsn: str, sockets: list[socket.socket]) -> int:
    server = Server(settings, dsn)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    await server.start(sockets)
    announce(settings, server.url)
    await stopping.wait()
    log.info("shutting down")
    await server.stop()
    return 0


def announce(settings: Settings, url: str) -> None:
    """Tell a developer where to look; with the development secret, hand
    them a ready admin token (the secret never leaves the data folder)."""
    print(f"tornado_sse listening on {url}", file=sys.stderr, flush=True)
    if settings.jwt_secret is None and settings.jwt_public_key is None:
        token = issue_token(signing_secret(settings), role="admin", ttl=12 * 3600)
        print(f"admin token (12 h, development secret): {token}", file=sys.stderr)
        print(f"calendar: {url}/?token={token}", file=sys.stderr, flush=True)

