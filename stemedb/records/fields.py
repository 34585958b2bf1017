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
from collections.abc import Callable, Mapping
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


_FOLD_OUT = re.compile(r"[\s_\-]")


def _fold(text: str) -> str:
    """Case-insensitive, snake/kebab-case-insensitive lookup key."""
    return _FOLD_OUT.sub("", text).lower()


def _strip_lower(text: str) -> str:
    return text.strip().lower()


class _EnumParser:
    """Parse one enum from its accepted spellings with one or two dict lookups.

    `table` maps each accepted canonical spelling to its member; an input is
    looked up as is first (the usual, already-canonical case) and then by its
    `fold`ed key, so `fold` (and its regex) only runs for other spellings. A
    value is accepted iff its folded form equals the folded form of a spelling
    in `table`, exactly as when comparing against every member in turn.
    `text` gives the member's stored spelling (`attr`) without the enum's
    slow property access.
    """

    def __init__(
        self,
        table: dict[str, Any],
        fold: Callable[[str], str],
        attr: str,
        what: str,
        names: list[str],
    ) -> None:
        self.exact = {name: (member, getattr(member, attr)) for name, member in table.items()}
        self.folded = {fold(name): entry for name, entry in self.exact.items()}
        if len(self.folded) != len(self.exact):
            raise ValueError(f"two {what} spellings fold to the same key")
        self.fold = fold
        self.error = f"unknown {what} {{!r}}; expected one of {_choices(names)}"

    def _entry(self, value: object) -> tuple[Any, str]:
        if isinstance(value, str):
            found = self.exact.get(value)
            if found is None:
                found = self.folded.get(self.fold(value))
            if found is not None:
                return found
        raise ValueError(self.error.format(value))

    def parse(self, value: object) -> Any:
        return self._entry(value)[0]

    def text(self, value: object) -> str:
        return self._entry(value)[1]


def _choices(names: list[str]) -> str:
    return ", ".join(names)


_SOURCE_CLASS = _EnumParser(
    {**{member.name: member for member in SourceClass}, **SOURCE_CLASS_ALIASES},
    _fold,
    "name",
    "source class",
    [m.name for m in SourceClass] + list(SOURCE_CLASS_ALIASES),
)
_LIFECYCLE = _EnumParser(
    {member.value: member for member in Lifecycle},
    _fold,
    "value",
    "lifecycle",
    [m.value for m in Lifecycle],
)
_SUPERSESSION_TYPE = _EnumParser(
    {member.value: member for member in SupersessionType},
    _strip_lower,
    "value",
    "supersession type",
    [m.value for m in SupersessionType],
)
_OBJECT_TYPE = _EnumParser(
    {member.value: member for member in ObjectType},
    _strip_lower,
    "value",
    "object type",
    [m.value for m in ObjectType],
)


def parse_source_class(value: object) -> SourceClass:
    """`Clinical`, `clinical`, `PEER_REVIEWED`, `peer-reviewed` → SourceClass.Clinical."""
    if isinstance(value, SourceClass):
        return value
    member: SourceClass = _SOURCE_CLASS.parse(value)
    return member


def parse_lifecycle(value: object) -> Lifecycle:
    """`Proposed`, `under_review`, `UNDERREVIEW` → Lifecycle."""
    member: Lifecycle = _LIFECYCLE.parse(value)
    return member


def parse_supersession_type(value: object) -> SupersessionType:
    """`Correct`, ` correct ` → SupersessionType.Correct (case-insensitive, trimmed)."""
    member: SupersessionType = _SUPERSESSION_TYPE.parse(value)
    return member


def parse_object_type(value: object) -> ObjectType:
    """`Text`, `text`, ` TEXT ` → ObjectType.Text (case-insensitive, trimmed)."""
    member: ObjectType = _OBJECT_TYPE.parse(value)
    return member


def object_type_name(value: object) -> str:
    """`parse_object_type(value).value`, without the enum property access."""
    return _OBJECT_TYPE.text(value)


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


_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")


def _no_control(value: str) -> str | None:
    match = _CONTROL.search(value)
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
    if isinstance(value, SourceClass):
        return value.name
    return _SOURCE_CLASS.text(value)  # = parse_source_class(value).name


def _lifecycle_name(value: Any) -> str:
    return _LIFECYCLE.text(value)  # = parse_lifecycle(value).value


def _supersession_type_name(value: Any) -> str:
    return _SUPERSESSION_TYPE.text(value)  # = parse_supersession_type(value).value


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
