"""The `agent_tier` record: an admin registers a signing agent for a maximum tier.

Authority tiers are self-declared on every assertion, so on their own they
prove nothing: anyone can label a claim `Regulatory` or cite `fda://x`.
This record is the admin's word on who an agent is ("this key is the FDA
feed: it may speak up to Regulatory"). It is journaled like every other
record, not kept as local server state, because it changes answers: a
replica, a backup, an export and a `known_at` replay must all see it.

A later `agent_tier` record for the same agent replaces the earlier one (by
journal order), so an admin demotes or promotes an agent by registering it
again. Only admins may write it (its endpoint is admin-only and the same
role check applies on every path that accepts records; docs/security.md,
"Authority cannot be self-declared").
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field

from .fields import Hex64, LongText, Name, SourceClassName, Timestamp
from .models import RecordIn, SignatureIn


class AgentTierIn(RecordIn):
    """Register `agent_id` (an Ed25519 public key, 64 hex) for tiers up to `max_tier`."""

    KIND: ClassVar[str] = "agent_tier"
    SIGNATURE_LIMIT: ClassVar[int] = 1

    kind: Literal["agent_tier"] | None = None
    agent_id: Hex64
    max_tier: SourceClassName
    name: Name | None = None
    note: LongText | None = None
    timestamp: Timestamp | None = None
    signatures: list[SignatureIn] | None = Field(
        default=None, json_schema_extra={"minItems": 1, "maxItems": 1}
    )

    def content(self, scheme_tiers: Any) -> dict[str, Any]:
        return {
            "agent_id": self.agent_id,
            "max_tier": self.max_tier,
            "name": self.name,
            "note": self.note,
        }
