-- Schema version 3: attachments stored in the database, the messages that
-- refer to them, and the full-text index of messages.

-- One row per distinct content (identical bytes are stored once: `sha256`
-- is unique). A row with a NULL `sha256` is an upload still streaming in (or
-- abandoned by a crash; `rim files gc` removes those); only complete files
-- can be served or referred to. `width`/`height` are set for the image types
-- rim recognises from their bytes (png, jpeg, gif, webp). AUTOINCREMENT:
-- an id is never handed out again after its file was removed, since
-- browsers keep a file's bytes by its URL for good.
CREATE TABLE files (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    sha256       BLOB    UNIQUE,
    size         INTEGER NOT NULL,
    content_type TEXT    NOT NULL,
    width        INTEGER,
    height       INTEGER,
    -- Every chunk but the last holds exactly this many bytes, so a byte
    -- range maps to chunks by division.
    chunk_size   INTEGER NOT NULL,
    created_at   INTEGER NOT NULL
);

-- The bytes, in chunks: an upload streams in one chunk per write and a
-- download (or a Range of it) streams out one chunk per read, so no request
-- holds a whole file in memory. A rowid table on purpose: chunks are large
-- and would bloat a WITHOUT ROWID b-tree.
CREATE TABLE file_chunks (
    file_id INTEGER NOT NULL REFERENCES files(id) ON DELETE CASCADE,
    seq     INTEGER NOT NULL,
    data    BLOB    NOT NULL,
    UNIQUE (file_id, seq)
);

-- Who uploaded which file (several people may upload the same bytes): an
-- uploader may read the file and send messages referring to it, and it
-- counts against their quota. `name` is the name they gave it.
CREATE TABLE uploads (
    file_id    INTEGER NOT NULL REFERENCES files(id) ON DELETE CASCADE,
    uid        INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name       TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (file_id, uid)
) WITHOUT ROWID;
CREATE INDEX uploads_by_uid ON uploads(uid, file_id);

-- The file an Image or File message refers to, written in the same
-- transaction as the message: the members of the message's conversation
-- may read the file, and a referenced file is never collected (the foreign
-- key forbids deleting it). `name` is the name the message shows, which the
-- search index holds for such messages.
CREATE TABLE message_files (
    msg_id  INTEGER PRIMARY KEY REFERENCES messages(id) ON DELETE CASCADE,
    file_id INTEGER NOT NULL REFERENCES files(id),
    name    TEXT    NOT NULL
);
CREATE INDEX message_files_by_file ON message_files(file_id);

-- The full-text index of messages, rowid = message id, written by rim in
-- the same transaction as the message (`store::search`). Contentless: the
-- text lives in `messages`. `body` holds the message's words as produced by
-- `search::index_body` (Chinese, Japanese and Korean runs as overlapping
-- bigrams, so that text without spaces is searchable); `scope` holds one
-- token naming the conversation, so that a search within a conversation is
-- an index intersection rather than a scan.
CREATE VIRTUAL TABLE message_index USING fts5(
    body,
    scope,
    content = '',
    contentless_delete = 1,
    tokenize = 'unicode61 remove_diacritics 2'
);

CREATE TRIGGER message_unindex AFTER DELETE ON messages BEGIN
    DELETE FROM message_index WHERE rowid = old.id;
END;

-- messages.kind gains 3 = File (0 Text, 1 RichText, 2 Image, 3 File).
