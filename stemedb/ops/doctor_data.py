"""Doctor checks of the data itself: journal header, TLS files, backup age, archive lag.

Split from `doctor` (which checks the host: port, directories, disk) to keep
each module small; `doctor.diagnose` runs both.
"""

from __future__ import annotations

import shutil
import ssl
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import apsw

from stemedb.config import Settings
from stemedb.ops import archive, backup
from stemedb.ops.common import open_readonly
from stemedb.ops.findings import RUNBOOK, Finding
from stemedb.store import files, journal, schema
from stemedb.store.journal import JournalError

T = TypeVar("T")

BACKUP_MAX_AGE_S = 26 * 3600
ARCHIVE_MAX_AGE_S = 15 * 60  # the timer runs every 5 minutes
CERT_WARN_S = 14 * 86400


def read_summary(
    check: str,
    settings: Settings,
    what: str,
    read: Callable[[apsw.Connection], T | None],
    older: str,
) -> T | Finding:
    """`read` on a read-only connection, or the `skip` finding saying why not: no
    database yet, unreadable, or (`read` gave None) a schema older than its table.

    The checks of the data (tiers, quarantine, replays) only read one summary
    from the store; a file they cannot read is the journal check's finding.
    """
    path = settings.db_path
    if not path.exists():
        return Finding(check, "skip", f"no database at {path} yet")
    try:
        conn = open_readonly(path)
        try:
            found = read(conn)
        finally:
            conn.close()
    except apsw.Error as exc:
        return Finding(check, "skip", f"cannot read {what}: {exc}")
    return Finding(check, "skip", older) if found is None else found


# ---- §3 journal header --------------------------------------------------------------


def check_journal(db_path: Path) -> list[Finding]:
    if not db_path.exists():
        return [
            Finding("journal", "skip", f"no database at {db_path} yet", "created at first start")
        ]
    section = f"{RUNBOOK} §3"
    try:
        conn = open_readonly(db_path)
    except apsw.Error as exc:
        return [Finding("journal", "fail", f"cannot open {db_path}: {exc}", f"{RUNBOOK} §5")]
    try:
        app_id = schema.application_id(conn)
        if app_id != schema.APPLICATION_ID:
            return [
                Finding(
                    "journal",
                    "fail",
                    f"{db_path} is not a StemeDB database (application_id {app_id:#x})",
                    section,
                )
            ]
        journal.check_header(conn)
        head = journal.read_head(conn)
        if head is None:
            raise JournalError("journal header frame (seq 0) is missing", 0)
        journal.verify_range(conn, max(0, head.seq - 999))
    except apsw.NotADBError:
        return [Finding("journal", "fail", f"{db_path} is not an SQLite database", section)]
    except JournalError as exc:
        return [
            Finding(
                "journal",
                "fail",
                f"journal damaged at seq {exc.seq}: {exc}",
                f"run `stemedb verify`, then restore ({section})",
            )
        ]
    except apsw.Error as exc:
        return [Finding("journal", "fail", f"{db_path}: {exc}", section)]
    except Exception as exc:  # damaged data must give a finding, never a traceback
        return [
            Finding(
                "journal",
                "fail",
                f"journal check failed: {type(exc).__name__}: {exc}",
                f"run `stemedb verify`, then restore ({section})",
            )
        ]
    finally:
        conn.close()
    detail = f"header ok, head seq {head.seq}, chain {head.chain_hex[:16]}…, tail verified"
    return [Finding("journal", "ok", detail)]


# ---- §2 TLS ------------------------------------------------------------------------------


def _openssl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["openssl", *args], capture_output=True, text=True, check=False, timeout=10
    )


def check_tls(cert: Path | None, key: Path | None) -> list[Finding]:
    if cert is None:
        return [Finding("tls", "skip", "STEMEDB_TLS_CERT not set")]
    if not cert.is_file():
        return [Finding("tls_cert", "fail", f"{cert} does not exist", f"{RUNBOOK} §2")]
    if shutil.which("openssl") is None:
        return [Finding("tls", "skip", "skipped: the openssl command is not installed")]
    out = _openssl("x509", "-noout", "-enddate", "-in", str(cert))
    if out.returncode != 0 or "notAfter=" not in out.stdout:
        return [Finding("tls_cert", "fail", f"{cert} is not a PEM certificate", f"{RUNBOOK} §2")]
    not_after = ssl.cert_time_to_seconds(out.stdout.split("=", 1)[1].strip())
    left = not_after - time.time()
    status = "fail" if left <= 0 else "warn" if left < CERT_WARN_S else "ok"
    findings = [
        Finding(
            "tls_cert",
            status,
            f"{cert} expires in {left / 86400:.1f} days"
            if left > 0
            else f"{cert} EXPIRED {-left / 86400:.1f} days ago",
            "" if status == "ok" else f"renew the certificate ({RUNBOOK} §2)",
        )
    ]
    if key is None:
        return [*findings, Finding("tls_key", "skip", "STEMEDB_TLS_KEY not set")]
    if not key.is_file():
        return [*findings, Finding("tls_key", "fail", f"{key} does not exist", f"{RUNBOOK} §2")]
    cert_pub = _openssl("x509", "-noout", "-pubkey", "-in", str(cert)).stdout.strip()
    key_out = _openssl("pkey", "-pubout", "-in", str(key))
    if key_out.returncode != 0:
        return [
            *findings,
            Finding("tls_key", "fail", f"{key} is not a readable private key", f"{RUNBOOK} §2"),
        ]
    match = cert_pub == key_out.stdout.strip()
    findings.append(
        Finding(
            "tls_key",
            "ok" if match else "fail",
            f"{key} matches the certificate" if match else f"{key} does NOT match {cert}",
            "" if match else f"install the key the certificate was issued for ({RUNBOOK} §2)",
        )
    )
    return findings


# ---- backups and archive --------------------------------------------------------------


def check_backup_age(backup_dir: Path) -> list[Finding]:
    stamp = backup.last_backup_timestamp(backup_dir)
    if stamp is None:
        return [Finding("backup", "warn", f"no backup in {backup_dir}", "run `stemedb backup`")]
    age = time.time() - stamp
    status = "warn" if age > BACKUP_MAX_AGE_S else "ok"
    return [
        Finding(
            "backup",
            status,
            f"last backup {age / 3600:.1f} h ago",
            "" if status == "ok" else "check stemedb-backup.timer; run `stemedb backup`",
        )
    ]


def check_archive(settings: Settings) -> list[Finding]:
    if not settings.db_path.exists():
        return [Finding("archive", "skip", "no database yet")]
    try:
        conn = open_readonly(settings.db_path)
    except apsw.Error:
        return [Finding("archive", "skip", "database unreadable (see journal)")]
    try:
        head = journal.read_head(conn)
        last = archive.last_archived_seq(settings.wal_dir)
        oldest_ms = files.written_ms_at(conn, last + 1)
    except apsw.Error:
        return [Finding("archive", "skip", "database unreadable (see journal)")]
    finally:
        conn.close()
    head_seq = head.seq if head is not None else -1
    lag = max(0, head_seq - last)
    findings = []
    oldest = (time.time() - oldest_ms / 1000) if oldest_ms is not None else 0.0
    status = "warn" if lag and oldest > ARCHIVE_MAX_AGE_S else "ok"
    findings.append(
        Finding(
            "archive",
            status,
            f"{lag} frames not archived (head {head_seq}, archived to {last})"
            + (f", oldest {oldest / 60:.0f} min old" if lag else ""),
            "" if status == "ok" else "check stemedb-archive.timer; run `stemedb archive`",
        )
    )
    if settings.archive_command:
        waiting = [s for s in archive.list_segments(settings.wal_dir) if not s.done_marker.exists()]
        if waiting:
            findings.append(
                Finding(
                    "archive_shipping",
                    "warn",
                    f"{len(waiting)} segments not shipped by STEMEDB_ARCHIVE_COMMAND",
                    "run `stemedb archive` and read its error",
                )
            )
    return findings
