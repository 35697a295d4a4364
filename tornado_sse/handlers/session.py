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

Behind a proxy the server's own origin and the cookie's ``Secure`` flag come
from ``--public-origin`` or a trusted proxy's ``X-Forwarded-*`` headers
(tornado_sse/forwarded.py).

Login CSRF by link (``/?token=<someone else's token>`` opened in a browser
already signed in) cannot swap the session silently: while the cookie holds
a valid token of another identity, the post is 409 ``rest_session_exists``,
whose message says who is signed in and whom the link is for; the page asks
the user and posts again with ``"replace": true`` only if they agree.
"""

from __future__ import annotations

import json
import time

from ..auth import COOKIE, Principal
from ..errors import ApiError, forbidden, invalid_params
from ..forwarded import is_https, own_origins
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
        if body.get("replace") is not True:
            self._refuse_silent_switch(principal)
        max_age = None
        if principal.expires_at is not None:
            max_age = max(1, int(principal.expires_at - time.time()))
        self.set_cookie(COOKIE, token.strip(), httponly=True, samesite="Strict", path="/",
                        secure=is_https(self.request, self.ctx.settings), max_age=max_age)
        self.set_header("Cache-Control", "no-store")
        self.set_status(204)

    def _refuse_silent_switch(self, new: Principal) -> None:
        """409 while the cookie holds a valid token of another identity."""
        morsel = self.request.cookies.get(COOKIE)
        if morsel is None or not morsel.value:
            return
        try:
            current = self.ctx.auth.check(morsel.value)
        except ApiError:
            return  # expired or no longer valid: nothing to lose
        if (current.role, current.staff_id, current.subject) == (new.role, new.staff_id, new.subject):
            return  # the same person with a fresher token
        raise ApiError(409, "rest_session_exists",
                       f"This browser is signed in as {_who(current)}; the link signs in as {_who(new)}. "
                       f"Replace the session?", current=_who(current), offered=_who(new))

    def delete(self) -> None:
        self._same_origin()
        self.clear_cookie(COOKIE, path="/")
        self.set_status(204)

    def _same_origin(self) -> None:
        """403 for a browser request from another site (not on --cors-origins)."""
        origin = self.request.headers.get("Origin")
        if origin is not None and origin != "null":
            if origin.lower() in own_origins(self.request, self.ctx.settings) \
                    or origin in self.application.settings["cors_origins"]:
                return
            raise forbidden("Cross-site requests may not set the session.")
        site = self.request.headers.get("Sec-Fetch-Site")
        if origin == "null" or (site is not None and site not in ("same-origin", "none")):
            raise forbidden("Cross-site requests may not set the session.")


def _who(p: Principal) -> str:
    """An identity as the page shows it."""
    who = f"staff member #{p.staff_id}" if p.role == "staff" else "an admin"
    return who + (f" ({p.subject})" if p.subject else "")


class MeHandler(BaseHandler):
    """Who the request authenticates as, so a page can show role and expiry."""

    def get(self) -> None:
        p = self.principal()
        self.set_header("Cache-Control", "no-store")
        self.write_json({"role": p.role, "staff_id": p.staff_id,
                         "exp": None if p.expires_at is None else int(p.expires_at)})
