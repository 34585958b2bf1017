"""Triage of contested pairs: Resolved / Active / Emerging, kept up to date from the journal.

Why an index: classifying every (subject, predicate) pair by running the skeptic
lens on each costs a full table scan per request (seconds at 1M assertions).
Instead each pair keeps a small tally (live weight and claim count per value and
tier, the first time each value was claimed, the newest claim), folded in once
from the `assertions` and `supersessions` projections in seq order. A request
first folds in only the rows written since the last one, then classifies the
contested pairs from their cached tallies. The first fold runs on a background
thread at start; until it has caught up a request answers `building` with its
progress instead of blocking.

Definitions (docs/console.md):
* a pair is in triage once two different values have ever been claimed for it;
* Resolved: the live (not superseded) claims hold one value only (a supersession
  settled it), or the best tier among live claims holds exactly one value (an
  authority answer settles it);
* Emerging: not resolved, and a value still live was first claimed within the
  window (new dissent);
* Active: every other unresolved pair (contested, no new side in the window).
The conflict score is the skeptic's with its defaults (no decay): normalised
entropy of confidence × tier weight per live value, on the stored tier.
"""

from __future__ import annotations

import gc
import heapq
import threading
import time
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any

from stemedb.errors import InvalidRequest
from stemedb.lenses.scoring import TIER_NAMES, TIER_WEIGHTS, conflict_score
from stemedb.store import Store, triage_reads

CHUNK = 20_000  # rows per read transaction while folding
DAY = 86_400
CLASSES = ("Resolved", "Active", "Emerging")


@dataclass(slots=True)
class PairTally:
    """What triage needs to know about one (subject, predicate)."""

    subject: str
    predicate: str
    # value_key -> [live weight, live claims at tier 0..5]
    live: dict[str, list[float]] = field(default_factory=dict)
    first_seen: dict[str, int] = field(default_factory=dict)  # every value ever claimed
    newest: int = 0
    dirty: bool = True
    # cached by refresh(): conflict, best live tier, values at that tier, live values, tiers
    conflict: float = 0.0
    best_tier: int = 5
    best_tier_values: int = 0
    live_values: int = 0
    tiers: frozenset[int] = frozenset()
    newest_live_side: int = 0

    def add(self, value_key: str, confidence: float, tier: int, timestamp: int, sign: int) -> None:
        slot = self.live.setdefault(value_key, [0.0] * 7)
        slot[0] += sign * confidence * TIER_WEIGHTS[tier]
        slot[1 + tier] += sign
        if sign > 0:
            seen = self.first_seen.get(value_key)
            self.first_seen[value_key] = timestamp if seen is None else min(seen, timestamp)
            self.newest = max(self.newest, timestamp)
        self.dirty = True

    def refresh(self) -> None:
        """Recompute the cached summary after the tally changed."""
        live = {k: v for k, v in self.live.items() if sum(v[1:]) > 0}
        self.live_values = len(live)
        self.conflict = conflict_score((k, max(0.0, v[0])) for k, v in live.items())
        tiers = {t for v in live.values() for t in range(6) if v[1 + t] > 0}
        self.tiers = frozenset(tiers)
        self.best_tier = min(tiers) if tiers else 5
        self.best_tier_values = sum(1 for v in live.values() if v[1 + self.best_tier] > 0)
        self.newest_live_side = max((self.first_seen[k] for k in live), default=0)
        self.dirty = False

    @property
    def resolved(self) -> bool:
        """One live value (supersessions settled it) or one value at the best tier."""
        return self.live_values <= 1 or self.best_tier_values == 1

    def why(self, klass: str) -> str:
        if klass == "Resolved":
            if self.live_values <= 1:
                return "supersessions leave one live value"
            return f"one value at the best tier ({TIER_NAMES[self.best_tier]})"
        if klass == "Emerging":
            return "a live side was first claimed within the window"
        return f"{self.best_tier_values} values contest tier {TIER_NAMES[self.best_tier]}"


@dataclass(frozen=True)
class TriageQuery:
    prefix: str | None = None
    tier: int | None = None
    klass: str | None = None
    window_days: float = 30.0
    now: int | None = None
    limit: int = 100


class TriageService:
    """The triage index of one store and the query over it (thread-safe)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.pairs: dict[tuple[str, str], PairTally] = {}
        self.contested: dict[tuple[str, str], PairTally] = {}
        self.seq_a = 0
        self.seq_s = 0
        self.newest = 0
        self.ready = threading.Event()
        self._lock = threading.Lock()
        self._touched: set[tuple[str, str]] = set()

    def start(self) -> None:
        """Fold the existing projections in on a daemon thread (the first request need not)."""
        threading.Thread(target=self._warm, name="triage-warmup", daemon=True).start()

    def _warm(self) -> None:
        try:
            with self._lock:
                self._catch_up()
                self._promote()
                for tally in self.contested.values():
                    tally.refresh()  # now, not on the first request
            # The tallies live as long as the process: keep the cyclic GC from walking
            # them on every full collection (seconds of pauses at 1M assertions).
            gc.freeze()
        except Exception:  # a store closed at shutdown; the next request retries
            pass
        finally:
            self.ready.set()

    def _catch_up(self) -> None:
        while True:
            with self.store.reader() as conn:
                rows = triage_reads.assertions_after(conn, self.seq_a, CHUNK)
                sups = triage_reads.supersessions_after(conn, self.seq_s, CHUNK)
            for seq, subject, predicate, value_key, conf, tier, ts in rows:
                self._tally(subject, predicate).add(value_key, conf, tier, ts, 1)
                self.seq_a = seq
                self.newest = max(self.newest, ts)
            for seq, subject, predicate, value_key, conf, tier, ts in sups:
                self._tally(subject, predicate).add(value_key, conf, tier, ts, -1)
                self.seq_s = seq
            if len(rows) < CHUNK and len(sups) < CHUNK:
                return

    def _tally(self, subject: str, predicate: str) -> PairTally:
        key = (subject, predicate)
        self._touched.add(key)
        tally = self.pairs.get(key)
        if tally is None:
            tally = self.pairs[key] = PairTally(subject, predicate)
        return tally

    def _promote(self) -> None:
        for key in self._touched:
            tally = self.pairs[key]
            if len(tally.first_seen) >= 2:
                self.contested[key] = tally
        self._touched.clear()

    def progress(self) -> dict[str, Any]:
        with self.store.reader() as conn:
            head_a, _ = triage_reads.max_seqs(conn)
        return {"status": "building", "indexed_seq": self.seq_a, "head_seq": head_a}

    def triage(self, q: TriageQuery, wait_s: float = 0.8) -> dict[str, Any]:
        """Classified contested pairs, best first by conflict × recency."""
        started = time.perf_counter()
        if q.klass is not None and q.klass not in CLASSES:
            raise InvalidRequest.field("class", f"must be one of {', '.join(CLASSES)}")
        if not self.ready.wait(wait_s) or not self._lock.acquire(timeout=wait_s):
            return self.progress()
        try:
            self._catch_up()
            self._promote()
            return self._answer(q, started)
        finally:
            self._lock.release()

    def _answer(self, q: TriageQuery, started: float) -> dict[str, Any]:
        # The hot loop of the view: one pass over the contested pairs with cached
        # summaries, a tuple only for pairs that pass the filters.
        ref = q.now if q.now is not None else self.newest
        window = max(1, int(q.window_days * DAY))
        window_start = ref - window
        counts = dict.fromkeys(CLASSES, 0)
        prefix = q.prefix.rstrip("/") if q.prefix else None
        below = prefix + "/" if prefix else ""
        tier, wanted = q.tier, q.klass
        scored: list[tuple[float, PairTally, str]] = []
        for tally in self.contested.values():
            subject = tally.subject
            if prefix is not None and subject != prefix and not subject.startswith(below):
                continue
            if tally.dirty:
                tally.refresh()
            if tier is not None and tier not in tally.tiers:
                continue
            if tally.resolved:
                klass = "Resolved"
            elif tally.newest_live_side >= window_start:
                klass = "Emerging"
            else:
                klass = "Active"
            counts[klass] += 1
            if wanted is not None and klass != wanted:
                continue
            age = ref - tally.newest if ref > tally.newest else 0
            scored.append((tally.conflict / (1.0 + age / window), tally, klass))
        top = heapq.nlargest(q.limit, scored, key=itemgetter(0))
        return {
            "status": "ready",
            "reference_time": ref,
            "window_days": q.window_days,
            "indexed_seq": max(self.seq_a, self.seq_s),
            "counts": counts,
            "total": len(scored),
            "pairs": [_pair_out(t, klass, score) for score, t, klass in top],
            "server_ms": round((time.perf_counter() - started) * 1000, 3),
        }


def _pair_out(t: PairTally, klass: str, score: float) -> dict[str, Any]:
    return {
        "subject": t.subject,
        "predicate": t.predicate,
        "class": klass,
        "why": t.why(klass),
        "conflict_score": t.conflict,
        "score": score,
        "newest_timestamp": t.newest,
        "live_values": t.live_values,
        "values_ever": len(t.first_seen),
        "best_tier": TIER_NAMES[t.best_tier],
        "tiers": [TIER_NAMES[i] for i in sorted(t.tiers)],
    }
