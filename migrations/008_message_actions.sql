-- Schema version 8: replies, edits, deletions, reactions, mentions and
-- presence, and the change log that carries edits, deletions and reactions
-- to devices that were offline (see schema.sql for what each part is for).
ALTER TABLE messages ADD COLUMN reply_to INTEGER;
ALTER TABLE messages ADD COLUMN mentions TEXT NOT NULL DEFAULT '';
ALTER TABLE messages ADD COLUMN edited_at INTEGER;
ALTER TABLE messages ADD COLUMN deleted_at INTEGER;

ALTER TABLE users ADD COLUMN last_seen INTEGER;

CREATE TABLE reactions (
    msg_id     INTEGER NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
    content    TEXT    NOT NULL,
    uid        INTEGER NOT NULL,
    change_id  INTEGER NOT NULL,
    PRIMARY KEY (msg_id, content, uid)
) WITHOUT ROWID;

CREATE TABLE changes (
    id            INTEGER PRIMARY KEY,
    gid           INTEGER NOT NULL REFERENCES groups(id) ON DELETE CASCADE,
    msg_id        INTEGER NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
    uid           INTEGER NOT NULL,
    op            INTEGER NOT NULL,
    content       TEXT    NOT NULL,
    client_msg_id TEXT    NOT NULL DEFAULT '',
    created_at    INTEGER NOT NULL
);
CREATE INDEX changes_by_gid ON changes(gid, id);
CREATE INDEX changes_by_msg ON changes(msg_id);
CREATE INDEX changes_by_sender ON changes(uid, client_msg_id) WHERE client_msg_id <> '';
