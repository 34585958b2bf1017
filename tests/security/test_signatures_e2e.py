"""The signature policy end to end on a real server (issue #5, item 1).

Every present signature is verified before anything reaches the writer;
a bad one is a 400 that writes nothing and is counted in
`stemedb_assertions_rejected_total{reason}`; an exact replay is a no-op.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from securekit import Agent, Resp

from stemedb.canonical import canonical_json
from stemedb.crypto import sha3_256, sign, signing_message


def _rejected(http: Callable[..., Resp], url: str, reason: str) -> float:
    text = http(url, "GET", "/metrics").body.decode()
    match = re.search(
        rf'^stemedb_assertions_rejected_total{{reason="{reason}"}} (\S+)$', text, re.M
    )
    return float(match.group(1)) if match else 0.0


def _flip(signature: str) -> str:
    return ("1" if signature[0] == "0" else "0") + signature[1:]


@pytest.fixture
def signed_server(run_server_process: Callable[..., Any]) -> Any:
    return run_server_process({"STEMEDB_RATE_LIMIT_WRITE": "0"})


def _state(http: Callable[..., Resp], url: str) -> tuple[int, str]:
    health = http(url, "GET", "/v1/health").json
    return health["journal_seq"], health["chain_head"]


def test_unsigned_records_are_refused_by_default(
    signed_server: Any, http: Callable[..., Resp], row_counts: Callable[[Path], dict[str, int]]
) -> None:
    url, before = signed_server.url, _state(http, signed_server.url)
    record = {"subject": "sig/a", "predicate": "p", "object": "v", "confidence": 0.5}
    resp = http(url, "POST", "/v1/assert", record)
    assert resp.status == 400
    assert resp.error["code"] == "invalid_request"
    assert resp.error["details"][0]["field"] == "signatures"
    assert "STEMEDB_REQUIRE_SIGNATURES" in resp.error["details"][0]["problem"]
    assert _state(http, url) == before
    assert _rejected(http, url, "invalid_request") == 1


def test_a_flipped_bit_is_invalid_signature_and_writes_nothing(
    signed_server: Any, http: Callable[..., Resp], agent: Agent
) -> None:
    url, before = signed_server.url, _state(http, signed_server.url)
    record = agent.assertion("sig/b")
    record["signatures"][0]["signature"] = _flip(record["signatures"][0]["signature"])
    resp = http(url, "POST", "/v1/assert", record)
    assert resp.status == 400
    assert resp.error["code"] == "invalid_signature"
    assert resp.error["details"] == [
        {
            "field": "signatures.0.signature",
            "problem": f"does not verify for agent {agent.id} over the normalised record",
        }
    ]
    assert _state(http, url) == before
    assert _rejected(http, url, "invalid_signature") == 1


def test_a_tampered_field_or_a_vote_signature_does_not_verify(
    signed_server: Any, http: Callable[..., Resp], agent: Agent
) -> None:
    url, before = signed_server.url, _state(http, signed_server.url)
    tampered = agent.assertion("sig/c", value="safe")
    tampered["object"] = {"type": "Text", "value": "unsafe"}
    assert http(url, "POST", "/v1/assert", tampered).error["code"] == "invalid_signature"
    # The same content signed as a *vote*: the domain prefix makes it useless here.
    record = agent.assertion("sig/c")
    unsigned = {k: v for k, v in record.items() if k != "signatures"}
    digest = sha3_256(canonical_json(unsigned).encode())
    record["signatures"][0]["signature"] = sign(agent.seed, signing_message("vote", digest))
    assert http(url, "POST", "/v1/assert", record).error["code"] == "invalid_signature"
    # Two signers, the second one forged: refused as a whole.
    second = Agent()
    both = agent.assertion("sig/d")
    both["signatures"].append({**both["signatures"][0], "agent_id": second.id})
    resp = http(url, "POST", "/v1/assert", both)
    assert resp.error["code"] == "invalid_signature"
    assert _state(http, url) == before
    assert _rejected(http, url, "invalid_signature") == 3


def test_replaying_a_signed_record_is_idempotent(
    signed_server: Any,
    http: Callable[..., Resp],
    agent: Agent,
    row_counts: Callable[[Path], dict[str, int]],
    tmp_path: Path,
) -> None:
    url = signed_server.url
    record = agent.assertion("sig/replay")
    first = http(url, "POST", "/v1/assert", record)
    assert first.status == 201
    state = _state(http, url)
    for _ in range(3):
        again = http(url, "POST", "/v1/assert", record)
        assert again.status == 200
        assert again.json == {**first.json, "status": "exists"}
    assert _state(http, url) == state
    assert row_counts(tmp_path / "db" / "stemedb.db")["assertions"] == 1


def test_batches_verify_every_record_before_writing(
    signed_server: Any, http: Callable[..., Resp], agent: Agent
) -> None:
    url = signed_server.url
    good = [agent.assertion(f"sig/batch{i}") for i in range(3)]
    bad = agent.assertion("sig/batch-bad")
    bad["signatures"][0]["signature"] = _flip(bad["signatures"][0]["signature"])
    before = _state(http, url)
    atomic = http(url, "POST", "/v1/assert/batch?atomic=true", [good[0], bad, good[1]])
    assert atomic.status == 400
    assert atomic.json["results"][1]["error"]["code"] == "invalid_signature"
    assert _state(http, url) == before
    mixed = http(url, "POST", "/v1/assert/batch", [good[0], bad, good[2]])
    assert mixed.status == 200
    assert [r["status"] for r in mixed.json["results"]] == ["created", "rejected", "created"]
    assert _state(http, url)[0] == before[0] + 2
    assert _rejected(http, url, "invalid_signature") == 2


def test_with_signatures_optional_unsigned_is_accepted_but_bad_ones_are_not(
    run_server_process: Callable[..., Any], http: Callable[..., Resp], agent: Agent
) -> None:
    server = run_server_process({"STEMEDB_REQUIRE_SIGNATURES": "false"})
    unsigned = {"subject": "sig/u", "predicate": "p", "object": "v", "confidence": 0.5}
    created = http(server.url, "POST", "/v1/assert", unsigned)
    assert created.status == 201
    stored = http(server.url, "GET", f"/v1/assertions/{created.json['hash']}").json
    assert stored["agent_id"] is None
    bad = agent.assertion("sig/u2")
    bad["signatures"][0]["signature"] = _flip(bad["signatures"][0]["signature"])
    assert http(server.url, "POST", "/v1/assert", bad).error["code"] == "invalid_signature"
