"""Client-side signing: normalise exactly like the server, then sign.

Used by the Python client, the CLI, the demo loader and the tests. A record
returned by `sign_record` passes `prepare_record` unchanged and gets the same
id there.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

from stemedb.canonical import canonical_json
from stemedb.config import DEFAULT_SCHEME_TIERS
from stemedb.crypto import public_key_hex, sha3_256, sign, signing_message
from stemedb.records import normalise_unsigned

__all__ = ["attach_signatures", "make_assertion", "sign_record"]


def _now() -> int:
    return int(time.time())


def attach_signatures(
    kind: str, record: Mapping[str, Any], seeds: Sequence[bytes]
) -> dict[str, Any]:
    """Sign an ALREADY normalised record (e.g. the `record` of `POST /v1/normalize`)
    as is, with each seed. Entries are exactly `{agent_id, signature}`, sorted by
    agent id: the server rejects anything else in an entry (data-model.md §7)."""
    unsigned = {key: value for key, value in record.items() if key != "signatures"}
    unsigned.setdefault("kind", kind)
    if not seeds:
        raise ValueError("at least one signing key is needed")
    message = signing_message(kind, sha3_256(canonical_json(unsigned).encode("utf-8")))
    entries: dict[str, dict[str, Any]] = {}
    for seed in seeds:
        agent_id = public_key_hex(seed)
        if agent_id in entries:
            raise ValueError(f"the same key is given twice (agent {agent_id})")
        entries[agent_id] = {"agent_id": agent_id, "signature": sign(seed, message)}
    return {**unsigned, "signatures": [entries[agent] for agent in sorted(entries)]}


def sign_record(
    kind: str,
    unsigned: Mapping[str, Any],
    seeds: Sequence[bytes],
    *,
    scheme_tiers: Mapping[str, int] = DEFAULT_SCHEME_TIERS,
    now_s: int | None = None,
) -> dict[str, Any]:
    """Normalise `unsigned` like the server would (bare objects, missing
    source_class / timestamp are filled in, the timestamp with `now_s` or the
    current time), sign it with each seed and return the full record, ready to
    POST. Ed25519 signatures are deterministic, so the same claim signed twice
    is the same bytes (same id). Signatures already in `unsigned` are discarded. Raises
    `stemedb.errors.InvalidRequest` for input the server would reject."""
    now = _now() if now_s is None else now_s
    normalised = normalise_unsigned(kind, dict(unsigned), now_s=now, scheme_tiers=scheme_tiers)
    return attach_signatures(kind, normalised["record"], seeds)


def make_assertion(
    seed: bytes,
    subject: str,
    predicate: str,
    obj: Any,
    confidence: float,
    *,
    now_s: int | None = None,
    scheme_tiers: Mapping[str, int] = DEFAULT_SCHEME_TIERS,
    **fields: Any,
) -> dict[str, Any]:
    """A signed assertion; `fields` are the optional assertion fields
    (source, source_class, lifecycle, timestamp, parent_hash, epoch, ...)."""
    unsigned = {
        "subject": subject,
        "predicate": predicate,
        "object": obj,
        "confidence": confidence,
        **fields,
    }
    return sign_record("assertion", unsigned, [seed], scheme_tiers=scheme_tiers, now_s=now_s)
