"""How many streams one token, and one process, may hold open (SPEC §7).

A stream (SSE, or a waiting long-poll) holds a socket and memory for as
long as it lasts, so one leaked or hostile token could otherwise take every
connection a process has. Per-token overflow is 429 (that token's problem,
others unaffected); per-process overflow is 503 (the server's).
"""

from __future__ import annotations

from collections import Counter

from .errors import ApiError, too_many_streams


class StreamQuota:
    """Counts open streams per token key and in total; 0 means no limit."""

    def __init__(self, *, per_token: int, total: int) -> None:
        self.per_token = per_token
        self.total = total
        self._by_token: Counter[str] = Counter()
        self.open = 0

    def acquire(self, token_key: str) -> None:
        """Count one more stream for ``token_key``, or raise 429/503."""
        if self.total and self.open >= self.total:
            raise ApiError(503, "rest_unavailable", "The server holds as many streams as it may; "
                           "try again shortly.", retry_after=5, reason="busy")
        if self.per_token and self._by_token[token_key] >= self.per_token:
            raise too_many_streams(self.per_token)
        self._by_token[token_key] += 1
        self.open += 1

    def release(self, token_key: str) -> None:
        """One stream of ``token_key`` has ended (call once per acquire)."""
        self.open -= 1
        left = self._by_token[token_key] - 1
        if left > 0:
            self._by_token[token_key] = left
        else:
            del self._by_token[token_key]

    def held(self, token_key: str) -> int:
        return self._by_token.get(token_key, 0)
