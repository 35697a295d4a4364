// @ts-check
/*
 * TsseActivity: making live changes noticeable. A card that arrives, moves
 * or changes status through the stream carries the class `tsse-flash` for
 * FLASH_MS (the page re-creates elements freely, so the flag lives here and
 * decorate() re-applies it to each new element); a card that is removed
 * fades out as a detached copy, since FullCalendar removes elements at once;
 * and a short list (newest first, the last LIMIT) says what changed, when,
 * and which event did it.
 */
(function (root) {
  'use strict';

  const FLASH_MS = 3000;
  const FADE_MS = 900;
  const LIMIT = 20;

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
      /** Add a line: "10:42 moved: Anna Berg → 11:00", with the event id. @param {number} eventId @param {string} text */
      note(eventId, text) {
        const item = document.createElement('li');
        item.dataset.eventId = String(eventId);
        const time = document.createElement('time');
        const now = new Date();
        time.dateTime = now.toISOString();
        time.textContent = clock.format(now);
        const id = document.createElement('span');
        id.className = 'event-id';
        id.textContent = `event ${eventId}`;
        item.append(time, ' ', text, ' ', id);
        els.list.prepend(item);
        while (els.list.children.length > LIMIT) els.list.lastElementChild?.remove();
        if (els.empty) els.empty.hidden = true;
      },
      /** The lines' texts, newest first (tests and support). */
      lines: () => [...els.list.children].map((li) => /** @type {HTMLElement} */ (li).innerText),
    };
  }

  root.TsseActivity = {create: createActivity, FLASH_MS};
})(globalThis);
