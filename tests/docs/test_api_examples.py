"""docs/api.md, executed: every `curl` and `stemedb` line of its sh blocks runs as
written (bash, `$U` pointing at a real server with the demo loaded) and answers
2xx. The files the examples post (`signed.json`, `signed-vote.json`,
`records.ndjson`) are made the way the page says: `stemedb sign`.

Lines with a `…` placeholder cannot run as written; there must be none.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from stemedb import demo_data

API_MD = Path(__file__).resolve().parents[2] / "docs" / "api.md"
BLOCK = re.compile(r"```(\w*)\n(.*?)```", re.S)
STATUS = "\nHTTP_STATUS=%{http_code}"


def sh_lines() -> list[str]:
    lines = []
    for lang, body in BLOCK.findall(API_MD.read_text("utf-8")):
        if lang != "sh":
            continue
        for line in body.replace("\\\n", " ").splitlines():
            if line.startswith(("curl ", "stemedb ")):
                lines.append(line)
    return lines


def test_api_md_has_no_placeholders_in_its_commands() -> None:
    assert not [line for line in sh_lines() if "…" in line]


def test_every_api_md_command_runs_as_written(
    run_server_process: Callable[..., Any], tmp_path: Path
) -> None:
    proc = run_server_process()
    bin_dir = tmp_path / "bin"  # `stemedb` on PATH, as installed
    bin_dir.mkdir()
    (bin_dir / "stemedb").write_text(f'#!/bin/sh\nexec {sys.executable} -m stemedb.cli.main "$@"\n')
    (bin_dir / "stemedb").chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith("STEMEDB_")}
    data = demo_data.build()
    env.update(
        HOME=str(tmp_path),
        PATH=f"{bin_dir}:{env.get('PATH', '')}",
        STEMEDB_URL=proc.url,
        U=proc.url,
        AGENT=next(iter(data.agents.values())) if isinstance(data.agents, dict) else "",
        ADMIN="unused-with-auth-off",
    )

    def sh(command: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["bash", "-c", command], env=env, cwd=tmp_path, capture_output=True, text=True
        )

    assert sh("stemedb keygen && stemedb demo").returncode == 0
    # The unsigned records the page's `stemedb sign` lines sign (docs/cli.md, sign).
    claim = {"subject": "docs/api", "predicate": "p", "object": "v", "confidence": 0.5}
    (tmp_path / "claim.json").write_text(json.dumps(claim))
    vote = {"assertion_hash": data.ids["A"], "weight": 1}
    (tmp_path / "vote.json").write_text(json.dumps(vote))
    batch = [json.dumps(claim | {"object": f"v{i}"}) for i in range(3)]
    signed = [sh(f"echo '{line}' | stemedb sign - --format ndjson").stdout for line in batch]
    (tmp_path / "records.ndjson").write_text("".join(signed))

    failures = []
    ran = 0
    for line in sh_lines():
        if line.startswith("stemedb "):
            result = sh(line)
            ok = result.returncode == 0
        else:  # curl: report the status on stderr, wherever stdout goes
            command = re.sub(r"\s+#\s.*$", "", line)  # a trailing comment would eat -w
            result = sh(f"{command} -w '%{{stderr}}{STATUS}'")
            status = re.search(r"HTTP_STATUS=(\d+)", result.stderr)
            ok = bool(status) and 200 <= int(status.group(1)) < 300  # type: ignore[union-attr]
            # a 200 batch can still hold rejected records: no error object anywhere
            ok = ok and not re.search(r'"error"\s*:', result.stdout)
        ran += 1
        if not ok:
            failures.append(f"{line}\n  -> {result.stdout[-300:]}{result.stderr[-300:]}")
    assert not failures, "\n".join(failures)
    assert ran >= 25
