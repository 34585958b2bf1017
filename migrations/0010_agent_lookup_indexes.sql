-- Indexes for the public agent profiles (GET /v1/agents/{id}, issue 17 part 4).
--
-- A profile counts the votes an agent signed (vote_history, optionally up to a
-- known_at) and the claims it co-signed (cosigners). Both tables are keyed by
-- assertion, so without these each profile scanned them whole. Indexes only:
-- no rows change, and a reindex (which deletes and refills rows) keeps them.
CREATE INDEX IF NOT EXISTS vote_history_by_agent ON vote_history (agent_id, written_ms);
CREATE INDEX IF NOT EXISTS cosigners_by_agent ON cosigners (agent_id);
