"""Quarantine (issue 19 item 1) against a real server process.

The policy holds new assertions of distrusted agents (TrustRank below
STEMEDB_QUARANTINE_MIN_TRUST), of agents with no history
(STEMEDB_QUARANTINE_NEW_AGENT_S) and an agent's near-duplicate repeats
(STEMEDB_QUARANTINE_NEAR_DUPLICATES). Held assertions are journalled (the
write answers 201 with a `quarantine` object) but lenses skip them until an
admin's signed `quarantine_decision` releases them; `include_quarantined`
lets them compete and says so. No test edits or deletes a journal row: the
reindex check only rebuilds projections from the journal.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from e2ekit import Agent, Api, ServerFactory, poll, unique

from stemedb.config import load_settings
from stemedb.ops import doctor_quarantine
from stemedb.store import schema
from stemedb.store.verify import reindex, verify

NO_LIMITS = {"STEMEDB_RATE_LIMIT_WRITE": "0", "STEMEDB_RATE_LIMIT_READ": "0"}
POLICY = {
    **NO_LIMITS,
    "STEMEDB_QUARANTINE_MIN_TRUST": "0.45",
    "STEMEDB_QUARANTINE_NEAR_DUPLICATES": "true",
}
TRUE_VALUE, FALSE_VALUE = "7 mg", "70 mg"


def _claim(agent: Agent, subject: str, value: str, **fields: Any) -> dict[str, Any]:
    return agent.assertion(subject, "dose", value, 0.8, source=f"agent://{agent.id[:16]}", **fields)


def _consensus(api: Api, subject: str, **params: Any) -> dict[str, Any]:
    body = api.query(subject=subject, predicate="dose", lens="consensus", **params)
    assert len(body["results"]) == 1, body
    result: dict[str, Any] = body["results"][0]
    return result


def _value(result: dict[str, Any]) -> Any:
    return result["winner"]["object"]["value"] if result["winner"] else None


def _distrust(api: Api, admin: Agent, agent: Agent) -> None:
    """One inaccurate outcome: TrustRank 0.5 -> 0.4, below the policy's 0.45."""
    own = api.write("/v1/assert", _claim(agent, f"misc/{unique()}", "x"))
    outcome = admin.record("outcome", agent_id=agent.id, assertion_hash=own["hash"], accurate=False)
    api.write("/v1/outcome", outcome)


def _decision(admin: Agent, target: str, decision: str, reason: str) -> dict[str, Any]:
    return admin.record("quarantine_decision", target_hash=target, decision=decision, reason=reason)


def _quarantine_rows(db: Any) -> list[tuple[Any, ...]]:
    conn = schema.connect(db, readonly=True)
    try:
        return [
            tuple(row)
            for row in conn.execute(
                "SELECT seq, hex(hash), reason, detail, held_ms, decision, decided_seq,"
                " decided_ms, hex(decided_by), decision_reason FROM quarantine ORDER BY seq"
            )
        ]
    finally:
        conn.close()


def test_distrusted_agents_are_held_until_an_admin_decides(
    server_factory: ServerFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    srv = server_factory(POLICY)
    api = srv.api
    subject = f"drugs/{unique()}"
    admin = Agent()
    honest = [Agent(), Agent()]
    flood = [Agent(), Agent(), Agent()]
    for agent in flood:
        _distrust(api, admin, agent)
    for agent in honest:
        body = api.write("/v1/assert", _claim(agent, subject, TRUE_VALUE))
        assert "quarantine" not in body  # TrustRank 0.5: not held
    held = []
    for agent in flood:
        resp = api.post("/v1/assert", _claim(agent, subject, FALSE_VALUE))
        assert resp.status == 201, resp  # journalled and acknowledged...
        body = resp.json
        assert body["status"] == "created"
        assert body["quarantine"]["state"] == "held"  # ...but held, and told so
        assert body["quarantine"]["reason"] == "low_trust"
        assert "TrustRank 0.400" in body["quarantine"]["detail"]
        held.append(body["hash"])

    # Three distrusted voices against two: without quarantine the flood would win.
    result = _consensus(api, subject)
    assert _value(result) == TRUE_VALUE
    assert result["voices"] == 2
    assert "quarantined" in result and {q["hash"] for q in result["quarantined"]} == set(held)
    assert all(not q["counted"] for q in result["quarantined"])
    # On request they compete, and the explanation says which ones are held.
    with_held = _consensus(api, subject, include_quarantined=True)
    assert _value(with_held) == FALSE_VALUE and with_held["voices"] == 5
    notes = [e for e in with_held["explanation"] if "held in quarantine" in e["why"]]
    assert {e["hash"] for e in notes} == set(held)
    assert with_held["include_quarantined"] is True
    # skeptic and layered skip them too.
    skeptic = api.get_ok("/v1/skeptic", {"subject": subject, "predicate": "dose"})
    assert [c["object"]["value"] for c in skeptic["claims"]] == [TRUE_VALUE]
    layered = api.get_ok("/v1/layered", {"subject": subject, "predicate": "dose"})
    assert layered["winner"]["object"]["value"] == TRUE_VALUE

    # The admin queue lists them with the reason.
    queue = api.get_ok("/v1/admin/quarantine")
    mine = [r for r in queue["records"] if r["hash"] in held]
    assert len(mine) == 3 and {r["reason"] for r in mine} == {"low_trust"}
    assert queue["held"] >= 3 and queue["policy"]["min_trust"] == 0.45

    before_release_s = int(time.time()) + 1  # after every write so far
    poll(lambda: time.time() >= before_release_s + 0.05)  # and before the decisions
    # Release one (signed, journalled), reject another.
    released = api.post(
        f"/v1/admin/quarantine/{held[0]}/release",
        _decision(admin, held[0], "release", "checked by hand"),
    )
    assert released.status == 201, released
    rejected = api.post(
        f"/v1/admin/quarantine/{held[1]}/reject", _decision(admin, held[1], "reject", "spam")
    )
    assert rejected.status == 201, rejected
    result = _consensus(api, subject)
    assert result["voices"] == 3 and _value(result) == TRUE_VALUE  # 2 honest, 1 released
    assert held[0] in {e["hash"] for e in result["explanation"]}
    states = {q["hash"]: q["state"] for q in result["quarantined"]}
    assert states == {held[1]: "rejected", held[2]: "held"}
    # A rejected record stays out even on request; a held one comes in.
    with_held = _consensus(api, subject, include_quarantined=True)
    assert held[1] not in {e["hash"] for e in with_held["explanation"]}
    assert with_held["voices"] == 4
    # known_at before the decisions: all three were held then.
    past = _consensus(api, subject, known_at=before_release_s)
    assert past["voices"] == 2 and len(past["quarantined"]) == 3
    assert {q["state"] for q in past["quarantined"]} == {"held"}

    # A record is decided once; the route and the body must agree; unknown: 404.
    again = api.post(
        f"/v1/admin/quarantine/{held[0]}/reject", _decision(admin, held[0], "reject", "x")
    )
    assert again.status == 400 and again.error["details"][0]["field"] == "target_hash"
    mismatch = api.post(
        f"/v1/admin/quarantine/{held[2]}/release", _decision(admin, held[2], "reject", "x")
    )
    assert mismatch.status == 400 and mismatch.error["details"][0]["field"] == "decision"
    unknown = "ab" * 32
    missing = api.post(
        f"/v1/admin/quarantine/{unknown}/release", _decision(admin, unknown, "release", "x")
    )
    assert missing.status == 404
    listing = api.get_ok("/v1/admin/quarantine", {"state": "all"})
    by_hash = {r["hash"]: r for r in listing["records"]}
    assert by_hash[held[0]]["state"] == "released"
    assert by_hash[held[0]]["decided_by"] == admin.id
    assert by_hash[held[1]]["decision_reason"] == "spam"
    trace = api.get_ok(f"/v1/trace/{held[1]}")
    assert (
        trace["quarantine"]["state"] == "rejected" and trace["quarantine"]["reason"] == "low_trust"
    )

    # The decisions are journal records, and a reindex rebuilds the same table.
    srv.proc.stop()
    live = _quarantine_rows(srv.db_path)
    assert len(live) == 3
    report = verify(srv.db_path, full=True)  # the frame checks know the new kind
    assert report.ok, [c for c in report.checks if not c["ok"]]
    reindex(srv.db_path)
    assert _quarantine_rows(srv.db_path) == live

    # doctor: one record still held; a long queue is a warning naming the runbook.
    settings = load_settings({**POLICY, "STEMEDB_DB_DIR": str(srv.db_path.parent)})
    [finding] = doctor_quarantine.check_quarantine(settings)
    assert finding.status == "ok" and finding.detail.startswith("1 records held"), finding
    monkeypatch.setattr(doctor_quarantine, "BACKLOG", 1)
    [finding] = doctor_quarantine.check_quarantine(settings)
    assert finding.status == "warn" and "runbooks/abuse.md" in finding.action
    other = load_settings({"STEMEDB_DB_DIR": str(srv.db_path.parent)})
    assert "applies from the next start" in doctor_quarantine.check_quarantine(other)[0].detail


def test_near_duplicate_repeats_are_held(server_factory: ServerFactory) -> None:
    api = server_factory(POLICY).api
    subject = f"drugs/{unique()}"
    agent, other = Agent(), Agent()
    now = int(time.time())
    first = api.write("/v1/assert", _claim(agent, subject, "Nausea", timestamp=now - 20))
    assert "quarantine" not in first
    # The same claim, trivially varied, seconds later: held, naming the original.
    repeat = api.write("/v1/assert", _claim(agent, subject, " nausea. ", timestamp=now - 10))
    assert repeat["quarantine"]["reason"] == "near_duplicate"
    assert first["hash"][:12] in repeat["quarantine"]["detail"]
    # Another value, or another agent's same value, is not a repeat.
    different = api.write("/v1/assert", _claim(agent, subject, "headache", timestamp=now - 5))
    assert "quarantine" not in different
    assert "quarantine" not in api.write("/v1/assert", _claim(other, subject, "NAUSEA"))
    # In a batch too: the item says so.
    body = api.batch([_claim(agent, subject, "Headache!", timestamp=now)])
    [item] = body["results"]
    assert item["status"] == "created" and item["quarantine"]["reason"] == "near_duplicate"


def test_agents_without_history_are_held_until_old_enough(server_factory: ServerFactory) -> None:
    api = server_factory({**NO_LIMITS, "STEMEDB_QUARANTINE_NEW_AGENT_S": "1"}).api
    subject = f"drugs/{unique()}"
    agent = Agent()
    first = api.write("/v1/assert", _claim(agent, subject, TRUE_VALUE))
    assert first["quarantine"]["reason"] == "new_agent"
    assert "STEMEDB_QUARANTINE_NEW_AGENT_S=1" in first["quarantine"]["detail"]
    # Its only claim is held: no candidate competes, so the pair has no answer.
    assert api.query(subject=subject, predicate="dose", lens="consensus")["results"] == []
    assert _value(_consensus(api, subject, include_quarantined=True)) == TRUE_VALUE
    # Once the agent has a second of history its writes count at once.
    count = iter(range(1000))

    def not_held() -> bool:
        record = _claim(agent, f"{subject}/{next(count)}", TRUE_VALUE)
        return "quarantine" not in api.write("/v1/assert", record)

    poll(not_held, timeout=10.0, interval=0.2)


def test_off_by_default_nothing_is_held(server_factory: ServerFactory) -> None:
    srv = server_factory(NO_LIMITS)
    api = srv.api
    subject = f"drugs/{unique()}"
    agent = Agent()
    now = int(time.time())
    api.write("/v1/assert", _claim(agent, subject, "Nausea", timestamp=now - 5))
    repeat = api.write("/v1/assert", _claim(agent, subject, "nausea", timestamp=now))
    assert "quarantine" not in repeat
    queue = api.get_ok("/v1/admin/quarantine")
    assert queue["held"] == 0 and queue["records"] == []
    srv.proc.stop()
    conn = schema.connect(srv.db_path, readonly=True)
    try:  # no policy row is written while every rule is off
        assert list(conn.execute("SELECT count(*) FROM quarantine_policy")) == [(0,)]
    finally:
        conn.close()


def test_only_admins_decide(server_factory: ServerFactory) -> None:
    root = "0123456789abcdef0123456789abcdef-quarantine"
    srv = server_factory({**POLICY, "STEMEDB_AUTH_ENABLED": "true", "STEMEDB_ROOT_API_KEY": root})
    api = srv.api
    admin_headers = {"X-API-Key": root}
    writer = api.ok(
        "POST", "/v1/admin/keys", {"role": "writer"}, expect=201, headers=admin_headers
    )["api_key"]
    agent = Agent()
    now = int(time.time())
    subject = f"drugs/{unique()}"
    for offset, value in ((10, "Nausea"), (0, "nausea")):
        resp = api.post(
            "/v1/assert",
            _claim(agent, subject, value, timestamp=now - offset),
            headers={"X-API-Key": writer},
        )
        assert resp.status == 201, resp
    target = resp.json["hash"]
    assert resp.json["quarantine"]["reason"] == "near_duplicate"
    decision = _decision(agent, target, "release", "mine")
    refused = api.post(
        f"/v1/admin/quarantine/{target}/release", decision, headers={"X-API-Key": writer}
    )
    assert refused.status == 403
    in_batch = api.post(
        "/v1/assert/batch",
        [{**decision, "kind": "quarantine_decision"}],
        headers={"X-API-Key": writer},
    )
    assert in_batch.json["results"][0]["error"]["code"] == "forbidden"
    assert api.get("/v1/admin/quarantine", headers={"X-API-Key": writer}).status == 403
    ok = api.post(f"/v1/admin/quarantine/{target}/release", decision, headers=admin_headers)
    assert ok.status == 201, ok
