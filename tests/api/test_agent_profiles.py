"""Public agent profiles, end to end: GET /v1/agents/{id}, GET /v1/agents, client and CLI.

Issue 17 part 4. A real server; agents sign claims, co-sign, vote and are
rated by outcome records; the profile must report each of those, trust
relaxed exactly as the trust lens relaxes it, and replay `known_at`.
"""

from __future__ import annotations

import json
import math
import time
from typing import Any

import pytest
from conftest import ServerFactory
from e2ekit import Agent, unique

from stemedb.cli.main import main as cli_main
from stemedb.client import ApiError, Client
from stemedb.lenses.trust import trust_at
from stemedb.signing import sign_record

DAY = 86400


def _next_second(after: int) -> int:
    """Wait (polling the clock) until the wall clock is past second `after`."""
    while int(time.time()) <= after:
        time.sleep(0.02)
    return int(time.time())


@pytest.fixture
def world(server_factory: ServerFactory) -> dict[str, Any]:
    srv = server_factory()
    # Signatures are stored sorted by agent id: the peer (smaller id) signs first,
    # so `rated` is a co-signer of the co-signed claim, not its first signer.
    peer, rated = sorted((Agent(), Agent()), key=lambda a: a.id)
    doubted, quiet = Agent(), Agent()
    subject = f"drugs/{unique()}"
    api = srv.api
    first = api.write("/v1/assert", rated.assertion(subject, "dose", "10 mg", 0.8))
    api.write("/v1/assert", rated.assertion(subject, "route", "oral", 0.7))
    cosigned = sign_record(
        "assertion",
        {"subject": subject, "predicate": "dose", "object": "20 mg", "confidence": 0.6},
        [peer.seed, rated.seed],
    )
    assert cosigned["signatures"][0]["agent_id"] == peer.id
    other = api.write("/v1/assert", cosigned)
    api.write("/v1/assert", doubted.assertion(subject, "dose", "5 g", 0.9))
    api.write("/v1/assert", quiet.assertion(subject, "dose", "10 mg", 0.5))
    api.write("/v1/vote", rated.record("vote", assertion_hash=other["hash"], weight=1.0))
    api.write("/v1/vote", rated.record("vote", assertion_hash=other["hash"], weight=-0.5))
    claims_done = int(time.time())
    _next_second(claims_done + 1)  # outcomes land at least one whole second later
    now = int(time.time())
    judge = Agent()  # signs the outcome records (auth is off: no admin key needed)
    client = Client(srv.url, seed=judge.seed)
    for ts in (now - 2 * DAY, now - DAY):
        client.outcome(rated.id, first["hash"], True, timestamp=ts)
    client.outcome(doubted.id, first["hash"], False, timestamp=now - DAY)
    return {
        "srv": srv,
        "client": client,
        "rated": rated,
        "peer": peer,
        "doubted": doubted,
        "quiet": quiet,
        "first": first,
        "known_before_outcomes": claims_done + 1,
    }


def test_profile_reports_trust_history_counts_and_first_seen(world: dict[str, Any]) -> None:
    client: Client = world["client"]
    rated: Agent = world["rated"]
    profile = client.agent(rated.id)
    assert profile["agent_id"] == rated.id and profile["rated"] is True
    assert profile["counts"] == {
        "claims": 2,
        "cosigned": 1,
        "votes": 2,
        "outcomes_accurate": 2,
        "outcomes_inaccurate": 0,
    }
    history = profile["history"]
    assert [o["accurate"] for o in history] == [True, True]
    assert all(o["assertion_hash"] == world["first"]["hash"] for o in history)
    assert history[0]["score_after"] < history[1]["score_after"] == profile["stored_score"]
    # Trust is the stored score relaxed to the reading instant, as the trust lens reads it.
    expected = trust_at(profile["stored_score"], profile["last_updated"], profile["at"])
    assert math.isclose(profile["trust"], expected, abs_tol=1e-12)
    assert 0.5 < profile["trust"] < profile["stored_score"]
    assert profile["first_seen_seq"] == world["first"]["seq"]
    assert profile["first_seen_ms"] > 0 and profile["history_truncated"] is False


def test_as_of_relaxes_trust_and_known_at_replays_before_the_outcomes(
    world: dict[str, Any],
) -> None:
    client: Client = world["client"]
    rated: Agent = world["rated"]
    now = client.agent(rated.id)
    later = client.agent(rated.id, as_of=int(time.time()) + 90 * DAY)
    assert 0.5 < later["trust"] < now["trust"]  # three half-lives later: mostly relaxed
    before = client.agent(rated.id, known_at=world["known_before_outcomes"])
    assert before["trust"] == 0.5 and before["history"] == [] and before["rated"] is False
    assert before["counts"]["claims"] == 2 and before["counts"]["votes"] == 2
    trimmed = client.agent(rated.id, history_limit=1)
    assert len(trimmed["history"]) == 1 and trimmed["history_truncated"] is True
    assert trimmed["history"][0]["seq"] == now["history"][-1]["seq"]  # the newest kept


def test_listing_orders_by_trust_and_pages_without_gaps(world: dict[str, Any]) -> None:
    client: Client = world["client"]
    listing = client.agents(limit=500)
    ids = [a["agent_id"] for a in listing["agents"]]
    assert listing["next_cursor"] is None
    assert ids[0] == world["rated"].id and ids[-1] == world["doubted"].id
    assert {world["peer"].id, world["quiet"].id} <= set(ids[1:-1])
    trusts = [a["trust"] for a in listing["agents"]]
    assert trusts == sorted(trusts, reverse=True)
    unrated = [a for a in listing["agents"] if not a["rated"]]
    assert all(a["trust"] == 0.5 and a["first_seen_seq"] for a in unrated)
    paged = [a["agent_id"] for a in client.agents_all(limit=1)]
    assert paged == ids  # one per page: same order, nothing twice, nothing lost


def test_unknown_and_malformed_agents(world: dict[str, Any]) -> None:
    client: Client = world["client"]
    with pytest.raises(ApiError) as missing:
        client.agent(Agent().id)
    assert missing.value.status == 404
    with pytest.raises(ApiError) as bad:
        client.agent("not-hex")
    assert bad.value.status == 400 and "agent_id" in str(bad.value.details)
    with pytest.raises(ApiError) as cursor:
        client.agents(cursor="z.nope")
    assert cursor.value.status == 400 and "cursor" in str(cursor.value.details)
    with pytest.raises(ApiError) as limit:
        client.agents(limit=100000)
    assert limit.value.status == 400 and "limit" in str(limit.value.details)


def test_cli_agent_shows_a_profile_and_the_listing(
    world: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    url = world["srv"].url
    assert cli_main(["agent", world["rated"].id, "--url", url]) == 0
    profile = json.loads(capsys.readouterr().out)
    assert profile["counts"]["claims"] == 2
    assert cli_main(["agent", "--url", url, "--format", "ndjson"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert rows[0]["agent_id"] == world["rated"].id
    assert cli_main(["agent", "xyz", "--url", url]) == 2
    assert "64 hex" in capsys.readouterr().err
