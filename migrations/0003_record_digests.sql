-- Record identity by signed content (data-model.md §7, the identity rule).
--
-- A record's id covers its `signatures` list, which no signature covers: the
-- same signed content could otherwise be stored again under a new id by
-- dropping, re-ordering or (before v0.2) re-timestamping signature entries.
-- The writer therefore looks a new record up here, by the digest its
-- signatures sign (SHA3-256 of the canonical JSON of the record without
-- `signatures`; for unsigned records it equals the id), and answers `exists`
-- with the stored record's id when the digest is already known.
--
-- Kinds that take exactly one signature (vote, outcome, agent_tier) are
-- also told apart by that signer: a vote's voter is who signed it (the
-- signature verifies only under that key, so nobody else can change it), and
-- two agents casting the same vote in the same second cast two votes. Every
-- other kind has signer x'': its signature list is not part of its identity.
--
-- A projection of the journal like the others: one row per identity, the
-- first (lowest-seq) frame that carries it; rebuilt by `stemedb reindex`.
CREATE TABLE IF NOT EXISTS record_digests (
  digest BLOB    NOT NULL,      -- 32 bytes: SHA3-256(canonical JSON without signatures)
  signer BLOB    NOT NULL,      -- single-signature kinds: the signer's key; else x''
  kind   TEXT    NOT NULL,      -- the record kind (also inside the digested JSON)
  seq    INTEGER NOT NULL,      -- the journal frame that first carried this identity
  PRIMARY KEY (digest, signer)
) WITHOUT ROWID;

-- Frames journaled before this table existed have no row yet. The digest
-- needs RFC 8785 canonical JSON, which SQL cannot produce faithfully, so the
-- server fills them in from Python when it next opens the database
-- (stemedb/store/digests.py `backfill`), in chunks, recording its progress
-- here (the last seq done) and deleting this row when it has finished.
INSERT OR REPLACE INTO meta (key, value) VALUES ('record_digests_backfill', -1);
