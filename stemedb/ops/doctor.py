"""`stemedb doctor`: the server-wont-start runbook's diagnosis tree, automated.

Each check returns findings with a status (ok, warn, fail, skip), what was
found, and what to do, pointing at the runbook section the server itself
names when it refuses to start. Checks change nothing: doctor is safe to run
next to a live server and as root (it leaves no files behind). Where mode
bits can lie (a read-only mount, a full disk) it tries for real: an unnamed
temporary file in each directory and an O_RDWR open of the database. A
StemeDB server is recognised by asking it (`/v1/health`) and by the data
directory's lock, never by its command line (a checkout is often named
`stemedb`, so every process started from it would look like ours).
"""

from __future__ import annotations

import errno
import http.client
import json
import os
import pwd
import socket
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path

from stemedb.config import ConfigError, Settings, load_settings
from stemedb.ops import procnet
from stemedb.ops.doctor_data import check_archive, check_backup_age, check_journal, check_tls
from stemedb.ops.doctor_quarantine import check_quarantine
from stemedb.ops.doctor_replays import check_replays
from stemedb.ops.doctor_tiers import check_tier_registry
from stemedb.ops.findings import DISK_RUNBOOK, RUNBOOK, Finding, to_json
from stemedb.store import dirlock
from stemedb.store.consistency import disk_full

__all__ = [
    "Finding",
    "Settings",
    "check_archive",
    "check_backup_age",
    "check_directory",
    "check_disk",
    "check_journal",
    "check_lock",
    "check_port",
    "check_tls",
    "diagnose",
    "settings_with_findings",
    "to_json",
]

WARN_FREE, FAIL_FREE = 0.10, 0.02
SERVICE_USER = "stemedb"


def settings_with_findings(environ: Mapping[str, str]) -> tuple[Settings, list[Finding]]:
    """Load settings; a bad variable becomes a finding and is left at its default."""
    env = dict(environ)
    findings: list[Finding] = []
    for _ in range(len(env) + 1):
        try:
            return load_settings(env), findings
        except ConfigError as exc:
            findings.append(
                Finding(
                    "configuration",
                    "fail",
                    str(exc),
                    f"fix {exc.variable} in /etc/stemedb/stemedb.env (see `stemedb config`)",
                )
            )
            env.pop(exc.variable, None)
    return Settings(), findings


def diagnose(settings: Settings, *, expected_user: str | None = None) -> list[Finding]:
    uid, gids, user = expected_owner(expected_user)
    findings: list[Finding] = []
    findings += check_port(settings.bind_host, settings.bind_port, settings.db_dir)
    findings += check_lock(settings.db_dir, settings.bind_port)
    dirs = {"db": settings.db_dir, "wal": settings.wal_dir, "backup": settings.backup_dir}
    for name, path in dirs.items():
        findings += check_directory(name, path, uid, gids, user)
    findings += check_disk(dirs.values())
    findings += _full_disk_is_not_corruption(check_journal(settings.db_path), settings.db_dir)
    findings += check_tls(settings.tls_cert, settings.tls_key)
    findings += check_backup_age(settings.backup_dir)
    findings += check_archive(settings)
    findings += check_tier_registry(settings)  # agent tier registrations (doctor_tiers.py)
    findings += check_quarantine(settings)  # held records waiting (doctor_quarantine.py)
    findings += check_replays(settings)  # replays stored before v0.2 (doctor_replays.py)
    findings += _replication(settings)  # Litestream (doctor_replication.py)
    return findings


# ---- §1 port ---------------------------------------------------------------------


def _full_disk_is_not_corruption(findings: list[Finding], db_dir: Path) -> list[Finding]:
    """SQLite reports a full disk while opening as an I/O error: say what it is (§4)."""
    if not disk_full(db_dir):
        return findings
    return [
        Finding(
            f.check,
            "fail",
            f"cannot read the journal because the disk holding {db_dir} is full ({f.detail})",
            f"free space first: {DISK_RUNBOOK} ({RUNBOOK} §4)",
        )
        if f.status == "fail" and "seq" not in f.detail
        else f
        for f in findings
    ]


def check_lock(db_dir: Path, port: int | None = None) -> list[Finding]:
    """Who holds the data directory's writer lock (storage.md: one writer process).

    Held by the process serving the configured port: the service, all is well.
    Held by anything else (an import, a restore, a stray server on another
    port): a server started now would exit with §6, so say who to wait for.
    """
    found = dirlock.holder(db_dir)
    if found is None:
        return [Finding("lock", "ok", f"{db_dir} is not locked: no StemeDB process is writing it")]
    serving = {o.pid for o in procnet.port_owners(port)[1]} if port else set()
    if found.pid in serving:
        return [Finding("lock", "ok", f"{db_dir} is held by the server on port {port}")]
    return [
        Finding(
            "lock",
            "warn",
            f"{db_dir} is held by {found.describe()}",
            "a server or another writing command cannot start until it exits: wait for it or "
            f"stop it ({dirlock.RUNBOOK})",
        )
    ]


def is_stemedb_server(host: str, port: int, timeout: float = 2.0) -> bool:
    """Ask the listener: a StemeDB server answers /v1/health with its own body shape."""
    probe = "127.0.0.1" if host in ("0.0.0.0", "") else "::1" if host == "::" else host
    conn = http.client.HTTPConnection(probe, port, timeout=timeout)
    try:
        conn.request("GET", "/v1/health")
        resp = conn.getresponse()
        body = json.loads(resp.read(65536) or b"null")
    except (OSError, ValueError, http.client.HTTPException):
        return False
    finally:
        conn.close()
    return isinstance(body, dict) and {"status", "journal_seq", "chain_head"} <= body.keys()


def check_port(host: str, port: int, db_dir: Path | None = None) -> list[Finding]:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host, port))
        return [Finding("port", "ok", f"{host}:{port} is free")]
    except OSError as exc:
        if exc.errno == errno.EADDRNOTAVAIL:
            return [
                Finding(
                    "port",
                    "fail",
                    f"{host} is not an address of this host",
                    "fix STEMEDB_BIND_ADDR",
                )
            ]
        if exc.errno == errno.EACCES:
            return [
                Finding(
                    "port",
                    "fail",
                    f"port {port} needs privileges",
                    "use a port >= 1024 (default 18180)",
                )
            ]
        if exc.errno != errno.EADDRINUSE:
            return [Finding("port", "fail", f"cannot bind {host}:{port}: {exc}", f"{RUNBOOK} §1")]
    _, owners = procnet.port_owners(port)
    if not owners:
        return [
            Finding(
                "port",
                "fail",
                f"port {port} is in use by a process this user cannot see",
                f"run `sudo stemedb doctor` or `ss -ltnp 'sport = :{port}'`; {RUNBOOK} §1",
            )
        ]
    who = "; ".join(f"pid {o.pid} ({o.command[:80]})" for o in owners)
    lock_holder = dirlock.holder(db_dir) if db_dir is not None else None
    ours = lock_holder is not None and lock_holder.pid in {o.pid for o in owners}
    if ours or is_stemedb_server(host, port):  # never by its command line: paths say stemedb
        return [
            Finding(
                "port",
                "warn",
                f"port {port} is held by a StemeDB server: {who}",
                "if that is the service you expect, nothing to do; if it is a stale instance, "
                f"stop it (kill {owners[0].pid}) and start the service ({RUNBOOK} §1)",
            )
        ]
    return [
        Finding(
            "port",
            "fail",
            f"port {port} is in use by {who}",
            f"stop it (kill {owners[0].pid}) or set STEMEDB_BIND_ADDR to a free port "
            f"({RUNBOOK} §1)",
        )
    ]


# ---- §5 directories and permissions ---------------------------------------------


def expected_owner(user: str | None) -> tuple[int, set[int], str]:
    """The account the server runs as: `--user`, else `stemedb` when run by root, else us."""
    name = user
    if name is None and os.geteuid() == 0:
        try:
            pwd.getpwnam(SERVICE_USER)
            name = SERVICE_USER
        except KeyError:
            name = None
    if name is not None:
        entry = pwd.getpwnam(name)
        gids = {entry.pw_gid, *os.getgrouplist(name, entry.pw_gid)}
        return entry.pw_uid, gids, name
    uid = os.geteuid()
    return uid, {os.getegid(), *os.getgroups()}, _user(uid)


def _user(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def _writable_by(st: os.stat_result, uid: int, gids: set[int], directory: bool) -> bool:
    if uid == 0:
        return True
    need = 0o3 if directory else 0o2  # write (+ search for directories)
    if st.st_uid == uid:
        shift = 6
    elif st.st_gid in gids:
        shift = 3
    else:
        shift = 0
    return (st.st_mode >> shift) & need == need


def _try_write(path: Path, database: Path | None) -> Finding | None:
    """Write for real (mode bits say nothing about a read-only mount or a full disk).

    An unnamed temporary file in the directory (O_TMPFILE: nothing is left
    behind) and an open of the database for writing (no SQLite: no -wal/-shm).
    """
    try:
        with tempfile.TemporaryFile(dir=path, prefix=".stemedb-doctor-"):
            pass
        if database is not None and database.exists():
            os.close(os.open(database, os.O_RDWR))
    except OSError as exc:
        where = database if database is not None and exc.filename == str(database) else path
        if exc.errno == errno.EROFS:
            return Finding(
                "",
                "fail",
                f"{where} is on a read-only file system",
                f"remount it read-write (mount -o remount,rw) ({RUNBOOK} §5)",
            )
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return Finding("", "fail", f"{where}: no space left", f"{DISK_RUNBOOK} ({RUNBOOK} §4)")
        if exc.errno in (errno.EACCES, errno.EPERM):
            return Finding("", "fail", f"{where} is not writable by this user ({exc.strerror})", "")
        return Finding("", "fail", f"cannot write {where}: {exc}", f"{RUNBOOK} §5")
    return None


def check_directory(name: str, path: Path, uid: int, gids: set[int], user: str) -> list[Finding]:
    check = f"{name}_dir"
    if not path.exists():
        creator = "`stemedb backup`" if name == "backup" else "the server at start"
        return [Finding(check, "warn", f"{path} does not exist", f"created by {creator}")]
    if not path.is_dir():
        return [Finding(check, "fail", f"{path} is not a directory", f"{RUNBOOK} §5")]
    findings = []
    targets = [path]
    if name == "db":
        targets += [
            p
            for p in (path / "stemedb.db", path / "stemedb.db-wal", path / "stemedb.db-shm")
            if p.exists()
        ]
    fix = f"chown -R {user}: {path} && chmod 750 {path} ({RUNBOOK} §5)"
    tried = _try_write(path, path / "stemedb.db" if name == "db" else None)
    refused = tried is not None and "not writable by this user" in tried.detail
    if tried is not None and (uid == os.geteuid() or not refused):
        # Asking for another user (root, for the service), mode bits judge a refusal below.
        return [Finding(check, tried.status, tried.detail, tried.action or fix)]
    for target in targets:
        st = target.stat()
        writable = _writable_by(st, uid, gids, target.is_dir())
        if not writable:
            findings.append(
                Finding(check, "fail", f"{target} is not writable by {user} (uid {uid})", fix)
            )
        elif st.st_uid != uid:
            findings.append(
                Finding(
                    check,
                    "warn",
                    f"{target} is owned by {_user(st.st_uid)} (uid {st.st_uid}), not {user}",
                    fix,
                )
            )
    if not findings:
        findings.append(Finding(check, "ok", f"{path} exists, writable and owned by {user}"))
    return findings


# ---- §4 disk -----------------------------------------------------------------------


def _existing(path: Path) -> Path:
    path = path.absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def check_disk(paths: Iterable[Path]) -> list[Finding]:
    findings, seen = [], set()
    for path in paths:
        probe = _existing(path)
        dev = probe.stat().st_dev
        if dev in seen:
            continue
        seen.add(dev)
        vfs = os.statvfs(probe)
        for what, free, total in (
            ("space", vfs.f_bavail, vfs.f_blocks),
            ("inodes", vfs.f_favail, vfs.f_files),
        ):
            if total == 0:
                continue  # file systems without an inode limit report 0
            ratio = free / total
            status = "fail" if ratio < FAIL_FREE else "warn" if ratio < WARN_FREE else "ok"
            amount = (
                f"{free * vfs.f_frsize / 2**30:.1f} GiB" if what == "space" else f"{free} inodes"
            )
            findings.append(
                Finding(
                    f"disk_{what}",
                    status,
                    f"{probe}: {ratio:.1%} free ({amount})",
                    "" if status == "ok" else f"free space: {DISK_RUNBOOK} ({RUNBOOK} §4)",
                )
            )
    return findings


def _replication(settings: Settings) -> list[Finding]:
    from stemedb.ops.doctor_replication import check_replication  # lazy: a hook, above

    return check_replication(settings)
