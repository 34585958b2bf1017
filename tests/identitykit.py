"""Helpers of the identity tests (data-model.md §7): records of every kind signed
by several agents, the pre-v0.2 form of a record (signature entries carrying
an unsigned `timestamp`), and a second valid Ed25519 signature made with
another nonce (what a signer with a non-deterministic Ed25519 library sends).

Import by name: `from identitykit import Signer, old_style, ...`.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any

from stemedb.canonical import canonical_json
from stemedb.crypto import generate_signing_key, public_key_hex, sha3_256, signing_message
from stemedb.signing import sign_record

T = 1_700_000_000

# ---- Ed25519 with a caller-chosen nonce (RFC 8032 §5.1.6, in plain integers) ----------

_P = 2**255 - 19
_L = 2**252 + 27742317777372353535851937790883648493
_D = -121665 * pow(121666, _P - 2, _P) % _P
_Point = tuple[int, int, int, int]


def _add(p: _Point, q: _Point) -> _Point:
    a = (p[1] - p[0]) * (q[1] - q[0]) % _P
    b = (p[1] + p[0]) * (q[1] + q[0]) % _P
    c = 2 * p[3] * q[3] * _D % _P
    d = 2 * p[2] * q[2] % _P
    e, f, g, h = b - a, d - c, d + c, b + a
    return (e * f % _P, g * h % _P, f * g % _P, e * h % _P)


def _mul(scalar: int, point: _Point) -> _Point:
    result: _Point = (0, 1, 1, 0)
    while scalar:
        if scalar & 1:
            result = _add(result, point)
        point = _add(point, point)
        scalar >>= 1
    return result


def _base() -> _Point:
    y = 4 * pow(5, _P - 2, _P) % _P
    x2 = (y * y - 1) * pow(_D * y * y + 1, _P - 2, _P) % _P
    x = pow(x2, (_P + 3) // 8, _P)
    if (x * x - x2) % _P:
        x = x * pow(2, (_P - 1) // 4, _P) % _P
    if x & 1:
        x = _P - x
    return (x, y, 1, x * y % _P)


_G = _base()


def _encode(point: _Point) -> bytes:
    zi = pow(point[2], _P - 2, _P)
    x, y = point[0] * zi % _P, point[1] * zi % _P
    return (y | ((x & 1) << 255)).to_bytes(32, "little")


def sign_with_nonce(seed: bytes, message: bytes, nonce: int | None = None) -> str:
    """A valid Ed25519 signature of `message` under `seed`'s key, made with nonce
    `nonce` (random by default) instead of RFC 8032's deterministic one: the
    same signer, the same message, other signature bytes."""
    h = hashlib.sha512(seed).digest()
    a = int.from_bytes(h[:32], "little") & ((1 << 254) - 8) | (1 << 254)
    public = _encode(_mul(a, _G))
    r = (nonce if nonce is not None else secrets.randbelow(_L - 1) + 1) % _L
    big_r = _encode(_mul(r, _G))
    k = int.from_bytes(hashlib.sha512(big_r + public + message).digest(), "little") % _L
    s = (r + k * a) % _L
    return (big_r + s.to_bytes(32, "little")).hex()


# ---- records ---------------------------------------------------------------------------


@dataclass
class Signer:
    seed: bytes = field(default_factory=generate_signing_key)

    @property
    def id(self) -> str:
        return public_key_hex(self.seed)


def sign_by(kind: str, unsigned: Mapping[str, Any], signers: Sequence[Signer]) -> dict[str, Any]:
    """`unsigned` normalised and signed by every signer (entries sorted by agent id)."""
    now = int(unsigned.get("timestamp", T))
    return sign_record(kind, unsigned, [s.seed for s in signers], now_s=now)


def digest(record: Mapping[str, Any]) -> bytes:
    return sha3_256(canonical_json({k: v for k, v in record.items() if k != "signatures"}).encode())


def renonced(record: Mapping[str, Any], signer: Signer) -> dict[str, Any]:
    """`record` with `signer`'s entry re-signed under another nonce (a valid signature)."""
    message = signing_message(str(record["kind"]), digest(record))
    entries = [
        {**e, "signature": sign_with_nonce(signer.seed, message)}
        if e["agent_id"] == signer.id
        else e
        for e in record["signatures"]
    ]
    return {**record, "signatures": entries}


def old_style(record: Mapping[str, Any], entry_ts: int | None = None) -> dict[str, Any]:
    """The pre-v0.2 form: every signature entry carries an unsigned `timestamp`
    (by default the record's, which is what the old client wrote)."""
    when = record["timestamp"] if entry_ts is None else entry_ts
    entries = sorted(
        ({**e, "timestamp": when} for e in record["signatures"]), key=itemgetter("agent_id")
    )
    return {**record, "signatures": entries}


def frame_of(record: Mapping[str, Any]) -> tuple[bytes, str]:
    """(id, body) exactly as a pre-v0.2 server journaled `record` (sorted entries)."""
    body = canonical_json(dict(record))
    return sha3_256(body.encode("utf-8")), body


def unsigned_of_every_kind(
    target: str, other: str, epoch: str | None, outcome_agent: str, tag: str
) -> dict[str, tuple[str, dict[str, Any]]]:
    """One record of each non-assertion kind (name -> (kind, unsigned)); `target`
    and `other` are assertion ids, `epoch` an epoch id to supersede or None."""
    return {
        "vote": ("vote", {"assertion_hash": target, "weight": 1, "timestamp": T + 1}),
        "epoch": (
            "epoch",
            {
                "name": f"epoch-{tag}",
                "supersedes": [epoch] if epoch else [],
                "timestamp": T + 2,
            },
        ),
        "supersession": (
            "supersession",
            {
                "target_hash": target,
                "replacement_hash": other,
                "reason": f"replaced {tag}",
                "timestamp": T + 3,
            },
        ),
        "alias": ("alias", {"alias": f"alias-{tag}", "canonical": f"id/{tag}", "timestamp": T + 4}),
        "outcome": (
            "outcome",
            {
                "agent_id": outcome_agent,
                "assertion_hash": target,
                "accurate": False,
                "timestamp": T + 5,
            },
        ),
    }
