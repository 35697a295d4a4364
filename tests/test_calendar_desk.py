"""A calendar a front desk can work from (issue 15), in real headless
Chromium against a real server and PostgreSQL: names instead of ids,
booking from a free slot, the panel's actions, live changes that flash and
are listed, and the staff-by-staff day.

The page's test surface (calendar.js): ``window.tsse.appointment(id)`` (the
stored row and its card's title), ``window.tsse.activity()`` (the activity
lines, newest first), ``data-appointment-id`` on every card, and the ids of
the form, panel and view controls in calendar.html.
"""

from __future__ import annotations

import asyncio
import re
import struct
import time
from pathlib import Path
from typing import Any

import pytest

from tests.fix_browser import CalendarPage, within
from tests.fix_calendar import (
    DAY,
    SCREENSHOT_NOW,
    at,
    book,
    calendar_url,
    choose_customer,
    event_ids,
    row,
    seed_demo_week,
)
from tests.fix_db import execute
from tests.fix_directory import add_directory
from tests.fix_server import staff_token

pytestmark = pytest.mark.browser

DOCS = Path(__file__).resolve().parent.parent / "docs"
#: Events name their actor once sql/004 (branch bridge) is in (issue 20).
HAVE_ACTORS = any(p.name.startswith("004_") for p in (DOCS.parent / "sql").iterdir())
#: Anna Berg's haircut with Jonas, as the cards of tests/fix_directory.py's desk read.
ANNA: dict[str, Any] = {"customer_id": 1000, "product_id": 101, "staff_ids": [1]}
ANNA_CARD = "Anna Berg · Haircut 45 min · Jonas"


async def two_admins(chromium, server) -> tuple[CalendarPage, CalendarPage]:
    """Two desks: two browser contexts, so two cookies, two streams."""
    sessions = [await chromium.session() for _ in range(2)]
    a, b = await asyncio.gather(*(s.open(calendar_url(server)) for s in sessions))
    return a, b


def card(tab: CalendarPage, appointment_id: int):
    """The appointment's card in the main calendar."""
    return tab.page.locator(f'#calendar [data-appointment-id="{appointment_id}"]')


async def slot_point(tab: CalendarPage, date: str, time_of_day: str) -> tuple[float, float]:
    """Screen point a few pixels into the grid cell of ``date`` at ``time_of_day``."""
    return tuple(await tab.page.evaluate("""([date, t]) => {
        const col = document.querySelector(`#calendar [data-date="${date}"]`).getBoundingClientRect();
        const row = document.querySelector(`#calendar [data-time="${t}"]`).getBoundingClientRect();
        return [col.x + col.width / 2, row.y + 4];
    }""", [date, time_of_day]))


async def select_slot(tab: CalendarPage, date: str, time_of_day: str) -> None:
    """Drag inside one free half-hour slot, as a person selects it."""
    x, y = await slot_point(tab, date, time_of_day)
    mouse = tab.page.mouse
    await mouse.move(x, y)
    await mouse.down()
    await mouse.move(x, y + 6, steps=3)
    await mouse.up()


async def field(tab: CalendarPage, selector: str, prop: str = "value"):
    return await tab.page.eval_on_selector(selector, f"el => el.{prop}")


# -- booking -----------------------------------------------------------------------

@pytest.mark.gen_test(timeout=40)
async def test_booking_a_free_slot_in_tab_a_shows_it_in_tab_b_within_a_second_with_names(
        chromium, make_server, db):
    add_directory(db)
    server = await make_server()
    a, b = await two_admins(chromium, server)
    week_start, _ = await a.week()
    wednesday = at(week_start, 2, 0).date().isoformat()

    await select_slot(a, wednesday, "10:00:00")
    dialog = a.page.locator("#booking")
    await dialog.wait_for(state="visible", timeout=5000)
    # Prefilled from the selection and the first service's duration
    # (services sort by name: Haircut, 45 min), focus in the form.
    assert await field(a, "#book-start") == f"{wednesday}T10:00"
    assert await field(a, "#book-end") == f"{wednesday}T10:45"
    assert await field(a, "#book-product") == "101"
    assert await a.page.evaluate("document.activeElement.id") == "book-customer"
    await choose_customer(a.page, "anna", "Anna Berg")
    await a.page.select_option("#book-staff", "1")
    assert execute(db, "SELECT count(*) FROM appointments") == [(0,)]  # nothing before submit

    async with a.page.expect_response(lambda r: r.request.method == "POST", timeout=5000) as posted:
        await a.page.click("#book-submit")
    response = await posted.value
    started = time.monotonic()
    assert response.status == 201, await response.text()
    new_id = (await response.json())["id"]
    await b.wait_shown(new_id, 5000)
    elapsed = time.monotonic() - started
    assert elapsed < 1.0, f"shown in the other session after {elapsed:.2f} s"

    await dialog.wait_for(state="hidden", timeout=5000)
    assert execute(db, "SELECT customer_id, product_id, staff_ids, status, cost::text,"
                       " extract(epoch FROM end_at - start_at)::int FROM appointments") == [
        (1000, 101, [1], "confirmed", "35.00", 45 * 60)]
    for tab in (a, b):
        await tab.wait_shown(new_id)
        text = await card(tab, new_id).inner_text()
        assert "10:00" in text and ANNA_CARD in text, text
        # One card, from the stream: no optimistic copy beside it.
        assert await card(tab, new_id).count() == 1
        assert await tab.applied() == event_ids(db) == [1]


@pytest.mark.gen_test(timeout=40)
async def test_the_booking_form_shows_the_servers_validation_error_next_to_the_field(
        chromium, make_server, db):
    add_directory(db)
    server = await make_server()
    session = await chromium.session()
    tab = await session.open(calendar_url(server))
    await tab.page.click("#book-button")  # the keyboard's way in: no drag needed
    await tab.page.locator("#booking").wait_for(state="visible", timeout=5000)
    await tab.page.fill("#book-end", "2000-01-01T00:00")  # before any start the form offers

    async with tab.page.expect_response(lambda r: r.request.method == "POST", timeout=5000) as posted:
        await tab.page.click("#book-submit")
    response = await posted.value
    assert response.status == 400
    assert (await response.json())["data"]["params"] == {"end": "end must not be before start."}
    error = tab.page.locator("#book-end-error")
    assert await error.inner_text() == "end must not be before start."
    assert await field(tab, "#book-end", "getAttribute('aria-invalid')") == "true"
    assert await field(tab, "#book-start", "getAttribute('aria-invalid')") is None
    assert await tab.page.evaluate("document.activeElement.id") == "book-end"
    assert await tab.page.locator("#booking").is_visible()
    assert execute(db, "SELECT count(*) FROM appointments") == [(0,)]


# -- the panel's actions -----------------------------------------------------------

ACTIONS = [  # button, then what the other session must see
    ("confirm", "status", "confirmed"),
    ("paid", "status", "paid"),
    ("arrived", "customer_status", "arrived"),
    ("no-show", "customer_status", "no-show"),
    ("cancel", "status", "cancelled"),
]


@pytest.mark.gen_test(timeout=60)
async def test_each_action_in_the_panel_changes_the_card_in_another_session(chromium, make_server, db):
    add_directory(db)
    server = await make_server()
    a, b = await two_admins(chromium, server)
    week_start, _ = await a.week()
    x = book(db, week_start, 2, 10, status="pending-confirmation", **ANNA)
    y = book(db, week_start, 3, 14, customer_id=1001, product_id=102, staff_ids=[2])
    for tab in (a, b):
        await asyncio.gather(tab.wait_shown(x), tab.wait_shown(y))

    await card(a, x).click()
    panel = a.page.locator("#details")
    await panel.wait_for(state="visible", timeout=5000)
    assert await a.page.evaluate("document.activeElement.id") == "details"
    assert "Anna Berg (#1000)" in await panel.inner_text()
    for action, column, value in ACTIONS:
        async with a.page.expect_response(lambda r: r.request.method == "PATCH", timeout=5000) as sent:
            await a.page.click(f'#details-actions button[data-action="{action}"]')
            if action == "cancel":  # asks first (issue 20)
                await a.page.click('#ask button[data-answer="yes"]')
        assert (await sent.value).status == 200
        await b.wait("([id, col, v]) => (window.tsse.appointment(id) || {})[col] === v", [x, column, value],
                     timeout=5000)
        assert (await b.call("appointment", x))[column] == value
        # And A's button for what is now true is no longer offered: it would change nothing.
        await a.wait("a => document.querySelector(`#details-actions [data-action='${a}']`).hidden",
                     action, timeout=5000)
    assert row(db, x) == ("cancelled", "no-show")
    await b.wait("id => document.querySelector(`#calendar [data-appointment-id='${id}']`)"
                 "?.classList.contains('tsse-cancelled')", x, timeout=5000)

    async with a.page.expect_response(lambda r: r.request.method == "DELETE", timeout=5000) as sent:
        await a.page.click('#details-actions button[data-action="trash"]')
        await a.page.click('#ask button[data-answer="yes"]')
    assert (await sent.value).status == 200
    await b.wait("id => !window.tsse.appointmentIds().includes(id)", x, timeout=5000)
    assert row(db, x) == ("trash", "no-show")

    # Delete asks twice; the first click sends nothing.
    await card(a, y).click()
    await a.wait("() => document.getElementById('details-body').innerText.includes('Ben Nowak')")
    delete = a.page.locator('#details-actions button[data-action="delete"]')
    await delete.click()
    assert await delete.inner_text() == "Click again to delete"
    assert row(db, y) is not None
    async with a.page.expect_response(lambda r: r.request.method == "DELETE", timeout=5000) as sent:
        await delete.click()
    assert (await sent.value).status == 200
    assert "force=true" in (await sent.value).url
    await b.wait("id => !window.tsse.appointmentIds().includes(id)", y, timeout=5000)
    assert row(db, y) is None
    assert await b.ids() == [] and await a.ids() == []
    # Every change reached B through its stream, once each.
    assert await b.applied() == event_ids(db)


@pytest.mark.gen_test(timeout=40)
async def test_staff_see_names_but_cannot_book_or_act(chromium, make_server, db):
    add_directory(db)
    server = await make_server()
    session = await chromium.session()
    requests: list[str] = []
    session.context.on("request", lambda r: requests.append(r.method))
    tab = await session.open(calendar_url(server, staff_token(1)))
    week_start, _ = await tab.week()
    mine = book(db, week_start, 2, 10, **ANNA)
    await tab.wait_shown(mine)

    # A staff member's directory names the customers of their own
    # appointments only (issue 23): a new one is named once the page has
    # loaded it again, a moment after the card appears.
    await tab.wait("([id, text]) => (document.querySelector(`#calendar [data-appointment-id='${id}']`)"
                   "?.innerText || '').includes(text)", [mine, ANNA_CARD], timeout=5000)
    assert await tab.page.locator("#who").inner_text() == "Jonas"
    # The filters list every service by name, booked or not.
    assert await tab.page.eval_on_selector_all("#product-filter option", "os => os.map(o => o.text)") == [
        "All services", "Haircut 45 min", "Massage 60 min"]
    assert await tab.page.locator("#book-button").is_hidden()

    # Selecting a free slot opens nothing.
    await select_slot(tab, at(week_start, 3, 0).date().isoformat(), "10:00:00")
    await asyncio.sleep(0.3)
    assert await tab.page.locator("#booking").is_hidden()

    # The panel opens from the keyboard, shows names, and has no actions.
    await card(tab, mine).focus()
    await tab.page.keyboard.press("Enter")
    panel = tab.page.locator("#details")
    await panel.wait_for(state="visible", timeout=5000)
    text = await panel.inner_text()
    assert "Anna Berg (#1000)" in text and "Jonas (#1)" in text and "Haircut 45 min (#101)" in text
    assert await tab.page.locator("#details-actions").is_hidden()
    assert await tab.page.locator("#details-actions button").count() == 0
    assert [m for m in requests if m not in ("GET", "POST")] == []
    assert requests.count("POST") == 1  # the session cookie, nothing else
    assert row(db, mine) == ("confirmed", "expected")


# -- live changes you notice -------------------------------------------------------

def flashing(tab: CalendarPage, appointment_id: int, on: bool = True):
    return tab.wait("([id, on]) => document.querySelector(`#calendar [data-appointment-id='${id}']`)"
                    "?.classList.contains('tsse-flash') === on", [appointment_id, on], timeout=6000)


@pytest.mark.gen_test(timeout=40)
async def test_a_live_move_flashes_the_card_and_adds_exactly_one_activity_line(chromium, make_server, db):
    add_directory(db)
    server = await make_server()
    session = await chromium.session()
    tab = await session.open(calendar_url(server))
    week_start, _ = await tab.week()
    moved = book(db, week_start, 2, 10, **ANNA)
    await tab.wait_shown(moved)
    await flashing(tab, moved)  # it arrived live: that flashes too
    await flashing(tab, moved, on=False)  # ... briefly
    assert len(await tab.call("activity")) == 1

    execute(db, "UPDATE appointments SET start_at = %s, end_at = %s WHERE id = %s",
            (at(week_start, 2, 11), at(week_start, 2, 12), moved))
    await flashing(tab, moved)
    lines = await tab.call("activity")
    assert len(lines) == 2
    # Who: the database user that wrote it, once events carry actors (sql/004).
    by = r" by \S+ \(database\)" if HAVE_ACTORS else ""
    assert re.fullmatch(r"\d\d:\d\d Anna Berg moved to 11:00" + by, lines[0]), lines
    assert (await tab.call("appointment", moved))["start"] == int(at(week_start, 2, 11).timestamp())
    await flashing(tab, moved, on=False)

    # A card that goes fades out (a copy that carries no id), and is gone.
    execute(db, "DELETE FROM appointments WHERE id = %s", (moved,))
    await tab.wait("() => document.querySelector('.tsse-fade-out') !== null", timeout=5000)
    assert await tab.shown_ids() == set()
    lines = await tab.call("activity")
    assert len(lines) == 3 and re.fullmatch(r"\d\d:\d\d Anna Berg deleted" + by, lines[0]), lines
    assert await tab.page.get_attribute("#activity", "aria-live") == "polite"
    assert await tab.page.get_attribute("#status-badge", "aria-live") == "polite"


# -- staff by staff ----------------------------------------------------------------

COLUMNS_OF = """() => {
    const where = {};
    for (const el of document.querySelectorAll('#staff-day-columns [data-appointment-id]')) {
        const col = el.closest('[data-staff-id]').dataset.staffId;
        (where[el.dataset.appointmentId] ||= []).push(col);
    }
    for (const cols of Object.values(where)) cols.sort();
    return where;
}"""


@pytest.mark.gen_test(timeout=40)
async def test_the_staff_by_staff_view_shows_each_members_appointments_in_their_column(
        chromium, make_server, db):
    add_directory(db)
    server = await make_server()
    session = await chromium.session()
    tab = await session.open(calendar_url(server))
    today = int(time.time()) // DAY * DAY
    ids = {
        "jonas": book(db, today, 0, 9, staff_ids=[1]),
        "mia": book(db, today, 0, 10, staff_ids=[2]),
        "lena": book(db, today, 0, 11, staff_ids=[3]),
        "both": book(db, today, 0, 14, staff_ids=[1, 2]),
        "nobody": book(db, today, 0, 15, staff_ids=[]),
        "stranger": book(db, today, 0, 16, staff_ids=[9]),  # not in the directory
    }
    book(db, today, 1, 9, staff_ids=[1])  # tomorrow: not in today's columns
    await tab.wait_caught_up(7)

    await tab.page.click("#view-staff")
    assert await tab.page.get_attribute("#view-staff", "aria-pressed") == "true"
    assert await tab.page.locator("#calendar").is_hidden()
    headings = tab.page.locator("#staff-day-columns [data-staff-id] h3")
    await headings.first.wait_for(timeout=5000)
    assert await headings.all_inner_texts() == ["Jonas", "Lena", "Mia", "Staff #9", "Unassigned"]
    expected = {str(ids["jonas"]): ["1"], str(ids["mia"]): ["2"], str(ids["lena"]): ["3"],
                str(ids["both"]): ["1", "2"], str(ids["nobody"]): [""], str(ids["stranger"]): ["9"]}
    await within(5, "each appointment in its staff members' columns",
                 lambda: _columns_are(tab, expected))

    # A live reassignment moves the card to the other column.
    execute(db, "UPDATE appointments SET staff_ids = '{2}' WHERE id = %s", (ids["jonas"],))
    expected[str(ids["jonas"])] = ["2"]
    await within(5, "the reassigned card in Mia's column", lambda: _columns_are(tab, expected))

    # The next day has the other appointment only.
    await tab.page.click("#staff-day-next")
    await within(5, "tomorrow's columns", lambda: _columns_are(tab, {"7": ["1"]}))
    await tab.page.click("#view-calendar")
    assert await tab.page.locator("#staff-day-columns [data-staff-id]").count() == 0
    assert await tab.page.locator("#calendar").is_visible()


async def _columns_are(tab: CalendarPage, expected: dict[str, list[str]]) -> bool:
    return await tab.page.evaluate(COLUMNS_OF) == expected


@pytest.mark.gen_test(timeout=40)
async def test_screenshot_of_the_staff_by_staff_day_for_the_readme(chromium, make_server, db):
    seed_demo_week(db, SCREENSHOT_NOW)
    server = await make_server()
    session = await chromium.session()
    await session.context.clock.set_fixed_time(SCREENSHOT_NOW)
    tab = await session.open(calendar_url(server))
    await tab.page.click("#view-staff")
    wednesday = execute(db, "SELECT count(*) FROM appointments WHERE status <> 'trash'"
                            " AND start_at::date = %s AND cardinality(staff_ids) > 0",
                        (SCREENSHOT_NOW.date(),))[0][0]
    assert wednesday > 5
    await tab.wait("n => new Set([...document.querySelectorAll('#staff-day-columns [data-appointment-id]')]"
                   ".map(e => e.dataset.appointmentId)).size >= n", wednesday, timeout=5000)
    assert await tab.page.locator("#staff-day-columns h3").all_inner_texts() == [
        "Jonas", "Lena", "Mia", "Omar", "Unassigned"]
    # The closed time loads on its own request: in the picture too.
    await tab.wait("() => document.querySelectorAll('#staff-day-columns .tsse-unavailable').length >= 10")
    await tab.page.evaluate("document.fonts.ready.then(() => undefined)")
    png = await tab.page.screenshot()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and struct.unpack(">II", png[16:24]) == (1400, 900)
    target = DOCS / "calendar-staff.png"
    if not target.exists() or target.read_bytes() != png:  # no churn when nothing changed
        DOCS.mkdir(exist_ok=True)
        target.write_bytes(png)
