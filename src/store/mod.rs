//! Storage: the only module that speaks SQL.
//!
//! [`Db`] is a cheap-to-clone handle. Writes go to one writer thread that
//! group-commits them ([`writer`]); reads run on the blocking pool over a small
//! pool of read-only connections. No SQLite call ever runs on an async worker
//! thread. The submodules hold the queries, one per area, as plain functions
//! over a `&Connection`; `Db` methods pick the right connection for each.
//!
//! Permission checks that depend on stored state (is this user a member, an
//! admin, a friend) run inside the same transaction as the change they guard.

#[macro_use]
mod rows;

pub mod admin;
pub mod bots;
pub mod files;
mod friends;
mod groups;
mod messages;
mod model;
pub mod push;
pub mod schema;
pub mod search;
mod users;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use rusqlite::Connection;
use tokio::sync::{Semaphore, mpsc, oneshot};

use crate::config::Config;
use crate::error::{Error, Result};

pub use files::{Collected, FileMeta, FileRef, NewFile};
pub use friends::FriendEvent;
pub use messages::{ChangeRequest, Changed, NewChange, NewMessage, Replay, Replayed, Stored};
pub use model::*;
pub use search::Hit;
pub use writer::{BATCH_SIZE_BOUNDS, COMMIT_MICROS_BOUNDS, WriterStats};

/// Everything needed to open the database.
#[derive(Debug, Clone)]
pub struct Options {
    pub path: PathBuf,
    pub synchronous: crate::config::Synchronous,
    /// Who checkpoints the WAL: the writer thread, or Litestream.
    pub checkpoints: crate::config::Checkpointer,
    pub read_connections: usize,
    pub writer_batch: usize,
    pub writer_queue: usize,
    pub max_group_members: usize,
    pub max_db_mb: u64,
    /// Quiet time after which the WAL is truncated and the idle readers
    /// closed (None = never; see `writer::IdleCheckpoint`, `idle_clock`).
    pub checkpoint_idle: Option<std::time::Duration>,
}

impl Options {
    pub fn from_config(c: &Config) -> Options {
        Options {
            path: c.db.clone(),
            synchronous: c.synchronous,
            checkpoints: c.checkpoints,
            read_connections: c.read_connections,
            writer_batch: c.writer_batch,
            writer_queue: c.writer_queue,
            max_group_members: c.max_group_members,
            max_db_mb: c.max_db_mb,
            checkpoint_idle: c.checkpoint_idle,
        }
    }
}

/// Handle to the database. Clone freely; all clones share one writer thread
/// and one reader pool.
#[derive(Clone)]
pub struct Db {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    writer: mpsc::Sender<writer::Command>,
    writer_thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    stats: Arc<Mutex<WriterStats>>,
    /// Idle read connections. The semaphore bounds how many are in use, so
    /// the pool never grows past `read_connections`.
    readers: Mutex<Vec<Connection>>,
    read_permits: Semaphore,
    /// Reads started so far, for the idle clock to tell a quiet pool.
    reads: AtomicU64,
    /// The last write probe: when, and what it found.
    write_probe: Mutex<Option<(std::time::Instant, Result<()>)>>,
    max_group_members: usize,
    /// `storage.max_db_mb` in bytes, which the writer fits the file to.
    size_cap: Arc<AtomicU64>,
    /// The exclusive lock on `<db>.lock` (see [`admin::lock_database`]): one
    /// writer per file, and `rim restore` can tell that a server runs.
    /// Released when the writer has stopped.
    lock: Mutex<Option<std::fs::File>>,
}

/// A write the writer has queued: resolves to its result once it is
/// committed (or to the error that rolled it back).
pub struct Committed<R>(oneshot::Receiver<Result<R>>);

impl<R> Future for Committed<R> {
    type Output = Result<R>;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<R>> {
        std::pin::Pin::new(&mut self.0)
            .poll(cx)
            .map(|answer| answer.unwrap_or_else(|_| Err(writer::shutting_down())))
    }
}

impl Db {
    /// Opens or creates the database, migrates it and starts the writer
    /// thread. Blocking: call it before the runtime serves anything, or from
    /// `spawn_blocking`.
    pub fn open(opts: &Options) -> anyhow::Result<Db> {
        let lock = admin::lock_database(&opts.path)?;
        let conn = schema::open_writer(&opts.path, opts.synchronous, opts.max_db_mb)?;
        let indexed = search::catch_up(&conn)?;
        if indexed > 0 {
            crate::log_info!("messages indexed for search", count = indexed);
        }
        let sends = messages::Sends::load(&conn, crate::time::now_ms())?;
        let mut readers = Vec::with_capacity(opts.read_connections);
        for _ in 0..opts.read_connections {
            readers.push(schema::open_reader(&opts.path)?);
        }
        let (tx, rx) = mpsc::channel(opts.writer_queue);
        let stats = Arc::new(Mutex::new(WriterStats::default()));
        let thread_stats = stats.clone();
        let batch = opts.writer_batch;
        let publisher = writer::Publisher::start()?;
        let idle = writer::IdleCheckpoint::new(opts.checkpoint_idle, opts.checkpoints);
        let checkpoints = opts.checkpoints;
        let synchronous = opts.synchronous;
        let size_cap = Arc::new(AtomicU64::new(opts.max_db_mb.saturating_mul(1 << 20)));
        let writer_size_cap = size_cap.clone();
        let handle = std::thread::Builder::new()
            .name("rim-writer".into())
            .spawn(move || {
                writer::run(
                    conn,
                    sends,
                    rx,
                    writer::Settings {
                        batch_max: batch,
                        checkpoints,
                        size_cap: writer_size_cap,
                        synchronous,
                    },
                    thread_stats,
                    publisher,
                    idle,
                )
            })?;

        let inner = Arc::new(Inner {
            path: opts.path.clone(),
            writer: tx,
            writer_thread: Mutex::new(Some(handle)),
            stats,
            readers: Mutex::new(readers),
            read_permits: Semaphore::new(opts.read_connections),
            max_group_members: opts.max_group_members,
            size_cap,
            lock: Mutex::new(Some(lock)),
            reads: AtomicU64::new(0),
            write_probe: Mutex::new(None),
        });
        if let Some(after) = opts.checkpoint_idle {
            idle_clock(Arc::downgrade(&inner), after)?;
        }
        Ok(Db { inner })
    }

    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    pub fn writer_stats(&self) -> WriterStats {
        self.inner.stats.lock().map(|s| *s).unwrap_or_default()
    }

    /// Lets the writer finish every write queued so far, then stops it. Writes
    /// after this fail with 503. Safe to call more than once.
    pub async fn close(&self) {
        let (done_tx, done_rx) = oneshot::channel();
        if self
            .inner
            .writer
            .send(writer::Command::Stop(done_tx))
            .await
            .is_ok()
        {
            let _ = done_rx.await;
        }
        let handle = self
            .inner
            .writer_thread
            .lock()
            .ok()
            .and_then(|mut h| h.take());
        if let Some(handle) = handle {
            let _ = tokio::task::spawn_blocking(move || handle.join()).await;
        }
        if let Ok(mut lock) = self.inner.lock.lock() {
            lock.take();
        }
    }

    /// Runs `f` in the writer's batch transaction; resolves after COMMIT.
    async fn write<R, F>(&self, f: F) -> Result<R>
    where
        F: FnOnce(&Connection) -> Result<R> + Send + 'static,
        R: Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let job = writer::ClosureJob::new(move |c: &Connection, _: &mut _| f(c), tx);
        self.queue(Box::new(job), rx).await?.await
    }

    /// Like [`Db::write`], and `after` gets the result once it is committed,
    /// on the publisher thread: in commit order, before the caller does. `f`
    /// must do all its checks before its first write (it runs without a
    /// savepoint: see `writer::Job::checks_first`).
    ///
    /// Resolves once the writer has the job: the returned [`Committed`]
    /// resolves after its COMMIT. A caller may queue more work meanwhile;
    /// the writer runs jobs in the order they were queued.
    ///
    /// Not an `async fn`: the job is boxed before the future exists, so `f`
    /// and what it captures are not also kept in the caller's future (a
    /// WebSocket frame's future then stays under 1 KiB: see `ws::Conn::run`).
    fn queue_then<R, F>(
        &self,
        f: F,
        after: writer::AfterCommit<R>,
    ) -> impl Future<Output = Result<Committed<R>>> + Send + use<'_, R, F>
    where
        F: FnOnce(&Connection, &mut messages::Sends) -> Result<R> + Send + 'static,
        R: Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let job = writer::ClosureJob::with_after(f, after, tx).checking_first();
        self.queue(Box::new(job), rx)
    }

    /// Hands `job` to the writer (waiting while its queue is full).
    async fn queue<R>(
        &self,
        job: Box<dyn writer::Job>,
        rx: oneshot::Receiver<Result<R>>,
    ) -> Result<Committed<R>> {
        self.inner
            .writer
            .send(writer::Command::Job(job))
            .await
            .map_err(|_| writer::shutting_down())?;
        Ok(Committed(rx))
    }

    /// Runs `f` on a read-only connection on the blocking pool.
    async fn read<R, F>(&self, f: F) -> Result<R>
    where
        F: FnOnce(&Connection) -> Result<R> + Send + 'static,
        R: Send + 'static,
    {
        let permit = self
            .inner
            .read_permits
            .acquire()
            .await
            .map_err(|_| writer::shutting_down())?;
        self.inner.reads.fetch_add(1, Ordering::Relaxed);
        let inner = self.inner.clone();
        let result = tokio::task::spawn_blocking(move || {
            let conn = inner.readers.lock().ok().and_then(|mut pool| pool.pop());
            let conn = match conn {
                Some(conn) => conn,
                None => schema::open_reader(&inner.path)?,
            };
            // A panicking query must not lose the connection or poison the pool.
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(&conn)))
                .unwrap_or_else(|_| {
                    crate::log_error!("panic in a read query");
                    Err(Error::Internal("internal error while reading".into()))
                });
            if let Ok(mut pool) = inner.readers.lock() {
                pool.push(conn);
            }
            result
        })
        .await
        .map_err(|_| Error::Internal("read task failed".into()))?;
        drop(permit);
        result
    }

    // ---- users and sessions ----------------------------------------------

    pub async fn create_user(&self, user: NewUser) -> Result<u64> {
        self.write(move |c| users::create(c, &user, crate::time::now_ms()))
            .await
    }

    pub async fn user(&self, id: u64) -> Result<Option<User>> {
        self.read(move |c| users::by_id(c, id)).await
    }

    pub async fn user_by_account(&self, account: String) -> Result<Option<User>> {
        self.read(move |c| users::by_account(c, &account)).await
    }

    /// The uid and password hash of an account, for login.
    pub async fn credentials(&self, account: String) -> Result<Option<(u64, String)>> {
        self.read(move |c| users::credentials(c, &account)).await
    }

    pub async fn create_session(
        &self,
        uid: u64,
        token_hash: [u8; 32],
        origin: Origin,
        expires_at: i64,
    ) -> Result<i64> {
        self.write(move |c| {
            users::create_session(
                c,
                uid,
                &token_hash,
                &origin,
                crate::time::now_ms(),
                expires_at,
            )
        })
        .await
    }

    /// Records that a session was used now.
    pub async fn touch_session(&self, id: i64, now: i64) -> Result<()> {
        self.write(move |c| users::touch_session(c, id, now)).await
    }

    /// An account's live sessions, newest first.
    pub async fn devices(&self, uid: u64) -> Result<Vec<Device>> {
        self.read(move |c| users::devices(c, uid, crate::time::now_ms()))
            .await
    }

    /// Revokes one of `uid`'s own sessions (404 for any other).
    pub async fn revoke_device(&self, uid: u64, id: i64) -> Result<()> {
        self.write(move |c| users::revoke_device(c, uid, id)).await
    }

    pub async fn update_profile(&self, uid: u64, change: ProfileChange) -> Result<()> {
        self.write(move |c| users::update_profile(c, uid, &change))
            .await
    }

    /// Makes an image `uid` uploaded their picture; returns its avatar link.
    pub async fn set_avatar_file(&self, uid: u64, file_id: u64) -> Result<String> {
        self.write(move |c| users::set_avatar_file(c, uid, file_id))
            .await
    }

    pub async fn password_hash(&self, uid: u64) -> Result<Option<String>> {
        self.read(move |c| users::password_hash(c, uid)).await
    }

    /// Replaces a password hash that is still `old_hash` by the same
    /// password hashed at another cost; sessions stay. Returns whether it
    /// was still `old_hash`.
    pub async fn replace_password_hash(
        &self,
        uid: u64,
        old_hash: String,
        new_hash: String,
    ) -> Result<bool> {
        self.write(move |c| users::replace_password_hash(c, uid, &old_hash, &new_hash))
            .await
    }

    /// Replaces a password hash that is still `old_hash` and revokes every
    /// session of the account but `keep`; returns the revoked ids.
    pub async fn change_password(
        &self,
        uid: u64,
        old_hash: String,
        new_hash: String,
        keep: i64,
    ) -> Result<Vec<i64>> {
        self.write(move |c| users::change_password(c, uid, &old_hash, &new_hash, keep))
            .await
    }

    /// The live session for a token hash, if it exists and has not expired.
    pub async fn session(&self, token_hash: [u8; 32]) -> Result<Option<Session>> {
        self.read(move |c| users::session(c, &token_hash, crate::time::now_ms()))
            .await
    }

    /// Revokes a session; returns its id if it existed.
    pub async fn delete_session(&self, token_hash: [u8; 32]) -> Result<Option<i64>> {
        self.write(move |c| users::delete_session(c, &token_hash))
            .await
    }

    /// Who hears of `uid`'s presence: their friends and the members of
    /// their conversations.
    pub async fn audience(&self, uid: u64) -> Result<Vec<u64>> {
        self.read(move |c| users::audience(c, uid)).await
    }

    /// Records that `uid`'s last device went away at `at`.
    pub async fn set_last_seen(&self, uid: u64, at: i64) -> Result<()> {
        self.write(move |c| users::set_last_seen(c, uid, at)).await
    }

    /// `uid`'s last-seen time and whether they hide it.
    pub async fn last_seen(&self, uid: u64) -> Result<LastSeen> {
        self.read(move |c| users::last_seen(c, uid)).await
    }

    pub async fn purge_expired_sessions(&self) -> Result<usize> {
        self.write(|c| users::purge_expired(c, crate::time::now_ms()))
            .await
    }

    // ---- friends ------------------------------------------------------------

    pub async fn friend_request(&self, me: u64, other: u64) -> Result<FriendEvent> {
        self.write(move |c| friends::request(c, me, other, crate::time::now_ms()))
            .await
    }

    pub async fn friend_accept(&self, me: u64, other: u64) -> Result<FriendEvent> {
        self.write(move |c| friends::accept(c, me, other, crate::time::now_ms()))
            .await
    }

    pub async fn friend_remove(&self, me: u64, other: u64) -> Result<()> {
        self.write(move |c| friends::remove(c, me, other)).await
    }

    pub async fn friends(&self, me: u64, which: FriendList) -> Result<Vec<User>> {
        self.read(move |c| friends::list(c, me, which)).await
    }

    // ---- groups -------------------------------------------------------------

    pub async fn create_group(
        &self,
        creator: u64,
        name: String,
        avatar: String,
        members: Vec<(u64, Role)>,
    ) -> Result<u64> {
        let max = self.inner.max_group_members;
        self.write(move |c| {
            groups::create(
                c,
                creator,
                &name,
                &avatar,
                &members,
                max,
                crate::time::now_ms(),
            )
        })
        .await
    }

    /// The direct conversation between `me` and `other`, created on first use.
    pub async fn direct_group(&self, me: u64, other: u64) -> Result<u64> {
        self.write(move |c| groups::direct(c, me, other, crate::time::now_ms()))
            .await
    }

    pub async fn update_group(
        &self,
        me: u64,
        gid: u64,
        name: Option<String>,
        avatar: Option<String>,
    ) -> Result<Vec<u64>> {
        self.write(move |c| groups::update(c, me, gid, name.as_deref(), avatar.as_deref()))
            .await
    }

    pub async fn groups_of(&self, me: u64) -> Result<Vec<Group>> {
        self.read(move |c| groups::of_user(c, me)).await
    }

    pub async fn group_members(&self, me: u64, gid: u64) -> Result<Vec<Member>> {
        self.read(move |c| groups::members(c, me, gid)).await
    }

    pub async fn change_members(
        &self,
        me: u64,
        gid: u64,
        uids: Vec<u64>,
        op: MemberOp,
    ) -> Result<Vec<u64>> {
        let max = self.inner.max_group_members;
        self.write(move |c| {
            groups::change_members(c, me, gid, &uids, op, max, crate::time::now_ms())
        })
        .await
    }

    /// `me` leaves group `gid`; returns the members before, `me` included.
    pub async fn leave_group(&self, me: u64, gid: u64) -> Result<Vec<u64>> {
        self.write(move |c| groups::leave(c, me, gid)).await
    }

    // ---- messages -----------------------------------------------------------

    /// Stores a message (or finds the earlier copy of a resend). Resolves after
    /// the commit, so the result may be acknowledged.
    pub async fn send_message(&self, msg: NewMessage) -> Result<Stored> {
        self.queue_message(msg, |_| {}).await?.await
    }

    /// [`Db::send_message`], calling `pushed` with the result once it is
    /// committed. Commits run in message id order on one thread, so whatever
    /// `pushed` does (telling online members) happens in id order too; done
    /// by the callers after `await`, racing tasks could reorder it.
    /// Queues `msg` for the writer; the returned [`Committed`] resolves once
    /// it is stored (or found to be a resend), and `pushed` runs on the
    /// publisher thread right after the COMMIT.
    pub fn queue_message(
        &self,
        msg: NewMessage,
        pushed: impl FnOnce(&Stored) + Send + 'static,
    ) -> impl Future<Output = Result<Committed<Stored>>> + Send + '_ {
        self.queue_then(
            move |c, sends| messages::insert(c, sends, msg, crate::time::now_ms()),
            Box::new(pushed),
        )
    }

    /// Queues an edit, deletion or reaction, like [`Db::queue_message`]:
    /// `pushed` runs on the publisher thread right after the COMMIT, in
    /// commit order with the messages.
    pub fn queue_change(
        &self,
        change: NewChange,
        pushed: impl FnOnce(&Changed) + Send + 'static,
    ) -> impl Future<Output = Result<Committed<Changed>>> + Send + '_ {
        self.queue_then(
            move |c, sends| messages::change(c, sends, change, crate::time::now_ms()),
            Box::new(pushed),
        )
    }

    /// The uids of the members of `gid`, if `me` is one (403/404 otherwise).
    pub async fn member_ids(&self, me: u64, gid: u64) -> Result<Vec<u64>> {
        self.read(move |c| {
            groups::require_member(c, gid, me)?;
            groups::member_ids(c, gid)
        })
        .await
    }

    pub async fn history(&self, me: u64, gid: u64, size: u32, cursor: Cursor) -> Result<History> {
        self.read(move |c| messages::history(c, me, gid, size, cursor))
            .await
    }

    pub async fn chat_list(&self, me: u64, page: u32, size: u32) -> Result<Vec<ChatRow>> {
        self.read(move |c| messages::chat_list(c, me, page, size))
            .await
    }

    /// Marks `gid` read for `me` up to `upto` (or its newest message).
    /// Moves a read mark forward. A receipt that would not move it is
    /// answered from a read and never reaches the writer: a client repeating
    /// one costs a lookup, not a transaction.
    pub async fn mark_read(&self, me: u64, gid: u64, upto: Option<u64>) -> Result<ReadMark> {
        let (target, current) = self
            .read(move |c| messages::read_target(c, me, gid, upto))
            .await?;
        if target <= current {
            return Ok(ReadMark::unmoved(gid, target));
        }
        self.write(move |c| messages::mark_read(c, me, gid, upto))
            .await
    }

    pub async fn mark_delivered(&self, me: u64, session: i64, gid: u64, upto: u64) -> Result<()> {
        self.write(move |c| messages::mark_delivered(c, me, session, gid, upto))
            .await
    }

    /// What a device must be sent at login: everything not yet acknowledged, or
    /// everything after `after` when the client names its cursor.
    pub async fn replay(&self, me: u64, after: Option<u64>, limit: usize) -> Result<Replay> {
        self.read(move |c| messages::replay(c, me, after, limit))
            .await
    }

    /// Searches the messages of `me`'s conversations (or of `gid` only).
    pub async fn search(
        &self,
        me: u64,
        gid: Option<u64>,
        query: crate::search::Query,
        page: u32,
        size: u32,
    ) -> Result<Vec<Hit>> {
        self.read(move |c| search::search(c, me, gid, &query, page, size))
            .await
    }

    // ---- files --------------------------------------------------------------

    /// Bytes of files `uid` has uploaded, for the quota.
    pub async fn quota_used(&self, uid: u64) -> Result<u64> {
        self.read(move |c| files::quota_used(c, uid)).await
    }

    /// Starts an upload; returns the pending file's id.
    pub async fn begin_upload(&self) -> Result<u64> {
        self.write(|c| files::begin(c, crate::time::now_ms())).await
    }

    /// Stores one chunk of a pending upload, in a write of its own so that
    /// messages keep flowing between the chunks of a large file.
    pub async fn put_chunk(&self, file_id: u64, seq: u64, data: Vec<u8>) -> Result<()> {
        self.write(move |c| files::put_chunk(c, file_id, seq, &data))
            .await
    }

    /// Completes an upload (see [`files::finish`]).
    pub async fn finish_upload(
        &self,
        pending: Option<u64>,
        last_seq: u64,
        last: Vec<u8>,
        new: NewFile,
    ) -> Result<FileMeta> {
        self.write(move |c| files::finish(c, pending, last_seq, &last, &new, crate::time::now_ms()))
            .await
    }

    /// Drops a pending upload.
    pub async fn abort_upload(&self, file_id: u64) -> Result<()> {
        self.write(move |c| files::abort(c, file_id)).await
    }

    /// A file `uid` uploaded (404 when none, 403 when someone else's).
    pub async fn uploaded_file(&self, uid: u64, file_id: u64) -> Result<FileMeta> {
        self.read(move |c| files::require_uploader(c, uid, file_id))
            .await
    }

    /// The file, if `uid` may read it.
    pub async fn readable_file(&self, uid: u64, file_id: u64) -> Result<Option<FileMeta>> {
        self.read(move |c| files::readable(c, uid, file_id)).await
    }

    /// Chunk `seq` of a file's bytes.
    pub async fn file_chunk(&self, file_id: u64, seq: u64) -> Result<Vec<u8>> {
        self.read(move |c| files::chunk(c, file_id, seq)).await
    }

    /// Removes the files no message refers to whose last upload is older
    /// than `grace`, one write per file.
    pub async fn collect_files(&self, grace: std::time::Duration) -> Result<Collected> {
        let grace_ms = grace.as_millis() as i64;
        let now = crate::time::now_ms();
        let ids = self
            .read(move |c| files::collectable(c, now, grace_ms))
            .await?;
        let mut done = Collected::default();
        for id in ids {
            if let Some(bytes) = self
                .write(move |c| files::collect(c, id, now, grace_ms))
                .await?
            {
                done.files += 1;
                done.bytes += bytes;
            }
        }
        Ok(done)
    }

    /// Puts the writer in (or out of) read-only mode: while on, every write
    /// fails with 503 "the database is read-only", exactly as when the file
    /// or its disk turns read-only under a running server, and nothing is
    /// acknowledged. For maintenance windows, and the test of that path.
    pub async fn set_read_only(&self, on: bool) -> Result<()> {
        // Outside any transaction: query_only cannot change inside one.
        let sql = if on {
            "PRAGMA query_only = ON"
        } else {
            "PRAGMA query_only = OFF"
        };
        self.setting(Box::new(move |c| c.execute_batch(sql))).await
    }

    /// Changes the size cap of the database while running (0 = none).
    pub async fn set_size_limit(&self, max_mb: u64) -> Result<()> {
        self.inner
            .size_cap
            .store(max_mb.saturating_mul(1 << 20), Ordering::Relaxed);
        self.setting(Box::new(move |c| schema::set_size_limit(c, max_mb)))
            .await
    }

    // ---- Web Push -----------------------------------------------------------

    /// The VAPID private key, made by `generate` and stored at the first
    /// start (the first one stored wins).
    pub async fn vapid_key(
        &self,
        generate: impl FnOnce() -> (Vec<u8>, Vec<u8>) + Send + 'static,
    ) -> Result<Vec<u8>> {
        if let Some(key) = self.read(push::key).await? {
            return Ok(key);
        }
        let (private, public) = generate();
        self.write(move |c| push::ensure_key(c, &private, &public, crate::time::now_ms()))
            .await
    }

    pub async fn subscribe_push(&self, uid: u64, session: i64, sub: NewSubscription) -> Result<()> {
        self.write(move |c| push::subscribe(c, uid, session, &sub, crate::time::now_ms()))
            .await
    }

    pub async fn unsubscribe_push(&self, uid: u64, endpoint: String) -> Result<bool> {
        self.write(move |c| push::unsubscribe(c, uid, &endpoint))
            .await
    }

    /// Removes a subscription whose push service answered that it is gone.
    pub async fn remove_push_subscription(&self, id: i64) -> Result<()> {
        self.write(move |c| push::remove(c, id)).await
    }

    pub async fn push_subscriptions(&self, uid: u64) -> Result<Vec<Subscription>> {
        self.read(move |c| push::of_user(c, uid)).await
    }

    /// Whom a message is pushed to (see [`push::targets`]).
    pub async fn push_targets(
        &self,
        gid: u64,
        sender: u64,
        mentioned: impl Fn(u64) -> bool + Send + 'static,
    ) -> Result<PushTargets> {
        self.read(move |c| push::targets(c, gid, sender, &mentioned))
            .await
    }

    pub async fn set_notify_level(&self, uid: u64, gid: u64, level: NotifyLevel) -> Result<()> {
        self.write(move |c| push::set_level(c, uid, gid, level))
            .await
    }

    pub async fn notify_levels(&self, uid: u64) -> Result<Vec<(u64, NotifyLevel)>> {
        self.read(move |c| push::levels(c, uid)).await
    }

    /// Applies a setting on the writer's connection between batches.
    async fn setting(&self, apply: writer::Setting) -> Result<()> {
        let (tx, rx) = oneshot::channel();
        self.inner
            .writer
            .send(writer::Command::Pragma(apply, tx))
            .await
            .map_err(|_| writer::shutting_down())?;
        rx.await.map_err(|_| writer::shutting_down())?
    }

    /// The bot account and conversation of a bot key's hash.
    pub async fn bot_by_key(&self, key_hash: [u8; 32]) -> Result<Option<(u64, u64)>> {
        self.read(move |c| bots::by_key(c, &key_hash)).await
    }

    // ---- administration -----------------------------------------------------

    /// Creates an account, redeeming the invite with this code hash (if any)
    /// in the same transaction. The first account of the database becomes an
    /// admin.
    pub async fn register(&self, user: NewUser, invite: Option<[u8; 32]>) -> Result<u64> {
        self.write(move |c| {
            admin::register(c, &user, invite.as_ref(), false, crate::time::now_ms())
                .map(|(uid, _)| uid)
        })
        .await
    }

    pub async fn is_admin(&self, uid: u64) -> Result<bool> {
        self.read(move |c| admin::is_admin(c, uid)).await
    }

    pub async fn create_invite(&self, invite: admin::NewInvite) -> Result<()> {
        self.write(move |c| admin::create_invite(c, &invite, crate::time::now_ms()).map(drop))
            .await
    }

    /// Accounts whose sessions the command line revoked after revocation
    /// `after`: (revocation id, uid), oldest first.
    pub async fn revocations_after(&self, after: i64) -> Result<Vec<(i64, u64)>> {
        self.read(move |c| admin::revocations_after(c, after)).await
    }

    pub async fn last_revocation(&self) -> Result<i64> {
        self.read(admin::last_revocation).await
    }

    pub async fn purge_revocations(&self, before: i64) -> Result<usize> {
        self.write(move |c| admin::purge_revocations(c, before))
            .await
    }

    /// The database file's size in bytes, for `/metrics`.
    pub async fn size_bytes(&self) -> Result<u64> {
        self.read(admin::size_bytes).await
    }

    /// A cheap query proving the database answers, for `/healthz`.
    pub async fn ping(&self) -> Result<i64> {
        self.read(|c| Ok(schema::version_of(c)?)).await
    }

    /// Whether the database can be written: a real commit through the
    /// writer that rewrites the schema version with its own value (one page,
    /// synced like any commit), so a read-only file or file system, a full
    /// disk or a failing one shows here. Answered from the last probe when
    /// that is under [`WRITE_PROBE_FRESH`] old, so probes cannot be used to
    /// load the writer.
    pub async fn write_health(&self) -> Result<()> {
        if let Ok(last) = self.inner.write_probe.lock()
            && let Some((at, result)) = &*last
            && at.elapsed() < WRITE_PROBE_FRESH
        {
            return result.clone();
        }
        let result = self
            .write(|c| {
                let version = schema::version_of(c)?;
                c.pragma_update(None, "user_version", version)?;
                Ok(())
            })
            .await;
        if let Ok(mut last) = self.inner.write_probe.lock() {
            *last = Some((std::time::Instant::now(), result.clone()));
        }
        result
    }
}

/// The heap memory SQLite holds in this process, all connections together.
pub fn sqlite_memory_bytes() -> u64 {
    // SAFETY: sqlite3_memory_used only reads SQLite's memory statistics,
    // under its own mutex; it may be called from any thread at any time.
    let used = unsafe { rusqlite::ffi::sqlite3_memory_used() };
    u64::try_from(used).unwrap_or(0)
}

/// How long the answer of a write probe stands (see [`Db::write_health`]).
const WRITE_PROBE_FRESH: Duration = Duration::from_secs(5);

/// The database's idle clock: a small thread that, every half `after`,
/// tells the writer that time has passed (it checkpoints if it has been
/// quiet for `after`: `writer::IdleCheckpoint`) and, when no read has
/// started since its last look, closes the idle readers (the next read
/// opens one again: half a millisecond more for the first read after a
/// quiet spell) and gives the allocator's free memory back. A closed
/// reader frees its page cache, its prepared statements and its copy of
/// the schema: on the 1M-message database, RSS 21.4-23.3 MB after the
/// quiet spell against 22.0-24.2 MB when only their page caches were
/// emptied (`rim-bench`, history, three runs each). It ends with the
/// database (it holds only a `Weak`).
fn idle_clock(inner: Weak<Inner>, after: Duration) -> std::io::Result<()> {
    let period = (after / 2).max(Duration::from_millis(10));
    std::thread::Builder::new()
        .name("rim-idle".into())
        .stack_size(64 * 1024)
        .spawn(move || {
            let mut seen = u64::MAX;
            let mut shrunk = u64::MAX;
            loop {
                std::thread::sleep(period);
                let Some(inner) = inner.upgrade() else { return };
                match inner.writer.try_send(writer::Command::Tick) {
                    Err(mpsc::error::TrySendError::Closed(_)) => return,
                    // A full queue is not idle.
                    Ok(()) | Err(mpsc::error::TrySendError::Full(_)) => {}
                }
                let reads = inner.reads.load(Ordering::Relaxed);
                if reads == seen && reads != shrunk {
                    shrunk = reads;
                    // Closed outside the pool's lock, which a read waits for.
                    let idle = inner
                        .readers
                        .lock()
                        .map(|mut pool| std::mem::take(&mut *pool));
                    drop(idle);
                    crate::malloc::give_back_memory();
                }
                seen = reads;
            }
        })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes a rim database of schema `version` at `path`: the migrations
    /// up to it, its identity, then `rows`.
    fn old_file(path: &Path, version: usize, rows: &str) {
        let c = Connection::open(path).unwrap();
        for sql in &schema::MIGRATIONS[..version] {
            c.execute_batch(sql).unwrap();
        }
        c.execute_batch(&format!(
            "PRAGMA application_id = {}; PRAGMA user_version = {version};",
            schema::APPLICATION_ID
        ))
        .unwrap();
        c.execute_batch(rows).unwrap();
    }

    fn options(dir: &Path) -> Options {
        Options {
            path: dir.join("t.db"),
            synchronous: crate::config::Synchronous::Normal,
            checkpoints: crate::config::Checkpointer::Rim,
            read_connections: 2,
            writer_batch: 16,
            writer_queue: 16,
            max_group_members: 10,
            max_db_mb: 0,
            checkpoint_idle: None,
        }
    }

    /// The writer replaces SQLite's automatic checkpoint with its own: the
    /// WAL must still be copied back and started over, not grow without end.
    #[tokio::test]
    async fn the_writer_keeps_the_wal_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&options(dir.path())).unwrap();
        let blob = "x".repeat(3000);
        // About 6,000 pages of WAL in all: one page of row data and a few
        // of index each, one write at a time (an idle writer).
        for i in 0..1500 {
            db.create_user(NewUser {
                account: format!("user{i}"),
                name: blob.clone(),
                avatar: String::new(),
                email: String::new(),
                password_hash: "x".into(),
            })
            .await
            .unwrap();
        }
        let wal = std::fs::metadata(dir.path().join("t.db-wal"))
            .unwrap()
            .len();
        let page = 4096 + 24;
        assert!(
            wal < (writer::CHECKPOINT_IDLE_PAGES as u64 + 200) * page,
            "the WAL grew to {wal} bytes"
        );
        db.close().await;
    }

    /// With Litestream and `synchronous = "full"` the writer syncs the WAL
    /// itself after COMMIT, so its connection runs at NORMAL; otherwise
    /// SQLite's own setting stays. Either way the writes are acknowledged,
    /// and the WAL holds them.
    #[tokio::test]
    async fn with_litestream_the_wal_is_synced_after_commit_not_inside_it() {
        use crate::config::{Checkpointer, Synchronous};
        for (checkpoints, synchronous, expected) in [
            (Checkpointer::Litestream, Synchronous::Full, 1),
            (Checkpointer::Rim, Synchronous::Full, 2),
            (Checkpointer::Litestream, Synchronous::Normal, 1),
        ] {
            let dir = tempfile::tempdir().unwrap();
            let db = Db::open(&Options {
                checkpoints,
                synchronous,
                ..options(dir.path())
            })
            .unwrap();
            let level: i64 = db
                .write(|c| Ok(c.query_row("PRAGMA synchronous", [], |r| r.get(0))?))
                .await
                .unwrap();
            assert_eq!(level, expected, "{checkpoints:?} {synchronous:?}");
            db.create_user(NewUser {
                account: "alice".into(),
                name: "Alice".into(),
                avatar: String::new(),
                email: String::new(),
                password_hash: "x".into(),
            })
            .await
            .unwrap();
            db.close().await;
        }
    }

    /// With Litestream checkpointing, neither the writer nor SQLite's
    /// automatic checkpoint (at 1,000 pages) may copy the WAL back: the same
    /// writes that the test above keeps within a few hundred pages stay in
    /// the WAL, every frame of them, until Litestream checkpoints.
    #[tokio::test]
    async fn with_litestream_the_writer_leaves_the_wal_alone() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&Options {
            checkpoints: crate::config::Checkpointer::Litestream,
            ..options(dir.path())
        })
        .unwrap();
        let blob = "x".repeat(3000);
        for i in 0..1500 {
            db.create_user(NewUser {
                account: format!("user{i}"),
                name: blob.clone(),
                avatar: String::new(),
                email: String::new(),
                password_hash: "x".into(),
            })
            .await
            .unwrap();
        }
        // About 6,000 pages were written; a checkpoint at 1,000 (SQLite's)
        // or a few hundred (the writer's) would have started the WAL over.
        let wal = std::fs::metadata(dir.path().join("t.db-wal"))
            .unwrap()
            .len();
        let page = 4096 + 24;
        assert!(
            wal > 3000 * page,
            "the WAL is {wal} bytes: something checkpointed it"
        );
        db.close().await;
    }

    #[tokio::test]
    async fn a_panicking_job_fails_alone_and_the_writer_goes_on() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&options(dir.path())).unwrap();
        let failed = db.write(|_| -> Result<()> { panic!("boom") }).await;
        assert_eq!(failed.unwrap_err().code(), 500);
        let read = db.read(|_| -> Result<()> { panic!("boom") }).await;
        assert_eq!(read.unwrap_err().code(), 500);
        // Both sides still work afterwards.
        let uid = db
            .create_user(NewUser {
                account: "alice".into(),
                name: "Alice".into(),
                avatar: String::new(),
                email: String::new(),
                password_hash: "x".into(),
            })
            .await
            .unwrap();
        assert_eq!(db.user(uid).await.unwrap().unwrap().account, "alice");
        db.close().await;
        assert_eq!(db.ping().await.unwrap(), schema::SCHEMA_VERSION);
        assert!(
            db.purge_expired_sessions().await.is_err(),
            "writes fail after close"
        );
    }

    #[tokio::test]
    async fn a_checks_first_job_that_fails_after_writing_keeps_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&options(dir.path())).unwrap();
        let failed = db
            .queue_then(
                |c, _| -> Result<()> {
                    c.execute(
                        "INSERT INTO users (account, name, password_hash, created_at) VALUES ('ghost', 'g', 'x', 0)",
                        [],
                    )?;
                    Err(Error::Full("pretend the disk filled up".into()))
                },
                Box::new(|_| panic!("no after-commit hook for a failed job")),
            )
            .await
            .unwrap()
            .await;
        assert_eq!(failed.unwrap_err().code(), 507);
        assert!(db.user_by_account("ghost".into()).await.unwrap().is_none());
        // A checks-first job failing before it writes leaves the batch alone.
        let refused = db
            .queue_then(
                |_, _| -> Result<()> { Err(Error::forbidden("no")) },
                Box::new(|_| {}),
            )
            .await
            .unwrap()
            .await;
        assert_eq!(refused.unwrap_err().code(), 403);
        assert!(db.purge_expired_sessions().await.is_ok());
    }

    /// Alice, Bob and Carol, and a group of Alice's with Bob in it.
    async fn alice_bob_and_carol(db: &Db) -> (Vec<u64>, u64) {
        let mut uids = Vec::new();
        for account in ["alice", "bob", "carol"] {
            uids.push(
                db.create_user(NewUser {
                    account: account.into(),
                    name: account.into(),
                    avatar: String::new(),
                    email: String::new(),
                    password_hash: "x".into(),
                })
                .await
                .unwrap(),
            );
        }
        // Only friends can be put in a group.
        for other in [uids[1], uids[2]] {
            db.friend_request(uids[0], other).await.unwrap();
            db.friend_accept(other, uids[0]).await.unwrap();
        }
        let gid = db
            .create_group(
                uids[0],
                "club".into(),
                String::new(),
                vec![(uids[1], Role::Member)],
            )
            .await
            .unwrap();
        (uids, gid)
    }

    /// A batch's messages reach the full-text index through the writer's
    /// queue at COMMIT: all of them, and only those that were stored.
    #[tokio::test]
    async fn every_message_of_a_batch_is_indexed_at_its_commit() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&options(dir.path())).unwrap();
        let (uids, gid) = alice_bob_and_carol(&db).await;
        let send = |uid: u64, n: usize| {
            db.send_message(NewMessage {
                gid,
                uid,
                kind: Kind::Text,
                content: format!("wombat number {n}"),
                client_msg_id: format!("c{n}"),
                file: None,
                reply_to: None,
            })
        };
        // Queued at once, so they share batches; carol is not a member.
        let sent = futures_util::future::join_all(
            (0..40).map(|n| send(uids[if n == 17 { 2 } else { n % 2 }], n)),
        )
        .await;
        assert_eq!(sent.iter().filter(|r| r.is_ok()).count(), 39);
        let query = crate::search::Query::parse("wombat").unwrap();
        let hits = db.search(uids[0], Some(gid), query, 1, 100).await.unwrap();
        assert_eq!(hits.len(), 39);
        assert!(hits.iter().all(|h| h.message.content != "wombat number 17"));
        db.close().await;
    }

    /// A batch's messages move their conversation's positions before any
    /// other write of the batch runs: a member added right after a message,
    /// in the same batch, starts after it (nothing unread), and the sender
    /// has read their own message.
    #[tokio::test]
    async fn other_writes_in_a_batch_see_the_messages_before_them() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&options(dir.path())).unwrap();
        let (uids, gid) = alice_bob_and_carol(&db).await;
        let message = NewMessage {
            gid,
            uid: uids[0],
            kind: Kind::Text,
            content: "before carol".into(),
            client_msg_id: "c1".into(),
            file: None,
            reply_to: None,
        };
        // Queued in this order, so that they share a batch.
        let (sent, added) = tokio::join!(
            db.send_message(message),
            db.change_members(uids[0], gid, vec![uids[2]], MemberOp::Add),
        );
        let id = sent.unwrap().message.id;
        added.unwrap();
        let members = db.group_members(uids[0], gid).await.unwrap();
        let read = |uid: u64| members.iter().find(|m| m.user.id == uid).unwrap().read_id;
        assert_eq!(read(uids[0]), id);
        assert_eq!(read(uids[1]), 0);
        assert_eq!(read(uids[2]), id);
        db.close().await;
    }

    /// A file written by a rim of schema version 3 (the resend index, FTS5's
    /// own merging) opens, migrates, and keeps recognising its messages:
    /// a resend of an old message from the day is not stored again, and
    /// the old message is still found by search.
    #[tokio::test]
    async fn a_version_3_file_migrates_and_keeps_its_resends_and_index() {
        let dir = tempfile::tempdir().unwrap();
        let opts = options(dir.path());
        let now = crate::time::now_ms();
        old_file(
            &opts.path,
            3,
            &format!(
                "INSERT INTO users (id, account, name, password_hash, created_at)
                     VALUES (1, 'alice', 'Alice', 'x', {now}), (2, 'bob', 'Bob', 'x', {now});
                 INSERT INTO groups (id, name, mode, creator_uid, created_at, last_msg_id)
                     VALUES (1, 'club', 0, 1, {now}, 1);
                 INSERT INTO members (gid, uid, role, joined_at) VALUES (1, 1, 2, {now}), (1, 2, 1, {now});
                 INSERT INTO messages (id, gid, uid, kind, content, client_msg_id, created_at, updated_at)
                     VALUES (1, 1, 1, 0, 'wombat picnic', 'old-1', {now}, {now});
                 INSERT INTO message_index (rowid, body, scope) VALUES (1, 'wombat picnic', 'g1');",
            ),
        );
        let db = Db::open(&opts).unwrap();
        assert_eq!(db.ping().await.unwrap(), schema::SCHEMA_VERSION);
        let resend = db
            .send_message(NewMessage {
                gid: 1,
                uid: 1,
                kind: Kind::Text,
                content: "wombat picnic".into(),
                client_msg_id: "old-1".into(),
                file: None,
                reply_to: None,
            })
            .await
            .unwrap();
        assert!(resend.duplicate);
        assert_eq!(resend.message.id, 1);
        let query = crate::search::Query::parse("wombat").unwrap();
        let hits = db.search(2, Some(1), query, 1, 10).await.unwrap();
        assert_eq!(hits.len(), 1);
        db.close().await;
        let c = Connection::open(&opts.path).unwrap();
        let dedup: i64 = c
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE name = 'messages_dedup'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(dedup, 0);
    }

    /// A file of schema version 10 (the index with one `scope` token per
    /// message) migrates to the index of marked words, which starts empty:
    /// its messages are indexed again before the database opens, and found,
    /// phrases and Chinese included; a deleted message stays out, and a
    /// message without words is not indexed twice.
    #[tokio::test]
    async fn a_version_10_file_is_indexed_again_and_its_messages_found() {
        let dir = tempfile::tempdir().unwrap();
        let opts = options(dir.path());
        let now = crate::time::now_ms();
        old_file(
            &opts.path,
            10,
            &format!(
                "INSERT INTO users (id, account, name, password_hash, created_at)
                     VALUES (1, 'alice', 'Alice', 'x', {now}), (2, 'bob', 'Bob', 'x', {now});
                 INSERT INTO groups (id, name, mode, creator_uid, created_at, last_msg_id)
                     VALUES (1, 'club', 0, 1, {now}, 5), (2, 'other', 0, 1, {now}, 4);
                 INSERT INTO members (gid, uid, role, joined_at)
                     VALUES (1, 1, 2, {now}), (1, 2, 1, {now}), (2, 1, 2, {now});
                 INSERT INTO messages (id, gid, uid, kind, content, client_msg_id, created_at, updated_at)
                     VALUES (1, 1, 1, 0, 'wombat picnic on Sunday', 'old-1', {now}, {now}),
                            (2, 1, 1, 0, 'wifi密码是1234', 'old-2', {now}, {now}),
                            (3, 1, 1, 0, '', 'old-3', {now}, {now}),
                            (4, 2, 1, 0, 'wombat picnic elsewhere', 'old-4', {now}, {now}),
                            (5, 1, 1, 0, '!!!', 'old-5', {now}, {now});
                 UPDATE messages SET deleted_at = {now} WHERE id = 3;
                 INSERT INTO message_index (rowid, body, scope) VALUES
                     (1, 'wombat picnic on Sunday', 'g1'), (2, 'wifi 密码 码是 是 1234', 'g1'),
                     (4, 'wombat picnic elsewhere', 'g2'), (5, '!!!', 'g1');",
            ),
        );
        let db = Db::open(&opts).unwrap();
        assert_eq!(db.ping().await.unwrap(), schema::SCHEMA_VERSION);
        let ids = |hits: Vec<search::Hit>| hits.iter().map(|h| h.message.id).collect::<Vec<_>>();
        let find = |uid: u64, gid: Option<u64>, q: &str| {
            let query = crate::search::Query::parse(q).unwrap();
            db.search(uid, gid, query, 1, 10)
        };
        // Bob is in conversation 1 only; Alice in both.
        assert_eq!(
            ids(find(2, None, "\"wombat picnic\"").await.unwrap()),
            vec![1]
        );
        assert_eq!(
            ids(find(1, None, "wombat picnic").await.unwrap()),
            vec![4, 1]
        );
        assert_eq!(ids(find(1, Some(2), "picnic").await.unwrap()), vec![4]);
        assert_eq!(ids(find(2, None, "密码").await.unwrap()), vec![2]);
        assert_eq!(ids(find(2, None, "密").await.unwrap()), vec![2]);
        assert!(find(2, None, "elsewhere").await.unwrap().is_empty());
        db.close().await;
        // The newest message has no words but an index row all the same:
        // the next start indexes nothing twice.
        Db::open(&opts).unwrap().close().await;
        let c = Connection::open(&opts.path).unwrap();
        let marked: Vec<i64> = c
            .prepare("SELECT rowid FROM message_index WHERE message_index MATCH 'scoped : g1xwombat OR scoped : g2xwombat' ORDER BY rowid")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert_eq!(marked, vec![1, 4]);
        let rows: i64 = c
            .query_row("SELECT count(*) FROM message_index", [], |r| r.get(0))
            .unwrap();
        assert_eq!(rows, 4, "messages 1, 2, 4 and 5, not the deleted one");
    }

    #[tokio::test]
    async fn a_failing_job_rolls_back_only_its_own_changes() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&options(dir.path())).unwrap();
        let new = |account: &str| NewUser {
            account: account.into(),
            name: account.into(),
            avatar: String::new(),
            email: String::new(),
            password_hash: "x".into(),
        };
        // Queue several jobs at once so they share a batch; the duplicate fails.
        let (a, b, c) = tokio::join!(
            db.create_user(new("alice")),
            db.create_user(new("ALICE")),
            db.create_user(new("bob")),
        );
        assert!(a.is_ok());
        assert_eq!(b.unwrap_err().code(), 409);
        assert!(c.is_ok());
        assert!(db.user_by_account("bob".into()).await.unwrap().is_some());
    }
}
