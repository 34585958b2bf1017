"""Signatures over normalised records; ids stable under every harmless change."""

from __future__ import annotations

import json
import random
import time
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stemedb.canonical import canonical_json
from stemedb.config import DEFAULT_SCHEME_TIERS
from stemedb.crypto import public_key_hex, sha3_256, sign, signing_message
from stemedb.errors import InvalidRequest, InvalidSignature
from stemedb.records import PreparedRecord, normalise_unsigned, prepare_record
from stemedb.signing import attach_signatures, make_assertion, sign_record

NOW = 1_700_000_000
SEED_A = bytes([1]) * 32
SEED_B = bytes([2]) * 32
SEED_C = bytes([3]) * 32
AGENT_A = public_key_hex(SEED_A)
H1 = "ab" * 32


def prep(payload: Any, kind: str = "assertion", *, require: bool = True) -> PreparedRecord:
    return prepare_record(
        kind,
        payload,
        now_s=NOW,
        scheme_tiers=DEFAULT_SCHEME_TIERS,
        require_signatures=require,
    )


def signed(**fields: Any) -> dict[str, Any]:
    return make_assertion(
        SEED_A,
        "drugs/semaglutide",
        "gastroparesis_risk",
        fields.pop("obj", "elevated"),
        fields.pop("confidence", 0.9),
        now_s=NOW,
        **fields,
    )


def test_signed_record_passes_and_keeps_its_id() -> None:
    record = signed(source="pubmed://38012345")
    prepared = prep(record)
    assert prepared.agent_id == AGENT_A
    assert prepared.record == record
    again = prep(json.loads(prepared.body))
    assert again.hash == prepared.hash and again.body == prepared.body


def test_sign_record_fills_defaults_before_signing() -> None:
    record = sign_record(
        "assertion",
        {"concept_path": "fda://drugs/x", "predicate": "p", "object": True, "confidence": 1},
        [SEED_A],
        now_s=NOW,
    )
    assert record["timestamp"] == NOW
    assert record["source_class"] == "Regulatory"
    assert record["object"] == {"type": "Boolean", "value": True}
    assert set(record["signatures"][0]) == {"agent_id", "signature"}  # no entry timestamp
    assert prep(record).hash == prep(json.loads(json.dumps(record))).hash


def test_sign_record_uses_current_time_without_now() -> None:
    record = sign_record("vote", {"assertion_hash": H1, "weight": 1}, [SEED_A])
    assert abs(record["timestamp"] - time.time()) < 5
    prepare_record(
        "vote",
        record,
        now_s=record["timestamp"],
        scheme_tiers=DEFAULT_SCHEME_TIERS,
        require_signatures=True,
    )


def test_multiple_signers_sorted_and_first_is_agent() -> None:
    record = sign_record(
        "assertion",
        {"subject": "a", "predicate": "p", "object": "x", "confidence": 0.5},
        [SEED_C, SEED_A, SEED_B],
        now_s=NOW,
    )
    agents = [entry["agent_id"] for entry in record["signatures"]]
    assert agents == sorted(agents)
    reversed_input = dict(record, signatures=list(reversed(record["signatures"])))
    prepared = prep(reversed_input)
    assert prepared.agent_id == agents[0]
    assert prepared.hash == prep(record).hash
    with pytest.raises(ValueError, match="twice"):
        sign_record("assertion", record, [SEED_A, SEED_A], now_s=NOW)


def test_signing_a_different_form_fails_with_a_clear_message() -> None:
    """A client that signs the bare object (not the normalised form) is told so."""
    unsigned = {
        "subject": "a",
        "predicate": "p",
        "object": "x",
        "confidence": 0.5,
        "timestamp": NOW,
    }
    digest = sha3_256(canonical_json({**unsigned, "kind": "assertion"}).encode())
    bad = dict(
        unsigned,
        signatures=[
            {
                "agent_id": AGENT_A,
                "signature": sign(SEED_A, signing_message("assertion", digest)),
            }
        ],
    )
    with pytest.raises(InvalidSignature) as info:
        prep(bad)
    assert "does not match the normalised" in info.value.message
    assert AGENT_A in info.value.message
    assert info.value.details[0]["field"] == "signatures.0.signature"
    assert info.value.code == "invalid_signature"


def test_unsigned_timestamp_default_breaks_signature() -> None:
    """The server's default timestamp differs from the signing time: signature fails."""
    record = signed()
    del record["timestamp"]
    with pytest.raises(InvalidSignature):
        prepare_record(
            "assertion",
            record,
            now_s=NOW + 5,
            scheme_tiers=DEFAULT_SCHEME_TIERS,
            require_signatures=True,
        )


def test_normalize_endpoint_flow() -> None:
    out = normalise_unsigned(
        "assertion",
        {"subject": "a", "predicate": "p", "object": 3, "confidence": 1.0},
        now_s=NOW,
        scheme_tiers=DEFAULT_SCHEME_TIERS,
    )
    signature = sign(SEED_B, bytes.fromhex(out["message"]))
    entry = {"agent_id": public_key_hex(SEED_B), "signature": signature}
    prepared = prep({**out["record"], "signatures": [entry]})
    assert prepared.digest.hex() == out["digest"]
    assert attach_signatures("assertion", out["record"], [SEED_B])["signatures"] == [entry]


def test_domain_separation_vote_signature_replayed_as_assertion() -> None:
    record = signed()
    unsigned = {k: v for k, v in record.items() if k != "signatures"}
    out = normalise_unsigned("assertion", unsigned, now_s=NOW, scheme_tiers=DEFAULT_SCHEME_TIERS)
    vote_message = signing_message("vote", bytes.fromhex(out["digest"]))
    replay = dict(
        record,
        signatures=[{"agent_id": AGENT_A, "signature": sign(SEED_A, vote_message)}],
    )
    with pytest.raises(InvalidSignature):
        prep(replay)


def test_unsigned_allowed_when_policy_off_but_bad_signature_still_fails() -> None:
    record = signed()
    unsigned = {k: v for k, v in record.items() if k != "signatures"}
    assert prep(unsigned, require=False).agent_id is None
    with pytest.raises(InvalidRequest):
        prep(unsigned, require=True)
    tampered = dict(record, confidence=0.8)
    with pytest.raises(InvalidSignature):
        prep(tampered, require=False)


def test_vote_and_outcome_signed() -> None:
    vote = sign_record("vote", {"assertion_hash": H1, "weight": -0.5}, [SEED_A], now_s=NOW)
    assert prep(vote, "vote").agent_id == AGENT_A
    outcome = sign_record(
        "outcome",
        {"agent_id": public_key_hex(SEED_B), "assertion_hash": H1, "accurate": True},
        [SEED_C],
        now_s=NOW,
    )
    prepared = prep(outcome, "outcome")
    assert prepared.agent_id == public_key_hex(SEED_C)
    assert prepared.record["agent_id"] == public_key_hex(SEED_B)
    with pytest.raises(InvalidRequest, match="exactly one"):
        prep(sign_record("vote", vote, [SEED_A, SEED_B], now_s=NOW), "vote")


def test_signature_entries_are_exactly_agent_id_and_signature() -> None:
    """Since v0.2 an entry timestamp (never signed) is refused, naming the field:
    it could otherwise change the record id without the signer's key."""
    record = signed()
    prepared = prep(record)
    assert prepared.record["signatures"] == record["signatures"]
    assert set(prepared.record["signatures"][0]) == {"agent_id", "signature"}
    for extra in ({"timestamp": NOW}, {"timestamp": NOW + 1}, {"note": "x"}):
        entry = {**record["signatures"][0], **extra}
        with pytest.raises(InvalidRequest) as info:
            prep(dict(record, signatures=[entry]))
        (name,) = extra
        assert info.value.details[0]["field"] == f"signatures.0.{name}"
        assert "exactly {agent_id, signature}" in info.value.details[0]["problem"]


def test_upper_case_hex_gives_same_id() -> None:
    record = signed()
    entry = record["signatures"][0]
    upper = dict(
        record,
        signatures=[
            {
                **entry,
                "agent_id": entry["agent_id"].upper(),
                "signature": entry["signature"].upper(),
            }
        ],
    )
    assert prep(upper).hash == prep(record).hash


# ------------------------------------------------------------- properties

_RECORD = signed(source="pubmed://38012345", lifecycle="under_review", parent_hash=H1)
_SIGNATURE = bytes.fromhex(_RECORD["signatures"][0]["signature"])


@settings(max_examples=150, deadline=None)
@given(st.integers(min_value=0, max_value=511))
def test_flipped_signature_bit_always_fails(bit: int) -> None:
    flipped = bytearray(_SIGNATURE)
    flipped[bit // 8] ^= 1 << (bit % 8)
    entry = {**_RECORD["signatures"][0], "signature": bytes(flipped).hex()}
    with pytest.raises(InvalidSignature):
        prep(dict(_RECORD, signatures=[entry]))


_SIGNED_STRING_FIELDS = ["subject", "predicate", "source", "source_hash", "parent_hash"]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(_SIGNED_STRING_FIELDS), st.data())
def test_flipped_character_in_a_signed_field_fails(field: str, data: st.DataObject) -> None:
    value: str = _RECORD[field]
    index = data.draw(st.integers(0, len(value) - 1), label="index")
    old = value[index]
    alphabet = "0123456789abcdef" if field.endswith("hash") else "abcdefghijklmnopqrstuvwxyz0-_:"
    new = data.draw(st.sampled_from([c for c in alphabet if c != old]), label="char")
    tampered = dict(_RECORD, **{field: value[:index] + new + value[index + 1 :]})
    with pytest.raises((InvalidSignature, InvalidRequest)) as info:
        prep(tampered)
    if not isinstance(info.value, InvalidSignature):  # only if the edit made the path invalid
        assert info.value.details[0]["field"] == field


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(["confidence", "timestamp", "object", "lifecycle", "source_class"]))
def test_changed_non_string_field_fails(field: str) -> None:
    changes = {
        "confidence": 0.91,
        "timestamp": NOW - 1,
        "object": "reduced",
        "lifecycle": "Approved",
        "source_class": "Regulatory",
    }
    with pytest.raises(InvalidSignature):
        prep(dict(_RECORD, **{field: changes[field]}))


_texts = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cc", "Cs")), max_size=20
)
_objects = (
    _texts
    | st.booleans()
    | st.integers(-(2**60), 2**60)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.builds(lambda v: {"Text": v}, _texts)
    | st.builds(lambda v: {"type": "number", "value": v}, st.floats(-1e6, 1e6))
)
_assertions = st.fixed_dictionaries(
    {
        "subject": st.sampled_from(["drugs/semaglutide", "FDA://drugs/x/", "a/b c/d"]),
        "predicate": st.text(alphabet="abcdefgh_ XYZ", min_size=1, max_size=12),
        "object": _objects,
        "confidence": st.floats(0, 1) | st.sampled_from([0, 1]),
    },
    optional={
        "source": st.sampled_from(["pubmed://1", "https://x.org/a", "blog://b"]),
        "source_class": st.sampled_from(["peer_reviewed", "INFORMAL", "Expert", None]),
        "lifecycle": st.sampled_from(["under_review", "APPROVED", None]),
        "parent_hash": st.sampled_from([H1, H1.upper()]),
        "timestamp": st.integers(0, NOW + 300),
    },
)


def _reordered(value: dict[str, Any], seed: int) -> dict[str, Any]:
    items = list(value.items())
    random.Random(seed).shuffle(items)
    return dict(items)


@settings(max_examples=120, deadline=None)
@given(_assertions, st.integers(0, 2**32))
def test_normalisation_is_idempotent_and_order_free(payload: dict[str, Any], seed: int) -> None:
    record = sign_record("assertion", payload, [SEED_A, SEED_B], now_s=NOW)
    first = prep(record)
    # normalise → canonical → parse → prepare again: same id, same body
    again = prep(json.loads(first.body))
    assert (again.hash, again.body) == (first.hash, first.body)
    # key order of the input never changes the id
    assert prep(_reordered(record, seed)).hash == first.hash
    # the unsigned record re-normalised is a fixed point
    unsigned = {k: v for k, v in first.record.items() if k != "signatures"}
    out = normalise_unsigned(
        "assertion", unsigned, now_s=NOW + 99, scheme_tiers=DEFAULT_SCHEME_TIERS
    )
    assert out["record"] == unsigned
    assert out["digest"] == first.digest.hex()


@settings(max_examples=60, deadline=None)
@given(st.floats(0, 1), st.integers(0, NOW))
def test_float_formatting_never_changes_an_id(confidence: float, timestamp: int) -> None:
    payload = {"subject": "a", "predicate": "p", "object": 1, "confidence": confidence}
    a = prep({**payload, "timestamp": timestamp}, require=False)
    b = prep({**payload, "timestamp": float(timestamp), "object": 1.0}, require=False)
    c = prep(json.loads(json.dumps({**payload, "timestamp": timestamp})), require=False)
    assert a.hash == b.hash == c.hash
