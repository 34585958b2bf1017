"""Field types shared by the record models: enums with their input aliases,
hex ids, timestamps, bounded numbers and concept paths.

Every `Annotated` type here is declarative (a pydantic core type plus
validators plus an explicit JSON schema), so the models stay usable for the
OpenAPI document. Validators raise ValueError with a short problem text that
`stemedb.records.problems` turns into `{"field", "problem"}` details.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from enum import IntEnum, StrEnum
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, Strict, WithJsonSchema

from stemedb.canonical import format_number
from stemedb.paths import MAX_PATH_LENGTH, check_path, path_scheme

MAX_SAFE_INTEGER = 2**53 - 1
MAX_TEXT_BYTES = 64 * 1024
MAX_SOURCE = 2048
MAX_PREDICATE = 256
MAX_SIGNATURES = 16
MAX_NAME = 128
MAX_LONG_TEXT = 4096


class SourceClass(IntEnum):
    """Authority tiers; the value is the tier (lower = more authoritative)."""

    Regulatory = 0
    Clinical = 1
    Observational = 2
    Expert = 3
    Community = 4
    Anecdotal = 5


SOURCE_CLASS_ALIASES: dict[str, SourceClass] = {
    "PeerReviewed": SourceClass.Clinical,
    "Informal": SourceClass.Community,
}


class Lifecycle(StrEnum):
    Proposed = "Proposed"
    UnderReview = "UnderReview"
    Approved = "Approved"
    Deprecated = "Deprecated"
    Rejected = "Rejected"


class SupersessionType(StrEnum):
    Invalidate = "Invalidate"
    Correct = "Correct"


class ObjectType(StrEnum):
    Text = "Text"
    Number = "Number"
    Boolean = "Boolean"
    Reference = "Reference"


def _fold(text: str) -> str:
    """Case-insensitive, snake/kebab-case-insensitive lookup key."""
    return re.sub(r"[\s_\-]", "", text).lower()


_SOURCE_CLASS_KEYS: dict[str, SourceClass] = {
    **{_fold(member.name): member for member in SourceClass},
    **{_fold(name): member for name, member in SOURCE_CLASS_ALIASES.items()},
}


def _choices(names: list[str]) -> str:
    return ", ".join(names)


def parse_source_class(value: object) -> SourceClass:
    """`Clinical`, `clinical`, `PEER_REVIEWED`, `peer-reviewed` → SourceClass.Clinical."""
    if isinstance(value, SourceClass):
        return value
    if isinstance(value, str):
        found = _SOURCE_CLASS_KEYS.get(_fold(value))
        if found is not None:
            return found
    names = [m.name for m in SourceClass] + list(SOURCE_CLASS_ALIASES)
    raise ValueError(f"unknown source class {value!r}; expected one of {_choices(names)}")


def parse_lifecycle(value: object) -> Lifecycle:
    """`Proposed`, `under_review`, `UNDERREVIEW` → Lifecycle."""
    if isinstance(value, str):
        key = _fold(value)
        for member in Lifecycle:
            if _fold(member.value) == key:
                return member
    names = [m.value for m in Lifecycle]
    raise ValueError(f"unknown lifecycle {value!r}; expected one of {_choices(names)}")


def parse_supersession_type(value: object) -> SupersessionType:
    if isinstance(value, str):
        for member in SupersessionType:
            if member.value.lower() == value.strip().lower():
                return member
    names = [m.value for m in SupersessionType]
    raise ValueError(f"unknown supersession type {value!r}; expected one of {_choices(names)}")


def parse_object_type(value: object) -> ObjectType:
    if isinstance(value, str):
        for member in ObjectType:
            if member.value.lower() == value.strip().lower():
                return member
    names = [m.value for m in ObjectType]
    raise ValueError(f"unknown object type {value!r}; expected one of {_choices(names)}")


_URI_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*):")


def infer_source_class(
    source: str | None, subject: str | None, scheme_tiers: Mapping[str, int]
) -> SourceClass:
    """The default source class: the tier of `source`'s URI scheme if the table
    knows it, else of `subject`'s path scheme, else Anecdotal."""
    candidates: list[str | None] = []
    if source:
        match = _URI_SCHEME.match(source)
        candidates.append(match.group(1).lower() if match else None)
    if subject:
        candidates.append(path_scheme(subject))
    for scheme in candidates:
        if scheme is not None and scheme in scheme_tiers:
            tier = scheme_tiers[scheme]
            if isinstance(tier, int) and 0 <= tier <= 5:
                return SourceClass(tier)
    return SourceClass.Anecdotal


# ---------------------------------------------------------------- validators


def _hex(length: int) -> Any:
    pattern = re.compile(f"[0-9a-fA-F]{{{length}}}")

    def check(value: str) -> str:
        if not pattern.fullmatch(value):
            raise ValueError(f"expected {length} hex characters, got {_show(value)}")
        return value.lower()

    return check


def _show(value: str, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 4] + "...'"


def _integral(value: Any) -> Any:
    """Let a JSON number like `1700000000.0` stand for an integer."""
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    return value


def _timestamp_range(value: int) -> int:
    if value < 0:
        raise ValueError(f"{value} < 0")
    if value > MAX_SAFE_INTEGER:
        raise ValueError(f"{value} is larger than 2^53 - 1")
    return value


def _nonfinite(value: float) -> str:
    return "NaN" if math.isnan(value) else ("-Infinity" if value < 0 else "Infinity")


def _bounded(lo: float, hi: float) -> Any:
    def check(value: float) -> float:
        if not math.isfinite(value):
            raise ValueError(f"{_nonfinite(value)} is not a finite number")
        if value < lo:
            raise ValueError(f"{format_number(value)} < {format_number(lo)}")
        if value > hi:
            raise ValueError(f"{format_number(value)} > {format_number(hi)}")
        return value

    return check


def _no_control(value: str) -> str | None:
    match = re.search("[\x00-\x1f\x7f-\x9f]", value)
    return None if match is None else f"contains the control character U+{ord(match.group()):04X}"


def _predicate(value: str) -> str:
    if not value:
        raise ValueError("must not be empty")
    if len(value) > MAX_PREDICATE:
        raise ValueError(f"longer than {MAX_PREDICATE} characters ({len(value)})")
    problem = _no_control(value)
    if problem:
        raise ValueError(problem)
    return value


def _max_len(limit: int, *, allow_empty: bool = True) -> Any:
    def check(value: str) -> str:
        if not allow_empty and not value:
            raise ValueError("must not be empty")
        if len(value) > limit:
            raise ValueError(f"longer than {limit} characters ({len(value)})")
        return value

    return check


def _source_class_name(value: Any) -> str:
    return parse_source_class(value).name


def _lifecycle_name(value: Any) -> str:
    return parse_lifecycle(value).value


def _supersession_type_name(value: Any) -> str:
    return parse_supersession_type(value).value


def _strict_str(value: Any) -> Any:
    if not isinstance(value, str):
        raise ValueError("expected a string")
    return value


def check_text_value(value: str) -> str:
    size = len(value.encode("utf-8", "surrogatepass"))
    if size > MAX_TEXT_BYTES:
        raise ValueError(f"Text longer than 64 KiB ({size} bytes)")
    return value


def check_number_value(value: Any) -> int | float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("expected a number")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{_nonfinite(value)} is not a finite number")
    if isinstance(value, int) and abs(value) > 2**53:
        try:  # beyond the exact range of a double: keep what JSON readers will see
            return float(value)
        except OverflowError:
            raise ValueError("number too large") from None
    return value


# ---------------------------------------------------------------- field types

Hex64 = Annotated[
    str,
    Strict(),
    AfterValidator(_hex(64)),
    WithJsonSchema({"type": "string", "pattern": "^[0-9a-fA-F]{64}$"}),
]
Hex128 = Annotated[
    str,
    Strict(),
    AfterValidator(_hex(128)),
    WithJsonSchema({"type": "string", "pattern": "^[0-9a-fA-F]{128}$"}),
]
Timestamp = Annotated[
    int,
    BeforeValidator(_integral),
    Strict(),
    AfterValidator(_timestamp_range),
    WithJsonSchema({"type": "integer", "minimum": 0, "description": "Unix seconds"}),
]
ConceptPath = Annotated[
    str,
    Strict(),
    AfterValidator(check_path),
    WithJsonSchema(
        {
            "type": "string",
            "minLength": 1,
            "maxLength": MAX_PATH_LENGTH,
            "description": "concept path `[scheme://]segment(/segment)*`",
            "examples": ["drugs/semaglutide"],
        }
    ),
]
Predicate = Annotated[
    str,
    Strict(),
    AfterValidator(_predicate),
    WithJsonSchema({"type": "string", "minLength": 1, "maxLength": MAX_PREDICATE}),
]
Confidence = Annotated[
    float,
    Strict(),
    AfterValidator(_bounded(0.0, 1.0)),
    WithJsonSchema({"type": "number", "minimum": 0, "maximum": 1}),
]
Weight = Annotated[
    float,
    Strict(),
    AfterValidator(_bounded(-1.0, 1.0)),
    WithJsonSchema({"type": "number", "minimum": -1, "maximum": 1}),
]
SourceText = Annotated[
    str,
    Strict(),
    AfterValidator(_max_len(MAX_SOURCE, allow_empty=False)),
    WithJsonSchema({"type": "string", "minLength": 1, "maxLength": MAX_SOURCE}),
]
SourceClassName = Annotated[
    str,
    BeforeValidator(_strict_str),
    AfterValidator(_source_class_name),
    WithJsonSchema(
        {
            "type": "string",
            "description": "Regulatory, Clinical, Observational, Expert, Community or "
            "Anecdotal (case-insensitive, snake_case accepted; aliases PeerReviewed → "
            "Clinical, Informal → Community)",
            "examples": [m.name for m in SourceClass],
        }
    ),
]
LifecycleName = Annotated[
    str,
    BeforeValidator(_strict_str),
    AfterValidator(_lifecycle_name),
    WithJsonSchema(
        {
            "type": "string",
            "description": "Proposed, UnderReview, Approved, Deprecated or Rejected "
            "(case-insensitive, snake_case accepted)",
            "examples": [m.value for m in Lifecycle],
        }
    ),
]
SupersessionTypeName = Annotated[
    str,
    BeforeValidator(_strict_str),
    AfterValidator(_supersession_type_name),
    WithJsonSchema({"type": "string", "examples": ["Invalidate", "Correct"]}),
]

Name = Annotated[
    str,
    Strict(),
    AfterValidator(_max_len(MAX_NAME, allow_empty=False)),
    WithJsonSchema({"type": "string", "minLength": 1, "maxLength": MAX_NAME}),
]
LongText = Annotated[
    str,
    Strict(),
    AfterValidator(_max_len(MAX_LONG_TEXT)),
    WithJsonSchema({"type": "string", "maxLength": MAX_LONG_TEXT}),
]
