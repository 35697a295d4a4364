"""Other database roles, as an attacker or another writer would log in.

Roles are cluster-wide (the shared PostgreSQL of the CI serves many test
sessions), so each gets a unique name and is dropped at teardown, with
whatever it was granted. Both the embedded server and the shared one trust
local connections, so a role needs no password.
"""

from __future__ import annotations

import hashlib
import hmac
import uuid
from collections.abc import Callable, Iterator

import psycopg
import pytest
from psycopg import conninfo


@pytest.fixture
def make_role(db: str) -> Iterator[Callable[..., str]]:
    """``make_role(*grants)``: a LOGIN role with no rights but ``grants``
    (SQL after GRANT ... TO <role>); returns a DSN that logs in as it."""
    names: list[str] = []

    def create(*grants: str) -> str:
        name = "tsse_role_" + uuid.uuid4().hex[:10]
        with psycopg.connect(db, autocommit=True) as conn:
            conn.execute(f'CREATE ROLE "{name}" LOGIN')
            names.append(name)
            for grant in grants:
                conn.execute(f'GRANT {grant} TO "{name}"')
        return conninfo.make_conninfo(db, user=name)

    yield create
    with psycopg.connect(db, autocommit=True) as conn:
        for name in names:
            conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s", (name,))
            conn.execute(f'DROP OWNED BY "{name}"')
            conn.execute(f'DROP ROLE "{name}"')


def notify_key(dsn: str) -> bytes:
    """The key sql/004 signs notifications with (readable by the owner only)."""
    with psycopg.connect(dsn) as conn:
        row = conn.execute("SELECT key FROM tornado_sse_notify_key").fetchone()
    assert row is not None
    return bytes(row[0])


def proven_body(key: bytes, payload: str) -> str:
    """The body of a trigger notification, after checking its HMAC the way
    the listener does (asserted)."""
    mac, _, body = payload.partition(" ")
    assert hmac.compare_digest(mac, hmac.new(key, body.encode(), hashlib.sha256).hexdigest()), payload
    return body
