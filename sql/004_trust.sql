-- tornado_sse 004: notifications that prove their origin, commit ordering no
-- other role can stall, and who made each event (issue 19; SPEC §1, §8).
-- Idempotent, like 001-003: every statement can run again, also after 001
-- and 002 have run again (this file then puts its versions back).
--
-- WHY A PROOF IN THE NOTIFICATION
--   PostgreSQL has no privilege on NOTIFY: any role that can log in can send
--   any payload on sse_events. Under 002 a payload shaped like an event with
--   the next id was published as that event, and the real event with that id
--   was then skipped by every listener (its id was "already seen"). Here
--   every notification the trigger sends starts with an HMAC-SHA256 of the
--   rest, under a key in tornado_sse_notify_key, a table only its owner can
--   read. The listener (which connects as that owner) reads the key once per
--   connection and publishes a payload as an event only when the MAC checks;
--   anything else is a wake-up: it reads by cursor and never moves its
--   cursor on the payload's word.
--   The HMAC is built from PostgreSQL's own sha256() (11+), no extension:
--     mac = sha256(outer_pad || sha256(inner_pad || body))        (RFC 2104)
--   where inner_pad / outer_pad are the 32-byte key zero-padded to SHA-256's
--   64-byte block, XOR 0x36 / 0x5c, computed once when the key is made.
--   Python's hmac.new(key, body, "sha256") gives the same digest.
--
-- NOTIFY PAYLOAD (channel sse_events; replaces 002's JSON form)
--   <mac: 64 lowercase hex> SP <body>
--   body, when the whole payload fits in 7,900 bytes (PostgreSQL's limit is
--   8,000), is eight fields separated by single spaces, the last one the
--   event's JSON envelope exactly as a cursor read builds it (SPEC §2):
--     <id> <created_at> <staff_ids> <product_ids> <topic> <resource> <resource_id> <envelope>
--     42 1733044800.123456 5,6 456 appointment.created appointment 123 {"id":42,...,"actor":{...}}
--   created_at is extract(epoch FROM created_at)::float8; staff_ids and
--   product_ids (the audience, SPEC §4) are comma-separated ids, empty for
--   an empty array and "-" for NULL (everyone). The listener only slices:
--   no JSON decode on its hot path (issue 21). Otherwise the body is the
--   event id alone ("42"), still signed: the listener reads it by cursor.
--
-- WHAT A LISTENING ROLE CAN SEE
--   LISTEN needs no privilege either: any login role can read every event's
--   envelope, audience and actor from the notifications, as under 002 (and
--   the event id alone under 001). The MAC does not hide anything; it only
--   stops forgeries. Replaying a captured genuine payload sends an event
--   that was really committed, with its real id: a listener already past
--   that id skips it. (Restarting the id sequence, as the tests do, makes
--   old captured payloads valid again: rotate the key when you do that.)
--
-- KEY ROTATION
--   SELECT tornado_sse_rotate_notify_key();  -- as the owner
--   Until a listener re-reads the key (at reconnect, or at most once per
--   --listener check interval after it sees a payload that fails the
--   check) the genuine notifications fail it: they are counted as
--   unproven and read by cursor, so nothing is lost, only the no-query
--   path is.
--
-- WHY A TABLE LOCK FOR THE COMMIT ORDER
--   001 drew event ids under pg_advisory_xact_lock(7624735193842). Advisory
--   locks take no privilege: "SELECT pg_advisory_lock(7624735193842)" by any
--   role stalled every event-writing commit until that session let go. The
--   lock is now an EXCLUSIVE lock on tornado_sse_commit_order, a table with
--   no rows that nobody but its owner may touch (LOCK TABLE checks the
--   privilege before it waits), taken in a SECURITY DEFINER function whose
--   EXECUTE is revoked from PUBLIC. It is held exactly as before: from
--   pre-commit (the deferred event triggers of 002) to commit.
--   The event trigger functions run as their owner (SECURITY DEFINER, with
--   a fixed search_path), so a role that may change appointments writes
--   its events without rights on sse_events, the lock or the key.
--
-- WHO MADE THE EVENT (SPEC §8)
--   sse_events.actor: the JSON object the writing transaction put in the
--   setting tornado_sse.actor (SET LOCAL / set_config(..., true); the API
--   does, e.g. {"role":"admin","sub":"front-desk"}), else
--   {"db_user": <session_user>}. It is what the writer says, not a proof:
--   any role can set the setting. A value that is not a JSON object of at
--   most 1,000 bytes is ignored (the write never fails because of it).
--   Events written before this migration have actor NULL.

-- -- the key ---------------------------------------------------------------
CREATE TABLE IF NOT EXISTS tornado_sse_notify_key (
    singleton  boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    key        bytea NOT NULL CHECK (octet_length(key) = 32),
    inner_pad  bytea NOT NULL CHECK (octet_length(inner_pad) = 64),
    outer_pad  bytea NOT NULL CHECK (octet_length(outer_pad) = 64),
    created_at timestamptz NOT NULL DEFAULT now()
);
REVOKE ALL ON tornado_sse_notify_key FROM PUBLIC;

-- A new random key (two v4 UUIDs from the server's strong random source:
-- 244 random bits), with its HMAC pads. Never printed or logged.
CREATE OR REPLACE FUNCTION tornado_sse_rotate_notify_key() RETURNS void
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    k bytea := uuid_send(gen_random_uuid()) || uuid_send(gen_random_uuid());
    ipad bytea := decode(repeat('36', 64), 'hex');
    opad bytea := decode(repeat('5c', 64), 'hex');
BEGIN
    FOR n IN 0..31 LOOP
        ipad := set_byte(ipad, n, get_byte(k, n) # 54);   -- 0x36
        opad := set_byte(opad, n, get_byte(k, n) # 92);   -- 0x5c
    END LOOP;
    INSERT INTO tornado_sse_notify_key (key, inner_pad, outer_pad) VALUES (k, ipad, opad)
    ON CONFLICT (singleton) DO UPDATE
        SET key = EXCLUDED.key, inner_pad = EXCLUDED.inner_pad,
            outer_pad = EXCLUDED.outer_pad, created_at = now();
END $$;
REVOKE EXECUTE ON FUNCTION tornado_sse_rotate_notify_key() FROM PUBLIC;

-- The first run makes the key; a re-run keeps it.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM tornado_sse_notify_key) THEN
        PERFORM tornado_sse_rotate_notify_key();
    END IF;
END $$;

-- -- the commit-order lock -----------------------------------------------------
CREATE TABLE IF NOT EXISTS tornado_sse_commit_order ();
REVOKE ALL ON tornado_sse_commit_order FROM PUBLIC;
COMMENT ON TABLE tornado_sse_commit_order IS
    'No rows: tornado_sse_next_event_id() takes its EXCLUSIVE lock so event ids become visible in '
    'commit order. Only its owner may lock it (004).';

CREATE OR REPLACE FUNCTION tornado_sse_next_event_id() RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER AS $$
BEGIN
    LOCK TABLE tornado_sse_commit_order IN EXCLUSIVE MODE;
    RETURN nextval('sse_events_id_seq');
END $$;
REVOKE EXECUTE ON FUNCTION tornado_sse_next_event_id() FROM PUBLIC;
COMMENT ON FUNCTION tornado_sse_next_event_id() IS
    'Draws an event id under an EXCLUSIVE lock on tornado_sse_commit_order (only its owner can take it), '
    'so ids become visible in commit order. Called by the commit-time event triggers (002), so the lock '
    'is held from pre-commit to commit.';

-- -- the actor -----------------------------------------------------------------
CREATE OR REPLACE FUNCTION tornado_sse_actor() RETURNS jsonb
LANGUAGE plpgsql STABLE AS $$
DECLARE
    claimed text := current_setting('tornado_sse.actor', true);
    actor jsonb;
BEGIN
    -- NULL: never set in this session; '': set earlier, reverted since.
    IF claimed <> '' AND octet_length(claimed) <= 1000 THEN
        BEGIN
            actor := claimed::jsonb;
        EXCEPTION WHEN invalid_text_representation THEN
            actor := NULL;  -- not JSON: ignored, the write goes on
        END;
        IF jsonb_typeof(actor) = 'object' THEN
            RETURN actor;
        END IF;
    END IF;
    RETURN jsonb_build_object('db_user', session_user);
END $$;

-- Added without a default first, so rows from before stay NULL (unknown)
-- instead of all getting the migrating role.
ALTER TABLE sse_events ADD COLUMN IF NOT EXISTS actor jsonb;
ALTER TABLE sse_events ALTER COLUMN actor SET DEFAULT tornado_sse_actor();

-- -- the signed notification --------------------------------------------------
CREATE OR REPLACE FUNCTION tornado_sse_notify() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER AS $$
DECLARE
    body text;
    k record;
BEGIN
    body := NEW.id || ' ' || extract(epoch FROM NEW.created_at)::float8
        || ' ' || coalesce(array_to_string(NEW.staff_ids, ','), '-')
        || ' ' || coalesce(array_to_string(NEW.product_ids, ','), '-')
        || ' ' || NEW.topic || ' ' || NEW.resource || ' ' || NEW.resource_id
        || ' {"id":' || NEW.id
        || ',"topic":' || to_json(NEW.topic)::text
        || ',"resource":' || to_json(NEW.resource)::text
        || ',"resource_id":' || NEW.resource_id
        || ',"payload":' || NEW.payload::text
        || ',"ts":' || NEW.ts
        || ',"actor":' || coalesce(NEW.actor::text, 'null')
        || '}';
    IF octet_length(body) >= 7900 - 65 THEN
        body := NEW.id::text;  -- too large: the listener reads it by cursor
    END IF;
    SELECT inner_pad, outer_pad INTO k FROM tornado_sse_notify_key;
    -- No key (deleted by hand): an unsigned wake-up; listeners read by cursor.
    PERFORM pg_notify('sse_events', coalesce(
        encode(sha256(k.outer_pad || sha256(k.inner_pad || convert_to(body, 'UTF8'))), 'hex'),
        'unsigned') || ' ' || body);
    RETURN NULL;
END $$;
REVOKE EXECUTE ON FUNCTION tornado_sse_notify() FROM PUBLIC;

-- Owner's rights and a fixed search_path (so no role can put its own
-- function or table in front of ours) for everything the triggers run as
-- the owner. The event functions are 001's, unchanged but for this.
DO $$
DECLARE
    path text := format('pg_catalog, %I, pg_temp', current_schema());
    fn text;
BEGIN
    FOREACH fn IN ARRAY ARRAY['tornado_sse_appointment_event()', 'tornado_sse_availability_event()',
                              'tornado_sse_notify()', 'tornado_sse_next_event_id()'] LOOP
        EXECUTE format('ALTER FUNCTION %s SECURITY DEFINER SET search_path = %s', fn, path);
    END LOOP;
END $$;
