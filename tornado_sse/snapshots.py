"""How many snapshots run at once (SPEC §7): per token, and on how many
pooled connections.

A snapshot reads in one transaction (one MVCC snapshot, SPEC §5), so while
its client is slow to take the rows it holds a pooled connection. 25 staff
clients that opened 400-day snapshots and read nothing once held one each
and admin writes got 503 busy (issue 19). So snapshots may hold at most
``connections`` of the pool at once (the rest stay for writes, polls and
replays), and one token at most ``per_token`` snapshots (429, as for streams).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from .errors import busy, too_many_snapshots


class SnapshotGate:
    """Admission for snapshots; ``per_token`` 0 means no per-token limit."""

    def __init__(self, *, per_token: int, connections: int, wait: float) -> None:
        self.per_token = per_token
        self._by_token: Counter[str] = Counter()
        self._connections = asyncio.Semaphore(connections)
        self._wait = wait

    def admit(self, token_key: str) -> None:
        """Count one more snapshot of ``token_key``, or raise 429."""
        if self.per_token and self._by_token[token_key] >= self.per_token:
            raise too_many_snapshots(self.per_token)
        self._by_token[token_key] += 1

    def leave(self, token_key: str) -> None:
        """One snapshot of ``token_key`` is over (once per :meth:`admit`)."""
        self._by_token[token_key] -= 1
        if not self._by_token[token_key]:
            del self._by_token[token_key]

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[None]:
        """Hold one of the snapshots' share of the pool; 503 busy when none
        comes free within ``wait`` seconds, as for the pool itself."""
        try:
            await asyncio.wait_for(self._connections.acquire(), self._wait)
        except asyncio.TimeoutError:
            raise busy("Every database connection snapshots may use is taken; "
                       "try again shortly.") from None
        try:
            yield
        finally:
            self._connections.release()
