# ruff: noqa: E501  (a data table: one Markdown cell per string reads better unwrapped)
"""Every STEMEDB_* variable's meaning, default and an example: the one table that
docs/operations/configuration.md (its "Variables" table) and `stemedb serve --help`
are generated from, so the two cannot drift. Cells are Markdown (backticks);
`plain()` strips them for terminal help. A new variable needs a row here:
tests/docs/test_settings_doc.py fails until config.KNOWN_VARIABLES and this
table agree and the page is regenerated (`python -m stemedb.cli.gen_docs`).
"""

from __future__ import annotations

from typing import NamedTuple


class SettingDoc(NamedTuple):
    variable: str
    default: str
    meaning: str
    example: str


def plain(markdown: str) -> str:
    """A cell as terminal text: no backticks."""
    return markdown.replace("`", "")


SETTINGS: tuple[SettingDoc, ...] = (
    SettingDoc(
        "STEMEDB_BIND_ADDR",
        "`127.0.0.1:18180`",
        "listen address, `HOST:PORT`; IPv6 as `[::1]:18180`; port `0` picks a free port (the log's step 9 line says which)",
        "`0.0.0.0:18180`",
    ),
    SettingDoc(
        "STEMEDB_DB_DIR",
        "`data/db`",
        "directory holding `stemedb.db`; created at start when missing",
        "`/var/lib/stemedb/db`",
    ),
    SettingDoc(
        "STEMEDB_WAL_DIR",
        "`data/wal`",
        "journal archive segments written by `stemedb archive`; created at start when missing",
        "`/var/lib/stemedb/wal`",
    ),
    SettingDoc(
        "STEMEDB_BACKUP_DIR",
        "`backups`",
        "where `stemedb backup` writes",
        "`/var/backups/stemedb`",
    ),
    SettingDoc(
        "STEMEDB_BACKUP_KEEP",
        "`7`",
        "backups kept by the backup timer (≥ 1)",
        "`14`",
    ),
    SettingDoc(
        "STEMEDB_THREADS",
        "`32`",
        "waitress worker threads (1–1024); see the note below",
        "`16`",
    ),
    SettingDoc(
        "STEMEDB_ACTIVE_REQUESTS",
        "`2`",
        "requests that run at once (0–1024, `0` = no limit); the others wait their turn first come, first served; a request waiting for its commit, a long poll or a backup gives its turn back. See the note below",
        "`4`",
    ),
    SettingDoc(
        "STEMEDB_CPU_AFFINITY",
        "`auto`",
        "CPUs the server process runs on: `auto` = one CPU (the highest-numbered one it may use), `off` = leave it to the scheduler, or a list such as `1` or `0,2-3`. See the note below",
        "`off`",
    ),
    SettingDoc(
        "STEMEDB_INLINE_READS",
        "`true`",
        "serve quick reads (lens queries, an assertion by hash, trace, skeptic, layered, health, ready) on the event-loop thread itself instead of handing them to a worker thread. See the note below",
        "`false`",
    ),
    SettingDoc(
        "STEMEDB_SYNC",
        "`full`",
        "`full` (every acknowledged write survives power loss) or `normal` (survives a process crash; the last commits may be lost on power loss)",
        "`normal`",
    ),
    SettingDoc(
        "STEMEDB_GROUP_COMMIT_MAX_BATCH",
        "`512`",
        "most records the writer commits in one transaction",
        "`1024`",
    ),
    SettingDoc(
        "STEMEDB_GROUP_COMMIT_MAX_DELAY_MS",
        "`2`",
        "longest the writer waits to fill a batch, in ms",
        "`5`",
    ),
    SettingDoc(
        "STEMEDB_VERIFY_TAIL",
        "`1000`",
        "journal frames whose hash chain is re-verified at every start (step 5)",
        "`10000`",
    ),
    SettingDoc(
        "STEMEDB_REQUIRE_SIGNATURES",
        "`true`",
        "refuse unsigned records (see `concepts.md`, signatures)",
        "`false`",
    ),
    SettingDoc(
        "STEMEDB_AUTH_ENABLED",
        "`false`",
        "require `X-API-Key` on everything but health, ready and metrics",
        "`true`",
    ),
    SettingDoc(
        "STEMEDB_ROOT_API_KEY",
        "—",
        "seeds an admin key with this exact secret at start (idempotent; ≥ 32 characters; a changed value revokes the previous root key); masked in `stemedb config`",
        "output of `openssl rand -hex 32`",
    ),
    SettingDoc(
        "STEMEDB_ALLOW_UNAUTHENTICATED_REMOTE",
        "`false`",
        "allow a non-loopback bind with auth off (for a proxy that authenticates)",
        "`true`",
    ),
    SettingDoc(
        "STEMEDB_RATE_LIMIT_READ",
        "`2000/s`",
        "token bucket per client (API key, else IP) for reads; `N`, `N/s`, `N/m`, `N/h`; `0` = off",
        "`500/s`",
    ),
    SettingDoc(
        "STEMEDB_RATE_LIMIT_WRITE",
        "`500/s`",
        "same, writes",
        "`100/s`",
    ),
    SettingDoc(
        "STEMEDB_RATE_LIMIT_ADMIN",
        "`10/s`",
        "same, admin routes",
        "`1/s`",
    ),
    SettingDoc(
        "STEMEDB_QUOTA_ENABLED",
        "`false`",
        "per-agent metering (assert 10, vote 1, query 5 + 1 per lens, +1 per KiB of body)",
        "`true`",
    ),
    SettingDoc(
        "STEMEDB_QUOTA_TOKENS_PER_HOUR",
        "`10000`",
        "tokens per agent per hour",
        "`50000`",
    ),
    SettingDoc(
        "STEMEDB_NEW_AGENTS_PER_HOUR",
        "`500`",
        "new signing agents (never seen in the journal) one API key, or one client address with auth off, may introduce per hour; over it 429 `rate_limited`; admin keys are not limited; `0` = off (docs/security.md, Floods of new agents)",
        "`100`",
    ),
    SettingDoc(
        "STEMEDB_METER_ENABLED",
        "`true`",
        "serve Prometheus metrics on `/metrics` (404 when off)",
        "`false`",
    ),
    SettingDoc(
        "STEMEDB_QUERY_AUDIT",
        "`true`",
        "record every query in the audit trail",
        "`false`",
    ),
    SettingDoc(
        "STEMEDB_AUDIT_RETENTION_DAYS",
        "`30`",
        "days audit entries are kept",
        "`90`",
    ),
    SettingDoc(
        "STEMEDB_MAX_BODY_BYTES",
        "`1048576`",
        "largest request body (≥ 1024); the batch route allows 32×",
        "`4194304`",
    ),
    SettingDoc(
        "STEMEDB_REQUEST_TIMEOUT",
        "`30`",
        "seconds a client has to send one request (headers and body) from its first byte, plus 1 s per 500 bytes received; a slower request gets 408 and the connection is closed (slowloris defence, see `docs/security.md`)",
        "`60`",
    ),
    SettingDoc(
        "STEMEDB_SEND_TIMEOUT",
        "`30`",
        'seconds a client may leave its answer unread: a connection with unsent output that takes less than 64 KiB in this time is closed, freeing its buffers, temporary files and worker thread (≥ 1; see "Hostile readers" in `docs/security.md`)',
        "`60`",
    ),
    SettingDoc(
        "STEMEDB_SEND_BUFFER_TOTAL",
        "`268435456`",
        "bytes of unsent output all connections together may hold (≥ 1 MiB); over it the largest stalled buffers are closed first",
        "`67108864`",
    ),
    SettingDoc(
        "STEMEDB_LONG_POLLS",
        "`auto`",
        "feed long polls (`wait` > 0) that may wait in a worker thread at once; `auto` = a quarter of `STEMEDB_THREADS` (at least 1); over it a poll answers at once with `retry_after`",
        "`4`",
    ),
    SettingDoc(
        "STEMEDB_EXPORTS",
        "`auto`",
        "exports that may stream at once; `auto` = an eighth of `STEMEDB_THREADS` (at least 1); over it 429 `too_many_exports`",
        "`2`",
    ),
    SettingDoc(
        "STEMEDB_AUDIT_BYTES_PER_CLIENT",
        "`524288`",
        "bytes of query audit rows one client (API key, else address) may add per minute (≥ 16384); over it its rows are dropped, counted and summarised",
        "`1048576`",
    ),
    SettingDoc(
        "STEMEDB_AUDIT_BYTES_TOTAL",
        "`2097152`",
        "bytes of query audit rows all clients may add per minute (≥ 16384); bounds the trail's growth to this × minutes of retention",
        "`8388608`",
    ),
    SettingDoc(
        "STEMEDB_BATCH_MAX",
        "`10000`",
        "most records in one batch request",
        "`50000`",
    ),
    SettingDoc(
        "STEMEDB_VERIFY_THREADS",
        "`0`",
        "threads that check a batch's Ed25519 signatures in parallel (0: one per CPU, at most 8; 1: on the request's own thread). They may run on every CPU the process was allowed, even when `STEMEDB_CPU_AFFINITY=auto` pins the rest of the server to one",
        "`1`",
    ),
    SettingDoc(
        "STEMEDB_ALLOWED_ORIGINS",
        "empty",
        "CORS allow-list of exact origins; no CORS headers for anyone else",
        "`https://app.example.com`",
    ),
    SettingDoc(
        "STEMEDB_TRUSTED_PROXY",
        "empty",
        "proxy addresses or CIDR networks whose `X-Forwarded-For` is trusted for the client address",
        "`127.0.0.1,10.0.0.0/8`",
    ),
    SettingDoc(
        "STEMEDB_LOG_LEVEL",
        "`info`",
        "`debug`, `info`, `warning`, `error`",
        "`debug`",
    ),
    SettingDoc(
        "STEMEDB_LOG_FORMAT",
        "`text`",
        "`text` or `json` (one JSON object per line: `ts`, `level`, `logger`, `msg`, extras such as `request_id`, `exc`)",
        "`json`",
    ),
    SettingDoc(
        "STEMEDB_ARCHIVE_COMMAND",
        "empty",
        "shell command run per sealed archive segment, `%p` = path, `%f` = file name",
        "`aws s3 cp %p s3://bucket/stemedb/%f`",
    ),
    SettingDoc(
        "STEMEDB_TLS_ENABLED",
        "`false`",
        "must stay `false`: waitress does not terminate TLS; `true` is refused at start (use the nginx site)",
        "`false`",
    ),
    SettingDoc(
        "STEMEDB_TLS_CERT",
        "empty",
        "certificate the nginx site serves; read only to export `stemedb_tls_cert_expiry_seconds` and for `stemedb doctor`",
        "`/etc/stemedb/tls/cert.pem`",
    ),
    SettingDoc(
        "STEMEDB_TLS_KEY",
        "empty",
        "its private key (checked by `stemedb doctor`)",
        "`/etc/stemedb/tls/key.pem`",
    ),
    SettingDoc(
        "STEMEDB_READ_ONLY_ON_CORRUPTION",
        "`false`",
        "if the journal check fails at start, serve reads only instead of refusing to start",
        "`true`",
    ),
    SettingDoc(
        "STEMEDB_SCHEME_TIERS",
        "built-in table",
        "`scheme=tier` pairs (tier 0–5) merged over the built-in source-URI scheme → tier table",
        "`internal=1,slack=5`",
    ),
    SettingDoc(
        "STEMEDB_UNREGISTERED_MAX_TIER",
        "`Observational`",
        'the best tier a claim may have at read time when none of its signers is registered by an admin (`POST /v1/admin/agents`); claims declared above it are capped (`docs/security.md`, "Authority cannot be self-declared"). A source class or 0–5; `Regulatory` turns the cap off',
        "`Expert`",
    ),
    SettingDoc(
        "STEMEDB_QUARANTINE_NEW_AGENT_S",
        "`0` (off)",
        'hold new assertions whose signers were all first seen less than this many seconds before the record (and unsigned ones); held records are journalled but lenses skip them until an admin releases them (`docs/security.md`, "Quarantine")',
        "`86400`",
    ),
    SettingDoc(
        "STEMEDB_QUARANTINE_MIN_TRUST",
        "`0` (off)",
        "hold new assertions whose first signer's TrustRank is below this (0–1; unknown agents have 0.5)",
        "`0.3`",
    ),
    SettingDoc(
        "STEMEDB_QUARANTINE_NEAR_DUPLICATES",
        "`false`",
        "hold an agent's near-duplicate repeat of its own claim (same subject and predicate, same value up to case, spacing, punctuation or 6 significant digits, within 300 s)",
        "`true`",
    ),
    SettingDoc(
        "STEMEDB_BREAKER_ENABLED",
        "`false`",
        'per-agent circuit breakers: an agent whose writes are mostly refused, or whose rate jumps far above its history, gets 429 `breaker_open` until reset (`docs/security.md`, "Circuit breakers"; state in memory)',
        "`true`",
    ),
    SettingDoc(
        "STEMEDB_BREAKER_WINDOW",
        "`60`",
        "seconds per counting window",
        "`300`",
    ),
    SettingDoc(
        "STEMEDB_BREAKER_MIN_RECORDS",
        "`20`",
        "records in a window before the refusal ratio can trip",
        "`50`",
    ),
    SettingDoc(
        "STEMEDB_BREAKER_REJECT_RATIO",
        "`0.5`",
        "share of refused records (400/404/409/422) that trips",
        "`0.8`",
    ),
    SettingDoc(
        "STEMEDB_BREAKER_RATE_MIN",
        "`1000`",
        "records in a window below which the rate never trips",
        "`5000`",
    ),
    SettingDoc(
        "STEMEDB_BREAKER_RATE_FACTOR",
        "`10`",
        "trip when a window holds more than this many times the agent's history (mean records per window)",
        "`20`",
    ),
    SettingDoc(
        "STEMEDB_BREAKER_OPEN_S",
        "`300`",
        "seconds a tripped breaker stays open (an admin resets it sooner)",
        "`900`",
    ),
    SettingDoc(
        "STEMEDB_ROLE",
        "`primary`",
        "`primary` accepts writes; `replica` serves reads from a database Litestream keeps following the replica storage (`STEMEDB_REPLICA_URL`) and answers writes 421 naming `STEMEDB_PRIMARY_URL` (docs/operations/replication.md)",
        "`replica`",
    ),
    SettingDoc(
        "STEMEDB_REPLICA_URL",
        "—",
        "Litestream replica URL(s), comma-separated: a primary replicates its database there continuously; a replica follows it",
        "`s3://bucket/stemedb`, `file:///srv/replica`",
    ),
    SettingDoc(
        "STEMEDB_LITESTREAM_CONFIG",
        "—",
        "a full `litestream.yml` (several targets, credentials, retention) used instead of `STEMEDB_REPLICA_URL`; must set `addr:` for the lag probe",
        "`/etc/stemedb/litestream.yml`",
    ),
    SettingDoc(
        "STEMEDB_LITESTREAM_ADDR",
        "`127.0.0.1:18190`",
        "where Litestream serves its metrics; the lag probe, `/metrics` and `doctor` read it",
        "`127.0.0.1:18191`",
    ),
    SettingDoc(
        "STEMEDB_REPLICATION_PROCESS",
        "`child`",
        "`child`: `stemedb serve` runs and restarts Litestream itself; `external`: `stemedb-litestream.service` does (the packages)",
        "`external`",
    ),
    SettingDoc(
        "STEMEDB_PRIMARY_URL",
        "—",
        "on a replica: the primary's URL, named in the answer to a write",
        "`https://db-primary.example.org`",
    ),
    SettingDoc(
        "STEMEDB_REPLICA_WAIT_MAX",
        "`5`",
        "seconds a replica waits at most for `min_seq` before answering 503 `replica_behind`",
        "`2`",
    ),
)

BY_VARIABLE = {row.variable: row for row in SETTINGS}
