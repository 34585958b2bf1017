"""The `source` and `retraction` records: a registry of evidence, and its withdrawal.

Claims cite their evidence by `source` (an identifier: URL, DOI, anything)
and `source_hash` (SHA3-256 of `source` unless given). A `source` record
registers such an identifier once, with a title, a publisher, a tier and the
content hash of the evidence, so a reader can see what a citation points at.
A `retraction` record says the evidence was withdrawn (a paper retracted, a
label pulled), with a reason; every lens answer then warns about the claims
citing it. Both are journalled and signed like every record, because they
change answers: a replica, a backup and a `known_at` replay must all see them,
and nothing is ever deleted (a retraction marks, it does not remove).

Identity: a source's id is SHA3-256 of its identifier (64 hex), the same
value an assertion's default `source_hash` has, so existing claims link to a
registration without being rewritten. A claim also links when its
`source_hash` equals the registration's `content_hash`.

Who may write them (docs/agents.md, "Sources and retractions"): any writer
may register a source; `publisher_key` (the publisher's agent id) must be a
signer of the record unless the API key is an admin's; re-registering a
source needs its registered publisher or registrant key, or an admin key. A
retraction needs an admin key or a signature of the source's registered
publisher key (`stemedb.service.sources.check_rights`).
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field

from stemedb.crypto import sha3_hex

from .fields import Hex64, LongText, Name, SourceClassName, SourceText, Timestamp
from .models import RecordIn, SignatureIn


def source_id(identifier: str) -> str:
    """A source's id: SHA3-256 (hex) of its identifier, an assertion's default source_hash."""
    return sha3_hex(identifier.encode("utf-8"))


class SourceIn(RecordIn):
    """Register `identifier` (URL, DOI or other) as a source of evidence."""

    KIND: ClassVar[str] = "source"
    SIGNATURE_LIMIT: ClassVar[int] = 1

    kind: Literal["source"] | None = None
    identifier: SourceText
    title: LongText | None = None
    publisher: Name | None = None
    publisher_key: Hex64 | None = Field(
        default=None,
        description="Agent id (Ed25519 public key) of the publisher: it may retract the source",
    )
    tier: SourceClassName | None = Field(
        default=None,
        description="Declared authority tier; absent: inferred from the identifier's scheme",
    )
    content_hash: Hex64 | None = Field(
        default=None, description="SHA3-256 of the evidence; claims may cite it as source_hash"
    )
    timestamp: Timestamp | None = None
    signatures: list[SignatureIn] | None = Field(
        default=None, json_schema_extra={"minItems": 1, "maxItems": 1}
    )

    def content(self, scheme_tiers: Any) -> dict[str, Any]:
        return {
            "identifier": self.identifier,
            "title": self.title,
            "publisher": self.publisher,
            "publisher_key": self.publisher_key,
            "tier": self.tier,
            "content_hash": self.content_hash,
        }


class RetractionIn(RecordIn):
    """Mark the source `source_id` retracted, with a reason. Never undone, never deleted."""

    KIND: ClassVar[str] = "retraction"
    SIGNATURE_LIMIT: ClassVar[int] = 1

    kind: Literal["retraction"] | None = None
    source_id: Hex64
    reason: LongText
    timestamp: Timestamp | None = None
    signatures: list[SignatureIn] | None = Field(
        default=None, json_schema_extra={"minItems": 1, "maxItems": 1}
    )

    def content(self, scheme_tiers: Any) -> dict[str, Any]:
        return {"source_id": self.source_id, "reason": self.reason}
