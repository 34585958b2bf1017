"""Who signed stored assertions: the read that supersession rights need.

A supersession is accepted only from a signer of its target (lenses.md,
"Supersession rights"), so the write path has to know the target's signers
before the record is queued. They are read from the journal body (the
signed record itself), not from the `assertions.agent_id` projection, which
keeps only the first signer of a co-signed claim.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

import apsw

from stemedb.store.schema import fetchall

MAX_PER_QUERY = 500  # well under SQLite's bound-parameter limit


def signers_in_body(body: str) -> frozenset[str]:
    """The agent ids (lower-case hex) in a record body's `signatures`; empty if unsigned."""
    try:
        record = json.loads(body)
    except ValueError:
        return frozenset()
    signatures = record.get("signatures") if isinstance(record, dict) else None
    if not isinstance(signatures, list):
        return frozenset()
    return frozenset(
        str(entry["agent_id"]).lower()
        for entry in signatures
        if isinstance(entry, dict) and isinstance(entry.get("agent_id"), str)
    )


def assertion_signers(
    conn: apsw.Connection, hashes: Iterable[bytes]
) -> dict[bytes, frozenset[str]]:
    """Signers of each stored assertion among `hashes`; an unknown hash is absent."""
    wanted = list(dict.fromkeys(hashes))
    found: dict[bytes, frozenset[str]] = {}
    for start in range(0, len(wanted), MAX_PER_QUERY):
        chunk = wanted[start : start + MAX_PER_QUERY]
        marks = ",".join("?" * len(chunk))
        rows = fetchall(
            conn,
            "SELECT a.hash, j.body FROM assertions a JOIN journal j ON j.seq = a.seq "
            f"WHERE a.hash IN ({marks})",
            tuple(chunk),
        )
        for raw_hash, body in rows:
            found[bytes(raw_hash)] = signers_in_body(str(body))
    return found
