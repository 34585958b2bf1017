"""Journal records: input models, normalisation, canonical form, ids, signatures.

`prepare_record` is the server's single entry point for a write;
`normalise_unsigned` backs `POST /v1/normalize`. See data-model.md.
"""

from __future__ import annotations

from .fields import (
    SOURCE_CLASS_ALIASES,
    Lifecycle,
    ObjectType,
    SourceClass,
    SupersessionType,
    infer_source_class,
    parse_lifecycle,
    parse_source_class,
    parse_supersession_type,
)
from .models import (
    MAX_FUTURE_S,
    MODELS,
    RECORD_KINDS,
    AliasIn,
    AssertionIn,
    EpochIn,
    ObjectIn,
    OutcomeIn,
    RecordIn,
    SignatureIn,
    SupersessionIn,
    VoteIn,
)
from .prepare import (
    REQUIRED_SIGNATURE_PROBLEM,
    PreparedRecord,
    normalise_unsigned,
    prepare_record,
    record_from_body,
)

__all__ = [
    "MAX_FUTURE_S",
    "MODELS",
    "RECORD_KINDS",
    "REQUIRED_SIGNATURE_PROBLEM",
    "SOURCE_CLASS_ALIASES",
    "AliasIn",
    "AssertionIn",
    "EpochIn",
    "Lifecycle",
    "ObjectIn",
    "ObjectType",
    "OutcomeIn",
    "PreparedRecord",
    "RecordIn",
    "SignatureIn",
    "SourceClass",
    "SupersessionIn",
    "SupersessionType",
    "VoteIn",
    "infer_source_class",
    "normalise_unsigned",
    "parse_lifecycle",
    "parse_source_class",
    "parse_supersession_type",
    "prepare_record",
    "record_from_body",
]
