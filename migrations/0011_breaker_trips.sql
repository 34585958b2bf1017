-- Circuit-breaker trips that survive a restart (issue 19 item 3 leftover).
--
-- A trip is server state, not a claim: it changes no answer, only whether an
-- agent's next writes are refused, so it is a plain table (not journalled,
-- not a projection: reindex and verify leave it alone). One row per
-- (API key, agent); `api_key` is '' with auth off. The server loads rows whose
-- `open_until_ms` is still ahead at start; an admin reset deletes the agent's rows.
CREATE TABLE IF NOT EXISTS breaker_trips (
    api_key TEXT NOT NULL,
    agent_id TEXT NOT NULL,
    reason TEXT NOT NULL,
    detail TEXT NOT NULL,
    tripped_ms INTEGER NOT NULL,
    open_until_ms INTEGER NOT NULL,
    trips INTEGER NOT NULL,
    baseline REAL NOT NULL DEFAULT 0,
    PRIMARY KEY (api_key, agent_id)
);
