"""Corruption: damaged copies of a real database are caught by verify and refused at start.

A golden database (300 signed assertions written through the real Store, the
file checkpointed and closed) is copied once per case, then damaged:

* through SQL, after dropping the append-only triggers in the copy: a frame
  body, a chain value, the header frame;
* as raw bytes in the file, on pages found with SQLite's `dbstat` table: a
  byte inside a frame's body, a cell pointer, a page header of the journal,
  a byte of the hash index, a byte of the assertions projection, and a file
  cut in half.

For each case `verify` (and `verify --full`) must fail, naming the first bad
seq when there is one, and the server must either refuse to start with the
runbook's §3 message or — for damage outside the journal tail it checks at
start — start and leave the finding to `stemedb verify`, as documented. With
STEMEDB_READ_ONLY_ON_CORRUPTION=true the server starts on a broken tail,
serves reads, refuses writes with 503 and reports itself degraded.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import apsw
import pytest
from crash_harness import StartServer
from rel_support import (
    RELIABILITY_ENV,
    RUNBOOK_SECTION_3,
    RecordFactory,
    Signed,
    cli_verify,
    file_head,
    http_json,
)

from stemedb.config import Settings
from stemedb.store import PendingRecord, Store
from stemedb.store.verify import verify

RECORDS = 300
PAGE = 4096
TAIL = 64  # STEMEDB_VERIFY_TAIL for the server starts: frames 237..300
ENV = {**RELIABILITY_ENV, "STEMEDB_VERIFY_TAIL": str(TAIL)}


@dataclass(frozen=True)
class Golden:
    path: Path
    records: dict[int, Signed]  # seq -> record


@pytest.fixture(scope="module")
def golden(tmp_path_factory: pytest.TempPathFactory) -> Golden:
    root = tmp_path_factory.mktemp("golden")
    settings = Settings(db_dir=root / "db", wal_dir=root / "wal")
    settings.db_dir.mkdir()
    store = Store(settings).open()
    factory = RecordFactory(4242, "golden", pad=300)
    records: dict[int, Signed] = {}
    for _ in range(RECORDS // 10):
        batch = [factory.next() for _ in range(10)]
        pending = [
            PendingRecord(
                "assertion",
                bytes.fromhex(r.hash),
                r.body,
                json.loads(r.body),
                int(time.time() * 1000),
            )
            for r in batch
        ]
        for record, outcome in zip(batch, store.write(pending), strict=True):
            assert outcome.status == "created" and outcome.seq is not None
            records[outcome.seq] = record
    store.close()
    assert not (settings.db_dir / "stemedb.db-wal").exists(), "file not checkpointed"
    assert verify(settings.db_path, full=True).ok
    return Golden(settings.db_path, records)


# ---- ways to damage a copy --------------------------------------------------------------


def _sql(path: Path, sql: str, params: tuple[object, ...] = ()) -> None:
    """Alter the copy through SQLite, after dropping its append-only triggers."""
    conn = apsw.Connection(str(path))
    conn.execute("DROP TRIGGER IF EXISTS journal_no_update")
    conn.execute("DROP TRIGGER IF EXISTS journal_no_delete")
    conn.execute(sql, params)
    conn.close()  # last connection: checkpoints the WAL back into the file


def _pages(path: Path, name: str, kind: str = "leaf") -> list[int]:
    conn = apsw.Connection(str(path), flags=apsw.SQLITE_OPEN_READONLY)
    try:
        rows = conn.execute(
            "SELECT pageno FROM dbstat WHERE name = ? AND pagetype = ? ORDER BY pageno",
            (name, kind),
        ).fetchall()
    finally:
        conn.close()
    return [int(str(r[0])) for r in rows]


def _flip(path: Path, offset: int, mask: int = 0x01) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= mask
    path.write_bytes(bytes(data))


def _find(path: Path, needle: bytes) -> int:
    data = path.read_bytes()
    at = data.find(needle)
    assert at >= 0 and data.find(needle, at + 1) < 0, f"{needle!r} not unique in the file"
    return at


def _signature(golden: Golden, seq: int) -> str:
    return str(json.loads(golden.records[seq].body)["signatures"][0]["signature"])


def frame_body(seq: int) -> Callable[[Path, Golden], None]:
    def damage(path: Path, golden: Golden) -> None:
        body = golden.records[seq].body
        sig = _signature(golden, seq)
        altered = body.replace(sig, sig[:-1] + ("0" if sig[-1] != "0" else "1"))
        _sql(path, "UPDATE journal SET body = ? WHERE seq = ?", (altered, seq))

    return damage


def chain_value(seq: int) -> Callable[[Path, Golden], None]:
    """Flip one bit of frame `seq`'s chain value (read, flip in Python, write back)."""

    def damage(path: Path, golden: Golden) -> None:
        conn = apsw.Connection(str(path), flags=apsw.SQLITE_OPEN_READONLY)
        ((chain,),) = conn.execute("SELECT chain FROM journal WHERE seq = ?", (seq,)).fetchall()
        conn.close()
        assert isinstance(chain, bytes)
        flipped = bytearray(chain)
        flipped[15] ^= 0x01
        _sql(path, "UPDATE journal SET chain = ? WHERE seq = ?", (bytes(flipped), seq))

    return damage


def header_body(change: Callable[[dict[str, object]], None]) -> Callable[[Path, Golden], None]:
    def damage(path: Path, golden: Golden) -> None:
        conn = apsw.Connection(str(path), flags=apsw.SQLITE_OPEN_READONLY)
        ((body,),) = conn.execute("SELECT body FROM journal WHERE seq = 0").fetchall()
        conn.close()
        header = json.loads(str(body))
        change(header)
        _sql(
            path,
            "UPDATE journal SET body = ? WHERE seq = 0",
            (json.dumps(header, separators=(",", ":"), sort_keys=True),),
        )

    return damage


def raw_header_byte(path: Path, golden: Golden) -> None:
    at = _find(path, b'"format":"stemedb-journal"')
    _flip(path, at + len(b'"format":"s'), 0x20)  # stemedb -> sTemedb


def raw_frame_body_byte(seq: int) -> Callable[[Path, Golden], None]:
    def damage(path: Path, golden: Golden) -> None:
        at = _find(path, _signature(golden, seq).encode())
        page = at // PAGE + 1
        assert page in _pages(path, "journal"), "the signature is not on a journal page"
        _flip(path, at + 40)

    return damage


def raw_cell_pointer(index: int) -> Callable[[Path, Golden], None]:
    """The low byte of the first cell pointer of the index-th journal leaf page."""

    def damage(path: Path, golden: Golden) -> None:
        page = _pages(path, "journal")[index]
        _flip(path, (page - 1) * PAGE + 9, 0x04)

    return damage


def raw_page_type(index: int) -> Callable[[Path, Golden], None]:
    """Byte 0 of a journal leaf page (13 = table leaf) set to an invalid page type."""

    def damage(path: Path, golden: Golden) -> None:
        page = _pages(path, "journal")[index]
        _flip(path, (page - 1) * PAGE, 0x06)  # 0x0d -> 0x0b

    return damage


def raw_middle_of(name: str) -> Callable[[Path, Golden], None]:
    """A byte in the middle of a page of table/index `name` (page boundary + PAGE/2)."""

    def damage(path: Path, golden: Golden) -> None:
        pages = _pages(path, name)
        page = pages[len(pages) // 2]
        _flip(path, (page - 1) * PAGE + PAGE // 2, 0x10)

    return damage


def truncated(path: Path, golden: Golden) -> None:
    with open(path, "r+b") as handle:
        handle.truncate(path.stat().st_size // 2)


@dataclass(frozen=True)
class Case:
    name: str
    damage: Callable[[Path, Golden], None]
    first_bad_seq: int | None  # what verify names, when it can
    quick: bool  # caught by `verify` (quick_check + chain), not only `verify --full`
    verify_says: str  # in the failed checks of `verify --full`
    server_says: str | None  # in the server's FAILED line; None: it starts (damage unread)


CASES = [
    Case("frame_body_in_tail", frame_body(250), 250, True, "hash does not match", "hash does not"),
    Case("frame_body_old", frame_body(5), 5, True, "hash does not match its body", None),
    Case("chain_value", chain_value(260), 260, True, "chain link is broken", "chain link is"),
    Case(
        "header_format",
        header_body(lambda h: h.update(format="stemedb-journal-x")),
        0,
        True,
        "unknown format",
        "journal header has unknown format",
    ),
    Case(
        "header_version",
        header_body(lambda h: h.update(version=2)),
        0,
        True,
        "version 2 is not supported",
        "journal header version 2 is not supported",
    ),
    Case("header_raw_byte", raw_header_byte, 0, True, "unknown format", "unknown format"),
    Case("page_frame_body_byte", raw_frame_body_byte(280), 280, True, "hash does not", "hash"),
    Case("page_cell_pointer", raw_cell_pointer(-3), None, True, "malformed", "corrupt page"),
    Case("page_type_byte", raw_page_type(-2), None, True, "malformed", "corrupt page"),
    Case(
        "page_hash_index",
        raw_middle_of("sqlite_autoindex_journal_1"),
        None,
        False,
        "sqlite_autoindex_journal_1",
        None,
    ),
    Case("page_projection", raw_middle_of("assertions"), None, False, "assertions", None),
    Case("file_cut_in_half", truncated, None, True, "malformed", "is corrupt"),
]
CASE_IDS = [c.name for c in CASES]


def _damaged_copy(golden: Golden, case: Case, where: Path) -> Path:
    path = where / "db" / "stemedb.db"
    path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(golden.path, path)
    case.damage(path, golden)
    return path


def test_the_intact_copy_verifies(golden: Golden, tmp_path: Path) -> None:
    path = tmp_path / "stemedb.db"
    shutil.copyfile(golden.path, path)
    assert verify(path).ok and verify(path, full=True).ok
    assert cli_verify(path, full=True).returncode == 0


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_verify_detects_the_damage_and_names_the_first_bad_seq(
    golden: Golden, case: Case, tmp_path: Path
) -> None:
    path = _damaged_copy(golden, case, tmp_path)
    full = verify(path, full=True)
    quick = verify(path)
    assert not full.ok, full.to_dict()
    if case.quick:  # the others are for --full only (documented), whatever quick says
        assert not quick.ok, quick.to_dict()
    failed = " ".join(c["detail"] for c in full.checks if not c["ok"])
    assert case.verify_says in failed, failed
    if case.first_bad_seq is not None:
        assert (quick.first_bad_seq, full.first_bad_seq) == (case.first_bad_seq,) * 2
    # the operator's command: exit 1, the first bad seq named, the runbook, no traceback
    done = cli_verify(path, full=True)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "stemedb verify: FAILED" in done.stderr, done.stderr
    assert "docs/operations/runbooks/corruption.md" in done.stderr, done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    if case.first_bad_seq is not None:
        assert f"FAILED at seq {case.first_bad_seq}:" in done.stderr, done.stderr


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_server_start_refuses_a_bad_header_or_tail_with_the_runbook_section(
    golden: Golden, case: Case, tmp_path: Path, run_server_process: StartServer
) -> None:
    _damaged_copy(golden, case, tmp_path)
    server = run_server_process(ENV, wait=False)
    ready = server.wait_ready("/v1/health", 60)
    out = server.output
    if case.server_says is None:  # damage the start-up checks do not read: verify's job
        assert ready, out[-3000:]
        assert f"tail of {TAIL} frames verified" in out
        return
    assert not ready and server.returncode == 1, out[-3000:]
    failed = [line for line in out.splitlines() if "[5/10] open the journal: FAILED" in line]
    assert len(failed) == 1, out[-3000:]
    assert case.server_says in failed[0] and RUNBOOK_SECTION_3 in failed[0], failed[0]
    if case.first_bad_seq is not None:
        assert f"at seq {case.first_bad_seq}:" in failed[0]
    assert "Traceback" not in out


def test_read_only_on_corruption_serves_reads_refuses_writes_and_says_degraded(
    golden: Golden, tmp_path: Path, run_server_process: StartServer
) -> None:
    case = CASES[0]  # a broken frame in the checked tail
    path = _damaged_copy(golden, case, tmp_path)
    head = file_head(path)
    server = run_server_process(
        {**ENV, "STEMEDB_READ_ONLY_ON_CORRUPTION": "true"}, ready_path="/openapi.json"
    )
    assert server.returncode is None, server.output[-3000:]
    assert "READ-ONLY" in server.output
    url = server.url

    status, _, health = http_json("GET", url + "/v1/health")
    assert status == 503 and (health["status"], health["reason"]) == ("degraded", "read_only")
    assert (health["journal_seq"], health["chain_head"]) == head
    status, _, ready = http_json("GET", url + "/v1/ready")
    assert status == 503 and ready["ready"] is False

    record = golden.records[10]
    status, _, body = http_json("GET", f"{url}/v1/assertions/{record.hash}")
    assert status == 200 and body["hash"] == record.hash
    status, _, body = http_json("GET", f"{url}/v1/query?subject={record.subject}")
    assert status == 200 and record.hash in {a["hash"] for a in body["assertions"]}
    status, _, body = http_json(
        "POST", url + "/v1/query", {"subject": record.subject, "lens": "recency"}
    )
    assert status == 200, body

    fresh = RecordFactory(99, "after").next()
    for path_, payload in (("/v1/assert", fresh.payload), ("/v1/assert/batch", [fresh.payload])):
        status, headers, body = http_json("POST", url + path_, payload)
        assert status == 503, (path_, body)
        assert body["error"]["code"] == "unavailable" and headers["X-Request-Id"]
        assert "read-only" in body["error"]["message"] or "journal" in body["error"]["message"]
    assert server.stop() == 0
    assert file_head(path) == head
