"""Every column of a journal frame is covered, and every checker names the damaged frame.

Issue 14 items 3 and 4, on copies of a real database with every record kind:

* the `kind` column is not hashed: relabelling a vote as `header` (or as
  another kind) is caught by the cross-check against the body, by `verify`,
  `verify --full`, doctor, start-up and the documented `sqlite3` query;
* a column of the wrong type (`written_ms` as text or a fraction, `hash` as hex
  text), a body that is valid JSON but not a record, a body that is not UTF-8
  (bit-flipped, or re-hashed and re-chained), a file cut inside its last page:
  each is named by seq, with a reason, exit 1 and the runbook — no traceback;
* `verify` is exactly as strict as the query: the same first seq, the same words;
* on a running server, reads of healthy frames keep working; the feed and the
  export answer a 503 `corrupt_frame` naming the seq only when their range
  includes it (an export meeting it mid-stream ends with an error line).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import apsw
import pytest
from journal_corpus import build
from rel_support import RELIABILITY_ENV, StartServer, http_json

from stemedb.config import Settings
from stemedb.ops.doctor_data import check_journal
from stemedb.store import StartupError, Store
from stemedb.store import reads as store_reads
from stemedb.store.frame_check import forensics_sql, sha3
from stemedb.store.journal import CorruptFrame, next_chain
from stemedb.store.verify import verify

# The forensics query is part of the product: CI has the stock shell (as the runbook tests).
SQLITE3 = shutil.which("sqlite3") or "sqlite3"
RUNBOOK = "docs/operations/runbooks/corruption.md"
FORENSICS = Path(__file__).resolve().parents[2] / "docs" / "forensics.md"


@pytest.fixture(scope="module")
def golden(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build(tmp_path_factory.mktemp("kinds"), rounds=100)  # 601 frames


def _seq_of(path: Path, kind: str, nth: int = 0) -> int:
    conn = apsw.Connection(str(path), flags=apsw.SQLITE_OPEN_READONLY)
    rows = conn.execute("SELECT seq FROM journal WHERE kind = ? ORDER BY seq", (kind,)).fetchall()
    conn.close()
    return int(str(rows[nth][0]))


def _tamper(path: Path, sql: str, params: tuple[object, ...] = (), rechain_from: int = -1) -> None:
    """Edit the copy with the append-only triggers dropped; optionally recompute the
    hash of frame `rechain_from` and every chain value from there on (a careful
    attacker), so only the column checks can see the change."""
    conn = apsw.Connection(str(path))
    conn.execute("DROP TRIGGER IF EXISTS journal_no_update")
    conn.execute("DROP TRIGGER IF EXISTS journal_no_delete")
    conn.execute(sql, params)
    if rechain_from >= 0:
        ((raw,),) = conn.execute(
            "SELECT CAST(body AS BLOB) FROM journal WHERE seq = ?", (rechain_from,)
        ).fetchall()
        assert isinstance(raw, bytes)
        conn.execute("UPDATE journal SET hash = ? WHERE seq = ?", (sha3(raw), rechain_from))
        ((previous,),) = conn.execute(
            "SELECT chain FROM journal WHERE seq = ?", (rechain_from - 1,)
        ).fetchall()
        assert isinstance(previous, bytes)
        rows = conn.execute(
            "SELECT seq, hash, written_ms FROM journal WHERE seq >= ? ORDER BY seq",
            (rechain_from,),
        ).fetchall()
        for seq, frame_hash, written_ms in rows:
            assert isinstance(frame_hash, bytes)
            previous = next_chain(previous, frame_hash, int(str(written_ms)))
            conn.execute("UPDATE journal SET chain = ? WHERE seq = ?", (previous, seq))
    conn.close()


def _hashes(path: Path, after: int, before: int) -> list[bytes]:
    conn = apsw.Connection(str(path), flags=apsw.SQLITE_OPEN_READONLY)
    rows = conn.execute(
        "SELECT hash FROM journal WHERE seq > ? AND seq < ? ORDER BY seq", (after, before)
    ).fetchall()
    conn.close()
    return [bytes(r[0]) for r in rows if isinstance(r[0], bytes)]


def _copy(golden: Path, where: Path) -> Path:
    path = where / "db" / "stemedb.db"
    path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(golden, path)
    return path


@dataclass(frozen=True)
class Case:
    name: str
    damage: Callable[[Path], int]  # damages the copy, returns the seq it damaged
    problem: str  # the words verify and the sqlite3 query both use


def _relabel(kind: str, to: str) -> Callable[[Path], int]:
    def damage(path: Path) -> int:
        seq = _seq_of(path, kind, 3)
        _tamper(path, "UPDATE journal SET kind = ? WHERE seq = ?", (to, seq))
        return seq

    return damage


def _set(sql: str, kind: str = "vote", rechain: bool = False) -> Callable[[Path], int]:
    def damage(path: Path) -> int:
        seq = _seq_of(path, kind, 5)
        _tamper(path, sql.replace("{seq}", str(seq)), rechain_from=seq if rechain else -1)
        return seq

    return damage


def _bad_utf8(rechain: bool) -> Callable[[Path], int]:
    def damage(path: Path) -> int:
        seq = _seq_of(path, "assertion", 8)  # a Text value: "välue 8 ✓"
        conn = apsw.Connection(str(path), flags=apsw.SQLITE_OPEN_READONLY)
        ((body,),) = conn.execute("SELECT body FROM journal WHERE seq = ?", (seq,)).fetchall()
        conn.close()
        raw = bytearray(str(body).encode())
        at = raw.index("ä".encode())  # the corpus writes non-ASCII text values
        raw[at] ^= 0x40  # one flipped bit: 0xC3 -> 0x83, a lone continuation byte
        _tamper(
            path,
            "UPDATE journal SET body = CAST(? AS TEXT) WHERE seq = ?",
            (bytes(raw), seq),
            rechain_from=seq if rechain else -1,
        )
        return seq

    return damage


CASES = [
    Case("vote_as_header", _relabel("vote", "header"), "kind column is not a record kind"),
    Case(
        "vote_as_outcome",
        _relabel("vote", "outcome"),
        "kind column does not match the body's kind",
    ),
    Case(
        "header_as_vote",
        lambda p: (_tamper(p, "UPDATE journal SET kind = 'vote' WHERE seq = 0"), 0)[1],
        "journal header has unknown format",
    ),
    Case(
        "written_ms_text",
        _set("UPDATE journal SET written_ms = written_ms || ' ms' WHERE seq = {seq}"),
        "written_ms column is not an integer",
    ),
    Case(
        "written_ms_fraction",  # the old verify took int() of it and passed
        _set("UPDATE journal SET written_ms = written_ms + 0.25 WHERE seq = {seq}"),
        "written_ms column is not an integer",
    ),
    Case(
        "hash_as_hex_text",
        _set("UPDATE journal SET hash = lower(hex(hash)) WHERE seq = {seq}"),
        "hash column is not a 32-byte blob",
    ),
    Case(
        "chain_as_hex_text",
        _set("UPDATE journal SET chain = lower(hex(chain)) WHERE seq = {seq}"),
        "chain column is not a 32-byte blob",
    ),
    Case(
        "json_not_a_record_rechained",
        _set(
            """UPDATE journal SET body = '{"kind":"vote","note":"hello"}' WHERE seq = {seq}""",
            rechain=True,
        ),
        "not a valid vote record: assertion_hash",
    ),
    Case(
        "weight_not_a_number_rechained",
        _set(
            "UPDATE journal SET body = json_set(body, '$.weight', 'heavy') WHERE seq = {seq}",
            rechain=True,
        ),
        "not a valid vote record: weight",
    ),
    Case(
        "duplicate_key_rechained",
        _set(
            'UPDATE journal SET body = substr(body, 1, length(body) - 1) || \',"kind":"header"}\''
            " WHERE seq = {seq}",
            rechain=True,
        ),
        "body has a duplicate key",
    ),
    Case("body_bit_flip_not_utf8", _bad_utf8(rechain=False), "hash does not match its body"),
    Case("body_not_utf8_rechained", _bad_utf8(rechain=True), "body is not valid UTF-8"),
]


def _cli_verify(path: Path) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "stemedb.cli.main", "verify", "--full", "--db", str(path)]
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)


def _shell(path: Path) -> list[str]:
    done = subprocess.run(
        [SQLITE3, "-readonly", str(path), forensics_sql()],
        capture_output=True,
        text=True,
        errors="replace",
        timeout=60,
        check=False,
    )
    assert done.returncode == 0 and not done.stderr, done.stderr
    return done.stdout.splitlines()


def _startup(path: Path) -> str | None:
    store = Store(Settings(db_dir=path.parent, wal_dir=path.parent / "wal"))
    try:
        store.open_journal()
        return None
    except StartupError as exc:
        return f"{exc}. See {exc.runbook}"
    finally:
        store.close()


def test_the_forensics_doc_holds_the_exact_query_verify_runs() -> None:
    assert forensics_sql() in FORENSICS.read_text(), (
        "docs/forensics.md must hold frame_check.forensics_sql() verbatim (a record kind or "
        "rule changed?): replace the ```sql block starting `WITH frame AS (` with the output "
        "of: python -c 'from stemedb.store.frame_check import forensics_sql; "
        "print(forensics_sql())'"
    )


def test_the_intact_corpus_passes_every_checker(golden: Path, tmp_path: Path) -> None:
    path = _copy(golden, tmp_path)
    assert verify(path, full=True).ok
    assert check_journal(path)[0].status == "ok"
    assert _startup(path) is None
    assert _shell(path) == []


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_every_checker_names_the_frame_in_the_same_words(
    golden: Path, tmp_path: Path, case: Case
) -> None:
    path = _copy(golden, tmp_path)
    seq = case.damage(path)

    for report in (verify(path), verify(path, full=True)):
        assert not report.ok and report.first_bad_seq == seq, report.to_dict()
        failed = [c for c in report.checks if not c["ok"]]
        assert failed[0]["check"] == "chain" and f"frame {seq}: " in failed[0]["detail"]
        assert case.problem in failed[0]["detail"], failed
    done = _cli_verify(path)
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"FAILED at seq {seq}:" in done.stderr and RUNBOOK in done.stderr, done.stderr
    assert "Traceback" not in done.stdout + done.stderr

    (finding,) = check_journal(path)
    assert finding.status == "fail" and f"seq {seq}" in finding.detail, finding
    assert case.problem in finding.detail and "stemedb verify" in finding.action
    rows = _shell(path)
    assert rows and rows[0].startswith(f"{seq}|"), rows
    if seq > 0:  # frame 0's header messages are verify's own; the seq is the same
        assert rows[0] == f"{seq}|{case.problem}", rows
    said = _startup(path)  # last: it opens the copy for writing
    assert said is not None and f"at seq {seq}:" in said and case.problem in said, said
    assert "server-wont-start.md §3" in said


def test_verify_full_reindex_and_catch_up_never_raise_on_a_relabelled_frame(
    golden: Path, tmp_path: Path
) -> None:
    """The old `verify --full` died with KeyError 'weight' rebuilding a relabelled vote."""
    path = _copy(golden, tmp_path)
    seq = _relabel("vote", "outcome")(path)
    report = verify(path, full=True)
    assert report.first_bad_seq == seq
    argv = [sys.executable, "-m", "stemedb.cli.main", "reindex", "--db", str(path)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 1 and f"frame {seq}" in done.stderr, done.stderr
    assert RUNBOOK in done.stderr and "Traceback" not in done.stderr


def test_a_file_cut_inside_its_last_page_fails_verify_with_one_line(
    golden: Path, tmp_path: Path
) -> None:
    path = _copy(golden, tmp_path)
    size = path.stat().st_size
    with open(path, "r+b") as handle:
        handle.truncate(size - 1000)  # inside the last page
    report = verify(path)
    assert not report.ok
    done = _cli_verify(path)
    assert done.returncode == 1 and "Traceback" not in done.stdout + done.stderr
    assert "stemedb verify: FAILED" in done.stderr and RUNBOOK in done.stderr, done.stderr
    (finding,) = check_journal(path)  # the journal check itself may pass: its pages are whole
    assert finding.status in ("ok", "fail") and "Traceback" not in finding.detail
    said = _startup(path)
    assert said is None or "server-wont-start.md" in said


def test_the_cut_off_end_of_the_last_journal_page_is_named_by_seq(
    golden: Path, tmp_path: Path
) -> None:
    """The journal's newest page torn short (its tail bytes gone, read back as zeros)."""
    path = _copy(golden, tmp_path)
    conn = apsw.Connection(str(path), flags=apsw.SQLITE_OPEN_READONLY)
    ((page,),) = conn.execute(
        "SELECT max(pageno) FROM dbstat WHERE name = 'journal' AND pagetype = 'leaf'"
    ).fetchall()
    ((page_size,),) = conn.execute("PRAGMA page_size").fetchall()
    conn.close()
    start = (int(str(page)) - 1) * int(str(page_size))
    data = bytearray(path.read_bytes())
    end = start + int(str(page_size))
    data[end - 1000 : end] = bytes(1000)
    path.write_bytes(bytes(data))

    report = verify(path)
    seq = report.first_bad_seq
    assert not report.ok and seq is not None and seq > 500, report.to_dict()
    done = _cli_verify(path)
    assert done.returncode == 1 and f"FAILED at seq {seq}:" in done.stderr, done.stderr
    assert RUNBOOK in done.stderr and "Traceback" not in done.stdout + done.stderr
    (finding,) = check_journal(path)
    assert finding.status == "fail" and f"seq {seq}" in finding.detail, finding
    said = _startup(path)
    assert said is not None and f"at seq {seq}:" in said, said
    # a reader reaching it gets the 503 error (corrupt_frame, by seq), not a 500
    conn = apsw.Connection(str(path), flags=apsw.SQLITE_OPEN_READONLY)
    try:
        with pytest.raises(CorruptFrame) as info:
            store_reads.feed(conn, 0, 10_000, None)
    finally:
        conn.close()
    assert info.value.seq == seq and info.value.code == "corrupt_frame"
    conn = apsw.Connection(str(path), flags=apsw.SQLITE_OPEN_READONLY)
    try:  # a range that stops before it still reads
        assert [f.seq for f in store_reads.feed(conn, 0, 5, None)[0]] == [1, 2, 3, 4, 5]
    finally:
        conn.close()


# ---- a running server: reads of healthy frames keep working ------------------------------


def test_feed_export_and_admin_verify_name_a_damaged_frame_only_when_they_reach_it(
    golden: Path, tmp_path: Path, run_server_process: StartServer
) -> None:
    path = _copy(golden, tmp_path)
    early = _relabel("vote", "header")(path)  # in the export's first chunk
    late = _bad_utf8(rechain=False)(path)
    conn = apsw.Connection(str(path))
    later = int(str(conn.execute("SELECT max(seq) - 40 FROM journal").fetchall()[0][0]))
    conn.close()
    assert early < late < 500 < later
    _tamper(path, "UPDATE journal SET written_ms = written_ms || 'x' WHERE seq = ?", (later,))
    # The start-up tail check reads the last 20 frames: the damage is older, so it starts.
    server = run_server_process({**RELIABILITY_ENV, "STEMEDB_VERIFY_TAIL": "20"})
    assert server.returncode is None, server.output[-3000:]
    url = server.url

    status, _, body = http_json("GET", f"{url}/v1/feed?after=0&limit=100")
    assert status == 503 and body["error"]["code"] == "corrupt_frame", body
    assert f"frame {early}" in body["error"]["message"] and RUNBOOK in body["error"]["message"]
    status, _, body = http_json("GET", f"{url}/v1/feed?after={early}&limit=5")
    assert status == 200 and [f["seq"] for f in body["frames"]] == list(range(early + 1, early + 6))
    assert all(f["kind"] != "header" for f in body["frames"])
    status, _, body = http_json("GET", f"{url}/v1/feed?after={late - 1}&limit=5")
    assert status == 503 and f"frame {late}" in body["error"]["message"], body

    status, _, body = http_json("GET", f"{url}/v1/export?format=ndjson&after={early - 1}")
    assert status == 503 and body["error"]["code"] == "corrupt_frame", body
    assert f"frame {early}" in body["error"]["message"]
    status, _, text = http_json("GET", f"{url}/v1/export?format=ndjson")
    assert status == 200
    lines = str(text).splitlines()
    assert [sha3(line.encode()) for line in lines[:-1]] == _hashes(path, 0, early)
    assert json.loads(lines[-1])["error"]["seq"] == early  # the relabelled vote is not lost
    status, _, text = http_json("GET", f"{url}/v1/export?format=csv&after={late - 7}")
    assert status == 200 and str(text).splitlines()[-1].startswith(f"#error,corrupt_frame,{late},")
    status, _, text = http_json("GET", f"{url}/v1/export?format=ndjson&after={late}")
    assert status == 200, text
    lines = str(text).splitlines()
    error = json.loads(lines[-1])["error"]
    assert error["code"] == "corrupt_frame" and error["seq"] == later, error
    # every frame before the damaged one, in order, and nothing after it
    sent = [sha3(line.encode()) for line in lines[:-1]]
    assert sent == _hashes(path, late, later)

    status, _, report = http_json("POST", f"{url}/v1/admin/verify")
    assert status == 500 and report["ok"] is False and report["first_bad_seq"] == early, report
    status, _, health = http_json("GET", f"{url}/v1/health")
    assert status == 200 and health["status"] == "healthy"
    assert server.stop() == 0
    assert "Traceback" not in server.output, server.output[-3000:]


@pytest.mark.parametrize("case", [CASES[0], CASES[-2], CASES[3]], ids=lambda c: c.name)
def test_the_server_refuses_to_start_on_a_damaged_tail_with_one_line(
    golden: Path, tmp_path: Path, run_server_process: StartServer, case: Case
) -> None:
    seq = case.damage(_copy(golden, tmp_path))
    server = run_server_process(RELIABILITY_ENV, wait=False)
    assert server.wait_ready("/v1/health", 60) is False
    out = server.output
    assert server.returncode == 1 and "Traceback" not in out, out[-3000:]
    (line,) = [x for x in out.splitlines() if "[5/10] open the journal: FAILED" in x]
    assert f"at seq {seq}: frame {seq}: {case.problem}" in line, line
    assert "server-wont-start.md §3" in line
