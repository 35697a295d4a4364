"""A TCP proxy in front of PostgreSQL that can fail like a network does.

``blackhole_listeners()`` makes the connections that sent ``LISTEN`` go
silent without closing: bytes are swallowed in both directions, the sockets
stay open (a half-open connection, as after a NAT or firewall drops state).
``blackhole_all()`` does the same to every open connection, whatever it
carries (the browser tests put it in front of the HTTP server).
``stop()`` refuses new connections and cuts existing ones (an outage).
The server under test needs no hook: the proxy recognises the LISTEN query
on the wire.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from psycopg import conninfo


@dataclass(eq=False)
class _Pair:
    client: asyncio.StreamWriter
    upstream: asyncio.StreamWriter
    listens: bool = False
    silent: bool = False
    tasks: list[asyncio.Task[None]] = field(default_factory=list)


class PgProxy:
    def __init__(self, target_dsn: str) -> None:
        params = conninfo.conninfo_to_dict(target_dsn)
        self._host = str(params.get("host") or "127.0.0.1")
        self._port = int(params.get("port") or 5432)
        self._target_dsn = target_dsn
        self._server: asyncio.base_events.Server | None = None
        self._pairs: list[_Pair] = []
        self.port = 0

    @property
    def dsn(self) -> str:
        """The target's DSN, routed through the proxy."""
        return conninfo.make_conninfo(self._target_dsn, host="127.0.0.1", port=str(self.port))

    async def start(self, port: int = 0) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            if self._host.startswith("/"):
                up_r, up_w = await asyncio.open_unix_connection(f"{self._host}/.s.PGSQL.{self._port}")
            else:
                up_r, up_w = await asyncio.open_connection(self._host, self._port)
        except OSError:
            writer.close()
            return
        pair = _Pair(writer, up_w)
        self._pairs.append(pair)
        pair.tasks = [asyncio.ensure_future(self._pump(reader, up_w, pair, upstream=True)),
                      asyncio.ensure_future(self._pump(up_r, writer, pair, upstream=False))]

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                    pair: _Pair, *, upstream: bool) -> None:
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    break
                if upstream and b"LISTEN sse_events" in data:
                    pair.listens = True
                if not pair.silent:
                    writer.write(data)
                    await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            if not pair.silent:
                writer.close()

    def blackhole_listeners(self) -> int:
        """Silence every LISTEN connection without closing it; how many."""
        count = 0
        for pair in self._pairs:
            if pair.listens and not pair.silent:
                pair.silent = True
                count += 1
        return count

    def blackhole_all(self) -> int:
        """Silence every open connection without closing it (any protocol:
        an HTTP client's too, as after a Wi-Fi change or a NAT that dropped
        its state); new connections still pass. How many."""
        count = 0
        for pair in self._pairs:
            if not pair.silent:
                pair.silent = True
                count += 1
        return count

    async def stop(self) -> None:
        """Refuse new connections and cut the open ones."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for pair in self._pairs:
            for task in pair.tasks:
                task.cancel()
            pair.client.close()
            pair.upstream.close()
        self._pairs.clear()
        if server is not None:
            await server.wait_closed()
