-- Replays stored before v0.2 (data-model.md §7, the identity rule).
--
-- A database written before v0.2 can hold two journal frames with the same
-- identity (kind + signed digest, see 0003_record_digests.sql): a re-minted
-- copy with an altered signature-entry timestamp, or a co-signed claim with
-- an entry stripped. The first frame of an identity is the record; a later
-- one is a replay. The journal keeps it (frames are never edited or deleted),
-- but no projection holds it and no lens counts it. This table lists them:
-- one row per replay frame, naming the frame that carries the record.
-- A projection of the journal like the others: rebuilt by `stemedb reindex`.
CREATE TABLE IF NOT EXISTS record_replays (
  seq       INTEGER PRIMARY KEY,  -- the replay's journal frame
  kind      TEXT    NOT NULL,     -- its record kind
  first_seq INTEGER NOT NULL      -- the frame that first carried the identity (the record)
);
CREATE INDEX IF NOT EXISTS record_replays_by_first ON record_replays (first_seq);

-- Databases upgraded by earlier v0.2 builds backfilled their digests without
-- noticing replays, and their projections count them. Run the backfill again
-- (stemedb/store/digests.py `backfill`, at the next start): it lists the
-- replays and, if there are any, rebuilds the projections from the journal.
INSERT OR REPLACE INTO meta (key, value) VALUES ('record_digests_backfill', -1);
