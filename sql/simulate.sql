-- Change simulation for `python run.py simulate` (SPEC §6): a pgbench custom
-- script, one change per transaction, as a shop, the staff and the admins
-- would make them. Needs PostgreSQL's pgbench 14 or newer (permute()).
-- By hand (step must start at 0):
--   pgbench -n -f sql/simulate.sql -D step=0 -R 5 -T 60 -c 1 'postgresql://...'
--
-- The kind of change is dealt from a shuffled deck of 20 cards, a new
-- shuffle (from the run's random seed) for every 20 steps: the order is
-- random, yet every block of 20 changes (counted from the start) holds
-- every kind, in these proportions:
--   book 3, move 4, cancel 2, trash 1, edit 2, reassign staff 2, delete 3,
--   add a rule 1, edit a rule 1, remove a rule 1.
-- Bookings and deletions balance (and so do added and removed rules), so the
-- tables neither grow without bound nor empty: deletion is skipped while 20
-- appointments or 3 rules or fewer are left (an empty database fills up to
-- that first) and takes cancelled and trashed appointments and simulated
-- rules first. Each UPDATE or DELETE picks its row with a sub-select; when no
-- row qualifies it changes nothing, which is not an error. Each change is
-- chosen so that it really changes its row (a no-op writes no event).
-- ORDER BY random() LIMIT 1 reads the whole table: about a millisecond for
-- the few thousand rows a demo has.
--
-- Double bookings (sql/005 refuses them for every writer): booking, moving
-- and reassigning pick a slot (or an appointment) the staff member has
-- free. Only when there is none do they write at a random slot with
-- overlap_allowed = true and the note 'simulate: no free slot, overlap on
-- purpose', as an admin's "book anyway" would; a free move clears both. If
-- another writer takes the chosen slot between the choice and the write,
-- the write is repeated as such an overlap instead of failing (pgbench
-- would end on the error). These three changes are DO blocks, so the
-- script needs no new pgbench feature.

\set card permute(:step % 20, 20, hash(:step / 20))
\set step :step + 1
\set day random(0, 5)
\set hour random(9, 16)
\set quarter random(0, 3)
\set quarters random(2, 6)
\set product random(101, 103)
\set staff random(1, 4)
\set together random(1, 4)
\set customer random(1000, 1199)
\set order random(100000, 999999)
\set cents random(1000, 15000)
\set status random(1, 4)
\set turn random(0, 1)
\set scope random(1, 3)

\if :card < 3
-- Book: a new appointment in business hours this week, in a slot of that
-- day the staff member has free; when none is left, at a random slot as a
-- deliberate overlap (see "Double bookings" above).
DO $$
DECLARE
    len interval := :quarters * interval '15 minutes';
    day timestamptz := date_trunc('week', now()) + :day * interval '1 day';
    t timestamptz;
    forced boolean;
BEGIN
    SELECT c INTO t
    FROM generate_series(day + interval '9 hours', day + interval '18 hours' - len, interval '15 minutes') AS c
    WHERE NOT EXISTS (SELECT 1 FROM appointment_staff_times AS s
                      WHERE s.staff_id = :staff AND s.during && tstzrange(c, c + len))
    ORDER BY random() LIMIT 1;
    forced := t IS NULL;
    t := coalesce(t, day + :hour * interval '1 hour' + :quarter * interval '15 minutes');
    LOOP
        BEGIN
            INSERT INTO appointments (product_id, staff_ids, customer_id, order_id, order_item_id,
                                      start_at, end_at, status, cost, overlap_allowed, notes)
            VALUES (:product, ARRAY[:staff]::bigint[], :customer, :order, :order * 10 + 1, t, t + len,
                    (ARRAY['unpaid', 'pending-confirmation', 'confirmed', 'paid'])[:status], :cents / 100.0,
                    forced, CASE WHEN forced THEN 'simulate: no free slot, overlap on purpose' END);
            EXIT;
        EXCEPTION WHEN exclusion_violation THEN
            forced := true;  -- another writer took the slot meanwhile
        END;
    END LOOP;
END $$;
\elif :card < 7
-- Move: another slot of a day this week, same length, one the staff have
-- free; when none is left, a random one as a deliberate overlap.
DO $$
DECLARE
    day timestamptz := date_trunc('week', now()) + :day * interval '1 day';
    a record;
    t timestamptz;
    forced boolean;
BEGIN
    SELECT id, staff_ids, start_at, end_at - start_at AS len, notes INTO a FROM appointments
    WHERE status NOT IN ('cancelled', 'trash') AND NOT all_day ORDER BY random() LIMIT 1;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    SELECT c INTO t
    FROM generate_series(day + interval '9 hours', day + interval '18 hours' - a.len, interval '15 minutes') AS c
    WHERE c <> a.start_at
      AND NOT EXISTS (SELECT 1 FROM appointment_staff_times AS s
                      WHERE s.staff_id = ANY(a.staff_ids) AND s.appointment_id <> a.id
                        AND s.during && tstzrange(c, c + a.len))
    ORDER BY random() LIMIT 1;
    forced := t IS NULL;
    t := coalesce(t, day + :hour * interval '1 hour' + :quarter * interval '15 minutes');
    IF t = a.start_at THEN
        t := t + interval '15 minutes';
    END IF;
    LOOP
        BEGIN
            UPDATE appointments
            SET start_at = t, end_at = t + a.len, overlap_allowed = forced,
                notes = CASE WHEN forced THEN 'simulate: no free slot, overlap on purpose'
                             WHEN notes = 'simulate: no free slot, overlap on purpose' THEN NULL
                             ELSE notes END
            WHERE id = a.id;
            EXIT;
        EXCEPTION WHEN exclusion_violation THEN
            forced := true;
        END;
    END LOOP;
END $$;
\elif :card < 9
-- Cancel.
UPDATE appointments SET status = 'cancelled'
WHERE id = (SELECT id FROM appointments WHERE status NOT IN ('cancelled', 'trash')
            ORDER BY random() LIMIT 1);
\elif :card < 10
-- Trash: cancelled ones first, as an admin tidying up would.
UPDATE appointments SET status = 'trash'
WHERE id = (SELECT id FROM appointments WHERE status <> 'trash'
            ORDER BY status = 'cancelled' DESC, random() LIMIT 1);
\elif :card < 12
-- Edit: the customer arrives (or not) and the price changes.
UPDATE appointments
SET customer_status = (ARRAY['expected', 'arrived', 'no-show'])[
        (array_position(ARRAY['expected', 'arrived', 'no-show'], customer_status) + :turn) % 3 + 1],
    cost = :cents / 100.0
WHERE id = (SELECT id FROM appointments WHERE status <> 'trash' ORDER BY random() LIMIT 1);
\elif :card < 14
-- Reassign: to another staff member, one time in four to two of them, an
-- appointment the new crew has time for; when none of twenty random ones
-- is, the first of them as a deliberate overlap.
DO $$
DECLARE
    crew bigint[] := (CASE WHEN :together = 1 THEN ARRAY[:staff, :staff % 4 + 1]
                           ELSE ARRAY[:staff] END)::bigint[];
    candidates bigint[];
    pick bigint;
    forced boolean;
BEGIN
    -- Twenty random candidates, the first the crew has time for: the
    -- free-time test runs for those only, not for the whole table.
    SELECT array_agg(id) INTO candidates
    FROM (SELECT id FROM appointments WHERE status NOT IN ('cancelled', 'trash') AND staff_ids <> crew
          ORDER BY random() LIMIT 20) AS c;
    IF candidates IS NULL THEN
        RETURN;
    END IF;
    SELECT a.id INTO pick FROM unnest(candidates) WITH ORDINALITY AS c(id, n)
    JOIN appointments AS a ON a.id = c.id
    WHERE NOT EXISTS (SELECT 1 FROM appointment_staff_times AS s
                      WHERE s.staff_id = ANY(crew) AND s.appointment_id <> a.id
                        AND s.during && tstzrange(a.start_at, a.end_at))
    ORDER BY c.n LIMIT 1;
    forced := pick IS NULL;
    pick := coalesce(pick, candidates[1]);
    LOOP
        BEGIN
            UPDATE appointments
            SET staff_ids = crew, overlap_allowed = forced,
                notes = CASE WHEN forced THEN 'simulate: no free slot, overlap on purpose'
                             WHEN notes = 'simulate: no free slot, overlap on purpose' THEN NULL
                             ELSE notes END
            WHERE id = pick;
            EXIT;
        EXCEPTION WHEN exclusion_violation THEN
            forced := true;
        END;
    END LOOP;
END $$;
\elif :card < 17
-- Delete.
DELETE FROM appointments
WHERE id = (SELECT id FROM appointments
            ORDER BY status IN ('cancelled', 'trash') DESC, random() LIMIT 1)
  AND (SELECT count(*) FROM appointments) > 20;
\elif :card < 18
-- Add a rule: a one-day closure, for everyone, a product or a staff member.
INSERT INTO availabilities (scope, product_id, staff_id, title, range_type,
                            from_range, to_range, appointable, priority)
SELECT scope, CASE scope WHEN 'product' THEN :product END, CASE scope WHEN 'staff' THEN :staff END,
       'Closed (simulation)', 'custom', to_char(d, 'YYYY-MM-DD'), to_char(d, 'YYYY-MM-DD'), false, 5
FROM (SELECT (ARRAY['global', 'product', 'staff'])[:scope] AS scope,
             date_trunc('week', now()) + :day * interval '1 day' AS d) AS rule;
\elif :card < 19
-- Edit a rule.
UPDATE availabilities SET priority = priority % 20 + 1
WHERE id = (SELECT id FROM availabilities ORDER BY random() LIMIT 1);
\else
-- Remove a rule.
DELETE FROM availabilities
WHERE id = (SELECT id FROM availabilities
            ORDER BY title = 'Closed (simulation)' DESC, random() LIMIT 1)
  AND (SELECT count(*) FROM availabilities) > 3;
\endif
