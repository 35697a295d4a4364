// @ts-check
/*
 * TsseWrites: every change the page makes to an appointment, made so that
 * nobody silently undoes someone else's (SPEC §8, issue 20).
 *
 * - PATCH and DELETE always carry `If-Match: "<version>"` of the row the
 *   person was looking at. A 412 means someone changed it first: the
 *   conflict dialog shows what changed and by whom, and the person either
 *   applies their change to the current row (sent again with the current
 *   version, so a third writer is caught the same way) or keeps the current.
 * - A 409 `rest_conflict` names the other appointment(s); an admin may book
 *   anyway (`overlap_allowed: true`). A 409 `rest_unavailable` names the
 *   rule; an admin may override it (`override_availability: true`).
 * - A POST carries an `Idempotency-Key`, one per booking attempt and the
 *   same on a retry after a network failure, so a blip never books twice.
 *
 * The stream still carries the result: nothing here changes the calendar.
 * The one dialog (#ask) is shared by confirmations and conflicts; ask()
 * resolves with the key of the button pressed, or null on Escape.
 */
(function (root) {
  'use strict';

  /** Automatic retries of a POST the network lost (same Idempotency-Key). */
  const NETWORK_RETRIES = 2;
  const RETRY_MS = 800;
  /** How long the conflict dialog waits for the stream to say who changed the row. */
  const WHO_WAIT_MS = 3000;

  /**
   * @typedef {{key: string, label: string, primary?: boolean, danger?: boolean}} Button
   * @typedef {string | {strong: string} | {list: string[]} | {table: [string, string, string][]}} Part
   * @typedef {{kind: string, title: string, parts: (() => Part[]) | Part[], buttons: Button[], refreshMs?: number}} Question
   */

  /** @param {Part} part @returns {Node} */
  function node(part) {
    if (typeof part === 'string') {
      const p = document.createElement('p');
      p.textContent = part;
      return p;
    }
    if ('strong' in part) {
      const p = document.createElement('p');
      const b = document.createElement('strong');
      b.textContent = part.strong;
      p.append(b);
      return p;
    }
    if ('list' in part) {
      const ul = document.createElement('ul');
      ul.append(...part.list.map((text) => {
        const li = document.createElement('li');
        li.textContent = text;
        return li;
      }));
      return ul;
    }
    const table = document.createElement('table');
    table.className = 'changes';
    for (const [i, row] of part.table.entries()) {
      const tr = document.createElement('tr');
      for (const text of row) {
        const cell = document.createElement(i === 0 ? 'th' : 'td');
        cell.textContent = text;
        tr.append(cell);
      }
      table.append(tr);
    }
    return table;
  }

  /** The shared question dialog. @returns {(q: Question) => Promise<string | null>} */
  function createAsk() {
    const dialog = /** @type {HTMLDialogElement} */ (document.getElementById('ask'));
    const title = /** @type {HTMLElement} */ (document.getElementById('ask-title'));
    const body = /** @type {HTMLElement} */ (document.getElementById('ask-body'));
    const buttons = /** @type {HTMLElement} */ (document.getElementById('ask-buttons'));
    /** @type {((key: string | null) => void) | null} */
    let pending = null;
    dialog.addEventListener('close', () => {
      const done = pending;
      pending = null;
      if (done) done(dialog.returnValue || null);
    });
    return (q) => {
      // A question asked while another is open replaces it (answered: no).
      if (pending) dialog.close('');
      dialog.dataset.kind = q.kind;
      title.textContent = q.title;
      const draw = () => body.replaceChildren(...(typeof q.parts === 'function' ? q.parts() : q.parts).map(node));
      draw();
      const timer = q.refreshMs ? setInterval(draw, 200) : null;
      if (timer) setTimeout(() => clearInterval(timer), q.refreshMs);
      buttons.replaceChildren(...q.buttons.map((b) => {
        const button = document.createElement('button');
        button.type = 'button';
        button.textContent = b.label;
        button.dataset.answer = b.key;
        if (b.primary) button.className = 'primary';
        if (b.danger) button.className = 'danger';
        button.addEventListener('click', () => dialog.close(b.key));
        return button;
      }));
      dialog.returnValue = '';
      dialog.showModal();
      // The first (safe) button has the focus: Enter never destroys by accident.
      /** @type {HTMLElement | null} */ (buttons.firstElementChild)?.focus();
      return new Promise((resolve) => {
        pending = (key) => {
          if (timer) clearInterval(timer);
          resolve(key);
        };
      });
    };
  }

  /** A fresh key per attempt: crypto.randomUUID needs a secure context, so fall back. */
  function newKey() {
    if (typeof crypto.randomUUID === 'function') return crypto.randomUUID();
    const b = crypto.getRandomValues(new Uint8Array(16));
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    const h = [...b].map((x) => x.toString(16).padStart(2, '0')).join('');
    return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
  }

  /**
   * @param {{
   *   api: (method: string, path: string, body?: any, headers?: Record<string, string>) => Promise<any>,
   *   ask: (q: Question) => Promise<string | null>,
   *   describe: (a: any) => string,
   *   fieldChanges: (before: any, after: any) => [string, string, string][],
   *   lastChange: (id: number, version: number) => {who: string, at: string} | null,
   *   isAdmin: () => boolean,
   * }} deps
   */
  function createWrites({api, ask, describe, fieldChanges, lastChange, isAdmin}) {
    /** @param {number} ms */
    const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

    /** Retries what the network lost; the server's answers are final. @param {() => Promise<any>} send */
    async function retrying(send) {
      for (let attempt = 0; ; attempt++) {
        try {
          return await send();
        } catch (failure) {
          const err = /** @type {any} */ (failure);
          if (err.status !== 0 || attempt >= NETWORK_RETRIES) throw err;
          await sleep(RETRY_MS * (attempt + 1));
        }
      }
    }

    /**
     * 409s the person can decide on: true when they chose to send again
     * with the override (set into `extra`), false when they declined.
     * @param {any} err @param {Record<string, any>} extra @param {string} what
     */
    async function decide409(err, extra, what) {
      const data = err.data || {};
      if (err.code === 'rest_conflict') {
        const others = (data.conflicts || []).map((/** @type {number} */ id) => describe(id));
        const parts = [`${what} overlaps ${others.length === 1 ? 'another appointment' : 'other appointments'}`
          + ' of the same staff member:', {list: others.length ? others : ['(one you cannot see from here)']}];
        if (!isAdmin()) {
          await ask({kind: 'overlap', title: 'Double booking', parts: [...parts,
            'Nothing was changed. Pick another time, or ask a manager to book it anyway.'],
          buttons: [{key: 'ok', label: 'OK'}]});
          return false;
        }
        const answer = await ask({kind: 'overlap', title: 'Book anyway?', parts: [...parts,
          'Booking anyway marks this appointment as a deliberate overlap.'],
        buttons: [{key: 'no', label: 'Don’t book'}, {key: 'yes', label: 'Book anyway', primary: true}]});
        if (answer !== 'yes') return false;
        extra.overlap_allowed = true;
        return true;
      }
      if (err.code === 'rest_unavailable') {
        const rule = data.rule || {};
        const name = rule.title ? `“${rule.title}”` : 'an availability rule';
        const parts = [`${what} falls in time closed by ${name}.`];
        if (!isAdmin()) {
          await ask({kind: 'unavailable', title: 'Closed time', parts: [...parts,
            'Nothing was changed. Pick a time when the salon and the staff member are available.'],
          buttons: [{key: 'ok', label: 'OK'}]});
          return false;
        }
        const answer = await ask({kind: 'unavailable', title: 'Override availability?', parts,
          buttons: [{key: 'no', label: 'Don’t book'}, {key: 'yes', label: 'Override and book', primary: true}]});
        if (answer !== 'yes') return false;
        extra.override_availability = true;
        return true;
      }
      return false;
    }

    /**
     * Someone changed the row first: show them what and by whom, and let
     * the person apply their change to the current row or keep it.
     * @param {any} seen the row as the person saw it @param {any} current the row now
     * @param {string} label what they meant to do ("Mark paid")
     * @param {[string, string, string][]} intended their change: field, from, to
     */
    async function conflict(seen, current, label, intended) {
      const answer = await ask({
        kind: 'conflict',
        title: 'Changed by someone else',
        refreshMs: WHO_WAIT_MS, // the stream may bring "who" a moment after the 412
        parts: () => {
          const change = lastChange(current.id, current.version);
          const changed = fieldChanges(seen, current);
          return [
            {strong: `${describe(current.id)} was changed ${change ? `by ${change.who} at ${change.at}`
              : 'by someone else'} while you were looking at it.`},
            ...(changed.length ? [{table: /** @type {[string, string, string][]} */ (
              [['', 'You saw', 'Now'], ...changed])}] : ['Nothing you can see changed.']),
            `Your change: ${label}`,
            ...(intended.length ? [{table: /** @type {[string, string, string][]} */ (
              [['', 'Now', 'Yours'], ...intended])}] : []),
          ];
        },
        buttons: [{key: 'keep', label: 'Keep current'}, {key: 'apply', label: 'Apply my change', primary: true}],
      });
      return answer === 'apply';
    }

    /**
     * A versioned PATCH (or DELETE: body null) of appointment `a`.
     * Resolves with the answer, or null when the person gave up (kept the
     * current row, or did not book anyway). Other errors are thrown.
     * @param {any} a the row as shown @param {Record<string, any> | null} body
     * @param {string} label @param {string} [query] for DELETE: '?force=true'
     */
    async function change(a, body, label, query = '') {
      let seen = a;
      /** @type {Record<string, any>} */
      const extra = {};
      for (;;) {
        /** @type {Record<string, string>} */
        const headers = seen.version != null ? {'If-Match': `"${seen.version}"`} : {};
        const path = `/api/appointments/${a.id}${query}`;
        try {
          // Not retried by itself: had a lost answer's write applied, the
          // retry's 412 would show the person their own change as someone else's.
          return await (body === null ? api('DELETE', path, undefined, headers)
            : api('PATCH', path, {...body, ...extra}, headers));
        } catch (failure) {
          const err = /** @type {any} */ (failure);
          if (err.status === 412 && err.data && err.data.current) {
            const current = err.data.current;
            const intended = body === null ? [] : fieldChanges(current, {...current, ...body});
            if (!(await conflict(seen, current, label, intended))) return null;
            seen = current;
            continue;
          }
          if (err.status === 409 && body !== null) {
            if (await decide409(err, extra, `${label}: ${describe(a.id)}`)) continue;
            return null;
          }
          throw err;
        }
      }
    }

    /**
     * A POST that cannot book twice: `attempt` is {key, body} of this
     * booking attempt, kept by the caller (the form) across clicks, so a
     * retry reuses its key; a changed body is a new attempt with a new key.
     * @param {{key: string, body: string} | null} attempt @param {Record<string, any>} body
     * @returns {Promise<{answer: any, attempt: {key: string, body: string}}>}
     */
    async function create(attempt, body) {
      /** @type {Record<string, any>} */
      const extra = {};
      for (;;) {
        const full = {...body, ...extra};
        const text = JSON.stringify(full);
        if (!attempt || attempt.body !== text) attempt = {key: newKey(), body: text};
        const headers = {'Idempotency-Key': attempt.key};
        try {
          return {answer: await retrying(() => api('POST', '/api/appointments', full, headers)), attempt};
        } catch (failure) {
          const err = /** @type {any} */ (failure);
          err.attempt = attempt;
          if (err.status === 409 && (await decide409(err, extra, 'This booking'))) continue;
          if (err.status === 409) return {answer: null, attempt};
          throw err;
        }
      }
    }

    return {change, create};
  }

  root.TsseWrites = {create: createWrites, createAsk, newKey};
})(globalThis);
