"""Every validation error names its field (table-driven)."""

from __future__ import annotations

import math
from typing import Any

import pytest

from stemedb.config import DEFAULT_SCHEME_TIERS
from stemedb.errors import InvalidRequest
from stemedb.records import prepare_record

NOW = 1_700_000_000
H1 = "ab" * 32
H2 = "cd" * 32
SIG = {"agent_id": H1, "signature": "00" * 64}

ASSERTION: dict[str, Any] = {
    "subject": "drugs/semaglutide",
    "predicate": "gastroparesis_risk",
    "object": "elevated",
    "confidence": 0.9,
}
BASES: dict[str, dict[str, Any]] = {
    "assertion": ASSERTION,
    "vote": {"assertion_hash": H1, "weight": 1},
    "epoch": {"name": "e"},
    "supersession": {"target_hash": H1, "reason": "r"},
    "alias": {"alias": "Ozempic", "canonical": "drugs/semaglutide"},
    "outcome": {"agent_id": H1, "assertion_hash": H2, "accurate": True},
}
DROP = object()

# (kind, changes to the valid base record, field named, text in the problem)
CASES: list[tuple[str, dict[str, Any], str, str]] = [
    ("assertion", {"confidence": 1.7}, "confidence", "1.7 > 1"),
    ("assertion", {"confidence": -0.1}, "confidence", "-0.1 < 0"),
    ("assertion", {"confidence": math.nan}, "confidence", "NaN"),
    ("assertion", {"confidence": math.inf}, "confidence", "Infinity"),
    ("assertion", {"confidence": "0.9"}, "confidence", "expected a number"),
    ("assertion", {"confidence": True}, "confidence", "expected a number"),
    ("assertion", {"confidence": DROP}, "confidence", "required"),
    ("assertion", {"subject": DROP}, "subject", "required"),
    ("assertion", {"subject": "drugs//x"}, "subject", "segment 2 is empty"),
    ("assertion", {"subject": 7}, "subject", "expected a string"),
    ("assertion", {"subject": "x" * 600}, "subject", "longer than 512"),
    ("assertion", {"concept_path": "a//b", "subject": DROP}, "concept_path", "segment 2"),
    ("assertion", {"concept_path": 5, "subject": DROP}, "concept_path", "expected a string"),
    ("assertion", {"concept_path": None, "subject": DROP}, "subject", "required"),
    ("assertion", {"concept_path": "drugs/x"}, "body", "not both"),
    ("assertion", {"predicate": ""}, "predicate", "must not be empty"),
    ("assertion", {"predicate": "p" * 257}, "predicate", "longer than 256"),
    ("assertion", {"predicate": "a\tb"}, "predicate", "U+0009"),
    ("assertion", {"object": None}, "object", "expected"),
    ("assertion", {"object": [1]}, "object", "expected"),
    ("assertion", {"object": {"Colour": "red"}}, "object", "unknown object type"),
    ("assertion", {"object": {"type": "Colour", "value": "x"}}, "object.type", "unknown"),
    ("assertion", {"object": {"type": "Text"}}, "object.value", "required"),
    ("assertion", {"object": {"type": "Text", "value": 1}}, "object.value", "string"),
    ("assertion", {"object": {"type": "Number", "value": "1"}}, "object.value", "number"),
    ("assertion", {"object": {"Number": math.nan}}, "object.value", "NaN"),
    ("assertion", {"object": {"Number": True}}, "object.value", "number"),
    ("assertion", {"object": {"Boolean": 1}}, "object.value", "true or false"),
    ("assertion", {"object": {"Reference": "a/../b"}}, "object.value", "'..'"),
    ("assertion", {"object": {"type": "Text", "value": "x", "z": 1}}, "object.z", "unknown"),
    ("assertion", {"object": "x" * 65537}, "object.value", "64 KiB"),
    ("assertion", {"source_class": "Gossip"}, "source_class", "unknown source class"),
    ("assertion", {"source_class": 1}, "source_class", "expected a string"),
    ("assertion", {"lifecycle": "Draft"}, "lifecycle", "unknown lifecycle"),
    ("assertion", {"source": "s" * 2049}, "source", "longer than 2048"),
    ("assertion", {"source": ""}, "source", "must not be empty"),
    ("assertion", {"source_hash": "ab"}, "source_hash", "64 hex"),
    ("assertion", {"parent_hash": "g" * 64}, "parent_hash", "64 hex"),
    ("assertion", {"epoch": H1 + "00"}, "epoch", "64 hex"),
    ("assertion", {"timestamp": NOW + 301}, "timestamp", "in the future"),
    ("assertion", {"timestamp": -1}, "timestamp", "< 0"),
    ("assertion", {"timestamp": "1700000000"}, "timestamp", "integer"),
    ("assertion", {"timestamp": 1.5}, "timestamp", "integer"),
    ("assertion", {"kind": "vote"}, "kind", "'assertion'"),
    ("assertion", {"colour": "red"}, "colour", "unknown field"),
    ("assertion", {"signatures": []}, "signatures", "1 to 16"),
    ("assertion", {"signatures": [SIG] * 17}, "signatures", "1 to 16"),
    ("assertion", {"signatures": SIG}, "signatures", "list"),
    ("assertion", {"signatures": [{**SIG, "agent_id": "x"}]}, "signatures.0.agent_id", "64 hex"),
    ("assertion", {"signatures": [{**SIG, "signature": H1}]}, "signatures.0.signature", "128"),
    ("assertion", {"signatures": [{**SIG, "timestamp": NOW}]}, "signatures.0.timestamp", "exactly"),
    ("assertion", {"signatures": [{**SIG, "extra": 1}]}, "signatures.0.extra", "unknown"),
    ("assertion", {"signatures": [SIG, SIG]}, "signatures.1.agent_id", "duplicate"),
    ("assertion", {"signatures": ["x"]}, "signatures.0", "expected an object"),
    ("assertion", {"subject": "drugs/\ud800"}, "subject", "surrogate"),
    ("vote", {"weight": 1.5}, "weight", "1.5 > 1"),
    ("vote", {"weight": -2}, "weight", "-2 < -1"),
    ("vote", {"assertion_hash": DROP}, "assertion_hash", "required"),
    ("vote", {"signatures": [SIG, {**SIG, "agent_id": H2}]}, "signatures", "exactly one"),
    ("vote", {"kind": "assertion"}, "kind", "'vote'"),
    ("epoch", {"name": ""}, "name", "must not be empty"),
    ("epoch", {"name": "n" * 129}, "name", "longer than 128"),
    ("epoch", {"description": "d" * 4097}, "description", "longer than 4096"),
    ("epoch", {"supersedes": [H1, H1.upper()]}, "supersedes", "repeats"),
    ("epoch", {"supersedes": ["nope"]}, "supersedes.0", "64 hex"),
    ("epoch", {"supersedes": H1}, "supersedes", "list"),
    ("supersession", {"reason": DROP}, "reason", "required"),
    ("supersession", {"reason": "r" * 4097}, "reason", "longer than 4096"),
    ("supersession", {"type": "Delete"}, "type", "unknown supersession type"),
    ("supersession", {"replacement_hash": H1}, "replacement_hash", "differ"),
    ("alias", {"canonical": "Ozempic"}, "canonical", "itself"),
    ("alias", {"alias": "a/./b"}, "alias", "'.'"),
    ("outcome", {"accurate": "yes"}, "accurate", "true or false"),
    ("outcome", {"accurate": 1}, "accurate", "true or false"),
    ("outcome", {"agent_id": DROP}, "agent_id", "required"),
]


def _payload(kind: str, changes: dict[str, Any]) -> dict[str, Any]:
    payload = dict(BASES[kind])
    for key, value in changes.items():
        if value is DROP:
            payload.pop(key, None)
        else:
            payload[key] = value
    return payload


@pytest.mark.parametrize(("kind", "changes", "field", "problem"), CASES)
def test_error_names_its_field(
    kind: str, changes: dict[str, Any], field: str, problem: str
) -> None:
    with pytest.raises(InvalidRequest) as info:
        prepare_record(
            kind,
            _payload(kind, changes),
            now_s=NOW,
            scheme_tiers=DEFAULT_SCHEME_TIERS,
            require_signatures=False,
        )
    error = info.value
    assert error.code == "invalid_request"
    fields = [detail["field"] for detail in error.details]
    assert field in fields, error.details
    detail = next(d for d in error.details if d["field"] == field)
    assert problem in detail["problem"], detail
    assert "\n" not in error.message
    assert error.message.startswith(f"{error.details[0]['field']}: ")
    assert error.to_dict()["error"]["details"] == error.details


def test_there_are_many_cases() -> None:
    assert len(CASES) >= 30


@pytest.mark.parametrize("payload", [None, [], "x", 3, True])
def test_non_object_payload(payload: Any) -> None:
    with pytest.raises(InvalidRequest) as info:
        prepare_record(
            "assertion",
            payload,
            now_s=NOW,
            scheme_tiers=DEFAULT_SCHEME_TIERS,
            require_signatures=False,
        )
    assert info.value.details[0]["field"] == "body"


def test_unknown_kind() -> None:
    with pytest.raises(InvalidRequest) as info:
        prepare_record(
            "opinion", {}, now_s=NOW, scheme_tiers=DEFAULT_SCHEME_TIERS, require_signatures=False
        )
    assert info.value.details == [
        {
            "field": "kind",
            "problem": "unknown record kind 'opinion'; expected one of assertion, vote, epoch, "
            "supersession, alias, outcome, agent_tier, quarantine_decision, source, retraction",
        }
    ]


def test_several_problems_reported_together() -> None:
    with pytest.raises(InvalidRequest) as info:
        prepare_record(
            "assertion",
            {"subject": "a", "predicate": "", "object": 1, "confidence": 2},
            now_s=NOW,
            scheme_tiers=DEFAULT_SCHEME_TIERS,
            require_signatures=False,
        )
    assert [d["field"] for d in info.value.details] == ["predicate", "confidence"]
    assert info.value.message == "predicate: must not be empty (and 1 more problem)"


def test_signatures_required_by_policy() -> None:
    with pytest.raises(InvalidRequest) as info:
        prepare_record(
            "assertion",
            ASSERTION,
            now_s=NOW,
            scheme_tiers=DEFAULT_SCHEME_TIERS,
            require_signatures=True,
        )
    assert info.value.details == [
        {
            "field": "signatures",
            "problem": "at least one signature is required (STEMEDB_REQUIRE_SIGNATURES=true)",
        }
    ]
