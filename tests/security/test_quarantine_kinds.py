"""Quarantine holds votes, supersessions, aliases and epochs too (issue 19 leftover).

Holding only assertions left a door open: a flood of fresh or distrusted
agents could not add claims, but could vote an existing value up. Now every
kind a writer may send that changes answers is subject to the policy's
new-agent and trust rules. A held vote is journalled (201, told so) but
projected nowhere — no vote total, so the `votes` lens ignores it — until an
admin releases it; `known_at` before the release still sees no vote; a
rejected one never counts; `reindex` rebuilds the same state.
"""

from __future__ import annotations

import time
from typing import Any

from e2ekit import Agent, Api, ServerFactory, poll, unique

from stemedb.store import schema
from stemedb.store.verify import reindex

NO_LIMITS = {"STEMEDB_RATE_LIMIT_WRITE": "0", "STEMEDB_RATE_LIMIT_READ": "0"}
POLICY = {**NO_LIMITS, "STEMEDB_QUARANTINE_MIN_TRUST": "0.45"}


def _claim(agent: Agent, subject: str, value: str) -> dict[str, Any]:
    return agent.assertion(subject, "dose", value, 0.8, source=f"agent://{agent.id[:16]}")


def _distrust(api: Api, admin: Agent, agent: Agent) -> None:
    """One inaccurate outcome: TrustRank 0.5 -> 0.4, below the policy's 0.45."""
    own = api.write("/v1/assert", _claim(agent, f"misc/{unique()}", "x"))
    outcome = admin.record("outcome", agent_id=agent.id, assertion_hash=own["hash"], accurate=False)
    api.write("/v1/outcome", outcome)


def _vote(agent: Agent, target: str) -> dict[str, Any]:
    return agent.record("vote", assertion_hash=target, weight=1.0)


def _votes_lens(api: Api, subject: str, **params: Any) -> dict[str, Any]:
    body = api.query(subject=subject, predicate="dose", lens="votes", **params)
    [result] = body["results"]
    return dict(result)


def _totals(result: dict[str, Any]) -> dict[str, str]:
    return {e["hash"]: e["why"] for e in result["explanation"]}


def _db_state(db: Any) -> tuple[list[Any], list[Any], list[Any]]:
    conn = schema.connect(db, readonly=True)
    try:
        return (
            list(conn.execute("SELECT seq, reason, decision, decided_seq FROM quarantine")),
            list(conn.execute("SELECT hex(assertion_hash), total FROM vote_totals ORDER BY 1")),
            list(conn.execute("SELECT alias, canonical FROM aliases ORDER BY 1")),
        )
    finally:
        conn.close()


def test_held_votes_do_not_count_until_released(server_factory: ServerFactory) -> None:
    srv = server_factory(POLICY)
    api = srv.api
    subject = f"drugs/{unique()}"
    admin, honest, other, voter = Agent(), Agent(), Agent(), Agent()
    flood = [Agent() for _ in range(3)]
    for agent in flood:
        _distrust(api, admin, agent)
    truth = api.write("/v1/assert", _claim(honest, subject, "7 mg"))["hash"]
    false = api.write("/v1/assert", _claim(other, subject, "70 mg"))["hash"]
    assert "quarantine" not in api.write("/v1/vote", _vote(voter, truth))

    held = []
    for agent in flood:
        resp = api.post("/v1/vote", _vote(agent, false))
        assert resp.status == 201, resp  # journalled and acknowledged, but held
        assert resp.json["quarantine"]["state"] == "held"
        assert resp.json["quarantine"]["reason"] == "low_trust"
        held.append(resp.json["hash"])
    # In a batch too.
    late = Agent()
    _distrust(api, admin, late)
    [item] = api.batch([_vote(late, false) | {"kind": "vote"}])["results"]
    assert item["quarantine"]["reason"] == "low_trust"

    # Four distrusted votes against one: without quarantine "70 mg" would win.
    result = _votes_lens(api, subject)
    assert result["winner"]["hash"] == truth
    assert _totals(result)[false].startswith("no votes (total 0)")
    queue = api.get_ok("/v1/admin/quarantine")
    votes = [r for r in queue["records"] if r["hash"] in held]
    assert {r["kind"] for r in votes} == {"vote"} and len(votes) == 3
    assert {(r["subject"], r["predicate"]) for r in votes} == {(subject, "dose")}

    before_release_s = int(time.time()) + 1
    poll(lambda: time.time() >= before_release_s + 0.05)
    for target, decision in ((held[0], "release"), (held[1], "release"), (held[2], "reject")):
        record = admin.record(
            "quarantine_decision", target_hash=target, decision=decision, reason="checked"
        )
        resp = api.post(f"/v1/admin/quarantine/{target}/{decision}", record)
        assert resp.status == 201, resp
    # Two released votes count now (2 against 1); the rejected and the held one do not.
    result = _votes_lens(api, subject)
    assert result["winner"]["hash"] == false
    assert "vote total 2" in _totals(result)[false]
    # A reader before the release saw no vote on it.
    past = _votes_lens(api, subject, known_at=before_release_s)
    assert past["winner"]["hash"] == truth

    # An alias from a distrusted agent is held too: no alias until released.
    alias = f"aliases/{unique()}"
    held_alias = api.write("/v1/aliases", flood[0].record("alias", alias=alias, canonical=subject))
    assert held_alias["quarantine"]["reason"] == "low_trust"
    assert api.get_ok(f"/v1/aliases/{alias}")["canonical"] == alias  # not resolved
    release = admin.record(
        "quarantine_decision", target_hash=held_alias["hash"], decision="release", reason="ok"
    )
    api.write(f"/v1/admin/quarantine/{held_alias['hash']}/release", release)
    assert api.get_ok(f"/v1/aliases/{alias}")["canonical"] == subject

    # Journal state only: a reindex rebuilds the same holds, totals and aliases.
    srv.proc.stop()
    live = _db_state(srv.db_path)
    assert len(live[0]) == 5
    reindex(srv.db_path)
    assert _db_state(srv.db_path) == live


def test_new_agents_votes_are_held_and_established_ones_are_not(
    server_factory: ServerFactory,
) -> None:
    api = server_factory({**NO_LIMITS, "STEMEDB_QUARANTINE_NEW_AGENT_S": "1"}).api
    subject = f"drugs/{unique()}"
    author = Agent()
    first = api.write("/v1/assert", _claim(author, subject, "7 mg"))
    assert first["quarantine"]["reason"] == "new_agent"
    fresh = api.write("/v1/vote", _vote(Agent(), first["hash"]))
    assert fresh["quarantine"]["reason"] == "new_agent"
    # The author, a second older, votes and is counted at once.
    count = iter(range(1000))

    def counted() -> bool:
        body = api.write(
            "/v1/vote",
            author.record("vote", assertion_hash=first["hash"], weight=0.5 + next(count) / 10_000),
        )
        return "quarantine" not in body

    poll(counted, timeout=10.0, interval=0.2)
