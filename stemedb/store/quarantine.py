"""The quarantine projection: which assertions the policy held, and the admin decisions.

A hold is decided when an assertion's frame is applied, from journal state
only — the `agents` first-seen projection, the `trust` projection and the
signer's earlier assertions — under the policy in force at that seq (the
`quarantine_policy` table, written at start from the STEMEDB_QUARANTINE_*
settings and kept by `reindex`). So live writes, start-up catch-up and
`stemedb reindex` decide every frame identically (migrations/0008). A
`quarantine_decision` frame releases or rejects a held assertion; a second
decision on the same assertion, or one on an assertion that is not held, is
refused when written (so replay never meets one).

Votes, supersessions, aliases and epochs (the other kinds a writer may send
that change answers, `HELD_KINDS`) are held too, by the same new-agent and
trust rules (near-duplicates are an assertion matter): `projections.apply`
asks `withheld` before projecting such a frame, and a held one is not
projected at all — no vote total, supersession, alias or epoch exists for
any lens — until a `release` decision projects it, stamped with the
decision's written_ms so a `known_at` read before the release does not see
it. A `reject` leaves it journalled and unprojected for good. (Sources and
retractions are not held: a source's tier is capped by the registry rules,
and a retraction needs its publisher or an admin.)

`projections.apply` calls `apply` for every frame, after `agents_seen`.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

import apsw

from stemedb.errors import InvalidRequest, NotFound
from stemedb.lenses.dedupe import WINDOW_S, near_key
from stemedb.store import agent_clusters, agents_seen
from stemedb.store.schema import fetchall

KIND = "quarantine_decision"
TABLE = "quarantine"
MAX_PER_QUERY = 500
TRUST_DEFAULT = 0.5  # an agent without outcomes (projections.TRUST_DEFAULT)

HELD_KINDS = ("vote", "supersession", "alias", "epoch")  # besides assertions
_COLUMNS = (
    "seq, hash, subject, predicate, agent_id, reason, detail, held_ms, decision, "
    "decided_seq, decided_ms, decided_by, decision_reason, "
    "(SELECT CAST(kind AS TEXT) FROM journal WHERE journal.seq = quarantine.seq)"
)


@dataclass(frozen=True)
class Policy:
    """Which new assertions are held (docs/security.md, "Quarantine"); all off by default."""

    new_agent_s: float = 0.0  # signers all first seen less than this long ago
    min_trust: float = 0.0  # first signer's TrustRank below this
    near_duplicates: bool = False  # repeats an earlier claim of the same signer

    @property
    def active(self) -> bool:
        return self.new_agent_s > 0 or self.min_trust > 0 or self.near_duplicates

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)


OFF = Policy()


@functools.lru_cache(maxsize=64)
def parse_policy(text: str) -> Policy:
    """A `quarantine_policy.policy` JSON text as a Policy."""
    data = json.loads(text)
    return Policy(
        float(data.get("new_agent_s", 0.0)),
        float(data.get("min_trust", 0.0)),
        bool(data.get("near_duplicates", False)),
    )


def policy_at(conn: apsw.Connection, seq: int) -> Policy:
    """The policy in force for the frame `seq` (OFF before any was recorded)."""
    rows = fetchall(
        conn,
        "SELECT policy FROM quarantine_policy WHERE from_seq <= ? ORDER BY from_seq DESC LIMIT 1",
        (seq,),
    )
    return parse_policy(str(rows[0][0])) if rows else OFF


def record_policy(conn: apsw.Connection, policy: Policy, now_ms: int) -> bool:
    """Make `policy` the one in force from the next frame on; False if it already is."""
    head = fetchall(conn, "SELECT coalesce(max(seq), 0) FROM journal")[0][0]
    next_seq = int(head) + 1
    if policy_at(conn, next_seq) == policy:
        return False
    conn.execute(
        "INSERT OR REPLACE INTO quarantine_policy (from_seq, policy, set_ms) VALUES (?, ?, ?)",
        (next_seq, policy.to_json(), now_ms),
    )
    return True


# ---- applying frames --------------------------------------------------------------


def apply(
    conn: apsw.Connection,
    seq: int,
    kind: str,
    frame_hash: bytes,
    record: Mapping[str, Any],
    written_ms: int,
) -> None:
    """Hold an assertion the policy catches; apply a decision. Other kinds: nothing."""
    if kind == "assertion":
        policy = policy_at(conn, seq)
        if policy.active:
            _hold_if_caught(conn, policy, seq, frame_hash, record, written_ms)
    elif kind == KIND:
        _decide(conn, seq, record, written_ms)


def _hold_if_caught(
    conn: apsw.Connection,
    policy: Policy,
    seq: int,
    frame_hash: bytes,
    record: Mapping[str, Any],
    written_ms: int,
) -> None:
    signers = agents_seen.signer_ids(record)
    caught = (
        _new_agent(conn, policy, signers, written_ms)
        or _low_trust(conn, policy, signers, written_ms)
        or _near_duplicate(conn, policy, seq, signers, record)
    )
    if caught is None:
        return
    about = (str(record["subject"]), str(record["predicate"]))
    _insert(conn, seq, frame_hash, about, signers, caught, written_ms)


def withheld(
    conn: apsw.Connection,
    seq: int,
    kind: str,
    frame_hash: bytes,
    record: Mapping[str, Any],
    written_ms: int,
) -> bool:
    """True if this vote, supersession, alias or epoch frame is held: project nothing yet.

    Called by `projections.apply` before it projects the frame, under the policy
    in force at `seq` (the new-agent and trust rules; assertions are decided in
    `apply`, after they are projected, since lenses filter held assertions).
    """
    if kind not in HELD_KINDS:
        return False
    policy = policy_at(conn, seq)
    if not policy.active:
        return False
    signers = agents_seen.signer_ids(record)
    caught = _new_agent(conn, policy, signers, written_ms) or _low_trust(
        conn, policy, signers, written_ms
    )
    if caught is None:
        return False
    _insert(conn, seq, frame_hash, _about(conn, kind, record), signers, caught, written_ms)
    return True


def _about(conn: apsw.Connection, kind: str, record: Mapping[str, Any]) -> tuple[str, str]:
    """The (subject, predicate) a held non-assertion record is listed under."""
    target = record.get("assertion_hash") or record.get("target_hash")
    if isinstance(target, str):
        rows = fetchall(
            conn,
            "SELECT subject, predicate FROM assertions WHERE hash = ?",
            (bytes.fromhex(target),),
        )
        if rows:
            return str(rows[0][0]), str(rows[0][1])
    if kind == "alias":
        return str(record["alias"]), f"(alias of {record['canonical']})"
    return f"({kind})", str(record.get("name") or "")


def _insert(
    conn: apsw.Connection,
    seq: int,
    frame_hash: bytes,
    about: tuple[str, str],
    signers: list[bytes],
    caught: tuple[str, str],
    held_ms: int,
) -> None:
    reason, detail = caught
    conn.execute(
        f"INSERT INTO {TABLE} (seq, hash, subject, predicate, agent_id, reason, detail, held_ms)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (seq, frame_hash, about[0], about[1], signers[0] if signers else None, reason, detail,
         held_ms),
    )  # fmt: skip


def _new_agent(
    conn: apsw.Connection, policy: Policy, signers: list[bytes], written_ms: int
) -> tuple[str, str] | None:
    """Held if no signer has `new_agent_s` of history (an established co-signer vouches)."""
    if policy.new_agent_s <= 0:
        return None
    limit = f"STEMEDB_QUARANTINE_NEW_AGENT_S={policy.new_agent_s:g}"
    if not signers:
        return "unsigned", f"unsigned, so no agent history; {limit}"
    seen = agents_seen.first_seen_ms(conn, signers)
    ages = [(written_ms - seen.get(agent, written_ms)) / 1000.0 for agent in signers]
    if max(ages) >= policy.new_agent_s:
        return None
    return (
        "new_agent",
        f"agent {signers[0].hex()[:12]} first seen {max(ages):g} s before this record; {limit}",
    )


def _low_trust(
    conn: apsw.Connection, policy: Policy, signers: list[bytes], written_ms: int
) -> tuple[str, str] | None:
    if policy.min_trust <= 0 or not signers:
        return None
    from stemedb.store.projections import relaxed_trust  # projections imports this module

    rows = fetchall(conn, "SELECT score, last_updated FROM trust WHERE agent_id = ?", (signers[0],))
    score = (
        relaxed_trust(float(rows[0][0]), float(rows[0][1]), written_ms / 1000.0)
        if rows
        else TRUST_DEFAULT
    )
    if score >= policy.min_trust:
        return None
    return (
        "low_trust",
        f"agent {signers[0].hex()[:12]} has TrustRank {score:.3f}, below "
        f"STEMEDB_QUARANTINE_MIN_TRUST={policy.min_trust:g}",
    )


def _near_duplicate(
    conn: apsw.Connection,
    policy: Policy,
    seq: int,
    signers: list[bytes],
    record: Mapping[str, Any],
) -> tuple[str, str] | None:
    """Held if its signer already said the same thing (up to trivial variations) nearby."""
    if not policy.near_duplicates or not signers:
        return None
    from stemedb.canonical import canonical_json

    wanted = near_key(canonical_json(record["object"]))
    timestamp = int(record["timestamp"])
    rows = fetchall(
        conn,
        "SELECT hash, value_key, timestamp FROM assertions WHERE subject = ? AND predicate = ?"
        " AND agent_id = ? AND seq < ? AND timestamp BETWEEN ? AND ?",
        (
            record["subject"],
            record["predicate"],
            signers[0],
            seq,
            timestamp - WINDOW_S,
            timestamp + WINDOW_S,
        ),
    )
    for other_hash, value_key, other_ts in rows:
        if near_key(str(value_key)) == wanted:
            return (
                "near_duplicate",
                f"repeats assertion {bytes(other_hash).hex()[:12]} of the same agent "
                f"({abs(timestamp - int(other_ts))} s apart, same value up to case, spacing, "
                "punctuation or rounding)",
            )
    return None


def check_references(conn: apsw.Connection, kind: str, record: Mapping[str, Any]) -> None:
    """New writes only (`projections.check_references`): a decision needs an undecided hold."""
    if kind != KIND:
        return
    target = bytes.fromhex(record["target_hash"])
    rows = fetchall(conn, f"SELECT decision FROM {TABLE} WHERE hash = ?", (target,))
    if not rows:
        raise NotFound(
            f"target_hash: {record['target_hash']} is not a held record",
            [{"field": "target_hash", "problem": "not in quarantine"}],
        )
    if rows[0][0] is not None:
        raise InvalidRequest.field("target_hash", f"already decided ({rows[0][0]}d)")


def _decide(conn: apsw.Connection, seq: int, record: Mapping[str, Any], written_ms: int) -> None:
    """Apply a decision to its held record (checked when written; replay never refuses)."""
    target = bytes.fromhex(record["target_hash"])
    signatures = record.get("signatures") or []
    signer = bytes.fromhex(signatures[0]["agent_id"]) if signatures else None
    pending = fetchall(
        conn, f"SELECT seq FROM {TABLE} WHERE hash = ? AND decision IS NULL", (target,)
    )
    conn.execute(
        f"UPDATE {TABLE} SET decision = ?, decided_seq = ?, decided_ms = ?, decided_by = ?,"
        " decision_reason = ? WHERE hash = ? AND decision IS NULL",
        (record["decision"], seq, written_ms, signer, record.get("reason"), target),
    )
    if pending and record["decision"] == "release":
        _project_released(conn, int(pending[0][0]), target, written_ms)


def _project_released(conn: apsw.Connection, held_seq: int, held_hash: bytes, at_ms: int) -> None:
    """Project a released vote, supersession, alias or epoch now, as written at `at_ms`
    (its own seq and claim time; its written_ms is the release's, for `known_at`)."""
    rows = fetchall(
        conn, "SELECT CAST(kind AS TEXT), CAST(body AS TEXT) FROM journal WHERE seq = ?",
        (held_seq,),
    )  # fmt: skip
    if not rows or rows[0][0] not in HELD_KINDS:
        return  # an assertion: lenses filter it by this table's state
    from stemedb.store.projections import project_released  # projections imports this module

    project_released(conn, held_seq, str(rows[0][0]), held_hash, json.loads(rows[0][1]), at_ms)


def copy_policy(conn: apsw.Connection, schema_name: str = "src") -> None:
    """Copy the policy history of the attached database `schema_name`: verify --full
    rebuilds into a scratch file, whose frames must be decided under the same policy."""
    found = fetchall(
        conn, f"SELECT 1 FROM {schema_name}.sqlite_master WHERE name = 'quarantine_policy'"
    )
    if found:
        conn.execute(
            "INSERT OR REPLACE INTO main.quarantine_policy"
            f" SELECT * FROM {schema_name}.quarantine_policy"
        )


# ---- reads ------------------------------------------------------------------------


def has_rows(conn: apsw.Connection) -> bool:
    return bool(fetchall(conn, f"SELECT 1 FROM {TABLE} LIMIT 1"))


def states(
    conn: apsw.Connection, seqs: Iterable[int], known_at_ms: int | None = None
) -> dict[int, tuple[str, str, str]]:
    """(state, reason, detail) of each assertion among `seqs` that is held or rejected.

    State as a reader at `known_at_ms` saw it: a decision counts from its
    frame's written_ms; released (or never held) assertions are absent.
    """
    wanted = list(dict.fromkeys(seqs))
    found: dict[int, tuple[str, str, str]] = {}
    for start in range(0, len(wanted), MAX_PER_QUERY):
        chunk = wanted[start : start + MAX_PER_QUERY]
        marks = ",".join("?" * len(chunk))
        rows = fetchall(
            conn,
            f"SELECT seq, reason, detail, decision, decided_ms FROM {TABLE} WHERE seq IN ({marks})",
            chunk,
        )
        for seq, reason, detail, decision, decided_ms in rows:
            decided = decision is not None and (
                known_at_ms is None or int(decided_ms) <= known_at_ms
            )
            if decided and decision == "release":
                continue
            state = "rejected" if decided else "held"
            found[int(seq)] = (state, str(reason), str(detail))
    return found


def _row_dict(row: tuple[Any, ...]) -> dict[str, Any]:
    (seq, frame_hash, subject, predicate, agent, reason, detail, held_ms) = row[:8]
    decision, decided_seq, decided_ms, decided_by, decision_reason, kind = row[8:]
    return {
        "hash": bytes(frame_hash).hex(),
        "kind": kind or "assertion",
        "seq": int(seq),
        "subject": subject,
        "predicate": predicate,
        "agent_id": bytes(agent).hex() if agent is not None else None,
        "reason": reason,
        "detail": detail,
        "held_ms": int(held_ms),
        "state": {None: "held", "release": "released", "reject": "rejected"}[decision],
        "decided_seq": decided_seq,
        "decided_ms": decided_ms,
        "decided_by": bytes(decided_by).hex() if decided_by is not None else None,
        "decision_reason": decision_reason,
    }


def list_rows(
    conn: apsw.Connection, *, state: str = "held", after_seq: int = 0, limit: int = 100
) -> list[dict[str, Any]]:
    """Quarantined assertions in seq order: `held` (undecided), `released`, `rejected`, `all`."""
    where = {
        "held": "decision IS NULL",
        "released": "decision = 'release'",
        "rejected": "decision = 'reject'",
        "all": "1",
    }[state]
    rows = fetchall(
        conn,
        f"SELECT {_COLUMNS} FROM {TABLE} WHERE {where} AND seq > ? ORDER BY seq LIMIT ?",
        (after_seq, limit),
    )
    return [_row_dict(row) for row in rows]


def get(conn: apsw.Connection, frame_hash: bytes) -> dict[str, Any] | None:
    rows = fetchall(conn, f"SELECT {_COLUMNS} FROM {TABLE} WHERE hash = ?", (frame_hash,))
    return _row_dict(rows[0]) if rows else None


def held_count(conn: apsw.Connection) -> int:
    return int(fetchall(conn, f"SELECT count(*) FROM {TABLE} WHERE decision IS NULL")[0][0])


def held_among(conn: apsw.Connection, seqs: Iterable[int]) -> dict[int, tuple[str, str]]:
    """(reason, detail) of each just-written assertion among `seqs` that was held."""
    return {seq: (reason, detail) for seq, (_, reason, detail) in states(conn, seqs).items()}


def trace_notes(conn: apsw.Connection, frame_hash: bytes) -> dict[str, Any]:
    """What `trace` adds for an assertion: its quarantine row and its near-duplicates.

    Near-duplicates are the same signer's assertions on the same (subject,
    predicate) with the same value up to trivial variations (dedupe.near_key)
    within `WINDOW_S` seconds; each counts once in consensus. Empty when
    there is nothing to say, so ordinary traces are unchanged.
    """
    notes: dict[str, Any] = {}
    row = get(conn, frame_hash) if has_rows(conn) else None
    if row is not None:
        notes["quarantine"] = row
    rows = fetchall(
        conn,
        "SELECT subject, predicate, agent_id, value_key, timestamp FROM assertions WHERE hash = ?",
        (frame_hash,),
    )
    if not rows or rows[0][2] is None:
        return notes
    subject, predicate, agent, value_key, timestamp = rows[0]
    wanted = near_key(str(value_key))
    others = fetchall(
        conn,
        "SELECT hash, seq, value_key, timestamp FROM assertions WHERE subject = ? AND"
        " predicate = ? AND agent_id = ? AND hash <> ? AND timestamp BETWEEN ? AND ?"
        " ORDER BY timestamp DESC, hash",
        (
            subject,
            predicate,
            agent,
            frame_hash,
            int(timestamp) - WINDOW_S,
            int(timestamp) + WINDOW_S,
        ),
    )
    found = [
        {
            "hash": bytes(h).hex(),
            "seq": int(seq),
            "object": json.loads(str(vk)),
            "timestamp": int(ts),
            "same_value": str(vk) == str(value_key),
        }
        for h, seq, vk, ts in others
        if near_key(str(vk)) == wanted
    ]
    if found:
        notes["near_duplicates"] = found
    cluster = _cluster_repeats(conn, frame_hash, bytes(agent), str(subject), str(predicate),
                               wanted, int(timestamp))  # fmt: skip
    if cluster is not None:
        notes["cluster_near_duplicates"] = cluster
    return notes


def _cluster_repeats(
    conn: apsw.Connection,
    frame_hash: bytes,
    agent: bytes,
    subject: str,
    predicate: str,
    wanted: str,
    timestamp: int,
) -> dict[str, Any] | None:
    """Cluster-mates' assertions of the same near value on the pair within WINDOW_S
    (lenses/dedupe.py: the cluster counts once in consensus)."""
    found = agent_clusters.mates(conn, agent)
    if found is None:
        return None
    label, agents = found
    others = [a for a in agents if a != agent][:MAX_PER_QUERY]
    if not others:
        return None
    rows = fetchall(
        conn,
        "SELECT hash, seq, agent_id, value_key, timestamp FROM assertions WHERE subject = ?"
        " AND predicate = ? AND hash <> ? AND timestamp BETWEEN ? AND ?"
        f" AND agent_id IN ({','.join('?' * len(others))}) ORDER BY timestamp DESC, hash",
        (subject, predicate, frame_hash, timestamp - WINDOW_S, timestamp + WINDOW_S, *others),
    )
    same = [
        {
            "hash": bytes(h).hex(),
            "seq": int(seq),
            "agent_id": bytes(a).hex(),
            "object": json.loads(str(vk)),
            "timestamp": int(ts),
        }
        for h, seq, a, vk, ts in rows
        if near_key(str(vk)) == wanted
    ]
    return {"cluster": label, "assertions": same} if same else None
