"""Data for the console's browser tests and screenshots: the demo sample, a generated
contested dataset, and constructed triage cases whose classes are known in advance."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

TESTS = Path(__file__).resolve().parents[1]
if str(TESTS) not in sys.path:  # `python -m tests.console.screenshots` from the repo root
    sys.path.insert(0, str(TESTS))

from e2ekit import Agent, Api  # noqa: E402

from stemedb import demo_data  # noqa: E402

DAY = 86_400
T0 = 1_750_000_000  # the generated dataset's claim times start here
TIER_CLASSES = ("Regulatory", "Clinical", "Observational", "Expert", "Community", "Anecdotal")
VALUES = ("hepatotoxic", "not_hepatotoxic", "insufficient_evidence")


def headers(key: str | None) -> dict[str, str]:
    return {"X-API-Key": key} if key else {}


def batch(api: Api, records: list[dict[str, Any]], key: str | None = None) -> list[str]:
    body = api.ok("POST", "/v1/assert/batch", records, headers=headers(key))
    bad = [r for r in body["results"] if r["status"] not in ("created", "exists")]
    assert not bad, bad
    return [str(r["hash"]) for r in body["results"]]


def load_demo(api: Api, key: str | None = None) -> demo_data.DemoData:
    data = demo_data.build()
    batch(api, data.records, key)
    return data


@dataclass
class Contested:
    """The generated dataset: `pairs` (subject, predicate) and the showcase pair."""

    pairs: list[tuple[str, str]]
    subject: str
    predicate: str
    early: int  # an as_of at which the showcase's recency answer differs from now


def contested_dataset(api: Api, prefix: str = "trials", key: str | None = None) -> Contested:
    """Eight compounds x two predicates, three to six claims each from six signers
    across tiers; compound 0's `hepatotoxicity` is the showcase (its newest claim
    flips the recency winner, so a time-travel answer differs)."""
    agents = [Agent(demo_data.agent_seed(f"console-{i}")) for i in range(6)]
    records: list[dict[str, Any]] = []
    pairs: list[tuple[str, str]] = []
    for c in range(8):
        subject = f"{prefix}/compound-{c}"
        for p, predicate in enumerate(("hepatotoxicity", "qt_prolongation")):
            pairs.append((subject, predicate))
            for k in range(3 + (c + p) % 4):
                agent = agents[(c + k + p) % 6]
                tier = TIER_CLASSES[(k + c) % 6]
                value = VALUES[(k * (c + 1) + p) % 3]
                records.append(
                    agent.assertion(
                        subject,
                        predicate,
                        value,
                        round(0.55 + ((c + k) % 5) * 0.1, 2),
                        source_class=tier,
                        source=f"study://{subject}/{predicate}/{k}",
                        timestamp=T0 + (c * 10 + k) * DAY,
                    )
                )
    subject, predicate = f"{prefix}/compound-0", "hepatotoxicity"
    records.append(
        agents[5].assertion(
            subject,
            predicate,
            "withdrawn_signal",
            0.5,
            source_class="Clinical",
            source="study://late-correction",
            timestamp=T0 + 400 * DAY,
        )
    )
    registrar = Agent(demo_data.agent_seed(demo_data.REGISTRAR))
    for i, agent in enumerate(agents):  # their declared tiers count (authority is not capped)
        records.append(
            registrar.record(
                "agent_tier",
                agent_id=agent.id,
                max_tier=TIER_CLASSES[i % 3],
                name=f"console test agent {i}",
                timestamp=T0,
            )
        )
    batch(api, records, key)
    return Contested(pairs, subject, predicate, early=T0 + 5 * DAY)


def register(agent: Agent, tier: str, timestamp: int) -> dict[str, Any]:
    """An `agent_tier` record: the demo registrar lets `agent` claim up to `tier`
    (an unregistered signer's claims are capped to Observational at read time)."""
    registrar = Agent(demo_data.agent_seed(demo_data.REGISTRAR))
    return registrar.record(
        "agent_tier", agent_id=agent.id, max_tier=tier, name="test", timestamp=timestamp
    )


@dataclass
class TriageCase:
    subject: str
    predicate: str
    expected: str


def triage_cases(api: Api, prefix: str, now: int, key: str | None = None) -> list[TriageCase]:
    """One pair per class, built to its definition (docs/console.md) for a window of
    30 days ending at `now`:

    * superseded: two values, the author withdraws one -> Resolved (one live value);
    * authority: a regulator registered for Regulatory says X, two Clinical signers
      say Y -> Resolved (one value at the best tier);
    * emerging: two Clinical values, the second first claimed 2 days before `now`;
    * active: two Clinical values, both first claimed 200 days before `now`, the newest
      claim 100 days before (still contested, no new side in the window).
    """
    a, b, c, regulator = (Agent(demo_data.agent_seed(f"{prefix}-{i}")) for i in range(4))
    old, mid, recent = now - 200 * DAY, now - 100 * DAY, now - 2 * DAY
    s = f"{prefix}/case"

    def claim(agent: Agent, pred: str, value: str, tier: str, ts: int) -> dict[str, Any]:
        return agent.assertion(s, pred, value, 0.8, source_class=tier, timestamp=ts)

    wrong = claim(a, "superseded", "wrong", "Clinical", old)
    records = [
        claim(a, "superseded", "right", "Clinical", old),
        wrong,
        register(regulator, "Regulatory", old),
        claim(regulator, "authority", "x", "Regulatory", old),
        claim(b, "authority", "y", "Clinical", mid),
        claim(c, "authority", "y", "Clinical", recent),
        claim(a, "emerging", "old_view", "Clinical", old),
        claim(b, "emerging", "new_view", "Clinical", recent),
        claim(a, "active", "p", "Clinical", old),
        claim(b, "active", "q", "Clinical", old),
        claim(c, "active", "q", "Clinical", mid),
    ]
    hashes = batch(api, records, key)
    target = hashes[1]
    sup = a.record(
        "supersession", target_hash=target, type="Invalidate", reason="withdrawn", timestamp=mid
    )
    api.ok("POST", "/v1/supersede", sup, expect=201, headers=headers(key))
    return [
        TriageCase(s, "superseded", "Resolved"),
        TriageCase(s, "authority", "Resolved"),
        TriageCase(s, "emerging", "Emerging"),
        TriageCase(s, "active", "Active"),
    ]


def lens_rows(api: Api, base: Mapping[str, Any], lens: str, key: str | None = None) -> Any:
    """What POST /v1/query answers for one lens: (winner hash or '', resolution_confidence)."""
    body = api.ok("POST", "/v1/query", {**base, "lens": lens}, headers=headers(key))
    if not body["results"]:
        return ("", None)
    group = body["results"][0]
    winner = group["winner"]
    return (winner["hash"] if winner else "", group["resolution_confidence"])
