-- Agent clusters (issue 19 item 2, leftover): which writer API key introduced each agent.
--
-- Server state, not a journal record: the API key a request came with is not
-- part of the signed record, so it cannot be replayed from the journal. The
-- write path (security/new_agents.py) inserts one row the first time a
-- non-admin API key sends a record signed by an agent the journal has never
-- seen; the agents one key introduced form a cluster, whose near-duplicate
-- claims count once in consensus (docs/security.md, "Near-duplicates").
-- Not a projection: reindex and verify leave it alone.
CREATE TABLE IF NOT EXISTS agent_clusters (
    agent_id   BLOB PRIMARY KEY,   -- the signer (32 bytes)
    api_key    TEXT NOT NULL,      -- the id of the writer key that introduced it
    first_ms   INTEGER NOT NULL    -- when (server time)
);
CREATE INDEX IF NOT EXISTS agent_clusters_by_key ON agent_clusters (api_key);
