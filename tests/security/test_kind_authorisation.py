"""Authorisation is per record kind, not per route (issue 14, item 2).

Every kind x every role (reader, writer, admin, a writer scoped to `scoped`) x
every write path (its own endpoint, a JSON batch, an NDJSON batch, an atomic
batch), end to end against a real server with authentication on. Before the
fix a writer key got 403 on `POST /v1/outcome` but `created` for the same
outcome inside `POST /v1/assert/batch`.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from e2ekit import Agent, ServerFactory, unique
from rightskit import AUTH_ENV, ROOT_KEY, AuthServer

KINDS = ("assertion", "vote", "epoch", "supersession", "alias", "outcome", "agent_tier")
ROLES = ("reader", "writer", "admin", "scoped")
PATHS = ("single", "batch_json", "batch_ndjson", "atomic")
ENDPOINT = {
    "assertion": "/v1/assert",
    "vote": "/v1/vote",
    "epoch": "/v1/epoch",
    "supersession": "/v1/supersede",
    "alias": "/v1/aliases",
    "outcome": "/v1/outcome",
    "agent_tier": "/v1/admin/agents",
}
OUTCOMES = "SELECT count(*) FROM journal WHERE kind = 'outcome';"
ALLOWED = {
    "reader": frozenset(),
    "writer": frozenset(KINDS) - {"outcome", "agent_tier"},
    "admin": frozenset(KINDS),
    # inside its scope: epochs are global; outcomes and agent registrations need admin
    "scoped": frozenset(KINDS) - {"outcome", "agent_tier", "epoch"},
}


@pytest.fixture(scope="module")
def srv(module_server_factory: ServerFactory) -> Iterator[AuthServer]:
    server = module_server_factory(AUTH_ENV)
    auth = AuthServer(server, {"admin": ROOT_KEY})
    auth.keys["reader"] = auth.new_key("reader")
    auth.keys["writer"] = auth.new_key("writer")
    auth.keys["scoped"] = auth.new_key("writer", scope="scoped")
    yield auth
    server.proc.stop()


def make_record(srv: AuthServer, kind: str, agent: Agent) -> dict[str, Any]:
    """A fresh, valid `kind` record inside the scope `scoped`, signed by `agent`."""
    tag = unique("k")
    base = srv.admin_write("/v1/assert", agent.assertion(f"scoped/{tag}", "p", tag))
    if kind == "assertion":
        return agent.assertion(f"scoped/{tag}/new", "p", tag)
    if kind == "vote":
        return agent.record("vote", assertion_hash=base, weight=1)
    if kind == "epoch":
        return agent.record("epoch", name=tag, supersedes=[])
    if kind == "supersession":
        return agent.record("supersession", target_hash=base, reason=f"retracted {tag}")
    if kind == "alias":
        return agent.record("alias", alias=f"scoped/{tag}/a", canonical=f"scoped/{tag}/c")
    if kind == "agent_tier":
        return agent.record("agent_tier", agent_id=Agent().id, max_tier="Expert", name=tag)
    return agent.record("outcome", agent_id=Agent().id, assertion_hash=base, accurate=False)


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_role_and_path(srv: AuthServer, kind: str, role: str, path: str) -> None:
    agent = Agent()
    record = make_record(srv, kind, agent)
    key = srv.keys[role]
    allowed = kind in ALLOWED[role]
    before = srv.head_seq()
    if path == "single":
        resp = srv.post(ENDPOINT[kind], record, key)
        if allowed:
            assert resp.status == 201, resp
            assert srv.head_seq() == before + 1
        else:
            assert resp.status == 403, resp
            assert resp.error["code"] == "forbidden"
            assert srv.head_seq() == before
        return
    filler = agent.assertion(f"scoped/{unique('f')}", "p", "filler")
    records = [filler, {**record, "kind": kind}]
    if path == "batch_ndjson":
        resp = srv.ndjson(records, key)
    else:
        resp = srv.post(
            "/v1/assert/batch",
            records,
            key,
            params={"atomic": "true"} if path == "atomic" else None,
        )
    if role == "reader":  # the batch route itself needs the writer role
        assert resp.status == 403, resp
        assert resp.error["code"] == "forbidden"
        assert srv.head_seq() == before
        return
    results = resp.json["results"]
    if allowed:
        assert resp.status == 200, resp
        assert [r["status"] for r in results] == ["created", "created"]
        assert srv.head_seq() == before + 2
    elif path == "atomic":
        assert resp.status == 400, resp
        assert resp.error["code"] == "batch_rejected"
        assert resp.error["details"][0]["field"].startswith("1.")
        assert "forbidden" in resp.error["details"][0]["problem"]
        assert [r["status"] for r in results] == ["not_written", "rejected"]
        assert results[1]["error"]["code"] == "forbidden"
        assert srv.head_seq() == before
    else:
        assert resp.status == 200, resp
        assert [r["status"] for r in results] == ["created", "rejected"]
        assert results[1]["error"]["code"] == "forbidden"
        assert kind in results[1]["error"]["message"] or "scope" in results[1]["error"]["message"]
        assert srv.head_seq() == before + 1


def test_a_writer_cannot_move_trust_through_a_batch(srv: AuthServer) -> None:
    """The attack of the issue: five outcomes in a writer's batch drove trust to 1e-7."""
    agent, victim = Agent(), Agent()
    base = srv.admin_write("/v1/assert", victim.assertion(f"t/{unique()}", "p", 1))
    outcomes = [
        {
            **agent.record(
                "outcome",
                agent_id=victim.id,
                assertion_hash=base,
                accurate=False,
                timestamp=1_700_000_000 + i,
            ),
            "kind": "outcome",
        }
        for i in range(5)
    ]
    trust_before, outcomes_before = srv.count("SELECT count(*) FROM trust;"), srv.count(OUTCOMES)
    resp = srv.post("/v1/assert/batch", outcomes, srv.keys["writer"])
    assert resp.status == 200, resp
    assert {r["error"]["code"] for r in resp.json["results"]} == {"forbidden"}
    assert srv.count("SELECT count(*) FROM trust;") == trust_before
    assert srv.count(OUTCOMES) == outcomes_before


def test_a_scoped_writer_is_checked_per_record_in_an_ndjson_batch(srv: AuthServer) -> None:
    agent = Agent()
    inside = agent.assertion(f"scoped/{unique()}", "p", 1)
    outside = agent.assertion(f"elsewhere/{unique()}", "p", 1)
    resp = srv.ndjson([inside, outside], srv.keys["scoped"])
    assert resp.status == 200, resp
    first, second = resp.json["results"]
    assert first["status"] == "created"
    assert second["status"] == "rejected" and second["error"]["code"] == "forbidden"
    assert second["error"]["details"][0]["field"] == "subject"


def test_import_over_http_applies_the_role_of_each_kind(srv: AuthServer, tmp_path: Path) -> None:
    agent, victim = Agent(), Agent()
    base = srv.admin_write("/v1/assert", victim.assertion(f"t/{unique()}", "p", 1))
    lines = [
        agent.assertion(f"imp/{unique()}", "p", 1),
        {
            **agent.record("outcome", agent_id=victim.id, assertion_hash=base, accurate=False),
            "kind": "outcome",
        },
    ]
    source = tmp_path / "in.ndjson"
    source.write_text("".join(json.dumps(line) + "\n" for line in lines))
    before, outcomes_before = srv.head_seq(), srv.count(OUTCOMES)
    argv = [sys.executable, "-m", "stemedb.cli.main", "import", str(source)]
    argv += ["--url", srv.server.url, "--api-key", srv.keys["writer"]]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, done.stderr
    assert "forbidden" in done.stderr + done.stdout
    assert "Traceback" not in done.stderr
    assert srv.head_seq() == before + 1  # the assertion, not the outcome
    assert srv.count(OUTCOMES) == outcomes_before


def _atomic_envelope(resp: Any, code: str) -> None:
    assert resp.status == 400, resp
    error = resp.json["error"]
    assert error["code"] == "batch_rejected"
    assert "nothing was written" in error["message"]
    assert error["details"] and error["details"][0]["field"].startswith("1")
    assert code in error["details"][0]["problem"]
    results = resp.json["results"]
    assert results[0]["status"] == "not_written"
    assert results[1]["status"] == "rejected" and results[1]["error"]["code"] == code
    assert resp.json["created"] == 0 and resp.json["rejected"] == 1


def test_the_atomic_400_carries_the_envelope_for_every_rejection_cause(srv: AuthServer) -> None:
    agent, stranger = Agent(), Agent()
    base = srv.admin_write("/v1/assert", agent.assertion(f"scoped/{unique()}", "p", 1))
    forged = agent.assertion(f"scoped/{unique()}", "p", 1)
    forged["confidence"] = 0.1  # signature no longer matches
    causes = {
        "invalid_request": {"subject": "scoped/x"},
        "invalid_signature": forged,
        "not_found": {**agent.record("vote", assertion_hash="cd" * 32, weight=1), "kind": "vote"},
        "forbidden": {
            **agent.record("outcome", agent_id=stranger.id, assertion_hash=base, accurate=True),
            "kind": "outcome",
        },
    }
    writer = srv.keys["writer"]
    for code, bad in causes.items():
        before = srv.head_seq()
        good = agent.assertion(f"scoped/{unique()}", "p", 1)
        _atomic_envelope(
            srv.post("/v1/assert/batch", [good, bad], writer, params={"atomic": "true"}), code
        )
        _atomic_envelope(srv.ndjson([good, bad], writer, atomic=True), code)
        assert srv.head_seq() == before
    # a supersession by a non-signer: refused by rights, after signature checks
    hide = {
        **stranger.record("supersession", target_hash=base, reason="not mine"),
        "kind": "supersession",
    }
    good = agent.assertion(f"scoped/{unique()}", "p", 1)
    _atomic_envelope(
        srv.post("/v1/assert/batch", [good, hide], writer, params={"atomic": "true"}), "forbidden"
    )
    # an NDJSON line that is not JSON
    data = (json.dumps(good) + "\n{not json\n").encode()
    resp = srv.api.call(
        "POST",
        "/v1/assert/batch",
        params={"atomic": "true"},
        data=data,
        content_type="application/x-ndjson",
        headers={"X-API-Key": writer},
    )
    _atomic_envelope(resp, "invalid_json")


def test_every_record_kind_has_a_role_and_unlisted_kinds_need_admin(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A kind added later cannot slip through batches before someone decides its role."""
    from stemedb.records import RECORD_KINDS
    from stemedb.security import kinds
    from stemedb.security.keys import ApiKey

    assert set(kinds.KIND_AUTH) == set(RECORD_KINDS)
    writer = ApiKey("0" * 12, "w", "writer", None, 0, None, None)
    monkeypatch.delitem(kinds.KIND_AUTH, "alias")
    refusal = kinds.kind_problem(writer, "alias")
    assert refusal is not None and refusal.details[0]["field"] == "kind"
    assert kinds.kind_problem(writer, "no-such-kind") is None  # the service's 400 names it
