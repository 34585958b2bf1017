-- StemeDB schema, version 1.
-- The journal is the source of truth; every other table here is either a
-- projection of it (rebuildable with `stemedb reindex`) or local server state.

CREATE TABLE journal (
  seq        INTEGER PRIMARY KEY,     -- 0 is the header frame; then 1, 2, 3 ... with no gaps
  kind       TEXT    NOT NULL,        -- header | assertion | vote | epoch | supersession | alias | outcome
  hash       BLOB    NOT NULL UNIQUE, -- 32 bytes: SHA3-256(body) (= the record id for records)
  body       TEXT    NOT NULL,        -- canonical JSON of the record, signatures included
  written_ms INTEGER NOT NULL,        -- server receive time, Unix ms
  chain      BLOB    NOT NULL         -- SHA3-256(chain(n-1) || hash(n) || decimal_ascii(written_ms(n)))
);

CREATE TRIGGER journal_no_update BEFORE UPDATE ON journal
BEGIN SELECT RAISE(ABORT, 'journal is append-only: frames are never updated'); END;

CREATE TRIGGER journal_no_delete BEFORE DELETE ON journal
BEGIN SELECT RAISE(ABORT, 'journal is append-only: frames are never deleted'); END;

-- Bookkeeping: applied_seq (the last journal frame reflected in the projections).
CREATE TABLE meta (
  key   TEXT PRIMARY KEY,
  value ANY
) WITHOUT ROWID;

-- Projection: one row per assertion, keyed by its journal seq.
CREATE TABLE assertions (
  seq         INTEGER PRIMARY KEY,
  hash        BLOB    NOT NULL UNIQUE,
  subject     TEXT    NOT NULL,
  predicate   TEXT    NOT NULL,
  object_type TEXT    NOT NULL,
  value_text  TEXT,                   -- Text and Reference values
  value_num   REAL,                   -- Number values; Boolean as 0/1
  value_key   TEXT    NOT NULL,       -- canonical JSON of the tagged object: equal keys = same value
  confidence  REAL    NOT NULL,
  tier        INTEGER NOT NULL,
  source      TEXT,
  source_hash BLOB,
  lifecycle   TEXT    NOT NULL,
  parent_hash BLOB,
  epoch       BLOB,
  timestamp   INTEGER NOT NULL,
  agent_id    BLOB,
  written_ms  INTEGER NOT NULL
);

-- The hot lens read: every candidate of one (subject, predicate), newest
-- first, answered from this index alone. Its leading column also serves
-- subject-prefix range scans.
CREATE INDEX assertions_lens ON assertions (
  subject, predicate, timestamp DESC, hash, value_key, confidence, tier,
  agent_id, lifecycle, epoch, written_ms
);
CREATE INDEX assertions_by_agent       ON assertions (agent_id, seq)    WHERE agent_id IS NOT NULL;
CREATE INDEX assertions_by_source_hash ON assertions (source_hash, seq) WHERE source_hash IS NOT NULL;
CREATE INDEX assertions_by_parent      ON assertions (parent_hash, seq) WHERE parent_hash IS NOT NULL;
CREATE INDEX assertions_by_epoch       ON assertions (epoch, seq)       WHERE epoch IS NOT NULL;

-- Latest vote per (assertion, agent); unsigned votes share the agent key x''.
CREATE TABLE votes (
  assertion_hash BLOB    NOT NULL,
  agent_id       BLOB    NOT NULL,
  weight         REAL    NOT NULL,
  timestamp      INTEGER NOT NULL,
  seq            INTEGER NOT NULL,
  PRIMARY KEY (assertion_hash, agent_id)
) WITHOUT ROWID;

CREATE TABLE vote_totals (
  assertion_hash BLOB PRIMARY KEY,
  count          INTEGER NOT NULL,
  total          REAL    NOT NULL
) WITHOUT ROWID;

CREATE TABLE epochs (
  id          BLOB PRIMARY KEY,
  seq         INTEGER NOT NULL UNIQUE,
  name        TEXT    NOT NULL,
  description TEXT,
  supersedes  TEXT    NOT NULL,       -- JSON list of epoch ids (hex), as written
  timestamp   INTEGER NOT NULL,
  written_ms  INTEGER NOT NULL
) WITHOUT ROWID;

-- Transitive closure: (epoch, an epoch it supersedes directly or through a chain).
CREATE TABLE epoch_closure (
  epoch    BLOB NOT NULL,
  ancestor BLOB NOT NULL,
  PRIMARY KEY (epoch, ancestor)
) WITHOUT ROWID;

-- Epochs superseded by some later epoch, with when that first became known.
CREATE TABLE epoch_superseded (
  epoch      BLOB PRIMARY KEY,
  by_epoch   BLOB    NOT NULL,
  written_ms INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE supersessions (
  seq              INTEGER PRIMARY KEY,
  hash             BLOB    NOT NULL UNIQUE,
  target_hash      BLOB    NOT NULL,
  replacement_hash BLOB,
  type             TEXT    NOT NULL,
  reason           TEXT,
  timestamp        INTEGER NOT NULL,
  written_ms       INTEGER NOT NULL
);
CREATE INDEX supersessions_by_target ON supersessions (target_hash, timestamp, written_ms);

-- Alias path -> canonical path; the latest record (highest seq) wins.
CREATE TABLE aliases (
  alias     TEXT PRIMARY KEY,
  canonical TEXT    NOT NULL,
  seq       INTEGER NOT NULL,
  timestamp INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX aliases_by_canonical ON aliases (canonical);

-- TrustRank per agent, folded from outcome records in journal order.
CREATE TABLE trust (
  agent_id     BLOB PRIMARY KEY,
  score        REAL    NOT NULL,
  last_updated INTEGER NOT NULL,      -- Unix seconds (claim time of the last outcome)
  accurate     INTEGER NOT NULL,
  inaccurate   INTEGER NOT NULL,
  seq          INTEGER NOT NULL
) WITHOUT ROWID;

-- Local server state (not knowledge, not journaled).
CREATE TABLE api_keys (
  id          TEXT PRIMARY KEY,       -- public key id (the prefix shown in listings)
  key_hash    BLOB    NOT NULL UNIQUE,
  name        TEXT    NOT NULL,
  role        TEXT    NOT NULL,
  scope       TEXT,                   -- subject prefix the key may write, NULL = everything
  created_ms  INTEGER NOT NULL,
  expires_ms  INTEGER,
  revoked_ms  INTEGER
) WITHOUT ROWID;

CREATE TABLE query_audit (
  query_id   TEXT PRIMARY KEY,
  at_ms      INTEGER NOT NULL,
  agent_id   TEXT,
  endpoint   TEXT    NOT NULL,
  lens       TEXT,
  params     TEXT    NOT NULL,        -- JSON
  results    TEXT    NOT NULL         -- JSON: per group winner, confidence, contributions
) WITHOUT ROWID;
CREATE INDEX query_audit_by_time  ON query_audit (at_ms);
CREATE INDEX query_audit_by_agent ON query_audit (agent_id, at_ms);
