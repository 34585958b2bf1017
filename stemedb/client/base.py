"""Client plumbing: the key, the headers, JSON calls and automatic signing.

Endpoint methods live in `stemedb.client.api`; this module holds what every
one of them shares, so each method there is a few lines that name its route.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Literal, cast

from stemedb.client.errors import ApiError
from stemedb.client.transport import Params, Transport
from stemedb.client.types import WriteResult

DEFAULT_URL = "http://127.0.0.1:18180"
NormalizeMode = Literal["local", "server"]


def _load_seed(key_file: str | os.PathLike[str] | None, seed: bytes | str | None) -> bytes | None:
    from stemedb.crypto import read_key_file

    if key_file is not None and seed is not None:
        raise ValueError("give key_file or seed, not both")
    if key_file is not None:
        return read_key_file(Path(key_file).expanduser())
    if isinstance(seed, str):
        text = seed.strip()
        if len(text) != 64:
            raise ValueError("a hex seed is 64 hex characters (32 bytes)")
        return bytes.fromhex(text)
    if seed is not None and len(seed) != 32:
        raise ValueError("an Ed25519 seed is exactly 32 bytes")
    return seed


def dumps(value: Any) -> bytes:
    """Compact UTF-8 JSON; NaN/Infinity refused here rather than by the server."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()


def drop_none(fields: Mapping[str, Any]) -> dict[str, Any]:
    """Optional arguments left at None are omitted, as normalisation does anyway."""
    return {key: value for key, value in fields.items() if value is not None}


def is_signed(record: Any) -> bool:
    return isinstance(record, Mapping) and bool(record.get("signatures"))


class BaseClient:
    """Connection, identity and signing shared by every endpoint method.

    `seed`/`key_file`: the Ed25519 key that signs writes (a `stemedb keygen`
    file, or the 32-byte seed / its hex). Without one, writes go unsigned
    (accepted only by servers with STEMEDB_REQUIRE_SIGNATURES=false).
    `agent_id`: the `X-Agent-Id` for audit and quotas; defaults to the key's
    public key. `normalize="server"` asks `/v1/normalize` for the form to sign
    instead of normalising locally: needed only when the server has a custom
    STEMEDB_SCHEME_TIERS and records rely on an inferred source_class.
    """

    def __init__(
        self,
        base_url: str = DEFAULT_URL,
        *,
        key_file: str | os.PathLike[str] | None = None,
        seed: bytes | str | None = None,
        api_key: str | None = None,
        agent_id: str | None = None,
        timeout: float = 30.0,
        retries: int = 3,
        normalize: NormalizeMode = "local",
        scheme_tiers: Mapping[str, int] | None = None,
    ) -> None:
        from stemedb.crypto import public_key_hex

        self.seed = _load_seed(key_file, seed)
        self.public_key = public_key_hex(self.seed) if self.seed is not None else None
        self.agent_id = agent_id or self.public_key
        headers: dict[str, str] = {}
        if api_key:
            headers["X-API-Key"] = api_key
        if self.agent_id:
            headers["X-Agent-Id"] = self.agent_id
        self.transport = Transport(base_url, timeout=timeout, retries=retries, headers=headers)
        self.base_url = self.transport.base_url
        self.timeout = timeout
        self.normalize_mode: NormalizeMode = normalize
        self.scheme_tiers = scheme_tiers

    def __enter__(self) -> BaseClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the calling thread's keep-alive connection."""
        self.transport.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.base_url!r}, agent_id={self.agent_id!r})"

    # ---- signing -----------------------------------------------------------

    def sign(self, kind: str, record: Mapping[str, Any]) -> dict[str, Any]:
        """The normalised record signed with this client's key, ready to POST.

        Normalising first matters: the signature covers the normalised form
        (timestamp, tagged object, source_class filled in), so the bytes the
        server hashes are exactly the ones signed. Input the server would
        reject raises ApiError 400 here, before anything is sent.
        """
        from stemedb.config import DEFAULT_SCHEME_TIERS
        from stemedb.errors import StemeError
        from stemedb.signing import attach_signatures, sign_record

        if self.seed is None:
            raise ValueError("this client has no key: pass key_file= or seed= to sign records")
        unsigned = {k: v for k, v in record.items() if k != "signatures"}
        if self.normalize_mode == "server":
            normalised = self._post(
                "/v1/normalize", unsigned, params={"kind": kind}, idempotent=True, ok=(200,)
            )
            return attach_signatures(kind, normalised["record"], [self.seed])
        tiers = self.scheme_tiers if self.scheme_tiers is not None else DEFAULT_SCHEME_TIERS
        # A record that carries its timestamp is normalised "as of" that time, so the same
        # claim signed twice is the same bytes (same id: a repeat answers `exists`). The
        # signature entries are exactly {agent_id, signature} (data-model.md §7).
        when = unsigned.get("timestamp")
        now_s = when if isinstance(when, int) and not isinstance(when, bool) else None
        try:
            return sign_record(kind, unsigned, [self.seed], scheme_tiers=tiers, now_s=now_s)
        except StemeError as exc:
            # Local normalisation runs the server's validation: report it the same way.
            raise ApiError(400, exc.code, exc.message, exc.details) from None

    def prepare(self, kind: str, record: Mapping[str, Any]) -> dict[str, Any]:
        """Signed with the key when there is one and the record has no signatures yet;
        else returned as given (minus None fields)."""
        if self.seed is not None and not is_signed(record):
            return self.sign(kind, drop_none(record))
        return drop_none(record)

    # ---- JSON calls ----------------------------------------------------------

    def _get(
        self,
        path: str,
        params: Params | None = None,
        *,
        ok: Iterable[int] = (200,),
        timeout: float | None = None,
    ) -> Any:
        response = self.transport.request(
            "GET", path, params=params, idempotent=True, ok=ok, timeout=timeout
        )
        return response.json()

    def _post(
        self,
        path: str,
        body: Any,
        *,
        params: Params | None = None,
        idempotent: bool,
        ok: Iterable[int] = (200, 201),
    ) -> Any:
        payload = None if body is None else dumps(body)
        response = self.transport.request(
            "POST", path, params=params, body=payload, idempotent=idempotent, ok=ok
        )
        return response.json()

    def _write(self, kind: str, path: str, fields: Mapping[str, Any]) -> WriteResult:
        """Sign (if keyed) and POST one record. Retried only when signed:
        a signed record's id is fixed, so a repeat can only answer `exists`."""
        record = self.prepare(kind, fields)
        return cast(WriteResult, self._post(path, record, idempotent=is_signed(record)))
