"""Battery 5 — corrections without mutation: a proposal, its approved correction,
then a supersession that hides the proposal while its journal bytes stay the same."""

from __future__ import annotations

import hashlib
import time
from typing import Any

import pytest
from e2ekit import Agent, Api

from stemedb.signing import sign_record

SUBJECT = "config/jwt"
PREDICATE = "signing_algorithm"
T = int(time.time()) - 3600


@pytest.fixture(scope="module")
def world(bapi: Api) -> dict[str, Any]:
    author, reviewer = Agent(), Agent()
    p = bapi.write(
        "/v1/assert",
        author.assertion(
            SUBJECT, PREDICATE, "ES256", 0.9, lifecycle="Proposed", timestamp=T, source="rfc://7518"
        ),
    )
    q = bapi.write(
        "/v1/assert",
        # co-signed by P's author: a supersession's replacement must come from a
        # signer of its target (docs/security.md, "Supersession rights")
        sign_record(
            "assertion",
            {
                "subject": SUBJECT,
                "predicate": PREDICATE,
                "object": "RS256",
                "confidence": 0.8,
                "lifecycle": "Approved",
                "parent_hash": p["hash"],
                "timestamp": T + 60,
                "source": "rfc://7518",
            },
            [reviewer.seed, author.seed],
        ),
    )
    return {"P": p["hash"], "Q": q["hash"], "P_seq": p["seq"], "author": author}


def group(bapi: Api, **params: Any) -> dict[str, Any]:
    (found,) = bapi.query(subject=SUBJECT, predicate=PREDICATE, **params)["results"]
    return found


def test_approved_recency_and_best_give_q(bapi: Api, world: dict[str, Any]) -> None:
    assert group(bapi, lens="recency", lifecycle="Approved")["winner"]["hash"] == world["Q"]
    assert group(bapi, lens="best")["winner"]["hash"] == world["Q"]
    # P is still there and would win on its own confidence.
    assert group(bapi, lens="confidence")["winner"]["hash"] == world["P"]


def test_trace_of_q_shows_p_as_parent(bapi: Api, world: dict[str, Any]) -> None:
    trace = bapi.get_ok(f"/v1/trace/{world['Q']}")
    assert trace["assertion"]["parent_hash"] == world["P"]
    assert [a["hash"] for a in trace["ancestors"]] == [world["P"]]
    assert bapi.get_ok(f"/v1/trace/{world['P']}")["children"] == [world["Q"]]
    assert world["Q"] in bapi.get_ok(f"/v1/trace/{world['P']}")["same_source"]


def _journal_bytes_of(bapi: Api, record_hash: str) -> tuple[bytes, dict[str, Any]]:
    lines = [
        line
        for line in bapi.get("/v1/export").body.splitlines()
        if hashlib.sha3_256(line).hexdigest() == record_hash
    ]
    assert len(lines) == 1
    frames = [
        f
        for f in bapi.get_ok("/v1/feed", {"after": 0, "limit": 1000})["frames"]
        if f["hash"] == record_hash
    ]
    assert len(frames) == 1
    return lines[0], frames[0]


def test_supersession_hides_p_without_changing_its_bytes(bapi: Api, world: dict[str, Any]) -> None:
    line_before, frame_before = _journal_bytes_of(bapi, world["P"])
    stored_before = bapi.get_ok(f"/v1/assertions/{world['P']}")
    assert stored_before["superseded"] is False

    record = world["author"].record(
        "supersession",
        target_hash=world["P"],
        replacement_hash=world["Q"],
        reason="ES256 was a typo",
        type="Correct",
    )
    bapi.write("/v1/supersede", record)

    # Hidden from lenses, but explained.
    found = group(bapi, lens="confidence")
    assert found["winner"]["hash"] == world["Q"]
    excluded = {e["hash"]: e["excluded"] for e in found["explanation"]}
    assert excluded[world["P"]] == "superseded" and excluded[world["Q"]] is None
    assert {a["hash"] for a in bapi.query(subject=SUBJECT)["assertions"]} == {world["Q"]}
    for lens in ("recency", "best", "authority", "consensus"):
        assert group(bapi, lens=lens)["winner"]["hash"] == world["Q"], lens

    # include_superseded=true shows it again.
    shown = group(bapi, lens="confidence", include_superseded=True)
    assert shown["winner"]["hash"] == world["P"]
    listed = bapi.query(subject=SUBJECT, include_superseded=True)["assertions"]
    assert {a["hash"]: a["superseded"] for a in listed} == {world["P"]: True, world["Q"]: False}

    # P's bytes in the journal are unchanged.
    line_after, frame_after = _journal_bytes_of(bapi, world["P"])
    assert line_after == line_before
    assert frame_after == frame_before and frame_after["seq"] == world["P_seq"]
    stored_after = bapi.get_ok(f"/v1/assertions/{world['P']}")
    assert stored_after["superseded"] is True
    assert {k: v for k, v in stored_after.items() if k != "superseded"} == {
        k: v for k, v in stored_before.items() if k != "superseded"
    }
    trace = bapi.get_ok(f"/v1/trace/{world['P']}")
    assert trace["supersessions"][0]["replacement_hash"] == world["Q"]
    assert trace["supersessions"][0]["type"] == "Correct"
