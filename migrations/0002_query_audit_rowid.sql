-- query_audit becomes a rowid table.
--
-- As a WITHOUT ROWID table its ~1 KB rows lived in an index b-tree, whose
-- cells keep at most ~1,000 bytes on the page: every row spilled into an
-- overflow page of its own (4 KiB for a few hundred bytes), and rows keyed
-- by query id landed mid-tree, splitting pages on almost every insert. The
-- audit trail of a read-only load wrote about two pages per query. In a rowid
-- table the rows are appended whole, three or four to a page, and only the
-- small query-id index takes keys out of order.
CREATE TABLE query_audit_v2 (
  query_id   TEXT    NOT NULL PRIMARY KEY,
  at_ms      INTEGER NOT NULL,
  agent_id   TEXT,
  endpoint   TEXT    NOT NULL,
  lens       TEXT,
  params     TEXT    NOT NULL,        -- JSON
  results    TEXT    NOT NULL         -- JSON: per group winner, confidence, contributions
);
INSERT INTO query_audit_v2 (query_id, at_ms, agent_id, endpoint, lens, params, results)
  SELECT query_id, at_ms, agent_id, endpoint, lens, params, results
  FROM query_audit ORDER BY at_ms, query_id;
DROP TABLE query_audit;
ALTER TABLE query_audit_v2 RENAME TO query_audit;
CREATE INDEX query_audit_by_time  ON query_audit (at_ms);
CREATE INDEX query_audit_by_agent ON query_audit (agent_id, at_ms);
