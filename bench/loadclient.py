"""The benchmark's SSE load client: one process, asyncio (uvloop when
installed), raw sockets, minimal parsing.

It is driven by bench/run.py over stdin/stdout, one JSON object per line:
commands in, one reply per command out. Keeping it a separate, long-lived
process means it has its own open-file limit (10,000 streams need 10,000
sockets here and 10,000 in the server) and its CPU time can be read apart
from the server's and the driver's.

Parsing is deliberately minimal: every read is timestamped once, event
numbers are pulled out with one C-level regex over the complete frames in
the read (``data: {"id":N`` — every system under test carries the same JSON
envelope, whose first field is the event number), and HTTP chunk headers
are simply ignored (they never match). Per connection it keeps the list of
event numbers and the arrival time of each read, so the driver can check
exactly-once delivery and compute latencies after the measurement.

Commands (``cmd``):

- ``open``: host, port, path, headers, n, concurrency, timeout, and
  optionally tag (a label for these n streams) or streams (a list of
  ``{"path", "headers", "tag"}``, one per stream: each stream its own token
  or channel) — open the streams (at most ``concurrency`` handshakes in
  flight), each counted open when its response headers arrived with status
  200. Streams accumulate over several ``open`` calls (one per server).
- ``arm``: forget what was received so far (start of a measurement).
- ``wait``: ids (the expected event numbers, in order), timeout, and
  optionally expect (tag -> the event numbers streams with that tag must
  get, when each stream gets only its own share) — return when every open
  stream has received its last expected event (or at timeout), with the
  latest arrival time of that event.
- ``verify``: ids, refs (optional: name -> epoch seconds per id), expect
  (optional, as for ``wait``) — check per connection that exactly its
  expected events arrived, in order, once; with reference times, latency
  percentiles over every stream x event delivery.
- ``close``: close every stream.
- ``status``: number of open streams and this process's pid.
- ``quit``.
"""

from __future__ import annotations

import asyncio
import importlib
import itertools
import json
import os
import re
import resource
import sys
import time
from array import array
from collections.abc import Callable
from types import ModuleType
from typing import Any, cast

uvloop: ModuleType | None
try:
    uvloop = importlib.import_module("uvloop")
except ImportError:  # pragma: no cover - optional
    uvloop = None

Reply = dict[str, Any]

_ID = re.compile(rb'data: \{"id":(\d+)[,}]')
_now = time.time


class SSEConn(asyncio.Protocol):
    """One stream. While a measurement runs, a read costs a timestamp, two
    list appends and (while waiting for the last event) one substring
    search; the frames are parsed afterwards, in :meth:`parse`."""

    __slots__ = ("chunks", "closed", "done_cb", "hdr", "headers_done", "last_time", "marker",
                 "on_open", "status", "tag", "tail", "times", "transport")

    def __init__(self, on_open: asyncio.Future[int], tag: str = "") -> None:
        self.tag = tag
        self.transport: asyncio.Transport | None = None
        self.headers_done = False
        self.status = 0
        self.hdr = b""
        self.chunks: list[bytes] = []
        self.times = array("d")
        self.on_open = on_open
        self.marker = b""
        self.tail = b""
        self.last_time = 0.0
        self.done_cb: Callable[[SSEConn], None] | None = None
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # TCP (uvloop's is no subclass)

    def data_received(self, data: bytes) -> None:
        t = _now()
        if not self.headers_done:
            self.hdr += data
            end = self.hdr.find(b"\r\n\r\n")
            if end < 0:
                return
            head, data = self.hdr[:end], self.hdr[end + 4:]
            self.hdr = b""
            self.headers_done = True
            try:
                self.status = int(head.split(b" ", 2)[1])
            except (IndexError, ValueError):
                self.status = -1
            if not self.on_open.done():
                self.on_open.set_result(self.status)
            if not data:
                return
        self.chunks.append(data)
        self.times.append(t)
        if self.done_cb is not None:
            marker = self.marker
            if marker in data or marker in self.tail + data[:len(marker)]:
                self.last_time = t
                cb, self.done_cb = self.done_cb, None
                cb(self)
            else:
                self.tail = data[-len(marker):]

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if not self.on_open.done():
            self.on_open.set_result(-2)
        if self.done_cb is not None:
            cb, self.done_cb = self.done_cb, None
            cb(self)

    def parse(self) -> tuple[list[int], list[float]]:
        """(event numbers, arrival time of each) of what arrived since arm()."""
        if not self.chunks:
            return [], []
        blob = b"".join(self.chunks)
        ends = list(itertools.accumulate(len(c) for c in self.chunks))
        times = self.times
        ids: list[int] = []
        arrivals: list[float] = []
        k = 0
        for m in _ID.finditer(blob):
            # The read that completed this number (its closing "," or "}").
            pos = m.end()
            while ends[k] <= pos:
                k += 1
            ids.append(int(m.group(1)))
            arrivals.append(times[k])
        return ids, arrivals


class Client:
    def __init__(self) -> None:
        self.conns: list[SSEConn] = []

    async def open(self, host: str, port: int, path: str, headers: dict[str, str], n: int,
                   concurrency: int = 200, timeout: float = 120.0, tag: str = "",
                   streams: list[dict[str, Any]] | None = None) -> Reply:
        loop = asyncio.get_running_loop()

        def request_for(path: str, headers: dict[str, str]) -> bytes:
            lines = [f"GET {path} HTTP/1.1", f"Host: {host}:{port}", "Accept: text/event-stream",
                     "Cache-Control: no-cache"]
            lines += [f"{k}: {v}" for k, v in headers.items()]
            return ("\r\n".join(lines) + "\r\n\r\n").encode()

        if streams is None:
            shared = request_for(path, headers)
            todo = [(shared, tag)] * n
        else:
            todo = [(request_for(s.get("path", path), {**headers, **s.get("headers", {})}),
                     str(s.get("tag", tag))) for s in streams]
            n = len(todo)
        sem = asyncio.Semaphore(concurrency)
        failed: dict[str, int] = {}
        started = time.perf_counter()
        deadline = time.monotonic() + timeout

        async def one(request: bytes, tag: str) -> None:
            async with sem:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    failed["timeout"] = failed.get("timeout", 0) + 1
                    return
                fut: asyncio.Future[int] = loop.create_future()
                try:
                    tr, proto = await asyncio.wait_for(
                        loop.create_connection(lambda: SSEConn(fut, tag), host, port), remaining)
                except (OSError, asyncio.TimeoutError) as exc:
                    key = type(exc).__name__
                    failed[key] = failed.get(key, 0) + 1
                    return
                tr.write(request)
                try:
                    status = await asyncio.wait_for(fut, max(0.1, deadline - time.monotonic()))
                except asyncio.TimeoutError:
                    status = -3
                if status != 200:
                    failed[f"status {status}"] = failed.get(f"status {status}", 0) + 1
                    tr.close()
                    return
                self.conns.append(proto)

        await asyncio.gather(*[one(request, tag) for request, tag in todo])
        return {"opened": n - sum(failed.values()), "failed": failed, "open": len(self.conns),
                "secs": round(time.perf_counter() - started, 3)}

    def arm(self) -> Reply:
        for c in self.conns:
            c.chunks = []
            c.times = array("d")
            c.tail = b""
            c.last_time = 0.0
            c.done_cb = None
        return {"armed": len(self.conns)}

    async def wait(self, ids: list[int], timeout: float,
                   expect: dict[str, list[int]] | None = None) -> Reply:
        loop = asyncio.get_running_loop()
        pending: set[SSEConn] = set()
        done_fut: asyncio.Future[None] = loop.create_future()
        expected_last = {tag: got[-1] for tag, got in (expect or {}).items() if got}

        def finished(c: SSEConn) -> None:
            pending.discard(c)
            if not pending and not done_fut.done():
                done_fut.set_result(None)

        waited = []
        for c in self.conns:
            last = ids[-1] if expect is None else expected_last.get(c.tag)
            if last is None:
                continue  # nothing is meant for this stream
            waited.append(c)
            marker = b'data: {"id":%d' % last
            marker_end = (marker + b",", marker + b"}")
            c.marker = marker_end[0]
            if c.closed:
                continue
            # The last event is the last thing sent, so if it is here it is in
            # the last read or split across the last two: O(1) per stream,
            # so the reads that are still coming are not held up.
            recent = b"".join(c.chunks[-2:])
            if any(m in recent for m in marker_end):
                c.last_time = c.times[-1]
                continue
            c.tail = c.chunks[-1][-len(marker) - 1:] if c.chunks else b""
            pending.add(c)
            c.done_cb = finished
        if pending:
            try:
                await asyncio.wait_for(asyncio.shield(done_fut), timeout)
            except asyncio.TimeoutError:
                pass
        for c in self.conns:
            c.done_cb = None
        finished_at = [c.last_time for c in waited if c.last_time]
        return {"complete": len(finished_at), "streams": len(self.conns),
                "incomplete": len(waited) - len(finished_at),
                "last_arrival": max(finished_at) if finished_at else None,
                "first_arrival": min((c.times[0] for c in self.conns if len(c.times)), default=None)}

    def verify(self, ids: list[int], refs: dict[str, list[float]] | None = None,
               expect: dict[str, list[int]] | None = None) -> Reply:
        """Exactly-once check per stream (every stream gets ``ids``, or with
        ``expect`` the list for its tag); with ``refs`` (name -> one epoch
        time per id), latency percentiles over every stream x event delivery
        for each reference time."""
        everything = array("q", ids)
        per_tag = {tag: array("q", got) for tag, got in (expect or {}).items()}
        no_events = array("q")
        ok = lost = dup = extra = disordered = closed = expected_frames = 0
        per_conn_counts = []
        unexpected_sample: list[int] = []
        index = {e: i for i, e in enumerate(ids)}
        # Arrival times per event, over all streams (parsed once).
        arrivals: list[list[float]] = [[] for _ in ids] if refs else []
        for c in self.conns:
            expected = everything if expect is None else per_tag.get(c.tag, no_events)
            expected_frames += len(expected)
            got_list, times = c.parse()
            got = array("q", got_list)
            per_conn_counts.append(len(got))
            if c.closed:
                closed += 1
            if got == expected:
                ok += 1
            else:
                seen = set(got)
                expset = set(expected)
                lost += len(expset - seen)
                dup += len(got) - len(seen)
                extra += len(seen - expset)
                if len(unexpected_sample) < 10:
                    unexpected_sample.extend(sorted(seen - expset)[:10])
                if len(seen) == len(got) and list(got) != sorted(got):
                    disordered += 1
            if refs:
                for e, t in zip(got_list, times, strict=True):
                    i = index.get(e)
                    if i is not None:
                        arrivals[i].append(t)
        out: Reply = {"streams": len(self.conns), "streams_exact": ok, "lost_frames": lost,
                      "duplicate_frames": dup, "unexpected_frames": extra,
                      "disordered_streams": disordered, "closed_streams": closed,
                      "frames": sum(per_conn_counts), "expected_frames": expected_frames,
                      "min_per_stream": min(per_conn_counts, default=0),
                      "max_per_stream": max(per_conn_counts, default=0)}
        if unexpected_sample:
            out["unexpected_sample"] = unexpected_sample[:10]
        if refs:
            out["latency"] = {}
            for name, ref in refs.items():
                lat = [t - r for r, ts in zip(ref, arrivals, strict=True) for t in ts]
                if not lat:
                    continue
                lat.sort()
                k = len(lat)
                out["latency"][name] = {
                    "n": k, "min": lat[0], "p50": lat[k // 2],
                    "p90": lat[min(k - 1, int(k * 0.90))],
                    "p99": lat[min(k - 1, int(k * 0.99))],
                    "p999": lat[min(k - 1, int(k * 0.999))],
                    "max": lat[-1], "mean": sum(lat) / k,
                    # Per event (publish order), its slowest delivery: shows stalls.
                    "per_event_max": [round(max(ts) - r, 5) if ts else None
                                      for r, ts in zip(ref, arrivals, strict=True)]}
        return out

    async def close(self) -> Reply:
        n = len(self.conns)
        for c in self.conns:
            if c.transport is not None:
                c.transport.abort()
        self.conns = []
        await asyncio.sleep(0.05)
        return {"closed": n}


async def main() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=1 << 26)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    client = Client()
    out = sys.stdout
    out.write(json.dumps({"ready": True, "pid": os.getpid(), "uvloop": uvloop is not None,
                          "nofile": resource.getrlimit(resource.RLIMIT_NOFILE)[0]}) + "\n")
    out.flush()
    while True:
        line = await reader.readline()
        if not line:
            break
        msg = json.loads(line)
        cmd = msg.pop("cmd")
        reply: Reply
        try:
            if cmd == "open":
                reply = await client.open(**msg)
            elif cmd == "arm":
                reply = client.arm()
            elif cmd == "wait":
                reply = await client.wait(**msg)
            elif cmd == "verify":
                reply = client.verify(**msg)
            elif cmd == "close":
                reply = await client.close()
            elif cmd == "status":
                reply = {"open": len(client.conns), "pid": os.getpid(),
                         "closed": sum(c.closed for c in client.conns)}
            elif cmd == "quit":
                await client.close()
                out.write(json.dumps({"bye": True}) + "\n")
                out.flush()
                break
            else:
                reply = {"error": f"unknown command {cmd}"}
        except Exception as exc:  # report to the driver, whatever it was
            reply = {"error": f"{type(exc).__name__}: {exc}"}
        out.write(json.dumps(reply) + "\n")
        out.flush()


if __name__ == "__main__":
    if uvloop is not None:
        uvloop.install()
    asyncio.run(main())
