"""`stemedb import --db`: validate in worker processes while the main process commits.

Why: validating a record (JSON, pydantic, canonical JSON, SHA3, Ed25519) costs
about twice what journaling it does, and under one GIL the two never overlap.
Here `--jobs` worker processes prepare the next chunks (up to AHEAD of them)
while the main process writes chunk N through the store's single writer, so
the store stays the only writer and chunks still commit strictly in file
order (the progress sidecar and the per-line rejection report are unchanged).

Workers run exactly the server's checks (`WriteService.prepare`) and send back
compact results: `(kind, hash, body, record)` for a valid record, or the
rejection's error body (a dict) for a bad one. `--jobs 1` runs the very same
functions in the main process, without a pool.

A piece's results travel through a spool file, and only its path through the
executor's result pipe. Why: that pipe is shared by every worker, and a worker
killed (the OOM killer) in the middle of writing a large result leaves half a
message in it; the executor's reader then waits forever for the rest, and the
import hangs instead of failing. A path is shorter than PIPE_BUF, so its write
is atomic: a dead worker is seen as a broken pool, never as half a message.
"""

from __future__ import annotations

import atexit
import gc
import json
import multiprocessing
import os
import pickle
import shutil
import signal
import tempfile
import threading
import time
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from stemedb.cli.remote import CliError
from stemedb.errors import StemeError
from stemedb.signing import sign_record

if TYPE_CHECKING:
    from stemedb.config import Settings
    from stemedb.store import Store

# One prepared line: the record's journal fields, or the error body that rejects it.
Prepared = tuple[str, bytes, str, dict[str, Any]] | dict[str, Any]
# Workers get pieces of at most this many lines, so the first chunk is ready early
# and the workers share a chunk evenly.
PIECE = 250
# Chunks prepared ahead of the one being committed (bounds memory on huge files).
AHEAD = 3
# How often a worker checks that its importer is still alive.
ORPHAN_CHECK_S = 0.5


def default_jobs() -> int:
    """The CPUs this process may run on (its affinity mask, not the machine's count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


@dataclass(frozen=True)
class PrepareConfig:
    """What a worker needs to prepare lines (sent to each worker once)."""

    settings: Settings
    seed: bytes | None  # --sign: sign unsigned lines with this key
    sign_timestamp: int  # --sign: timestamp for unsigned lines without one


def parse_line(raw: bytes) -> Any:
    """The line's JSON value, or the StemeError that rejects it."""
    try:
        return json.loads(raw)
    except ValueError as exc:
        return StemeError(f"not valid JSON: {exc}", code="invalid_json")


def sign_value(value: Any, seed: bytes, timestamp: int) -> Any:
    """Sign an unsigned record with the import's fixed timestamp (when it has none),
    so a re-run signs identical bytes and gets identical ids."""
    if not isinstance(value, dict) or value.get("signatures"):
        return value
    kind = str(value.get("kind", "assertion"))
    when = value.get("timestamp")
    now_s = when if isinstance(when, int) and not isinstance(when, bool) else timestamp
    try:
        return sign_record(kind, value, [seed], now_s=now_s)
    except StemeError as exc:
        return exc


class Preparer:
    """Turns raw lines into `Prepared` results with the server's own validation."""

    def __init__(self, config: PrepareConfig) -> None:
        from stemedb.service.writes import WriteService  # not needed by other commands

        self.config = config
        # prepare() reads only the settings; it never touches the store.
        self.service = WriteService(cast("Store", None), config.settings)

    def one(self, raw: bytes, received_ms: int) -> Prepared:
        value = parse_line(raw)
        if self.config.seed is not None and not isinstance(value, StemeError):
            value = sign_value(value, self.config.seed, self.config.sign_timestamp)
        try:
            if isinstance(value, StemeError):
                raise value
            kind = value.get("kind", "assertion") if isinstance(value, dict) else "assertion"
            pending = self.service.prepare(str(kind), value, received_ms)
        except StemeError as exc:
            error: dict[str, Any] = exc.to_dict()["error"]
            return error
        return (pending.kind, pending.hash, pending.body, pending.record)

    def lines(self, raws: list[bytes], received_ms: int) -> list[Prepared]:
        return [self.one(raw, received_ms) for raw in raws]


_worker: Preparer | None = None


SPOOL_PREFIX = "stemedb-import-"  # + the importer's pid: a killed import's spool is found
_spool = ""  # the folder a worker writes its pieces' results to


def _remove_orphaned_spools() -> None:
    """Spool folders of imports killed with `kill -9` (their pid is gone): remove them."""
    for folder in Path(tempfile.gettempdir()).glob(f"{SPOOL_PREFIX}*-*"):
        pid = folder.name[len(SPOOL_PREFIX) :].split("-", 1)[0]
        try:
            if not pid.isdigit() or folder.stat().st_uid != os.getuid():
                continue
            os.kill(int(pid), 0)
        except ProcessLookupError:
            shutil.rmtree(folder, ignore_errors=True)
        except OSError:  # someone else's process, or the folder went meanwhile
            continue


_pieces = 0


def _init_worker(config: PrepareConfig, parent: int, spool: str) -> None:
    """Pool initializer. Ctrl-C is the main process's to handle (it stops the pool),
    and a worker whose importer was killed (`kill -9`) exits instead of lingering."""
    global _worker, _spool
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _worker = Preparer(config)
    _spool = spool
    threading.Thread(target=_exit_with_parent, args=(parent,), daemon=True).start()


def _exit_with_parent(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(ORPHAN_CHECK_S)
    os._exit(1)


def _prepare_piece(raws: list[bytes], received_ms: int) -> str:
    """Prepare a piece; its results go to a spool file, and the path back to the parent."""
    global _pieces
    assert _worker is not None, "worker not initialised"
    results = _worker.lines(raws, received_ms)
    _pieces += 1
    path = os.path.join(_spool, f"{os.getpid()}-{_pieces}")
    with open(path, "wb") as out:
        pickle.dump(results, out, protocol=pickle.HIGHEST_PROTOCOL)
    return path


def _load_piece(result: list[Prepared] | str) -> list[Prepared]:
    if isinstance(result, list):  # --jobs 1: prepared in this process
        return result
    try:
        with open(result, "rb") as spooled:
            return cast("list[Prepared]", pickle.load(spooled))
    finally:
        os.unlink(result)


class Pending:
    """The prepared results of one chunk, ready or on their way from the workers."""

    def __init__(self, parts: list[Future[list[Prepared]]] | list[Future[str]]) -> None:
        self._parts = parts

    def get(self) -> list[Prepared]:
        out: list[Prepared] = []
        try:
            for part in self._parts:
                out.extend(_load_piece(part.result()))
        except OSError as exc:  # the spool's disk: full, or taken away
            raise CliError(
                f"could not read prepared records back from the temporary folder: {exc}; "
                "free space there (or point TMPDIR elsewhere) and re-run with --resume"
            ) from None
        except BrokenProcessPool:
            raise CliError(
                "a validation worker process died (out of memory?); re-run with --resume to "
                "continue after the last committed chunk"
            ) from None
        return out


class PreparePool:
    """`jobs` worker processes (forked: they start in milliseconds and inherit the
    imported modules), or the main process itself when jobs is 1.

    Create it BEFORE the store is opened: a fork must not copy a live SQLite
    connection or the writer thread. (concurrent.futures rather than
    multiprocessing.Pool: a worker killed while holding Pool's shared queue lock
    hangs Pool.terminate; the executor reports a dead worker as a broken pool.)
    """

    def __init__(self, config: PrepareConfig, jobs: int) -> None:
        self.jobs = jobs
        # Made in the parent either way: the workers inherit the imported modules.
        self._local = Preparer(config)
        self._pool: ProcessPoolExecutor | None = None
        self._spool = ""
        if jobs > 1:
            _remove_orphaned_spools()
            self._spool = tempfile.mkdtemp(prefix=f"{SPOOL_PREFIX}{os.getpid()}-")
            # close() removes it; this catches a piece a worker finished after that
            # (close without waiting), once the executor has stopped its workers.
            atexit.register(shutil.rmtree, self._spool, ignore_errors=True)
            # Inherited objects go to the permanent generation: no worker GC pass scans
            # them or touches their pages (which would copy every page it touches).
            gc.freeze()
            self._pool = ProcessPoolExecutor(
                jobs,
                mp_context=multiprocessing.get_context("fork"),
                initializer=_init_worker,
                initargs=(config, os.getpid(), self._spool),
            )
            # With fork, the first submit starts every worker: do it now, before any thread.
            self._pool.submit(int).result()

    @property
    def pids(self) -> list[int]:
        """The worker processes' ids (for tests and diagnostics)."""
        processes = getattr(self._pool, "_processes", None) or {}
        return sorted(processes)

    def submit(self, raws: list[bytes], received_ms: int) -> Pending:
        """Start preparing one chunk; `get()` on the answer waits for it, in input order."""
        if self._pool is None:
            done: Future[list[Prepared]] = Future()
            done.set_result(self._local.lines(raws, received_ms))
            return Pending([done])
        size = max(1, min(PIECE, -(-len(raws) // self.jobs)))
        return Pending(
            [
                self._pool.submit(_prepare_piece, raws[i : i + size], received_ms)
                for i in range(0, len(raws), size)
            ]
        )

    def close(self, *, finished: bool) -> None:
        """Wind the workers down: wait for them after success, drop queued work otherwise."""
        if self._pool is None:
            return
        self._pool.shutdown(wait=finished, cancel_futures=not finished)
        self._pool = None
        shutil.rmtree(self._spool, ignore_errors=True)
