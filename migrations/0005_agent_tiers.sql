-- Agent tier registrations (issue 19 item 5, docs/security.md "Authority cannot
-- be self-declared").
--
-- A projection of `agent_tier` journal records: an admin registers a signing
-- agent (Ed25519 public key) for a maximum authority tier. One row per record,
-- never updated, so `known_at` can replay the registry as it stood at any
-- time; the newest row (highest seq) of an agent is the one in force.
-- Rebuilt from the journal by `stemedb reindex` like every projection.
CREATE TABLE IF NOT EXISTS agent_tiers (
  seq           INTEGER PRIMARY KEY,       -- the journal frame of the agent_tier record
  hash          BLOB    NOT NULL UNIQUE,   -- its record id
  agent_id      BLOB    NOT NULL,          -- 32 bytes: the registered agent
  max_tier      INTEGER NOT NULL,          -- 0 (Regulatory) .. 5 (Anecdotal)
  name          TEXT,
  note          TEXT,
  registered_by BLOB,                      -- the signer of the record (NULL if unsigned)
  timestamp     INTEGER NOT NULL,
  written_ms    INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS agent_tiers_by_agent ON agent_tiers (agent_id, seq);
