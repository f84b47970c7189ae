-- Schema version 5: the full-text index no longer merges its segments by
-- itself. FTS5's automatic merge does its work in bursts (every 64 leaf
-- pages written it merges 64 pages per level of the index), and a burst
-- inside a commit held up every write queued behind it: commits of 10-25 ms
-- at 5,000 msgs/s (`rim bench`, direct). rim's writer merges a few pages
-- with every batch instead (`store::search::flush_queue`).
INSERT INTO message_index (message_index, rank) VALUES ('automerge', 0);
