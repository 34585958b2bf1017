"""Constraints (issue 17 part 5), end to end against a real auth-enabled server.

A constraint is an ordinary signed assertion under a context path with a
predicate of a small vocabulary. `GET /v1/constraints` lists the rules in
force with prefix inheritance, each resolved by authority then recency with
who set it and why; conflicts are reported; `known_at` replays; `POST
/v1/constraints/check` says which rules an intended action violates;
`lens=constraints` and `stemedb constraints` give the same rules.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest
from e2ekit import Agent, Api, Resp, ServerFactory, poll, unique

from stemedb.records.source import source_id

ROOT = "0123456789abcdef0123456789abcdef-root"
ENV = {
    "STEMEDB_AUTH_ENABLED": "true",
    "STEMEDB_ROOT_API_KEY": ROOT,
    "STEMEDB_RATE_LIMIT_WRITE": "0",
    "STEMEDB_RATE_LIMIT_READ": "0",
}


class Live:
    def __init__(self, api: Api) -> None:
        self.api = api
        self.writer = self.ok("POST", "/v1/admin/keys", {"role": "writer"}, expect=201)["api_key"]

    def call(self, method: str, path: str, body: Any = None, key: str = ROOT, **kw: Any) -> Resp:
        return self.api.call(method, path, body, headers={"X-API-Key": key}, **kw)

    def ok(self, method: str, path: str, body: Any = None, *, expect: int = 200, **kw: Any) -> Any:
        resp = self.call(method, path, body, **kw)
        assert resp.status == expect, (method, path, resp)
        return resp.json

    def rule(self, agent: Agent, context: str, predicate: str, value: str, **kw: Any) -> str:
        record = agent.assertion(context, predicate, value, **kw)
        return str(self.ok("POST", "/v1/assert", record, key=self.writer, expect=201)["hash"])

    def rules(self, context: str, **params: Any) -> dict[str, Any]:
        body: dict[str, Any] = self.ok(
            "GET", "/v1/constraints", params={"context": context, **params}
        )
        return body

    def check(self, context: str, **action: Any) -> dict[str, Any]:
        body: dict[str, Any] = self.ok(
            "POST", "/v1/constraints/check", {"context": context, "intended_action": action}
        )
        return body


@pytest.fixture
def live(server_factory: ServerFactory) -> Iterator[Live]:
    yield Live(server_factory(ENV).api)


def _by_value(body: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(r["predicate"], r["value"]): r for r in body["rules"]}


def test_rules_inherit_from_ancestors_and_say_who_and_why(live: Live) -> None:
    root = f"code{unique()}"
    alice, bob = Agent(), Agent()
    use = live.rule(alice, f"{root}/python", "must_use", "httpx", source="why: retries+timeouts")
    never = live.rule(bob, f"{root}/python/http", "must_not_use", "urllib", source="ticket://42")
    live.rule(bob, f"{root}/python/db", "must_use", "sqlalchemy")  # a sibling: not inherited
    live.rule(bob, f"{root}/python/http/client", "requires", "tests")  # a child: not inherited
    live.rule(bob, f"{root}/python/http", "colour", "blue")  # not a constraint predicate

    body = live.rules(f"{root}/python/http")
    assert body["contexts"] == [root, f"{root}/python", f"{root}/python/http"]
    rules = _by_value(body)
    assert set(rules) == {("must_use", "httpx"), ("must_not_use", "urllib")}
    assert rules[("must_use", "httpx")]["hash"] == use
    assert rules[("must_use", "httpx")]["set_by"] == alice.id
    assert rules[("must_use", "httpx")]["why"] == "why: retries+timeouts"
    assert rules[("must_use", "httpx")]["context"] == f"{root}/python"
    assert rules[("must_not_use", "urllib")]["hash"] == never
    assert body["conflicts"] == []
    # The parent context does not see its children's rules.
    assert set(_by_value(live.rules(f"{root}/python"))) == {("must_use", "httpx")}

    # lens=constraints on /v1/query answers the same rules.
    query = live.ok("POST", "/v1/query", {"subject": f"{root}/python/http", "lens": "constraints"})
    assert query["lens"] == "constraints"
    assert {r["hash"] for r in query["results"]} == {use, never}


def test_a_rule_is_resolved_by_authority_then_recency(live: Live) -> None:
    ctx = f"code{unique()}/python"
    expert, community, newest = Agent(), Agent(), Agent()
    now = int(time.time())
    strong = live.rule(expert, ctx, "must_use", "httpx", source_class="Expert", timestamp=now - 50)
    weak = live.rule(community, ctx, "must_use", "HTTPX ", source_class="Community", timestamp=now)
    rule = _by_value(live.rules(ctx))[("must_use", "httpx")]
    assert rule["hash"] == strong and rule["also_stated_by"] == [weak]
    assert rule["tier"] == "Expert"
    # Same tier: the newer claim represents the rule.
    newer = live.rule(newest, ctx, "must_use", "httpx", source_class="Expert", timestamp=now - 10)
    assert _by_value(live.rules(ctx))[("must_use", "httpx")]["hash"] == newer


def test_conflicts_are_reported_and_self_declared_authority_does_not_win(live: Live) -> None:
    root = f"code{unique()}"
    registrar, lead, forger = Agent(), Agent(), Agent()
    tier = registrar.record("agent_tier", agent_id=lead.id, max_tier="Clinical")
    live.ok("POST", "/v1/admin/agents", tier, expect=201)
    lead_rule = live.rule(lead, f"{root}/python", "must_use", "httpx", source_class="Clinical")
    # Newer, more specific, and self-declared Regulatory: capped to Observational.
    forged = live.rule(
        forger, f"{root}/python/http", "must_not_use", "httpx", source_class="Regulatory"
    )
    body = live.rules(f"{root}/python/http")
    assert len(body["conflicts"]) == 1
    conflict = body["conflicts"][0]
    assert set(conflict["rules"]) == {lead_rule, forged}
    assert conflict["prevails"] == lead_rule and conflict["overridden"] == forged
    rules = _by_value(body)
    assert rules[("must_not_use", "httpx")]["overridden_by"] == lead_rule
    assert rules[("must_not_use", "httpx")]["tier"] == "Observational"
    assert "overridden_by" not in rules[("must_use", "httpx")]

    # Between equals the more specific context prevails.
    a, b = Agent(), Agent()
    general = live.rule(a, f"{root}/js", "prefer", "axios", source_class="Expert")
    specific = live.rule(b, f"{root}/js/node", "avoid", "axios", source_class="Expert")
    js = live.rules(f"{root}/js/node")["conflicts"]
    assert [(c["prevails"], c["overridden"]) for c in js] == [(specific, general)]


def test_check_reports_the_violated_rules(live: Live) -> None:
    root = f"code{unique()}"
    agent = Agent()
    live.rule(agent, f"{root}/python", "must_use", "httpx", source="why: retries")
    live.rule(agent, f"{root}/python/http", "must_not_use", "urllib")
    live.rule(agent, f"{root}/python/http", "requires", "tests")
    live.rule(agent, f"{root}/python/http", "prefer", "respx")
    ctx = f"{root}/python/http"

    bad = live.check(ctx, uses=["urllib", "pytest"], description="fetch the label")
    assert bad["ok"] is False
    problems = {(v["rule"]["predicate"], v["rule"]["value"]) for v in bad["violations"]}
    assert problems == {("must_use", "httpx"), ("must_not_use", "urllib"), ("requires", "tests")}
    assert [a["rule"]["value"] for a in bad["advice"]] == ["respx"]
    assert len(bad["rules"]) == 4

    good = live.check(ctx, uses=["HTTPX", "respx"], does=["tests"])
    assert good["ok"] is True and good["violations"] == [] and good["advice"] == []

    # Bad input: a 400 naming the field.
    for body, field in (
        ({"context": ctx}, "intended_action"),
        ({"context": ctx, "intended_action": {"uses": "httpx"}}, "intended_action.uses"),
        ({"context": ctx, "intended_action": {"uses": [""]}}, "intended_action.uses.0"),
        ({"context": ctx, "intended_action": {"calls": []}}, "intended_action.calls"),
        ({"context": "../x", "intended_action": {}}, "context"),
    ):
        resp = live.call("POST", "/v1/constraints/check", body)
        assert resp.status == 400, (body, resp)
        assert resp.error["details"][0]["field"] == field, (body, resp.error)
    missing = live.call("GET", "/v1/constraints")
    assert missing.status == 400 and missing.error["details"][0]["field"] == "context"


def test_supersession_lifts_a_rule_and_known_at_replays_it(live: Live) -> None:
    ctx = f"code{unique()}/python"
    agent = Agent()
    rule = live.rule(agent, ctx, "must_not_use", "requests")
    second = int(time.time()) + 1  # the rule is known at `second`, its lifting is not
    poll(lambda: time.time() > second + 0.01, timeout=3.0)
    lift = agent.record("supersession", target_hash=rule, reason="requests 3 fixed it")
    live.ok("POST", "/v1/supersede", lift, key=live.writer, expect=201)
    assert live.rules(ctx)["rules"] == []
    assert live.check(ctx, uses=["requests"])["ok"] is True

    then = live.rules(ctx, known_at=second)
    assert [r["hash"] for r in then["rules"]] == [rule]
    replay = live.ok(
        "POST",
        "/v1/constraints/check",
        {"context": ctx, "intended_action": {"uses": ["requests"]}, "known_at": second},
    )
    assert replay["ok"] is False
    # Somebody else may not lift it (supersession rights, 403).
    stranger = Agent()
    rule2 = live.rule(agent, ctx, "must_use", "httpx")
    hostile = stranger.record("supersession", target_hash=rule2, reason="I prefer requests")
    assert live.call("POST", "/v1/supersede", hostile, key=live.writer).status == 403
    assert [r["hash"] for r in live.rules(ctx)["rules"]] == [rule2]


def test_cli_lists_rules_and_exits_1_on_a_violation(live: Live, tmp_path: Any) -> None:
    ctx = f"code{unique()}/python"
    live.rule(Agent(), ctx, "must_not_use", "urllib", source="why: no retries")
    env = {k: v for k, v in os.environ.items() if not k.startswith("STEMEDB_")}
    env.update(HOME=str(tmp_path), STEMEDB_URL=live.api.url, STEMEDB_API_KEY=ROOT)

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        argv = [sys.executable, "-m", "stemedb.cli.main", "constraints", *args]
        return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60)

    listed = cli(f"{ctx}/http", "--format", "table")
    assert listed.returncode == 0, listed.stderr
    assert "must_not_use" in listed.stdout and "urllib" in listed.stdout
    assert "why: no retries" in listed.stdout
    violated = cli(f"{ctx}/http", "--uses", "urllib,json")
    assert violated.returncode == 1, violated.stderr
    assert '"ok": false' in violated.stdout
    fine = cli(f"{ctx}/http", "--uses", "httpx")
    assert fine.returncode == 0, fine.stderr
    bad = cli("../nope")
    assert bad.returncode == 1 and bad.stderr.startswith("stemedb constraints:")
    assert "Traceback" not in bad.stderr


def test_a_rule_whose_reason_is_retracted_carries_a_warning(live: Live) -> None:
    ctx = f"code{unique()}/python"
    adr = f"https://example.org/adr/{unique('adr')}"
    agent = Agent()
    rule = live.rule(agent, ctx, "must_not_use", "requests", source=adr)
    assert "warnings" not in live.rules(ctx)["rules"][0]
    register = agent.record("source", identifier=adr, publisher_key=agent.id)
    live.ok("POST", "/v1/sources", register, key=live.writer, expect=201)
    sid = source_id(adr)
    assert live.ok("GET", f"/v1/sources/{sid}")["source"]["identifier"] == adr
    retract = agent.record("retraction", source_id=sid, reason="ADR withdrawn")
    live.ok("POST", "/v1/retractions", retract, key=live.writer, expect=201)

    (flagged,) = live.rules(ctx)["rules"]
    assert flagged["hash"] == rule and "ADR withdrawn" in flagged["warnings"][0]
    verdict = live.check(ctx, uses=["requests"])
    assert verdict["ok"] is False and verdict["violations"][0]["rule"]["warnings"]
    assert live.rules(ctx, exclude_retracted="true")["rules"] == []
    lifted = live.ok(
        "POST",
        "/v1/constraints/check",
        {"context": ctx, "intended_action": {"uses": ["requests"]}, "exclude_retracted": True},
    )
    assert lifted["ok"] is True
    query = live.ok(
        "POST", "/v1/query", {"subject": ctx, "lens": "constraints", "exclude_retracted": True}
    )
    assert query["results"] == []
