-- History for system-time travel (`known_at`), and co-signers.
--
-- The current-state projections keep only the latest state: `votes` the latest
-- vote per (assertion, agent), `vote_totals` their sum, `aliases` the latest
-- mapping, `trust` the folded score. A `known_at=T` read must see the state a
-- reader saw at T, so each of those kinds also keeps one history row per
-- journal frame, carrying the seq and written_ms at which it took effect.
-- History rows are never overwritten. The hot (non-time-travel) lens read does
-- not touch them; only a query with `known_at` does, for the few rows of its
-- candidates. (`supersessions` and `epoch_superseded` already carry written_ms.)
--
-- `cosigners` lists every signer of an assertion after the first (the first is
-- `assertions.agent_id`): lenses that count agents count each co-signer too.
--
-- These tables are projections like the others: `apply` fills them for every
-- new frame and `stemedb reindex` rebuilds them. An existing database is
-- backfilled here from its journal with the same values `apply` writes, so an
-- upgrade and a rebuild give identical rows (`stemedb verify --full` compares
-- them). Frames whose body is not valid JSON are skipped here; the journal
-- checkers name them.

-- Every vote frame (unsigned votes share the agent key x'').
CREATE TABLE IF NOT EXISTS vote_history (
  assertion_hash BLOB    NOT NULL,
  seq            INTEGER NOT NULL,
  agent_id       BLOB    NOT NULL,
  weight         REAL    NOT NULL,
  timestamp      INTEGER NOT NULL,
  written_ms     INTEGER NOT NULL,
  PRIMARY KEY (assertion_hash, seq)
) WITHOUT ROWID;

-- Every alias frame; at T the alias maps to its highest-seq row written by T.
CREATE TABLE IF NOT EXISTS alias_history (
  alias      TEXT    NOT NULL,
  seq        INTEGER NOT NULL,
  canonical  TEXT    NOT NULL,
  timestamp  INTEGER NOT NULL,
  written_ms INTEGER NOT NULL,
  PRIMARY KEY (alias, seq)
) WITHOUT ROWID;

-- Every outcome frame; trust at T replays an agent's rows written by T, in seq order.
CREATE TABLE IF NOT EXISTS outcome_history (
  agent_id   BLOB    NOT NULL,
  seq        INTEGER NOT NULL,
  accurate   INTEGER NOT NULL,
  timestamp  INTEGER NOT NULL,
  written_ms INTEGER NOT NULL,
  PRIMARY KEY (agent_id, seq)
) WITHOUT ROWID;

-- Signers of an assertion after the first one.
CREATE TABLE IF NOT EXISTS cosigners (
  assertion_hash BLOB NOT NULL,
  agent_id       BLOB NOT NULL,
  PRIMARY KEY (assertion_hash, agent_id)
) WITHOUT ROWID;

-- Backfill. `b` is the body when it is valid JSON, else '{}' (so the row is skipped).
INSERT OR REPLACE INTO vote_history (assertion_hash, seq, agent_id, weight, timestamp, written_ms)
  SELECT unhex(json_extract(b, '$.assertion_hash')), seq,
         coalesce(unhex(json_extract(b, '$.signatures[0].agent_id')), x''),
         json_extract(b, '$.weight'), json_extract(b, '$.timestamp'), written_ms
  FROM (SELECT seq, written_ms, CASE WHEN json_valid(body) THEN body ELSE '{}' END AS b
        FROM journal WHERE kind = 'vote')
  WHERE unhex(json_extract(b, '$.assertion_hash')) IS NOT NULL
    AND json_extract(b, '$.weight') IS NOT NULL
    AND json_extract(b, '$.timestamp') IS NOT NULL;

INSERT OR REPLACE INTO alias_history (alias, seq, canonical, timestamp, written_ms)
  SELECT json_extract(b, '$.alias'), seq, json_extract(b, '$.canonical'),
         json_extract(b, '$.timestamp'), written_ms
  FROM (SELECT seq, written_ms, CASE WHEN json_valid(body) THEN body ELSE '{}' END AS b
        FROM journal WHERE kind = 'alias')
  WHERE json_extract(b, '$.alias') IS NOT NULL
    AND json_extract(b, '$.canonical') IS NOT NULL
    AND json_extract(b, '$.timestamp') IS NOT NULL;

INSERT OR REPLACE INTO outcome_history (agent_id, seq, accurate, timestamp, written_ms)
  SELECT unhex(json_extract(b, '$.agent_id')), seq,
         CASE WHEN json_extract(b, '$.accurate') THEN 1 ELSE 0 END,
         json_extract(b, '$.timestamp'), written_ms
  FROM (SELECT seq, written_ms, CASE WHEN json_valid(body) THEN body ELSE '{}' END AS b
        FROM journal WHERE kind = 'outcome')
  WHERE unhex(json_extract(b, '$.agent_id')) IS NOT NULL
    AND json_extract(b, '$.timestamp') IS NOT NULL;

INSERT OR IGNORE INTO cosigners (assertion_hash, agent_id)
  SELECT a.hash, unhex(json_extract(s.value, '$.agent_id'))
  FROM (SELECT hash, CASE WHEN json_valid(body) THEN body ELSE '{}' END AS b
        FROM journal WHERE kind = 'assertion') a,
       json_each(a.b, '$.signatures') s
  WHERE typeof(s.key) = 'integer' AND s.key >= 1 AND s.type = 'object'
    AND unhex(json_extract(s.value, '$.agent_id')) IS NOT NULL;
