"""Near-duplicates from a cluster of agents count once (issue 19 item 2, leftover).

A cluster is the agents one (non-admin) writer API key introduced to the
journal (the `agent_clusters` table, written by the new-agent check). When
several agents of one cluster make the same claim (same pair, same value up
to trivial variations, claim times within 300 s), consensus counts the
cluster once, skeptic names the repeats with the cluster's label, and trace
lists the cluster-mates' copies. Agents of different keys — and agents with
no cluster (admin keys, auth off) — are never merged, however much they agree.
"""

from __future__ import annotations

import time
from typing import Any

from e2ekit import Agent, Api, ServerFactory, unique

ROOT = "0123456789abcdef0123456789abcdef-clusters"
ENV = {
    "STEMEDB_RATE_LIMIT_WRITE": "0",
    "STEMEDB_RATE_LIMIT_READ": "0",
    "STEMEDB_AUTH_ENABLED": "true",
    "STEMEDB_ROOT_API_KEY": ROOT,
}
ADMIN = {"X-API-Key": ROOT}


def _writer(api: Api) -> dict[str, str]:
    body = api.ok("POST", "/v1/admin/keys", {"role": "writer"}, expect=201, headers=ADMIN)
    return {"X-API-Key": str(body["api_key"])}


def _claim(agent: Agent, subject: str, value: Any, timestamp: int) -> dict[str, Any]:
    return agent.assertion(
        subject, "dose", value, 0.9, source=f"agent://{agent.id[:16]}", timestamp=timestamp
    )


def _write(api: Api, record: dict[str, Any], key: dict[str, str]) -> dict[str, Any]:
    body: dict[str, Any] = api.ok("POST", "/v1/assert", record, expect=201, headers=key)
    return body


def _consensus(api: Api, subject: str) -> dict[str, Any]:
    query = {"subject": subject, "predicate": "dose", "lens": "consensus"}
    body = api.ok("POST", "/v1/query", query, headers=ADMIN)
    [result] = body["results"]
    return dict(result)


def test_a_clusters_near_duplicates_count_once(server_factory: ServerFactory) -> None:
    api = server_factory(ENV).api
    subject = f"drugs/{unique()}"
    now = int(time.time())
    # Three honest agents, each writing through its own key: three voices.
    honest = [Agent() for _ in range(3)]
    for agent in honest:
        _write(api, _claim(agent, subject, "7 mg", now - 60), _writer(api))
    # One key mints five agents that say "70 mg" with trivial variations, seconds apart.
    flood_key = _writer(api)
    flood = [Agent() for _ in range(5)]
    spellings = ["70 mg", "70 MG", " 70 mg.", "70  mg", "70 mg!"]
    claims = [
        _claim(a, subject, v, now - i)
        for i, (a, v) in enumerate(zip(flood, spellings, strict=True))
    ]
    written = api.post("/v1/assert/batch", claims, headers=flood_key)
    assert written.status == 200 and written.json["created"] == 5, written
    hashes = [item["hash"] for item in written.json["results"]]

    result = _consensus(api, subject)
    assert result["winner"]["object"]["value"] == "7 mg"
    assert result["voices"] == 4  # 3 honest + 1 for the whole cluster
    assert result["winning_voices"] == 3
    why = {e["hash"]: e["why"] for e in result["explanation"]}
    counted = hashes[0]  # the newest claim of the cluster speaks for it
    assert "held by 1 of 4 voices" in why[counted]
    for copy in hashes[1:]:
        assert why[copy].startswith("not counted: near-duplicate"), why[copy]
        assert "of the same cluster" in why[copy] and counted[:12] in why[copy]

    skeptic = api.get_ok("/v1/skeptic", {"subject": subject, "predicate": "dose"}, headers=ADMIN)
    [entry] = skeptic["near_duplicates"]
    assert entry["counted"] == counted and sorted(entry["repeats"]) == sorted(hashes[1:])
    assert entry["cluster"].startswith("cluster-")
    assert flood_key["X-API-Key"] not in str(skeptic)  # the key is not disclosed

    trace = api.get_ok(f"/v1/trace/{hashes[2]}", headers=ADMIN)
    mates = trace["cluster_near_duplicates"]
    assert mates["cluster"] == entry["cluster"]
    assert {a["hash"] for a in mates["assertions"]} == set(hashes) - {hashes[2]}
    # An honest agent's trace says nothing of clusters.
    honest_hash = next(e["hash"] for e in result["explanation"] if "7 mg" in e["why"])
    assert "cluster_near_duplicates" not in api.get_ok(f"/v1/trace/{honest_hash}", headers=ADMIN)


def test_agreement_across_keys_or_time_is_not_merged(server_factory: ServerFactory) -> None:
    api = server_factory(ENV).api
    subject = f"drugs/{unique()}"
    now = int(time.time())
    key = _writer(api)
    a, b, c = Agent(), Agent(), Agent()
    # One key, but claims far apart in time (over 300 s): separate voices.
    _write(api, _claim(a, subject, "7 mg", now - 1000), key)
    _write(api, _claim(b, subject, "7 mg", now), key)
    # The same value from another key, and from an admin key (no cluster), seconds apart.
    _write(api, _claim(c, subject, "7 mg", now - 1), _writer(api))
    _write(api, _claim(Agent(), subject, "7 mg", now - 2), ADMIN)
    result = _consensus(api, subject)
    assert result["voices"] == 4 and result["winning_voices"] == 4
    assert not any("same cluster" in e["why"] for e in result["explanation"])
