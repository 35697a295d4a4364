"""How many streams one token, and one process, may hold open, and how fast
one token may open them (SPEC §7).

A stream (SSE, or a waiting long-poll) holds a socket and memory for as
long as it lasts, so one leaked or hostile token could otherwise take every
connection a process has. Per-token overflow is 429 (that token's problem,
others unaffected); per-process overflow is 503 (the server's).

A token reconnecting in a loop (a buggy client, or a hostile one) once
opened 516 streams a second, took 73% of a core and wrote ~1,000 log lines a
second. New event streams per token are therefore rate limited too (a token
bucket of ``connects_per_second`` a second, bursts up to the same number),
and the refusals are logged sampled: one summary line per interval instead
of an access-log line each.
"""

from __future__ import annotations

import logging
import math
import time
from collections import Counter

from .errors import ApiError, too_many_streams

log = logging.getLogger("tornado_sse.quota")

#: At most one summary line of refusals per this many seconds.
REFUSAL_LOG_EVERY = 10.0
#: How often buckets of tokens that stopped connecting are dropped, seconds.
SWEEP_EVERY = 30.0


class Refusal(ApiError):
    """A 429 the access log does not show one by one (a loop would flood it);
    :class:`StreamQuota` logs them as a sampled summary instead."""


class StreamQuota:
    """Counts open streams per token key and in total, and limits how fast a
    token opens them; 0 means no limit."""

    def __init__(self, *, per_token: int, total: int, connects_per_second: float = 0.0) -> None:
        self.per_token = per_token
        self.total = total
        self.rate = connects_per_second
        #: Bucket size: a page that opens a few streams at once is never refused.
        self.burst = max(1.0, connects_per_second)
        self._by_token: Counter[str] = Counter()
        # token key -> (tokens left, when they were counted)
        self._buckets: dict[str, tuple[float, float]] = {}
        self._last_sweep = time.monotonic()
        self.open = 0
        self.refused = 0
        self._refused_logged = 0
        self._last_log = 0.0

    def acquire(self, token_key: str, *, connect: bool = True) -> None:
        """Count one more stream for ``token_key``, or raise 429/503.

        ``connect=False`` (a long-poll) skips the connect rate: a poller that
        follows a busy log asks again as soon as it is answered, which is
        right, not a reconnect loop."""
        if self.total and self.open >= self.total:
            raise ApiError(503, "rest_unavailable", "The server holds as many streams as it may; "
                           "try again shortly.", retry_after=5, reason="busy")
        if self.per_token and self._by_token[token_key] >= self.per_token:
            error = too_many_streams(self.per_token)
            self._note_refusal()
            raise Refusal(error.status, error.code, error.message, retry_after=error.retry_after)
        if self.rate and connect:
            self._take(token_key)
        self._by_token[token_key] += 1
        self.open += 1

    def _take(self, token_key: str) -> None:
        """One token from ``token_key``'s bucket, or a 429 saying when the next is due."""
        now = time.monotonic()
        if now - self._last_sweep >= SWEEP_EVERY:
            self._sweep(now)
        left, since = self._buckets.get(token_key, (self.burst, now))
        left = min(self.burst, left + (now - since) * self.rate)
        if left < 1.0:
            self._buckets[token_key] = (left, now)
            self._note_refusal()
            wait = max(1, math.ceil((1.0 - left) / self.rate))
            raise Refusal(429, "rest_too_many_connects",
                          f"This token opens streams faster than {self.rate:g} a second; retry in {wait} s.",
                          retry_after=wait)
        self._buckets[token_key] = (left - 1.0, now)

    def _sweep(self, now: float) -> None:
        """Forget buckets that have refilled: memory stays bounded by the
        tokens seen in the last moments, not all tokens ever seen."""
        full_after = self.burst / self.rate
        self._buckets = {key: (left, since) for key, (left, since) in self._buckets.items()
                         if now - since < full_after}
        self._last_sweep = now

    def _note_refusal(self) -> None:
        """One log line per interval, however many refusals."""
        self.refused += 1
        now = time.monotonic()
        if now - self._last_log >= REFUSAL_LOG_EVERY:
            log.warning("refused %d stream(s) over the per-token limits (%s open, %s new a second) "
                        "since the last report", self.refused - self._refused_logged,
                        self.per_token or "any", f"{self.rate:g}" if self.rate else "any")
            self._refused_logged = self.refused
            self._last_log = now

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
