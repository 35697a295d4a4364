// @ts-check
/*
 * TsseActivity: making live changes noticeable. A card that arrives, moves
 * or changes status through the stream carries the class `tsse-flash` for
 * FLASH_MS (the page re-creates elements freely, so the flag lives here and
 * decorate() re-applies it to each new element); a card that is removed
 * fades out as a detached copy, since FullCalendar removes elements at once;
 * and a list (newest first) says what changed, when it happened (the
 * event's own commit time, not when this page heard of it) and who did it:
 * "10:02 Anna Berg moved to 11:00 by front-desk (admin)". The list keeps
 * the whole day (lines from before midnight go; at most LIMIT lines, a
 * memory bound far above a busy desk's day). A change this page made
 * itself (matched by the write's Event-Id) does not flash: the person just
 * saw it happen; its line is marked as theirs. describeChange() words a
 * change ("Anna Berg moved to 11:00, marked paid").
 */
(function (root) {
  'use strict';

  const FLASH_MS = 3000;
  const FADE_MS = 900;
  const LIMIT = 5000;

  /**
   * @param {{list: HTMLElement, empty: HTMLElement | null}} els
   */
  function createActivity(els) {
    /** @type {Map<number, ReturnType<typeof setTimeout>>} */
    const flashing = new Map();
    const clock = new Intl.DateTimeFormat(undefined, {hour: '2-digit', minute: '2-digit', hourCycle: 'h23'});

    /** @param {number} id */
    const elementsOf = (id) => document.querySelectorAll(`[data-appointment-id="${id}"]`);

    return {
      /** Flag an appointment: its cards flash, now and when re-created soon. @param {number} id */
      flash(id) {
        clearTimeout(flashing.get(id));
        flashing.set(id, setTimeout(() => {
          flashing.delete(id);
          elementsOf(id).forEach((el) => el.classList.remove('tsse-flash'));
        }, FLASH_MS));
        elementsOf(id).forEach((el) => el.classList.add('tsse-flash'));
      },
      /** For eventDidMount. @param {HTMLElement} el @param {number} id */
      decorate(el, id) {
        if (flashing.has(id)) el.classList.add('tsse-flash');
      },
      /** A copy of `el` where it stood, fading out (it carries no data-appointment-id). @param {Element} el */
      fadeOut(el) {
        const box = el.getBoundingClientRect();
        if (box.width === 0 || box.height === 0) return; // not on screen
        const ghost = /** @type {HTMLElement} */ (el.cloneNode(true));
        ghost.removeAttribute('data-appointment-id');
        ghost.querySelectorAll('[data-appointment-id]').forEach((e) => e.removeAttribute('data-appointment-id'));
        ghost.classList.remove('tsse-flash');
        ghost.classList.add('tsse-fade-out');
        ghost.setAttribute('aria-hidden', 'true');
        Object.assign(ghost.style, {
          position: 'fixed', left: `${box.left}px`, top: `${box.top}px`, width: `${box.width}px`,
          height: `${box.height}px`, margin: '0', pointerEvents: 'none', zIndex: '50',
        });
        document.body.append(ghost);
        setTimeout(() => ghost.remove(), FADE_MS);
      },
      /** Stop a card's flash (the change was this page's own). @param {number} id */
      unflash(id) {
        clearTimeout(flashing.get(id));
        flashing.delete(id);
        elementsOf(id).forEach((el) => el.classList.remove('tsse-flash'));
      },
      /**
       * Add a line: "10:42 Anna Berg moved to 11:00 by front-desk (admin)".
       * @param {{id: number, ts?: number}} event its ts (commit time, epoch s) is the line's time
       * @param {string} text @param {boolean} own
       */
      note(event, text, own) {
        const item = document.createElement('li');
        item.dataset.eventId = String(event.id);
        if (own) item.dataset.own = 'true';
        const at = new Date(event.ts != null ? event.ts * 1000 : Date.now());
        item.dataset.ts = String(at.getTime());
        item.title = `event ${event.id} · ${at.toLocaleString()}`;
        const time = document.createElement('time');
        time.dateTime = at.toISOString();
        time.textContent = clock.format(at);
        item.append(time, ' ', text);
        els.list.prepend(item);
        // The day, not the last few lines: yesterday's go, today's stay.
        const midnight = new Date().setHours(0, 0, 0, 0);
        for (let last = els.list.lastElementChild; last; last = els.list.lastElementChild) {
          const old = Number(/** @type {HTMLElement} */ (last).dataset.ts) < midnight;
          if (!old && els.list.children.length <= LIMIT) break;
          last.remove();
        }
        if (els.empty) els.empty.hidden = els.list.children.length > 0;
      },
      /** Mark the line of event `eventId` as this page's own change. @param {number} eventId */
      markOwn(eventId) {
        const item = /** @type {HTMLElement | null} */ (els.list.querySelector(`[data-event-id="${eventId}"]`));
        if (item) item.dataset.own = 'true';
      },
      /** The lines' texts, newest first (tests and support). */
      lines: () => [...els.list.children].map((li) => /** @type {HTMLElement} */ (li).innerText),
    };
  }

  /**
   * Who made a change, from the event's `actor` (SPEC §8): "front-desk
   * (admin)", "Jonas (staff)" (a staff token's subject is their id), or
   * "postgres (database)" for psql, a shop or a job writing directly.
   * @param {any} actor @param {(id: number) => string} staffName
   */
  function actorLabel(actor, staffName) {
    if (!actor || typeof actor !== 'object') return 'someone';
    if (actor.db_user != null) return `${actor.db_user} (database)`;
    const sub = actor.sub ?? actor.staff_id;
    if (actor.role === 'staff' && /^\d+$/.test(String(sub ?? ''))) return `${staffName(Number(sub))} (staff)`;
    if (sub != null && actor.role) return `${sub} (${actor.role})`;
    return actor.role ? String(actor.role) : 'someone';
  }

  const STATUS_WORDS = {
    'confirmed': 'confirmed', 'paid': 'marked paid', 'complete': 'completed', 'unpaid': 'marked unpaid',
    'pending-confirmation': 'set to pending confirmation', 'in-cart': 'put in a cart',
    'was-in-cart': 'dropped from a cart', 'cancelled': 'cancelled', 'trash': 'trashed',
  };
  const ARRIVAL_WORDS = {'arrived': 'marked arrived', 'no-show': 'marked no-show', 'expected': 'reset to expected'};
  const clock = new Intl.DateTimeFormat(undefined, {hour: '2-digit', minute: '2-digit', hourCycle: 'h23'});
  const weekdayTime = new Intl.DateTimeFormat(undefined,
    {weekday: 'short', hour: '2-digit', minute: '2-digit', hourCycle: 'h23'});
  /** @param {number} epoch */
  const dayKey = (epoch) => new Date(epoch * 1000).toDateString();

  /**
   * An appointment's change in words, for the activity list: to whom, what
   * happened, by whom ("Anna Berg moved to 11:00, marked paid by
   * front-desk (admin)"). `old` is the row as this page held it (undefined:
   * not held, e.g. a week not shown: then the line says what the row is
   * now), `row` the row after (null: deleted).
   * @param {any} event @param {string} action the topic's second part
   * @param {any} old @param {any} row @param {any} directory names (directory.js)
   * @returns {string}
   */
  function describeChange(event, action, old, row, directory) {
    const a = row || old;
    const who = a ? directory.customerName(a.customer_id) : `appointment #${event.resource_id}`;
    const movedDay = old && row && dayKey(old.start) !== dayKey(row.start);
    const when = (/** @type {any} */ r) => (movedDay || !old ? weekdayTime : clock).format(r.start * 1000);
    /** @param {number[]} ids */
    const staffNames = (ids) => (ids || []).map((id) => directory.staffName(id)).join(' & ') || 'nobody';
    /** @type {string[]} */
    const parts = [];
    if (action === 'created') {
      parts.push(`booked for ${directory.productLabel(row.product_id)} ${weekdayTime.format(row.start * 1000)}`);
      if (row.overlap_allowed) parts.push('overlap allowed');
    } else if (action === 'deleted' || action === 'trashed') {
      parts.push(action);
    } else if (old && row) {
      if (old.start !== row.start) parts.push(`moved to ${when(row)}`);
      else if (old.end !== row.end) parts.push(`now ends ${clock.format(row.end * 1000)}`);
      if (JSON.stringify(old.staff_ids || []) !== JSON.stringify(row.staff_ids || [])) {
        parts.push(`reassigned from ${staffNames(old.staff_ids)} to ${staffNames(row.staff_ids)}`);
      }
      if (old.status !== row.status) {
        parts.push(old.status === 'cancelled' ? `restored (${row.status.replace('-', ' ')})`
          : STATUS_WORDS[row.status] || `set to ${row.status}`);
      }
      if (old.customer_status !== row.customer_status) {
        parts.push(ARRIVAL_WORDS[row.customer_status] || `set to ${row.customer_status}`);
      }
      if (old.product_id !== row.product_id) parts.push(`service changed to ${directory.productLabel(row.product_id)}`);
      if (old.customer_id !== row.customer_id) {
        parts.push(`customer changed to ${directory.customerName(row.customer_id)}`);
      }
      if ((old.notes || '') !== (row.notes || '')) parts.push('notes edited');
      if (!!old.overlap_allowed !== !!row.overlap_allowed) {
        parts.push(row.overlap_allowed ? 'overlap allowed' : 'overlap no longer allowed');
      }
    } else if (action === 'rescheduled' && row) {
      parts.push(`moved to ${when(row)}`);
    } else if (action === 'cancelled') {
      parts.push('cancelled');
    } else if (row) {
      // Not held before: what it was is unknown here, so say what it is.
      parts.push(`updated: now ${String(row.status).replace(/-/g, ' ')}, ${weekdayTime.format(row.start * 1000)}`);
    }
    if (parts.length === 0) parts.push('updated');
    return `${who} ${parts.join(', ')}${byWhom(event, directory.staffName)}`;
  }

  /**
   * " by front-desk (admin)", or nothing from a server that does not say.
   * @param {any} event @param {(id: number) => string} staffName
   */
  const byWhom = (event, staffName) => (event.actor ? ` by ${actorLabel(event.actor, staffName)}` : '');

  root.TsseActivity = {create: createActivity, actorLabel, byWhom, describeChange, FLASH_MS};
})(globalThis);
