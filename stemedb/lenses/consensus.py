"""`consensus`: the value held by the most agents, one voice per signer.

Counting agents rather than assertions stops one agent from winning by
repeating itself, and counting each agent's *newest* assertion of the group
lets an agent change its mind. Every co-signer of an assertion is one of its
signers: a claim two agents signed together is held by two agents.

Agents cost nothing to mint, so with `min_agent_age` an agent first seen
less than that long before the query has no voice (issue 19 item 4): a
burst of fresh keys cannot flip an answer established agents agree on. Its
assertions are still listed, with the reason they do not count.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from stemedb.lenses.base import EMPTY, Outcome, Scored, fmt_num, share, show_value, signers
from stemedb.lenses.candidate import Candidate, LensContext
from stemedb.lenses.dedupe import near_duplicates, near_key, repeat_note
from stemedb.lenses.scoring import TotalKey, total_key


@dataclass(frozen=True)
class _Group:
    value_key: str
    voices: int  # voices the value holds
    newest: Candidate  # its newest assertion that carries a voice

    def key(self) -> tuple[int, TotalKey, str]:
        """Most voices first, then the group with the newest voice, then lower value."""
        return (-self.voices, total_key(self.newest), self.value_key)


def young_reason(agent: str, ctx: LensContext) -> str | None:
    """Why `agent` has no voice under `min_agent_age`, or None if it counts.

    Age is measured from the first journal frame the agent signed to the
    query's reference instant (`at_s`: as_of, else known_at, else now).
    """
    if ctx.min_agent_age is None:
        return None
    first = ctx.agent_first_seen.get(agent)
    limit = fmt_num(ctx.min_agent_age)
    if first is None or first > ctx.at_s:
        return f"agent {_short(agent)} not seen before the query; min_agent_age={limit}"
    age = ctx.at_s - first
    if age >= ctx.min_agent_age:
        return None
    return (
        f"agent {_short(agent)} first seen {fmt_num(round(age, 3))} s before the query; "
        f"min_agent_age={limit}"
    )


def count_voices(
    ordered: Sequence[Candidate], ctx: LensContext
) -> tuple[list[int], dict[int, Candidate], dict[int, str]]:
    """How many voices each candidate carries, and why the silent ones have none.

    `ordered` is newest first (total_key). Every signer of an assertion (its
    first signer and each co-signer) old enough under `min_agent_age` has one
    voice, carried by its newest assertion in the group; an unsigned
    assertion carries one voice of its own (none under `min_agent_age`: it has
    no history). Returns the voice count per position; for each position
    silenced by a newer assertion of the same signer, that assertion; and for
    each position whose signers are all too new, the reason.
    """
    voices = [0] * len(ordered)
    speaks_at: dict[str, int] = {}
    silenced: dict[int, Candidate] = {}
    unvoiced: dict[int, str] = {}
    for i, c in enumerate(ordered):
        who = signers(c, ctx)
        if not who:
            if ctx.min_agent_age is None:
                voices[i] = 1
            else:
                unvoiced[i] = (
                    f"unsigned, so no agent history; min_agent_age={fmt_num(ctx.min_agent_age)}"
                )
            continue
        counted = [a for a in who if young_reason(a, ctx) is None]
        if not counted:
            unvoiced[i] = young_reason(who[0], ctx) or ""
            continue
        for agent in counted:
            if agent not in speaks_at:
                speaks_at[agent] = i
                voices[i] += 1
        if voices[i] == 0:
            silenced[i] = ordered[speaks_at[counted[0]]]
    return voices, silenced, unvoiced


def consensus(candidates: Sequence[Candidate], ctx: LensContext) -> Outcome:
    """Most voices wins; the representative is the newest voiced assertion of that value.

    Values that differ only trivially (lenses/dedupe.py `near_key`) are one
    value; an agent's repeats already count once (its newest assertion speaks),
    and the explanation names each near-duplicate and the assertion it repeats.
    """
    if not candidates:
        return EMPTY
    ordered = sorted(candidates, key=total_key)
    voices, silenced, unvoiced = count_voices(ordered, ctx)
    repeats = near_duplicates(ordered, ctx.clusters)
    clustered = _cluster_silenced(ordered, voices, repeats, ctx)
    held: dict[str, int] = {}
    newest: dict[str, Candidate] = {}
    for c, n in zip(ordered, voices, strict=True):
        if n:
            near = near_key(c.value_key)
            held[near] = held.get(near, 0) + n
            newest.setdefault(near, c)
    extra: dict[str, Any] = {"voices": sum(voices)}
    if ctx.min_agent_age is not None:
        extra["min_agent_age"] = ctx.min_agent_age
        extra["unvoiced_assertions"] = len(unvoiced)
    if not held:  # every signer too new under min_agent_age: no answer rather than theirs
        lines = [Scored(ordered[i], 0.0, f"not counted: {why}") for i, why in unvoiced.items()]
        return Outcome(None, 0.0, tuple(lines), extra={**extra, "winning_voices": 0})
    groups = sorted(
        (_Group(newest[k].value_key, n, newest[k]) for k, n in held.items()), key=_Group.key
    )
    top = groups[0]
    top_near = near_key(top.value_key)
    winner = top.newest
    total = sum(voices)
    lines = []
    for i, c in enumerate(ordered):
        if i in unvoiced:
            lines.append(Scored(c, 0.0, f"not counted: {unvoiced[i]}"))
            continue
        if i in clustered and voices[i] == 0:
            lines.append(Scored(c, 0.0, f"not counted: {repeat_note(c, repeats[c.hash])}"))
            continue
        speaker = silenced.get(i)
        if speaker is not None:
            why = (
                f"not counted: agent {_short(c.agent_id)} speaks through its newer "
                f"assertion {_short(speaker.hash)}"
            )
            if c.hash in repeats:
                why += f"; {repeat_note(c, repeats[c.hash])}"
            lines.append(Scored(c, 0.0, why))
            continue
        near = near_key(c.value_key)
        n = held[near]
        why = f"value {show_value(c.value_key)} held by {n} of {total} voices"
        if voices[i] > 1:
            why += f"; carries the voices of {voices[i]} signers"
        if i in clustered:
            why += f"; its first signer not counted: {repeat_note(c, repeats[c.hash])}"
        if c == winner:
            why += "; newest counted assertion of the winning value"
        elif near == top_near:
            why += "; holds the winning value, older than the representative"
        elif n == top.voices:
            why += "; ties the winning value, whose newest voice is newer"
        lines.append(Scored(c, share(n, total), why))
    resolution = share(top.voices, total)
    extra["winning_voices"] = top.voices
    return Outcome(winner, resolution, tuple(lines), extra=extra)


def _cluster_silenced(
    ordered: Sequence[Candidate],
    voices: list[int],
    repeats: dict[str, Candidate],
    ctx: LensContext,
) -> set[int]:
    """Take the first signer's voice from a cluster's near-duplicates (dedupe.py):
    a voiced assertion repeating a voiced, newer one of a cluster-mate. In place;
    returns the positions changed."""
    position = {c.hash: i for i, c in enumerate(ordered)}
    changed: set[int] = set()
    for i, c in enumerate(ordered):
        original = repeats.get(c.hash)
        if original is None or original.agent_id == c.agent_id or voices[i] == 0:
            continue
        if voices[position[original.hash]] > 0 and young_reason(c.agent_id or "", ctx) is None:
            voices[i] -= 1
            changed.add(i)
    return changed


def _short(hex_id: str | None) -> str:
    return (hex_id or "unsigned")[:12]
