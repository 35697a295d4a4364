// @ts-check
/*
 * TsseAvailability: which time the availability rules close, evaluated in
 * the page so that the week and the staff-by-staff day can draw it (issue
 * 20). Pure: rules in, intervals out; no DOM, no requests, tested on its own
 * in real Chromium (tests/test_calendar_writes.py).
 *
 * Rules are WooCommerce Appointments rules (SPEC §1 `availabilities`), read
 * in the page's time zone, each covering some minutes of a day:
 *   custom            from/to 'YYYY-MM-DD', both days included
 *   custom:daterange,
 *   time:range        from/to 'YYYY-MM-DD HH:MM' (or 'T'), [from, to)
 *   time              from/to 'HH:MM' every day (to <= from: past midnight)
 *   time:1..time:7    the same on one weekday (1 = Monday)
 *   days              weekdays from..to (1 = Monday; 6..2 wraps)
 *   months            months from..to (1..12; wraps)
 *   weeks             ISO weeks from..to (wraps)
 *   rrule             the days an RRULE (FREQ DAILY/WEEKLY/MONTHLY/YEARLY,
 *                     INTERVAL, UNTIL, BYMONTH, BYMONTHDAY, BYDAY) yields
 *                     from DTSTART = from_range, each lasting through
 *                     to_range's offset
 * Anything else covers nothing (and is listed by unknownRules()).
 *
 * The model is the server's (tornado_sse/availability.py, which answers
 * 409 rest_unavailable), so the shading and the refusals agree:
 * - Rules form layers: global, the product's, each staff member's. A time
 *   is open only when every layer over it is open: a staff member's holiday
 *   closes an open day; a staff rule cannot open the shop's closed Sunday.
 * - Within a layer the covering rule with the lowest `priority` number
 *   decides (then `ordering`, then id): appointable opens, otherwise closes.
 *   Where no rule of a layer covers the time, the layer is open, unless it
 *   has appointable rules: then they are its opening hours and the rest is
 *   closed ("outside Opening hours").
 * The one known difference: the server reads wall-clock rules in the
 * database's time zone, the page in the browser's; a desk in another zone
 * than its database sees the shading shifted (the 409 still decides).
 */
(function (root) {
  'use strict';

  const DAY_MIN = 24 * 60;

  /**
   * @typedef {{id: number, scope: string, product_id: number | null, staff_id: number | null,
   *   title: string | null, range_type: string, from_range: string | null, to_range: string | null,
   *   appointable: boolean, priority: number, ordering?: number, rrule?: string | null}} Rule
   * @typedef {{staffId?: number | null, productId?: number | null}} Context
   * @typedef {{start: Date, end: Date, rule: Rule, outside: boolean}} Closed
   */

  /** Minutes since midnight of 'HH:MM', or null. @param {string | null} s */
  function minutes(s) {
    const m = /^(\d{1,2}):(\d{2})$/.exec(s || '');
    if (!m || Number(m[1]) > 24 || Number(m[2]) > 59) return null;
    return Math.min(DAY_MIN, Number(m[1]) * 60 + Number(m[2]));
  }

  /** A local date from 'YYYY-MM-DD' (optionally ' HH:MM' or 'THH:MM'), or null. @param {string | null} s */
  function localDate(s) {
    const m = /^(\d{4})-(\d{2})-(\d{2})(?:[ T](\d{2}):(\d{2}))?/.exec(s || '');
    return m ? new Date(Number(m[1]), Number(m[2]) - 1, Number(m[3]), Number(m[4] || 0), Number(m[5] || 0)) : null;
  }

  /** 1 = Monday .. 7 = Sunday. @param {Date} d */
  const isoWeekday = (d) => (d.getDay() + 6) % 7 + 1;

  /** ISO 8601 week number. @param {Date} d */
  function isoWeek(d) {
    const t = new Date(Date.UTC(d.getFullYear(), d.getMonth(), d.getDate()));
    t.setUTCDate(t.getUTCDate() + 4 - (t.getUTCDay() || 7));
    const yearStart = Date.UTC(t.getUTCFullYear(), 0, 1);
    return Math.ceil(((t.getTime() - yearStart) / 86400000 + 1) / 7);
  }

  /** Whether n is in from..to, wrapping past the end (6..2 is 6, 7, 1, 2). @param {number} n @param {any} from @param {any} to */
  function inCycle(n, from, to) {
    const a = Number(from);
    const b = Number(to);
    if (!Number.isInteger(a) || !Number.isInteger(b) || String(from).trim() === '' || String(to).trim() === '') {
      return null;
    }
    return a <= b ? n >= a && n <= b : n >= a || n <= b;
  }

  const WEEKDAYS = {MO: 1, TU: 2, WE: 3, TH: 4, FR: 5, SA: 6, SU: 7};

  /** Days from a to b (local dates). @param {Date} a @param {Date} b */
  const daysBetween = (a, b) => Math.round((Date.UTC(b.getFullYear(), b.getMonth(), b.getDate())
    - Date.UTC(a.getFullYear(), a.getMonth(), a.getDate())) / 86400000);

  /**
   * Whether an occurrence of the rule's RRULE starts on `day`, or null when
   * it cannot be read (as the server reads it: see the module comment).
   * @param {Rule} rule @param {Date} day @returns {boolean | null}
   */
  function rruleHits(rule, day) {
    const start = localDate(rule.from_range);
    if (!start || !rule.rrule) return null;
    /** @type {Record<string, string>} */
    const parts = {};
    for (const part of rule.rrule.trim().replace(/^RRULE:/, '').split(';')) {
      const [k, v] = part.split('=');
      if (!k || v == null) return null;
      parts[k.toUpperCase()] = v.toUpperCase();
    }
    const freq = parts.FREQ;
    if (!['DAILY', 'WEEKLY', 'MONTHLY', 'YEARLY'].includes(freq)) return null;
    const interval = Math.max(1, Number(parts.INTERVAL || 1));
    const list = (/** @type {string} */ key) => (parts[key] ? parts[key].split(',').map(Number) : null);
    let months = list('BYMONTH');
    let monthDays = list('BYMONTHDAY');
    let weekdays = parts.BYDAY ? parts.BYDAY.split(',').map((d) => WEEKDAYS[/** @type {keyof WEEKDAYS} */ (d)]) : null;
    if (weekdays && weekdays.some((d) => d == null)) return null;
    if (!weekdays && freq === 'WEEKLY') weekdays = [isoWeekday(start)];
    if ((freq === 'MONTHLY' || freq === 'YEARLY') && !weekdays && !monthDays) monthDays = [start.getDate()];
    if (freq === 'YEARLY' && !months && monthDays && !weekdays) months = [start.getMonth() + 1];
    const until = parts.UNTIL ? localDate(parts.UNTIL.replace(/^(\d{4})(\d{2})(\d{2}).*$/, '$1-$2-$3')) : null;
    const startDay = new Date(start.getFullYear(), start.getMonth(), start.getDate());
    if (day < startDay || (until && day > until)) return false;
    let step;
    if (freq === 'DAILY') step = daysBetween(startDay, day);
    else if (freq === 'WEEKLY') {
      const monday = (/** @type {Date} */ d) => new Date(d.getFullYear(), d.getMonth(), d.getDate() - isoWeekday(d) + 1);
      step = Math.floor(daysBetween(monday(startDay), monday(day)) / 7);
    } else if (freq === 'MONTHLY') {
      step = (day.getFullYear() - start.getFullYear()) * 12 + day.getMonth() - start.getMonth();
    } else step = day.getFullYear() - start.getFullYear();
    if (step % interval) return false;
    if (months && !months.includes(day.getMonth() + 1)) return false;
    if (weekdays && !weekdays.includes(isoWeekday(day))) return false;
    if (monthDays) {
      const last = new Date(day.getFullYear(), day.getMonth() + 1, 0).getDate();
      if (!monthDays.includes(day.getDate()) && !monthDays.includes(day.getDate() - last - 1)) return false;
    }
    return true;
  }

  /**
   * The minutes of `day` (local midnight) that the rule covers, as
   * [from, to) pairs in 0..1440, or null for a rule this module cannot read.
   * @param {Rule} rule @param {Date} day @returns {[number, number][] | null}
   */
  function covers(rule, day) {
    const type = rule.range_type || '';
    const whole = /** @type {[number, number][]} */ ([[0, DAY_MIN]]);
    const weekday = /^time:([1-7])$/.exec(type);
    if (type === 'time' || weekday) {
      const from = minutes(rule.from_range);
      const to = minutes(rule.to_range);
      if (from == null || to == null) return null;
      const on = (/** @type {Date} */ d) => !weekday || isoWeekday(d) === Number(weekday[1]);
      const yesterday = new Date(day.getFullYear(), day.getMonth(), day.getDate() - 1);
      if (from < to || to === 0) return on(day) ? [[from, to === 0 ? DAY_MIN : to]] : [];
      if (from === to) return on(day) ? whole : [];
      // Overnight (22:00-06:00): the evening of its day, the morning after.
      /** @type {[number, number][]} */
      const out = [];
      if (on(yesterday)) out.push([0, to]);
      if (on(day)) out.push([from, DAY_MIN]);
      return out;
    }
    if (type === 'custom') {
      const from = localDate(rule.from_range);
      const to = localDate(rule.to_range);
      if (!from || !to) return null;
      return day >= from && day <= to ? whole : [];
    }
    if (type === 'custom:daterange' || type === 'time:range') {
      const from = localDate(rule.from_range);
      const to = localDate(rule.to_range);
      if (!from || !to) return null;
      const dayStart = day.getTime();
      const dayEnd = new Date(day.getFullYear(), day.getMonth(), day.getDate() + 1).getTime();
      const a = Math.max(from.getTime(), dayStart);
      const b = Math.min(to.getTime(), dayEnd);
      if (b <= a) return [];
      return [[Math.round((a - dayStart) / 60000), b === dayEnd ? DAY_MIN : Math.round((b - dayStart) / 60000)]];
    }
    /** @type {boolean | null} */
    let hit = null;
    if (type === 'days') hit = inCycle(isoWeekday(day), rule.from_range, rule.to_range);
    else if (type === 'months') hit = inCycle(day.getMonth() + 1, rule.from_range, rule.to_range);
    else if (type === 'weeks') hit = inCycle(isoWeek(day), rule.from_range, rule.to_range);
    else if (type === 'rrule') {
      // An occurrence lasts from its day through to_range's offset from from_range.
      const from = localDate(rule.from_range);
      const to = rule.to_range ? localDate(rule.to_range) : from;
      const span = from && to ? daysBetween(from, to) : -1;
      if (span < 0 || span > 365) return null;
      hit = false;
      for (let k = 0; k <= span && hit === false; k++) {
        hit = rruleHits(rule, new Date(day.getFullYear(), day.getMonth(), day.getDate() - k));
      }
    }
    if (hit == null) return null;
    return hit ? whole : [];
  }

  /** Within a layer, lower sorts first: the rule that decides. @param {Rule} a @param {Rule} b */
  function precedence(a, b) {
    return (a.priority ?? 10) - (b.priority ?? 10) || (a.ordering ?? 0) - (b.ordering ?? 0) || a.id - b.id;
  }

  /**
   * The layers over a booking (global, its product's, its staff member's),
   * each in decision order; rules this module cannot read are left out.
   * @param {Rule[]} rules @param {Context} ctx @returns {Rule[][]}
   */
  function layers(rules, ctx) {
    const readable = rules.filter((r) => covers(r, new Date(2000, 0, 1)) != null);
    const out = [readable.filter((r) => r.scope === 'global')];
    if (ctx.productId != null) out.push(readable.filter((r) => r.scope === 'product' && r.product_id === ctx.productId));
    if (ctx.staffId != null) out.push(readable.filter((r) => r.scope === 'staff' && r.staff_id === ctx.staffId));
    return out.map((layer) => layer.sort(precedence));
  }

  /**
   * The closed intervals between `from` and `to` (Dates) for `ctx`, each
   * with the rule that closes it (`outside`: closed for lying outside that
   * appointable rule), merged where one rule closes adjacent time.
   * @param {Rule[]} rules @param {Date} from @param {Date} to @param {Context} [ctx]
   * @returns {Closed[]}
   */
  function closed(rules, from, to, ctx = {}) {
    const stack = layers(rules, ctx);
    /** @type {Closed[]} */
    const out = [];
    for (let day = new Date(from.getFullYear(), from.getMonth(), from.getDate()); day < to;
      day = new Date(day.getFullYear(), day.getMonth(), day.getDate() + 1)) {
      const spans = stack.map((layer) => layer.map((rule) => ({rule, spans: covers(rule, day) || []})));
      const cuts = new Set([0, DAY_MIN]);
      for (const layer of spans) for (const {spans: s} of layer) for (const [a, b] of s) { cuts.add(a); cuts.add(b); }
      const sorted = [...cuts].sort((x, y) => x - y);
      for (let i = 0; i + 1 < sorted.length; i++) {
        const mid = (sorted[i] + sorted[i + 1]) / 2;
        /** @type {{rule: Rule, outside: boolean} | null} */
        let closing = null;
        for (const layer of spans) {
          const decider = layer.find(({spans: s}) => s.some(([a, b]) => a <= mid && mid < b));
          if (decider) {
            if (!decider.rule.appointable) { closing = {rule: decider.rule, outside: false}; break; }
            continue;
          }
          const opening = layer.find(({rule}) => rule.appointable);
          if (opening) { closing = {rule: opening.rule, outside: true}; break; }
        }
        if (!closing) continue;
        const start = new Date(day.getFullYear(), day.getMonth(), day.getDate(), 0, sorted[i]);
        const end = new Date(day.getFullYear(), day.getMonth(), day.getDate(), 0, sorted[i + 1]);
        const last = out[out.length - 1];
        if (last && last.rule === closing.rule && last.outside === closing.outside
          && last.end.getTime() === start.getTime()) last.end = end;
        else out.push({start, end, ...closing});
      }
    }
    return out
      .map((c) => ({...c, start: c.start < from ? from : c.start, end: c.end > to ? to : c.end}))
      .filter((c) => c.end > c.start);
  }

  /** Rules this module cannot read (they close nothing in the drawing). @param {Rule[]} rules */
  const unknownRules = (rules) => rules.filter((r) => covers(r, new Date()) == null);

  root.TsseAvailability = {closed, unknownRules};
})(globalThis);
