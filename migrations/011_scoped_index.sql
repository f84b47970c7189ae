-- Schema version 11: the full-text index marks every word with its
-- conversation. The `scope` column (one token per message naming its
-- conversation) becomes `scoped`, the message's words again, each with
-- `g{gid}x` in front, so that a search of someone in many conversations
-- reads their conversations' matches only. FTS5 cannot add or rename a
-- column: the index is made anew, empty, and rim indexes every message
-- again when it starts (`store::search::catch_up`, before it listens).
DROP TRIGGER message_unindex;
DROP TABLE message_index;
CREATE VIRTUAL TABLE message_index USING fts5(
    body,
    scoped,
    content = '',
    contentless_delete = 1,
    tokenize = 'unicode61 remove_diacritics 2'
);
INSERT INTO message_index (message_index, rank) VALUES ('automerge', 0);
CREATE TRIGGER message_unindex AFTER DELETE ON messages BEGIN
    DELETE FROM message_index WHERE rowid = old.id;
END;
