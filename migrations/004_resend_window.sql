-- Schema version 4: resends are recognised by the writer's window of recent
-- clientMsgIds (`store::messages::ResendWindow`), held in memory and filled
-- from `messages.client_msg_id` at start-up, instead of by a unique index
-- over every message ever sent, which cost every send one more index page
-- written, synced and checkpointed.
DROP INDEX IF EXISTS messages_dedup;
