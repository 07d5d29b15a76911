-- Small facts the relay keeps between restarts, by name: `digest_date` is the UTC day
-- (YYYY-MM-DD) whose daily digest to the DPO has been dealt with (sent, or nothing waited).
-- Shared by every relay on one store, so the day's digest goes once (`Store::claim_day`).
CREATE TABLE state (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
