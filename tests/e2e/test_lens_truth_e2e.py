"""`lens=truth` over HTTP (issue 18): reliability learned from the agents' other claims,
copiers discounted, and the answer at `as_of` / `known_at` T untouched by what came later.
"""

from __future__ import annotations

import random
import time
from typing import Any

from e2ekit import Agent, Api, unique

from stemedb.store import schema
from stemedb.store.verify import reindex

T1 = 1_700_000_000
HONEST = [f"h{i}" for i in range(1, 9)]
COPY_GROUP = ["orig", "c1", "c2", "c3"]


def _agents() -> dict[str, Agent]:
    """Fixed keys, so every run sorts the agents the same way."""
    names = [*HONEST, *COPY_GROUP]
    return {name: Agent(seed=bytes([i + 1]) * 32) for i, name in enumerate(names)}


def _world(root: str, agents: dict[str, Agent]) -> list[dict[str, Any]]:
    """Eight good agents on 70 % of 16 pairs; a poor original and three copiers (85 %).
    On the asked pair (`root/asked`, `dose`) three good agents face the four others."""
    rng = random.Random(18)
    records = []
    for p in range(16):
        subject, ts = f"{root}/e{p}", T1 - 10_000 + p * 10
        for i, h in enumerate(HONEST):
            if rng.random() < 0.7:
                said = "t" if rng.random() < 0.85 else f"w{rng.randrange(6)}"
                records.append(agents[h].assertion(subject, "dose", said, timestamp=ts + i))
        original = "t" if rng.random() < 0.3 else f"w{rng.randrange(6)}"
        records.append(agents["orig"].assertion(subject, "dose", original, timestamp=ts))
        for j, c in enumerate(COPY_GROUP[1:]):
            said = original if rng.random() < 0.85 else f"w{rng.randrange(6)}"
            records.append(agents[c].assertion(subject, "dose", said, timestamp=ts + 1 + j))
    asked = f"{root}/asked"
    for i, name in enumerate(["h1", "h2", "h3"]):
        records.append(agents[name].assertion(asked, "dose", "good", timestamp=T1 - 100 + i))
    for i, name in enumerate(COPY_GROUP):
        records.append(agents[name].assertion(asked, "dose", "bad", timestamp=T1 - 50 + i))
    return records


def _later(root: str, agents: dict[str, Agent]) -> list[dict[str, Any]]:
    """After T1: on 30 new pairs everyone but h1-h3 agrees, and h1-h3 are each wrong."""
    records = []
    for p in range(30):
        subject, ts = f"{root}/late{p}", T1 + 1_000 + p * 10
        for i, name in enumerate([*HONEST[3:], *COPY_GROUP]):
            records.append(agents[name].assertion(subject, "dose", "t", timestamp=ts + i))
        for i, name in enumerate(HONEST[:3]):
            records.append(agents[name].assertion(subject, "dose", f"x{p}-{i}", timestamp=ts + 9))
    return records


def _answer(api: Api, root: str, lens: str = "truth", **when: int) -> dict[str, Any]:
    body = api.query(subject=f"{root}/asked", predicate="dose", lens=lens, **when)
    (group,) = body["results"]
    assert isinstance(group, dict)
    return group


def _value(group: dict[str, Any]) -> str:
    return str(group["winner"]["object"]["value"])


def test_truth_over_http_discounts_copiers_and_is_time_correct(server_factory: Any) -> None:
    srv = server_factory({"STEMEDB_NEW_AGENTS_PER_HOUR": "0"})
    api = srv.api
    root, agents = unique("truth"), _agents()
    api.batch_ok(_world(root, agents))

    assert _value(_answer(api, root, "consensus")) == "bad"  # four voices beat three
    first = _answer(api, root, as_of=T1)
    assert _value(first) == "good"
    info = first["truth"]
    assert info["pairs"] == 17 and info["bounded"] is False
    assert info["source"] == "neighbourhood"  # an as_of query learns from what it reads
    h1 = info["agents"][agents["h1"].id]
    assert h1["reliability"] > 0.75 > info["agents"][agents["c1"].id]["reliability"]
    assert h1["evidence"] >= 2
    assert {frozenset(c["agents"]) for c in info["copying"]} >= {
        frozenset({agents["orig"].id, agents["c1"].id})
    }
    assert "reliability" in first["explanation"][0]["why"]
    newest = _answer(api, root, "epoch", as_of=T1)  # inner recency: the copiers spoke last
    body = api.query(
        subject=f"{root}/asked", predicate="dose", lens="epoch", inner="truth", as_of=T1
    )
    assert _value(newest) == "bad" and _value(body["results"][0]) == "good"
    assert 0.5 < first["resolution_confidence"] <= 1.0

    # A system time after the first batch, and strictly before the next one.
    known = int(time.time()) + 1
    while time.time() < known + 0.01:
        time.sleep(0.01)
    at_known = _answer(api, root, known_at=known)
    api.batch_ok(_later(root, agents))

    # Now h1-h3 look unreliable and the answer moves...
    now = _answer(api, root)
    assert _value(now) == "bad"
    assert now["truth"]["source"] == "table" and now["truth"]["pairs"] == 1  # the head
    learned = now["truth"]["agents"][agents["h1"].id]
    assert learned["reliability"] < 0.5
    # the agent page shows the same learned reliability, beside TrustRank
    page = api.get_ok(f"/v1/agents/{agents['h1'].id}")
    assert page["reliability"]["accuracy"] == learned["reliability"]
    assert page["reliability"]["pairs"] == learned["evidence"] and "trust" in page
    good = api.get_ok(f"/v1/agents/{agents['h4'].id}")["reliability"]
    assert good["accuracy"] > 0.75 > page["reliability"]["accuracy"]
    # ...but at as_of T1 and at known_at before the later batch it is what it was.
    for before, again in (
        (first, _answer(api, root, as_of=T1)),
        (at_known, _answer(api, root, known_at=known)),
    ):
        assert again == before
    assert _value(at_known) == "good"


def test_truth_is_a_listed_lens_and_bad_names_are_refused(server_factory: Any) -> None:
    api = server_factory().api
    resp = api.post("/v1/query", {"subject": "a/b", "lens": "truthy"})
    assert resp.status == 400
    assert "truth" in resp.error["message"].split("valid lenses:")[1].split(", ")
    assert api.query(subject="nothing/here", lens="truth")["results"] == []


def test_truth_tolerance_is_validated_and_applied(server_factory: Any) -> None:
    api = server_factory({"STEMEDB_NEW_AGENTS_PER_HOUR": "0"}).api
    root, agents = unique("tol"), _agents()
    records = [
        agents["h1"].assertion(f"{root}/x", "dose", 100.0, timestamp=T1),
        agents["h2"].assertion(f"{root}/x", "dose", 100.5, timestamp=T1 + 1),
        agents["h3"].assertion(f"{root}/x", "dose", 99.8, timestamp=T1 + 2),
        agents["c1"].assertion(f"{root}/x", "dose", 150.0, timestamp=T1 + 3),
        agents["c2"].assertion(f"{root}/x", "dose", 150.0, timestamp=T1 + 4),
    ]
    api.batch_ok(records)
    ask = {"subject": f"{root}/x", "predicate": "dose", "lens": "truth"}
    exact = api.post("/v1/query", {**ask, "truth_tolerance": 0}).json["results"][0]
    close = api.post("/v1/query", ask).json["results"][0]  # the default: 1 %
    assert exact["winner"]["object"]["value"] == 150.0
    assert close["winner"]["object"]["value"] != 150.0 and close["truth"]["tolerance"] == 0.01
    for bad in ({**ask, "truth_tolerance": 2}, {**ask, "truth_tolerance": "x"}):
        resp = api.post("/v1/query", bad)
        assert resp.status == 400 and "truth_tolerance" in str(resp.error)
    resp = api.post("/v1/query", {**ask, "lens": "recency", "truth_tolerance": 0.1})
    assert resp.status == 400 and resp.error["details"][0]["field"] == "truth_tolerance"


def test_held_votes_reach_the_truth_table_only_when_released(server_factory: Any) -> None:
    """A vote the quarantine holds is no evidence for `truth` until an admin releases
    it; the table after a reindex is the same."""
    srv = server_factory(
        {
            "STEMEDB_RATE_LIMIT_WRITE": "0",
            "STEMEDB_RATE_LIMIT_READ": "0",
            "STEMEDB_QUARANTINE_MIN_TRUST": "0.45",
        }
    )
    api, subject = srv.api, f"drugs/{unique()}"
    admin, author, voter = Agent(), Agent(), Agent()
    own = api.write("/v1/assert", voter.assertion(f"misc/{unique()}", "dose", "x"))
    bad = admin.record("outcome", agent_id=voter.id, assertion_hash=own["hash"], accurate=False)
    api.write("/v1/outcome", bad)  # TrustRank 0.4: the voter's votes are held
    target = api.write("/v1/assert", author.assertion(subject, "dose", "7 mg"))["hash"]
    vote = api.post("/v1/vote", voter.record("vote", assertion_hash=target, weight=1.0))
    assert vote.status == 201 and vote.json["quarantine"]["state"] == "held"

    def vote_voices() -> list[Any]:
        conn = schema.connect(srv.db_path, readonly=True)
        try:
            sql = "SELECT hex(agent_id), value_key FROM truth_voices WHERE kind = 1"
            return list(conn.execute(sql))
        finally:
            conn.close()

    assert vote_voices() == []
    release = admin.record(
        "quarantine_decision", target_hash=vote.json["hash"], decision="release", reason="ok"
    )
    assert api.post(f"/v1/admin/quarantine/{vote.json['hash']}/release", release).status == 201
    assert [(a.lower(), v) for a, v in vote_voices()] == [
        (voter.id, '{"type":"Text","value":"7 mg"}')
    ]
    srv.proc.stop()
    live = vote_voices()
    reindex(srv.db_path)
    assert vote_voices() == live
