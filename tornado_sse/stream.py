"""One open SSE response as a hub subscriber, and the timer that tends them.

A stream writes the hub's pre-encoded bytes straight to the connection's
IOStream (one write per wake-up), bypassing RequestHandler.write so nothing
is copied or re-encoded per stream (IOStream keeps large writes by
reference, so streams of one group share one bytes object). Its backlog is
bounded: a client whose unsent bytes already exceed ``max_buffer`` when the
next write comes is cut (the connection dropped, not finished) and resumes
from its last complete event (SSE clients discard a half-received frame), so
nothing is lost and one slow client never grows the server's memory. The
bound is on the backlog, not on one write, so a burst larger than the bound
does not cut clients that keep up; memory per stream stays below
``max_buffer`` plus one wake-up's bytes.

Per-stream timers would cost a heap entry per stream and a reschedule per
write; instead one :class:`Ticker` visits every subscriber of the hub a few
times per second for keepalives and deadlines (stream timeout, token expiry).

A stream's end flows one way: :meth:`SSEStream.end` unsubscribes it from the
hub, then tells its owner (the handler) so the response is finished or
dropped. The hub is the only registry of open streams.
"""

from __future__ import annotations

import asyncio
import logging
import time
from asyncio import Future
from collections.abc import Callable, Iterable, Sequence

from tornado.ioloop import PeriodicCallback
from tornado.iostream import IOStream, StreamBufferFullError, StreamClosedError

from . import sse
from .events import Encoding, Event, join
from .filters import Filter
from .hub import Hub

log = logging.getLogger("tornado_sse.stream")

#: Why a stream ended, as logged and counted.
END_CLOSED = "client_closed"
END_SLOW = "slow_client"
END_MAX_EVENTS = "max_events"
END_TIMEOUT = "stream_timeout"
END_EXPIRED = "token_expired"
END_SHUTDOWN = "shutdown"
END_ERROR = "error"

#: Seconds a replaying client may take to accept one batch.
DRAIN_TIMEOUT = 30.0

OnEnd = Callable[["SSEStream", str], None]


class SSEStream:
    """Writes events to one client, in id order, each once."""

    # Slotted: a process holds one per open stream, 10,000 and more.
    __slots__ = ("_direct", "_heartbeat", "_hub", "_iostream", "_keepalive", "_last_write", "_max_buffer", "_on_end",
                 "_pending", "_remaining", "bytes_sent", "cursor", "deadline", "deadline_reason", "encoding",
                 "ended", "events_sent", "filter", "last_write", "opened", "started")

    def __init__(self, iostream: IOStream, hub: Hub, *, filter: Filter, chunked: bool, cursor: int,
                 keepalive: float, max_buffer: int, max_events: int = 0, heartbeat: float = 0.0,
                 deadline: float | None = None, deadline_reason: str = END_TIMEOUT,
                 on_end: OnEnd) -> None:
        self.filter = filter
        self.encoding = Encoding.CHUNKED if chunked else Encoding.RAW
        self._iostream = iostream
        self._hub = hub
        # With ?heartbeat=S (SPEC §3) a quiet stream sends a heartbeat event
        # every S seconds instead of a keepalive comment every ``keepalive``.
        self._heartbeat = heartbeat
        self._keepalive = heartbeat or keepalive
        self._max_buffer = max_buffer
        # Direct sends only on plain TCP streams: TLS framing belongs to
        # SSLIOStream.
        self._direct = type(iostream) is IOStream
        self._on_end = on_end
        self._remaining = max_events or None
        #: Monotonic time at which the stream ends (one-shot timeout, token expiry).
        self.deadline = deadline
        self.deadline_reason = deadline_reason
        #: Id of the last event written (or the resume cursor).
        self.cursor = cursor
        #: Events that arrive while a database replay is in flight.
        self._pending: list[Event] | None = None
        self.events_sent = 0
        self.bytes_sent = 0
        self.started = self.last_write = time.monotonic()
        self.ended: str | None = None
        #: True once the response head is out: from then on the ticker tends it.
        self.opened = False
        self._last_write: Future[None] | None = None

    def open(self) -> None:
        """The head and ``retry:`` are out: keepalives and deadlines apply."""
        self.opened = True
        self.last_write = time.monotonic()

    # -- replay handover ------------------------------------------------------
    def hold(self) -> None:
        """Buffer live deliveries until :meth:`release` (during a replay)."""
        self._pending = []

    def release(self) -> None:
        """Write what arrived during the replay, skipping what it covered."""
        pending, self._pending = self._pending, None
        if pending:
            self.write_events(pending)

    def write_events(self, events: Iterable[Event]) -> None:
        """Write the matching events past the cursor (replay path)."""
        fresh = [e for e in events if e.id > self.cursor and self.filter.matches(e)]
        if fresh:
            self._send(fresh, join(fresh, self.encoding))

    # -- hub interface -------------------------------------------------------
    def deliver(self, events: Sequence[Event], data: bytes, upto: int) -> None:
        if self.ended is not None:
            return
        if self._pending is not None:
            self._pending.extend(events)
            return
        if events[0].id <= self.cursor:
            # The client's cursor came from a server whose listener was ahead
            # of ours (behind a load balancer): it has these already.
            events = [e for e in events if e.id > self.cursor]
            if not events:
                return
            data = join(events, self.encoding)
        self._send(events, data)

    def close(self, reason: str) -> None:
        self.end(reason)

    def tick(self, now: float) -> None:
        if not self.opened or self.ended is not None:
            return
        if self.deadline is not None and now >= self.deadline:
            self.end(self.deadline_reason)
        elif now - self.last_write >= self._keepalive:
            self.keepalive()

    # -- writing ---------------------------------------------------------------
    def write_raw(self, frame: bytes) -> None:
        """Write a non-event frame (retry, reset, keepalive) in this stream's encoding."""
        self._write(sse.http_chunk(frame) if self.encoding is Encoding.CHUNKED else frame)

    async def drain(self, timeout: float = DRAIN_TIMEOUT) -> None:
        """Wait until everything written so far has left for the socket.

        Replay paces itself by this instead of filling the buffer; a client
        that does not take a batch within ``timeout`` is too slow and is cut.
        """
        if self._last_write is None or self.ended is not None:
            return
        try:
            await asyncio.wait_for(asyncio.shield(self._last_write), timeout)
        except StreamClosedError:
            self.end(END_CLOSED)
        except asyncio.TimeoutError:
            self.end(END_SLOW)

    def abort(self) -> None:
        """Drop the connection without finishing the response (a slow client)."""
        self._iostream.close()

    def keepalive(self) -> None:
        """A sign of life on a quiet stream: a heartbeat event if the client
        asked for one (it does not move the cursor), else a comment."""
        self.write_raw(sse.heartbeat(self.cursor) if self._heartbeat else sse.KEEPALIVE)

    def _send(self, events: Sequence[Event], data: bytes) -> None:
        limit = self._remaining
        if limit is not None and len(events) >= limit:
            events = events[:limit]
            data = join(events, self.encoding)
        self._write(data)
        if self.ended is not None:
            return
        self.cursor = events[-1].id
        self.events_sent += len(events)
        if limit is not None:
            self._remaining = limit - len(events)
            if self._remaining == 0:
                self.end(END_MAX_EVENTS)

    def _write(self, data: bytes | memoryview) -> None:
        if self.ended is not None:
            return
        stream = self._iostream
        if self._direct and not stream.writing():
            # Nothing queued: hand the bytes to the kernel ourselves. The
            # usual case is one send() and done, without IOStream.write's
            # Future and callback per stream per wake-up (the fan-out's
            # biggest cost after the syscall, bench/RESULTS.md). Only what
            # the socket did not take goes through the IOStream below.
            sock = stream.socket
            if sock is None or stream.closed():
                # Closed by Tornado; its close callback has not run yet.
                self.end(END_CLOSED)
                return
            try:
                sent = sock.send(data)
            except BlockingIOError:
                sent = 0
            except OSError:
                self.end(END_CLOSED)
                return
            self.bytes_sent += sent
            self.last_write = time.monotonic()
            if sent == len(data):
                self._last_write = None  # nothing pending for drain()
                return
            data = memoryview(data)[sent:]  # no copy of the shared bytes
        # IOStream refuses a write when buffer + data > max_write_buffer_size;
        # raising the limit by len(data) makes that "buffer > max_buffer".
        stream.max_write_buffer_size = self._max_buffer + len(data)
        try:
            self._last_write = stream.write(data)
        except StreamBufferFullError:
            self.end(END_SLOW)
            return
        except StreamClosedError:
            self.end(END_CLOSED)
            return
        self.bytes_sent += len(data)
        self.last_write = time.monotonic()

    def end(self, reason: str) -> None:
        """End once: leave the hub, then let the owner finish or drop the response."""
        if self.ended is None:
            self.ended = reason
            self._pending = None
            self._hub.unsubscribe(self)
            self._on_end(self, reason)


def open_streams(hub: Hub) -> list[SSEStream]:
    """The SSE streams whose head is out (health, metrics and tests count them)."""
    return [s for s in hub.subscribers() if isinstance(s, SSEStream) and s.opened]


class Ticker:
    """Keepalives and deadlines for every subscriber of the hub, from one timer."""

    def __init__(self, hub: Hub, keepalive: float) -> None:
        self._hub = hub
        # Visit often enough that a quiet stream hears from us within 1.25
        # keepalive intervals, and deadlines are met within a second.
        period = min(1.0, max(0.05, keepalive / 4))
        self._timer = PeriodicCallback(self._tick, period * 1000)

    def start(self) -> None:
        self._timer.start()

    def stop(self) -> None:
        self._timer.stop()

    def _tick(self) -> None:
        now = time.monotonic()
        for sub in self._hub.subscribers():
            sub.tick(now)
