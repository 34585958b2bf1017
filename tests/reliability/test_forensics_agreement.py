"""`verify` is exactly as strict as the documented `sqlite3` query, frame by frame.

Bit flips mostly break a frame's hash, which both checkers see first. A careful
attacker rewrites a frame and then recomputes its hash and every chain value
after it, so only the column and record checks can see the change. Each example
here does that to many frames at once — fields set to values of every JSON type,
fields removed, keys duplicated, bytes of the body changed, bodies replaced by
other JSON or non-JSON, the `kind` column relabelled, columns stored with another
type — re-chains the whole journal, and requires that the Python check
(`frame_check.problem`, what `verify`, doctor and start-up run) and the query of
docs/forensics.md in the real `sqlite3` shell give every frame the same verdict
in the same words.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import apsw
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from journal_corpus import build

from stemedb.store import journal
from stemedb.store.frame_check import RECORD_KINDS, forensics_sql, problem, sha3

# The forensics query is part of the product: CI has the stock shell (as the runbook tests).
SQLITE3 = shutil.which("sqlite3") or "sqlite3"
FIELDS = [
    "kind",
    "subject",
    "predicate",
    "object",
    "confidence",
    "source_class",
    "lifecycle",
    "source",
    "source_hash",
    "parent_hash",
    "epoch",
    "timestamp",
    "signatures",
    "assertion_hash",
    "weight",
    "name",
    "description",
    "supersedes",
    "target_hash",
    "replacement_hash",
    "type",
    "reason",
    "alias",
    "canonical",
    "agent_id",
    "accurate",
]
HEX = "0123456789abcdef"
NAMES = ["Text", "Number", "Boolean", "Reference", "Clinical", "Proposed", "Correct", "x"]

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=6),
    st.text(HEX, min_size=63, max_size=65),
    st.text(HEX + "G\x00", min_size=64, max_size=64),
    st.sampled_from([*RECORD_KINDS, "header", *NAMES]),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(st.sampled_from(["type", "value", "agent_id", "signature"]), inner),
    ),
    max_leaves=6,
)
texts = st.sampled_from(
    ["[]", "1", '"x"', "{}", '{"kind":"vote"}', '{"a":NaN}', " {} ", '{"a":1}\x00{', "{"]
)
mutations = st.one_of(
    st.tuples(st.just("set"), st.sampled_from(FIELDS), values),
    st.tuples(
        st.just("set_in"),
        st.sampled_from([("object", "type"), ("object", "value"), ("signatures", 0, "agent_id")]),
        values,
    ),
    st.tuples(st.just("delete"), st.sampled_from(FIELDS), st.none()),
    st.tuples(st.just("duplicate"), st.sampled_from(FIELDS), values),
    st.tuples(st.just("byte"), st.integers(0, 10_000), st.integers(1, 255)),
    st.tuples(st.just("escape"), st.sampled_from(FIELDS), st.booleans()),
    st.tuples(st.just("text"), texts, st.none()),
    st.tuples(st.just("kind"), st.sampled_from([*RECORD_KINDS, "header", "Vote", ""]), st.none()),
    st.tuples(
        st.just("column"),
        st.sampled_from(["written_ms_real", "written_ms_text", "hash_text", "chain_short"]),
        st.none(),
    ),
)


@pytest.fixture(scope="module")
def golden(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build(tmp_path_factory.mktemp("agreement"), rounds=20)  # 121 frames


def _set_in(doc: Any, path: tuple[Any, ...], value: Any) -> None:
    for step in path[:-1]:
        if (isinstance(doc, dict) and step in doc) or (
            isinstance(doc, list) and isinstance(step, int) and step < len(doc)
        ):
            doc = doc[step]
        else:
            return
    last = path[-1]
    if (isinstance(doc, dict) and isinstance(last, str)) or (
        isinstance(doc, list) and isinstance(last, int) and last < len(doc)
    ):
        doc[last] = value


def _mutate(conn: apsw.Connection, seq: int, mutation: tuple[str, Any, Any]) -> None:
    what, arg, value = mutation
    ((raw,),) = conn.execute(
        "SELECT CAST(body AS BLOB) FROM journal WHERE seq = ?", (seq,)
    ).fetchall()
    assert isinstance(raw, bytes)
    body: bytes | None = None
    if what in ("set", "set_in", "delete"):
        doc = json.loads(raw)
        assert isinstance(doc, dict)
        if what == "set":
            doc[arg] = value
        elif what == "set_in":
            _set_in(doc, arg, value)
        else:
            doc.pop(arg, None)
        body = json.dumps(doc, ensure_ascii=seq % 2 == 0).encode()
    elif what == "duplicate":
        body = raw[:-1] + b"," + json.dumps({arg: value})[1:].encode()
    elif what == "escape":  # a key written with an escape, alone or next to the plain one
        escaped = f'"\\u{ord(arg[0]):04x}{arg[1:]}":'.encode()
        plain = f'"{arg}":'.encode()
        body = raw.replace(plain, escaped + b"1," + plain if value else escaped, 1)
    elif what == "byte":
        changed = bytearray(raw)
        changed[arg % len(changed)] ^= value
        body = bytes(changed)
    elif what == "text":
        body = arg.encode() + b" " * seq  # two frames never hold the same body (hash)
    elif what == "kind":
        conn.execute("UPDATE journal SET kind = ? WHERE seq = ?", (arg, seq))
    elif arg == "written_ms_real":
        conn.execute("UPDATE journal SET written_ms = written_ms + 0.5 WHERE seq = ?", (seq,))
    elif arg == "written_ms_text":
        conn.execute("UPDATE journal SET written_ms = written_ms || '!' WHERE seq = ?", (seq,))
    elif arg == "hash_text":
        conn.execute("UPDATE journal SET hash = lower(hex(hash)) WHERE seq = ?", (seq,))
    else:
        conn.execute("UPDATE journal SET chain = substr(chain, 1, 31) WHERE seq = ?", (seq,))
    if body is not None:
        conn.execute(
            "UPDATE journal SET body = CAST(? AS TEXT), hash = ? WHERE seq = ?",
            (body, sha3(body), seq),
        )


def _rechain(conn: apsw.Connection) -> None:
    """Every chain value recomputed the way the query concatenates (bytes as stored)."""
    previous = bytes(32)
    rows = conn.execute(
        "SELECT seq, CAST(hash AS BLOB), CAST(written_ms AS BLOB) FROM journal ORDER BY seq"
    ).fetchall()
    for seq, frame_hash, written in rows:
        assert isinstance(frame_hash, bytes) and isinstance(written, bytes)
        previous = sha3(previous + frame_hash + written)
        conn.execute(
            "UPDATE journal SET chain = ? WHERE seq = ? AND length(chain) = 32", (previous, seq)
        )


def _python_verdicts(path: Path) -> dict[int, str]:
    conn = apsw.Connection(str(path), flags=apsw.SQLITE_OPEN_READONLY)
    try:
        found: dict[int, str] = {}
        previous = None
        for raw in journal.iter_raw(conn):
            said = problem(raw, previous if previous and previous.seq == raw.seq - 1 else None)
            if said is not None:
                found[raw.seq] = said
            previous = raw
        return found
    finally:
        conn.close()


def _shell_verdicts(path: Path) -> dict[int, str]:
    done = subprocess.run(
        [SQLITE3, "-readonly", str(path), forensics_sql()],
        capture_output=True,
        text=True,
        errors="replace",
        timeout=60,
        check=False,
    )
    assert done.returncode == 0 and not done.stderr, done.stderr
    rows = [line.split("|", 1) for line in done.stdout.splitlines()]
    return {int(seq): said for seq, said in rows}


@settings(
    max_examples=80,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    changes=st.dictionaries(st.integers(1, 120), mutations, min_size=1, max_size=40),
)
def test_python_and_the_shell_give_every_rechained_frame_the_same_verdict(
    golden: Path, tmp_path: Path, changes: dict[int, tuple[str, Any, Any]]
) -> None:
    folder = tmp_path / "copy"
    shutil.rmtree(folder, ignore_errors=True)  # no -wal/-shm left from the last example
    folder.mkdir()
    path = folder / "stemedb.db"
    shutil.copyfile(golden, path)
    conn = apsw.Connection(str(path))
    conn.execute("DROP TRIGGER IF EXISTS journal_no_update")
    with conn:
        for seq, mutation in changes.items():
            _mutate(conn, seq, mutation)
        _rechain(conn)
    conn.close()

    python, shell = _python_verdicts(path), _shell_verdicts(path)
    assert python == shell
    # nothing else is blamed (a short chain also breaks the next frame's link)
    short = {seq + 1 for seq, m in changes.items() if m[1] == "chain_short"}
    assert set(python) <= set(changes) | short
    # and what the products run agrees: verify's first bad seq is the query's first row
    if python:
        with pytest.raises(journal.JournalError) as info:
            c = apsw.Connection(str(path), flags=apsw.SQLITE_OPEN_READONLY)
            try:
                journal.verify_all(c)
            finally:
                c.close()
        assert info.value.seq == min(shell)
