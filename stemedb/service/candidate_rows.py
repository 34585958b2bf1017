"""A stored candidate row (store) as a lens candidate (lenses): the one conversion,
shared by the query service and the constraints service."""

from __future__ import annotations

from stemedb.lenses import Candidate
from stemedb.store.candidates import CandidateRow

_new = tuple.__new__  # all fields given: skips the NamedTuple's Python-level __new__ (wide pairs)


def to_candidate(row: CandidateRow) -> Candidate:
    return _new(
        Candidate,
        (
            row.hash.hex(),
            row.subject,
            row.predicate,
            row.value_key,
            row.confidence,
            row.tier,
            row.timestamp,
            row.agent_id.hex() if row.agent_id else None,
            row.lifecycle,
            row.epoch.hex() if row.epoch else None,
            row.superseded,
        ),
    )
