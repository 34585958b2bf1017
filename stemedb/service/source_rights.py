"""Who may register and retract a source: the record-level rights of issue 17.

A route-level role cannot express them (they depend on the source's
registration), so `SupersessionRights.check` hands `source` and `retraction`
records here once their signatures are verified, on every write path (the
single-record routes, a JSON or NDJSON batch, `stemedb import` over HTTP).

* **Registering** (`source`, any writer key): `publisher_key` names the key
  that may later retract the source, so it must be a signer of the record —
  a writer cannot name somebody else's key (a forged publisher); an admin key
  may register a source on a publisher's behalf. Re-registering a source that
  is already registered (a new title, content hash, publisher) needs a
  signature of its registered publisher key or of the key that registered it,
  or an admin key, so nobody can take over another's source.
* **Retracting** (`retraction`): an admin key, or a signature of the source's
  registered publisher key (the registration in force when it is written).
  The source must be registered (404 otherwise).

"Admin" is `Caller.supersede_any`: an admin API key or the local operator.
With authentication off nobody is an admin; an unsigned record is then
accepted only when signatures are optional (nothing proves who anybody is).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from stemedb.errors import Forbidden, NotFound
from stemedb.records.source import source_id
from stemedb.store import sources as store_sources

if TYPE_CHECKING:
    from stemedb.service.rights import Caller


def _signers(record: dict[str, Any]) -> frozenset[str]:
    return frozenset(
        str(sig.get("agent_id", "")).lower()
        for sig in record.get("signatures") or []
        if isinstance(sig, dict)
    )


def _refuse(message: str, field: str, problem: str) -> Forbidden:
    return Forbidden(message, [{"field": field, "problem": problem}])


def _in_force(store: Any, sid: str) -> dict[str, Any] | None:
    with store.reader() as conn:
        rows = store_sources.registrations(conn, bytes.fromhex(sid))
    return rows[-1] if rows else None


def check_source_rights(
    store: Any, caller: Caller, record: dict[str, Any], require_signatures: bool
) -> None:
    """Raise Forbidden (403) or NotFound (404) if this source/retraction may not be written."""
    kind = record.get("kind")
    admin = caller.supersede_any
    own = _signers(record)
    if kind == "retraction":
        current = _in_force(store, str(record["source_id"]))
        if current is None:
            raise NotFound(
                f"source_id: source {record['source_id']} is not registered "
                "(register it with POST /v1/sources first)",
                [{"field": "source_id", "problem": "unknown source"}],
            )
    else:
        current = _in_force(store, source_id(str(record["identifier"])))
    if admin or (not own and not caller.authenticated and not require_signatures):
        return
    if not own:
        raise _refuse(
            f"an unsigned {kind} record can only be written with an admin key",
            "signatures",
            f"a {kind} must be signed (or sent with an admin key)",
        )
    if kind == "retraction":
        assert current is not None
        publisher = current["publisher_key"]
        if publisher is None or publisher not in own:
            raise _refuse(
                f"{caller.label} may not retract source {current['identifier']!r}: only an "
                "admin key or its registered publisher key "
                f"({publisher[:16] + '…' if publisher else 'none registered'}) may",
                "signatures",
                "not signed by the source's registered publisher key (or sent with an admin key)",
            )
        return
    named = record.get("publisher_key")
    if named is not None and named not in own:
        raise _refuse(
            f"publisher_key {named[:16]}… is not a signer of this source record: a writer can "
            "only name its own key as publisher (an admin key may name any)",
            "publisher_key",
            "must be the key that signs the record, unless sent with an admin key",
        )
    if current is not None:
        owners = {current["publisher_key"], current["registered_by"]} - {None}
        if not own & owners:
            raise _refuse(
                f"source {current['identifier']!r} is already registered (by "
                f"{str(current['registered_by'])[:16]}…); only its publisher key, the key that "
                "registered it, or an admin key may register it again",
                "identifier",
                "already registered by another key",
            )
