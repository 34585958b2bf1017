"""Rows of the `truth` reliability table (migration 0013), loaded and written in bulk.

`Rows` holds the rows one update (or one batch, or a whole rebuild) touches:
loaded from SQLite on demand, or, for a rebuild, starting empty and kept in
memory; `flush` writes the dirty ones. The arithmetic is in
lenses/truth_online.py, the updates in store/truth_state.py.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import apsw

from stemedb.lenses.truth_online import NEW_AGENT, NO_LINK, AgentStats, LinkStats
from stemedb.store.schema import fetchall

Pair = tuple[str, str]
VoiceKey = tuple[bytes, int]  # agent, kind


@dataclass
class Voice:
    """An agent's newest claim (or vote) on a pair, and what it was last credited for."""

    value_key: str
    hash: bytes
    timestamp: int
    seq: int
    weight: float = 1.0
    c_value: str = ""  # the value counted at the last scoring ('' : not counted)
    p_value: float = 0.0
    credit: float = 0.0
    backed: int = 0


def link_key(a: bytes, b: bytes) -> tuple[bytes, bytes]:
    return (a, b) if a < b else (b, a)


class Rows:
    """The rows updates touch; `memory=True`: the tables start empty and stay in memory."""

    def __init__(self, conn: apsw.Connection, memory: bool) -> None:
        self.conn = conn
        self.memory = memory
        self.voices: dict[Pair, dict[VoiceKey, Voice]] = {}
        self.agents: dict[bytes, tuple[AgentStats, int]] = {}
        self.links: dict[tuple[bytes, bytes], LinkStats] = {}
        self.pair_links: dict[Pair, set[bytes]] = {}  # links among these are in `links`
        self.dirty_pairs: set[Pair] = set()
        self.dirty_agents: set[bytes] = set()
        self.dirty_links: set[tuple[bytes, bytes]] = set()

    def pair(self, pair: Pair) -> dict[VoiceKey, Voice]:
        if pair not in self.voices:
            found: dict[VoiceKey, Voice] = {}
            if not self.memory:
                for row in fetchall(
                    self.conn,
                    "SELECT agent_id, kind, value_key, hash, timestamp, seq, weight, c_value,"
                    " p_value, credit, backed FROM truth_voices"
                    " WHERE subject = ? AND predicate = ?",
                    pair,
                ):
                    found[(bytes(row[0]), int(row[1]))] = Voice(
                        str(row[2]), bytes(row[3]), int(row[4]), int(row[5]), float(row[6]),
                        str(row[7]), float(row[8]), float(row[9]), int(row[10]),
                    )  # fmt: skip
            self.voices[pair] = found
        self.dirty_pairs.add(pair)
        return self.voices[pair]

    def agent(self, agent: bytes) -> AgentStats:
        if agent not in self.agents:
            self.load_agents([agent])
        return self.agents[agent][0]

    def load_agents(self, agents: Iterable[bytes]) -> None:
        wanted = [a for a in dict.fromkeys(agents) if a not in self.agents]
        if not self.memory and wanted:
            for row in fetchall(
                self.conn,
                "SELECT agent_id, tier, pairs, right, backed, outcomes_right, outcomes_wrong, seq"
                f" FROM truth_agents WHERE agent_id IN ({','.join('?' * len(wanted))})",
                tuple(wanted),
            ):
                stats = AgentStats(
                    int(row[1]), int(row[2]), float(row[3]), int(row[4]), int(row[5]), int(row[6])
                )
                self.agents[bytes(row[0])] = (stats, int(row[7]))
        for a in wanted:
            self.agents.setdefault(a, (NEW_AGENT, -1))

    def set_agent(self, agent: bytes, stats: AgentStats, seq: int) -> None:
        self.agents[agent] = (stats, seq)
        self.dirty_agents.add(agent)

    def load_links(self, agents: list[bytes]) -> None:
        links = self.links
        wanted = [
            k
            for i, a in enumerate(agents)
            for b in agents[i + 1 :]
            if (k := ((a, b) if a < b else (b, a))) not in links
        ]
        if not wanted:
            return
        if not self.memory:
            marks = ",".join("?" * len(agents))
            for row in fetchall(
                self.conn,
                "SELECT agent_a, agent_b, same, same_false, differ FROM truth_links"
                f" WHERE agent_a IN ({marks}) AND agent_b IN ({marks})",
                (*agents, *agents),
            ):
                key = (bytes(row[0]), bytes(row[1]))
                if key not in self.links:
                    self.links[key] = LinkStats(int(row[2]), float(row[3]), int(row[4]))
        for k in wanted:
            self.links.setdefault(k, NO_LINK)

    def load_pair_links(self, pair: Pair, agents: list[bytes]) -> None:
        """`load_links(agents)` for a pair's voices (sorted), looking only at the links
        of agents new to the pair since its last load: a record adds one or two."""
        known = self.pair_links.get(pair, ())
        fresh = [a for a in agents if a not in known]
        links = self.links
        if fresh and any(
            ((a, b) if a < b else (b, a)) not in links for a in fresh for b in agents if b != a
        ):
            self.load_links(agents)
        self.pair_links[pair] = set(agents)

    def set_link(self, key: tuple[bytes, bytes], link: LinkStats) -> None:
        self.links[key] = link
        self.dirty_links.add(key)

    def flush(self) -> None:
        """Write the dirty rows: one `executemany` per table (sorted, as before)."""
        conn = self.conn
        voices = [
            (*pair, agent, kind, v.value_key, v.hash, v.timestamp, v.seq, v.weight,
             v.c_value, v.p_value, v.credit, v.backed)
            for pair in sorted(self.dirty_pairs)
            for (agent, kind), v in sorted(self.voices[pair].items())
        ]  # fmt: skip
        if voices:
            conn.executemany(
                "INSERT OR REPLACE INTO truth_voices (subject, predicate, agent_id, kind,"
                " value_key, hash, timestamp, seq, weight, c_value, p_value, credit, backed)"
                " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                voices,
            )
        agents = []
        for agent in sorted(self.dirty_agents):
            s, seq = self.agents[agent]
            agents.append(
                (agent, s.tier, s.pairs, s.right, s.backed, s.outcomes_right, s.outcomes_wrong,
                 seq)
            )  # fmt: skip
        if agents:
            conn.executemany(
                "INSERT OR REPLACE INTO truth_agents (agent_id, tier, pairs, right, backed,"
                " outcomes_right, outcomes_wrong, seq) VALUES (?,?,?,?,?,?,?,?)",
                agents,
            )
        links = [(*key, *self.links[key]) for key in sorted(self.dirty_links)]
        if links:
            conn.executemany(
                "INSERT OR REPLACE INTO truth_links (agent_a, agent_b, same, same_false, differ)"
                " VALUES (?,?,?,?,?)",
                links,
            )
        self.dirty_pairs.clear()
        self.dirty_agents.clear()
        self.dirty_links.clear()


# ---- reads -----------------------------------------------------------------------


def agent_rows(conn: apsw.Connection, agents: Iterable[bytes]) -> dict[bytes, AgentStats]:
    rows = Rows(conn, memory=False)
    wanted = list(dict.fromkeys(agents))
    for start in range(0, len(wanted), 500):
        rows.load_agents(wanted[start : start + 500])
    return {a: s for a, (s, seq) in rows.agents.items() if seq >= 0}


def links_among(
    conn: apsw.Connection, agents: Iterable[bytes]
) -> dict[tuple[bytes, bytes], LinkStats]:
    rows = Rows(conn, memory=False)
    wanted = sorted(set(agents))
    if len(wanted) > 1:
        rows.load_links(wanted)
    return {k: v for k, v in rows.links.items() if v != NO_LINK}
