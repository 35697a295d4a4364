"""Sessions whose statements run on threads, to play lock interleavings.

A step is issued and the test goes on as soon as the statement has either
finished or is waiting on a lock (seen in pg_stat_activity), so a test can
put several transactions in a chosen order, including orders that block or
deadlock, without sleeping for fixed times.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import psycopg

#: How long a step may run before the test moves on anyway.
SETTLE = 3.0


class Session:
    """One transaction-mode connection with a worker thread of its own."""

    def __init__(self, dsn: str) -> None:
        self._dsn = dsn
        self.conn = psycopg.connect(dsn)
        self.pid = self.conn.info.backend_pid
        self._worker = ThreadPoolExecutor(max_workers=1)

    def waiting_on_lock(self) -> bool:
        """True while this session's backend waits on a heavyweight lock."""
        with psycopg.connect(self._dsn, autocommit=True) as conn:
            row = conn.execute("SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s",
                               (self.pid,)).fetchone()
        return row is not None and row[0] == "Lock"

    def step(self, sql: str | Callable[[psycopg.Connection[Any]], object],
             params: tuple[Any, ...] | None = None, settle: float = SETTLE) -> Future[object]:
        """Issue ``sql`` (or call it with the connection, e.g. a commit);
        return once it is done or blocked on a lock, at most ``settle`` s."""
        if callable(sql):
            fn = sql
        else:
            def fn(conn: psycopg.Connection[Any]) -> object:
                return conn.execute(sql, params)
        future = self._worker.submit(fn, self.conn)
        deadline = time.monotonic() + settle
        while not future.done() and time.monotonic() < deadline:
            if self.waiting_on_lock():
                break
            time.sleep(0.02)
        return future

    def commit(self) -> Future[object]:
        return self.step(lambda conn: conn.commit())

    def close(self) -> None:
        self._worker.shutdown(wait=True)
        self.conn.close()
