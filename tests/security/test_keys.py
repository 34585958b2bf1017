"""API keys: format, hashing, roles, scopes, expiry, revocation, root seeding, cache."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import pytest

from stemedb.config import ConfigError, Settings, load_settings
from stemedb.crypto import sha3_256
from stemedb.errors import InvalidRequest, NotFound, Unauthorized
from stemedb.security.keys import (
    ROOT_KEY_NAME,
    ApiKey,
    KeyStore,
    generate_key,
    insert_key,
    list_keys,
    parse_duration_s,
    revoke_key,
    seed_root_key,
)
from stemedb.store import Store

KEY_FORMAT = re.compile(r"^stemedb_[0-9a-f]{12}_[0-9a-f]{64}$")


@pytest.fixture
def store(tmp_path: Path) -> Any:
    settings = Settings(db_dir=tmp_path / "db", wal_dir=tmp_path / "wal")
    settings.db_dir.mkdir()
    opened = Store(settings).open()
    yield opened
    opened.close()


def test_generated_keys_have_a_recognisable_prefix_and_256_random_bits() -> None:
    seen = set()
    for _ in range(50):
        key_id, secret = generate_key()
        assert KEY_FORMAT.match(secret), secret
        assert secret.split("_")[1] == key_id
        seen.add(secret)
    assert len(seen) == 50


def test_only_the_sha3_hash_of_a_key_is_stored(store: Any) -> None:
    key, secret = store.write_local(lambda c: insert_key(c, role="writer", name="ci"))
    with store.reader() as conn:
        rows = conn.execute("SELECT * FROM api_keys").fetchall()
    assert len(rows) == 1
    flat = [str(v) for v in rows[0]] + [bytes(v).hex() for v in rows[0] if isinstance(v, bytes)]
    assert not any(secret in v or secret.split("_")[2] in v for v in flat)
    assert sha3_256(secret.encode()) in rows[0]
    assert key.role == "writer" and key.name == "ci"


@pytest.mark.parametrize(
    ("role", "route_auth", "allowed"),
    [
        ("reader", "read", True),
        ("reader", "write", False),
        ("reader", "admin", False),
        ("writer", "read", True),
        ("writer", "write", True),
        ("writer", "admin", False),
        ("admin", "read", True),
        ("admin", "write", True),
        ("admin", "admin", True),
    ],
)
def test_roles_are_ordered_reader_writer_admin(role: str, route_auth: str, allowed: bool) -> None:
    key = ApiKey("abc", "n", role, None, 0, None, None)
    assert key.allows(route_auth) is allowed


def test_scope_is_normalised_and_only_for_writers(store: Any) -> None:
    key, _ = store.write_local(lambda c: insert_key(c, role="writer", scope="drugs/"))
    assert key.scope == "drugs"
    for role in ("reader", "admin"):
        with pytest.raises(InvalidRequest, match="only writer keys can be scoped"):
            store.write_local(lambda c, r=role: insert_key(c, role=r, scope="drugs"))
    with pytest.raises(InvalidRequest, match="not a concept path"):
        store.write_local(lambda c: insert_key(c, role="writer", scope="a//b"))
    with pytest.raises(InvalidRequest, match="role"):
        store.write_local(lambda c: insert_key(c, role="superuser"))


def test_authenticate_accepts_active_and_refuses_unknown_expired_revoked(store: Any) -> None:
    keys = KeyStore(store)
    now = int(time.time() * 1000)
    active, active_secret = keys.create("reader")
    _, expiring_secret = keys.create("reader", expires_ms=now + 60_000)
    assert keys.authenticate(active_secret).id == active.id
    with pytest.raises(Unauthorized, match="required"):
        keys.authenticate(None)
    with pytest.raises(Unauthorized, match="not valid"):
        keys.authenticate(active_secret[:-1] + ("0" if active_secret[-1] != "0" else "1"))
    assert keys.authenticate(expiring_secret, now_ms=now + 59_000)
    with pytest.raises(Unauthorized, match="expired"):
        keys.authenticate(expiring_secret, now_ms=now + 60_000)
    keys.revoke(active.id)
    with pytest.raises(Unauthorized, match="revoked"):
        keys.authenticate(active_secret)


def test_revocation_from_another_connection_is_seen_within_the_cache_ttl(store: Any) -> None:
    """`stemedb keys revoke` writes from another process; the cache must notice within 1 s."""
    keys = KeyStore(store, ttl_s=0.3)
    key, secret = keys.create("writer")
    keys.authenticate(secret)  # cached now
    from stemedb.store import schema

    other = schema.connect(store.path)
    try:
        with other:
            revoke_key(other, key.id)
    finally:
        other.close()
    keys.authenticate(secret)  # still within the TTL: the cached answer
    time.sleep(0.35)
    with pytest.raises(Unauthorized, match="revoked"):
        keys.authenticate(secret)


def test_revoking_is_idempotent_and_unknown_ids_are_not_found(store: Any) -> None:
    keys = KeyStore(store)
    key, _ = keys.create("reader")
    first = keys.revoke(key.id)
    time.sleep(0.01)
    again = keys.revoke(key.id)
    assert first.revoked_ms is not None and again.revoked_ms == first.revoked_ms
    with pytest.raises(NotFound):
        keys.revoke("000000000000")
    with pytest.raises(NotFound):
        keys.revoke("../etc/passwd")


def test_root_key_seeding_is_idempotent_and_rotation_revokes_the_old_root(store: Any) -> None:
    first, second = "a" * 40, "b" * 40
    note = store.write_local(lambda c: seed_root_key(c, first))
    assert "seeded" in note
    assert "present (active)" in store.write_local(lambda c: seed_root_key(c, first))
    with store.reader() as conn:
        assert len(list_keys(conn)) == 1
    note = store.write_local(lambda c: seed_root_key(c, second))
    assert "seeded" in note and "revoked the previous root key" in note
    with store.reader() as conn:
        roots = {k.id: k for k in list_keys(conn) if k.name == ROOT_KEY_NAME}
    assert sorted(k.status(int(time.time() * 1000)) for k in roots.values()) == [
        "active",
        "revoked",
    ]
    keys = KeyStore(store)
    assert keys.authenticate(second).role == "admin"
    with pytest.raises(Unauthorized, match="revoked"):
        keys.authenticate(first)


def test_a_revoked_root_key_stays_revoked_across_restarts(store: Any) -> None:
    keys = KeyStore(store)
    keys.seed_root("c" * 40)
    root = keys.authenticate("c" * 40)
    keys.revoke(root.id)
    assert "present (revoked)" in keys.seed_root("c" * 40)
    with pytest.raises(Unauthorized):
        keys.authenticate("c" * 40)


@pytest.mark.parametrize(
    ("text", "seconds"), [("30d", 30 * 86400), ("12h", 43200), ("90m", 5400), ("2w", 1209600)]
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration_s(text) == seconds


@pytest.mark.parametrize("text", ["", "30", "-1d", "0d", "1y", "d", "5300w"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration_s(text)


def test_root_key_must_be_long_and_trusted_proxies_must_be_addresses() -> None:
    with pytest.raises(ConfigError, match="STEMEDB_ROOT_API_KEY: must be at least 32"):
        load_settings({"STEMEDB_ROOT_API_KEY": "short"})
    with pytest.raises(ConfigError, match="STEMEDB_TRUSTED_PROXY: 'nginx' is not an IP"):
        load_settings({"STEMEDB_TRUSTED_PROXY": "127.0.0.1,nginx"})
    settings = load_settings({"STEMEDB_TRUSTED_PROXY": "127.0.0.1, 10.0.0.0/8,::1"})
    assert settings.trusted_proxy == ("127.0.0.1", "10.0.0.0/8", "::1")
    assert (
        load_settings({"STEMEDB_ROOT_API_KEY": "x" * 32}).describe()["root_api_key"] == "********"
    )
