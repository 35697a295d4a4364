-- tornado_sse 002: event ids assigned at commit time; NOTIFY carries the
-- event; indexes for filtered replays (issue 12, SPEC §1 and §7).
-- Idempotent, like 001: every statement can run again (even after 001 has
-- run again, which re-creates 001's immediate triggers: this file replaces
-- them once more).
--
-- WHY COMMIT TIME
--   Under 001 the event row was written by an immediate AFTER trigger, so
--   the commit-order lock of tornado_sse_next_event_id() (a transaction
--   advisory lock) was taken at a transaction's first change and held to its
--   commit. A psql session left in BEGIN after one UPDATE stalled every other
--   writer of both tables for as long as it stayed open, and one interleaving
--   deadlocked (T1 locks row a; T2 writes b and takes the event lock; T1
--   writes a and waits for that lock; T2 writes a and waits for T1).
--   Here the same trigger functions run as DEFERRABLE INITIALLY DEFERRED
--   constraint triggers: PostgreSQL queues one trigger event per changed row
--   and fires them, in the order of the changes, when the transaction
--   commits. Each call still sees OLD and NEW as of its change, so topics,
--   the no-op rule, payloads and audience are exactly those of 001, and
--   several changes to one row in one transaction still give one event each,
--   in order. The event lock is now held only from pre-commit to commit (as
--   NOTIFY's own commit lock is), after the transaction has taken all its row
--   locks, so it can neither wait on an open transaction nor close a cycle.
--
-- WHAT A USER NOTICES
--   - An event row is written when its transaction commits: inside the
--     writing transaction, before COMMIT, sse_events does not show it.
--   - ts and created_at are the commit time, not the time of the statement.
--   - An error in an event trigger (none is expected) is raised by COMMIT,
--     not by the statement, and rolls the whole transaction back.
--   - SET CONSTRAINTS ALL IMMEDIATE (or SET CONSTRAINTS appointments_events
--     / availabilities_events IMMEDIATE) fires the queued event triggers at
--     once and every later one at the end of its statement: that
--     transaction writes its events at once and holds the event lock from
--     then until it ends, which is 001's behaviour, stall included. Do not
--     leave such a transaction open. SET CONSTRAINTS ... DEFERRED undoes it
--     for later changes.
--   - A prepared transaction (PREPARE TRANSACTION) writes its events at
--     PREPARE and holds the event lock until COMMIT PREPARED.
--
-- NOTIFY PAYLOAD (channel sse_events; SPEC §1 allows it to carry the event)
--   When its text is under 7,900 bytes (PostgreSQL's limit is 8,000), a
--   notification is one compact JSON object with the event row's columns,
--   under the column names:
--     {"id":42,"topic":"appointment.created","resource":"appointment",
--      "resource_id":123,"payload":{...},"ts":1733044800,
--      "staff_ids":[5],"product_ids":[456],"created_at":1733044800.123456}
--   id, resource_id and ts are integers; payload is the jsonb payload's own
--   text (the bytes a cursor read of payload::text returns); staff_ids and
--   product_ids (the audience, SPEC §4) are integer arrays or null (null:
--   everyone); created_at is extract(epoch FROM created_at)::float8, as
--   tornado_sse/events.py COLUMNS reads it. Otherwise the payload is the
--   event id alone, in bare digits ("42"), as under 001: the listener reads
--   that event by cursor. A payload that starts with "{" is an event, one
--   of digits is an id.

-- The NOTIFY, from the sse_events row (which the commit-time trigger has
-- just written, so created_at is the commit time).
CREATE OR REPLACE FUNCTION tornado_sse_notify() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    msg text;
BEGIN
    msg := '{"id":' || NEW.id
        || ',"topic":' || to_json(NEW.topic)::text
        || ',"resource":' || to_json(NEW.resource)::text
        || ',"resource_id":' || NEW.resource_id
        || ',"payload":' || NEW.payload::text
        || ',"ts":' || NEW.ts
        || ',"staff_ids":' || coalesce(to_json(NEW.staff_ids)::text, 'null')
        || ',"product_ids":' || coalesce(to_json(NEW.product_ids)::text, 'null')
        || ',"created_at":' || extract(epoch FROM NEW.created_at)::float8
        || '}';
    IF octet_length(msg) >= 7900 THEN
        msg := NEW.id::text;  -- too large: the listener reads it by cursor
    END IF;
    PERFORM pg_notify('sse_events', msg);
    RETURN NULL;
END $$;

-- The event triggers: 001's functions, fired at commit. CREATE CONSTRAINT
-- TRIGGER has no OR REPLACE, so drop first. The names stay those of 001, so
-- "ALTER TABLE ... DISABLE TRIGGER appointments_events" keeps working.
DROP TRIGGER IF EXISTS appointments_events ON appointments;
CREATE CONSTRAINT TRIGGER appointments_events
    AFTER INSERT OR UPDATE OR DELETE ON appointments
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION tornado_sse_appointment_event();

DROP TRIGGER IF EXISTS availabilities_events ON availabilities;
CREATE CONSTRAINT TRIGGER availabilities_events
    AFTER INSERT OR UPDATE OR DELETE ON availabilities
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION tornado_sse_availability_event();

COMMENT ON FUNCTION tornado_sse_next_event_id() IS
    'Draws an event id under a transaction advisory lock, so ids become visible in commit order. '
    'Called by the commit-time event triggers (002), so the lock is held from pre-commit to commit.';

-- Indexes for replays and polls with their filters in SQL, so that a
-- filtered answer, even an empty one, is one indexed query (issue 12).
-- Query shapes they serve (id > cursor ORDER BY id LIMIT n, plus):
--   topics:       topic = ANY($topics)        (wildcards expanded to topics)
--                 -> sse_events_topic_id_idx
--   staff token:  (resource <> 'appointment' OR staff_ids @> ARRAY[$staff])
--                 -> BitmapOr of sse_events_staff_ids_idx (GIN) and
--                    sse_events_not_appointment_idx (availability rows only)
--   staff_id=:    (staff_ids IS NULL OR staff_ids @> ARRAY[$staff])
--                 -> sse_events_staff_ids_idx, sse_events_staff_null_idx
--   product_id=:  (product_ids IS NULL OR product_ids @> ARRAY[$product])
--                 -> sse_events_product_ids_idx, sse_events_product_null_idx
-- (When every requested topic is an appointment topic, leave out the
-- "resource <> 'appointment'" arm: it can match nothing.)
-- The partial indexes hold availability events only, so they stay small
-- and cost appointment writes next to nothing. The GIN indexes have
-- fastupdate off: with it on, every search also reads the pending list,
-- which a steady stream of inserts keeps near its 4 MB limit (measured on
-- 300,000 events: 430 pages and 31 ms for an empty staff answer, against
-- 2 pages and 0.2 ms with it off); an audience holds a few ids, so the
-- direct insert costs little.
CREATE INDEX IF NOT EXISTS sse_events_staff_ids_idx ON sse_events USING gin (staff_ids)
    WITH (fastupdate = off);
CREATE INDEX IF NOT EXISTS sse_events_product_ids_idx ON sse_events USING gin (product_ids)
    WITH (fastupdate = off);
CREATE INDEX IF NOT EXISTS sse_events_topic_id_idx ON sse_events (topic, id);
CREATE INDEX IF NOT EXISTS sse_events_not_appointment_idx ON sse_events (id)
    WHERE resource <> 'appointment';
CREATE INDEX IF NOT EXISTS sse_events_staff_null_idx ON sse_events (id) WHERE staff_ids IS NULL;
CREATE INDEX IF NOT EXISTS sse_events_product_null_idx ON sse_events (id) WHERE product_ids IS NULL;
