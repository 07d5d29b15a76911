-- Several relays on one shared store (PostgreSQL; the same schema here so the queries are the
-- same): which relay's local spool holds each file, and the bytes of held messages kept in the
-- database so that any relay can show and release them. On SQLite there is one node, '', and
-- spool_bytes stays empty.
ALTER TABLE spool_files ADD COLUMN node TEXT NOT NULL DEFAULT '';
CREATE INDEX spool_files_node ON spool_files (node, spool_id);
CREATE TABLE spool_bytes (
    spool_id TEXT PRIMARY KEY REFERENCES spool_files (spool_id) ON DELETE CASCADE,
    bytes    BLOB NOT NULL
);
