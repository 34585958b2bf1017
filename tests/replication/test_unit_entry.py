"""`python -m stemedb.replication`, what stemedb-litestream.service runs: it refuses a
set-up where stemedb-api would run a second Litestream, and otherwise becomes
Litestream replicating the database (the api server started with
STEMEDB_REPLICATION_PROCESS=external leaves it to the unit)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.e2ekit import ServerFactory, poll
from tests.replication.replkit import free_addr, journal, metric, restored_equals


def _env(extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STEMEDB_")}
    env.update(extra)
    return env


def test_refuses_child_mode_and_missing_url(tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "stemedb.replication"]
    base = {"STEMEDB_DB_DIR": str(tmp_path / "db")}
    out = subprocess.run(cmd, env=_env(base), capture_output=True, text=True, timeout=30)
    assert out.returncode == 2 and "STEMEDB_REPLICA_URL" in out.stderr
    assert out.stderr.strip().endswith("docs/operations/runbooks/replication.md")
    child = {**base, "STEMEDB_REPLICA_URL": f"file://{tmp_path / 'r'}"}
    out = subprocess.run(cmd, env=_env(child), capture_output=True, text=True, timeout=30)
    assert out.returncode == 2 and "STEMEDB_REPLICATION_PROCESS must be `external`" in out.stderr


def test_external_unit_replicates_the_servers_database(
    server_factory: ServerFactory, tmp_path: Path
) -> None:
    url = f"file://{tmp_path / 'storage'}"
    settings = {
        "STEMEDB_REPLICA_URL": url,
        "STEMEDB_REPLICATION_PROCESS": "external",
        "STEMEDB_LITESTREAM_ADDR": free_addr(),
    }
    server = server_factory(settings)
    assert "replication by an external Litestream" in server.proc.output
    assert metric(server.api, "stemedb_replication_up") == 0.0  # no unit yet
    unit = subprocess.Popen(
        [sys.executable, "-m", "stemedb.replication"],
        env=_env({**settings, "STEMEDB_DB_DIR": str(server.base / "db")}),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        poll(lambda: metric(server.api, "stemedb_replication_up") == 1.0, timeout=20)
        head = journal(server.db_path)[-1][0]
        poll(
            lambda: (metric(server.api, "stemedb_replication_replicated_seq") or 0) >= head,
            timeout=20,
        )
        # the probe confirms Litestream's local copy; the upload follows within its
        # sync interval: poll the storage itself
        poll(lambda: restored_equals(url, tmp_path / "restored.db", server.db_path), timeout=20)
    finally:
        unit.terminate()
        unit.wait(30)


def test_the_unit_runs_the_installed_entry_point() -> None:
    """The unit names a script of the venv (systemd-analyze verify checks it exists in
    the package tree; `python -m` would name a symlink out of the tree)."""
    from pathlib import Path

    unit = Path(__file__).resolve().parents[2] / "packaging/systemd/stemedb-litestream.service"
    assert "ExecStart=/opt/stemedb/venv/bin/stemedb-litestream\n" in unit.read_text()
    script = Path(sys.executable).with_name("stemedb-litestream")
    result = subprocess.run(
        [str(script)], capture_output=True, text=True, env={"PATH": "/usr/bin:/bin"}, check=False
    )
    assert result.returncode == 2 and "STEMEDB_REPLICA_URL" in result.stderr
