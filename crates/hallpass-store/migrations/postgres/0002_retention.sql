-- Retention: when a held copy's spool file stopped being kept for review (`Store::purge`).
-- NULL while the DPO may still want to read the message. The row and its findings stay, for the
-- dashboard's figures and the audit trail's links.
ALTER TABLE copies ADD COLUMN purged_ms BIGINT;
