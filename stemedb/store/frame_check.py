"""What makes one journal frame intact: one list of rules, checked two ways.

Every column of a frame carries meaning, so every column is checked: `seq`
continuity, `kind` (equal to the body's `kind`; frame 0 and only frame 0 is
the `header`), `hash` and `chain` (32-byte blobs, the hash of the body and the
chain link), `written_ms` (an integer) and `body` (valid UTF-8, a JSON object,
a well-formed record of its kind). The chain formula itself is unchanged
(storage.md): the `kind` column is cross-checked against the hashed body
instead of being hashed.

The same rules are written twice from one table below: as Python (`problem`,
used by `stemedb verify`, `doctor`, the start-up tail check and reads) and as
one query for the stock `sqlite3` shell (`forensics_sql`, printed verbatim in
docs/forensics.md; a test keeps the two identical). So `verify` is exactly as
strict as the documented query: both name the same first bad seq with the same
words. Each check reads only what the checks before it proved well-typed, in
the same order on both sides (SQL's CASE stops at the first true branch).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from stemedb.records import RECORD_KINDS as MODEL_KINDS
from stemedb.records.fields import Lifecycle, ObjectType, SourceClass, SupersessionType

RECORD_KINDS = MODEL_KINDS  # one list of record kinds: stemedb.records
HEADER_FORMAT = "stemedb-journal"
HEADER_VERSION = 1
_HEX64 = re.compile("[0-9a-f]{64}")

# Valid UTF-8 as a regular expression over upper-case hex digits (the shell has REGEXP;
# it has no UTF-8 validator). Byte pairs: ASCII, 2-, 3- and 4-byte sequences without
# overlong forms, surrogates or code points above U+10FFFF (RFC 3629 §4).
_C = "[89AB][0-9A-F]"
UTF8_HEX_REGEXP = (
    "^([0-7][0-9A-F]"
    f"|C[2-9A-F]{_C}|D[0-9A-F]{_C}"
    f"|E0[AB][0-9A-F]{_C}|E[1-9A-CEF]{_C}{_C}|ED[89][0-9A-F]{_C}"
    f"|F0[9AB][0-9A-F]{_C}{_C}|F[1-3]{_C}{_C}{_C}|F48[0-9A-F]{_C}{_C})*$"
)

Path = tuple[str | int, ...]


@dataclass(frozen=True)
class RawFrame:
    """One journal row exactly as stored: each column's SQLite type and its bytes.

    Read with `CAST(... AS BLOB)` so that no stored value, however damaged, can
    make the driver raise while fetching (apsw decodes TEXT as UTF-8).
    """

    seq: int
    kind_type: str
    kind: bytes | None
    hash_type: str
    hash: bytes | None
    body_type: str
    body: bytes | None
    written_type: str
    written_ms: int | None
    chain_type: str
    chain: bytes | None


RAW_COLUMNS = (
    "seq, typeof(kind), CAST(kind AS BLOB), typeof(hash), CAST(hash AS BLOB),"
    " typeof(body), CAST(body AS BLOB), typeof(written_ms),"
    " CASE typeof(written_ms) WHEN 'integer' THEN written_ms END,"
    " typeof(chain), CAST(chain AS BLOB)"
)


def raw_from_row(row: Sequence[Any]) -> RawFrame:
    return RawFrame(*row)


class _Duplicate(ValueError):
    pass


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    value = dict(pairs)
    if len(value) != len(pairs):
        raise _Duplicate("duplicate key")
    return value


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def parse_body(text: str) -> Any:
    """JSON as the shell's `json_valid` sees it: RFC 8259, no NaN, no duplicate keys."""
    return json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_reject_constant)


def _escaped_key(text: str) -> bool:
    """True when a key of this (valid) JSON text is written with an escape (`"\\u006bind"`).

    SQLite versions differ on whether `$.kind` finds such a key and name it raw in
    json_tree's `fullkey`; Python decodes it. Canonical bodies never escape a key,
    so such a body is refused on both sides instead of read two ways.
    """
    at, end = 0, len(text)
    while (start := text.find('"', at)) >= 0:
        close = start
        while True:  # the closing quote: one not preceded by an odd run of backslashes
            close = text.find('"', close + 1)
            run = close - 1
            while text[run] == "\\":
                run -= 1
            if (close - 1 - run) % 2 == 0:
                break
        after = close + 1
        while after < end and text[after] in " \t\n\r":
            after += 1
        if after < end and text[after] == ":" and "\\" in text[start:close]:
            return True
        at = close + 1
    return False


# ---- JSON paths, evaluated the way SQLite's json_type/json_extract do ----------------


class _Absent:
    """A missing field (json_type NULL); its type stands for '-' in `_PY_TYPES`."""


_ABSENT = _Absent()


def _at(doc: Any, path: Path) -> Any:
    for step in path:
        if isinstance(step, int):
            if not isinstance(doc, list) or step >= len(doc):
                return _ABSENT
        elif not isinstance(doc, dict) or step not in doc:
            return _ABSENT
        doc = doc[step]
    return doc


def json_type(value: Any) -> str | None:
    """SQLite's json_type() of a parsed value (None = absent)."""
    if value is _ABSENT:
        return None
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "real"
    if isinstance(value, str):
        return "text"
    return "array" if isinstance(value, list) else "object"


def _sql_path(path: Path) -> str:
    return "$" + "".join(f"[{s}]" if isinstance(s, int) else f".{s}" for s in path)


def _q(values: Sequence[str]) -> str:
    return ", ".join(f"'{v}'" for v in values)


def _is_hex64(value: Any) -> bool:
    return isinstance(value, str) and _HEX64.fullmatch(value) is not None


def _sql_hex64(expr: str) -> str:
    # On the hex of the bytes, not the text: length() and GLOB stop at a NUL character.
    return f"hex({expr}) REGEXP '^(3[0-9]|6[1-6]){{64}}$'"


# ---- record rules: one field each --------------------------------------------------


@dataclass(frozen=True)
class Rule:
    """A field of a record body; `bad_py`/`bad_sql` are true when it is malformed."""

    field: str
    bad_py: Callable[[Any], bool]
    bad_sql: str


# json_type -> the Python type json.loads gives it (bool only for true/false: a bool is
# not an "integer" here, as in SQLite); `_Absent` stands for a missing field ('-').
_PY_TYPES: dict[str, type] = {
    "text": str,
    "integer": int,
    "real": float,
    "true": bool,
    "false": bool,
    "array": list,
    "object": dict,
    "null": type(None),
    "-": _Absent,
}


def _typed(path: Path, types: Sequence[str], optional: bool = False) -> Rule:
    allowed = (*types, "-") if optional else tuple(types)
    sql = f"coalesce(json_type(body, '{_sql_path(path)}'), '-') NOT IN ({_q(allowed)})"
    py_types = frozenset(_PY_TYPES[t] for t in allowed)
    if len(path) == 1:  # the common case, kept fast: readers check every frame they send
        key = path[0]
        return Rule(str(key), lambda d: type(d.get(key, _ABSENT)) not in py_types, sql)
    return Rule(_sql_path(path)[2:], lambda d: type(_at(d, path)) not in py_types, sql)


def _hex64(path: Path, optional: bool = False, when: Path | None = None) -> Rule:
    p = _sql_path(path)
    value = f"json_extract(body, '{p}')"
    good = f"coalesce(json_type(body, '{p}') = 'text' AND {_sql_hex64(value)}, 0)"
    guard = path if optional else when
    sql = (
        f"NOT {good}"
        if guard is None
        else (f"json_type(body, '{_sql_path(guard)}') IS NOT NULL AND NOT {good}")
    )

    def bad(d: Any) -> bool:
        if guard is not None and _at(d, guard) is _ABSENT:
            return False
        return not _is_hex64(_at(d, path))

    return Rule(p[2:], bad, sql)


def _enum(path: Path, values: Sequence[str]) -> Rule:
    p = _sql_path(path)
    sql = (
        f"NOT coalesce(json_type(body, '{p}') = 'text'"
        f" AND json_extract(body, '{p}') IN ({_q(values)}), 0)"
    )
    return Rule(p[2:], lambda d: not (isinstance(v := _at(d, path), str) and v in values), sql)


def _optional_enum(path: Path, values: Sequence[str]) -> Rule:
    """`_enum` for a key that may be absent (source.tier)."""
    p = _sql_path(path)
    rule = _enum(path, values)
    sql = f"json_type(body, '{p}') IS NOT NULL AND {rule.bad_sql}"
    return Rule(rule.field, lambda d: _at(d, path) is not _ABSENT and rule.bad_py(d), sql)


def _each_hex64(path: Path) -> Rule:
    p = _sql_path(path)
    sql = (
        f"EXISTS (SELECT 1 FROM json_each(body, '{p}')"
        f" WHERE NOT coalesce(type = 'text' AND {_sql_hex64('value')}, 0))"
    )

    def bad(d: Any) -> bool:
        items = _at(d, path)
        return isinstance(items, list) and not all(_is_hex64(v) for v in items)

    return Rule(p[2:], bad, sql)


_VALUE_TYPES = {"Text": ("text",), "Reference": ("text",), "Number": ("integer", "real")}
_VALUE_TYPES["Boolean"] = ("true", "false")


def _object_value() -> Rule:
    whens = " ".join(
        f"WHEN '{name}' THEN json_type(body, '$.object.value') IN ({_q(types)})"
        for name, types in _VALUE_TYPES.items()
    )
    sql = f"NOT coalesce(CASE json_extract(body, '$.object.type') {whens} ELSE 0 END, 0)"

    def bad(d: Any) -> bool:
        kind = _at(d, ("object", "type"))
        types = _VALUE_TYPES.get(kind) if isinstance(kind, str) else None
        return types is None or json_type(_at(d, ("object", "value"))) not in types

    return Rule("object.value", bad, sql)


_NUMBER = ("integer", "real")
_COMMON = (
    _typed(("timestamp",), ("integer",)),
    _typed(("signatures",), ("array",), optional=True),
    _hex64(("signatures", 0, "agent_id"), when=("signatures",)),
)
RECORD_RULES: dict[str, tuple[Rule, ...]] = {
    "assertion": (
        _typed(("subject",), ("text",)),
        _typed(("predicate",), ("text",)),
        _typed(("object",), ("object",)),
        _enum(("object", "type"), [t.value for t in ObjectType]),
        _object_value(),
        _typed(("confidence",), _NUMBER),
        _enum(("source_class",), [c.name for c in SourceClass]),
        _enum(("lifecycle",), [c.value for c in Lifecycle]),
        _typed(("source",), ("text",), optional=True),
        _hex64(("source_hash",), optional=True),
        _hex64(("parent_hash",), optional=True),
        _hex64(("epoch",), optional=True),
        *_COMMON,
    ),
    "vote": (_hex64(("assertion_hash",)), _typed(("weight",), _NUMBER), *_COMMON),
    "epoch": (
        _typed(("name",), ("text",)),
        _typed(("description",), ("text",), optional=True),
        _typed(("supersedes",), ("array",), optional=True),
        _each_hex64(("supersedes",)),
        *_COMMON,
    ),
    "supersession": (
        _hex64(("target_hash",)),
        _hex64(("replacement_hash",), optional=True),
        _enum(("type",), [t.value for t in SupersessionType]),
        _typed(("reason",), ("text",), optional=True),
        *_COMMON,
    ),
    "alias": (_typed(("alias",), ("text",)), _typed(("canonical",), ("text",)), *_COMMON),
    "outcome": (
        _hex64(("agent_id",)),
        _hex64(("assertion_hash",)),
        _typed(("accurate",), ("true", "false")),
        *_COMMON,
    ),
    "agent_tier": (  # records/agent_tier.py
        _hex64(("agent_id",)),
        _enum(("max_tier",), [c.name for c in SourceClass]),
        _typed(("name",), ("text",), optional=True),
        _typed(("note",), ("text",), optional=True),
        *_COMMON,
    ),
    "quarantine_decision": (  # records/quarantine.py
        _hex64(("target_hash",)),
        _enum(("decision",), ["release", "reject"]),
        _typed(("reason",), ("text",), optional=True),
        *_COMMON,
    ),
    "source": (  # records/source.py
        _typed(("identifier",), ("text",)),
        _typed(("title",), ("text",), optional=True),
        _typed(("publisher",), ("text",), optional=True),
        _optional_enum(("tier",), [c.name for c in SourceClass]),
        _hex64(("publisher_key",), optional=True),
        _hex64(("content_hash",), optional=True),
        *_COMMON,
    ),
    "retraction": (_hex64(("source_id",)), _typed(("reason",), ("text",)), *_COMMON),
}


def _header_bad(d: Any) -> bool:
    return not (
        d.get("format") == HEADER_FORMAT
        and json_type(d.get("version", _ABSENT)) == "integer"
        and d["version"] == HEADER_VERSION
        and json_type(d.get("created_ms", _ABSENT)) == "integer"
        and isinstance(d.get("node_id"), str)
    )


_HEADER_SQL = (
    f"NOT coalesce(json_type(body, '$.format') = 'text'"
    f" AND json_extract(body, '$.format') = '{HEADER_FORMAT}'"
    f" AND json_type(body, '$.version') = 'integer'"
    f" AND json_extract(body, '$.version') = {HEADER_VERSION}"
    " AND json_type(body, '$.created_ms') = 'integer'"
    " AND json_type(body, '$.node_id') = 'text', 0)"
)


# ---- the frame check ----------------------------------------------------------------


def sha3(data: bytes) -> bytes:
    return hashlib.sha3_256(data).digest()


def problem(
    frame: RawFrame, previous: RawFrame | None, *, link: bool = True, strict: bool = True
) -> str | None:
    """The first thing wrong with `frame` (None = intact), in the query's words.

    `previous` is the stored frame seq-1 (None when there is none). With
    `link=False` (readers handing out one frame) the gap and chain checks are
    skipped: they need the neighbour, and they are `verify`'s job. With
    `strict=False` duplicate keys are not looked for (a slow Python hook per
    object); a duplicated `kind` still fails the kind check.
    """
    seq = frame.seq
    if seq < 0:
        return "seq below 0"
    if link and seq > 0 and previous is None:
        return "gap: the frame before it is missing"
    if frame.kind_type != "text":
        return "kind column is not text"
    if frame.hash_type != "blob" or len(frame.hash or b"") != 32:
        return "hash column is not a 32-byte blob"
    if frame.chain_type != "blob" or len(frame.chain or b"") != 32:
        return "chain column is not a 32-byte blob"
    if frame.written_type != "integer":
        return "written_ms column is not an integer"
    if frame.body_type != "text":
        return "body column is not text"
    body = frame.body or b""
    if sha3(body) != frame.hash:
        return "hash does not match its body"
    before = bytes(32) if seq == 0 else (previous.chain if previous else None)
    chained = sha3((before or b"") + (frame.hash or b"") + str(frame.written_ms).encode())
    if link and before is not None and chained != frame.chain:
        return "chain link is broken"
    if b"\x00" in body:
        return "body contains a NUL byte"
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return "body is not valid UTF-8"
    duplicate = False
    try:
        doc = parse_body(text) if strict else json.loads(text, parse_constant=_reject_constant)
    except _Duplicate:  # well-formed but ambiguous: SQLite reads the first, Python the last
        duplicate = True
        doc = json.loads(text, parse_constant=_reject_constant)
    except (ValueError, RecursionError):
        return "body is not JSON"
    if not isinstance(doc, dict):
        return "body is not a JSON object"
    if "\\" in text and _escaped_key(text):
        return "body has an escaped key"
    if duplicate:
        return "body has a duplicate key"
    kind = (frame.kind or b"").decode("utf-8", "replace")
    if seq == 0:
        if kind != "header":
            return "kind column of frame 0 is not header"
        return "header body is not a stemedb-journal v1 header" if _header_bad(doc) else None
    if kind not in RECORD_KINDS:
        return "kind column is not a record kind"
    if doc.get("kind") != kind:
        return "kind column does not match the body's kind"
    for rule in RECORD_RULES[kind]:
        if rule.bad_py(doc):
            return f"not a valid {kind} record: {rule.field}"
    return None


def _case_branches() -> list[tuple[str, str | None]]:
    branches: list[tuple[str, str | None]] = [
        ("seq < 0", "seq below 0"),
        ("seq > 0 AND p_seq IS NULL", "gap: the frame before it is missing"),
        ("typeof(kind) <> 'text'", "kind column is not text"),
        (
            "typeof(hash) <> 'blob' OR length(hash) <> 32",
            "hash column is not a 32-byte blob",
        ),
        (
            "typeof(chain) <> 'blob' OR length(chain) <> 32",
            "chain column is not a 32-byte blob",
        ),
        ("typeof(written_ms) <> 'integer'", "written_ms column is not an integer"),
        ("typeof(body) <> 'text'", "body column is not text"),
        ("hash <> sha3(body, 256)", "hash does not match its body"),
        (
            "chain <> sha3(CASE seq WHEN 0 THEN zeroblob(32) ELSE p_chain END"
            " || hash || written_ms, 256)",
            "chain link is broken",
        ),
        ("instr(CAST(body AS BLOB), x'00') > 0", "body contains a NUL byte"),
        (f"NOT hex(body) REGEXP '{UTF8_HEX_REGEXP}'", "body is not valid UTF-8"),
        ("NOT json_valid(body)", "body is not JSON"),
        ("json_type(body) <> 'object'", "body is not a JSON object"),
        (
            "EXISTS (SELECT 1 FROM json_tree(body) WHERE instr(fullkey, char(92)) > 0)",
            "body has an escaped key",
        ),
        (
            "EXISTS (SELECT 1 FROM json_tree(body) GROUP BY fullkey HAVING count(*) > 1)",
            "body has a duplicate key",
        ),
        ("seq = 0 AND kind <> 'header'", "kind column of frame 0 is not header"),
        (f"seq = 0 AND {_HEADER_SQL}", "header body is not a stemedb-journal v1 header"),
        ("seq = 0", None),
        (f"kind NOT IN ({_q(RECORD_KINDS)})", "kind column is not a record kind"),
        (
            "kind IS NOT json_extract(body, '$.kind')",
            "kind column does not match the body's kind",
        ),
    ]
    for kind, rules in RECORD_RULES.items():
        branches.extend(
            (f"kind = '{kind}' AND {r.bad_sql}", f"not a valid {kind} record: {r.field}")
            for r in rules
        )
    return branches


def _sql_text(value: str | None) -> str:
    return "NULL" if value is None else "'" + value.replace("'", "''") + "'"


def forensics_sql() -> str:
    """The whole-journal check for the stock `sqlite3` shell (3.36+: sha3, REGEXP)."""
    whens = "\n".join(f"    WHEN {cond} THEN {_sql_text(said)}" for cond, said in _case_branches())
    return (
        "WITH frame AS (\n"
        "  SELECT j.*, p.seq AS p_seq, p.chain AS p_chain\n"
        "  FROM journal j LEFT JOIN journal p ON p.seq = j.seq - 1\n"
        "), checked AS (\n"
        "  SELECT seq, CASE\n"
        f"{whens}\n"
        "  END AS problem FROM frame\n"
        "  UNION ALL\n"
        "  SELECT 0, 'header frame (seq 0) is missing'\n"
        "  WHERE NOT EXISTS (SELECT 1 FROM journal WHERE seq = 0)\n"
        ")\n"
        "SELECT seq, problem FROM checked WHERE problem IS NOT NULL ORDER BY seq;"
    )
