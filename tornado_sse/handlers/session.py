"""The browser's way in: trade a token for an HttpOnly cookie, and ask who
the cookie belongs to.

A calendar opened from a link with ``?token=`` posts the token here once;
the cookie then authenticates EventSource (which cannot send headers) and
the API, and the page removes the token from the address bar so it does not
linger in history or get shared by copy-paste. The cookie is HttpOnly
(scripts cannot read it), SameSite=Strict (other sites cannot ride it) and
Secure over HTTPS; it lives exactly as long as the token.
"""

from __future__ import annotations

import json
import time

from ..auth import COOKIE
from ..errors import invalid_params
from .base import BaseHandler


class SessionHandler(BaseHandler):
    def post(self) -> None:
        try:
            body = json.loads(self.request.body or b"{}")
        except ValueError:
            raise invalid_params({"token": "The body must be JSON: {\"token\": \"...\"}."}) from None
        token = body.get("token") if isinstance(body, dict) else None
        if not isinstance(token, str) or not token.strip():
            raise invalid_params({"token": "token is required."})
        principal = self.ctx.auth.check(token.strip())
        max_age = None
        if principal.expires_at is not None:
            max_age = max(1, int(principal.expires_at - time.time()))
        self.set_cookie(COOKIE, token.strip(), httponly=True, samesite="Strict", path="/",
                        secure=self.request.protocol == "https", max_age=max_age)
        self.set_header("Cache-Control", "no-store")
        self.set_status(204)

    def delete(self) -> None:
        self.clear_cookie(COOKIE, path="/")
        self.set_status(204)


class MeHandler(BaseHandler):
    """Who the request authenticates as, so a page can show role and expiry."""

    def get(self) -> None:
        p = self.principal()
        self.set_header("Cache-Control", "no-store")
        self.write_json({"role": p.role, "staff_id": p.staff_id,
                         "exp": None if p.expires_at is None else int(p.expires_at)})
