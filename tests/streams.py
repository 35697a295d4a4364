"""Helpers the stream, poll, API and reliability tests share: writing many
events and checking that a client got each exactly once, in order."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import psycopg

from tests.fix_server import auth
from tornado_sse.server import Server
from tornado_sse.testing.sse_client import Message, request


async def insert_many(dsn: str, n: int, **cols: Any) -> list[int]:
    """n appointments, one committed transaction each, from another connection."""
    ids = []
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        for _ in range(n):
            cur = await conn.execute(
                "INSERT INTO appointments (product_id, staff_ids, start_at, end_at, overlap_allowed)"
                " VALUES (%s, %s, now(), now() + interval '1 hour', true) RETURNING id",
                (cols.get("product_id", 456), cols.get("staff_ids", [5])))
            row = await cur.fetchone()
            assert row is not None
            ids.append(int(row[0]))
    return ids


def event_ids(messages: Sequence[Message]) -> list[int]:
    """The event ids of a stream's messages, resets left out."""
    return [int(m.json()["id"]) for m in messages if m.event != "reset"]


def assert_exactly_once_in_order(ids: list[int], expected_count: int) -> None:
    assert len(ids) == expected_count, f"{len(ids)} events, expected {expected_count}"
    assert ids == sorted(set(ids)), "duplicates or out of order"


async def poll(server: Server, query: str = "", headers: dict[str, str] | None = None) -> Any:
    """One /poll answer (asserted 200 and uncacheable), decoded."""
    resp = await request(server.url + "/poll?" + query, headers=headers or auth())
    assert resp.status == 200, resp.body
    assert resp.headers["cache-control"] == "no-store"
    return resp.json()


async def poll_loop(server: Server, until: int, query: str = "") -> list[int]:
    """What a long-poll client does: follow last_id until it has seen ``until``."""
    got: list[int] = []
    cursor = 0
    deadline = time.monotonic() + 40
    while cursor < until and time.monotonic() < deadline:
        body = await poll(server, f"since_id={cursor}&timeout=5{query}")
        got += [e["id"] for e in body["events"]]
        assert "reset" not in body
        cursor = body["last_id"]
    return got
