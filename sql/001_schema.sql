-- tornado_sse schema: demo calendar tables and the event log (SPEC §1).
-- Idempotent: every statement can run again on a migrated database.

CREATE TABLE IF NOT EXISTS appointments (
    id              bigserial PRIMARY KEY,
    product_id      bigint,
    staff_ids       bigint[] NOT NULL DEFAULT '{}',
    customer_id     bigint,
    order_id        bigint,
    order_item_id   bigint,
    start_at        timestamptz NOT NULL,
    end_at          timestamptz NOT NULL,
    all_day         boolean NOT NULL DEFAULT false,
    status          text NOT NULL DEFAULT 'unpaid',
    customer_status text NOT NULL DEFAULT 'expected',
    cost            numeric(12,2) NOT NULL DEFAULT 0,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT appointments_end_after_start CHECK (end_at >= start_at),
    -- Payloads carry epoch seconds: infinity has none.
    CONSTRAINT appointments_times_finite CHECK (isfinite(start_at) AND isfinite(end_at)),
    -- A plain list of staff ids: one dimension, starting at 1, no NULLs, so
    -- staff_id (the first) and the audience are what the row says.
    CONSTRAINT appointments_staff_ids_plain CHECK (
        cardinality(staff_ids) = 0
        OR (array_ndims(staff_ids) = 1 AND array_lower(staff_ids, 1) = 1
            AND array_position(staff_ids, NULL) IS NULL)),
    CONSTRAINT appointments_status_valid CHECK (status IN (
        'unpaid', 'pending-confirmation', 'confirmed', 'paid', 'complete',
        'in-cart', 'was-in-cart', 'cancelled', 'trash')),
    CONSTRAINT appointments_customer_status_valid CHECK (
        customer_status IN ('expected', 'arrived', 'no-show'))
);

-- Calendar range queries: "start_at < :end AND end_at > :start".
CREATE INDEX IF NOT EXISTS appointments_start_at_idx ON appointments (start_at);
CREATE INDEX IF NOT EXISTS appointments_end_at_idx ON appointments (end_at);
CREATE INDEX IF NOT EXISTS appointments_staff_ids_idx ON appointments USING gin (staff_ids);
CREATE INDEX IF NOT EXISTS appointments_product_id_idx ON appointments (product_id);

CREATE TABLE IF NOT EXISTS availabilities (
    id          bigserial PRIMARY KEY,
    scope       text NOT NULL DEFAULT 'global',
    product_id  bigint,
    staff_id    bigint,
    title       text NOT NULL DEFAULT '',
    range_type  text NOT NULL DEFAULT 'custom',
    from_range  text,
    to_range    text,
    appointable boolean NOT NULL DEFAULT true,
    priority    integer NOT NULL DEFAULT 10,
    qty         integer NOT NULL DEFAULT 0,
    ordering    integer NOT NULL DEFAULT 0,
    rrule       text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT availabilities_scope_valid CHECK (scope IN ('global', 'product', 'staff'))
);

-- Event ids are drawn under a transaction-scoped advisory lock, so ids become
-- visible in commit order: the lock is held until the drawing transaction has
-- committed (or rolled back), so no transaction can draw a higher id and
-- commit first. A plain sequence does not give this (SPEC §1), and it is what
-- makes "id > cursor" resume lossless. The key is an arbitrary constant.
CREATE SEQUENCE IF NOT EXISTS sse_events_id_seq AS bigint;

CREATE OR REPLACE FUNCTION tornado_sse_next_event_id() RETURNS bigint
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(7624735193842);
    RETURN nextval('sse_events_id_seq');
END $$;

CREATE TABLE IF NOT EXISTS sse_events (
    id          bigint PRIMARY KEY DEFAULT tornado_sse_next_event_id(),
    topic       text NOT NULL,
    resource    text NOT NULL,
    resource_id bigint NOT NULL,
    payload     jsonb NOT NULL,
    ts          bigint NOT NULL DEFAULT floor(extract(epoch FROM clock_timestamp()))::bigint,
    -- Audience (SPEC §4): staff members the event concerns. For an
    -- appointment, its staff before and after the change, so the event that
    -- moves it away from someone reaches them too. For an availability rule,
    -- the rule's staff member, or NULL for a rule that concerns everyone.
    staff_ids   bigint[],
    -- Products the event concerns (before and after), NULL for all.
    product_ids bigint[],
    created_at  timestamptz NOT NULL DEFAULT clock_timestamp()
);
ALTER SEQUENCE sse_events_id_seq OWNED BY sse_events.id;
CREATE INDEX IF NOT EXISTS sse_events_created_at_idx ON sse_events (created_at);

-- Retention bookkeeping: every id <= pruned_through may have been deleted, so
-- a cursor below it cannot be replayed completely and gets a reset.
CREATE TABLE IF NOT EXISTS sse_retention (
    singleton      boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    pruned_through bigint NOT NULL DEFAULT 0,
    -- When a server last claimed the periodic prune (tornado_sse_prune_due).
    last_run_at    timestamptz NOT NULL DEFAULT 'epoch'
);
INSERT INTO sse_retention (singleton) VALUES (true) ON CONFLICT DO NOTHING;

-- Wake the listeners. NOTIFY only wakes; they read rows by cursor.
CREATE OR REPLACE FUNCTION tornado_sse_notify() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('sse_events', NEW.id::text);
    RETURN NULL;
END $$;

DROP TRIGGER IF EXISTS sse_events_notify ON sse_events;
CREATE TRIGGER sse_events_notify AFTER INSERT ON sse_events
    FOR EACH ROW EXECUTE FUNCTION tornado_sse_notify();

-- The payload shapes of SPEC §2, shared by the triggers and the snapshot API.
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
        'customer_status', a.customer_status)
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
        'updated', floor(extract(epoch FROM v.updated_at))::bigint)
$$;

-- updated_at follows real changes only, so a no-op UPDATE stays a no-op.
CREATE OR REPLACE FUNCTION tornado_sse_touch() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW IS DISTINCT FROM OLD AND NEW.updated_at IS NOT DISTINCT FROM OLD.updated_at THEN
        NEW.updated_at := now();
    END IF;
    RETURN NEW;
END $$;

DROP TRIGGER IF EXISTS appointments_touch ON appointments;
CREATE TRIGGER appointments_touch BEFORE UPDATE ON appointments
    FOR EACH ROW EXECUTE FUNCTION tornado_sse_touch();
DROP TRIGGER IF EXISTS availabilities_touch ON availabilities;
CREATE TRIGGER availabilities_touch BEFORE UPDATE ON availabilities
    FOR EACH ROW EXECUTE FUNCTION tornado_sse_touch();

-- Distinct non-null union of two id arrays, in order of first appearance.
CREATE OR REPLACE FUNCTION tornado_sse_union(a bigint[], b bigint[]) RETURNS bigint[]
LANGUAGE sql IMMUTABLE AS $$
    SELECT coalesce(array_agg(x ORDER BY o), '{}')
    FROM (SELECT x, min(o) AS o
          FROM unnest(coalesce(a, '{}') || coalesce(b, '{}')) WITH ORDINALITY AS u(x, o)
          WHERE x IS NOT NULL GROUP BY x) s
$$;

CREATE OR REPLACE FUNCTION tornado_sse_appointment_event() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    topic text;
    row_json jsonb;
    staff bigint[];
    products bigint[];
BEGIN
    IF TG_OP = 'INSERT' THEN
        topic := 'appointment.created';
        row_json := tornado_sse_appointment_json(NEW);
    ELSIF TG_OP = 'DELETE' THEN
        topic := 'appointment.deleted';
        row_json := tornado_sse_appointment_json(OLD);
    ELSE
        IF NEW IS NOT DISTINCT FROM OLD THEN
            RETURN NULL;  -- an UPDATE that changes nothing writes no event
        END IF;
        -- Precedence: trashed and cancelled win over rescheduled, which wins
        -- over updated.
        IF NEW.status = 'trash' AND OLD.status IS DISTINCT FROM 'trash' THEN
            topic := 'appointment.trashed';
        ELSIF NEW.status = 'cancelled' AND OLD.status IS DISTINCT FROM 'cancelled' THEN
            topic := 'appointment.cancelled';
        ELSIF NEW.start_at IS DISTINCT FROM OLD.start_at OR NEW.end_at IS DISTINCT FROM OLD.end_at THEN
            topic := 'appointment.rescheduled';
        ELSE
            topic := 'appointment.updated';
        END IF;
        row_json := tornado_sse_appointment_json(NEW);
    END IF;

    -- The audience: before and after. Only an UPDATE has two sides to merge
    -- (tornado_sse_union is the trigger's most expensive call, bench/RESULTS.md).
    IF TG_OP = 'INSERT' THEN
        staff := NEW.staff_ids;
        products := CASE WHEN NEW.product_id IS NULL THEN '{}' ELSE ARRAY[NEW.product_id] END;
    ELSIF TG_OP = 'DELETE' THEN
        staff := OLD.staff_ids;
        products := CASE WHEN OLD.product_id IS NULL THEN '{}' ELSE ARRAY[OLD.product_id] END;
    ELSE
        staff := tornado_sse_union(OLD.staff_ids, NEW.staff_ids);
        products := tornado_sse_union(ARRAY[OLD.product_id], ARRAY[NEW.product_id]);
    END IF;
    INSERT INTO sse_events (topic, resource, resource_id, payload, staff_ids, product_ids)
    VALUES (topic, 'appointment', (row_json->>'id')::bigint, row_json, staff, products);
    RETURN NULL;
END $$;

DROP TRIGGER IF EXISTS appointments_events ON appointments;
CREATE TRIGGER appointments_events AFTER INSERT OR UPDATE OR DELETE ON appointments
    FOR EACH ROW EXECUTE FUNCTION tornado_sse_appointment_event();

CREATE OR REPLACE FUNCTION tornado_sse_availability_event() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    topic text;
    row_json jsonb;
    staff bigint[];
    products bigint[];
BEGIN
    IF TG_OP = 'UPDATE' AND NEW IS NOT DISTINCT FROM OLD THEN
        RETURN NULL;
    END IF;
    topic := 'availability.' || CASE TG_OP WHEN 'INSERT' THEN 'created'
                                           WHEN 'UPDATE' THEN 'updated'
                                           ELSE 'deleted' END;
    row_json := tornado_sse_availability_json(CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END);
    -- A rule scoped to a staff member or product concerns that one; a global
    -- rule (or one that changes scope to global) concerns everyone: NULL.
    IF (TG_OP <> 'INSERT' AND OLD.scope <> 'staff') OR (TG_OP <> 'DELETE' AND NEW.scope <> 'staff') THEN
        staff := NULL;
    ELSE
        staff := tornado_sse_union(CASE WHEN TG_OP <> 'INSERT' THEN ARRAY[OLD.staff_id] END,
                                   CASE WHEN TG_OP <> 'DELETE' THEN ARRAY[NEW.staff_id] END);
    END IF;
    IF (TG_OP <> 'INSERT' AND OLD.scope <> 'product') OR (TG_OP <> 'DELETE' AND NEW.scope <> 'product') THEN
        products := NULL;
    ELSE
        products := tornado_sse_union(CASE WHEN TG_OP <> 'INSERT' THEN ARRAY[OLD.product_id] END,
                                      CASE WHEN TG_OP <> 'DELETE' THEN ARRAY[NEW.product_id] END);
    END IF;
    INSERT INTO sse_events (topic, resource, resource_id, payload, staff_ids, product_ids)
    VALUES (topic, 'availability', (row_json->>'id')::bigint, row_json, staff, products);
    RETURN NULL;
END $$;

DROP TRIGGER IF EXISTS availabilities_events ON availabilities;
CREATE TRIGGER availabilities_events AFTER INSERT OR UPDATE OR DELETE ON availabilities
    FOR EACH ROW EXECUTE FUNCTION tornado_sse_availability_event();

-- Retention: delete a prefix of the log (ids up to the newest event older
-- than the cut-off), and remember how far, so resumes from before it reset.
CREATE OR REPLACE FUNCTION tornado_sse_prune(keep interval) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    upto bigint;
    deleted bigint;
BEGIN
    SELECT max(id) INTO upto FROM sse_events WHERE created_at < now() - keep;
    IF upto IS NULL THEN
        RETURN 0;
    END IF;
    DELETE FROM sse_events WHERE id <= upto;
    GET DIAGNOSTICS deleted = ROW_COUNT;
    UPDATE sse_retention SET pruned_through = greatest(pruned_through, upto);
    RETURN deleted;
END $$;

-- The periodic prune, run by whichever server claims it first: every server
-- calls this on a timer, the UPDATE lets exactly one per period through, so
-- retention runs in one place however many servers share the database.
-- Returns the number of events deleted, or NULL when not due.
CREATE OR REPLACE FUNCTION tornado_sse_prune_due(keep interval, every interval) RETURNS bigint
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE sse_retention SET last_run_at = now() WHERE last_run_at <= now() - every;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    RETURN tornado_sse_prune(keep);
END $$;
