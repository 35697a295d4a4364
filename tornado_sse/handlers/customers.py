"""``/api/customers``: type-ahead search and create; ``/api/customers/{id}``:
one customer with their appointments (issue 23; not in SPEC, see README).

Search and the customer card are for admins and staff; a staff token finds
only the customers of its own appointments and gets 404 for anyone else's,
as for another staff member's appointment. Creating is for admins (403 for
staff, as every write, SPEC §8).
"""

from __future__ import annotations

import psycopg

from .. import customers
from ..errors import ApiError, busy, forbidden, key_reused
from ..idempotency import KeyReused
from ..validation import customer_columns
from .base import BaseHandler


class CustomersHandler(BaseHandler):
    async def get(self) -> None:
        """``?q=<text>&limit=<n>``: the best matches, bounded."""
        principal = self.principal()
        errors: dict[str, str] = {}
        q = self.get_query_argument("q", None, strip=False)
        if q is None or not q.strip():
            errors["q"] = "q is required: the text to search for."
        elif len(q) > customers.MAX_QUERY:
            errors["q"] = f"q may be at most {customers.MAX_QUERY} characters."
        limit = self.int_arg("limit", errors, minimum=1, maximum=customers.MAX_LIMIT,
                             default=customers.DEFAULT_LIMIT)
        self.check(errors)
        assert q is not None and limit is not None
        found = await customers.search(self.ctx.pool, q, limit=limit,
                                       staff_id=principal.audience_staff_id, limits=self.limits)
        self.set_header("Cache-Control", "no-store")
        self.write_json({"customers": found})

    async def post(self) -> None:
        """Create a customer (admins): ``{name, phone?, email?}``; with an
        Idempotency-Key, a double click or a retry creates one customer."""
        principal = self.principal()
        if not principal.is_admin:
            raise forbidden("Only admins may add customers.")
        body = self.json_body()
        idem = self.idempotency(principal, body)
        errors: dict[str, str] = {}
        values = customer_columns(body, errors=errors)
        self.check(errors)
        try:
            row, replayed = await customers.create(self.ctx.pool, values, self.limits, idempotency=idem)
        except psycopg.errors.UniqueViolation:
            raise busy("Customers are being added elsewhere at this moment; try again.") from None
        except KeyReused:
            raise key_reused() from None
        if replayed:
            self.set_header("Idempotent-Replayed", "true")
        self.write_json(row, 201)


class CustomerHandler(BaseHandler):
    async def get(self, customer_id: str) -> None:
        """The customer, and their last past and next upcoming appointments."""
        principal = self.principal()
        row = await customers.one(self.ctx.pool, int(customer_id), staff_id=principal.audience_staff_id,
                                  limits=self.limits)
        if row is None:  # also someone else's customer: not this staff member's to see
            raise ApiError(404, "rest_invalid_id", f"No customer with id {customer_id}.")
        self.set_header("Cache-Control", "no-store")
        self.write_json(row)
