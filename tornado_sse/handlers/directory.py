"""``GET /api/directory``: the names a calendar shows for ids (staff, products, customers).

Readable by whoever may read the snapshot (admins and staff, SPEC §4): a
staff member's calendar names the customers of their own appointments, and
a front desk needs every name to book. Read-only: the shop owns these rows.
"""

from __future__ import annotations

from .. import directory
from .base import BaseHandler


class DirectoryHandler(BaseHandler):
    async def get(self) -> None:
        self.principal()
        body = await directory.load(self.ctx.pool)
        self.set_header("Cache-Control", "no-store")
        self.write_json(body)
