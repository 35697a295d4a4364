"""The listener's per-event path in one process, without a database, a
network or other processes: CPU per event to check, parse, route and
write one proven notification to one of N detached streams.

    python bench/hotpath.py --streams 5000 --events 20000 [--profile]

It complements ``run.py --scenarios scoped`` (the real thing, end to end)
with a figure that a shared, busy machine barely moves: ``run.py``'s
server CPU per event swings by ±20 % between back-to-back runs when other
work shares the two cores, this one by about ±5 %, so a change of a few
microseconds in the Python path shows here first (bench/RESULTS.md, issue
21 round 3). What it leaves out is exactly what it cannot make stable: the
event loop's wake-up, reading the LISTEN socket, and the loopback TCP
write with the client's side of it (the streams are Unix socket pairs).

Each event is signed as sql/004's trigger signs it and handed to
``Listener._take`` as the LISTEN reader would; the peer ends are drained
every few thousand events (their ``recv`` counts in the figure, about
5 µs per event).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import hmac
import os
import pstats
import socket
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tornado_sse.filters import Filter  # noqa: E402
from tornado_sse.hub import Hub  # noqa: E402
from tornado_sse.listener import Listener, _Mac  # noqa: E402
from tornado_sse.metrics import Metrics  # noqa: E402
from tornado_sse.quota import StreamQuota  # noqa: E402
from tornado_sse.stream import SSEStream, Ticker  # noqa: E402

#: Peer ends are read after this many events (a socket pair's buffer holds more).
DRAIN_EVERY = 4000


def notification(key: bytes, eid: int, staff: int) -> bytes:
    """A payload as sql/004's trigger sends it for a new appointment of ``staff``."""
    envelope = (
        f'{{"id":{eid},"topic":"appointment.created","resource":"appointment","resource_id":{eid},'
        f'"payload":{{"id": {eid}, "end": 1733048400, "cost": "50.00", "start": 1733044800,'
        f' "status": "confirmed", "all_day": false, "order_id": 101112, "staff_id": {staff},'
        f' "staff_ids": [{staff}], "product_id": 456, "customer_id": 789, "order_item_id": 131415,'
        f' "customer_status": "expected"}},"ts":1733044800,"actor":{{"db_user": "postgres"}}}}')
    body = f"{eid} 1733044800.123456 {staff} 456 appointment.created appointment {eid} {envelope}".encode()
    return hmac.new(key, body, "sha256").hexdigest().encode() + b" " + body


async def measure(streams: int, events: int, profile: bool) -> float:
    """CPU seconds per event, with ``streams`` staff calendars open."""
    hub = Hub(window=10000)
    metrics = Metrics()
    ticker = Ticker(hub, 15.0, quota=StreamQuota(per_token=0, total=0), metrics=metrics,
                    max_buffer=1 << 20)
    listener = Listener("", hub, on_batch=metrics.published)
    key = os.urandom(32)
    listener._key = _Mac(key)
    hub.start_at(0)
    peers: list[socket.socket] = []
    for staff in range(1, streams + 1):
        ours, theirs = socket.socketpair()
        ours.setblocking(False)
        peers.append(theirs)
        stream = SSEStream(ours.detach(), ticker, route="/sse", role="staff", token_key=str(staff),
                           request_line="GET /sse (127.0.0.1)", started_wall=time.time(),
                           filter=Filter(audience_staff_id=staff), chunked=True, cursor=0)
        stream.open()
        hub.subscribe(stream)
    batches = [[(notification(key, eid, (eid - 1) % streams + 1), 1)] for eid in range(1, events + 1)]
    profiler = cProfile.Profile() if profile else None
    started = time.process_time()
    if profiler is not None:
        profiler.enable()
    for batch in batches:
        listener._take(batch)
        if listener.cursor % DRAIN_EVERY == 0:
            for peer in peers:
                try:
                    peer.recv(1 << 20, socket.MSG_DONTWAIT)
                except BlockingIOError:
                    pass
    if profiler is not None:
        profiler.disable()
    spent = time.process_time() - started
    if listener.cursor != events:
        raise SystemExit(f"published {listener.cursor} of {events} events")
    hub.close()
    ticker.stop()
    for peer in peers:
        peer.close()
    if profiler is not None:
        pstats.Stats(profiler).sort_stats("tottime").print_stats(20)
    return spent / events


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--streams", type=int, default=5000)
    p.add_argument("--events", type=int, default=20000)
    p.add_argument("--repeat", type=int, default=3, help="measurements, each with fresh streams")
    p.add_argument("--profile", action="store_true", help="one cProfile run instead (slower: its own figure)")
    a = p.parse_args()
    for _ in range(1 if a.profile else a.repeat):
        per_event = asyncio.run(measure(a.streams, a.events, a.profile))
        print(f"{a.streams} streams, {a.events} events: {per_event * 1e6:.1f} µs CPU per event")


if __name__ == "__main__":
    main()
