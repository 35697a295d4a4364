"""Clients that keep going the way browsers and pollers do: when a stream
ends or a request fails, they come back with their cursor.

Each records every event id it received (duplicates included, so a test can
see them), how many times it connected, and every non-200 answer.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from tests.fix_server import auth
from tornado_sse.testing.sse_client import Response, SSEConnection, request


@dataclass
class Record:
    """What one client saw."""

    name: str
    ids: list[int] = field(default_factory=list)
    connects: int = 0
    ends: list[str] = field(default_factory=list)  # how each stream ended
    errors: list[int] = field(default_factory=list)  # non-200 statuses
    log: list[str] = field(default_factory=list)  # one line per answer, for a failure message


async def sse_client(base: str, record: Record, last_id: int, deadline: float) -> None:
    """An EventSource: ``/sse?since_id=0``, and on every reconnect the same
    URL with ``Last-Event-ID`` (which wins); until ``last_id`` arrived."""
    cursor: int | None = None
    while (not record.ids or record.ids[-1] < last_id) and time.monotonic() < deadline:
        headers = {"Accept": "text/event-stream", **auth()}
        if cursor is not None:
            headers["Last-Event-ID"] = str(cursor)
        try:
            conn = await request(base + "/sse?since_id=0", headers=headers)
        except (OSError, asyncio.IncompleteReadError, ValueError, IndexError):
            record.errors.append(0)  # no HTTP answer at all
            await asyncio.sleep(0.2)
            continue
        if not isinstance(conn, SSEConnection):
            record.errors.append(conn.status)
            await asyncio.sleep(0.2)
            continue
        record.connects += 1
        try:
            while True:
                try:
                    message = await asyncio.wait_for(conn.messages.get(), 0.5)
                except asyncio.TimeoutError:
                    if conn.ended.done() and conn.messages.empty():
                        record.ends.append(conn.ended.result())
                        break
                    if time.monotonic() > deadline:
                        break
                    continue
                if message.event == "reset":
                    raise AssertionError(f"{record.name}: unexpected reset {message.data}")
                record.ids.append(int(message.json()["id"]))
                cursor = int(message.id)
                if record.ids[-1] >= last_id:
                    break
        finally:
            conn.close()


async def poll_client(base: str, record: Record, last_id: int, deadline: float) -> None:
    """A long-poller: ``/poll?since_id=N&timeout=5`` in a loop, ``N`` the
    ``last_id`` of the previous answer; until ``last_id`` arrived."""
    cursor = 0
    while cursor < last_id and time.monotonic() < deadline:
        try:
            resp = await request(base + f"/poll?since_id={cursor}&timeout=5", headers=auth())
        except (OSError, asyncio.IncompleteReadError, ValueError, IndexError):
            record.errors.append(0)
            await asyncio.sleep(0.2)
            continue
        assert isinstance(resp, Response)
        record.connects += 1
        if resp.status != 200:
            record.errors.append(resp.status)
            await asyncio.sleep(0.2)
            continue
        body = resp.json()
        record.log.append(f"since_id={cursor} -> {[e['id'] for e in body['events']]} "
                          f"last_id={body['last_id']}")
        assert "reset" not in body, f"{record.name}: unexpected reset {body['reset']}"
        record.ids.extend(int(e["id"]) for e in body["events"])
        cursor = int(body["last_id"])
