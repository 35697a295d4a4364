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
          height: '100%',
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
        if (!columns.length) build();
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
    };
  }

  root.TsseStaffDay = {create: createStaffDay};
})(globalThis);
