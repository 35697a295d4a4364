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
 * saw it happen; its line is marked as theirs.
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

  root.TsseActivity = {create: createActivity, actorLabel, FLASH_MS};
})(globalThis);
