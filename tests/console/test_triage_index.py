"""GET /v1/triage: the incremental index agrees with a fresh fold of the same journal,
and each class follows its definition (docs/console.md)."""

from __future__ import annotations

from typing import Any

import pytest
from consolekit import DAY, batch, contested_dataset, register, triage_cases
from e2ekit import Agent, Api, ServerFactory, poll, unique

NOW = 1_790_000_000


def triage(api: Api, **params: Any) -> dict[str, Any]:
    body: dict[str, Any] = poll(
        lambda: (b := api.get_ok("/v1/triage", params))["status"] == "ready" and b, timeout=30
    )
    body.pop("server_ms")
    return body


def test_a_restart_folds_the_journal_to_the_same_triage(server_factory: ServerFactory) -> None:
    server = server_factory()
    api = server.api
    prefix = unique("fold")
    contested_dataset(api, prefix=f"{prefix}/trials")
    triage_cases(api, prefix, NOW)
    # superseded while its pair had one value, then a second value arrives: the pair
    # becomes contested with one live value (Resolved by the supersession)
    a, b = Agent(), Agent()
    first = api.write("/v1/assert", a.assertion(f"{prefix}/late", "p", "one", 0.9))
    sup = a.record("supersession", target_hash=first["hash"], type="Invalidate", reason="x")
    api.write("/v1/supersede", sup)
    api.write("/v1/assert", b.assertion(f"{prefix}/late", "p", "two", 0.9))
    before = triage(api, prefix=prefix, now=NOW, limit=1000)
    late = [p for p in before["pairs"] if p["subject"] == f"{prefix}/late"]
    assert [(p["class"], p["live_values"], p["values_ever"]) for p in late] == [("Resolved", 1, 2)]
    assert before["total"] >= 12  # the generated pairs with two values, the cases, `late`

    server.proc.stop()
    again = server_factory(base=server.base)
    after = triage(again.api, prefix=prefix, now=NOW, limit=1000)
    by_pair = {(p["subject"], p["predicate"]): p for p in after["pairs"]}
    for pair in before["pairs"]:  # pair by pair first: a readable failure
        assert by_pair.get((pair["subject"], pair["predicate"])) == pair
    assert after == before


def test_emerging_turns_active_when_the_window_moves_past_the_new_side(
    server_factory: ServerFactory,
) -> None:
    api = server_factory().api
    prefix = unique("win")
    triage_cases(api, prefix, NOW)

    def classes(now: int) -> dict[str, str]:
        body = triage(api, prefix=prefix, now=now)
        return {p["predicate"]: p["class"] for p in body["pairs"]}

    assert classes(NOW)["emerging"] == "Emerging"
    assert classes(NOW + 40 * DAY)["emerging"] == "Active"
    # a new dissenting value inside the window makes an Active pair Emerging
    api.write(
        "/v1/assert",
        Agent().assertion(
            f"{prefix}/case", "active", "r", 0.8, source_class="Clinical", timestamp=NOW - DAY
        ),
    )
    assert classes(NOW)["active"] == "Emerging"


def test_filters_by_tier_and_prefix(server_factory: ServerFactory) -> None:
    api = server_factory().api
    prefix = unique("flt")
    triage_cases(api, prefix, NOW)
    regulatory = triage(api, prefix=prefix, now=NOW, tier="Regulatory")
    assert [p["predicate"] for p in regulatory["pairs"]] == ["authority"]
    assert triage(api, prefix=f"{prefix}/nothing", now=NOW)["total"] == 0
    assert triage(api, prefix=prefix[:-1], now=NOW)["total"] == 0  # paths, not text prefixes


def test_a_self_declared_regulator_settles_nothing_until_registered(
    server_factory: ServerFactory,
) -> None:
    """Triage sees the capped tiers the lenses see (tier_policy): an unregistered
    signer's Regulatory claim counts as Observational, so it neither resolves the
    pair nor shows under the Regulatory filter; once an admin registers the signer
    (after the index was folded) it does both, and the skeptic agrees throughout."""
    server = server_factory()
    api = server.api
    prefix = unique("cap")
    fake, b, c = Agent(), Agent(), Agent()
    s = f"{prefix}/drug"
    batch(
        api,
        [
            fake.assertion(s, "risk", "none", 1.0, source_class="Regulatory", timestamp=NOW),
            b.assertion(s, "risk", "warning", 0.8, source_class="Observational", timestamp=NOW),
            c.assertion(s, "risk", "warning", 0.8, source_class="Observational", timestamp=NOW),
        ],
    )

    def state() -> tuple[str, str, list[str], list[str]]:
        (pair,) = triage(api, prefix=prefix, now=NOW)["pairs"]
        regulatory = triage(api, prefix=prefix, now=NOW, tier="Regulatory")["pairs"]
        skeptic = api.get_ok("/v1/skeptic", {"subject": s, "predicate": "risk"})
        assert pair["conflict_score"] == pytest.approx(skeptic["conflict_score"], abs=1e-9)
        return pair["class"], pair["best_tier"], pair["tiers"], [p["subject"] for p in regulatory]

    assert state() == ("Emerging", "Observational", ["Observational"], [])
    batch(api, [register(fake, "Regulatory", NOW)])  # the index is folded: it must re-cap
    assert state() == ("Resolved", "Regulatory", ["Regulatory", "Observational"], [s])
    batch(api, [register(fake, "Community", NOW + 1)])  # registered down: below the others
    assert state() == ("Resolved", "Observational", ["Observational", "Community"], [])
    # a fresh fold after a restart gives the same answer as the re-capped index
    before = triage(api, prefix=prefix, now=NOW)
    server.proc.stop()
    after = triage(server_factory(base=server.base).api, prefix=prefix, now=NOW)
    assert after == before


def test_before_the_first_fold_it_answers_building_with_progress(tmp_path: Any) -> None:
    # A store of synthetic rows (bench/console_triage.py); the warm-up not started yet.
    from bench.console_triage import RowStore, fill
    from stemedb.service.triage import TriageQuery, TriageService
    from stemedb.store import schema

    store = RowStore(tmp_path / "t.db")
    schema.apply_migrations(store.conn)
    fill(store.conn, 0, 100)
    service = TriageService(store)  # type: ignore[arg-type]
    assert not service.ready.is_set()  # nothing folded before anyone asks
    with service._lock:  # hold the fold back: the first request starts it and says so
        assert service.triage(TriageQuery(), wait_s=0.01) == {
            "status": "building",
            "indexed_seq": 0,
            "head_seq": 100,
        }
    body = poll(lambda: (b := service.triage(TriageQuery()))["status"] == "ready" and b)
    assert body["total"] == 10  # every pair of 10 claims is contested
    assert body["indexed_seq"] == 10_000_000  # up to the one supersession (after row 100)
    # a backlog larger than a request should fold (a bulk import) is folded on the side
    fill(store.conn, 100, 60_000)
    assert service.triage(TriageQuery(), wait_s=0.01)["status"] == "building"
    body = poll(lambda: (b := service.triage(TriageQuery()))["status"] == "ready" and b, 60)
    assert body["total"] == 6010


def test_a_registration_touching_many_pairs_refolds_on_the_side(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bench.console_triage import AGENTS, RowStore, agent, fill, register
    from stemedb.service import triage as triage_service
    from stemedb.service.triage import TriageQuery, TriageService
    from stemedb.store import schema

    monkeypatch.setattr(triage_service, "REFOLD_PAIRS", 3)
    store = RowStore(tmp_path / "t.db")
    schema.apply_migrations(store.conn)
    fill(store.conn, 0, 100)  # 10 pairs, 50 unregistered signers: nothing above Observational
    service = TriageService(store)  # type: ignore[arg-type]

    def ready(query: TriageQuery) -> dict[str, Any]:
        return dict(poll(lambda: (b := service.triage(query))["status"] == "ready" and b, 30))

    assert ready(TriageQuery(tier=0))["total"] == 0
    assert ready(TriageQuery(tier=1))["total"] == 0
    # agent 6 signs rows 6 (Regulatory, pair 0) and 56 (Observational, pair 5): re-capped
    # in the request, which now finds pair 0 under Regulatory
    register(store.conn, 1_000_000, agent(6), 0)
    regulatory = ready(TriageQuery(tier=0))
    assert [(p["subject"], p["predicate"]) for p in regulatory["pairs"]] == [("bench/s0", "p0")]
    # 48 agents at once touch every pair (more than REFOLD_PAIRS): refolded on the side;
    # then every pair has a live row declared Regulatory by a registered regulator
    for i in range(2, AGENTS):
        register(store.conn, 1_000_000 + i, agent(i), 0)
    assert service.triage(TriageQuery(), wait_s=2)["status"] == "building"
    assert ready(TriageQuery(tier=0))["total"] == 10
