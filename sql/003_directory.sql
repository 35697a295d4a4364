-- The directory: names for the ids appointments carry (staff members,
-- products i.e. services, customers), so a calendar can say "Anna Berg ·
-- Haircut 45 min · Jonas" instead of "Customer #1150 · Product #101".
--
-- Ids are the ones the shop assigns (WooCommerce user and product ids), so
-- they are plain bigint keys, not generated here. Deliberately no foreign
-- keys from appointments: rows written by other systems (a shop, psql) may
-- name ids this directory does not know, and such a write must still
-- succeed; the calendar then shows "#id".
--
-- Idempotent: safe to run again (SPEC §1). No triggers: directory changes
-- are not calendar events; the page reloads the directory with a snapshot.

CREATE TABLE IF NOT EXISTS staff (
    id bigint PRIMARY KEY CHECK (id > 0),
    name text NOT NULL CHECK (name <> '' AND length(name) <= 200),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS products (
    id bigint PRIMARY KEY CHECK (id > 0),
    name text NOT NULL CHECK (name <> '' AND length(name) <= 200),
    duration_minutes integer NOT NULL DEFAULT 60 CHECK (duration_minutes > 0),
    price numeric(12, 2) NOT NULL DEFAULT 0 CHECK (price >= 0),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS customers (
    id bigint PRIMARY KEY CHECK (id > 0),
    name text NOT NULL CHECK (name <> '' AND length(name) <= 200),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
