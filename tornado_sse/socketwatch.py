"""One readiness set for every detached stream socket of a server.

An open SSE stream needs the event loop for two things only: to notice
that its client hung up, and to know when a socket with a backlog can take
more. Tornado answers both with an IOStream per connection (a registration,
callbacks, Futures, buffers), which is most of an idle stream's memory and
most of what a full garbage collection walks (issue 21). Here one
``epoll`` set holds every detached socket, and one reader on the loop
(``loop.add_reader`` on the set's own descriptor) turns its readiness into
calls on the owning stream: per stream that is one dict entry, no Future,
closure, timer or IOStream.

A socket is registered for ``EPOLLRDHUP`` (the peer closed or shut down its
side) and, only while its backlog is not empty, ``EPOLLOUT``. It is never
registered for ``EPOLLIN``: an SSE client has nothing to say after its
request, and bytes it sends anyway wait in the kernel instead of waking
the server. Level-triggered, so a wake-up that is not handled at once comes
back on the next loop pass.

Linux only (``select.epoll``), like the rest of the deployment
(README Deploying).
"""

from __future__ import annotations

import asyncio
import select
from typing import Protocol

#: The peer went away: a FIN (``RDHUP``), a reset or an error.
_GONE = select.EPOLLRDHUP | select.EPOLLHUP | select.EPOLLERR
_IDLE = select.EPOLLRDHUP
_WRITING = select.EPOLLRDHUP | select.EPOLLOUT


class Owner(Protocol):
    """What the readiness set calls on a socket's owner."""

    def hung_up(self) -> None:
        """The client closed the connection (or it failed)."""

    def writable(self) -> None:
        """The socket can take more of the owner's backlog."""


class SocketWatch:
    """Detached sockets by descriptor, and the one epoll set that watches them."""

    def __init__(self) -> None:
        self._owners: dict[int, Owner] = {}
        self._epoll: select.epoll | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def __len__(self) -> int:
        """Detached sockets open now (the edge counts them as connections)."""
        return len(self._owners)

    def add(self, fd: int, owner: Owner) -> None:
        """Watch ``fd`` for hang-ups on behalf of ``owner``."""
        if self._epoll is None:
            # Created on first use, on the loop that serves the streams.
            self._epoll = select.epoll()
            self._loop = asyncio.get_running_loop()
            self._loop.add_reader(self._epoll.fileno(), self._ready)
        self._epoll.register(fd, _IDLE)
        self._owners[fd] = owner

    def watch_writes(self, fd: int, on: bool) -> None:
        """Report writability of ``fd`` (while its owner has a backlog) or stop."""
        if self._epoll is not None and fd in self._owners:
            self._epoll.modify(fd, _WRITING if on else _IDLE)

    def remove(self, fd: int) -> None:
        """Stop watching ``fd``; call before closing it."""
        if self._owners.pop(fd, None) is not None and self._epoll is not None:
            self._epoll.unregister(fd)

    def close(self) -> None:
        """Stop watching anything (the server stops); owners close their own sockets."""
        if self._epoll is not None:
            if self._loop is not None and not self._loop.is_closed():
                self._loop.remove_reader(self._epoll.fileno())
            self._epoll.close()
            self._epoll = None
        self._owners.clear()

    def _ready(self) -> None:
        epoll = self._epoll
        if epoll is None:
            return
        owners = self._owners
        for fd, events in epoll.poll(0):
            owner = owners.get(fd)
            if owner is None:
                continue  # removed by an earlier owner's call in this pass
            if events & _GONE:
                owner.hung_up()
            elif events & select.EPOLLOUT:
                owner.writable()
