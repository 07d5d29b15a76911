-- Each count in the sender's window names its message, so that a message answered 451 (not
-- accepted: the client sends it again) can be taken back out of the window.
ALTER TABLE counter_events ADD COLUMN event TEXT NOT NULL DEFAULT '';
