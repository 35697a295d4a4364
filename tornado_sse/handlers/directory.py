"""``GET /api/directory``: the names a calendar shows for ids (staff, products, customers).

Readable by whoever may read the snapshot (admins and staff, SPEC §4): a
staff token gets the customers of its own appointments only (issue 23), an
admin's front desk every name to book. Read-only: the shop owns these rows
(customers are created through /api/customers).
"""

from __future__ import annotations

from .. import directory
from .base import BaseHandler


class DirectoryHandler(BaseHandler):
    async def get(self) -> None:
        principal = self.principal()
        body = await directory.load(self.ctx.pool, staff_id=principal.audience_staff_id)
        self.set_header("Cache-Control", "no-store")
        self.write_json(body)
