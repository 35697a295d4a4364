"""The calendar page's hardening in real headless Chromium (issue 19).

- The page works under its Content-Security-Policy (no violation, the
  stream live, a change made with SQL shown), sends no ``Referer`` (the
  address holds ``?token=``), and cannot be framed.
- A link with someone else's token does not replace the session silently:
  the page shows who is signed in and whom the link is for, and asks.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from tests.fix_browser import within
from tests.fix_calendar import calendar_url
from tests.fix_db import insert_appointment
from tests.fix_server import staff_token

pytestmark = pytest.mark.browser

#: Collects the page's CSP violations before any of its scripts run.
RECORD_VIOLATIONS = """
window.__cspViolations = [];
document.addEventListener('securitypolicyviolation',
  (e) => window.__cspViolations.push(e.violatedDirective + ' ' + e.blockedURI));
"""


@pytest.mark.gen_test(timeout=60)
async def test_calendar_works_under_its_csp_sends_no_referer_and_cannot_be_framed(server, db, chromium):
    session = await chromium.session()
    await session.context.add_init_script(RECORD_VIOLATIONS)
    requests: list[Any] = []
    documents: list[Any] = []
    session.context.on("request", lambda r: requests.append(r))
    session.context.on("response", lambda r: documents.append(r) if r.request.resource_type == "document"
                       else None)
    tab = await session.open(calendar_url(server))
    now = dt.datetime.now(dt.timezone.utc)
    shown = insert_appointment(db, start_at=now, end_at=now + dt.timedelta(hours=1))
    await tab.wait_shown(shown)
    assert await tab.page.evaluate("() => window.__cspViolations") == []
    assert "frame-ancestors 'none'" in (await documents[0].all_headers())["content-security-policy"]
    assert len(requests) > 10  # scripts, styles, the session, the snapshot, the stream
    referers = [await r.header_value("referer") for r in requests]
    assert referers == [None] * len(requests), [r.url for r, ref in zip(requests, referers, strict=True) if ref][:3]

    # Framed by another page: Chromium refuses and says why.
    framer = await session.context.new_page()
    console: list[str] = []
    framer.on("console", lambda m: console.append(m.text))
    await framer.set_content(f'<iframe src="{server.url}/"></iframe>')

    async def refused() -> list[str]:
        return [m for m in console if "frame-ancestors" in m]

    await within(10, "Chromium refusing the frame", refused)


@pytest.mark.gen_test(timeout=60)
async def test_a_link_for_another_identity_asks_before_it_replaces_the_session(server, chromium):
    session = await chromium.session()
    first = await session.open(calendar_url(server))
    assert await first.page.evaluate("() => document.body.dataset.role") == "admin"

    questions: list[str] = []
    answer = {"accept": False}

    async def on_dialog(dialog: Any) -> None:
        questions.append(dialog.message)
        await (dialog.accept() if answer["accept"] else dialog.dismiss())

    session.context.on("page", lambda page: page.on("dialog", on_dialog))
    link = calendar_url(server, staff_token(1))
    kept = await session.open(link)  # declined: still the admin's session
    assert len(questions) == 1 and "an admin" in questions[0] and "staff member #1" in questions[0], questions
    assert await kept.page.evaluate("() => document.body.dataset.role") == "admin"
    assert "token=" not in kept.page.url  # the link's token left the address bar all the same

    answer["accept"] = True
    switched = await session.open(link)
    assert len(questions) == 2
    assert await switched.page.evaluate("() => document.body.dataset.role") == "staff"
