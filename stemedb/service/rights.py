"""Record-level rights on the write path: what a route-level role cannot express.

Two checks run for every record on every write path (a single-record
endpoint, a JSON or NDJSON batch, `stemedb import` over HTTP):

* **per kind** — `Caller.check_record(kind, payload)` raises `Forbidden` when
  the caller may not write a record of that kind (an `outcome` needs the
  admin role, as `POST /v1/outcome` does) or, for a scoped key, outside its
  subtree. The API layer builds it from the API key
  (`stemedb.security.kinds.caller_for`); it runs before validation, so a
  refused record is refused whatever else is wrong with it.
* **supersession rights** (lenses.md) — `SupersessionRights.check` runs once
  the record's signatures are verified: a supersession must be signed by a
  signer of its target, and a replacement it names must be signed by one
  too, unless the caller may supersede anything (an admin key, the local
  operator). With authentication off nobody is an admin here: the signer
  rule applies to every signed supersession, and an unsigned one is
  accepted only when signatures are optional (then nothing proves who
  anybody is, and there is no right to check). See docs/security.md.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from stemedb.errors import Forbidden, NotFound
from stemedb.service.source_rights import check_source_rights
from stemedb.store.signers import assertion_signers

RecordCheck = Callable[[str, Any], None]


def allow_every_record(kind: str, payload: Any) -> None:
    """The record check of a caller with every right (auth off, or the local operator)."""


@dataclass(frozen=True)
class Caller:
    """Who is writing, as far as record-level rights go.

    `supersede_any`: may supersede any assertion (admin key, local operator).
    `authenticated`: an API key vouched for the request (auth on) or it is the
    local operator; False when the server runs without authentication.
    """

    supersede_any: bool
    authenticated: bool
    check_record: RecordCheck = field(default=allow_every_record)
    label: str = "this caller"


# `stemedb import --db` and other local tools: whoever can write the database
# file can do anything to it anyway (docs/security.md, "Who can do what").
OPERATOR = Caller(supersede_any=True, authenticated=True, label="the local operator")
OPEN_SERVER = Caller(supersede_any=False, authenticated=False, label="an unauthenticated caller")


def signers_of(record: dict[str, Any]) -> frozenset[str]:
    """The agent ids (lower-case hex) of a prepared record's signatures."""
    return frozenset(
        str(sig.get("agent_id", "")).lower()
        for sig in record.get("signatures") or []
        if isinstance(sig, dict)
    )


def _short(agents: Iterable[str]) -> str:
    listed = sorted(agents)
    text = ", ".join(agent[:16] + "…" for agent in listed[:3])
    return text + (f" (+{len(listed) - 3} more)" if len(listed) > 3 else "")


def _hash(value: Any) -> bytes | None:
    if not isinstance(value, str):
        return None
    try:
        raw = bytes.fromhex(value)
    except ValueError:
        return None
    return raw if len(raw) == 32 else None


class SupersessionRights:
    """Checks supersessions for one request; knows assertions earlier in the same batch."""

    def __init__(self, store: Any, caller: Caller, *, require_signatures: bool) -> None:
        self.store = store
        self.caller = caller
        self.require_signatures = require_signatures
        self._batch: dict[bytes, dict[str, Any]] = {}

    def note(self, kind: str, record_hash: bytes, record: dict[str, Any]) -> None:
        """Remember an assertion of this batch: a later supersession may target it.
        (Keeps a reference only; signers are read if a supersession asks.)"""
        if kind == "assertion" and not self.caller.supersede_any:
            self._batch.setdefault(record_hash, record)

    def check(self, kind: str, record: dict[str, Any]) -> None:
        """Raise Forbidden (403) or NotFound (404) if this record may not be written."""
        if kind in ("source", "retraction"):  # issue 17: service/source_rights.py
            return check_source_rights(self.store, self.caller, record, self.require_signatures)
        if kind != "supersession" or self.caller.supersede_any:
            return
        own = signers_of(record)
        if not own:
            if not self.caller.authenticated and not self.require_signatures:
                return  # an open server with optional signatures: no identity to check
            raise Forbidden(
                "an unsigned supersession can only be written with an admin key: sign it "
                "with a key that signed the target",
                [
                    {
                        "field": "signatures",
                        "problem": "a supersession must be signed by a "
                        "signer of its target, or sent with an admin key",
                    }
                ],
            )
        target = self._signers("target_hash", record.get("target_hash"))
        if not own & target:
            raise Forbidden(
                f"{self.caller.label} may not supersede assertion {record['target_hash']}: "
                f"it is signed by {_short(target) or 'nobody'}, this supersession by "
                f"{_short(own)}; only a signer of the target or an admin key may supersede it",
                [
                    {
                        "field": "target_hash",
                        "problem": "not signed by any signer of the "
                        "supersession (needs a signer of the target or an admin key)",
                    }
                ],
            )
        if record.get("replacement_hash"):
            replacement = self._signers("replacement_hash", record["replacement_hash"])
            if not replacement & target:
                raise Forbidden(
                    f"the replacement {record['replacement_hash']} is signed by "
                    f"{_short(replacement) or 'nobody'}, none of whom signed the target "
                    f"{record['target_hash']}; a replacement must come from a signer of the "
                    "target, or the supersession from an admin key",
                    [
                        {
                            "field": "replacement_hash",
                            "problem": "not signed by a signer of the target",
                        }
                    ],
                )

    def _signers(self, field_name: str, value: Any) -> frozenset[str]:
        raw = _hash(value)
        found = None
        if raw is not None:
            with self.store.reader() as conn:
                found = assertion_signers(conn, [raw]).get(raw)
            if found is None and raw in self._batch:
                found = signers_of(self._batch[raw])
        if found is None:
            # Refused here, not left to the writer: a target written after this check
            # but before the writer's own reference check would skip the rights check.
            raise NotFound(
                f"{field_name}: assertion {value} does not exist",
                [{"field": field_name, "problem": f"unknown assertion {value}"}],
            )
        return found
