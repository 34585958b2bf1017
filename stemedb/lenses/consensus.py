"""`consensus`: the value held by the most agents, one voice per signer.

Counting agents rather than assertions stops one agent from winning by
repeating itself, and counting each agent's *newest* assertion of the group
lets an agent change its mind. Every co-signer of an assertion is one of its
signers: a claim two agents signed together is held by two agents.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from stemedb.lenses.base import EMPTY, Outcome, Scored, share, show_value, signers
from stemedb.lenses.candidate import Candidate, LensContext
from stemedb.lenses.scoring import TotalKey, total_key


@dataclass(frozen=True)
class _Group:
    value_key: str
    voices: int  # voices the value holds
    newest: Candidate  # its newest assertion that carries a voice

    def key(self) -> tuple[int, TotalKey, str]:
        """Most voices first, then the group with the newest voice, then lower value."""
        return (-self.voices, total_key(self.newest), self.value_key)


def count_voices(
    ordered: Sequence[Candidate], ctx: LensContext
) -> tuple[list[int], dict[int, Candidate]]:
    """How many voices each candidate carries, and who speaks for the silent ones.

    `ordered` is newest first (total_key). Every signer of an assertion (its
    first signer and each co-signer) has one voice, carried by its newest
    assertion in the group; an unsigned assertion carries one voice of its
    own. Returns the voice count per position and, for each position that
    carries none, the newer assertion its first signer speaks through.
    """
    voices = [0] * len(ordered)
    speaks_at: dict[str, int] = {}
    silenced: dict[int, Candidate] = {}
    for i, c in enumerate(ordered):
        who = signers(c, ctx)
        if not who:
            voices[i] = 1
            continue
        for agent in who:
            if agent not in speaks_at:
                speaks_at[agent] = i
                voices[i] += 1
        if voices[i] == 0:
            silenced[i] = ordered[speaks_at[who[0]]]
    return voices, silenced


def consensus(candidates: Sequence[Candidate], ctx: LensContext) -> Outcome:
    """Most voices wins; the representative is the newest voiced assertion of that value."""
    if not candidates:
        return EMPTY
    ordered = sorted(candidates, key=total_key)
    voices, silenced = count_voices(ordered, ctx)
    held: dict[str, int] = {}
    newest: dict[str, Candidate] = {}
    for c, n in zip(ordered, voices, strict=True):
        if n:
            held[c.value_key] = held.get(c.value_key, 0) + n
            newest.setdefault(c.value_key, c)
    groups = sorted((_Group(k, n, newest[k]) for k, n in held.items()), key=_Group.key)
    top = groups[0]
    winner = top.newest
    total = sum(voices)
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
        n = held[c.value_key]
        why = f"value {show_value(c.value_key)} held by {n} of {total} voices"
        if voices[i] > 1:
            why += f"; carries the voices of {voices[i]} signers"
        if c == winner:
            why += "; newest counted assertion of the winning value"
        elif c.value_key == top.value_key:
            why += "; holds the winning value, older than the representative"
        elif n == top.voices:
            why += "; ties the winning value, whose newest voice is newer"
        lines.append(Scored(c, share(n, total), why))
    resolution = share(top.voices, total)
    extra = {"voices": total, "winning_voices": top.voices}
    return Outcome(winner, resolution, tuple(lines), extra=extra)


def _short(hex_id: str | None) -> str:
    return (hex_id or "unsigned")[:12]
