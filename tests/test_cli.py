"""``run.py`` as a user runs it (SPEC §6): a real process, real exit statuses.

A mistake a user can fix is one line on stderr and exit status 2, never a
traceback; ``--help`` documents every option with its variable and default.
"""

from __future__ import annotations

import dataclasses
import re
import subprocess

import jwt
import pytest

from tests.cli_process import run_cli
from tests.fix_db import execute
from tornado_sse.migrate import migration_files
from tornado_sse.settings import Settings, env_name, load

#: Settings fields that are not options (the command word and psql's arguments).
NOT_OPTIONS = {"command", "extra"}
SECRET = "a test secret of at least thirty-two bytes"


def assert_one_line_error(result: subprocess.CompletedProcess[str], *, names: str) -> None:
    """Exit status 2, one ``run.py: error:`` line naming the culprit, no traceback."""
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("run.py: error: ")
    assert names in lines[0]


@pytest.mark.parametrize("args, names", [
    (["--port", "99999"], "--port"),
    (["--keepalive", "-1"], "--keepalive"),
    (["--jwt-algorithms", "RS256", "--jwt-public-key", "/nonexistent"], "--jwt-public-key"),
    (["--dsn", "postgresql://postgres@127.0.0.1:1/x", "migrate"], "cannot connect to the database"),
    (["migrate", "--dsn", "postgresql://postgres@127.0.0.1:1/x"], "cannot connect to the database"),
])
def test_bad_option_is_one_line_and_status_2(args: list[str], names: str) -> None:
    assert_one_line_error(run_cli(*args), names=names)


def test_bad_environment_value_is_one_line_naming_the_variable() -> None:
    assert_one_line_error(run_cli(env={"TORNADO_SSE_PORT": "abc"}), names="TORNADO_SSE_PORT")


def shown_default(value: object) -> str:
    """A default as --help prints it."""
    if isinstance(value, tuple):
        return ",".join(value) or "none"
    return "none" if value is None else str(value)


def test_help_lists_every_option_with_its_variable_and_default() -> None:
    result = run_cli("--help")
    assert result.returncode == 0
    text = " ".join(result.stdout.split())  # undo argparse's line wrapping
    for field in dataclasses.fields(Settings):
        if field.name in NOT_OPTIONS:
            continue
        flag = "--" + field.name.replace("_", "-")
        entry = re.search(re.escape(flag) + r" V (.*?\])", text)
        assert entry, f"{flag} missing from --help"
        variable = env_name(field.name) + (" or DATABASE_URL" if field.name == "dsn" else "")
        default = "auto" if field.name == "max_connections" else shown_default(field.default)
        assert entry.group(1).endswith(f"[env {variable}; default {default}]")


def test_migrate_says_nothing_is_pending_on_a_migrated_database(db: str) -> None:
    result = run_cli("--dsn", db, "migrate")
    assert (result.returncode, result.stdout) == (0, "migrate: nothing pending, the database is up to date\n")


def test_migrate_prints_each_file_it_applies(db: str) -> None:
    execute(db, "DELETE FROM tornado_sse_migrations")
    result = run_cli("--dsn", db, "migrate")
    assert (result.returncode, result.stdout) == (
        0, "".join(f"migrate: applied {m.name}\n" for m in migration_files()))


def test_psql_passes_its_arguments_through(db: str) -> None:
    result = run_cli("--dsn", db, "psql", "-At", "-c", "SELECT 41 + 1")
    assert (result.returncode, result.stdout) == (0, "42\n")


def test_psql_after_double_dash_passes_its_arguments_through(db: str) -> None:
    result = run_cli("--dsn", db, "psql", "--", "-At", "-c", "SELECT count(*) FROM appointments")
    assert (result.returncode, result.stdout) == (0, "0\n")


def test_psql_exit_status_is_psqls(db: str) -> None:
    result = run_cli("--dsn", db, "psql", "-c", "SELECT no_such_column")
    assert result.returncode == 1
    assert "no_such_column" in result.stderr


def test_options_after_a_command_apply_to_it() -> None:
    """Regression: the psql pass-through once swallowed ``token --role staff --staff-id 3``
    and printed an admin token. By hand: ``python run.py token --role staff --staff-id 3``."""
    result = run_cli("token", "--role", "staff", "--staff-id", "3", "--jwt-secret", SECRET)
    assert result.returncode == 0, result.stderr
    claims = jwt.decode(result.stdout.strip(), SECRET, algorithms=["HS256"])
    assert (claims["role"], claims["staff_id"]) == ("staff", 3)


def test_stray_word_after_a_command_is_an_error_not_ignored() -> None:
    result = run_cli("migrate", "everything")
    assert result.returncode == 2
    assert "unrecognized arguments: everything" in result.stderr


@pytest.mark.parametrize("argv, command, extra, role", [
    (["token", "--role", "staff", "--staff-id", "3"], "token", (), "staff"),
    (["--role", "staff", "--staff-id", "3", "token"], "token", (), "staff"),
    (["psql", "-c", "select 1"], "psql", ("-c", "select 1"), "admin"),
    (["psql", "--", "-c", "select 1"], "psql", ("-c", "select 1"), "admin"),
])
def test_options_are_read_wherever_they_stand_and_psql_gets_the_rest(
        argv: list[str], command: str, extra: tuple[str, ...], role: str) -> None:
    """Regression: a REMAINDER argument once swallowed options written after
    the command, so ``token --role staff`` silently made an admin token."""
    cmd, _ = load(argv, environ={})
    assert (cmd.name, cmd.extra, cmd.role) == (command, extra, role)


def test_unknown_option_for_another_command_exits_2() -> None:
    with pytest.raises(SystemExit) as exc:
        load(["token", "-c", "x"], environ={})
    assert exc.value.code == 2
