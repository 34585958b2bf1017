"""docs/quickstart.md, executed: every `stemedb` and `curl` command in its `sh` blocks
and its Python block run in order against a fresh server, as a newcomer would."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

QUICKSTART = Path(__file__).resolve().parents[2] / "docs" / "quickstart.md"
DEFAULT_URL = "http://127.0.0.1:18180"
BLOCK = re.compile(r"```(\w*)\n(.*?)```", re.S)


def blocks(language: str) -> list[str]:
    return [body for lang, body in BLOCK.findall(QUICKSTART.read_text()) if lang == language]


def commands() -> list[str]:
    """Shell commands of the sh blocks, continuation lines joined."""
    found = []
    for body in blocks("sh"):
        for command in body.replace("\\\n", " ").splitlines():
            if command.startswith((".venv/bin/stemedb ", "curl ")):
                found.append(command)
    return found


def test_the_quickstart_runs_as_written(
    run_server_process: Callable[..., Any], tmp_path: Path
) -> None:
    proc = run_server_process()
    env = {k: v for k, v in os.environ.items() if not k.startswith("STEMEDB_")}
    env.update(HOME=str(tmp_path), STEMEDB_URL=proc.url)
    outputs: dict[str, str] = {}
    ran = 0
    for command in commands():
        argv = shlex.split(command.replace(DEFAULT_URL, proc.url))
        if argv[0] == "curl":  # curl is a CI package (.ci/run): missing is a failure
            assert shutil.which("curl"), "curl is needed to run the quickstart as written"
        else:
            argv = [sys.executable, "-m", "stemedb.cli.main", *argv[1:]]
        result = subprocess.run(argv, env=env, cwd=tmp_path, capture_output=True, text=True)
        assert result.returncode == 0, f"{command}\n{result.stderr}"
        outputs[command] = result.stdout
        ran += 1
    assert ran >= 10
    skeptics = [out for command, out in outputs.items() if " skeptic " in command]
    assert skeptics and all("Contested" in out for out in skeptics)
    assert any(
        "Contested (conflict 1.000, 2 candidates, 2 distinct values)" in out for out in skeptics
    )

    (python,) = blocks("python")
    result = subprocess.run(
        [sys.executable, "-c", python.replace(DEFAULT_URL, proc.url)],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "Contested"
