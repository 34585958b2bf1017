"""Retracted sources in a lens answer: warn about them, or leave them out (pure).

A claim whose evidence was retracted is still a claim that was made, so by
default it keeps competing and every answer says so: its explanation line
ends with the warning and the result lists it under `warnings`. With
`exclude_retracted=true` it stops competing instead, like a superseded claim
(`excluded: "retracted"`, out of the conflict score). Which candidates are
retracted is read by the service before the lens runs (`ctx.retracted`),
under the query's `known_at`, so a replay shows the world before a
retraction as it was.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from stemedb.lenses.base import Excluded
from stemedb.lenses.candidate import Candidate, LensContext, LensResult

EXCLUDED_WHY = "its source is retracted and exclude_retracted is set"


def split_retracted(
    candidates: Sequence[Candidate], ctx: LensContext
) -> tuple[list[Candidate], list[Excluded]]:
    """With `exclude_retracted`, retracted candidates stop competing."""
    if not ctx.exclude_retracted or not ctx.retracted:
        return list(candidates), []
    kept = [c for c in candidates if c.hash not in ctx.retracted]
    dropped = [
        Excluded(c, "retracted", f"{EXCLUDED_WHY}: {ctx.retracted[c.hash]['message']}")
        for c in candidates
        if c.hash in ctx.retracted
    ]
    return kept, dropped


def kept(candidates: Sequence[Candidate], ctx: LensContext) -> list[Candidate]:
    """The candidates a report covers (all, unless retracted ones are excluded)."""
    return split_retracted(candidates, ctx)[0]


def warning(hash_hex: str, ctx: LensContext) -> dict[str, Any]:
    return {"hash": hash_hex, "code": "source_retracted", **ctx.retracted[hash_hex]}


def flag(result: LensResult, ctx: LensContext) -> LensResult:
    """Each retracted candidate's line warns (unless it was left out for being retracted:
    its line says so already); `extra.warnings` lists them."""
    if not ctx.retracted:
        return result
    lines = []
    warnings: list[dict[str, Any]] = []
    for line in result.explanation:
        note = ctx.retracted.get(line.hash)
        if note is not None and line.excluded != "retracted":
            line = line._replace(why=f"{line.why}; WARNING: {note['message']}")
            warnings.append(warning(line.hash, ctx))
        lines.append(line)
    if not warnings:
        return result
    return replace(result, explanation=tuple(lines), extra={**result.extra, "warnings": warnings})


def annotate_report(report: dict[str, Any], ctx: LensContext) -> dict[str, Any]:
    """Skeptic: each claim (value group) lists the retractions among its assertions."""
    if not ctx.retracted:
        return report
    listed: list[dict[str, Any]] = []
    for claim in report.get("claims") or []:
        notes = [warning(h, ctx) for h in claim.get("assertions") or [] if h in ctx.retracted]
        if notes:
            claim["warnings"] = notes
            listed.extend(notes)
    if listed:
        report["warnings"] = listed
    return report
