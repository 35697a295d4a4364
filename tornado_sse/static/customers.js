// @ts-check
/*
 * TsseCustomers: finding and adding a customer while booking, and the
 * customer's card in the details panel (issue 23).
 *
 * The picker is a type-ahead combobox (WAI-ARIA 1.2 pattern: an input with
 * role=combobox and a listbox it controls, the highlighted option named by
 * aria-activedescendant, so the focus never leaves the input): it asks the
 * server (GET /api/customers?q=) a moment after the typing stops, never
 * loads the whole customer list, and ignores an answer that a newer one
 * has overtaken. Empty means a guest. Admins can add a customer in place
 * (POST /api/customers); the new one is chosen at once.
 *
 * The card (GET /api/customers/{id}) shows how to reach the customer and
 * their earlier and coming appointments; a staff token gets only its own
 * customers and appointments from the server, so it shows only those.
 */
(function (root) {
  'use strict';

  /** Milliseconds after the last keystroke before asking the server. */
  const DEBOUNCE_MS = 200;
  /** Options shown at once: a short list to pick from, not a directory. */
  const LIMIT = 8;

  /**
   * @typedef {{id: number, name: string, phone: string | null, email: string | null}} Customer
   * @typedef {(method: string, path: string, body?: any, headers?: Record<string, string>) => Promise<any>} Api
   */

  /** "Anna Berg · +49 30 555 0101 · anna@example.com" @param {Customer} c */
  const label = (c) => [c.name, c.phone, c.email].filter(Boolean).join(' · ');

  /**
   * @param {{api: Api, directory: any, input: HTMLInputElement, list: HTMLElement, hint: HTMLElement,
   *          add: HTMLButtonElement, form: HTMLElement, isAdmin: () => boolean}} deps
   */
  function createPicker({api, directory, input, list, hint, add, form, isAdmin}) {
    const $ = (/** @type {string} */ id) => /** @type {HTMLInputElement} */ (document.getElementById(id));
    /** @type {number | null} the chosen customer (null: a guest, or nothing chosen yet) */
    let chosen = null;
    let chosenText = '';
    /** @type {Customer[]} */
    let options = [];
    let active = -1;
    let timer = 0;
    let asked = 0; // the newest request's number: older answers are dropped

    function close() {
      list.hidden = true;
      input.setAttribute('aria-expanded', 'false');
      input.removeAttribute('aria-activedescendant');
      active = -1;
    }

    /** @param {number} index */
    function highlight(index) {
      active = index;
      [...list.children].forEach((li, i) => li.setAttribute('aria-selected', String(i === index)));
      if (index >= 0) {
        input.setAttribute('aria-activedescendant', `book-customer-option-${index}`);
        list.children[index]?.scrollIntoView({block: 'nearest'});
      } else {
        input.removeAttribute('aria-activedescendant');
      }
    }

    /** @param {Customer[]} found @param {string} q */
    function showOptions(found, q) {
      options = found;
      list.replaceChildren(...found.map((c, i) => {
        const li = document.createElement('li');
        li.id = `book-customer-option-${i}`;
        li.setAttribute('role', 'option');
        li.setAttribute('aria-selected', 'false');
        li.dataset.id = String(c.id);
        li.textContent = label(c);
        // mousedown, not click: the input keeps the focus (and its blur does not close the list first).
        li.addEventListener('mousedown', (e) => { e.preventDefault(); choose(c); });
        return li;
      }));
      if (found.length) {
        list.hidden = false;
        input.setAttribute('aria-expanded', 'true');
        highlight(-1);
        hint.textContent = `${found.length} ${found.length === 1 ? 'customer matches' : 'customers match'}; `
          + 'use the arrow keys and Enter to choose.';
      } else {
        close();
        hint.textContent = `No customer matches “${q}”.` + (isAdmin() ? ' Add them with “New customer”.' : '');
      }
    }

    async function search() {
      const q = input.value.trim();
      const mine = ++asked;
      if (!q) { close(); hint.textContent = 'Empty: a guest (no customer).'; return; }
      try {
        const answer = await api('GET', `/api/customers?q=${encodeURIComponent(q.slice(0, 100))}&limit=${LIMIT}`);
        if (mine === asked) showOptions(answer.customers, q);
      } catch (failure) {
        if (mine !== asked) return;
        close();
        hint.textContent = `Could not search customers: ${/** @type {any} */ (failure).message}`;
      }
    }

    /** @param {Customer | null} c */
    function choose(c) {
      chosen = c ? c.id : null;
      chosenText = c ? c.name : '';
      input.value = chosenText;
      if (c) directory.remember(c);
      close();
      hint.textContent = c ? `Chosen: ${label(c)}` : 'Empty: a guest (no customer).';
    }

    input.addEventListener('input', () => {
      if (input.value !== chosenText) chosen = null; // typing again un-chooses
      clearTimeout(timer);
      timer = window.setTimeout(search, DEBOUNCE_MS);
    });
    input.addEventListener('keydown', (/** @type {KeyboardEvent} */ e) => {
      const open = !list.hidden && options.length > 0;
      if (e.key === 'ArrowDown' || e.key === 'ArrowUp') {
        e.preventDefault();
        if (!open) { clearTimeout(timer); search(); return; }
        // Down from the last option (or up from the first) goes back to the text.
        const n = options.length;
        highlight(e.key === 'ArrowDown' ? (active + 1 >= n ? -1 : active + 1) : (active <= -1 ? n - 1 : active - 1));
      } else if (e.key === 'Enter' && open && active >= 0) {
        e.preventDefault(); // choosing is not booking
        choose(options[active]);
      } else if (e.key === 'Escape' && open) {
        e.preventDefault(); // close the list, not the booking form
        e.stopPropagation();
        close();
      }
    });
    input.addEventListener('blur', () => setTimeout(close, 150));

    // -- adding a customer in place (admins) --------------------------------
    const fields = ['name', 'phone', 'email'];
    const newInput = (/** @type {string} */ f) => $(`book-new-${f}`);
    const newError = (/** @type {string} */ f) => /** @type {HTMLElement} */ (document.getElementById(`book-new-${f}-error`));

    function clearNewErrors() {
      for (const f of fields) { newInput(f).removeAttribute('aria-invalid'); newError(f).textContent = ''; }
      newError('form').textContent = '';
    }

    function openNew() {
      clearNewErrors();
      const typed = chosen === null ? input.value.trim() : '';
      const digits = /^[0-9+()./\s-]+$/.test(typed);
      newInput('name').value = digits ? '' : typed;
      newInput('phone').value = digits ? typed : '';
      newInput('email').value = '';
      form.hidden = false;
      add.setAttribute('aria-expanded', 'true');
      newInput(digits || !typed ? 'name' : 'phone').focus();
    }

    function closeNew() {
      form.hidden = true;
      add.setAttribute('aria-expanded', 'false');
    }

    // The customer being added, {key, body}: Save again after a lost answer
    // (a timeout, the network) sends the same Idempotency-Key, so the server
    // answers with the customer it already added instead of a second one.
    /** @type {{key: string, body: string} | null} */
    let attempt = null;

    async function saveNew() {
      clearNewErrors();
      const body = Object.fromEntries(fields.map((f) => [f, newInput(f).value.trim()]));
      const text = JSON.stringify(body);
      if (!attempt || attempt.body !== text) attempt = {key: TsseWrites.newKey(), body: text};
      const save = /** @type {HTMLButtonElement} */ (document.getElementById('book-new-save'));
      save.disabled = true;
      try {
        const customer = await api('POST', '/api/customers', body, {'Idempotency-Key': attempt.key});
        attempt = null; // added: the next one is someone else
        closeNew();
        choose(customer);
        input.focus();
      } catch (failure) {
        const err = /** @type {any} */ (failure);
        /** @type {HTMLElement | null} */
        let first = null;
        for (const [f, text] of Object.entries(err.params || {})) {
          if (!fields.includes(f)) continue;
          newInput(f).setAttribute('aria-invalid', 'true');
          newError(f).textContent = String(text);
          first = first || newInput(f);
        }
        if (!first) newError('form').textContent = `Could not add the customer: ${err.message}`;
        (first || newInput('name')).focus();
      } finally {
        save.disabled = false;
      }
    }

    add.addEventListener('click', () => (form.hidden ? openNew() : closeNew()));
    /** @type {HTMLElement} */ (document.getElementById('book-new-save')).addEventListener('click', saveNew);
    /** @type {HTMLElement} */ (document.getElementById('book-new-cancel')).addEventListener('click', () => {
      closeNew();
      input.focus();
    });
    form.addEventListener('keydown', (/** @type {KeyboardEvent} */ e) => {
      // Enter in these fields adds the customer; it must not submit the booking.
      if (e.key === 'Enter') { e.preventDefault(); saveNew(); }
      if (e.key === 'Escape') { e.preventDefault(); e.stopPropagation(); closeNew(); input.focus(); }
    });

    return {
      /** The chosen customer's id (null: a guest). */
      get value() { return chosen; },
      /** Whether the field holds text that is not a chosen customer. */
      get undecided() { return chosen === null && input.value.trim() !== ''; },
      /** Show `id` as chosen (a form opening), by its name in the directory. @param {number | null} id */
      set(id) {
        clearTimeout(timer);
        asked++;
        chosen = id;
        chosenText = id == null ? '' : directory.customerName(id);
        input.value = chosenText;
        close();
        closeNew();
        add.hidden = !isAdmin();
        hint.textContent = id == null ? 'Empty: a guest (no customer). Type a name, phone or e-mail to find one.'
          : '';
      },
    };
  }

  /**
   * The customer's card in the details panel.
   * @param {{api: Api, container: HTMLElement, directory: any}} deps
   */
  function createCard({api, container, directory}) {
    /** @type {number | null} */
    let shownId = null;
    let asked = 0;
    const day = new Intl.DateTimeFormat(undefined, {weekday: 'short', day: 'numeric', month: 'short',
      hour: '2-digit', minute: '2-digit'});

    /** @param {string} text @param {string} [tag] */
    const el = (text, tag = 'p') => { const e = document.createElement(tag); e.textContent = text; return e; };

    /** @param {string} title @param {any[]} rows @param {number} current */
    function list(title, rows, current) {
      const section = document.createElement('section');
      section.append(el(title, 'h3'));
      if (!rows.length) { section.append(el('None.', 'p')); return section; }
      const ol = document.createElement('ol');
      for (const a of rows) {
        const li = document.createElement('li');
        li.textContent = `${day.format(a.start * 1000)} · ${directory.productLabel(a.product_id)} · `
          + `${String(a.status).replace(/-/g, ' ')}${a.id === current ? ' (this one)' : ''}`;
        ol.append(li);
      }
      section.append(ol);
      return section;
    }

    /** @param {any} c @param {number} current */
    function render(c, current) {
      const now = Date.now() / 1000;
      const contact = document.createElement('dl');
      for (const [name, value, scheme] of [['Phone', c.phone, 'tel:'], ['E-mail', c.email, 'mailto:']]) {
        const dd = document.createElement('dd');
        if (value) {
          const a = document.createElement('a');
          a.href = scheme + (scheme === 'tel:' ? String(value).replace(/[^0-9+]/g, '') : value);
          a.textContent = value;
          dd.append(a);
        } else {
          dd.textContent = '—';
        }
        contact.append(el(name, 'dt'), dd);
      }
      const past = c.appointments.filter((/** @type {any} */ a) => a.start < now).reverse();
      const coming = c.appointments.filter((/** @type {any} */ a) => a.start >= now);
      container.replaceChildren(el(`Customer: ${c.name}`, 'h3'), contact,
        list('Coming appointments', coming, current), list('Earlier appointments', past, current));
    }

    return {
      /**
       * Show customer `id` (null: a guest, nothing to show) for appointment
       * `current`. Asked again only when the customer changes or `fresh`.
       * @param {number | null} id @param {number} current @param {boolean} [fresh]
       */
      async show(id, current, fresh = false) {
        if (id === shownId && !fresh) return;
        // The same customer asked again (one of their appointments changed):
        // what is shown stays until the new answer replaces it, no flicker.
        const again = id != null && id === shownId && container.childElementCount > 0;
        shownId = id;
        const mine = ++asked;
        if (!again) {
          container.replaceChildren();
          container.hidden = id == null;
          if (id == null) return;
          container.append(el('Loading the customer…', 'p'));
        }
        try {
          const c = await api('GET', `/api/customers/${id}`);
          if (mine === asked) render(c, current);
        } catch (failure) {
          if (mine !== asked) return;
          const err = /** @type {any} */ (failure);
          container.replaceChildren(el(err.status === 404 ? 'This customer’s details are not available to you.'
            : `Could not load the customer’s details: ${err.message}`, 'p'));
        }
      },
      /** The customer shown, or null. */
      get showing() { return shownId; },
      /** Forget what is shown (the panel closed). */
      clear() { shownId = null; asked++; container.replaceChildren(); container.hidden = true; },
    };
  }

  root.TsseCustomers = {createPicker, createCard, label};
})(globalThis);
