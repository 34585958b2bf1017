"""Near-duplicates: the same claim with trivial variations counts once (issue 19 item 2).

An agent (or a script behind a cluster of agents) can repeat one claim with
cosmetic changes — `"Nausea"`, `"nausea."`, `" NAUSEA "`; `7` and
`7.0000001`; the same text a few seconds later — so that every copy is a
distinct record (a new id, a new digest) and looks like more support. Two
rules make such repeats count once, without touching the journal:

* **one value**: `near_key` maps a value to a normal form — text NFKC
  normalised, case-folded, split into word tokens (so surrounding
  punctuation and runs of whitespace vanish, while `7.5` stays unlike `75`);
  numbers rounded to `NUMBER_DIGITS` significant digits. Values with the same
  near key are one value in `consensus` and `skeptic`;
* **one voice per agent**: among the candidates of one agent with the same
  near key, only the newest counts; each older one whose claim time lies
  within `WINDOW_S` seconds of a newer copy is a *near-duplicate* and is
  reported (`near_duplicates` in consensus and skeptic answers, and the
  explanation line says which assertion it repeats);
* **one voice per cluster**: agents one writer API key introduced form a
  cluster (`LensContext.clusters`, store/agent_clusters.py). Among the
  cluster's agents, each agent's newest candidate that repeats the same near
  key within `WINDOW_S` seconds of a newer one by a cluster-mate is a
  near-duplicate of it too: consensus takes its first signer's voice away,
  skeptic and trace name it. Independent agents that agree are never merged:
  an agent no key introduced (auth off, an admin key, an import) is a
  cluster of its own.

Pure functions of the candidates, like every lens: the store is never read.
"""

from __future__ import annotations

import functools
import json
import math
import re
import unicodedata
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from stemedb.lenses.candidate import Candidate

NUMBER_DIGITS = 6  # numbers equal to 6 significant digits are one value
WINDOW_S = 300  # an agent's copies of one claim within 5 minutes of each other repeat it
_TOKEN = re.compile(r"\w+(?:[.,/:'\-]\w+)*")


@functools.lru_cache(maxsize=65536)
def near_key(value_key: str) -> str:
    """The normal form of a canonical value (`value_key`): equal for trivial variations."""
    try:
        parsed: Any = json.loads(value_key)
    except ValueError:
        return value_key
    if not isinstance(parsed, dict):
        return value_key
    kind, value = parsed.get("type"), parsed.get("value")
    if isinstance(value, str) and kind == "Text":
        folded = unicodedata.normalize("NFKC", value).casefold()
        return "Text:" + " ".join(_TOKEN.findall(folded))
    if isinstance(value, int | float) and not isinstance(value, bool) and kind == "Number":
        number = float(value)
        if not math.isfinite(number):
            return value_key
        if number == 0:
            return "Number:0"
        return f"Number:{number:.{NUMBER_DIGITS}g}"
    return value_key


def near_duplicates(
    candidates: Sequence[Candidate], clusters: Mapping[str, str] | None = None
) -> dict[str, Candidate]:
    """Each near-duplicate's hash -> the newer assertion of the same agent (or, with
    `clusters`, of a cluster-mate) it repeats.

    Only signed candidates: an unsigned one has no author to repeat itself.
    Candidates are compared newest first (claim time, then hash), so the
    newest copy of a run is the one that counts.
    """
    ordered = sorted(candidates, key=lambda c: (-c.timestamp, c.hash))
    found = _repeats(
        (c, (c.agent_id, near_key(c.value_key))) for c in ordered if c.agent_id is not None
    )
    if clusters:
        for copy, original in _repeats(_cluster_voices(ordered, clusters)).items():
            found.setdefault(copy, original)
    return found


def _repeats(keyed: Iterable[tuple[Candidate, tuple[str, str]]]) -> dict[str, Candidate]:
    """Newest first: each candidate whose key was said within WINDOW_S by a newer one
    (a run of such) -> the newest of its run, the one that counts."""
    last: dict[tuple[str, str], Candidate] = {}
    origin: dict[tuple[str, str], Candidate] = {}
    found: dict[str, Candidate] = {}
    for c, key in keyed:
        previous = last.get(key)
        if previous is not None and previous.timestamp - c.timestamp <= WINDOW_S:
            found[c.hash] = origin[key]
        else:
            origin[key] = c
        last[key] = c
    return found


def _cluster_voices(
    ordered: Sequence[Candidate], clusters: Mapping[str, str]
) -> Iterator[tuple[Candidate, tuple[str, str]]]:
    """Each clustered agent's newest candidate (the one that speaks for it), keyed by
    its cluster and near value: a cluster-mate's newer near value makes it a repeat."""
    spoken: set[str] = set()
    for c in ordered:
        agent = c.agent_id
        if agent is None or agent in spoken:
            continue
        spoken.add(agent)
        cluster = clusters.get(agent)
        if cluster is not None:
            yield c, (cluster, near_key(c.value_key))


def report(
    duplicates: dict[str, Candidate], clusters: Mapping[str, str] | None = None
) -> list[dict[str, Any]]:
    """`near_duplicates` of an answer: per counted assertion, the copies that repeat it
    (with `cluster` when its agent belongs to one: copies may be by cluster-mates)."""
    kept: dict[str, dict[str, Any]] = {}
    for copy, original in sorted(duplicates.items()):
        entry = kept.setdefault(
            original.hash,
            {"agent_id": original.agent_id, "counted": original.hash, "repeats": []},
        )
        cluster = (clusters or {}).get(original.agent_id or "")
        if cluster is not None:
            entry["cluster"] = cluster
        entry["repeats"].append(copy)
    return [kept[h] for h in sorted(kept)]


def repeat_note(c: Candidate, original: Candidate) -> str:
    """What the explanation line of a near-duplicate adds: which assertion it repeats."""
    same = "the same value" if original.value_key == c.value_key else "a trivial variation"
    if original.agent_id != c.agent_id:
        return (
            f"near-duplicate: {same}, said by agent {(original.agent_id or '')[:12]} of the "
            f"same cluster (agents introduced by one API key) in assertion "
            f"{original.hash[:12]} {original.timestamp - c.timestamp} s later"
        )
    return (
        f"near-duplicate: {same}, repeated by the same agent in assertion "
        f"{original.hash[:12]} {original.timestamp - c.timestamp} s later"
    )
