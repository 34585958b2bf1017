"""The live feed honours the server's long-poll cap: over it the server answers at once
with `retry_after`, and the page waits exactly that long instead of hammering."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterator

import pytest
from browserkit import Tab, browser, new_tab
from e2ekit import Agent, ServerFactory, unique, wait_for_metric
from playwright.sync_api import Browser


@pytest.fixture
def chromium() -> Iterator[Browser]:
    with browser() as b:
        yield b


def test_the_feed_waits_retry_after_when_the_server_is_at_its_cap(
    server_factory: ServerFactory, chromium: Browser
) -> None:
    server = server_factory({"STEMEDB_LONG_POLLS": "1"})
    api = server.api
    api.write("/v1/assert", Agent().assertion(f"feed/{unique()}", "p", "first", 0.5))
    head = api.get_ok("/v1/health")["journal_seq"]
    held = threading.Thread(
        target=lambda: api.get("/v1/feed", {"after": head, "wait": 30}, timeout=60), daemon=True
    )
    held.start()  # takes the only long-poll lane
    wait_for_metric(api, "stemedb_long_polls_active", 1)

    tab: Tab = new_tab(chromium)
    polls: list[float] = []  # start times the browser measured (s), not when Python saw them
    tab.page.on(
        "requestfinished",
        lambda r: polls.append(r.timing["startTime"] / 1000) if "/v1/feed" in r.url else None,
    )
    tab.go(server.url, "#/overview")
    tab.ready("#feed li")
    tab.page.wait_for_function(
        "() => document.querySelector('#feed-status').textContent.includes('server busy')"
    )
    deadline = time.monotonic() + 10
    while len(polls) < 4 and time.monotonic() < deadline:  # poll for three capped polls
        tab.page.wait_for_timeout(100)
    starts = sorted(polls)
    capped_gaps = [b - a for a, b in itertools.pairwise(starts[1:])]  # the first had frames
    assert capped_gaps and min(capped_gaps) >= 0.9, starts  # retry_after is 1 s

    record = Agent().assertion(f"feed/{unique()}", "p", "second", 0.5)
    written = api.write("/v1/assert", record)  # also ends the held poll
    tab.page.wait_for_selector(f"#feed li[data-hash='{written['hash']}']", timeout=15_000)
    held.join(30)
    assert tab.errors == []
    tab.page.close()


def test_with_metering_off_the_overview_says_so_without_errors(
    server_factory: ServerFactory, chromium: Browser
) -> None:
    server = server_factory({"STEMEDB_METER_ENABLED": "false"})
    server.api.write("/v1/assert", Agent().assertion(f"m/{unique()}", "p", "v", 0.5))
    tab = new_tab(chromium)
    tab.go(server.url, "#/overview")
    tab.ready("#feed li")
    tab.page.wait_for_function(
        "() => document.querySelector('#stat-writes').textContent === 'metrics off'"
    )
    assert tab.errors == []  # no request to the absent /metrics
    tab.page.close()
