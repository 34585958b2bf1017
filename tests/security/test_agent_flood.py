"""Floods of new agents (issue 19 item 4), against real server processes.

The scenario of the issue: 20 established honest agents say "7 mg"; then 1,000
freshly minted agents (written through the batch endpoint, the new-agent limit
raised for that server) push "70 mg" with newer claims and higher confidence.
Plain consensus counts agents and flips; consensus (and layered) with
`min_agent_age` between the two groups' ages holds the truth, and lists the
flood's assertions with the reason they do not count. The other lenses are
measured as they are (the table in docs/security.md "Floods of new agents").

Then the write-side limit: one client may introduce only
STEMEDB_NEW_AGENTS_PER_HOUR new signers per hour (429 `rate_limited`, nothing
written), while an established agent keeps writing.
"""

from __future__ import annotations

import math
import time
from typing import Any

from e2ekit import Agent, Api, ServerFactory, poll, unique

from stemedb.signing import sign_record
from stemedb.store import schema
from stemedb.store.verify import reindex

HONEST = 20
FLOOD = 1000
TRUE_VALUE = "7 mg"
FALSE_VALUE = "70 mg"
NO_LIMITS = {"STEMEDB_RATE_LIMIT_WRITE": "0", "STEMEDB_RATE_LIMIT_READ": "0"}


def _first_seen_ms(srv: Any, agents: list[Agent]) -> list[int]:
    """first_written_ms of each agent, read from the `agents` projection (read-only)."""
    conn = schema.connect(srv.db_path, readonly=True)
    try:
        found = {
            bytes(a).hex(): int(ms)
            for a, ms in conn.execute("SELECT agent_id, first_written_ms FROM agents")
        }
    finally:
        conn.close()
    return [found[agent.id] for agent in agents]


def _claim(agent: Agent, subject: str, value: str, confidence: float) -> dict[str, Any]:
    """A claim of its own: identical signed content from two agents is one record."""
    return agent.assertion(subject, "dose", value, confidence, source=f"agent://{agent.id[:16]}")


def _value(result: dict[str, Any]) -> Any:
    winner = result["winner"]
    return None if winner is None else winner["object"]["value"]


def _lens(api: Api, subject: str, lens: str, **params: Any) -> dict[str, Any]:
    body = api.query(subject=subject, predicate="dose", lens=lens, **params)
    assert len(body["results"]) == 1, body
    result: dict[str, Any] = body["results"][0]
    return result


def test_a_thousand_fresh_agents_flip_consensus_but_not_min_agent_age(
    server_factory: ServerFactory,
) -> None:
    srv = server_factory({**NO_LIMITS, "STEMEDB_NEW_AGENTS_PER_HOUR": "5000"})
    api = srv.api
    subject = f"drugs/{unique()}"
    claim_t = int(time.time()) - 3600
    honest = [Agent() for _ in range(HONEST)]
    api.batch_ok(
        [
            a.assertion(subject, "dose", TRUE_VALUE, 0.8, timestamp=claim_t - i)
            for i, a in enumerate(honest)
        ]
    )
    honest_seen = _first_seen_ms(srv, honest)
    # The flood comes later: at least a second after the last honest agent was first seen.
    poll(lambda: time.time() * 1000 >= max(honest_seen) + 1000, timeout=10)
    flood = [Agent() for _ in range(FLOOD)]
    records = [
        a.assertion(subject, "dose", FALSE_VALUE, 0.95, timestamp=claim_t + 60 + i)
        for i, a in enumerate(flood)
    ]
    started = time.perf_counter()
    for start in range(0, FLOOD, 250):
        api.batch_ok(records[start : start + 250])
    flood_write_s = time.perf_counter() - started
    flood_seen = _first_seen_ms(srv, flood)
    assert min(flood_seen) > max(honest_seen) + 900

    # Measured at one instant after the flood: ages of the two groups at as_of.
    as_of = math.ceil(max(flood_seen) / 1000) + 1
    cut = as_of - (max(honest_seen) + min(flood_seen)) / 2000  # between the two groups
    honest_age = as_of - max(honest_seen) / 1000
    flood_age = as_of - min(flood_seen) / 1000
    assert flood_age < cut < honest_age

    plain = _lens(api, subject, "consensus", as_of=as_of)
    assert _value(plain) == FALSE_VALUE, "without min_agent_age the flood outvotes the honest"
    assert plain["voices"] == HONEST + FLOOD and plain["winning_voices"] == FLOOD

    held = _lens(api, subject, "consensus", as_of=as_of, min_agent_age=cut)
    assert _value(held) == TRUE_VALUE
    assert held["voices"] == HONEST and held["winning_voices"] == HONEST
    assert held["unvoiced_assertions"] == FLOOD
    assert held["resolution_confidence"] == 1.0
    not_counted = [e for e in held["explanation"] if e["why"].startswith("not counted: agent")]
    assert len(not_counted) == FLOOD
    assert all("before the query; min_agent_age=" in e["why"] for e in not_counted)
    assert all(e["score"] == 0.0 for e in not_counted)

    layered = _lens(api, subject, "layered", as_of=as_of, min_agent_age=cut)
    assert _value(layered) == TRUE_VALUE

    # Older than everyone: nobody has a voice, so no answer rather than a wrong one.
    nobody = _lens(api, subject, "consensus", as_of=as_of, min_agent_age=honest_age + 60)
    assert nobody["winner"] is None and nobody["voices"] == 0

    measured = {
        lens: _value(_lens(api, subject, lens, as_of=as_of))
        for lens in ("recency", "confidence", "authority", "trust", "votes", "layered")
    }
    print(
        f"\nflood: {FLOOD} agents written in {flood_write_s:.2f} s; honest age "
        f"{honest_age:.2f} s, flood age <= {flood_age:.2f} s, min_agent_age={cut:.2f}"
    )
    print(f"consensus: {_value(plain)}; consensus+min_agent_age: {_value(held)}; {measured}")
    # As they are, every other lens follows the flood: newer, more confident claims,
    # same (capped) tier, default trust, no votes. Only agent age tells them apart.
    assert measured == dict.fromkeys(measured, FALSE_VALUE)


def test_min_agent_age_is_refused_where_no_agents_are_counted(
    server_factory: ServerFactory,
) -> None:
    api = server_factory(NO_LIMITS).api
    subject = f"drugs/{unique()}"
    api.write("/v1/assert", Agent().assertion(subject, "dose", TRUE_VALUE, 0.8))
    for params in (
        {"lens": "recency", "min_agent_age": 10},
        {"min_agent_age": 10},
        {"lens": "consensus", "min_agent_age": -1},
        {"lens": "consensus", "min_agent_age": "soon"},
    ):
        resp = api.post("/v1/query", {"subject": subject, "predicate": "dose", **params})
        assert resp.status == 400, (params, resp)
        assert "min_agent_age" in resp.text, resp.text
    resp = api.get("/v1/skeptic", {"subject": subject, "predicate": "dose", "min_agent_age": 5})
    assert resp.status == 400 and "min_agent_age" in resp.text
    # GET with a query string works like POST.
    body = api.get_ok(
        "/v1/query",
        {"subject": subject, "predicate": "dose", "lens": "consensus", "min_agent_age": 0},
    )
    assert body["results"][0]["winner"]["object"]["value"] == TRUE_VALUE
    layered = api.get_ok(
        "/v1/layered", {"subject": subject, "predicate": "dose", "min_agent_age": 86400}
    )
    assert layered["winner"] is None
    assert "min_agent_age=86400" in layered["explanation"][0]["why"]


def test_one_client_cannot_introduce_more_new_agents_than_its_budget(
    server_factory: ServerFactory,
) -> None:
    srv = server_factory({**NO_LIMITS, "STEMEDB_NEW_AGENTS_PER_HOUR": "5"})
    api = srv.api
    subject = f"drugs/{unique()}"
    established = Agent()
    api.write("/v1/assert", _claim(established, subject, TRUE_VALUE, 0.8))  # 1 of 5

    # A batch of ten fresh signers is over the budget: refused whole, nothing written.
    fresh = [Agent() for _ in range(10)]
    resp = api.post("/v1/assert/batch", [_claim(a, subject, FALSE_VALUE, 0.9) for a in fresh])
    assert resp.status == 429, resp
    assert resp.error["code"] == "rate_limited"
    assert "STEMEDB_NEW_AGENTS_PER_HOUR" in resp.error["message"]
    assert int(resp.header("Retry-After") or "0") >= 1

    # Four more fit (2..5 of 5), one at a time; the sixth new agent does not.
    for agent in fresh[:4]:
        api.write("/v1/assert", _claim(agent, subject, FALSE_VALUE, 0.9))
    refused = api.post("/v1/assert", _claim(fresh[4], subject, FALSE_VALUE, 0.9))
    assert refused.status == 429, refused
    assert "new-agent limit reached" in refused.error["message"]
    assert int(refused.header("Retry-After") or "0") >= 1

    # Agents already in the journal are not limited: the established one and the four.
    api.write("/v1/assert", _claim(established, subject, TRUE_VALUE, 0.85))
    api.write("/v1/assert", _claim(fresh[0], subject, FALSE_VALUE, 0.91))
    listed = api.query(subject=subject, predicate="dose", limit=100)
    signers = {a["signatures"][0]["agent_id"] for a in listed["assertions"]}
    assert signers == {established.id, *(a.id for a in fresh[:4])}
    assert listed["count"] == 7


def test_the_limit_can_be_switched_off(server_factory: ServerFactory) -> None:
    api = server_factory({**NO_LIMITS, "STEMEDB_NEW_AGENTS_PER_HOUR": "0"}).api
    subject = f"drugs/{unique()}"
    hashes = api.batch_ok([_claim(Agent(), subject, TRUE_VALUE, 0.8) for _ in range(150)])
    assert len(set(hashes)) == 150


def _agents_rows(conn: Any) -> list[tuple[str, int, int]]:
    return [
        (bytes(a).hex(), int(seq), int(ms))
        for a, seq, ms in conn.execute(
            "SELECT agent_id, first_seq, first_written_ms FROM agents ORDER BY agent_id"
        )
    ]


def test_first_seen_is_the_same_from_writes_migration_backfill_and_reindex(
    server_factory: ServerFactory,
) -> None:
    srv = server_factory(NO_LIMITS)
    api = srv.api
    subject = f"drugs/{unique()}"
    first, second, cosigner = Agent(), Agent(), Agent()
    api.write("/v1/assert", _claim(first, subject, TRUE_VALUE, 0.8))
    poll(lambda: int(time.time() * 1000) > _first_seen_ms(srv, [first])[0] + 5)
    written = api.write("/v1/assert", _claim(second, subject, FALSE_VALUE, 0.8))
    api.write("/v1/assert", _claim(first, subject, TRUE_VALUE, 0.7))  # seen before: unchanged
    api.write("/v1/vote", second.record("vote", assertion_hash=written["hash"], weight=1.0))
    cosigned = sign_record(
        "assertion",
        {"subject": subject, "predicate": "dose", "object": TRUE_VALUE, "confidence": 0.6},
        [first.seed, cosigner.seed],
    )
    api.write("/v1/assert", cosigned)  # a co-signer is seen too
    srv.proc.stop()

    conn = schema.connect(srv.db_path)
    live = _agents_rows(conn)
    assert {row[0] for row in live} == {first.id, second.id, cosigner.id}
    seen = dict((agent, (seq, ms)) for agent, seq, ms in live)
    assert seen[first.id][0] < seen[second.id][0] < seen[cosigner.id][0]
    assert seen[first.id][1] < seen[second.id][1]
    # The migration's SQL backfill, run on this journal, gives the same rows.
    with conn:
        conn.execute("DROP TABLE agents")
        conn.execute("PRAGMA user_version = 5")
    assert next(m.name for m in schema.apply_migrations(conn)) == "0006_agents_seen.sql"
    assert _agents_rows(conn) == live
    conn.close()
    # And so does a reindex (projections.apply frame by frame).
    reindex(srv.db_path)
    conn = schema.connect(srv.db_path, readonly=True)
    try:
        assert _agents_rows(conn) == live
    finally:
        conn.close()


def test_with_auth_each_writer_key_has_its_own_budget_and_admins_none(
    server_factory: ServerFactory,
) -> None:
    root = "0123456789abcdef0123456789abcdef-flood-root"
    api = server_factory(
        {
            **NO_LIMITS,
            "STEMEDB_AUTH_ENABLED": "true",
            "STEMEDB_ROOT_API_KEY": root,
            "STEMEDB_NEW_AGENTS_PER_HOUR": "3",
        }
    ).api

    def new_writer() -> dict[str, str]:
        body = api.ok("POST", "/v1/admin/keys", {"role": "writer"}, expect=201, headers=admin)
        return {"X-API-Key": str(body["api_key"])}

    admin = {"X-API-Key": root}
    subject = f"drugs/{unique()}"
    first, second = new_writer(), new_writer()
    claims = [_claim(Agent(), subject, FALSE_VALUE, 0.9) for _ in range(4)]
    assert api.post("/v1/assert/batch", claims[:3], headers=first).status == 200
    over = api.post("/v1/assert", claims[3], headers=first)
    assert over.status == 429 and "key:" in over.error["message"], over
    # Another key's budget is untouched; an admin key is not limited at all.
    assert api.post("/v1/assert", claims[3], headers=second).status == 201
    many = [_claim(Agent(), subject, TRUE_VALUE, 0.8) for _ in range(10)]
    assert api.post("/v1/assert/batch", many, headers=admin).status == 200
