"""``GET /api/appointments.ics``: a staff member's appointments as an
iCalendar file, for a phone's calendar or paper (issue 23; not in SPEC,
see README).

The same ``start``/``end`` conventions as the snapshot (SPEC §5). An admin
may export anyone's (or, without ``staff_id``, everyone's); a staff token
only its own: asking for another staff member's is 403.
"""

from __future__ import annotations

import datetime as dt

from .. import export_rows, ical
from ..errors import forbidden, invalid_params
from .api import requested_range
from .base import BaseHandler


class IcsHandler(BaseHandler):
    async def get(self) -> None:
        principal = self.principal()
        errors: dict[str, str] = {}
        start, end = requested_range(self, errors)
        staff_id = self.int_arg("staff_id", errors, minimum=1)
        self.check(errors)
        assert start is not None and end is not None
        own = principal.audience_staff_id
        if own is not None and staff_id not in (None, own):
            raise forbidden("Staff may export their own appointments only.")
        staff_id = own if own is not None else staff_id
        try:
            name, entries = await export_rows.export(self.ctx.pool, start=start, end=end, staff_id=staff_id,
                                                     limits=self.limits)
        except export_rows.TooMany:
            raise invalid_params({"end": f"the range holds more than {export_rows.MAX_ROWS} appointments; "
                                         "choose a shorter one."}) from None
        title = "Appointments" if staff_id is None else f"Appointments · {name or f'staff #{staff_id}'}"
        body = ical.calendar(entries, name=title, host=self.request.host_name or "localhost",
                             stamp=dt.datetime.now(dt.timezone.utc))
        filename = "appointments.ics" if staff_id is None else f"appointments-staff-{staff_id}.ics"
        self.set_header("Content-Type", "text/calendar; charset=utf-8")
        self.set_header("Content-Disposition", f'attachment; filename="{filename}"')
        self.set_header("Cache-Control", "no-store")
        self.finish(body.encode("utf-8"))
