"""Plain-text renderings for the MCP `explain` tool: a lens answer a model can read.

The lens answer already says, per candidate, its score and the lens's reason;
this puts them in ranked order next to each candidate's value so "why this
winner" is one paragraph, not a JSON tree to interpret.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any


def value_text(value: Any) -> str:
    """A tagged object `{"type": ..., "value": ...}` as its bare value."""
    if isinstance(value, Mapping) and "value" in value:
        value = value["value"]
    return json.dumps(value, ensure_ascii=False) if not isinstance(value, str) else repr(value)


def _score(value: Any) -> str:
    """Scores in [0, 1] to four places; a recency score (a timestamp) as an integer."""
    number = float(value)
    return f"{number:.0f}" if abs(number) >= 1e6 else f"{number:.4f}"


def explain_text(
    subject: str,
    predicate: str,
    lens: str,
    groups: Sequence[Mapping[str, Any]],
    values: Mapping[str, Any],
) -> str:
    """Ranked candidates of the first group with their values, scores and reasons."""
    if not groups:
        return f"No claims for {subject} / {predicate}: nothing for lens {lens} to choose from."
    group = groups[0]
    winner = group.get("winner") or {}
    explanation = list(group.get("explanation") or [])
    lines = [f"{subject} / {predicate} through lens {lens}:"]
    if winner:
        lines.append(
            f"winner {value_text(winner.get('object'))} (assertion {winner.get('hash')}, "
            f"resolution confidence {float(group.get('resolution_confidence', 0)):.3f}, "
            f"conflict score {float(group.get('conflict_score', 0)):.3f}, "
            f"{group.get('candidates_count')} candidates)."
        )
    elif explanation and all(line.get("excluded") for line in explanation):
        lines.append("no winner: every candidate was excluded.")
    else:
        lines.append(
            f"no single winner: lens {lens} reports the conflict instead "
            "(see the ranking; the skeptic tool gives the full picture)."
        )
    lines.append("Ranking (best first):")
    for rank, line in enumerate(explanation, start=1):
        digest = str(line.get("hash", ""))
        shown = value_text(values[digest]) if digest in values else "(value not fetched)"
        state = f" EXCLUDED: {line['excluded']}" if line.get("excluded") else ""
        lines.append(
            f"{rank}. {shown} [{digest[:12]}] score {_score(line.get('score', 0))}: "
            f"{line.get('why', '')}{state}"
        )
    for cap in group.get("tier_caps") or []:
        lines.append(f"tier cap on {str(cap.get('hash', ''))[:12]}: {cap.get('why', cap)}")
    return "\n".join(lines)
