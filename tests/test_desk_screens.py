"""The front desk on any screen (issue 23), in real headless Chromium on the
seeded demo week: a phone (390×844) and a desktop (1440×900) without
horizontal scrolling and with the booking form fully in view, axe-core
finding nothing serious or critical on the week, day, staff-by-staff and
booking views, and the staff day on paper (print emulation).

The pictures in docs/ (phone.png, desktop.png, print.png) are written only
with ``TSSE_SCREENSHOTS=1`` (``TSSE_SCREENSHOTS=1 pytest
tests/test_desk_screens.py``), so CI runs check the layout without touching
the repository. axe-core comes from tests/a11y (``npm ci`` there,
scripts/test.sh); without it the axe test skips and says so.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import struct
from pathlib import Path
from typing import Any

import pytest

from tests.fix_browser import CalendarPage, save_picture
from tests.fix_calendar import SCREENSHOT_NOW, calendar_url, seed_demo_week
from tests.fix_db import execute
from tests.fix_server import admin_token, staff_token

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
AXE = ROOT / "tests" / "a11y" / "node_modules" / "axe-core" / "axe.min.js"
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1440, "height": 900}
#: What the page must never have: axe-core's two worst impact levels.
BLOCKING = ("serious", "critical")

# The page's layout facts a test asserts: no horizontal scroll, and
# where an element is against the viewport.
LAYOUT = """sel => {
    const el = sel ? document.querySelector(sel) : null;
    const box = el ? el.getBoundingClientRect() : null;
    return {scrollWidth: document.documentElement.scrollWidth, innerWidth: window.innerWidth,
            innerHeight: window.innerHeight,
            box: box && {left: box.left, top: box.top, right: box.right, bottom: box.bottom}};
}"""


async def demo_desk(chromium: Any, make_server: Any, db: str, viewport: dict[str, int],
                    token: str | None = None, server_options: dict[str, Any] | None = None,
                    **options: Any) -> CalendarPage:
    """The seeded demo week on a pinned clock, at ``viewport``, stream live."""
    seed_demo_week(db, SCREENSHOT_NOW)
    server = await make_server(**(server_options or {}))
    session = await chromium.session(viewport=viewport, **options)
    await session.context.clock.set_fixed_time(SCREENSHOT_NOW)
    tab = await session.open(calendar_url(server, token))
    await tab.wait("() => document.querySelectorAll('[data-appointment-id]').length > 0")
    await tab.page.evaluate("document.fonts.ready.then(() => undefined)")
    return tab


async def layout(tab: CalendarPage, selector: str | None = None) -> dict[str, Any]:
    return await tab.page.evaluate(LAYOUT, selector)


async def assert_no_horizontal_scroll(tab: CalendarPage, where: str) -> None:
    facts = await layout(tab)
    assert facts["scrollWidth"] <= facts["innerWidth"], f"{where}: scrolls sideways {facts}"


async def assert_inside_viewport(tab: CalendarPage, selector: str) -> None:
    facts = await layout(tab, selector)
    box = facts["box"]
    assert box is not None, f"{selector} is not in the page"
    assert box["left"] >= 0 and box["top"] >= 0, f"{selector} starts off screen: {facts}"
    assert box["right"] <= facts["innerWidth"] and box["bottom"] <= facts["innerHeight"], (
        f"{selector} ends off screen: {facts}")


async def open_booking(tab: CalendarPage) -> None:
    await tab.page.click("#book-button")
    await tab.page.locator("#booking").wait_for(state="visible", timeout=5000)


def png_size(png: bytes) -> tuple[int, int]:
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", png[16:24])


# -- phone and desktop ---------------------------------------------------------------

@pytest.mark.gen_test(timeout=40)
async def test_a_phone_shows_one_day_full_width_and_the_whole_booking_form(chromium, make_server, db):
    tab = await demo_desk(chromium, make_server, db, PHONE)
    await assert_no_horizontal_scroll(tab, "phone, calendar")
    # One day, not a week squeezed into 390 px; the activity waits behind a button.
    assert await tab.page.evaluate("() => window.tsse.calendar.view.type") == "timeGridDay"
    assert await tab.page.locator("#activity-section").is_hidden()
    assert await tab.page.locator("#activity-toggle").is_visible()
    calendar = await layout(tab, "#calendar")
    assert calendar["box"]["right"] - calendar["box"]["left"] >= PHONE["width"] - 20
    for control in ("#book-button", "#status-badge", "#now-button"):
        await assert_inside_viewport(tab, control)
    save_picture("phone.png", await tab.page.screenshot())

    await open_booking(tab)
    await assert_inside_viewport(tab, "#booking")
    await assert_no_horizontal_scroll(tab, "phone, booking form")
    await tab.page.keyboard.press("Escape")

    await tab.page.click("#activity-toggle")
    assert await tab.page.locator("#activity-section").is_visible()
    assert await tab.page.get_attribute("#activity-toggle", "aria-expanded") == "true"
    await assert_no_horizontal_scroll(tab, "phone, activity open")


@pytest.mark.gen_test(timeout=40)
async def test_a_desktop_shows_the_week_and_the_activity_without_scrolling_sideways(chromium, make_server, db):
    tab = await demo_desk(chromium, make_server, db, DESKTOP)
    assert await tab.page.evaluate("() => window.tsse.calendar.view.type") == "timeGridWeek"
    assert await tab.page.locator("#activity-section").is_visible()
    assert await tab.page.locator("#activity-toggle").is_hidden()
    await assert_no_horizontal_scroll(tab, "desktop")
    png = await tab.page.screenshot()
    assert png_size(png) == (1440, 900)
    save_picture("desktop.png", png)
    await open_booking(tab)
    await assert_inside_viewport(tab, "#booking")


# -- paper ---------------------------------------------------------------------------

@pytest.mark.gen_test(timeout=40)
async def test_the_staff_day_prints_one_person_a_page_with_status_in_words(chromium, make_server, db):
    tab = await demo_desk(chromium, make_server, db, DESKTOP)
    await tab.page.click("#view-staff")
    await tab.wait("() => document.querySelectorAll('#staff-day-columns [data-appointment-id]').length > 5")
    await tab.page.emulate_media(media="print")
    printed = await tab.page.evaluate("""() => {
        const shown = (sel) => [...document.querySelectorAll(sel)].filter((e) => e.offsetParent !== null).length;
        const columns = [...document.querySelectorAll('#staff-day-columns .staff-column')];
        const status = document.querySelector('#staff-day-columns .tsse-status-text');
        const card = document.querySelector('#staff-day-columns .tsse-appointment');
        return {toolbar: shown('header.bar'), activity: shown('#activity-section'),
                breaks: columns.slice(1).map((c) => getComputedStyle(c).breakBefore),
                statusText: status ? getComputedStyle(status).display : null,
                adjust: card ? getComputedStyle(card).printColorAdjust : null};
    }""")
    assert printed["toolbar"] == 0 and printed["activity"] == 0, printed
    assert printed["breaks"] and set(printed["breaks"]) == {"page"}, printed
    assert printed["statusText"] not in (None, "none"), printed
    assert printed["adjust"] == "exact", printed
    save_picture("print.png", await tab.page.screenshot(full_page=True))


# -- axe-core ------------------------------------------------------------------------

async def axe_violations(tab: CalendarPage, context: str | None = None) -> list[dict[str, Any]]:
    """axe-core's serious and critical violations on the page (or in ``context``)."""
    if not await tab.page.evaluate("() => typeof window.axe !== 'undefined'"):
        await tab.page.add_script_tag(content=AXE.read_text(encoding="utf-8"))
    found = await tab.page.evaluate(
        """async (ctx) => (await axe.run(ctx || document, {resultTypes: ['violations']})).violations
            .map((v) => ({id: v.id, impact: v.impact, nodes: v.nodes.length,
                          why: v.nodes.slice(0, 3).map((n) => n.failureSummary + ' @ ' + n.html.slice(0, 300))}))""",
        context)
    return [v for v in found if v["impact"] in BLOCKING]


@pytest.mark.gen_test(timeout=60)
async def test_axe_core_finds_nothing_serious_on_the_week_day_staff_and_booking_views(chromium, make_server, db):
    if not AXE.exists():
        pytest.skip("axe-core is not installed: (cd tests/a11y && npm ci)")
    # The page's Content-Security-Policy refuses inline scripts: axe is let in by the test only.
    tab = await demo_desk(chromium, make_server, db, DESKTOP, bypass_csp=True)
    found: dict[str, list[dict[str, Any]]] = {"week": await axe_violations(tab)}
    await tab.page.evaluate("() => window.tsse.calendar.changeView('timeGridDay')")
    await tab.wait("() => window.tsse.calendar.view.type === 'timeGridDay'")
    found["day"] = await axe_violations(tab)
    await tab.page.click("#view-staff")
    await tab.wait("() => document.querySelectorAll('#staff-day-columns [data-appointment-id]').length > 5")
    found["staff"] = await axe_violations(tab)
    await open_booking(tab)
    found["booking"] = await axe_violations(tab)
    summary = {view: sum(v["nodes"] for v in violations) for view, violations in found.items()}
    print("axe-core serious/critical nodes per view:", summary)
    assert summary == {"week": 0, "day": 0, "staff": 0, "booking": 0}, "\n".join(
        f"{view}: {v}" for view, violations in found.items() for v in violations)


# -- words, roles and the keyboard -----------------------------------------------------

#: A card in the main calendar (any will do).
FIRST_CARD = "#calendar [data-appointment-id]"
STATUS_WORDS = ("Confirmed", "Paid", "Complete", "Unpaid", "Cancelled", "In cart", "Pending confirmation")


@pytest.mark.gen_test(timeout=40)
async def test_an_ended_session_says_so_in_plain_words_and_keeps_the_view_read_only(chromium, make_server, db):
    """At the end of a session (the token's expiry) the page said "Signed
    out" with instructions about `python run.py token`."""
    # No clock-skew leeway: the session ends when the token says.
    tab = await demo_desk(chromium, make_server, db, DESKTOP, token=admin_token(ttl=3),
                          server_options={"jwt_leeway": 0.0})
    shown = await tab.shown_ids()
    assert await tab.page.locator("#book-button").is_visible()
    await tab.wait_status("unauthorized", timeout=15_000)
    notice = await tab.page.locator("#notice-text").inner_text()
    assert notice.startswith("Your session has ended — open the calendar link again."), notice
    assert "python" not in notice and "token" not in notice
    assert await tab.page.locator("#status-badge").inner_text() == "Session ended"
    # What was on screen stays; nothing offers a write.
    assert await tab.shown_ids() == shown
    assert await tab.page.get_attribute("body", "data-readonly") == "true"
    assert await tab.page.locator("#book-button").is_hidden()
    assert await tab.page.evaluate(
        "() => [window.tsse.calendar.getOption('editable'), window.tsse.calendar.getOption('selectable')]"
    ) == [False, False]
    await tab.page.locator(FIRST_CARD).first.click()
    await tab.page.locator("#details").wait_for(state="visible", timeout=5000)
    assert await tab.page.locator("#details-actions").is_hidden()


@pytest.mark.gen_test(timeout=40)
async def test_staff_are_offered_no_drag_and_no_admin_buttons(chromium, make_server, db):
    """Staff could drag cards the server then refused (the card snapped back)."""
    tab = await demo_desk(chromium, make_server, db, DESKTOP, token=staff_token(1))
    writes: list[str] = []
    tab.page.on("request", lambda r: writes.append(f"{r.method} {r.url}") if r.method != "GET" else None)
    assert await tab.page.evaluate("() => window.tsse.calendar.getOption('editable')") is False
    assert await tab.page.evaluate("""() => window.tsse.calendar.getEvents()
        .filter((e) => e.extendedProps.appointment).every((e) => e.startEditable !== true)""")
    for hidden in ("#book-button", "#details-actions"):
        assert await tab.page.locator(hidden).is_hidden(), hidden
    # A drag moves nothing and sends nothing.
    card = tab.page.locator(FIRST_CARD).first
    appointment_id = int(await card.get_attribute("data-appointment-id") or 0)
    before = await tab.page.evaluate("id => window.tsse.appointment(id).start", appointment_id)
    box = await card.bounding_box()
    assert box is not None
    mouse = tab.page.mouse
    await mouse.move(box["x"] + 10, box["y"] + 10)
    await mouse.down()
    await mouse.move(box["x"] + 10, box["y"] + 150, steps=8)
    await mouse.up()
    await asyncio.sleep(0.3)
    assert writes == []
    assert await tab.page.evaluate("id => window.tsse.appointment(id).start", appointment_id) == before


@pytest.mark.gen_test(timeout=40)
async def test_escape_closes_the_details_from_anywhere_and_the_focus_returns_to_the_card(
        chromium, make_server, db):
    tab = await demo_desk(chromium, make_server, db, DESKTOP)
    card = tab.page.locator(FIRST_CARD).first
    appointment_id = await card.get_attribute("data-appointment-id")
    await card.focus()
    await tab.page.keyboard.press("Enter")
    await tab.page.locator("#details").wait_for(state="visible", timeout=5000)
    # The focus elsewhere (a filter), not in the panel: Escape still closes it.
    await tab.page.focus("#product-filter")
    await tab.page.keyboard.press("Escape")
    await tab.page.locator("#details").wait_for(state="hidden", timeout=5000)
    assert await tab.page.evaluate("() => document.activeElement.dataset.appointmentId") == appointment_id


@pytest.mark.gen_test(timeout=40)
async def test_now_comes_back_to_today_and_the_list_says_from_when_to_when_and_the_status(
        chromium, make_server, db):
    tab = await demo_desk(chromium, make_server, db, DESKTOP)
    today = await tab.week()
    await tab.page.evaluate("() => window.tsse.calendar.next()")
    await tab.wait("w => window.tsse.calendar.view.activeStart.getTime() / 1000 > w", today[0])
    await tab.page.click("#now-button")
    await tab.wait("w => window.tsse.calendar.view.activeStart.getTime() / 1000 === w", today[0])
    # The focus is on today's next appointment: one Tab stop, not sixty.
    await tab.wait("() => document.activeElement.dataset.appointmentId !== undefined")
    focused = await tab.page.evaluate(
        "() => window.tsse.appointment(Number(document.activeElement.dataset.appointmentId))")
    assert focused["end"] > SCREENSHOT_NOW.timestamp(), focused
    assert dt.datetime.fromtimestamp(focused["start"], dt.timezone.utc).date() == SCREENSHOT_NOW.date()

    await tab.page.evaluate("() => window.tsse.calendar.changeView('listWeek')")
    await tab.wait("() => document.querySelectorAll('#calendar [data-appointment-id]').length > 5")
    line = await tab.page.locator(FIRST_CARD).first.inner_text()
    assert re.search(r"\d\d:\d\d\s*[-–]\s*\d\d:\d\d", line), line  # start–end
    assert line.count(" · ") >= 1 and any(word in line for word in STATUS_WORDS), line


@pytest.mark.gen_test(timeout=40)
async def test_the_keyboard_reschedules_from_the_panel_with_the_version_a_drag_sends(chromium, make_server, db):
    """No drag needed: a start time in the details panel, the same length,
    the same versioned PATCH (If-Match) as a drag; the stream moves the card."""
    tab = await demo_desk(chromium, make_server, db, DESKTOP)
    appointment_id = await tab.page.evaluate("""() => [...document.querySelectorAll(
        '#calendar .tsse-status-confirmed[data-appointment-id]')].map((e) => Number(e.dataset.appointmentId))
        .find((id) => !window.tsse.appointment(id).all_day)""")
    card = tab.page.locator(f'#calendar [data-appointment-id="{appointment_id}"]')
    row = await tab.page.evaluate("id => window.tsse.appointment(id)", appointment_id)
    patches: list[dict[str, Any]] = []
    tab.page.on("request", lambda r: patches.append({"url": r.url, "if_match": r.headers.get("if-match"),
                                                    "body": r.post_data}) if r.method == "PATCH" else None)
    await card.focus()
    await tab.page.keyboard.press("Enter")
    field = tab.page.locator("#details-move-start")
    await field.wait_for(state="visible", timeout=5000)
    later = dt.datetime.fromtimestamp(row["start"] + 3600, dt.timezone.utc)  # the page's zone is UTC
    await field.fill(later.strftime("%Y-%m-%dT%H:%M"))
    await field.press("Enter")
    await tab.wait("([id, start]) => window.tsse.appointment(id).start === start",
                   [appointment_id, row["start"] + 3600])
    assert await tab.page.evaluate("id => window.tsse.appointment(id).end", appointment_id) == row["end"] + 3600
    assert len(patches) == 1 and patches[0]["url"].endswith(f"/api/appointments/{appointment_id}")
    assert patches[0]["if_match"] == f'"{row["version"]}"'


@pytest.mark.gen_test(timeout=40)
async def test_arrow_keys_move_between_free_slots_and_enter_books_there(chromium, make_server, db):
    """From a card, the arrows walk the free half hours (over what is taken)
    and Enter opens the booking form there: booking without a mouse."""
    tab = await demo_desk(chromium, make_server, db, DESKTOP)
    appointment_id = await tab.page.evaluate("""() => [...document.querySelectorAll(
        '#calendar [data-appointment-id]')].map((e) => Number(e.dataset.appointmentId))
        .find((id) => !window.tsse.appointment(id).all_day)""")
    row = await tab.page.evaluate("id => window.tsse.appointment(id)", appointment_id)
    await tab.page.locator(f'#calendar [data-appointment-id="{appointment_id}"]').focus()
    await tab.page.keyboard.press("ArrowDown")
    await tab.wait("() => window.tsse.slotCursor() !== null")
    first = await tab.call("slotCursor")
    assert first >= row["end"] and first % 1800 == 0
    await tab.page.keyboard.press("ArrowDown")
    await tab.wait("s => window.tsse.slotCursor() > s", first)
    second = await tab.call("slotCursor")
    taken = execute(db, "SELECT count(*) FROM appointments WHERE status NOT IN ('trash', 'cancelled')"
                        " AND NOT all_day AND start_at < to_timestamp(%s) AND end_at > to_timestamp(%s)",
                    (second + 1800, second))[0][0]
    assert taken == 0, f"slot {second} is not free"
    assert "Free: " in await tab.page.locator("#slot-cursor-said").inner_text()

    await tab.page.keyboard.press("Enter")
    await tab.page.locator("#booking").wait_for(state="visible", timeout=5000)
    start = dt.datetime.fromtimestamp(second, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M")
    assert await tab.page.input_value("#book-start") == start
    assert await tab.call("slotCursor") is None
