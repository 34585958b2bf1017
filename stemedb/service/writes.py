"""Write service: validate, normalise and verify in the caller's thread, then journal.

The CPU work (pydantic, canonical JSON, SHA3, Ed25519) happens here, in the
HTTP thread, in parallel; only finished records reach the single writer.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from stemedb.config import Settings
from stemedb.crypto import verify_threads
from stemedb.errors import InvalidRequest, StemeError
from stemedb.records import normalise_unsigned, prepare_record
from stemedb.records.prepare import Ahead, prepare_ahead
from stemedb.service.rights import Caller, SupersessionRights
from stemedb.store import PendingRecord, Store

RejectedHook = Callable[[str], None]
IngestedHook = Callable[[int], None]
WrittenHook = Callable[[list[dict[str, Any]]], None]
SignersHook = Callable[[list[PendingRecord]], None]


@dataclass(frozen=True)
class WriteAnswer:
    created: bool
    body: dict[str, Any]


class WriteService:
    # Quarantine (service/quarantine.py) marks written items whose record was held.
    on_written: WrittenHook = staticmethod(lambda items: None)
    # The new-agent limit (security/new_agents.py) charges a write's unseen signers
    # once its records are prepared: raises RateLimited, and nothing is written.
    check_signers: SignersHook = staticmethod(lambda records: None)

    def __init__(
        self,
        store: Store,
        settings: Settings,
        *,
        on_rejected: RejectedHook | None = None,
        on_ingested: IngestedHook | None = None,
    ) -> None:
        self.store = store
        self.settings = settings
        self.on_rejected = on_rejected or (lambda reason: None)
        self.on_ingested = on_ingested or (lambda count: None)

    def prepare(
        self, kind: str, payload: Any, received_ms: int, ahead: Ahead = None
    ) -> PendingRecord:
        """Validate one record (or take `prepare_ahead`'s answer for it); raise the
        domain error naming the field."""
        if isinstance(payload, dict) and "kind" in payload and payload["kind"] != kind:
            raise InvalidRequest.field(
                "kind", f"this endpoint takes {kind!r} records, the body says {payload['kind']!r}"
            )
        try:
            if isinstance(ahead, Exception):
                raise ahead
            prepared = ahead or prepare_record(
                kind,
                payload,
                now_s=received_ms // 1000,
                scheme_tiers=self.settings.scheme_tiers,
                require_signatures=self.settings.require_signatures,
            )
        except StemeError as exc:
            self.on_rejected(exc.code)
            raise
        return PendingRecord(
            prepared.kind,
            prepared.hash,
            prepared.body,
            prepared.record,
            received_ms,
            prepared.digest,
        )

    def rights(self, caller: Caller) -> SupersessionRights:
        return SupersessionRights(
            self.store, caller, require_signatures=self.settings.require_signatures
        )

    def authorised(
        self,
        kind: str,
        payload: Any,
        received_ms: int,
        caller: Caller,
        rights: SupersessionRights,
        ahead: Ahead = None,
    ) -> PendingRecord:
        """`prepare` between the caller's record rights: its kind (and scope) before
        validation, supersession rights once the signatures are verified."""
        try:
            caller.check_record(kind, payload)
        except StemeError as exc:
            self.on_rejected(exc.code)
            raise
        pending = self.prepare(kind, payload, received_ms, ahead)
        try:
            rights.check(pending.kind, pending.record)
        except StemeError as exc:
            self.on_rejected(exc.code)
            raise
        rights.note(pending.kind, pending.hash, pending.record)
        return pending

    def write_one(self, kind: str, payload: Any, *, caller: Caller) -> WriteAnswer:
        """POST /v1/assert and friends: 201 created or 200 exists."""
        pending = self.authorised(kind, payload, _now_ms(), caller, self.rights(caller))
        self.check_signers([pending])
        outcome = self.store.write([pending])[0]
        if outcome.error is not None:
            self.on_rejected(outcome.error.code)
            raise outcome.error
        if outcome.status == "created":
            self.on_ingested(1)
        body = {"hash": outcome.hash.hex(), "seq": outcome.seq, "status": outcome.status}
        self.on_written([body])
        return WriteAnswer(outcome.status == "created", body)

    def write_batch(
        self, items: Iterable[tuple[int, Any]], *, atomic: bool, caller: Caller
    ) -> tuple[bool, dict[str, Any]]:
        """POST /v1/assert/batch: one result per input, in order.

        `items` yields (index, payload-or-StemeError). Records are assertions
        unless they carry another `kind`. Returns (ok, body); ok is False only
        for an atomic batch with a rejection (nothing was written); its body then
        carries the `error` envelope (code `batch_rejected`) beside `results`.
        Every record gets the caller's rights for its own kind (`authorised`).
        """
        received_ms = _now_ms()
        rights = self.rights(caller)
        results: list[dict[str, Any] | None] = []
        pending: list[tuple[int, PendingRecord]] = []
        count = 0
        ahead_items = prepare_ahead(
            items,
            _kind_of,
            now_s=received_ms // 1000,
            scheme_tiers=self.settings.scheme_tiers,
            require_signatures=self.settings.require_signatures,
            threads=verify_threads(self.settings.verify_threads),
        )
        for index, payload, ahead in ahead_items:
            count += 1
            if count > self.settings.batch_max:
                raise InvalidRequest.field(
                    "body", f"more than {self.settings.batch_max} records (STEMEDB_BATCH_MAX)"
                )
            try:
                if isinstance(payload, StemeError):
                    raise payload
                kind = _kind_of(payload)
                record = self.authorised(kind, payload, received_ms, caller, rights, ahead)
            except StemeError as exc:
                results.append(_rejected(index, exc))
                continue
            results.append(None)
            pending.append((index, record))
        self.check_signers([p for _, p in pending])
        if atomic and any(r is not None for r in results):
            body = _summary([r or _not_written(i) for i, r in enumerate(results)])
            return False, _with_batch_error(body)
        outcomes = self.store.write([p for _, p in pending], atomic=atomic) if pending else []
        for (index, record), outcome in zip(pending, outcomes, strict=True):
            if outcome.error is not None:
                self.on_rejected(outcome.error.code)
                results[index] = _rejected(index, outcome.error, record.hash.hex())
            else:
                results[index] = {
                    "index": index,
                    "hash": outcome.hash.hex(),  # `exists`: the stored id (data-model §7)
                    "seq": outcome.seq,
                    "status": outcome.status,
                }
        final = [r or _not_written(i) for i, r in enumerate(results)]
        self.on_written(final)
        body = _summary(final)
        if body["created"]:
            self.on_ingested(body["created"])
        ok = not (atomic and body["rejected"])
        return ok, body if ok else _with_batch_error(body)

    def normalize(self, kind: str, payload: Any) -> dict[str, Any]:
        return normalise_unsigned(
            kind, payload, now_s=int(time.time()), scheme_tiers=self.settings.scheme_tiers
        )


def _kind_of(payload: Any) -> str:
    """A batch item's kind: its `kind`, else assertion."""
    return str(payload.get("kind", "assertion") if isinstance(payload, dict) else "assertion")


def _now_ms() -> int:
    return int(time.time() * 1000)


def _rejected(index: int, exc: StemeError, hash_hex: str | None = None) -> dict[str, Any]:
    item: dict[str, Any] = {"index": index, "status": "rejected", "error": exc.to_dict()["error"]}
    if hash_hex:
        item["hash"] = hash_hex
    return item


def _not_written(index: int) -> dict[str, Any]:
    return {"index": index, "status": "not_written"}


MAX_BATCH_ERROR_DETAILS = 20


def _with_batch_error(body: dict[str, Any]) -> dict[str, Any]:
    """An atomic batch's 400: the usual `error` envelope beside `results`, naming
    every rejected index (its field when the record's error names one)."""
    rejected = [item for item in body["results"] if item["status"] == "rejected"]
    details: list[dict[str, Any]] = []
    for item in rejected[:MAX_BATCH_ERROR_DETAILS]:
        error = item.get("error") or {}
        inner = (error.get("details") or [{}])[0]
        field = f"{item['index']}.{inner['field']}" if inner.get("field") else str(item["index"])
        details.append({"field": field, "problem": f"{error.get('code')}: {error.get('message')}"})
    first = f" (first: {details[0]['field']}: {details[0]['problem']})" if details else ""
    message = (
        f"atomic batch refused: {len(rejected)} of {len(body['results'])} records "
        f"rejected{first}; nothing was written"
    )
    return {
        "error": {"code": "batch_rejected", "message": message, "details": details},
        **body,
    }


def _summary(results: list[dict[str, Any]]) -> dict[str, Any]:
    counts = {"created": 0, "exists": 0, "rejected": 0}
    for item in results:
        if item["status"] in counts:
            counts[item["status"]] += 1
    return {"results": results, **counts}
