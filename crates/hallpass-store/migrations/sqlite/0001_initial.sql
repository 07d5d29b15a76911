-- hallpass embedded store, first schema.
-- Plain SQL on purpose: the PostgreSQL schema (a later migration folder) should differ only where
-- the databases do (row ids, booleans). Times are milliseconds since the Unix epoch (BIGINT).

-- One row per message accepted with a 250.
CREATE TABLE messages (
    id          TEXT    PRIMARY KEY,
    received_ms BIGINT  NOT NULL,
    sender      TEXT    NOT NULL,
    message_id  TEXT,
    size        BIGINT  NOT NULL
);

-- Spool files (`<id>.eml`) the store still knows about; a row goes when the file is deleted.
CREATE TABLE spool_files (
    spool_id    TEXT    PRIMARY KEY,
    message_id  TEXT    NOT NULL REFERENCES messages (id)
);

-- The copies a message was split into (deliver, hold, bounce, notice). The id is the queue id the
-- client hears and, for a held copy, the quarantine id.
CREATE TABLE copies (
    id            TEXT    PRIMARY KEY,
    message_id    TEXT    NOT NULL REFERENCES messages (id),
    kind          TEXT    NOT NULL CHECK (kind IN ('deliver', 'hold', 'bounce', 'notice')),
    -- the bytes as accepted (for a held copy: what the DPO reviews)
    spool_id      TEXT    NOT NULL,
    -- the bytes sent when they differ (a held copy released from a rewritten file)
    send_spool_id TEXT,
    -- quarantine decision: held copies only
    status        TEXT    CHECK (status IN ('held', 'released', 'rejected')),
    decided_by    TEXT,
    decided_ms    BIGINT,
    reason        TEXT,
    -- when the copy's recipients were first queued (accept, or release): the queue lifetime's start
    queued_ms     BIGINT,
    CHECK ((kind = 'hold') = (status IS NOT NULL))
);
CREATE INDEX copies_message ON copies (message_id);
CREATE INDEX copies_held ON copies (kind, status);
CREATE INDEX copies_spool ON copies (spool_id);
CREATE INDEX copies_send_spool ON copies (send_spool_id);

-- One row per recipient of a copy: the unit of delivery.
-- held -> queued (release) | rejected (reject)
-- queued -> sending (claimed, leased) -> delivered | queued (deferred) | failed | expired
CREATE TABLE recipients (
    id              INTEGER PRIMARY KEY,
    copy_id         TEXT    NOT NULL REFERENCES copies (id),
    ord             INTEGER NOT NULL,
    address         TEXT    NOT NULL,
    state           TEXT    NOT NULL CHECK (state IN
                        ('held', 'queued', 'sending', 'delivered', 'failed', 'expired', 'rejected')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_ms BIGINT,
    lease_owner     TEXT,
    lease_until_ms  BIGINT,
    -- the upstream's last reply (never message content)
    last_reply      TEXT,
    updated_ms      BIGINT  NOT NULL
);
CREATE INDEX recipients_due ON recipients (state, next_attempt_ms);
CREATE INDEX recipients_copy ON recipients (copy_id, ord);

-- Rules that concern a copy (for the quarantine's filters and display).
CREATE TABLE copy_rules (
    copy_id TEXT NOT NULL REFERENCES copies (id),
    rule    TEXT NOT NULL,
    PRIMARY KEY (copy_id, rule)
);
CREATE INDEX copy_rules_rule ON copy_rules (rule);

-- Findings for a copy: detector ids, locations, counts, confidence; never a matched value.
CREATE TABLE findings (
    copy_id    TEXT    NOT NULL REFERENCES copies (id),
    ord        INTEGER NOT NULL,
    detector   TEXT    NOT NULL,
    location   TEXT    NOT NULL,
    count      INTEGER NOT NULL,
    confidence TEXT    NOT NULL,
    PRIMARY KEY (copy_id, ord)
);
CREATE INDEX findings_detector ON findings (detector);

-- A DPO's "this was a false positive", per detector, for tuning.
CREATE TABLE false_positives (
    id       INTEGER PRIMARY KEY,
    copy_id  TEXT    NOT NULL REFERENCES copies (id),
    detector TEXT    NOT NULL,
    actor    TEXT    NOT NULL,
    at_ms    BIGINT  NOT NULL
);
CREATE INDEX false_positives_detector ON false_positives (detector);

-- Who did what to which message, when. Append-only: the triggers below refuse changes.
CREATE TABLE audit (
    seq           INTEGER PRIMARY KEY,
    at_ms         BIGINT  NOT NULL,
    actor_name    TEXT    NOT NULL,
    actor_address TEXT,
    action        TEXT    NOT NULL,
    target        TEXT,
    detail        TEXT    NOT NULL
);
CREATE INDEX audit_target ON audit (target);
CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
BEGIN
    SELECT RAISE(ABORT, 'the audit trail is append-only');
END;
CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
BEGIN
    SELECT RAISE(ABORT, 'the audit trail is append-only');
END;

-- Console (dpo, admin) and relay (SMTP AUTH) accounts.
CREATE TABLE users (
    name          TEXT    PRIMARY KEY,
    role          TEXT    NOT NULL CHECK (role IN ('dpo', 'admin', 'relay')),
    -- argon2id PHC string
    password_hash TEXT    NOT NULL,
    disabled      BOOLEAN NOT NULL DEFAULT FALSE,
    created_ms    BIGINT  NOT NULL,
    -- SHA-256 (hex) of the current API token
    token_hash    TEXT    UNIQUE
);

-- Per-sender sliding-window events (bulk_send).
CREATE TABLE counter_events (
    id     INTEGER PRIMARY KEY,
    sender TEXT    NOT NULL,
    at_ms  BIGINT  NOT NULL,
    n      BIGINT  NOT NULL
);
CREATE INDEX counter_events_sender ON counter_events (sender, at_ms);
CREATE INDEX counter_events_at ON counter_events (at_ms);
