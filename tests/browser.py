"""Real Chromium for the browser tests: Debian's package, driven by Playwright.

What every browser test shares: where Chromium is and how it is started, logging into a real
Odoo as a user does (the login form), and screenshots of what users saw when
``ZERO_SUDO_SCREENSHOTS`` names a directory.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

CHROMIUM = os.environ.get("ZERO_SUDO_CHROMIUM", "/usr/bin/chromium")
# Headless, and nothing of its own on the network (updates, sync, QUIC probes) while a test
# measures or waits for what the page does.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = os.environ.get("ZERO_SUDO_SCREENSHOTS")
# The first page a fresh Odoo database serves builds its assets: far longer than any other.
FIRST_PAGE_MS = 120_000


@contextmanager
def chromium() -> Iterator[Browser]:
    """A running Chromium; a missing one fails the test (make test installs it), never skips."""
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail("%s is missing: run scripts/ensure_browser.sh (make test does)" % CHROMIUM)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def log_in(browser: Browser, origin: str, login: str, password: str, **context_options) -> Page:
    """A new browser context logged into the Odoo at ``origin`` through its login form, on the
    web client's first page; the caller closes ``page.context``."""
    context = browser.new_context(viewport={"width": 1280, "height": 900}, **context_options)
    page = context.new_page()
    page.goto(origin + "/web/login")
    page.fill("input[name=login]", login)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_url("**/odoo**", timeout=FIRST_PAGE_MS)
    return page


def screenshot(page: Page, name: str) -> None:
    """Keep what the user sees as ``<ZERO_SUDO_SCREENSHOTS>/<name>.png``, when asked to."""
    if SCREENSHOTS:
        os.makedirs(SCREENSHOTS, exist_ok=True)
        page.screenshot(path=os.path.join(SCREENSHOTS, name + ".png"))
