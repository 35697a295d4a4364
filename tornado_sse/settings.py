"""One validated, immutable settings object, built from flags and environment.

:class:`Settings` is what a server runs with; :class:`Command` is which
command the user asked for and that command's own arguments (``token``'s
role, ``simulate``'s rate), kept apart so the server never sees them.

Every option is a flag and a ``TORNADO_SSE_*`` environment variable (plus
``DATABASE_URL`` for the DSN); a flag wins over the environment, the
environment over the default. All values are validated here, once, so the
rest of the code can trust them; a bad value raises :class:`SettingsError`
with one line that names the option, and the CLI turns it into exit status 2.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tornado_sse import __version__

COMMANDS = ("serve", "migrate", "psql", "token", "simulate")

#: Algorithms the server may be configured with. ``none`` is never accepted.
SUPPORTED_ALGORITHMS = ("HS256", "HS384", "HS512", "RS256", "RS384", "RS512",
                        "ES256", "ES384", "ES512")


#: RFC 7518 §3.2: HS256 keys must be at least 256 bits.
MIN_HMAC_SECRET = 32


class SettingsError(Exception):
    """An option has a value the server cannot run with."""


@dataclass(frozen=True)
class Settings:
    """What the server runs with. Units are in the names or the docs; 0 means
    "no limit" where a limit is optional."""

    host: str = "127.0.0.1"
    port: int = 8888
    dsn: str | None = None  # None: start the embedded PostgreSQL
    data_dir: Path = Path(".tornado_sse")
    jwt_secret: str | None = None  # None (and no public key): development secret
    jwt_public_key: Path | None = None
    jwt_algorithms: tuple[str, ...] = ("HS256",)
    jwt_audience: str | None = None
    jwt_issuer: str | None = None
    jwt_leeway: float = 30.0  # seconds of clock skew tolerated on exp/nbf
    keepalive: float = 15.0  # seconds of quiet before ": keepalive"
    retry: int = 3000  # ms, sent as "retry:"
    max_events: int = 0  # /sse one-shot event limit, 0 = none
    stream_timeout: float = 0.0  # /sse one-shot seconds, 0 = none
    wc_max_events: int = 50  # WooCommerce routes' one-shot event limit
    wc_stream_timeout: float = 30.0  # WooCommerce routes' one-shot seconds
    poll_timeout: float = 25.0  # default long-poll wait, seconds (max 60)
    max_buffer: int = 1024 * 1024  # bytes a stream may have unsent before it is cut
    window: int = 10000  # recent events kept in memory for resumes
    window_bytes: int = 64 * 1024 * 1024  # ... and at most this many bytes of them
    cors_origins: tuple[str, ...] = ()
    retention: float = 7.0  # days of events kept for replay
    processes: int = 1  # 0 = one per core
    pool_size: int = 10  # database connections per process for requests
    db_lock_timeout: float = 3.0  # seconds a write waits for a row lock (0: no limit)
    db_statement_timeout: float = 10.0  # seconds a write or snapshot statement may run (0: no limit)
    max_duration_hours: float = 24.0  # longest appointment the write API books, unless all-day
    embedded_idle_timeout: float = 600.0  # seconds a transaction may idle in the embedded DB, 0 = off
    header_timeout: float = 10.0  # s for complete request headers (new or kept-alive connection)
    body_timeout: float = 30.0  # s for a request body
    max_body_size: int = 1024 * 1024  # bytes; larger is 413 before the body is read
    max_connections: int | None = None  # open connections per process; None: from the open-file limit
    max_streams_per_token: int = 100  # open SSE streams and polls per token (0: no limit)
    max_streams: int = 0  # open SSE streams and polls per process (0: bounded by max_connections)
    log_level: str = "info"
    log_format: str = "text"  # text, or json: one object per line for log shippers

    def __post_init__(self) -> None:
        _validate(self)

    @property
    def embedded(self) -> bool:
        """True when the server manages its own PostgreSQL."""
        return self.dsn is None


@dataclass(frozen=True)
class Command:
    """The command asked for and its own arguments."""

    name: str = "serve"
    role: str = "admin"  # token
    staff_id: int | None = None  # token
    ttl: int = 3600  # token, seconds
    rate: float = 5.0  # simulate, changes per second
    duration: float = 60.0  # simulate, seconds
    extra: tuple[str, ...] = ()  # psql's own arguments

    def __post_init__(self) -> None:
        _validate_command(self)


# name, parser, help. The flag is --name-with-dashes, the variable
# TORNADO_SSE_NAME; defaults come from the dataclass so they live in one place.
def _str(v: str) -> str:
    return v


def _opt_str(v: str) -> str | None:
    return v or None


def _int(v: str) -> int:
    text = v.strip()
    if not re.fullmatch(r"-?[0-9]+", text):  # int() also takes "+5", "5_0", "١٢"
        raise ValueError(v)
    return int(text)


def _opt_int(v: str) -> int | None:
    return None if v.strip().lower() in ("", "auto") else _int(v)


def _float(v: str) -> float:
    return float(v.strip())


def _csv(v: str) -> tuple[str, ...]:
    return tuple(p.strip() for p in v.split(",") if p.strip())


def _path(v: str) -> Path:
    return Path(v).expanduser()


_OPTIONS: list[tuple[str, Callable[[str], Any], str]] = [
    ("host", _str, "address to listen on"),
    ("port", _int, "port to listen on"),
    ("dsn", _opt_str, "PostgreSQL URL (also DATABASE_URL); unset starts the embedded PostgreSQL"),
    ("data_dir", _path, "folder for the embedded database and the development JWT secret"),
    ("jwt_secret", _opt_str, "HS256 shared secret, at least 32 bytes; unset (and no public key) uses a "
                             "development secret kept in the data folder"),
    ("jwt_public_key", _path, "PEM public key file for RS256/ES256 tokens"),
    ("jwt_algorithms", _csv, "comma list of accepted JWT algorithms (the server's list, never the token's)"),
    ("jwt_audience", _opt_str, "required 'aud' claim, if set"),
    ("jwt_issuer", _opt_str, "required 'iss' claim, if set"),
    ("jwt_leeway", _float, "seconds of clock skew tolerated on exp and nbf"),
    ("keepalive", _float, "seconds of quiet before a ': keepalive' comment"),
    ("retry", _int, "the 'retry:' reconnect delay sent to clients, ms"),
    ("max_events", _int, "end /sse streams after this many events (0: no limit)"),
    ("stream_timeout", _float, "end /sse streams after this many seconds (0: no limit)"),
    ("wc_max_events", _int, "event limit of the WooCommerce SSE routes (0: no limit)"),
    ("wc_stream_timeout", _float, "seconds limit of the WooCommerce SSE routes (0: no limit)"),
    ("poll_timeout", _float, "default long-poll wait, seconds (at most 60)"),
    ("max_buffer", _int, "unsent bytes a stream may hold before it is cut (it resumes)"),
    ("window", _int, "recent events kept in memory so resumes need no query (0: none)"),
    ("window_bytes", _int, "at most this many bytes of them (0: no byte limit)"),
    ("cors_origins", _csv, "comma list of origins allowed to read cross-origin"),
    ("retention", _float, "days of events kept for replay"),
    ("processes", _int, "server processes sharing the port (0: one per core)"),
    ("pool_size", _int, "database connections per server process for requests (the listener has its own)"),
    ("db_lock_timeout", _float, "seconds a write waits for a row lock before 503 (0: no limit)"),
    ("db_statement_timeout", _float, "seconds a write or snapshot statement may run before 503 (0: no limit)"),
    ("max_duration_hours", _float, "longest appointment the write API accepts, hours (all-day ones excepted)"),
    ("embedded_idle_timeout", _float, "embedded PostgreSQL: end a session idle in a transaction this long, s (0: off)"),
    ("header_timeout", _float, "seconds for complete request headers on a new or kept-alive connection (0: no limit)"),
    ("body_timeout", _float, "seconds for a request body (0: no limit)"),
    ("max_body_size", _int, "largest request body, bytes; larger is 413 before it is read"),
    ("max_connections", _opt_int, "open connections per process, then 503 (auto: the open-file limit minus room "
                                  "for database connections and files; 0: no limit)"),
    ("max_streams_per_token", _int, "open streams and polls per token, then 429 (0: no limit)"),
    ("max_streams", _int, "open streams and polls per process, then 503 (0: only max-connections bounds them)"),
    ("log_level", _str, "debug, info, warning or error"),
    ("log_format", _str, "text, or json: one JSON object per line for log shippers"),
]

_SUBCOMMAND_OPTIONS: list[tuple[str, Callable[[str], Any], str]] = [
    ("role", _str, "token: admin or staff"),
    ("staff_id", _int, "token: the staff member's id (required for --role staff)"),
    ("ttl", _int, "token: lifetime in seconds"),
    ("rate", _float, "simulate: changes per second"),
    ("duration", _float, "simulate: seconds to run"),
]

_DEFAULTS = {f.name: f.default for f in (*dataclasses.fields(Settings), *dataclasses.fields(Command))}


def env_name(name: str) -> str:
    """The environment variable that sets option ``name``."""
    return "TORNADO_SSE_" + name.upper()


def build_parser(prog: str = "run.py") -> argparse.ArgumentParser:
    """The command line, shared by ``run.py``, ``tornado-sse`` and ``--help``."""
    parser = argparse.ArgumentParser(
        prog=prog,
        # No prefix matching: psql's own --host/--port must not pass for ours.
        allow_abbrev=False,
        description="tornado_sse: PostgreSQL changes as Server-Sent Events and long-poll.",
        epilog="Every option can also be set by its environment variable; a flag wins. "
               f"psql passes every argument it does not know to psql: {prog} psql -c 'select 1'.",
    )
    parser.add_argument("--version", action="version", version=f"tornado_sse {__version__}")
    parser.add_argument("command", nargs="?", default="serve", choices=COMMANDS,
                        help="serve (default), migrate, psql, token or simulate")
    for title, options in (("server", _OPTIONS), ("subcommands", _SUBCOMMAND_OPTIONS)):
        group = parser.add_argument_group(title)
        for name, _, text in options:
            default = _DEFAULTS[name]
            if isinstance(default, tuple):
                default = ",".join(default) or "none"
            elif default is None:
                default = "auto" if name == "max_connections" else "none"
            env = env_name(name) + (" or DATABASE_URL" if name == "dsn" else "")
            group.add_argument("--" + name.replace("_", "-"), dest=name, default=None,
                               metavar="V", help=f"{text} [env {env}; default {default}]")
    return parser


def load(argv: Sequence[str] | None = None,
         environ: Mapping[str, str] | None = None, *, prog: str = "run.py") -> tuple[Command, Settings]:
    """Parse flags and environment into a validated :class:`Command` and
    :class:`Settings`.

    Raises :class:`SettingsError` for a bad value; argparse itself exits 2
    for an unknown flag or command.
    """
    environ = os.environ if environ is None else environ
    parser = build_parser(prog)
    ns, unknown = parser.parse_known_args(argv)
    if unknown and ns.command != "psql":
        parser.error("unrecognized arguments: " + " ".join(unknown))  # exits 2
    if unknown[:1] == ["--"]:
        unknown = unknown[1:]
    values: dict[str, Any] = {}
    for name, parse, _ in _OPTIONS + _SUBCOMMAND_OPTIONS:
        raw: str | None = getattr(ns, name)
        source = "--" + name.replace("_", "-")
        if raw is None:
            env = env_name(name)
            if env in environ:
                raw, source = environ[env], env
            elif name == "dsn" and environ.get("DATABASE_URL"):
                raw, source = environ["DATABASE_URL"], "DATABASE_URL"
        if raw is None:
            continue
        try:
            values[name] = parse(raw)
        except ValueError:
            raise SettingsError(f"{source}: {raw!r} is not a valid value") from None
    server = {k: v for k, v in values.items() if k in _SERVER_FIELDS}
    command = {k: v for k, v in values.items() if k not in _SERVER_FIELDS}
    return Command(name=ns.command, extra=tuple(unknown), **command), Settings(**server)


_SERVER_FIELDS = frozenset(f.name for f in dataclasses.fields(Settings))


def _validate(s: Settings) -> None:
    """Reject values the server cannot run with, naming the option."""

    def bad(name: str, why: str) -> SettingsError:
        return SettingsError(f"--{name.replace('_', '-')}: {why}")

    if not 0 <= s.port <= 65535:
        raise bad("port", f"{s.port} is not a TCP port (0-65535)")
    for name in ("keepalive", "stream_timeout", "wc_stream_timeout", "jwt_leeway",
                 "embedded_idle_timeout"):
        if getattr(s, name) < 0:
            raise bad(name, "must not be negative")
    if s.keepalive == 0:
        raise bad("keepalive", "must be more than 0 seconds")
    for name in ("retry", "max_events", "wc_max_events", "processes"):
        if getattr(s, name) < 0:
            raise bad(name, "must not be negative")
    if not 0 < s.poll_timeout <= 60:
        raise bad("poll_timeout", "must be more than 0 and at most 60 seconds")
    if s.max_buffer < 4096:
        raise bad("max_buffer", "must be at least 4096 bytes")
    for name in ("window", "window_bytes", "db_lock_timeout", "db_statement_timeout", "header_timeout",
                 "body_timeout", "max_streams_per_token", "max_streams"):
        if getattr(s, name) < 0:
            raise bad(name, "must not be negative")
    if s.retention <= 0:
        raise bad("retention", "must be more than 0 days")
    if not 0 < s.max_duration_hours <= 24 * 366:
        raise bad("max_duration_hours", "must be more than 0 and at most 8784 hours (a year)")
    if not 0 <= s.embedded_idle_timeout <= 2_147_483:  # the server's limit: 2^31-1 ms
        raise bad("embedded_idle_timeout", "must be 0 (off) to 2147483 seconds")
    if s.max_body_size < 1024:
        raise bad("max_body_size", "must be at least 1024 bytes")
    if s.max_connections is not None and s.max_connections < 0:
        raise bad("max_connections", "must not be negative")
    if s.jwt_secret is not None and len(s.jwt_secret.encode("utf-8")) < MIN_HMAC_SECRET:
        # RFC 7518 §3.2: an HMAC key at least as long as the hash output.
        raise bad("jwt_secret", f"is shorter than {MIN_HMAC_SECRET} bytes; use e.g. "
                                "`python -c 'import secrets; print(secrets.token_urlsafe(32))'`")
    if s.pool_size < 1:
        raise bad("pool_size", "must be at least 1")
    if s.log_level.lower() not in ("debug", "info", "warning", "error"):
        raise bad("log_level", f"{s.log_level!r} is not debug, info, warning or error")
    if s.log_format not in ("text", "json"):
        raise bad("log_format", f"{s.log_format!r} is not text or json")
    if not s.jwt_algorithms:
        raise bad("jwt_algorithms", "needs at least one algorithm")
    for alg in s.jwt_algorithms:
        if alg not in SUPPORTED_ALGORITHMS:
            raise bad("jwt_algorithms", f"{alg!r} is not one of {', '.join(SUPPORTED_ALGORITHMS)}")
    asymmetric = [a for a in s.jwt_algorithms if not a.startswith("HS")]
    symmetric = [a for a in s.jwt_algorithms if a.startswith("HS")]
    if asymmetric and symmetric:
        raise bad("jwt_algorithms", "mixes HMAC and public-key algorithms; one key cannot serve both")
    if asymmetric and s.jwt_public_key is None:
        raise bad("jwt_public_key", f"{asymmetric[0]} needs a PEM public key file")
    if s.jwt_public_key is not None:
        if not asymmetric:
            raise bad("jwt_algorithms", "a public key needs RS256/ES256-style algorithms")
        try:
            s.jwt_public_key.read_bytes()
        except OSError as exc:
            raise bad("jwt_public_key", f"cannot read {str(s.jwt_public_key)!r}: {exc.strerror}") from None
    for origin in s.cors_origins:
        if origin == "*" or "://" not in origin:
            raise bad("cors_origins", f"{origin!r} is not an origin like https://example.com")
    if s.dsn is not None and not (s.dsn.startswith("postgres://") or s.dsn.startswith("postgresql://")
                                  or "=" in s.dsn):
        raise bad("dsn", "is not a PostgreSQL URL (postgresql://...) or key=value string")


def _validate_command(c: Command) -> None:
    """Reject command arguments that cannot work, naming the option."""

    def bad(name: str, why: str) -> SettingsError:
        return SettingsError(f"--{name.replace('_', '-')}: {why}")

    if c.name not in COMMANDS:
        raise SettingsError(f"{c.name!r} is not a command ({', '.join(COMMANDS)})")
    if c.role not in ("admin", "staff"):
        raise bad("role", "must be admin or staff")
    if c.role == "staff" and c.name == "token" and c.staff_id is None:
        raise bad("staff_id", "a staff token needs --staff-id")
    if c.ttl < 0:
        raise bad("ttl", "must not be negative")
    if c.rate <= 0:
        raise bad("rate", "must be more than 0")
    if c.duration <= 0:
        raise bad("duration", "must be more than 0")
