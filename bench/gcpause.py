"""Full garbage-collection pause with N idle streams open (issue 21's goal:
under 20 ms at 10,000 streams).

    python bench/gcpause.py --streams 10000

Runs a real server in this process (so the collection can be timed where
it happens, with the production collector settings: ``quiet_collector``),
on a private embedded PostgreSQL, and opens the streams from a separate
client process (the open-file limit is per process). Then it times
``gc.collect()`` (a full collection: what pauses every stream) a few times,
counts the objects the collector tracks per stream, closes the streams and
counts the cyclic garbage they left (which ``gc.freeze`` would keep).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tornado_sse.auth import issue_token  # noqa: E402
from tornado_sse.collector import quiet_collector  # noqa: E402
from tornado_sse.server import Server  # noqa: E402
from tornado_sse.settings import Settings  # noqa: E402
from tornado_sse.testing.postgres import OwnPostgres  # noqa: E402

SECRET = "gcpause-secret-gcpause-secret-gcpause!"

# The client: open N streams, say "ready", hold them until stdin closes.
CLIENT = r"""
import asyncio, sys
port, n, token = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
async def one(held):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET /sse HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\r\n".encode())
    head = await reader.readuntil(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), head
    held.append((reader, writer))
async def main():
    held = []
    sem = asyncio.Semaphore(200)
    async def guarded():
        async with sem:
            await one(held)
    await asyncio.gather(*(guarded() for _ in range(n)))
    print("ready", len(held), flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
asyncio.run(main())
"""


# The writer: N events, one committed INSERT each (the production path: trigger, NOTIFY).
INSERTS = r"""
import sys, psycopg
with psycopg.connect(sys.argv[1], autocommit=True) as c:
    for _ in range(int(sys.argv[2])):
        c.execute("INSERT INTO availabilities (scope, title) VALUES ('global', 'gcpause')")
"""


async def collections_during(server: Server, dsn: str, events: int) -> dict[int, list[float]]:
    """CPU seconds of every collection, by generation, while ``events``
    are committed and fanned out to the open streams."""
    spent: dict[int, list[float]] = {0: [], 1: [], 2: []}
    started = [0.0]

    def timing(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            started[0] = time.process_time()
        else:
            spent[info["generation"]].append(time.process_time() - started[0])

    target = server.ctx.hub.last_id + events
    gc.callbacks.append(timing)
    try:
        writer = await asyncio.create_subprocess_exec(sys.executable, "-c", INSERTS, dsn, str(events))
        await writer.wait()
        while server.ctx.hub.last_id < target:
            await asyncio.sleep(0.05)
    finally:
        gc.callbacks.remove(timing)
    return spent


async def measure(dsn: str, streams: int, repeats: int, workdir: Path, events: int = 0,
                  thresholds: tuple[int, ...] = ()) -> dict[str, Any]:
    settings = Settings(port=0, dsn=dsn, jwt_secret=SECRET, data_dir=workdir, max_streams_per_token=0,
                        max_connects_per_second=0, keepalive=60.0)
    server = Server(settings, dsn)
    await server.start()
    await server.wait_ready(30)
    quiet_collector()
    if thresholds:
        gc.set_threshold(*thresholds)
    tracked_before = len(gc.get_objects())
    token = issue_token(SECRET, role="admin", ttl=3600)
    client = await asyncio.create_subprocess_exec(
        sys.executable, "-c", CLIENT, str(server.port), str(streams), token,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
    assert client.stdout is not None and client.stdin is not None
    started = time.monotonic()
    line = (await client.stdout.readline()).decode()
    if not line.startswith("ready"):
        raise SystemExit(f"the client did not open its streams: {line!r}")
    opened = time.monotonic() - started
    await asyncio.sleep(1.0)
    tracked = len(gc.get_objects())
    pauses, cpu = [], []
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        gc.collect()
        pauses.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)  # what other load on the machine does not inflate
        await asyncio.sleep(0.2)
    spent = await collections_during(server, dsn, events) if events else {}
    client.stdin.close()
    await asyncio.wait_for(client.wait(), 30)
    # The client has closed every stream: what reference counting did not
    # free is cyclic garbage, which gc.freeze would keep for ever.
    while server.ctx.quota.open:
        await asyncio.sleep(0.1)
    garbage = gc.collect()
    await server.stop()
    return {"streams": streams, "open_s": opened, "tracked_per_stream": (tracked - tracked_before) / streams,
            "pause_median_ms": 1000 * statistics.median(pauses), "pause_max_ms": 1000 * max(pauses),
            "cpu_median_ms": 1000 * statistics.median(cpu),
            "garbage_per_stream": garbage / streams, "collections": spent}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--events", type=int, default=0,
                        help="then commit this many events and report the collections they cause")
    parser.add_argument("--thresholds", default="",
                        help="gc.set_threshold after start-up instead of the server's, e.g. 700,10,10")
    args = parser.parse_args()
    thresholds = tuple(int(t) for t in args.thresholds.split(",")) if args.thresholds else ()
    with tempfile.TemporaryDirectory(prefix="tsse-gcpause-") as tmp:
        base = Path(tmp)
        base.chmod(0o755)
        pg = OwnPostgres(base)
        try:
            result = asyncio.run(measure(pg.dsn, args.streams, args.repeats, base / "data", args.events,
                                         thresholds))
        finally:
            pg.cleanup()
    print(f"{result['streams']:,} streams opened in {result['open_s']:.1f} s; "
          f"{result['tracked_per_stream']:.1f} GC-tracked objects per stream; "
          f"full collection: median {result['pause_median_ms']:.1f} ms, max {result['pause_max_ms']:.1f} ms "
          f"over {args.repeats} (CPU median {result['cpu_median_ms']:.1f} ms); "
          f"{result['garbage_per_stream']:.1f} objects of cyclic garbage per closed stream")
    if args.events:
        per_generation = [f"generation {gen}: {len(cpu)} collections, {1000 * sum(cpu):.1f} ms CPU, "
                          f"max {1000 * max(cpu, default=0):.1f} ms"
                          for gen, cpu in result["collections"].items()]
        print(f"{args.events:,} events to {result['streams']:,} streams, thresholds {gc.get_threshold()}: "
              + "; ".join(per_generation))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
