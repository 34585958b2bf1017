-- The `truth` lens's reliability table (issue 18; docs/lenses.md, "truth";
-- stemedb/store/truth_state.py). Projections like the others: maintained
-- record by record from the journal, emptied and rebuilt by `stemedb reindex`.
--
-- Each agent's newest claim per (subject, predicate) pair (kind 0), and each
-- voter's newest vote per pair (kind 1), with what the agent was last credited
-- for there (c_value: the value counted, '' when not counted).
CREATE TABLE IF NOT EXISTS truth_voices (
    subject   TEXT    NOT NULL,
    predicate TEXT    NOT NULL,
    agent_id  BLOB    NOT NULL,
    kind      INTEGER NOT NULL,
    value_key TEXT    NOT NULL,
    hash      BLOB    NOT NULL,
    timestamp INTEGER NOT NULL,
    seq       INTEGER NOT NULL,
    weight    REAL    NOT NULL,
    c_value   TEXT    NOT NULL,
    p_value   REAL    NOT NULL,
    credit    REAL    NOT NULL,
    backed    INTEGER NOT NULL,
    PRIMARY KEY (subject, predicate, agent_id, kind)
) WITHOUT ROWID;

-- Per agent: the model's sufficient statistics (lenses/truth_online.py).
CREATE TABLE IF NOT EXISTS truth_agents (
    agent_id       BLOB PRIMARY KEY,
    tier           INTEGER NOT NULL,
    pairs          INTEGER NOT NULL,
    right          REAL    NOT NULL,
    backed         INTEGER NOT NULL,
    outcomes_right INTEGER NOT NULL,
    outcomes_wrong INTEGER NOT NULL,
    seq            INTEGER NOT NULL
) WITHOUT ROWID;

-- Per two agents (agent_a < agent_b) that spoke on a common pair: copy-detection counts.
CREATE TABLE IF NOT EXISTS truth_links (
    agent_a    BLOB    NOT NULL,
    agent_b    BLOB    NOT NULL,
    same       INTEGER NOT NULL,
    same_false REAL    NOT NULL,
    differ     INTEGER NOT NULL,
    PRIMARY KEY (agent_a, agent_b)
) WITHOUT ROWID;
