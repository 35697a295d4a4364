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
(function (root) {
  'use strict';

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

  function endpoint(opts, path, params) {
    const url = new URL(path, opts.base);
    const all = {
      topics: opts.topics.join(','), staff_id: opts.staffId, product_id: opts.productId, ...params,
    };
    for (const [name, value] of Object.entries(all)) {
      if (value != null && value !== '') url.searchParams.set(name, value);
    }
    return url.href;
  }

  function fetchOptions(opts, signal) {
    return {credentials: opts.crossOrigin ? 'include' : 'same-origin', signal};
  }

  // 'ok' | 'unauthorized' | 'offline' | 'error': why a connection failed.
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
  function safely(callback, ...args) {
    try {
      if (callback) callback(...args);
    } catch (err) {
      if (root.reportError) root.reportError(err); else console.error(err);
    }
  }

  function backoff(attempt) {
    const ms = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** attempt);
    return ms / 2 + Math.random() * ms / 2; // jitter: tabs of many users do not retry in step
  }

  // A wait that wake() cuts short: the browser came back online, or a new
  // tab (perhaps just logged in) subscribed.
  function sleeper() {
    let timer = null;
    let resolveWait = null;
    return {
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

  /*
   * Transports talk to the server for the leader. `ctx` is what they need:
   * cursor() (last delivered id or null), deliver(envelope), reset(lastId),
   * advance(id) (a poll's last_id, past events the filters hid), status(s)
   * and fallback() (give up on SSE, poll instead).
   */
  function openSse(opts, ctx) {
    const names = new Set([...KNOWN_TOPICS, ...opts.topics.filter((t) => !t.endsWith('*'))]);
    const wait = sleeper();
    let es = null;
    let closed = false;
    let attempts = 0;
    let openTimer = null;
    let quietTimer = null;

    function connect() {
      if (closed) return;
      es = new EventSource(endpoint(opts, 'sse', {since_id: ctx.cursor()}),
        {withCredentials: opts.crossOrigin});
      es.onopen = onOpen;
      es.onerror = onError;
      for (const name of names) es.addEventListener(name, onMessage);
      es.addEventListener('message', onMessage);
      es.addEventListener('reset', onReset);
      // No answer at all, not even an error: a proxy is holding the
      // response back (the classic buffering one), so poll instead.
      armOpenTimer(() => { drop(); ctx.fallback(); });
    }

    function armOpenTimer(onTimeout) {
      clearTimeout(openTimer);
      openTimer = setTimeout(onTimeout, OPEN_TIMEOUT_MS);
    }

    function armQuietCheck() {
      clearTimeout(quietTimer);
      quietTimer = setTimeout(checkBuffered, QUIET_CHECK_MS);
    }

    async function checkBuffered() {
      const cursor = ctx.cursor();
      if (closed || cursor == null) return;
      let pending = [];
      try {
        const res = await fetch(endpoint(opts, 'poll', {since_id: cursor, timeout: 1}),
          fetchOptions(opts));
        if (res.ok) pending = (await res.json()).events || [];
      } catch (err) {
        // Unknown: the stream's own error handling covers outages.
      }
      if (closed) return;
      if (pending.length === 0) { armQuietCheck(); return; }
      const newest = Math.max(...pending.map((e) => Number(e.id)));
      setTimeout(() => {
        if (closed) return;
        if (ctx.cursor() < newest) { drop(); ctx.fallback(); } else armQuietCheck();
      }, STALL_GRACE_MS);
    }

    function onOpen() {
      clearTimeout(openTimer);
      attempts = 0;
      ctx.status('live');
      armQuietCheck();
    }

    function onMessage(e) {
      armQuietCheck();
      ctx.deliver(JSON.parse(e.data));
    }

    function onReset(e) {
      armQuietCheck();
      ctx.reset(Number(JSON.parse(e.data).last_id));
    }

    function onError(e) {
      if (e.target !== es) return; // from a connection we already dropped
      clearTimeout(quietTimer);
      if (es.readyState === EventSource.CONNECTING) {
        // The browser reconnects by itself, sending Last-Event-ID; if that
        // hangs, start over ourselves.
        ctx.status(navigator.onLine === false ? 'offline' : 'reconnecting');
        armOpenTimer(() => { drop(); recover(); });
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
      clearTimeout(openTimer);
      clearTimeout(quietTimer);
      if (es) es.close();
      es = null;
    }

    connect();
    return {
      close() { closed = true; drop(); wait.wake(); },
      wake: wait.wake,
    };
  }

  function openPoll(opts, ctx) {
    const wait = sleeper();
    let closed = false;
    let controller = null;

    (async function loop() {
      let failures = 0; // in a row
      while (!closed) {
        // A long-poll that has not failed is the live state of this
        // transport, even while it waits for the first event.
        if (failures === 0) ctx.status('polling');
        controller = new AbortController();
        const deadline = setTimeout(() => controller.abort(), POLL_TIMEOUT_S * 1000 + POLL_SLACK_MS);
        let pause = 0;
        try {
          const url = endpoint(opts, 'poll', {since_id: ctx.cursor(), timeout: POLL_TIMEOUT_S});
          const res = await fetch(url, fetchOptions(opts, controller.signal));
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
          ctx.status(err.name === 'AbortError' ? 'reconnecting' : 'offline');
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

  function subscribe(options, onEvent, {onStatus, onReset} = {}) {
    const opts = normalize(options);
    const key = JSON.stringify([opts.base.href, opts.topics, opts.staffId, opts.productId, opts.transport]);
    const tabId = Math.random().toString(36).slice(2); // addresses the welcome
    let last = opts.since; // id of the last event delivered here
    let status = null;
    let closed = false;
    let transport = null; // set while this tab is the leader
    let channel = null;
    let releaseLock = null;
    const lockAbort = new AbortController();

    // Leader only: what it has fanned out, for tabs that join late.
    let history = [];
    let historyFrom = last;

    // Follower only: events that arrive before the leader answered hello.
    let joining = null;

    function deliver(event) {
      const id = Number(event.id);
      if (closed || (last != null && id <= last)) return false;
      last = id;
      safely(onEvent, event);
      return true;
    }

    function resetTo(lastId) {
      last = lastId;
      safely(onReset, lastId);
    }

    function setStatus(s) {
      if (s === status || closed) return false;
      status = s;
      safely(onStatus, s);
      return true;
    }

    function post(message) {
      if (channel) channel.postMessage(message);
    }

    const ctx = {
      cursor: () => last,
      deliver(event) {
        if (!deliver(event)) return;
        history.push(event);
        if (history.length > HISTORY_SIZE) historyFrom = Number(history.shift().id);
        post({type: 'event', event});
      },
      reset(lastId) {
        history = [];
        historyFrom = lastId;
        resetTo(lastId);
        post({type: 'reset', lastId});
      },
      advance(id) {
        if (Number.isFinite(id) && (last == null || id > last)) last = id;
      },
      status(s) {
        if (setStatus(s)) post({type: 'status', status: s});
      },
      fallback() {
        transport.close();
        transport = openPoll(opts, ctx);
      },
    };

    function lead() {
      finishJoining(null);
      history = [];
      historyFrom = last;
      const useSse = opts.transport !== 'poll' && typeof root.EventSource === 'function';
      transport = useSse ? openSse(opts, ctx) : openPoll(opts, ctx);
    }

    // The leader's answer to hello (or null: no answer / we lead now).
    function finishJoining(answer) {
      if (!joining) return;
      const {buffer, timer} = joining;
      joining = null;
      clearTimeout(timer);
      if (answer && answer.events === null) resetTo(answer.lastId);
      const events = [...(answer ? answer.events || [] : []), ...buffer];
      events.sort((a, b) => a.id - b.id).forEach(deliver);
      if (answer && answer.status) setStatus(answer.status);
    }

    function welcome(hello) {
      // Events after the joiner's cursor, or null when they are gone.
      const events = hello.since == null ? []
        : hello.since < historyFrom ? null
          : history.filter((e) => Number(e.id) > hello.since);
      post({type: 'welcome', to: hello.from, events, lastId: last, status});
      // Perhaps it has just logged in: retry now if we were waiting.
      transport.wake();
    }

    function follow(msg) {
      if (msg.type === 'event') {
        if (joining) joining.buffer.push(msg.event); else deliver(msg.event);
      } else if (msg.type === 'reset') {
        if (joining) joining.buffer = [];
        resetTo(msg.lastId);
      } else if (msg.type === 'status') {
        setStatus(msg.status);
      }
    }

    function onMessage({data: msg}) {
      if (closed) return;
      if (msg.type === 'hello') {
        if (transport) welcome(msg);
      } else if (msg.type === 'welcome') {
        if (msg.to === tabId) finishJoining(msg);
      } else if (!transport) {
        // A leader trusts only its own connection: what a former leader
        // sent during the handover reaches it again, or already did.
        follow(msg);
      }
    }

    const canShare = opts.shared && root.navigator && navigator.locks
      && typeof root.BroadcastChannel === 'function';
    const onOnline = () => { if (transport) transport.wake(); };
    root.addEventListener('online', onOnline);

    if (canShare) {
      channel = new BroadcastChannel('tornado-sse:' + key);
      channel.onmessage = onMessage;
      joining = {buffer: [], timer: setTimeout(() => finishJoining(null), HELLO_TIMEOUT_MS)};
      post({type: 'hello', from: tabId, since: last});
      setStatus('reconnecting');
      navigator.locks.request('tornado-sse-leader:' + key, {signal: lockAbort.signal}, () => {
        if (closed) return undefined; // granted just as we closed: pass it on
        lead();
        // Hold the lock until close() or until this tab goes away.
        return new Promise((resolve) => { releaseLock = resolve; });
      }).catch(() => { /* AbortError: closed while waiting for the lock */ });
    } else {
      lead();
    }

    return {
      // Whether this tab holds the connection (others receive from it).
      get leader() { return transport !== null && !closed; },
      close() {
        if (closed) return;
        closed = true;
        root.removeEventListener('online', onOnline);
        if (joining) clearTimeout(joining.timer);
        if (transport) transport.close();
        if (releaseLock) releaseLock(); else lockAbort.abort();
        if (channel) channel.close();
      },
    };
  }

  root.TornadoSSE = {subscribe};
})(globalThis);
