"""The console with STEMEDB_AUTH_ENABLED=true: it asks for a key, keeps it for the tab,
and offers only what the key's role allows (a reader cannot reach admin actions)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from browserkit import Tab, browser, new_tab
from consolekit import load_demo
from e2ekit import Api, RunningServer, ServerFactory
from playwright.sync_api import Browser

ROOT = "0123456789abcdef0123456789abcdef-console-root"
ENV = {
    "STEMEDB_AUTH_ENABLED": "true",
    "STEMEDB_ROOT_API_KEY": ROOT,
    "STEMEDB_RATE_LIMIT_WRITE": "0",
    "STEMEDB_RATE_LIMIT_READ": "0",
}


@pytest.fixture(scope="module")
def server(module_server_factory: ServerFactory) -> RunningServer:
    s = module_server_factory(ENV)
    load_demo(s.api, ROOT)
    return s


def new_key(api: Api, role: str) -> str:
    body = api.ok("POST", "/v1/admin/keys", {"role": role}, expect=201, headers={"X-API-Key": ROOT})
    return str(body["api_key"])


@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    with browser() as b:
        yield b


@pytest.fixture
def tab(chromium: Browser) -> Iterator[Tab]:
    t = new_tab(chromium)
    yield t
    t.page.close()


def sign_in(tab: Tab, key: str) -> None:
    tab.page.wait_for_selector("#api-key")
    tab.page.fill("#api-key", key)
    tab.page.keyboard.press("Enter")


def only_the_expected_401(errors: list[str]) -> list[str]:
    # Before a key is given the page asks the server who it is and gets a 401: the
    # browser logs that failed request; nothing else may appear.
    return [e for e in errors if "status of 401" not in e]


def test_without_a_key_it_asks_for_one_and_shows_no_data(server: RunningServer, tab: Tab) -> None:
    tab.go(server.url, "#/overview")
    tab.page.wait_for_selector("#api-key")
    assert tab.page.query_selector("#feed") is None
    assert tab.page.evaluate("() => sessionStorage.length") == 0
    assert only_the_expected_401(tab.errors) == []


def test_a_wrong_key_is_refused_and_asked_again(server: RunningServer, tab: Tab) -> None:
    tab.go(server.url, "#/overview")
    sign_in(tab, "not-a-real-key")
    tab.page.wait_for_selector("main .error >> text=refused")
    assert tab.page.query_selector("#api-key") is not None
    assert tab.page.query_selector("#feed") is None


def test_a_reader_sees_data_but_no_admin_action(server: RunningServer, tab: Tab) -> None:
    reader = new_key(server.api, "reader")
    tab.go(server.url, "#/overview")
    sign_in(tab, reader)
    tab.ready("#feed li")
    assert "reader" in tab.page.inner_text("#who")
    assert tab.page.query_selector("#verify-now") is None
    assert "needs an admin key" in tab.page.inner_text("main")
    # the key lives in this tab's sessionStorage only, and is what the page sends
    assert tab.page.evaluate("() => sessionStorage.getItem('stemedb.console.apiKey')") == reader
    assert tab.page.evaluate("() => localStorage.length") == 0
    # the reader's key cannot do the admin action through the page's own API module
    status = tab.page.evaluate(
        """async () => {
          const m = await import('/console/api.js');
          try { await m.api('/v1/admin/verify', {method: 'POST', body: {}}); return 200; }
          catch (e) { return e.status; }
        }"""
    )
    assert status == 403
    tab.route("#/claim?subject=drugs/semaglutide&predicate=gastroparesis_risk")
    tab.ready("#lens-table tbody tr")
    tab.page.click("#sign-out")
    tab.page.wait_for_selector("#api-key")
    assert tab.page.evaluate("() => sessionStorage.length") == 0
    assert [e for e in only_the_expected_401(tab.errors) if "status of 403" not in e] == []


def test_an_admin_can_verify_from_the_console(server: RunningServer, tab: Tab) -> None:
    tab.go(server.url, "#/overview")
    sign_in(tab, new_key(server.api, "admin"))
    tab.ready("#verify-now")
    tab.page.click("#verify-now")
    tab.page.wait_for_function(
        "() => document.querySelector('#verify-result').textContent.includes('chain OK')"
    )
    assert only_the_expected_401(tab.errors) == []


def test_a_new_tab_does_not_inherit_the_key(
    server: RunningServer, chromium: Browser, tab: Tab
) -> None:
    tab.go(server.url, "#/overview")
    sign_in(tab, new_key(server.api, "reader"))
    tab.ready("#feed li")
    other = new_tab(chromium)  # a new context: nothing carried over
    try:
        other.go(server.url, "#/overview")
        other.page.wait_for_selector("#api-key")
    finally:
        other.page.close()
