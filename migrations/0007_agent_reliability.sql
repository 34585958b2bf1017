-- The `truth` lens (issue 18, docs/lenses.md "truth") learns each agent's
-- reliability from the agent's other claims, read at query time under the
-- query's as_of / known_at. An agent's first-signed claims are found through
-- `assertions_by_agent`; this index finds the claims it co-signed.
CREATE INDEX IF NOT EXISTS cosigners_by_agent ON cosigners (agent_id, assertion_hash);
