"""Authority cannot be self-declared (issue 19 item 5): tiers are capped at read time
to what an admin registered each signer for, against a real server process.

The scenario of the issue: 50 fresh, unregistered agents label a false value
`Regulatory` (confidence 1.0, citing `fda://`), one registered regulator and
ten registered clinical sources say otherwise. Before the cap, `authority`
picked the 50 (all Regulatory, higher confidence); now it picks the regulator,
and without the regulator the ten clinical sources.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from e2ekit import poll
from securekit import Agent, Resp, sqlite_count

from stemedb import demo_data
from stemedb.client import Client
from stemedb.crypto import write_key_file
from stemedb.ops.doctor_tiers import check_tier_registry
from stemedb.signing import make_assertion, sign_record
from stemedb.store import agent_tiers, schema
from stemedb.store.verify import verify

ROOT = "fedcba9876543210fedcba9876543210-root"
AUTH_ENV = {
    "STEMEDB_AUTH_ENABLED": "true",
    "STEMEDB_ROOT_API_KEY": ROOT,
    "STEMEDB_RATE_LIMIT_WRITE": "0",
    "STEMEDB_RATE_LIMIT_READ": "0",
}
ADMIN = {"X-API-Key": ROOT}
T = 1_700_000_000
CAPPED = "declared Regulatory, capped to Observational: agent not registered for Regulatory"


class Live:
    """One auth-enabled server: `call(method, path, body, key=ROOT)` -> Resp."""

    def __init__(self, url: str, http: Callable[..., Resp], db: Path) -> None:
        self.url, self.http, self.db = url, http, db

    def call(self, method: str, path: str, body: Any = None, key: str = ROOT) -> Resp:
        return self.http(self.url, method, path, body, headers={"X-API-Key": key})

    def ok(self, method: str, path: str, body: Any = None, expect: int = 200) -> Any:
        resp = self.call(method, path, body)
        assert resp.status == expect, (method, path, resp.status, resp.body[:400])
        return resp.json

    def batch(self, records: list[dict[str, Any]], key: str = ROOT) -> dict[str, Any]:
        resp = self.call("POST", "/v1/assert/batch", records, key=key)
        assert resp.status == 200, resp.body[:400]
        body: dict[str, Any] = resp.json
        return body

    def lens(self, predicate: str, lens: str, **params: Any) -> dict[str, Any]:
        body = self.ok(
            "POST",
            "/v1/query",
            {"subject": SUBJECT, "predicate": predicate, "lens": lens, **params},
        )
        assert len(body["results"]) == 1, body
        result: dict[str, Any] = body["results"][0]
        return result

    def new_key(self, role: str) -> str:
        return str(self.ok("POST", "/v1/admin/keys", {"role": role}, expect=201)["api_key"])


SUBJECT = "drugs/semaglutide"


@pytest.fixture
def live(
    run_server_process: Callable[..., Any], http: Callable[..., Resp], tmp_path: Path
) -> Iterator[Live]:
    server = run_server_process(AUTH_ENV)  # its data lives under tmp_path (serverkit)
    yield Live(server.url, http, tmp_path / "db" / "stemedb.db")


def registration(registrar: Agent, agent: Agent, tier: str, name: str) -> dict[str, Any]:
    return registrar.record("agent_tier", {"agent_id": agent.id, "max_tier": tier, "name": name})


def signed_claim(
    agent: Agent, predicate: str, value: str, tier: str, confidence: float, source: str
) -> dict[str, Any]:
    return make_assertion(
        agent.seed,
        SUBJECT,
        predicate,
        value,
        confidence,
        source_class=tier,
        source=source,
        now_s=T,
    )


def test_fifty_unregistered_regulatory_claims_lose_to_one_registered_regulator(
    live: Live,
) -> None:
    registrar, regulator = Agent(), Agent()
    clinicians = [Agent() for _ in range(10)]
    fakes = [Agent() for _ in range(50)]

    answer = live.ok(
        "POST",
        "/v1/admin/agents",
        registration(registrar, regulator, "Regulatory", "FDA label feed"),
        expect=201,
    )
    assert answer["status"] == "created"
    done = live.batch(
        [registration(registrar, c, "Clinical", "trial registry") for c in clinicians]
    )
    assert done["created"] == 10, done

    # Each claim differs in its source: identical signed content would be one record.
    records = [signed_claim(regulator, "risk", "warning", "Regulatory", 0.9, "fda://label/2024")]
    for predicate in ("risk", "risk_without_regulator"):
        records += [
            signed_claim(c, predicate, "no_signal", "Clinical", 0.9, f"pubmed://{i}")
            for i, c in enumerate(clinicians)
        ]
        records += [
            signed_claim(f, predicate, "no_risk", "Regulatory", 1.0, f"fda://anything/{i}")
            for i, f in enumerate(fakes)
        ]
    assert live.batch(records)["created"] == len(records)

    # The registered regulator wins; the 50 fakes compete as Observational and lose.
    result = live.lens("risk", "authority")
    assert result["winner"]["agent_id"] == regulator.id
    assert result["winner"]["object"]["value"] == "warning"
    assert result["tier_name"] == "Regulatory"
    capped = [line for line in result["explanation"] if CAPPED in line["why"]]
    assert len(capped) == 50 and all(line["excluded"] == "tier" for line in capped)
    assert len(result["tier_caps"]) == 50
    assert {c["effective"] for c in result["tier_caps"]} == {"Observational"}

    # Without the regulator, the ten registered clinical sources beat the 50 capped claims.
    result = live.lens("risk_without_regulator", "authority")
    assert result["winner"]["object"]["value"] == "no_signal"
    assert result["tier_name"] == "Clinical"
    assert sum(CAPPED in line["why"] for line in result["explanation"]) == 50
    for lens in ("best", "layered"):
        assert live.lens("risk_without_regulator", lens)["winner"]["object"]["value"] == "no_signal"

    # Skeptic counts the fakes at their effective tier, and the tier filters use it too.
    skeptic = live.ok("GET", f"/v1/skeptic?subject={SUBJECT}&predicate=risk_without_regulator")
    by_value = {c["object"]["value"]: c for c in skeptic["claims"]}
    assert by_value["no_risk"]["tiers"] == {"Observational": 50}
    assert by_value["no_signal"]["tiers"] == {"Clinical": 10}
    only_regulators = live.lens("risk", "authority", source_class="Regulatory")
    assert only_regulators["candidates_count"] == 1
    assert only_regulators["winner"]["agent_id"] == regulator.id
    observational = live.lens("risk", "recency", source_class="Observational")
    assert observational["candidates_count"] == 50

    # Visible to operators: every capped candidate served is counted.
    metrics = live.call("GET", "/metrics").body.decode()
    (line,) = [m for m in metrics.splitlines() if m.startswith("stemedb_tier_capped_candidates")]
    assert float(line.split()[-1]) >= 50 * 6

    # Journaled as written: the stored claim still says Regulatory.
    stored = live.ok("GET", f"/v1/assertions/{result['tier_caps'][0]['hash']}")
    assert stored["source_class"] == "Regulatory"


def test_only_admins_register_agents_on_every_write_path(live: Live) -> None:
    writer = live.new_key("writer")
    registrar, agent = Agent(), Agent()
    record = registration(registrar, agent, "Regulatory", "self-promoted")
    journal_before = sqlite_count(live.db, "journal")

    refused = live.call("POST", "/v1/admin/agents", record, key=writer)
    assert refused.status == 403, refused.body[:300]
    assert refused.error["code"] == "forbidden"

    batch = live.batch([{**record, "kind": "agent_tier"}], key=writer)
    assert batch["created"] == 0 and batch["rejected"] == 1, batch
    assert batch["results"][0]["error"]["code"] == "forbidden"

    ndjson = live.http(
        live.url,
        "POST",
        "/v1/assert/batch",
        (json.dumps({**record, "kind": "agent_tier"}) + "\n").encode(),
        headers={"X-API-Key": writer, "Content-Type": "application/x-ndjson"},
    )
    assert ndjson.status == 200 and ndjson.json["rejected"] == 1, ndjson.body[:300]
    assert ndjson.json["results"][0]["error"]["code"] == "forbidden"

    assert sqlite_count(live.db, "journal") == journal_before
    assert live.ok("GET", "/v1/admin/agents")["agents"] == []
    reader = live.new_key("reader")
    assert live.call("GET", "/v1/admin/agents", key=reader).status == 403


def test_registrations_are_listed_and_a_later_one_replaces_the_earlier(live: Live) -> None:
    registrar, agent = Agent(), Agent()
    live.ok(
        "POST", "/v1/admin/agents", registration(registrar, agent, "Regulatory", "EMA"), expect=201
    )
    listed = live.ok("GET", "/v1/admin/agents")
    assert listed["unregistered_max_tier"] == "Observational"
    assert [(a["agent_id"], a["max_tier"], a["name"]) for a in listed["agents"]] == [
        (agent.id, "Regulatory", "EMA")
    ]
    assert listed["agents"][0]["registered_by"] == registrar.id

    claim = signed_claim(agent, "dose", "1mg", "Regulatory", 0.9, "ema://x")
    assert live.batch([claim])["created"] == 1
    assert "tier_caps" not in live.lens("dose", "authority")

    # Demoted: the same agent registered again, for Expert. Its claim is now capped.
    demotion = registrar.record(
        "agent_tier", {"agent_id": agent.id, "max_tier": "Expert", "timestamp": T + 10}
    )
    live.ok("POST", "/v1/admin/agents", demotion, expect=201)
    detail = live.ok("GET", f"/v1/admin/agents/{agent.id}")
    assert detail["agent"]["max_tier"] == "Expert"
    assert [h["max_tier"] for h in detail["history"]] == ["Regulatory", "Expert"]
    result = live.lens("dose", "authority")
    assert result["tier_caps"][0]["effective"] == "Expert"
    assert "capped to Expert: agent" in result["explanation"][0]["why"]

    missing = live.call("GET", f"/v1/admin/agents/{Agent().id}")
    assert missing.status == 404 and missing.error["code"] == "not_found"
    assert live.call("GET", "/v1/admin/agents/nothex").status == 400


def test_known_at_replays_the_registry_as_it_stood(tmp_path: Path) -> None:
    """A registration written after T does not uncap a claim in a `known_at=T` read."""
    conn = schema.connect(tmp_path / "r.db")
    schema.apply_migrations(conn)
    agent = "ab" * 32
    for seq, (tier, written_ms) in enumerate([("Clinical", 1_000), ("Regulatory", 5_000)], 1):
        record = {"agent_id": agent, "max_tier": tier, "timestamp": 1, "kind": "agent_tier"}
        agent_tiers.apply(conn, seq, "agent_tier", bytes([seq]) * 32, record, written_ms)
    raw = bytes.fromhex(agent)
    assert agent_tiers.registered_tiers(conn, [raw]) == {raw: 0}
    assert agent_tiers.registered_tiers(conn, [raw], known_at_ms=4_999) == {raw: 1}
    assert agent_tiers.registered_tiers(conn, [raw], known_at_ms=999) == {}
    conn.close()


def _demo(live: Live, api_key: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STEMEDB_")}
    env.update(STEMEDB_URL=live.url, STEMEDB_API_KEY=api_key)
    return subprocess.run(
        [sys.executable, "-m", "stemedb.cli.main", "demo"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_demo_registers_its_agents_with_an_admin_key_and_warns_without(live: Live) -> None:
    subject = {"subject": demo_data.SUBJECT, "predicate": demo_data.PREDICATE}
    ids = demo_data.build().ids

    as_writer = _demo(live, live.new_key("writer"))
    assert as_writer.returncode == 0, as_writer.stderr
    assert "tiers were not registered" in as_writer.stderr
    assert live.ok("GET", "/v1/admin/agents")["agents"] == []
    capped = live.ok("POST", "/v1/query", {**subject, "lens": "authority"})["results"][0]
    assert {c["hash"] for c in capped["tier_caps"]} == {ids["A"], ids["B"], ids["D"]}

    as_admin = _demo(live, ROOT)
    assert as_admin.returncode == 0, as_admin.stderr
    assert "not registered" not in as_admin.stderr
    registered = {
        a["agent_id"]: a["max_tier"] for a in live.ok("GET", "/v1/admin/agents")["agents"]
    }
    agents = demo_data.build().agents
    assert registered == {
        agents["A"]: "Regulatory",
        agents["B"]: "Clinical",
        agents["D"]: "Clinical",
    }
    result = live.ok("POST", "/v1/query", {**subject, "lens": "authority"})["results"][0]
    assert result["winner"]["hash"] == ids["A"] and "tier_caps" not in result


# ---- in process: co-signers, the scheme cap, the setting, rebuilds -------------------


def _authority(app: Any, predicate: str) -> dict[str, Any]:
    resp = app.client.simulate_get(
        "/v1/query", params={"subject": SUBJECT, "predicate": predicate, "lens": "authority"}
    )
    assert resp.status_code == 200, resp.text
    result: dict[str, Any] = resp.json["results"][0]
    return result


def _write(app: Any, path: str, record: dict[str, Any]) -> str:
    resp = app.client.simulate_post(path, json=record)
    assert resp.status_code == 201, resp.text
    return str(resp.json["hash"])


def test_a_registered_co_signer_lends_its_tier_and_a_rebuild_agrees(
    secure_app: Callable[..., Any],
) -> None:
    app = secure_app()
    registrar = Agent()
    first, second = sorted((Agent(), Agent()), key=lambda a: a.id)  # `second` is no agent_id
    _write(app, "/v1/admin/agents", registration(registrar, second, "Regulatory", "EMA"))
    unsigned = {
        "subject": SUBJECT,
        "predicate": "cosigned",
        "object": "yes",
        "confidence": 0.9,
        "source_class": "Regulatory",
    }
    cosigned = sign_record("assertion", unsigned, [first.seed, second.seed], now_s=T)
    alone = sign_record("assertion", {**unsigned, "object": "no"}, [first.seed], now_s=T)
    cosigned_hash = _write(app, "/v1/assert", cosigned)
    alone_hash = _write(app, "/v1/assert", alone)

    result = _authority(app, "cosigned")
    assert result["winner"]["hash"] == cosigned_hash
    assert result["winner"]["agent_id"] == first.id  # the first signer is not the registered one
    assert [c["hash"] for c in result["tier_caps"]] == [alone_hash]

    # The registry is a projection like the others: a rebuild from the journal is identical.
    report = verify(app.settings.db_path, full=True)
    assert report.ok, report.to_dict()
    assert {
        "check": "count_agent_tiers",
        "ok": True,
        "detail": "1 agent_tier frames, 1 rows in agent_tiers",
    } in report.checks


def test_a_claim_is_capped_to_what_its_own_source_scheme_allows(
    secure_app: Callable[..., Any],
) -> None:
    app = secure_app()
    agent = Agent()
    blog = signed_claim(agent, "scheme", "v", "Clinical", 0.9, "blog://my-post")
    study = signed_claim(agent, "scheme", "w", "Observational", 0.5, "study://s")
    _write(app, "/v1/assert", blog)
    _write(app, "/v1/assert", study)
    result = _authority(app, "scheme")
    assert result["winner"]["object"]["value"] == "w"
    (cap,) = result["tier_caps"]
    assert cap["effective"] == "Anecdotal"
    assert cap["why"] == (
        "declared Clinical, capped to Anecdotal: source scheme 'blog' allows at most Anecdotal"
    )


def test_the_ceiling_is_a_setting(secure_app: Callable[..., Any]) -> None:
    trusting = secure_app(STEMEDB_UNREGISTERED_MAX_TIER="Regulatory")
    strict = secure_app(STEMEDB_UNREGISTERED_MAX_TIER="Expert")
    agent = Agent()
    claim = signed_claim(agent, "ceiling", "v", "Clinical", 0.9, "pubmed://1")
    for app in (trusting, strict):
        _write(app, "/v1/assert", claim)
    assert "tier_caps" not in _authority(trusting, "ceiling")
    assert _authority(strict, "ceiling")["tier_caps"][0]["effective"] == "Expert"
    listed = strict.client.simulate_get("/v1/admin/agents").json
    assert listed["unregistered_max_tier"] == "Expert"


def test_the_registry_listing_pages_by_agent_id(secure_app: Callable[..., Any]) -> None:
    app = secure_app()
    registrar = Agent()
    agents = sorted((Agent() for _ in range(3)), key=lambda a: a.id)
    for agent in agents:
        _write(app, "/v1/admin/agents", registration(registrar, agent, "Expert", "x"))
    first = app.client.simulate_get("/v1/admin/agents", params={"limit": "2"}).json
    assert [a["agent_id"] for a in first["agents"]] == [a.id for a in agents[:2]]
    assert first["next_cursor"] == agents[1].id
    rest = app.client.simulate_get(
        "/v1/admin/agents", params={"limit": "2", "after": first["next_cursor"]}
    ).json
    assert [a["agent_id"] for a in rest["agents"]] == [agents[2].id]
    assert rest["next_cursor"] is None
    bad = app.client.simulate_get("/v1/admin/agents", params={"after": "zz"})
    assert bad.status_code == 400 and bad.json["error"]["details"][0]["field"] == "after"


def test_doctor_warns_when_high_tier_claims_exist_but_no_agent_is_registered(
    secure_app: Callable[..., Any],
) -> None:
    app = secure_app()
    (empty,) = check_tier_registry(app.settings)
    assert empty.status == "ok" and empty.detail.startswith("0 claims")

    regulator = Agent()
    _write(app, "/v1/assert", signed_claim(regulator, "d", "v", "Regulatory", 0.9, "fda://x"))
    (warned,) = check_tier_registry(app.settings)
    assert warned.status == "warn", warned
    assert warned.detail.startswith("1 claims declare a tier above Observational")
    assert "POST /v1/admin/agents" in warned.action

    _write(app, "/v1/admin/agents", registration(Agent(), regulator, "Regulatory", "FDA"))
    (fine,) = check_tier_registry(app.settings)
    assert fine.status == "ok" and fine.detail.startswith("0 claims"), fine


def test_known_at_before_a_registration_still_sees_the_cap(live: Live) -> None:
    """Time travel replays the registry: a reader at T saw the claim capped."""
    regulator = Agent()
    claim = signed_claim(regulator, "later", "v", "Regulatory", 0.9, "fda://y")
    stored = live.batch([claim])["results"][0]
    written_ms = live.ok("GET", f"/v1/assertions/{stored['hash']}")["written_at"]
    t = -(-written_ms // 1000)  # the first whole second at which the claim is known
    poll(lambda: time.time() * 1000 > t * 1000 + 5, timeout=3.0)  # register after T

    client = Client(live.url, api_key=ROOT, seed=Agent().seed)
    answer = client.admin_agents_register(regulator.id, "Regulatory", name="late")
    assert answer["status"] == "created"
    assert client.admin_agent(regulator.id)["agent"]["max_tier"] == "Regulatory"

    assert "tier_caps" not in live.lens("later", "authority")
    then = live.lens("later", "authority", known_at=t)
    assert then["tier_caps"][0]["effective"] == "Observational"


def _cli(live: Live, *args: str, api_key: str = ROOT) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STEMEDB_")}
    env.update(STEMEDB_URL=live.url, STEMEDB_API_KEY=api_key)
    return subprocess.run(
        [sys.executable, "-m", "stemedb.cli.main", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_agents_command_registers_lists_and_shows(live: Live, tmp_path: Path) -> None:
    admin, agent = Agent(), Agent()
    key_file = write_key_file(tmp_path / "admin.key", admin.seed)
    register = ("agents", "register", agent.id, "--tier", "Clinical", "--key", str(key_file))

    done = _cli(live, *register, "--name", "trial registry")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["status"] == "created"
    listed = _cli(live, "agents", "list", "--format", "table")
    assert listed.returncode == 0 and "Clinical" in listed.stdout
    assert agent.id[:40] in listed.stdout  # the table shortens long ids
    shown = json.loads(_cli(live, "agents", "show", agent.id).stdout)
    assert shown["agent"]["registered_by"] == admin.id

    refused = _cli(live, *register, api_key=live.new_key("writer"))
    assert refused.returncode == 1 and "403" in refused.stderr
    assert "Traceback" not in refused.stderr and len(refused.stderr.splitlines()) <= 2
    bad = _cli(live, "agents", "show", "nothex")
    assert bad.returncode == 2 and bad.stderr.startswith(
        "stemedb agents show: expected an agent id"
    )


def test_without_the_cap_the_fifty_fakes_win_as_they_did_before(
    secure_app: Callable[..., Any],
) -> None:
    """The old behaviour, kept as a setting: this is what the cap prevents."""
    app = secure_app(STEMEDB_UNREGISTERED_MAX_TIER="Regulatory")
    registrar, regulator = Agent(), Agent()
    _write(app, "/v1/admin/agents", registration(registrar, regulator, "Regulatory", "FDA"))
    records = [signed_claim(regulator, "old", "warning", "Regulatory", 0.9, "fda://label")]
    records += [
        signed_claim(Agent(), "old", "no_risk", "Regulatory", 1.0, f"fda://anything/{i}")
        for i in range(50)
    ]
    resp = app.client.simulate_post("/v1/assert/batch", json=records)
    assert resp.status_code == 200 and resp.json["created"] == 51, resp.text
    assert _authority(app, "old")["winner"]["object"]["value"] == "no_risk"
