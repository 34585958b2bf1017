"""Where `stemedb import` sends a chunk: a running server, or a stopped database file.

Both answer one result per record in the batch endpoint's shape
(`{"status": "created"|"exists"|"rejected", "error": ...}`), so the
importer does not care which it talks to.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from stemedb.cli.remote import EXIT_USAGE, CliError
from stemedb.client import ApiError, Client

if TYPE_CHECKING:
    from stemedb.config import Settings
    from stemedb.store import PendingRecord

MAX_RATE_LIMIT_WAITS = 20
# SQLite's unix VFS: every connection to a WAL database holds a shared lock on
# this byte of the `-shm` file while it is open (UNIX_SHM_DMS in os_unix.c).
SHM_DMS_OFFSET = 128


class Sink(Protocol):
    def write(self, records: list[Any]) -> list[dict[str, Any]]: ...
    def close(self) -> None: ...


class RemoteSink:
    """Chunks through `POST /v1/assert/batch` (a JSON array).

    Two failures are handled here rather than reported: 413 (a chunk of big
    records over the batch body limit) splits the chunk in half, and 429
    waits out `Retry-After`; nothing of such a request was written, so
    sending it again is safe whatever the records are.
    """

    def __init__(self, client: Client) -> None:
        self.client = client

    def write(self, records: list[Any]) -> list[dict[str, Any]]:
        waits = 0
        while True:
            try:
                answer = self.client.batch(records)
                return [dict(item) for item in answer["results"]]
            except ApiError as exc:
                if exc.status == 413 and len(records) > 1:
                    half = len(records) // 2
                    return self.write(records[:half]) + self.write(records[half:])
                if exc.status == 429 and waits < MAX_RATE_LIMIT_WAITS:
                    waits += 1
                    time.sleep(exc.retry_after or 1.0)
                    continue
                raise

    def close(self) -> None:
        self.client.close()


def database_in_use(db_path: Path) -> bool:
    """True when another process has this SQLite database open (e.g. a running server).

    Probed through SQLite's own WAL-index lock instead of a pid file: a
    crashed server leaves no stale lock behind, and any process holding the
    file open is detected, whatever its port or configuration.
    """
    shm = Path(f"{db_path}-shm")
    try:
        fd = os.open(shm, os.O_RDWR)
    except FileNotFoundError:
        return False  # no WAL index: nobody has the database open
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, SHM_DMS_OFFSET)
    except OSError as exc:
        if exc.errno in (errno.EACCES, errno.EAGAIN):
            return True
        raise
    else:
        fcntl.lockf(fd, fcntl.LOCK_UN, 1, SHM_DMS_OFFSET)
        return False
    finally:
        os.close(fd)


def database_dir(path: Path) -> Path:
    """`--db` names the database directory, or the `stemedb.db` file inside it."""
    if path.name == "stemedb.db" or path.is_file():
        if path.name != "stemedb.db":
            raise CliError(f"--db {path}: the database file is always named stemedb.db", EXIT_USAGE)
        return path.parent
    return path


def local_settings(path: Path) -> Settings:
    """The settings of the database at `--db`, refusing one that another process has open."""
    from stemedb.config import ConfigError, load_settings

    directory = database_dir(path)
    try:
        settings = load_settings({**os.environ, "STEMEDB_DB_DIR": str(directory)})
    except ConfigError as exc:
        raise CliError(f"configuration: {exc}") from None
    if database_in_use(settings.db_path):
        raise CliError(
            f"{settings.db_path} is open in another process (a running server?). Stop it "
            "first, or import through it with --url"
        )
    return settings


class LocalSink:
    """Straight into a stopped database: the server's own `WriteService.write_batch`,
    so validation, signature checks and reference checks are exactly the server's.

    `write_prepared` takes records already prepared by `WriteService.prepare`
    (in worker processes, see import_pipeline) and only journals them.
    """

    def __init__(self, path: Path, settings: Settings | None = None) -> None:
        from stemedb.service.rights import OPERATOR
        from stemedb.service.writes import WriteService
        from stemedb.store import StartupError, Store

        settings = settings or local_settings(path)
        settings.db_dir.mkdir(parents=True, exist_ok=True)
        store = Store(settings)
        try:
            store.open()
        except StartupError as exc:
            store.close()
            raise CliError(f"cannot open {settings.db_path}: {exc} (see {exc.runbook})") from None
        if store.writer is None:
            store.close()
            raise CliError(f"{settings.db_path} is read-only: {store.read_only_reason}")
        self.store = store
        self.service = WriteService(store, settings)
        self.caller = OPERATOR  # whoever may write the file has every right over it
        print(f"stemedb import: writing into {settings.db_path}", file=sys.stderr)

    def write(self, records: list[Any]) -> list[dict[str, Any]]:
        _, body = self.service.write_batch(enumerate(records), atomic=False, caller=self.caller)
        return [dict(item) for item in body["results"]]

    def write_prepared(self, records: list[PendingRecord]) -> list[dict[str, Any]]:
        """Journal validated records in one commit; results as `write` answers them."""
        results: list[dict[str, Any]] = []
        for outcome in self.store.write(records, atomic=False):
            if outcome.error is not None:
                results.append({"status": "rejected", "error": outcome.error.to_dict()["error"]})
            else:
                results.append({"status": outcome.status, "seq": outcome.seq})
        return results

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.store.close()
