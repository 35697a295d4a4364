"""How psql and pgbench are pointed at the database."""

from __future__ import annotations

import os

from psycopg import conninfo

from tornado_sse.pgclients import client_invocation


def test_password_travels_in_the_environment_not_the_command_line() -> None:
    argument, env = client_invocation("postgresql://app:s3cret@db.example:5433/cal?sslmode=require")
    assert "s3cret" not in argument
    assert env["PGPASSWORD"] == "s3cret"
    assert conninfo.conninfo_to_dict(argument) == {
        "user": "app", "host": "db.example", "port": "5433", "dbname": "cal", "sslmode": "require"}


def test_embedded_socket_url_keeps_its_socket_folder_and_sets_no_password() -> None:
    argument, env = client_invocation("postgresql://postgres:@/postgres?host=/tmp/x/pgdata")
    assert conninfo.conninfo_to_dict(argument) == {
        "user": "postgres", "dbname": "postgres", "host": "/tmp/x/pgdata"}
    assert env.get("PGPASSWORD") == os.environ.get("PGPASSWORD")
