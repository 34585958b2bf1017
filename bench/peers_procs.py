"""The peers' processes: a throwaway PostgreSQL cluster, the Postgres app, Datasette.

Everything runs on this machine, on loopback (and a unix socket for Postgres),
from the bench's own venv (bench/.cache/venv-bench: `pip install -e '.[bench]'`),
so Datasette's and psycopg's dependencies never touch the project's venv.
`ensure_setup()` makes that venv and installs the Debian packages (wrk,
postgresql) when they are missing and the bench runs as root.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from bench import datasets
from bench.server import CLK_TCK, free_port

ROOT = Path(__file__).resolve().parent.parent
VENV = datasets.CACHE / "venv-bench"
VENV_PY = VENV / "bin" / "python"
APT = ("wrk", "postgresql")


def pg_bin() -> Path | None:
    """The newest /usr/lib/postgresql/N/bin of the Debian package."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"), key=lambda p: p.parts[-3])
    return found[-1].parent if found else None


def missing() -> list[str]:
    out = []
    if not shutil.which("wrk"):
        out.append("wrk is missing: apt-get install wrk")
    if pg_bin() is None:
        out.append("PostgreSQL is missing: apt-get install postgresql")
    if not VENV_PY.exists():
        out.append(
            f"the bench venv is missing: python3 -m venv {VENV} && "
            f"{VENV}/bin/pip install -e '.[bench]'"
        )
    return out


def ensure_setup() -> list[str]:
    """Install what is missing (root only for apt); return what is still missing."""
    if (not shutil.which("wrk") or pg_bin() is None) and os.geteuid() == 0:
        subprocess.run(["apt-get", "install", "-y", "-q", *APT], check=False)
    if not VENV_PY.exists():
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        subprocess.run(
            [str(VENV / "bin" / "pip"), "install", "--quiet", "-e", f"{ROOT}[bench]"], check=True
        )
    return missing()


def _wait_http(port: int, path: str, proc: subprocess.Popen[bytes], log: Path) -> float:
    started = time.perf_counter()
    while time.perf_counter() - started < 120:
        if proc.poll() is not None:
            raise RuntimeError(f"exited: {log.read_text(errors='replace')[-2000:]}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", path)
            status = conn.getresponse().status
            conn.close()
            if status == 200:
                return time.perf_counter() - started
        except OSError:
            pass
        time.sleep(0.02)
    raise RuntimeError(f"no answer on {path} in 120 s ({log})")


class Proc:
    """An HTTP server process on 127.0.0.1:port (what bench.peers_wrk needs)."""

    def __init__(self, cmd: list[str], env: dict[str, str], log: Path, ready: str, port: int):
        self.port = port
        self.log = log
        with log.open("ab") as out:
            self.proc = subprocess.Popen(
                cmd, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )
        self.startup_s = _wait_http(port, ready, self.proc, log)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def datasette(db_file: Path, secret: str, log: Path) -> Proc:
    """`datasette serve` on db_file: root enabled (for the token), 1,000 rows per insert."""
    port = free_port()
    cmd = [
        str(VENV / "bin" / "datasette"),
        "serve",
        str(db_file),
        "-h",
        "127.0.0.1",
        "-p",
        str(port),
        "--root",
        "--secret",
        secret,
        "--setting",
        "max_insert_rows",
        "1000",
    ]
    return Proc(cmd, {**os.environ, "DATASETTE_SECRET": secret}, log, "/-/versions.json", port)


def datasette_token(secret: str) -> str:
    done = subprocess.run(
        [str(VENV / "bin" / "datasette"), "create-token", "root", "--secret", secret],
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


class PgCluster:
    """initdb + pg_ctl in `base`: unix socket only, Debian defaults otherwise (fsync on,
    synchronous_commit on), run as the `postgres` user when the bench is root."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.data = base / "pgdata"
        self.sock = base / "sock"
        self.log = base / "postgres.log"
        self.bin = pg_bin()
        if self.bin is None:
            raise RuntimeError("PostgreSQL is missing: apt-get install postgresql")
        self.sock.mkdir(parents=True, exist_ok=True)
        self.as_user: list[str] = []
        if os.geteuid() == 0:
            self.as_user = ["runuser", "-u", "postgres", "--"]
            shutil.chown(base, "postgres")
            shutil.chown(self.sock, "postgres")
            base.chmod(0o755)
        self._run("initdb", "-D", str(self.data), "-U", "bench", "--auth=trust", "-E", "UTF8")
        options = (
            f"-c listen_addresses='' -c unix_socket_directories='{self.sock}'"
            " -c shared_buffers=256MB -c max_connections=200"
        )
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options, "-w", "start")

    def _run(self, tool: str, *args: str) -> str:
        assert self.bin is not None
        done = subprocess.run(
            [*self.as_user, str(self.bin / tool), *args],
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
        )
        if done.returncode != 0:
            raise RuntimeError(f"{tool} failed: {done.stdout[-1000:]} {done.stderr[-1000:]}")
        return done.stdout

    def psql(self, db: str, *args: str) -> str:
        assert self.bin is not None
        done = subprocess.run(
            [
                str(self.bin / "psql"),
                "-X",
                "-q",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                str(self.sock),
                "-U",
                "bench",
                "-d",
                db,
                *args,
            ],
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
        )
        if done.returncode != 0:
            raise RuntimeError(f"psql failed: {done.stderr[-2000:]}")
        return done.stdout

    def cpu_s(self) -> float:
        """CPU seconds of the postmaster and its children (the backends of the app's
        long-lived connections among them): the database's share of a run."""
        pid = int((self.data / "postmaster.pid").read_text().split()[0])
        total = 0.0
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid or stat.parent.name == str(pid):
                total += (int(fields[11]) + int(fields[12])) / CLK_TCK
        return total

    def dsn(self, db: str) -> str:
        return f"host={self.sock} user=bench dbname={db}"

    def stop(self) -> None:
        with contextlib.suppress(RuntimeError):
            self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")


def pg_app(dsn: str, log: Path, threads: int = 32) -> Proc:
    port = free_port()
    env = {
        **os.environ,
        "PEERS_PG_DSN": dsn,
        "PEERS_PORT": str(port),
        "PEERS_THREADS": str(threads),
        "PYTHONPATH": str(ROOT),
    }
    return Proc([str(VENV_PY), "-m", "bench.peers_pgapp"], env, log, "/health", port)
