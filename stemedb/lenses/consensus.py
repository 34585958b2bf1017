"""`consensus`: the value held by the most agents, one voice per signer.

Counting agents rather than assertions stops one agent from winning by
repeating itself, and counting each agent's *newest* assertion of the group
lets an agent change its mind.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from stemedb.lenses.base import EMPTY, Outcome, Scored, share, show_value
from stemedb.lenses.candidate import Candidate, LensContext
from stemedb.lenses.scoring import TotalKey, total_key


@dataclass(frozen=True)
class _Group:
    value_key: str
    voices: tuple[Candidate, ...]  # newest first

    def key(self) -> tuple[int, TotalKey, str]:
        """Most voices first, then the group with the newest voice, then lower value."""
        return (-len(self.voices), total_key(self.voices[0]), self.value_key)


def count_voices(
    candidates: Sequence[Candidate],
) -> tuple[list[Candidate], dict[int, Candidate]]:
    """Split into voices and silenced assertions.

    Returns the voices (newest first) and, for each silenced candidate (keyed
    by its position in the newest-first order of `candidates`), the same
    agent's newer assertion that speaks for it. Unsigned assertions always
    count, one voice each.
    """
    voices: list[Candidate] = []
    newest: dict[str, Candidate] = {}
    silenced: dict[int, Candidate] = {}
    for i, c in enumerate(sorted(candidates, key=total_key)):
        if c.agent_id is None:
            voices.append(c)
        elif c.agent_id in newest:
            silenced[i] = newest[c.agent_id]
        else:
            newest[c.agent_id] = c
            voices.append(c)
    return voices, silenced


def consensus(candidates: Sequence[Candidate], ctx: LensContext) -> Outcome:
    """Most voices wins; the representative is the newest voice of that value."""
    if not candidates:
        return EMPTY
    ordered = sorted(candidates, key=total_key)
    voices, silenced = count_voices(ordered)
    by_value: dict[str, list[Candidate]] = {}
    for v in voices:
        by_value.setdefault(v.value_key, []).append(v)
    groups = sorted((_Group(k, tuple(vs)) for k, vs in by_value.items()), key=_Group.key)
    top = groups[0]
    winner = top.voices[0]
    total = len(voices)
    size = {g.value_key: len(g.voices) for g in groups}
    lines: list[Scored] = []
    for i, c in enumerate(ordered):
        speaker = silenced.get(i)
        if speaker is not None:
            why = (
                f"not counted: agent {_short(c.agent_id)} speaks through its newer "
                f"assertion {_short(speaker.hash)}"
            )
            lines.append(Scored(c, 0.0, why))
            continue
        n = size[c.value_key]
        why = f"value {show_value(c.value_key)} held by {n} of {total} voices"
        if c == winner:
            why += "; newest counted assertion of the winning value"
        elif c.value_key == top.value_key:
            why += "; holds the winning value, older than the representative"
        elif n == len(top.voices):
            why += "; ties the winning value, whose newest voice is newer"
        lines.append(Scored(c, share(n, total), why))
    resolution = share(len(top.voices), total)
    extra = {"voices": total, "winning_voices": len(top.voices)}
    return Outcome(winner, resolution, tuple(lines), extra=extra)


def _short(hex_id: str | None) -> str:
    return (hex_id or "unsigned")[:12]
