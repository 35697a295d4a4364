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
  ``body_timeout``); an open stream is past its headers, so it is exempt.

An open SSE stream leaves Tornado's connection set when it detaches its
socket (tornado_sse/stream.py), so the cap counts those too (``detached``).
"""

from __future__ import annotations

import errno
import json
import logging
import resource
import socket
import time
from collections.abc import Callable, Iterable
from typing import Any

from tornado.httpserver import HTTPServer
from tornado.ioloop import IOLoop
from tornado.iostream import IOStream
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

_BODY = json.dumps({"code": "rest_unavailable",
                    "message": "The server is at its connection limit; try again shortly.",
                    "data": {"status": 503, "reason": "busy"}}, separators=(",", ":")).encode()
REFUSAL = (b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json; charset=utf-8\r\n"
           b"Retry-After: 5\r\nConnection: close\r\nContent-Length: " + str(len(_BODY)).encode()
           + b"\r\n\r\n" + _BODY)


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


class GuardedHTTPServer(HTTPServer):
    """An HTTPServer that refuses connections past a cap, cheaply."""

    def initialize(self, request_callback: Application, *, max_connections: int = 0,  # type: ignore[override]
                   on_refuse: Callable[[], None] | None = None,
                   detached: Callable[[], int] = lambda: 0, **kwargs: Any) -> None:
        super().initialize(request_callback, **kwargs)
        self.max_connections = max_connections
        self._detached = detached
        self._on_refuse = on_refuse
        self.refused = 0
        self._refused_logged = 0
        self._last_log = 0.0

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
                self._handle_connection(connection, address)

        def remove() -> None:
            if not state["paused"]:
                io_loop.remove_handler(sock)
            state["removed"] = True

        io_loop.add_handler(sock, accept, IOLoop.READ)
        return remove

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
