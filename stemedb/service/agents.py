"""Agents you can look up: trust, its history, and what each agent signed.

A reader weighing an agent's claim wants to know who that agent is in this
database: how far it is trusted *now* (TrustRank relaxed to the reading
instant exactly as the `trust` lens relaxes it), which outcomes moved it,
how much it has signed, and since when it has been around. The admin tier
registry (`/v1/admin/agents`) says what an agent *may* claim; this says what
its record is, and anyone with the read role may ask.

Listing order is trust, highest first. It is stable across pages although
trust keeps relaxing: every score relaxes toward 0.5 with the same half-life,
so the order of two agents on the same side of 0.5 never changes. The cursor
names the section (a: rated >= 0.5, b: unrated, all at 0.5, c: rated < 0.5)
and the last agent id.
"""

from __future__ import annotations

import re
from typing import Any

from stemedb.errors import InvalidRequest, NotFound
from stemedb.lenses import truth_online
from stemedb.lenses.trust import NEUTRAL_TRUST, trust_at
from stemedb.lenses.truth_online import AgentStats
from stemedb.service.agent_models import AgentQuery, AgentsListQuery
from stemedb.service.queries import reading_instant
from stemedb.store import Store, agent_reads, truth_state
from stemedb.store.projections import TrustState

_AGENT_ID = re.compile(r"^[0-9a-fA-F]{64}$")
_CURSOR = re.compile(r"^([abc])\.([0-9a-f]{64})$")
SECTIONS = "abc"


def agent_id_bytes(value: str, field: str = "agent_id") -> bytes:
    if not _AGENT_ID.match(value):
        raise InvalidRequest.field(field, "expected 64 hex characters (an Ed25519 public key)")
    return bytes.fromhex(value)


def _known_ms(known_at: int | None) -> int | None:
    return None if known_at is None else known_at * 1000


def _summary(
    agent: bytes, trust: float, rated: bool, seen: tuple[int, int] | None
) -> dict[str, Any]:
    return {
        "agent_id": agent.hex(),
        "trust": trust,
        "rated": rated,
        "first_seen_seq": seen[0] if seen else None,
        "first_seen_ms": seen[1] if seen else None,
    }


def _reliability(stats: AgentStats | None) -> dict[str, Any] | None:
    """What the `truth` lens learned about the agent (its table row, at the head)."""
    if stats is None:
        return None
    return {
        "accuracy": round(truth_online.accuracy(stats, stats.tier), 6),
        "weight": round(truth_online.weight(stats, stats.tier), 6),
        "pairs": stats.pairs,
        "right": round(stats.right, 6),
        "outcomes_accurate": stats.outcomes_right,
        "outcomes_inaccurate": stats.outcomes_wrong,
    }


class AgentService:
    """Public, read-only agent profiles over one store."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def get(self, agent_hex: str, q: AgentQuery) -> dict[str, Any]:
        agent = agent_id_bytes(agent_hex)
        known_ms = _known_ms(q.known_at)
        at_s = reading_instant(q.as_of, q.known_at)
        with self.store.reader() as conn:
            seen = agent_reads.first_seen(conn, agent, known_ms)
            history = agent_reads.outcomes(conn, agent, known_ms)
            if seen is None and not history:
                raise NotFound(f"agent {agent.hex()} has signed nothing and has no outcomes")
            counts = agent_reads.counts(conn, agent, known_ms)
            learned = truth_state.agent_rows(conn, [agent]).get(agent)  # issue 18
        last = history[-1] if history else None
        trust = trust_at(last.score_after, last.updated_after, at_s) if last else NEUTRAL_TRUST
        shown = history[len(history) - q.history_limit :] if q.history_limit else []
        accurate = sum(1 for o in history if o.accurate)
        return {
            **_summary(agent, trust, bool(history), seen),
            "at": at_s,
            "known_at": q.known_at,
            "stored_score": last.score_after if last else None,
            "last_updated": last.updated_after if last else None,
            "counts": {
                "claims": counts.claims,
                "cosigned": counts.cosigned,
                "votes": counts.votes,
                "outcomes_accurate": accurate,
                "outcomes_inaccurate": len(history) - accurate,
            },
            "history": [
                {
                    "hash": o.hash.hex(),
                    "seq": o.seq,
                    "assertion_hash": o.assertion_hash,
                    "accurate": o.accurate,
                    "timestamp": o.timestamp,
                    "written_ms": o.written_ms,
                    "score_after": o.score_after,
                }
                for o in shown
            ],
            "history_truncated": len(shown) < len(history),
            "reliability": _reliability(learned),
        }

    def listing(self, q: AgentsListQuery) -> dict[str, Any]:
        section, after = "a", None
        if q.cursor is not None:
            match = _CURSOR.match(q.cursor)
            if match is None:
                raise InvalidRequest.field("cursor", "expected the next_cursor of a previous page")
            section, after = match.group(1), bytes.fromhex(match.group(2))
        known_ms = _known_ms(q.known_at)
        at_s = reading_instant(q.as_of, q.known_at)
        with self.store.reader() as conn:
            states = agent_reads.all_trust(conn, known_ms)
            page = self._page(conn, states, at_s, section, after, q.limit + 1, known_ms)
            more = len(page) > q.limit
            page = page[: q.limit]
            seen = agent_reads.first_seen_many(conn, [agent for _, agent, _ in page])
        agents = [
            _summary(agent, trust, agent in states, seen.get(agent)) for _, agent, trust in page
        ]
        last = page[-1] if page else None
        return {
            "agents": agents,
            "count": len(agents),
            "next_cursor": f"{last[0]}.{last[1].hex()}" if more and last else None,
            "at": at_s,
            "known_at": q.known_at,
        }

    @staticmethod
    def _page(
        conn: Any,
        states: dict[bytes, TrustState],
        at_s: float,
        section: str,
        after: bytes | None,
        want: int,
        known_ms: int | None,
    ) -> list[tuple[str, bytes, float]]:
        """Up to `want` (section, agent, trust) rows after the cursor, in listing order."""
        rated = [(trust_at(s.score, s.last_updated, at_s), a) for a, s in states.items()]
        rated.sort(key=lambda row: (-row[0], row[1]))
        sections: dict[str, list[tuple[float, bytes]]] = {
            "a": [row for row in rated if row[0] >= NEUTRAL_TRUST],
            "c": [row for row in rated if row[0] < NEUTRAL_TRUST],
        }
        out: list[tuple[str, bytes, float]] = []
        for name in SECTIONS[SECTIONS.index(section) :]:
            start = after if name == section else None
            if name == "b":
                rows = agent_reads.seen_agents_after(conn, start, want + len(states), known_ms)
                out.extend(("b", agent, NEUTRAL_TRUST) for agent in rows if agent not in states)
            else:
                ranked = sections[name]
                skip = 0
                if start is not None:
                    ids = [agent for _, agent in ranked]
                    skip = ids.index(start) + 1 if start in ids else 0
                out.extend((name, agent, trust) for trust, agent in ranked[skip:])
            if len(out) >= want:
                break
        return out[:want]
