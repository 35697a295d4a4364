"""Real headless Chromium for the browser tests, driven by Playwright.

Debian's ``chromium`` (no browser download: ``executable_path`` is set) is
driven with Playwright's *async* API on the test's IOLoop, the loop the
server under test runs on: a synchronous driver would block that loop and
the server with it. pytest-tornado gives every test a new IOLoop, and a
Playwright connection belongs to the loop that started it, so each test
launches its own Chromium (about 0.6 s with the driver).

The ``chromium`` fixture is a :class:`Chromium`; ``await chromium.session()``
is a new browser context (its own cookies and storage: another user's
browser, or another machine), ``await session.open(url)`` a calendar tab in
it, wrapped as a :class:`CalendarPage`. Uncaught JavaScript errors fail the
test.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tornado.ioloop import IOLoop

try:
    from playwright.async_api import Browser, BrowserContext, Page, async_playwright
    from playwright.async_api import TimeoutError as PlaywrightTimeout
    HAVE_PLAYWRIGHT = True
except ImportError:  # the browser tests skip and say why
    HAVE_PLAYWRIGHT = False

CHROMIUM = Path("/usr/bin/chromium")
# Root in a container needs --no-sandbox; the rest keep a Chromium on a
# closed network from phoning home (and from logging that it cannot).
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]
VIEWPORT = {"width": 1400, "height": 900}
#: Bound of every wait in these tests, ms (each test states tighter ones).
WAIT_MS = 10_000
#: How often waits look again, ms.
POLL_MS = 20


def missing() -> str | None:
    """Why the browser tests cannot run here, or None."""
    if not HAVE_PLAYWRIGHT:
        return "playwright is not installed (pip install -e '.[test]')"
    if not os.access(CHROMIUM, os.X_OK):
        return f"no Chromium at {CHROMIUM} (apt-get install chromium)"
    return None



DOCS = Path(__file__).resolve().parent.parent / "docs"


def save_picture(name: str, png: bytes) -> None:
    """Write docs/<name> when asked to (TSSE_SCREENSHOTS=1) and it changed,
    so CI runs check what a picture shows without touching the repository."""
    if os.environ.get("TSSE_SCREENSHOTS") != "1":
        return
    target = DOCS / name
    if not target.exists() or target.read_bytes() != png:
        target.write_bytes(png)

class CalendarPage:
    """One calendar tab, through what the page exposes for tests:
    ``window.tsse`` and ``<body data-status data-last-event-id>``."""

    def __init__(self, page: Page, errors: list[str]) -> None:
        self.page = page
        self.errors = errors
        #: With ``open(record_stream=True)``: (event name, id) of every SSE
        #: message the page received, on every connection, as on the wire.
        self.frames: list[tuple[str, str]] = []

    async def call(self, name: str, *args: Any) -> Any:
        """``window.tsse[name](...args)`` in the page."""
        return await self.page.evaluate("([name, args]) => window.tsse[name](...args)", [name, list(args)])

    async def wait(self, predicate: str, arg: Any = None, timeout: float = WAIT_MS) -> None:
        """Until the JavaScript ``predicate(arg)`` holds (polled every POLL_MS)."""
        await self.page.wait_for_function(predicate, arg=arg, polling=POLL_MS, timeout=timeout)

    async def wait_status(self, status: str, timeout: float = WAIT_MS) -> None:
        try:
            await self.wait("s => document.body.dataset.status === s", status, timeout)
        except PlaywrightTimeout:
            now = await self.page.evaluate(
                "() => [document.body.dataset.status, document.getElementById('notice').innerText]")
            raise AssertionError(f"page not {status!r} within {timeout} ms: status {now[0]!r},"
                                 f" notice {now[1]!r}") from None

    async def wait_shown(self, appointment_id: int, timeout: float = WAIT_MS) -> None:
        """Until the appointment's element is on screen (not just in the store)."""
        await self.page.locator(f'[data-appointment-id="{appointment_id}"]').first.wait_for(
            state="visible", timeout=timeout)

    async def wait_caught_up(self, last_id: int, timeout: float = WAIT_MS) -> None:
        """Until the page has applied everything up to event ``last_id``."""
        await self.wait("id => window.tsse.lastEventId() >= id", last_id, timeout)

    async def ids(self) -> list[int]:
        return await self.call("appointmentIds")

    async def appointments(self) -> list[dict[str, Any]]:
        return await self.call("appointments")

    async def applied(self) -> list[int]:
        return await self.call("appliedEventIds")

    async def shown_ids(self) -> set[int]:
        """Ids of the appointments with an element in the page."""
        return set(await self.page.eval_on_selector_all(
            "[data-appointment-id]", "els => els.map(e => Number(e.dataset.appointmentId))"))

    async def week(self) -> tuple[int, int]:
        """The view's range, epoch seconds [start, end)."""
        return tuple(await self.page.evaluate(
            "() => [window.tsse.calendar.view.activeStart, window.tsse.calendar.view.activeEnd]"
            ".map(d => Math.floor(d.getTime() / 1000))"))


class Session:
    """A browser context: one user's browser profile."""

    def __init__(self, context: BrowserContext, errors: list[str]) -> None:
        self.context = context
        self.errors = errors

    def accept_dialogs(self) -> None:
        """Answer every question with OK, as a person who means to follow a
        sign-in link for another identity (the page asks before a session is
        replaced: login CSRF, issue 19); Playwright would dismiss them."""

        async def accept(dialog: Any) -> None:
            await dialog.accept()

        self.context.on("page", lambda page: page.on("dialog", accept))

    async def open(self, url: str, status: str | None = "live", timeout: float = WAIT_MS,
                   record_stream: bool = False) -> CalendarPage:
        """A new tab on ``url``; by default waits until its stream is live."""
        page = await self.context.new_page()
        page.on("pageerror", lambda exc: self.errors.append(f"{page.url}: {exc}"))
        tab = CalendarPage(page, self.errors)
        if record_stream:
            # The DevTools protocol sees each EventSource message as it
            # arrives, before the page's own de-duplication.
            cdp = await self.context.new_cdp_session(page)
            cdp.on("Network.eventSourceMessageReceived",
                   lambda m: tab.frames.append((m["eventName"], m["eventId"])))
            await cdp.send("Network.enable")
        await page.goto(url)
        if status is not None:
            await tab.wait_status(status, timeout)
        return tab


class Chromium:
    def __init__(self, browser: Browser) -> None:
        self.browser = browser
        self.errors: list[str] = []  # uncaught errors of every page

    async def session(self, **options: Any) -> Session:
        """A fresh browser context (UTC, so test times are the page's times)."""
        values: dict[str, Any] = {"viewport": VIEWPORT, "timezone_id": "UTC", "locale": "en-US"}
        values.update(options)
        return Session(await self.browser.new_context(**values), self.errors)


@pytest.fixture
def chromium(io_loop: IOLoop) -> Iterator[Chromium]:
    """Headless Chromium on this test's IOLoop; skips when unavailable."""
    reason = missing()
    if reason:
        pytest.skip(reason)

    async def launch() -> tuple[Any, Browser]:
        driver = await async_playwright().start()
        try:
            return driver, await driver.chromium.launch(
                executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, timeout=30_000)
        except BaseException:
            await driver.stop()
            raise

    driver, browser = io_loop.run_sync(launch, timeout=60)
    wrapper = Chromium(browser)
    try:
        yield wrapper
    finally:
        async def close() -> None:
            try:
                await browser.close()
            finally:
                await driver.stop()
        io_loop.run_sync(close, timeout=30)
    assert not wrapper.errors, "uncaught JavaScript errors: " + "; ".join(wrapper.errors)


async def within(seconds: float, what: str, check: Any, interval: float = POLL_MS / 1000) -> Any:
    """Poll the coroutine function ``check`` until it returns a truthy value,
    at most ``seconds``; return that value or fail naming ``what``."""
    deadline = time.monotonic() + seconds
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {seconds} s: {what} (last: {value!r})")
        await asyncio.sleep(interval)
