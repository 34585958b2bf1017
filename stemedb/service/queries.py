"""Query service: candidate selection (lenses.md steps 1–3), then the pure lenses.

Everything a lens looks up (vote totals, trust, epoch metadata) is read in the
same snapshot as the candidates, before the lens runs; the lens itself never
touches the store.
"""

from __future__ import annotations

import base64
import functools
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import apsw

from stemedb import lenses
from stemedb.errors import InvalidRequest
from stemedb.ids import new_id
from stemedb.lenses import Candidate, LensContext, LensResult, retraction
from stemedb.paths import normalise_path
from stemedb.records.fields import parse_lifecycle, parse_source_class
from stemedb.service import constraints, quarantine, sources, tier_policy, truth_inputs
from stemedb.service.audit import AuditLog
from stemedb.service.candidate_rows import to_candidate
from stemedb.service.models import MAX_SEQ, PairQuery, QueryIn
from stemedb.store import Store, agent_clusters, agents_seen
from stemedb.store import reads as store_reads
from stemedb.store.candidates import CandidateFilter, CandidateRow, iter_groups, list_assertion_seqs

QueryObserver = Callable[[str, str, float], None]


@dataclass(frozen=True)
class Selection:
    """A parsed query: store filter plus what the lens needs."""

    filter: CandidateFilter
    lens: str | None
    ctx_decay: str | float | None
    at_s: float
    inner: str
    min_agent_age: float | None = None  # consensus/layered: voices of old-enough agents only
    exclude_retracted: bool = False  # claims citing a retracted source stop competing
    include_quarantined: bool = False  # held assertions compete too (service/quarantine.py)
    # `truth`: reads shared by the groups of this one query (issue 18)
    truth_memo: truth_inputs.Memo = field(default_factory=truth_inputs.Memo, compare=False)


def _decode_cursor(cursor: str | None, field: str = "cursor") -> Any:
    if not cursor:
        return None
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        return json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
    except (ValueError, UnicodeError):
        raise InvalidRequest.field(field, "not a cursor returned by this server") from None


def _encode_cursor(value: Any) -> str:
    raw = json.dumps(value, separators=(",", ":")).encode("utf-8")
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def _lifecycles(text: str) -> tuple[str, ...] | None:
    if text.strip().lower() in ("", "any"):
        return None
    try:
        return tuple(sorted({str(parse_lifecycle(p)) for p in text.split(",") if p.strip()}))
    except ValueError as exc:
        raise InvalidRequest.field("lifecycle", str(exc)) from None


def _tiers(source_class: str | None, max_tier: int | None) -> tuple[int, ...] | None:
    tiers = set(range(6))
    if source_class:
        try:
            tiers &= {int(parse_source_class(p)) for p in source_class.split(",") if p.strip()}
        except ValueError as exc:
            raise InvalidRequest.field("source_class", str(exc)) from None
    if max_tier is not None:
        tiers &= set(range(max_tier + 1))
    return None if tiers == set(range(6)) else tuple(sorted(tiers))


def _decay(text: str) -> str | float | None:
    if text == "none":
        return None
    if text == "tier":
        return "tier"
    return float(text)


def _lens_name(name: str, field: str) -> str:
    try:
        return lenses.canonical_lens_name(name)
    except lenses.UnknownLens as exc:
        raise InvalidRequest.field(
            field, f"unknown lens {name!r}; valid lenses: {', '.join(exc.valid)}"
        ) from None


def _winner_row(
    result: LensResult, rows: list[CandidateRow], candidates: list[Candidate]
) -> CandidateRow | None:
    """The stored row of the winner (lenses hand back one of the Candidates they were given).

    Its `superseded` flag honours the query's `as_of` / `known_at`, so the
    winner view says what a reader at that time saw.
    """
    winner = result.winner
    if winner is None:
        return None
    for row, candidate in zip(rows, candidates, strict=True):
        if candidate is winner:
            return row
    return None


# Lenses that count agents: every co-signer of an assertion is a voice (lenses.md).
AGENT_COUNTING = frozenset({"consensus", "layered", "skeptic", "truth"})


def reading_instant(as_of: int | None, known_at: int | None) -> float:
    """The instant decay and trust relaxation are measured at: as_of, else known_at, else now."""
    if as_of is not None:
        return float(as_of)
    if known_at is not None:
        return float(known_at)
    return time.time()


# ---- state as of a system time ---------------------------------------------------
# Without `known_at` every lookup reads the current-state projections (the hot
# path, unchanged); with it, the history tables give the state a reader saw at T.


def _resolve_alias(conn: apsw.Connection, subject: str, known_at: int | None) -> str | None:
    if known_at is None:
        return store_reads.resolve_alias(conn, subject)
    return store_reads.resolve_alias_at(conn, subject, known_at * 1000)


def _vote_totals(
    conn: apsw.Connection, rows: list[CandidateRow], known_at_ms: int | None
) -> dict[bytes, float]:
    hashes = [r.hash for r in rows]
    if known_at_ms is None:
        return store_reads.vote_totals(conn, hashes)
    return store_reads.vote_totals_at(conn, hashes, known_at_ms)


def _trust_scores(
    conn: apsw.Connection, rows: list[CandidateRow], known_at_ms: int | None
) -> dict[bytes, tuple[float, float]]:
    agents = {r.agent_id for r in rows if r.agent_id}
    if known_at_ms is None:
        return store_reads.trust_scores(conn, agents)
    return store_reads.trust_scores_at(conn, agents, known_at_ms)


# Lenses whose answer is a count of agents, so `min_agent_age` changes it.
AGE_AWARE = frozenset({"consensus", "layered"})


def _min_agent_age(value: float | None, lens: str | None, inner: str) -> float | None:
    """`min_agent_age` only where agents are counted; elsewhere it would be silently ignored."""
    if value is None:
        return None
    if lens in AGE_AWARE or (lens == "epoch" and inner in AGE_AWARE):
        return value
    raise InvalidRequest.field(
        "min_agent_age",
        f"applies to the consensus and layered lenses (and epoch with inner=consensus), "
        f"not {lens or 'a query without a lens'}: only they count agents",
    )


def _first_seen(
    conn: apsw.Connection,
    rows: list[CandidateRow],
    cosigners: dict[str, tuple[str, ...]],
    known_at_ms: int | None,
) -> dict[str, float]:
    """First-seen time (Unix s) of every signer of the candidates, read before the lens runs."""
    agents = {r.agent_id for r in rows if r.agent_id}
    agents.update(bytes.fromhex(a) for extra in cosigners.values() for a in extra)
    seen = agents_seen.first_seen_ms(conn, agents, known_at_ms)
    return {agent.hex(): ms / 1000.0 for agent, ms in seen.items()}


class QueryService:
    def __init__(
        self, store: Store, audit: AuditLog, *, on_query: QueryObserver | None = None
    ) -> None:
        self.store = store
        self.audit = audit
        self.on_query = on_query or (lambda endpoint, lens, seconds: None)

    # ---- selection -------------------------------------------------------

    def _select(
        self,
        conn: apsw.Connection,
        q: QueryIn | PairQuery,
        *,
        prefix: bool = False,
        lens: str | None = None,
        inner: str = "recency",
        epoch: str | None = None,
        tiers: tuple[int, ...] | None = None,
        agent_id: str | None = None,
        predicate: str | None = None,
    ) -> Selection:
        subjects: tuple[str, ...] = ()
        if q.subject is not None:
            raw = q.subject
            if raw.endswith("/*"):
                raw, prefix = raw[:-2], True
            subject = normalise_path(raw, "subject")
            if q.resolve_aliases and self.store.may_have_rows("aliases"):
                subject = _resolve_alias(conn, subject, q.known_at) or subject
            subjects = (subject,)
        f = CandidateFilter(
            subjects=subjects,
            prefix=prefix,
            predicate=predicate,
            lifecycles=_lifecycles(q.lifecycle),
            epoch=bytes.fromhex(epoch) if epoch else None,
            tiers=tiers,
            agent_id=bytes.fromhex(agent_id) if agent_id else None,
            as_of=q.as_of,
            known_at_ms=q.known_at * 1000 if q.known_at is not None else None,
            include_superseded=q.include_superseded,
        )
        return Selection(
            f,
            lens,
            _decay(q.decay),
            reading_instant(q.as_of, q.known_at),
            inner,
            _min_agent_age(q.min_agent_age, lens, inner),
            q.exclude_retracted,
            include_quarantined=q.include_quarantined,
        )

    def _context(
        self, conn: apsw.Connection, sel: Selection, rows: list[CandidateRow]
    ) -> LensContext:
        lens = sel.lens or ""
        known_at_ms = sel.filter.known_at_ms
        votes: dict[str, float] = {}
        trust: dict[str, tuple[float, float]] = {}
        cosigners: dict[str, tuple[str, ...]] = {}
        epochs: frozenset[str] | None = frozenset()
        if lens == "votes" or (lens == "epoch" and sel.inner == "votes"):
            votes = {h.hex(): t for h, t in _vote_totals(conn, rows, known_at_ms).items()}
        if (
            lens in ("authority", "trust", "best") or sel.inner in ("authority", "trust", "best")
        ) and self.store.may_have_rows("trust"):
            trust = {a.hex(): v for a, v in _trust_scores(conn, rows, known_at_ms).items()}
        if lens in AGENT_COUNTING or (lens == "epoch" and sel.inner in AGENT_COUNTING):
            cosigners = {
                h.hex(): tuple(a.hex() for a in agents)
                for h, agents in store_reads.cosigners_of(conn, (r.hash for r in rows)).items()
            }
        first_seen: dict[str, float] = {}
        if sel.min_agent_age is not None:
            first_seen = _first_seen(conn, rows, cosigners, known_at_ms)
        clusters: dict[str, str] = {}
        if lens in AGENT_COUNTING or (lens == "epoch" and sel.inner in AGENT_COUNTING):
            agents = (r.agent_id for r in rows if r.agent_id is not None)  # issue 19
            clusters = agent_clusters.clusters_of(conn, agents, known_at_ms)
        if lens == "epoch":
            try:
                epochs = frozenset(
                    e.hex() for e in store_reads.superseded_epochs(conn, sel.filter.known_at_ms)
                )
            except apsw.Error:
                epochs = None  # fail open: unreadable epoch metadata never hides data
        evidence = None
        if lens == "truth" or (lens == "epoch" and sel.inner == "truth"):  # issue 18
            evidence = truth_inputs.gather(
                conn, sel.filter, rows, cosigners, self._tier_policy, sel.truth_memo
            )
        return LensContext(
            at_s=sel.at_s,
            decay=sel.ctx_decay,
            include_superseded=sel.filter.include_superseded,
            vote_totals=votes,
            trust=trust,
            superseded_epochs=epochs,
            inner=sel.inner,
            cosigners=cosigners,
            min_agent_age=sel.min_agent_age,
            agent_first_seen=first_seen,
            clusters=clusters,
            truth=evidence,
            retracted=sources.retracted_candidates(self.store, conn, rows, sel.filter),
            exclude_retracted=sel.exclude_retracted,
        )

    # ---- /v1/query ---------------------------------------------------------

    def query(self, q: QueryIn, agent_id: str | None) -> dict[str, Any]:
        started = time.perf_counter()
        lens = _lens_name(q.lens, "lens") if q.lens else None
        inner = _lens_name(q.inner, "inner") if q.inner else "recency"
        if lens == "epoch" and inner in ("epoch", "skeptic", "layered", "constraints"):
            raise InvalidRequest.field("inner", f"{inner!r} cannot be the inner lens of epoch")
        query_id = new_id()
        with self.store.reader() as conn:
            sel = self._select(
                conn,
                q,
                prefix=q.prefix,
                lens=lens,
                inner=inner,
                epoch=q.epoch,
                tiers=_tiers(q.source_class, q.max_tier),
                agent_id=q.agent_id,
                predicate=q.predicate,
            )
            if q.truth_tolerance is not None:  # issue 18: lens=truth only
                if "truth" not in (lens, inner if lens == "epoch" else None):
                    raise InvalidRequest.field("truth_tolerance", "applies to lens=truth only")
                sel.truth_memo.tolerance = q.truth_tolerance
            if lens is None:
                body = self._list(conn, sel, q, query_id)
            elif lens == "constraints":  # a context's rules, inherited (service/constraints.py)
                body = constraints.query_body(self.store, q, query_id)
            else:
                body = self._resolve(conn, sel, q, lens, query_id)
            body["seq"] = store_reads.head_seq(conn)  # the snapshot's seq (replication.md)
        elapsed = time.perf_counter() - started
        self.on_query("query", lens or "none", elapsed)
        self.audit.record(query_id, agent_id, "query", lens, q.model_dump(exclude_none=True), body)
        return body

    def _list(
        self, conn: apsw.Connection, sel: Selection, q: QueryIn, query_id: str
    ) -> dict[str, Any]:
        after = _decode_cursor(q.cursor)
        after_seq = after.get("seq", 0) if isinstance(after, dict) else 0
        if not isinstance(after_seq, int) or not 0 <= after_seq <= MAX_SEQ:
            raise InvalidRequest.field("cursor", "not a cursor returned by this server")
        rows = list_assertion_seqs(conn, sel.filter, after_seq=after_seq, limit=q.limit + 1)
        more = len(rows) > q.limit
        rows = rows[: q.limit]
        assertions = store_reads.assertions_flagged(conn, rows)
        next_cursor = _encode_cursor({"seq": rows[-1][0]}) if more and rows else None
        return {
            "assertions": assertions,
            "count": len(assertions),
            "next_cursor": next_cursor,
            "query_id": query_id,
        }

    def _resolve(
        self, conn: apsw.Connection, sel: Selection, q: QueryIn, lens: str, query_id: str
    ) -> dict[str, Any]:
        after = _decode_cursor(q.cursor)
        after_key = (
            (str(after[0]), str(after[1])) if isinstance(after, list) and len(after) == 2 else None
        )
        results: list[dict[str, Any]] = []
        next_cursor = None
        read = tier_policy.read_filter(sel.filter)  # tier filters: see _tiered
        for subject, predicate, rows in iter_groups(conn, read, after=after_key):
            if len(results) == q.limit:
                last = results[-1]
                next_cursor = _encode_cursor([last["subject"], last["predicate"]])
                break
            rows, held = quarantine.split_rows(conn, rows, sel)  # issue 19
            rows, candidates, caps = self._tiered(conn, sel, rows)
            if not rows:
                continue  # every candidate's effective tier is outside the tier filter
            result = self._run_lens(conn, sel, lens, subject, predicate, rows, candidates)
            winner_row = _winner_row(result, rows, candidates)
            results.append(tier_policy.annotate(self._group_body(conn, result, winner_row), caps))
            quarantine.annotate(results[-1], held, sel.include_quarantined)
        return {"lens": lens, "query_id": query_id, "results": results, "next_cursor": next_cursor}

    def _run_lens(
        self,
        conn: apsw.Connection,
        sel: Selection,
        lens: str,
        subject: str,
        predicate: str,
        rows: list[CandidateRow],
        candidates: list[Candidate] | None = None,
    ) -> LensResult:
        ctx = self._context(conn, sel, rows)
        if candidates is None:
            candidates = [to_candidate(r) for r in rows]
        return lenses.resolve(lens, subject, predicate, candidates, ctx)

    def _group_body(
        self, conn: apsw.Connection, result: LensResult, winner_row: CandidateRow | None = None
    ) -> dict[str, Any]:
        winner = None
        if winner_row is not None:
            winner = store_reads.assertion_at(
                conn, winner_row.seq, winner_row.tier, winner_row.superseded
            )
        elif result.winner is not None:
            winner = store_reads.assertion_by_hash(conn, bytes.fromhex(result.winner.hash))
        body: dict[str, Any] = {
            "subject": result.subject,
            "predicate": result.predicate,
            "winner": winner,
            "candidates_count": result.candidates_count,
            "resolution_confidence": result.resolution_confidence,
            "conflict_score": result.conflict_score,
            "explanation": [
                {
                    "hash": e.hash,
                    "score": e.score,
                    "excluded": e.excluded,
                    "superseded": e.superseded,
                    "why": e.why,
                }
                for e in result.explanation
            ],
        }
        body.update(result.extra)
        return sources.spread_warnings(body)  # retracted sources (issue 17)

    # ---- one pair: skeptic and layered -----------------------------------

    def skeptic(self, q: PairQuery, agent_id: str | None) -> dict[str, Any]:
        started = time.perf_counter()
        with self.store.reader() as conn:
            sel = self._select(conn, q, lens="skeptic", predicate=q.predicate)
            subject = sel.filter.subjects[0]
            rows = next((g[2] for g in iter_groups(conn, sel.filter)), [])
            rows, held = quarantine.split_rows(conn, rows, sel)  # issue 19
            rows, candidates, caps = self._tiered(conn, sel, rows)
            ctx = self._context(conn, sel, rows)
            body = tier_policy.annotate(
                retraction.annotate_report(
                    lenses.skeptic_report(
                        subject, q.predicate, retraction.kept(candidates, ctx), ctx
                    ),
                    ctx,
                ),
                caps,
            )
        quarantine.annotate(body, held, sel.include_quarantined)
        self.on_query("skeptic", "skeptic", time.perf_counter() - started)
        self.audit.record(
            new_id(),
            agent_id,
            "skeptic",
            "skeptic",
            q.model_dump(exclude_none=True),
            {"results": []},
        )
        return body

    def layered(self, q: PairQuery, agent_id: str | None) -> dict[str, Any]:
        started = time.perf_counter()
        with self.store.reader() as conn:
            sel = self._select(conn, q, lens="layered", predicate=q.predicate)
            subject = sel.filter.subjects[0]
            rows = next((g[2] for g in iter_groups(conn, sel.filter)), [])
            rows, held = quarantine.split_rows(conn, rows, sel)  # issue 19
            rows, candidates, caps = self._tiered(conn, sel, rows)
            result = self._run_lens(conn, sel, "layered", subject, q.predicate, rows, candidates)
            body = self._group_body(conn, result, _winner_row(result, rows, candidates))
            tier_policy.annotate(body, caps)
            quarantine.annotate(body, held, sel.include_quarantined)
        self.on_query("layered", "layered", time.perf_counter() - started)
        query_id = new_id()
        body["query_id"] = query_id
        self.audit.record(
            query_id,
            agent_id,
            "layered",
            "layered",
            q.model_dump(exclude_none=True),
            {"results": [body]},
        )
        return body

    # ---- authority cannot be self-declared (service/tier_policy.py) -------

    on_capped: Callable[[int], None] = staticmethod(lambda count: None)  # candidates capped

    @functools.cached_property
    def _tier_policy(self) -> tier_policy.TierPolicy:
        return tier_policy.TierPolicy.from_settings(self.store.settings)

    def _tiered(
        self, conn: apsw.Connection, sel: Selection, rows: list[CandidateRow]
    ) -> tuple[list[CandidateRow], list[Candidate], dict[bytes, tier_policy.TierCap]]:
        """Candidates at their effective (capped) tiers, read before the lens runs.

        The tier filters (`source_class`, `max_tier`) of a lens query apply to
        the effective tier: the rows were read with the widened filter of
        `tier_policy.read_filter`, and those outside it are dropped here.
        """
        caps = self._tier_policy.caps(conn, rows, sel.filter.known_at_ms)
        if caps:
            self.on_capped(len(caps))
        kept_rows, candidates = tier_policy.capped_candidates(
            rows, caps, to_candidate, sel.filter.tiers
        )
        return kept_rows, candidates, caps
