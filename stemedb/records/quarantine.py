"""The `quarantine_decision` record: an admin releases or rejects a held assertion.

The quarantine policy (docs/security.md, "Quarantine") holds some new
assertions at write time: they are journalled like every record (nothing
acknowledged is lost) but lenses skip them. Only an admin's signed word
changes that, and it is journalled too, not kept as server state, because it
changes answers: a replica, a backup, an export and a `known_at` replay must
all see the release (and when it happened). `release` lets lenses count the
assertion from the decision's frame on; `reject` keeps it out for good (it
stays in the journal, in trace and in listings). A held record is decided
once; admin only, on its route and inside a batch alike (KIND_AUTH).
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field

from .fields import Hex64, LongText, Timestamp
from .models import RecordIn, SignatureIn

DECISIONS = ("release", "reject")


class QuarantineDecisionIn(RecordIn):
    """Release or reject the held assertion `target_hash`, saying why."""

    KIND: ClassVar[str] = "quarantine_decision"
    SIGNATURE_LIMIT: ClassVar[int] = 1

    kind: Literal["quarantine_decision"] | None = None
    target_hash: Hex64
    decision: Literal["release", "reject"]
    reason: LongText | None = None
    timestamp: Timestamp | None = None
    signatures: list[SignatureIn] | None = Field(
        default=None, json_schema_extra={"minItems": 1, "maxItems": 1}
    )

    def content(self, scheme_tiers: Any) -> dict[str, Any]:
        return {"target_hash": self.target_hash, "decision": self.decision, "reason": self.reason}
