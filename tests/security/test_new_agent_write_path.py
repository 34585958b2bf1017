"""The new-agent limit runs in the write path, on prepared records (issue 19 item 4).

The limit used to parse every write body in a middleware, then the write
service parsed it again and the limit looked every signer up in the database.
Now the service's prepared records carry the signer ids (one parse), and only
signers the limit has not seen yet are looked up: known agents are cached in
memory (bounded). The end-to-end behaviour is in test_agent_flood.py; these
tests pin what moved: records refused before the check are not charged, every
write route and kind is charged, an atomic batch over budget writes nothing,
and the cache spares the lookup.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import apsw
import pytest
from e2ekit import Agent, ServerFactory, unique

from stemedb.config import Settings
from stemedb.errors import RateLimited
from stemedb.security import new_agents
from stemedb.security.new_agents import NewAgentLimit
from stemedb.store import schema

LIMITED = {"STEMEDB_RATE_LIMIT_WRITE": "0", "STEMEDB_RATE_LIMIT_READ": "0"}


def _claim(agent: Agent, subject: str, value: str = "7 mg") -> dict[str, Any]:
    return agent.assertion(subject, "dose", value, 0.8, source=f"agent://{agent.id[:16]}")


def _forged(agent: Agent, subject: str) -> dict[str, Any]:
    """Signed, then changed: the signature no longer verifies (400 for the record)."""
    return {**_claim(agent, subject), "confidence": 0.31}


def test_only_prepared_records_are_charged_on_every_route(server_factory: ServerFactory) -> None:
    api = server_factory({**LIMITED, "STEMEDB_NEW_AGENTS_PER_HOUR": "4"}).api
    subject = f"drugs/{unique()}"
    honest = [Agent() for _ in range(3)]
    forgers = [Agent() for _ in range(4)]
    body = api.batch(
        [*(_claim(a, subject) for a in honest), *(_forged(a, subject) for a in forgers)]
    )
    # Seven claimed signers, but the four forged records are refused before the
    # limit: only the three verified signers were charged (3 of 4).
    assert body["created"] == 3 and body["rejected"] == 4, body
    target = body["results"][0]["hash"]
    voter, late = Agent(), Agent()
    vote = api.post("/v1/vote", voter.record("vote", assertion_hash=target, weight=1.0))
    assert vote.status == 201, vote  # 4 of 4: votes are charged like claims
    refused = api.post("/v1/vote", late.record("vote", assertion_hash=target, weight=1.0))
    assert refused.status == 429 and refused.error["code"] == "rate_limited", refused
    assert "STEMEDB_NEW_AGENTS_PER_HOUR" in refused.error["message"]
    assert int(refused.header("Retry-After") or "0") >= 1
    # Known agents, and the forgers' real records later, are judged on their own.
    assert api.post("/v1/assert", _claim(honest[0], subject, "8 mg")).status == 201
    assert api.post("/v1/assert", _claim(forgers[0], subject)).status == 429


def test_an_atomic_batch_over_budget_writes_nothing(server_factory: ServerFactory) -> None:
    api = server_factory({**LIMITED, "STEMEDB_NEW_AGENTS_PER_HOUR": "2"}).api
    subject = f"drugs/{unique()}"
    claims = [_claim(Agent(), subject) for _ in range(3)]
    resp = api.post("/v1/assert/batch?atomic=true", claims)
    assert resp.status == 429 and resp.error["code"] == "rate_limited", resp
    assert api.query(subject=subject, predicate="dose")["count"] == 0
    assert api.batch(claims[:2])["created"] == 2  # the budget was not spent by the refusal


# ---- the cache (in process: counts the database lookups) -----------------------------


@dataclass
class _Pending:
    record: dict[str, Any]


class _CountingStore:
    def __init__(self, path: Path) -> None:
        self.conn = schema.connect(path)
        schema.apply_migrations(self.conn)
        self.lookups = 0

    @contextmanager
    def reader(self) -> Iterator[apsw.Connection]:
        self.lookups += 1
        yield self.conn


def _signed_by(*agents: Agent) -> _Pending:
    return _Pending({"signatures": [{"agent_id": a.id, "signature": "00"} for a in agents]})


@pytest.fixture
def limit(tmp_path: Path) -> Iterator[NewAgentLimit]:
    settings = Settings(db_dir=tmp_path / "db", bind_port=0, new_agents_per_hour=3)
    store = _CountingStore(tmp_path / "t.db")
    found = NewAgentLimit(settings, store)
    token = new_agents._CURRENT.set(new_agents._Payer("ip:127.0.0.1", "/v1/assert", None))
    yield found
    new_agents._CURRENT.reset(token)
    store.conn.close()


def test_known_signers_cost_no_lookup_and_the_cache_is_bounded(
    limit: NewAgentLimit, monkeypatch: pytest.MonkeyPatch
) -> None:
    store: Any = limit.store
    a, b, c, d = Agent(), Agent(), Agent(), Agent()
    limit.check([_signed_by(a), _signed_by(a, b)])
    assert store.lookups == 1  # one query for the write's unseen signers
    for _ in range(5):
        limit.check([_signed_by(b, a)])
    assert store.lookups == 1  # charged once, then known: no lookup, no charge
    limit.check([_signed_by(c)])  # 3 of 3
    with pytest.raises(RateLimited, match="new-agent limit reached"):
        limit.check([_signed_by(d)])
    assert store.lookups == 3
    monkeypatch.setattr(new_agents, "REMEMBERED", 2)
    limit._remember([bytes.fromhex(d.id)])
    assert [agent.hex() for agent in limit._known] == [c.id, d.id]  # oldest forgotten first


def test_no_payer_means_no_check(limit: NewAgentLimit) -> None:
    """Admin keys, non-write routes and in-process writers (import) set no payer."""
    new_agents._CURRENT.set(None)
    limit.check([_signed_by(Agent()) for _ in range(10)])
    assert limit.store.lookups == 0  # type: ignore[attr-defined]
