"""The sample dataset of `stemedb demo`: acceptance battery 1 (Semaglutide) and a little more.

Everything is deterministic so loading it twice changes nothing (every
record answers `exists` the second time): the timestamps are fixed around
`T`, and the four agents' keys are derived from their names. Those keys are
therefore public knowledge: they sign sample data, and no server should
ever trust them for anything else.

What it holds (subject `drugs/semaglutide` throughout):

* `gastroparesis_risk`: agents A-D exactly as in acceptance.md battery 1
  (Regulatory / Clinical / Anecdotal / Clinical disagreeing), plus votes
  that make the `votes` lens pick B while `recency` picks D;
* aliases `ozempic` and `wegovy` -> `drugs/semaglutide`;
* `label_gi_warning`: epoch `fda-label-2023` superseded by `fda-label-2024`,
  with a newer claim in the old epoch so `recency` and `epoch` disagree;
* `max_weekly_dose_mg`: a lineage P (Proposed) -> Q (Approved, parent P),
  and a typo claim that its author superseded;
* `agent_tier` registrations of A (Regulatory), B and D (Clinical), signed by
  a fifth demo key, so `authority` does not cap their self-declared tiers.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from stemedb.canonical import canonical_json
from stemedb.crypto import public_key_hex, sha3_256, sha3_hex
from stemedb.signing import sign_record

T = 1_700_000_000  # 2023-11-14T22:13:20Z, the battery's fixed "T"
SUBJECT = "drugs/semaglutide"
PREDICATE = "gastroparesis_risk"
AGENT_NAMES = ("A", "B", "C", "D")
DAY = 86_400


def agent_seed(name: str) -> bytes:
    """A demo agent's Ed25519 seed, derived from its name (deterministic, NOT secret)."""
    return sha3_256(f"stemedb demo agent {name}".encode())


def record_id(record: Mapping[str, Any]) -> str:
    """The id the server will give a signed, normalised record (data-model.md step 6)."""
    return sha3_hex(canonical_json(dict(record)).encode("utf-8"))


@dataclass
class DemoData:
    """The records in load order (references point backwards), and names for the ids."""

    records: list[dict[str, Any]] = field(default_factory=list)
    ids: dict[str, str] = field(default_factory=dict)
    agents: dict[str, str] = field(default_factory=dict)

    def add(self, name: str, kind: str, agent: str, unsigned: Mapping[str, Any]) -> str:
        record = sign_record(kind, unsigned, [agent_seed(agent)], now_s=unsigned["timestamp"])
        self.records.append(record)
        self.ids[name] = record_id(record)
        return self.ids[name]


def _battery_one(data: DemoData) -> None:
    rows = (
        ("A", "Regulatory", 1.0, 0, "gastroparesis_warning", "fda://drugs/semaglutide/label"),
        ("B", "Clinical", 0.9, 1, "no_gastroparesis_signal", "pubmed://demo-trial-b"),
        ("C", "Anecdotal", 0.2, 2, "gastroparesis", "social://demo/post-c"),
        ("D", "Clinical", 0.9, 3, "no_gastroparesis_signal", "pubmed://demo-cohort-d"),
    )
    for agent, source_class, confidence, offset, value, source in rows:
        data.add(
            agent,
            "assertion",
            agent,
            {
                "subject": SUBJECT,
                "predicate": PREDICATE,
                "object": {"type": "Text", "value": value},
                "confidence": confidence,
                "source_class": source_class,
                "source": source,
                "timestamp": T + offset,
            },
        )


def _extras(data: DemoData) -> None:
    for alias in ("ozempic", "wegovy"):
        data.add(
            f"alias:{alias}",
            "alias",
            "A",
            {"alias": alias, "canonical": SUBJECT, "timestamp": T + 4},
        )
    votes = (
        ("vote:A->B", "A", "B", 1.0),
        ("vote:D->B", "D", "B", 1.0),
        ("vote:C->D", "C", "D", -0.5),
    )
    for name, voter, target, weight in votes:
        data.add(
            name,
            "vote",
            voter,
            {"assertion_hash": data.ids[target], "weight": weight, "timestamp": T + 5},
        )

    e1 = data.add(
        "E1",
        "epoch",
        "A",
        {
            "name": "fda-label-2023",
            "description": "label before the 2023 update",
            "supersedes": [],
            "timestamp": T - 400 * DAY,
        },
    )
    e2 = data.add(
        "E2",
        "epoch",
        "A",
        {
            "name": "fda-label-2024",
            "description": "label after the 2023 update",
            "supersedes": [e1],
            "timestamp": T - 30 * DAY,
        },
    )
    label = {"subject": SUBJECT, "predicate": "label_gi_warning", "source_class": "Regulatory"}
    data.add(
        "E1-claim",
        "assertion",
        "A",
        {**label, "object": "none", "confidence": 0.95, "epoch": e1, "timestamp": T - 300 * DAY},
    )
    data.add(
        "E2-claim",
        "assertion",
        "A",
        {
            **label,
            "object": "ileus_warning",
            "confidence": 0.95,
            "epoch": e2,
            "timestamp": T - 20 * DAY,
        },
    )
    data.add(
        "E1-late",
        "assertion",
        "B",
        {
            **label,
            "source_class": "Clinical",
            "object": "none",
            "confidence": 0.7,
            "epoch": e1,
            "timestamp": T - 10 * DAY,
        },
    )

    dose = {"subject": SUBJECT, "predicate": "max_weekly_dose_mg"}
    p = data.add(
        "P",
        "assertion",
        "B",
        {
            **dose,
            "object": {"type": "Number", "value": 1},
            "confidence": 0.8,
            "source_class": "Clinical",
            "lifecycle": "Proposed",
            "timestamp": T + 20,
        },
    )
    data.add(
        "Q",
        "assertion",
        "A",
        {
            **dose,
            "object": {"type": "Number", "value": 2},
            "confidence": 0.95,
            "source_class": "Regulatory",
            "lifecycle": "Approved",
            "parent_hash": p,
            "timestamp": T + 30,
        },
    )
    typo = data.add(
        "typo",
        "assertion",
        "C",
        {
            **dose,
            "object": {"type": "Number", "value": 20},
            "confidence": 0.3,
            "source_class": "Anecdotal",
            "timestamp": T + 40,
        },
    )
    data.add(
        "typo-superseded",
        "supersession",
        "C",
        {
            "target_hash": typo,
            "reason": "typo: meant 2 mg",
            "type": "Invalidate",
            "timestamp": T + 41,
        },
    )


# Tiers are not self-declared (docs/security.md, "Authority cannot be self-declared"):
# the sample's regulator (A) and clinical sources (B, D) are registered for their tiers
# by a demo registrar key. These records need an admin key when auth is on.
REGISTRAR = "registrar"
REGISTERED_TIERS = (("A", "Regulatory"), ("B", "Clinical"), ("D", "Clinical"))


def _registrations(data: DemoData) -> None:
    for agent, tier in REGISTERED_TIERS:
        data.add(
            f"tier:{agent}",
            "agent_tier",
            REGISTRAR,
            {
                "agent_id": data.agents[agent],
                "max_tier": tier,
                "name": f"demo agent {agent}",
                "note": "sample data: registered by `stemedb demo`",
                "timestamp": T,
            },
        )


def build() -> DemoData:
    """The whole sample, signed; `ids` maps names (A-D, P, Q, E1, E2, ...) to record ids."""
    data = DemoData(agents={name: public_key_hex(agent_seed(name)) for name in AGENT_NAMES})
    _battery_one(data)
    _extras(data)
    _registrations(data)
    return data
