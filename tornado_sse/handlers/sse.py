"""GET /sse and the WooCommerce-compatible routes (SPEC §3).

A thin shell: it parses the request, opens the response, and lets the
stream (tornado_sse/stream.py) and the handover (tornado_sse/handover.py)
do the work. The stream tells it when it has ended; the handler only
finishes or drops the response then.
"""

from __future__ import annotations

import asyncio
import logging
import time

import psycopg
from psycopg_pool import PoolTimeout
from tornado.iostream import IOStream, StreamClosedError

from .. import sse
from ..auth import Principal
from ..context import Context
from ..errors import ApiError
from ..handover import Handover
from ..logfmt import fields
from ..requestid import request_id
from ..stream import END_CLOSED, END_ERROR, END_EXPIRED, END_SLOW, END_TIMEOUT, SSEStream
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
        self.stream: SSEStream | None = None
        self.who: Principal | None = None
        self.done: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._last_sign = time.monotonic()

    async def get(self) -> None:
        principal = self.who = self.principal()
        errors: dict[str, str] = {}
        query = parse_stream_query(self, principal, errors)
        self.check(errors)
        quota = self.ctx.quota
        try:
            quota.acquire(principal.token_key)  # 429 / 503 before the head
        except ApiError as exc:
            self.ctx.metrics.refused.labels("streams_per_token" if exc.status == 429 else "streams").inc()
            raise
        try:
            await self._serve(principal, query)
        finally:
            quota.release(principal.token_key)

    async def head(self, *args: str) -> None:
        """What a GET would answer, without opening a stream."""
        principal = self.principal()
        errors: dict[str, str] = {}
        parse_stream_query(self, principal, errors)
        self.check(errors)
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
        if not await self._wait_until_started():
            # Shutting down (or gone): the end; the client comes back, to
            # another server or to this one restarted.
            if not self._finished and not self.done.done():
                self.finish()
            return

        deadline, reason = self._deadline(principal)
        connection = self.request.connection
        iostream = getattr(connection, "stream", None)
        assert isinstance(iostream, IOStream)
        stream = self.stream = SSEStream(
            iostream, ctx.hub, filter=query.filter, chunked=self.request.version == "HTTP/1.1",
            cursor=ctx.hub.last_id if query.cursor is None else query.cursor,
            keepalive=ctx.settings.keepalive, max_buffer=ctx.settings.max_buffer,
            max_events=query.max_events or self.route_max_events,
            deadline=deadline, deadline_reason=reason, on_end=self._ended)
        handover = Handover(ctx.hub, ctx.pool, stream, query.cursor)
        stream.open()
        ctx.metrics.stream_opened(self.route)
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
        handover.release()
        await self.done

    async def _wait_until_started(self) -> bool:
        """Until the listener has placed the hub in the log (the server is
        starting, or its database is not there yet), keep the client with
        keepalives. False if the client left or the server is stopping."""
        ctx = self.ctx
        while not ctx.hub.started:
            if self.done.done() or ctx.hub.closed:
                return False
            try:
                await asyncio.wait_for(ctx.listener.wait_connected(), min(1.0, ctx.settings.keepalive))
            except asyncio.TimeoutError:
                pass
            if time.monotonic() - self._last_sign >= ctx.settings.keepalive:
                self.write(sse.KEEPALIVE)
                try:
                    await self.flush()
                except StreamClosedError:
                    return False
                self._last_sign = time.monotonic()
        return not (self.done.done() or ctx.hub.closed)

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

    def on_connection_close(self) -> None:
        super().on_connection_close()
        if self.stream is not None:
            self.stream.end(END_CLOSED)
        elif not self.done.done():
            self.done.set_result(END_CLOSED)

    def _ended(self, stream: SSEStream, reason: str) -> None:
        """The stream has left the hub: end the response accordingly."""
        if stream.opened:
            self.ctx.metrics.stream_closed(self.route, reason)
            if reason == END_SLOW:
                # The buffer is full: finishing would only queue more bytes.
                stream.abort()
            elif reason != END_CLOSED and not self._finished:
                self.finish()
            log.info("stream end", extra=fields(
                route=self.route, role=self.who.role if self.who else None, reason=reason,
                duration_ms=round(1000 * (time.monotonic() - stream.started), 1),
                events=stream.events_sent, bytes=stream.bytes_sent, request_id=request_id(self.request)))
        if not self.done.done():
            self.done.set_result(reason)
