-- Quarantine (issue 19 item 1, docs/security.md "Quarantine").
--
-- `quarantine` is a projection: one row per assertion the quarantine policy
-- held when its frame was applied, and the admin decision (a signed
-- `quarantine_decision` record) that released or rejected it. Lenses skip
-- held and rejected assertions; a `known_at` read sees the state at that
-- time (a decision counts from its frame's written_ms). Maintained in the
-- frame's transaction by store/quarantine.py, rebuilt by `stemedb reindex`.
CREATE TABLE IF NOT EXISTS quarantine (
  seq             INTEGER PRIMARY KEY,     -- the held assertion's journal frame
  hash            BLOB    NOT NULL UNIQUE, -- its record id
  subject         TEXT    NOT NULL,
  predicate       TEXT    NOT NULL,
  agent_id        BLOB,                    -- its first signer (NULL: unsigned)
  reason          TEXT    NOT NULL,        -- new_agent | unsigned | low_trust | near_duplicate
  detail          TEXT    NOT NULL,        -- the rule's numbers, in words
  held_ms         INTEGER NOT NULL,        -- the frame's written_ms
  decision        TEXT,                    -- NULL (held) | release | reject
  decided_seq     INTEGER,                 -- the quarantine_decision frame
  decided_ms      INTEGER,                 -- its written_ms
  decided_by      BLOB,                    -- its signer
  decision_reason TEXT
);
CREATE INDEX IF NOT EXISTS quarantine_pending ON quarantine (decision, seq);

-- The policy in force from a journal seq on (one row per change, written at
-- start when the STEMEDB_QUARANTINE_* settings differ from the last row).
-- NOT a projection: `reindex` keeps it, so a rebuild decides every frame
-- under the policy that was in force when the frame was written.
CREATE TABLE IF NOT EXISTS quarantine_policy (
  from_seq  INTEGER PRIMARY KEY,           -- first journal seq the policy applies to
  policy    TEXT    NOT NULL,              -- JSON: new_agent_s, min_trust, near_duplicates
  set_ms    INTEGER NOT NULL
);
