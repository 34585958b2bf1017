-- The truth table's backfill (issue 18; store/truth_state.py).
--
-- Migration 0013 created the reliability table empty, and the builds that
-- shipped it never filled it for the records already in the file: a database
-- upgraded past 0013 held an empty table (or, after more writes, one built
-- from the later records only). `truth` then learned nothing from the file's
-- history, and `stemedb verify --full` reported the table as differing from
-- a rebuild.
--
-- Marked here, done at the next start (`Store.open_projections`): the
-- projections are rebuilt from the journal once, in one transaction, exactly
-- as `stemedb reindex` does (so the result equals a reindex, quarantine
-- releases included); the rebuild's own clear removes the mark. A file with
-- no records yet is not marked: there is nothing to rebuild. Large files can
-- be rebuilt ahead with `stemedb reindex` on the stopped server
-- (docs/operations/install.md, "Upgrading").
INSERT OR REPLACE INTO meta (key, value)
SELECT 'truth_backfill', 1 WHERE EXISTS (SELECT 1 FROM journal WHERE kind <> 'header');
