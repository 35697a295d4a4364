"""``GET /openapi.json``: the API description (SPEC §6), public like the page.

It describes routes, not data, so it needs no token: a team points its
client generator or its gateway at it directly.
"""

from __future__ import annotations

from ..openapi import DOCUMENT_BYTES
from .base import BaseHandler


class OpenApiHandler(BaseHandler):
    def get(self) -> None:
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.set_header("Cache-Control", "public, max-age=300")
        self.finish(DOCUMENT_BYTES)
