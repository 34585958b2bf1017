"""The source registry's reads, and the retraction state a lens query needs.

Writes (`source`, `retraction` records) go through the write service like
every record; their rights are in `stemedb.service.source_rights`. Reads
here: one source with its registrations, retractions and citing claims
(`GET /v1/sources/{id}`), and, for every lens query, which candidates cite a
retracted source as known at the query's `known_at` (`retracted_candidates`),
read in the query's snapshot before the lens runs so lenses stay pure.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import apsw

from stemedb.errors import NotFound
from stemedb.lenses.base import fmt_ts
from stemedb.records import SourceClass, infer_source_class
from stemedb.store import Store
from stemedb.store import sources as store_sources
from stemedb.store.candidates import CandidateFilter, CandidateRow

_DOI = re.compile(r"^(doi:|https?://(dx\.)?doi\.org/|10\.\d{4,9}/)", re.IGNORECASE)
_URL = re.compile(r"^[a-z][a-z0-9+.-]*://", re.IGNORECASE)


def identifier_type(identifier: str) -> str:
    """`doi`, `url` (any scheme://) or `other`: how the identifier reads, for display."""
    if _DOI.match(identifier):
        return "doi"
    if _URL.match(identifier):
        return "url"
    return "other"


def retraction_note(info: store_sources.Retracted) -> dict[str, Any]:
    """The JSON a retracted candidate carries (lenses copy it; `message` is the one line)."""
    who = f" by {info.retracted_by[:16]}…" if info.retracted_by else ""
    return {
        "source_id": info.source_id,
        "identifier": info.identifier,
        "reason": info.reason,
        "retracted_by": info.retracted_by,
        "retracted_at": info.timestamp,
        "retracted_written_ms": info.written_ms,
        "message": f"source {info.identifier!r} was retracted at {fmt_ts(info.timestamp)}"
        f"{who}: {info.reason}",
    }


def retracted_candidates(
    store: Store, conn: apsw.Connection, rows: Sequence[CandidateRow], f: CandidateFilter
) -> dict[str, dict[str, Any]]:
    """Assertion hash (hex) -> retraction note, for the candidates citing a retracted source.

    A retraction counts when the journal had it by `known_at` (its commit
    time) and, with `as_of`, when it was claimed by then — as a supersession
    does. Free while no retraction was ever written (`Store.may_have_rows`).
    """
    if not rows or not store.may_have_rows("retractions"):
        return {}
    cited = store_sources.retracted_citations(conn, (r.seq for r in rows), f.known_at_ms, f.as_of)
    if not cited:
        return {}
    keys = store_sources.retracted_keys(conn, f.known_at_ms, f.as_of)
    notes: dict[str, dict[str, Any]] = {}
    for row in rows:
        info = keys.get(cited.get(row.seq, b""))
        if info is not None:
            notes[row.hash.hex()] = retraction_note(info)
    return notes


def spread_warnings(body: dict[str, Any]) -> dict[str, Any]:
    """Copy a group's `warnings` onto its explanation lines and winner (`warnings` lists)."""
    warnings = body.get("warnings")
    if not warnings:
        return body
    by_hash: dict[str, list[str]] = {}
    for item in warnings:
        by_hash.setdefault(item["hash"], []).append(item["message"])
    for line in body.get("explanation") or []:
        if line.get("hash") in by_hash and line.get("excluded") != "retracted":
            line["warnings"] = by_hash[line["hash"]]
    winner = body.get("winner")
    if isinstance(winner, dict) and winner.get("hash") in by_hash:
        winner["warnings"] = by_hash[winner["hash"]]
    return body


class SourceRegistry:
    """`GET /v1/sources/{id}`: a source as known at `known_at`, with the claims citing it."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def get(self, sid: str, known_at: int | None = None) -> dict[str, Any]:
        known_at_ms = known_at * 1000 if known_at is not None else None
        raw = bytes.fromhex(sid)
        with self.store.reader() as conn:
            history = store_sources.registrations(conn, raw, known_at_ms)
            if not history:
                raise NotFound(
                    f"source {sid} is not registered"
                    + (f" as known at {known_at}" if known_at is not None else ""),
                    [{"field": "source_id", "problem": "not registered"}],
                )
            retractions = store_sources.retractions_of(conn, raw, known_at_ms)
            keys = [raw] + [
                bytes.fromhex(h["content_hash"]) for h in history if h["content_hash"] is not None
            ]
            claims = store_sources.citing_claims(conn, keys)
        current = history[-1]
        return {
            "source": {**current, **self._tier(current)},
            "retracted": bool(retractions),
            "retractions": retractions,
            "history": history,
            "claims": claims,
            "claims_count": len(claims),
            "claims_truncated": len(claims) >= store_sources.MAX_CITING,
        }

    def _tier(self, source: Mapping[str, Any]) -> dict[str, Any]:
        declared = source.get("declared_tier")
        if declared is not None:
            return {"tier": declared, "tier_basis": "declared", "identifier_type": _kind(source)}
        inferred = infer_source_class(source["identifier"], None, self.store.settings.scheme_tiers)
        return {
            "tier": SourceClass(inferred).name,
            "tier_basis": "inferred",
            "identifier_type": _kind(source),
        }


def _kind(source: Mapping[str, Any]) -> str:
    return identifier_type(str(source["identifier"]))
