"""Debian's Chromium under Playwright for the browser tests, and a signed-in user's session.

Screenshots land in var/screenshots/ for a human to look at.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from django.conf import settings
from django.db import connections

# Playwright's sync API runs an event loop in this thread; Django's ORM calls from the test are
# still synchronous and safe.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

# Debian's `chromium-headless-shell`: the same Chromium build as the `chromium` package without
# its desktop shell (Playwright's own choice for headless runs). The full browser in headless mode
# costs about twice the CPU for the same pages (docs/testing.md); QUORUM_TEST_CHROMIUM names
# another binary, e.g. /usr/bin/chromium.
CHROMIUM = os.environ.get("QUORUM_TEST_CHROMIUM", "/usr/bin/chromium-headless-shell")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCREENSHOTS = settings.BASE_DIR / "var" / "screenshots"
PASSWORD = "pw"  # the cast's password (tests/conftest.py)


@contextmanager
def chromium() -> Iterator:
    """Debian's Chromium under Playwright; on the way out, the browser and the ORM connections
    opened meanwhile are closed.

    While Playwright's event loop runs in this thread, Django keeps the thread's database
    connections apart from its usual ones (asgiref's Local treats the code as async), so the
    test database's teardown would not close them and could not drop the database.
    """
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()
            connections.close_all()


class Session:
    """One user's browser context on the server at `server.url`, signed in with the cast's
    password, failing on page errors and on any dialog."""

    def __init__(self, browser, server, username, *, width=1280, height=900):
        self.base = server.url
        self.context = browser.new_context(viewport={"width": width, "height": height})
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.dialogs: list[str] = []
        self.page.on("pageerror", lambda error: self.errors.append(str(error)))
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("dialog", self._dialog)
        self.page.goto(f"{self.base}/accounts/login/")
        self.page.fill("input[name=username]", username)
        self.page.fill("input[name=password]", PASSWORD)
        self.page.click("button[type=submit]")
        self.page.wait_for_url(f"{self.base}/")

    def _dialog(self, dialog):
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    def goto(self, path: str):
        response = self.page.goto(self.base + path)
        assert response is not None and response.ok, (path, response and response.status)
        return self.page

    def shot(self, name: str, **options):
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=SCREENSHOTS / name, full_page=True, **options)

    def assert_clean(self):
        assert self.errors == [] and self.dialogs == []
