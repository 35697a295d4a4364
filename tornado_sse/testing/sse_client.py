"""A real SSE client for the tests: raw HTTP/1.1 over a socket.

It parses the stream as a browser does (WHATWG "event stream
interpretation"), independently of the server's encoder, so framing bugs
show up as wrong events rather than being mirrored. Raw sockets let a test
stop reading (slow client), close at any byte, and see the end of a stream.
"""

from __future__ import annotations

import asyncio
import codecs
import json
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

_EOL = re.compile(r"\r\n|\r|\n")


@dataclass
class Message:
    """One dispatched event."""

    event: str
    data: str
    id: str  # the last event id after this event (the resume cursor)

    def json(self) -> Any:
        return json.loads(self.data)


@dataclass
class SSEParser:
    """Incremental WHATWG event-stream parser."""

    #: What a browser sends as Last-Event-ID: updated only when a frame
    #: completes (WHATWG: at dispatch), never by a half-received frame.
    last_event_id: str = ""
    _id_buffer: str = ""
    retry: int | None = None
    comments: list[str] = field(default_factory=list)
    _buf: str = ""
    _data: list[str] = field(default_factory=list)
    _event: str = ""
    _pending_cr: bool = False
    _decoder: Any = None

    def feed(self, chunk: bytes) -> list[Message]:
        if self._decoder is None:
            self._decoder = codecs.getincrementaldecoder("utf-8")("replace")
        text = self._decoder.decode(chunk)
        if self._pending_cr and text.startswith("\n"):
            text = text[1:]  # the LF of a CRLF split across chunks
        self._pending_cr = False
        buf = self._buf + text
        out: list[Message] = []
        pos = 0
        for eol in _EOL.finditer(buf):
            self._line(buf[pos:eol.start()], out)
            pos = eol.end()
            # A CR at the very end may be the first half of a CRLF.
            self._pending_cr = eol.group() == "\r" and pos == len(buf)
        self._buf = buf[pos:]
        return out

    def _line(self, line: str, out: list[Message]) -> None:
        if line == "":
            self.last_event_id = self._id_buffer
            if self._data:
                out.append(Message(self._event or "message", "\n".join(self._data),
                                   self.last_event_id))
            self._data, self._event = [], ""
            return
        if line.startswith(":"):
            self.comments.append(line[1:].lstrip(" "))
            return
        name, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id":
            if "\0" not in value:
                self._id_buffer = value
        elif name == "retry" and value.isdigit():
            self.retry = int(value)


class Response:
    """Status, headers and (for non-streams) the body."""

    def __init__(self, status: int, headers: dict[str, str], body: bytes = b"") -> None:
        self.status, self.headers, self.body = status, headers, body

    def json(self) -> Any:
        return json.loads(self.body)


class SSEConnection:
    """An open GET; events arrive on :attr:`messages` as they are parsed."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 response: Response, chunked: bool) -> None:
        self.reader, self.writer, self.response = reader, writer, response
        self.parser = SSEParser()
        self.messages: asyncio.Queue[Message] = asyncio.Queue()
        self.raw = bytearray()
        self.ended = asyncio.get_running_loop().create_future()
        self._chunked = chunked
        self._task = asyncio.ensure_future(self._pump())

    @property
    def status(self) -> int:
        return self.response.status

    async def _pump(self) -> None:
        try:
            if self._chunked:
                while True:
                    size_line = await self.reader.readline()
                    if not size_line:
                        break  # connection dropped mid-stream
                    size = int(size_line.split(b";")[0].strip(), 16)
                    if size == 0:
                        await self.reader.readline()
                        self._finish("finished")
                        return
                    data = await self.reader.readexactly(size + 2)
                    self._feed(data[:-2])
            else:
                while True:
                    data = await self.reader.read(65536)
                    if not data:
                        break
                    self._feed(data)
            self._finish("dropped")
        except (ConnectionError, asyncio.IncompleteReadError):
            self._finish("dropped")

    def _feed(self, data: bytes) -> None:
        self.raw += data
        for message in self.parser.feed(data):
            self.messages.put_nowait(message)

    def _finish(self, how: str) -> None:
        if not self.ended.done():
            self.ended.set_result(how)
        self.writer.close()

    async def next(self, timeout: float = 5.0) -> Message:
        return await asyncio.wait_for(self.messages.get(), timeout)

    async def take(self, n: int, timeout: float = 10.0) -> list[Message]:
        """The next ``n`` messages, failing if they do not arrive in time."""
        out: list[Message] = []

        async def collect() -> None:
            while len(out) < n:
                out.append(await self.messages.get())

        try:
            await asyncio.wait_for(collect(), timeout)
        except asyncio.TimeoutError:
            raise AssertionError(f"got {len(out)} of {n} events in {timeout}s: "
                                 f"{[m.id for m in out][-5:]}") from None
        return out

    def drain_now(self) -> list[Message]:
        """Messages already parsed, without waiting."""
        out = []
        while not self.messages.empty():
            out.append(self.messages.get_nowait())
        return out

    async def wait_end(self, timeout: float = 10.0) -> str:
        """'finished' (clean end of the response) or 'dropped' (connection cut)."""
        return await asyncio.wait_for(asyncio.shield(self.ended), timeout)

    def close(self) -> None:
        self._task.cancel()
        self.writer.close()


async def request(url: str, *, method: str = "GET", headers: dict[str, str] | None = None,
                  body: bytes = b"", stream: bool | None = None,
                  version: str = "HTTP/1.1") -> SSEConnection | Response:
    """Send one request. A 200 ``text/event-stream`` answer (or ``stream=True``)
    returns an :class:`SSEConnection`; anything else a :class:`Response`."""
    parts = urlsplit(url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    target = parts.path + ("?" + parts.query if parts.query else "")
    lines = [f"{method} {target} {version}", f"Host: {parts.netloc}"]
    for name, value in (headers or {}).items():
        lines.append(f"{name}: {value}")
    if body:
        lines.append(f"Content-Length: {len(body)}")
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("utf-8") + body)
    await writer.drain()
    status_line = await reader.readline()
    status = int(status_line.split()[1])
    resp_headers: dict[str, str] = {}
    while True:
        line = (await reader.readline()).decode("latin-1").rstrip("\r\n")
        if not line:
            break
        name, _, value = line.partition(":")
        key = name.strip().lower()
        resp_headers[key] = (resp_headers[key] + ", " + value.strip()) if key in resp_headers \
            else value.strip()
    response = Response(status, resp_headers)
    chunked = resp_headers.get("transfer-encoding", "").lower() == "chunked"
    is_stream = stream if stream is not None else (
        status == 200 and resp_headers.get("content-type", "").startswith("text/event-stream"))
    if is_stream:
        return SSEConnection(reader, writer, response, chunked)
    if method == "HEAD":
        pass  # a HEAD answer's headers describe a body that is not sent
    elif "content-length" in resp_headers:
        response.body = await reader.readexactly(int(resp_headers["content-length"]))
    elif chunked:
        body_parts = []
        while True:
            size = int((await reader.readline()).split(b";")[0].strip(), 16)
            if size == 0:
                await reader.readline()
                break
            body_parts.append((await reader.readexactly(size + 2))[:-2])
        response.body = b"".join(body_parts)
    writer.close()
    return response


async def open_stream(url: str, headers: dict[str, str] | None = None,
                      version: str = "HTTP/1.1") -> SSEConnection:
    """Open an SSE stream that must answer 200."""
    conn = await request(url, headers={"Accept": "text/event-stream", **(headers or {})},
                         version=version)
    assert isinstance(conn, SSEConnection), f"expected a stream, got {conn.status}: {conn.body!r}"
    return conn
