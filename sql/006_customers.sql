-- tornado_sse 006: customers a front desk can find and call (issue 23).
-- Idempotent, like 001-005: every statement can run again.
--
-- WHAT IT ADDS
--   - customers.phone and customers.email: nullable text, bounded (a shop
--     may write anything; the API checks the shape, the database only that
--     a value is not empty and not huge).
--   - customers.search: a generated column the type-ahead search matches
--     against: the lower-cased name, e-mail and the phone's digits, each
--     after a space (" anna berg anna.berg@example.com 4930123456"), so one
--     index answers a search by any of them, and "a word starts with" is
--     LIKE '% be%'.
--   - A trigram index on it (pg_trgm) when the extension can be created:
--     "contains" and "a word starts with" patterns (LIKE '%erg%',
--     LIKE '% be%') are then index scans over 100,000 customers. pg_trgm
--     ships with PostgreSQL (contrib) and is a trusted extension since 13,
--     so a database owner without superuser may create it; where it still
--     cannot be created (no contrib package, no CREATE privilege) the
--     migration goes on without the index and search stays correct, only
--     slower (a sequential scan).
--   - appointments_customer_start_idx: a customer's appointments by time,
--     for GET /api/customers/{id} and the staff scope ("customers of my
--     appointments").
--   - tornado_sse_next_customer_id(): ids for customers the desk creates.
--     Ids are the shop's (sql/003), so there is no sequence to follow: the
--     next id is one above the highest, taken under an advisory lock that
--     serialises creates through the API.
--
-- No triggers: customers are not calendar events (sql/003).

-- 005 may have queued event triggers in this transaction (its UPDATE of
-- existing double bookings), and CREATE INDEX refuses a table with pending
-- trigger events: fire them now. As sql/002 says, they then hold the event
-- lock until this transaction ends, which it does when the migration
-- commits; later changes are deferred again.
SET CONSTRAINTS ALL IMMEDIATE;
SET CONSTRAINTS ALL DEFERRED;

ALTER TABLE customers ADD COLUMN IF NOT EXISTS phone text
    CONSTRAINT customers_phone_length CHECK (phone <> '' AND length(phone) <= 40);
ALTER TABLE customers ADD COLUMN IF NOT EXISTS email text
    CONSTRAINT customers_email_length CHECK (email <> '' AND length(email) <= 254);

ALTER TABLE customers ADD COLUMN IF NOT EXISTS search text GENERATED ALWAYS AS (
    ' ' || lower(name) || ' ' || lower(coalesce(email, '')) || ' '
        || coalesce(regexp_replace(phone, '[^0-9]', '', 'g'), '')) STORED;

DO $$
BEGIN
    CREATE EXTENSION IF NOT EXISTS pg_trgm;
EXCEPTION WHEN insufficient_privilege OR undefined_file OR feature_not_supported THEN
    RAISE NOTICE 'pg_trgm is not available (%); customer search works without its index', SQLERRM;
END $$;

DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_extension WHERE extname = 'pg_trgm') THEN
        -- The extension's schema may not be on search_path: name the opclass through it.
        EXECUTE format('CREATE INDEX IF NOT EXISTS customers_search_trgm_idx ON customers'
                       ' USING gin (search %I.gin_trgm_ops)',
                       (SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
                        WHERE e.extname = 'pg_trgm'));
    END IF;
END $$;

CREATE INDEX IF NOT EXISTS appointments_customer_start_idx ON appointments (customer_id, start_at);

CREATE OR REPLACE FUNCTION tornado_sse_next_customer_id() RETURNS bigint
LANGUAGE sql VOLATILE AS $$
    SELECT pg_advisory_xact_lock(7634534543);  -- an arbitrary constant: one create at a time
    SELECT coalesce(max(id), 0) + 1 FROM customers
$$;
