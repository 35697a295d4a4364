// @ts-check
/*
 * TsseBooking: the admin's writes from the page. The booking form (a
 * <dialog>, so focus stays in it and Escape closes it) POSTs
 * /api/appointments; the panel's actions PATCH or DELETE one appointment.
 * Neither changes the calendar itself: the result arrives through the
 * stream like anyone else's change, so there is no optimistic copy to
 * reconcile, and a write that fails leaves the calendar as it was. The
 * server validates; its 400 names each bad field (data.params), shown next
 * to that field.
 */
(function (root) {
  'use strict';

  /**
   * @typedef {(method: string, path: string, body?: any) => Promise<any>} Api
   * @typedef {{start: Date, end?: Date, staffId?: number | null, productId?: number | null}} Prefill
   */

  const STATUSES = ['confirmed', 'unpaid', 'pending-confirmation', 'paid'];
  // API parameter -> form control (id suffix); others show above the buttons.
  /** @type {Record<string, string>} */
  const FIELDS = {
    customer_id: 'customer', product_id: 'product', staff_ids: 'staff', staff_id: 'staff',
    status: 'status', start: 'start', end: 'end',
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
   * @param {{api: Api, directory: any, onError: (err: any) => void}} deps
   */
  function createBookingForm({api, directory, onError}) {
    const $ = (/** @type {string} */ id) => /** @type {HTMLElement} */ (document.getElementById(id));
    const dialog = /** @type {HTMLDialogElement} */ ($('booking'));
    const form = /** @type {HTMLFormElement} */ ($('booking-form'));
    const control = (/** @type {string} */ name) => /** @type {HTMLInputElement & HTMLSelectElement} */ ($('book-' + name));
    const price = /** @type {HTMLOutputElement} */ ($('book-price'));
    const general = /** @type {HTMLElement} */ ($('book-error'));
    const submit = /** @type {HTMLButtonElement} */ ($('book-submit'));
    let endTouched = false;

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

    /** @param {Prefill} prefill */
    function open(prefill) {
      const products = directory.products();
      const productId = prefill.productId ?? (products[0] ? products[0].id : null);
      fill(control('customer'), [['', 'Guest (no customer)'],
        ...directory.customers().map((/** @type {any} */ c) => [String(c.id), c.name])], '');
      fill(control('product'), products.map((/** @type {any} */ p) =>
        [String(p.id), `${p.name} (${p.duration_minutes} min, ${p.price})`]), String(productId ?? ''));
      fill(control('staff'), [['', 'Unassigned'],
        ...directory.staff().map((/** @type {any} */ s) => [String(s.id), s.name])], String(prefill.staffId ?? ''));
      fill(control('status'), STATUSES.map((s) => [s, s.replace('-', ' ')]), 'confirmed');
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
      clearErrors();
      submit.disabled = false;
      dialog.showModal();
      control('customer').focus();
    }

    async function send() {
      const start = new Date(control('start').value);
      const end = new Date(control('end').value);
      const productId = control('product').value;
      const staffId = control('staff').value;
      const customerId = control('customer').value;
      /** @type {Record<string, string>} */
      const local = {};
      if (Number.isNaN(start.getTime())) local.start = 'Give a start date and time.';
      if (Number.isNaN(end.getTime())) local.end = 'Give an end date and time.';
      if (Object.keys(local).length) { showErrors(local, ''); return; }
      const product = directory.product(Number(productId));
      const body = {
        start: Math.floor(start.getTime() / 1000),
        end: Math.floor(end.getTime() / 1000),
        customer_id: customerId === '' ? null : Number(customerId),
        product_id: productId === '' ? null : Number(productId),
        staff_ids: staffId === '' ? [] : [Number(staffId)],
        status: control('status').value,
        ...(product ? {cost: product.price} : {}),
      };
      submit.disabled = true;
      try {
        await api('POST', '/api/appointments', body);
        dialog.close();
      } catch (failure) {
        const err = /** @type {any} */ (failure);
        if (err.status === 401) { dialog.close(); onError(err); return; }
        showErrors(err.params, err.message);
      } finally {
        submit.disabled = false;
      }
    }

    control('start').addEventListener('input', followEnd);
    control('product').addEventListener('change', followEnd);
    control('end').addEventListener('input', () => { endTouched = true; });
    form.addEventListener('submit', (e) => { e.preventDefault(); send(); });
    $('book-cancel').addEventListener('click', () => dialog.close());
    return {open, get isOpen() { return dialog.open; }};
  }

  /*
   * The panel's actions: each one request; `applies` says when it would
   * change something (otherwise the button is disabled, not hidden, so the
   * panel does not jump). Delete asks for a second click.
   */
  /**
   * @typedef {{key: string, label: string, body?: object, method?: string, query?: string,
   *            twice?: boolean, applies: (a: any) => boolean}} Action
   * @type {Action[]}
   */
  const ACTIONS = [
    {key: 'confirm', label: 'Confirm', body: {status: 'confirmed'}, applies: (a) => a.status !== 'confirmed'},
    {key: 'paid', label: 'Mark paid', body: {status: 'paid'}, applies: (a) => a.status !== 'paid'},
    {key: 'arrived', label: 'Arrived', body: {customer_status: 'arrived'},
      applies: (a) => a.customer_status !== 'arrived'},
    {key: 'no-show', label: 'No-show', body: {customer_status: 'no-show'},
      applies: (a) => a.customer_status !== 'no-show'},
    {key: 'cancel', label: 'Cancel booking', body: {status: 'cancelled'}, applies: (a) => a.status !== 'cancelled'},
    {key: 'trash', label: 'Trash', method: 'DELETE', applies: (a) => a.status !== 'trash'},
    {key: 'delete', label: 'Delete for good', method: 'DELETE', query: '?force=true', twice: true,
      applies: () => true},
  ];
  const ARM_MS = 5000;

  /**
   * @param {{container: HTMLElement, error: HTMLElement, api: Api, onError: (err: any) => void}} deps
   */
  function createActions({container, error, api, onError}) {
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

    /** @param {any} action @param {HTMLButtonElement} button */
    async function run(action, button) {
      if (!current) return;
      if (action.twice && button.dataset.armed !== 'true') {
        button.dataset.armed = 'true';
        button.textContent = 'Click again to delete';
        setTimeout(() => disarm(button, action), ARM_MS);
        return;
      }
      disarm(button, action);
      const id = current.id;
      error.textContent = '';
      button.setAttribute('aria-busy', 'true');
      try {
        await api(action.method || 'PATCH', `/api/appointments/${id}${action.query || ''}`, action.body);
      } catch (failure) {
        const err = /** @type {any} */ (failure);
        if (err.status === 401) onError(err);
        else error.textContent = `Could not ${action.label.toLowerCase()} #${id}: ${err.message}`;
      } finally {
        button.removeAttribute('aria-busy');
      }
    }

    /** @param {HTMLButtonElement} button @param {any} action */
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
          button.disabled = !a || !action.applies(a);
        }
      },
    };
  }

  root.TsseBooking = {createBookingForm, createActions, localInput};
})(globalThis);
