-- Schema version 2: administrators, disabled accounts, invites, and the
-- revocations the command line hands to a running server.

-- The first account ever created becomes an admin; `rim user add --admin`
-- makes more. Admins may create invites over REST.
ALTER TABLE users ADD COLUMN is_admin INTEGER NOT NULL DEFAULT 0;
-- NULL while the account may log in; when `rim user disable` ran otherwise.
-- A disabled account keeps all its data.
ALTER TABLE users ADD COLUMN disabled_at INTEGER;

-- Invite codes. Only a SHA-256 of the code is kept, like tokens: a code is a
-- credential (it lets someone register), so a leaked database or backup must
-- not hand out working codes. The code is shown once, when it is created.
CREATE TABLE invites (
    id          INTEGER PRIMARY KEY,
    code_hash   BLOB    NOT NULL UNIQUE,
    max_uses    INTEGER NOT NULL,
    used        INTEGER NOT NULL DEFAULT 0,
    -- NULL: never expires.
    expires_at  INTEGER,
    -- The admin who made it over REST; NULL when made with `rim invite create`.
    created_by  INTEGER REFERENCES users(id) ON DELETE SET NULL,
    created_at  INTEGER NOT NULL
);

-- Accounts whose sessions another process (the `rim` command line) revoked,
-- perhaps while a server runs. The server polls `id > last seen` once a
-- second and closes every WebSocket of each account; rows older than an hour
-- are purged. Keyed by account, not by session: session ids are rowids and
-- may be handed out again once deleted, so "close session 5" could hit a
-- fresh login, while every such command revokes all of an account's sessions.
CREATE TABLE revocations (
    id          INTEGER PRIMARY KEY,
    uid         INTEGER NOT NULL,
    created_at  INTEGER NOT NULL
);
