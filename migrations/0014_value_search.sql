-- Value-text search across subjects (issue 16: the console's concept browser is
-- "searchable by prefix and by value text"; docs/console.md, "Concepts").
--
-- An FTS5 trigram index over `assertions.value_text` (Text and Reference values),
-- external content: it stores the trigrams only, the text stays in `assertions`.
-- Triggers keep it in step with the projection inside the same transaction, so
-- a write, `stemedb reindex` (which deletes and re-derives `assertions`) and a
-- rebuild from the journal all maintain it; this migration indexes the rows an
-- older database already holds. Trigram: any substring of three or more
-- characters matches, case-insensitively.
CREATE VIRTUAL TABLE IF NOT EXISTS value_search USING fts5(
  value_text, content = 'assertions', content_rowid = 'seq', tokenize = 'trigram'
);

CREATE TRIGGER IF NOT EXISTS value_search_insert AFTER INSERT ON assertions
WHEN new.value_text IS NOT NULL BEGIN
  INSERT INTO value_search (rowid, value_text) VALUES (new.seq, new.value_text);
END;

CREATE TRIGGER IF NOT EXISTS value_search_delete AFTER DELETE ON assertions
WHEN old.value_text IS NOT NULL BEGIN
  INSERT INTO value_search (value_search, rowid, value_text)
  VALUES ('delete', old.seq, old.value_text);
END;

INSERT INTO value_search (value_search) VALUES ('rebuild');
