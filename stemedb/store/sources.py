"""The source registry and retractions: projection of `source`/`retraction` records, and reads.

One row per record (migrations/0009_sources.sql), never updated: the newest
registration of a source (highest seq) is in force, and a `known_at` read
takes only rows written by then (`written_ms`), so time travel replays
registrations and retractions alike. `projections.apply` calls `apply` for
every frame; only `source` and `retraction` frames change anything here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

import apsw

from stemedb.errors import NotFound
from stemedb.records import SourceClass
from stemedb.records.source import source_id
from stemedb.store.schema import fetchall

SOURCE = "source"
RETRACTION = "retraction"
MAX_PER_QUERY = 500  # well under SQLite's bound-parameter limit
MAX_CITING = 1000  # claims listed per source

_SOURCE_COLUMNS = (
    "seq, hash, source_id, identifier, title, publisher, publisher_key, tier, content_hash,"
    " registered_by, timestamp, written_ms"
)
_RETRACTION_COLUMNS = "seq, hash, source_id, reason, retracted_by, timestamp, written_ms"


def _b(hex_value: Any) -> bytes | None:
    return bytes.fromhex(hex_value) if hex_value else None


def _signer(record: Mapping[str, Any]) -> bytes | None:
    signatures = record.get("signatures") or []
    return bytes.fromhex(signatures[0]["agent_id"]) if signatures else None


def apply(
    conn: apsw.Connection,
    seq: int,
    kind: str,
    frame_hash: bytes,
    record: Mapping[str, Any],
    written_ms: int,
) -> None:
    """Reflect one journal frame (a no-op for every kind but `source` and `retraction`)."""
    if kind == SOURCE:
        tier = record.get("tier")
        conn.execute(
            f"INSERT INTO sources ({_SOURCE_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
            (
                seq,
                frame_hash,
                bytes.fromhex(source_id(record["identifier"])),
                record["identifier"],
                record.get("title"),
                record.get("publisher"),
                _b(record.get("publisher_key")),
                int(SourceClass[tier]) if tier else None,
                _b(record.get("content_hash")),
                _signer(record),
                int(record["timestamp"]),
                written_ms,
            ),
        )
    elif kind == RETRACTION:
        conn.execute(
            f"INSERT INTO retractions ({_RETRACTION_COLUMNS}) VALUES (?,?,?,?,?,?,?)",
            (
                seq,
                frame_hash,
                bytes.fromhex(record["source_id"]),
                record["reason"],
                _signer(record),
                int(record["timestamp"]),
                written_ms,
            ),
        )


def check_references(conn: apsw.Connection, kind: str, record: Mapping[str, Any]) -> None:
    """A retraction names a registered source (earlier in the same batch counts)."""
    if kind != RETRACTION:
        return
    raw = _b(record.get("source_id")) or b""
    if not fetchall(conn, "SELECT 1 FROM sources WHERE source_id = ? LIMIT 1", (raw,)):
        raise NotFound(
            f"source_id: source {record.get('source_id')} is not registered "
            "(register it with POST /v1/sources first)",
            [{"field": "source_id", "problem": "unknown source"}],
        )


def _hex(value: Any) -> str | None:
    return bytes(value).hex() if value is not None else None


def _source_dict(row: tuple[Any, ...]) -> dict[str, Any]:
    (seq, frame_hash, sid, identifier, title, publisher, key, tier, content, by, ts, wms) = row
    return {
        "source_id": bytes(sid).hex(),
        "identifier": identifier,
        "title": title,
        "publisher": publisher,
        "publisher_key": _hex(key),
        "declared_tier": SourceClass(int(tier)).name if tier is not None else None,
        "content_hash": _hex(content),
        "registered_by": _hex(by),
        "timestamp": int(ts),
        "written_ms": int(wms),
        "seq": int(seq),
        "hash": bytes(frame_hash).hex(),
    }


def _retraction_dict(row: tuple[Any, ...]) -> dict[str, Any]:
    seq, frame_hash, sid, reason, by, ts, wms = row
    return {
        "source_id": bytes(sid).hex(),
        "reason": reason,
        "retracted_by": _hex(by),
        "timestamp": int(ts),
        "written_ms": int(wms),
        "seq": int(seq),
        "hash": bytes(frame_hash).hex(),
    }


def _time_clause(known_at_ms: int | None) -> tuple[str, tuple[Any, ...]]:
    if known_at_ms is None:
        return "", ()
    return " AND written_ms <= ?", (known_at_ms,)


def registrations(
    conn: apsw.Connection, sid: bytes, known_at_ms: int | None = None
) -> list[dict[str, Any]]:
    """Every registration of one source written by `known_at_ms`, oldest first (last in force)."""
    clause, params = _time_clause(known_at_ms)
    rows = fetchall(
        conn,
        f"SELECT {_SOURCE_COLUMNS} FROM sources WHERE source_id = ?{clause} ORDER BY seq",
        (sid, *params),
    )
    return [_source_dict(row) for row in rows]


def retractions_of(
    conn: apsw.Connection, sid: bytes, known_at_ms: int | None = None
) -> list[dict[str, Any]]:
    """Every retraction of one source written by `known_at_ms`, oldest first."""
    clause, params = _time_clause(known_at_ms)
    rows = fetchall(
        conn,
        f"SELECT {_RETRACTION_COLUMNS} FROM retractions WHERE source_id = ?{clause} ORDER BY seq",
        (sid, *params),
    )
    return [_retraction_dict(row) for row in rows]


def citing_claims(
    conn: apsw.Connection, keys: Iterable[bytes], limit: int = MAX_CITING
) -> list[dict[str, Any]]:
    """Assertions whose source_hash is one of `keys` (index assertions_by_source_hash)."""
    wanted = list(dict.fromkeys(keys))
    if not wanted:
        return []
    marks = ",".join("?" * len(wanted))
    rows = fetchall(
        conn,
        "SELECT hash, subject, predicate, source, source_hash, agent_id, timestamp, seq"
        f" FROM assertions WHERE source_hash IN ({marks}) ORDER BY seq LIMIT ?",
        (*wanted, limit),
    )
    return [
        {
            "hash": bytes(h).hex(),
            "subject": subject,
            "predicate": predicate,
            "source": source,
            "source_hash": _hex(sh),
            "agent_id": _hex(agent),
            "timestamp": int(ts),
            "seq": int(seq),
        }
        for h, subject, predicate, source, sh, agent, ts, seq in rows
    ]


class Retracted(NamedTuple):
    """A retracted source, as a claim citing it is warned about."""

    source_id: str
    identifier: str
    reason: str
    retracted_by: str | None
    timestamp: int  # claim time of the (first) retraction
    written_ms: int  # when the journal took it


def retracted_keys(
    conn: apsw.Connection, known_at_ms: int | None = None, as_of: int | None = None
) -> dict[bytes, Retracted]:
    """source_hash value -> the retracted source it names, as known at `known_at_ms`
    (commit time) among retractions claimed by `as_of` (claim time).

    A retracted source is named by its id and by the content hash of any of
    its registrations known by then. The first retraction is the one shown.
    """
    clause, params = _time_clause(known_at_ms)
    retraction_clause = clause.replace("written_ms", "x.written_ms")
    retraction_params: tuple[Any, ...] = params
    if as_of is not None:
        retraction_clause += " AND x.timestamp <= ?"
        retraction_params = (*params, as_of)
    rows = fetchall(
        conn,
        "SELECT r.source_id, r.reason, r.retracted_by, r.timestamp, r.written_ms FROM retractions r"
        " WHERE r.seq = (SELECT min(x.seq) FROM retractions x WHERE x.source_id = r.source_id"
        f"{retraction_clause})",
        retraction_params,
    )
    found: dict[bytes, Retracted] = {}
    for sid, reason, by, ts, wms in rows:
        sid = bytes(sid)
        registered = fetchall(
            conn,
            f"SELECT identifier, content_hash FROM sources WHERE source_id = ?{clause}"
            " ORDER BY seq",
            (sid, *params),
        )
        if not registered:
            continue  # only a replay before the registration; cannot happen in a live journal
        identifier = str(registered[-1][0])
        info = Retracted(sid.hex(), identifier, str(reason), _hex(by), int(ts), int(wms))
        found[sid] = info
        for _, content in registered:
            if content is not None:
                found.setdefault(bytes(content), info)
    return found


def retracted_citations(
    conn: apsw.Connection,
    seqs: Iterable[int],
    known_at_ms: int | None = None,
    as_of: int | None = None,
) -> dict[int, bytes]:
    """Assertion seq -> the retracted source id it cites, among `seqs` (one query per chunk).

    The cheap first step of a lens query: usually nothing matches, and the
    details (`retracted_keys`) are read only when something does.
    """
    x_clause, x_params = "", []
    if known_at_ms is not None:
        x_clause += " AND x.written_ms <= ?"
        x_params.append(known_at_ms)
    if as_of is not None:
        x_clause += " AND x.timestamp <= ?"
        x_params.append(as_of)
    s_clause, s_params = (
        ("", []) if known_at_ms is None else (" AND s.written_ms <= ?", [known_at_ms])
    )
    wanted = list(dict.fromkeys(seqs))
    found: dict[int, bytes] = {}
    for start in range(0, len(wanted), MAX_PER_QUERY):
        chunk = wanted[start : start + MAX_PER_QUERY]
        marks = ",".join("?" * len(chunk))
        rows = fetchall(
            conn,
            f"WITH r AS (SELECT DISTINCT x.source_id FROM retractions x WHERE 1{x_clause}),"
            " k(key, sid) AS (SELECT source_id, source_id FROM r UNION"
            " SELECT s.content_hash, s.source_id FROM sources s JOIN r ON s.source_id = r.source_id"
            f" WHERE s.content_hash IS NOT NULL{s_clause})"
            " SELECT a.seq, k.sid FROM assertions a JOIN k ON a.source_hash = k.key"
            f" WHERE a.seq IN ({marks})",
            (*x_params, *s_params, *chunk),
        )
        found.update((int(seq), bytes(sid)) for seq, sid in rows)
    return found
