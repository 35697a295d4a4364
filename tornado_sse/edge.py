"""The connection edge: open-file budget, connection cap, cheap refusals.

Tornado's defaults let anyone hold every file descriptor (no header or body
timeout, no connection cap), and at the open-file limit its accept loop
spins on EMFILE with a traceback per attempt. Here:

- the soft open-file limit is raised to the hard one at start;
- open connections per process are capped below it, leaving room for the
  database connections and files the process needs (``--max-connections``);
- a connection past the cap is answered with a fixed 503 + ``Retry-After``
  and closed: no handler, no parsing, no busy loop, and one log line per
  interval however many are refused;
- complete request headers must arrive within ``--header-timeout`` of the
  connection opening or of the previous response, and a body within
  ``--body-timeout`` (Tornado's ``idle_connection_timeout`` and
  ``body_timeout``); an open stream is past its headers, so it is exempt;
- a response that makes no write progress for ``--write-timeout`` (a
  client that pipelines requests for a large file and never reads) is
  closed, where Tornado would hold the socket and its send buffer forever;
  event streams are exempt (they have their own slow-consumer cut, and a
  quiet stream is healthy). Pipelined requests wait: Tornado reads the next
  request of a connection only once the previous response is finished, so
  no more than one read chunk of them is ever held;
- headers over ``MAX_HEADER_SIZE`` get a JSON 431 (Tornado drops the
  connection without a word, and a client cannot tell why).

An open SSE stream leaves Tornado's connection set when it detaches its
socket (tornado_sse/stream.py), so the cap counts those too (``detached``).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import logging
import resource
import socket
import sys
import time
from collections.abc import Callable, Iterable
from typing import Any

from tornado.httpserver import HTTPServer
from tornado.ioloop import IOLoop
from tornado.iostream import IOStream, UnsatisfiableReadError
from tornado.web import Application

from .settings import Settings

log = logging.getLogger("tornado_sse.edge")

#: Descriptors kept back from the connection cap beside the pool: the
#: listener's two connections, the listening sockets, log files, the
#: embedded database's pipes, imports.
RESERVED_FILES = 64
#: At most one "refusing connections" line per this many seconds.
REFUSAL_LOG_EVERY = 10.0
#: Seconds accepting pauses when the process is out of descriptors.
ACCEPT_PAUSE = 0.25

#: Request headers larger than this get 431 (SPEC §7).
MAX_HEADER_SIZE = 64 * 1024


def _fixed_answer(status: str, code: str, message: str, extra: bytes = b"") -> bytes:
    """A complete JSON error response (SPEC §4 shape), sent straight to the
    socket where no handler runs."""
    body = json.dumps({"code": code, "message": message, "data": {"status": int(status[:3])}},
                      separators=(",", ":")).encode()
    return (b"HTTP/1.1 " + status.encode() + b"\r\nContent-Type: application/json; charset=utf-8\r\n"
            b"X-Content-Type-Options: nosniff\r\n" + extra + b"Connection: close\r\nContent-Length: "
            + str(len(body)).encode() + b"\r\n\r\n" + body)


HEADERS_TOO_LARGE = _fixed_answer("431 Request Header Fields Too Large", "rest_headers_too_large",
                                  f"The request headers may be at most {MAX_HEADER_SIZE} bytes.")

_BODY = json.dumps({"code": "rest_unavailable",
                    "message": "The server is at its connection limit; try again shortly.",
                    "data": {"status": 503, "reason": "busy"}}, separators=(",", ":")).encode()
REFUSAL = (b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json; charset=utf-8\r\n"
           b"X-Content-Type-Options: nosniff\r\nRetry-After: 5\r\nConnection: close\r\nContent-Length: "
           + str(len(_BODY)).encode() + b"\r\n\r\n" + _BODY)


def raise_open_file_limit() -> int:
    """Raise the soft RLIMIT_NOFILE to the hard limit; the limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError) as exc:
            log.warning("could not raise the open-file limit from %d: %s", soft, exc)
    return int(soft)


def connection_budget(settings: Settings, open_files: int) -> int:
    """Connections this process accepts at once (0: no cap)."""
    if settings.max_connections is not None:
        return settings.max_connections
    return max(16, open_files - settings.pool_size - RESERVED_FILES)


class EdgeIOStream(IOStream):
    """A client connection that cannot hold the server by not reading.

    Tornado has a timeout for headers and bodies but none for a response
    being written: a client that never reads keeps its socket, its kernel
    send buffer and Tornado's write buffer for ever. Here a response that
    moves no byte for ``write_timeout`` seconds gets its connection closed
    (the handler sees ``StreamClosedError`` and ends). Event streams set
    :attr:`write_timeout_exempt`: their own slow-consumer cut applies.
    """

    def __init__(self, sock: socket.socket, *, write_timeout: float,
                 on_stall: Callable[[], None] | None = None, **kwargs: Any) -> None:
        super().__init__(sock, **kwargs)
        self.write_timeout = write_timeout
        #: Set while an event stream is being served on this connection.
        self.write_timeout_exempt = False
        self._on_stall = on_stall
        self._watch: object | None = None
        self._mark = 0
        self._progress_at = 0.0
        self._reading_headers = False

    def write(self, data: bytes | memoryview) -> Any:
        future = super().write(data)
        if (self.write_timeout and self._watch is None and not self.write_timeout_exempt
                and not self.closed() and self.writing()):
            self._mark = self._written()
            self._progress_at = time.monotonic()
            self._arm()
        return future

    def _written(self) -> int:
        # Bytes handed to the kernel so far: Tornado counts them for its
        # write futures, and it is the only progress measure it keeps.
        return int(self._total_write_done_index)

    def _arm(self) -> None:
        self._watch = self.io_loop.call_later(self.write_timeout / 4, self._check)

    def _check(self) -> None:
        """Every quarter of the timeout while a write is pending: closed once
        no byte has moved for the whole timeout."""
        self._watch = None
        if self.closed() or self.write_timeout_exempt or not self.writing():
            return  # re-armed by the next write that has to wait
        now = time.monotonic()
        written = self._written()
        if written != self._mark:
            self._mark, self._progress_at = written, now
        elif now - self._progress_at >= self.write_timeout:
            if self._on_stall is not None:
                self._on_stall()
            self.close()
            return
        self._arm()

    def read_until_regex(self, regex: bytes, max_bytes: int | None = None) -> Any:
        # Server connections read with a regex only for request headers.
        self._reading_headers = True
        future = super().read_until_regex(regex, max_bytes)
        if isinstance(future, asyncio.Future):
            future.add_done_callback(self._headers_read)
        return future

    def _headers_read(self, _future: Any) -> None:
        self._reading_headers = False

    def close(self, exc_info: Any = False) -> None:
        if not self.closed() and self._reading_headers:
            error = exc_info if isinstance(exc_info, BaseException) else \
                exc_info[1] if isinstance(exc_info, tuple) else sys.exc_info()[1] if exc_info else None
            if isinstance(error, UnsatisfiableReadError) and self.socket is not None:
                # Headers past MAX_HEADER_SIZE: say so (SPEC §7: 431) rather
                # than drop the connection without a word.
                with contextlib.suppress(OSError):
                    self.socket.send(HEADERS_TOO_LARGE)  # small: fits any socket buffer
        if self._watch is not None:
            self.io_loop.remove_timeout(self._watch)
            self._watch = None
        super().close(exc_info)


class GuardedHTTPServer(HTTPServer):
    """An HTTPServer that refuses connections past a cap, cheaply."""

    def initialize(self, request_callback: Application, *, max_connections: int = 0,  # type: ignore[override]
                   on_refuse: Callable[[], None] | None = None, write_timeout: float = 0.0,
                   on_stall: Callable[[], None] | None = None,
                   detached: Callable[[], int] = lambda: 0, **kwargs: Any) -> None:
        super().initialize(request_callback, max_header_size=MAX_HEADER_SIZE, **kwargs)
        self.max_connections = max_connections
        self.write_timeout = write_timeout
        self._detached = detached
        self._on_refuse = on_refuse
        self._on_stall = on_stall
        self.refused = 0
        self._refused_logged = 0
        self._last_log = 0.0
        self.stalled = 0
        self._stalled_logged = 0
        self._last_stall_log = 0.0

    @property
    def open_connections(self) -> int:
        return len(self._connections) + self._detached()

    def handle_stream(self, stream: IOStream, address: tuple[Any, ...]) -> None:
        if self.max_connections and self.open_connections >= self.max_connections:
            self._refuse(stream)
            return
        super().handle_stream(stream, address)

    def add_sockets(self, sockets: Iterable[socket.socket]) -> None:
        """Tornado's accept loop, but one that backs off on EMFILE.

        Tornado's own handler lets the error escape: the listening socket
        stays readable, so the loop spins with a traceback per attempt. Here
        accepting pauses for a moment instead, with one log line per
        interval; the kernel's backlog holds the waiting clients.
        """
        for sock in sockets:
            self._sockets[sock.fileno()] = sock
            self._handlers[sock.fileno()] = self._accept_on(sock)

    def _accept_on(self, sock: socket.socket) -> Callable[[], None]:
        io_loop = IOLoop.current()
        state = {"removed": False, "paused": False}

        def resume() -> None:
            if state["paused"] and not state["removed"]:
                state["paused"] = False
                io_loop.add_handler(sock, accept, IOLoop.READ)

        def accept(_fd: Any, _events: int) -> None:
            for _ in range(128):
                if state["removed"] or state["paused"]:
                    return
                try:
                    connection, address = sock.accept()
                except BlockingIOError:
                    return
                except ConnectionAbortedError:
                    continue
                except OSError as exc:
                    if exc.errno not in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                        raise
                    state["paused"] = True
                    io_loop.remove_handler(sock)
                    io_loop.call_later(ACCEPT_PAUSE, resume)
                    self._note_refusal(f"out of file descriptors ({exc.strerror}); pausing accept")
                    return
                self._serve_connection(connection, address)

        def remove() -> None:
            if not state["paused"]:
                io_loop.remove_handler(sock)
            state["removed"] = True

        io_loop.add_handler(sock, accept, IOLoop.READ)
        return remove

    def _serve_connection(self, connection: socket.socket, address: Any) -> None:
        """Tornado's ``_handle_connection`` (no TLS here: a proxy ends it),
        with the stream that enforces the write timeout."""
        try:
            stream = EdgeIOStream(connection, write_timeout=self.write_timeout, on_stall=self._stall,
                                  max_buffer_size=self.max_buffer_size, read_chunk_size=self.read_chunk_size)
            self.handle_stream(stream, address)
        except Exception:
            log.error("error accepting a connection", exc_info=True)
            connection.close()

    def _stall(self) -> None:
        """A response made no write progress for the write timeout: counted,
        and logged once per interval however many (an attacker opens many)."""
        self.stalled += 1
        if self._on_stall is not None:
            self._on_stall()
        now = time.monotonic()
        if now - self._last_stall_log >= REFUSAL_LOG_EVERY:
            log.warning("closed %d connection(s) whose client stopped reading a response for %gs",
                        self.stalled - self._stalled_logged, self.write_timeout)
            self._stalled_logged = self.stalled
            self._last_stall_log = now

    def _refuse(self, stream: IOStream) -> None:
        """A fixed answer handed straight to the kernel, then the socket is
        closed at once: a flood of refusals must not hold descriptors."""
        self.refused += 1
        if self._on_refuse is not None:
            self._on_refuse()
        self._note_refusal(f"at the connection limit ({self.max_connections})")
        sock = stream.socket
        try:
            if sock is not None:
                sock.send(REFUSAL)  # small: fits any socket buffer
        except OSError:
            pass  # the peer is already gone
        stream.close()

    def _note_refusal(self, why: str) -> None:
        """One log line per interval, however many refusals."""
        now = time.monotonic()
        if now - self._last_log >= REFUSAL_LOG_EVERY:
            log.warning("%s: refused %d connection(s) since the last report", why,
                        self.refused - self._refused_logged)
            self._refused_logged = self.refused
            self._last_log = now
