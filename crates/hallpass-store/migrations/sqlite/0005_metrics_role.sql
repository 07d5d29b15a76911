-- A read-only role for a Prometheus scraper: its token reads /metrics and nothing else.
-- SQLite cannot change a CHECK constraint in place: the table is copied (nothing refers to it).
CREATE TABLE users_new (
    name          TEXT    PRIMARY KEY,
    role          TEXT    NOT NULL CHECK (role IN ('dpo', 'admin', 'relay', 'metrics')),
    -- argon2id PHC string
    password_hash TEXT    NOT NULL,
    disabled      BOOLEAN NOT NULL DEFAULT FALSE,
    created_ms    BIGINT  NOT NULL,
    -- SHA-256 (hex) of the current API token
    token_hash    TEXT    UNIQUE
);
INSERT INTO users_new (name, role, password_hash, disabled, created_ms, token_hash)
    SELECT name, role, password_hash, disabled, created_ms, token_hash FROM users;
DROP TABLE users;
ALTER TABLE users_new RENAME TO users;
