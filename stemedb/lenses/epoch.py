"""`epoch`: claims of a superseded paradigm step aside, then an inner lens decides.

The service computes the transitive closure of superseded epochs; this lens
only filters by it. Unreadable epoch metadata (None) hides nothing: failing
open shows too much rather than silently losing data.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from stemedb.lenses.base import Excluded, LensFn, Outcome
from stemedb.lenses.candidate import Candidate, LensContext


def epoch(
    candidates: Sequence[Candidate], ctx: LensContext, inner: LensFn, inner_name: str
) -> Outcome:
    """Exclude candidates of superseded epochs, resolve the rest with `inner`."""
    extra: dict[str, Any] = {"inner": inner_name}
    superseded = ctx.superseded_epochs
    if superseded is None:
        kept = list(candidates)
        excluded: list[Excluded] = []
    else:
        kept = [c for c in candidates if c.epoch is None or c.epoch not in superseded]
        excluded = [
            Excluded(c, "epoch_superseded", f"epoch {c.epoch[:12]} is superseded")
            for c in candidates
            if c.epoch is not None and c.epoch in superseded
        ]
    out = inner(kept, ctx).with_excluded(excluded)
    extra.update(out.extra)
    if superseded is None:
        extra["epoch_metadata"] = "unavailable"
    return Outcome(out.winner, out.resolution, out.scored, out.excluded, extra)
