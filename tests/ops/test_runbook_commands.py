"""Issue #6 §7: the commands the runbook shows work against this product.

Every `curl`, `sqlite3`, `stemedb`, `ss`, `df` and `ls` line of
docs/operations/runbooks/server-wont-start.md is run, as written (only the
port is changed to the test's), against a live server laid out with the
runbook's default paths (data/db, data/wal, backups). Then the server is
stopped and §3's restore procedure is run line by line (mv, rm, stemedb
restore, stemedb verify); the server starts again on the restored file and the
Validation commands run once more. The queries of docs/forensics.md run in the
stock sqlite3 shell against good and tampered copies.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

from ops_support import append_db, make_db, signed_assertions
from serverkit import StartServer, http_json

ROOT = Path(__file__).resolve().parents[2]
RUNBOOK = ROOT / "docs" / "operations" / "runbooks" / "server-wont-start.md"
FORENSICS = ROOT / "docs" / "forensics.md"
STORAGE_CHAIN_QUERY = """SELECT j.seq FROM journal j JOIN journal p ON p.seq = j.seq - 1
WHERE j.hash <> sha3(j.body, 256)
   OR j.chain <> sha3(p.chain || j.hash || j.written_ms, 256);"""
LIVE_TOOLS = {"curl", "sqlite3", "stemedb", "ss", "df", "ls"}
STOPPED = re.compile(r"\bstemedb (restore|reindex|migrate)\b")
_FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)


def blocks(markdown: Path, languages: tuple[str, ...] = ("sh", "")) -> list[list[str]]:
    """Fenced code blocks as lists of commands (continuations joined, comments dropped)."""
    out = []
    for lang, body in _FENCE.findall(markdown.read_text()):
        if lang not in languages:
            continue
        commands, pending = [], ""
        for raw in body.splitlines():
            line = raw.strip()
            if pending:
                line = pending + " " + line
                pending = ""
            if line.endswith("\\"):
                pending = line[:-1].rstrip()
                continue
            if line and not line.startswith("#"):
                commands.append(line)
        out.append(commands)
    return out


def first_word(command: str) -> str:
    return command.split()[0]


def shell(command: str, cwd: Path, port: int) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STEMEDB_")}
    env.update(
        PATH=f"{Path(sys.executable).parent}:{env.get('PATH', '/usr/bin:/bin')}",
        STEMEDB_BIND_ADDR=f"127.0.0.1:{port}",
        STEMEDB_DB_DIR="data/db",
        STEMEDB_WAL_DIR="data/wal",
        STEMEDB_BACKUP_DIR="backups",
    )
    return subprocess.run(
        ["bash", "-o", "pipefail", "-c", command.replace("18180", str(port))],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_runbook_lists_the_ten_startup_steps_the_server_logs(
    tmp_path: Path, run_server_process: StartServer
) -> None:
    documented = re.findall(r"INFO stemedb.server \[(\d+)/10\] ([a-zA-Z ]+): ", RUNBOOK.read_text())
    steps = list(dict.fromkeys(documented))
    assert [int(n) for n, _ in steps] == list(range(1, 11))
    server = run_server_process()
    logged = re.findall(r"\[(\d+)/10\] ([a-zA-Z ]+): ", server.output)
    assert logged == steps
    for section in ("§1", "§2", "§3", "§4", "§5"):
        assert f"## {section} " in RUNBOOK.read_text()


def test_runbook_commands_against_a_live_server(
    tmp_path: Path, run_server_process: StartServer
) -> None:
    port = _free_port()
    env = {
        "STEMEDB_BIND_ADDR": f"127.0.0.1:{port}",
        "STEMEDB_DB_DIR": "data/db",  # relative, like the runbook (the server's cwd is tmp_path)
        "STEMEDB_WAL_DIR": "data/wal",
        "STEMEDB_BACKUP_DIR": "backups",
    }
    server = run_server_process(env)
    url = server.url
    status, _, body = http_json("POST", url + "/v1/assert/batch", signed_assertions(40, "rb"))
    assert status == 200, body
    assert shell("stemedb backup", tmp_path, port).returncode == 0
    status, _, body = http_json("POST", url + "/v1/assert/batch", signed_assertions(25, "rb2"))
    assert status == 200, body
    assert shell("stemedb archive", tmp_path, port).returncode == 0
    _, _, before = http_json("GET", url + "/v1/health")

    every = [c for block in blocks(RUNBOOK) for c in block]
    live = [c for c in every if first_word(c) in LIVE_TOOLS and not STOPPED.search(c)]
    assert len(live) >= 12, live
    outputs = {}
    for command in live:
        result = shell(command, tmp_path, port)
        assert result.returncode == 0, f"{command}\n{result.stdout}\n{result.stderr}"
        outputs[command] = result.stdout
    app_id = [out for cmd, out in outputs.items() if "PRAGMA application_id" in cmd]
    assert app_id and all(out.strip() == "1400139076" for out in app_id)
    health = [out for cmd, out in outputs.items() if cmd.startswith("curl") and "/v1/health" in cmd]
    assert health and json.loads(health[0])["status"] == "healthy"
    query = [out for cmd, out in outputs.items() if "/v1/query" in cmd]
    assert query and json.loads(query[0])["lens"] == "recency"
    metrics = [out for cmd, out in outputs.items() if "/metrics" in cmd]
    assert metrics and "stemedb_journal_seq " in metrics[0]
    doctor = [out for cmd, out in outputs.items() if cmd == "stemedb doctor"]
    assert doctor and "held by a StemeDB server" in doctor[0] and "0 failed" in doctor[0]

    # §3, Resolution B, with the server stopped: every non-sudo line, in order.
    assert server.stop() == 0
    (procedure,) = [b for b in blocks(RUNBOOK) if any("stemedb restore" in c for c in b)]
    steps = [c for c in procedure if first_word(c) != "sudo"]
    assert [first_word(c) for c in steps] == ["mv", "rm", "stemedb", "stemedb"]
    for command in steps:
        result = shell(command, tmp_path, port)
        assert result.returncode == 0, f"{command}\n{result.stdout}\n{result.stderr}"
    assert list((tmp_path / "data" / "db").glob("stemedb.db.damaged-*"))

    # The service starts on the restored file at the same chain head; Validation again.
    again = run_server_process(env)
    _, _, after = http_json("GET", again.url + "/v1/health")
    assert (after["journal_seq"], after["chain_head"]) == (
        before["journal_seq"],
        before["chain_head"],
    )
    (validation,) = [
        b
        for b in blocks(RUNBOOK)
        if any("PRAGMA application_id" in c for c in b) and any("/v1/query" in c for c in b)
    ]
    for command in [c for c in validation if first_word(c) in LIVE_TOOLS]:
        result = shell(command, tmp_path, port)
        assert result.returncode == 0, f"{command}\n{result.stdout}\n{result.stderr}"


def _sqlite(db: Path, sql: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["sqlite3", str(db)],
        input=sql,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _drop_triggers_and(db: Path, sql: str) -> None:
    names = subprocess.run(
        ["sqlite3", str(db), "SELECT name FROM sqlite_master WHERE type='trigger'"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    subprocess.run(
        ["sqlite3", str(db), "".join(f"DROP TRIGGER {n};" for n in names) + sql], check=True
    )


def test_forensics_queries_in_the_sqlite3_shell(tmp_path: Path) -> None:
    text = FORENSICS.read_text()
    assert STORAGE_CHAIN_QUERY in text, (
        "the exact chain query of storage.md must be in forensics.md"
    )
    db = make_db(tmp_path / "data" / "db", (12,))
    port = _free_port()
    assert shell("stemedb backup && stemedb archive", tmp_path, port).returncode == 0
    # The shell blocks (copies, head comparison loop, jq over segments) run as written.
    for script in [body for lang, body in _FENCE.findall(text) if lang == "sh"]:
        result = shell(script, tmp_path, port)
        assert result.returncode == 0, f"{script}\n{result.stderr}"
    copy = tmp_path / "forensics" / "copy.db"
    assert copy.exists()
    other = tmp_path / "forensics" / "other.db"
    shutil.copyfile(copy, other)
    append_db(other, 3, "extra")  # a longer history: one copy is a prefix of the other

    sql_blocks = [body for lang, body in _FENCE.findall(text) if lang == "sql"]
    assert len(sql_blocks) >= 10
    for sql in sql_blocks:
        result = _sqlite(copy, sql, tmp_path)
        assert result.returncode == 0 and not result.stderr, f"{sql}\n{result.stderr}"
    assert _sqlite(copy, STORAGE_CHAIN_QUERY, tmp_path).stdout == ""
    variant = next(s for s in sql_blocks if "zeroblob(32)" in s)
    gaps = next(s for s in sql_blocks if "LEFT JOIN" in s and "zeroblob" not in s)
    diverge = next(s for s in sql_blocks if "first_difference" in s)
    assert _sqlite(copy, variant, tmp_path).stdout == ""
    assert _sqlite(copy, diverge, tmp_path).stdout.strip() == ""  # prefix: no difference
    assert _sqlite(copy, "PRAGMA application_id;", tmp_path).stdout.strip() == "1400139076"

    # Tampering shows up: an edited body, then a forged frame 0.
    _drop_triggers_and(
        other, "UPDATE journal SET body = replace(body, 'b0-3', 'b0-X') WHERE seq = 5;"
    )
    assert _sqlite(other, STORAGE_CHAIN_QUERY, tmp_path).stdout.split() == ["5"]
    assert _sqlite(other, variant, tmp_path).stdout.splitlines() == [
        "5|hash does not match its body"
    ]
    # Frame 0 has no predecessor in the join: only the zeroblob(32) variant sees it.
    _drop_triggers_and(copy, "UPDATE journal SET written_ms = written_ms + 1 WHERE seq = 0;")
    assert _sqlite(copy, STORAGE_CHAIN_QUERY, tmp_path).stdout == ""
    assert _sqlite(copy, variant, tmp_path).stdout.splitlines() == ["0|chain link is broken"]
    _drop_triggers_and(copy, "DELETE FROM journal WHERE seq = 7;")
    assert _sqlite(copy, gaps, tmp_path).stdout.split() == ["8"]
    assert _sqlite(copy, variant, tmp_path).stdout.splitlines() == [
        "0|chain link is broken",
        "8|gap: the frame before it is missing",
    ]
    assert db.exists()
