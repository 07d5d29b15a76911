-- The console's login sessions, shared by every relay on the store (a DPO behind a load balancer
-- stays logged in whichever relay answers). Only a SHA-256 of the session id (the cookie) is kept.
CREATE TABLE console_sessions (
    id_hash      TEXT   PRIMARY KEY,
    user_name    TEXT   NOT NULL,
    csrf         TEXT   NOT NULL,
    created_ms   BIGINT NOT NULL,
    last_seen_ms BIGINT NOT NULL,
    -- A one-time message for the session's next page: 1 for an error, 0 for an outcome.
    flash_error  BIGINT,
    flash_text   TEXT
);
CREATE INDEX console_sessions_user ON console_sessions (user_name);
CREATE INDEX console_sessions_seen ON console_sessions (last_seen_ms);
