"""The demo week a fresh embedded database starts with (``sql/seed.sql``)."""

from __future__ import annotations

from typing import Any

from tests.fix_db import execute, insert_appointment
from tornado_sse.seed import seed_if_empty


def scalar(dsn: str, sql: str) -> Any:
    """The one value a query returns."""
    return execute(dsn, sql)[0][0]


SIZES = "SELECT (SELECT count(*) FROM appointments), (SELECT count(*) FROM availabilities)"


def test_empty_database_is_seeded_once(db: str) -> None:
    assert seed_if_empty(db) is True
    assert execute(db, SIZES) == [(60, 5)]
    assert seed_if_empty(db) is False
    assert execute(db, SIZES) == [(60, 5)]


def test_database_with_rows_in_either_table_is_not_seeded(db: str) -> None:
    execute(db, "INSERT INTO availabilities (title) VALUES ('Opening hours')")
    assert seed_if_empty(db) is False
    assert scalar(db, "SELECT count(*) FROM appointments") == 0
    execute(db, "DELETE FROM availabilities")
    insert_appointment(db)
    assert seed_if_empty(db) is False
    assert scalar(db, "SELECT count(*) FROM availabilities") == 0


def test_seed_is_this_week_in_business_hours(db: str) -> None:
    seed_if_empty(db)
    outside = execute(db, """
        SELECT id FROM appointments
        WHERE start_at < date_trunc('week', now()) OR end_at > date_trunc('week', now()) + interval '7 days'
           OR (NOT all_day AND (start_at::time < '09:00' OR end_at::time > '18:00'
                                OR start_at::date <> end_at::date))""")
    assert outside == []


def test_seed_covers_staff_products_statuses_and_shared_appointments(db: str) -> None:
    seed_if_empty(db)
    assert scalar(db, "SELECT array_agg(DISTINCT s ORDER BY s) FROM appointments, unnest(staff_ids) s") \
        == [1, 2, 3, 4]
    assert scalar(db, "SELECT array_agg(DISTINCT product_id ORDER BY product_id) FROM appointments") \
        == [101, 102, 103]
    assert scalar(db, "SELECT count(DISTINCT status) FROM appointments") >= 4
    assert scalar(db, "SELECT count(*) FROM appointments WHERE cardinality(staff_ids) > 1") >= 3
    assert scalar(db, "SELECT count(*) FROM appointments WHERE staff_ids = '{}'") >= 1
    assert scalar(db, "SELECT count(*) FROM appointments WHERE all_day") >= 1
    assert scalar(db, "SELECT count(DISTINCT customer_id) FROM appointments") >= 30
    assert scalar(db, "SELECT count(DISTINCT cost) FROM appointments") >= 10
    assert scalar(db, "SELECT array_agg(DISTINCT scope ORDER BY scope) FROM availabilities") \
        == ["global", "product", "staff"]


def test_seed_never_double_books_a_staff_member(db: str) -> None:
    seed_if_empty(db)
    clashes = execute(db, """
        SELECT a.id, b.id FROM appointments a, appointments b
        WHERE a.id < b.id AND a.staff_ids && b.staff_ids
          AND tstzrange(a.start_at, a.end_at) && tstzrange(b.start_at, b.end_at)""")
    assert clashes == []


def test_seed_writes_one_created_event_per_row(db: str) -> None:
    seed_if_empty(db)
    assert execute(db, "SELECT topic, count(*) FROM sse_events GROUP BY 1 ORDER BY 1") == [
        ("appointment.created", 60), ("availability.created", 5)]


def test_seed_names_every_staff_member_product_and_customer_it_books(db: str) -> None:
    seed_if_empty(db)
    unnamed = execute(db, """
        SELECT 'staff', s FROM appointments, unnest(staff_ids) s WHERE s NOT IN (SELECT id FROM staff)
        UNION SELECT 'product', product_id FROM appointments WHERE product_id NOT IN (SELECT id FROM products)
        UNION SELECT 'customer', customer_id FROM appointments
              WHERE customer_id NOT IN (SELECT id FROM customers)""")
    assert unnamed == []
    assert scalar(db, "SELECT count(DISTINCT name) = count(*) FROM customers") is True
    assert execute(db, "SELECT id, name, duration_minutes FROM products ORDER BY id") == [
        (101, "Haircut", 45), (102, "Massage", 60), (103, "Consultation", 90)]
    # The seeded durations are the products' own.
    assert execute(db, """
        SELECT a.id FROM appointments a JOIN products p ON p.id = a.product_id
        WHERE NOT a.all_day AND a.end_at - a.start_at <> p.duration_minutes * interval '1 minute'""") == []


def test_seeded_customers_have_a_phone_and_an_email_address(db: str) -> None:
    """Issue 23: the desk calls and writes to customers (sql/006)."""
    seed_if_empty(db)
    assert scalar(db, "SELECT count(*) FROM customers WHERE phone IS NULL OR email IS NULL") == 0
    assert scalar(db, "SELECT count(DISTINCT email) = count(*) FROM customers") is True
    assert execute(db, "SELECT name, phone, email FROM customers WHERE id = 1000") == [
        ("Anna Berg", "+49 30 555 0000", "anna.berg@example.com")]
    assert scalar(db, "SELECT bool_and(phone ~ '^\\+49 30 555 [0-9]{4}$') FROM customers") is True
