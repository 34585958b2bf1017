"""A writer key scoped to `drugs` writes only inside `drugs/...`, in single and batch bodies."""

from __future__ import annotations

import json
from typing import Any

import pytest
from securekit import Agent, SecureApp


@pytest.fixture(scope="module")
def scoped(auth_app: SecureApp) -> dict[str, str]:
    return {"X-API-Key": auth_app.new_key("writer", scope="drugs", name="drugs team")}


@pytest.fixture(scope="module")
def writer(auth_app: SecureApp) -> dict[str, str]:
    return {"X-API-Key": auth_app.new_key("writer")}


def _post(app: SecureApp, path: str, body: Any, headers: dict[str, str], **kw: Any) -> Any:
    return app.client.simulate_post(path, json=body, headers=headers, **kw)


def _seq(app: SecureApp) -> int:
    seq: int = app.store.stats()["journal_seq"]
    return seq


@pytest.mark.parametrize(
    "subject", ["drugs", "drugs/semaglutide", "drugs/semaglutide/label", "drugs/a b/c"]
)
def test_inside_the_scope_is_allowed(
    auth_app: SecureApp, scoped: dict[str, str], agent: Agent, subject: str
) -> None:
    resp = _post(auth_app, "/v1/assert", agent.assertion(subject), scoped)
    assert resp.status_code == 201, resp.text


@pytest.mark.parametrize("subject", ["drugsx/a", "devices/pump", "fda://drugs/x", "drug"])
def test_outside_the_scope_is_403_naming_the_subject(
    auth_app: SecureApp, scoped: dict[str, str], agent: Agent, subject: str
) -> None:
    before = _seq(auth_app)
    resp = _post(auth_app, "/v1/assert", agent.assertion(subject), scoped)
    assert resp.status_code == 403, resp.text
    error = resp.json["error"]
    assert error["code"] == "forbidden"
    assert error["details"][0]["field"] == "subject"
    assert subject in error["details"][0]["problem"]
    assert _seq(auth_app) == before


def test_the_concept_path_alias_is_checked_too(
    auth_app: SecureApp, scoped: dict[str, str], agent: Agent
) -> None:
    record = agent.assertion("devices/pump")
    record["concept_path"] = record.pop("subject")
    resp = _post(auth_app, "/v1/assertions", record, scoped)
    assert resp.status_code == 403
    assert resp.json["error"]["details"][0]["field"] == "concept_path"


def test_an_unscoped_writer_writes_anywhere(
    auth_app: SecureApp, writer: dict[str, str], agent: Agent
) -> None:
    assert _post(auth_app, "/v1/assert", agent.assertion("devices/pump"), writer).status_code == 201


def test_a_batch_refuses_the_outside_record_alone_or_all_when_atomic(
    auth_app: SecureApp, scoped: dict[str, str], agent: Agent
) -> None:
    records = [agent.assertion("drugs/a"), agent.assertion("devices/b"), agent.assertion("drugs/c")]
    before = _seq(auth_app)
    resp = _post(auth_app, "/v1/assert/batch?atomic=true", records, scoped)
    assert resp.status_code == 400, resp.text
    assert resp.json["error"]["code"] == "batch_rejected"
    assert [d["field"] for d in resp.json["error"]["details"]] == ["1.subject"]
    assert "nothing was written" in resp.json["error"]["message"]
    assert resp.json["results"][1]["error"]["code"] == "forbidden"
    assert _seq(auth_app) == before
    resp = _post(auth_app, "/v1/assert/batch", records, scoped)
    assert resp.status_code == 200, resp.text
    assert [r["status"] for r in resp.json["results"]] == ["created", "rejected", "created"]
    assert resp.json["results"][1]["error"]["code"] == "forbidden"
    assert resp.json["results"][1]["error"]["details"][0]["field"] == "subject"
    assert _seq(auth_app) == before + 2


def test_an_ndjson_batch_is_checked_line_by_line(
    auth_app: SecureApp, scoped: dict[str, str], agent: Agent
) -> None:
    before = _seq(auth_app)
    lines = [agent.assertion("drugs/n1"), "not json", agent.assertion("other/n2")]
    body = "\n".join(x if isinstance(x, str) else json.dumps(x) for x in lines) + "\n"
    resp = auth_app.client.simulate_post(
        "/v1/assert/batch",
        body=body.encode(),
        headers={**scoped, "Content-Type": "application/x-ndjson"},
    )
    assert resp.status_code == 200, resp.text
    statuses = [(r["status"], (r.get("error") or {}).get("code")) for r in resp.json["results"]]
    assert statuses == [("created", None), ("rejected", "invalid_json"), ("rejected", "forbidden")]
    assert _seq(auth_app) == before + 1


def test_votes_and_supersessions_follow_the_target_assertion(
    auth_app: SecureApp, scoped: dict[str, str], writer: dict[str, str], agent: Agent
) -> None:
    outside = _post(auth_app, "/v1/assert", agent.assertion("devices/x"), writer).json["hash"]
    inside = _post(auth_app, "/v1/assert", agent.assertion("drugs/x"), scoped).json["hash"]
    vote_out = agent.record("vote", {"assertion_hash": outside, "weight": 1})
    vote_in = agent.record("vote", {"assertion_hash": inside, "weight": 1})
    resp = _post(auth_app, "/v1/vote", vote_out, scoped)
    assert resp.status_code == 403
    assert resp.json["error"]["details"][0]["field"] == "assertion_hash"
    assert _post(auth_app, "/v1/vote", vote_in, scoped).status_code == 201
    hide = agent.record("supersession", {"target_hash": outside.upper(), "reason": "mine now"})
    resp = _post(auth_app, "/v1/supersede", hide, scoped)
    assert resp.status_code == 403
    assert resp.json["error"]["details"][0]["field"] == "target_hash"
    batch = [{**vote_out, "kind": "vote"}]
    resp = _post(auth_app, "/v1/assert/batch", batch, scoped)
    assert resp.json["results"][0]["error"]["code"] == "forbidden"
    assert resp.json["results"][0]["error"]["details"][0]["field"] == "assertion_hash"


def test_aliases_need_both_paths_in_scope_and_epochs_are_refused(
    auth_app: SecureApp, scoped: dict[str, str], agent: Agent
) -> None:
    ok = agent.record("alias", {"alias": "drugs/ozempic", "canonical": "drugs/semaglutide"})
    assert _post(auth_app, "/v1/aliases", ok, scoped).status_code == 201
    hijack = agent.record("alias", {"alias": "devices/pump", "canonical": "drugs/semaglutide"})
    resp = _post(auth_app, "/v1/aliases", hijack, scoped)
    assert resp.status_code == 403
    assert resp.json["error"]["details"][0]["field"] == "alias"
    epoch = agent.record("epoch", {"name": "mine", "supersedes": []})
    resp = _post(auth_app, "/v1/epoch", epoch, scoped)
    assert resp.status_code == 403
    assert resp.json["error"]["details"][0]["field"] == "kind"


def test_malformed_records_from_a_scoped_key_still_get_the_400_naming_the_field(
    auth_app: SecureApp, scoped: dict[str, str], agent: Agent
) -> None:
    record = agent.assertion("drugs/x")
    record["confidence"] = 7
    resp = _post(auth_app, "/v1/assert", record, scoped)
    assert resp.status_code == 400
    assert resp.json["error"]["details"][0]["field"] == "confidence"
    bad_json = auth_app.client.simulate_post(
        "/v1/assert", body=b"{", headers={**scoped, "Content-Type": "application/json"}
    )
    assert bad_json.status_code == 400
    assert bad_json.json["error"]["code"] == "invalid_json"


def test_scoped_keys_still_read_everything(auth_app: SecureApp, scoped: dict[str, str]) -> None:
    resp = auth_app.client.simulate_get("/v1/query", params={"subject": "devices"}, headers=scoped)
    assert resp.status_code == 200
