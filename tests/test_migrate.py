"""Migrations are idempotent (SPEC §1): running them again changes nothing.

migrate() records each file it applies, so a second run normally skips
them; these tests also clear that record, to prove the files themselves can
run twice (a lost record, or two servers racing, must do no harm).
"""

from __future__ import annotations

from typing import Any

from tests.fix_db import execute, insert_appointment
from tornado_sse.migrate import migrate, migration_files

# Everything a migration creates, as text without oids: tables and columns,
# constraints, indexes, functions, triggers, sequences.
SCHEMA_QUERIES = {
    "columns": """
        SELECT table_name, column_name, data_type, udt_name, is_nullable, column_default,
               numeric_precision, numeric_scale
        FROM information_schema.columns WHERE table_schema = 'public'""",
    "constraints": """
        SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid)
        FROM pg_constraint WHERE connamespace = 'public'::regnamespace""",
    "indexes": "SELECT tablename, indexname, indexdef FROM pg_indexes WHERE schemaname = 'public'",
    "functions": """
        SELECT proname, pg_get_function_identity_arguments(oid), pg_get_functiondef(oid)
        FROM pg_proc WHERE pronamespace = 'public'::regnamespace""",
    "triggers": """
        SELECT tgrelid::regclass::text, tgname, pg_get_triggerdef(oid)
        FROM pg_trigger WHERE NOT tgisinternal""",
    "sequences": """
        SELECT sequencename, data_type, start_value, increment_by, last_value
        FROM pg_sequences WHERE schemaname = 'public'""",
}


def schema_dump(dsn: str) -> dict[str, list[tuple[Any, ...]]]:
    """The schema, each part sorted, so two dumps compare equal when nothing changed."""
    return {part: sorted(execute(dsn, sql), key=repr) for part, sql in SCHEMA_QUERIES.items()}


def data_dump(dsn: str) -> list[list[tuple[Any, ...]]]:
    """The rows a migration must never touch."""
    return [execute(dsn, f"SELECT * FROM {t} ORDER BY 1")
            for t in ("appointments", "availabilities", "sse_events", "sse_retention")]


def forget_applied(dsn: str) -> None:
    """Clear migrate()'s record, so the next migrate() runs every file again."""
    execute(dsn, "DELETE FROM tornado_sse_migrations")


def test_second_migration_changes_neither_schema_nor_data(db: str) -> None:
    insert_appointment(db)
    execute(db, "INSERT INTO availabilities (title) VALUES ('Opening hours')")
    execute(db, "UPDATE sse_retention SET pruned_through = 1")
    schema, data = schema_dump(db), data_dump(db)
    forget_applied(db)
    assert migrate(db) == [p.name for p in migration_files()]
    assert schema_dump(db) == schema
    assert data_dump(db) == data


def test_event_ids_continue_after_a_second_migration(db: str) -> None:
    insert_appointment(db)
    forget_applied(db)
    migrate(db)
    insert_appointment(db)
    assert [r[0] for r in execute(db, "SELECT id FROM sse_events ORDER BY id")] == [1, 2]


def test_fresh_database_gets_every_file_once(empty_db: str) -> None:
    names = [p.name for p in migration_files()]
    assert migrate(empty_db) == names
    assert migrate(empty_db) == []
    assert sorted(r[0] for r in execute(empty_db, "SELECT name FROM tornado_sse_migrations")) == names
