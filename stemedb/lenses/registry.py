"""Lens names, aliases and `resolve`, the single entry point for every lens."""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import replace

from stemedb.lenses import retraction
from stemedb.lenses.authority import authority, best, trust
from stemedb.lenses.base import LensFn, Outcome, assemble, check_context, split_superseded
from stemedb.lenses.candidate import Candidate, LensContext, LensResult
from stemedb.lenses.consensus import consensus
from stemedb.lenses.constraints import constraints
from stemedb.lenses.epoch import epoch
from stemedb.lenses.layered import layered
from stemedb.lenses.scoring import total_key
from stemedb.lenses.simple import confidence, recency
from stemedb.lenses.skeptic import skeptic, skeptic_report
from stemedb.lenses.truth import truth as truth_lens
from stemedb.lenses.votes import votes

LENS_NAMES: tuple[str, ...] = (
    "recency",
    "confidence",
    "consensus",
    "authority",
    "trust",
    "votes",
    "best",
    "epoch",
    "skeptic",
    "layered",
    "truth",
    "constraints",  # rules in force in a context (lenses/constraints.py, issue 17)
)
LENS_ALIASES: dict[str, str] = {
    "trust_aware_authority": "trust",
    "vote_aware_consensus": "votes",
    "epoch_aware": "epoch",
}
NOT_INNER = frozenset({"epoch", "skeptic", "layered", "constraints"})

_LENSES: dict[str, LensFn] = {
    "recency": recency,
    "confidence": confidence,
    "consensus": consensus,
    "authority": authority,
    "trust": trust,
    "votes": votes,
    "best": best,
    "layered": layered,
    "truth": truth_lens,
    "constraints": constraints,
}


class UnknownLens(ValueError):
    """A lens name that is neither a lens nor an alias; lists the valid names."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.valid: tuple[str, ...] = LENS_NAMES
        close = difflib.get_close_matches(
            str(name).strip().lower(), [*LENS_NAMES, *LENS_ALIASES], n=1
        )
        hint = f"did you mean {LENS_ALIASES.get(close[0], close[0])!r}? " if close else ""
        super().__init__(f"unknown lens {name!r}; {hint}valid lenses: {', '.join(LENS_NAMES)}")


def canonical_lens_name(name: str) -> str:
    """Case-insensitive lens name (surrounding spaces ignored), aliases resolved."""
    if not isinstance(name, str):
        raise UnknownLens(repr(name))
    key = name.strip().lower()
    key = LENS_ALIASES.get(key, key)
    if key not in LENS_NAMES:
        raise UnknownLens(name)
    return key


def inner_lens_name(ctx: LensContext) -> str:
    """The canonical inner lens of `epoch`; ValueError for epoch/skeptic/layered."""
    name = canonical_lens_name(ctx.inner)
    if name in NOT_INNER:
        raise ValueError(
            f"inner lens {ctx.inner!r} is not allowed; use one of "
            + ", ".join(n for n in LENS_NAMES if n not in NOT_INNER)
        )
    return name


def resolve(
    lens: str,
    subject: str,
    predicate: str,
    candidates: Sequence[Candidate],
    ctx: LensContext,
) -> LensResult:
    """Resolve one (subject, predicate) group with the named lens.

    Candidates are put in one total order first, so the result never depends
    on the order they were given in.
    """
    name = canonical_lens_name(lens)
    check_context(ctx)
    ordered = sorted(candidates, key=total_key)
    competing, superseded = split_superseded(ordered, ctx)
    competing, withdrawn = retraction.split_retracted(competing, ctx)  # exclude_retracted
    superseded += withdrawn
    if name == "skeptic":
        report = skeptic_report(subject, predicate, retraction.kept(ordered, ctx), ctx)
        report = retraction.annotate_report(report, ctx)
        out: Outcome = replace(skeptic(competing, ctx), extra=report)
    elif name == "epoch":
        inner_name = inner_lens_name(ctx)
        out = epoch(competing, ctx, _LENSES[inner_name], inner_name)
    else:
        out = _LENSES[name](competing, ctx)
    result = assemble(name, subject, predicate, len(ordered), out.with_excluded(superseded), ctx)
    return retraction.flag(result, ctx)  # warnings for retracted sources
