"""Triage of contested pairs: Resolved / Active / Emerging, kept up to date from the journal.

Why an index: classifying every (subject, predicate) pair by running the skeptic
lens on each costs a full table scan per request (seconds at 1M assertions).
Instead each contested pair keeps a small tally (live weight and claim count per
value and tier, the first time each value was claimed, the newest claim). The
first fold, on a background thread, reads only the contested pairs'
rows (stemedb.store.triage_reads finds them on the lens index); a request then
folds in the rows written since the last one and classifies the pairs from their
cached tallies. The first fold starts with the first triage request or console
page load, not at server start. Until it is done (or while a large backlog is folded
on the side) a request answers `building` with its progress instead of blocking.

Definitions (docs/console.md):
* a pair is in triage once two different values have ever been claimed for it;
* Resolved: the live (not superseded) claims hold one value only (a supersession
  settled it), or the best tier among live claims holds exactly one value (an
  authority answer settles it);
* Emerging: not resolved, and a value still live was first claimed within the
  window (new dissent);
* Active: every other unresolved pair (contested, no new side in the window).
The conflict score is the skeptic's with its defaults (no decay): normalised
entropy of confidence × tier weight per live value.

Tiers are the **capped** tiers the lenses see (stemedb.service.tier_policy): a
row is folded at the tier its signers may claim under the registrations in
force, not the tier it declares. A registration written later changes that cap,
so each fold first checks the registry's newest seq; when it moved, the pairs
signed or co-signed by the re-registered agents are folded again from their rows
(or, past REFOLD_PAIRS of them, the whole index on a side thread).
"""

from __future__ import annotations

import gc
import heapq
import sys
import threading
import time
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

from stemedb.config import Settings
from stemedb.errors import InvalidRequest
from stemedb.lenses.scoring import TIER_NAMES, TIER_WEIGHTS, conflict_score
from stemedb.service.tier_policy import LOWEST_TIER, TierPolicy, allowed_tier, scheme_limit
from stemedb.store import Store, triage_reads

CHUNK = 20_000  # rows per read transaction while folding
FOLD_IN_REQUEST = 50_000  # a request folds a backlog up to this many rows itself
ALLOWED_CACHE = 100_000  # cached allowed tiers (by signers and schemes), then cleared
REFOLD_PAIRS = 2_000  # a registration touching more pairs (~0.2 ms each) refolds on the side
DAY = 86_400
CLASSES = ("Resolved", "Active", "Emerging")


BITS = 21  # live claims per (value, tier) are packed into one int, 21 bits per tier
MASK = (1 << BITS) - 1


class PairTally:
    """What triage needs to know about one (subject, predicate), kept small: at 1M
    assertions there are 100k of these, so values are (weight, packed tier counts,
    first claim time) tuples and the tiers a bit mask, not lists, sets or floats."""

    __slots__ = (
        "best_tier",
        "best_tier_values",
        "conflict",
        "dirty",
        "live_values",
        "newest",
        "newest_live_side",
        "predicate",
        "subject",
        "tier_mask",
        "values",
    )

    def __init__(self, subject: str, predicate: str) -> None:
        self.subject = subject
        self.predicate = predicate
        # value_key -> (live weight, live claims per tier packed, first claim time)
        self.values: dict[str, tuple[float, int, int]] = {}
        self.newest = 0
        self.dirty = True
        # cached by refresh()
        self.conflict = 0.0
        self.best_tier = 5
        self.best_tier_values = 0
        self.live_values = 0
        self.tier_mask = 0
        self.newest_live_side = 0

    def add(self, value_key: str, confidence: float, tier: int, timestamp: int, sign: int) -> None:
        old = self.values.get(value_key)
        weight, packed, first = old if old is not None else (0.0, 0, timestamp)
        if sign > 0:
            first = min(first, timestamp)
            if timestamp > self.newest:
                self.newest = timestamp
        self.values[value_key] = (
            weight + sign * confidence * TIER_WEIGHTS[tier],
            packed + sign * (1 << (BITS * tier)),
            first,
        )
        self.dirty = True

    def refresh(self) -> None:
        """Recompute the cached summary after the tally changed."""
        live = {k: v for k, v in self.values.items() if v[1] > 0}
        self.live_values = len(live)
        self.conflict = conflict_score((k, max(0.0, v[0])) for k, v in live.items())
        mask = 0
        for _, packed, _ in live.values():
            for t in range(6):
                if (packed >> (BITS * t)) & MASK:
                    mask |= 1 << t
        self.tier_mask = mask
        self.best_tier = (mask & -mask).bit_length() - 1 if mask else 5
        shift = BITS * self.best_tier
        self.best_tier_values = sum(1 for v in live.values() if (v[1] >> shift) & MASK)
        self.newest_live_side = max((v[2] for v in live.values()), default=0)
        self.dirty = False

    @property
    def tiers(self) -> list[int]:
        return [t for t in range(6) if (self.tier_mask >> t) & 1]

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
        self.policy = TierPolicy.from_settings(getattr(store, "settings", None) or Settings())
        self.registry: dict[bytes, int] = {}  # agent -> registered max tier, in force
        self.registry_seq = 0  # the registry as of this agent_tiers seq
        # (first signer, co-signers, source scheme text, subject scheme text) -> allowed tier
        self._allowed: dict[tuple[Any, ...], int] = {}
        self.contested: dict[tuple[str, str], PairTally] = {}
        self.seq_a = 0  # assertions folded up to here
        self.seq_s = 0  # supersessions folded up to here
        self.newest = 0
        self.ready = threading.Event()
        self._lock = threading.Lock()
        self._start_lock = threading.Lock()
        self._started = False

    def start(self) -> None:
        """Fold the existing projections in on a daemon thread, once (idempotent).

        Called by the first triage request or the first load of the console page,
        not at server start: a server nobody triages keeps no tallies (about 1.7 KB
        per contested pair, 170 MB for 100k contested pairs).
        """
        with self._start_lock:
            if self._started:
                return
            self._started = True
        threading.Thread(target=self._warm, name="triage-warmup", daemon=True).start()

    def _warm(self) -> None:
        try:
            with self._lock:
                self._first_fold()
                self._catch_up_or_refold()
            # The tallies live as long as the process: keep the cyclic GC from walking
            # them on every full collection (seconds of pauses at 1M assertions).
            gc.freeze()
        except Exception:  # a store closed at shutdown; the next request retries
            pass
        finally:
            self.ready.set()

    def _first_fold(self) -> None:
        """Only the contested pairs' rows, all in one snapshot, up to its heads."""
        self.contested = {}
        with self.store.reader() as conn:
            head_a, head_s = triage_reads.heads(conn)
            newest = triage_reads.newest_claim(conn)
            self.registry_seq = triage_reads.registry_head(conn)
            self.registry = triage_reads.registry(conn)
            self._allowed = {}
            for row in triage_reads.contested_rows(conn, head_a, head_s):
                self._fold(row)
        self.seq_a, self.seq_s, self.newest = head_a, head_s, newest
        for tally in self.contested.values():
            tally.refresh()  # now, not on the first request

    def _tier(self, row: triage_reads.Row) -> int:
        """The row's tier as the lenses see it: capped to what its signers may claim
        under the registrations in force (tier_policy; the same rule as `TierPolicy.caps`).

        The first fold caps every contested row (1M at the bench's scale), so the
        allowed tier is cached by what it depends on: the signers and the schemes of
        the source and subject (few distinct values), not by row.
        """
        tier = row[5]
        if tier >= LOWEST_TIER:
            return tier
        agent, source, cosigners = row[8], row[9], row[10]
        src = source.partition(":")[0] if source and ":" in source else None
        sub = row[1].partition("://")[0] if "://" in row[1] else None
        key = (agent, cosigners, src, sub)
        allowed = self._allowed.get(key)
        if allowed is None:
            if len(self._allowed) > ALLOWED_CACHE:
                self._allowed.clear()
            signers = [bytes(agent)] if agent is not None else []
            if agent is not None and cosigners:
                signers += [bytes.fromhex(h) for h in cosigners.split(",")]
            # the schemes depend only on the text before ':' (source) and '://' (subject)
            scheme = scheme_limit(
                None if src is None else src + ":",
                "" if sub is None else sub + "://",
                self.policy.scheme_tiers,
            )
            registry, ceiling = self.registry, self.policy.unregistered_max
            allowed = self._allowed[key] = allowed_tier(signers, registry, scheme, ceiling)[0]
        return tier if tier >= allowed else allowed

    def _fold(self, row: triage_reads.Row) -> None:
        _, subject, predicate, value_key, conf, _, ts, superseded = row[:8]
        key = (subject, predicate)
        tally = self.contested.get(key)
        if tally is None:
            intern = sys.intern  # one copy of each repeated path and value text
            tally = self.contested[key] = PairTally(intern(subject), intern(predicate))
        value = sys.intern(value_key)
        tier = self._tier(row)
        tally.add(value, conf, tier, ts, 1)
        if superseded:
            tally.add(value, conf, tier, ts, -1)

    def _registry_moved(self, conn: Any, refold_limit: int | None) -> bool:
        """Re-cap after registrations changed: refold the pairs their agents signed.

        Returns False (and changes nothing) when more than `refold_limit` pairs are
        touched: the caller then refolds the whole index on a side thread.
        """
        head = triage_reads.registry_head(conn)
        if head == self.registry_seq:
            return True
        pairs: set[tuple[str, str]] = set()
        for agent in triage_reads.registered_after(conn, self.registry_seq):
            pairs |= triage_reads.pairs_signed_by(conn, agent, self.seq_a)
        touched = [key for key in pairs if key in self.contested]
        if refold_limit is not None and len(touched) > refold_limit:
            return False
        self.registry = triage_reads.registry(conn)
        self.registry_seq = head
        self._allowed = {}
        for subject, predicate in touched:
            del self.contested[(subject, predicate)]
            for old in triage_reads.pair_rows(conn, subject, predicate, self.seq_a, self.seq_s):
                self._fold(old)
        return True

    def _catch_up_or_refold(self) -> None:
        """Catch up on a side thread: a registration touching many pairs refolds all."""
        while not self._catch_up(REFOLD_PAIRS):
            self._first_fold()

    def _catch_up(self, refold_limit: int | None) -> bool:
        """Fold in what was written since the last fold, one snapshot per chunk.

        False when a registration touched more than `refold_limit` pairs (then
        nothing is folded: see `_registry_moved`).

        A new row of a contested pair is added to its tally; a row that makes its
        pair contested (another value exists) builds that tally from the pair's rows
        up to it. Supersessions are folded only up to the assertions folded so far
        (their targets come before them), or all of them once at the head.
        """
        while True:
            with self.store.reader() as conn:
                if not self._registry_moved(conn, refold_limit):
                    return False
                head_a, head_s = triage_reads.heads(conn)
                rows = triage_reads.assertions_after(conn, self.seq_a, CHUNK)
                for row in rows:
                    seq, subject, predicate, value_key = row[:4]
                    self.newest = max(self.newest, row[6])
                    tally = self.contested.get((subject, predicate))
                    if tally is not None:
                        tally.add(sys.intern(value_key), row[4], self._tier(row), row[6], 1)
                    elif triage_reads.has_other_value(conn, subject, predicate, value_key, seq):
                        for old in triage_reads.pair_rows(
                            conn, subject, predicate, seq, self.seq_s
                        ):
                            self._fold(old)
                    self.seq_a = seq
                full = len(rows) == CHUNK
                until = self.seq_a if full else max(head_s, head_a)
                sups = triage_reads.supersessions_after(conn, self.seq_s, until, CHUNK)
                for row in sups:
                    tally = self.contested.get((row[1], row[2]))
                    if tally is not None:
                        tally.add(row[3], row[4], self._tier(row), row[6], -1)
                    self.seq_s = row[0]
            if not full and len(sups) < CHUNK:
                return True

    def progress(self) -> dict[str, Any]:
        with self.store.reader() as conn:
            head_a, _ = triage_reads.heads(conn)
        return {"status": "building", "indexed_seq": self.seq_a, "head_seq": head_a}

    def triage(self, q: TriageQuery, wait_s: float = 0.8) -> dict[str, Any]:
        """Classified contested pairs, best first by conflict × recency."""
        started = time.perf_counter()
        if q.klass is not None and q.klass not in CLASSES:
            raise InvalidRequest.field("class", f"must be one of {', '.join(CLASSES)}")
        self.start()
        if not self.ready.wait(wait_s) or not self._lock.acquire(timeout=wait_s):
            return self.progress()
        try:
            with self.store.reader() as conn:
                behind = triage_reads.heads(conn)[0] - self.seq_a
            if behind > FOLD_IN_REQUEST:  # e.g. after a bulk import: fold on the side
                self.ready.clear()
                self.start_catch_up()
                return self.progress()
            if not self._catch_up(REFOLD_PAIRS):  # a registration re-caps many pairs
                self.ready.clear()
                self.start_catch_up()
                return self.progress()
            return self._answer(q, started)
        finally:
            self._lock.release()

    def start_catch_up(self) -> None:
        """Fold a large backlog on a daemon thread; requests answer `building` meanwhile."""

        def run() -> None:
            try:
                with self._lock:
                    self._catch_up_or_refold()
            except Exception:  # a store closed at shutdown; the next request retries
                pass
            finally:
                self.ready.set()

        threading.Thread(target=run, name="triage-catch-up", daemon=True).start()

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
            if tier is not None and not (tally.tier_mask >> tier) & 1:
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
        "values_ever": len(t.values),
        "best_tier": TIER_NAMES[t.best_tier],
        "tiers": [TIER_NAMES[i] for i in t.tiers],
    }
