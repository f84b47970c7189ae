-- Schema version 9: Web Push. The server's VAPID key pair, the browsers'
-- subscriptions (one per session that subscribed), and each member's
-- notification level in a conversation.
ALTER TABLE members ADD COLUMN notify INTEGER;

CREATE TABLE push_keys (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    private_key BLOB    NOT NULL,
    public_key  BLOB    NOT NULL,
    created_at  INTEGER NOT NULL
);

CREATE TABLE push_subscriptions (
    id          INTEGER PRIMARY KEY,
    session_id  INTEGER NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
    uid         INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    endpoint    TEXT    NOT NULL UNIQUE,
    p256dh      BLOB    NOT NULL,
    auth        BLOB    NOT NULL,
    created_at  INTEGER NOT NULL
);
CREATE INDEX push_subscriptions_by_uid ON push_subscriptions(uid);
CREATE INDEX push_subscriptions_by_session ON push_subscriptions(session_id);
