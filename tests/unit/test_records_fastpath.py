"""The record preparation fast paths equal the straightforward reference code.

Each fast path is compared, on generated inputs, with a copy of the simple
implementation it replaced, kept here:

* `find_lone_surrogate` (a name-free pre-scan before the naming walk);
* the enum parsers (dict lookups instead of folding every member);
* `prepare_record` (canonical JSON once for both texts, the digest reused for
  unsigned records): the same PreparedRecord, or the same error with the same
  message and details, as the original sequence of steps.
"""

from __future__ import annotations

import math
import re
from operator import itemgetter
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stemedb.canonical import _reference as reference_json
from stemedb.config import DEFAULT_SCHEME_TIERS
from stemedb.crypto import public_key_hex, sha3_256, sign, signing_message, verify_signature
from stemedb.errors import InvalidRequest, InvalidSignature, StemeError
from stemedb.records import (
    REQUIRED_SIGNATURE_PROBLEM,
    Lifecycle,
    ObjectType,
    PreparedRecord,
    SourceClass,
    SupersessionType,
    parse_lifecycle,
    parse_source_class,
    parse_supersession_type,
    prepare_record,
)
from stemedb.records.fields import (
    SOURCE_CLASS_ALIASES,
    _lifecycle_name,
    _source_class_name,
    _supersession_type_name,
    object_type_name,
    parse_object_type,
)
from stemedb.records.prepare import _validate
from stemedb.records.problems import field_name, find_lone_surrogate

NOW = 1_700_000_000
SEEDS = [bytes([n]) * 32 for n in (1, 2, 3)]
AGENTS = [public_key_hex(seed) for seed in SEEDS]

# ---- find_lone_surrogate -------------------------------------------------------------

_LONE = re.compile("[\ud800-\udfff]")


def _ref_has(text: str) -> bool:
    return not text.isascii() and _LONE.search(text) is not None


def reference_find_lone_surrogate(value: Any) -> str | None:
    stack: list[tuple[Any, tuple[int | str, ...]]] = [(value, ())]
    while stack:
        item, loc = stack.pop()
        if isinstance(item, str):
            if _ref_has(item):
                return field_name(loc)
        elif isinstance(item, dict):
            children: list[tuple[Any, tuple[int | str, ...]]] = []
            for key, child in item.items():
                if isinstance(key, str) and _ref_has(key):
                    return field_name((*loc, key))
                children.append((child, (*loc, key)))
            stack.extend(reversed(children))
        elif isinstance(item, list):
            stack.extend(reversed([(child, (*loc, i)) for i, child in enumerate(item)]))
    return None


class Text(str):
    pass


chars = st.one_of(
    st.sampled_from(
        ["\ud800", "\udc00", "\udfff", "\U0001f600", "\ue000", "é", "a", "_", "-", " "]
    ),
    st.characters(),
)
texts = st.lists(chars, max_size=6).map("".join)
keys = st.one_of(texts, st.integers(min_value=0, max_value=3), st.none())
leaves = st.one_of(
    texts,
    texts.map(Text),
    st.integers(),
    st.floats(allow_nan=True),
    st.booleans(),
    st.none(),
    st.tuples(texts),  # not walked by either
)
payloads = st.recursive(
    leaves,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(keys, children, max_size=5)
    ),
    max_leaves=30,
)


@settings(max_examples=800)
@given(payloads)
def test_find_lone_surrogate_equals_the_reference(value: Any) -> None:
    assert find_lone_surrogate(value) == reference_find_lone_surrogate(value)


def test_find_lone_surrogate_names_the_first_field() -> None:
    payload = {"a": ["ok", {"\ud800": 1}], "b": "\udfff"}
    assert find_lone_surrogate(payload) == "a.1.\ud800"
    assert find_lone_surrogate({"a": "x", "b": {"c": "\U0001f600\udc00"}}) == "b.c"
    assert find_lone_surrogate({"a": "\U0001f600", "b": ["é"]}) is None


# ---- enum parsers ----------------------------------------------------------------------


def _ref_fold(text: str) -> str:
    return re.sub(r"[\s_\-]", "", text).lower()


def ref_parse_source_class(value: object) -> SourceClass:
    table = {
        **{_ref_fold(member.name): member for member in SourceClass},
        **{_ref_fold(name): member for name, member in SOURCE_CLASS_ALIASES.items()},
    }
    if isinstance(value, SourceClass):
        return value
    if isinstance(value, str):
        found = table.get(_ref_fold(value))
        if found is not None:
            return found
    names = [m.name for m in SourceClass] + list(SOURCE_CLASS_ALIASES)
    raise ValueError(f"unknown source class {value!r}; expected one of {', '.join(names)}")


def ref_parse_lifecycle(value: object) -> Lifecycle:
    if isinstance(value, str):
        key = _ref_fold(value)
        for member in Lifecycle:
            if _ref_fold(member.value) == key:
                return member
    names = [m.value for m in Lifecycle]
    raise ValueError(f"unknown lifecycle {value!r}; expected one of {', '.join(names)}")


def ref_parse_supersession_type(value: object) -> SupersessionType:
    if isinstance(value, str):
        for member in SupersessionType:
            if member.value.lower() == value.strip().lower():
                return member
    names = [m.value for m in SupersessionType]
    raise ValueError(f"unknown supersession type {value!r}; expected one of {', '.join(names)}")


def ref_parse_object_type(value: object) -> ObjectType:
    if isinstance(value, str):
        for member in ObjectType:
            if member.value.lower() == value.strip().lower():
                return member
    names = [m.value for m in ObjectType]
    raise ValueError(f"unknown object type {value!r}; expected one of {', '.join(names)}")


def outcome(func: Any, value: Any) -> tuple[str, Any]:
    try:
        result = func(value)
    except ValueError as exc:
        return ("error", str(exc))
    return ("ok", (type(result), result))


SPELLINGS = (
    [m.name for m in SourceClass]
    + list(SOURCE_CLASS_ALIASES)
    + [m.value for m in Lifecycle]
    + [m.value for m in SupersessionType]
    + [m.value for m in ObjectType]
    + ["peer_reviewed", "PEER-REVIEWED", "under review", "UNDER_REVIEW", "İnformal", "Ｔext"]
)


def _respell(draw: Any, word: str) -> str:
    out = []
    for char in word:
        out.append(draw(st.sampled_from([char, char.lower(), char.upper()])))
        out.append(draw(st.sampled_from(["", "", "", "_", "-", " ", "\t", "\u00a0", "\u2028"])))
    pad = st.sampled_from(["", " ", "\n", "\u3000", "_", "x"])
    return draw(pad) + "".join(out) + draw(pad)


@st.composite
def spellings(draw: Any) -> Any:
    choice = draw(st.integers(min_value=0, max_value=3))
    if choice == 0:
        return _respell(draw, draw(st.sampled_from(SPELLINGS)))
    if choice == 1:
        return draw(st.sampled_from(SPELLINGS))
    if choice == 2:
        return draw(texts)
    return draw(
        st.sampled_from(
            [None, 1, 0, 2.5, True, [], {}, SourceClass.Clinical, Lifecycle.Approved, b"Text"]
        )
    )


@settings(max_examples=1500)
@given(spellings())
def test_enum_parsers_equal_the_reference(value: Any) -> None:
    pairs = [
        (parse_source_class, ref_parse_source_class),
        (parse_lifecycle, ref_parse_lifecycle),
        (parse_supersession_type, ref_parse_supersession_type),
        (parse_object_type, ref_parse_object_type),
    ]
    for new, ref in pairs:
        assert outcome(new, value) == outcome(ref, value)


@settings(max_examples=800)
@given(spellings())
def test_stored_spellings_equal_the_enum_attributes(value: Any) -> None:
    pairs = [
        (_source_class_name, lambda v: ref_parse_source_class(v).name),
        (_lifecycle_name, lambda v: ref_parse_lifecycle(v).value),
        (_supersession_type_name, lambda v: ref_parse_supersession_type(v).value),
        (object_type_name, lambda v: ref_parse_object_type(v).value),
    ]
    for new, ref in pairs:
        got, want = outcome(new, value), outcome(ref, value)
        assert got == want
        if got[0] == "ok":  # a plain str, not the enum member
            assert got[1][0] is str


# ---- prepare_record ---------------------------------------------------------------------


def reference_prepare(
    kind: str, payload: Any, *, now_s: int, require_signatures: bool
) -> PreparedRecord:
    """The original sequence: digest, signature checks, then the body, each
    canonical text computed separately by the reference writer."""
    model = _validate(kind, payload, now_s)
    record = model.unsigned_record(now_s=now_s, scheme_tiers=DEFAULT_SCHEME_TIERS)
    digest = sha3_256(reference_json(record).encode("utf-8"))
    signatures = model.signatures or []
    if not signatures:
        if require_signatures:
            raise InvalidRequest.field("signatures", REQUIRED_SIGNATURE_PROBLEM)
        body = reference_json(record)
        return PreparedRecord(kind, record, body, sha3_256(body.encode("utf-8")), digest, None)
    entries: list[dict[str, Any]] = []
    first_index: dict[str, int] = {}
    for index, sig in enumerate(signatures):
        if sig.agent_id in first_index:
            raise InvalidRequest.field(
                f"signatures.{index}.agent_id",
                f"duplicate agent_id (same as signatures.{first_index[sig.agent_id]})",
            )
        first_index[sig.agent_id] = index
        entries.append({"agent_id": sig.agent_id, "signature": sig.signature})
    message = signing_message(kind, digest)
    failures = [
        (index, entry["agent_id"])
        for index, entry in enumerate(entries)
        if not verify_signature(entry["agent_id"], entry["signature"], message)
    ]
    if failures:
        index, agent_id = failures[0]
        raise InvalidSignature(
            f"signatures.{index}: the signature of agent {agent_id} does not match the "
            f"normalised {kind} record (sign the normalised form; POST /v1/normalize returns "
            "it with the message to sign)",
            [
                {
                    "field": f"signatures.{i}.signature",
                    "problem": f"does not verify for agent {agent} over the normalised record",
                }
                for i, agent in failures
            ],
        )
    entries.sort(key=itemgetter("agent_id"))
    record["signatures"] = entries
    body = reference_json(record)
    return PreparedRecord(
        kind, record, body, sha3_256(body.encode("utf-8")), digest, entries[0]["agent_id"]
    )


def prepared_outcome(func: Any, kind: str, payload: Any, require: bool) -> tuple[str, Any]:
    try:
        result = func(kind, payload, now_s=NOW, require_signatures=require)
    except StemeError as exc:
        return ("error", (type(exc), str(exc), exc.details))
    return ("ok", result)


def fast_prepare(
    kind: str, payload: Any, *, now_s: int, require_signatures: bool
) -> PreparedRecord:
    return prepare_record(
        kind,
        payload,
        now_s=now_s,
        scheme_tiers=DEFAULT_SCHEME_TIERS,
        require_signatures=require_signatures,
    )


def _signature_for(seed: bytes, kind: str, unsigned: dict[str, Any]) -> str:
    """A correct signature when `unsigned` is already normalised; else a wrong one."""
    try:
        digest = sha3_256(reference_json(unsigned).encode("utf-8"))
    except (TypeError, ValueError):  # not JSON (the record is rejected before any check)
        return "00" * 64
    return sign(seed, signing_message(kind, digest))


segment_chars = st.sampled_from([*"abcXYZ019_-. é", "\U0001f600", "\ue000", "\\", '"'])
segments = st.text(alphabet=segment_chars, min_size=1, max_size=6).filter(
    lambda text: text not in {".", ".."}
)
paths = st.one_of(
    st.lists(segments, min_size=1, max_size=3).map("/".join),
    st.sampled_from(["fda://drugs/x", "PubMed://a/b/", "x"]),
)
bad_texts = st.sampled_from(["", "a//b", "a/\ud800", "p\x01", "a/../b", "\udc00"])
numbers = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False),
    st.integers(min_value=-(2**60), max_value=2**60),
    st.sampled_from([-0.0, 1e21, 1e-7, 0.1, 2**53 + 1, 10**400, math.nan]),
)
objects = st.one_of(
    paths,
    numbers,
    st.booleans(),
    st.fixed_dictionaries({"type": st.just("Text"), "value": paths}),
    st.fixed_dictionaries({"Number": numbers}),
    st.fixed_dictionaries({"reference": paths}),
    st.fixed_dictionaries({"type": st.just("number"), "value": st.sampled_from(["1", None])}),
)


def _mostly(draw: Any, good: st.SearchStrategy[Any], bad: st.SearchStrategy[Any]) -> Any:
    """Mostly a good value (hypothesis favours 0, hence 7), so most records get
    through validation and the comparison covers the hashing and signing steps."""
    return draw(bad) if draw(st.integers(min_value=0, max_value=19)) == 7 else draw(good)


@st.composite
def assertion_payloads(draw: Any) -> tuple[dict[str, Any], bool]:
    unsigned: dict[str, Any] = {
        "subject": _mostly(draw, paths, bad_texts),
        "predicate": _mostly(draw, paths, bad_texts),
        "object": draw(objects),
        "confidence": _mostly(
            draw, st.floats(min_value=0, max_value=1), st.sampled_from([1.5, math.inf, "0.5"])
        ),
    }
    optional_values = {
        "source": _mostly(draw, st.sampled_from(["pubmed://1", "fda://x", "note"]), bad_texts),
        "source_class": _mostly(
            draw, st.sampled_from(["Clinical", "peer_reviewed", "ANECDOTAL"]), st.just("nope")
        ),
        "lifecycle": _mostly(draw, st.sampled_from(["Proposed", "under_review"]), st.just("x")),
        "timestamp": _mostly(
            draw, st.sampled_from([NOW - 5, NOW, 1.7e9]), st.sampled_from([NOW + 10_000, -1])
        ),
        "kind": _mostly(draw, st.just("assertion"), st.just("vote")),
        "epoch": _mostly(draw, st.just("AB" * 32), st.just("zz")),
        "concept_path": _mostly(draw, st.none(), paths),
        "extra_field": _mostly(draw, st.just(None), st.just(1)),
    }
    for name, value in optional_values.items():
        if value is not None or (name != "extra_field" and draw(st.booleans())):
            unsigned[name] = value  # null is "absent" for a declared field
    # Sign the normalised form when it is valid (so most records verify).
    try:
        normalised = _validate("assertion", dict(unsigned), NOW).unsigned_record(
            now_s=NOW, scheme_tiers=DEFAULT_SCHEME_TIERS
        )
    except InvalidRequest:
        normalised = {**unsigned, "kind": "assertion"}
    count = draw(st.integers(min_value=0, max_value=3))
    signers = draw(st.permutations([0, 1, 2]))[:count]
    if draw(st.integers(min_value=0, max_value=9)) == 7:
        signers = [*signers, *signers[:1]]  # a duplicate agent
    signatures = []
    for index in signers:
        entry: dict[str, Any] = {
            "agent_id": draw(st.sampled_from([AGENTS[index], AGENTS[index].upper()])),
            "signature": _signature_for(SEEDS[index], "assertion", normalised),
        }
        if draw(st.integers(min_value=0, max_value=3)) == 2:  # a wrong signature
            entry["signature"] = _signature_for(SEEDS[(index + 1) % 3], "assertion", normalised)
        if draw(st.integers(min_value=0, max_value=5)) == 3:  # refused since v0.2, both ways
            entry["timestamp"] = draw(st.sampled_from([NOW, NOW - 1, 1.7e9]))
        signatures.append(entry)
    payload = dict(unsigned)
    if signatures or draw(st.booleans()):
        payload["signatures"] = signatures
    return payload, draw(st.booleans())


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(assertion_payloads())
def test_prepare_record_equals_the_reference(case: tuple[dict[str, Any], bool]) -> None:
    payload, require = case
    got = prepared_outcome(fast_prepare, "assertion", dict(payload), require)
    want = prepared_outcome(reference_prepare, "assertion", dict(payload), require)
    assert got == want
    if got[0] == "ok":
        prepared = got[1]
        assert list(prepared.record) == list(want[1].record)  # same key order stored
        if prepared.agent_id is None:
            assert prepared.digest == prepared.hash


OTHER_KINDS = {
    "vote": {"assertion_hash": "ab" * 32, "weight": -0.5},
    "epoch": {"name": "e1", "description": "d\U0001f600", "supersedes": ["cd" * 32]},
    "supersession": {"target_hash": "ab" * 32, "reason": "wrong", "type": " correct "},
    "alias": {"alias": "A://x/", "canonical": "a://y"},
    "outcome": {"agent_id": AGENTS[1], "assertion_hash": "ab" * 32, "accurate": True},
}


@settings(max_examples=60, deadline=None)
@given(
    st.sampled_from(sorted(OTHER_KINDS)),
    st.integers(min_value=0, max_value=2),
    st.booleans(),
    st.booleans(),
)
def test_other_kinds_equal_the_reference(kind: str, signer: int, signed: bool, bad: bool) -> None:
    payload: dict[str, Any] = dict(OTHER_KINDS[kind])
    if signed:
        normalised = _validate(kind, dict(payload), NOW).unsigned_record(
            now_s=NOW, scheme_tiers=DEFAULT_SCHEME_TIERS
        )
        seed = SEEDS[(signer + 1) % 3] if bad else SEEDS[signer]
        payload["signatures"] = [
            {"agent_id": AGENTS[signer], "signature": _signature_for(seed, kind, normalised)}
        ]
    for require in (False, True):
        got = prepared_outcome(fast_prepare, kind, dict(payload), require)
        assert got == prepared_outcome(reference_prepare, kind, dict(payload), require)
