"""Replay then live, with no gap and no duplicate: written once for /sse
and /poll alike (Mercure's handover).

A :class:`Handover` subscribes its subscriber and notes the hub's newest id
in one step, with no ``await`` in between: everything after that id reaches
the subscriber live (held back while the replay runs), everything up to it
comes from the replay: from the hub's memory window when it reaches back to
the cursor, else from the event log in the database. A cursor outside the
retained history is answered with a :class:`Reset`, never skipped.

Sequence (ARCHITECTURE.md has the diagram)::

    hold; subscribe; upto = hub.last_id      # one tick
    check: reset?  (may query the log bounds)
    replay (cursor, upto] in batches         # filtered, in id order
    release: what arrived live meanwhile, past what the replay covered
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol

from psycopg_pool import AsyncConnectionPool

from . import eventlog, sse
from .events import Event
from .hub import Hub, Subscriber

CURSOR_EXPIRED = "cursor_expired"  # older than the retained history
CURSOR_AHEAD = "cursor_ahead"  # newer than the newest event
#: Events per replay batch (one query, one write, one drain each).
REPLAY_BATCH = 500


@dataclass(frozen=True)
class Reset:
    """The client's cursor cannot be replayed; it should reload its snapshot."""

    reason: str
    last_id: int

    def body(self) -> dict[str, object]:
        return {"reason": self.reason, "last_id": self.last_id}

    def frame(self) -> bytes:
        return sse.frame(json.dumps(self.body(), separators=(",", ":")),
                         event="reset", id=self.last_id)


class Holding(Subscriber, Protocol):
    """A subscriber that can hold live deliveries back during a replay."""

    def hold(self) -> None:
        """Buffer live deliveries until :meth:`release`."""

    def release(self) -> None:
        """Deliver what was held, skipping what the replay covered."""


class Handover:
    """Subscribe ``sub`` and replay what it missed after ``cursor``.

    ``cursor`` None means a live start: nothing to replay. The subscription
    is the subscriber's from then on: it unsubscribes itself when it ends.
    """

    def __init__(self, hub: Hub, pool: AsyncConnectionPool, sub: Holding,
                 cursor: int | None) -> None:
        sub.hold()
        hub.subscribe(sub)
        # Same tick as the subscription: the replay bound.
        self.upto = hub.last_id
        self.cursor = cursor
        self._sub = sub
        self._pool = pool
        # From memory when the window reaches back to the cursor: no query.
        self._window = (hub.events_after(cursor)
                        if cursor is not None and cursor <= self.upto else None)

    async def check(self) -> Reset | None:
        """A reset if the cursor is outside the history (may query)."""
        if self.cursor is None or self._window is not None:
            return None
        pruned, newest = await eventlog.bounds(self._pool)
        if self.cursor > max(newest, self.upto):
            return Reset(CURSOR_AHEAD, self.upto)
        if self.cursor < pruned:
            return Reset(CURSOR_EXPIRED, self.upto)
        return None

    async def replay(self) -> AsyncIterator[list[Event]]:
        """The missed events the subscriber's filter matches, in id order, in
        batches (empty batches are skipped)."""
        if self.cursor is None:
            return
        flt = self._sub.filter
        if self._window is not None:
            matched = self._window if flt.everything else [e for e in self._window if flt.matches(e)]
            for i in range(0, len(matched), REPLAY_BATCH):
                yield matched[i:i + REPLAY_BATCH]
            return
        cursor = self.cursor
        while cursor < self.upto:
            # The filter is applied in SQL (indexed): a narrow filter over a
            # long history reads what it returns, not the history.
            events = await eventlog.events_after(self._pool, cursor, upto=self.upto,
                                                 limit=REPLAY_BATCH, matching=flt)
            if not events:
                return
            cursor = events[-1].id
            yield events
            if len(events) < REPLAY_BATCH:
                return

    def release(self) -> None:
        """The replay is over: live deliveries flow straight through."""
        self._sub.release()
