-- A held copy's sender is owed a notice of its release or rejection. Set in the same change as the
-- decision and cleared once the notice is queued, so a crash or a full disk in between delays the
-- notice instead of losing it. The time it may next be tried (a relay writing it pushes it on).
ALTER TABLE copies ADD COLUMN notice_due_ms BIGINT;
CREATE INDEX copies_notice_due ON copies (notice_due_ms);
