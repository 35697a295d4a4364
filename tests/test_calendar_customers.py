"""Customers on the calendar page (issue 23), in real headless Chromium: the
booking form's type-ahead search (a keyboard-driven combobox asking the
server, never the whole list), adding a customer in place, and the
customer's card in the details panel, for admins and staff."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.fix_browser import CalendarPage
from tests.fix_calendar import book, calendar_url
from tests.fix_db import execute
from tests.fix_directory import add_directory
from tests.fix_server import staff_token

pytestmark = pytest.mark.browser

CONTACTS = {1000: ("+49 30 555 0101", "anna.berg@example.com"), 1001: ("+49 30 555 0202", None)}


def add_desk(db: str) -> None:
    add_directory(db)
    for cid, (phone, email) in CONTACTS.items():
        execute(db, "UPDATE customers SET phone = %s, email = %s WHERE id = %s", (phone, email, cid))


async def open_booking(tab: CalendarPage) -> None:
    await tab.page.click("#book-button")
    await tab.page.locator("#booking").wait_for(state="visible", timeout=5000)


async def state(tab: CalendarPage) -> dict[str, Any]:
    """The combobox as assistive technology sees it."""
    return await tab.page.evaluate("""() => {
        const input = document.getElementById('book-customer');
        const list = document.getElementById('book-customer-list');
        const active = input.getAttribute('aria-activedescendant');
        return {value: input.value, expanded: input.getAttribute('aria-expanded'), open: !list.hidden,
                options: [...list.querySelectorAll('[role=option]')].map(o => o.textContent),
                active: active && document.getElementById(active).textContent,
                hint: document.getElementById('book-customer-hint').textContent,
                focus: document.activeElement.id};
    }""")


@pytest.mark.gen_test(timeout=60)
async def test_book_for_a_customer_found_by_typing_with_the_keyboard_only(chromium, make_server, db):
    add_desk(db)
    server = await make_server()
    tab = await (await chromium.session()).open(calendar_url(server))
    searches: list[str] = []
    tab.page.on("request", lambda r: searches.append(r.url) if "/api/customers?" in r.url else None)
    await open_booking(tab)
    assert (await state(tab))["focus"] == "book-customer"
    assert await tab.page.get_attribute("#book-customer", "role") == "combobox"

    # Typed quickly: one search, after the typing stops (debounced).
    await tab.page.keyboard.type("anna", delay=20)
    await tab.wait("() => !document.getElementById('book-customer-list').hidden", timeout=5000)
    assert len(searches) == 1 and "q=anna" in searches[0] and "limit=" in searches[0]
    s = await state(tab)
    assert s["expanded"] == "true" and s["options"] == ["Anna Berg · +49 30 555 0101 · anna.berg@example.com"]

    # Arrow keys move the highlight; focus stays in the input.
    await tab.page.keyboard.press("ArrowDown")
    s = await state(tab)
    assert s["active"].startswith("Anna Berg") and s["focus"] == "book-customer"
    # Enter chooses (it does not submit the booking).
    await tab.page.keyboard.press("Enter")
    s = await state(tab)
    assert s["value"] == "Anna Berg" and s["expanded"] == "false" and not s["open"]
    assert await tab.page.locator("#booking").is_visible()
    assert execute(db, "SELECT count(*) FROM appointments") == [(0,)]

    await tab.page.select_option("#book-staff", "1")
    async with tab.page.expect_response(lambda r: r.request.method == "POST", timeout=5000) as posted:
        await tab.page.click("#book-submit")
    assert (await posted.value).status == 201
    assert execute(db, "SELECT customer_id FROM appointments") == [(1000,)]


@pytest.mark.gen_test(timeout=60)
async def test_escape_closes_the_list_not_the_form_and_undecided_text_is_not_booked(chromium, make_server, db):
    add_desk(db)
    server = await make_server()
    tab = await (await chromium.session()).open(calendar_url(server))
    await open_booking(tab)
    await tab.page.keyboard.type("+49 30 555")  # by phone, with spaces
    await tab.wait("() => document.querySelectorAll('#book-customer-list [role=option]').length === 2",
                   timeout=5000)
    await tab.page.keyboard.press("Escape")
    s = await state(tab)
    assert not s["open"] and s["value"] == "+49 30 555"
    assert await tab.page.locator("#booking").is_visible()
    # Text that names nobody chosen: the form says so instead of booking a guest.
    await tab.page.click("#book-submit")
    assert "Choose a customer" in await tab.page.inner_text("#book-customer-error")
    assert await tab.page.get_attribute("#book-customer", "aria-invalid") == "true"
    assert execute(db, "SELECT count(*) FROM appointments") == [(0,)]
    # Nobody matches: said in words, with the way to add them.
    await tab.page.fill("#book-customer", "zz-nobody")
    await tab.wait("() => document.getElementById('book-customer-hint').textContent.includes('No customer')",
                   timeout=5000)
    assert "New customer" in (await state(tab))["hint"]
    # An empty field is a guest.
    await tab.page.fill("#book-customer", "")
    await tab.page.select_option("#book-staff", "2")
    async with tab.page.expect_response(lambda r: r.request.method == "POST", timeout=5000) as posted:
        await tab.page.click("#book-submit")
    assert (await posted.value).status == 201
    assert execute(db, "SELECT customer_id FROM appointments") == [(None,)]


@pytest.mark.gen_test(timeout=60)
async def test_an_admin_adds_a_customer_while_booking(chromium, make_server, db):
    add_desk(db)
    server = await make_server()
    tab = await (await chromium.session()).open(calendar_url(server))
    await open_booking(tab)
    await tab.page.keyboard.type("Zoe Quinn")
    await tab.wait("() => document.getElementById('book-customer-hint').textContent.includes('No customer')",
                   timeout=5000)
    await tab.page.click("#book-customer-new")
    assert await tab.page.input_value("#book-new-name") == "Zoe Quinn"  # what was typed
    assert await tab.page.evaluate("document.activeElement.id") == "book-new-phone"
    await tab.page.fill("#book-new-phone", "+44 20 7946 0958")
    await tab.page.fill("#book-new-email", "not an address")
    await tab.page.click("#book-new-save")
    # The server's 400 shows next to its field; nothing was added or booked.
    await tab.wait("() => document.getElementById('book-new-email-error').textContent !== ''", timeout=5000)
    assert "e-mail" in await tab.page.inner_text("#book-new-email-error")
    assert await tab.page.get_attribute("#book-new-email", "aria-invalid") == "true"
    assert await tab.page.locator("#booking").is_visible()
    await tab.page.fill("#book-new-email", "zoe@example.org")
    await tab.page.keyboard.press("Enter")  # Enter in the new customer's fields adds them
    await tab.page.locator("#book-new").wait_for(state="hidden", timeout=5000)
    assert (await state(tab))["hint"].startswith("Chosen: Zoe Quinn · +44 20 7946 0958")
    assert (await state(tab))["value"] == "Zoe Quinn"
    [(new_id,)] = execute(db, "SELECT id FROM customers WHERE name = 'Zoe Quinn'")
    assert execute(db, "SELECT phone, email FROM customers WHERE id = %s", (new_id,)) == [
        ("+44 20 7946 0958", "zoe@example.org")]
    assert execute(db, "SELECT count(*) FROM appointments") == [(0,)]

    await tab.page.select_option("#book-staff", "3")
    async with tab.page.expect_response(lambda r: r.request.method == "POST"
                                        and "/api/appointments" in r.url, timeout=5000) as posted:
        await tab.page.click("#book-submit")
    assert (await posted.value).status == 201
    appointment = (await (await posted.value).json())["id"]
    assert execute(db, "SELECT customer_id FROM appointments") == [(new_id,)]
    # The card is named at once: the page remembered the new customer.
    await tab.wait_shown(appointment)
    await tab.wait("id => document.querySelector(`#calendar [data-appointment-id='${id}']`)"
                   ".innerText.includes('Zoe Quinn')", appointment, timeout=5000)


@pytest.mark.gen_test(timeout=60)
async def test_save_again_after_a_lost_answer_adds_the_customer_once(chromium, make_server, db):
    """The server added the customer but its answer never reached the page
    (a timeout, a dropped connection): Save again sends the same
    Idempotency-Key and gets that customer back, not a second one."""
    add_desk(db)
    server = await make_server()
    tab = await (await chromium.session()).open(calendar_url(server))
    keys: list[str | None] = []

    async def lose_first_answer(route, request) -> None:
        keys.append(request.headers.get("idempotency-key"))
        response = await route.fetch()  # the server adds the customer...
        if len(keys) == 1:
            await route.abort("connectionreset")  # ...and the page never hears of it
        else:
            await route.fulfill(response=response)

    await tab.page.route("**/api/customers", lose_first_answer)
    await open_booking(tab)
    await tab.page.keyboard.type("Zoe Quinn")
    await tab.wait("() => document.getElementById('book-customer-hint').textContent.includes('No customer')",
                   timeout=5000)
    await tab.page.click("#book-customer-new")
    await tab.page.fill("#book-new-phone", "+44 20 7946 0958")
    await tab.page.click("#book-new-save")
    await tab.wait("() => document.getElementById('book-new-form-error').textContent !== ''", timeout=5000)
    assert execute(db, "SELECT count(*) FROM customers WHERE name = 'Zoe Quinn'") == [(1,)]
    await tab.page.click("#book-new-save")
    await tab.page.locator("#book-new").wait_for(state="hidden", timeout=5000)
    assert (await state(tab))["hint"].startswith("Chosen: Zoe Quinn · +44 20 7946 0958")
    assert execute(db, "SELECT count(*) FROM customers WHERE name = 'Zoe Quinn'") == [(1,)]
    assert len(keys) == 2 and keys[0] and keys[0] == keys[1], keys


@pytest.mark.gen_test(timeout=60)
async def test_the_details_panel_shows_the_customers_phone_and_appointments(chromium, make_server, db):
    add_desk(db)
    server = await make_server()
    session = await chromium.session()
    admin = await session.open(calendar_url(server))
    staff = await (await chromium.session()).open(calendar_url(server, staff_token(2)))
    week_start, _ = await admin.week()
    book(db, week_start - 7 * 86400, 1, 9, customer_id=1000, product_id=102, staff_ids=[2])  # last week
    this = book(db, week_start, 2, 10, customer_id=1000, product_id=101, staff_ids=[1])
    book(db, week_start + 7 * 86400, 3, 11, customer_id=1000, product_id=101, staff_ids=[1])  # next week
    theirs = book(db, week_start, 4, 12, customer_id=1000, product_id=102, staff_ids=[2])
    await asyncio.gather(admin.wait_shown(this), staff.wait_shown(theirs))

    await admin.page.locator(f'#calendar [data-appointment-id="{this}"]').click()
    card = admin.page.locator("#details-customer")
    await card.wait_for(state="visible", timeout=5000)
    await admin.wait("() => document.getElementById('details-customer').innerText.includes('Earlier')",
                     timeout=5000)
    text = await card.inner_text()
    assert "Anna Berg" in text and "+49 30 555 0101" in text and "anna.berg@example.com" in text
    assert await card.locator("a[href='tel:+49305550101']").count() == 1
    coming = await card.locator("section:has(h3:text('Coming appointments')) li").all_inner_texts()
    past = await card.locator("section:has(h3:text('Earlier appointments')) li").all_inner_texts()
    # Which of "this week's" two are coming depends on today; all four are listed once.
    assert len(coming) + len(past) == 4
    assert any("(this one)" in line and "Haircut" in line for line in coming + past)
    assert any("Massage" in line for line in past)  # last week's
    # Booked for her elsewhere (psql, another desk) while the card is open:
    # the card lists it without a click.
    book(db, week_start + 14 * 86400, 2, 9, customer_id=1000, product_id=102, staff_ids=[1])
    await admin.wait("() => document.querySelectorAll('#details-customer li').length === 5", timeout=5000)
    assert "Loading" not in await card.inner_text()

    # The staff member's panel lists their own appointments with her only.
    await staff.page.locator(f'#calendar [data-appointment-id="{theirs}"]').click()
    await staff.wait("() => /appointments/.test(document.getElementById('details-customer').innerText)"
                     " && !document.getElementById('details-customer').innerText.includes('Loading')",
                     timeout=5000)
    staff_text = await staff.page.inner_text("#details-customer")
    assert "+49 30 555 0101" in staff_text
    lines = await staff.page.locator("#details-customer li").all_inner_texts()
    assert len(lines) == 2 and all("Massage" in line for line in lines), lines

    # A guest's appointment has no card.
    guest = book(db, week_start, 1, 15, customer_id=None, staff_ids=[1])
    await admin.wait_shown(guest)
    await admin.page.locator(f'#calendar [data-appointment-id="{guest}"]').click()
    await admin.wait("() => document.getElementById('details-customer').hidden", timeout=5000)
