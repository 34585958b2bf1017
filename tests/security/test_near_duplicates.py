"""Near-duplicates (issue 19 item 2) against a real server process.

Values that differ only in case, spacing or punctuation (text) or beyond the
sixth significant digit (numbers) are one value; an agent's repeats of one
claim seconds apart count once in consensus and are named in skeptic and
trace. Before this, `"Headache!"` and `"headache"` were two values, so a
spammer's one spelling could beat two honest sources who spelled it apart.
"""

from __future__ import annotations

import time
from typing import Any

from e2ekit import Agent, Api, ServerFactory, unique

NO_LIMITS = {"STEMEDB_RATE_LIMIT_WRITE": "0", "STEMEDB_RATE_LIMIT_READ": "0"}


def _claim(agent: Agent, subject: str, value: Any, timestamp: int) -> dict[str, Any]:
    return agent.assertion(
        subject, "effect", value, 0.8, source=f"agent://{agent.id[:16]}", timestamp=timestamp
    )


def _consensus(api: Api, subject: str) -> dict[str, Any]:
    body = api.query(subject=subject, predicate="effect", lens="consensus")
    result: dict[str, Any] = body["results"][0]
    return result


def test_trivial_variations_are_one_value_and_repeats_count_once(
    server_factory: ServerFactory,
) -> None:
    api = server_factory(NO_LIMITS).api
    subject = f"drugs/{unique()}"
    now = int(time.time())
    spammer, first, second = Agent(), Agent(), Agent()
    repeats = [
        api.write("/v1/assert", _claim(spammer, subject, text, now - age))["hash"]
        for text, age in (("Nausea", 30), ("nausea.", 20), ("  NAUSEA ", 10))
    ]
    api.write("/v1/assert", _claim(first, subject, "headache", now - 5))
    api.write("/v1/assert", _claim(second, subject, "Headache!", now - 4))

    result = _consensus(api, subject)
    # One value, two voices; the spammer's three records are one voice.
    assert result["winner"]["object"]["value"].lower().strip("!") == "headache"
    assert result["voices"] == 3 and result["winning_voices"] == 2
    lines = {e["hash"]: e["why"] for e in result["explanation"]}
    for older in repeats[:2]:
        assert "near-duplicate" in lines[older] and repeats[2][:12] in lines[older]
    assert "held by 2 of 3 voices" in " ".join(lines.values())

    skeptic = api.get_ok("/v1/skeptic", {"subject": subject, "predicate": "effect"})
    assert len(skeptic["claims"]) == 2  # nausea (three spellings), headache (two)
    [report] = skeptic["near_duplicates"]
    assert report["agent_id"] == spammer.id and report["counted"] == repeats[2]
    assert sorted(report["repeats"]) == sorted(repeats[:2])

    trace = api.get_ok(f"/v1/trace/{repeats[0]}")
    assert {d["hash"] for d in trace["near_duplicates"]} == set(repeats[1:])
    assert all(d["same_value"] is False for d in trace["near_duplicates"])
    headache = api.get_ok(f"/v1/trace/{result['winner']['hash']}")
    assert "near_duplicates" not in headache  # another agent's spelling is no repeat


def test_numbers_within_tolerance_are_one_value(server_factory: ServerFactory) -> None:
    api = server_factory(NO_LIMITS).api
    subject = f"drugs/{unique()}"
    now = int(time.time())
    a, b, c = Agent(), Agent(), Agent()
    api.write("/v1/assert", _claim(a, subject, 7, now - 3))
    api.write("/v1/assert", _claim(b, subject, 7.0000001, now - 2))
    api.write("/v1/assert", _claim(c, subject, 7.5, now - 1))  # newest, but alone
    result = _consensus(api, subject)
    assert result["winner"]["object"]["value"] in (7, 7.0000001)
    assert result["winning_voices"] == 2 and result["resolution_confidence"] == 2 / 3


def test_repeats_far_apart_in_time_are_not_near_duplicates(server_factory: ServerFactory) -> None:
    api = server_factory(NO_LIMITS).api
    subject = f"drugs/{unique()}"
    now = int(time.time())
    agent = Agent()
    old = api.write("/v1/assert", _claim(agent, subject, "rash", now - 3600))["hash"]
    api.write("/v1/assert", _claim(agent, subject, "Rash", now))
    trace = api.get_ok(f"/v1/trace/{old}")
    assert "near_duplicates" not in trace
    skeptic = api.get_ok("/v1/skeptic", {"subject": subject, "predicate": "effect"})
    assert "near_duplicates" not in skeptic and len(skeptic["claims"]) == 1
