// @ts-check
/*
 * The admin calendar: FullCalendar 7 fed by TornadoSSE.follow() (client.js):
 * snapshots of the visible range's appointments and of the availability
 * rules, then one stream that keeps both current. Names come
 * from the directory (directory.js); admins book and act through the write
 * API (booking.js, through writes.js: versioned, conflict-aware), whose
 * results arrive through the stream like anyone else's; live changes flash
 * and are listed with who made them (activity.js); the staff-by-staff day
 * (staffday.js) draws from the same store, and both views shade the time
 * the availability rules close (GET /api/unavailable).
 *
 * Consistency is follow()'s: every row carries the id of the newest event
 * it reflects (a snapshot's rows: its last_event_id), and a change applies
 * only if it is newer. Snapshots and the stream race each other (navigating
 * and resets load snapshots while events flow), so "upsert by id, newest
 * wins" makes every order of arrival end in the same calendar. The filters
 * (staff, service) only choose what is drawn: the rows are the whole range.
 *
 * The page sets <body data-status> to 'loading', 'error', or a TornadoSSE
 * status, and <body data-last-event-id>, and marks each appointment's
 * element with data-appointment-id; window.tsse is for browser tests
 * (tests/test_browser.py, tests/test_calendar_desk.py) and support.
 */
(function () {
  'use strict';

  // Words for the person at the desk (issue 23): what happened and what to
  // do, never how the server is run. The page stays as it was, read-only.
  const ENDED_MESSAGE = ['Your session has ended — open the calendar link again. '
    + 'What you see stays here but no longer updates, and nothing can be changed.'];
  const UNREACHABLE = 'The calendar cannot reach the server. Check the internet connection;';
  // localStorage is per origin already. Kept so that tests and support can
  // see how far a page got, even after it closed; a new page always starts
  // from a snapshot's last_event_id, which is consistent with its rows.
  const CURSOR_KEY = 'tornado_sse.last_event_id';
  // Card colours [background, text], each pair at least 4.5:1 (WCAG AA;
  // the ratios are in calendar.css, whose legend repeats these colours).
  const STATUS_COLORS = {
    'unpaid': ['#b45309', '#ffffff'],
    'pending-confirmation': ['#be185d', '#ffffff'],
    'confirmed': ['#1d4ed8', '#ffffff'],
    'paid': ['#15803d', '#ffffff'],
    'complete': ['#475569', '#ffffff'],
    'in-cart': ['#7e22ce', '#ffffff'],
    'was-in-cart': ['#ede9fe', '#5b21b6'],
    'cancelled': ['#e5e7eb', '#374151'],
  };
  // The status in words, on every card (colour is never the only sign).
  const STATUS_TEXT = {
    'unpaid': 'Unpaid', 'pending-confirmation': 'Pending confirmation', 'confirmed': 'Confirmed',
    'paid': 'Paid', 'complete': 'Complete', 'in-cart': 'In cart', 'was-in-cart': 'Was in cart',
    'cancelled': 'Cancelled', 'trash': 'In trash',
  };
  const STATUS_LABELS = {
    loading: 'Loading…', error: 'Not loaded', live: 'Live', reconnecting: 'Reconnecting…',
    polling: 'Live (slow connection)', offline: 'Offline', unauthorized: 'Session ended',
  };
  // Below this width (px) the page is a phone's: one day, a compact toolbar (calendar.css too).
  const NARROW = window.matchMedia('(max-width: 700px)');

  /** @param {string} id @returns {any} the element (typed loosely: each is used as what it is) */
  const $ = (id) => document.getElementById(id);
  const els = {
    calendar: $('calendar'), badge: $('status-badge'), notice: $('notice'), noticeText: $('notice-text'),
    who: $('who'), staff: /** @type {HTMLSelectElement} */ ($('staff-filter')),
    product: /** @type {HTMLSelectElement} */ ($('product-filter')),
    details: $('details'), detailsBody: $('details-body'), detailsActions: $('details-actions'),
    detailsError: $('details-error'), book: $('book-button'), viewCalendar: $('view-calendar'),
    viewStaff: $('view-staff'), staffDay: $('staff-day'), staffDayTitle: $('staff-day-title'),
    now: $('now-button'), activityToggle: $('activity-toggle'), bookingDialog: $('booking'),
    move: $('details-move'), moveStart: /** @type {HTMLInputElement} */ ($('details-move-start')),
  };

  class ApiError extends Error {
    /**
     * @param {number} status HTTP status, 0: unreachable
     * @param {string} message
     * @param {Record<string, string> | null} [params] the 400's bad fields (SPEC §4)
     * @param {string} [code] the error's code (rest_conflict, rest_precondition_failed, ...)
     * @param {any} [data] the error's data: conflicts, rule, current (SPEC §8)
     */
    constructor(status, message, params = null, code = '', data = null) {
      super(message);
      this.status = status;
      this.params = params;
      this.code = code;
      this.data = data;
    }
  }

  // The rows follow() keeps (client.js), by id: the visible range's
  // appointments and every availability rule; empty until it starts.
  /** @type {any} */
  let feed = null;
  let started = false; // the first snapshots are in and the stream is subscribed
  const NONE = new Map();
  const appointments = {get rows() { return feed ? feed.of('appointments') : NONE; }};
  const availabilities = {get rows() { return feed ? feed.of('availabilities') : NONE; }};
  const filter = {staffId: null, productId: null};
  const renderedAppointments = new Map(); // calendar event id -> row as rendered
  let renderedAvailabilityIds = [];
  let availabilitiesDirty = true;
  let renderQueued = false;
  let me = null;
  let calendar = null;
  let status = 'loading';
  let lastEventId = null;
  let lastEventAt = null; // Date.now() when the newest event arrived
  let detailsId = null; // the appointment in the side panel
  /** @type {any} */
  let customerCard = null; // the panel's customer card (customers.js)
  let ended = false; // the session ended: the page stays as it was, read-only
  // The page's parts (separate scripts): when one did not load, start()
  // says so instead of the page failing here.
  const loaded = [typeof FullCalendar, typeof TornadoSSE, typeof TsseDirectory, typeof TsseActivity,
    typeof TsseBooking, typeof TsseStaffDay, typeof TsseWrites, typeof TsseCustomers]
    .every((t) => t !== 'undefined');
  const directory = loaded ? TsseDirectory.create() : null;
  const activity = loaded ? TsseActivity.create({list: $('activity'), empty: $('activity-empty')}) : null;
  const leaving = new Set(); // appointment ids removed by the stream: their cards fade out
  /** @type {any} */
  let actions = null; // the panel's buttons (admins)
  /** @type {any} */
  let booking = null; // the booking form (admins)
  /** @type {any} */
  let writes = null; // versioned, conflict-aware writes (admins)
  // The newest event about each appointment: who changed it, and when.
  /** @type {Map<number, {id: number, ts: number, actor: any, version: number | null}>} */
  const lastChanges = new Map();
  // Event-Ids the server named in answers to this page's writes (SPEC §8):
  // those changes are this person's own, and do not flash as someone else's.
  const OWN_LOG_SIZE = 1000;
  /** @type {Set<number>} */
  const ownEventIds = new Set();
  /** @type {Map<number, number>} event id -> appointment id, of the newest applied events */
  const recentEvents = new Map();
  const clock = new Intl.DateTimeFormat(undefined, {hour: '2-digit', minute: '2-digit', hourCycle: 'h23'});
  const weekdayTime = new Intl.DateTimeFormat(undefined,
    {weekday: 'short', hour: '2-digit', minute: '2-digit', hourCycle: 'h23'});
  const staffDay = loaded && TsseStaffDay.create($('staff-day-columns'), {
    columns: staffColumns,
    eventsFor: staffEvents,
    options: (/** @type {any} */ column) => sharedOptions(column.id),
  });
  // Ids of the stream events applied, in order (the newest APPLIED_LOG_SIZE):
  // lets tests and support check that nothing was missed or applied twice.
  const APPLIED_LOG_SIZE = 10000;
  const applied = [];
  let resets = 0; // snapshots reloaded because the stream said reset

  // Every request is bounded: a server that accepted and never answers (a
  // half-open connection, a stuck proxy) must not leave the page loading or
  // a button waiting forever. Browser tests shorten it (window.tsseRequestTimeoutMs).
  const REQUEST_TIMEOUT_MS = Number(window.tsseRequestTimeoutMs) || 30000;

  // What happens next, in words: reads are asked again; a change is not
  // (a retried PATCH would meet itself as someone else's change), and
  // whether it was made shows on the calendar through the stream.
  /** @param {string} method @param {string} path */
  const afterFailure = (method, path) => (method !== 'GET' && path.startsWith('/api/')
    ? ' if the change was made, the calendar shows it in a moment.' : ' the calendar keeps trying.');
  /** @param {string} method @param {string} path */
  const unanswered = (method, path) => new ApiError(0,
    `The server did not answer within ${REQUEST_TIMEOUT_MS / 1000} s;${afterFailure(method, path)}`);

  /**
   * @param {string} method @param {string} path @param {any} [body]
   * @param {Record<string, string>} [extraHeaders] If-Match, Idempotency-Key
   * @returns {Promise<any>}
   */
  async function api(method, path, body, extraHeaders) {
    /** @type {Record<string, string>} */
    const headers = {Accept: 'application/json', ...extraHeaders};
    const timer = new AbortController();
    /** @type {RequestInit} */
    const init = {method, credentials: 'same-origin', headers, signal: timer.signal};
    if (body !== undefined) {
      headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    const deadline = setTimeout(() => timer.abort(), REQUEST_TIMEOUT_MS);
    let res;
    let data;
    try {
      res = await fetch(path, init);
      data = res.status === 204 ? null : await res.json().catch(() => null);
    } catch (err) {
      throw timer.signal.aborted ? unanswered(method, path) : new ApiError(0, `${UNREACHABLE}${afterFailure(method, path)}`);
    } finally {
      clearTimeout(deadline);
    }
    if (timer.signal.aborted) throw unanswered(method, path); // the body was cut short
    const eventId = Number(res.headers.get('Event-Id'));
    if (eventId > 0) ownEvent(eventId);
    if (!res.ok) {
      // Errors are JSON in the WordPress REST shape: {code, message, data: {status}}.
      const message = data && data.message ? data.message
        : `The server could not answer (error ${res.status}). Try again in a moment.`;
      const extra = data && data.data ? data.data : null;
      throw new ApiError(res.status, message, extra ? extra.params || null : null, data ? data.code : '', extra);
    }
    // A write needs only its status; a read needs its JSON.
    if (data === null && method === 'GET') {
      throw new ApiError(res.status, 'The server sent an answer the calendar cannot read. Reload the page.');
    }
    return data;
  }

  // ?token=... (the link `python run.py` prints): trade it once for the
  // HttpOnly session cookie. It leaves the address bar first, so it stays
  // out of history and bookmarks even if the exchange fails.
  async function establishSession() {
    const params = new URLSearchParams(location.search);
    const token = params.get('token');
    if (!token) return;
    params.delete('token');
    const query = params.toString();
    history.replaceState(history.state, '', location.pathname + (query ? '?' + query : '') + location.hash);
    try {
      await api('POST', '/session', {token});
    } catch (err) {
      // 409: this browser is signed in as someone else. A link must not
      // swap the session silently (login CSRF by link): the server's
      // message says who is signed in and whom the link is for; the user
      // decides, and keeps the current session unless they agree.
      if (!(err instanceof ApiError) || err.status !== 409) throw err;
      if (window.confirm(err.message)) await api('POST', '/session', {token, replace: true});
    }
  }

  // --- the directory --------------------------------------------------------

  async function loadDirectory() {
    const data = await api('GET', '/api/directory');
    directory.load(data);
    directoryLoaded = true;
    // Every card's title and the filters change: draw them afresh.
    for (const key of renderedAppointments.keys()) {
      const event = calendar && calendar.getEventById(key);
      if (event) event.remove();
    }
    renderedAppointments.clear();
    els.staff.dataset.ids = els.product.dataset.ids = '';
    scheduleRender();
    return true;
  }

  // --- snapshots --------------------------------------------------------

  const RETRY_MIN_MS = 1000;
  const RETRY_MAX_MS = 30000;
  const loads = new Map(); // kind -> generation of its newest load
  const failing = new Set(); // kinds whose last attempt failed

  /** A load failed and is tried again in `wait` ms: say so. @param {string} kind @param {string} why @param {number} wait */
  function retryNotice(kind, why, wait) {
    failing.add(kind);
    showNotice([`The calendar could not load the appointments: ${why}`
      + ` Trying again in ${Math.max(1, Math.round(wait / 1000))} s…`], 'retry');
  }

  /** @param {string} kind */
  function loadedAgain(kind) {
    failing.delete(kind);
    if (failing.size === 0 && els.notice.dataset.kind === 'retry') hideNotice();
  }

  // What else the page loads must arrive too (the rows: follow() retries
  // them): network failures and 5xx are retried with backoff; a newer load
  // of the same kind takes over from an older one's retries, which then
  // return null. Other errors are thrown.
  async function retrying(kind, load) {
    const generation = (loads.get(kind) || 0) + 1;
    loads.set(kind, generation);
    for (let attempt = 0; ; attempt++) {
      try {
        const result = await load();
        loadedAgain(kind);
        return result;
      } catch (err) {
        if (err.status !== 0 && err.status < 500) throw err;
        if (loads.get(kind) !== generation) return null;
        const wait = Math.min(RETRY_MAX_MS, RETRY_MIN_MS * 2 ** attempt);
        retryNotice(kind, err.message, wait);
        await new Promise((resolve) => setTimeout(resolve, wait));
        if (loads.get(kind) !== generation) return null;
      }
    }
  }

  const toEpoch = (date) => Math.floor(date.getTime() / 1000);

  // --- the rows (follow()) ---------------------------------------------------

  /** A snapshot arrived (first, navigating, after a reset), or an event changed a row. @param {any} rows @param {any} change */
  function onRows(rows, change) {
    if (change.type === 'snapshot') loadedAgain(change.resource);
    if (change.resource === 'availabilities') availabilitiesDirty = true;
    scheduleRender();
  }

  /** follow() retries a snapshot: a server restarting, a database outage (503). @param {any} retry */
  function onRowsRetry(retry) {
    const err = retry.error;
    const why = err instanceof TornadoSSE.SnapshotError ? err.message : `${UNREACHABLE} the calendar keeps trying.`;
    retryNotice(retry.resource, why, retry.delayMs);
  }

  /**
   * Navigating: the new range's rows (the stream goes on). Settles when
   * they are in (asked twice for one range, follow() loads it once).
   * @returns {Promise<void>}
   */
  function followView() {
    const {activeStart, activeEnd} = calendar.view;
    // Until they are in, an empty week would read as "no bookings": say so.
    rangeLoads++;
    showRangeLoading();
    return feed.setRange({start: activeStart, end: activeEnd}).catch((/** @type {any} */ err) => {
      if (started) showError(err);
    }).finally(() => {
      rangeLoads--;
      showRangeLoading();
    });
  }

  let rangeLoads = 0; // navigations whose rows are on their way
  function showRangeLoading() {
    document.body.dataset.loadingRows = String(rangeLoads > 0);
    updateBadge();
  }

  /*
   * The time the availability rules close, for the loaded week, as the
   * server evaluates it (GET /api/unavailable: the module behind its 409
   * rest_unavailable, in the database's time zone), so what is shaded is
   * what a booking is refused for. One request covers the week for nobody
   * in particular (global and the filtered product's rules) and for each
   * staff member (their own rules on top); reloaded when the week, the
   * product filter or any rule changes.
   */
  const MAX_CLOSED_STAFF = 100; // the server's limit on staff_ids
  let closedTime = /** @type {{staff_id: number | null, start: number, end: number, rule: any, outside: boolean}[]} */ ([]);
  let closedTimer = null;

  async function loadClosed() {
    const {activeStart, activeEnd} = calendar.view;
    const staff = new Set(me.role === 'staff' ? [me.staff_id]
      : directory.staff().map((/** @type {any} */ x) => x.id));
    for (const a of appointments.rows.values()) (a.staff_ids || []).forEach((id) => staff.add(id));
    const params = new URLSearchParams({start: String(toEpoch(activeStart)), end: String(toEpoch(activeEnd)),
      staff_ids: [...staff].slice(0, MAX_CLOSED_STAFF).join(',')});
    if (filter.productId != null) params.set('product_id', String(filter.productId));
    const data = await api('GET', '/api/unavailable?' + params);
    closedTime = data.closed;
    availabilitiesDirty = true;
    scheduleRender();
    return true;
  }

  // A burst of rule changes (or navigating fast) loads the closed time once.
  function reloadClosed() {
    clearTimeout(closedTimer);
    closedTimer = setTimeout(() => retrying('closed', loadClosed).catch(showError), 150);
  }

  // The stream could not replay everything since our cursor: follow()
  // reloads the rows; names and closed time may have changed as much.
  function onReset(resetId) {
    resets++;
    noteEvent(resetId);
    retrying('directory', loadDirectory).catch(showError);
    reloadClosed();
  }

  // --- the stream ---------------------------------------------------------

  /**
   * Every event, before follow() applies it; `fresh`: newer than what the
   * rows reflect, so news to this page (the activity list, the flash, the
   * closed time), whether or not the row is in the visible range.
   * @param {any} event @param {boolean} fresh
   */
  function applyEvent(event, fresh) {
    const [resource, action] = event.topic.split('.');
    const own = ownEventIds.has(event.id);
    if (fresh && resource === 'appointment') {
      const row = action === 'deleted' ? null : event.payload;
      lastChanges.set(event.resource_id, {id: event.id, ts: event.ts, actor: event.actor,
        version: row && row.version != null ? row.version : null});
      recentEvents.set(event.id, event.resource_id);
      if (recentEvents.size > OWN_LOG_SIZE) recentEvents.delete(recentEvents.keys().next().value);
      const old = appointments.rows.get(event.resource_id);
      noticeChange(event, action, old, row, own);
      refreshCustomerCard(old, row);
    } else if (fresh && resource === 'availability') {
      reloadClosed();
      const rule = action === 'deleted' ? availabilities.rows.get(event.resource_id) : event.payload;
      activity.note(event, `availability rule “${(rule && rule.title) || 'untitled'}” ${action}`
        + byWhom(event), own);
    }
    applied.push(event.id);
    if (applied.length > APPLIED_LOG_SIZE) applied.shift();
    noteEvent(event.id);
    lastEventAt = Date.now();
  }

  // The panel's customer card lists their appointments: one of them was
  // booked, moved or cancelled (by anyone), so ask again (a burst once).
  let cardTimer = 0;
  /** @param {any} old @param {any} row */
  function refreshCustomerCard(old, row) {
    const shown = customerCard ? customerCard.showing : null;
    if (shown == null || detailsId == null) return;
    if (!(row && row.customer_id === shown) && !(old && old.customer_id === shown)) return;
    clearTimeout(cardTimer);
    cardTimer = window.setTimeout(() => {
      if (customerCard.showing === shown && detailsId != null) customerCard.show(shown, detailsId, true);
    }, 300);
  }

  /** A write's answer named its event: the change is this page's own. @param {number} eventId */
  function ownEvent(eventId) {
    ownEventIds.add(eventId);
    if (ownEventIds.size > OWN_LOG_SIZE) ownEventIds.delete(ownEventIds.values().next().value);
    // The stream can be faster than the answer: un-flash what already arrived.
    const appointmentId = recentEvents.get(eventId);
    if (appointmentId != null) {
      activity.markOwn(eventId);
      activity.unflash(appointmentId);
    }
  }

  /** " by front-desk (admin)", or nothing from a server that does not say. @param {any} event */
  const byWhom = (event) => TsseActivity.byWhom(event, directory.staffName);
  /** @param {number[]} ids */
  const staffNames = (ids) => (ids || []).map((id) => directory.staffName(id)).join(' & ') || 'nobody';

  /*
   * What a person at the desk should notice about a change that just came
   * in: a line in the activity list that says what happened (activity.js
   * words it), and the card flashing (arrived, moved, changed) or fading
   * out (trashed, deleted), unless the change was this page's own.
   */
  function noticeChange(event, action, old, row, own) {
    activity.note(event, TsseActivity.describeChange(event, action, old, row, directory), own);
    if (action === 'trashed' || action === 'deleted') leaving.add(event.resource_id);
    else if (own) activity.unflash(event.resource_id); // the person just made the card what it is
    else activity.flash(event.resource_id);
  }

  function noteEvent(id) {
    lastEventId = id;
    document.body.dataset.lastEventId = id;
  }

  function setStatus(next) {
    status = next;
    document.body.dataset.status = next;
    if (next === 'unauthorized') endSession();
    updateBadge();
  }

  // --- rendering ----------------------------------------------------------

  function matches(a, f = filter) {
    return (f.staffId == null || (a.staff_ids || []).includes(f.staffId))
      && (f.productId == null || a.product_id === f.productId);
  }

  // A burst of events (a replay, a busy minute) renders once per frame. A
  // hidden tab gets no frames, so it batches on a timer instead.
  function scheduleRender() {
    if (renderQueued || !calendar) return;
    renderQueued = true;
    if (document.hidden) setTimeout(render, 250); else requestAnimationFrame(render);
  }

  function render() {
    if (!renderQueued) return;
    renderQueued = false;
    calendar.batchRendering(() => {
      renderAppointments();
      if (availabilitiesDirty) renderAvailabilities();
    });
    nameUnknownCustomers();
    updateFilterOptions();
    updateBadge();
    if (staffDay.open) staffDay.refresh();
    if (!els.details.hidden) refreshDetails();
    try {
      if (lastEventId != null) localStorage.setItem(CURSOR_KEY, String(lastEventId));
    } catch (err) {
      // Storage disabled or full: only the diagnostics lose.
    }
  }

  // A staff member's directory names the customers of their appointments
  // only (issue 23), so a new appointment may bring a customer it does not
  // name yet: load the directory again (once per such customer, a moment
  // later, so a burst of changes asks once) and the cards get the name.
  const customersAsked = new Set();
  let directoryReload = 0;
  let directoryLoaded = false; // before the first load every name is unknown
  function nameUnknownCustomers() {
    if (!directoryLoaded) return;
    let unknown = false;
    for (const a of appointments.rows.values()) {
      const id = a.customer_id;
      if (id != null && !directory.knowsCustomer(id) && !customersAsked.has(id)) {
        customersAsked.add(id);
        unknown = true;
      }
    }
    if (unknown && !directoryReload) {
      directoryReload = window.setTimeout(() => {
        directoryReload = 0;
        loadDirectory().catch(showError);
      }, 300);
    }
  }

  function renderAppointments() {
    const wanted = new Map();
    for (const a of appointments.rows.values()) {
      if (a.status !== 'trash' && matches(a)) wanted.set('appointment-' + a.id, a);
    }
    for (const [key, shown] of renderedAppointments) {
      if (wanted.get(key) === shown) continue;
      if (!wanted.has(key) && leaving.has(shown.id)) {
        const el = els.calendar.querySelector(`[data-appointment-id="${shown.id}"]`);
        if (el) activity.fadeOut(el);
      }
      const event = calendar.getEventById(key);
      if (event) event.remove();
      renderedAppointments.delete(key);
    }
    leaving.clear();
    for (const [key, a] of wanted) {
      if (renderedAppointments.has(key)) continue;
      calendar.addEvent(appointmentEvent(key, a));
      renderedAppointments.set(key, a);
    }
  }

  /**
   * What the card says besides names (issue 20): arrival and a deliberate
   * overlap, as [symbol, words]. The card shows the symbol (the legend
   * explains it; a narrow card keeps room for the name), its accessible
   * name and tooltip the words.
   * @param {any} a @returns {[string, string][]}
   */
  function flags(a) {
    /** @type {[string, string][]} */
    const out = [];
    if (a.customer_status === 'arrived') out.push(['✓', 'arrived']);
    if (a.customer_status === 'no-show') out.push(['✗', 'no-show']);
    if (a.overlap_allowed) out.push(['⚠', 'overlap allowed']);
    return out;
  }

  /** @param {string} key @param {any} a @param {number | null} [column] the staff column it is drawn in */
  function appointmentEvent(key, a, column) {
    const cancelled = a.status === 'cancelled';
    return {
      id: key,
      title: [...flags(a).map(([symbol]) => symbol), directory.cardTitle(a)].join(' '),
      start: new Date(a.start * 1000),
      end: new Date(a.end * 1000),
      allDay: a.all_day,
      color: (STATUS_COLORS[a.status] || ['#475569'])[0],
      contrastColor: (STATUS_COLORS[a.status] || ['#475569', '#ffffff'])[1],
      className: `tsse-appointment tsse-status-${a.status}${cancelled ? ' tsse-cancelled' : ''}`
        + ` tsse-customer-${a.customer_status}${a.overlap_allowed ? ' tsse-overlap' : ''}`,
      // Cancelled cards stay put; the others follow the calendar's editable (canWrite).
      ...(cancelled ? {editable: false} : {}),
      extendedProps: {appointment: a, column},
    };
  }

  /**
   * What a card's accessible name adds to what it shows (time, title,
   * status): its end and the flags in words, ", until 10:45, arrived".
   * Spoken, never shown; no aria-label, so the name always holds the
   * visible words (speech input: "click Anna Berg").
   * @param {any} a
   */
  function cardExtra(a) {
    const until = a.all_day ? 'all day' : `until ${clock.format(a.end * 1000)}`;
    return [, until, ...flags(a).map(([, words]) => words)].join(', ');
  }

  function renderAvailabilities() {
    availabilitiesDirty = false;
    for (const id of renderedAvailabilityIds) {
      const event = calendar.getEventById(id);
      if (event) event.remove();
    }
    renderedAvailabilityIds = [];
    const {activeStart, activeEnd} = calendar.view;
    for (const input of closedEvents(activeStart, activeEnd, filter.staffId)) {
      calendar.addEvent(input);
      renderedAvailabilityIds.push(input.id);
    }
  }

  /*
   * Unavailable time as background shading: for a staff member (their
   * column, or the staff filter) or for nobody in particular (the week
   * unfiltered, the unassigned column). "Outside Opening hours" is time
   * closed for lying outside an appointable rule.
   * @param {Date} from @param {Date} to @param {number | null} staffId
   */
  function closedEvents(from, to, staffId) {
    const a = toEpoch(from);
    const b = toEpoch(to);
    return closedTime.filter((c) => c.staff_id === staffId && c.start < b && c.end > a)
      .map((c, n) => ({
        id: `closed-${staffId ?? 'any'}-${n}`,
        title: `${c.outside ? 'Outside ' : ''}${c.rule.title || 'availability rule #' + c.rule.id}`,
        start: new Date(c.start * 1000), end: new Date(c.end * 1000),
        display: 'background', color: '#94a3b8', className: 'tsse-unavailable', editable: false,
        extendedProps: {rule: c.rule, outside: c.outside},
      }));
  }

  // The filter choices: everyone in the directory (by name), then ids the
  // rows name that the directory does not know ("Staff #9").
  function updateFilterOptions() {
    const staff = directory.staff().map((/** @type {any} */ x) => x.id);
    const products = directory.products().map((/** @type {any} */ x) => x.id);
    const extraStaff = new Set(filter.staffId == null ? [] : [filter.staffId]);
    const extraProducts = new Set(filter.productId == null ? [] : [filter.productId]);
    for (const a of appointments.rows.values()) {
      (a.staff_ids || []).forEach((id) => extraStaff.add(id));
      if (a.product_id != null) extraProducts.add(a.product_id);
    }
    const unknown = (/** @type {Set<number>} */ ids, /** @type {number[]} */ known) =>
      [...ids].filter((id) => !known.includes(id)).sort((x, y) => x - y);
    fillSelect(els.staff, [...staff, ...unknown(extraStaff, staff)], 'All staff',
      directory.staffName, filter.staffId);
    fillSelect(els.product, [...products, ...unknown(extraProducts, products)], 'All services',
      directory.productLabel.bind(directory), filter.productId);
  }

  /**
   * @param {HTMLSelectElement} select @param {number[]} ids @param {string} allLabel
   * @param {(id: number) => string} label @param {number | null} selected
   */
  function fillSelect(select, ids, allLabel, label, selected) {
    if (select.dataset.ids === ids.join(',')) return;
    select.dataset.ids = ids.join(',');
    select.replaceChildren(new Option(allLabel, ''),
      ...ids.map((id) => new Option(label(id), String(id), false, id === selected)));
  }

  function onFilterChange() {
    filter.staffId = els.staff.value === '' ? null : Number(els.staff.value);
    filter.productId = els.product.value === '' ? null : Number(els.product.value);
    availabilitiesDirty = true;
    scheduleRender(); // the rows are the whole range: the filters choose what is drawn
    reloadClosed(); // a product's rules apply with its filter
  }

  // --- views --------------------------------------------------------------

  const dayTitle = new Intl.DateTimeFormat(undefined, {dateStyle: 'full'});

  // The staff-by-staff day: the main calendar stays (hidden) on the week of
  // that day, so its snapshot loads cover it and the store holds its rows.
  /** @param {boolean} staffView */
  function showView(staffView) {
    els.viewCalendar.setAttribute('aria-pressed', String(!staffView));
    els.viewStaff.setAttribute('aria-pressed', String(staffView));
    // A body attribute, not #calendar's own: FullCalendar owns its root's attributes.
    document.body.dataset.view = staffView ? 'staff' : 'calendar';
    els.staffDay.hidden = !staffView;
    if (staffView) {
      goToStaffDay(calendar.getDate());
    } else {
      staffDay.close(); // FullCalendar 7 resizes the shown calendar by itself
    }
  }

  /** @param {Date} date */
  function goToStaffDay(date) {
    calendar.gotoDate(date); // loads the week's snapshot when it changed
    staffDay.show(date);
    els.staffDayTitle.textContent = dayTitle.format(staffDay.day);
  }

  /** @param {number} days */
  const shiftStaffDay = (days) => {
    const d = new Date(staffDay.day);
    d.setDate(d.getDate() + days);
    goToStaffDay(d);
  };

  // Columns: the directory's staff (a staff member sees only their own),
  // ids the day's rows name that it does not know, and the unassigned.
  /** @param {Date} day */
  function staffColumns(day) {
    const ids = me.role === 'staff' ? [me.staff_id]
      : directory.staff().map((/** @type {any} */ x) => x.id);
    const extra = new Set();
    for (const a of dayRows(day)) (a.staff_ids || []).forEach((id) => { if (!ids.includes(id)) extra.add(id); });
    const next = new Date(day.getFullYear(), day.getMonth(), day.getDate() + 1);
    const columns = [...ids, ...[...extra].sort((x, y) => x - y)].map((id) => {
      // What closes this person's day (a holiday) shows under the name,
      // where it is seen: the shading's own label may sit out of view.
      const own = new Set(closedEvents(day, next, id)
        .filter((c) => c.extendedProps.rule.scope === 'staff' && !c.extendedProps.outside).map((c) => c.title));
      return {id, name: directory.staffName(id), ...(own.size ? {note: [...own].join(', ')} : {})};
    });
    if (me.role === 'admin') columns.push({id: null, name: 'Unassigned'});
    return columns;
  }

  /** @param {Date} day */
  function dayRows(day) {
    const from = day.getTime() / 1000;
    const to = new Date(day.getFullYear(), day.getMonth(), day.getDate() + 1).getTime() / 1000;
    return [...appointments.rows.values()].filter((a) => a.status !== 'trash' && a.start < to && a.end > from
      && (filter.productId == null || a.product_id === filter.productId));
  }

  /** A staff column's cards and its closed time. @param {number | null} staffId @param {Date} day */
  function staffEvents(staffId, day) {
    const next = new Date(day.getFullYear(), day.getMonth(), day.getDate() + 1);
    return [
      ...dayRows(day)
        .filter((a) => (staffId == null ? (a.staff_ids || []).length === 0 : (a.staff_ids || []).includes(staffId)))
        .map((a) => appointmentEvent(`appointment-${a.id}`, a, staffId)),
      ...closedEvents(day, next, staffId),
    ];
  }

  // "Now": today, scrolled to the current hour, in whichever view is shown.
  async function goToNow() {
    const now = new Date();
    if (staffDay.open) {
      goToStaffDay(now);
      staffDay.scrollToTime(scrollTarget(now));
    } else {
      calendar.today();
      calendar.scrollToTime(scrollTarget(now));
    }
    if (feed) await followView(); // from another week, today's rows are on their way
    // The keyboard lands on the next appointment of today, not 60 Tab stops before it.
    const next = dayRows(now).filter((a) => matches(a) && a.end * 1000 > now.getTime())
      .sort((x, y) => x.start - y.start)[0];
    if (next) {
      requestAnimationFrame(() => {
        const where = staffDay.open ? '#staff-day-columns' : '#calendar';
        const card = /** @type {HTMLElement | null} */ (
          document.querySelector(`${where} [data-appointment-id="${next.id}"]`));
        if (card) card.focus();
      });
    }
  }

  /** An hour before `now`, as "HH:MM:00": the current time in view, with what just passed. @param {Date} now */
  const scrollTarget = (now) => `${String(Math.max(0, now.getHours() - 1)).padStart(2, '0')}:00:00`;

  // --- booking --------------------------------------------------------------

  // A free slot selected (or "New booking"): the form, prefilled.
  /** @param {{start: Date, end?: Date, allDay?: boolean}} range @param {number | null} [staffId] */
  function openBooking(range, staffId) {
    calendar.unselect();
    booking.open({
      start: range.start, end: range.end,
      staffId: staffId !== undefined ? staffId : filter.staffId,
      productId: filter.productId,
    });
  }

  /*
   * Free slots by keyboard (admins, the week or day grid): on a card, the
   * down and up arrows go to the first free half hour after it (before
   * it); then up and down move half an hour, left and right a day, over
   * what is taken (an appointment of the filtered staff member, or of
   * anyone unfiltered; time the rules close), and Enter books there. The
   * slot is drawn as a highlight (calendar.select() would book at once)
   * and said by a polite live region. Escape or a click leaves it.
   */
  const SLOT_S = 1800;
  let slotCursor = /** @type {number | null} */ (null); // epoch s of the slot's start
  let slotCursorEvent = /** @type {any} */ (null);

  /** @param {number} start epoch s */
  function slotFree(start) {
    const end = start + SLOT_S;
    for (const a of appointments.rows.values()) {
      if (a.status === 'trash' || a.status === 'cancelled' || a.all_day || !matches(a)) continue;
      if (a.start < end && a.end > start) return false;
    }
    return !closedTime.some((c) => c.staff_id === filter.staffId && c.start < end && c.end > start);
  }

  /** The nearest free slot from `start` going `step` s at a time, within the view. @param {number} start @param {number} step */
  function findFree(start, step) {
    const from = toEpoch(calendar.view.activeStart);
    const to = toEpoch(calendar.view.activeEnd);
    for (let t = start; t >= from && t + SLOT_S <= to; t += step) if (slotFree(t)) return t;
    return null;
  }

  /** @param {number | null} start */
  function showSlotCursor(start) {
    if (slotCursorEvent) slotCursorEvent.remove();
    slotCursorEvent = null;
    slotCursor = start;
    if (start == null) return;
    slotCursorEvent = calendar.addEvent({id: 'slot-cursor', start: new Date(start * 1000),
      end: new Date((start + SLOT_S) * 1000), display: 'background', color: '#1d4ed8',
      className: 'tsse-slot-cursor'});
    calendar.scrollToTime(scrollTarget(new Date(start * 1000)));
    $('slot-cursor-said').textContent = `Free: ${weekdayTime.format(start * 1000)}`
      + ` to ${clock.format((start + SLOT_S) * 1000)}. Enter books it, Escape leaves.`;
  }

  function onGridKey(/** @type {KeyboardEvent} */ e) {
    if (!canWrite() || !calendar.view.type.startsWith('timeGrid')) return;
    const el = /** @type {HTMLElement} */ (e.target);
    const onCard = el.dataset && el.dataset.appointmentId;
    if (slotCursor == null && !onCard) return;
    if (slotCursor != null && (e.key === 'Enter' || e.key === 'Escape')) {
      e.preventDefault();
      e.stopPropagation();
      const start = slotCursor;
      showSlotCursor(null);
      $('slot-cursor-said').textContent = '';
      if (e.key === 'Enter') openBooking({start: new Date(start * 1000), end: new Date((start + SLOT_S) * 1000)});
      return;
    }
    const moves = {ArrowDown: SLOT_S, ArrowUp: -SLOT_S, ArrowRight: 86400, ArrowLeft: -86400};
    const step = moves[/** @type {keyof typeof moves} */ (e.key)];
    if (!step) return;
    e.preventDefault();
    let from;
    if (slotCursor != null) from = slotCursor + step;
    else {
      const a = appointments.rows.get(Number(onCard));
      if (!a) return;
      from = step > 0 ? Math.ceil(a.end / SLOT_S) * SLOT_S : Math.floor(a.start / SLOT_S) * SLOT_S - SLOT_S;
    }
    // A day away keeps the time of day; the search then runs in half hours.
    const next = findFree(from, Math.abs(step) === 86400 ? SLOT_S * Math.sign(step) : step);
    if (next != null) showSlotCursor(next);
  }

  // The next quarter hour from now: where "New booking" starts.
  function nextSlot() {
    const d = new Date(Math.ceil(Date.now() / 900000) * 900000);
    return staffDay.open && staffDay.day.toDateString() !== new Date().toDateString()
      ? new Date(staffDay.day.getFullYear(), staffDay.day.getMonth(), staffDay.day.getDate(), 9) : d;
  }

  // --- interaction --------------------------------------------------------

  // A drag or resize is only a request: the change the calendar shows comes
  // back through the stream like anyone else's, so success changes nothing
  // here and failure (or a conflict the person resolves by keeping the
  // current row) puts the appointment back.
  async function onMoved(info) {
    const a = info.event.extendedProps.appointment;
    const body = {start: toEpoch(info.event.start), end: toEpoch(info.event.end)};
    if (!(await sendChange(a, body, `Move to ${weekdayTime.format(info.event.start)}`))) info.revert();
  }

  /*
   * A card dragged from one staff column into another: the appointment is
   * reassigned (that column's staff member replaces the one it was dragged
   * from; the others stay) and moved to where it was dropped, in one
   * versioned PATCH. The dropped copy goes at once; the stream draws the
   * result in the right column, or the refresh puts the card back.
   */
  async function onStaffDrop(/** @type {any} */ info, /** @type {number | null} */ toStaff) {
    const a = info.event.extendedProps.appointment;
    const fromStaff = info.event.extendedProps.column;
    info.event.remove();
    if (!a) return;
    const others = (a.staff_ids || []).filter((/** @type {number} */ id) => id !== fromStaff && id !== toStaff);
    /** @type {Record<string, any>} */
    const body = {staff_ids: toStaff == null ? others : [toStaff, ...others]};
    const start = toEpoch(info.event.start);
    if (start !== a.start) Object.assign(body, {start, end: start + (a.end - a.start)});
    const to = toStaff == null ? 'unassigned' : directory.staffName(toStaff);
    await sendChange(a, body, `Reassign to ${to}`);
    if (staffDay.open) staffDay.refresh();
  }

  /**
   * One versioned change of appointment `a` (writes.js); true when it was
   * made, false when it failed or the person kept what is there.
   * @param {any} a @param {Record<string, any>} body @param {string} label
   */
  async function sendChange(a, body, label) {
    try {
      return (await writes.change(a, body, label)) !== null;
    } catch (err) {
      if (err.status === 401) showError(err);
      // No answer (status 0): the change may have been made; the words say so.
      else showNotice([`${err.status === 0 ? 'Not confirmed' : 'Not saved'} — ${label} (${describeId(a.id)}):`
        + ` ${err.message}`], 'error');
      return false;
    }
  }

  /** "Anna Berg · Haircut 45 min · Jonas, Wed 10:00 (#12)", or "#12" for a row not held. @param {number} id */
  function describeId(id) {
    const a = appointments.rows.get(id);
    return a ? `${directory.cardTitle(a)}, ${weekdayTime.format(a.start * 1000)} (#${id})` : `appointment #${id}`;
  }

  /** The fields a person sees that differ: [label, before, after]. @param {any} x @param {any} y */
  function fieldChanges(x, y) {
    const when = (/** @type {any} */ a) => (a.all_day ? 'all day'
      : `${weekdayTime.format(a.start * 1000)}–${clock.format(a.end * 1000)}`);
    /** @type {[string, (a: any) => string][]} */
    const fields = [
      ['Status', (a) => a.status],
      ['Arrival', (a) => a.customer_status],
      ['When', when],
      ['Staff', (a) => staffNames(a.staff_ids)],
      ['Service', (a) => directory.productLabel(a.product_id)],
      ['Customer', (a) => directory.customerName(a.customer_id)],
      ['Notes', (a) => a.notes || '—'],
      ['Overlap allowed', (a) => (a.overlap_allowed ? 'yes' : 'no')],
    ];
    return fields.map(([label, show]) => /** @type {[string, string, string]} */ ([label, show(x), show(y)]))
      .filter(([, before, after]) => before !== after);
  }

  /** Who made the row's newest change we know of, and when. @param {number} id @param {number} [version] */
  function lastChange(id, version) {
    const change = lastChanges.get(id);
    if (!change || (version != null && change.version != null && change.version < version)) return null;
    return {
      who: change.actor ? TsseActivity.actorLabel(change.actor, directory.staffName) : 'someone',
      at: clock.format(change.ts * 1000),
    };
  }

  function describe(a) {
    const when = new Intl.DateTimeFormat(undefined, {dateStyle: 'medium', timeStyle: 'short'});
    return [
      ['Appointment', '#' + a.id],
      ['Status', STATUS_TEXT[a.status] || a.status],
      ['When', a.all_day ? 'all day' : `${when.format(a.start * 1000)} – ${when.format(a.end * 1000)}`],
      ['Customer', a.customer_id == null ? 'Guest' : `${directory.customerName(a.customer_id)} (#${a.customer_id})`],
      ['Customer status', a.customer_status],
      ['Staff', (a.staff_ids || []).map((id) => `${directory.staffName(id)} (#${id})`).join(', ') || 'none'],
      ['Service', a.product_id == null ? 'none' : `${directory.productLabel(a.product_id)} (#${a.product_id})`],
      ['Order', a.order_id == null ? '—' : `#${a.order_id} (item #${a.order_item_id})`],
      ['Cost', a.cost],
      ['Notes', a.notes || '—'],
      ...(a.overlap_allowed ? [['Overlap', '⚠ allowed (booked anyway)']] : []),
      ...(lastChange(a.id) ? [['Last change', `${lastChange(a.id).at} by ${lastChange(a.id).who}`]] : []),
    ];
  }

  // The card that opened the panel gets the focus back when it closes.
  let detailsOpener = /** @type {number | null} */ (null);

  /** @param {any} a @param {boolean} [focus] move the keyboard focus to the panel (opened by the user) */
  function showDetails(a, focus = false) {
    if (focus) detailsOpener = a.id;
    const other = detailsId !== a.id;
    detailsId = a.id;
    showMove(a, other);
    if (actions) actions.show(a);
    els.detailsBody.replaceChildren(...describe(a).flatMap(([label, value]) => {
      const dt = document.createElement('dt');
      const dd = document.createElement('dd');
      dt.textContent = label;
      dd.textContent = value;
      return [dt, dd];
    }));
    if (customerCard) customerCard.show(a.customer_id, a.id, focus);
    els.details.hidden = false;
    if (focus) els.details.focus();
  }

  function closeDetails() {
    els.details.hidden = true;
    els.move.hidden = true;
    detailsId = null;
    if (actions) actions.show(null);
    if (customerCard) customerCard.clear();
    const opener = detailsOpener;
    detailsOpener = null;
    if (opener == null) return;
    // The card may have been drawn afresh meanwhile: find it by its id, in the view shown.
    const where = document.body.dataset.view === 'staff' ? '#staff-day-columns' : '#calendar';
    const card = /** @type {HTMLElement | null} */ (
      document.querySelector(`${where} [data-appointment-id="${opener}"]`));
    if (card) card.focus();
  }

  /*
   * The keyboard's reschedule: a start time field and "Move", the same
   * versioned PATCH (If-Match) a drag sends, keeping the length. Offered
   * where a drag is: writable, timed, not cancelled. The field is filled
   * when the panel opens on another appointment, not while someone types.
   * @param {any} a @param {boolean} other the panel just turned to `a`
   */
  function showMove(a, other) {
    els.move.hidden = !canWrite() || a.all_day || a.status === 'cancelled' || a.status === 'trash';
    if (other || document.activeElement !== els.moveStart) {
      els.moveStart.value = TsseBooking.localInput(new Date(a.start * 1000));
    }
  }

  async function onMove(/** @type {Event} */ e) {
    e.preventDefault();
    const a = appointments.rows.get(detailsId);
    const start = new Date(els.moveStart.value);
    if (!a || Number.isNaN(start.getTime())) {
      els.detailsError.textContent = 'Enter the new date and start time.';
      return;
    }
    els.detailsError.textContent = '';
    const body = {start: toEpoch(start), end: toEpoch(start) + (a.end - a.start)};
    await sendChange(a, body, `Move to ${weekdayTime.format(start)}`);
  }

  // The panel follows the stream too: it shows the row as it is now.
  function refreshDetails() {
    const a = appointments.rows.get(detailsId);
    if (a) showDetails(a); else closeDetails();
  }

  // --- chrome -------------------------------------------------------------

  // parts: strings and {code} snippets, never HTML: messages can come from
  // the server.
  function showNotice(parts, kind) {
    els.noticeText.replaceChildren(...parts.map((part) => {
      if (typeof part === 'string') return part;
      const code = document.createElement('code');
      code.textContent = part.code;
      return code;
    }));
    els.notice.dataset.kind = kind;
    els.notice.hidden = false;
  }

  function hideNotice() {
    els.notice.hidden = true;
    delete els.notice.dataset.kind;
  }

  function updateBadge() {
    let text = STATUS_LABELS[status] || status;
    // An ended session gets nothing more: its label says it all.
    if (!ended && rangeLoads > 0) text += ' · loading these days…';
    else if (!ended && lastEventAt != null) text += ` · last change ${age(Date.now() - lastEventAt)} ago`;
    else if (!ended && started) text += ' · no changes yet';
    els.badge.textContent = text;
    els.badge.dataset.status = status;
  }

  function age(ms) {
    const s = Math.max(0, Math.round(ms / 1000));
    if (s < 60) return `${s} s`;
    if (s < 3600) return `${Math.floor(s / 60)} min`;
    return `${Math.floor(s / 3600)} h`;
  }

  function showError(err) {
    if (err.status === 401) endSession();
    else if (err.status === 403) {
      showNotice(['This link does not give access to the calendar. Ask the manager for the front desk’s link.'],
        'error');
    } else showNotice([`The calendar could not load the appointments: ${err.message}`], 'error');
  }

  /*
   * The session ended (its token expired, or another sign-in replaced it):
   * say so in plain words and keep what is on screen, read-only. Nothing
   * offers a write the server would refuse: no drag, no selection, no
   * booking, no panel actions.
   */
  function endSession() {
    showNotice(ENDED_MESSAGE, 'expired');
    if (ended) return;
    ended = true;
    document.body.dataset.readonly = 'true';
    applyWritable();
    if (els.bookingDialog.open) els.bookingDialog.close();
  }

  /** Who may write now: an admin whose session has not ended. */
  const canWrite = () => !!me && me.role === 'admin' && !ended;

  // Editing, selection and the write controls follow canWrite().
  function applyWritable() {
    const writable = canWrite();
    els.book.hidden = !writable;
    els.detailsActions.hidden = !writable;
    if (!writable) els.move.hidden = true;
    if (calendar) {
      calendar.setOption('editable', writable);
      calendar.setOption('selectable', writable);
    }
    for (const name of ['editable', 'selectable', 'droppable']) staffDay.setOption(name, writable);
  }

  // The page cannot start: say why, in the notice and in data-status.
  function fail(err) {
    if (err.status === 401 && !calendar) {
      // Before anything loaded there is no view to keep: just the words.
      showNotice(['You are not signed in — open the calendar link again.'], 'expired');
    } else showError(err);
    status = err.status === 401 || err.status === 403 ? 'unauthorized' : 'error';
    document.body.dataset.status = status;
    updateBadge();
  }

  // What the main calendar and the staff columns share: look, editing,
  // selection (admins) and the card hooks.
  /** @param {number | null | undefined} staffId the column's staff member (undefined: main calendar) */
  function sharedOptions(staffId) {
    const writable = canWrite();
    return {
      firstDay: 1,
      nowIndicator: true,
      // A card reads "09:30 Anna Berg · Haircut 45 min · Jonas".
      eventTimeFormat: {hour: '2-digit', minute: '2-digit', hourCycle: 'h23'},
      displayEventEnd: false,
      slotHeaderFormat: {hour: '2-digit', minute: '2-digit', hourCycle: 'h23'},
      scrollTime: '08:00',
      forceEventDuration: true, // a drop always has an end to send
      editable: writable,
      eventInteractive: true, // cards take keyboard focus; Enter opens the details
      // A busy hour stays readable: in a week's narrow day one card at
      // full width, two side by side in a day or a staff column, the rest
      // behind "+N", which lists them.
      eventMaxStack: staffId === undefined ? 1 : 2,
      // The list says start–end (and the status, in eventContent).
      views: {listWeek: {displayEventEnd: true}, listDay: {displayEventEnd: true},
        timeGridDay: {eventMaxStack: staffId === undefined && !NARROW.matches ? 4 : 2}},
      selectable: writable,
      selectMirror: true,
      // Bookings are timed: a free slot in the grid, not a whole day.
      selectAllow: (/** @type {any} */ span) => !span.allDay,
      select: (/** @type {any} */ info) => openBooking(info, staffId),
      // All-day and timed appointments stay what they are: the PATCH moves
      // start and end only.
      eventAllow: (/** @type {any} */ span, /** @type {any} */ moving) => !moving || span.allDay === moving.allDay,
      eventDrop: onMoved,
      eventResize: onMoved,
      // Staff columns take cards dragged from another column (reassignment).
      droppable: writable && staffId !== undefined,
      eventReceive: (/** @type {any} */ info) => onStaffDrop(info, staffId ?? null),
      eventClick: (/** @type {any} */ info) => {
        const a = info.event.extendedProps.appointment;
        if (a) showDetails(a, true);
      },
      // Time, who and what, then the status in words (colour is not the only
      // sign); the card's accessible name is this text, and for screen
      // readers only its end and the flags in words (cardExtra).
      eventContent: (/** @type {any} */ info) => {
        const a = info.event.extendedProps.appointment;
        if (!a) return true; // closed time: FullCalendar's own
        // A first line of time and status, then the names: a short card
        // cuts the names' second line, never the names themselves.
        const part = (/** @type {string} */ tag, /** @type {string} */ className, /** @type {string} */ text) => {
          const el = document.createElement(tag);
          el.className = className;
          el.textContent = text;
          return el;
        };
        const head = document.createElement('div');
        head.className = 'tsse-card-head';
        if (info.timeText) head.append(part('span', 'tsse-card-time', info.timeText), ' ');
        head.append(part('span', 'tsse-status-text', STATUS_TEXT[a.status] || a.status));
        // Spaces between the parts: read together they are words apart.
        return {domNodes: [head, document.createTextNode(' '), part('div', 'tsse-card-title', info.event.title),
          part('span', 'tsse-sr-only', cardExtra(a))]};
      },
      // A day cell's name ("November 19, 2026") would hide the cards in it
      // from speech input; its column header already says the date.
      dayCellDidMount: (/** @type {any} */ info) => info.el.removeAttribute('aria-label'),
      eventDidMount: (/** @type {any} */ info) => {
        const a = info.event.extendedProps.appointment;
        if (!a) return;
        info.el.title = describe(a).map(([label, value]) => `${label}: ${value}`).join('\n');
        info.el.dataset.appointmentId = a.id;
        activity.decorate(info.el, a.id);
      },
    };
  }

  // A phone shows one day (or the list) full width; a desk the week.
  const WIDE_TOOLBAR = {start: 'prev,next', center: 'title', end: 'timeGridWeek,timeGridDay,listWeek'};
  const NARROW_TOOLBAR = {start: 'prev,next', center: 'title', end: 'timeGridDay,listWeek'};

  function fitToScreen() {
    if (!calendar) return;
    calendar.setOption('headerToolbar', NARROW.matches ? NARROW_TOOLBAR : WIDE_TOOLBAR);
    if (NARROW.matches && calendar.view.type === 'timeGridWeek') calendar.changeView('timeGridDay');
    if (!NARROW.matches && calendar.view.type === 'timeGridDay' && fittedToPhone) calendar.changeView('timeGridWeek');
    fittedToPhone = NARROW.matches;
  }
  let fittedToPhone = false;

  function createCalendar() {
    fittedToPhone = NARROW.matches;
    calendar = new FullCalendar.Calendar(els.calendar, {
      ...sharedOptions(undefined),
      initialView: NARROW.matches ? 'timeGridDay' : 'timeGridWeek',
      // Weeks start on Monday (firstDay, shared), like the business week
      // the seed (and most shops) plan by: with the locale's Sunday start,
      // the demo week is out of view all Sunday.
      headerToolbar: NARROW.matches ? NARROW_TOOLBAR : WIDE_TOOLBAR,
      headerToolbarClass: 'tsse-toolbar', // a stable name for calendar.css (print, phone)
      height: '100%',
      // Navigating needs the new range's rows; the first range loads in start().
      datesSet: () => {
        if (!feed) return;
        followView();
        reloadClosed();
      },
    });
    calendar.render();
  }

  async function start() {
    if (!loaded) {
      fail(new ApiError(0, 'part of the page did not load. Reload the page; if this stays, tell the manager.'));
      return;
    }
    try {
      await establishSession();
      me = await retrying('me', () => api('GET', '/api/me'));
    } catch (err) {
      fail(err);
      return;
    }
    els.who.textContent = me.role === 'staff' ? `Staff #${me.staff_id}` : 'Admin';
    els.who.title = 'Session valid until ' + new Date(me.exp * 1000).toLocaleString();
    document.body.dataset.role = me.role;
    if (me.role === 'staff') {
      // The server sends a staff member only their own appointments.
      filter.staffId = me.staff_id;
      els.staff.disabled = true;
    } else {
      // Admins write (applyWritable shows the controls); staff see the same panel read-only.
      const ask = TsseWrites.createAsk();
      writes = TsseWrites.create({api, ask, describe: describeId, fieldChanges, lastChange,
        isAdmin: () => me.role === 'admin'});
      booking = TsseBooking.createBookingForm({writes, directory, onError: showError, api,
        isAdmin: () => me.role === 'admin'});
      actions = TsseBooking.createActions({
        container: els.detailsActions, error: els.detailsError, writes, ask, describe: describeId,
        onEdit: (/** @type {any} */ a) => booking.edit(a), onError: showError});
    }
    customerCard = TsseCustomers.createCard({api, directory, container: $('details-customer')});
    createCalendar();
    applyWritable();
    // ?transport=poll forces long-polling (for tests, and behind a proxy
    // the automatic detection misses).
    const transport = /** @type {any} */ (new URLSearchParams(location.search).get('transport') || 'auto');
    const {activeStart, activeEnd} = calendar.view;
    feed = TornadoSSE.follow(['appointments', 'availabilities'], {start: activeStart, end: activeEnd, transport}, {
      onChange: onRows, onEvent: applyEvent, onStatus: setStatus, onReset, onRetry: onRowsRetry,
      // Before the start, fail() says it.
      onError: (/** @type {any} */ err) => { if (started) showError(err); },
    });
    try {
      await Promise.all([feed.ready, retrying('directory', loadDirectory)]);
      started = true;
      // Needs the directory's staff. Not fatal: a calendar without shading still works.
      await retrying('closed', loadClosed).catch(showError);
      els.who.textContent = me.role === 'staff' ? directory.staffName(me.staff_id) : 'Admin';
    } catch (err) {
      fail(err);
      return;
    }
    if (lastEventId == null) noteEvent(feed.lastEventId);
    updateBadge();
  }

  els.staff.addEventListener('change', onFilterChange);
  els.product.addEventListener('change', onFilterChange);
  $('details-close').addEventListener('click', closeDetails);
  // Escape closes the panel from anywhere (dialogs close themselves first).
  document.addEventListener('keydown', (/** @type {KeyboardEvent} */ e) => {
    if (e.key !== 'Escape' || e.defaultPrevented || document.querySelector('dialog[open]')) return;
    if (!els.details.hidden) closeDetails();
  });
  els.now.addEventListener('click', goToNow);
  els.move.addEventListener('submit', onMove);
  // Capture: Enter on the focused card books the slot rather than opening the card.
  els.calendar.addEventListener('keydown', onGridKey, true);
  els.calendar.addEventListener('pointerdown', () => { if (slotCursor != null) showSlotCursor(null); });
  els.activityToggle.addEventListener('click', () => {
    const open = els.activityToggle.getAttribute('aria-expanded') !== 'true';
    els.activityToggle.setAttribute('aria-expanded', String(open));
    document.body.dataset.activity = open ? 'open' : 'closed';
  });
  NARROW.addEventListener('change', fitToScreen);
  els.book.addEventListener('click', () => openBooking({start: nextSlot()}));
  els.viewCalendar.addEventListener('click', () => showView(false));
  els.viewStaff.addEventListener('click', () => showView(true));
  $('staff-day-prev').addEventListener('click', () => shiftStaffDay(-1));
  $('staff-day-next').addEventListener('click', () => shiftStaffDay(1));
  $('staff-day-today').addEventListener('click', () => goToStaffDay(new Date()));
  $('notice-close').addEventListener('click', hideNotice);
  setInterval(updateBadge, 1000);

  window.tsse = {
    get calendar() { return calendar; },
    lastEventId: () => lastEventId,
    // Appointments the calendar holds (every range loaded so far, as
    // filtered and without trash), once the pending frame has rendered.
    appointmentIds: () => {
      if (calendar) render();
      return [...renderedAppointments.values()].map((a) => a.id).sort((x, y) => x - y);
    },
    // The same, with the fields a calendar shows, sorted by id.
    appointments: () => {
      if (calendar) render();
      return [...renderedAppointments.values()].sort((x, y) => x.id - y.id)
        .map(({id, start, end, status: s, all_day: allDay}) => ({id, start, end, status: s, all_day: allDay}));
    },
    appliedEventIds: () => [...applied],
    // One appointment as the store holds it (any field), with its card's
    // title, or null.
    appointment: (id) => {
      const a = appointments.rows.get(id);
      return a ? {...a, title: directory.cardTitle(a)} : null;
    },
    // The activity list's lines, newest first.
    activity: () => activity.lines(),
    resets: () => resets,
    // Event ids this page's own writes produced (their answers' Event-Id).
    ownEventIds: () => [...ownEventIds],
    // Whether this tab holds the browser's shared stream (client.js).
    leader: () => (started ? feed.leader : null),
    status: () => status,
    // The keyboard's free slot (epoch s), or null.
    slotCursor: () => slotCursor,
  };

  start();
})();
