"""Hashing (SHA3-256), Ed25519 signing and verification, key files.

Signatures are Ed25519 (PyNaCl / libsodium, which rejects non-canonical
signatures and small-order keys) over a domain-separated message:
`b"stemedb/v1/" + kind + b"\\n" + digest`, so a signature made for one kind
of record can never be replayed as another kind.

A key file holds the 32-byte Ed25519 seed as 64 lower-case hex characters
and a newline, mode 0600.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import tempfile
import threading
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import nacl.signing

__all__ = [
    "SIGNING_DOMAIN",
    "KeyFileError",
    "generate_signing_key",
    "public_key_hex",
    "read_key_file",
    "sha3_256",
    "sha3_hex",
    "sign",
    "signing_message",
    "submit_verify",
    "verify_many",
    "verify_signature",
    "write_key_file",
]

SIGNING_DOMAIN = b"stemedb/v1/"

_HEX64 = re.compile(r"[0-9a-fA-F]{64}")
_HEX128 = re.compile(r"[0-9a-fA-F]{128}")


class KeyFileError(ValueError):
    """A key file is missing, unreadable or malformed; the message names the file."""


def sha3_256(data: bytes) -> bytes:
    return hashlib.sha3_256(data).digest()


def sha3_hex(data: bytes) -> str:
    return hashlib.sha3_256(data).hexdigest()


def signing_message(kind: str, digest: bytes) -> bytes:
    """The bytes an Ed25519 signature of a `kind` record covers."""
    if len(digest) != 32:
        raise ValueError(f"digest must be 32 bytes, got {len(digest)}")
    return SIGNING_DOMAIN + kind.encode("ascii") + b"\n" + digest


def verify_signature(agent_id_hex: str, signature_hex: str, message: bytes) -> bool:
    """True when `signature_hex` is agent `agent_id_hex`'s signature of `message`.

    Never raises: malformed hex, a key that is not a valid Ed25519 point or a
    wrong signature all give False.
    """
    try:
        if not (
            isinstance(agent_id_hex, str)
            and isinstance(signature_hex, str)
            and _HEX64.fullmatch(agent_id_hex)
            and _HEX128.fullmatch(signature_hex)
        ):
            return False
        key = nacl.signing.VerifyKey(bytes.fromhex(agent_id_hex))
        key.verify(bytes(message), bytes.fromhex(signature_hex))
        return True
    except Exception:
        return False


# One signature to check: (agent_id hex, signature hex, message).
SignatureCheck = tuple[str, str, bytes]

# Fewer checks than this are verified inline: a pool hand-off costs more than it saves.
MIN_PARALLEL_CHECKS = 32
MAX_VERIFY_THREADS = 8

_pools: dict[int, ThreadPoolExecutor] = {}
_pools_lock = threading.Lock()
# The CPUs verification threads may run on, when the server pinned itself to fewer
# (STEMEDB_CPU_AFFINITY=auto sets this in stemedb.affinity before pinning).
spread_cpus: set[int] | None = None


def _forget_pools() -> None:
    """A forked child (`stemedb import`'s workers) has none of the parent's pool
    threads: submitting to an inherited pool would wait forever."""
    global _pools_lock
    _pools.clear()
    _pools_lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pools)


def verify_threads(setting: int) -> int:
    """The pool size for `STEMEDB_VERIFY_THREADS` (0 = one per CPU, at most 8)."""
    if setting > 0:
        return min(setting, MAX_VERIFY_THREADS)
    return max(1, min(os.cpu_count() or 1, MAX_VERIFY_THREADS))


def _spread() -> None:
    """Pool thread start: libsodium's verify releases the GIL, so these threads may
    use the cores an `auto`-pinned server leaves idle."""
    if spread_cpus and hasattr(os, "sched_setaffinity"):
        with contextlib.suppress(OSError):
            os.sched_setaffinity(0, spread_cpus)  # pid 0: this thread only (Linux)


def _pool(threads: int) -> ThreadPoolExecutor:
    """One pool per size, created once and kept for the process's life."""
    pool = _pools.get(threads)
    if pool is None:
        with _pools_lock:
            pool = _pools.get(threads)
            if pool is None:
                pool = ThreadPoolExecutor(threads, "stemedb-verify", initializer=_spread)
                _pools[threads] = pool
    return pool


def _verify_chunk(checks: Sequence[SignatureCheck]) -> list[bool]:
    return [verify_signature(agent, signature, message) for agent, signature, message in checks]


def submit_verify(checks: Sequence[SignatureCheck], threads: int) -> list[Future[list[bool]]]:
    """Start verifying `checks` on the verify pool (inline when `threads` <= 1 or there
    are few checks); concatenating the futures' results gives `verify_many`'s answer."""
    if threads <= 1 or len(checks) < MIN_PARALLEL_CHECKS:
        done: Future[list[bool]] = Future()
        done.set_result(_verify_chunk(checks))
        return [done]
    pool = _pool(threads)
    size = -(-len(checks) // (threads * 2))  # two chunks per thread: an even finish
    return [
        pool.submit(_verify_chunk, checks[start : start + size])
        for start in range(0, len(checks), size)
    ]


def verify_many(checks: Sequence[SignatureCheck], threads: int) -> list[bool]:
    """`verify_signature` of each check, in order, on up to `threads` threads.

    Ed25519 verification in libsodium runs with the GIL released (cffi's
    default), so the threads verify in parallel: 1.9x on 2 cores, measured by
    `python -m bench.floor --gil`.
    """
    out: list[bool] = []
    for future in submit_verify(checks, threads):
        out.extend(future.result())
    return out


def generate_signing_key() -> bytes:
    """A fresh random 32-byte Ed25519 seed."""
    return os.urandom(32)


def _check_seed(seed: bytes) -> bytes:
    if not isinstance(seed, bytes | bytearray) or len(seed) != 32:
        raise ValueError("an Ed25519 seed is exactly 32 bytes")
    return bytes(seed)


def public_key_hex(seed: bytes) -> str:
    """The agent id (Ed25519 public key, 64 hex) of a seed."""
    key = nacl.signing.SigningKey(_check_seed(seed))
    return bytes(key.verify_key.encode()).hex()


def sign(seed: bytes, message: bytes) -> str:
    """The Ed25519 signature (128 hex) of `message` with `seed`."""
    key = nacl.signing.SigningKey(_check_seed(seed))
    return bytes(key.sign(bytes(message)).signature).hex()


def write_key_file(path: str | os.PathLike[str], seed: bytes, *, overwrite: bool = False) -> Path:
    """Write `seed` as hex to `path`, mode 0600, atomically.

    The file is written to a temporary file in the same directory (created
    0600 from the start, never world-readable) and then linked into place, so
    a reader never sees a partial key. An existing file is kept (and
    FileExistsError raised) unless `overwrite=True`. Missing parent
    directories are created with mode 0700.
    """
    target = Path(path)
    text = _check_seed(seed).hex() + "\n"
    target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    if not overwrite and target.exists():
        raise FileExistsError(f"{target}: a key file already exists (refusing to overwrite it)")
    fd, tmp_name = tempfile.mkstemp(prefix=".stemedb-key-", dir=target.parent)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="ascii") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        if overwrite:
            os.replace(tmp_name, target)
        else:
            try:
                os.link(tmp_name, target)  # atomic; fails if the target exists
            except FileExistsError:
                raise FileExistsError(
                    f"{target}: a key file already exists (refusing to overwrite it)"
                ) from None
            except OSError:  # no hard links on this filesystem: exclusive create
                _write_exclusive(target, text)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
    _fsync_dir(target.parent)
    return target


def _write_exclusive(target: Path, text: str) -> None:
    try:
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise FileExistsError(
            f"{target}: a key file already exists (refusing to overwrite it)"
        ) from None
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())


def _fsync_dir(directory: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def read_key_file(path: str | os.PathLike[str]) -> bytes:
    """The 32-byte seed stored in a key file; KeyFileError naming the file if bad."""
    target = Path(path)
    try:
        raw = target.read_bytes()
    except FileNotFoundError:
        raise KeyFileError(
            f"{target}: no such key file (create one with `stemedb keygen`)"
        ) from None
    except OSError as exc:
        raise KeyFileError(f"{target}: cannot read key file: {exc.strerror or exc}") from None
    try:
        text = raw.decode("ascii").strip()
    except UnicodeDecodeError:
        text = ""
    if not _HEX64.fullmatch(text):
        raise KeyFileError(
            f"{target}: not a StemeDB key file (expected a 64-hex-character Ed25519 seed)"
        )
    return bytes.fromhex(text)
