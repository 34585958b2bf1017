"""`stemedb mcp` over stdio, driven by the MCP SDK's client against a real server.

Issue 17 part 1: every tool listed with a schema and called; a signed write
read back through two lenses; writes refused without --key; bad arguments
and server errors come back as tool errors carrying the server's message,
and the MCP server keeps serving afterwards; a server that is down is a
tool error too, not a crash.
"""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

import pytest
from conftest import ServerFactory
from e2ekit import Agent, RunningServer, unique
from mcp import Client as McpClient
from mcp import MCPError
from mcpkit import TOOLS, call, run, stdio_params

from stemedb.client import Client
from stemedb.crypto import generate_signing_key, public_key_hex, write_key_file
from stemedb.records.source import source_id


@pytest.fixture(scope="module")
def server(module_server_factory: ServerFactory) -> RunningServer:
    return module_server_factory()


@pytest.fixture(scope="module")
def key(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    seed = generate_signing_key()
    path = write_key_file(tmp_path_factory.mktemp("mcpkey") / "key", seed)
    return path, public_key_hex(seed)


def test_lists_every_tool_with_a_schema_and_a_description(
    server: RunningServer, key: tuple[Path, str]
) -> None:
    async def session(client: McpClient) -> Any:
        return (await client.list_tools()).tools, await client.list_resource_templates()

    tools, templates = run(session, stdio_params(server.url, key[0]))
    by_name = {tool.name: tool for tool in tools}
    assert set(by_name) == TOOLS
    for tool in tools:
        assert tool.description and len(tool.description) > 60, tool.name
        assert tool.input_schema["type"] == "object" and tool.input_schema["properties"]
    claim = by_name["assert_claim"].input_schema
    assert set(claim["required"]) == {"subject", "predicate", "object", "confidence"}
    assert claim["properties"]["confidence"]["maximum"] == 1
    lens = by_name["query"].input_schema["properties"]["lens"]
    assert "consensus" in json.dumps(lens) and "authority" in json.dumps(lens)
    assert by_name["query"].annotations.read_only_hint is True
    assert by_name["vote"].annotations.read_only_hint is False
    uris = {t.uri_template for t in templates.resource_templates}
    assert uris == {"stemedb://concepts/{+prefix}", "stemedb://records/{hash}"}


def test_write_then_read_back_through_two_lenses_and_every_tool(
    server: RunningServer, key: tuple[Path, str]
) -> None:
    subject = f"drugs/{unique()}"
    others = [Agent(), Agent()]
    for n, agent in enumerate(others):  # two agents say 20 mg with modest confidence
        server.api.write("/v1/assert", agent.assertion(subject, "dose", "20 mg", 0.6 + n / 100))

    async def session(client: McpClient) -> dict[str, Any]:
        out: dict[str, Any] = {}
        claim = {
            "subject": subject,
            "predicate": "dose",
            "object": "10 mg",
            "confidence": 0.95,
            "source": "https://example.org/label",
        }
        out["write"] = await call(client, "assert_claim", claim)
        for lens in ("confidence", "consensus"):
            query = {"subject": subject, "predicate": "dose", "lens": lens}
            out[lens] = await call(client, "query", query)
        pair = {"subject": subject, "predicate": "dose"}
        out["listed"] = await call(client, "query", {"subject": subject})
        out["skeptic"] = await call(client, "skeptic", pair)
        out["layered"] = await call(client, "layered", pair)
        out["explain"] = await call(client, "explain", {**pair, "lens": "confidence"})
        written = out["write"][1]["record_id"]
        out["trace"] = await call(client, "trace", {"hash": written})
        out["vote"] = await call(client, "vote", {"assertion_hash": written, "weight": 1})
        prefix = subject.split("/")[0]
        out["concepts"] = await call(
            client, "search_concepts", {"prefix": prefix, "contains": subject.split("/")[1][:6]}
        )
        out["agent"] = await call(client, "agent", {"agent_id": key[1]})
        out["agents"] = await call(client, "agent", {})
        record = await client.read_resource(f"stemedb://records/{written}")
        out["record"] = json.loads(record.contents[0].text)
        tree = await client.read_resource(f"stemedb://concepts/{prefix}")
        out["tree"] = json.loads(tree.contents[0].text)
        foreign = (await call(client, "query", {"subject": subject}))[1]["assertions"]
        theirs = next(a["hash"] for a in foreign if a["agent_id"] != key[1])
        out["supersede_foreign"] = await call(
            client, "supersede", {"target_hash": theirs, "reason": "I disagree"}
        )
        out["supersede_own"] = await call(
            client, "supersede", {"target_hash": written, "reason": "label misread"}
        )
        out["after"] = await call(
            client, "query", {"subject": subject, "predicate": "dose", "lens": "confidence"}
        )
        return out

    out = run(session, stdio_params(server.url, key[0]))
    error, written = out["write"]
    assert not error and written["status"] == "created" and len(written["record_id"]) == 64
    # The same claims, two lenses, two winners: the write is read back through both.
    confidence_winner = out["confidence"][1]["results"][0]["winner"]
    assert confidence_winner["hash"] == written["record_id"]
    assert confidence_winner["agent_id"] == key[1]
    assert out["consensus"][1]["results"][0]["winner"]["object"]["value"] == "20 mg"
    assert out["listed"][1]["count"] == 3
    assert out["skeptic"][1]["status"] == "Contested"
    assert out["layered"][1]["subject"] == subject
    text = out["explain"][1]["text"]
    assert "'10 mg'" in text and "'20 mg'" in text and written["record_id"] in text
    assert out["trace"][1]["assertion"]["hash"] == written["record_id"]
    assert out["vote"][1]["status"] == "created"
    children = out["concepts"][1]["children"]
    assert [c["path"] for c in children] == [subject]
    profile = out["agent"][1]
    assert profile["agent_id"] == key[1] and profile["counts"]["claims"] == 1
    assert profile["counts"]["votes"] == 1
    assert key[1] in {a["agent_id"] for a in out["agents"][1]["agents"]}
    assert out["record"]["hash"] == written["record_id"]
    assert subject in {c["path"] for c in out["tree"]["children"]}
    # A 403 from the server is a tool error carrying the server's reason.
    error, message = out["supersede_foreign"]
    assert error and "403" in message and "StemeDB server" in message
    assert out["supersede_own"][1]["status"] == "created"
    assert out["after"][1]["results"][0]["winner"]["object"]["value"] == "20 mg"


def test_bad_arguments_and_server_errors_are_tool_errors(
    server: RunningServer, key: tuple[Path, str]
) -> None:
    async def session(client: McpClient) -> list[tuple[bool, Any]]:
        try:
            await client.read_resource(f"stemedb://records/{'cd' * 32}")
            missing: tuple[bool, Any] = (False, None)
        except MCPError as exc:  # a resource error is a protocol error, not a crash
            missing = (True, exc.error.message)
        return [
            missing,
            await call(client, "query", {"subject": "a/b", "lens": "bogus"}),
            await call(
                client,
                "assert_claim",
                {"subject": "a/b", "predicate": "p", "object": "x", "confidence": 2},
            ),
            await call(client, "vote", {"assertion_hash": "ab" * 32, "weight": 0.5}),
            await call(client, "skeptic", {"subject": "", "predicate": "p"}),
            await call(client, "skeptic", {"subject": f"a/{unique()}", "predicate": "p"}),
        ]

    missing, lens, confidence, vote, empty, fine = run(session, stdio_params(server.url, key[0]))
    assert missing[0] and "StemeDB server: 404" in missing[1] and "cd" * 32 in missing[1]
    assert lens[0] and "lens" in lens[1] and "consensus" in lens[1]
    assert confidence[0] and "confidence" in confidence[1]
    assert vote[0] and "StemeDB server: 404" in vote[1] and "ab" * 32 in vote[1]
    assert empty[0] and "StemeDB server: 400" in empty[1] and "subject" in empty[1]
    assert fine == (False, fine[1]) and fine[1]["status"] == "NoClaims"  # still serving


def test_writes_without_a_key_are_refused_and_nothing_is_written(server: RunningServer) -> None:
    subject = f"nokey/{unique()}"

    async def session(client: McpClient) -> list[tuple[bool, Any]]:
        claim = {"subject": subject, "predicate": "p", "object": "x", "confidence": 0.5}
        return [
            await call(client, "assert_claim", claim),
            await call(client, "vote", {"assertion_hash": "ab" * 32, "weight": 1}),
            await call(client, "supersede", {"target_hash": "ab" * 32, "reason": "r"}),
            await call(client, "query", {"subject": subject}),
        ]

    *writes, listed = run(session, stdio_params(server.url))
    for error, message in writes:
        assert error and "--key" in message and "Nothing was written" in message
    assert listed == (False, listed[1]) and listed[1]["count"] == 0


def test_a_server_that_is_down_is_a_tool_error_not_a_crash(key: tuple[Path, str]) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    async def session(client: McpClient) -> Any:
        first = await call(client, "skeptic", {"subject": "a/b", "predicate": "p"})
        write = await call(
            client,
            "assert_claim",
            {"subject": "a/b", "predicate": "p", "object": "x", "confidence": 0.5},
        )
        tools = (await client.list_tools()).tools  # the MCP server is still up
        return first, write, len(tools)

    first, write, count = run(session, stdio_params(f"http://127.0.0.1:{port}", key[0]))
    assert first[0] and "connection refused" in first[1] and "stemedb serve" in first[1]
    assert write[0] and "connection" in write[1]
    assert count == len(TOOLS)


def test_check_constraints_reports_what_an_intended_action_violates(
    server: RunningServer, key: tuple[Path, str]
) -> None:
    context = f"code/{unique()}"

    async def session(client: McpClient) -> list[tuple[bool, Any]]:
        rule = {
            "subject": context,
            "predicate": "must_not_use",
            "object": "urllib",
            "confidence": 1.0,
            "source": "https://example.org/adr/17",
        }
        return [
            await call(client, "assert_claim", rule),
            await call(
                client,
                "check_constraints",
                {"context": f"{context}/http", "intended_action": {"uses": ["urllib"]}},
            ),
            await call(
                client,
                "check_constraints",
                {"context": f"{context}/http", "intended_action": {"uses": ["httpx"]}},
            ),
            await call(
                client,
                "check_constraints",
                {"context": context, "intended_action": {"uses": "urllib", "bogus": 1}},
            ),
        ]

    wrote, bad, fine, malformed = run(session, stdio_params(server.url, key[0]))
    assert wrote[1]["status"] == "created"
    assert bad[0] is False and bad[1]["ok"] is False
    assert "urllib" in json.dumps(bad[1]["violations"])
    assert fine[0] is False and fine[1]["ok"] is True
    assert malformed[0] and "intended_action" in malformed[1]


def test_a_retracted_source_is_flagged_and_can_be_left_out(
    server: RunningServer, key: tuple[Path, str]
) -> None:
    """Issue 17 part 2 through the MCP tools: warnings by default, exclude_retracted drops it."""
    publisher = Client(server.url, seed=generate_signing_key())
    identifier = f"doi:10.9999/{unique()}"
    publisher.register_source(identifier, title="Withdrawn", publisher_key=publisher.agent_id)
    subject = f"drugs/{unique()}"

    async def session(client: McpClient, *, retracted: bool) -> dict[str, Any]:
        claim = {"subject": subject, "predicate": "dose", "object": "5 g", "confidence": 0.9}
        out: dict[str, Any] = {}
        if not retracted:
            out["write"] = await call(client, "assert_claim", {**claim, "source": identifier})
            return out
        pair = {"subject": subject, "predicate": "dose"}
        out["flagged"] = await call(client, "query", {**pair, "lens": "recency"})
        out["excluded"] = await call(
            client, "query", {**pair, "lens": "recency", "exclude_retracted": True}
        )
        out["skeptic"] = await call(client, "skeptic", {**pair, "exclude_retracted": True})
        return out

    params = stdio_params(server.url, key[0])
    assert run(lambda c: session(c, retracted=False), params)["write"][1]["status"] == "created"
    publisher.retract_source(source_id(identifier), "withdrawn by the journal")
    out = run(lambda c: session(c, retracted=True), params)
    winner = out["flagged"][1]["results"][0]["winner"]
    assert any("was retracted" in w for w in winner["warnings"])
    excluded = out["excluded"][1]["results"]
    assert not excluded or excluded[0]["winner"] is None
    assert out["skeptic"][1]["status"] == "NoClaims"
