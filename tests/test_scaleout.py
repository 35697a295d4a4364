"""Scale-out: several processes on one port, several servers on one
database, each with its own listener, all delivering the same sequence."""

from __future__ import annotations

import asyncio
import signal

import pytest

from tests.fix_server import SECRET, auth
from tests.streams import assert_exactly_once_in_order, event_ids, insert_many
from tornado_sse.testing.processes import serving
from tornado_sse.testing.sse_client import open_stream, request


@pytest.mark.gen_test(timeout=60)
async def test_two_servers_on_one_database_deliver_the_same_sequence(make_server, db):
    one, two = await make_server(), await make_server()
    a = await open_stream(one.url + "/sse", auth())
    b = await open_stream(two.url + "/sse", auth())
    await insert_many(db, 100)
    ids_a = event_ids(await a.take(100))
    ids_b = event_ids(await b.take(100))
    assert ids_a == ids_b
    assert_exactly_once_in_order(ids_a, 100)
    a.close()
    b.close()


@pytest.mark.slow
def test_processes_share_one_port_and_each_delivers_every_event(db, tmp_path):
    with serving("--dsn", db, "--jwt-secret", SECRET, "--port", "0", "--processes", "2",
                 "--log-level", "warning", "--data-dir", str(tmp_path), cwd=tmp_path) as (proc, url):
        async def scenario() -> None:
            pids: set[int] = set()
            for _ in range(200):  # until both processes answered and are ready
                resp = await request(url + "/healthz")
                if resp.status == 200:
                    pids.add(resp.json()["pid"])
                if len(pids) == 2:
                    break
                await asyncio.sleep(0.02)
            assert len(pids) == 2, f"only {pids} answered"
            streams = [await open_stream(url + "/sse", auth()) for _ in range(8)]
            await insert_many(db, 30)
            for s in streams:
                assert_exactly_once_in_order(event_ids(await s.take(30)), 30)
            proc.send_signal(signal.SIGTERM)
            assert await asyncio.gather(*(s.wait_end(10) for s in streams)) == ["finished"] * 8

        asyncio.run(scenario())
        assert proc.wait(15) == 0
