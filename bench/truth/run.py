"""Write each world through the real HTTP API, ask every lens every pair, score the answers.

One `stemedb serve` process (bench/server.py) holds every world (each under
its own subject prefix, with its own agents). Writes go through
`POST /v1/assert/batch`, signed; the world's Regulatory and Clinical sources
are registered first by the world's operator key with signed `agent_tier`
records, as an operator would (`stemedb agents register`; the bench runs
with authentication off, so the operator needs no admin API key here).
`STEMEDB_NEW_AGENTS_PER_HOUR=0` lifts the new-agent limit (a spam family is
dozens of new keys at once). Each lens then answers `POST /v1/query` for the
world's whole subtree at each `as_of` the world asks about.
"""

from __future__ import annotations

import json
import time
from typing import Any

from bench.server import Server
from bench.truth import scoring
from bench.truth.world import T_END, World, signed_records, vote_records

LENSES = (
    "recency",
    "confidence",
    "consensus",
    "authority",
    "trust",
    "votes",
    "best",
    "layered",
    "truth",
    "truth@as_of",
)
# `truth` is asked at the head when the instant is the world's end (every claim is
# older): the reliability table answers. `truth@as_of` always sends as_of, so the
# lens learns from the bounded neighbourhood read at query time instead.
# docs/lens-quality.md, "The table".
SERVER_ENV = {
    "STEMEDB_NEW_AGENTS_PER_HOUR": "0",
    "STEMEDB_QUERY_AUDIT": "false",
    "STEMEDB_SYNC": "normal",
}
CHUNK = 2000


def _post(srv: Server, path: str, body: Any) -> dict[str, Any]:
    status, raw = srv.request(
        "POST", path, json.dumps(body).encode(), {"Content-Type": "application/json"}
    )
    if status != 200:
        raise RuntimeError(f"POST {path}: {status} {raw[:500]!r}")
    answer: dict[str, Any] = json.loads(raw)
    return answer


def _batch(srv: Server, records: list[dict[str, Any]]) -> list[str]:
    hashes: list[str] = []
    for start in range(0, len(records), CHUNK):
        body = _post(srv, "/v1/assert/batch", records[start : start + CHUNK])
        bad = [r for r in body["results"] if r["status"] not in ("created", "exists")]
        if bad:
            raise RuntimeError(f"batch rejected records: {bad[:3]}")
        hashes += [r["hash"] for r in body["results"]]
    return hashes


def write_world(srv: Server, world: World) -> dict[str, int]:
    """Registrations, claims, then votes on the claims' hashes."""
    records = signed_records(world)
    hashes = _batch(srv, records)
    claim_hashes = hashes[len(records) - len(world.claims) :]
    votes = vote_records(world, claim_hashes)
    _batch(srv, votes)
    return {"records": len(records), "votes": len(votes)}


def answers(srv: Server, world: World, lens: str, as_of: int) -> dict[tuple[str, str], Any]:
    """(subject, predicate) → (winner value or None, resolution confidence), every page."""
    out: dict[tuple[str, str], Any] = {}
    cursor = None
    while True:
        query: dict[str, Any] = {
            "subject": f"{world.prefix}/*",
            "lens": lens.split("@")[0],
            "as_of": as_of,
            "limit": 1000,
        }
        if lens == "truth" and as_of >= T_END:
            del query["as_of"]  # the head: nothing in the world is newer than T_END
        if cursor:
            query["cursor"] = cursor
        body = _post(srv, "/v1/query", query)
        for group in body["results"]:
            winner = group.get("winner")
            value = winner["object"].get("value") if winner else None
            out[(group["subject"], group["predicate"])] = (
                value,
                float(group["resolution_confidence"]),
            )
        cursor = body.get("next_cursor")
        if not cursor:
            return out


def score_world(srv: Server, world: World) -> dict[str, dict[str, float]]:
    """Per lens (and `majority`): accuracy and ECE over the world's queries."""
    table: dict[str, dict[str, float]] = {}
    instants = sorted({q.as_of for q in world.queries})
    for lens in LENSES:
        started = time.perf_counter()
        got = {t: answers(srv, world, lens, t) for t in instants}
        elapsed = time.perf_counter() - started
        hits, confs = [], []
        for q in world.queries:
            value, conf = got[q.as_of].get((q.subject, q.predicate), (None, 0.0))
            hits.append(value == q.truth)
            confs.append(conf)
        table[lens] = {
            "accuracy": scoring.accuracy(hits),
            "ece": scoring.ece(confs, hits),
            "ms_per_pair": 1000 * elapsed / len(world.queries),  # wall clock: not reproducible
        }
    hits, confs = [], []
    for q in world.queries:
        value, share = scoring.majority(world, q)
        hits.append(value == q.truth)
        confs.append(share)
    table["majority"] = {"accuracy": scoring.accuracy(hits), "ece": scoring.ece(confs, hits)}
    return table
