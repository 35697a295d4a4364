"""Resuming from a cursor: what a client missed, or why it must reset.

Used by /sse and /poll alike. A :class:`Replay` must be created in the same
IOLoop tick as the subscription it completes (no ``await`` in between): it
notes the hub's newest id then, and everything after that reaches the
subscriber live, so replay and live meet with no gap and no duplicate
(Mercure's handover).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import AsyncIterator

from psycopg_pool import AsyncConnectionPool

from . import sse, store
from .events import Event
from .hub import Hub

CURSOR_EXPIRED = "cursor_expired"  # older than the retained history
CURSOR_AHEAD = "cursor_ahead"  # newer than the newest event


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


class Replay:
    """Events after ``cursor`` up to the hub's newest id at creation."""

    def __init__(self, hub: Hub, pool: AsyncConnectionPool, cursor: int) -> None:
        self.cursor = cursor
        self.upto = hub.last_id
        self._pool = pool
        # From memory when the window reaches back to the cursor: no query.
        self._window = hub.events_after(cursor) if cursor <= self.upto else None

    async def check(self) -> Reset | None:
        """A reset if the cursor is outside the history (may query)."""
        if self._window is not None:
            return None
        pruned, newest = await store.log_bounds(self._pool)
        if self.cursor > max(newest, self.upto):
            return Reset(CURSOR_AHEAD, self.upto)
        if self.cursor < pruned:
            return Reset(CURSOR_EXPIRED, self.upto)
        return None

    async def batches(self, limit: int = 500) -> AsyncIterator[list[Event]]:
        """The missed events in id order, in batches of at most ``limit``."""
        if self._window is not None:
            for i in range(0, len(self._window), limit):
                yield self._window[i:i + limit]
            return
        cursor = self.cursor
        while cursor < self.upto:
            events = await store.events_after(self._pool, cursor, upto=self.upto, limit=limit)
            if not events:
                return
            yield events
            cursor = events[-1].id
