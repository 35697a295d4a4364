"""GET /poll: long-polling for clients behind buffering proxies (SPEC §5).

Served from the same hub and the same replay-then-live handover as /sse: a
poll subscribes, notes the hub's newest id, answers at once from the replay
(memory window or database) if anything matching is pending, and otherwise
waits for the next matching batch. ``last_id`` always moves past events the
filters hid, so a client with a narrow filter does not rescan them.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence

from ..context import Context
from ..errors import ApiError
from ..events import Encoding, Event
from ..filters import Filter
from ..handover import Handover, Reset
from ..hub import Hub
from .base import BaseHandler
from .query import parse_stream_query

DEFAULT_MAX_EVENTS = 50
MAX_TIMEOUT = 60.0
#: An answer stops taking events past this many bytes of envelopes (SPEC
#: §7: replies bounded in bytes too), however small ``max_events`` leaves
#: it: 1,000 events of 1 MB each would otherwise be a 1 GB answer. It always
#: holds at least one event, so a cursor never sticks behind a large one.
MAX_ANSWER_BYTES = 1 << 20


def bounded(events: Sequence[Event], limit: int) -> Sequence[Event]:
    """The longest prefix of ``events`` within ``limit`` events and
    :data:`MAX_ANSWER_BYTES` (at least one event when there is one)."""
    size = 0
    for i, event in enumerate(events[:limit]):
        size += len(event.json) + 1
        if size > MAX_ANSWER_BYTES and i > 0:
            return events[:i]
    return events[:limit]


class PollWaiter:
    """A hub subscriber that resolves on its first matching batch.

    It keeps how far the log had been scanned when that batch came
    (``scanned``, handed over by the hub): later batches may arrive before
    the handler runs, and ``last_id`` must not skip them. One batch is all it
    needs, so it leaves the hub on delivery.
    """

    encoding = Encoding.NONE

    def __init__(self, flt: Filter, hub: Hub, cursor: int) -> None:
        self.filter = flt
        self._hub = hub
        self.cursor = cursor
        self.scanned = 0
        self.future: asyncio.Future[Sequence[Event]] = asyncio.get_running_loop().create_future()

    def hold(self) -> None:
        """Nothing to hold: a batch that arrives during the replay resolves the
        poll, and is used only when the replay found nothing (its ids are all
        past the replay's bound, so either answer is complete)."""

    def release(self) -> None:
        pass

    def deliver(self, events: Sequence[Event], data: bytes, upto: int) -> None:
        # Behind a load balancer the client's cursor may come from a server
        # whose listener is ahead of ours: events up to it were answered there.
        fresh = events if events[0].id > self.cursor else [e for e in events if e.id > self.cursor]
        if fresh and not self.future.done():
            self.scanned = upto
            self.future.set_result(list(fresh))
            self._hub.unsubscribe(self)  # one batch is all a poll needs

    def close(self, reason: str) -> None:
        if not self.future.done():
            self.future.set_result([])
        self._hub.unsubscribe(self)


class PollHandler(BaseHandler):
    def initialize(self, ctx: Context, route: str = "poll") -> None:
        super().initialize(ctx)
        self.route = route
        self.waiter: PollWaiter | None = None
        self._replaying: asyncio.Future[tuple[list[Event], int, Reset | None] | None] | None = None

    async def get(self) -> None:
        principal = self.principal()
        errors: dict[str, str] = {}
        query = parse_stream_query(self, principal, errors)
        timeout = self._timeout(errors)
        self.check(errors)
        self.require_started()
        limit = query.max_events or DEFAULT_MAX_EVENTS
        hub = self.ctx.hub
        self.set_header("Cache-Control", "no-store")

        if query.cursor is None:
            # No cursor: where "now" is, so the next call waits for news.
            self._answer([], hub.last_id)
            return

        quota = self.ctx.quota
        metrics = self.ctx.metrics
        try:
            # A waiting poll holds a socket like a stream; a poller following a busy
            # log rightly asks again at once, so no connect rate for it.
            quota.acquire(principal.token_key, connect=False)
        except ApiError as exc:
            metrics.refused.labels("streams_per_token" if exc.status == 429 else "streams").inc()
            raise
        waiter = self.waiter = PollWaiter(query.filter, hub, query.cursor)
        handover = Handover(hub, self.ctx.pool, waiter, query.cursor)
        metrics.open_polls.labels(self.route).inc()
        try:
            # The replay's queries run as a task that a hang-up cancels
            # (SPEC §7: a connection that closes ends its replay): psycopg
            # then cancels the statement in the server and the pooled
            # connection comes back, instead of serving nobody until it ends.
            self._replaying = asyncio.ensure_future(self._replay(handover, limit))
            try:
                pending = await self._replaying
            except asyncio.CancelledError:
                if not self.gone:
                    raise
                return
            if pending is not None:
                events, last_id, reset = pending
                self._answer(events, last_id, reset=reset)
                return
            try:
                await asyncio.wait_for(asyncio.shield(waiter.future), timeout)
            except asyncio.TimeoutError:
                pass
            if waiter.future.done():  # possibly set between the timeout and now
                events = list(waiter.future.result())
                newest = waiter.scanned
            else:
                # Still waiting: everything the hub has was hidden by the filters.
                events, newest = [], hub.last_id
            newest = max(newest, query.cursor)
            answer = bounded(events, limit)
            if len(answer) < len(events):
                events, newest = list(answer), answer[-1].id
            if not self._finished and not self.gone:
                self._answer(events, newest)
        finally:
            waiter.close("answered")
            metrics.open_polls.labels(self.route).dec()
            quota.release(principal.token_key)

    async def _replay(self, handover: Handover,
                      limit: int) -> tuple[list[Event], int, Reset | None] | None:
        """What the log holds past the cursor, as ``(events, last_id,
        reset)``, or None when nothing matched and the poll must wait.

        It stops reading as soon as an answer is full (``limit`` events or
        :data:`MAX_ANSWER_BYTES`); ``last_id`` is then the last event
        included, so the next poll continues right after it.
        """
        reset = await handover.check()
        if reset is not None:
            self.ctx.metrics.reset_sent()
            return [], reset.last_id, reset
        found: list[Event] = []
        async for batch in handover.replay():
            found += batch
            answer = bounded(found, limit)
            if len(answer) < len(found) or len(answer) == limit:
                return list(answer), answer[-1].id, None
        if found:
            return found, handover.upto, None
        return None

    def on_connection_close(self) -> None:
        super().on_connection_close()
        # Release the waiting client at once: resolve its future so the
        # handler returns and unsubscribes.
        if self.waiter is not None:
            self.waiter.close("client_closed")
        if self._replaying is not None and not self._replaying.done():
            self._replaying.cancel()

    def _timeout(self, errors: dict[str, str]) -> float:
        raw = self.get_query_argument("timeout", None)
        if raw is None or raw == "":
            return self.ctx.settings.poll_timeout
        try:
            # ASCII only (SPEC §7): float() also reads "١٢" and "1_0".
            value = float(raw) if raw.isascii() and "_" not in raw else -1.0
        except ValueError:
            value = -1.0
        if not 0 <= value <= MAX_TIMEOUT:
            errors["timeout"] = f"timeout must be a number of seconds from 0 to {MAX_TIMEOUT:.0f}."
        return value

    def _answer(self, events: Sequence[Event], last_id: int, reset: Reset | None = None) -> None:
        # The envelopes are already JSON: splice them in rather than re-encode.
        body = '{"events":[' + ",".join(e.json for e in events) + '],"last_id":' + str(last_id)
        if reset is not None:
            body += ',"reset":' + json.dumps(reset.body(), separators=(",", ":"))
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.finish(body + "}")
