-- Demo data: one realistic week of a small practice's calendar, so that a
-- first `python run.py` shows a full calendar to watch change.
--
-- Not a migration (no number): tornado_sse.seed.seed_if_empty() applies it to
-- a database whose appointments and availabilities are both empty. By hand:
--   python run.py psql -- -f sql/seed.sql
--
-- Dates are relative to now(): the current week (from Monday, in the
-- session's time zone), business hours. Everything else is derived from the
-- slot's position, not random(), so every seeded database looks the same.
--
-- Staff members 1-4; products 101 (haircut, 45 min), 102 (massage, 60 min),
-- 103 (consultation, 90 min); customers 1000-1153. Their names (the
-- directory, sql/003_directory.sql) come first, below. Appointments that ended are complete, paid or
-- cancelled, with customers who arrived or did not show; later ones are in
-- every state a shop produces (unpaid, pending confirmation, in a cart,
-- confirmed, paid, cancelled, trashed).

-- The directory: names for the ids below. ON CONFLICT: a database whose
-- directory the shop already filled keeps its own names.
INSERT INTO staff (id, name)
VALUES (1, 'Jonas'), (2, 'Mia'), (3, 'Lena'), (4, 'Omar')
ON CONFLICT (id) DO NOTHING;

INSERT INTO products (id, name, duration_minutes, price)
VALUES (101, 'Haircut', 45, 35.00), (102, 'Massage', 60, 65.00), (103, 'Consultation', 90, 20.00)
ON CONFLICT (id) DO NOTHING;

-- 154 customers, each a distinct first and last name: the first name walks
-- the first list, the last name steps through the second by a stride that
-- gives every (first, last) pair once for these ids. Each has an e-mail
-- address (first.last@example.com, a domain reserved for examples) and a
-- phone number in Berlin's 555 range (fictitious, like a film's).
INSERT INTO customers (id, name, phone, email)
SELECT 1000 + i, first || ' ' || last,
       '+49 30 555 ' || lpad(((i * 7919) % 10000)::text, 4, '0'),
       lower(first || '.' || last) || '@example.com'
FROM (
    SELECT i,
           (ARRAY['Anna', 'Ben', 'Clara', 'David', 'Elif', 'Felix', 'Greta', 'Hannes', 'Ida', 'Jan',
                  'Katrin', 'Lukas', 'Marta', 'Noah', 'Olga', 'Paul', 'Rosa', 'Samir', 'Tilda', 'Viktor'])
               [i % 20 + 1] AS first,
           (ARRAY['Berg', 'Nowak', 'Schulz', 'Okafor', 'Lindgren', 'Moreau', 'Yilmaz', 'Fischer',
                  'Costa', 'Novak', 'Hansen', 'Kowalski', 'Rossi', 'Weber', 'Dubois', 'Jensen',
                  'Popescu', 'Meyer', 'Horvat', 'Svensson', 'Baker', 'Ivanova', 'Keller'])
               [(i / 20 + 7 * i) % 23 + 1] AS last
    FROM generate_series(0, 153) AS i
) AS names
ON CONFLICT (id) DO NOTHING;

-- 56 appointments: Monday to Friday, staff 1-4, three slots a day each
-- (from 09:00, 12:00 and 15:00 plus 0-45 min), never overlapping one staff
-- member's own. In four slots staff 1 and 2 serve one customer together
-- (staff 2's own appointment in that slot is left out).
WITH slot AS (
    SELECT d, s, k,
           d * 12 + (s - 1) * 3 + k AS n,
           101 + (d + s + k) % 3 AS product_id,
           (d + k) % 4 = 0 AS shared,
           date_trunc('week', now()) + d * interval '1 day'
               + (9 + 3 * k) * interval '1 hour'
               + ((d * s + k) % 4) * interval '15 minutes' AS start_at
    FROM generate_series(0, 4) AS d, generate_series(1, 4) AS s, generate_series(0, 2) AS k
), timed AS (
    SELECT slot.*,
           start_at + CASE product_id WHEN 101 THEN interval '45 minutes'
                                      WHEN 102 THEN interval '60 minutes'
                                      ELSE interval '90 minutes' END AS end_at
    FROM slot
    WHERE NOT (shared AND s = 2)
), stated AS (
    SELECT timed.*,
           CASE WHEN end_at < now() THEN
                    CASE n % 10 WHEN 0 THEN 'cancelled' WHEN 1 THEN 'paid' ELSE 'complete' END
                ELSE
                    CASE n % 10 WHEN 0 THEN 'unpaid' WHEN 1 THEN 'pending-confirmation'
                                WHEN 2 THEN 'in-cart' WHEN 3 THEN 'paid' WHEN 4 THEN 'cancelled'
                                WHEN 5 THEN 'trash' ELSE 'confirmed' END
           END AS status
    FROM timed
)
INSERT INTO appointments (product_id, staff_ids, customer_id, order_id, order_item_id,
                          start_at, end_at, all_day, status, customer_status, cost)
SELECT product_id,
       CASE WHEN shared AND s = 1 THEN ARRAY[1, 2] ELSE ARRAY[s] END::bigint[],
       1000 + (n * 37) % 150,
       CASE WHEN status = 'in-cart' THEN NULL ELSE 70000 + n END,
       CASE WHEN status = 'in-cart' THEN NULL ELSE 700000 + n * 10 + 1 END,
       start_at, end_at, false, status,
       CASE WHEN end_at >= now() OR status = 'cancelled' THEN 'expected'
            WHEN n % 7 = 3 THEN 'no-show'
            ELSE 'arrived' END,
       CASE WHEN n % 11 = 0 THEN 0  -- complimentary
            ELSE CASE product_id WHEN 101 THEN 35.00 WHEN 102 THEN 65.00 ELSE 20.00 END
                 + ((d * 7 + s * 3 + k) % 5) * 2.50
                 + CASE WHEN shared AND s = 1 THEN 65.00 ELSE 0 END
       END
FROM stated
ORDER BY start_at, s;

-- Four more: two all-day bookings (one not yet assigned to anyone) and two
-- on Saturday morning, one of them with two staff members.
INSERT INTO appointments (product_id, staff_ids, customer_id, order_id, order_item_id,
                          start_at, end_at, all_day, status, customer_status, cost)
SELECT product_id, staff_ids::bigint[], customer_id, order_id, order_item_id,
       date_trunc('week', now()) + start_offset,
       date_trunc('week', now()) + start_offset + length,
       all_day, status, 'expected', cost
FROM (VALUES
    (103, '{}', 1150, 70100, 701001, interval '3 days', interval '1 day', true, 'confirmed', 120.00),
    (102, '{4}', 1151, 70101, 701011, interval '5 days', interval '1 day', true, 'pending-confirmation', 240.00),
    (101, '{1}', 1152, 70102, 701021, interval '5 days 10 hours', interval '45 minutes', false, 'confirmed', 35.00),
    (102, '{2,3}', 1153, 70103, 701031, interval '5 days 11 hours', interval '60 minutes', false, 'paid', 130.00)
) AS extra (product_id, staff_ids, customer_id, order_id, order_item_id,
            start_offset, length, all_day, status, cost);

-- Availability rules: global opening hours and closures, a staff member's
-- holiday next week, and a product bookable on Wednesday afternoons only.
INSERT INTO availabilities (scope, product_id, staff_id, title, range_type,
                            from_range, to_range, appointable, priority, ordering, rrule)
VALUES
    ('global', NULL, NULL, 'Opening hours', 'time', '09:00', '18:00', true, 10, 0, NULL),
    ('global', NULL, NULL, 'Sundays off', 'days', '7', '7', false, 5, 1, NULL),
    ('global', NULL, NULL, 'Christmas Day', 'rrule', '2024-12-25', '2024-12-25', false, 1, 2,
     'FREQ=YEARLY;BYMONTH=12;BYMONTHDAY=25'),
    ('staff', NULL, 3, 'Holiday', 'custom',
     to_char(date_trunc('week', now()) + interval '7 days', 'YYYY-MM-DD'),
     to_char(date_trunc('week', now()) + interval '9 days', 'YYYY-MM-DD'), false, 5, 3, NULL),
    ('product', 103, NULL, 'Consultations on Wednesday afternoons', 'time:3', '13:00', '18:00',
     true, 8, 4, NULL);
