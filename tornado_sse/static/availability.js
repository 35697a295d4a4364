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
 *   time              from/to 'HH:MM' every day (to < from: overnight)
 *   time:1..time:7    the same on one weekday (1 = Monday)
 *   days              weekdays from..to (1 = Monday; 6..2 wraps)
 *   months            months from..to (1..12; wraps)
 *   weeks             ISO weeks from..to (wraps)
 *   rrule             whole days the `rrule` (FREQ=DAILY/WEEKLY/MONTHLY/
 *                     YEARLY with BYDAY, BYMONTH, BYMONTHDAY, INTERVAL)
 *                     produces from from_range on
 * Anything else covers nothing (and is listed by unknownRules()).
 *
 * Which rules apply: global ones always, a product's when that product is
 * in question, a staff member's for that staff member. At any minute the
 * covering rule with the lowest `priority` number decides (ties: staff over
 * product over global, then `ordering`, then id); it opens the time when
 * `appointable`, else closes it. Minutes no rule covers are open, unless an
 * appointable rule applies at all: then the rules are a list of opening
 * hours and everything else is closed ("Opening hours 09:00-18:00" closes
 * 20:00). This is the same reading as the server's rest_unavailable check
 * (SPEC §8); where they differ, the server decides and the 409 names the rule.
 */
(function (root) {
  'use strict';

  const DAY_MIN = 24 * 60;
  const SCOPE_RANK = {staff: 2, product: 1, global: 0};

  /**
   * @typedef {{id: number, scope: string, product_id: number | null, staff_id: number | null,
   *   title: string | null, range_type: string, from_range: string | null, to_range: string | null,
   *   appointable: boolean, priority: number, ordering?: number, rrule?: string | null}} Rule
   * @typedef {{staffId?: number | null, productId?: number | null}} Context
   * @typedef {{start: Date, end: Date, rule: Rule | null}} Closed  rule null: outside every opening rule
   */

  /** @param {Rule} rule @param {Context} ctx */
  function applies(rule, ctx) {
    if (rule.scope === 'global') return true;
    if (rule.scope === 'product') return ctx.productId != null && rule.product_id === ctx.productId;
    if (rule.scope === 'staff') return ctx.staffId != null && rule.staff_id === ctx.staffId;
    return false;
  }

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

  /** Whether the rule's rrule produces `day` (whole days only). @param {Rule} rule @param {Date} day */
  function rruleHits(rule, day) {
    const start = localDate(rule.from_range);
    if (!start || !rule.rrule || day < new Date(start.getFullYear(), start.getMonth(), start.getDate())) return false;
    /** @type {Record<string, string>} */
    const parts = {};
    for (const part of rule.rrule.replace(/^RRULE:/i, '').split(';')) {
      const [k, v] = part.split('=');
      if (k && v) parts[k.toUpperCase()] = v.toUpperCase();
    }
    const list = (/** @type {string} */ key) => (parts[key] ? parts[key].split(',') : null);
    const months = list('BYMONTH');
    const monthDays = list('BYMONTHDAY');
    const byDay = list('BYDAY');
    if (parts.UNTIL) {
      const until = localDate(parts.UNTIL.replace(/^(\d{4})(\d{2})(\d{2}).*$/, '$1-$2-$3'));
      if (until && day > until) return false;
    }
    if (months && !months.includes(String(day.getMonth() + 1))) return false;
    if (monthDays && !monthDays.includes(String(day.getDate()))) return false;
    if (byDay && !byDay.some((d) => WEEKDAYS[/** @type {keyof WEEKDAYS} */ (d.slice(-2))] === isoWeekday(day))) {
      return false;
    }
    const interval = Math.max(1, Number(parts.INTERVAL || 1));
    const days = Math.round((Date.UTC(day.getFullYear(), day.getMonth(), day.getDate())
      - Date.UTC(start.getFullYear(), start.getMonth(), start.getDate())) / 86400000);
    switch (parts.FREQ) {
      case 'DAILY': return days % interval === 0;
      case 'WEEKLY':
        return Math.floor(days / 7) % interval === 0 && (byDay != null || isoWeekday(day) === isoWeekday(start));
      case 'MONTHLY': {
        const n = (day.getFullYear() - start.getFullYear()) * 12 + day.getMonth() - start.getMonth();
        return n % interval === 0 && (monthDays != null || byDay != null || day.getDate() === start.getDate());
      }
      case 'YEARLY':
        return (day.getFullYear() - start.getFullYear()) % interval === 0
          && (months != null || monthDays != null || byDay != null
            || (day.getMonth() === start.getMonth() && day.getDate() === start.getDate()));
      default: return false;
    }
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
    else if (type === 'rrule') hit = rule.rrule ? rruleHits(rule, day) : null;
    if (hit == null) return null;
    return hit ? whole : [];
  }

  /** Lower sorts first: the rule that decides. @param {Rule} a @param {Rule} b */
  function precedence(a, b) {
    return (a.priority ?? 10) - (b.priority ?? 10)
      || (SCOPE_RANK[/** @type {keyof SCOPE_RANK} */ (b.scope)] ?? -1)
        - (SCOPE_RANK[/** @type {keyof SCOPE_RANK} */ (a.scope)] ?? -1)
      || (a.ordering ?? 0) - (b.ordering ?? 0)
      || a.id - b.id;
  }

  /**
   * The closed intervals between `from` and `to` (Dates) for `ctx`, each
   * with the rule that closes it, merged where one rule closes adjacent time.
   * @param {Rule[]} rules @param {Date} from @param {Date} to @param {Context} [ctx]
   * @returns {Closed[]}
   */
  function closed(rules, from, to, ctx = {}) {
    const relevant = rules.filter((r) => applies(r, ctx)).sort(precedence);
    const openingHours = relevant.some((r) => r.appointable);
    /** @type {Closed[]} */
    const out = [];
    for (let day = new Date(from.getFullYear(), from.getMonth(), from.getDate()); day < to;
      day = new Date(day.getFullYear(), day.getMonth(), day.getDate() + 1)) {
      const spans = relevant.map((rule) => ({rule, spans: covers(rule, day) || []}));
      const cuts = new Set([0, DAY_MIN]);
      for (const {spans: s} of spans) for (const [a, b] of s) { cuts.add(a); cuts.add(b); }
      const sorted = [...cuts].sort((x, y) => x - y);
      for (let i = 0; i + 1 < sorted.length; i++) {
        const mid = (sorted[i] + sorted[i + 1]) / 2;
        const decider = spans.find(({spans: s}) => s.some(([a, b]) => a <= mid && mid < b));
        const isClosed = decider ? !decider.rule.appointable : openingHours;
        if (!isClosed) continue;
        const rule = decider ? decider.rule : null;
        const start = new Date(day.getFullYear(), day.getMonth(), day.getDate(), 0, sorted[i]);
        const end = new Date(day.getFullYear(), day.getMonth(), day.getDate(), 0, sorted[i + 1]);
        const last = out[out.length - 1];
        if (last && last.rule === rule && last.end.getTime() === start.getTime()) last.end = end;
        else out.push({start, end, rule});
      }
    }
    return out
      .map((c) => ({start: c.start < from ? from : c.start, end: c.end > to ? to : c.end, rule: c.rule}))
      .filter((c) => c.end > c.start);
  }

  /** Rules this module cannot read (they close nothing in the drawing). @param {Rule[]} rules */
  const unknownRules = (rules) => rules.filter((r) => covers(r, new Date()) == null);

  root.TsseAvailability = {closed, unknownRules};
})(globalThis);
