"""SHA3-256, Ed25519 signing with domain separation, key files."""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stemedb.crypto import (
    KeyFileError,
    generate_signing_key,
    public_key_hex,
    read_key_file,
    sha3_256,
    sha3_hex,
    sign,
    signing_message,
    verify_signature,
    write_key_file,
)

SEED = bytes(range(32))
MESSAGE = signing_message("assertion", bytes(32))


def test_sha3_known_vectors() -> None:
    empty = "a7ffc6f8bf1ed76651c14756a061d662f580ff4de43b49fa82d80a4b80f8434a"
    assert sha3_hex(b"") == empty
    assert sha3_256(b"") == bytes.fromhex(empty)
    assert sha3_hex(b"abc") == hashlib.sha3_256(b"abc").hexdigest()
    assert sha3_hex(b"abc").startswith("3a985da74fe225b2")


def test_signing_message_layout() -> None:
    digest = bytes(range(32))
    assert signing_message("vote", digest) == b"stemedb/v1/vote\n" + digest
    with pytest.raises(ValueError):
        signing_message("vote", b"short")


def test_rfc8032_test_vector_1() -> None:
    seed = bytes.fromhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
    assert public_key_hex(seed) == (
        "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
    )
    assert sign(seed, b"") == (
        "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e06522490155"
        "5fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
    )


def test_sign_and_verify() -> None:
    seed = generate_signing_key()
    assert len(seed) == 32 and seed != generate_signing_key()
    agent = public_key_hex(seed)
    signature = sign(seed, MESSAGE)
    assert len(agent) == 64 and len(signature) == 128
    assert verify_signature(agent, signature, MESSAGE)
    assert verify_signature(agent.upper(), signature.upper(), MESSAGE)
    assert not verify_signature(agent, signature, MESSAGE + b"x")
    assert not verify_signature(public_key_hex(SEED), signature, MESSAGE)


def test_domain_separation() -> None:
    digest = sha3_256(b"record")
    signature = sign(SEED, signing_message("vote", digest))
    agent = public_key_hex(SEED)
    assert verify_signature(agent, signature, signing_message("vote", digest))
    assert not verify_signature(agent, signature, signing_message("assertion", digest))


@pytest.mark.parametrize(
    ("agent", "signature"),
    [
        ("", ""),
        ("zz" * 32, "00" * 64),
        ("00" * 32, "00" * 64),  # small-order point
        ("ab" * 31, "00" * 64),
        (public_key_hex(SEED), "00" * 63),
        (public_key_hex(SEED), " " + sign(SEED, MESSAGE)[1:]),
        (public_key_hex(SEED)[:-2] + " a", sign(SEED, MESSAGE)),
        (None, None),
        (12, 13),
    ],
)
def test_verify_never_raises(agent: object, signature: object) -> None:
    assert verify_signature(agent, signature, MESSAGE) is False  # type: ignore[arg-type]


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=0, max_value=511))
def test_any_flipped_signature_bit_fails(bit: int) -> None:
    signature = bytearray(bytes.fromhex(sign(SEED, MESSAGE)))
    signature[bit // 8] ^= 1 << (bit % 8)
    assert not verify_signature(public_key_hex(SEED), bytes(signature).hex(), MESSAGE)


def test_bad_seed_rejected() -> None:
    with pytest.raises(ValueError):
        public_key_hex(b"x" * 31)
    with pytest.raises(ValueError):
        sign(b"x" * 33, MESSAGE)


def test_key_file_round_trip_mode_0600(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "agent.key"
    seed = generate_signing_key()
    assert write_key_file(path, seed) == path
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text() == seed.hex() + "\n"
    assert read_key_file(path) == seed
    assert [p.name for p in path.parent.iterdir()] == ["agent.key"]  # no temp file left


def test_key_file_refuses_overwrite(tmp_path: Path) -> None:
    path = tmp_path / "agent.key"
    first, second = generate_signing_key(), generate_signing_key()
    write_key_file(path, first)
    with pytest.raises(FileExistsError, match="already exists"):
        write_key_file(path, second)
    assert read_key_file(path) == first
    write_key_file(path, second, overwrite=True)
    assert read_key_file(path) == second
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_key_file_not_world_readable_even_with_open_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        path = write_key_file(tmp_path / "k", SEED)
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


@pytest.mark.parametrize(
    "content",
    [b"", b"not hex", b"ab" * 31, b"ab" * 33, b"\xff\xfe", b"zz" * 32],
)
def test_bad_key_file(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "bad.key"
    path.write_bytes(content)
    with pytest.raises(KeyFileError, match=str(path)):
        read_key_file(path)


def test_missing_key_file(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError, match="keygen"):
        read_key_file(tmp_path / "absent.key")


def test_key_file_accepts_upper_case_and_whitespace(tmp_path: Path) -> None:
    path = tmp_path / "k"
    path.write_text("  " + SEED.hex().upper() + "\r\n")
    assert read_key_file(path) == SEED
