"""The write and read endpoints under non-default settings, on a server of their own:
STEMEDB_REQUIRE_SIGNATURES=false, STEMEDB_BATCH_MAX, STEMEDB_MAX_BODY_BYTES (and the
batch route's 32x) and STEMEDB_QUERY_AUDIT=false."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from e2ekit import Agent, Api, unique


@pytest.fixture(scope="module")
def tuned(module_server_factory: Any) -> Iterator[Api]:
    server = module_server_factory(
        {
            "STEMEDB_REQUIRE_SIGNATURES": "false",
            "STEMEDB_BATCH_MAX": "3",
            "STEMEDB_MAX_BODY_BYTES": "2048",
            "STEMEDB_QUERY_AUDIT": "false",
        }
    )
    yield server.api
    server.proc.kill()


def unsigned(subject: str, value: Any) -> dict[str, Any]:
    return {
        "subject": subject,
        "predicate": "p",
        "object": value,
        "confidence": 0.5,
        "timestamp": int(time.time()),
    }


def test_unsigned_records_are_accepted_when_signatures_are_optional(tuned: Api) -> None:
    subject = f"{unique('c')}/unsigned"
    record = unsigned(subject, "x")
    created = tuned.write("/v1/assert", record)
    stored = tuned.get_ok(f"/v1/assertions/{created['hash']}")
    assert stored["agent_id"] is None and "signatures" not in stored
    assert tuned.post("/v1/assert", record).json["status"] == "exists"
    # A signature that is present must still verify.
    signed = Agent().assertion(subject, "p", "y", 0.5)
    signed["confidence"] = 0.6
    resp = tuned.post("/v1/assert", signed)
    assert resp.status == 400 and resp.error["code"] == "invalid_signature"
    # Signed and unsigned side by side; each unsigned one is its own voice.
    tuned.write("/v1/assert", unsigned(subject, "x") | {"timestamp": int(time.time()) - 5})
    tuned.write("/v1/assert", Agent().assertion(subject, "p", "y", 0.5))
    (result,) = tuned.query(subject=subject, lens="consensus")["results"]
    assert result["winner"]["object"]["value"] == "x"
    assert result["resolution_confidence"] == pytest.approx(2 / 3)


def test_batch_max_is_enforced(tuned: Api) -> None:
    subject = f"{unique('c')}/max"
    before = tuned.get_ok("/v1/health")["journal_seq"]
    resp = tuned.post("/v1/assert/batch", [unsigned(subject, i) for i in range(4)])
    assert resp.status == 400 and resp.error["code"] == "invalid_request"
    assert "STEMEDB_BATCH_MAX" in resp.error["message"]
    assert tuned.get_ok("/v1/health")["journal_seq"] == before
    body = tuned.batch([unsigned(subject, i) for i in range(3)])
    assert body["created"] == 3


def test_body_limits_follow_the_setting(tuned: Api) -> None:
    subject = f"{unique('c')}/size"
    big = unsigned(subject, "x" * 2100)
    resp = tuned.post("/v1/assert", big)
    assert resp.status == 413 and resp.error["code"] == "payload_too_large"
    assert "2048" in resp.error["message"]
    assert tuned.post("/v1/assert/batch", [big]).status == 200  # the batch route takes 32x
    huge = [
        unsigned(subject, "y" * 30000),
        unsigned(subject, "z" * 30000),
        unsigned(subject, "w" * 10000),
    ]
    data = json.dumps(huge).encode()
    assert len(data) > 32 * 2048
    resp = tuned.call("POST", "/v1/assert/batch", data=data, content_type="application/json")
    assert resp.status == 413
    resp = tuned.call(
        "POST",
        "/v1/query",
        data=json.dumps({"subject": "a" * 3000}).encode(),
        content_type="application/json",
    )
    assert resp.status == 413


def test_no_audit_rows_when_auditing_is_off(tuned: Api) -> None:
    who = Agent().id
    body = tuned.ok(
        "POST", "/v1/query", {"subject": "a/b", "lens": "recency"}, headers={"X-Agent-Id": who}
    )
    # Reading the audit trail flushes pending audit rows first: no sleep needed.
    assert tuned.get_ok("/v1/audit/queries", {"agent_id": who})["queries"] == []
    assert tuned.get(f"/v1/audit/query/{body['query_id']}").status == 404


def test_assertion_input_forms_are_normalised(tuned: Api) -> None:
    root = unique("C")
    created = tuned.write(
        "/v1/assert",
        {
            "concept_path": f"FDA://{root}/label/",
            "predicate": "p",
            "object": {"Text": "x"},
            "confidence": 1,
            "lifecycle": "under_review",
            "source": "pubmed://42",
        },
    )
    stored = tuned.get_ok(f"/v1/assertions/{created['hash']}")
    assert stored["subject"] == f"fda://{root}/label"  # scheme lower-cased, no trailing /
    assert stored["object"] == {"type": "Text", "value": "x"}
    assert stored["lifecycle"] == "UnderReview"
    assert stored["source_class"] == "Clinical"  # from the source's scheme
    assert stored["source_hash"] == hashlib.sha3_256(b"pubmed://42").hexdigest()
    assert stored["confidence"] == 1
    by_scheme = tuned.write("/v1/assert", unsigned(f"faers://{root}/x", True))
    stored = tuned.get_ok(f"/v1/assertions/{by_scheme['hash']}")
    assert stored["source_class"] == "Community"  # from the subject's scheme
    assert stored["object"] == {"type": "Boolean", "value": True}
    plain = tuned.get_ok(f"/v1/assertions/{tuned.write('/v1/assert', unsigned(root, 2.5))['hash']}")
    assert plain["source_class"] == "Anecdotal" and plain["object"]["type"] == "Number"
    listed = tuned.query(subject=f"fda://{root}", prefix=True)
    assert [a["hash"] for a in listed["assertions"]] == [created["hash"]]
