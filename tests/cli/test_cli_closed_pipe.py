"""A CLI whose reader goes away stops quietly, like any Unix filter."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def test_a_closed_pipe_ends_the_command_without_a_traceback(tmp_path: Path) -> None:
    stemedb = Path(sys.executable).with_name("stemedb")
    env = {**os.environ, "STEMEDB_DB_DIR": str(tmp_path / "db")}
    # `| true` closes the pipe before `config` writes its JSON.
    result = subprocess.run(
        ["bash", "-c", f"set -o pipefail; '{stemedb}' config | true"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert "Traceback" not in result.stderr
    assert "BrokenPipeError" not in result.stderr
    assert result.returncode == 0, result.stderr
