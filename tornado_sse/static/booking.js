// @ts-check
/*
 * TsseBooking: the admin's writes from the page. The booking form (a
 * <dialog>, so focus stays in it and Escape closes it) books a new
 * appointment or edits one (staff, service, customer, time, notes); the
 * customer is found by typing (customers.js: a server-side search, and an
 * admin may add one in place). The panel's actions change its status. Every write goes through TsseWrites
 * (writes.js: versioned, conflict-aware, idempotent) and none changes the
 * calendar itself: the result arrives through the stream like anyone
 * else's change, so there is no optimistic copy to reconcile, and a write
 * that fails leaves the calendar as it was. The server validates; its 400
 * names each bad field (data.params), shown next to that field.
 */
(function (root) {
  'use strict';

  /**
   * @typedef {{start: Date, end?: Date, staffId?: number | null, productId?: number | null}} Prefill
   * @typedef {{change: (a: any, body: Record<string, any> | null, label: string, query?: string) => Promise<any>,
   *            create: (attempt: any, body: Record<string, any>) => Promise<{answer: any, attempt: any}>}} Writes
   */

  const STATUSES = ['confirmed', 'unpaid', 'pending-confirmation', 'paid'];
  /** SPEC §8 / issue 20: notes hold at most this many characters. */
  const NOTES_MAX = 1000;
  // API parameter -> form control (id suffix); others show above the buttons.
  /** @type {Record<string, string>} */
  const FIELDS = {
    customer_id: 'customer', product_id: 'product', staff_ids: 'staff', staff_id: 'staff',
    status: 'status', start: 'start', end: 'end', notes: 'notes',
  };

  /** "YYYY-MM-DDTHH:MM" in the page's zone, for <input type=datetime-local>. @param {Date} d */
  function localInput(d) {
    const pad = (/** @type {number} */ n) => String(n).padStart(2, '0');
    return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
  }

  /** @param {HTMLSelectElement} select @param {[string, string][]} options @param {string} value */
  function fill(select, options, value) {
    select.replaceChildren(...options.map(([v, label]) => new Option(label, v, false, v === value)));
  }

  /**
   * The booking form: new bookings (POST) and edits of one (PATCH of the
   * fields that changed, against the version the form was opened on).
   * @param {{writes: Writes, directory: any, onError: (err: any) => void,
   *          api: (method: string, path: string, body?: any) => Promise<any>, isAdmin: () => boolean}} deps
   */
  function createBookingForm({writes, directory, onError, api, isAdmin}) {
    const $ = (/** @type {string} */ id) => /** @type {HTMLElement} */ (document.getElementById(id));
    const dialog = /** @type {HTMLDialogElement} */ ($('booking'));
    const form = /** @type {HTMLFormElement} */ ($('booking-form'));
    const control = (/** @type {string} */ name) => /** @type {HTMLInputElement & HTMLSelectElement} */ ($('book-' + name));
    const price = /** @type {HTMLOutputElement} */ ($('book-price'));
    const general = /** @type {HTMLElement} */ ($('book-error'));
    const submit = /** @type {HTMLButtonElement} */ ($('book-submit'));
    const title = $('booking-title');
    const notesCount = $('book-notes-count');
    let endTouched = false;
    /** @type {any} the appointment being edited (null: a new booking) */
    let editing = null;
    /** @type {any} this booking attempt's idempotency key and body (writes.js) */
    let attempt = null;
    const customer = TsseCustomers.createPicker({
      api, directory, isAdmin, input: control('customer'), list: $('book-customer-list'),
      hint: $('book-customer-hint'), add: /** @type {HTMLButtonElement} */ ($('book-customer-new')),
      form: $('book-new')});

    function durationMs() {
      const p = directory.product(Number(control('product').value));
      return (p ? p.duration_minutes : 60) * 60000;
    }

    // The end follows start and service until someone edits it by hand.
    function followEnd() {
      const start = new Date(control('start').value);
      if (!endTouched && !Number.isNaN(start.getTime())) {
        control('end').value = localInput(new Date(start.getTime() + durationMs()));
      }
      const p = directory.product(Number(control('product').value));
      price.value = p ? p.price : '—';
    }

    function countNotes() {
      notesCount.textContent = `${control('notes').value.length} / ${NOTES_MAX}`;
    }

    function clearErrors() {
      general.textContent = '';
      for (const name of new Set(Object.values(FIELDS))) {
        control(name).removeAttribute('aria-invalid');
        $(`book-${name}-error`).textContent = '';
      }
    }

    /** @param {Record<string, string>} params @param {string} message */
    function showErrors(params, message) {
      clearErrors();
      /** @type {HTMLElement | null} */
      let first = null;
      for (const [param, text] of Object.entries(params || {})) {
        const name = FIELDS[param];
        if (!name) { general.textContent += (general.textContent ? ' ' : '') + text; continue; }
        control(name).setAttribute('aria-invalid', 'true');
        $(`book-${name}-error`).textContent = text;
        first = first || control(name);
      }
      if (!params) general.textContent = message;
      (first || general).focus?.();
    }

    /** @param {{customerId: number | null, productId: number | null, staffId: number | null}} v */
    function fillChoices(v) {
      customer.set(v.customerId);
      const products = directory.products().map((/** @type {any} */ p) =>
        [String(p.id), `${p.name} (${p.duration_minutes} min, ${p.price})`]);
      // A row may name ids the directory does not know (psql writes any): keep them choosable.
      if (v.productId != null && !directory.product(v.productId)) {
        products.push([String(v.productId), directory.productLabel(v.productId)]);
      }
      fill(control('product'), products, String(v.productId ?? ''));
      const staff = [['', 'Unassigned'], ...directory.staff().map((/** @type {any} */ s) => [String(s.id), s.name])];
      if (v.staffId != null && !staff.some(([id]) => id === String(v.staffId))) {
        staff.push([String(v.staffId), directory.staffName(v.staffId)]);
      }
      fill(control('staff'), /** @type {[string, string][]} */ (staff), String(v.staffId ?? ''));
    }

    /** @param {Prefill} prefill */
    function open(prefill) {
      editing = null;
      attempt = null;
      const products = directory.products();
      fillChoices({customerId: null, productId: prefill.productId ?? (products[0] ? products[0].id : null),
        staffId: prefill.staffId ?? null});
      fill(control('status'), STATUSES.map((s) => [s, s.replace('-', ' ')]), 'confirmed');
      control('status').closest('.field')?.removeAttribute('hidden');
      title.textContent = 'New booking';
      submit.textContent = 'Book';
      control('notes').value = '';
      control('start').value = localInput(prefill.start);
      // A selection longer than the service keeps its end; a click or a
      // short drag gets the service's duration.
      const selected = prefill.end ? prefill.end.getTime() - prefill.start.getTime() : 0;
      endTouched = false;
      followEnd();
      if (selected > durationMs()) {
        control('end').value = localInput(/** @type {Date} */ (prefill.end));
        endTouched = true;
      }
      show();
    }

    /** Edit appointment `a` (as shown now). @param {any} a */
    function edit(a) {
      editing = a;
      attempt = null;
      fillChoices({customerId: a.customer_id, productId: a.product_id, staffId: (a.staff_ids || [])[0] ?? null});
      // Status changes are the panel's actions, which know what fits.
      control('status').closest('.field')?.setAttribute('hidden', '');
      title.textContent = `Edit booking #${a.id}`;
      submit.textContent = 'Save';
      control('notes').value = a.notes || '';
      control('start').value = localInput(new Date(a.start * 1000));
      control('end').value = localInput(new Date(a.end * 1000));
      endTouched = true; // an edit keeps the booked length unless changed
      followEnd();
      show();
    }

    function show() {
      countNotes();
      clearErrors();
      submit.disabled = false;
      dialog.showModal();
      control('customer').focus();
    }

    /** The form's values as API fields, or null after showing what is missing. */
    function values() {
      const start = new Date(control('start').value);
      const end = new Date(control('end').value);
      /** @type {Record<string, string>} */
      const local = {};
      if (Number.isNaN(start.getTime())) local.start = 'Give a start date and time.';
      if (Number.isNaN(end.getTime())) local.end = 'Give an end date and time.';
      if (control('notes').value.length > NOTES_MAX) local.notes = `At most ${NOTES_MAX} characters.`;
      if (customer.undecided) local.customer_id = 'Choose a customer from the list, or empty the field for a guest.';
      if (Object.keys(local).length) { showErrors(local, ''); return null; }
      const productId = control('product').value;
      const staffId = control('staff').value;
      return {
        start: Math.floor(start.getTime() / 1000),
        end: Math.floor(end.getTime() / 1000),
        customer_id: customer.value,
        product_id: productId === '' ? null : Number(productId),
        staff_id: staffId === '' ? null : Number(staffId),
        notes: control('notes').value,
      };
    }

    /** Only what the person changed, so an edit never rewrites the rest. @param {any} a @param {any} v */
    function changes(a, v) {
      /** @type {Record<string, any>} */
      const body = {};
      for (const key of ['start', 'end', 'customer_id', 'product_id']) if (v[key] !== a[key]) body[key] = v[key];
      if (v.notes !== (a.notes || '')) body.notes = v.notes;
      const staff = a.staff_ids || [];
      if (v.staff_id !== (staff[0] ?? null)) {
        // The form shows the first staff member: swap that one, keep the others.
        const rest = staff.slice(1).filter((/** @type {number} */ id) => id !== v.staff_id);
        body.staff_ids = v.staff_id == null ? rest : [v.staff_id, ...rest];
      }
      return body;
    }

    async function send() {
      const v = values();
      if (!v) return;
      submit.disabled = true;
      try {
        if (editing) {
          const body = changes(editing, v);
          if (Object.keys(body).length === 0 || await writes.change(editing, body, 'Edit booking') !== null) {
            dialog.close();
          }
          return;
        }
        const product = directory.product(/** @type {number} */ (v.product_id));
        const {staff_id: staffId, notes, ...rest} = v;
        const body = {
          ...rest, staff_ids: staffId == null ? [] : [staffId], status: control('status').value,
          ...(notes ? {notes} : {}), ...(product ? {cost: product.price} : {}),
        };
        const {answer, attempt: used} = await writes.create(attempt, body);
        attempt = used;
        if (answer !== null) dialog.close();
      } catch (failure) {
        const err = /** @type {any} */ (failure);
        if (err.attempt) attempt = err.attempt; // Book again: the same key, so never twice
        if (err.status === 401) { dialog.close(); onError(err); return; }
        showErrors(err.params, err.status === 0 ? `${err.message} Press ${submit.textContent} again to retry.`
          : err.message);
      } finally {
        submit.disabled = false;
      }
    }

    control('start').addEventListener('input', followEnd);
    control('product').addEventListener('change', followEnd);
    control('end').addEventListener('input', () => { endTouched = true; });
    control('notes').addEventListener('input', countNotes);
    form.addEventListener('submit', (e) => { e.preventDefault(); send(); });
    $('book-cancel').addEventListener('click', () => dialog.close());
    return {open, edit, get isOpen() { return dialog.open; }};
  }

  /*
   * The panel's actions, offered only where they mean what they say (issue
   * 20): "Confirm" never sets a paid appointment back to confirmed, "Mark
   * paid" never revives a cancelled one (that takes "Restore" first), and
   * arrival is for appointments that hold time. Cancel and trash ask first;
   * delete for good asks for a second click.
   */
  const HOLDS_TIME = (/** @type {any} */ a) => !['cancelled', 'trash', 'was-in-cart'].includes(a.status);
  /**
   * @typedef {{key: string, label: string, body?: Record<string, any>, method?: string, query?: string,
   *            twice?: boolean, ask?: string, edit?: boolean, applies: (a: any) => boolean}} Action
   * @type {Action[]}
   */
  const ACTIONS = [
    {key: 'edit', label: 'Edit…', edit: true, applies: (a) => a.status !== 'trash'},
    {key: 'confirm', label: 'Confirm', body: {status: 'confirmed'},
      applies: (a) => ['unpaid', 'pending-confirmation', 'in-cart'].includes(a.status)},
    {key: 'paid', label: 'Mark paid', body: {status: 'paid'},
      applies: (a) => ['unpaid', 'pending-confirmation', 'confirmed'].includes(a.status)},
    {key: 'complete', label: 'Complete', body: {status: 'complete'},
      applies: (a) => ['confirmed', 'paid'].includes(a.status)},
    {key: 'arrived', label: 'Arrived', body: {customer_status: 'arrived'},
      applies: (a) => HOLDS_TIME(a) && a.customer_status !== 'arrived'},
    {key: 'no-show', label: 'No-show', body: {customer_status: 'no-show'},
      applies: (a) => HOLDS_TIME(a) && a.customer_status !== 'no-show'},
    {key: 'expected', label: 'Reset to expected', body: {customer_status: 'expected'},
      applies: (a) => HOLDS_TIME(a) && a.customer_status !== 'expected'},
    {key: 'restore', label: 'Restore', body: {status: 'confirmed'},
      applies: (a) => a.status === 'cancelled' || a.status === 'was-in-cart'},
    {key: 'cancel', label: 'Cancel booking', body: {status: 'cancelled'}, ask: 'Cancel',
      applies: (a) => HOLDS_TIME(a) && a.status !== 'complete'},
    {key: 'trash', label: 'Trash', method: 'DELETE', ask: 'Trash', applies: (a) => a.status !== 'trash'},
    {key: 'delete', label: 'Delete for good', method: 'DELETE', query: '?force=true', twice: true,
      applies: () => true},
  ];
  const ARM_MS = 5000;

  /**
   * @param {{container: HTMLElement, error: HTMLElement, writes: Writes,
   *          ask: (q: any) => Promise<string | null>, describe: (id: number) => string,
   *          onEdit: (a: any) => void, onError: (err: any) => void}} deps
   */
  function createActions({container, error, writes, ask, describe, onEdit, onError}) {
    /** @type {any} */
    let current = null;
    /** @type {Map<string, HTMLButtonElement>} */
    const buttons = new Map();

    for (const action of ACTIONS) {
      const button = document.createElement('button');
      button.type = 'button';
      button.textContent = action.label;
      button.dataset.action = action.key;
      button.addEventListener('click', () => run(action, button));
      buttons.set(action.key, button);
      container.append(button);
    }

    /** @param {Action} action @param {HTMLButtonElement} button */
    async function run(action, button) {
      if (!current) return;
      const a = current; // the row as the person saw it when they clicked: its version goes along
      if (action.edit) { onEdit(a); return; }
      if (action.twice && button.dataset.armed !== 'true') {
        button.dataset.armed = 'true';
        button.textContent = 'Click again to delete';
        setTimeout(() => disarm(button, action), ARM_MS);
        return;
      }
      disarm(button, action);
      if (action.ask) {
        const answer = await ask({
          kind: 'confirm', title: `${action.label}?`,
          parts: [`${action.label}: ${describe(a.id)}?`],
          buttons: [{key: 'no', label: 'Keep it'}, {key: 'yes', label: action.label, danger: true}],
        });
        if (answer !== 'yes') return;
      }
      error.textContent = '';
      button.setAttribute('aria-busy', 'true');
      try {
        await writes.change(a, action.method === 'DELETE' ? null : action.body || {}, action.label, action.query);
      } catch (failure) {
        const err = /** @type {any} */ (failure);
        if (err.status === 401) onError(err);
        else {
          // No answer (status 0): the change may have been made; the words say so.
          error.textContent = `${err.status === 0 ? 'Not confirmed' : 'Not saved'} — “${action.label}”`
            + ` for ${describe(a.id)}: ${err.message}`;
        }
      } finally {
        button.removeAttribute('aria-busy');
      }
    }

    /** @param {HTMLButtonElement} button @param {Action} action */
    function disarm(button, action) {
      delete button.dataset.armed;
      button.textContent = action.label;
    }

    return {
      /** The appointment the panel shows now (null: none). @param {any} a */
      show(a) {
        const other = !current || !a || current.id !== a.id;
        current = a;
        if (other) error.textContent = '';
        for (const action of ACTIONS) {
          const button = /** @type {HTMLButtonElement} */ (buttons.get(action.key));
          if (other) disarm(button, action);
          // Hidden, not just disabled: what does not fit is not offered.
          button.hidden = button.disabled = !a || !action.applies(a);
        }
      },
    };
  }

  root.TsseBooking = {createBookingForm, createActions, localInput, NOTES_MAX};
})(globalThis);
