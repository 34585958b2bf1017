"""Record models and normalisation: input forms, enum aliases, defaults, other kinds."""

from __future__ import annotations

import json
from typing import Any

import pytest

from stemedb.canonical import canonical_json
from stemedb.config import DEFAULT_SCHEME_TIERS
from stemedb.crypto import sha3_256, sha3_hex
from stemedb.records import (
    MODELS,
    RECORD_KINDS,
    Lifecycle,
    PreparedRecord,
    SourceClass,
    infer_source_class,
    normalise_unsigned,
    parse_lifecycle,
    parse_source_class,
    prepare_record,
    record_from_body,
)

NOW = 1_700_000_000
H1 = "ab" * 32
H2 = "cd" * 32


def prep(payload: Any, kind: str = "assertion", **kw: Any) -> PreparedRecord:
    options: dict[str, Any] = {
        "now_s": NOW,
        "scheme_tiers": DEFAULT_SCHEME_TIERS,
        "require_signatures": False,
    }
    options.update(kw)
    return prepare_record(kind, payload, **options)


def base(**fields: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "subject": "drugs/semaglutide",
        "predicate": "gastroparesis_risk",
        "object": "elevated",
        "confidence": 0.9,
    }
    record.update(fields)
    return record


def test_minimal_assertion_gets_every_default() -> None:
    prepared = prep(base())
    assert prepared.record == {
        "subject": "drugs/semaglutide",
        "predicate": "gastroparesis_risk",
        "object": {"type": "Text", "value": "elevated"},
        "confidence": 0.9,
        "source_class": "Anecdotal",
        "lifecycle": "Proposed",
        "timestamp": NOW,
        "kind": "assertion",
    }
    assert prepared.kind == "assertion"
    assert prepared.agent_id is None
    assert prepared.body == canonical_json(prepared.record)
    assert prepared.hash == sha3_256(prepared.body.encode())
    assert prepared.digest == prepared.hash  # no signatures: same content
    assert prepared.hash_hex == prepared.hash.hex()
    assert record_from_body(prepared.body) == prepared.record


@pytest.mark.parametrize(
    ("obj", "tagged"),
    [
        ({"type": "Text", "value": "x"}, {"type": "Text", "value": "x"}),
        ({"type": "text", "value": "x"}, {"type": "Text", "value": "x"}),
        ({"Text": "x"}, {"type": "Text", "value": "x"}),
        ("x", {"type": "Text", "value": "x"}),
        ("", {"type": "Text", "value": ""}),
        ({"type": "Number", "value": 2.5}, {"type": "Number", "value": 2.5}),
        ({"Number": 3}, {"type": "Number", "value": 3}),
        (42, {"type": "Number", "value": 42}),
        (-0.5, {"type": "Number", "value": -0.5}),
        ({"type": "Boolean", "value": False}, {"type": "Boolean", "value": False}),
        ({"boolean": True}, {"type": "Boolean", "value": True}),
        (True, {"type": "Boolean", "value": True}),
        (
            {"type": "Reference", "value": "FDA://drugs/x/"},
            {"type": "Reference", "value": "fda://drugs/x"},
        ),
        ({"Reference": "drugs/semaglutide"}, {"type": "Reference", "value": "drugs/semaglutide"}),
    ],
)
def test_object_input_forms(obj: Any, tagged: dict[str, Any]) -> None:
    record = prep(base(object=obj)).record
    assert record["object"] == tagged
    assert type(record["object"]["value"]) is type(tagged["value"])


def test_object_forms_give_the_same_id() -> None:
    ids = {
        prep(base(object=form)).hash
        for form in ("x", {"Text": "x"}, {"type": "Text", "value": "x"})
    }
    assert len(ids) == 1
    numbers = {prep(base(object=form)).hash for form in (1, 1.0, {"Number": 1.0})}
    assert len(numbers) == 1


def test_big_integer_object_normalised_like_a_double() -> None:
    a = prep(base(object=2**53 + 1))
    b = prep(base(object=float(2**53)))
    assert a.hash == b.hash
    assert '"value":9007199254740992' in a.body


def test_text_limit_is_64_kib_of_utf8() -> None:
    assert prep(base(object="x" * 65536)).record["object"]["value"] == "x" * 65536
    assert prep(base(object="é" * 32768))  # 65536 bytes
    with pytest.raises(Exception, match="64 KiB"):
        prep(base(object="é" * 32769))


def test_concept_path_alias_and_subject_normalised() -> None:
    record = dict(base())
    record["concept_path"] = "FDA://drugs/semaglutide/label/"
    del record["subject"]
    prepared = prep(record)
    assert prepared.record["subject"] == "fda://drugs/semaglutide/label"
    assert "concept_path" not in prepared.record


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("Regulatory", "Regulatory"),
        ("REGULATORY", "Regulatory"),
        ("clinical", "Clinical"),
        ("PeerReviewed", "Clinical"),
        ("peer_reviewed", "Clinical"),
        ("peer-reviewed", "Clinical"),
        ("PEER_REVIEWED", "Clinical"),
        ("observational", "Observational"),
        ("Expert", "Expert"),
        ("community", "Community"),
        ("Informal", "Community"),
        ("informal", "Community"),
        ("anecdotal", "Anecdotal"),
    ],
)
def test_source_class_aliases(given: str, expected: str) -> None:
    assert prep(base(source_class=given)).record["source_class"] == expected
    assert parse_source_class(given).name == expected


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("Proposed", "Proposed"),
        ("proposed", "Proposed"),
        ("UnderReview", "UnderReview"),
        ("under_review", "UnderReview"),
        ("UNDER_REVIEW", "UnderReview"),
        ("underreview", "UnderReview"),
        ("approved", "Approved"),
        ("DEPRECATED", "Deprecated"),
        ("Rejected", "Rejected"),
    ],
)
def test_lifecycle_aliases(given: str, expected: str) -> None:
    assert prep(base(lifecycle=given)).record["lifecycle"] == expected
    assert parse_lifecycle(given) is Lifecycle(expected)


def test_source_class_tier_values() -> None:
    assert [(m.name, int(m)) for m in SourceClass] == [
        ("Regulatory", 0),
        ("Clinical", 1),
        ("Observational", 2),
        ("Expert", 3),
        ("Community", 4),
        ("Anecdotal", 5),
    ]


@pytest.mark.parametrize(
    ("source", "subject", "expected"),
    [
        ("fda://label/123", "drugs/x", "Regulatory"),
        ("pubmed://38012345", "drugs/x", "Clinical"),
        ("doi:10.1000/182", "drugs/x", "Clinical"),
        ("PREPRINT://abc", "drugs/x", "Observational"),
        ("wiki://Semaglutide", "fda://drugs/x", "Expert"),  # source first
        ("forum://t/1", "drugs/x", "Community"),
        ("blog://post", "fda://drugs/x", "Anecdotal"),
        ("https://example.org/x", "fda://drugs/x", "Regulatory"),  # unknown → subject
        (None, "faers://drugs/x", "Community"),
        (None, "trial://NCT1/outcome", "Clinical"),
        (None, "drugs/x", "Anecdotal"),
        ("no scheme here", "drugs/x", "Anecdotal"),
        ("https://example.org", "drugs/x", "Anecdotal"),
    ],
)
def test_source_class_inference(source: str | None, subject: str, expected: str) -> None:
    fields: dict[str, Any] = {"subject": subject}
    if source is not None:
        fields["source"] = source
    assert prep(base(**fields)).record["source_class"] == expected


def test_explicit_source_class_beats_inference() -> None:
    record = prep(base(source="fda://x", source_class="Community")).record
    assert record["source_class"] == "Community"


def test_inference_uses_the_table_passed_in() -> None:
    table = {**DEFAULT_SCHEME_TIERS, "https": 2, "fda": 3}
    record = prep(base(source="https://nejm.org/x"), scheme_tiers=table).record
    assert record["source_class"] == "Observational"
    record = prep(base(subject="fda://drugs/x"), scheme_tiers=table).record
    assert record["source_class"] == "Expert"
    assert infer_source_class(None, "drugs/x", table) is SourceClass.Anecdotal


def test_source_hash_default_and_override() -> None:
    record = prep(base(source="pubmed://38012345")).record
    assert record["source_hash"] == sha3_hex(b"pubmed://38012345")
    given = prep(base(source="pubmed://1", source_hash="AB" * 32)).record
    assert given["source_hash"] == "ab" * 32
    alone = prep(base(source_hash=H1)).record
    assert alone["source_hash"] == H1 and "source" not in alone


def test_hex_fields_lower_cased_and_nulls_dropped() -> None:
    record = prep(
        base(parent_hash=H1.upper(), epoch=H2.upper(), source=None, source_class=None)
    ).record
    assert record["parent_hash"] == H1 and record["epoch"] == H2
    assert "source" not in record and "source_hash" not in record
    assert None not in record.values()


def test_timestamp_default_limit_and_integral_float() -> None:
    assert prep(base()).record["timestamp"] == NOW
    assert prep(base(timestamp=NOW + 300)).record["timestamp"] == NOW + 300
    assert prep(base(timestamp=12)).record["timestamp"] == 12
    assert prep(base(timestamp=float(NOW))).record["timestamp"] == NOW
    with pytest.raises(Exception, match="301 s in the future"):
        prep(base(timestamp=NOW + 301))


def test_kind_key_accepted_when_it_matches() -> None:
    assert prep(base(kind="assertion")).hash == prep(base()).hash


def test_confidence_int_and_float_same_id() -> None:
    assert prep(base(confidence=1)).hash == prep(base(confidence=1.0)).hash
    assert prep(base(confidence=0)).hash == prep(base(confidence=0.0)).hash
    assert '"confidence":1,' in prep(base(confidence=1.0)).body


def test_vote() -> None:
    record = prep({"assertion_hash": H1.upper(), "weight": -1}, "vote").record
    assert record == {"assertion_hash": H1, "weight": -1.0, "timestamp": NOW, "kind": "vote"}


def test_epoch_defaults_and_order_kept() -> None:
    record = prep({"name": "GLP-1 era"}, "epoch").record
    assert record == {"name": "GLP-1 era", "supersedes": [], "timestamp": NOW, "kind": "epoch"}
    record = prep({"name": "n", "description": "d", "supersedes": [H2.upper(), H1]}, "epoch").record
    assert record["supersedes"] == [H2, H1]
    assert record["description"] == "d"
    assert prep({"name": "n", "supersedes": None}, "epoch").record["supersedes"] == []


def test_supersession_defaults() -> None:
    record = prep({"target_hash": H1, "reason": "retracted"}, "supersession").record
    assert record == {
        "target_hash": H1,
        "reason": "retracted",
        "type": "Invalidate",
        "timestamp": NOW,
        "kind": "supersession",
    }
    record = prep(
        {"target_hash": H1, "replacement_hash": H2, "reason": "", "type": "correct"},
        "supersession",
    ).record
    assert record["type"] == "Correct" and record["replacement_hash"] == H2


def test_alias() -> None:
    record = prep({"alias": "Ozempic", "canonical": "drugs/semaglutide/"}, "alias").record
    assert record == {
        "alias": "Ozempic",
        "canonical": "drugs/semaglutide",
        "timestamp": NOW,
        "kind": "alias",
    }


def test_outcome() -> None:
    record = prep({"agent_id": H2, "assertion_hash": H1, "accurate": False}, "outcome").record
    assert record == {
        "agent_id": H2,
        "assertion_hash": H1,
        "accurate": False,
        "timestamp": NOW,
        "kind": "outcome",
    }


def test_every_kind_has_a_model_and_a_json_schema() -> None:
    assert RECORD_KINDS == (
        "assertion",
        "vote",
        "epoch",
        "supersession",
        "alias",
        "outcome",
        "agent_tier",
        "quarantine_decision",
        "source",
        "retraction",
    )
    assert set(MODELS) == set(RECORD_KINDS)
    for kind, model in MODELS.items():
        schema = model.model_json_schema()
        json.dumps(schema)
        assert schema["additionalProperties"] is False
        assert "signatures" in schema["properties"], kind
        assert "timestamp" in schema["properties"], kind
    schema = MODELS["assertion"].model_json_schema()
    assert schema["properties"]["confidence"] == {
        "maximum": 1,
        "minimum": 0,
        "title": "Confidence",
        "type": "number",
    }
    assert "anyOf" in schema["properties"]["object"]


def test_normalise_unsigned_shape() -> None:
    out = normalise_unsigned(
        "vote",
        {"assertion_hash": H1, "weight": 0.5, "signatures": [{"agent_id": "junk"}]},
        now_s=NOW,
        scheme_tiers=DEFAULT_SCHEME_TIERS,
    )
    assert set(out) == {"record", "digest", "message"}
    assert "signatures" not in out["record"]
    digest = sha3_256(canonical_json(out["record"]).encode())
    assert out["digest"] == digest.hex()
    assert bytes.fromhex(out["message"]) == b"stemedb/v1/vote\n" + digest


def test_record_from_body_rejects_non_objects() -> None:
    with pytest.raises(ValueError):
        record_from_body("[1]")
