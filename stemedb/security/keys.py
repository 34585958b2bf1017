"""API keys: generation, storage (hashes only), lookup with a short-lived cache.

A key reads `stemedb_<id>_<secret>`: a fixed prefix secret scanners can
recognise, a 12-hex public id (what listings and logs show) and 64 hex
characters (256 random bits) of secret. The table `api_keys` stores only the
SHA3-256 of the whole key string; with 256-bit random secrets a slow
password hash adds nothing. `STEMEDB_ROOT_API_KEY` may be any string of at
least 32 characters and is stored the same way.

Roles are ordered reader < writer < admin. A `scope` (a concept path) limits
what a *writer* key may write to that subtree; expiry and revocation are
checked on every request. Lookups are cached for at most `CACHE_TTL_S`
(1 s) so a revocation made by `stemedb keys revoke` in another process takes
effect within a second; one made through the API clears the cache at once.
"""

from __future__ import annotations

import hmac
import re
import secrets
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, ClassVar

import apsw

from stemedb.crypto import sha3_256
from stemedb.errors import InvalidRequest, NotFound, Unauthorized
from stemedb.paths import PathError, check_path
from stemedb.security.per_store import PerStore
from stemedb.store import api_keys

KEY_PREFIX = "stemedb_"
ROLES: tuple[str, ...] = ("reader", "writer", "admin")
ROLE_RANK = {role: rank for rank, role in enumerate(ROLES, start=1)}
# Route.auth -> the least role allowed to call it.
REQUIRED_ROLE = {"read": "reader", "write": "writer", "admin": "admin"}
ROOT_KEY_NAME = "root (STEMEDB_ROOT_API_KEY)"
# The root key is recognised by its id, never by its name (any admin may name a
# key anything): `root-` + the first 12 hex digits of its own hash. Ordinary ids
# are 12 random hex digits, so no created key can carry this mark.
ROOT_ID_PREFIX = "root-"
ROOT_ID_HEX = 12
MIN_ROOT_KEY_CHARS = 32
MAX_NAME_CHARS = 128
CACHE_TTL_S = 1.0
CACHE_MAX = 4096
MAX_DURATION_S = 100 * 365 * 86400

_ID = re.compile(r"^[0-9a-f]{12}$|^root-[0-9a-f]{12}$")
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$", re.IGNORECASE)
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


@dataclass(frozen=True)
class ApiKey:
    """One row of `api_keys`, without its hash."""

    id: str
    name: str
    role: str
    scope: str | None
    created_ms: int
    expires_ms: int | None
    revoked_ms: int | None

    def status(self, now_ms: int) -> str:
        if self.revoked_ms is not None:
            return "revoked"
        if self.expires_ms is not None and now_ms >= self.expires_ms:
            return "expired"
        return "active"

    def allows(self, route_auth: str) -> bool:
        """True if this key's role may call a route whose `auth` is `route_auth`."""
        needed = REQUIRED_ROLE.get(route_auth)
        return needed is None or ROLE_RANK[self.role] >= ROLE_RANK[needed]

    def to_dict(self, now_ms: int | None = None) -> dict[str, Any]:
        now = _now_ms() if now_ms is None else now_ms
        return {
            "id": self.id,
            "name": self.name,
            "role": self.role,
            "scope": self.scope,
            "created_ms": self.created_ms,
            "expires_ms": self.expires_ms,
            "revoked_ms": self.revoked_ms,
            "status": self.status(now),
        }


def _now_ms() -> int:
    return int(time.time() * 1000)


def hash_key(secret: str) -> bytes:
    return sha3_256(secret.encode("utf-8"))


def generate_key() -> tuple[str, str]:
    """A new (id, full key string)."""
    key_id = secrets.token_hex(6)
    return key_id, f"{KEY_PREFIX}{key_id}_{secrets.token_hex(32)}"


def parse_duration_s(text: str) -> float:
    """`30d`, `12h`, `90m`, `3600s`, `2w` -> seconds; ValueError otherwise."""
    match = _DURATION.match(text)
    if not match or float(match.group(1)) <= 0:
        raise ValueError(f"expected a positive duration like 30d, 12h, 90m or 2w, got {text!r}")
    seconds = float(match.group(1)) * _UNIT_S[match.group(2).lower()]
    if seconds > MAX_DURATION_S:
        raise ValueError(f"at most 100 years, got {text!r}")
    return seconds


def check_role(role: str) -> str:
    if role not in ROLES:
        raise InvalidRequest.field("role", f"must be one of {', '.join(ROLES)}, got {role!r}")
    return role


def check_scope(scope: str | None, role: str) -> str | None:
    """The normalised scope path; only writer keys can be scoped."""
    if scope is None or scope == "":
        return None
    if role != "writer":
        raise InvalidRequest.field(
            "scope", f"only writer keys can be scoped (a scope limits writes; role is {role})"
        )
    try:
        return check_path(scope)
    except PathError as exc:
        raise InvalidRequest.field("scope", f"not a concept path: {exc}") from None


def _row(values: tuple[Any, ...]) -> ApiKey:
    return ApiKey(*values)


# ---- operations on a connection (shared by the server and the CLI) --------------


def insert_key(
    conn: apsw.Connection,
    *,
    role: str,
    name: str = "",
    scope: str | None = None,
    expires_ms: int | None = None,
    now_ms: int | None = None,
) -> tuple[ApiKey, str]:
    """Create a key; returns (record, full key string). The string is never stored."""
    check_role(role)
    scope = check_scope(scope, role)
    if len(name) > MAX_NAME_CHARS or any(ord(ch) < 32 or ord(ch) == 127 for ch in name):
        raise InvalidRequest.field("name", f"at most {MAX_NAME_CHARS} printable characters")
    now = _now_ms() if now_ms is None else now_ms
    if expires_ms is not None and expires_ms <= now:
        raise InvalidRequest.field("expires_ms", "must be in the future")
    key_id, secret = generate_key()
    record = ApiKey(key_id, name or f"{role} key", role, scope, now, expires_ms, None)
    api_keys.insert(conn, key_id, hash_key(secret), record.name, role, scope, now, expires_ms)
    return record, secret


def list_keys(conn: apsw.Connection) -> list[ApiKey]:
    return [_row(row) for row in api_keys.all_rows(conn)]


def get_key(conn: apsw.Connection, key_id: str) -> ApiKey | None:
    row = api_keys.row_by_id(conn, key_id)
    return _row(row) if row is not None else None


def find_by_secret(conn: apsw.Connection, secret: str) -> ApiKey | None:
    digest = hash_key(secret)
    found = api_keys.row_by_hash(conn, digest)
    stored = found[1] if found else None
    if found is None or not isinstance(stored, bytes) or not hmac.compare_digest(stored, digest):
        return None
    return _row(found[0])


def revoke_key(conn: apsw.Connection, key_id: str, now_ms: int | None = None) -> ApiKey:
    """Revoke (idempotent: an already revoked key keeps its first revocation time)."""
    if not _ID.match(key_id):
        raise NotFound(f"no API key with id {key_id[:40]!r}")
    now = _now_ms() if now_ms is None else now_ms
    api_keys.revoke(conn, key_id, now)
    key = get_key(conn, key_id)
    if key is None:
        raise NotFound(f"no API key with id {key_id!r}")
    return key


def root_key_id(digest: bytes) -> str:
    """The id of the root key whose SHA3-256 is `digest` (its only mark as root)."""
    return ROOT_ID_PREFIX + digest.hex()[:ROOT_ID_HEX]


def seed_root_key(conn: apsw.Connection, secret: str, now_ms: int | None = None) -> str:
    """Make `secret` an admin key unless its hash is already stored (idempotent).

    Earlier root keys (seeded from a different value) are revoked, so changing
    STEMEDB_ROOT_API_KEY and restarting rotates it. A root key is recognised by
    its id derived from its own hash (`root_key_id`), not by its name: a key an
    admin created and named like the root key is an ordinary key and is never
    revoked here. Returns what happened.
    """
    now = _now_ms() if now_ms is None else now_ms
    digest = hash_key(secret)
    existing = find_by_secret(conn, secret)
    rotated = api_keys.revoke_other_roots(conn, digest, now, ROOT_ID_PREFIX, ROOT_ID_HEX)
    note = f"; revoked the previous root key {', '.join(rotated)}" if rotated else ""
    if existing is not None:
        state = existing.status(now)
        return f"root API key {existing.id} present ({state}){note}"
    key_id = root_key_id(digest)
    api_keys.insert(conn, key_id, digest, ROOT_KEY_NAME, "admin", None, now, None)
    return f"root API key {key_id} seeded{note}"


# ---- the server's view: a cached authenticator bound to one Store ---------------


class KeyStore:
    """Authenticate `X-API-Key` values and manage keys through the store's writer."""

    _per_store: ClassVar[PerStore[KeyStore]] = PerStore()

    def __init__(self, store: Any, *, ttl_s: float = CACHE_TTL_S) -> None:
        self.store = store
        self.ttl_s = ttl_s
        self._cache: OrderedDict[bytes, tuple[float, ApiKey | None]] = OrderedDict()
        self._lock = threading.Lock()

    @classmethod
    def for_store(cls, store: Any) -> KeyStore:
        """The one KeyStore of `store` (routes and middleware must share its cache)."""
        return cls._per_store.get(store, lambda: cls(store))

    def authenticate(self, secret: str | None, now_ms: int | None = None) -> ApiKey:
        """The active key for `secret`; Unauthorized saying why otherwise."""
        if not secret:
            raise Unauthorized("an API key is required: send it in the X-API-Key header")
        key = self._lookup(secret)
        if key is None:
            raise Unauthorized("the API key is not valid")
        status = key.status(_now_ms() if now_ms is None else now_ms)
        if status != "active":
            raise Unauthorized(f"the API key {key.id} is {status}")
        return key

    def _lookup(self, secret: str) -> ApiKey | None:
        digest = hash_key(secret)
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(digest)
            if hit is not None and now - hit[0] < self.ttl_s:
                return hit[1]
        with self.store.reader() as conn:
            key = find_by_secret(conn, secret)
        with self._lock:
            self._cache[digest] = (now, key)
            self._cache.move_to_end(digest)
            while len(self._cache) > CACHE_MAX:
                self._cache.popitem(last=False)
        return key

    def invalidate(self) -> None:
        with self._lock:
            self._cache.clear()

    def list(self) -> list[ApiKey]:
        with self.store.reader() as conn:
            return list_keys(conn)

    def create(
        self, role: str, name: str = "", scope: str | None = None, expires_ms: int | None = None
    ) -> tuple[ApiKey, str]:
        result: tuple[ApiKey, str] = self.store.write_local(
            lambda conn: insert_key(conn, role=role, name=name, scope=scope, expires_ms=expires_ms)
        )
        self.invalidate()  # a lookup of this key may have been cached as unknown
        return result

    def revoke(self, key_id: str) -> ApiKey:
        try:
            key: ApiKey = self.store.write_local(lambda conn: revoke_key(conn, key_id))
        finally:
            self.invalidate()
        return key

    def seed_root(self, secret: str) -> str:
        note: str = self.store.write_local(lambda conn: seed_root_key(conn, secret))
        self.invalidate()
        return note
