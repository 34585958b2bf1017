"""`stemedb verify --full` checks `record_digests` (issue 14 item 1, the leftovers).

The writer trusts `record_digests` to tell a new record from a replay: a
missing row lets a replay in as new, a wrong or extra row answers `exists` for
a record that is not stored. So `verify --full` recomputes every journal
record's identity from its body and compares: each kind of damage, made with
the stock `sqlite3` shell on a real file, is one failed `record_digests` check
naming the seq and the runbook, a CLI exit 1 with one line, no traceback; and
the forensics query of docs/forensics.md lists the same seq.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from identitykit import Signer, T, sign_by, unsigned_of_every_kind

from stemedb.config import DEFAULT_SCHEME_TIERS, Settings
from stemedb.records import prepare_record
from stemedb.store import PendingRecord, Store
from stemedb.store.schema import connect, fetchall
from stemedb.store.verify import verify


def pend(kind: str, record: dict[str, Any]) -> PendingRecord:
    """Validated and normalised exactly like the HTTP layer does."""
    prepared = prepare_record(
        kind, record, now_s=T + 100, scheme_tiers=DEFAULT_SCHEME_TIERS, require_signatures=True
    )
    return PendingRecord(
        prepared.kind, prepared.hash, prepared.body, prepared.record, 0, prepared.digest
    )


A, B = Signer(), Signer()
CLI = (sys.executable, "-m", "stemedb.cli.main")
DOCS = Path(__file__).resolve().parents[2] / "docs" / "forensics.md"


def _records() -> list[PendingRecord]:
    claim = {"subject": "verify/ids", "predicate": "p", "object": "v", "confidence": 0.5}
    first = pend("assertion", sign_by("assertion", {**claim, "timestamp": T}, [A, B]))
    second = pend("assertion", sign_by("assertion", {**claim, "timestamp": T + 1}, [A]))
    out = [first, second]
    for kind, unsigned in unsigned_of_every_kind(
        first.hash.hex(), second.hash.hex(), None, B.id, "verify"
    ).values():
        out.append(
            pend(kind, sign_by(kind, unsigned, [A] if kind in ("vote", "outcome") else [A, B]))
        )
    return out


@pytest.fixture(scope="module")
def good_db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    directory = tmp_path_factory.mktemp("ids") / "db"
    directory.mkdir()
    store = Store(Settings(db_dir=directory)).open()
    try:
        outcomes = store.write(_records())
        assert {o.status for o in outcomes} == {"created"}
    finally:
        store.close()
    yield directory / "stemedb.db"


def _copy(good_db: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "copy.db"
    shutil.copyfile(good_db, copy)
    return copy


def _shell(db: Path, sql: str) -> str:
    done = subprocess.run(["sqlite3", str(db), sql], capture_output=True, text=True, check=True)
    return done.stdout


def _seq_of(db: Path, kind: str) -> int:
    conn = connect(db)
    try:
        return int(fetchall(conn, "SELECT min(seq) FROM journal WHERE kind = ?", (kind,))[0][0])
    finally:
        conn.close()


def _forensics_query() -> str:
    """The record-identity query of docs/forensics.md, as a reader would paste it."""
    text = DOCS.read_text("utf-8")
    section = text.split("## Record identities", 1)[1]
    match = re.search(r"```sql\n(.*?)```", section, re.S)
    assert match, "docs/forensics.md: the record-identity query"
    return match.group(1)


# (name, SQL damage with {seq} the first vote's frame, the seq the finding names (None: {seq}),
#  words of the finding)
DAMAGE = [
    ("missing", "DELETE FROM record_digests WHERE seq = {seq}", None, "no identity row"),
    (
        "wrong digest",
        "UPDATE record_digests SET digest = zeroblob(32) WHERE seq = {seq}",
        None,
        "identity row differs from its body's",
    ),
    (
        "wrong signer",
        "UPDATE record_digests SET signer = x'00' WHERE seq = {seq}",
        None,
        "identity row differs from its body's",
    ),
    (
        "wrong kind",
        "UPDATE record_digests SET kind = 'alias' WHERE seq = {seq}",
        None,
        "identity row differs from its body's",
    ),
    (
        "extra",
        "INSERT INTO record_digests VALUES (randomblob(32), x'', 'assertion', 1)",
        1,
        "identity row for seq 1 (assertion) matches no record",
    ),
    (
        "moved to another frame",
        "UPDATE record_digests SET seq = 0 WHERE seq = {seq}",
        0,
        "identity row for seq 0 (vote) matches no record",
    ),
]


@pytest.mark.parametrize(("name", "sql", "named", "words"), DAMAGE, ids=[d[0] for d in DAMAGE])
def test_verify_full_names_a_damaged_identity_row(
    good_db: Path, tmp_path: Path, name: str, sql: str, named: int | None, words: str
) -> None:
    assert verify(good_db, full=True).ok
    copy = _copy(good_db, tmp_path)
    seq = _seq_of(copy, "vote")
    _shell(copy, sql.format(seq=seq))
    named = seq if named is None else named

    report = verify(copy, full=True)
    failed = [c for c in report.checks if not c["ok"]]
    assert failed and failed[0]["check"] == "record_digests", report.to_dict()
    detail = failed[0]["detail"]
    assert words in detail and re.search(rf"\b{named}\b", detail), detail
    assert "stemedb reindex" in detail and "corruption.md" in detail
    assert report.first_bad_seq == named
    assert verify(copy).ok  # the quick verify does not recompute digests (documented)

    env = {k: v for k, v in os.environ.items() if not k.startswith("STEMEDB_")}
    result = subprocess.run(
        [*CLI, "verify", "--full", "--db", str(copy)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 1
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"stemedb verify: FAILED at seq {named}: record_digests: "), line
    assert "Traceback" not in result.stderr

    listed = _shell(copy, _forensics_query()).split()
    assert listed and int(listed[0].split("|")[0]) == named, listed


def test_the_forensics_query_lists_nothing_on_a_good_file(good_db: Path) -> None:
    assert _shell(good_db, _forensics_query()) == ""


def test_reindex_repairs_the_identities(good_db: Path, tmp_path: Path) -> None:
    from stemedb.store.verify import reindex

    copy = _copy(good_db, tmp_path)
    _shell(copy, f"DELETE FROM record_digests WHERE seq = {_seq_of(copy, 'epoch')}")
    assert not verify(copy, full=True).ok
    reindex(copy)
    assert verify(copy, full=True).ok


def test_the_forensics_query_knows_every_single_signature_kind() -> None:
    from stemedb.store.digests import SIGNER_KINDS

    query = _forensics_query()
    assert all(f"'{kind}'" in query for kind in SIGNER_KINDS)
