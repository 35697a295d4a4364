// @ts-check
/*
 * TsseDirectory: the names behind the ids (GET /api/directory). Event
 * payloads carry ids only (SPEC §2), so the page resolves names here. Ids
 * the directory does not know (a shop or psql may write any) read "#id",
 * never an error, and a later directory load names them.
 */
(function (root) {
  'use strict';

  /**
   * @typedef {{id: number, name: string}} Named
   * @typedef {{id: number, name: string, duration_minutes: number, price: string}} Product
   * @typedef {{staff: Named[], products: Product[], customers: Named[]}} DirectoryData
   */

  function createDirectory() {
    /** @type {Map<number, Named>} */
    let staff = new Map();
    /** @type {Map<number, Product>} */
    let products = new Map();
    /** @type {Map<number, Named>} */
    let customers = new Map();

    /** @template T @param {(T & {id: number})[]} list @returns {Map<number, T & {id: number}>} */
    const byId = (list) => new Map((list || []).map((x) => [x.id, x]));
    /** @param {Map<number, Named>} map @param {number} id @param {string} what */
    const nameOf = (map, id, what) => map.get(id)?.name ?? `${what} #${id}`;

    return {
      /** Replace everything (a load is the whole truth). @param {DirectoryData} data */
      load(data) {
        staff = byId(data.staff);
        products = byId(data.products);
        customers = byId(data.customers);
      },
      /** Each list sorted by name, as the server sends it. */
      staff: () => [...staff.values()],
      products: () => [...products.values()],
      customers: () => [...customers.values()],
      /** @param {number} id */
      knowsCustomer: (id) => customers.has(id),
      /** A customer found or added since the load (customers.js), so cards name them. @param {Named} c */
      remember(c) { customers.set(c.id, {id: c.id, name: c.name}); },
      /** @param {number} id */
      product: (id) => products.get(id) || null,
      /** @param {number} id */
      staffName: (id) => nameOf(staff, id, 'Staff'),
      /** @param {number | null} id */
      customerName: (id) => (id == null ? 'Guest' : nameOf(customers, id, 'Customer')),
      /** "Haircut 45 min", or "Product #7". @param {number | null} id */
      productLabel(id) {
        if (id == null) return 'No service';
        const p = products.get(id);
        return p ? `${p.name} ${p.duration_minutes} min` : `Product #${id}`;
      },
      /** @param {{customer_id: number | null, product_id: number | null, staff_ids: number[]}} a */
      cardTitle(a) {
        const people = (a.staff_ids || []).map((id) => nameOf(staff, id, 'Staff')).join(' & ');
        return [this.customerName(a.customer_id), this.productLabel(a.product_id), people]
          .filter(Boolean).join(' · ');
      },
    };
  }

  root.TsseDirectory = {create: createDirectory};
})(globalThis);
