"""The `api_keys` table: the SQL behind stemedb.security.keys.

The rules (roles, scopes, how a key string is made and hashed, what makes a
key the root key) stay in security/keys.py; this module only reads and writes
rows, so every SQL statement of the project lives under store/. Rows are
plain tuples in `COLUMNS` order. Writes run inside the caller's transaction
(the server's writer via `write_local`, or `immediate` for the CLI).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import apsw

from stemedb.store.schema import fetchall

COLUMNS = "id, name, role, scope, created_ms, expires_ms, revoked_ms"
Row = tuple[Any, ...]
T = TypeVar("T")


def _is_root_sql(id_prefix: str, id_hex: int) -> str:
    """The root key's mark: its id is `id_prefix` + the first `id_hex` hex digits of its hash."""
    return (
        f"(id LIKE '{id_prefix}%' AND "
        f"id = '{id_prefix}' || lower(hex(substr(key_hash, 1, {id_hex // 2}))))"
    )


def insert(
    conn: apsw.Connection,
    key_id: str,
    key_hash: bytes,
    name: str,
    role: str,
    scope: str | None,
    created_ms: int,
    expires_ms: int | None,
) -> None:
    conn.execute(
        "INSERT INTO api_keys (id, key_hash, name, role, scope, created_ms, expires_ms, "
        "revoked_ms) VALUES (?, ?, ?, ?, ?, ?, ?, NULL)",
        (key_id, key_hash, name, role, scope, created_ms, expires_ms),
    )


def all_rows(conn: apsw.Connection) -> list[Row]:
    return fetchall(conn, f"SELECT {COLUMNS} FROM api_keys ORDER BY created_ms, id")


def row_by_id(conn: apsw.Connection, key_id: str) -> Row | None:
    rows = fetchall(conn, f"SELECT {COLUMNS} FROM api_keys WHERE id = ?", (key_id,))
    return rows[0] if rows else None


def row_by_hash(conn: apsw.Connection, digest: bytes) -> tuple[Row, Any] | None:
    """(row, the stored key_hash) for `digest`; the caller compares in constant time."""
    rows = fetchall(conn, f"SELECT {COLUMNS}, key_hash FROM api_keys WHERE key_hash = ?", (digest,))
    return (rows[0][:-1], rows[0][-1]) if rows else None


def revoke(conn: apsw.Connection, key_id: str, now_ms: int) -> None:
    """Set `revoked_ms` unless already revoked (the first revocation time stays)."""
    conn.execute(
        "UPDATE api_keys SET revoked_ms = ? WHERE id = ? AND revoked_ms IS NULL", (now_ms, key_id)
    )


def revoke_other_roots(
    conn: apsw.Connection, digest: bytes, now_ms: int, id_prefix: str, id_hex: int
) -> list[str]:
    """Revoke every active root key whose hash is not `digest`; their ids."""
    rows = fetchall(
        conn,
        f"UPDATE api_keys SET revoked_ms = ? WHERE {_is_root_sql(id_prefix, id_hex)} "
        "AND key_hash != ? AND revoked_ms IS NULL RETURNING id",
        (now_ms, digest),
    )
    return [str(row[0]) for row in rows]


def immediate(conn: apsw.Connection, fn: Callable[[apsw.Connection], T]) -> T:
    """Run `fn(conn)` in one write transaction, taken before reading (offline tools)."""
    conn.execute("BEGIN IMMEDIATE")  # take the write lock first: no stale-snapshot upgrade
    try:
        result = fn(conn)
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
    return result
