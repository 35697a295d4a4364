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
-- Book: a new appointment in business hours this week.
INSERT INTO appointments (product_id, staff_ids, customer_id, order_id, order_item_id,
                          start_at, end_at, status, cost)
SELECT :product, ARRAY[:staff]::bigint[], :customer, :order, :order * 10 + 1,
       t, t + :quarters * interval '15 minutes',
       (ARRAY['unpaid', 'pending-confirmation', 'confirmed', 'paid'])[:status], :cents / 100.0
FROM (SELECT date_trunc('week', now()) + :day * interval '1 day' + :hour * interval '1 hour'
             + :quarter * interval '15 minutes' AS t) AS slot;
\elif :card < 7
-- Move: another slot this week, same length.
WITH slot AS (
    SELECT date_trunc('week', now()) + :day * interval '1 day' + :hour * interval '1 hour'
           + :quarter * interval '15 minutes' AS t
), pick AS (
    SELECT a.id FROM appointments AS a, slot
    WHERE a.status NOT IN ('cancelled', 'trash') AND NOT a.all_day AND a.start_at <> slot.t
    ORDER BY random() LIMIT 1
)
UPDATE appointments AS a SET start_at = slot.t, end_at = slot.t + (a.end_at - a.start_at)
FROM slot, pick WHERE a.id = pick.id;
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
-- Reassign: to another staff member, one time in four to two of them.
WITH crew AS (
    SELECT (CASE WHEN :together = 1 THEN ARRAY[:staff, :staff % 4 + 1]
                 ELSE ARRAY[:staff] END)::bigint[] AS ids
), pick AS (
    SELECT a.id FROM appointments AS a, crew
    WHERE a.status NOT IN ('cancelled', 'trash') AND a.staff_ids <> crew.ids
    ORDER BY random() LIMIT 1
)
UPDATE appointments AS a SET staff_ids = crew.ids FROM crew, pick WHERE a.id = pick.id;
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
