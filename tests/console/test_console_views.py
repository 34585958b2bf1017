"""The web console in a real browser (Debian's chromium via Playwright) against a real
server holding the demo sample, a generated contested dataset and triage cases."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from browserkit import Tab, browser, new_tab
from consolekit import Contested, TriageCase, contested_dataset, lens_rows, load_demo, triage_cases
from e2ekit import Agent, Api, RunningServer, ServerFactory, poll, unique
from playwright.sync_api import Browser

from stemedb import demo_data

LENSES = (
    "recency", "confidence", "consensus", "authority", "trust",
    "votes", "best", "epoch", "skeptic", "layered",
)  # fmt: skip
NOW = 1_790_000_000  # the triage cases' reference time (in the past: no future claims)


@dataclass
class World:
    server: RunningServer
    api: Api
    demo: demo_data.DemoData
    contested: Contested
    cases: list[TriageCase]
    prefix: str


@pytest.fixture(scope="module")
def world(module_server_factory: ServerFactory) -> World:
    server = module_server_factory()
    api = server.api
    prefix = unique("triage")
    return World(
        server,
        api,
        load_demo(api),
        contested_dataset(api),
        triage_cases(api, prefix, NOW),
        prefix,
    )


@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    with browser() as b:
        yield b


@pytest.fixture
def tab(chromium: Browser) -> Iterator[Tab]:
    t = new_tab(chromium)
    yield t
    t.page.close()


def ready_triage(api: Api, **params: Any) -> Any:
    """GET /v1/triage once its index is folded (the first request starts the fold)."""
    return poll(lambda: (b := api.get_ok("/v1/triage", params))["status"] == "ready" and b, 30)


def claim_route(subject: str, predicate: str, **extra: Any) -> str:
    from urllib.parse import urlencode

    return "#/claim?" + urlencode({"subject": subject, "predicate": predicate, **extra})


def test_every_view_loads_without_console_errors(world: World, tab: Tab) -> None:
    hash_ = world.demo.ids["B"]
    views = [
        ("#/overview", "#feed li"),
        (claim_route(demo_data.SUBJECT, demo_data.PREDICATE), "#lens-table tbody tr"),
        ("#/concepts?prefix=drugs/semaglutide", "#predicate-list li"),
        ("#/triage", "#triage-table tbody tr"),
        (f"#/record?hash={hash_}", "#signatures tbody tr"),
        ("#/agents", "#agents-table tbody tr"),
        ("#/audit", "#audit-table tbody tr"),
    ]
    for route, selector in views:
        if route == "#/audit":  # the claim view's queries: their rows commit after the answers
            poll(lambda: world.api.get_ok("/v1/audit/queries")["queries"], 15)
        tab.go(world.server.url, route)
        tab.ready(selector)
        assert not tab.page.query_selector(".error"), (route, tab.page.inner_text("main"))
    assert tab.errors == []


def lens_table(tab: Tab) -> dict[str, tuple[str, str]]:
    rows = tab.page.eval_on_selector_all(
        "#lens-table tbody tr",
        "rows => rows.map(r => [r.dataset.lens, r.querySelector('.winner').dataset.hash,"
        " r.querySelector('td.num').textContent])",
    )
    return {lens: (winner, conf) for lens, winner, conf in rows}


def expected_table(api: Api, base: dict[str, Any]) -> dict[str, tuple[str, str]]:
    out = {}
    for lens in LENSES:
        winner, conf = lens_rows(api, base, lens)
        out[lens] = (winner, "—" if conf is None else f"{conf:.3f}")
    return out


@pytest.mark.parametrize("which", ["demo", "generated"])
def test_lens_table_matches_post_query_for_every_lens(world: World, tab: Tab, which: str) -> None:
    if which == "demo":
        subject, predicate = demo_data.SUBJECT, demo_data.PREDICATE
    else:
        subject, predicate = world.contested.subject, world.contested.predicate
    tab.go(world.server.url, claim_route(subject, predicate))
    tab.ready("#lens-table tbody tr")
    shown = lens_table(tab)
    assert sorted(shown) == sorted(LENSES)
    assert shown == expected_table(world.api, {"subject": subject, "predicate": predicate})
    winners = {w for w, _ in shown.values() if w}
    assert len(winners) >= 2, "a contested pair where the lenses disagree"
    assert tab.errors == []


def fill_time(tab: Tab, field: str, seconds: int) -> None:
    text = datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    tab.page.fill(f"#{field}", text)


def test_time_control_replays_the_answer_as_the_api_does(world: World, tab: Tab) -> None:
    c = world.contested
    base = {"subject": c.subject, "predicate": c.predicate}
    tab.go(world.server.url, claim_route(c.subject, c.predicate))
    tab.ready("#lens-table tbody tr")
    now_table = lens_table(tab)

    fill_time(tab, "as_of", c.early)
    tab.page.click("#claim-form button[type=submit]")
    tab.page.wait_for_function("() => location.hash.includes('as_of=')")
    tab.ready("#lens-table tbody tr")
    early_table = lens_table(tab)
    assert early_table == expected_table(world.api, {**base, "as_of": c.early})
    assert early_table["recency"] != now_table["recency"]

    fill_time(tab, "as_of", 0 + 86_400)  # nothing claimed yet: every lens has no answer
    tab.page.click("#claim-form button[type=submit]")
    tab.page.wait_for_function("() => location.hash.includes('as_of=86400')")
    tab.ready("#lens-table tbody tr")
    assert all(w == "" for w, _ in lens_table(tab).values())

    tab.page.fill("#as_of", "")
    fill_time(tab, "known_at", 86_400)  # nothing written yet, whatever the claim time
    tab.page.click("#claim-form button[type=submit]")
    tab.page.wait_for_function("() => location.hash.includes('known_at=86400')")
    tab.ready("#lens-table tbody tr")
    assert lens_table(tab) == expected_table(world.api, {**base, "known_at": 86_400})
    assert all(w == "" for w, _ in lens_table(tab).values())

    tab.page.click("#time-now")
    tab.page.wait_for_function("() => !location.hash.includes('known_at')")
    tab.ready("#lens-table tbody tr")
    assert lens_table(tab) == now_table
    assert tab.errors == []


def test_live_feed_shows_a_record_written_during_the_test(world: World, tab: Tab) -> None:
    tab.go(world.server.url, "#/overview")
    tab.ready("#feed li")
    tab.page.wait_for_function(
        "() => document.querySelector('#feed-status').textContent == 'live'",
    )
    subject = f"live/{unique('s')}"
    record = Agent().assertion(subject, "status", "written_now", 0.7)
    written = world.api.write("/v1/assert", record)
    item = tab.page.wait_for_selector(f"#feed li[data-hash='{written['hash']}']", timeout=30_000)
    assert item is not None and subject in item.inner_text()
    assert tab.errors == []


def test_triage_classes_match_their_definitions(world: World, tab: Tab) -> None:
    prefix = world.prefix
    api_body = ready_triage(world.api, prefix=prefix, now=NOW, window_days=30)
    by_pred = {p["predicate"]: p["class"] for p in api_body["pairs"]}
    expected = {case.predicate: case.expected for case in world.cases}
    assert by_pred == expected
    tab.go(world.server.url, f"#/triage?prefix={prefix}&now={NOW}&window_days=30")
    tab.ready("#triage-table tbody tr")
    shown = tab.page.eval_on_selector_all(
        "#triage-table tbody tr", "rows => rows.map(r => [r.dataset.predicate, r.dataset.class])"
    )
    assert dict(shown) == expected
    counts = tab.page.inner_text("#triage-counts")
    assert "Emerging 1" in counts and "Active 1" in counts and "Resolved 2" in counts
    assert tab.page.input_value("#now") == "2026-09-21T14:13:20"  # NOW, shown in UTC
    # the class filter narrows the list to one class
    tab.page.select_option("#class", "Resolved")
    tab.page.click("form button[type=submit]")
    tab.page.wait_for_function(
        f"() => location.hash.includes('class=Resolved') && location.hash.includes('now={NOW}')"
    )
    tab.page.wait_for_function(
        "() => [...document.querySelectorAll('#triage-table tbody tr')]"
        ".every(r => r.dataset.class === 'Resolved')"
    )
    assert tab.errors == []


def test_triage_conflict_matches_the_skeptic_capped_tiers_included(world: World) -> None:
    body = ready_triage(world.api, prefix=world.prefix, now=NOW)
    capped = 0
    for pair in body["pairs"]:
        skeptic = world.api.get_ok(
            "/v1/skeptic", {"subject": pair["subject"], "predicate": pair["predicate"]}
        )
        capped += bool(skeptic.get("tier_caps"))
        assert pair["conflict_score"] == pytest.approx(skeptic["conflict_score"], abs=1e-9)
    assert capped  # the cases' unregistered Clinical signers are capped to Observational


def test_triage_refuses_bad_filters_with_the_field_named(world: World) -> None:
    for params, field in (({"class": "Hot"}, "class"), ({"tier": "Gold"}, "tier")):
        resp = world.api.get("/v1/triage", params)
        assert resp.status == 400, resp
        assert field in str(resp.json), resp.json


def test_record_view_verifies_signatures_and_draws_the_trace(world: World, tab: Tab) -> None:
    # Q (Approved) has parent P: the graph has a parent node linking to P's record.
    child = world.demo.ids["Q"]
    tab.go(world.server.url, f"#/record?hash={child}")
    tab.ready("#signatures tbody tr")
    assert tab.page.eval_on_selector_all(
        "#signatures tbody tr", "rows => rows.map(r => r.dataset.ok)"
    ) == ["true"]
    assert tab.page.query_selector("svg.trace .node.parent") is not None
    assert tab.errors == []


def test_a_tampered_signature_is_shown_invalid(world: World, tab: Tab) -> None:
    # The page verifies in the browser; an answer whose signature bytes were altered in
    # transit must not be shown verified.
    hash_ = world.demo.ids["A"]

    def tamper(route: Any) -> None:
        resp = route.fetch()
        body = resp.json()
        sig = body["assertion"]["signatures"][0]["signature"]
        body["assertion"]["signatures"][0]["signature"] = ("0" if sig[0] != "0" else "1") + sig[1:]
        route.fulfill(response=resp, json=body)

    tab.page.route(f"**/v1/trace/{hash_}*", tamper)
    tab.go(world.server.url, f"#/record?hash={hash_}")
    tab.ready("#signatures tbody tr")
    assert tab.page.eval_on_selector_all(
        "#signatures tbody tr", "rows => rows.map(r => r.dataset.ok)"
    ) == ["false"]


def test_concepts_list_predicates_with_conflict_badges(world: World, tab: Tab) -> None:
    tab.go(world.server.url, "#/concepts?prefix=trials/comp")  # a prefix inside a segment
    tab.ready("#concept-list li")
    paths = tab.page.eval_on_selector_all("#concept-list li", "els => els.map(e => e.dataset.path)")
    assert sorted(paths) == sorted({s for s, _ in world.contested.pairs})
    tab.route("#/concepts?prefix=trials/compound-0")
    tab.ready("#predicate-list li")
    badges = tab.page.eval_on_selector_all(
        "#predicate-list li",
        "els => els.map(e => [e.dataset.predicate, e.querySelector('.conflict').textContent])",
    )
    for predicate, text in badges:
        skeptic = world.api.get_ok(
            "/v1/skeptic", {"subject": "trials/compound-0", "predicate": predicate}
        )
        assert text == f"conflict {skeptic['conflict_score']:.2f}"
    assert tab.errors == []


def test_keyboard_and_phone_width(world: World, chromium: Browser) -> None:
    t = new_tab(chromium, width=390, height=844)
    try:
        t.go(world.server.url, claim_route(demo_data.SUBJECT, demo_data.PREDICATE))
        t.ready("#lens-table tbody tr")
        overflow = t.page.evaluate("() => document.documentElement.scrollWidth - innerWidth")
        assert overflow <= 1, f"page wider than the phone by {overflow}px"
        # keyboard only: focus the Triage link and press Enter
        t.page.focus("a[data-nav=triage]")
        t.page.keyboard.press("Enter")
        t.page.wait_for_function("() => location.hash.startsWith('#/triage')")
        t.ready("#triage-table")
        t.page.wait_for_function("() => document.activeElement.id === 'view'")  # focus moved
        unlabeled = t.page.evaluate(
            "() => [...document.querySelectorAll('input, select')]"
            ".filter(e => !e.labels || !e.labels.length).map(e => e.id)"
        )
        assert unlabeled == []
        assert t.errors == []
    finally:
        t.page.close()


def test_triage_stays_fast_on_this_dataset(world: World) -> None:
    ready_triage(world.api)  # the first fold, started by the first request
    started = time.perf_counter()
    body = world.api.get_ok("/v1/triage", {})
    assert body["status"] == "ready"
    assert body["server_ms"] < 1000 and time.perf_counter() - started < 5


def test_audit_shows_who_asked_and_what_they_were_shown(world: World, tab: Tab) -> None:
    asker = Agent().id
    base = {"subject": demo_data.SUBJECT, "predicate": demo_data.PREDICATE, "lens": "votes"}
    body = world.api.ok("POST", "/v1/query", base, headers={"X-Agent-Id": asker})
    winner = body["results"][0]["winner"]["hash"]
    # the audit row is committed after the answer, with the writer's next batch
    poll(lambda: world.api.get_ok("/v1/audit/queries", {"agent_id": asker})["queries"], 15)
    tab.go(world.server.url, f"#/audit?agent_id={asker}")
    tab.ready("#audit-table tbody tr")
    rows = tab.page.eval_on_selector_all(
        "#audit-table tbody tr",
        "rows => rows.map(r => [r.dataset.query,"
        " [...r.querySelectorAll('a')].map(a => a.getAttribute('href'))])",
    )
    assert [q for q, _ in rows] == [body["query_id"]]
    links = rows[0][1]
    assert f"#/agents?id={asker}" in links
    assert f"#/record?hash={winner}" in links
    assert tab.errors == []


def test_concepts_contains_filters_predicates_by_value_text(world: World, tab: Tab) -> None:
    tab.go(world.server.url, "#/concepts?prefix=drugs/semaglutide&q=ileus")
    tab.ready("#predicate-list li")
    shown = tab.page.eval_on_selector_all(
        "#predicate-list li", "els => els.map(e => e.dataset.predicate)"
    )
    assert shown == ["label_gi_warning"]  # the only predicate with a value "ileus_warning"
    assert tab.errors == []


def test_concepts_contains_finds_a_value_in_every_subject(world: World, tab: Tab) -> None:
    """Typing a value text lists the subjects that claim it, across prefixes (the
    value-search index, GET /v1/concepts/search), each linking to its claim view."""
    tag = unique("needle")
    subjects = [f"{unique('east')}/site-1", f"{unique('west')}/deep/site-2"]
    for i, subject in enumerate(subjects):
        world.api.write("/v1/assert", Agent().assertion(subject, f"finding{i}", f"{tag}_seen"))
    world.api.write("/v1/assert", Agent().assertion(f"{unique('other')}/x", "finding", "unrelated"))
    tab.go(world.server.url, "#/concepts")
    tab.ready("#concept-filter")
    tab.page.focus("#concept-filter")
    tab.page.keyboard.type(tag.upper()[2:])  # a middle part, other case: a substring match
    tab.page.keyboard.press("Enter")
    tab.ready("#value-hits tbody tr")
    shown = tab.page.eval_on_selector_all(
        "#value-hits tbody tr", "rows => rows.map(r => [r.dataset.subject, r.dataset.predicate])"
    )
    assert sorted(shown) == sorted([[s, f"finding{i}"] for i, s in enumerate(subjects)])
    tab.page.click(f"#value-hits tr[data-subject='{subjects[1]}'] a[href*='claim']")
    tab.page.wait_for_function("() => location.hash.startsWith('#/claim')")
    assert tab.errors == []
