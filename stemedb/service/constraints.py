"""Constraint service: the rules in force in a context, and checking an intended action.

Rules are ordinary assertions (vocabulary in `stemedb.lenses.constraints`),
so they are read like lens candidates: the context and all its ancestors
(prefix inheritance: the rules of `code/python` apply under
`code/python/http`), under the query's `as_of` / `known_at`, supersessions
honoured, tiers capped to what the signers may claim (`tier_policy`). The
rules' reasons (`source`) and co-signers are read in the same snapshot,
then the pure functions of `lenses.constraints` decide. Behind
`GET /v1/constraints`, `POST /v1/constraints/check`, `lens=constraints`,
`stemedb constraints` and the MCP tool `check_constraints`.
"""

from __future__ import annotations

import functools
import time
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from stemedb.errors import InvalidRequest
from stemedb.lenses import constraints as rules_lens
from stemedb.paths import normalise_path, parent
from stemedb.service import sources, tier_policy
from stemedb.service.candidate_rows import to_candidate
from stemedb.store import Store, agent_tiers
from stemedb.store import reads as store_reads
from stemedb.store.candidates import CandidateFilter, CandidateRow, iter_groups

MAX_ITEMS = 256  # entries of `uses` / `does`
MAX_ITEM = 512  # characters per entry
MAX_STAMP = 253402300799  # 9999-12-31, as /v1/query


class ConstraintQuery(BaseModel):
    """`GET /v1/constraints`: the rules in force in `context`."""

    model_config = ConfigDict(extra="forbid")

    context: str = Field(max_length=512, description="Concept path, e.g. code/python/http")
    as_of: int | None = Field(
        None, ge=0, le=MAX_STAMP, description="Rules claimed by then (claim time)"
    )
    known_at: int | None = Field(
        None, ge=0, le=MAX_STAMP, description="Rules the journal had by then"
    )
    exclude_retracted: bool = Field(
        False, description="Leave out rules whose source (their why) is retracted"
    )


class IntendedAction(BaseModel):
    """A short structured description of what an agent is about to do."""

    model_config = ConfigDict(extra="forbid")

    uses: list[str] = Field(
        default_factory=list,
        max_length=MAX_ITEMS,
        description="Things the action will use (libraries, tools, units, services)",
    )
    does: list[str] = Field(
        default_factory=list,
        max_length=MAX_ITEMS,
        description="Things the action does or includes (e.g. 'tests', 'dose_unit=mg')",
    )
    description: str | None = Field(None, max_length=4096, description="Free text, not checked")

    def items(self) -> tuple[list[str], list[str]]:
        return self.uses, self.does


class CheckIn(BaseModel):
    """`POST /v1/constraints/check`."""

    model_config = ConfigDict(extra="forbid")

    context: str = Field(max_length=512)
    intended_action: IntendedAction
    as_of: int | None = Field(None, ge=0, le=MAX_STAMP)
    known_at: int | None = Field(None, ge=0, le=MAX_STAMP)
    exclude_retracted: bool = Field(
        False, description="Leave out rules whose source (their why) is retracted"
    )


def _check_items(action: IntendedAction) -> None:
    for name, items in (("uses", action.uses), ("does", action.does)):
        for index, item in enumerate(items):
            if not item.strip() or len(item) > MAX_ITEM:
                raise InvalidRequest.field(
                    f"intended_action.{name}.{index}",
                    f"expected a non-empty string of at most {MAX_ITEM} characters",
                )


def ancestors(context: str) -> tuple[str, ...]:
    """The context and every ancestor, most general first (`a`, `a/b`, `a/b/c`)."""
    chain = [context]
    while (up := parent(chain[-1])) is not None:
        chain.append(up)
    return tuple(reversed(chain))


class ConstraintService:
    def __init__(self, store: Store) -> None:
        self.store = store

    @functools.cached_property
    def _tier_policy(self) -> tier_policy.TierPolicy:
        return tier_policy.TierPolicy.from_settings(self.store.settings)

    def _rules(
        self, context: str, as_of: int | None, known_at: int | None, exclude_retracted: bool
    ) -> tuple[str, list[rules_lens.Rule], list[dict[str, Any]], dict[str, dict[str, Any]]]:
        """Rules, conflicts and the retraction notes of rules citing a retracted source."""
        path = normalise_path(context, "context")
        known_at_ms = known_at * 1000 if known_at is not None else None
        f = CandidateFilter(subjects=ancestors(path), as_of=as_of, known_at_ms=known_at_ms)
        with self.store.reader() as conn:
            rows: list[CandidateRow] = []
            for _, predicate, group in iter_groups(conn, f):
                if predicate in rules_lens.VOCABULARY:
                    rows.extend(r for r in group if not r.superseded)
            caps = self._tier_policy.caps(conn, rows, known_at_ms)
            rows, candidates = tier_policy.capped_candidates(rows, caps, to_candidate)
            by_seq = agent_tiers.sources_by_seq(conn, (r.seq for r in rows))
            cosigners = store_reads.cosigners_of(conn, (r.hash for r in rows))
            notes = sources.retracted_candidates(self.store, conn, rows, f)
        why = {r.hash.hex(): by_seq.get(r.seq) for r in rows}
        extra = {h.hex(): tuple(a.hex() for a in agents) for h, agents in cosigners.items()}
        if exclude_retracted:
            candidates = [c for c in candidates if c.hash not in notes]
        rules, conflicts = rules_lens.in_force(candidates, why, extra)
        return path, rules, conflicts, notes

    def rules(
        self,
        context: str,
        *,
        as_of: int | None = None,
        known_at: int | None = None,
        exclude_retracted: bool = False,
    ) -> dict[str, Any]:
        """The rules in force in `context` (inherited ones included) and their conflicts."""
        path, rules, conflicts, notes = self._rules(context, as_of, known_at, exclude_retracted)
        return {
            "context": path,
            "contexts": list(ancestors(path)),
            "rules": _flag(rules_lens.report(rules, conflicts), notes),
            "conflicts": conflicts,
            "count": len(rules),
            "vocabulary": rules_lens.VOCABULARY,
            "as_of": as_of,
            "known_at": known_at,
            "read_at": int(time.time()),
        }

    def check(
        self,
        context: str,
        action: IntendedAction,
        *,
        as_of: int | None = None,
        known_at: int | None = None,
        exclude_retracted: bool = False,
    ) -> dict[str, Any]:
        """The rules that apply to an intended action in `context`, and which it violates."""
        _check_items(action)
        path, rules, conflicts, notes = self._rules(context, as_of, known_at, exclude_retracted)
        uses, does = action.items()
        verdict = rules_lens.check(rules, conflicts, uses, does)
        _flag([item["rule"] for item in (*verdict["violations"], *verdict["advice"])], notes)
        return {
            "context": path,
            **verdict,
            "rules": _flag(rules_lens.report(rules, conflicts), notes),
            "conflicts": conflicts,
            "intended_action": action.model_dump(exclude_none=True),
            "known_at": known_at,
        }


def _flag(rules: list[dict[str, Any]], notes: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """A rule whose `source` (its why) is retracted says so, like every lens answer."""
    for rule in rules:
        note = notes.get(rule["hash"])
        if note is not None:
            rule["warnings"] = [note["message"]]
    return rules


def check_constraints(
    service: ConstraintService, context: str, intended_action: dict[str, Any] | IntendedAction
) -> dict[str, Any]:
    """Convenience entry point (the MCP tool's shape): a dict action is validated first."""
    action = (
        intended_action
        if isinstance(intended_action, IntendedAction)
        else IntendedAction.model_validate(intended_action)
    )
    return service.check(context, action)


def query_body(store: Store, q: Any, query_id: str) -> dict[str, Any]:
    """`/v1/query?lens=constraints`: the rules in force in `subject` (the context).

    `results` holds the rules (one per rule, not per subject/predicate group),
    so the answer has the usual shape of a lens query."""
    if q.subject is None:
        raise InvalidRequest.field("subject", "lens=constraints needs the context as subject")
    body = ConstraintService(store).rules(
        q.subject.removesuffix("/*"),
        as_of=q.as_of,
        known_at=q.known_at,
        exclude_retracted=q.exclude_retracted,
    )
    return {
        "lens": "constraints",
        "query_id": query_id,
        "results": body["rules"],
        **body,
        "next_cursor": None,
    }
