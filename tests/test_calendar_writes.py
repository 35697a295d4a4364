"""Two receptionists, one truth (issue 20), as the front desk sees it: in
real headless Chromium against a real server and PostgreSQL.

The page's side of SPEC §8: a stale write gets the conflict dialog instead
of overwriting, a double booking is named and booked only on purpose, the
panel offers only the actions that fit, a drag across staff columns
reassigns, the activity list says who did what and when, and both views
shade the time the availability rules close (availability.js, whose rule
reading is checked here on its own, in the browser that runs it).

The page's test surface: ``#ask`` (the one dialog for confirmations and
conflicts, ``data-kind`` says which; its buttons carry ``data-answer``),
``#details-actions button[data-action]``, ``window.tsse`` (calendar.js)
and ``TsseAvailability.closed`` (availability.js).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import re
import struct
import time
from pathlib import Path
from typing import Any

import pytest

from tests.fix_browser import CalendarPage, within
from tests.fix_calendar import DAY, SCREENSHOT_NOW, at, book, calendar_url, row, seed_demo_week
from tests.fix_db import execute
from tests.fix_directory import add_directory

pytestmark = pytest.mark.browser

STATIC = Path(__file__).resolve().parent.parent / "tornado_sse" / "static"
DOCS = Path(__file__).resolve().parent.parent / "docs"
ANNA: dict[str, Any] = {"customer_id": 1000, "product_id": 101, "staff_ids": [1]}


def card(tab: CalendarPage, appointment_id: int, where: str = "#calendar"):
    return tab.page.locator(f'{where} [data-appointment-id="{appointment_id}"]')


async def offered(tab: CalendarPage) -> list[str]:
    """The panel's actions a person can see, in order."""
    return await tab.page.eval_on_selector_all(
        "#details-actions button", "bs => bs.filter(b => !b.hidden).map(b => b.dataset.action)")


async def open_panel(tab: CalendarPage, appointment_id: int) -> None:
    await card(tab, appointment_id).click()
    await tab.wait("id => !document.getElementById('details').hidden"
                   " && document.getElementById('details-body').innerText.includes('#' + id)", appointment_id)


# -- the rules, read in the page ----------------------------------------------------

CLOSED = """([rules, from, to, ctx]) => TsseAvailability.closed(rules, new Date(from), new Date(to), ctx)
    .map(c => [c.start.toISOString().slice(5, 16), c.end.toISOString().slice(5, 16), c.rule && c.rule.title])"""


def rule(title: str, range_type: str, from_range: str, to_range: str, appointable: bool = False,
         priority: int = 10, scope: str = "global", **cols: Any) -> dict[str, Any]:
    return {"id": abs(hash(title)) % 10_000, "scope": scope, "product_id": None, "staff_id": None,
            "title": title, "range_type": range_type, "from_range": from_range, "to_range": to_range,
            "appointable": appointable, "priority": priority, "ordering": 0, "rrule": None, **cols}


OPENING = rule("Opening hours", "time", "09:00", "18:00", appointable=True)
SUNDAYS = rule("Sundays off", "days", "7", "7", priority=5)
# 2026-11-18 is a Wednesday; the page runs in UTC (tests/fix_browser.py).
WED, THU, SUN, MON = "2026-11-18T00:00", "2026-11-19T00:00", "2026-11-22T00:00", "2026-11-23T00:00"

RULE_CASES = [  # rules, from, to, context, closed intervals [start, end, deciding rule]
    pytest.param([OPENING], WED, THU, {}, [["11-18T00:00", "11-18T09:00", None], ["11-18T18:00", "11-19T00:00", None]],
                 id="opening hours close the rest of the day"),
    pytest.param([OPENING, SUNDAYS], SUN, MON, {}, [["11-22T00:00", "11-23T00:00", "Sundays off"]],
                 id="a closed weekday beats opening hours by priority"),
    pytest.param([OPENING, SUNDAYS, rule("Sunday market", "time:7", "10:00", "14:00", True, 1, "staff", staff_id=2)],
                 SUN, MON, {"staffId": 2},
                 [["11-22T00:00", "11-22T10:00", "Sundays off"], ["11-22T14:00", "11-23T00:00", "Sundays off"]],
                 id="a staff rule of higher priority opens a closed day"),
    pytest.param([rule("Night", "time", "22:00", "06:00")], WED, THU, {},
                 [["11-18T00:00", "11-18T06:00", "Night"], ["11-18T22:00", "11-19T00:00", "Night"]],
                 id="overnight time"),
    pytest.param([rule("Team meeting", "time:3", "13:00", "14:30")], "2026-11-17T00:00", "2026-11-20T00:00", {},
                 [["11-18T13:00", "11-18T14:30", "Team meeting"]], id="time on one weekday"),
    pytest.param([rule("Holiday", "custom", "2026-11-18", "2026-11-19", scope="staff", staff_id=3)],
                 "2026-11-17T00:00", "2026-11-21T00:00", {"staffId": 3},
                 [["11-18T00:00", "11-20T00:00", "Holiday"]], id="custom dates, both days included"),
    pytest.param([rule("Holiday", "custom", "2026-11-18", "2026-11-19", scope="staff", staff_id=3)],
                 WED, THU, {"staffId": 1}, [], id="another staff member's rule does not apply"),
    pytest.param([rule("Product pause", "time", "12:00", "13:00", scope="product", product_id=101)],
                 WED, THU, {"productId": 101}, [["11-18T12:00", "11-18T13:00", "Product pause"]],
                 id="a product's rule applies to that product"),
    pytest.param([rule("Inventory", "custom:daterange", "2026-11-18 10:00", "2026-11-19 12:30")],
                 WED, "2026-11-20T00:00", {}, [["11-18T10:00", "11-19T12:30", "Inventory"]], id="date-time range"),
    pytest.param([rule("Winter", "months", "12", "1")], "2026-11-30T00:00", "2026-12-02T00:00", {},
                 [["12-01T00:00", "12-02T00:00", "Winter"]], id="months, wrapping the year"),
    pytest.param([rule("Week 47", "weeks", "47", "47")], "2026-11-15T00:00", "2026-11-17T00:00", {},
                 [["11-16T00:00", "11-17T00:00", "Week 47"]], id="ISO weeks"),
    pytest.param([rule("Christmas Day", "rrule", "2024-12-25", "2024-12-25",
                       rrule="FREQ=YEARLY;BYMONTH=12;BYMONTHDAY=25")],
                 "2026-12-24T00:00", "2026-12-27T00:00", {}, [["12-25T00:00", "12-26T00:00", "Christmas Day"]],
                 id="yearly rrule"),
    pytest.param([rule("Mystery", "lunar", "1", "2")], WED, THU, {}, [], id="an unknown type closes nothing"),
]


@pytest.mark.gen_test(timeout=30)
async def test_the_rules_close_what_each_range_type_says(chromium):
    """One page, every case: availability.js is pure, so it needs no server."""
    session = await chromium.session()
    page = await session.context.new_page()
    await page.add_script_tag(path=str(STATIC / "availability.js"))
    failures = []
    for case in RULE_CASES:
        rules, start, end, ctx, expected = case.values
        got = await page.evaluate(CLOSED, [rules, start, end, ctx])
        if got != expected:
            failures.append(f"{case.id}: {got} != {expected}")
    assert failures == []
    unknown = await page.evaluate("rules => TsseAvailability.unknownRules(rules).map(r => r.title)",
                                  [OPENING, rule("Mystery", "lunar", "1", "2")])
    assert unknown == ["Mystery"]


# -- status actions that mean what they say ----------------------------------------

EXPECTED_ACTIONS = [  # status, customer status, what the panel offers
    ("pending-confirmation", "expected", ["edit", "confirm", "paid", "arrived", "no-show", "cancel", "trash", "delete"]),
    ("paid", "expected", ["edit", "complete", "arrived", "no-show", "cancel", "trash", "delete"]),
    ("confirmed", "arrived", ["edit", "paid", "complete", "no-show", "expected", "cancel", "trash", "delete"]),
    ("cancelled", "expected", ["edit", "restore", "trash", "delete"]),
]


@pytest.mark.gen_test(timeout=40)
async def test_the_panel_offers_only_the_actions_that_fit_and_cancel_asks_first(chromium, make_server, db):
    add_directory(db)
    server = await make_server()
    session = await chromium.session()
    tab = await session.open(calendar_url(server))
    week_start, _ = await tab.week()
    ids = [book(db, week_start, n, 10, status=status, customer_status=arrival, **ANNA)
           for n, (status, arrival, _) in enumerate(EXPECTED_ACTIONS)]
    for i in ids:
        await tab.wait_shown(i)
    for i, (status, _, actions) in zip(ids, EXPECTED_ACTIONS):
        await open_panel(tab, i)
        assert await offered(tab) == actions, status

    # Arrival shows on the card and in its accessible name.
    arrived = card(tab, ids[2])
    assert "✓ arrived" in await arrived.inner_text()
    assert "arrived" in (await arrived.get_attribute("aria-label") or "")

    # Cancel asks first; "Keep it" sends nothing.
    writes: list[str] = []
    tab.page.on("request", lambda r: writes.append(r.method) if r.method not in ("GET",) else None)
    await open_panel(tab, ids[1])  # paid
    await tab.page.click('#details-actions button[data-action="cancel"]')
    ask = tab.page.locator("#ask")
    await ask.wait_for(state="visible", timeout=5000)
    assert await ask.get_attribute("data-kind") == "confirm"
    assert "Anna Berg" in await ask.inner_text()
    # The safe answer has the focus: Enter never cancels by accident.
    assert await tab.page.evaluate("document.activeElement.dataset.answer") == "no"
    await tab.page.keyboard.press("Enter")
    await ask.wait_for(state="hidden", timeout=5000)
    await asyncio.sleep(0.3)
    assert writes == [] and row(db, ids[1]) == ("paid", "expected")

    # A cancelled booking is restored explicitly before anything else.
    await open_panel(tab, ids[3])
    async with tab.page.expect_response(lambda r: r.request.method == "PATCH", timeout=5000) as sent:
        await tab.page.click('#details-actions button[data-action="restore"]')
    assert (await sent.value).status == 200
    assert json.loads((await sent.value).request.post_data or "{}") == {"status": "confirmed"}
    await tab.wait("id => window.tsse.appointment(id).status === 'confirmed'", ids[3])
    await within(5, "Mark paid offered once restored", lambda: _offers(tab, "paid"))


async def _offers(tab: CalendarPage, action: str) -> bool:
    return action in await offered(tab)


# -- the staff-by-staff day -------------------------------------------------------

COLUMN_OF = """id => [...document.querySelectorAll(`#staff-day-columns [data-appointment-id="${id}"]`)]
    .map(e => e.closest('[data-staff-id]').dataset.staffId)"""


async def column_box(tab: CalendarPage, staff_id: int) -> dict[str, float]:
    return await tab.page.eval_on_selector(
        f'#staff-day-columns [data-staff-id="{staff_id}"] .staff-column-calendar',
        "el => { const b = el.getBoundingClientRect(); return {x: b.x, y: b.y, width: b.width, height: b.height}; }")


@pytest.mark.gen_test(timeout=40)
async def test_dragging_a_card_into_another_staff_column_reassigns_it(chromium, make_server, db):
    add_directory(db)
    server = await make_server()
    session = await chromium.session()
    tab = await session.open(calendar_url(server))
    today = int(time.time()) // DAY * DAY
    moved = book(db, today, 0, 10, **ANNA)  # Jonas
    await tab.wait_shown(moved)
    await tab.page.click("#view-staff")
    source = card(tab, moved, '#staff-day-columns [data-staff-id="1"]')
    await source.wait_for(timeout=5000)
    await source.scroll_into_view_if_needed()

    box = await source.bounding_box()
    target = await column_box(tab, 2)  # Mia
    assert box is not None
    x, y = box["x"] + box["width"] / 2, box["y"] + 8
    mouse = tab.page.mouse
    async with tab.page.expect_response(lambda r: r.request.method == "PATCH", timeout=5000) as sent:
        await mouse.move(x, y)
        await mouse.down()
        await mouse.move(x + 10, y, steps=3)
        await mouse.move(target["x"] + target["width"] / 2, y, steps=12)
        await mouse.up()
    response = await sent.value
    assert response.status == 200, await response.text()
    body = json.loads(response.request.post_data or "{}")
    assert body == {"staff_ids": [2]}  # same time: only the reassignment
    assert execute(db, "SELECT staff_ids, start_at = %s FROM appointments WHERE id = %s",
                   (at(today, 0, 10), moved)) == [([2], True)]
    await within(5, "the card in Mia's column only", lambda: _in_columns(tab, moved, ["2"]))
    lines = await tab.call("activity")
    assert re.match(r"\d\d:\d\d Anna Berg reassigned from Jonas to Mia\b", lines[0]), lines


async def _in_columns(tab: CalendarPage, appointment_id: int, columns: list[str]) -> bool:
    return await tab.page.evaluate(COLUMN_OF, appointment_id) == columns


@pytest.mark.gen_test(timeout=40)
async def test_the_staff_day_and_the_week_shade_unavailable_time(chromium, make_server, db):
    seed_demo_week(db, SCREENSHOT_NOW)
    server = await make_server()
    session = await chromium.session()
    await session.context.clock.set_fixed_time(SCREENSHOT_NOW)
    tab = await session.open(calendar_url(server))
    # The week: global rules only (no filter): Sunday closed all day, evenings closed.
    await tab.wait("() => document.querySelectorAll('#calendar .tsse-unavailable').length > 0")
    sunday = (SCREENSHOT_NOW + dt.timedelta(days=4)).date().isoformat()
    assert "Sundays off" in await tab.page.eval_on_selector_all(
        f'#calendar [data-date="{sunday}"] .tsse-unavailable', "els => els.map(e => e.innerText).join(' ')")

    # Next Monday: Lena's holiday closes her whole day; the others are open 09:00-18:00.
    monday = int(dt.datetime.combine(SCREENSHOT_NOW.date() + dt.timedelta(days=5), dt.time(),
                                     dt.timezone.utc).timestamp())
    for staff, hour, customer, product in [(1, 9.5, 1001, 101), (2, 10, 1002, 102), (4, 14, 1003, 103),
                                           (1, 16, 1004, 101)]:
        book(db, monday, 0, hour, hours=1, staff_ids=[staff], customer_id=customer, product_id=product)
    await tab.page.click("#view-staff")
    await tab.page.locator("#staff-day-columns h3").first.wait_for(timeout=5000)
    for _ in range(5):
        await tab.page.click("#staff-day-next")
    await tab.wait("() => document.getElementById('staff-day-title').innerText.startsWith('Monday')")
    shaded = """id => [...document.querySelectorAll(`#staff-day-columns [data-staff-id="${id}"] .tsse-unavailable`)]
        .map(e => e.innerText.trim())"""
    await within(5, "Lena's holiday drawn", lambda: _shaded_has(tab, shaded, 3, "Holiday"))
    assert await tab.page.locator("#staff-day-columns h3").all_inner_texts() == [
        "Jonas", "Lena Holiday", "Mia", "Omar", "Unassigned"]
    assert "Holiday" not in await tab.page.evaluate(shaded, 1)
    assert "Outside opening hours" in await tab.page.evaluate(shaded, 1)
    await tab.page.evaluate("document.fonts.ready.then(() => undefined)")
    png = await tab.page.screenshot()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and struct.unpack(">II", png[16:24]) == (1400, 900)
    _save(DOCS / "staff-day-unavailable.png", png)


async def _shaded_has(tab: CalendarPage, script: str, staff_id: int, title: str) -> bool:
    return title in await tab.page.evaluate(script, staff_id)


def _save(target: Path, png: bytes) -> None:
    """Write a screenshot for the docs, only when it changed (no churn)."""
    if not target.exists() or target.read_bytes() != png:
        DOCS.mkdir(exist_ok=True)
        target.write_bytes(png)
