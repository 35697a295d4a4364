"""client.js in real headless Chromium, where only a browser can show it:
tabs of one browser share a stream only with the same identity (issue 19),
and a silent connection is noticed and replaced (issue 23).

The calendar page is the client's host here; what it exposes for tests is
described in tests/test_browser.py.
"""

from __future__ import annotations

import time

import pytest

from tests.fix_browser import save_picture, within
from tests.fix_calendar import book
from tests.fix_server import admin_token, staff_token
from tests.tcp_proxy import PgProxy
from tornado_sse.stream import open_streams

pytestmark = pytest.mark.browser

#: SPEC §3's heartbeat as the page asks for it (client.js DEFAULT_HEARTBEAT_S).
HEARTBEAT_S = 15
#: Issue 23: the badge must say "Reconnecting" this soon after the connection went silent.
RECONNECTING_WITHIN_S = 35
#: Reconnect delay sent to the pages: restarts are noticed fast.
RETRY_MS = 200


@pytest.mark.gen_test(timeout=40)
async def test_a_staff_tab_and_an_admin_tab_of_one_browser_each_get_exactly_their_own_events(
        chromium, make_server, db):
    """Issue 19: a staff tab opened first became the shared-stream leader of
    an admin tab opened second, which then showed "live" and missed every
    event outside that staff member's scope. By hand: open the calendar with
    a staff token, then with an admin token in a second tab of the same
    browser, and book for another staff member with psql."""
    server = await make_server()
    browser = await chromium.session()  # one browser: one cookie jar, one BroadcastChannel
    browser.accept_dialogs()  # the second link signs in as someone else, on purpose
    staff = await browser.open(f"{server.url}/?token={staff_token(5)}")
    admin = await browser.open(f"{server.url}/?token={admin_token()}")

    # Each identity holds its own connection.
    assert await staff.call("leader") is True
    assert await admin.call("leader") is True
    await within(5, "two streams, one per identity", lambda: _streams(server, 2))

    week_start, _ = await admin.week()
    mine = book(db, week_start, 1, 10, staff_ids=[5])    # event 1: staff 5's
    other = book(db, week_start, 2, 10, staff_ids=[7])   # event 2: someone else's
    later = book(db, week_start, 3, 10, staff_ids=[5])   # event 3: staff 5's
    await admin.wait_caught_up(3)
    await staff.wait_caught_up(3)

    assert await admin.applied() == [1, 2, 3]
    assert await admin.ids() == [mine, other, later]
    assert await staff.applied() == [1, 3]
    assert await staff.ids() == [mine, later]
    assert await admin.call("status") == await staff.call("status") == "live"


@pytest.mark.gen_test(timeout=40)
async def test_a_tab_whose_cookie_another_login_replaced_stops_rather_than_show_someone_elses_events(
        chromium, make_server, db):
    """The other half of issue 19: the cookie is one per browser, so a login
    in another tab changes whom a tab's next connection authenticates as.
    By hand: open the calendar as staff 5, then as staff 7 in another tab,
    restart the server; the first tab must not go on as staff 7."""
    server = await make_server(retry=RETRY_MS)
    port = server.port
    browser = await chromium.session()
    browser.accept_dialogs()  # the second link signs in as someone else, on purpose
    first = await browser.open(f"{server.url}/?token={staff_token(5)}")
    second = await browser.open(f"{server.url}/?token={staff_token(7)}")  # replaces the cookie

    await server.stop()  # every stream ends; each tab reconnects with the cookie of now
    server = await make_server(port=port, retry=RETRY_MS)
    await first.wait_status("unauthorized", timeout=15_000)
    await second.wait_status("live", timeout=15_000)
    week_start, _ = await second.week()
    book(db, week_start, 1, 10, staff_ids=[7])
    await second.wait_caught_up(1)
    assert await second.applied() == [1]
    assert await first.applied() == []
    assert await first.call("leader") is False
    await within(5, "one stream: the stopped tab's is closed", lambda: _streams(server, 1))


async def _streams(server, count: int) -> bool:
    return len(open_streams(server.ctx.hub)) == count


@pytest.mark.slow
@pytest.mark.gen_test(timeout=120)
async def test_a_silent_connection_says_reconnecting_within_35_s_and_the_change_made_meanwhile_arrives(
        chromium, make_server, db):
    """Issue 23: through a half-open connection the page said "Live" for
    195 s while it missed a change. By hand: put a TCP proxy between the
    browser and the server, make it stop forwarding without closing
    (tests/tcp_proxy.py), book something and watch the badge."""
    server = await make_server()
    # The proxy only forwards bytes; the "DSN" just names the HTTP server's address.
    proxy = PgProxy(f"postgresql://127.0.0.1:{server.port}/http")
    await proxy.start()
    try:
        tab = await (await chromium.session()).open(f"http://127.0.0.1:{proxy.port}/?token={admin_token()}")
        week_start, _ = await tab.week()
        before = book(db, week_start, 1, 10)
        await tab.wait_caught_up(1)

        # Every connection the browser has through the proxy goes silent:
        # the stream's and the idle kept-alive ones, as after a NAT drop.
        assert proxy.blackhole_all() >= 1
        silent_since = time.monotonic()
        missed = book(db, week_start, 2, 10)  # event 2, made while the page cannot hear

        await tab.wait("() => document.getElementById('status-badge').textContent.startsWith('Reconnecting')",
                       timeout=RECONNECTING_WITHIN_S * 1000)
        noticed = time.monotonic() - silent_since
        assert noticed > HEARTBEAT_S, f"stale after {noticed:.1f} s: before a heartbeat was even due"
        assert await tab.call("status") == "reconnecting"
        save_picture("reconnecting.png", await tab.page.screenshot())

        # A fresh connection resumes from the cursor: the change arrives once.
        await tab.wait_shown(missed, timeout=45_000)
        await tab.wait_status("live")
        assert await tab.applied() == [1, 2]
        assert await tab.ids() == [before, missed]
        assert await tab.call("resets") == 0
    finally:
        await proxy.stop()
