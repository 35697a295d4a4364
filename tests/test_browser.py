"""The admin calendar in real headless Chromium against a real server and a
real PostgreSQL (issue 7): every open calendar shows every change at once,
catches up after an outage without losing or repeating a change, and tabs
of one browser share one stream.

The page's test surface (calendar.js): ``window.tsse`` (appointmentIds(),
appointments(), appliedEventIds(), lastEventId(), resets(), leader(),
status()), ``<body data-status data-last-event-id>``, and
``data-appointment-id`` on every appointment's element.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import struct
import time
from pathlib import Path
from typing import Any

import pytest

from tests.fix_browser import CalendarPage, Session, within
from tests.fix_calendar import SCREENSHOT_NOW, seed_demo_week
from tests.fix_db import execute, insert_appointment
from tests.fix_server import admin_token
from tornado_sse.stream import open_streams

pytestmark = pytest.mark.browser

DOCS = Path(__file__).resolve().parent.parent / "docs"
HOUR = 3600
DAY = 24 * HOUR
#: Reconnect delay sent to the pages: restarts are noticed fast.
RETRY_MS = 200


def calendar_url(server) -> str:
    """The link ``python run.py`` prints: the calendar with an admin token."""
    return f"{server.url}/?token={admin_token()}"


def at(week_start: int, day: int, hour: float) -> dt.datetime:
    """A time in the shown week: ``day`` 0 is its Monday, in UTC (the pages' zone)."""
    return dt.datetime.fromtimestamp(week_start + day * DAY + int(hour * HOUR), dt.timezone.utc)


def book(dsn: str, week_start: int, day: int, hour: float, hours: float = 1, **cols) -> int:
    """An appointment inserted with SQL, as a web shop or psql would."""
    return insert_appointment(dsn, start_at=at(week_start, day, hour),
                              end_at=at(week_start, day, hour + hours), **cols)


def rows_in(dsn: str, week: tuple[int, int]) -> list[dict]:
    """What a calendar of ``week`` must show: the database's rows, in the
    shape of ``tsse.appointments()``."""
    rows = execute(dsn, "SELECT id, extract(epoch FROM start_at)::bigint, extract(epoch FROM end_at)::bigint,"
                        " status, all_day FROM appointments"
                        " WHERE status <> 'trash' AND start_at < to_timestamp(%s) AND end_at > to_timestamp(%s)"
                        " ORDER BY id", (week[1], week[0]))
    return [{"id": i, "start": s, "end": e, "status": st, "all_day": ad} for i, s, e, st, ad in rows]


def event_ids(dsn: str, after: int) -> list[int]:
    return [r[0] for r in execute(dsn, "SELECT id FROM sse_events WHERE id > %s ORDER BY id", (after,))]


def newest_event(dsn: str) -> int:
    return execute(dsn, "SELECT coalesce(max(id), 0) FROM sse_events")[0][0]


async def two_sessions(chromium, server) -> tuple[CalendarPage, CalendarPage]:
    """Two people's calendars: two browser contexts, so two cookies, two streams."""
    sessions = [await chromium.session() for _ in range(2)]
    a, b = await asyncio.gather(*(s.open(calendar_url(server)) for s in sessions))
    return a, b


@pytest.mark.gen_test(timeout=30)
async def test_two_sessions_show_a_row_inserted_with_sql_within_one_second(chromium, make_server, db):
    server = await make_server()
    a, b = await two_sessions(chromium, server)
    assert len(open_streams(server.ctx.hub)) == 2
    week_start, _ = await a.week()

    started = time.monotonic()
    new_id = book(db, week_start, day=2, hour=10)
    await asyncio.gather(a.wait_shown(new_id, 5000), b.wait_shown(new_id, 5000))
    elapsed = time.monotonic() - started

    assert elapsed < 1.0, f"shown in both calendars after {elapsed:.2f} s"
    for tab in (a, b):
        assert await tab.ids() == [new_id]
        assert await tab.shown_ids() == {new_id}
        assert await tab.applied() == event_ids(db, after=0) == [1]


@pytest.mark.gen_test(timeout=30)
async def test_a_drag_in_one_session_moves_the_appointment_in_the_other(chromium, make_server, db):
    server = await make_server()
    a, b = await two_sessions(chromium, server)
    week_start, _ = await a.week()
    moved = book(db, week_start, day=2, hour=10)  # Wednesday 10:00-11:00
    await asyncio.gather(a.wait_shown(moved), b.wait_shown(moved))

    # Wednesday 10:00 -> Thursday 11:00: one column right, one hour down,
    # measured on the grid itself.
    wednesday, thursday = (at(week_start, d, 0).date().isoformat() for d in (2, 3))
    grid = await a.page.evaluate("""([wed, thu]) => {
        const x = (date) => document.querySelector(`[data-date="${date}"]`).getBoundingClientRect().x;
        const y = (time) => document.querySelector(`[data-time="${time}"]`).getBoundingClientRect().y;
        return {hour: y('11:00:00') - y('10:00:00'), day: x(thu) - x(wed)};
    }""", [wednesday, thursday])
    assert grid["hour"] > 20 and grid["day"] > 50, grid
    box = await a.page.locator(f'[data-appointment-id="{moved}"]').bounding_box()
    assert box is not None
    x, y = box["x"] + box["width"] / 2, box["y"] + 8  # the top, not the resize handle
    mouse = a.page.mouse
    async with a.page.expect_response(lambda r: r.request.method == "PATCH", timeout=5000) as patched:
        await mouse.move(x, y)
        await mouse.down()
        await mouse.move(x + grid["day"] / 2, y + grid["hour"] / 2, steps=5)
        await mouse.move(x + grid["day"], y + grid["hour"], steps=5)
        await mouse.up()
    response = await patched.value
    assert response.status == 200, await response.text()
    assert response.url == f"{server.url}/api/appointments/{moved}"

    start, end = int(at(week_start, 3, 11).timestamp()), int(at(week_start, 3, 12).timestamp())
    assert execute(db, "SELECT extract(epoch FROM start_at)::bigint, extract(epoch FROM end_at)::bigint"
                       " FROM appointments WHERE id = %s", (moved,)) == [(start, end)]
    assert event_ids(db, after=1) == [2]  # one appointment.rescheduled
    # Page B learns it from the stream, not from a reload.
    await b.wait("([id, start]) => window.tsse.appointments().some(a => a.id === id && a.start === start)",
                 [moved, start], timeout=5000)
    for tab in (a, b):
        await tab.wait("id => window.tsse.lastEventId() === id", 2, timeout=5000)
        assert await tab.appointments() == rows_in(db, await tab.week())
        assert await tab.applied() == [1, 2]
        assert await tab.call("resets") == 0
    # And on B's screen it sits in Thursday's column at 11:00.
    where = await b.page.evaluate("""([id, date]) => {
        const ev = document.querySelector(`[data-appointment-id="${id}"]`).getBoundingClientRect();
        const col = document.querySelector(`[data-date="${date}"]`).getBoundingClientRect();
        const slot = document.querySelector('[data-time="11:00:00"]').getBoundingClientRect();
        return {inColumn: ev.x >= col.x - 1 && ev.right <= col.right + 1, top: ev.y - slot.y};
    }""", [moved, thursday])
    assert where["inColumn"] and abs(where["top"]) < 3, where


@pytest.mark.gen_test(timeout=40)
async def test_a_page_catches_up_after_a_server_restart_with_no_duplicate(chromium, make_server, db):
    server = await make_server(retry=RETRY_MS)
    port = server.port
    tab = await (await chromium.session()).open(calendar_url(server), record_stream=True)
    week_start, _ = await tab.week()
    kept, moved, cancelled, deleted = (book(db, week_start, day, 10) for day in range(4))
    await tab.wait_caught_up(4)
    since = await tab.call("lastEventId")
    assert since == 4 and await tab.applied() == [1, 2, 3, 4]

    await server.stop()
    await tab.wait("() => window.tsse.status() !== 'live'")
    # Rows change while no server runs: every kind of change.
    added = book(db, week_start, 4, 9)
    execute(db, "UPDATE appointments SET start_at = start_at + interval '2 hours',"
                " end_at = end_at + interval '2 hours' WHERE id = %s", (moved,))
    execute(db, "UPDATE appointments SET status = 'cancelled' WHERE id = %s", (cancelled,))
    execute(db, "UPDATE appointments SET cost = 99 WHERE id = %s", (kept,))
    execute(db, "DELETE FROM appointments WHERE id = %s", (deleted,))
    newest = newest_event(db)
    assert newest == 9

    await make_server(port=port, retry=RETRY_MS)
    await tab.wait_caught_up(newest, timeout=10_000)
    await tab.wait_status("live")

    # Every change sent once and applied once, in order: the stream resumed
    # from the cursor.
    assert tab.frames == [(f"appointment.{t}", str(i)) for i, t in enumerate(
        ["created"] * 5 + ["rescheduled", "cancelled", "updated", "deleted"], start=1)]
    assert await tab.applied() == event_ids(db, after=0) == list(range(1, 10))
    assert await tab.call("resets") == 0
    shown = await tab.appointments()
    assert shown == rows_in(db, await tab.week())
    assert [a["id"] for a in shown] == [kept, moved, cancelled, added]
    assert {a["id"]: a["status"] for a in shown}[cancelled] == "cancelled"
    await within(5, "the page draws the rows it holds", lambda: _shows(tab, {kept, moved, cancelled, added}))


@pytest.mark.gen_test(timeout=40)
async def test_a_page_whose_cursor_expired_while_offline_reloads_its_snapshot(chromium, make_server, db):
    server = await make_server(retry=RETRY_MS)
    port = server.port
    tab = await (await chromium.session()).open(calendar_url(server), record_stream=True)
    week_start, _ = await tab.week()
    first, second = book(db, week_start, 1, 10), book(db, week_start, 2, 10)
    await tab.wait_caught_up(2)

    await server.stop()
    await tab.wait("() => window.tsse.status() !== 'live'")
    third = book(db, week_start, 3, 10)
    execute(db, "DELETE FROM appointments WHERE id = %s", (first,))
    newest = newest_event(db)
    assert newest == 4
    # The history the page would resume from is pruned away (SPEC §3: reset).
    execute(db, "UPDATE sse_events SET created_at = now() - interval '9 days'")
    execute(db, "SELECT tornado_sse_prune(interval '7 days')")
    assert event_ids(db, after=0) == []

    snapshots: list[str] = []
    tab.page.on("request", lambda r: snapshots.append(r.url) if "/api/appointments?" in r.url else None)
    await make_server(port=port, retry=RETRY_MS)
    await tab.wait("() => window.tsse.resets() === 1", timeout=10_000)
    await tab.wait_status("live")
    await within(5, "the snapshot shows the rows as they are now",
                 lambda: _same(tab, db))
    assert len(snapshots) == 1
    assert tab.frames == [("appointment.created", "1"), ("appointment.created", "2"), ("reset", str(newest))]
    assert await tab.applied() == [1, 2]  # the pruned events were never applied
    # The rows are right; FullCalendar draws them on its next frame.
    await within(5, "the page draws the rows as they are now",
                 lambda: _shows(tab, {second, third}))

    # The stream goes on from the reset's cursor.
    fourth = book(db, week_start, 4, 10)
    await tab.wait_shown(fourth, 5000)
    assert await tab.applied() == [1, 2, newest + 1]
    assert await tab.appointments() == rows_in(db, await tab.week())


@pytest.mark.gen_test(timeout=40)
async def test_the_calendar_follows_the_week_it_shows_on_one_stream_and_filters_without_loading(
        chromium, make_server, db):
    """The page keeps its rows with follow() (client.js): navigating loads the
    new week's snapshot while the one stream goes on, a row moved into the
    shown week from a week never loaded arrives, a change to a week not
    shown is still news in the activity list, and choosing a staff member
    redraws from the rows held, with no new snapshot."""
    server = await make_server()
    tab = await (await chromium.session()).open(calendar_url(server))
    week_start, _ = await tab.week()
    here = book(db, week_start, 1, 10)
    there = book(db, week_start + 7 * DAY, 2, 10, staff_ids=[7])
    later = book(db, week_start + 21 * DAY, 3, 11)
    await tab.wait_caught_up(newest_event(db))
    assert await tab.ids() == [here]
    snapshots: list[str] = []
    tab.page.on("request", lambda r: snapshots.append(r.url) if "/api/appointments?" in r.url else None)

    # Next week's rows are held back a second on the way: meanwhile the page
    # says it is loading them, rather than showing an empty week as if free.
    async def slow(route, request) -> None:
        await asyncio.sleep(1)
        await route.continue_()

    await tab.page.route("**/api/appointments?*", slow)
    await tab.page.evaluate("() => window.tsse.calendar.next()")
    await tab.wait("() => document.body.dataset.loadingRows === 'true'", timeout=2000)
    assert "loading these days" in await tab.page.inner_text("#status-badge")
    await tab.wait("() => document.body.dataset.loadingRows === 'false'", timeout=5000)
    await tab.page.unroute("**/api/appointments?*", slow)
    await within(5, "next week's rows", lambda: _same(tab, db))
    assert await tab.ids() == [there] and len(snapshots) == 1
    assert "loading" not in await tab.page.inner_text("#status-badge")
    execute(db, "UPDATE appointments SET start_at = start_at - interval '14 days',"
                " end_at = end_at - interval '14 days' WHERE id = %s", (later,))
    await tab.wait_shown(later)
    execute(db, "UPDATE appointments SET status = 'paid' WHERE id = %s", (here,))
    await tab.wait_caught_up(newest_event(db))
    assert await tab.ids() == [there, later]
    # Not held (another week): the line says what the row is now.
    assert any("updated: now paid, " in line for line in await tab.call("activity")), await tab.call("activity")

    await tab.page.select_option("#staff-filter", "7")
    await within(5, "staff 7's card only", lambda: _shows(tab, {there}))
    assert len(snapshots) == 1
    # One stream all along: every event applied once, in order, no reset.
    assert await tab.applied() == event_ids(db, after=0)
    assert await tab.call("resets") == 0


async def _shows(tab: CalendarPage, ids: set[int]) -> bool:
    return await tab.shown_ids() == ids


async def _same(tab: CalendarPage, db: str) -> bool:
    return await tab.appointments() == rows_in(db, await tab.week())


async def eight_tabs(chromium, server) -> tuple[Session, list[CalendarPage]]:
    """One chromium, eight calendar tabs: the first opened from the link, the
    others on the same origin with the cookie it set."""
    session = await chromium.session()
    first = await session.open(calendar_url(server))
    others = await asyncio.gather(*(session.open(server.url + "/") for _ in range(7)))
    return session, [first, *others]


@pytest.mark.gen_test(timeout=40)
async def test_eight_tabs_of_one_browser_share_one_stream_and_all_receive_each_event(chromium, make_server, db):
    server = await make_server()
    _, tabs = await eight_tabs(chromium, server)
    assert len(open_streams(server.ctx.hub)) == 1
    assert [await t.call("leader") for t in tabs].count(True) == 1
    week_start, _ = await tabs[0].week()

    new_ids = [book(db, week_start, 2, 9), book(db, week_start, 3, 14)]
    await asyncio.gather(*(t.wait_shown(i) for t in tabs for i in new_ids))
    for tab in tabs:
        assert await tab.ids() == new_ids
        assert await tab.applied() == [1, 2]
    assert len(open_streams(server.ctx.hub)) == 1


@pytest.mark.gen_test(timeout=40)
async def test_when_the_leader_tab_closes_the_others_keep_receiving(chromium, make_server, db):
    server = await make_server()
    session = await chromium.session()
    tabs = [await session.open(calendar_url(server))]
    tabs += await asyncio.gather(*(session.open(server.url + "/") for _ in range(3)))
    week_start, _ = await tabs[0].week()
    before = book(db, week_start, 1, 9)
    await asyncio.gather(*(t.wait_shown(before) for t in tabs))
    leaders = [t for t in tabs if await t.call("leader")]
    assert len(leaders) == 1 and len(open_streams(server.ctx.hub)) == 1
    leader = leaders[0]
    rest = [t for t in tabs if t is not leader]

    # The worst moment to go: the leader has received events it has not
    # passed on yet. Its scripts are frozen, so the events reach its
    # connection and no further; then the tab closes.
    debugger = await session.context.new_cdp_session(leader.page)
    await debugger.send("Debugger.enable")
    await debugger.send("Debugger.pause")
    during = [book(db, week_start, 2, h) for h in (9, 11, 13)]
    await server.ctx.listener.catch_up()  # sent to the frozen leader
    for tab in rest:
        assert await tab.applied() == [1]
    await leader.page.close()

    await within(5, "another tab took over the stream", lambda: _one_leader(rest))
    after = book(db, week_start, 3, 9)
    everything = [before, *during, after]
    await asyncio.gather(*(t.wait_shown(i) for t in rest for i in everything))
    for tab in rest:
        assert await tab.ids() == everything
        assert await tab.applied() == event_ids(db, after=0) == [1, 2, 3, 4, 5]
    await within(5, "one stream again (the old leader's ended)",
                 lambda: _streams(server, 1))


async def _one_leader(tabs: list[CalendarPage]) -> bool:
    return [await t.call("leader") for t in tabs].count(True) == 1


async def _streams(server, n: int) -> bool:
    return len(open_streams(server.ctx.hub)) == n


@pytest.mark.gen_test(timeout=30)
async def test_the_token_leaves_the_address_bar_for_an_httponly_cookie(chromium, make_server, db):
    server = await make_server()
    session = await chromium.session()
    token = admin_token()
    requests: list[str] = []
    session.context.on("request", lambda r: requests.append(r.url))
    tab = await session.open(f"{server.url}/?token={token}")

    assert tab.page.url == server.url + "/"
    assert await tab.page.evaluate("location.href") == server.url + "/"
    [cookie] = [c for c in await session.context.cookies() if c["name"] == "tornado_sse_token"]
    assert cookie["value"] == token
    assert cookie["httpOnly"] is True
    assert cookie["sameSite"] == "Strict"
    assert cookie["path"] == "/"
    assert await tab.page.evaluate("document.cookie") == ""  # scripts cannot read it
    # Only the page load itself carried the token; the stream and the API
    # authenticate with the cookie.
    assert [u for u in requests if token in u] == [f"{server.url}/?token={token}"]
    assert any(u.startswith(server.url + "/sse?") for u in requests)

    # A fresh tab of the same chromium, no token anywhere, is signed in too.
    again = await session.open(server.url + "/")
    assert await again.call("status") == "live"


@pytest.mark.gen_test(timeout=30)
async def test_a_snapshot_that_fails_is_retried_until_the_calendar_loads(chromium, make_server, db):
    """A calendar opened while the database is down (the server answers 503)
    or while the server restarts must not stay empty: it says so and retries."""
    server = await make_server()
    today = int(time.time()) // DAY * DAY
    booked = [book(db, today, 0, hour) for hour in (9, 11)]
    session = await chromium.session()
    failures = {"appointments": 1, "availabilities": 1}

    async def fail_once(route, request) -> None:
        kind = request.url.split("/api/", 1)[1].split("?", 1)[0]
        if not failures.get(kind):
            await route.continue_()
            return
        failures[kind] -= 1
        if kind == "appointments":  # what the server answers during a database outage
            await route.fulfill(status=503, content_type="application/json", body=(
                '{"code":"rest_unavailable","message":"The database is unavailable.","data":{"status":503}}'))
        else:  # the server restarting
            await route.abort("connectionrefused")

    await session.context.route(f"{server.url}/api/*", fail_once)
    tab = await session.open(calendar_url(server), status=None)
    notice = tab.page.locator("#notice")
    await notice.wait_for(state="visible", timeout=5000)
    text = await notice.inner_text()  # the later of the two failures
    assert text.startswith("The calendar could not load the appointments: ") and "Trying again in 1 s" in text, text
    await tab.wait_status("live", timeout=5000)
    assert failures == {"appointments": 0, "availabilities": 0}
    await within(5, "the rows are shown", lambda: _same(tab, db))
    assert await tab.ids() == booked
    assert await notice.is_hidden()


@pytest.mark.gen_test(timeout=30)
async def test_a_request_that_is_never_answered_is_given_up_and_tried_again(chromium, make_server, db):
    """A server (or proxy) that accepts the directory request and never
    answers must not leave the calendar loading forever: the page gives up
    after its bound (shortened here), says so, asks again and goes live."""
    server = await make_server()
    today = int(time.time()) // DAY * DAY
    booked = book(db, today, 0, 10)
    session = await chromium.session()
    await session.context.add_init_script("window.tsseRequestTimeoutMs = 1000")
    held: list[Any] = []

    async def hang_once(route, request) -> None:
        if not held:
            held.append(route)  # never answered: only the page's own bound ends it
            return
        await route.continue_()

    await session.context.route(f"{server.url}/api/directory", hang_once)
    tab = await session.open(calendar_url(server), status=None)
    notice = tab.page.locator("#notice")
    await notice.wait_for(state="visible", timeout=5000)
    assert "did not answer within 1 s" in await notice.inner_text()
    # Asked again a second later: the notice goes, the page is live with its rows.
    await notice.wait_for(state="hidden", timeout=5000)
    await tab.wait_status("live", timeout=5000)
    assert len(held) == 1
    await within(5, "the rows are shown", lambda: _same(tab, db))
    assert await tab.ids() == [booked]


@pytest.mark.gen_test(timeout=30)
async def test_screenshot_of_the_demo_week_for_the_readme(chromium, make_server, db):
    seed_demo_week(db, SCREENSHOT_NOW)
    server = await make_server()
    session = await chromium.session()
    await session.context.clock.set_fixed_time(SCREENSHOT_NOW)
    tab = await session.open(calendar_url(server))

    week = await tab.week()
    assert dt.datetime.fromtimestamp(week[0], dt.timezone.utc) == dt.datetime(2026, 11, 16, tzinfo=dt.timezone.utc)
    expected = rows_in(db, week)
    assert len(expected) > 40
    await within(5, "the demo week is on screen",
                 lambda: _shown_all(tab, expected))
    await tab.page.evaluate("document.fonts.ready.then(() => undefined)")
    png = await tab.page.screenshot()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and struct.unpack(">II", png[16:24]) == (1400, 900)
    target = DOCS / "calendar.png"
    if not target.exists() or target.read_bytes() != png:  # no churn when nothing changed
        DOCS.mkdir(exist_ok=True)
        target.write_bytes(png)


async def _shown_all(tab: CalendarPage, expected: list[dict]) -> bool:
    """Every appointment of the week is a card or counted in a "+N" link
    (a busy hour keeps two cards side by side, issue 23)."""
    more = await tab.page.evaluate("""() => [...document.querySelectorAll('#calendar a, #calendar [role=button]')]
        .map((e) => /^\\+(\\d+)/.exec(e.textContent.trim())).filter(Boolean)
        .reduce((n, m) => n + Number(m[1]), 0)""")
    shown = await tab.shown_ids()
    return (await tab.appointments() == expected and shown <= {a["id"] for a in expected}
            and len(shown) + more == len(expected))
