"""Authority cannot be self-declared: cap each candidate's tier to what its signers may claim.

Every assertion declares its own `source_class`, so on its own a tier proves
nothing: anyone can label a claim `Regulatory` or cite `fda://anything`, and
`authority` would let it beat every honest Clinical source. The journal keeps
the claim exactly as written; at read time, before any lens runs, each
candidate's tier is capped to its **allowed tier**:

* a signer registered by an admin (`agent_tier` record) may claim up to its
  registered `max_tier`;
* an unregistered signer (and an unsigned claim) may claim up to the tier its
  source scheme allows (`STEMEDB_SCHEME_TIERS`: `source`, else the subject's
  scheme; no known scheme, no limit from it), but never above
  `STEMEDB_UNREGISTERED_MAX_TIER` (default `Observational`);
* a co-signed claim gets the best (lowest) allowed tier among its signers.

The capped tier is the candidate's tier for every lens (authority, best,
layered, trust, the conflict-score tier weights, skeptic, decay half-lives)
and for the tier filters of lens queries (`source_class`, `max_tier`). Each
capped candidate's explanation line says so. The pure parts (`allowed_tier`,
`cap_tier`, `cap_reason`) know nothing of SQLite; `TierPolicy.caps` does the
reads, inside the query's snapshot, before the lens runs. See
docs/security.md, "Authority cannot be self-declared".
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, NamedTuple

import apsw

from stemedb.config import Settings
from stemedb.errors import NotFound
from stemedb.lenses import Candidate
from stemedb.lenses.scoring import tier_name
from stemedb.paths import path_scheme
from stemedb.store import Store, agent_tiers
from stemedb.store.candidates import CandidateFilter, CandidateRow

LOWEST_TIER = 5  # Anecdotal: nothing can be capped below it
_URI_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*):")


class TierCap(NamedTuple):
    """A candidate whose declared tier is above what its signers may claim."""

    declared: int
    allowed: int
    why: str  # "declared Regulatory, capped to Observational: agent not registered ..."


_TIER = Candidate._fields.index("tier")


def cap_tier(candidate: Candidate, allowed: int) -> Candidate:
    """The candidate as lenses see it: its tier no better than `allowed` (pure).

    Built by slicing rather than `_replace` (a third of a wide pair's rows are
    capped, and `_replace` was 4 % of its CPU); the same tuple either way."""
    if candidate.tier >= allowed:
        return candidate
    return Candidate._make((*candidate[:_TIER], allowed, *candidate[_TIER + 1 :]))


@functools.lru_cache(maxsize=4096)
def _uri_scheme(text: str) -> str | None:
    match = _URI_SCHEME.match(text)
    return match.group(1).lower() if match else None


@functools.lru_cache(maxsize=4096)
def _path_scheme(subject: str) -> str | None:
    return path_scheme(subject)


def scheme_limit(
    source: str | None, subject: str, scheme_tiers: Mapping[str, int]
) -> tuple[str, int] | None:
    """(scheme, tier) the claim's evidence scheme allows: `source`'s, else the subject's
    (the order `infer_source_class` uses for the default source class)."""
    for scheme in (_uri_scheme(source) if source else None, _path_scheme(subject)):
        if scheme is not None and scheme in scheme_tiers:
            return scheme, int(scheme_tiers[scheme])
    return None


def allowed_tier(
    signers: Sequence[bytes],
    registered: Mapping[bytes, int],
    scheme: tuple[str, int] | None,
    unregistered_max: int,
) -> tuple[int, str]:
    """The best tier any signer may claim, and the reason that limits it (pure).

    A registered signer may claim its registered tier; an unregistered one (or
    an unsigned claim) the unregistered default: the scheme's tier, never above
    `unregistered_max`.
    """
    scheme_tier = scheme[1] if scheme is not None else 0
    default = max(scheme_tier, unregistered_max)
    if scheme is not None and scheme_tier > unregistered_max:
        default_why = f"source scheme {scheme[0]!r} allows at most {tier_name(scheme_tier)}"
    elif signers:
        default_why = "agent not registered for {declared}"
    else:
        default_why = "unsigned claims are not registered for {declared}"
    best = (default, default_why) if not signers else None
    for signer in signers:
        tier = registered.get(signer)
        if tier is None:
            option = (default, default_why)
        else:
            option = (tier, f"agent {signer.hex()[:12]}… registered up to {tier_name(tier)}")
        if best is None or option[0] < best[0]:
            best = option
    assert best is not None
    return best


@functools.lru_cache(maxsize=1024)
def cap_reason(declared: int, allowed: int, why: str) -> str:
    """The one line a capped candidate's explanation carries."""
    why = why.replace("{declared}", tier_name(declared))
    return f"declared {tier_name(declared)}, capped to {tier_name(allowed)}: {why}"


@dataclass(frozen=True)
class TierPolicy:
    """The read-time tier cap, configured by `STEMEDB_UNREGISTERED_MAX_TIER`."""

    unregistered_max: int
    scheme_tiers: Mapping[str, int]

    @classmethod
    def from_settings(cls, settings: Settings) -> TierPolicy:
        return cls(settings.unregistered_max_tier, settings.scheme_tiers)

    def caps(
        self,
        conn: apsw.Connection,
        rows: Sequence[CandidateRow],
        known_at_ms: int | None = None,
    ) -> dict[bytes, TierCap]:
        """Capped candidates of one query (by assertion hash), read in the query's snapshot.

        Only rows whose first signer is not registered for their declared tier
        need their source and co-signers looked up.
        """
        open_rows = [r for r in rows if r.tier < LOWEST_TIER]
        if not open_rows:
            return {}
        firsts = {r.agent_id for r in open_rows if r.agent_id is not None}
        registered = agent_tiers.registered_tiers(conn, firsts, known_at_ms)
        doubtful = [
            r
            for r in open_rows
            if r.agent_id is None or registered.get(r.agent_id, LOWEST_TIER + 1) > r.tier
        ]
        if not doubtful:
            return {}
        sources = agent_tiers.sources_by_seq(conn, (r.seq for r in doubtful))
        cosigners = agent_tiers.cosigners_of(conn, (r.hash for r in doubtful if r.agent_id))
        extra = {a for agents in cosigners.values() for a in agents} - registered.keys()
        if extra:
            registered = {**registered, **agent_tiers.registered_tiers(conn, extra, known_at_ms)}
        return compute_caps(
            doubtful, registered, sources, cosigners, self.scheme_tiers, self.unregistered_max
        )


def compute_caps(
    rows: Iterable[CandidateRow],
    registered: Mapping[bytes, int],
    sources: Mapping[int, str | None],
    cosigners: Mapping[bytes, Sequence[bytes]],
    scheme_tiers: Mapping[str, int],
    unregistered_max: int,
) -> dict[bytes, TierCap]:
    """The caps of `rows` given what was read of the registry (pure; by assertion hash).

    Per row this is `allowed_tier` of its signers and `scheme_limit` of its
    source, exactly; but a wide pair repeats a handful of inputs a thousand
    times, so each distinct one is computed once. `allowed_tier` sees a signer
    only through `registered.get(signer)` (and its id when registered), so all
    unregistered signers share the key `None`. The memos live for this call
    only: they never outlive a registration change or a `known_at` read.
    """
    schemes: dict[tuple[str | None, str], tuple[str, int] | None] = {}
    allowed_by: dict[tuple[Any, ...], tuple[int, str]] = {}
    made: dict[tuple[int, int, str], TierCap] = {}
    caps: dict[bytes, TierCap] = {}
    for r in rows:
        source = sources.get(r.seq)
        # `scheme_limit` sees the source only through its URI scheme (sources are unique).
        where = (_uri_scheme(source) if source else None, r.subject)
        if where in schemes:
            scheme = schemes[where]
        else:
            scheme = schemes[where] = scheme_limit(source, r.subject, scheme_tiers)
        first = r.agent_id
        others = cosigners.get(r.hash) if first else None
        key: tuple[Any, ...]
        if not first:
            key = (scheme,)
        elif not others:
            key = (scheme, first if first in registered else None)
        else:
            key = (scheme, *(s if s in registered else None for s in (first, *others)))
        found = allowed_by.get(key)
        if found is None:
            signers = [first, *(others or ())] if first else []
            found = allowed_by[key] = allowed_tier(signers, registered, scheme, unregistered_max)
        allowed, why = found
        if allowed > r.tier:
            made_key = (r.tier, allowed, why)
            cap = made.get(made_key)
            if cap is None:
                cap = made[made_key] = TierCap(r.tier, allowed, cap_reason(r.tier, allowed, why))
            caps[r.hash] = cap
    return caps


def capped_candidates(
    rows: Iterable[CandidateRow],
    caps: Mapping[bytes, TierCap],
    to_candidate: Callable[[CandidateRow], Candidate],
    tiers: Sequence[int] | None = None,
) -> tuple[list[CandidateRow], list[Candidate]]:
    """Rows and their candidates at their effective tiers, kept if that tier is in `tiers`."""
    rows = list(rows)
    candidates = list(map(to_candidate, rows))
    if caps:
        for i, row in enumerate(rows):
            cap = caps.get(row.hash)
            if cap is not None:
                candidates[i] = cap_tier(candidates[i], cap.allowed)
    if tiers is None:
        return rows, candidates
    keep = [i for i, c in enumerate(candidates) if c.tier in tiers]
    return [rows[i] for i in keep], [candidates[i] for i in keep]


def read_filter(f: CandidateFilter) -> CandidateFilter:
    """The filter to read a lens query's rows with: its tier filter widened.

    A cap only ever lowers authority (raises the number), so a claim whose
    effective tier is in `f.tiers` was declared at that tier or better; the
    rows outside the effective filter are dropped after capping.
    """
    if f.tiers is None:
        return f
    return replace(f, tiers=tuple(range(max(f.tiers) + 1)) if f.tiers else ())


def annotate(body: dict[str, Any], caps: Mapping[bytes, TierCap]) -> dict[str, Any]:
    """Add each cap to its explanation line, and list them under `tier_caps`."""
    if not caps:
        return body
    by_hex = {h.hex(): cap for h, cap in caps.items()}
    listed: list[dict[str, Any]] = []
    for line in body.get("explanation") or []:
        cap = by_hex.get(line.get("hash"))
        if cap is not None:
            line["why"] = f"{line['why']}; {cap.why}"
            listed.append(_cap_json(line["hash"], cap))
    if not listed:
        listed = [_cap_json(h, cap) for h, cap in sorted(by_hex.items())]
    body["tier_caps"] = listed
    return body


def _cap_json(hash_hex: str, cap: TierCap) -> dict[str, Any]:
    return {
        "hash": hash_hex,
        "declared": tier_name(cap.declared),
        "effective": tier_name(cap.allowed),
        "why": cap.why,
    }


class AgentRegistry:
    """Reads of the registry for `/v1/admin/agents` (writes go through the write service)."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def policy(self) -> dict[str, Any]:
        return {"unregistered_max_tier": tier_name(self.store.settings.unregistered_max_tier)}

    def list(self, *, after: str | None, limit: int) -> dict[str, Any]:
        """Registrations in force, by agent id; `next_cursor` is the last id when more exist."""
        with self.store.reader() as conn:
            rows = agent_tiers.list_registrations(
                conn, after=bytes.fromhex(after) if after else None, limit=limit + 1
            )
        more = len(rows) > limit
        rows = rows[:limit]
        return {
            "agents": rows,
            "count": len(rows),
            "next_cursor": rows[-1]["agent_id"] if more and rows else None,
            **self.policy(),
        }

    def get(self, agent_id: str) -> dict[str, Any]:
        """One agent's registration in force and its history; NotFound when never registered."""
        with self.store.reader() as conn:
            history = agent_tiers.agent_history(conn, bytes.fromhex(agent_id))
        if not history:
            raise NotFound(
                f"agent {agent_id} is not registered: its claims may reach at most "
                f"{tier_name(self.store.settings.unregistered_max_tier)} (and what the "
                "scheme of their source allows)",
                [{"field": "agent_id", "problem": "not registered"}],
            )
        return {"agent": history[-1], "history": history, **self.policy()}
