-- Several relays on one shared store: which relay's local spool holds each file (the relay's
-- `[storage] node`), and the bytes of held messages, written in the transaction that records
-- the message, so that any relay can show and release them.
ALTER TABLE spool_files ADD COLUMN node TEXT NOT NULL DEFAULT '';
CREATE INDEX spool_files_node ON spool_files (node, spool_id);
CREATE TABLE spool_bytes (
    spool_id TEXT  PRIMARY KEY REFERENCES spool_files (spool_id) ON DELETE CASCADE,
    bytes    BYTEA NOT NULL
);
