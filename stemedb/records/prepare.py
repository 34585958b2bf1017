"""Validate → normalise → canonical JSON → hash → verify signatures.

This is the one place that turns a client's JSON into a journal record; the
client-side signer (`stemedb.signing`) runs the same normalisation, so a
record it signs is byte-for-byte what the server hashes.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

from pydantic import ValidationError

from stemedb.canonical import canonical_json, canonical_json_with_member
from stemedb.crypto import sha3_256, signing_message, verify_signature
from stemedb.errors import InvalidRequest, InvalidSignature

from .models import MODELS, RECORD_KINDS, RecordIn
from .problems import ROOT_FIELD, details_from, find_lone_surrogate, invalid_request

REQUIRED_SIGNATURE_PROBLEM = "at least one signature is required (STEMEDB_REQUIRE_SIGNATURES=true)"


@dataclass(frozen=True)
class PreparedRecord:
    """A validated, normalised, verified record ready to journal.

    `record` is the normalised record (`kind` included, `signatures` sorted by
    agent_id when present); `body` its canonical JSON; `hash` the record id
    (SHA3-256 of `body`); `digest` the SHA3-256 of the canonical JSON of the
    record without `signatures` (what signatures cover); `agent_id` the
    first signer after sorting, or None.
    """

    kind: str
    record: dict[str, Any]
    body: str
    hash: bytes
    digest: bytes
    agent_id: str | None

    @property
    def hash_hex(self) -> str:
        return self.hash.hex()

    @property
    def digest_hex(self) -> str:
        return self.digest.hex()


def _model_for(kind: str) -> type[RecordIn]:
    model = MODELS.get(kind) if isinstance(kind, str) else None
    if model is None:
        raise InvalidRequest.field(
            "kind", f"unknown record kind {kind!r}; expected one of {', '.join(RECORD_KINDS)}"
        )
    return model


def _validate(kind: str, payload: Any, now_s: int) -> RecordIn:
    model = _model_for(kind)
    if not isinstance(payload, dict):
        got = "null" if payload is None else type(payload).__name__
        raise InvalidRequest.field(ROOT_FIELD, f"expected a JSON object, got {got}")
    bad = find_lone_surrogate(payload)
    if bad is not None:
        raise InvalidRequest.field(bad, "contains a lone UTF-16 surrogate (not valid Unicode)")
    try:
        return model.model_validate(payload, context={"now_s": now_s})
    except ValidationError as exc:
        details = details_from(exc)
        if payload.get("concept_path") is not None and payload.get("subject") is None:
            details = [_renamed(detail, "subject", "concept_path") for detail in details]
        raise invalid_request(details) from None


def _renamed(detail: dict[str, Any], old: str, new: str) -> dict[str, Any]:
    """Name the field as the client spelt it (an input alias)."""
    field = str(detail["field"])
    if field == old or field.startswith(old + "."):
        return {**detail, "field": new + field[len(old) :]}
    return detail


def _digest(unsigned: dict[str, Any]) -> bytes:
    return sha3_256(canonical_json(unsigned).encode("utf-8"))


def prepare_record(
    kind: str,
    payload: Any,
    *,
    now_s: int,
    scheme_tiers: Mapping[str, int],
    require_signatures: bool,
) -> PreparedRecord:
    """Validate and normalise one record, verify every signature, compute its id.

    Raises InvalidRequest (fields named in `details`) for bad input and
    InvalidSignature when a present signature does not verify over the
    normalised record.
    """
    model = _validate(kind, payload, now_s)
    record = model.unsigned_record(now_s=now_s, scheme_tiers=scheme_tiers)
    signatures = model.signatures or []
    if not signatures:
        body = canonical_json(record)
        if require_signatures:
            raise InvalidRequest.field("signatures", REQUIRED_SIGNATURE_PROBLEM)
        record_hash = sha3_256(body.encode("utf-8"))  # unsigned: the digest is the id
        return PreparedRecord(kind, record, body, record_hash, record_hash, None)

    # Exactly {agent_id, signature}: nothing unsigned may enter the id (data-model.md §7).
    entries: list[dict[str, Any]] = [
        {"agent_id": sig.agent_id, "signature": sig.signature} for sig in signatures
    ]
    ordered = sorted(entries, key=itemgetter("agent_id"))
    # Both texts in one pass (the signed one is the unsigned one plus `signatures`);
    # computed before the checks below, as the digest always was.
    unsigned_body, body = canonical_json_with_member(record, "signatures", ordered)
    digest = sha3_256(unsigned_body.encode("utf-8"))
    first_index: dict[str, int] = {}
    for index, entry in enumerate(entries):
        agent_id = entry["agent_id"]
        if agent_id in first_index:
            raise InvalidRequest.field(
                f"signatures.{index}.agent_id",
                f"duplicate agent_id (same as signatures.{first_index[agent_id]})",
            )
        first_index[agent_id] = index

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

    record["signatures"] = ordered
    return PreparedRecord(
        kind, record, body, sha3_256(body.encode("utf-8")), digest, ordered[0]["agent_id"]
    )


def normalise_unsigned(
    kind: str, payload: Any, *, now_s: int, scheme_tiers: Mapping[str, int]
) -> dict[str, Any]:
    """For `POST /v1/normalize`: the normalised record without signatures (any in
    the payload are ignored), its digest and the exact message to sign (hex)."""
    if isinstance(payload, dict) and "signatures" in payload:
        payload = {key: value for key, value in payload.items() if key != "signatures"}
    model = _validate(kind, payload, now_s)
    record = model.unsigned_record(now_s=now_s, scheme_tiers=scheme_tiers)
    digest = _digest(record)
    return {
        "record": record,
        "digest": digest.hex(),
        "message": signing_message(kind, digest).hex(),
    }


def record_from_body(body: str) -> dict[str, Any]:
    """The record dict of a journal body (canonical JSON)."""
    value = json.loads(body)
    if not isinstance(value, dict):
        raise ValueError("a record body is a JSON object")
    return value
