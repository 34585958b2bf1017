"""Every journal checker survives random bit and byte flips and names the damaged frame.

A real database (every record kind, written through the Store, checkpointed
and closed) is built once; each example flips bits or a byte in a fresh COPY
and runs every checker on it:

* `stemedb verify` (in-process `verify`, and `verify --full`),
* doctor's journal check,
* the server's start-up tail check (`Store.open_journal`),
* the full check of docs/forensics.md in the real `sqlite3` shell.

Flips aimed at one frame's columns (kind, hash, body, written_ms, chain) must be
named by every checker with exactly that seq, and the shell query must say the
same first seq and the same words as `verify`. Flips in the record header of a
frame, and flips anywhere in the file, must either pass (harmless: free space,
an unused byte) or fail with a named seq or a SQLite page-level reason — never
an exception out of a checker.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import apsw
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from journal_corpus import build

from stemedb.config import Settings
from stemedb.ops.doctor_data import check_journal
from stemedb.store import StartupError, Store
from stemedb.store.frame_check import forensics_sql
from stemedb.store.verify import verify

# The forensics query is part of the product: CI has the stock shell (as the runbook tests).
SQLITE3 = shutil.which("sqlite3") or "sqlite3"
COLUMNS = ("kind", "hash", "body", "written_ms", "chain")
SEQ_IN = re.compile(r"\bseq (-?\d+)|\bframe (-?\d+)")


@dataclass(frozen=True, repr=False)
class Layout:
    """Where each column of each frame lies in the golden file (its record payload)."""

    path: Path
    ranges: dict[int, dict[str, tuple[int, int]]]  # seq -> column -> [start, end)
    size: int


def _varint(data: bytes, at: int) -> tuple[int, int]:
    """SQLite's big-endian varint at `at`: (value, next offset)."""
    value = 0
    for n in range(9):
        byte = data[at + n]
        if n == 8:
            return (value << 8) | byte, at + 9
        value = (value << 7) | (byte & 0x7F)
        if byte < 0x80:
            return value, at + n + 1
    raise AssertionError("unreachable")


def _serial_size(serial: int) -> int:
    if serial >= 12:
        return (serial - 12) // 2 if serial % 2 == 0 else (serial - 13) // 2
    return (0, 1, 2, 3, 4, 6, 8, 8, 0, 0)[serial]


def _cells(data: bytes, page: int, page_size: int) -> list[tuple[int, int]]:
    """(rowid, payload offset) of every cell of a table leaf page (b-tree format)."""
    base = (page - 1) * page_size
    head = base + (100 if page == 1 else 0)
    assert data[head] == 0x0D, "not a table leaf page"
    count = int.from_bytes(data[head + 3 : head + 5], "big")
    cells = []
    for n in range(count):
        pointer = int.from_bytes(data[head + 8 + 2 * n : head + 10 + 2 * n], "big")
        size, at = _varint(data, base + pointer)
        rowid, at = _varint(data, at)
        assert size < page_size - 35, "a frame spills to an overflow page"
        cells.append((rowid, at))
    return cells


def _columns(data: bytes, payload: int, names: list[str]) -> dict[str, tuple[int, int]]:
    """Byte range of each column's value in a record, and of the record header."""
    header_size, at = _varint(data, payload)
    serials = []
    while at < payload + header_size:
        serial, at = _varint(data, at)
        serials.append(serial)
    ranges = {"record_header": (payload + 1, payload + header_size)}
    for name, serial in zip(names, serials, strict=True):
        ranges[name] = (at, at + _serial_size(serial))
        at += _serial_size(serial)
    return ranges


@pytest.fixture(scope="module")
def golden(tmp_path_factory: pytest.TempPathFactory) -> Layout:
    path = build(tmp_path_factory.mktemp("bitflips"), rounds=50)
    data = path.read_bytes()
    conn = apsw.Connection(str(path), flags=apsw.SQLITE_OPEN_READONLY)
    leaves = [
        int(str(r[0]))
        for r in conn.execute(
            "SELECT pageno FROM dbstat WHERE name = 'journal' AND pagetype = 'leaf'"
        ).fetchall()
    ]
    page_size = int(str(conn.execute("PRAGMA page_size").fetchall()[0][0]))
    names = [str(r[1]) for r in conn.execute("PRAGMA table_info(journal)").fetchall()]
    rows = {int(str(r[0])): r for r in conn.execute("SELECT seq, body FROM journal").fetchall()}
    conn.close()
    ranges: dict[int, dict[str, tuple[int, int]]] = {}
    for page in leaves:
        for rowid, payload in _cells(data, page, page_size):
            ranges[rowid] = {k: v for k, v in _columns(data, payload, names).items() if k != "seq"}
            start, end = ranges[rowid]["body"]
            assert data[start:end] == str(rows[rowid][1]).encode(), "layout misread"
    assert sorted(ranges) == sorted(rows) and len(ranges) > 300
    assert verify(path, full=True).ok
    return Layout(path, ranges, len(data))


def _seqs(text: str) -> set[int]:
    return {int(a or b) for a, b in SEQ_IN.findall(text)}


@dataclass
class Verdicts:
    """What each checker said about one damaged copy (None = passed)."""

    verify: str | None
    verify_seq: int | None
    full: str | None
    doctor: str | None
    startup: str | None
    shell: list[str] | None  # rows `seq|problem`; None when the shell stopped with an error
    shell_error: str
    pages_ok: bool  # quick_check passed: SQLite reads the same rows everywhere


def _run_checkers(path: Path) -> Verdicts:
    quick = verify(path)
    full = verify(path, full=True)
    bad = [f"{c['check']}: {c['detail']}" for c in quick.checks if not c["ok"]]
    bad_full = [f"{c['check']}: {c['detail']}" for c in full.checks if not c["ok"]]
    (finding,) = check_journal(path)
    assert finding.status in ("ok", "fail"), finding
    doctor = None if finding.status == "ok" else f"{finding.detail} [{finding.action}]"
    shell: list[str] | None = None
    shell_error = ""
    done = subprocess.run(
        [SQLITE3, "-readonly", str(path), forensics_sql()],
        capture_output=True,
        text=True,
        errors="replace",
        timeout=60,
        check=False,
    )
    assert "Traceback" not in done.stderr
    if done.returncode == 0 and not done.stderr:
        shell = done.stdout.splitlines()
    else:
        shell_error = done.stderr.strip()
    # Last: the start-up check opens the file for writing (creates -wal/-shm).
    store = Store(Settings(db_dir=path.parent, wal_dir=path.parent / "wal"))
    startup: str | None = None
    try:
        store.open_journal()
        if store.read_only_reason is not None:
            startup = store.read_only_reason
    except StartupError as exc:
        startup = f"{exc}"
    finally:
        store.close()
    return Verdicts(
        "; ".join(bad) or None,
        quick.first_bad_seq,
        "; ".join(bad_full) or None,
        doctor,
        startup,
        shell,
        shell_error,
        all(c["ok"] for c in quick.checks if c["check"] in ("open", "quick_check")),
    )


def _copy_with(golden: Layout, where: Path, flips: list[tuple[int, int]]) -> Path:
    folder = where / "db"
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    data = bytearray(golden.path.read_bytes())
    for offset, mask in flips:
        data[offset] ^= mask
    path = folder / "stemedb.db"
    path.write_bytes(bytes(data))
    return path


masks = st.one_of(
    st.integers(0, 7).map(lambda bit: 1 << bit),  # one bit
    st.integers(1, 255),  # a byte changed to any other value
)


@settings(
    max_examples=200,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_a_flip_in_any_column_of_a_frame_is_named_by_every_checker(
    golden: Layout, tmp_path: Path, data: st.DataObject
) -> None:
    seq = data.draw(st.sampled_from(sorted(golden.ranges)), label="seq")
    column = data.draw(st.sampled_from(COLUMNS), label="column")
    start, end = golden.ranges[seq][column]
    offset = data.draw(st.integers(start, end - 1), label="offset")
    mask = data.draw(masks, label="mask")
    path = _copy_with(golden, tmp_path, [(offset, mask)])
    said = _run_checkers(path)

    where = f"frame {seq}"
    assert said.verify is not None and said.verify_seq == seq, said
    assert said.full is not None and where in said.full, said
    for name, text in (("doctor", said.doctor), ("startup", said.startup)):
        assert text is not None and seq in _seqs(text), (name, said)
    assert said.doctor is not None and "stemedb verify" in said.doctor
    if said.shell is not None:
        assert said.shell, said  # the shell sees it too ...
        first_seq, _, first_problem = said.shell[0].partition("|")
        assert int(first_seq) == seq, said  # ... at the same seq ...
        if seq > 0:  # ... in the same words (frame 0 also has its header messages)
            assert said.verify.endswith(f"frame {seq}: {first_problem}"), said


@settings(
    max_examples=100,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_flips_anywhere_never_crash_a_checker_and_failures_name_a_frame_or_a_page(
    golden: Layout, tmp_path: Path, data: st.DataObject
) -> None:
    headers = [r["record_header"] for r in golden.ranges.values()]
    anywhere = st.integers(0, golden.size - 1)
    in_header = st.sampled_from(headers).flatmap(lambda r: st.integers(r[0], r[1] - 1))
    flips = data.draw(
        st.lists(st.tuples(st.one_of(anywhere, in_header), masks), min_size=1, max_size=3),
        label="flips",
    )
    path = _copy_with(golden, tmp_path, flips)
    said = _run_checkers(path)  # no checker raised: that is the first assertion

    page_level = (
        "malformed",
        "corrupt",
        "not an SQLite database",
        "not a database",
        "not a StemeDB database",
        "integrity_check",
        "quick_check",
        "application_id",
        "rebuild_matches",  # a flip in a projection table: the journal is fine
        "count_",
        "projections_at_head",
    )
    for name, text in (("verify", said.verify), ("full", said.full), ("startup", said.startup)):
        if text is not None:  # a failure names the frame, SQLite's damaged pages or a projection
            assert _seqs(text) or any(p in text for p in page_level), (name, said)
    if said.doctor is not None:
        assert "stemedb verify" in said.doctor or "not a" in said.doctor, said
    if said.verify is None:  # verify is the strictest reader: if it passes, so do the others
        assert said.startup is None and said.doctor is None, said
        assert said.shell in (None, []), said
    if said.shell and said.verify_seq is not None and said.pages_ok:  # same rows, same seq
        assert int(said.shell[0].partition("|")[0]) == said.verify_seq, said
