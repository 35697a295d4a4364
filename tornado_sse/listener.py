"""The bridge from PostgreSQL to the hub: one per server process.

A dedicated autocommit connection LISTENs on ``sse_events``. A notification
normally carries its event (sql/002): when the notifications of a wake-up
continue the cursor without a gap, they are published as they are, with no
query (each added server costs the database a notification, not a read).
Otherwise (at start, after a reconnect, on a gap in ids, for an event too
large to carry, on every quiet tick) the listener reads every row past its
cursor, in batches, on a second connection of its own; a payload of any
size works. Neither
connection comes from the request pool: a storm of snapshots or writes that
exhausts the pool cannot delay live events or fail /healthz (issue 12).

Failure handling, because this is where events could be lost:

- The cursor only moves when a batch has been published, and catch-up runs
  after LISTEN is in place, so nothing committed in between is missed.
- When the connection drops, it reconnects with capped exponential backoff
  and jitter, then reads everything past its cursor before waiting again.
- A connection that dies silently (half-open: no error, no data) is found by
  a liveness query after every quiet ``check_interval``, bounded by
  ``check_timeout``; TCP keepalives catch it at the socket level as well.
- The same quiet tick also runs a catch-up, so a lost notification delays an
  event by at most ``check_interval`` instead of losing it.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import random
import time
from collections.abc import Callable, Sequence
from typing import Any

import psycopg

from . import eventlog
from .events import Event
from .hub import Hub

log = logging.getLogger("tornado_sse.listener")

CHANNEL = "sse_events"
#: How the LISTEN connection shows in pg_stat_activity (and how to find it).
APPLICATION_NAME = "tornado_sse_listener"


class State(enum.Enum):
    """What /healthz reports."""

    STARTING = "starting"
    CONNECTED = "connected"
    DISCONNECTED = "disconnected"
    STOPPED = "stopped"


class Backoff:
    """Capped exponential backoff with full jitter (a thundering herd of
    servers reconnecting to one database after an outage spreads out)."""

    def __init__(self, *, base: float = 0.1, cap: float = 5.0) -> None:
        self.base, self.cap, self.attempt = base, cap, 0

    def next_delay(self) -> float:
        delay = random.uniform(0, min(self.cap, self.base * 2 ** self.attempt))
        self.attempt += 1
        return delay

    def reset(self) -> None:
        self.attempt = 0


class Listener:
    """Keeps ``hub`` fed with every committed event, in id order, once."""

    def __init__(self, dsn: str, hub: Hub, *,
                 batch_size: int = 1000, check_interval: float = 10.0,
                 check_timeout: float = 10.0,
                 on_batch: Callable[[Sequence[Event], float, int, int], None] | None = None) -> None:
        self._dsn = dsn
        self._hub = hub
        self._batch_size = batch_size
        self._check_interval = check_interval
        self._check_timeout = check_timeout
        self._on_batch = on_batch
        self._task: asyncio.Task[None] | None = None
        self._conn: psycopg.AsyncConnection[Any] | None = None
        #: The listener's own connection for reading the log.
        self._reader: psycopg.AsyncConnection[Any] | None = None
        self._connected = asyncio.Event()
        # One reader at a time: two concurrent catch-ups would read the same
        # rows from the same cursor and publish them twice.
        self._reading = asyncio.Lock()
        self.cursor = 0
        self.state = State.STARTING
        self.last_error = "not connected yet"
        #: Monotonic time of the last successful read or liveness check.
        self.last_contact = 0.0
        self.reconnects = 0
        #: Queries of the event log (start, reconnects, gaps, large events,
        #: quiet ticks); notifications that carry their event cost none.
        self.log_reads = 0

    def start(self) -> None:
        """Begin listening; the first contact with the database sets the
        cursor to the newest event (a live start), so this never blocks."""
        self._task = asyncio.create_task(self._run(), name="tornado_sse.listener")

    async def wait_connected(self, timeout: float | None = None) -> None:
        """Wait until LISTEN is in place and the first catch-up is done."""
        await asyncio.wait_for(self._connected.wait(), timeout)

    @property
    def connected(self) -> bool:
        return self.state is State.CONNECTED

    async def stop(self) -> None:
        """Stop listening and close the connection."""
        self.state = State.STOPPED
        # Close the connection first, so a wait inside notifies() fails at once
        # even if the cancellation below is lost (see _run).
        await self._close_conn()
        if self._task is not None:
            self._task.cancel()
            # Bounded: shutdown must not hang on a connect or pool wait that
            # is slow to honour cancellation.
            done, _ = await asyncio.wait({self._task}, timeout=5)
            if not done:
                log.warning("listener task did not stop within 5 s; abandoning it")
            self._task = None

    # -- the loop -----------------------------------------------------------
    async def _run(self) -> None:
        backoff = Backoff()
        # The state is checked as well as cancellation honoured: on Python
        # <= 3.11, asyncio.wait_for can swallow a cancellation that arrives
        # as its inner awaitable completes (CPython gh-86296).
        while self.state is not State.STOPPED:
            try:
                await self._listen()
                if not self._hub.started:
                    _, newest = await asyncio.wait_for(eventlog.bounds(self._reader_conn()),
                                                    self._check_timeout)
                    self.cursor = newest
                    self._hub.start_at(newest)
                await self.catch_up()
                self._set_state(State.CONNECTED)
                self._connected.set()
                backoff.reset()
                await self._wait_loop()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if not isinstance(exc, (psycopg.Error, OSError, asyncio.TimeoutError)):
                    log.exception("listener failed unexpectedly; restarting it")
                self.last_error = _one_line(exc)
                self._connected.clear()
                await self._close_conn()
                if self.state is State.CONNECTED:
                    self.reconnects += 1
                self._set_state(State.DISCONNECTED)
                delay = backoff.next_delay()
                log.warning("listener disconnected (%s); reconnecting in %.2fs",
                            self.last_error, delay)
                await asyncio.sleep(delay)

    async def _listen(self) -> None:
        self._conn = await self._connect()
        self._reader = await self._connect()
        await self._conn.execute(f"LISTEN {CHANNEL}")

    async def _connect(self) -> psycopg.AsyncConnection[Any]:
        return await psycopg.AsyncConnection.connect(
            self._dsn, autocommit=True, connect_timeout=10, application_name=APPLICATION_NAME,
            keepalives=1, keepalives_idle=10, keepalives_interval=5, keepalives_count=3)

    def _reader_conn(self) -> psycopg.AsyncConnection[Any]:
        if self._reader is None:
            raise psycopg.OperationalError("the listener's reader connection is closed")
        return self._reader

    async def _wait_loop(self) -> None:
        conn = self._conn
        assert conn is not None
        while self.state is not State.STOPPED:
            payloads: list[str] = []
            async for note in conn.notifies(timeout=self._check_interval, stop_after=1):
                payloads.append(note.payload)
            if payloads:
                # Everything already received joins this wake-up.
                async for note in conn.notifies(timeout=0):
                    payloads.append(note.payload)
                if self._publish_notified(payloads):
                    continue
            else:
                await self._check_alive(conn)
            await self.catch_up()

    def _publish_notified(self, payloads: list[str]) -> bool:
        """Publish straight from notifications that carry their events.

        Only when they continue the cursor without a gap: notifications
        arrive in commit order, which is id order (sql/), so the events
        past the cursor are exactly these. Anything else (an event too big
        to carry, a gap left by a rolled-back id, a payload not in the
        expected shape) returns False, and the caller reads the log by
        cursor, which settles it. Events at or below the cursor were
        already read by a catch-up and are skipped.
        """
        if self._reading.locked():
            return False  # a catch-up is reading: it covers these, in order
        events: list[Event] = []
        expected = self.cursor + 1
        for text in payloads:
            if not text.startswith("{"):
                return False  # the id of an event too large for a notification
            try:
                event = Event.from_notification(text)
            except (ValueError, KeyError, TypeError) as exc:
                log.warning("unexpected notification (%s); reading the log instead", exc)
                return False
            if event.id < expected:
                continue
            if event.id != expected:
                return False
            events.append(event)
            expected += 1
        if events:
            self._publish(events)
        self.last_contact = time.monotonic()
        return True

    def _publish(self, events: Sequence[Event]) -> None:
        started = time.perf_counter()
        deliveries, sent = self._hub.publish(events)
        self.cursor = events[-1].id
        if self._on_batch is not None:
            self._on_batch(events, time.perf_counter() - started, deliveries, sent)

    async def _check_alive(self, conn: psycopg.AsyncConnection) -> None:
        """A liveness query bounded by ``check_timeout``.

        On timeout the socket is closed before the probe is cancelled:
        cancelling first makes psycopg try to cancel the query over the dead
        connection and wait 5 s for an answer that cannot come.
        """
        probe = asyncio.ensure_future(conn.execute("SELECT 1"))
        done, _ = await asyncio.wait({probe}, timeout=self._check_timeout)
        if not done:
            await self._close_conn()
            probe.cancel()
            await asyncio.wait({probe}, timeout=1)
            if probe.done() and not probe.cancelled():
                probe.exception()  # retrieved: it is the expected closed-socket error
            raise TimeoutError(f"no answer to a liveness check in {self._check_timeout:g}s")
        probe.result()
        self.last_contact = time.monotonic()

    async def catch_up(self) -> None:
        """Publish every committed event past the cursor, in batches."""
        async with self._reading:
            await self._read_all()

    async def _read_all(self) -> None:
        while True:
            # Bounded: the reader connection can be half-open too, and a read
            # that never returns would stall every stream.
            events = await asyncio.wait_for(
                eventlog.events_after(self._reader_conn(), self.cursor, limit=self._batch_size),
                self._check_timeout)
            self.last_contact = time.monotonic()
            self.log_reads += 1
            if not events:
                return
            self._publish(events)
            if len(events) < self._batch_size:
                return

    async def _close_conn(self) -> None:
        conns = (self._conn, self._reader)
        self._conn = self._reader = None
        for conn in conns:
            if conn is not None:
                try:
                    await conn.close()  # only closes the socket: no round trip to wait for
                except (psycopg.Error, OSError):
                    pass

    def _set_state(self, state: State) -> None:
        if state is not self.state and self.state is not State.STOPPED:
            log.info("listener %s -> %s", self.state.value, state.value)
            self.state = state


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
