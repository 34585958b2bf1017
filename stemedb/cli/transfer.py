"""`stemedb import` and `stemedb export`: NDJSON in, NDJSON (or CSV) out.

Import is built to be interrupted. Records go in chunks (1000 by default);
after each committed chunk the byte offset and line count are saved in a
`FILE.progress` sidecar, so `--resume` continues after the last committed
chunk. Even without it a re-run is safe for signed records: the same bytes
have the same id, and the server answers `exists`. Records travel through
the batch endpoint (`--url`) or, with `--db`, straight into a stopped
database through the same validation the server runs (`WriteService`), done
by `--jobs` worker processes ahead of the commits (import_pipeline).
Signatures are verified either way.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import deque
from collections.abc import Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from stemedb.cli.import_pipeline import (
    AHEAD,
    Pending,
    PrepareConfig,
    Prepared,
    PreparePool,
    default_jobs,
    parse_line,
    sign_value,
)
from stemedb.cli.import_sinks import (
    LocalSink,
    RemoteSink,
    Sink,
    database_dir,
    local_settings,
)
from stemedb.cli.output import dumps, emit
from stemedb.cli.remote import (
    EXIT_USAGE,
    CliError,
    key_path,
    make_client,
    parse_time,
    remote_command,
    report,
    server_url,
)
from stemedb.client import ApiError
from stemedb.crypto import KeyFileError, read_key_file
from stemedb.errors import StemeError

if TYPE_CHECKING:
    from stemedb.store.dirlock import DirLock

MAX_REPORTED = 50
Line = tuple[int, bytes]  # (line number, raw line)
Item = tuple[int, bytes, Any]  # (line number, raw line, parsed value or a StemeError)


def _progress_bar(total: int | None, unit: str) -> Any:
    """tqdm on a terminal, nothing in scripts (stderr not a TTY)."""
    if not sys.stderr.isatty():
        return None
    from tqdm import tqdm

    return tqdm(total=total, unit=unit, unit_scale=True, file=sys.stderr, leave=False)


# ---- the progress sidecar -------------------------------------------------------


def load_progress(path: Path | None) -> dict[str, Any] | None:
    if path is None or not path.is_file():
        return None
    try:
        state = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError) as exc:
        raise CliError(
            f"{path}: unreadable progress file ({exc}); delete it to start over"
        ) from None
    if not isinstance(state, dict) or not isinstance(state.get("lines"), int):
        raise CliError(f"{path}: not a stemedb import progress file; delete it to start over")
    return state


def save_progress(path: Path, state: dict[str, Any]) -> None:
    """Atomically (temp file + rename), so a kill never leaves half a sidecar."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(state, indent=1) + "\n", "utf-8")
    os.replace(tmp, path)


# ---- import -------------------------------------------------------------------------


class Importer:
    """Sends chunks to a sink and keeps the counts and the per-line rejection report."""

    def __init__(self, args: argparse.Namespace, sink: Sink) -> None:
        self.args = args
        self.sink = sink
        self.counts = {"records": 0, "created": 0, "exists": 0, "rejected": 0}
        self.reported = 0
        self.unsigned_refused = 0
        self.rejects: IO[str] | None = None

    def reject(self, number: int, raw: bytes, error: dict[str, Any]) -> None:
        self.counts["rejected"] += 1
        if b'"signatures"' not in raw and "signature" in json.dumps(error).lower():
            self.unsigned_refused += 1  # an unsigned line the server wants signed
        if self.reported < MAX_REPORTED:
            print(f"line {number}: {error.get('code')}: {error.get('message')}", file=sys.stderr)
        elif self.reported == MAX_REPORTED:
            print("(more rejections not shown; use --rejects FILE)", file=sys.stderr)
        self.reported += 1
        if self.rejects is not None:
            line = raw.decode("utf-8", errors="replace").rstrip("\n")
            self.rejects.write(dumps({"line": number, "error": error, "input": line}, pretty=False))
            self.rejects.write("\n")

    def commit(self, chunk: list[Item]) -> None:
        pending = [(n, raw, v) for n, raw, v in chunk if not isinstance(v, StemeError)]
        for number, raw, value in chunk:
            if isinstance(value, StemeError):
                self.reject(number, raw, value.to_dict()["error"])
        results = self.sink.write([value for _, _, value in pending]) if pending else []
        self._tally([(n, raw) for n, raw, _ in pending], results)
        self.counts["records"] += len(chunk)

    def commit_prepared(
        self, sink: LocalSink, lines: list[Line], prepared: list[Prepared], received_ms: int
    ) -> None:
        """`commit` for records validated ahead (import_pipeline): same counts, same report."""
        from stemedb.store import PendingRecord

        written: list[Line] = []
        records: list[PendingRecord] = []
        for (number, raw), item in zip(lines, prepared, strict=True):
            if isinstance(item, dict):
                self.reject(number, raw, item)
            else:
                written.append((number, raw))
                records.append(PendingRecord(*item, received_ms))
        self._tally(written, sink.write_prepared(records) if records else [])
        self.counts["records"] += len(lines)

    def _tally(self, lines: list[Line], results: list[dict[str, Any]]) -> None:
        for (number, raw), result in zip(lines, results, strict=True):
            status = result.get("status")
            if status in ("created", "exists"):
                self.counts[status] += 1
            else:
                self.reject(number, raw, result.get("error") or {"code": status, "message": ""})


def _open_source(name: str) -> tuple[IO[bytes], int | None]:
    if name == "-":
        return sys.stdin.buffer, None
    path = Path(name)
    try:
        handle = path.open("rb")
    except OSError as exc:
        raise CliError(f"cannot read {name}: {exc.strerror or exc}") from None
    return handle, path.stat().st_size


def _start(args: argparse.Namespace, progress_path: Path | None) -> dict[str, Any]:
    """The sidecar state to continue from: resumed, or a fresh one (keeping the signing time)."""
    previous = load_progress(progress_path)
    fresh = {"lines": 0, "offset": 0}
    sign_ts = parse_time(args.timestamp, "--timestamp") if args.timestamp else None
    if previous is not None and sign_ts is None:
        sign_ts = previous.get("sign_timestamp")
    state: dict[str, Any] = {
        "source": "-" if args.file == "-" else str(Path(args.file).resolve()),
        "sign_timestamp": sign_ts if sign_ts is not None else int(time.time()),
        **fresh,
    }
    if args.resume:
        if previous is not None and previous.get("source") not in (None, state["source"]):
            raise CliError(
                f"{progress_path} records progress of {previous['source']}, not {state['source']}",
                EXIT_USAGE,
            )
        if previous is None:
            print(
                f"stemedb import: no progress file {progress_path}; starting at line 1",
                file=sys.stderr,
            )
        else:
            state.update(lines=previous["lines"], offset=int(previous.get("offset", 0)))
    return state


def _skip(stream: IO[bytes], state: dict[str, Any], size: int | None) -> None:
    if not state["lines"]:
        return
    if size is not None and stream.seekable():
        if state["offset"] > size:
            raise CliError(
                f"the file is shorter than the recorded progress ({state['offset']} bytes); it "
                "changed. Re-run without --resume (safe: present records answer `exists`)"
            )
        stream.seek(state["offset"])
        return
    for _ in range(state["lines"]):
        if not stream.readline():
            break


def _read_chunks(
    stream: IO[bytes], state: dict[str, Any], size: int
) -> Iterator[tuple[list[Line], int, int]]:
    """(numbered non-blank lines, lines, bytes) per `size` records; the last chunk may be
    shorter or empty."""
    chunk: list[Line] = []
    consumed = lines = 0
    number = state["lines"]
    for raw in stream:
        number += 1
        consumed += len(raw)
        lines += 1
        if raw.strip():
            chunk.append((number, raw))
        if len(chunk) >= size:
            yield chunk, lines, consumed
            chunk, consumed, lines = [], 0, 0
    yield chunk, lines, consumed


def _advance(
    state: dict[str, Any], lines: int, consumed: int, progress_path: Path | None, bar: Any
) -> None:
    """Called only after a chunk is committed: the sidecar never runs ahead of the database."""
    state.update(lines=state["lines"] + lines, offset=state["offset"] + consumed)
    if bar is not None:
        bar.update(consumed)
    if progress_path is not None:
        save_progress(progress_path, state)


def _finish(state: dict[str, Any], progress_path: Path | None) -> None:
    state["done"] = True
    if progress_path is not None:
        save_progress(progress_path, state)


def _import(
    importer: Importer,
    stream: IO[bytes],
    state: dict[str, Any],
    progress_path: Path | None,
    seed: bytes | None,
    bar: Any,
) -> None:
    """Through a server: parse (and sign) here, commit chunk after chunk."""
    for chunk, lines, consumed in _read_chunks(stream, state, importer.args.chunk_size):
        if chunk:
            items: list[Item] = []
            for number, raw in chunk:
                value = parse_line(raw)
                if seed is not None and not isinstance(value, StemeError):
                    value = sign_value(value, seed, state["sign_timestamp"])
                items.append((number, raw, value))
            importer.commit(items)
        _advance(state, lines, consumed, progress_path, bar)
    _finish(state, progress_path)


def _import_local(
    importer: Importer,
    sink: LocalSink,
    pool: PreparePool,
    stream: IO[bytes],
    state: dict[str, Any],
    progress_path: Path | None,
    bar: Any,
) -> None:
    """Into a stopped database: workers prepare up to AHEAD chunks while this process
    commits the oldest, so chunks still commit (and report) in file order."""
    ahead = AHEAD if pool.jobs > 1 else 0
    inflight: deque[tuple[list[Line], int, int, int, Pending | None]] = deque()

    def settle() -> None:
        chunk, lines, consumed, received_ms, pending = inflight.popleft()
        if pending is not None:
            importer.commit_prepared(sink, chunk, pending.get(), received_ms)
        _advance(state, lines, consumed, progress_path, bar)

    for chunk, lines, consumed in _read_chunks(stream, state, importer.args.chunk_size):
        received_ms = int(time.time() * 1000)
        pending = pool.submit([raw for _, raw in chunk], received_ms) if chunk else None
        inflight.append((chunk, lines, consumed, received_ms, pending))
        while len(inflight) > ahead:
            settle()
    while inflight:
        settle()
    _finish(state, progress_path)


def lock_for_import(db_dir: Path) -> DirLock:
    """The data directory's writer lock for `import --db`; a one-line CliError if held."""
    from stemedb.store import dirlock

    db_dir.mkdir(parents=True, exist_ok=True)  # a new database: the import creates it
    try:
        return dirlock.acquire(db_dir, "stemedb import --db")
    except dirlock.DirectoryLocked as exc:
        raise CliError(f"{exc}. See {exc.runbook}") from None


def refuse_if_locked(db_dir: Path) -> None:
    """A one-line CliError naming the process that holds the directory, if any."""
    from stemedb.store import dirlock

    found = dirlock.holder(db_dir)
    if found is not None:
        raise CliError(f"{dirlock.DirectoryLocked(db_dir, found)}. See {dirlock.RUNBOOK}")


def run_import(args: argparse.Namespace) -> int:
    if args.db and args.url:
        raise CliError("give --db (a stopped database) or --url (a server), not both", EXIT_USAGE)
    progress_path = Path(args.progress_file) if args.progress_file else None
    if progress_path is None and args.file != "-":
        progress_path = Path(args.file + ".progress")
    state = _start(args, progress_path)
    try:
        seed = read_key_file(key_path(args)) if args.sign else None
    except KeyFileError as exc:
        raise CliError(str(exc)) from None
    stream, size = _open_source(args.file)
    pool: PreparePool | None = None
    local: LocalSink | None = None
    dir_lock: DirLock | None = None
    if args.db:
        refuse_if_locked(database_dir(Path(args.db)))  # name the holder's PID up front
        settings = local_settings(Path(args.db))
        if args.chunk_size > settings.batch_max:
            raise CliError(
                f"--chunk-size {args.chunk_size} is over STEMEDB_BATCH_MAX ({settings.batch_max})",
                EXIT_USAGE,
            )
        # The workers fork before the store opens: no SQLite connection, no writer thread.
        config = PrepareConfig(settings, seed, state["sign_timestamp"])
        pool = PreparePool(config, args.jobs or default_jobs())
        try:
            # After the fork (workers must not inherit it), before the store: held for the
            # whole import, so no server can start on the files meanwhile (storage.md).
            dir_lock = lock_for_import(settings.db_dir)
            local = LocalSink(Path(args.db), settings)
        except BaseException:
            pool.close(finished=False)
            if dir_lock is not None:
                dir_lock.release()
            raise
    sink: Sink = local or RemoteSink(make_client(args, need_key=False))
    importer = Importer(args, sink)
    bar = _progress_bar(size, "B")
    skipped = state["lines"]
    hint = f"; committed chunks are recorded in {progress_path}: re-run with --resume"
    try:
        if args.rejects:
            importer.rejects = open(args.rejects, "a", encoding="utf-8")  # noqa: SIM115
        _skip(stream, state, size)
        if bar is not None:
            bar.update(state["offset"])
        if local is not None and pool is not None:
            _import_local(importer, local, pool, stream, state, progress_path, bar)
        else:
            _import(importer, stream, state, progress_path, seed, bar)
    except ApiError as exc:
        raise CliError(report(exc) + (hint if progress_path else "")) from None
    except KeyboardInterrupt:
        raise CliError("interrupted" + (hint if progress_path else ""), 130) from None
    finally:
        if pool is not None:
            pool.close(finished=state.get("done", False))
        if bar is not None:
            bar.close()
        if importer.rejects is not None:
            importer.rejects.close()
        if stream is not sys.stdin.buffer:
            stream.close()
        sink.close()
        if dir_lock is not None:
            dir_lock.release()
    summary = {
        "source": args.file,
        "target": args.db or server_url(args),
        **importer.counts,
        "skipped_lines": skipped,
        "lines": state["lines"],
        "progress_file": str(progress_path) if progress_path else None,
    }
    if importer.unsigned_refused and not args.sign:
        print(
            f"stemedb import: {importer.unsigned_refused} unsigned line(s) refused: this server "
            "requires signatures; sign them while importing with --sign (uses --key, "
            "default ~/.config/stemedb/key; create one with `stemedb keygen`)",
            file=sys.stderr,
        )
    emit(args.format, summary)
    return 1 if importer.counts["rejected"] else 0


# ---- export --------------------------------------------------------------------------


def run_export(args: argparse.Namespace) -> int:
    client = make_client(args, need_key=False)
    lines = client.export(args.format, args.kinds, args.after)
    bar = _progress_bar(None, " records")
    count = 0
    if args.output in (None, "-"):
        try:
            for line in lines:
                sys.stdout.write(line + "\n")
                count += 1
                if bar is not None:
                    bar.update(1)
            sys.stdout.flush()
        finally:
            if bar is not None:
                bar.close()
        return 0
    target = Path(args.output)
    partial = target.with_name(target.name + ".partial")
    try:
        with partial.open("w", encoding="utf-8") as out:
            for line in lines:
                out.write(line + "\n")
                count += 1
                if bar is not None:
                    bar.update(1)
            out.flush()
            os.fsync(out.fileno())
        os.replace(partial, target)  # a complete export, or none at all
    finally:
        if bar is not None:
            bar.close()
        partial.unlink(missing_ok=True)
    records = count - 1 if args.format == "csv" and count else count
    print(dumps({"file": str(target), "format": args.format, "records": records}))
    return 0


# ---- registration ------------------------------------------------------------------------


def _chunk_size(text: str) -> int:
    value = int(text)
    if not 1 <= value <= 10_000:
        raise argparse.ArgumentTypeError("must be between 1 and 10000 (STEMEDB_BATCH_MAX)")
    return value


def _jobs(text: str) -> int:
    value = int(text)
    if not 1 <= value <= 64:
        raise argparse.ArgumentTypeError("must be between 1 and 64")
    return value


def register(subparsers: Any) -> None:
    imp = subparsers.add_parser(
        "import",
        help="load NDJSON records (resumable) through a server or into a stopped database",
        description="Load one JSON record per line (assertions unless a line has another "
        '"kind"; `stemedb export` output re-imports with ids intact). Progress is saved to '
        "FILE.progress after each committed chunk: --resume continues from there, and a plain "
        "re-run is safe because records already present answer `exists`. Exit 1 if any record "
        "was rejected (each is reported with its line number).",
    )
    imp.add_argument("file", metavar="FILE", help="NDJSON file, or - for stdin")
    imp.add_argument(
        "--db",
        metavar="PATH",
        help="write straight into the database directory (or its stemedb.db) of a STOPPED "
        "server instead of through --url",
    )
    imp.add_argument(
        "--resume", action="store_true", help="skip the lines FILE.progress says are committed"
    )
    imp.add_argument(
        "--progress-file",
        metavar="PATH",
        help="sidecar to use instead of FILE.progress (needed to resume stdin)",
    )
    imp.add_argument(
        "--chunk-size", type=_chunk_size, default=1000, help="records per batch (default 1000)"
    )
    imp.add_argument(
        "--jobs",
        type=_jobs,
        default=None,
        metavar="N",
        help="with --db: processes validating records while this one commits (default: the "
        "CPUs this process may use; 1 validates in the importing process)",
    )
    imp.add_argument("--sign", action="store_true", help="sign unsigned lines with --key")
    imp.add_argument(
        "--timestamp",
        help="timestamp for unsigned lines without one when "
        "signing (default: kept in the progress file, else now)",
    )
    imp.add_argument(
        "--rejects", metavar="PATH", help="append rejected lines with their errors here (NDJSON)"
    )
    remote_command(imp, "import", run_import)

    exp = subparsers.add_parser(
        "export",
        help="stream every record as NDJSON (or assertions as CSV)",
        description="Stream every matching record in journal order, in constant memory. NDJSON "
        "lines are the records' canonical bytes and re-import with their ids intact.",
    )
    exp.add_argument(
        "--format",
        choices=("ndjson", "csv"),
        default="ndjson",
        help="ndjson (default): every record, re-importable; csv: assertions only",
    )
    exp.add_argument(
        "--kinds",
        help="comma list: assertion, vote, epoch, supersession, alias, outcome (default all)",
    )
    exp.add_argument(
        "--after", type=int, default=0, metavar="SEQ", help="only frames after this journal seq"
    )
    exp.add_argument(
        "-o", "--output", metavar="FILE", help="write here (atomically) instead of stdout"
    )
    remote_command(exp, "export", run_export, key=False, output=False)  # its own --format
