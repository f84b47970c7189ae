-- Schema version 7: whether a session has ever acknowledged a message.
-- The login replay is opt-in (a cursor or "replay": true in the Login);
-- a token whose device has sent an Ack before gets it without asking.
ALTER TABLE sessions ADD COLUMN acks INTEGER NOT NULL DEFAULT 0;
