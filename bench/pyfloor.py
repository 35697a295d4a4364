"""The floor: the least a Python asyncio server does per scoped event.

    python bench/run.py --scenarios scoped --systems tornado_sse,pyfloor,nchan

Not a product and not a competitor: a yardstick for issue 21's question
"how much of tornado_sse's CPU per event is ours, and how much is any
Python asyncio server's?". Per notification it does only what cannot be
skipped: the loop wakes on the LISTEN socket, psycopg consumes the input
and hands over the notification, the staff id and event id are cut out,
the SSE frame and its HTTP chunk are formatted, and one ``os.write`` sends
them to that staff member's stream. No proof check, hub, filter, cursor,
backlog, metrics, keepalive, hang-up detection, auth (the stream names its
staff member in the query string) or limits: everything tornado_sse adds
on top is the difference between the two figures.

Usage (bench/systems.py starts it): ``python bench/pyfloor.py DSN PORT``.
"""

from __future__ import annotations

import asyncio
import os
import sys
from typing import Any

import psycopg

#: Streams by staff member: (socket fd, the writer that keeps it open).
STREAMS: dict[int, tuple[int, asyncio.StreamWriter]] = {}
HEAD = (b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n")


async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """``GET /sse?staff=N``: the response head, then the socket is the stream's."""
    head = await reader.readuntil(b"\r\n\r\n")
    target = head.split(b" ", 2)[1]
    staff = int(target.partition(b"staff=")[2] or b"0")
    sock = writer.get_extra_info("socket")
    os.write(sock.fileno(), HEAD)
    STREAMS[staff] = (sock.fileno(), writer)


def on_readable(pgconn: Any) -> None:
    pgconn.consume_input()
    while (note := pgconn.notifies()) is not None:
        # sql/004: "<mac> <id> <created> <staff> <products> <topic> <resource> <rid> <envelope>"
        fields = note.extra.split(b" ", 8)
        stream = STREAMS.get(int(fields[3]))
        if stream is None:
            continue
        frame = b"id: %b\nevent: %b\ndata: %b\n\n" % (fields[1], fields[5], fields[8])
        try:
            os.write(stream[0], b"%x\r\n%b\r\n" % (len(frame), frame))
        except OSError:
            STREAMS.pop(int(fields[3]), None)


async def main(dsn: str, port: int) -> None:
    conn = await psycopg.AsyncConnection.connect(dsn, autocommit=True)
    await conn.execute("LISTEN sse_events")
    asyncio.get_running_loop().add_reader(conn.pgconn.socket, on_readable, conn.pgconn)
    server = await asyncio.start_server(accept, "127.0.0.1", port, backlog=4096)
    print(f"pyfloor listening on 127.0.0.1:{port}", file=sys.stderr, flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2])))
