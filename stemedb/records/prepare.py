"""Validate → normalise → canonical JSON → hash → verify signatures.

This is the one place that turns a client's JSON into a journal record; the
client-side signer (`stemedb.signing`) runs the same normalisation, so a
record it signs is byte-for-byte what the server hashes.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

from pydantic import ValidationError

from stemedb.canonical import canonical_json, canonical_json_with_member
from stemedb.crypto import (
    SignatureCheck,
    sha3_256,
    signing_message,
    submit_verify,
    verify_signature,
)
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


@dataclass(frozen=True)
class _Draft:
    """A signed record validated, normalised and hashed; its signatures not yet checked."""

    kind: str
    record: dict[str, Any]
    entries: list[dict[str, Any]]
    ordered: list[dict[str, Any]]
    body: str
    digest: bytes
    message: bytes

    def checks(self) -> list[SignatureCheck]:
        return [(e["agent_id"], e["signature"], self.message) for e in self.entries]


def _draft(
    kind: str,
    payload: Any,
    *,
    now_s: int,
    scheme_tiers: Mapping[str, int],
    require_signatures: bool,
) -> PreparedRecord | _Draft:
    """Everything `prepare_record` does but the signature checks (an unsigned
    record needs none: it comes back finished)."""
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
    return _Draft(kind, record, entries, ordered, body, digest, message)


def _finish(draft: _Draft, verified: Sequence[bool]) -> PreparedRecord:
    """The prepared record, or InvalidSignature naming every signature that failed."""
    failures = [
        (index, entry["agent_id"])
        for index, (entry, ok) in enumerate(zip(draft.entries, verified, strict=True))
        if not ok
    ]
    kind = draft.kind
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
    record = draft.record
    record["signatures"] = draft.ordered
    body = draft.body
    return PreparedRecord(
        kind,
        record,
        body,
        sha3_256(body.encode("utf-8")),
        draft.digest,
        draft.ordered[0]["agent_id"],
    )


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
    draft = _draft(
        kind, payload, now_s=now_s, scheme_tiers=scheme_tiers, require_signatures=require_signatures
    )
    if isinstance(draft, PreparedRecord):
        return draft
    return _finish(draft, [verify_signature(*check) for check in draft.checks()])


# What `prepare_ahead` yields per item: the prepared record, or the exception
# `prepare_record` would have raised for it; None when the item was not a payload.
Ahead = PreparedRecord | Exception | None

AHEAD_CHUNK = 250


def prepare_ahead(
    items: Iterable[tuple[int, Any]],
    kind_of: Callable[[Any], str],
    *,
    now_s: int,
    scheme_tiers: Mapping[str, int],
    require_signatures: bool,
    threads: int,
    chunk: int = AHEAD_CHUNK,
) -> Iterator[tuple[int, Any, Ahead]]:
    """`(index, payload, prepare_record(kind_of(payload), payload, ...))` for a batch,
    the signatures checked on the verify pool (`stemedb.crypto.verify_many`).

    Why: Ed25519 verification is most of a signed record's CPU and releases the
    GIL, so a batch's signatures are checked on up to `threads` threads while
    this thread normalises the next chunk. The answer is exactly the serial
    one: per item the same record or the same exception, in input order. Items
    whose payload is an exception are passed through with None. An exception
    raised by `items` itself is re-raised after the items read before it.
    """
    source = iter(items)
    waiting: tuple[list[tuple[int, Any, Any]], list[Future[list[bool]]]] | None = None
    failure: BaseException | None = None
    while failure is None:
        block: list[tuple[int, Any]] = []
        try:
            for _ in range(chunk):
                block.append(next(source))
        except StopIteration:
            pass
        except Exception as exc:  # the source's own error: raised in its place, below
            failure = exc
        drafted: list[tuple[int, Any, Any]] = []
        checks: list[SignatureCheck] = []
        for index, payload in block:
            result: Any = None
            if not isinstance(payload, Exception):
                try:
                    result = _draft(
                        kind_of(payload),
                        payload,
                        now_s=now_s,
                        scheme_tiers=scheme_tiers,
                        require_signatures=require_signatures,
                    )
                except Exception as exc:
                    result = exc
                if isinstance(result, _Draft):
                    checks.extend(result.checks())
            drafted.append((index, payload, result))
        if waiting is not None:
            yield from _finished(*waiting)
        waiting = (drafted, submit_verify(checks, threads))
        if len(block) < chunk and failure is None:
            break
    if waiting is not None:
        yield from _finished(*waiting)
    if failure is not None:
        raise failure


def _finished(
    drafted: list[tuple[int, Any, Any]], futures: list[Future[list[bool]]]
) -> Iterator[tuple[int, Any, Ahead]]:
    verified = [ok for future in futures for ok in future.result()]
    at = 0
    for index, payload, result in drafted:
        if isinstance(result, _Draft):
            count = len(result.entries)
            try:
                result = _finish(result, verified[at : at + count])
            except Exception as exc:
                result = exc
            at += count
        yield index, payload, result


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
