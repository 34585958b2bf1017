"""The console's two heavy views over HTTP on a real signed database (bench/dbcache.py).

    .venv/bin/python -m bench.console_claim 100000

For 30 random contested pairs it makes exactly the requests the claim view makes
(the candidate list, the skeptic, one POST /v1/query per lens, the trust of each
signer, the votes of each candidate) one after another and sums their wall times
on loopback: the view's server time (the page sends them in parallel, so a user
waits less). Then it times GET /v1/triage 30 times (no filter, a prefix, a tier),
after waiting for the index's first fold, whose duration it also reports, and
GET /v1/concepts/search 32 times over 200 claims with real words it adds (a rare
text, a word, a common part of words, a miss).
"""

from __future__ import annotations

import hashlib
import json
import random
import shutil
import statistics
import sys
import time
from typing import Any
from urllib.parse import urlencode

from bench import dbcache
from bench.server import Server
from stemedb.signing import make_assertion

LENSES = (
    "recency", "confidence", "consensus", "authority", "trust",
    "votes", "best", "epoch", "skeptic", "layered",
)  # fmt: skip


def call(srv: Server, method: str, path: str, body: Any = None) -> tuple[float, Any]:
    data = None if body is None else json.dumps(body).encode()
    headers = {"Content-Type": "application/json"} if data else {}
    started = time.perf_counter()
    status, raw = srv.request(method, path, data, headers)
    elapsed = (time.perf_counter() - started) * 1000
    assert status == 200, (status, path, raw[:300])
    return elapsed, json.loads(raw)


WORDS = ("hepatotoxic", "nephrotoxic", "cardiotoxic", "neurotoxic", "ototoxic")


def add_texts(srv: Server, pairs: list[tuple[str, str]], rng: random.Random) -> None:
    """200 signed claims with real words (the bench values, `v0`-`v4`, are too short
    to search): each word on 40 random pairs."""
    records = [
        make_assertion(
            hashlib.sha3_256(b"console-bench").digest(),
            *pairs[rng.randrange(len(pairs))],
            f"{WORDS[k % 5]} signal {k}",
            0.6,
            now_s=1_700_000_000,
        )
        for k in range(200)
    ]
    body = "\n".join(json.dumps(r) for r in records).encode()
    status, raw = srv.request(
        "POST", "/v1/assert/batch", body, {"Content-Type": "application/x-ndjson"}
    )
    assert status == 200, raw[:300]


def claim_view_ms(srv: Server, subject: str, predicate: str) -> float:
    base = {"subject": subject, "predicate": predicate}
    total, listing = call(
        srv, "POST", "/v1/query", {**base, "include_superseded": True, "limit": 200}
    )
    ms, _ = call(srv, "GET", f"/v1/skeptic?subject={subject}&predicate={predicate}")
    total += ms
    for lens in LENSES:
        ms, _ = call(srv, "POST", "/v1/query", {**base, "lens": lens})
        total += ms
    for agent in {a["agent_id"] for a in listing["assertions"] if a["agent_id"]}:
        ms, _ = call(srv, "GET", f"/v1/agents/{agent}")
        total += ms
    for a in listing["assertions"][:40]:
        ms, _ = call(srv, "GET", f"/v1/trace/{a['hash']}?depth=0")
        total += ms
    return total


def stats(xs: list[float]) -> str:
    xs = sorted(xs)
    p99 = xs[min(len(xs) - 1, int(len(xs) * 0.99))]
    return f"median {statistics.median(xs):.0f} ms, p99 {p99:.0f} ms"


def main(argv: list[str]) -> int:
    n = int(argv[0]) if argv else 100_000
    data = dbcache.fresh_dir()
    dbcache.copy_to(n, data)
    srv = Server(data, {"STEMEDB_RATE_LIMIT_READ": "0", "STEMEDB_QUERY_AUDIT": "false"})
    try:
        rss_before = srv.rss_mb()  # the triage index is folded on first use
        started = time.perf_counter()
        while call(srv, "GET", "/v1/triage?limit=1")[1]["status"] != "ready":
            time.sleep(0.2)
        fold_s = time.perf_counter() - started
        rng = random.Random(5)
        pairs = dbcache.pairs(n)
        sampled = [pairs[rng.randrange(len(pairs))] for _ in range(30)]
        claim = [claim_view_ms(srv, *pair) for pair in sampled]
        add_texts(srv, pairs, rng)
        # rare (one claim), a word (40 claims), a common part (200), nothing
        needles = ["signal 17", "nephrotoxic", "toxic", "no such text"] * 8
        search = [
            call(srv, "GET", "/v1/concepts/search?" + urlencode({"q": t}))[0] for t in needles
        ]
        found = call(srv, "GET", "/v1/concepts/search?q=toxic&limit=500")[1]
        assert sum(h["claims"] for h in found["hits"]) == 200, found  # all written, all found
        paths = ["/v1/triage", "/v1/triage?prefix=bench/s1", "/v1/triage?tier=Clinical"]
        triage = [call(srv, "GET", paths[i % 3])[0] for i in range(30)]
        print(
            f"assertions={n:,} triage_first_fold<={fold_s:.1f}s "
            f"claim_view: {stats(claim)}; triage: {stats(triage)}; "
            f"value search ({len(search)}): {stats(search)}; "
            f"rss before triage={rss_before:.0f}MB after={srv.rss_mb():.0f}MB"
        )
    finally:
        srv.proc.terminate()
        srv.proc.wait(30)
        shutil.rmtree(data, ignore_errors=True)  # a copy of the database (1.3 GB at 1M)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
