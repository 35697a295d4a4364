"""Real tornado_sse servers on real ports, on the test's IOLoop.

``await make_server(**settings)`` starts a server (pool, listener, HTTP on an
unused port) with the given settings over the test database; every server
is stopped at teardown. Tests talk to it over real HTTP.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from tornado.ioloop import IOLoop

from tornado_sse.auth import issue_token
from tornado_sse.server import Server
from tornado_sse.settings import Settings

SECRET = "test-secret-test-secret-test-secret!"


def admin_token(ttl: int = 3600, **claims: Any) -> str:
    return issue_token(SECRET, role="admin", ttl=ttl, **claims)


def staff_token(staff_id: int, ttl: int = 3600) -> str:
    return issue_token(SECRET, role="staff", staff_id=staff_id, ttl=ttl)


def auth(token: str | None = None) -> dict[str, str]:
    """Headers that authenticate as ``token`` (default: an admin)."""
    return {"Authorization": "Bearer " + (token or admin_token())}


@pytest.fixture
def make_server(io_loop: IOLoop, db: str, tmp_path: Path) -> Iterator[Callable[..., Awaitable[Server]]]:
    servers: list[Server] = []

    async def start(check_interval: float = 10.0, check_timeout: float = 10.0, dsn: str | None = None,
                    wait: bool = True, **overrides: Any) -> Server:
        values: dict[str, Any] = {"host": "127.0.0.1", "port": 0, "dsn": dsn or db,
                                  "jwt_secret": SECRET, "data_dir": tmp_path / "data"}
        values.update(overrides)
        server = Server(Settings(**values), values["dsn"], check_interval=check_interval,
                        check_timeout=check_timeout)
        servers.append(server)
        await server.start()
        if wait:
            await server.wait_ready(30)
        return server

    yield start
    for server in reversed(servers):
        io_loop.run_sync(server.stop, timeout=30)


@pytest.fixture
def server(io_loop: IOLoop, make_server: Callable[..., Awaitable[Server]]) -> Server:
    """A server with default settings."""
    return io_loop.run_sync(make_server, timeout=30)
