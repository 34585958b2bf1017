"""Configuration from STEMEDB_* environment variables.

Every value is parsed once at start; a bad value raises ConfigError naming the
variable, so the server can stop with one clear line instead of failing later.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

DEFAULT_SCHEME_TIERS: dict[str, int] = {
    "fda": 0,
    "ema": 0,
    "rfc": 0,
    "ietf": 0,
    "iso": 0,
    "peer": 1,
    "pubmed": 1,
    "doi": 1,
    "trial": 1,
    "study": 2,
    "preprint": 2,
    "code": 3,
    "wiki": 3,
    "expert": 3,
    "forum": 4,
    "faers": 4,
    "community": 4,
    "blog": 5,
    "anon": 5,
    "social": 5,
}

SECRET_FIELDS = frozenset({"root_api_key"})
AUTO_FIELDS = frozenset({"long_polls", "exports"})  # None means `auto`


class ConfigError(ValueError):
    """A configuration value is invalid; the message names the variable."""

    def __init__(self, variable: str, problem: str) -> None:
        super().__init__(f"{variable}: {problem}")
        self.variable = variable
        self.problem = problem


@dataclass(frozen=True)
class RateLimit:
    """A token bucket: `rate` tokens per second, burst of `burst` (0 = off)."""

    rate: float
    burst: float

    @property
    def enabled(self) -> bool:
        return self.rate > 0


@dataclass(frozen=True)
class Settings:
    bind_host: str = "127.0.0.1"
    bind_port: int = 18180
    db_dir: Path = Path("data/db")
    wal_dir: Path = Path("data/wal")
    backup_dir: Path = Path("backups")
    backup_keep: int = 7
    threads: int = 32
    active_requests: int = 2
    cpu_affinity: str = "auto"
    inline_reads: bool = True
    sync: str = "full"
    group_commit_max_batch: int = 512
    group_commit_max_delay_ms: float = 2.0
    verify_tail: int = 1000
    require_signatures: bool = True
    auth_enabled: bool = False
    root_api_key: str | None = None
    allow_unauthenticated_remote: bool = False
    rate_limit_read: RateLimit = RateLimit(2000, 2000)
    rate_limit_write: RateLimit = RateLimit(500, 500)
    rate_limit_admin: RateLimit = RateLimit(10, 10)
    quota_enabled: bool = False
    quota_tokens_per_hour: int = 10000
    new_agents_per_hour: int = 500  # new signing agents per API key/address; 0 = no limit
    meter_enabled: bool = True
    query_audit: bool = True
    audit_retention_days: int = 30
    max_body_bytes: int = 1048576
    request_timeout_s: float = 30.0
    send_timeout_s: float = 30.0
    send_buffer_total_bytes: int = 256 * 1024 * 1024
    long_polls: int | None = None  # None = auto: a quarter of `threads`, at least 1
    exports: int | None = None  # None = auto: an eighth of `threads`, at least 1
    audit_bytes_per_client: int = 512 * 1024  # per minute
    audit_bytes_total: int = 2 * 1024 * 1024  # per minute
    batch_max: int = 10000
    verify_threads: int = 0  # 0 = auto: one per CPU, at most 8
    allowed_origins: tuple[str, ...] = ()
    trusted_proxy: tuple[str, ...] = ()
    log_level: str = "info"
    log_format: str = "text"
    archive_command: str | None = None
    tls_enabled: bool = False
    tls_cert: Path | None = None
    tls_key: Path | None = None
    read_only_on_corruption: bool = False
    scheme_tiers: Mapping[str, int] = field(default_factory=lambda: dict(DEFAULT_SCHEME_TIERS))
    unregistered_max_tier: int = 2  # Observational: docs/security.md "Authority cannot be ..."
    # Quarantine (issue 19 item 1, docs/security.md "Quarantine"): every rule off by default.
    quarantine_new_agent_s: float = 0.0  # hold assertions of agents first seen < N s ago
    quarantine_min_trust: float = 0.0  # hold assertions of agents whose TrustRank is below
    quarantine_near_duplicates: bool = False  # hold an agent's near-duplicate repeats
    # Circuit breakers (issue 19 item 3, docs/security.md "Circuit breakers"); in memory.
    breaker_enabled: bool = False
    breaker_window_s: float = 60.0
    breaker_min_records: int = 20
    breaker_reject_ratio: float = 0.5
    breaker_rate_min: int = 1000
    breaker_rate_factor: float = 10.0
    breaker_open_s: float = 300.0
    # Replication and read replicas (docs/operations/replication.md).
    role: str = "primary"
    replica_url: tuple[str, ...] = ()  # Litestream replica URLs (file://, s3://, sftp://)
    litestream_config: Path | None = None  # a full litestream.yml instead (several targets)
    litestream_addr: str = "127.0.0.1:18190"  # Litestream's metrics endpoint (lag probe)
    replication_process: str = "child"  # child: `stemedb serve` runs it; external: a unit
    primary_url: str | None = None  # where a replica sends writers
    replica_wait_max_s: float = 5.0  # the longest `min_seq` makes a reader wait

    @property
    def db_path(self) -> Path:
        return self.db_dir / "stemedb.db"

    @property
    def long_poll_limit(self) -> int:
        """Long polls that may wait at once (each holds a worker thread while it waits)."""
        return self.long_polls if self.long_polls is not None else max(1, self.threads // 4)

    @property
    def export_limit(self) -> int:
        """Exports that may stream at once (each holds a worker thread while it streams)."""
        return self.exports if self.exports is not None else max(1, self.threads // 8)

    @property
    def bind_addr(self) -> str:
        host = f"[{self.bind_host}]" if ":" in self.bind_host else self.bind_host
        return f"{host}:{self.bind_port}"

    @property
    def is_loopback(self) -> bool:
        if self.bind_host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.bind_host).is_loopback
        except ValueError:
            return False

    def with_overrides(self, **changes: Any) -> Settings:
        return replace(self, **changes)

    def describe(self) -> dict[str, Any]:
        """The effective configuration for `stemedb config`, secrets masked."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in AUTO_FIELDS and value is None:
                value = "auto"
            elif f.name in SECRET_FIELDS and value:
                value = "********"
            elif isinstance(value, Path):
                value = str(value)
            elif isinstance(value, RateLimit):
                value = f"{value.rate:g}/s" if value.enabled else "0"
            elif isinstance(value, tuple):
                value = list(value)
            elif isinstance(value, Mapping):
                value = dict(value)
            out[f.name] = value
        out["bind_addr"] = self.bind_addr
        return out


def parse_bool(variable: str, raw: str) -> bool:
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off", ""}:
        return False
    raise ConfigError(variable, f"expected true or false, got {raw!r}")


def parse_cpu_affinity(variable: str, raw: str) -> str:
    """`auto`, `off`, or a CPU list like `1` or `0,2-3` (normalised to `0,2,3`)."""
    text = raw.strip().lower()
    if text in ("auto", "off"):
        return text
    cpus: set[int] = set()
    for part in text.split(","):
        low, dash, high = part.strip().partition("-")
        if not low.isdigit() or (dash and not high.isdigit()):
            raise ConfigError(
                variable, f"expected auto, off or a CPU list like 1 or 0,2-3, got {raw!r}"
            )
        first, last = int(low), int(high or low)
        if last < first or last > 4095:
            raise ConfigError(variable, f"bad CPU range {part.strip()!r} in {raw!r}")
        cpus.update(range(first, last + 1))
    return ",".join(str(c) for c in sorted(cpus))


def parse_int(variable: str, raw: str, minimum: int = 0, maximum: int | None = None) -> int:
    try:
        value = int(raw.strip())
    except ValueError:
        raise ConfigError(variable, f"expected an integer, got {raw!r}") from None
    if value < minimum or (maximum is not None and value > maximum):
        bound = f">= {minimum}" if maximum is None else f"between {minimum} and {maximum}"
        raise ConfigError(variable, f"must be {bound}, got {value}")
    return value


def parse_float(variable: str, raw: str, minimum: float = 0.0) -> float:
    try:
        value = float(raw.strip())
    except ValueError:
        raise ConfigError(variable, f"expected a number, got {raw!r}") from None
    if not value >= minimum or value == float("inf"):
        raise ConfigError(variable, f"must be a finite number >= {minimum:g}, got {raw!r}")
    return value


def parse_bind_addr(variable: str, raw: str) -> tuple[str, int]:
    text = raw.strip()
    if text.startswith("["):
        host, sep, port_text = text[1:].partition("]:")
        if not sep:
            raise ConfigError(variable, f"expected [IPv6]:PORT, got {raw!r}")
    else:
        host, sep, port_text = text.rpartition(":")
        if not sep or not host:
            raise ConfigError(variable, f"expected HOST:PORT, got {raw!r}")
    port = parse_int(variable, port_text, 0, 65535)
    return host, port


_PER = {"s": 1.0, "sec": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0, "hour": 3600.0}


def parse_rate(variable: str, raw: str) -> RateLimit:
    """`0` (off), `N`, `N/s`, `N/m` or `N/h`; the burst is one second's worth (at least 1)."""
    text = raw.strip().lower()
    count_text, _, unit = text.partition("/")
    seconds = _PER.get(unit or "s")
    if seconds is None:
        raise ConfigError(variable, f"expected N/s, N/m or N/h, got {raw!r}")
    count = parse_float(variable, count_text)
    rate = count / seconds
    return RateLimit(rate, max(1.0, rate) if rate > 0 else 0.0)


def parse_scheme_tiers(variable: str, raw: str) -> dict[str, int]:
    """`scheme=tier,scheme=tier` merged over the built-in defaults."""
    table = dict(DEFAULT_SCHEME_TIERS)
    for item in filter(None, (part.strip() for part in raw.split(","))):
        scheme, sep, tier = item.partition("=")
        if not sep or not scheme:
            raise ConfigError(variable, f"expected scheme=tier pairs, got {item!r}")
        table[scheme.strip().lower()] = parse_int(variable, tier, 0, 5)
    return table


TIER_NAMES = ("regulatory", "clinical", "observational", "expert", "community", "anecdotal")
TIER_ALIASES = {"peerreviewed": 1, "informal": 4}


def parse_tier(variable: str, raw: str) -> int:
    """A source class (`Observational`, `clinical`, `PeerReviewed`) or its tier 0-5."""
    value = raw.strip().lower().replace("_", "").replace("-", "")
    if value.isdigit():
        return parse_int(variable, value, 0, 5)
    if value in TIER_NAMES:
        return TIER_NAMES.index(value)
    if value in TIER_ALIASES:
        return TIER_ALIASES[value]
    raise ConfigError(variable, f"expected a source class ({', '.join(TIER_NAMES)}) or 0-5")


def _choice(options: tuple[str, ...]) -> Callable[[str, str], str]:
    def parse(variable: str, raw: str) -> str:
        value = raw.strip().lower()
        if value not in options:
            raise ConfigError(variable, f"expected one of {', '.join(options)}, got {raw!r}")
        return value

    return parse


def _path(variable: str, raw: str) -> Path:
    if not raw.strip():
        raise ConfigError(variable, "must not be empty")
    return Path(raw.strip())


def _list(variable: str, raw: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in raw.split(",") if item.strip())


def _optional_text(variable: str, raw: str) -> str | None:
    return raw if raw.strip() else None


def _root_key(variable: str, raw: str) -> str | None:
    """An admin secret: at least 32 characters (it is stored as a fast SHA3 hash)."""
    if not raw.strip():
        return None
    if len(raw.strip()) < 32 or raw != raw.strip():
        raise ConfigError(
            variable,
            "must be at least 32 characters without surrounding spaces "
            "(generate one with: python3 -c 'import secrets; print(secrets.token_hex(32))')",
        )
    return raw


def _networks(variable: str, raw: str) -> tuple[str, ...]:
    """Comma-separated addresses or CIDR networks (`127.0.0.1`, `10.0.0.0/8`, `::1`)."""
    items = _list(variable, raw)
    for item in items:
        try:
            ipaddress.ip_network(item, strict=False)
        except ValueError:
            raise ConfigError(variable, f"{item!r} is not an IP address or network") from None
    return items


def _auto_int(maximum: int) -> Callable[[str, str], int | None]:
    """`auto` (None: derived from another setting) or an integer from 1 to `maximum`."""

    def parse(variable: str, raw: str) -> int | None:
        if raw.strip().lower() in ("", "auto"):
            return None
        return parse_int(variable, raw, 1, maximum)

    return parse


def _replica_urls(variable: str, raw: str) -> tuple[str, ...]:
    urls = _list(variable, raw)
    for url in urls:
        scheme = url.split("://", 1)[0] if "://" in url else ""
        if scheme not in ("file", "s3", "sftp", "gs", "abs", "webdav", "webdavs"):
            raise ConfigError(
                variable,
                f"{url!r} is not a Litestream replica URL (file:///path, s3://bucket/path)",
            )
    return urls


def _host_port(variable: str, raw: str) -> str:
    host, port = parse_bind_addr(variable, raw)
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _optional_path(variable: str, raw: str) -> Path | None:
    return Path(raw.strip()) if raw.strip() else None


def _fraction(variable: str, raw: str) -> float:
    """A number from 0 to 1 (0 = the rule is off)."""
    value = parse_float(variable, raw)
    if value > 1.0:
        raise ConfigError(variable, f"expected a number from 0 to 1, got {raw!r}")
    return value


_PARSERS: dict[str, tuple[str, Callable[[str, str], Any]]] = {
    "STEMEDB_DB_DIR": ("db_dir", _path),
    "STEMEDB_WAL_DIR": ("wal_dir", _path),
    "STEMEDB_BACKUP_DIR": ("backup_dir", _path),
    "STEMEDB_BACKUP_KEEP": ("backup_keep", lambda v, r: parse_int(v, r, 1)),
    "STEMEDB_THREADS": ("threads", lambda v, r: parse_int(v, r, 1, 1024)),
    "STEMEDB_ACTIVE_REQUESTS": ("active_requests", lambda v, r: parse_int(v, r, 0, 1024)),
    "STEMEDB_CPU_AFFINITY": ("cpu_affinity", lambda v, r: parse_cpu_affinity(v, r)),
    "STEMEDB_INLINE_READS": ("inline_reads", parse_bool),
    "STEMEDB_SYNC": ("sync", _choice(("full", "normal"))),
    "STEMEDB_GROUP_COMMIT_MAX_BATCH": (
        "group_commit_max_batch",
        lambda v, r: parse_int(v, r, 1, 100000),
    ),
    "STEMEDB_GROUP_COMMIT_MAX_DELAY_MS": ("group_commit_max_delay_ms", parse_float),
    "STEMEDB_VERIFY_TAIL": ("verify_tail", parse_int),
    "STEMEDB_REQUIRE_SIGNATURES": ("require_signatures", parse_bool),
    "STEMEDB_AUTH_ENABLED": ("auth_enabled", parse_bool),
    "STEMEDB_ROOT_API_KEY": ("root_api_key", _root_key),
    "STEMEDB_ALLOW_UNAUTHENTICATED_REMOTE": ("allow_unauthenticated_remote", parse_bool),
    "STEMEDB_RATE_LIMIT_READ": ("rate_limit_read", parse_rate),
    "STEMEDB_RATE_LIMIT_WRITE": ("rate_limit_write", parse_rate),
    "STEMEDB_RATE_LIMIT_ADMIN": ("rate_limit_admin", parse_rate),
    "STEMEDB_QUOTA_ENABLED": ("quota_enabled", parse_bool),
    "STEMEDB_QUOTA_TOKENS_PER_HOUR": ("quota_tokens_per_hour", lambda v, r: parse_int(v, r, 1)),
    "STEMEDB_NEW_AGENTS_PER_HOUR": ("new_agents_per_hour", lambda v, r: parse_int(v, r, 0)),
    "STEMEDB_METER_ENABLED": ("meter_enabled", parse_bool),
    "STEMEDB_QUERY_AUDIT": ("query_audit", parse_bool),
    "STEMEDB_AUDIT_RETENTION_DAYS": ("audit_retention_days", lambda v, r: parse_int(v, r, 1)),
    "STEMEDB_MAX_BODY_BYTES": ("max_body_bytes", lambda v, r: parse_int(v, r, 1024)),
    "STEMEDB_REQUEST_TIMEOUT": ("request_timeout_s", lambda v, r: parse_float(v, r, 1.0)),
    "STEMEDB_SEND_TIMEOUT": ("send_timeout_s", lambda v, r: parse_float(v, r, 1.0)),
    "STEMEDB_SEND_BUFFER_TOTAL": (
        "send_buffer_total_bytes",
        lambda v, r: parse_int(v, r, 1024 * 1024),
    ),
    "STEMEDB_LONG_POLLS": ("long_polls", _auto_int(1024)),
    "STEMEDB_EXPORTS": ("exports", _auto_int(1024)),
    "STEMEDB_AUDIT_BYTES_PER_CLIENT": (
        "audit_bytes_per_client",
        lambda v, r: parse_int(v, r, 16384),
    ),
    "STEMEDB_AUDIT_BYTES_TOTAL": ("audit_bytes_total", lambda v, r: parse_int(v, r, 16384)),
    "STEMEDB_BATCH_MAX": ("batch_max", lambda v, r: parse_int(v, r, 1, 1000000)),
    "STEMEDB_VERIFY_THREADS": ("verify_threads", lambda v, r: parse_int(v, r, 0, 64)),
    "STEMEDB_ALLOWED_ORIGINS": ("allowed_origins", _list),
    "STEMEDB_TRUSTED_PROXY": ("trusted_proxy", _networks),
    "STEMEDB_LOG_LEVEL": ("log_level", _choice(("debug", "info", "warning", "error"))),
    "STEMEDB_LOG_FORMAT": ("log_format", _choice(("text", "json"))),
    "STEMEDB_ARCHIVE_COMMAND": ("archive_command", _optional_text),
    "STEMEDB_TLS_ENABLED": ("tls_enabled", parse_bool),
    "STEMEDB_TLS_CERT": ("tls_cert", _optional_path),
    "STEMEDB_TLS_KEY": ("tls_key", _optional_path),
    "STEMEDB_READ_ONLY_ON_CORRUPTION": ("read_only_on_corruption", parse_bool),
    "STEMEDB_SCHEME_TIERS": ("scheme_tiers", parse_scheme_tiers),
    "STEMEDB_UNREGISTERED_MAX_TIER": ("unregistered_max_tier", parse_tier),
    "STEMEDB_QUARANTINE_NEW_AGENT_S": ("quarantine_new_agent_s", parse_float),
    "STEMEDB_QUARANTINE_MIN_TRUST": ("quarantine_min_trust", _fraction),
    "STEMEDB_QUARANTINE_NEAR_DUPLICATES": ("quarantine_near_duplicates", parse_bool),
    "STEMEDB_BREAKER_ENABLED": ("breaker_enabled", parse_bool),
    "STEMEDB_BREAKER_WINDOW": ("breaker_window_s", lambda v, r: parse_float(v, r, 1.0)),
    "STEMEDB_BREAKER_MIN_RECORDS": ("breaker_min_records", lambda v, r: parse_int(v, r, 1)),
    "STEMEDB_BREAKER_REJECT_RATIO": ("breaker_reject_ratio", _fraction),
    "STEMEDB_BREAKER_RATE_MIN": ("breaker_rate_min", lambda v, r: parse_int(v, r, 1)),
    "STEMEDB_BREAKER_RATE_FACTOR": ("breaker_rate_factor", lambda v, r: parse_float(v, r, 1.0)),
    "STEMEDB_BREAKER_OPEN_S": ("breaker_open_s", lambda v, r: parse_float(v, r, 1.0)),
    "STEMEDB_ROLE": ("role", _choice(("primary", "replica"))),
    "STEMEDB_REPLICA_URL": ("replica_url", _replica_urls),
    "STEMEDB_LITESTREAM_CONFIG": ("litestream_config", _optional_path),
    "STEMEDB_LITESTREAM_ADDR": ("litestream_addr", _host_port),
    "STEMEDB_REPLICATION_PROCESS": ("replication_process", _choice(("child", "external"))),
    "STEMEDB_PRIMARY_URL": ("primary_url", _optional_text),
    "STEMEDB_REPLICA_WAIT_MAX": ("replica_wait_max_s", lambda v, r: parse_float(v, r, 0.0)),
}

KNOWN_VARIABLES = frozenset({"STEMEDB_BIND_ADDR", *_PARSERS})


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Build Settings from the environment; raise ConfigError on the first bad value."""
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    if "STEMEDB_BIND_ADDR" in env:
        values["bind_host"], values["bind_port"] = parse_bind_addr(
            "STEMEDB_BIND_ADDR", env["STEMEDB_BIND_ADDR"]
        )
    for variable, (name, parse) in _PARSERS.items():
        if variable in env:
            values[name] = parse(variable, env[variable])
    settings = Settings(**values)
    if settings.role == "replica":
        if len(settings.replica_url) != 1:
            raise ConfigError(
                "STEMEDB_REPLICA_URL", "STEMEDB_ROLE=replica follows exactly one replica URL"
            )
        if settings.root_api_key is not None:
            raise ConfigError(
                "STEMEDB_ROOT_API_KEY",
                "a read replica cannot seed API keys (a write); its keys are the primary's, "
                "replicated: unset it on the replica",
            )
        # the copy is Litestream's to write: a read may not append audit rows to it
        settings = replace(settings, query_audit=False)
    if settings.tls_enabled:
        raise ConfigError(
            "STEMEDB_TLS_ENABLED",
            "waitress does not terminate TLS; set STEMEDB_TLS_ENABLED=false and terminate TLS "
            "in the shipped nginx site (packaging/nginx/stemedb.conf, installed as "
            "/usr/share/stemedb/nginx/stemedb.conf by the packages), which proxies to this "
            "loopback listener",
        )
    return settings
