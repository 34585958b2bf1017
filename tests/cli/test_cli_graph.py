"""The API's other verbs on the command line (sign, vote, epoch, supersede, alias, trace,
audit, feed --follow), what `assert` says about the tier it wrote, the skeptic's labels
and the output layer's promises (full hashes in ndjson, readable times in tables),
against one real server for the module."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from stemedb.cli.main import main

HEX64 = re.compile(r"\b[0-9a-f]{64}\b")
ISO = re.compile(r"\b\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\b")


@pytest.fixture(scope="module")
def key(server: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("key") / "key"
    assert main(["keygen", "--out", str(path)]) == 0
    return path


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def ok_json(capsys: pytest.CaptureFixture[str], *argv: str) -> Any:
    code, out, err = run(capsys, *argv)
    assert code == 0, err
    return json.loads(out)


def write_claim(
    capsys: pytest.CaptureFixture[str], server: Any, key: Path, subject: str, *extra: str
) -> dict[str, Any]:
    args = ["assert", subject, "dose_mg", "5", "--confidence", "0.8"]
    return ok_json(capsys, *args, *extra, "--url", server.url, "--key", str(key))  # type: ignore[no-any-return]


def test_assert_says_which_tier_was_written_and_whether_it_was_inferred(
    capsys: pytest.CaptureFixture[str], server: Any, key: Path
) -> None:
    inferred = write_claim(capsys, server, key, "cli/tier-a", "--source", "pubmed://1")
    assert inferred["status"] == "created"
    assert inferred["source_class"] == "Clinical" and inferred["source_class_inferred"] is True
    declared = write_claim(capsys, server, key, "cli/tier-b", "--source-class", "Expert")
    assert declared["source_class"] == "Expert" and declared["source_class_inferred"] is False


def test_ndjson_keeps_full_hashes_and_tables_show_readable_times(
    capsys: pytest.CaptureFixture[str], server: Any, key: Path
) -> None:
    written = write_claim(capsys, server, key, "cli/formats")
    code, out, err = run(capsys, "query", "cli/formats", "--format", "ndjson", "--url", server.url)
    assert code == 0, err
    (row,) = [json.loads(line) for line in out.splitlines()]
    assert row["hash"] == written["hash"] and HEX64.fullmatch(row["hash"])
    code, out, _ = run(capsys, "query", "cli/formats", "--format", "table", "--url", server.url)
    assert code == 0 and written["hash"][:12] in out and written["hash"] not in out
    assert ISO.search(out), out


def test_skeptic_labels_distinct_values_and_says_when_there_are_no_claims(
    capsys: pytest.CaptureFixture[str], server: Any, key: Path, tmp_path: Path
) -> None:
    # three signers, two values: three candidates, two distinct values ("claims")
    other, third = tmp_path / "other.key", tmp_path / "third.key"
    assert main(["keygen", "--out", str(other)]) == main(["keygen", "--out", str(third)]) == 0
    for value, signer, confidence in (("5", key, "0.8"), ("5", other, "0.7"), ("7", third, "0.8")):
        args = ["assert", "cli/skeptic", "dose_mg", value, "--confidence", confidence]
        assert run(capsys, *args, "--url", server.url, "--key", str(signer))[0] == 0
    code, out, err = run(
        capsys, "skeptic", "cli/skeptic", "dose_mg", "--format", "table", "--url", server.url
    )
    assert code == 0, err
    assert "3 candidates, 2 distinct values)" in out.splitlines()[0]
    code, out, _ = run(
        capsys, "skeptic", "cli/nobody", "dose_mg", "--format", "table", "--url", server.url
    )
    assert (
        code == 0
        and out.splitlines()[0] == "cli/nobody dose_mg: no claims (nothing to be skeptical about)"
    )


def test_sign_writes_a_file_curl_can_post_as_written(
    capsys: pytest.CaptureFixture[str], server: Any, key: Path, tmp_path: Path
) -> None:
    record = tmp_path / "claim.json"
    record.write_text(
        json.dumps({"subject": "cli/signed", "predicate": "p", "object": "v", "confidence": 0.5})
    )
    signed = tmp_path / "signed.json"
    code, _, err = run(capsys, "sign", str(record), "-o", str(signed), "--key", str(key))
    assert code == 0, err
    body = json.loads(signed.read_text())
    assert body["signatures"][0]["agent_id"] and body["timestamp"]
    # `curl -s -X POST $U/v1/assert -H 'Content-Type: application/json' -d @signed.json`
    request = urllib.request.Request(
        server.url + "/v1/assert",
        data=signed.read_bytes(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 201
        assert json.loads(response.read())["status"] == "created"
    # A bad record is a usage error before anything is signed.
    record.write_text("[1, 2]")
    code, _, err = run(capsys, "sign", str(record), "--key", str(key))
    assert code == 2 and "one JSON object" in err


def test_vote_supersede_trace_alias_epoch_audit_and_feed(
    capsys: pytest.CaptureFixture[str], server: Any, key: Path
) -> None:
    remote = ("--url", server.url, "--key", str(key))
    old = write_claim(capsys, server, key, "cli/graph")["hash"]
    new = write_claim(capsys, server, key, "cli/graph", "--parent", old)["hash"]
    assert ok_json(capsys, "vote", new, "1", *remote)["status"] == "created"
    assert run(capsys, "vote", new, "2", *remote)[0] == 2  # weight outside -1..1
    superseded = ok_json(
        capsys, "supersede", old, "--reason", "retracted", "--replacement", new, *remote
    )
    assert superseded["status"] == "created"
    trace = json.dumps(ok_json(capsys, "trace", old, "--url", server.url))
    assert new in trace and superseded["hash"] in trace  # its child and its supersession

    assert ok_json(capsys, "alias", "add", "cli-nick", "cli/graph", *remote)["status"] == "created"
    shown = json.dumps(ok_json(capsys, "alias", "show", "cli-nick", "--url", server.url))
    assert "cli/graph" in shown

    epoch = ok_json(capsys, "epoch", "create", "cli-epoch", "--description", "d", *remote)
    listed = ok_json(capsys, "epoch", "list", "--url", server.url)
    assert epoch["hash"] in json.dumps(listed)
    assert ok_json(capsys, "epoch", "show", epoch["hash"], "--url", server.url)

    code, _, err = run(capsys, "query", "cli/graph", "--lens", "recency", *remote)
    assert code == 0, err
    audit = ok_json(capsys, "audit", "--limit", "5", "--url", server.url)
    assert audit["queries"], audit
    one = audit["queries"][0]
    assert ok_json(capsys, "audit", one["query_id"], "--url", server.url)

    code, out, err = run(
        capsys, "feed", "--format", "ndjson", "--limit", "1000", "--url", server.url
    )
    assert code == 0, err
    hashes = {json.loads(line)["hash"] for line in out.splitlines()}
    assert {old, new, superseded["hash"], epoch["hash"]} <= hashes


def test_feed_follow_streams_frames_as_they_are_written(
    capsys: pytest.CaptureFixture[str], server: Any, key: Path
) -> None:
    head = ok_json(capsys, "feed", "--limit", "1000", "--url", server.url)["next_after"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("STEMEDB_")}
    follow = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "stemedb.cli.main",
            "feed",
            "--follow",
            "--after",
            str(head),
            "--wait",
            "5",
            "--url",
            server.url,
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    watchdog = threading.Timer(60, follow.kill)  # a hang fails the test, never blocks it
    watchdog.start()
    try:
        written = write_claim(capsys, server, key, "cli/follow")
        assert follow.stdout is not None
        line = follow.stdout.readline()  # blocks until the frame arrives (or the process dies)
        frame = json.loads(line)
        assert frame["hash"] == written["hash"] and frame["seq"] > head
    finally:
        watchdog.cancel()
        follow.kill()
        follow.wait(timeout=30)
