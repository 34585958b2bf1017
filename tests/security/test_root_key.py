"""The root key is recognised by a mark, not by its name (issue 14, item 13).

Before the fix an admin-created key named like the root key
("root (STEMEDB_ROOT_API_KEY)") was revoked by the next restart, because the
seeding of STEMEDB_ROOT_API_KEY revoked every other key of that name. The
root key is now the one whose id is `root-` + its own hash's first 12 hex
digits, which no created key can have.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from e2ekit import ServerFactory
from rightskit import AUTH_ENV, ROOT_KEY

from stemedb.config import Settings
from stemedb.security.keys import ROOT_KEY_NAME, hash_key, insert_key, list_keys, seed_root_key
from stemedb.store import Store

NEW_ROOT = "another-root-key-0123456789abcdef0123456789abcdef"


def _status(server: Any, secret: str) -> int:
    resp = server.api.get("/v1/admin/keys", headers={"X-API-Key": secret})
    return int(resp.status)


def test_a_key_named_like_the_root_survives_restarts(module_server_factory: ServerFactory) -> None:
    server = module_server_factory(AUTH_ENV)
    made = server.api.post(
        "/v1/admin/keys",
        {"role": "admin", "name": ROOT_KEY_NAME},
        headers={"X-API-Key": ROOT_KEY},
    )
    assert made.status == 201, made
    impostor = made.json["api_key"]
    assert not made.json["key"]["id"].startswith("root-")
    server.proc.stop()

    again = module_server_factory(AUTH_ENV, base=server.base)  # same root key
    assert _status(again, impostor) == 200
    assert _status(again, ROOT_KEY) == 200
    again.proc.stop()

    rotated = module_server_factory(
        {**AUTH_ENV, "STEMEDB_ROOT_API_KEY": NEW_ROOT}, base=server.base
    )
    assert _status(rotated, NEW_ROOT) == 200
    assert _status(rotated, ROOT_KEY) == 401  # the old root is revoked by the rotation
    assert _status(rotated, impostor) == 200  # the look-alike is not a root key
    listing = rotated.api.get("/v1/admin/keys", headers={"X-API-Key": NEW_ROOT}).json["keys"]
    by_status = {key["id"]: key["status"] for key in listing}
    assert by_status["root-" + hash_key(ROOT_KEY).hex()[:12]] == "revoked"
    assert by_status["root-" + hash_key(NEW_ROOT).hex()[:12]] == "active"
    assert by_status[made.json["key"]["id"]] == "active"
    rotated.proc.stop()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    settings = Settings(db_dir=tmp_path / "db", wal_dir=tmp_path / "wal")
    settings.db_dir.mkdir()
    opened = Store(settings).open()
    yield opened
    opened.close()


def test_seeding_revokes_only_marked_roots(store: Any) -> None:
    now = int(time.time() * 1000)
    store.write_local(lambda c: seed_root_key(c, ROOT_KEY))
    look_alike, _ = store.write_local(lambda c: insert_key(c, role="admin", name=ROOT_KEY_NAME))
    store.write_local(lambda c: seed_root_key(c, NEW_ROOT))
    with store.reader() as conn:
        keys = {key.id: key for key in list_keys(conn)}
    assert keys[look_alike.id].status(now) == "active"
    assert keys["root-" + hash_key(ROOT_KEY).hex()[:12]].revoked_ms is not None
    assert keys["root-" + hash_key(NEW_ROOT).hex()[:12]].status(now) == "active"
