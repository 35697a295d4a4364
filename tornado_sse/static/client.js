/*
 * TornadoSSE: browser client for tornado_sse (SPEC §3 and §5). No
 * dependencies, no build step; defines the global `TornadoSSE`.
 *
 *   const sub = TornadoSSE.subscribe(
 *     {topics: ['appointment.*'], since: 41},      // since: a snapshot's last_event_id
 *     (event) => apply(event),                     // the SPEC §2 envelope
 *     {onStatus: (s) => show(s), onReset: (lastId) => reloadSnapshot()});
 *   sub.leader;  // whether this tab holds the connection the others share
 *   sub.close();
 *
 * Options: topics (array or comma string), since, staffId, productId,
 * baseUrl (default: this page's origin), transport ('auto' | 'sse' | 'poll'),
 * shared (default true: one connection per browser, see below).
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
 * - EventSource hides both HTTP status codes and comment lines, so the
 *   `: keepalive` comments cannot prove that a stream is alive. Instead:
 *   no `open` within OPEN_TIMEOUT_MS of the first connection means a proxy
 *   holds the response back, and after QUIET_CHECK_MS without an event one
 *   short /poll asks whether events exist that the stream has not shown; if
 *   the stream still has not shown them STALL_GRACE_MS later, it is
 *   buffered. Either way this subscription switches to long-polling for
 *   good. When the stream fails for good (readyState CLOSED), one fetch of
 *   /api/me tells auth failures (401/403) from outages.
 * - Unauthorized is not final: the client checks again every
 *   UNAUTHORIZED_RETRY_MS (and at once when another tab subscribes, e.g.
 *   after a fresh login), so a renewed cookie brings every tab back.
 * - Tabs share one connection per (baseUrl, topics, staffId, productId,
 *   transport): the tab holding the Web Lock `tornado-sse-leader:<key>`
 *   connects and fans events out over a BroadcastChannel; the others
 *   deliver what it sends. A tab that joins late asks the leader for the events it missed
 *   (the leader keeps the last HISTORY_SIZE); if they are gone, that tab
 *   gets onReset. When the leader tab closes, its lock passes to another
 *   tab, which connects from the last id *it* delivered: nothing is lost,
 *   duplicates are dropped by id. Without Web Locks or BroadcastChannel
 *   (or with shared: false) every tab connects on its own.
 * - EventSource has no wildcard listener for named events, so the stream
 *   listens for the topics of SPEC §1 plus any exact names in `topics`.
 */
// @ts-check
(function (root) {
  'use strict';

  /**
   * @typedef {{id: number | string, topic: string, resource?: string, resource_id?: number,
   *            payload?: any, ts?: number}} SseEvent  the SPEC §2 envelope
   * @typedef {{topics?: string[] | string, since?: number | null, staffId?: number | string | null,
   *            productId?: number | string | null, baseUrl?: string, transport?: string,
   *            shared?: boolean}} SubscribeOptions
   * @typedef {{topics: string[], since: number | null, staffId: number | null,
   *            productId: number | null, base: URL, crossOrigin: boolean, transport: string,
   *            shared: boolean}} Options
   * @typedef {{cursor: () => (number | null), deliver: (event: SseEvent) => void,
   *            reset: (lastId: number) => void, advance: (id: number) => void,
   *            status: (s: string) => void, fallback: () => void}} TransportContext
   * @typedef {{close: () => void, wake: () => void}} Transport
   * @typedef {{cursor: () => (number | null), deliver: (event: SseEvent) => boolean,
   *            reset: (lastId: number) => void, status: (s: string) => boolean,
   *            currentStatus: () => (string | null), lead: () => void, wake: () => void}} Tab
   * @typedef {{readonly leading: boolean, event: (event: SseEvent) => void,
   *            reset: (lastId: number) => void, status: (s: string) => void,
   *            close: () => void}} Share
   */

  const KNOWN_TOPICS = [
    'appointment.created', 'appointment.updated', 'appointment.rescheduled',
    'appointment.cancelled', 'appointment.trashed', 'appointment.deleted',
    'availability.created', 'availability.updated', 'availability.deleted',
  ];
  const OPEN_TIMEOUT_MS = 10000;
  const QUIET_CHECK_MS = 45000; // three default keepalive intervals
  const STALL_GRACE_MS = 5000;
  const POLL_TIMEOUT_S = 25;
  const POLL_SLACK_MS = 15000; // a long-poll answering this late is presumed dead
  const UNAUTHORIZED_RETRY_MS = 30000;
  const BACKOFF_MIN_MS = 1000;
  const BACKOFF_MAX_MS = 30000;
  const HELLO_TIMEOUT_MS = 2000;
  const HISTORY_SIZE = 1000;

  /** @param {SubscribeOptions} [options] @returns {Options} */
  function normalize(options = {}) {
    const topics = Array.isArray(options.topics)
      ? options.topics : String(options.topics || '').split(',');
    const base = new URL(options.baseUrl || root.location.origin, root.location.href);
    if (!base.pathname.endsWith('/')) base.pathname += '/';
    return {
      topics: topics.map((t) => t.trim()).filter(Boolean),
      since: options.since == null ? null : Number(options.since),
      staffId: options.staffId == null || options.staffId === '' ? null : Number(options.staffId),
      productId: options.productId == null || options.productId === '' ? null : Number(options.productId),
      base,
      crossOrigin: base.origin !== root.location.origin,
      transport: options.transport || 'auto',
      shared: options.shared !== false,
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
    return {credentials: opts.crossOrigin ? 'include' : 'same-origin', signal};
  }

  // 'ok' | 'unauthorized' | 'offline' | 'error': why a connection failed.
  /** @param {Options} opts @returns {Promise<string>} */
  async function probeAuth(opts) {
    try {
      const res = await fetch(new URL('api/me', opts.base).href, fetchOptions(opts));
      if (res.status === 401 || res.status === 403) return 'unauthorized';
      return res.ok ? 'ok' : 'error';
    } catch (err) {
      return 'offline';
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
   * comments, so two clocks stand in for them (see "Deliberate choices"):
   * expectOpen() arms the open timeout, and once open, every event re-arms
   * the quiet check, which asks /poll whether events exist that the stream
   * has not shown. `pending(since)` answers that question (a short poll);
   * `onBuffered()` is called when the stream is found holding events back.
   *
   * @param {{cursor: () => (number | null), pending: (since: number) => Promise<number[]>,
   *          onBuffered: () => void}} hooks
   */
  function stallWatch(hooks) {
    /** @type {ReturnType<typeof setTimeout> | undefined} */
    let openTimer;
    /** @type {ReturnType<typeof setTimeout> | undefined} */
    let quietTimer;
    let stopped = false;

    function armQuietCheck() {
      clearTimeout(quietTimer);
      quietTimer = setTimeout(checkBuffered, QUIET_CHECK_MS);
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
      /** No `open` within OPEN_TIMEOUT_MS: call onTimeout. @param {() => void} onTimeout */
      expectOpen(onTimeout) {
        stopped = false;
        clearTimeout(openTimer);
        openTimer = setTimeout(onTimeout, OPEN_TIMEOUT_MS);
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
      },
      stop() {
        stopped = true;
        clearTimeout(openTimer);
        clearTimeout(quietTimer);
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
      const res = await fetch(endpoint(opts, 'poll', {since_id: since, timeout: 1}), fetchOptions(opts));
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
    const watch = stallWatch({
      cursor: ctx.cursor,
      pending: (since) => pendingIds(opts, since),
      onBuffered: () => { if (!closed) { drop(); ctx.fallback(); } },
    });

    function connect() {
      if (closed) return;
      const source = new EventSource(endpoint(opts, 'sse', {since_id: ctx.cursor()}),
        {withCredentials: opts.crossOrigin});
      es = source;
      source.onopen = onOpen;
      source.onerror = onError;
      for (const name of names) source.addEventListener(name, onMessage);
      source.addEventListener('message', onMessage);
      source.addEventListener('reset', onReset);
      // No answer at all, not even an error: a proxy is holding the
      // response back (the classic buffering one), so poll instead.
      watch.expectOpen(() => { drop(); ctx.fallback(); });
    }

    function onOpen() {
      attempts = 0;
      ctx.status('live');
      watch.opened();
    }

    /** @param {MessageEvent} e */
    function onMessage(e) {
      watch.heard();
      ctx.deliver(JSON.parse(e.data));
    }

    /** @param {MessageEvent} e */
    function onReset(e) {
      watch.heard();
      ctx.reset(Number(JSON.parse(e.data).last_id));
    }

    /** @param {Event} e */
    function onError(e) {
      if (!es || e.target !== es) return; // from a connection we already dropped
      watch.interrupted();
      if (es.readyState === EventSource.CONNECTING) {
        // The browser reconnects by itself, sending Last-Event-ID; if that
        // hangs, start over ourselves.
        ctx.status(navigator.onLine === false ? 'offline' : 'reconnecting');
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
          const res = await fetch(url, fetchOptions(opts, abort.signal));
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
   * Tab sharing, its own unit: one tab per browser holds the connection
   * (the Web Lock `tornado-sse-leader:<key>`), fans events out over a
   * BroadcastChannel and keeps the last HISTORY_SIZE for tabs that join
   * late; the others deliver what it sends. The protocol: a joining tab
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
    navigator.locks.request('tornado-sse-leader:' + key, {signal: lockAbort.signal}, () => {
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
   * BroadcastChannel, or shared: false): it leads at once, shares nothing.
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
   * (shareTabs), stall detection (stallWatch, inside openSse) and the
   * transports are composed, each knowing only what it is told.
   *
   * @param {SubscribeOptions} options
   * @param {(event: SseEvent) => void} onEvent
   * @param {{onStatus?: (status: string) => void, onReset?: (lastId: number) => void}} [callbacks]
   */
  function subscribe(options, onEvent, {onStatus, onReset} = {}) {
    const opts = normalize(options);
    const key = JSON.stringify([opts.base.href, opts.topics, opts.staffId, opts.productId, opts.transport]);
    let last = opts.since; // id of the last event delivered here
    /** @type {string | null} */
    let status = null;
    let closed = false;
    /** @type {Transport | null} */
    let transport = null; // set while this tab is the leader
    /** @type {Share | null} */
    let share = null;

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

    /** @param {string} s */
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
    };

    /** @type {Tab} */
    const tab = {
      cursor: () => last,
      deliver,
      reset: resetTo,
      status: setStatus,
      currentStatus: () => status,
      lead() {
        const useSse = opts.transport !== 'poll' && typeof root.EventSource === 'function';
        transport = useSse ? openSse(opts, ctx) : openPoll(opts, ctx);
      },
      wake() { if (transport) transport.wake(); },
    };

    const canShare = opts.shared && root.navigator && navigator.locks
      && typeof root.BroadcastChannel === 'function';
    const onOnline = () => { if (transport) transport.wake(); };
    root.addEventListener('online', onOnline);
    // alone() opens the transport at once, and a poll reports its status
    // synchronously, before `share` is set: there is nobody to tell yet.
    share = canShare ? shareTabs(key, tab) : alone(tab);

    return {
      // Whether this tab holds the connection (others receive from it).
      get leader() { return transport !== null && !closed; },
      close() {
        if (closed) return;
        closed = true;
        root.removeEventListener('online', onOnline);
        if (transport) transport.close();
        if (share) share.close();
      },
    };
  }

  root.TornadoSSE = {subscribe};
})(globalThis);
