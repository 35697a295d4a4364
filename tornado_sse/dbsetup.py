"""Which PostgreSQL a command talks to, and how psql and pgbench reach it.

Every command resolves the database the same way (SPEC §6): ``--dsn`` or
``DATABASE_URL`` when given (checked once, so a wrong address fails with one
line instead of a traceback deep inside a command), else the embedded
PostgreSQL in ``--data-dir``, started for as long as the command needs it.
"""

from __future__ import annotations

import os
import signal
import subprocess
from contextlib import contextmanager
from typing import Iterator, Mapping, Sequence

from psycopg import conninfo

from tornado_sse.database import EmbeddedPostgres, check_connection
from tornado_sse.settings import Settings


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


def client_invocation(dsn: str) -> tuple[str, dict[str, str]]:
    """The connection argument and environment for ``psql``/``pgbench``.

    Both accept a connection string as their database name. The password, if
    any, travels in ``PGPASSWORD`` rather than on the command line, where any
    local user could read it in the process list.
    """
    params = conninfo.conninfo_to_dict(dsn)
    password = params.pop("password", None)
    env = dict(os.environ)
    if password:
        env["PGPASSWORD"] = str(password)
    return conninfo.make_conninfo(**{k: str(v) for k, v in params.items()}), env


def run_client(argv: Sequence[str], env: Mapping[str, str], *, capture: bool = False) -> tuple[int, str]:
    """Run a client program in the foreground: its exit status and, if asked, its output.

    Ctrl-C reaches the client too (the terminal signals the whole process
    group) and the client decides what it means: psql cancels the running
    query and carries on, pgbench stops. This process ignores it meanwhile, so
    it neither dies with a traceback nor skips stopping the embedded server.
    A client killed by a signal reports 128 + the signal number, as a shell does.
    """
    with subprocess.Popen(argv, env=env, text=True,
                          stdout=subprocess.PIPE if capture else None) as proc:
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            output, _ = proc.communicate()
        finally:
            signal.signal(signal.SIGINT, previous)
    status = proc.returncode
    return (128 - status if status < 0 else status), output or ""
