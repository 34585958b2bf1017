"""Sources and retractions (issue 17 part 2), end to end against a real auth-enabled server.

A source registry (`POST /v1/sources`, `GET /v1/sources/{id}`) and signed
`retraction` records: every lens answer warns about claims citing a
retracted source, `exclude_retracted=true` leaves them out, `known_at`
before the retraction shows the world as it was. Hostile cases: a writer
retracting someone else's source, a forged publisher key, a takeover by
re-registration, the same refusals inside a batch.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest
from e2ekit import Agent, Api, Resp, RunningServer, ServerFactory, poll, unique

from stemedb.records.source import source_id

ROOT = "0123456789abcdef0123456789abcdef-root"
ENV = {
    "STEMEDB_AUTH_ENABLED": "true",
    "STEMEDB_ROOT_API_KEY": ROOT,
    "STEMEDB_RATE_LIMIT_WRITE": "0",
    "STEMEDB_RATE_LIMIT_READ": "0",
}


class Live:
    """The server, an admin key and two writer keys (one per signing agent)."""

    def __init__(self, server: RunningServer) -> None:
        self.server = server
        self.api: Api = server.api
        self.writer = self.new_key("writer")
        self.other_writer = self.new_key("writer")

    def call(self, method: str, path: str, body: Any = None, key: str = ROOT, **kw: Any) -> Resp:
        return self.api.call(method, path, body, headers={"X-API-Key": key}, **kw)

    def ok(self, method: str, path: str, body: Any = None, *, expect: int = 200, **kw: Any) -> Any:
        resp = self.call(method, path, body, **kw)
        assert resp.status == expect, (method, path, resp)
        return resp.json

    def new_key(self, role: str) -> str:
        return str(self.ok("POST", "/v1/admin/keys", {"role": role}, expect=201)["api_key"])

    def register(self, agent: Agent, key: str, **fields: Any) -> Resp:
        return self.call("POST", "/v1/sources", agent.record("source", **fields), key=key)

    def retract(self, agent: Agent, key: str, sid: str, reason: str = "fabricated data") -> Resp:
        record = agent.record("retraction", source_id=sid, reason=reason)
        return self.call("POST", "/v1/retractions", record, key=key)

    def lens(self, subject: str, lens: str, **params: Any) -> dict[str, Any]:
        body = self.ok("POST", "/v1/query", {"subject": subject, "lens": lens, **params})
        assert len(body["results"]) == 1, body
        result: dict[str, Any] = body["results"][0]
        return result


@pytest.fixture
def live(server_factory: ServerFactory) -> Iterator[Live]:
    yield Live(server_factory(ENV))


def _scenario(live: Live) -> tuple[str, str, str, Agent, Agent, Agent]:
    """Publisher P registers a DOI; agent C cites it (value "bad"), agent D cites
    nothing (value "good", older). Returns subject, sid, the citing claim's hash."""
    publisher, citer, other = Agent(), Agent(), Agent()
    subject = f"drugs/{unique('x')}"
    doi = f"doi:10.1234/{unique('paper')}"
    resp = live.register(
        publisher,
        live.writer,
        identifier=doi,
        title="A trial",
        publisher="Journal of Tests",
        publisher_key=publisher.id,
    )
    assert resp.status == 201, resp
    sid = source_id(doi)
    now = int(time.time())
    good = other.assertion(subject, "dose_mg", 5, confidence=0.8, timestamp=now - 100)
    bad = citer.assertion(subject, "dose_mg", 50, confidence=0.9, source=doi, timestamp=now)
    live.ok("POST", "/v1/assert", good, key=live.writer, expect=201)
    bad_hash = live.ok("POST", "/v1/assert", bad, key=live.writer, expect=201)["hash"]
    return subject, sid, bad_hash, publisher, citer, other


def _line(result: dict[str, Any], hash_hex: str) -> dict[str, Any]:
    return next(line for line in result["explanation"] if line["hash"] == hash_hex)


def test_registered_source_shows_its_citing_claims_and_tier(live: Live) -> None:
    subject, sid, bad_hash, publisher, _, _ = _scenario(live)
    body = live.ok("GET", f"/v1/sources/{sid}", key=live.other_writer)
    source = body["source"]
    assert source["source_id"] == sid
    assert source["identifier_type"] == "doi"
    assert (source["tier"], source["tier_basis"]) == ("Clinical", "inferred")  # doi scheme
    assert source["publisher_key"] == publisher.id
    assert source["registered_by"] == publisher.id
    assert body["retracted"] is False and body["retractions"] == []
    assert [c["hash"] for c in body["claims"]] == [bad_hash]
    assert body["claims"][0]["subject"] == subject

    # A declared tier is shown as declared; an unknown id is a 404 naming the field.
    url = f"https://example.org/{unique('page')}"
    assert live.register(publisher, live.writer, identifier=url, tier="Expert").status == 201
    declared = live.ok("GET", f"/v1/sources/{source_id(url)}")["source"]
    assert (declared["tier"], declared["tier_basis"], declared["identifier_type"]) == (
        "Expert",
        "declared",
        "url",
    )
    missing = live.call("GET", f"/v1/sources/{'ab' * 32}")
    assert missing.status == 404 and missing.error["details"][0]["field"] == "source_id"
    bad_id = live.call("GET", "/v1/sources/not-hex")
    assert bad_id.status == 400 and bad_id.error["details"][0]["field"] == "source_id"


def test_retraction_warns_in_every_lens_and_exclude_leaves_it_out(live: Live) -> None:
    subject, sid, bad_hash, publisher, _, _ = _scenario(live)
    before = live.lens(subject, "recency")
    assert before["winner"]["hash"] == bad_hash and "warnings" not in before

    resp = live.retract(publisher, live.writer, sid, "data fabricated; retracted by the journal")
    assert resp.status == 201, resp
    shown = live.ok("GET", f"/v1/sources/{sid}")
    assert shown["retracted"] is True
    assert shown["retractions"][0]["retracted_by"] == publisher.id
    assert shown["retractions"][0]["reason"].startswith("data fabricated")

    for lens in ("recency", "confidence", "consensus", "authority", "trust", "votes", "layered"):
        result = live.lens(subject, lens)
        line = _line(result, bad_hash)
        assert line["warnings"] and "retracted" in line["warnings"][0], (lens, line)
        assert "WARNING: source" in line["why"], (lens, line)
        assert [w["hash"] for w in result["warnings"]] == [bad_hash], lens
        assert result["warnings"][0]["code"] == "source_retracted"
        assert result["warnings"][0]["source_id"] == sid
    winner = live.lens(subject, "recency")["winner"]
    assert winner["hash"] == bad_hash and "retracted" in winner["warnings"][0]

    excluded = live.lens(subject, "recency", exclude_retracted=True)
    assert excluded["winner"]["hash"] != bad_hash
    assert _line(excluded, bad_hash)["excluded"] == "retracted"
    assert "warnings" not in excluded and excluded["conflict_score"] == 0.0

    # Skeptic: a warning on the claim group that cites the retracted source.
    report = live.ok("GET", "/v1/skeptic", params={"subject": subject, "predicate": "dose_mg"})
    flagged = [c for c in report["claims"] if c.get("warnings")]
    assert len(flagged) == 1 and flagged[0]["object"]["value"] == 50
    assert flagged[0]["warnings"][0]["hash"] == bad_hash
    assert report["status"] != "Unanimous"
    only = live.ok(
        "GET",
        "/v1/skeptic",
        params={"subject": subject, "predicate": "dose_mg", "exclude_retracted": "true"},
    )
    assert only["status"] == "Unanimous" and "warnings" not in only
    as_lens = live.lens(subject, "skeptic")
    assert [c for c in as_lens["claims"] if c.get("warnings")]
    layered = live.ok("GET", "/v1/layered", params={"subject": subject, "predicate": "dose_mg"})
    assert [w["hash"] for w in layered["warnings"]] == [bad_hash]


def test_known_at_before_the_retraction_shows_the_world_as_it_was(live: Live) -> None:
    subject, sid, bad_hash, publisher, _, _ = _scenario(live)
    second = int(time.time()) + 1  # the claims are known at `second`, the retraction is not
    poll(lambda: time.time() > second + 0.01, timeout=3.0)
    assert live.retract(publisher, live.writer, sid).status == 201
    written_ms = live.ok("GET", f"/v1/sources/{sid}")["retractions"][0]["written_ms"]
    assert written_ms > second * 1000

    then = live.lens(subject, "recency", known_at=second)
    assert then["winner"]["hash"] == bad_hash
    assert "warnings" not in then and "warnings" not in _line(then, bad_hash)
    then_excluded = live.lens(subject, "recency", known_at=second, exclude_retracted=True)
    assert then_excluded["winner"]["hash"] == bad_hash  # nothing was retracted yet
    past = live.ok("GET", f"/v1/sources/{sid}", params={"known_at": second})
    assert past["retracted"] is False

    now = live.lens(subject, "recency", known_at=written_ms // 1000 + 1)
    assert [w["hash"] for w in now["warnings"]] == [bad_hash]


def test_as_of_before_the_retraction_was_claimed_shows_no_warning(live: Live) -> None:
    subject, sid, bad_hash, publisher, _, _ = _scenario(live)
    claimed = int(time.time()) + 100  # a retraction dated ahead (allowed: < 300 s)
    record = publisher.record("retraction", source_id=sid, reason="late", timestamp=claimed)
    live.ok("POST", "/v1/retractions", record, key=live.writer, expect=201)
    before = live.lens(subject, "recency", as_of=claimed - 1)
    assert before["winner"]["hash"] == bad_hash and "warnings" not in before
    after = live.lens(subject, "recency", as_of=claimed)
    assert [w["hash"] for w in after["warnings"]] == [bad_hash]
    assert after["warnings"][0]["retracted_at"] == claimed


def test_a_writer_cannot_retract_someone_elses_source(live: Live) -> None:
    subject, sid, _, publisher, citer, _ = _scenario(live)
    stranger = Agent()
    for agent, key in ((stranger, live.other_writer), (citer, live.writer)):
        refused = live.retract(agent, key, sid)
        assert refused.status == 403, refused
        assert refused.error["code"] == "forbidden"
        assert "publisher" in refused.error["message"]
    # The same refusal inside a batch, and nothing was written either way.
    record = stranger.record("retraction", source_id=sid, reason="hostile")
    batch = live.ok("POST", "/v1/assert/batch", [record], key=live.other_writer)
    assert batch["results"][0]["status"] == "rejected"
    assert batch["results"][0]["error"]["code"] == "forbidden"
    assert live.ok("GET", f"/v1/sources/{sid}")["retracted"] is False
    assert "warnings" not in live.lens(subject, "recency")

    # An admin key may retract any registered source, whoever signs.
    assert live.retract(stranger, ROOT, sid, "withdrawn by the operator").status == 201
    assert live.ok("GET", f"/v1/sources/{sid}")["retractions"][0]["retracted_by"] == stranger.id
    # A retraction of a source nobody registered is a 404 naming source_id.
    unknown = live.retract(publisher, ROOT, "cd" * 32)
    assert unknown.status == 404 and unknown.error["details"][0]["field"] == "source_id"


def test_forged_publisher_and_takeover_are_refused(live: Live) -> None:
    victim, forger = Agent(), Agent()
    ident = f"https://example.org/{unique('report')}"
    forged = live.register(forger, live.other_writer, identifier=ident, publisher_key=victim.id)
    assert forged.status == 403, forged
    assert forged.error["details"][0]["field"] == "publisher_key"
    missing = live.call("GET", f"/v1/sources/{source_id(ident)}")
    assert missing.status == 404  # nothing written

    first = live.register(victim, live.writer, identifier=ident, publisher_key=victim.id)
    assert first.status == 201
    takeover = live.register(
        forger, live.other_writer, identifier=ident, title="mine now", publisher_key=forger.id
    )
    assert takeover.status == 403 and takeover.error["details"][0]["field"] == "identifier"
    shown = live.ok("GET", f"/v1/sources/{source_id(ident)}")
    assert shown["source"]["publisher_key"] == victim.id and len(shown["history"]) == 1
    # The publisher itself may update its registration; an admin may name any publisher.
    update = live.register(
        victim, live.writer, identifier=ident, title="v2", publisher_key=victim.id
    )
    assert update.status == 201
    assert live.ok("GET", f"/v1/sources/{source_id(ident)}")["source"]["title"] == "v2"
    other = f"https://example.org/{unique('feed')}"
    assert live.register(forger, ROOT, identifier=other, publisher_key=victim.id).status == 201


def test_retraction_replay_is_idempotent_and_bad_input_names_the_field(live: Live) -> None:
    _, sid, _, publisher, _, _ = _scenario(live)
    record = publisher.record("retraction", source_id=sid, reason="retracted")
    first = live.ok("POST", "/v1/retractions", record, key=live.writer, expect=201)
    again = live.ok("POST", "/v1/retractions", record, key=live.writer)
    assert again["status"] == "exists" and again["hash"] == first["hash"]
    assert len(live.ok("GET", f"/v1/sources/{sid}")["retractions"]) == 1

    no_reason = {k: v for k, v in record.items() if k != "reason"}
    resp = live.call("POST", "/v1/retractions", no_reason, key=live.writer)
    assert resp.status == 400 and resp.error["details"][0]["field"] == "reason"
    bad_key = publisher.record("source", identifier="doi:10.1/x")
    bad_key["publisher_key"] = "zz"
    resp = live.call("POST", "/v1/sources", bad_key, key=live.writer)
    assert resp.status == 400 and resp.error["details"][0]["field"] == "publisher_key"
    reader = live.new_key("reader")
    resp = live.register(publisher, reader, identifier="doi:10.1/y")
    assert resp.status == 403


def test_retractions_are_verified_and_survive_reindex_and_restart(
    live: Live, server_factory: ServerFactory
) -> None:
    subject, sid, bad_hash, publisher, _, _ = _scenario(live)
    assert live.retract(publisher, live.writer, sid).status == 201
    report = live.ok("POST", "/v1/admin/verify")
    checks = {c["check"]: c for c in report["checks"]}
    assert report["ok"] is True
    assert checks["count_sources"]["ok"] and checks["count_retractions"]["ok"]
    assert checks["count_retractions"]["detail"].startswith("1 retraction frames")
    live.server.proc.stop()
    # The projections are rebuilt from the journal alone (stemedb reindex).
    env = {k: v for k, v in os.environ.items() if not k.startswith("STEMEDB_")}
    argv = [sys.executable, "-m", "stemedb.cli.main", "reindex", "--db", str(live.server.db_path)]
    reindex = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)
    assert reindex.returncode == 0, reindex.stderr
    again = Live.__new__(Live)
    again.server = server_factory(ENV, base=live.server.base)
    again.api = again.server.api
    result = again.lens(subject, "recency")
    assert [w["hash"] for w in result["warnings"]] == [bad_hash]


def test_a_claim_citing_the_content_hash_links_and_is_flagged(live: Live) -> None:
    publisher, citer = Agent(), Agent()
    url = f"https://example.org/{unique('label')}.pdf"
    content = "ef" * 32
    resp = live.register(
        publisher, live.writer, identifier=url, content_hash=content, publisher_key=publisher.id
    )
    assert resp.status == 201, resp
    subject = f"drugs/{unique('y')}"
    claim = citer.assertion(subject, "max_dose_mg", 2, source_hash=content)
    claim_hash = live.ok("POST", "/v1/assert", claim, key=live.writer, expect=201)["hash"]
    sid = source_id(url)
    assert [c["hash"] for c in live.ok("GET", f"/v1/sources/{sid}")["claims"]] == [claim_hash]
    assert "warnings" not in live.lens(subject, "authority")
    assert live.retract(publisher, live.writer, sid).status == 201
    flagged = live.lens(subject, "authority")
    assert [w["hash"] for w in flagged["warnings"]] == [claim_hash]
    assert flagged["warnings"][0]["identifier"] == url
    assert live.lens(subject, "authority", exclude_retracted=True)["winner"] is None
