-- Schema version 1: the base every database started from.
--
-- Frozen: schema.sql as it stood at version 1. A new database is made from
-- ../schema.sql, never from this file; it stays so that the migrations read
-- as the schema's history from the start, and so that tests can build a
-- version-1 file and migrate it (see README.md in this directory).
--
-- Times are Unix milliseconds (UTC). Ids are SQLite rowids, so they only grow.

CREATE TABLE users (
    id            INTEGER PRIMARY KEY,
    account       TEXT    NOT NULL UNIQUE COLLATE NOCASE,
    name          TEXT    NOT NULL,
    avatar        TEXT    NOT NULL DEFAULT '',
    email         TEXT    NOT NULL DEFAULT '',
    -- argon2id PHC string; the clear password is never stored.
    password_hash TEXT    NOT NULL,
    created_at    INTEGER NOT NULL
);

-- One row per logged-in device. Only a SHA-256 of the token is kept, so a
-- leaked database file does not leak usable tokens.
CREATE TABLE sessions (
    id         INTEGER PRIMARY KEY,
    token_hash BLOB    NOT NULL UNIQUE,
    uid        INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX sessions_by_uid ON sessions(uid);

-- A friendship or a pending request, one row per unordered pair (lo < hi).
-- status 0 = requested by `requester`, 1 = friends. A rejected or cancelled
-- request is deleted, so it can be asked again later.
CREATE TABLE friendships (
    lo         INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    hi         INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    requester  INTEGER NOT NULL,
    status     INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (lo, hi),
    CHECK (lo < hi)
) WITHOUT ROWID;
CREATE INDEX friendships_by_hi ON friendships(hi);

-- Conversations. mode 0 = group, 1 = direct (exactly two members, unique per
-- pair through direct_key = "lo:hi").
CREATE TABLE groups (
    id          INTEGER PRIMARY KEY,
    name        TEXT    NOT NULL,
    avatar      TEXT    NOT NULL DEFAULT '',
    mode        INTEGER NOT NULL,
    creator_uid INTEGER NOT NULL,
    direct_key  TEXT    UNIQUE,
    -- The newest message, kept in the same transaction as the insert: the
    -- chat list sorts on it.
    last_msg_id INTEGER,
    created_at  INTEGER NOT NULL
);

-- Membership, and each member's position in the conversation: everything up
-- to delivered_id was acknowledged by one of their devices, everything up to
-- read_id was read. Unread counts derive from read_id.
CREATE TABLE members (
    gid          INTEGER NOT NULL REFERENCES groups(id) ON DELETE CASCADE,
    uid          INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    role         INTEGER NOT NULL,
    delivered_id INTEGER NOT NULL DEFAULT 0,
    read_id      INTEGER NOT NULL DEFAULT 0,
    joined_at    INTEGER NOT NULL,
    PRIMARY KEY (gid, uid)
) WITHOUT ROWID;
CREATE INDEX members_by_uid ON members(uid, gid);

-- kind: 0 Text, 1 RichText, 2 Image.
CREATE TABLE messages (
    id            INTEGER PRIMARY KEY,
    gid           INTEGER NOT NULL REFERENCES groups(id) ON DELETE CASCADE,
    uid           INTEGER NOT NULL,
    kind          INTEGER NOT NULL,
    content       TEXT    NOT NULL,
    client_msg_id TEXT    NOT NULL DEFAULT '',
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
);
CREATE INDEX messages_by_gid ON messages(gid, id);
-- A resend with the same clientMsgId from the same sender is the same message.
-- (Schema version 4 drops this index: see migrations/004_resend_window.sql.)
CREATE UNIQUE INDEX messages_dedup ON messages(uid, client_msg_id) WHERE client_msg_id <> '';
