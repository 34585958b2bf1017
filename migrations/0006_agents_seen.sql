-- Agent first-seen times (issue 19 item 4, docs/security.md "Floods of new agents").
--
-- One row per signing agent: the journal frame that first carried its
-- signature and that frame's server time. `min_agent_age` in consensus reads
-- it so a burst of freshly minted keys cannot outvote established agents, and
-- the new-agent limit (STEMEDB_NEW_AGENTS_PER_HOUR) reads it to tell a new
-- signer from a known one. A projection like every other: maintained in the
-- frame's transaction by store/agents_seen.py, rebuilt by `stemedb reindex`.
CREATE TABLE IF NOT EXISTS agents (
  agent_id          BLOB    PRIMARY KEY,   -- 32 bytes: the Ed25519 public key
  first_seq         INTEGER NOT NULL,      -- the first journal frame it signed
  first_written_ms  INTEGER NOT NULL       -- that frame's written_ms (server time)
) WITHOUT ROWID;

-- Backfill from the journal already written (frames in seq order, so the
-- first frame of each agent wins). Bodies that are not valid JSON are
-- skipped (`stemedb verify` reports those); so are signature entries that are
-- not objects with a 64-hex-digit agent_id, exactly as store/agents_seen.py does.
INSERT OR IGNORE INTO agents (agent_id, first_seq, first_written_ms)
SELECT unhex(s.value ->> '$.agent_id'), j.seq, j.written_ms
FROM journal AS j,
     json_each(
       CASE
         WHEN json_valid(j.body) AND json_type(j.body, '$.signatures') = 'array' THEN j.body
         ELSE '{"signatures": []}'
       END,
       '$.signatures'
     ) AS s
WHERE j.kind <> 'header'
  AND s.type = 'object'
  AND json_type(s.value, '$.agent_id') = 'text'
  AND length(s.value ->> '$.agent_id') = 64
  AND unhex(s.value ->> '$.agent_id') IS NOT NULL
ORDER BY j.seq, s.key;
