/*
 * tornado-sse: the client of tornado_sse (SPEC §3 and §5), one ES module for
 * the browser and node, no dependencies, no build step. The calendar page
 * serves this file as it is (tornado-sse-global.js hands it to the page's
 * plain scripts as the global `TornadoSSE`); the npm package clients/js
 * ships this same file (its prepack copies it: one source, see README).
 *
 *   import {subscribe, follow} from 'tornado-sse';
 *   const sub = subscribe(
 *     {topics: ['appointment.*'], since: 41},      // since: a snapshot's last_event_id
 *     (event) => apply(event),                     // the SPEC §2 envelope
 *     {onStatus: (s) => show(s), onReset: (lastId) => reloadSnapshot()});
 *   sub.leader;  // whether this tab holds the connection the others share
 *   sub.close();
 *
 *   // Or let the client load the snapshot and keep it current:
 *   const view = follow('appointments', {start, end, staffId: 5},
 *     {onChange: (rows, change) => render(rows)});
 *
 * Options: topics (array or comma string), since, staffId, productId,
 * baseUrl (default: this page's origin; required in node), transport
 * ('auto' | 'sse' | 'poll'), shared (default true in a browser: one
 * connection per browser and identity, see below), heartbeat (seconds,
 * default 15, 0: off), token (sent as `Authorization: Bearer`; a browser's
 * EventSource cannot send headers and gets it in the query, so a page had
 * better use the cookie session of POST /session), EventSource and fetch
 * (the implementations to use, e.g. the npm `eventsource` package in node).
 * Status: 'live' | 'reconnecting' | 'polling' | 'offline' | 'unauthorized';
 * 'polling' is the live state of the long-poll transport, and a tab that
 * shares another's connection starts at 'reconnecting' until it hears.
 *
 * Guarantee: events reach onEvent in id order, each at most once, with no
 * gap after `since` (the server replays from the cursor). Anything with an
 * id <= the last delivered one is dropped, which is what makes overlapping
 * sources (browser reconnects, a new leader tab, a poll catching up) safe.
 * After onReset(lastId) the cursor is lastId, even if lower: the server's
 * history was cut or restarted, and the app must reload its snapshot.
 *
 * Deliberate choices, so that no one "fixes" them:
 * - Liveness (issue 23): EventSource hides comment lines, so `: keepalive`
 *   cannot prove a stream alive, and a half-open connection (a laptop lid,
 *   a Wi-Fi change, a proxy that stops forwarding) stays "open" for minutes.
 *   The stream is opened with `heartbeat=S` (SPEC §3): after S quiet
 *   seconds the server sends `event: heartbeat` (no id). No event and no
 *   heartbeat for 2×S + STALE_MARGIN_MS means two heartbeats were missed:
 *   the connection is stale, so it is closed, the status says
 *   'reconnecting', and a fresh connection resumes from the last id. A
 *   connection that goes stale twice in a row without delivering anything
 *   at all is a proxy buffering the stream: long-poll instead.
 * - EventSource hides HTTP status codes too. No `open` within
 *   OPEN_TIMEOUT_MS of the first connection means a proxy holds the
 *   response back, and after QUIET_CHECK_MS without an event one short
 *   /poll asks whether events exist that the stream has not shown; if the
 *   stream still has not shown them STALL_GRACE_MS later, it is buffered.
 *   Either way this subscription switches to long-polling for good. When
 *   the stream fails for good (readyState CLOSED), one fetch of /api/me
 *   tells auth failures (401/403) from outages.
 * - Unauthorized is not final: the client checks again every
 *   UNAUTHORIZED_RETRY_MS (and at once when another tab subscribes, e.g.
 *   after a fresh login), so a renewed cookie brings every tab back.
 * - Tabs share one connection per (baseUrl, topics, staffId, productId,
 *   transport, heartbeat) AND identity (issue 19: a staff tab must never
 *   lead an admin tab's stream, which would then say "live" and miss every
 *   event outside that staff member's scope). The identity is what
 *   /api/me answers for this tab's credentials (role, staff id) plus the
 *   session: a SHA-256 of the token when one is given, else the cookie
 *   session's expiry (scripts cannot read the HttpOnly cookie); never the
 *   token itself. When the identity cannot be learnt, the tab does not
 *   share. Every connection, once open, asks /api/me again: the cookie is
 *   one per browser, and if another login replaced it with another role or
 *   staff member, the subscription stops as 'unauthorized' rather than
 *   carry someone else's events. The tab holding the Web Lock `tornado-sse-leader:<key>`
 *   connects and fans events out over a BroadcastChannel; the others
 *   deliver what it sends. A tab that joins late asks the leader for the
 *   events it missed (the leader keeps the last HISTORY_SIZE); if they are
 *   gone, that tab gets onReset. When the leader tab closes, its lock
 *   passes to another tab, which connects from the last id *it* delivered:
 *   nothing is lost, duplicates are dropped by id. Without Web Locks or
 *   BroadcastChannel (or with shared: false) every tab connects on its own.
 * - EventSource has no wildcard listener for named events, so the stream
 *   listens for the topics of SPEC §1 plus any exact names in `topics`.
 */
// @ts-check

/**
 * Internal types, for the type check of the page's scripts (tsconfig.json);
 * the public types are clients/js/index.d.ts, checked with tsc --strict.
 *
 * @typedef {{id: number, topic: string, resource: string, resource_id: number,
 *            payload: any, ts: number}} SseEvent  the SPEC §2 envelope
 * @typedef {'live' | 'reconnecting' | 'polling' | 'offline' | 'unauthorized'} Status
 * @typedef {{topics?: readonly string[] | string, since?: number | null, staffId?: number | string | null,
 *            productId?: number | string | null, baseUrl?: string, transport?: string,
 *            shared?: boolean, heartbeat?: number, token?: string | null, EventSource?: any,
 *            fetch?: typeof fetch}} SubscribeOptions
 * @typedef {{onStatus?: (status: Status) => void, onReset?: (lastId: number) => void}} SubscribeCallbacks
 * @typedef {{readonly leader: boolean, readonly status: Status | null,
 *            readonly lastEventId: number | null, close: () => void}} Subscription
 * @typedef {any} Row  the public types say which columns
 * @typedef {SubscribeOptions & {start?: number | string | Date, end?: number | string | Date,
 *            snapshotTimeout?: number}} FollowRange
 * @typedef {'appointments' | 'availabilities'} Resource
 * @typedef {{resource: string, error: unknown, delayMs: number, attempt: number}} Retry
 * @typedef {{onChange?: (rows: Map<number, Row>, change: any) => void,
 *            onEvent?: (event: SseEvent, fresh: boolean) => void,
 *            onStatus?: (status: Status) => void, onReset?: (lastId: number) => void,
 *            onRetry?: (retry: Retry) => void, onError?: (error: unknown) => void}} FollowHandlers
 * @typedef {{rows: Map<number, Row>, of: (resource: Resource) => Map<number, Row>, ready: Promise<void>,
 *            setRange: (range: FollowRange) => Promise<void>, readonly leader: boolean,
 *            readonly status: Status | null, readonly lastEventId: number | null,
 *            close: () => void}} Following
 * @typedef {{topics: string[], since: number | null, staffId: number | null,
 *            productId: number | null, base: URL, crossOrigin: boolean, transport: string,
 *            shared: boolean, heartbeat: number, token: string | null,
 *            EventSource: any, fetch: typeof fetch}} Options
 * @typedef {{cursor: () => (number | null), deliver: (event: SseEvent) => void,
 *            reset: (lastId: number) => void, advance: (id: number) => void,
 *            status: (s: Status) => void, fallback: () => void, opened: () => void}} TransportContext
 * @typedef {{close: () => void, wake: () => void}} Transport
 * @typedef {{cursor: () => (number | null), deliver: (event: SseEvent) => boolean,
 *            reset: (lastId: number) => void, status: (s: Status) => boolean,
 *            currentStatus: () => (Status | null), lead: () => void, wake: () => void}} Tab
 * @typedef {{readonly leading: boolean, event: (event: SseEvent) => void,
 *            reset: (lastId: number) => void, status: (s: Status) => void,
 *            close: () => void}} Share
 */

/** @type {any} the page's window, or node's global */
const root = globalThis;

const KNOWN_TOPICS = [
  'appointment.created', 'appointment.updated', 'appointment.rescheduled',
  'appointment.cancelled', 'appointment.trashed', 'appointment.deleted',
  'availability.created', 'availability.updated', 'availability.deleted',
];
const DEFAULT_HEARTBEAT_S = 15; // SPEC §3 allows 5–300
// Past 2×S, how late a heartbeat may be before the stream counts as stale:
// with S = 15 the page says 'reconnecting' at most 33 s into a silence.
const STALE_MARGIN_MS = 3000;
const OPEN_TIMEOUT_MS = 10000;
// After a stale connection, the browser may send the new request on a
// kept-alive socket that died with it (it cannot tell; JS cannot choose):
// such a request never gets its head. A live server answers the head at
// once, so these tries wait FRESH_OPEN_TIMEOUT_MS, and FRESH_TRIES of them
// get through every socket a browser keeps for one host over HTTP/1.1 (6)
// before the patient OPEN_TIMEOUT_MS applies again.
const FRESH_OPEN_TIMEOUT_MS = 2000;
const FRESH_TRIES = 6;
const QUIET_CHECK_MS = 45000; // three default keepalive intervals
const STALL_GRACE_MS = 5000;
const POLL_TIMEOUT_S = 25;
const POLL_SLACK_MS = 15000; // a long-poll answering this late is presumed dead
const UNAUTHORIZED_RETRY_MS = 30000;
const BACKOFF_MIN_MS = 1000;
const BACKOFF_MAX_MS = 30000;
const HELLO_TIMEOUT_MS = 2000;
const HISTORY_SIZE = 1000;
const SNAPSHOT_RETRY_MAX_MS = 30000;
// Seconds a snapshot's answer may take, whole body included (then it is
// tried again): a 400-day snapshot streams in well under this.
const SNAPSHOT_TIMEOUT_S = 60;

/** @param {number | string | null | undefined} value @returns {number | null} */
function optionalInt(value) {
  return value == null || value === '' ? null : Number(value);
}

/** @param {SubscribeOptions} [options] @returns {Options} */
function normalize(options = {}) {
  const topics = Array.isArray(options.topics)
    ? options.topics : String(options.topics || '').split(',');
  const here = root.location ? root.location.href : undefined;
  if (!options.baseUrl && !here) throw new TypeError('tornado-sse: baseUrl is required outside a page');
  const base = new URL(options.baseUrl || root.location.origin, here);
  if (!base.pathname.endsWith('/')) base.pathname += '/';
  const heartbeat = options.heartbeat == null ? DEFAULT_HEARTBEAT_S : Number(options.heartbeat);
  if (heartbeat !== 0 && !(heartbeat >= 5 && heartbeat <= 300)) {
    throw new RangeError('tornado-sse: heartbeat is 0 (off) or 5–300 seconds (SPEC §3)');
  }
  return {
    topics: topics.map((t) => t.trim()).filter(Boolean),
    since: options.since == null ? null : Number(options.since),
    staffId: optionalInt(options.staffId),
    productId: optionalInt(options.productId),
    base,
    crossOrigin: Boolean(root.location) && base.origin !== root.location.origin,
    transport: options.transport || 'auto',
    // Sharing is between the tabs of one browser; a node process has none.
    shared: options.shared !== undefined ? options.shared !== false : typeof root.document === 'object',
    heartbeat,
    token: options.token || null,
    EventSource: options.EventSource || root.EventSource,
    fetch: options.fetch || ((input, init) => root.fetch(input, init)),
  };
}

/**
 * @param {Options} opts @param {string} path
 * @param {Record<string, string | number | null>} params @returns {string}
 */
function endpoint(opts, path, params) {
  const url = new URL(path, opts.base);
  const all = {
    topics: opts.topics.join(','), staff_id: opts.staffId, product_id: opts.productId, ...params,
  };
  for (const [name, value] of Object.entries(all)) {
    if (value != null && value !== '') url.searchParams.set(name, String(value));
  }
  return url.href;
}

/** @param {Options} opts @param {AbortSignal} [signal] @returns {RequestInit} */
function fetchOptions(opts, signal) {
  /** @type {Record<string, string>} */
  const headers = {Accept: 'application/json'};
  if (opts.token) headers.Authorization = 'Bearer ' + opts.token;
  return {credentials: opts.crossOrigin ? 'include' : 'same-origin', headers, signal};
}

// 'ok' | 'unauthorized' | 'offline' | 'error': why a connection failed.
/** @param {Options} opts @returns {Promise<string>} */
async function probeAuth(opts) {
  try {
    const res = await opts.fetch(new URL('api/me', opts.base).href, fetchOptions(opts));
    if (res.status === 401 || res.status === 403) return 'unauthorized';
    return res.ok ? 'ok' : 'error';
  } catch (err) {
    return 'offline';
  }
}

/**
 * Who this tab's credentials are (issue 19): `who` (role and staff id: what
 * decides which events a stream gets) and `session` (a SHA-256 of the token,
 * or the cookie session's expiry; never the token itself). Null when it
 * cannot be told (then the tab does not share).
 * @param {Options} opts @returns {Promise<{who: string, session: string} | null>}
 */
async function identify(opts) {
  try {
    const res = await opts.fetch(new URL('api/me', opts.base).href, fetchOptions(opts));
    if (!res.ok) return null;
    const me = await res.json();
    let session;
    if (opts.token) {
      if (!root.crypto || !root.crypto.subtle) return null; // not a secure context
      const digest = await root.crypto.subtle.digest('SHA-256', new TextEncoder().encode(opts.token));
      session = 'token:' + [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, '0')).join('');
    } else {
      session = 'cookie:' + me.exp; // the HttpOnly cookie is out of reach; its expiry is not
    }
    return {who: JSON.stringify([me.role, me.staff_id ?? null]), session};
  } catch (err) {
    return null;
  }
}

// An application callback that throws is reported, but must not break
// the delivery loop or the cursor bookkeeping around it.
/** @param {((...args: any[]) => void) | undefined} callback @param {...any} args */
function safely(callback, ...args) {
  try {
    if (callback) callback(...args);
  } catch (err) {
    if (root.reportError) root.reportError(err); else console.error(err);
  }
}

/** @param {number} attempt @returns {number} ms */
function backoff(attempt) {
  const ms = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** attempt);
  return ms / 2 + Math.random() * ms / 2; // jitter: tabs of many users do not retry in step
}

// A wait that wake() cuts short: the browser came back online, or a new
// tab (perhaps just logged in) subscribed.
function sleeper() {
  /** @type {ReturnType<typeof setTimeout> | undefined} */
  let timer;
  /** @type {((value?: unknown) => void) | null} */
  let resolveWait = null;
  return {
    /** @param {number} ms @returns {Promise<unknown>} */
    sleep(ms) {
      return new Promise((resolve) => {
        resolveWait = resolve;
        timer = setTimeout(resolve, ms);
      });
    },
    wake() {
      clearTimeout(timer);
      if (resolveWait) resolveWait();
      resolveWait = null;
    },
  };
}

/**
 * Stall detection for one SSE connection, its own unit so that openSse
 * only connects and parses. EventSource shows neither status codes nor
 * comments, so clocks stand in for them (see "Deliberate choices"):
 * expectOpen() arms the open timeout; once open, every event or heartbeat
 * re-arms the quiet check, which asks /poll whether events exist that the
 * stream has not shown, and (with heartbeats) the stale timer.
 * `pending(since)` answers that question (a short poll); `onBuffered()` is
 * called when the stream is found holding events back, `onStale()` when
 * two heartbeats were missed.
 *
 * @param {{cursor: () => (number | null), pending: (since: number) => Promise<number[]>,
 *          onBuffered: () => void, staleMs: number, onStale: () => void}} hooks
 */
function stallWatch(hooks) {
  /** @type {ReturnType<typeof setTimeout> | undefined} */
  let openTimer;
  /** @type {ReturnType<typeof setTimeout> | undefined} */
  let quietTimer;
  /** @type {ReturnType<typeof setTimeout> | undefined} */
  let staleTimer;
  let stopped = false;

  function armQuietCheck() {
    clearTimeout(quietTimer);
    quietTimer = setTimeout(checkBuffered, QUIET_CHECK_MS);
    if (hooks.staleMs > 0) {
      clearTimeout(staleTimer);
      staleTimer = setTimeout(() => { if (!stopped) hooks.onStale(); }, hooks.staleMs);
    }
  }

  async function checkBuffered() {
    const cursor = hooks.cursor();
    if (stopped || cursor == null) return;
    const pending = await hooks.pending(cursor);
    if (stopped) return;
    if (pending.length === 0) { armQuietCheck(); return; }
    const newest = Math.max(...pending);
    setTimeout(() => {
      if (stopped) return;
      const now = hooks.cursor();
      if (now == null || now < newest) hooks.onBuffered(); else armQuietCheck();
    }, STALL_GRACE_MS);
  }

  return {
    /** No `open` within `ms`: call onTimeout. @param {() => void} onTimeout */
    expectOpen(onTimeout, ms = OPEN_TIMEOUT_MS) {
      stopped = false;
      clearTimeout(openTimer);
      openTimer = setTimeout(onTimeout, ms);
    },
    /** The connection opened: stop the open timeout, start the quiet check. */
    opened() {
      stopped = false;
      clearTimeout(openTimer);
      armQuietCheck();
    },
    /** The stream said something: it is not quiet. */
    heard() {
      armQuietCheck();
    },
    /** The connection failed: its quiet is no evidence of buffering. */
    interrupted() {
      clearTimeout(quietTimer);
      clearTimeout(staleTimer);
    },
    stop() {
      stopped = true;
      clearTimeout(openTimer);
      clearTimeout(quietTimer);
      clearTimeout(staleTimer);
    },
  };
}

/**
 * Event ids that a short /poll from `since` finds (none when unsure:
 * the stream's own error handling covers outages).
 * @param {Options} opts @param {number} since @returns {Promise<number[]>}
 */
async function pendingIds(opts, since) {
  try {
    const res = await opts.fetch(endpoint(opts, 'poll', {since_id: since, timeout: 1}), fetchOptions(opts));
    if (!res.ok) return [];
    const body = await res.json();
    return (body.events || []).map((/** @type {SseEvent} */ e) => Number(e.id));
  } catch (err) {
    return [];
  }
}

/*
 * Transports talk to the server for the leader. `ctx` is what they need:
 * cursor() (last delivered id or null), deliver(envelope), reset(lastId),
 * advance(id) (a poll's last_id, past events the filters hid), status(s)
 * and fallback() (give up on SSE, poll instead).
 */

/** @param {Options} opts @param {TransportContext} ctx @returns {Transport} */
function openSse(opts, ctx) {
  const names = new Set([...KNOWN_TOPICS, ...opts.topics.filter((t) => !t.endsWith('*'))]);
  const wait = sleeper();
  /** @type {EventSource | null} */
  let es = null;
  let closed = false;
  let attempts = 0;
  let heardSinceOpen = false;
  let deafStale = 0; // connections in a row that went stale having delivered nothing
  let freshTries = 0; // quick tries since the last stale connection (see FRESH_TRIES)
  const watch = stallWatch({
    cursor: ctx.cursor,
    pending: (since) => pendingIds(opts, since),
    onBuffered: () => { if (!closed) { drop(); ctx.fallback(); } },
    staleMs: opts.heartbeat > 0 ? 2 * opts.heartbeat * 1000 + STALE_MARGIN_MS : 0,
    onStale,
  });

  /** @param {boolean} [fresh] replacing a stale connection (not the first, not after an error) */
  function connect(fresh = false) {
    if (closed) return;
    /** @type {Record<string, string | number | null>} */
    const params = {since_id: ctx.cursor(), heartbeat: opts.heartbeat || null};
    /** @type {Record<string, any>} */
    const init = {withCredentials: opts.crossOrigin};
    // An EventSource that fetches for itself (the npm `eventsource`
    // package says so with this symbol) sends the token as a header; a
    // browser's cannot send headers, so the token goes in the query (SPEC
    // §4 reads it there; the server masks it in logs).
    if (opts.token && Symbol.for('eventsource.supports-fetch-override') in opts.EventSource) {
      const authorization = 'Bearer ' + opts.token;
      init.fetch = (/** @type {any} */ input, /** @type {any} */ req) => opts.fetch(input,
        {...req, headers: {...(req && req.headers), Authorization: authorization}});
    } else if (opts.token) {
      params.token = opts.token;
    }
    const url = endpoint(opts, 'sse', params);
    const source = new opts.EventSource(url, init);
    es = source;
    heardSinceOpen = false;
    // Listeners, not onopen/onerror: npm `eventsource` calls those before
    // dispatching, with no event target yet (onError checks the target).
    source.addEventListener('open', onOpen);
    source.addEventListener('error', onError);
    for (const name of names) source.addEventListener(name, onMessage);
    source.addEventListener('message', onMessage);
    source.addEventListener('reset', onReset);
    source.addEventListener('heartbeat', onHeartbeat);
    // No answer at all, not even an error: a proxy is holding the
    // response back (the classic buffering one), so poll instead. After a
    // stale connection, though, the browser may have sent the request on
    // another socket that died with it (a kept-alive one, after a NAT or
    // Wi-Fi change): drop it and try a fresh one again.
    if (!fresh) {
      watch.expectOpen(() => { drop(); ctx.fallback(); });
    } else if (freshTries++ < FRESH_TRIES) {
      watch.expectOpen(() => { drop(); connect(true); }, FRESH_OPEN_TIMEOUT_MS);
    } else {
      watch.expectOpen(() => { drop(); connect(true); });
    }
  }

  function onOpen() {
    attempts = 0;
    freshTries = 0;
    ctx.status('live');
    watch.opened();
    ctx.opened();
  }

  function heard() {
    heardSinceOpen = true;
    deafStale = 0;
    watch.heard();
  }

  /** @param {MessageEvent} e */
  function onMessage(e) {
    heard();
    ctx.deliver(JSON.parse(e.data));
  }

  /** @param {MessageEvent} e */
  function onReset(e) {
    heard();
    ctx.reset(Number(JSON.parse(e.data).last_id));
  }

  // The server is there and the connection carries bytes; the cursor does
  // not move (a heartbeat has no id, SPEC §3).
  function onHeartbeat() {
    heard();
  }

  // Two heartbeats missed: the connection is half-open or the server gone.
  // Close it (the browser would wait for TCP to notice, minutes) and resume
  // from the cursor on a fresh one.
  function onStale() {
    if (closed) return;
    deafStale = heardSinceOpen ? 0 : deafStale + 1;
    drop();
    if (deafStale >= 2) { ctx.fallback(); return; } // it never delivers: a buffering proxy
    ctx.status('reconnecting');
    connect(true);
  }

  /** @param {Event} e */
  function onError(e) {
    if (!es || e.target !== es) return; // from a connection we already dropped
    watch.interrupted();
    if (es.readyState === 0) { // CONNECTING
      // The browser reconnects by itself, sending Last-Event-ID; if that
      // hangs, start over ourselves.
      ctx.status(root.navigator && root.navigator.onLine === false ? 'offline' : 'reconnecting');
      watch.expectOpen(() => { drop(); recover(); });
      return;
    }
    drop();
    recover();
  }

  // The stream failed for good (an HTTP error, which EventSource does not
  // show us, or a hang): find out why, then reconnect from our cursor.
  async function recover() {
    const why = await probeAuth(opts);
    if (closed) return;
    if (why === 'unauthorized') {
      ctx.status('unauthorized');
      await wait.sleep(UNAUTHORIZED_RETRY_MS);
    } else {
      ctx.status(why === 'offline' ? 'offline' : 'reconnecting');
      await wait.sleep(backoff(attempts++));
    }
    connect();
  }

  function drop() {
    watch.stop();
    if (es) es.close();
    es = null;
  }

  connect();
  return {
    close() { closed = true; drop(); wait.wake(); },
    wake: wait.wake,
  };
}

/** @param {Options} opts @param {TransportContext} ctx @returns {Transport} */
function openPoll(opts, ctx) {
  const wait = sleeper();
  let closed = false;
  /** @type {AbortController | null} */
  let controller = null;

  (async function loop() {
    let failures = 0; // in a row
    let first = true;
    while (!closed) {
      // A long-poll that has not failed is the live state of this
      // transport, even while it waits for the first event.
      if (failures === 0) ctx.status('polling');
      const abort = new AbortController();
      controller = abort;
      const deadline = setTimeout(() => abort.abort(), POLL_TIMEOUT_S * 1000 + POLL_SLACK_MS);
      let pause = 0;
      try {
        const url = endpoint(opts, 'poll', {since_id: ctx.cursor(), timeout: POLL_TIMEOUT_S});
        const res = await opts.fetch(url, fetchOptions(opts, abort.signal));
        if (res.status === 401 || res.status === 403) {
          ctx.status('unauthorized');
          failures++;
          pause = UNAUTHORIZED_RETRY_MS;
        } else if (!res.ok) {
          ctx.status('reconnecting');
          pause = backoff(failures++);
        } else {
          const body = await res.json();
          if (closed) break;
          if (first || failures > 0) ctx.opened(); // (re)connected
          first = false;
          failures = 0;
          if (body.reset) ctx.reset(Number(body.reset.last_id ?? body.last_id));
          for (const event of body.events || []) ctx.deliver(event);
          ctx.advance(Number(body.last_id));
        }
      } catch (err) {
        if (closed) break;
        // A TypeError is "server unreachable"; an abort is our deadline.
        ctx.status(err instanceof Error && err.name === 'AbortError' ? 'reconnecting' : 'offline');
        pause = backoff(failures++);
      } finally {
        clearTimeout(deadline);
      }
      if (pause && !closed) await wait.sleep(pause);
    }
  })();

  return {
    close() { closed = true; if (controller) controller.abort(); wait.wake(); },
    wake: wait.wake,
  };
}

/**
 * Tab sharing, its own unit: one tab per browser and identity holds the
 * connection (the Web Lock `tornado-sse-leader:<key>`), fans events out
 * over a BroadcastChannel and keeps the last HISTORY_SIZE for tabs that
 * join late; the others deliver what it sends. The protocol: a joining tab
 * posts `hello` (its cursor); the leader answers `welcome` (the events
 * after that cursor, or null when they are gone, plus its status); the
 * leader posts `event`, `reset` and `status` as they happen.
 *
 * `tab` is the subscription seen from here: cursor(), deliver(event)
 * (false when a duplicate), reset(lastId), status(s) (false when
 * unchanged), currentStatus(), lead() (open the connection: this tab is
 * the leader now) and wake() (retry the connection now).
 *
 * @param {string} key @param {Tab} tab @returns {Share}
 */
function shareTabs(key, tab) {
  const tabId = Math.random().toString(36).slice(2); // addresses the welcome
  const channel = new BroadcastChannel('tornado-sse:' + key);
  const lockAbort = new AbortController();
  /** @type {(() => void) | null} */
  let releaseLock = null;
  let leading = false;
  let closed = false;
  // Leader only: what it has fanned out, for tabs that join late.
  /** @type {SseEvent[]} */
  let history = [];
  let historyFrom = tab.cursor();
  // Follower only: events that arrive before the leader answered hello.
  /** @type {{buffer: SseEvent[], timer: ReturnType<typeof setTimeout>} | null} */
  let joining = {buffer: [], timer: setTimeout(() => finishJoining(null), HELLO_TIMEOUT_MS)};

  /** @param {object} message */
  function post(message) {
    if (!closed) channel.postMessage(message);
  }

  /** The leader's answer to hello (or null: no answer / we lead now). @param {any} answer */
  function finishJoining(answer) {
    if (!joining) return;
    const {buffer, timer} = joining;
    joining = null;
    clearTimeout(timer);
    if (answer && answer.events === null) tab.reset(answer.lastId);
    /** @type {SseEvent[]} */
    const events = [...(answer ? answer.events || [] : []), ...buffer];
    events.sort((a, b) => Number(a.id) - Number(b.id)).forEach((e) => tab.deliver(e));
    if (answer && answer.status) tab.status(answer.status);
  }

  /** @param {any} hello */
  function welcome(hello) {
    // Events after the joiner's cursor, or null when they are gone.
    const events = hello.since == null ? []
      : historyFrom != null && hello.since < historyFrom ? null
        : history.filter((e) => Number(e.id) > hello.since);
    post({type: 'welcome', to: hello.from, events, lastId: tab.cursor(), status: tab.currentStatus()});
    // Perhaps it has just logged in: retry now if we were waiting.
    tab.wake();
  }

  /** @param {any} msg */
  function follow(msg) {
    if (msg.type === 'event') {
      if (joining) joining.buffer.push(msg.event); else tab.deliver(msg.event);
    } else if (msg.type === 'reset') {
      if (joining) joining.buffer = [];
      tab.reset(msg.lastId);
    } else if (msg.type === 'status') {
      tab.status(msg.status);
    }
  }

  channel.onmessage = ({data: msg}) => {
    if (closed) return;
    if (msg.type === 'hello') {
      if (leading) welcome(msg);
    } else if (msg.type === 'welcome') {
      if (msg.to === tabId) finishJoining(msg);
    } else if (!leading) {
      // A leader trusts only its own connection: what a former leader
      // sent during the handover reaches it again, or already did.
      follow(msg);
    }
  };

  post({type: 'hello', from: tabId, since: tab.cursor()});
  tab.status('reconnecting');
  root.navigator.locks.request('tornado-sse-leader:' + key, {signal: lockAbort.signal}, () => {
    if (closed) return undefined; // granted just as we closed: pass it on
    finishJoining(null);
    history = [];
    historyFrom = tab.cursor();
    leading = true;
    tab.lead();
    // Hold the lock until close() or until this tab goes away.
    return new Promise((resolve) => { releaseLock = () => resolve(undefined); });
  }).catch(() => { /* AbortError: closed while waiting for the lock */ });

  return {
    get leading() { return leading; },
    event(event) {
      history.push(event);
      if (history.length > HISTORY_SIZE) historyFrom = Number(history.shift()?.id);
      post({type: 'event', event});
    },
    reset(lastId) {
      history = [];
      historyFrom = lastId;
      post({type: 'reset', lastId});
    },
    status(s) {
      post({type: 'status', status: s});
    },
    close() {
      closed = true;
      if (joining) clearTimeout(joining.timer);
      if (releaseLock) releaseLock(); else lockAbort.abort();
      channel.close();
    },
  };
}

/**
 * The same interface for a tab on its own (no Web Locks or
 * BroadcastChannel, no identity, or shared: false): it leads at once,
 * shares nothing.
 * @param {Tab} tab @returns {Share}
 */
function alone(tab) {
  tab.lead();
  return {
    get leading() { return true; },
    event() {},
    reset() {},
    status() {},
    close() {},
  };
}

/**
 * Subscribe: the cursor and de-duplication live here; tab sharing
 * (shareTabs, keyed by identity), stall detection (stallWatch, inside
 * openSse) and the transports are composed, each knowing only what it is
 * told.
 *
 * @param {SubscribeOptions} options
 * @param {(event: SseEvent) => void} onEvent
 * @param {SubscribeCallbacks} [callbacks]
 * @returns {Subscription}
 */
export function subscribe(options, onEvent, {onStatus, onReset} = {}) {
  const opts = normalize(options);
  if (typeof opts.EventSource !== 'function' && opts.transport !== 'poll') {
    // No EventSource here (node without one passed in): long-poll.
    opts.transport = 'poll';
  }
  const scope = JSON.stringify([opts.base.href, opts.topics, opts.staffId, opts.productId, opts.transport,
    opts.heartbeat]);
  let last = opts.since; // id of the last event delivered here
  /** @type {Status | null} */
  let status = null;
  let closed = false;
  /** @type {Transport | null} */
  let transport = null; // set while this tab is the leader
  /** @type {Share | null} */
  let share = null;
  /** @type {string | null} who the events are for (identify()): learnt first, then checked */
  let who = null;

  /** @param {SseEvent} event */
  function deliver(event) {
    const id = Number(event.id);
    if (closed || (last != null && id <= last)) return false;
    last = id;
    safely(onEvent, event);
    return true;
  }

  /** @param {number} lastId */
  function resetTo(lastId) {
    last = lastId;
    safely(onReset, lastId);
  }

  /** @param {Status} s */
  function setStatus(s) {
    if (s === status || closed) return false;
    status = s;
    safely(onStatus, s);
    return true;
  }

  /** @type {TransportContext} */
  const ctx = {
    cursor: () => last,
    deliver(event) {
      if (deliver(event) && share) share.event(event);
    },
    reset(lastId) {
      if (share) share.reset(lastId);
      resetTo(lastId);
    },
    advance(id) {
      if (Number.isFinite(id) && (last == null || id > last)) last = id;
    },
    status(s) {
      if (setStatus(s) && share) share.status(s);
    },
    fallback() {
      if (transport) transport.close();
      transport = openPoll(opts, ctx);
    },
    opened() {
      // A connection authenticates with the credentials of the moment: if
      // another login replaced the cookie since, this stream now carries
      // someone else's events (issue 19). Stop and say so; the page must
      // be opened again for the new session.
      identify(opts).then((now) => {
        if (closed || !now) return;
        if (who === null) who = now.who;
        else if (now.who !== who) sessionChanged();
      });
    },
  };

  function sessionChanged() {
    ctx.status('unauthorized');
    end();
  }

  /** @type {Tab} */
  const tab = {
    cursor: () => last,
    deliver,
    reset: resetTo,
    status: setStatus,
    currentStatus: () => status,
    lead() {
      transport = opts.transport === 'poll' ? openPoll(opts, ctx) : openSse(opts, ctx);
    },
    wake() { if (transport) transport.wake(); },
  };

  const canShare = opts.shared && root.navigator && root.navigator.locks
    && typeof root.BroadcastChannel === 'function';
  const onOnline = () => { if (transport) transport.wake(); };
  if (typeof root.addEventListener === 'function') root.addEventListener('online', onOnline);
  if (canShare) {
    // Whom to share with depends on who we are (issue 19): ask first.
    setStatus('reconnecting');
    identify(opts).then((identity) => {
      if (closed) return;
      if (identity) who = identity.who;
      share = identity ? shareTabs(JSON.stringify([scope, identity.who, identity.session]), tab) : alone(tab);
    });
  } else {
    // alone() opens the transport at once, and a poll reports its status
    // synchronously, before `share` is set: there is nobody to tell yet.
    share = alone(tab);
  }

  return {
    // Whether this tab holds the connection (others receive from it).
    get leader() { return transport !== null && !closed; },
    get status() { return status; },
    get lastEventId() { return last; },
    close: end,
  };

  function end() {
    if (closed) return;
    closed = true;
    if (typeof root.removeEventListener === 'function') root.removeEventListener('online', onOnline);
    if (transport) transport.close();
    if (share) share.close();
  }
}

/** @param {number | string | Date} t @returns {number} epoch seconds */
function epoch(t) {
  if (t instanceof Date) return Math.floor(t.getTime() / 1000);
  if (typeof t === 'number') return t;
  const parsed = Date.parse(t);
  if (Number.isNaN(parsed)) throw new RangeError(`tornado-sse: not a time: ${t}`);
  return Math.floor(parsed / 1000);
}

/** An HTTP error of the snapshot (4xx are not retried). */
export class SnapshotError extends Error {
  /** @param {number} status @param {string} message @param {any} body */
  constructor(status, message, body) {
    super(message);
    this.name = 'SnapshotError';
    this.status = status;
    this.body = body;
    /** Seconds the server asked to wait (Retry-After of a 429 or 503), else 0. */
    this.retryAfter = 0;
  }
}

/** @type {Record<string, {topic: string, key: string}>} */
const RESOURCES = {
  appointments: {topic: 'appointment', key: 'appointments'},
  availabilities: {topic: 'availability', key: 'availabilities'},
};

/**
 * Snapshot then live (SPEC §5), so that no app rewrites it: load the rows
 * of each resource (the appointments in `range`) and their `last_event_id`,
 * subscribe once from the oldest of those ids, and apply created/updated/
 * deleted events to keyed row sets. Several resources share one
 * subscription (so one stream per browser, not one per resource).
 *
 * Consistency: each row remembers the event id it reflects, and each
 * resource the id its newest snapshot reflects (its floor); a change
 * applies only when newer than both, so snapshots reloaded (a new range, a
 * reset) and the events that race them end in the same rows in any order,
 * and an event a snapshot already holds is not news. An appointment that
 * leaves the range or the filters (or is trashed) leaves the set; one that
 * enters it joins. A row whose content did not change keeps its object, so
 * a view that compares by identity redraws nothing.
 *
 * @param {Resource | readonly Resource[]} resources
 * @param {FollowRange} range
 * @param {FollowHandlers} [handlers]
 * @returns {Following}
 */
export function follow(resources, range, handlers = {}) {
  const names = typeof resources === 'string' ? [resources] : [...resources];
  for (const name of names) {
    if (!RESOURCES[name]) {
      throw new TypeError(`tornado-sse: follow() takes 'appointments' or 'availabilities', not ${name}`);
    }
  }
  if (names.length === 0 || new Set(names).size !== names.length) {
    throw new TypeError('tornado-sse: follow() takes each resource once, at least one');
  }
  const topics = names.map((name) => RESOURCES[name].topic + '.*');
  const opts = normalize({...range, topics, since: null});
  const staffId = opts.staffId;
  const productId = opts.productId;
  const hasAppointments = names.includes('appointments');
  const snapshotTimeoutMs = 1000 * (range.snapshotTimeout ?? SNAPSHOT_TIMEOUT_S);
  if (!(snapshotTimeoutMs > 0)) throw new RangeError('tornado-sse: snapshotTimeout is seconds, more than 0');
  /** @param {FollowRange} r @returns {{start: number, end: number}} */
  const spanOf = (r) => ({start: epoch(r.start ?? Date.now() - 864e5), end: epoch(r.end ?? Date.now() + 7 * 864e5)});
  // The appointments' range; while a new one loads, rows of either count
  // (an event that moves a row into the new range must not be dropped
  // before the new snapshot arrives).
  let span = spanOf(range);
  /** @type {{start: number, end: number} | null} */
  let nextSpan = null;
  // A staff token sees only its own appointments (SPEC §4), and the event
  // that moves one away reaches it too: with this, that row leaves the set.
  /** @type {number | null} */
  let ownStaffId = null;
  let scoped = !hasAppointments; // whether ownStaffId is known (api/me answered)
  /** @type {Record<string, Map<number, Row>>} */
  const sets = {};
  /** @type {Record<string, Map<number, number>>} row id -> event id it reflects (kept after deletion) */
  const versions = {};
  /** @type {Record<string, number>} the event id each resource's newest snapshot reflects */
  const floors = {};
  /** @type {Record<string, number>} generation of each resource's newest snapshot load */
  const loads = {};
  for (const name of names) {
    sets[name] = new Map();
    versions[name] = new Map();
    floors[name] = -1;
    loads[name] = 0;
  }
  /** @type {Promise<void> | null} the load of nextSpan */
  let rangeLoad = null;
  /** @type {Subscription | null} */
  let subscription = null;
  let closed = false;
  const abort = new AbortController();

  /** @param {{start: number, end: number}} s @param {Row} row */
  const overlaps = (s, row) => row.start < s.end && row.end > s.start;

  /** @param {string} name @param {Row} row @returns {boolean} whether this set holds it */
  function covers(name, row) {
    if (name !== 'appointments') return true;
    if (row.status === 'trash' || !(overlaps(span, row) || (nextSpan !== null && overlaps(nextSpan, row)))) {
      return false;
    }
    const staff = (row.staff_ids || []).map(Number);
    if (staffId != null && !staff.includes(staffId)) return false;
    if (ownStaffId != null && !staff.includes(ownStaffId)) return false;
    return productId == null || Number(row.product_id) === productId;
  }

  /**
   * @param {string} name @param {number} id @param {number} version @param {Row | null} row
   * @returns {boolean} whether the set changed
   */
  function apply(name, id, version, row) {
    const seen = versions[name];
    if ((seen.get(id) ?? -1) >= version) return false;
    seen.set(id, version);
    const set = sets[name];
    if (row === null || !covers(name, row)) return set.delete(id);
    const old = set.get(id);
    if (old !== undefined && JSON.stringify(old) === JSON.stringify(row)) return false;
    set.set(id, row);
    return true;
  }

  /**
   * GET as JSON; any answer but 2xx throws a SnapshotError, with the
   * Retry-After of a 429 or 503 in `retryAfter` (seconds).
   * @param {string} url @returns {Promise<any>}
   */
  async function getJson(url) {
    // Bounded: a server that accepted and never answers (a half-open
    // connection, a stuck proxy) must not leave the rows loading forever.
    const request = new AbortController();
    const onClose = () => request.abort();
    abort.signal.addEventListener('abort', onClose);
    let timedOut = false;
    const clock = setTimeout(() => { timedOut = true; request.abort(); }, snapshotTimeoutMs);
    try {
      const res = await opts.fetch(url, fetchOptions(opts, request.signal));
      const body = await res.json().catch(() => undefined);
      if (!res.ok) {
        const err = new SnapshotError(res.status, (body && body.message) || `HTTP ${res.status}`, body ?? null);
        err.retryAfter = Number(res.headers.get('Retry-After')) || 0;
        throw err;
      }
      if (body === undefined) throw new Error('tornado-sse: the answer was cut short or is not JSON');
      return body;
    } catch (err) {
      if (timedOut) throw new Error(`tornado-sse: no answer within ${snapshotTimeoutMs / 1000} s`);
      throw err;
    } finally {
      clearTimeout(clock);
      abort.signal.removeEventListener('abort', onClose);
    }
  }

  /**
   * Load one resource's snapshot into its set until it arrives: network
   * errors, 5xx and 429 are retried (with backoff, at least Retry-After),
   * other refusals throw. Null when a newer load took over or we closed.
   * @param {string} name @returns {Promise<number | null>} the snapshot's last_event_id
   */
  async function load(name) {
    const generation = ++loads[name];
    const superseded = () => closed || generation !== loads[name];
    for (let attempt = 0; ; attempt++) {
      const wanted = nextSpan || span;
      /** @type {Record<string, number>} */
      const params = name === 'appointments' ? {start: wanted.start, end: wanted.end} : {};
      let delay = 0;
      try {
        if (!scoped && name === 'appointments') {
          // Who we are, once: a staff member's set holds only their appointments.
          const me = await getJson(new URL('api/me', opts.base).href);
          if (me.role === 'staff') ownStaffId = Number(me.staff_id);
          scoped = true;
        }
        const body = await getJson(endpoint({...opts, topics: []}, 'api/' + name, params));
        if (superseded()) return null;
        const version = Number(body.last_event_id);
        if (name === 'appointments' && wanted === nextSpan) {
          span = nextSpan;
          nextSpan = null;
        }
        const set = sets[name];
        const listed = new Set();
        for (const row of body[RESOURCES[name].key]) {
          listed.add(row.id);
          apply(name, row.id, version, row);
        }
        // The snapshot is the whole truth, as of its id, about its range;
        // rows outside the range (the old one's) leave without a tombstone.
        for (const [id, row] of [...set]) {
          if (!listed.has(id)) {
            if (covers(name, row)) apply(name, id, version, null); else set.delete(id);
          }
        }
        // Events up to the snapshot's id are in it: tombstones of rows it
        // answers for are no longer needed.
        floors[name] = version;
        for (const [id, seen] of [...versions[name]]) if (seen <= version && !set.has(id)) versions[name].delete(id);
        safely(handlers.onChange, set, {type: 'snapshot', resource: name, lastEventId: version});
        return version;
      } catch (err) {
        if (superseded()) return null;
        const transient = !(err instanceof SnapshotError) || err.status >= 500 || err.status === 429;
        if (!transient) throw err;
        // A restart or an outage (network error, 5xx), or too many at once (429): the rows must arrive.
        const retryAfter = err instanceof SnapshotError ? err.retryAfter * 1000 : 0;
        delay = Math.min(SNAPSHOT_RETRY_MAX_MS, Math.max(retryAfter, backoff(attempt)));
        safely(handlers.onRetry, {resource: name, error: err, delayMs: delay, attempt});
      }
      await new Promise((resolve) => setTimeout(resolve, delay));
      if (superseded()) return null;
    }
  }

  /** @param {SseEvent} event */
  function onEvent(event) {
    const name = names.find((n) => RESOURCES[n].topic === event.resource);
    const id = Number(event.resource_id);
    const eventId = Number(event.id);
    const fresh = name !== undefined && eventId > floors[name] && eventId > (versions[name].get(id) ?? -1);
    safely(handlers.onEvent, event, fresh);
    if (!fresh || name === undefined) return;
    const action = event.topic.split('.')[1];
    const set = sets[name];
    const old = set.get(id) || null;
    const row = action === 'deleted' || action === 'trashed' ? null : event.payload;
    if (!apply(name, id, eventId, row)) return;
    const now = set.get(id) || null;
    safely(handlers.onChange, set, {
      type: now === null ? 'delete' : old ? 'update' : 'insert', resource: name, id, row: now, old, event});
  }

  /** @param {readonly string[]} which @returns {Promise<number | null>} the oldest snapshot id */
  async function loadAll(which) {
    const ids = await Promise.all(which.map(load));
    return ids.some((id) => id === null) ? null : Math.min(.../** @type {number[]} */ (ids));
  }

  // The stream cannot replay our gap (history cut, server restarted): the
  // rows may miss anything, so start over from fresh snapshots. The rows
  // stay until those arrive (a view does not blink empty); the versions go,
  // since a new history may number its events anew.
  async function onReset(/** @type {number} */ lastId) {
    safely(handlers.onReset, lastId);
    for (const name of names) {
      versions[name].clear();
      floors[name] = -1;
    }
    try {
      await loadAll(names);
    } catch (err) {
      safely(handlers.onError, err);
    }
  }

  const ready = loadAll(names).then((since) => {
    if (since === null || closed) return;
    subscription = subscribe({...range, topics, since}, onEvent, {onStatus: handlers.onStatus, onReset});
  });
  ready.catch((err) => {
    // Refused for good (a 4xx): nothing will follow, so the other
    // resources' loads stop retrying too.
    closed = true;
    abort.abort();
    safely(handlers.onError, err);
  });

  return {
    rows: sets[names[0]],
    of(/** @type {Resource} */ name) {
      if (!sets[name]) throw new TypeError(`tornado-sse: this follow() does not follow ${name}`);
      return sets[name];
    },
    ready,
    async setRange(/** @type {FollowRange} */ next) {
      if (!hasAppointments) throw new TypeError('tornado-sse: setRange() is for appointments');
      const wanted = spanOf(next);
      // Refused here, changing nothing: the server would answer 400.
      if (!(wanted.end > wanted.start)) throw new RangeError('tornado-sse: setRange() needs end after start');
      await ready;
      /** @param {{start: number, end: number} | null} s */
      const same = (s) => s !== null && s.start === wanted.start && s.end === wanted.end;
      if (closed || (same(span) && nextSpan === null)) return;
      // Asked twice for the range on the way (a view and its own code): one load.
      if (same(nextSpan) && rangeLoad) return rangeLoad;
      nextSpan = wanted;
      // Null: a newer load (another range, a reset) took over, and applies the newest range.
      const loading = load('appointments').then(() => {});
      rangeLoad = loading;
      try {
        await loading;
      } catch (err) {
        // Refused (a 4xx): the follow stays on the range it had.
        if (nextSpan === wanted) nextSpan = null;
        throw err;
      } finally {
        if (rangeLoad === loading) rangeLoad = null;
      }
    },
    get leader() { return subscription ? subscription.leader : false; },
    get status() { return subscription ? subscription.status : null; },
    get lastEventId() { return subscription ? subscription.lastEventId : null; },
    close() {
      closed = true;
      abort.abort();
      if (subscription) subscription.close();
    },
  };
}
