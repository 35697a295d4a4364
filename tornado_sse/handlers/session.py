"""The browser's way in: trade a token for an HttpOnly cookie, and ask who
the cookie belongs to.

A calendar opened from a link with ``?token=`` posts the token here once;
the cookie then authenticates EventSource (which cannot send headers) and
the API, and the page removes the token from the address bar so it does not
linger in history or get shared by copy-paste. The cookie is HttpOnly
(scripts cannot read it), SameSite=Strict (other sites cannot ride it) and
Secure over HTTPS; it lives exactly as long as the token.

Login CSRF (a cross-site form planting another user's token) is refused:
the body must be ``application/json`` (a form cannot send it without a CORS
preflight), and a browser's ``Origin`` (or ``Sec-Fetch-Site``) must be this
server's own origin or an allowed one. A token above 4 KB is refused too:
browsers silently drop such a cookie, and the calendar would then get a 401
with no explanation.
"""

from __future__ import annotations

import json
import time

from ..auth import COOKIE
from ..errors import ApiError, forbidden, invalid_params
from .base import BaseHandler

#: Browsers keep cookies up to about 4 KB, name and attributes included.
MAX_TOKEN = 4096


class SessionHandler(BaseHandler):
    body_limit = 16 * 1024
    auth_before_body = False  # the body is the token

    def post(self) -> None:
        ctype = self.request.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if ctype != "application/json":
            raise ApiError(415, "rest_invalid_content_type", "Send the body as application/json.")
        self._same_origin()
        try:
            body = json.loads(self.body or b"{}")
        except (ValueError, RecursionError):
            raise invalid_params({"token": "The body must be JSON: {\"token\": \"...\"}."}) from None
        token = body.get("token") if isinstance(body, dict) else None
        if not isinstance(token, str) or not token.strip():
            raise invalid_params({"token": "token is required."})
        if len(token.encode("utf-8", "replace")) > MAX_TOKEN:
            raise invalid_params({"token": f"token is longer than {MAX_TOKEN} bytes; a browser would drop "
                                           "the cookie."})
        principal = self.ctx.auth.check(token.strip())
        max_age = None
        if principal.expires_at is not None:
            max_age = max(1, int(principal.expires_at - time.time()))
        self.set_cookie(COOKIE, token.strip(), httponly=True, samesite="Strict", path="/",
                        secure=self.request.protocol == "https", max_age=max_age)
        self.set_header("Cache-Control", "no-store")
        self.set_status(204)

    def delete(self) -> None:
        self._same_origin()
        self.clear_cookie(COOKIE, path="/")
        self.set_status(204)

    def _same_origin(self) -> None:
        """403 for a browser request from another site (not on --cors-origins)."""
        origin = self.request.headers.get("Origin")
        if origin is not None and origin != "null":
            own = f"{self.request.protocol}://{self.request.host}"
            if origin == own or origin in self.application.settings["cors_origins"]:
                return
            raise forbidden("Cross-site requests may not set the session.")
        site = self.request.headers.get("Sec-Fetch-Site")
        if origin == "null" or (site is not None and site not in ("same-origin", "none")):
            raise forbidden("Cross-site requests may not set the session.")


class MeHandler(BaseHandler):
    """Who the request authenticates as, so a page can show role and expiry."""

    def get(self) -> None:
        p = self.principal()
        self.set_header("Cache-Control", "no-store")
        self.write_json({"role": p.role, "staff_id": p.staff_id,
                         "exp": None if p.expires_at is None else int(p.expires_at)})
