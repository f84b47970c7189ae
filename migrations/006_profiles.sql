-- Schema version 6: people edit their own profile and see their devices.
-- `users.hide_last_seen` keeps a person's last-seen time from others;
-- `users.avatar_file` is the picture uploaded with `POST /api/user/avatar`
-- (a file every logged-in user may read, never collected while it is one).
-- A session remembers the device it was opened from and when it was last
-- used, for `GET /api/user/sessions`.
ALTER TABLE users ADD COLUMN hide_last_seen INTEGER NOT NULL DEFAULT 0;
ALTER TABLE users ADD COLUMN avatar_file INTEGER REFERENCES files(id);
CREATE INDEX users_by_avatar_file ON users(avatar_file) WHERE avatar_file IS NOT NULL;
ALTER TABLE sessions ADD COLUMN user_agent TEXT NOT NULL DEFAULT '';
ALTER TABLE sessions ADD COLUMN address TEXT NOT NULL DEFAULT '';
ALTER TABLE sessions ADD COLUMN last_used_at INTEGER NOT NULL DEFAULT 0;
