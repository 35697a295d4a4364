"""psql and pgbench: finding them and running them against a DSN.

The embedded package ships both (PostgreSQL 18) in its ``pginstall/bin``;
the system's are the fallback. ``run.py psql`` and ``run.py simulate`` and
the write benchmark run them in the foreground.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from psycopg import conninfo

from .dbserver import DatabaseError
from .pgembedded import EmbeddedPackageChanged, bin_dir


def client_program(name: str) -> str:
    """Path of ``psql``/``pgbench``: the embedded package's, else the system's."""
    try:
        embedded: Path | None = bin_dir() / name
    except EmbeddedPackageChanged:
        embedded = None  # the system's programs still serve a --dsn database
    if embedded is not None and embedded.exists():
        return str(embedded)
    found = shutil.which(name)
    if found is None:
        raise DatabaseError(f"no {name} found")
    return found


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
