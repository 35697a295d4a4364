"""GET /sse and the WooCommerce-compatible routes (SPEC §3).

A thin shell: it parses the request, sends the head through Tornado, then
detaches the connection (``RequestHandler.detach()``, as Tornado's
websocket code does) and gives the socket to an
:class:`~tornado_sse.stream.SSEStream`, which replays, streams and ends on
its own. The handler, the request and Tornado's connection objects are
garbage as soon as :meth:`SSEHandler.get` returns: an open stream keeps
none of them (issue 21, ARCHITECTURE.md "A stream's life").
"""

from __future__ import annotations

import asyncio
import logging
import os
import time

import psycopg
from psycopg_pool import PoolTimeout
from tornado.iostream import StreamClosedError

from .. import sse
from ..auth import Principal, redact_uri
from ..context import Context
from ..errors import ApiError
from ..handover import Handover
from ..requestid import request_id
from ..stream import END_ERROR, END_EXPIRED, END_TIMEOUT, SSEStream
from .base import BaseHandler
from .query import StreamQuery, parse_stream_query

log = logging.getLogger("tornado_sse.sse")


class SSEHandler(BaseHandler):
    """One event stream per request."""

    def initialize(self, ctx: Context, route: str = "sse",
                   max_events: int = 0, stream_timeout: float = 0.0) -> None:
        super().initialize(ctx)
        self.route = route
        self.route_max_events = max_events
        self.route_timeout = stream_timeout
        self._last_sign = time.monotonic()
        self.heartbeat = 0
        #: The stream that owns the connection once it is detached (and
        #: the quota with it); it never refers back to the handler.
        self.stream: SSEStream | None = None

    def _parse(self, principal: Principal) -> StreamQuery:
        """The stream parameters, one 400 naming every bad one."""
        errors: dict[str, str] = {}
        query = parse_stream_query(self, principal, errors)
        # SPEC §3: seconds of quiet before a heartbeat event, 5-300.
        self.heartbeat = self.int_arg("heartbeat", errors, minimum=5, maximum=300, default=0) or 0
        self.check(errors)
        return query

    async def get(self) -> None:
        principal = self.principal()
        query = self._parse(principal)
        quota = self.ctx.quota
        try:
            quota.acquire(principal.token_key)  # 429 / 503 before the head
        except ApiError as exc:
            self.ctx.metrics.refused.labels("streams_per_token" if exc.status == 429 else "streams").inc()
            raise
        try:
            await self._serve(principal, query)
        finally:
            if self.stream is None:  # else the stream releases it when it ends
                quota.release(principal.token_key)

    async def head(self, *args: str) -> None:
        """What a GET would answer, without opening a stream."""
        self._parse(self.principal())
        self._stream_headers()
        self.finish()

    def _stream_headers(self) -> None:
        self.set_header("Content-Type", "text/event-stream; charset=utf-8")
        self.set_header("Cache-Control", "no-cache")
        self.set_header("X-Accel-Buffering", "no")

    async def _serve(self, principal: Principal, query: StreamQuery) -> None:
        """The head goes out first, whatever the server's state: a stream is
        never refused for a transient reason (SPEC §3), because an
        EventSource treats any non-200 as final and stops for good."""
        ctx = self.ctx
        self._stream_headers()
        self.write(sse.retry(ctx.settings.retry))
        try:
            await self.flush()
        except StreamClosedError:
            return
        if not await self._wait_until_started(query.cursor):
            # Shutting down (or gone): the end; the client comes back, to
            # another server or to this one restarted.
            if not self._finished and not self.gone:
                self.finish()
            return
        fd = self._detach()
        if fd is None:
            return  # the client left as the head went out
        deadline, reason = self._deadline(principal)
        request = self.request
        stream = self.stream = SSEStream(
            fd, ctx.ticker, route=self.route, role=principal.role, token_key=principal.token_key,
            request_line=f"{request.method} {redact_uri(request.uri or '')} ({request.remote_ip})",
            request_id=request_id(request),
            traceparent=request.headers.get("traceparent") if ctx.tracing.enabled else None,
            started_wall=time.time() - request.request_time(),
            filter=query.filter, chunked=request.version == "HTTP/1.1",
            cursor=ctx.hub.last_id if query.cursor is None else query.cursor,
            max_events=query.max_events or self.route_max_events, heartbeat=self.heartbeat,
            deadline=deadline, deadline_reason=reason)
        stream.open()
        handover = Handover(ctx.hub, ctx.pool, stream, query.cursor)
        try:
            reset = await handover.check()
            if reset is not None:
                stream.write_raw(reset.frame())
                stream.cursor = reset.last_id
                ctx.metrics.reset_sent()
            else:
                async for batch in handover.replay():
                    stream.write_events(batch)
                    if stream.ended is not None:
                        break
                    await stream.drain()
        except (psycopg.Error, PoolTimeout) as exc:
            # The database went away (or is too busy) mid-resume: end the
            # stream; the client retries from its cursor after ``retry:``.
            log.warning("resume failed, ending the stream for a retry: %s", str(exc).strip()[:200])
            stream.end(END_ERROR)
        except Exception:
            stream.end(END_ERROR)  # a bug: no stream is left behind, Tornado logs it
            raise
        handover.release()

    def _detach(self) -> int | None:
        """Take the socket from Tornado; None if the client already left.

        Tornado's connection and IOStream are closed on our side only after
        the socket was duplicated, so the client's connection stays open
        and is ours alone; the handler's ``ui`` reference cycle is broken as
        ``finish()`` would (a cycle per stream kept 3 KB and made every full
        collection slower, issue 21), and the request stops counting as
        in flight (a detached stream ends through the hub at shutdown).
        """
        iostream = self.detach()
        self._break_cycles()
        self.on_finish()
        sock = iostream.socket
        fd = None if sock is None or iostream.closed() else os.dup(sock.fileno())
        iostream.close()
        return fd

    async def _wait_until_started(self, cursor: int | None) -> bool:
        """Until the listener has placed the hub in the log (the server is
        starting, or its database is not there yet), keep the client with
        keepalives (or heartbeats carrying its own cursor, which is all the
        server knows yet). False if the client left or the server is stopping."""
        ctx = self.ctx
        interval = self.heartbeat or ctx.settings.keepalive
        sign = sse.heartbeat(cursor or 0) if self.heartbeat else sse.KEEPALIVE
        while not ctx.hub.started:
            if self.gone or ctx.hub.closed:
                return False
            try:
                await asyncio.wait_for(ctx.listener.wait_connected(), min(1.0, interval))
            except asyncio.TimeoutError:
                pass
            if time.monotonic() - self._last_sign >= interval:
                self.write(sign)
                try:
                    await self.flush()
                except StreamClosedError:
                    return False
                self._last_sign = time.monotonic()
        return not (self.gone or ctx.hub.closed)

    def _deadline(self, principal: Principal) -> tuple[float | None, str]:
        """The earliest of the one-shot timeout and the token's expiry."""
        now_mono, now_wall = time.monotonic(), time.time()
        deadline, reason = None, END_TIMEOUT
        if self.route_timeout:
            deadline = now_mono + self.route_timeout
        if principal.expires_at is not None:
            expiry = now_mono + max(0.0, principal.expires_at - now_wall)
            if deadline is None or expiry < deadline:
                deadline, reason = expiry, END_EXPIRED
        return deadline, reason
