// @ts-check
/*
 * TsseStaffDay: one staff member per column for one day. FullCalendar's MIT
 * build has no resource views, so each column is a small timeGridDay
 * calendar of its own, fed from the page's store (no requests of its own):
 * the page calls refresh() whenever it renders. An appointment with two
 * staff members shows in both columns; one with none in "Unassigned". A
 * card dragged into another column is the page's to handle (eventReceive:
 * a reassignment). A column whose whole day is closed says why under its
 * name, since the shading's own label sits at midnight, out of view.
 */
(function (root) {
  'use strict';

  /**
   * @typedef {{id: number | null, name: string, note?: string}} Column  id null: unassigned; note: "Holiday"
   * @typedef {{
   *   columns: (day: Date) => Column[],
   *   eventsFor: (staffId: number | null, day: Date) => object[],
   *   options: (column: Column) => object,
   * }} Source
   */

  const printedDay = new Intl.DateTimeFormat(undefined, {dateStyle: 'full'});
  /** Where the day opens in view, like the week's scrollTime. */
  const OPENING = '08:00:00';

  /** @param {HTMLElement} container @param {Source} source */
  function createStaffDay(container, source) {
    /** @type {{column: Column, calendar: any}[]} */
    let columns = [];
    let key = '';
    let day = new Date();

    function build() {
      destroy();
      const wanted = source.columns(day);
      key = JSON.stringify(wanted);
      columns = wanted.map((column) => {
        const section = document.createElement('section');
        section.className = 'staff-column';
        section.dataset.staffId = column.id == null ? '' : String(column.id);
        const heading = document.createElement('h3');
        heading.id = `staff-column-${column.id ?? 'none'}`;
        heading.textContent = column.name;
        if (column.note) {
          const note = document.createElement('small');
          note.className = 'staff-column-note';
          note.textContent = column.note;
          heading.append(' ', note);
        }
        // On paper each person is a page of their own: it names the day too.
        const date = document.createElement('span');
        date.className = 'staff-column-date';
        date.textContent = ` · ${printedDay.format(day)}`;
        heading.append(date);
        section.setAttribute('aria-labelledby', heading.id);
        const body = document.createElement('div');
        body.className = 'staff-column-calendar';
        section.append(heading, body);
        container.append(section);
        const calendar = new FullCalendar.Calendar(body, {
          ...source.options(column),
          initialView: 'timeGridDay',
          initialDate: day,
          headerToolbar: false,
          dayHeaders: false,
          // The whole day, no scroller of its own: the columns scroll
          // together (the container), one scroll region with the cards in
          // it for the keyboard, and on paper the whole day prints.
          height: 'auto',
          events: (/** @type {any} */ info, /** @type {(events: object[]) => void} */ ok) =>
            ok(source.eventsFor(column.id, day)),
        });
        calendar.render();
        return {column, calendar};
      });
    }

    function destroy() {
      for (const {calendar} of columns) calendar.destroy();
      columns = [];
      key = '';
      container.replaceChildren();
    }

    return {
      get open() { return columns.length > 0; },
      get day() { return day; },
      /** Show (or move to) `date`'s day. @param {Date} date */
      show(date) {
        day = new Date(date.getFullYear(), date.getMonth(), date.getDate());
        if (!columns.length) {
          build();
          requestAnimationFrame(() => this.scrollToTime(OPENING)); // once the columns are laid out
        }
        for (const {calendar} of columns) calendar.gotoDate(day);
        this.refresh();
      },
      /** Re-read the store: new columns if the staff changed, else new events. */
      refresh() {
        if (!columns.length) return;
        if (JSON.stringify(source.columns(day)) !== key) {
          build();
          return;
        }
        for (const {calendar} of columns) calendar.refetchEvents();
      },
      close: destroy,
      /** Set an option on every column (editing ends with the session). @param {string} name @param {any} value */
      setOption(name, value) {
        for (const {calendar} of columns) calendar.setOption(name, value);
      },
      /** Scroll the columns to a time of day ("13:00:00"). @param {string} time */
      scrollToTime(time) {
        const slot = container.querySelector(`[data-time="${time}"]`);
        const heading = container.querySelector('.staff-column h3');
        if (!slot) return;
        container.scrollTop += slot.getBoundingClientRect().top - container.getBoundingClientRect().top
          - (heading ? heading.getBoundingClientRect().height : 0);
      },
    };
  }

  root.TsseStaffDay = {create: createStaffDay};
})(globalThis);
