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
from tornado.iostream import IOStream, StreamClosedError

from .. import sse
from ..auth import Principal
from ..context import Context
from ..errors import unavailable
from ..handover import Handover
from ..stream import END_CLOSED, END_ERROR, END_EXPIRED, END_SLOW, END_TIMEOUT, SSEStream
from .base import BaseHandler
from .query import parse_stream_query

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

    async def get(self) -> None:
        principal = self.who = self.principal()
        errors: dict[str, str] = {}
        query = parse_stream_query(self, principal, errors)
        self.check(errors)
        ctx = self.ctx
        if ctx.hub.closed:
            # Shutting down (a request on a kept-alive connection): never a
            # refusal (SPEC §3), but 200, retry: and the end, so the client
            # comes back, to another server.
            self.set_header("Content-Type", "text/event-stream; charset=utf-8")
            self.set_header("Cache-Control", "no-cache")
            self.write(sse.retry(ctx.settings.retry))
            try:
                await self.flush()  # a stream's framing (chunked), like every other
            except StreamClosedError:
                return
            self.finish()
            return
        if query.cursor is not None:
            self.require_started()

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
        try:
            reset = await handover.check()
        except psycopg.Error:
            stream.end(END_ERROR)
            raise unavailable() from None

        self.set_header("Content-Type", "text/event-stream; charset=utf-8")
        self.set_header("Cache-Control", "no-cache")
        self.set_header("X-Accel-Buffering", "no")
        self.write(sse.retry(ctx.settings.retry))
        try:
            await self.flush()
        except StreamClosedError:
            stream.end(END_CLOSED)
            return
        stream.open()
        ctx.metrics.stream_opened(self.route)

        try:
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
        except psycopg.Error as exc:
            log.warning("replay failed, ending stream: %s", exc)
            stream.end(END_CLOSED)
        handover.release()
        await self.done

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
            log.info("stream end route=%s role=%s reason=%s duration=%.1fs events=%d bytes=%d",
                     self.route, self.who.role if self.who else "-", reason,
                     time.monotonic() - stream.started, stream.events_sent, stream.bytes_sent)
        if not self.done.done():
            self.done.set_result(reason)
