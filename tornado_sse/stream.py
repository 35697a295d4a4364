"""One open SSE response as a hub subscriber that owns its socket, and the
per-server machinery that tends every stream.

Once the response head is out, the handler detaches the connection from
Tornado (``HTTP1Connection.detach()``, as Tornado's websocket code does) and
hands the socket to an :class:`SSEStream`. From then on a stream is a few
slots: the descriptor, its filter, cursor, deadlines and a backlog that is
empty almost always. It holds no IOStream, Future, closure or timer:
:class:`Ticker` visits every stream a few times a second (keepalives,
heartbeats, deadlines) and its :class:`~tornado_sse.socketwatch.SocketWatch`
set reports hang-ups and writability for all of them from one epoll set.
An idle stream costs about a kilobyte and a handful of objects the garbage
collector walks, instead of Tornado's ~90 (ARCHITECTURE.md, issue 21).

Writes go straight to the socket (``os.write``): the hub's joined bytes are
shared by every stream of a group and are never copied unless a socket
does not take them whole. What it does not take waits in the stream's
backlog, sent when the socket is writable. The backlog is bounded: a
client whose unsent bytes already exceed ``max_buffer`` when the next write
comes is cut (the connection dropped, not finished) and resumes from its
last complete event (SSE clients discard a half-received frame), so
nothing is lost and one slow client never grows the server's memory.

A stream's end flows one way: :meth:`SSEStream.end` leaves the hub, writes
the end of the body (the last chunk; HTTP/1.0 bodies end with the
connection) behind whatever backlog is left, closes the socket once that is
out, and reports to its :class:`Ticker` (quota, metrics, the stream's log
line and its one access-log line). After a clean end the connection is
closed rather than kept alive for another request.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from tornado.ioloop import PeriodicCallback

from . import sse
from .events import Encoding, Event, join
from .filters import Filter
from .hub import Hub
from .logfmt import fields
from .socketwatch import SocketWatch

if TYPE_CHECKING:
    from .metrics import Metrics
    from .quota import StreamQuota
    from .tracing import Tracing

log = logging.getLogger("tornado_sse.stream")
access_log = logging.getLogger("tornado.access")

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
#: Seconds an ended stream may take to read its backlog and the last chunk.
LINGER = 10.0
#: The end of a chunked body (RFC 9112 §7.1).
LAST_CHUNK = b"0\r\n\r\n"
#: Buffers handed to one writev() (below every system's IOV_MAX).
_IOV = 64
#: Longest wait between two visits of the ticker to one stream, seconds: an
#: ended stream leaves the ticker's schedule at its next visit, so this
#: bounds how long the schedule holds it (with a long ?heartbeat= too).
MAX_VISIT_GAP = 15.0


class SSEStream:
    """Writes events to one client, in id order, each once."""

    # Slotted: a process holds one per open stream, 10,000 and more.
    # Slotted, and everything of its request kept in its own slots (strings
    # and numbers, which the collector does not track): a stream is one
    # object for the garbage collector to walk, its filter shared with
    # every equal stream (Hub.shared_filter).
    __slots__ = ("_backlog", "_drained", "_every", "_fd", "_heartbeat", "_host", "_pending", "_remaining",
                 "_unsent", "bytes_sent", "cursor", "deadline", "deadline_reason", "encoding", "ended",
                 "events_sent", "filter", "last_write", "opened", "request_id", "request_line", "role",
                 "route", "started", "started_wall", "token_key", "traceparent")

    def __init__(self, fd: int, host: Ticker, *, route: str, role: str, token_key: str, request_line: str,
                 started_wall: float, filter: Filter, chunked: bool, cursor: int, max_events: int = 0,
                 request_id: str = "", traceparent: str | None = None,
                 heartbeat: float = 0.0, deadline: float | None = None,
                 deadline_reason: str = END_TIMEOUT) -> None:
        self.filter = host.hub.shared_filter(filter)
        self.encoding = Encoding.CHUNKED if chunked else Encoding.RAW
        #: The connection's socket, ours alone (a non-blocking descriptor).
        self._fd = fd
        self._host = host
        #: What its quota, metrics and log lines need of the request.
        self.route = route
        self.role = role
        self.token_key = token_key
        #: ``METHOD redacted-uri (remote ip)``, as the access log prints it.
        self.request_line = request_line
        #: The request's id (X-Request-Id, echoed), for the log's fields.
        self.request_id = request_id
        #: The caller's W3C trace context, kept only while tracing is on.
        self.traceparent = traceparent
        self.started_wall = started_wall
        # With ?heartbeat=S (SPEC §3) a quiet stream sends a heartbeat event
        # every S seconds instead of a keepalive comment every ``keepalive``.
        self._heartbeat = bool(heartbeat)
        self._every = heartbeat or host.keepalive
        self._remaining = max_events or None
        #: Monotonic time at which the stream ends (one-shot timeout, token expiry).
        self.deadline = deadline
        self.deadline_reason = deadline_reason
        #: Id of the last event written (or the resume cursor).
        self.cursor = cursor
        #: Events that arrive while a replay is in flight.
        self._pending: list[Event] | None = None
        #: Bytes the socket has not taken yet, oldest first (None: none).
        self._backlog: list[bytes | memoryview] | None = None
        self._unsent = 0
        #: Resolved when the backlog empties, only while a replay waits for it.
        self._drained: asyncio.Future[None] | None = None
        self.events_sent = 0
        self.bytes_sent = 0
        self.started = self.last_write = time.monotonic()
        self.ended: str | None = None
        #: True once it is the ticker's to tend (its head is out).
        self.opened = False
        host.readiness.add(fd, self)

    def open(self) -> None:
        """The head and ``retry:`` are out: keepalives and deadlines apply."""
        self.opened = True
        self.last_write = time.monotonic()
        self._host.metrics.stream_opened(self.route)
        self._host.visit(self, self._next_visit())

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
        """The ticker's visit, at the time :meth:`_next_visit` asked for (or
        a tick period later): end at the deadline, or send a keepalive if
        nothing was written for ``_every`` seconds, then ask for the next
        visit. An ended stream asks for none and leaves the schedule."""
        if not self.opened or self.ended is not None:
            return
        if self.deadline is not None and now >= self.deadline:
            self.end(self.deadline_reason)
            return
        if now - self.last_write >= self._every:
            self.keepalive()
        if self.ended is None:
            self._host.visit(self, self._next_visit())

    def _next_visit(self) -> float:
        """When this stream needs the ticker next: its keepalive is due, its
        deadline comes, or MAX_VISIT_GAP passes. A write meanwhile moves
        the keepalive later; the visit then finds nothing to do and asks
        again (writes never touch the schedule)."""
        at = min(self.last_write + self._every, time.monotonic() + MAX_VISIT_GAP)
        return at if self.deadline is None else min(at, self.deadline)

    # -- readiness interface ----------------------------------------------------
    def hung_up(self) -> None:
        """The client is gone (the readiness set saw it)."""
        if self.ended is None:
            self.end(END_CLOSED)
        else:
            self._close()  # it will not read the rest of an ended stream either

    def writable(self) -> None:
        """Send what the socket will take of the backlog."""
        backlog = self._backlog
        if backlog is None:
            return
        try:
            sent = os.writev(self._fd, backlog[:_IOV])
        except BlockingIOError:
            return
        except OSError:
            self.hung_up()
            return
        self._unsent -= sent
        while sent:
            head = backlog[0]
            if sent >= len(head):
                sent -= len(head)
                del backlog[0]
            else:
                backlog[0] = memoryview(head)[sent:]
                sent = 0
        if backlog:
            return
        self._backlog = None
        self._host.readiness.watch_writes(self._fd, False)
        if self.ended is not None:
            self._close()  # the last chunk is out
        elif self._drained is not None and not self._drained.done():
            self._drained.set_result(None)

    # -- writing ---------------------------------------------------------------
    def write_raw(self, frame: bytes) -> None:
        """Write a non-event frame (retry, reset, keepalive) in this stream's encoding."""
        self._write(sse.http_chunk(frame) if self.encoding is Encoding.CHUNKED else frame)

    async def drain(self, timeout: float = DRAIN_TIMEOUT) -> None:
        """Wait until everything written so far has left for the socket.

        Replay paces itself by this instead of filling the backlog; a client
        that does not take a batch within ``timeout`` is too slow and is cut.
        The Future exists only while a replay waits, never on an idle stream.
        """
        if self._backlog is None or self.ended is not None:
            return
        self._drained = asyncio.get_running_loop().create_future()
        try:
            await asyncio.wait_for(self._drained, timeout)
        except asyncio.TimeoutError:
            self.end(END_SLOW)
        finally:
            self._drained = None

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

    def _write(self, data: bytes) -> None:
        if self.ended is not None:
            return
        if self._backlog is not None:
            if self._unsent > self._host.max_buffer:
                self.end(END_SLOW)
                return
            self._backlog.append(data)
            self._unsent += len(data)
        else:
            self._put(data)
        self.bytes_sent += len(data)
        self.last_write = time.monotonic()

    def _put(self, data: bytes) -> None:
        """Hand ``data`` to the kernel; keep what it did not take (no copy)."""
        try:
            sent = os.write(self._fd, data)
        except BlockingIOError:
            sent = 0
        except OSError:
            if self.ended is None:
                self.end(END_CLOSED)
            return
        if sent < len(data):
            self._backlog = [memoryview(data)[sent:]]
            self._unsent = len(data) - sent
            self._host.readiness.watch_writes(self._fd, True)

    # -- the end ---------------------------------------------------------------
    def end(self, reason: str) -> None:
        """End once: leave the hub, finish or drop the response, report."""
        if self.ended is not None:
            return
        self.ended = reason
        self._pending = None
        host = self._host
        host.hub.unsubscribe(self)
        if reason in (END_CLOSED, END_SLOW):
            # Gone, or its backlog is full: finishing would only queue more.
            self._close()
        else:
            if self.encoding is Encoding.CHUNKED:
                if self._backlog is not None:
                    self._backlog.append(LAST_CHUNK)
                else:
                    self._put(LAST_CHUNK)
            if self._backlog is None:
                self._close()
            else:
                # The client reads its backlog and the last chunk, within bounds.
                self.deadline = time.monotonic() + LINGER
                host.lingering.add(self)
        if self._drained is not None and not self._drained.done():
            self._drained.set_result(None)
        host.ended(self, reason)

    def _close(self) -> None:
        fd, self._fd = self._fd, -1
        if fd < 0:
            return
        self._backlog = None
        self._host.readiness.remove(fd)
        self._host.lingering.discard(self)
        os.close(fd)

    def linger(self, now: float) -> None:
        """An ended stream still sending its last bytes: give up past its time."""
        if self.deadline is not None and now >= self.deadline:
            self._close()


def open_streams(hub: Hub) -> list[SSEStream]:
    """The SSE streams whose head is out (health, metrics and tests count them)."""
    return [s for s in hub.subscribers() if isinstance(s, SSEStream) and s.opened]


class Ticker:
    """Tends every stream of one server: keepalives and deadlines from one
    timer, hang-ups and writability from one readiness set, and the
    bookkeeping of a stream's end (quota, metrics, log lines)."""

    def __init__(self, hub: Hub, keepalive: float, *, quota: StreamQuota, metrics: Metrics,
                 max_buffer: int, tracing: Tracing | None = None) -> None:
        self.hub = hub
        #: A detached stream's request span is recorded at its end, here
        #: (Tornado never finishes that request, so its log hook never runs).
        self.tracing = tracing
        self.keepalive = keepalive
        self.max_buffer = max_buffer
        self.quota = quota
        self.metrics = metrics
        self.readiness = SocketWatch()
        #: Ended streams still sending their backlog and last chunk.
        self.lingering: set[SSEStream] = set()
        # Tick often enough that a quiet stream hears from us within 1.25
        # keepalive intervals, and deadlines are met within a second.
        period = min(1.0, max(0.05, keepalive / 4))
        self._timer = PeriodicCallback(self._tick, period * 1000)
        # The schedule: streams by the tick period (its number since the
        # clock's epoch) in which they want a visit. A tick visits only the
        # streams whose time has come, not every stream: at 10,000 quiet
        # streams and a 15 s keepalive that is ~700 visits a second instead
        # of 10,000, which every event paid for as the streams grew (issue
        # 21's flatness; bench/RESULTS.md round 4).
        self._period = period
        self._slots: dict[int, list[SSEStream]] = {}
        self._next_slot = int(time.monotonic() / period)

    def start(self) -> None:
        self._timer.start()

    def stop(self) -> None:
        """Stop tending; close what is still lingering (the server stops)."""
        self._timer.stop()
        self._slots.clear()
        for stream in list(self.lingering):
            stream._close()
        self.readiness.close()

    def ended(self, stream: SSEStream, reason: str) -> None:
        """A stream has left the hub: count it, release its quota, log it once."""
        self.metrics.stream_closed(stream.route, reason)
        self.quota.release(stream.token_key)
        duration = time.monotonic() - stream.started
        log.info("stream end", extra=fields(
            route=stream.route, role=stream.role, reason=reason, duration_ms=round(1000 * duration, 1),
            events=stream.events_sent, bytes=stream.bytes_sent, request_id=stream.request_id or None))
        # The one access-log line of the request, as app.access_logger writes
        # it; method, target, path (the route: SSE routes take no path
        # parameters) and address are cut out of the request line once here
        # rather than kept as slots of every idle stream.
        method, _, rest = stream.request_line.partition(" ")
        target, _, address = rest.rpartition(" (")
        path = target.partition("?")[0]
        access_log.info("%d %s", 200, stream.request_line, extra=fields(
            route=path or None, method=method, target=target, status=200,
            duration_ms=round(1000.0 * (time.time() - stream.started_wall), 1),
            bytes=stream.bytes_sent, events=stream.events_sent, reason=reason,
            remote_ip=address.rstrip(")") or None, request_id=stream.request_id or None))
        if self.tracing is not None and self.tracing.enabled:
            self.tracing.request(
                method=method, path=path, route=path or None, status=200,
                duration=time.time() - stream.started_wall,
                headers={"traceparent": stream.traceparent} if stream.traceparent else {},
                attributes={"request_id": stream.request_id or None, "events": stream.events_sent,
                            "bytes": stream.bytes_sent, "reason": reason})

    def visit(self, stream: SSEStream, at: float) -> None:
        """Have ``stream.tick`` called at the first tick at or after ``at``
        (monotonic), or at the next tick if that time has passed."""
        slot = max(int(at / self._period), self._next_slot)
        bucket = self._slots.get(slot)
        if bucket is None:
            self._slots[slot] = [stream]
        else:
            bucket.append(stream)

    def _tick(self) -> None:
        now = time.monotonic()
        upto = int(now / self._period)
        slots = self._slots
        while self._next_slot <= upto:
            due = slots.pop(self._next_slot, None)
            self._next_slot += 1  # first: a visit asks for a later slot, never this one
            if due is not None:
                for stream in due:
                    stream.tick(now)
        for stream in list(self.lingering):
            stream.linger(now)
