"""GET /sse and the WooCommerce-compatible routes (SPEC §3)."""

from __future__ import annotations

import asyncio
import logging
import time

import psycopg
from tornado.iostream import StreamClosedError

from .. import sse
from ..auth import Principal
from ..context import Context
from ..errors import unavailable
from ..resume import Replay
from ..stream import END_CLOSED, END_EXPIRED, END_SLOW, END_TIMEOUT, SSEStream
from .base import BaseHandler
from .query import parse_stream_query

log = logging.getLogger("tornado_sse.sse")


class SSEHandler(BaseHandler):
    """A thin shell: auth and parameters here, the stream does the work."""

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
        hub = ctx.hub
        if hub.closed:
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

        # The earliest of the one-shot timeout and the token's expiry.
        now_mono, now_wall = time.monotonic(), time.time()
        deadline, reason = None, END_TIMEOUT
        if self.route_timeout:
            deadline = now_mono + self.route_timeout
        if principal.expires_at is not None:
            expiry = now_mono + max(0.0, principal.expires_at - now_wall)
            if deadline is None or expiry < deadline:
                deadline, reason = expiry, END_EXPIRED

        stream = SSEStream(
            self.request.connection.stream,  # type: ignore[union-attr]
            filter=query.filter, chunked=self.request.version == "HTTP/1.1",
            cursor=hub.last_id if query.cursor is None else query.cursor,
            max_buffer=ctx.settings.max_buffer,
            max_events=query.max_events or self.route_max_events,
            deadline=deadline, on_end=self._ended)
        stream.deadline_reason = reason
        self.stream = stream
        # Subscribe and note the replay bound in one tick: no gap, no duplicate.
        stream.hold()
        hub.subscribe(stream)
        replay = Replay(hub, ctx.pool, query.cursor) if query.cursor is not None else None
        try:
            reset = await replay.check() if replay is not None else None
        except psycopg.Error:
            hub.unsubscribe(stream)
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
        ctx.ticker.streams.add(stream)
        ctx.metrics.stream_opened(self.route)

        try:
            if reset is not None:
                stream.write_raw(reset.frame())
                stream.cursor = reset.last_id
                ctx.metrics.reset_sent()
            elif replay is not None:
                async for batch in replay.batches():
                    stream.write_events(batch)
                    if stream.ended is not None:
                        break
                    await stream.drain()
        except psycopg.Error as exc:
            log.warning("replay failed, ending stream: %s", exc)
            stream.end(END_CLOSED)
        stream.release()
        await self.done

    def on_connection_close(self) -> None:
        if self.stream is not None:
            self.stream.end(END_CLOSED)
        elif not self.done.done():
            self.done.set_result(END_CLOSED)

    def _ended(self, stream: SSEStream, reason: str) -> None:
        """The stream is over: detach it and end the response accordingly."""
        ctx = self.ctx
        ctx.hub.unsubscribe(stream)
        if stream in ctx.ticker.streams:
            ctx.ticker.streams.discard(stream)
            ctx.metrics.stream_closed(self.route, reason)
        if reason == END_SLOW:
            # The buffer is full: finishing would only queue more bytes.
            self.request.connection.stream.close()  # type: ignore[union-attr]
        elif reason != END_CLOSED and not self._finished:
            self.finish()
        log.info("stream end route=%s role=%s reason=%s duration=%.1fs events=%d bytes=%d",
                 self.route, self.who.role if self.who else "-", reason, time.monotonic() - stream.started,
                 stream.events_sent, stream.bytes_sent)
        if not self.done.done():
            self.done.set_result(reason)
