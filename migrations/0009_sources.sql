-- Source registry and retractions (issue 17 part 2, docs/agents.md "Sources and
-- retractions").
--
-- Projections of `source` and `retraction` journal records. One row per
-- record, never updated or deleted, so `known_at` can replay the registry and
-- the retractions as they stood at any time (by `written_ms`, the commit time
-- of the frame); the newest registration (highest seq) of a source is the one
-- in force. Rebuilt from the journal by `stemedb reindex` like every projection.
CREATE TABLE IF NOT EXISTS sources (
  seq           INTEGER PRIMARY KEY,       -- the journal frame of the source record
  hash          BLOB    NOT NULL UNIQUE,   -- its record id
  source_id     BLOB    NOT NULL,          -- SHA3-256 of identifier (= a claim's default source_hash)
  identifier    TEXT    NOT NULL,
  title         TEXT,
  publisher     TEXT,
  publisher_key BLOB,                      -- 32 bytes: the agent that may retract it
  tier          INTEGER,                   -- declared tier (NULL: inferred at read time)
  content_hash  BLOB,                      -- claims citing it by this source_hash link too
  registered_by BLOB,                      -- the signer of the record (NULL if unsigned)
  timestamp     INTEGER NOT NULL,
  written_ms    INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS sources_by_id ON sources (source_id, seq);
CREATE INDEX IF NOT EXISTS sources_by_content ON sources (content_hash) WHERE content_hash IS NOT NULL;

CREATE TABLE IF NOT EXISTS retractions (
  seq           INTEGER PRIMARY KEY,       -- the journal frame of the retraction record
  hash          BLOB    NOT NULL UNIQUE,
  source_id     BLOB    NOT NULL,
  reason        TEXT    NOT NULL,
  retracted_by  BLOB,                      -- the signer (NULL if unsigned)
  timestamp     INTEGER NOT NULL,
  written_ms    INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS retractions_by_source ON retractions (source_id, seq);
