"""Probes and a database that cannot take writes (issues 19 and 22, SPEC §6, §7).

/livez never depends on the database (a liveness probe must not restart
servers during a database blip), /readyz says which check failed in
generic words, a read-only database (after a failover) answers writes 503
instead of a 500 with a traceback, and pooled connections whose backends
were killed are replaced before a client sees them.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time

import psycopg
import pytest
from psycopg import conninfo

from tests.fix_db import execute
from tests.fix_directory import add_directory
from tests.fix_server import auth
from tornado_sse.testing.sse_client import Response, request

T0 = 1733044800
POOL_BACKENDS = ("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                 " AND application_name = 'tornado_sse'")


async def get(url: str, method: str = "GET") -> Response:
    resp = await request(url, method=method, stream=False)
    assert isinstance(resp, Response)
    return resp


async def post_appointment(server) -> Response:
    resp = await request(server.url + "/api/appointments", method="POST", stream=False,
                         headers={**auth(), "Content-Type": "application/json"},
                         body=json.dumps({"start": T0, "end": T0 + 3600, "staff_ids": [5],
                                          # the same slot again and again, on purpose (SPEC §8)
                                          "overlap_allowed": True}).encode())
    assert isinstance(resp, Response)
    return resp


def kill_pool_backends(dsn: str) -> int:
    rows = execute(dsn, "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity"
                        " WHERE datname = current_database() AND application_name = 'tornado_sse'")
    return int(rows[0][0])


@pytest.mark.gen_test(timeout=20)
async def test_livez_and_readyz_answer_ok_and_head_works(server):
    live = await get(server.url + "/livez")
    assert live.status == 200 and live.json()["status"] == "ok"
    ready = await get(server.url + "/readyz")
    assert ready.status == 200, ready.body
    assert ready.json() == {"status": "ok", "checks": {"database": "ok", "listener": "ok", "shutdown": "ok"}}
    for path in ("/livez", "/readyz"):
        head = await get(server.url + path, method="HEAD")
        assert head.status == 200 and head.body == b"", path
        assert head.headers["cache-control"] == "no-store"


@pytest.mark.gen_test(timeout=30)
async def test_without_a_database_livez_is_200_and_readyz_and_healthz_say_why_in_generic_words(
        make_server, db):
    """A database that refuses us (it does not exist: PostgreSQL's FATAL
    names it): /livez is 200, /readyz and /healthz are 503, and neither shows
    the host, the port or the server's message (issue 19)."""
    missing = conninfo.make_conninfo(db, dbname="tsse_missing_database")
    server = await make_server(dsn=missing, wait=False)
    await asyncio.sleep(0.5)
    live = await get(server.url + "/livez")
    assert live.status == 200
    ready = await get(server.url + "/readyz")
    assert ready.status == 503 and ready.headers["retry-after"] == "5"
    body = ready.json()
    assert body["status"] == "unavailable"
    assert body["checks"] == {"database": "unreachable", "listener": "connecting", "shutdown": "ok"}
    assert body["failed"] == ["database", "listener"]
    health = await get(server.url + "/healthz")
    assert health.status == 503 and health.json()["reason"] == "connecting to the database"
    port = str(conninfo.conninfo_to_dict(db).get("port", "5432"))
    for resp in (ready, health):
        text = resp.body.decode()
        for leak in ("tsse_missing_database", "FATAL", "127.0.0.1", "localhost", port, "does not exist"):
            assert leak not in text, (leak, text)


@pytest.mark.gen_test(timeout=60)
async def test_read_only_database_answers_writes_503_and_readyz_says_so(make_server, db, caplog):
    """As after a failover to a replica: the database takes no writes
    (SQLSTATE 25006). Writes answer 503 rest_unavailable + Retry-After, not a
    500 with a traceback; reads go on; /readyz says read-only. When the
    database takes writes again, so does the server, without a restart."""
    add_directory(db, staff={5: "Eva"}, products={}, customers={})  # SPEC §8: known ids only
    caplog.set_level(logging.INFO)
    server = await make_server(pool_size=4)
    assert (await post_appointment(server)).status == 201
    dbname = conninfo.conninfo_to_dict(db)["dbname"]
    execute(db, f'ALTER DATABASE "{dbname}" SET default_transaction_read_only = on')
    try:
        kill_pool_backends(db)  # the failover: the pool's sessions end, new ones are read-only
        for _ in range(3):
            resp = await post_appointment(server)
            assert resp.status == 503, resp.body
            assert resp.json()["code"] == "rest_unavailable"
            assert resp.json()["data"] == {"status": 503, "reason": "read_only"}
            assert resp.headers["retry-after"] == "5"
        snap = await request(f"{server.url}/api/appointments?start={T0 - 60}&end={T0 + 86400}",
                             headers=auth(), stream=False)
        assert isinstance(snap, Response) and snap.status == 200
        assert len(snap.json()["appointments"]) == 1  # reads still work
        await asyncio.sleep(1.1)  # past the readiness cache
        ready = await get(server.url + "/readyz")
        assert ready.status == 503 and ready.json()["checks"]["database"] == "read-only"
        assert ready.json()["failed"] == ["database"]
        stale = execute(db, POOL_BACKENDS)[0][0]
    finally:
        # This session is read-only too, unless it says otherwise.
        with psycopg.connect(db, autocommit=True, options="-c default_transaction_read_only=off") as conn:
            conn.execute(f'ALTER DATABASE "{dbname}" RESET default_transaction_read_only')
    # Back to writable, nothing restarted or killed: each read-only session
    # is closed by the write that finds it, so at most that many 503s.
    refused = 0
    while (resp := await post_appointment(server)).status == 503:
        assert resp.json()["data"]["reason"] == "read_only"
        refused += 1
        assert refused <= stale, f"{refused} refusals with {stale} stale sessions"
    assert resp.status == 201, resp.body
    deadline = time.monotonic() + 4 + stale
    while (ready := await get(server.url + "/readyz")).status != 200 and time.monotonic() < deadline:
        await asyncio.sleep(0.3)
    assert ready.status == 200, ready.body
    assert not [r for r in caplog.records if r.exc_info], "a traceback was logged"
    assert not [r for r in caplog.records if "uncaught" in r.getMessage()]


@pytest.mark.gen_test(timeout=40)
async def test_killed_pool_backends_are_replaced_before_any_client_sees_them(make_server, db):
    """pg_terminate_backend on every pooled connection (a restart, a
    failover, an overzealous DBA): the next requests all succeed."""
    add_directory(db, staff={5: "Eva"}, products={}, customers={})  # SPEC §8: known ids only
    server = await make_server(pool_size=4, max_snapshots_per_token=0)
    url = f"{server.url}/api/appointments?start={T0}&end={T0 + 86400}"
    # Several concurrent snapshots open several pooled connections.
    warm = await asyncio.gather(*[request(url, headers=auth(), stream=False) for _ in range(6)])
    assert all(r.status == 200 for r in warm)
    before = execute(db, POOL_BACKENDS)[0][0]
    assert before >= 2, before
    assert kill_pool_backends(db) == before
    await asyncio.sleep(0.2)
    started = time.monotonic()
    answers = [await post_appointment(server) for _ in range(3)]
    snapshots = await asyncio.gather(*[request(url, headers=auth(), stream=False) for _ in range(6)])
    answers += [a for a in snapshots if isinstance(a, Response)]
    assert [a.status for a in answers] == [201] * 3 + [200] * 6, [a.body for a in answers]
    assert time.monotonic() - started < 3
    ready = await get(server.url + "/readyz")
    assert ready.status == 200, ready.body
