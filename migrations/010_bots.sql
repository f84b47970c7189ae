-- Schema version 10: bots, accounts that post into one conversation with a
-- secret key (only its SHA-256 is kept).
CREATE TABLE bots (
    id         INTEGER PRIMARY KEY,
    uid        INTEGER NOT NULL UNIQUE REFERENCES users(id) ON DELETE CASCADE,
    gid        INTEGER NOT NULL REFERENCES groups(id) ON DELETE CASCADE,
    key_hash   BLOB    NOT NULL UNIQUE,
    created_at INTEGER NOT NULL
);
CREATE INDEX bots_by_gid ON bots(gid);
