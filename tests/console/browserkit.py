"""Playwright on Debian's chromium (no browser download): launch, console-error capture.

`executable_path` is the distro binary that .ci/run installs; the flags keep a
headless run quiet and offline (no component updates, sync, QUIC or first-run).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from playwright.sync_api import Browser, Page, sync_playwright

CHROMIUM = os.environ.get("STEMEDB_CHROMIUM", "/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@contextmanager
def browser() -> Iterator[Browser]:
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            yield b
        finally:
            b.close()


RENDERED = """() => {
  const main = document.querySelector("main#view");
  return main !== null && !main.hasAttribute("aria-busy")
    && main.dataset.rendered === location.hash;
}"""


@dataclass
class Tab:
    """A page plus every console error and uncaught exception it produced."""

    page: Page
    errors: list[str] = field(default_factory=list)

    def go(self, base: str, hash_route: str = "") -> None:
        self.page.goto(f"{base}/console{hash_route}")

    def route(self, hash_route: str) -> None:
        self.page.evaluate("h => { location.hash = h; }", hash_route)

    def ready(self, selector: str, timeout: float = 15_000) -> Any:
        """Wait for `selector` in the view of the current route, finished loading.

        Not busy is not enough: right after `location.hash` changes, the old view is
        still there and not busy until the `hashchange` handler runs. The console
        marks the view with the hash it rendered (`data-rendered`)."""
        self.page.wait_for_function(RENDERED, timeout=timeout)
        return self.page.wait_for_selector(selector, timeout=timeout)


def new_tab(b: Browser, width: int = 1280, height: int = 900) -> Tab:
    page = b.new_page(viewport={"width": width, "height": height})
    tab = Tab(page)
    page.on("console", lambda m: tab.errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: tab.errors.append(f"pageerror: {e}"))
    return tab
