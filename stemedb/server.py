"""Start, serve and stop: the runbook's ten numbered steps, then a clean drain.

Each step logs one `[n/10] name: outcome` line so an operator sees where a
start hangs or fails; an expected failure (bad setting, port in use, data
directory not writable, damaged journal) prints the step, the cause and the
runbook section, and the process exits 1 without a traceback.
"""

from __future__ import annotations

import errno
import gc
import logging
import os
import signal
import socket
import tempfile
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import FrameType
from typing import Any, Protocol

from stemedb import __version__, notify
from stemedb.config import KNOWN_VARIABLES, ConfigError, Settings, load_settings
from stemedb.http.dispatch import InlinePredicate
from stemedb.http.route import Route
from stemedb.logs import setup_logging
from stemedb.metrics import Metrics

log = logging.getLogger("stemedb.server")

RUNBOOK = "docs/operations/runbooks/server-wont-start.md"
CONFIG_DOC = "docs/operations/configuration.md"
DRAIN_SECONDS = 10.0


class StoreLike(Protocol):
    def open_journal(self) -> str: ...
    def open_projections(self) -> str: ...
    def start_writer(self) -> str: ...
    def stats(self) -> Mapping[str, Any]: ...
    def close(self) -> None: ...


StoreFactory = Callable[[Settings, Metrics], StoreLike]
RoutesFactory = Callable[[Settings, Any, Metrics], Sequence[Route]]
MiddlewareFactory = Callable[[Settings, Any, Metrics], Sequence[object]]


class StepFailed(Exception):
    """An expected start-up failure: `cause` for the log, `runbook` to read next."""

    def __init__(self, cause: str, runbook: str) -> None:
        super().__init__(cause)
        self.cause = cause
        self.runbook = runbook


def default_store(settings: Settings, metrics: Metrics) -> StoreLike:
    from stemedb import admission
    from stemedb.store import Store  # lazy: tests run the server with fake stores

    if settings.role == "replica":  # follows the replica storage (replication.md)
        from stemedb.store.replica import ReplicaStore

        return ReplicaStore(settings)
    # A request waiting for its group commit gives its admission slot back.
    return Store(
        settings,
        on_commit=metrics.observe_commit,
        while_waiting=admission.blocking,
        rebuild_progress=notify.StartupProgress("rebuilding the projections (one-time)"),
    )


def default_routes(settings: Settings, store: Any, metrics: Metrics) -> Sequence[Route]:
    from stemedb.api.endpoints import build_routes

    return build_routes(settings, store, metrics)


def default_middleware(settings: Settings, store: Any, metrics: Metrics) -> Sequence[object]:
    from stemedb.security import build_middleware  # auth, rate limits, quotas

    return build_middleware(settings, store, metrics)


class Server:
    """One server life: `start()` runs steps 1-9, `serve()` step 10 until stopped."""

    def __init__(
        self,
        overrides: Mapping[str, str] | None = None,
        *,
        environ: Mapping[str, str] | None = None,
        store_factory: StoreFactory = default_store,
        routes_factory: RoutesFactory = default_routes,
        middleware_factory: MiddlewareFactory | None = default_middleware,
        configure_logging: bool = True,
        pin_cpus: bool = False,
    ) -> None:
        self.overrides = dict(overrides or {})
        self.environ = dict(os.environ if environ is None else environ)
        self.store_factory = store_factory
        self.routes_factory = routes_factory
        self.middleware_factory = middleware_factory
        self.configure_logging = configure_logging
        self.pin_cpus = pin_cpus  # only the real server process: never pin a test runner
        self.settings: Settings | None = None
        self.metrics: Metrics | None = None
        self.store: StoreLike | None = None
        self.listener: Any = None  # a stemedb.http.listener.Listener from step 9
        self.inline: InlinePredicate | None = None
        self.url = ""
        self._stop = threading.Event()
        self._stop_reason = ""
        self._dirlock: Any = None  # stemedb.store.dirlock.DirLock once step 4 has run
        self.replication: Any = None  # stemedb.replication.Replication when it runs

    # ---- steps 1-9 -----------------------------------------------------------

    def start(self) -> None:
        """Run steps 1-9; raise StepFailed (already logged) on an expected failure."""
        steps: list[tuple[str, Callable[[], str]]] = [
            ("logging", self._step_logging),
            ("metrics registry", self._step_metrics),
            ("configuration", self._step_configuration),
            ("data directories", self._step_directories),
            ("open the journal", lambda: self._require_store().open_journal()),
            ("open the store", self._step_projections),
            ("start the writer", self._step_writer),
            ("build the Falcon app", self._step_app),
            ("bind the listener", self._step_bind),
        ]
        for number, (name, step) in enumerate(steps, start=1):
            try:
                log.info("[%d/10] %s: %s", number, name, step())
            except Exception as exc:
                failure = _expected_failure(exc, self.settings.db_path if self.settings else None)
                if failure is None:
                    log.exception("[%d/10] %s: FAILED: unexpected error", number, name)
                    failure = StepFailed(f"unexpected {type(exc).__name__}: {exc}", RUNBOOK)
                else:
                    log.error(
                        "[%d/10] %s: FAILED: %s. See %s",
                        number,
                        name,
                        failure.cause,
                        failure.runbook,
                    )
                self._close_store()
                self._release_lock()
                raise failure from None

    def _step_logging(self) -> str:
        level = self._raw("STEMEDB_LOG_LEVEL", "info").strip().lower()
        fmt = self._raw("STEMEDB_LOG_FORMAT", "text").strip().lower()
        if self.configure_logging:
            setup_logging(level, fmt)  # unknown values fall back; step 3 names them
        return f"level {level}, format {fmt}"

    def _step_metrics(self) -> str:
        self.metrics = Metrics(__version__)
        return "registry ready"

    def _step_configuration(self) -> str:
        unknown = sorted(set(self.overrides) - KNOWN_VARIABLES)
        if unknown:
            raise ConfigError(unknown[0], "unknown setting")
        settings = self.settings = load_settings({**self.environ, **self.overrides})
        if not (settings.is_loopback or settings.auth_enabled):
            if not settings.allow_unauthenticated_remote:
                raise ConfigError(
                    "STEMEDB_BIND_ADDR",
                    f"refusing to listen on non-loopback {settings.bind_addr} with authentication "
                    "off (anyone who can reach it could read and write everything). Set "
                    "STEMEDB_AUTH_ENABLED=true with API keys (STEMEDB_ROOT_API_KEY or "
                    "`stemedb keys create`), or STEMEDB_ALLOW_UNAUTHENTICATED_REMOTE=true if a "
                    "proxy in front authenticates, or bind 127.0.0.1",
                )
            log.warning("listening on %s WITHOUT authentication", settings.bind_addr)
        if settings.tls_cert is not None:
            assert self.metrics is not None
            self.metrics.watch_tls_cert(settings.tls_cert)
            if not settings.tls_cert.is_file():
                log.warning(
                    "STEMEDB_TLS_CERT %s does not exist (%s §2)", settings.tls_cert, RUNBOOK
                )
        pinned = ""
        if self.pin_cpus:
            from stemedb import affinity

            pinned = f", {affinity.apply(settings.cpu_affinity)}"
        return (
            f"bind {settings.bind_addr}, db {settings.db_dir}, wal {settings.wal_dir}, "
            f"{settings.threads} threads, {settings.active_requests or 'unlimited'} active, "
            f"sync {settings.sync}, auth {'on' if settings.auth_enabled else 'off'}{pinned}"
        )

    def _step_directories(self) -> str:
        settings = self._require_settings()
        notes = [_prepare_directory(path) for path in (settings.db_dir, settings.wal_dir)]
        notes.append(self._lock_data_directory(settings.db_dir))
        return "; ".join(notes)

    def _lock_data_directory(self, db_dir: Path) -> str:
        """Hold the directory's lock from here to the end of the run (one writer process)."""
        from stemedb.store import dirlock

        try:
            self._dirlock = dirlock.acquire(db_dir, "stemedb serve")
        except dirlock.DirectoryLocked as exc:
            raise StepFailed(str(exc), exc.runbook) from None
        return f"{dirlock.LOCK_NAME} held by pid {os.getpid()}"

    def _release_lock(self) -> None:
        lock, self._dirlock = self._dirlock, None
        if lock is not None:
            lock.release()

    def _step_projections(self) -> str:
        store = self._require_store()
        summary = store.open_projections()
        assert self.metrics is not None
        self.metrics.bind_store(store.stats)
        return summary

    def _step_writer(self) -> str:
        from stemedb import replication  # Litestream, when configured (replication.md)

        summary = self._require_store().start_writer()
        try:
            self.replication = replication.for_server(
                self._require_settings(), self.store, self.metrics
            )
        except replication.ReplicationError as exc:
            raise StepFailed(str(exc), replication.RUNBOOK) from None
        return f"{summary}; {self.replication.describe()}" if self.replication else summary

    def _step_app(self) -> str:
        from stemedb import admission
        from stemedb.api.app import admitted, create_app, metrics_route
        from stemedb.http.route import inline_matcher

        settings, store, metrics = self._require_settings(), self._require_store(), self.metrics
        assert metrics is not None
        routes = list(self.routes_factory(settings, store, metrics))
        extra = self.middleware_factory(settings, store, metrics) if self.middleware_factory else ()
        if hasattr(store, "current_head"):  # X-StemeDB-Seq and min_seq (replication.md)
            from stemedb.api.middleware import JournalSeqMiddleware

            extra = [*extra, JournalSeqMiddleware(store, settings.replica_wait_max_s)]
        app = create_app(settings, routes, metrics, extra_middleware=extra)
        self.app = admitted(app, admission.configure(settings.active_requests))
        metrics.watch_admission(admission.current())
        served = [*routes, metrics_route(metrics)] if settings.meter_enabled else routes
        self.inline = inline_matcher(served) if settings.inline_reads else None
        return f"{len(routes)} routes"

    def _step_bind(self) -> str:
        from stemedb.http.listener import Listener  # lazy: keeps waitress out of library use

        settings = self._require_settings()
        try:
            self.listener = Listener(
                self.app,
                host=settings.bind_host,
                port=settings.bind_port,
                threads=settings.threads,
                inline=self.inline,
                max_request_body_size=settings.max_body_bytes * 32 + 65536,
                request_timeout_s=settings.request_timeout_s,
                send_timeout_s=settings.send_timeout_s,
                send_buffer_total_bytes=settings.send_buffer_total_bytes,
            )
        except OSError as exc:
            raise StepFailed(*_bind_failure(exc, settings)) from None
        self.url = self.listener.url
        return f"listening on {self.url}"

    # ---- step 10 and shutdown ------------------------------------------------

    def serve(self) -> int:
        """Step 10: serve until `request_stop`, then drain and close. Returns 0."""
        settings = self._require_settings()
        notify.ready(f"serving on {self.url}", self.environ)
        log.info("[10/10] serve: ready on %s (%d threads)", self.url, settings.threads)
        # What survived start-up (modules, models, routes, caches) lives as long as the
        # process: keep it out of every later collection, which would otherwise walk
        # it all in the middle of some unlucky request (6 ms of p99 at 32 connections).
        gc.collect()
        gc.freeze()
        try:
            self.listener.serve(self._stop)
        finally:
            notify.stopping(self.environ)
            log.info(
                "stopping (%s): refusing new connections, draining in-flight requests",
                self._stop_reason or "error",
            )
            self.listener.drain(DRAIN_SECONDS)
            self._close_store()
            self._release_lock()  # only now: the store is closed, its files are quiet
            log.info("stopped")
        return 0

    def request_stop(self, reason: str = "requested") -> None:
        """Safe from a signal handler or another thread; serve() notices within 0.5 s."""
        self._stop_reason = reason
        self._stop.set()

    def _close_store(self) -> None:
        if self.store is not None:
            store, self.store = self.store, None
            store.close()
            log.info("writer stopped and store closed")
        if self.replication is not None:  # after the writer's last commit: Litestream ships it
            self.replication, replication = None, self.replication
            replication.stop()

    def _raw(self, variable: str, default: str) -> str:
        return self.overrides.get(variable, self.environ.get(variable, default))

    def _require_settings(self) -> Settings:
        assert self.settings is not None, "configuration step has not run"
        return self.settings

    def _require_store(self) -> StoreLike:
        if self.store is None:
            assert self.metrics is not None
            self.store = self.store_factory(self._require_settings(), self.metrics)
        return self.store


def _prepare_directory(path: Path) -> str:
    """Create when missing; fail if not a writable directory; warn if someone else owns it."""
    created = False
    try:
        if not path.exists():
            path.mkdir(parents=True, mode=0o750)
            created = True
        if not path.is_dir():
            raise StepFailed(f"{path} exists but is not a directory", f"{RUNBOOK} §5")
        with tempfile.TemporaryFile(dir=path, prefix=".stemedb-write-check-"):
            pass
    except PermissionError as exc:
        raise StepFailed(
            f"{path} is not writable by uid {os.geteuid()} ({exc.strerror}); fix ownership "
            f"with: chown -R {_user(os.geteuid())} {path}",
            f"{RUNBOOK} §5",
        ) from None
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise StepFailed(
                f"{path}: {exc.strerror or exc}: the disk is full; free space, then start again",
                f"{RUNBOOK} §4",
            ) from None
        if exc.errno == errno.EROFS:
            raise StepFailed(
                f"{path} is on a read-only file system; remount it read-write "
                "(mount -o remount,rw) or point the setting at a writable disk",
                f"{RUNBOOK} §5",
            ) from None
        raise StepFailed(f"{path}: {exc.strerror or exc}", f"{RUNBOOK} §5") from None
    owner = path.stat().st_uid
    if owner != os.geteuid():
        log.warning(
            "%s is owned by %s, not by the server's user %s (%s §5)",
            path,
            _user(owner),
            _user(os.geteuid()),
            RUNBOOK,
        )
    return f"{path} {'created' if created else 'ok'}"


def _user(uid: int) -> str:
    try:
        import pwd

        return pwd.getpwuid(uid).pw_name
    except (ImportError, KeyError):
        return str(uid)


def _bind_failure(exc: OSError, settings: Settings) -> tuple[str, str]:
    addr, port = settings.bind_addr, settings.bind_port
    if exc.errno == errno.EADDRINUSE:
        return (
            f"address {addr} is already in use "
            f"(another stemedb-api? find it with: lsof -i :{port})",
            f"{RUNBOOK} §1",
        )
    if exc.errno == errno.EACCES:
        return (
            f"permission denied binding {addr} (ports below 1024 need root or "
            "CAP_NET_BIND_SERVICE; the default is 18180)",
            f"{RUNBOOK} §1",
        )
    if isinstance(exc, socket.gaierror) or exc.errno == errno.EADDRNOTAVAIL:
        return (f"cannot bind {addr}: {exc.strerror or exc} (check STEMEDB_BIND_ADDR)", CONFIG_DOC)
    return (f"cannot bind {addr}: {exc}", f"{RUNBOOK} §1")


def _expected_failure(exc: Exception, db_path: Path | None = None) -> StepFailed | None:
    if isinstance(exc, StepFailed):
        return exc
    if isinstance(exc, ConfigError):
        return StepFailed(str(exc), CONFIG_DOC)
    from stemedb.store import StartupError  # lazy: keeps apsw out of `stemedb --help`
    from stemedb.store.consistency import classify

    if isinstance(exc, StartupError):
        return StepFailed(str(exc), exc.runbook)
    known = classify(exc, db_path) if db_path is not None else None
    if known is not None:  # full disk, read-only file or file system, at any step
        return StepFailed(str(known), known.runbook)
    if isinstance(exc, PermissionError):
        return StepFailed(str(exc), f"{RUNBOOK} §5")
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return StepFailed(str(exc), f"{RUNBOOK} §4")
    return None


def run_server(
    settings_overrides: Mapping[str, str] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    store_factory: StoreFactory = default_store,
    routes_factory: RoutesFactory = default_routes,
    middleware_factory: MiddlewareFactory | None = default_middleware,
) -> int:
    """The `stemedb serve` process: 0 after a clean SIGTERM/SIGINT stop, 1 if start fails.

    `settings_overrides` are STEMEDB_* variables (as strings) that win over the
    environment, e.g. from command-line flags.
    """
    server = Server(
        settings_overrides,
        environ=environ,
        store_factory=store_factory,
        routes_factory=routes_factory,
        middleware_factory=middleware_factory,
        pin_cpus=True,
    )
    previous: dict[signal.Signals, Any] = {}

    def on_signal(signum: int, frame: FrameType | None) -> None:
        server.request_stop(signal.Signals(signum).name)

    # Installed before start: a SIGTERM during steps 1-9 stops right after step 9.
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGTERM, signal.SIGINT):
            previous[signum] = signal.signal(signum, on_signal)
    try:
        try:
            server.start()
        except StepFailed:
            return 1
        return server.serve()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
