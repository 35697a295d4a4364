"""Directory rows (staff, products, customers) for tests that need names.

Each test states the names it relies on, rather than depending on the demo
seed, so a test's expectations sit next to its data.
"""

from __future__ import annotations

from tests.fix_db import execute

#: A small front desk: what the browser tests book and read back.
STAFF = {1: "Jonas", 2: "Mia", 3: "Lena"}
PRODUCTS = {101: ("Haircut", 45, "35.00"), 102: ("Massage", 60, "65.00")}
CUSTOMERS = {1000: "Anna Berg", 1001: "Ben Nowak", 1002: "Clara Schulz"}


def add_directory(dsn: str, staff: dict[int, str] | None = None,
                  products: dict[int, tuple[str, int, str]] | None = None,
                  customers: dict[int, str] | None = None) -> None:
    """Insert the given names (default: the small front desk above)."""
    for sid, name in (STAFF if staff is None else staff).items():
        execute(dsn, "INSERT INTO staff (id, name) VALUES (%s, %s)", (sid, name))
    for pid, (name, minutes, price) in (PRODUCTS if products is None else products).items():
        execute(dsn, "INSERT INTO products (id, name, duration_minutes, price) VALUES (%s, %s, %s, %s)",
                (pid, name, minutes, price))
    for cid, name in (CUSTOMERS if customers is None else customers).items():
        execute(dsn, "INSERT INTO customers (id, name) VALUES (%s, %s)", (cid, name))
