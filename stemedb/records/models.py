"""Pydantic input models, one per record kind (data-model.md).

The models validate and accept every input form; `unsigned_record` then
applies the defaults that need server state (the receive time `now_s`, the
scheme table) and returns the normalised record without `signatures`.

Validation context (`model_validate(..., context={"now_s": int})`) enables
the "at most 300 s in the future" timestamp check; without a context (e.g.
when only the JSON schema is wanted) that check is skipped.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    Strict,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from stemedb.crypto import sha3_hex
from stemedb.paths import check_path

from .fields import (
    MAX_SIGNATURES,
    ConceptPath,
    Confidence,
    Hex64,
    Hex128,
    Lifecycle,
    LifecycleName,
    LongText,
    Name,
    ObjectType,
    Predicate,
    SourceClassName,
    SourceText,
    SupersessionType,
    SupersessionTypeName,
    Timestamp,
    Weight,
    check_number_value,
    check_text_value,
    infer_source_class,
    object_type_name,
)

MAX_FUTURE_S = 300
MAX_SUPERSEDES = 256

_FORBID = ConfigDict(extra="forbid")

# Plain-str spellings, read once (an enum's `.value` is a slow property access).
_TEXT: str = ObjectType.Text.value
_NUMBER: str = ObjectType.Number.value
_BOOLEAN: str = ObjectType.Boolean.value
_PROPOSED: str = Lifecycle.Proposed.value
_INVALIDATE: str = SupersessionType.Invalidate.value

_TAGGED_OBJECT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "type": {"type": "string", "enum": [t.value for t in ObjectType]},
        "value": {"type": ["string", "number", "boolean"]},
    },
    "required": ["type", "value"],
    "additionalProperties": False,
}
OBJECT_SCHEMA: dict[str, Any] = {
    "description": 'The claimed value: {"type": "Text"|"Number"|"Boolean"|"Reference", '
    '"value": ...}, the short form {"Text": "x"}, or a bare string/number/boolean. '
    "Stored and returned in the tagged form.",
    "anyOf": [
        _TAGGED_OBJECT_SCHEMA,
        {"type": "object", "minProperties": 1, "maxProperties": 1},
        {"type": "string"},
        {"type": "number"},
        {"type": "boolean"},
    ],
}


class SignatureIn(BaseModel):
    """One signature entry: exactly `agent_id` and `signature`.

    Nothing else: a byte no signature covers must not change a record's id
    (data-model.md §7), so the unsigned per-entry `timestamp` accepted before
    v0.2 is now rejected like any unknown key, naming the field.
    """

    model_config = _FORBID

    agent_id: Hex64
    signature: Hex128


class ObjectIn(BaseModel):
    """The object of an assertion, in the tagged form after validation."""

    model_config = _FORBID

    type: Annotated[str, WithJsonSchema({"type": "string"})]
    value: Any

    @model_validator(mode="before")
    @classmethod
    def _input_forms(cls, data: Any) -> Any:
        if isinstance(data, bool):
            return {"type": _BOOLEAN, "value": data}
        if isinstance(data, int | float):
            return {"type": _NUMBER, "value": data}
        if isinstance(data, str):
            return {"type": _TEXT, "value": data}
        if isinstance(data, dict):
            if "type" in data or "value" in data or not data:
                return data
            if len(data) == 1:
                ((key, value),) = data.items()
                return {"type": object_type_name(key), "value": value}
        raise ValueError(
            'expected {"type": ..., "value": ...}, {"Text": "x"} or a bare string, number '
            "or boolean"
        )

    @field_validator("type", mode="before")
    @classmethod
    def _type(cls, value: Any) -> str:
        return object_type_name(value)

    @field_validator("value")
    @classmethod
    def _value(cls, value: Any, info: ValidationInfo) -> Any:
        kind = info.data.get("type")
        if kind == ObjectType.Text:
            if not isinstance(value, str):
                raise ValueError("expected a string for a Text object")
            return check_text_value(value)
        if kind == ObjectType.Number:
            return check_number_value(value)
        if kind == ObjectType.Boolean:
            if not isinstance(value, bool):
                raise ValueError("expected true or false for a Boolean object")
            return value
        if kind == ObjectType.Reference:
            return check_path(value)
        return value

    def tagged(self) -> dict[str, Any]:
        return {"type": self.type, "value": self.value}


ObjectField = Annotated[ObjectIn, WithJsonSchema(OBJECT_SCHEMA)]


class RecordIn(BaseModel):
    """Behaviour shared by every record kind (fields are declared per kind)."""

    model_config = _FORBID

    KIND: ClassVar[str] = ""
    SIGNATURE_LIMIT: ClassVar[int] = MAX_SIGNATURES

    if TYPE_CHECKING:  # declared by every kind, last, so errors follow field order
        timestamp: int | None
        signatures: list[SignatureIn] | None

    @field_validator("timestamp", check_fields=False)
    @classmethod
    def _not_future(cls, value: int | None, info: ValidationInfo) -> int | None:
        now_s = (info.context or {}).get("now_s")
        if value is not None and isinstance(now_s, int) and value > now_s + MAX_FUTURE_S:
            raise ValueError(
                f"{value} is {value - now_s} s in the future (at most {MAX_FUTURE_S} s allowed)"
            )
        return value

    @field_validator("signatures", check_fields=False)
    @classmethod
    def _signature_count(cls, value: list[SignatureIn] | None) -> list[SignatureIn] | None:
        if value is None:
            return None
        limit = cls.SIGNATURE_LIMIT
        if limit == 1 and len(value) != 1:
            raise ValueError(
                f"a {cls.KIND} takes exactly one signature (got {len(value)}); "
                "omit the field for an unsigned record"
            )
        if not 1 <= len(value) <= limit:
            raise ValueError(
                f"expected 1 to {limit} entries (got {len(value)}); "
                "omit the field for an unsigned record"
            )
        return value

    def content(self, scheme_tiers: Any) -> dict[str, Any]:
        """The kind-specific fields, defaults applied (None = absent)."""
        raise NotImplementedError

    def unsigned_record(self, *, now_s: int, scheme_tiers: Any) -> dict[str, Any]:
        """The normalised record without signatures: defaults, `kind`, nulls dropped."""
        record = self.content(scheme_tiers)
        record["timestamp"] = self.timestamp if self.timestamp is not None else now_s
        record["kind"] = self.KIND
        return {key: value for key, value in record.items() if value is not None}


def _signatures_field(limit: int) -> Any:
    return Field(default=None, json_schema_extra={"minItems": 1, "maxItems": limit})


class AssertionIn(RecordIn):
    """An assertion. `concept_path` is accepted as an input alias of `subject`."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "anyOf": [{"required": ["subject"]}, {"required": ["concept_path"]}],
        },
    )
    KIND: ClassVar[str] = "assertion"

    kind: Literal["assertion"] | None = None
    subject: ConceptPath
    predicate: Predicate
    object: ObjectField
    confidence: Confidence
    source_class: SourceClassName | None = None
    source: SourceText | None = None
    source_hash: Hex64 | None = None
    lifecycle: LifecycleName | None = None
    parent_hash: Hex64 | None = None
    epoch: Hex64 | None = None
    timestamp: Timestamp | None = None
    signatures: list[SignatureIn] | None = _signatures_field(MAX_SIGNATURES)

    @model_validator(mode="before")
    @classmethod
    def _concept_path_alias(cls, data: Any) -> Any:
        if isinstance(data, dict) and "concept_path" in data:
            alias = data["concept_path"]
            data = {key: value for key, value in data.items() if key != "concept_path"}
            if alias is not None:  # null means absent, like every other field
                if data.get("subject") is not None:
                    raise ValueError("give either subject or concept_path, not both")
                data["subject"] = alias
        return data

    def content(self, scheme_tiers: Any) -> dict[str, Any]:
        source_class = self.source_class or (
            infer_source_class(self.source, self.subject, scheme_tiers).name
        )
        source_hash = self.source_hash
        if source_hash is None and self.source is not None:
            source_hash = sha3_hex(self.source.encode("utf-8"))
        return {
            "subject": self.subject,
            "predicate": self.predicate,
            "object": self.object.tagged(),
            "confidence": self.confidence,
            "source_class": source_class,
            "source": self.source,
            "source_hash": source_hash,
            "lifecycle": self.lifecycle or _PROPOSED,
            "parent_hash": self.parent_hash,
            "epoch": self.epoch,
        }


class VoteIn(RecordIn):
    KIND: ClassVar[str] = "vote"
    SIGNATURE_LIMIT: ClassVar[int] = 1

    kind: Literal["vote"] | None = None
    assertion_hash: Hex64
    weight: Weight
    timestamp: Timestamp | None = None
    signatures: list[SignatureIn] | None = _signatures_field(1)

    def content(self, scheme_tiers: Any) -> dict[str, Any]:
        return {"assertion_hash": self.assertion_hash, "weight": self.weight}


class EpochIn(RecordIn):
    """An epoch. `description` is optional (absent → no key). `supersedes` keeps
    the given order (it is part of what the author signs); duplicates are
    rejected rather than silently removed; absent → `[]`."""

    KIND: ClassVar[str] = "epoch"

    kind: Literal["epoch"] | None = None
    name: Name
    description: LongText | None = None
    supersedes: Annotated[
        list[Hex64], Strict(), Field(json_schema_extra={"maxItems": MAX_SUPERSEDES})
    ] = Field(default_factory=list)
    timestamp: Timestamp | None = None
    signatures: list[SignatureIn] | None = _signatures_field(MAX_SIGNATURES)

    @field_validator("supersedes", mode="before")
    @classmethod
    def _null_is_empty(cls, value: Any) -> Any:
        return [] if value is None else value

    @field_validator("supersedes")
    @classmethod
    def _distinct(cls, value: list[str]) -> list[str]:
        if len(value) > MAX_SUPERSEDES:
            raise ValueError(f"more than {MAX_SUPERSEDES} entries ({len(value)})")
        seen: dict[str, int] = {}
        for index, epoch_id in enumerate(value):
            if epoch_id in seen:
                raise ValueError(f"entry {index} repeats entry {seen[epoch_id]} ({epoch_id})")
            seen[epoch_id] = index
        return value

    def content(self, scheme_tiers: Any) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "supersedes": list(self.supersedes),
        }


class SupersessionIn(RecordIn):
    """Hides `target_hash`; `type` defaults to Invalidate; `reason` is required."""

    KIND: ClassVar[str] = "supersession"

    kind: Literal["supersession"] | None = None
    target_hash: Hex64
    replacement_hash: Hex64 | None = None
    reason: LongText
    type: SupersessionTypeName | None = None
    timestamp: Timestamp | None = None
    signatures: list[SignatureIn] | None = _signatures_field(MAX_SIGNATURES)

    @field_validator("replacement_hash")
    @classmethod
    def _not_self(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None and value == info.data.get("target_hash"):
            raise ValueError("must differ from target_hash")
        return value

    def content(self, scheme_tiers: Any) -> dict[str, Any]:
        return {
            "target_hash": self.target_hash,
            "replacement_hash": self.replacement_hash,
            "reason": self.reason,
            "type": self.type or _INVALIDATE,
        }


class AliasIn(RecordIn):
    KIND: ClassVar[str] = "alias"

    kind: Literal["alias"] | None = None
    alias: ConceptPath
    canonical: ConceptPath
    timestamp: Timestamp | None = None
    signatures: list[SignatureIn] | None = _signatures_field(MAX_SIGNATURES)

    @field_validator("canonical")
    @classmethod
    def _not_self(cls, value: str, info: ValidationInfo) -> str:
        if value == info.data.get("alias"):
            raise ValueError("a path cannot be an alias of itself")
        return value

    def content(self, scheme_tiers: Any) -> dict[str, Any]:
        return {"alias": self.alias, "canonical": self.canonical}


class OutcomeIn(RecordIn):
    """An outcome: moves the TrustRank of `agent_id` (not necessarily the signer)."""

    KIND: ClassVar[str] = "outcome"
    SIGNATURE_LIMIT: ClassVar[int] = 1

    kind: Literal["outcome"] | None = None
    agent_id: Hex64
    assertion_hash: Hex64
    accurate: Annotated[bool, Strict()]
    timestamp: Timestamp | None = None
    signatures: list[SignatureIn] | None = _signatures_field(1)

    def content(self, scheme_tiers: Any) -> dict[str, Any]:
        return {
            "agent_id": self.agent_id,
            "assertion_hash": self.assertion_hash,
            "accurate": self.accurate,
        }


# A kind in a module of its own (it builds on RecordIn above, hence the late import).
from .agent_tier import AgentTierIn  # noqa: E402
from .quarantine import QuarantineDecisionIn  # noqa: E402
from .source import RetractionIn, SourceIn  # noqa: E402

RECORD_KINDS: tuple[str, ...] = (
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

MODELS: dict[str, type[RecordIn]] = {
    "assertion": AssertionIn,
    "vote": VoteIn,
    "epoch": EpochIn,
    "supersession": SupersessionIn,
    "alias": AliasIn,
    "outcome": OutcomeIn,
    "agent_tier": AgentTierIn,
    "quarantine_decision": QuarantineDecisionIn,
    "source": SourceIn,
    "retraction": RetractionIn,
}
