//! The single writer thread: owns the one read-write connection and commits
//! queued writes in batches (group commit).
//!
//! Every write is a job sent over a bounded queue. The thread takes the first
//! waiting job, then whatever else is already queued (up to the batch size),
//! runs each inside its own SAVEPOINT so one failing job rolls back alone, and
//! commits the lot in one transaction: one fsync for the whole batch. Only after
//! COMMIT returns does any job's caller get its result, so "acknowledged" always
//! means "on disk". If the commit fails (disk full, read-only file) every job in
//! the batch gets that error and nothing of the batch is kept.
//!
//! A committed batch goes to a second thread, the publisher, which runs the
//! batch's after-commit hooks (the pushes of new messages) and then hands out
//! its results, in commit order, while the writer is already running the next
//! batch. Message jobs check everything before they write and run without a
//! savepoint (see [`Job::checks_first`]).

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rusqlite::Connection;
use tokio::sync::{mpsc, oneshot};

use super::messages::Sends;
use crate::config::Checkpointer;
use crate::error::{Error, Result};

/// One queued write, type-erased so the queue can carry any result type.
pub(super) trait Job: Send {
    /// Runs the job inside the batch transaction, with the writer's state for
    /// message sends. Returns false when the job failed and its savepoint
    /// must be rolled back.
    fn run(&mut self, conn: &Connection, sends: &mut Sends) -> bool;
    /// The job's error, if it ran and failed.
    fn error(&self) -> Option<Error>;
    /// True for a job that does all its checks before its first write, so
    /// that it can only fail after writing through a storage failure. Such a
    /// job runs without a savepoint (which would copy every page it touches
    /// into the statement journal); if it ever fails after writing, the
    /// whole batch is rolled back instead.
    fn checks_first(&self) -> bool {
        false
    }
    /// Runs the job's after-commit hook, if it has one and the batch was
    /// committed (see [`ClosureJob::with_after`]).
    fn publish(&mut self) {}
    /// Hands the job's result to its caller once the batch's fate is known.
    fn finish(self: Box<Self>, commit: Result<()>);
}

/// A change of the writer connection's settings.
pub(super) type Setting = Box<dyn FnOnce(&Connection) -> rusqlite::Result<()> + Send>;

pub(super) enum Command {
    Job(Box<dyn Job>),
    /// Finish everything queued before this, then stop the thread.
    Stop(oneshot::Sender<()>),
    /// Run a connection setting between batches (outside any transaction,
    /// and whatever room `storage.max_db_mb` leaves: lifting the cap must
    /// work when it is reached).
    Pragma(Setting, oneshot::Sender<Result<()>>),
    /// Time has passed: checkpoint if the writer has been idle long enough
    /// (see [`IdleCheckpoint`]). Sent by the database's idle clock.
    Tick,
}

/// Runs on the publisher thread, in commit order, with a job's result once
/// it is committed.
pub(super) type AfterCommit<R> = Box<dyn FnOnce(&R) + Send>;

/// A job built from a closure; its result waits in `result` until the commit.
pub(super) struct ClosureJob<F, R> {
    f: Option<F>,
    result: Option<Result<R>>,
    after: Option<AfterCommit<R>>,
    checks_first: bool,
    reply: oneshot::Sender<Result<R>>,
}

impl<F, R> ClosureJob<F, R> {
    pub(super) fn new(f: F, reply: oneshot::Sender<Result<R>>) -> Self {
        ClosureJob {
            f: Some(f),
            result: None,
            after: None,
            checks_first: false,
            reply,
        }
    }

    /// A job whose committed result is also handed to `after`, on the
    /// publisher thread and so in commit order, before its caller gets it.
    pub(super) fn with_after(
        f: F,
        after: AfterCommit<R>,
        reply: oneshot::Sender<Result<R>>,
    ) -> Self {
        ClosureJob {
            after: Some(after),
            ..ClosureJob::new(f, reply)
        }
    }

    /// Marks the job as one that checks everything before it writes (see
    /// [`Job::checks_first`]).
    pub(super) fn checking_first(mut self) -> Self {
        self.checks_first = true;
        self
    }
}

impl<F, R> Job for ClosureJob<F, R>
where
    F: FnOnce(&Connection, &mut Sends) -> Result<R> + Send,
    R: Send,
{
    fn run(&mut self, conn: &Connection, sends: &mut Sends) -> bool {
        let Some(f) = self.f.take() else {
            return false;
        };
        // A panic in one job must not take the writer (and with it every
        // client) down: it becomes that job's error and its savepoint is undone.
        let result = match std::panic::catch_unwind(AssertUnwindSafe(|| f(conn, sends))) {
            Ok(result) => result,
            Err(_) => {
                crate::log_error!("panic in a write job");
                Err(Error::Internal("internal error while writing".into()))
            }
        };
        let ok = result.is_ok();
        self.result = Some(result);
        ok
    }

    fn error(&self) -> Option<Error> {
        self.result.as_ref().and_then(|r| r.as_ref().err().cloned())
    }

    fn checks_first(&self) -> bool {
        self.checks_first
    }

    fn publish(&mut self) {
        if let (Some(Ok(result)), Some(after)) = (&self.result, self.after.take()) {
            // Like a job, a panicking hook must not take the writer down.
            if std::panic::catch_unwind(AssertUnwindSafe(|| after(result))).is_err() {
                crate::log_error!("panic after a write job");
            }
        }
    }

    fn finish(self: Box<Self>, commit: Result<()>) {
        let outcome = match (commit, self.result) {
            (Err(e), _) => Err(e),
            (Ok(()), Some(result)) => result,
            (Ok(()), None) => Err(Error::Internal("write job was not run".into())),
        };
        let _ = self.reply.send(outcome);
    }
}

/// Statistics the writer keeps about itself, read by benchmarks and metrics.
#[derive(Debug, Default, Clone, Copy)]
pub struct WriterStats {
    pub batches: u64,
    pub jobs: u64,
    pub failed_commits: u64,
    pub largest_batch: u64,
    /// Batches by job count: `batch_sizes[i]` counts those with at most
    /// `BATCH_SIZE_BOUNDS[i]` jobs (and more than the bound before); the last
    /// slot counts larger ones.
    pub batch_sizes: [u64; BATCH_SIZE_BOUNDS.len() + 1],
    /// Batches by the time from BEGIN to the end of COMMIT (fsync included),
    /// bucketed like `batch_sizes` by `COMMIT_MICROS_BOUNDS`.
    pub commit_micros: [u64; COMMIT_MICROS_BOUNDS.len() + 1],
    pub commit_micros_total: u64,
}

/// Upper bounds of the batch size buckets of [`WriterStats`].
pub const BATCH_SIZE_BOUNDS: [u64; 11] = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024];
/// Upper bounds, in microseconds, of the commit time buckets of [`WriterStats`].
pub const COMMIT_MICROS_BOUNDS: [u64; 12] = [
    100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 1_000_000,
];

/// The bucket of `value` among ascending upper `bounds` (`bounds.len()` = over all).
fn bucket(bounds: &[u64], value: u64) -> usize {
    bounds.partition_point(|&b| b < value)
}

/// WAL pages at which a writer with nothing waiting checkpoints. A quarter of
/// SQLite's default: each checkpoint, and the wait of the writes that arrive
/// meanwhile, stays short (ack p99 at 5,000 msgs/s in `rim-bench`: 1.4-1.6 ms
/// against 2.4-4.5 ms at 1,000 pages, for the same CPU).
pub(super) const CHECKPOINT_IDLE_PAGES: usize = 256;
/// WAL pages at which a writer with writes waiting checkpoints anyway.
const CHECKPOINT_BUSY_PAGES: usize = 8192;

/// WAL checkpoints, taken out of the commits. SQLite's automatic checkpoint
/// runs inside the COMMIT that takes the WAL past 1,000 pages, so every ack
/// of that batch also waits for the WAL to be copied into the database file
/// and synced. The writer turns it off (by installing its own WAL hook,
/// which counts the pages) and checkpoints between batches instead, once the
/// last batch is on its way to the publisher: at
/// [`CHECKPOINT_IDLE_PAGES`] when no write is waiting, and at
/// [`CHECKPOINT_BUSY_PAGES`] while writes keep queuing, so that a saturated
/// writer copies each hot page (an index leaf, a conversation's row) back once
/// per 8,192 pages of WAL rather than once per few hundred. Between transactions on
/// the writer's own connection, a PASSIVE checkpoint that copies everything
/// lets the next commit start the WAL file over, as the automatic one does.
/// (A checkpoint thread of its own was measured worse here: its syncs of the
/// database file delayed the commits' syncs of the WAL.)
///
/// With `storage.checkpoints = "litestream"` none of this runs: Litestream
/// holds a read transaction between its own checkpoints, copies the WAL to
/// its replica, then checkpoints itself; rim's writer neither checkpoints
/// nor lets SQLite do it ([`Settings::checkpoints`]).
struct Checkpoints {
    /// Pages in the WAL after the last commit, as the hook reported them.
    pages: Arc<AtomicUsize>,
}

impl Checkpoints {
    fn install(conn: &mut Connection) -> rusqlite::Result<Checkpoints> {
        let pages = Arc::new(AtomicUsize::new(0));
        let seen = pages.clone();
        conn.wal_hook(Some(
            move |_: &mut rusqlite::hooks::Wal, n: std::ffi::c_int| {
                seen.store(n.max(0) as usize, Ordering::Relaxed);
                Ok(())
            },
        ))?;
        Ok(Checkpoints { pages })
    }

    /// Checkpoints if the WAL has grown past the threshold for a writer that
    /// is `busy` (has writes waiting) or not.
    fn after_batch(&self, conn: &Connection, busy: bool) {
        let pages = self.pages.load(Ordering::Relaxed);
        let threshold = if busy {
            CHECKPOINT_BUSY_PAGES
        } else {
            CHECKPOINT_IDLE_PAGES
        };
        if pages < threshold {
            return;
        }
        // Counted again by the next commit: small if the WAL started over,
        // as large as before if a reader kept it from being copied whole.
        self.pages.store(0, Ordering::Relaxed);
        if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
            crate::log_warn!("wal checkpoint failed", pages = pages, error = e);
        }
    }
}

/// The idle checkpoint: once no write has come for `after`, the writer
/// copies the whole WAL into the database and truncates it to nothing
/// (`wal_checkpoint(TRUNCATE)`), and gives SQLite's cache and the
/// allocator's free pages back to the system. Under load the WAL grows to
/// [`CHECKPOINT_BUSY_PAGES`] (32 MiB) and `journal_size_limit` trims it to
/// 4 MiB only when the next write starts it over; without this, a server
/// that went quiet after a burst kept 34 MB of WAL on disk and its caches
/// full. Runs once per quiet spell, on a [`Command::Tick`].
///
/// This is the one place where the writer checkpoints on its own account
/// besides [`Checkpoints`]. With Litestream (`truncate` = false) it only
/// gives the memory back; `after` = None (`storage.checkpoint_idle_ms` = 0)
/// turns it off altogether.
pub(super) struct IdleCheckpoint {
    after: Option<Duration>,
    /// False with Litestream, which owns the WAL: the caches are still
    /// given back, the WAL left alone.
    truncate: bool,
    last_write: Instant,
    /// Written to since the last idle checkpoint.
    dirty: bool,
}

impl IdleCheckpoint {
    pub(super) fn new(after: Option<Duration>, by: Checkpointer) -> IdleCheckpoint {
        IdleCheckpoint {
            after,
            truncate: by == Checkpointer::Rim,
            last_write: Instant::now(),
            dirty: true,
        }
    }

    fn wrote(&mut self) {
        self.last_write = Instant::now();
        self.dirty = true;
    }

    fn tick(&mut self, conn: &Connection) {
        let Some(after) = self.after else { return };
        if !self.dirty || self.last_write.elapsed() < after {
            return;
        }
        // (busy, WAL frames, frames checkpointed); busy = 1 when a reader's
        // snapshot kept the WAL from being reset: tried again on a later tick.
        let checkpoint = || conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get(0));
        match self.truncate.then(checkpoint) {
            None | Some(Ok(0)) => self.dirty = false,
            Some(Ok(_)) => return,
            Some(Err(e)) => {
                crate::log_warn!("idle wal checkpoint failed", error = e);
                self.dirty = false;
            }
        }
        let _ = conn.execute_batch("PRAGMA shrink_memory;");
        crate::malloc::give_back_memory();
    }
}

/// The writer's checkpoints: those under load (None when SQLite's own
/// automatic checkpoint had to stay on) and the idle one.
struct Upkeep {
    checkpoints: Option<Checkpoints>,
    idle: IdleCheckpoint,
    size_cap: Arc<AtomicU64>,
    /// The WAL the writer syncs itself after each COMMIT (see
    /// [`sync_after_commit`]); `None` when SQLite's COMMIT syncs it.
    sync_wal: Option<std::path::PathBuf>,
}

/// Committed batches that may wait for the publisher. When it falls this far
/// behind, the writer waits to hand over its next committed batch and
/// commits nothing more meanwhile (its own queue then fills and senders get
/// back-pressure), rather than holding results without end.
const PUBLISH_QUEUE: usize = 64;

/// The publisher thread (see the module documentation) and the channel to
/// it. Started before the writer, so that a server that cannot start it
/// does not start at all.
pub(super) struct Publisher {
    to: std::sync::mpsc::SyncSender<Outcome>,
    thread: std::thread::JoinHandle<()>,
}

impl Publisher {
    pub(super) fn start() -> std::io::Result<Publisher> {
        let (to, outcomes) = std::sync::mpsc::sync_channel(PUBLISH_QUEUE);
        let thread = std::thread::Builder::new()
            .name("rim-publish".into())
            .spawn(move || publish(outcomes))?;
        Ok(Publisher { to, thread })
    }

    /// Waits until every result handed over so far is out.
    fn finish(self) {
        drop(self.to);
        let _ = self.thread.join();
    }
}

/// How the writer thread works, from the configuration.
pub(super) struct Settings {
    /// Writes committed in one transaction at most.
    pub batch_max: usize,
    /// Whether the writer checkpoints the WAL or leaves it to Litestream.
    pub checkpoints: Checkpointer,
    /// `storage.max_db_mb` in bytes (0 = none), as changed while running.
    pub size_cap: Arc<AtomicU64>,
    /// `storage.synchronous`: whether every COMMIT is on disk before its
    /// results are given.
    pub synchronous: crate::config::Synchronous,
}

pub(super) fn run(
    mut conn: Connection,
    mut sends: Sends,
    rx: mpsc::Receiver<Command>,
    settings: Settings,
    stats: Arc<Mutex<WriterStats>>,
    publisher: Publisher,
    idle: IdleCheckpoint,
) {
    let checkpoints = match settings.checkpoints {
        Checkpointer::Rim => match Checkpoints::install(&mut conn) {
            Ok(c) => Some(c),
            Err(e) => {
                crate::log_warn!("cannot watch the WAL; SQLite checkpoints it", error = e);
                None
            }
        },
        // Litestream checkpoints (after copying the WAL to its replica);
        // the writer and SQLite never do. Should turning SQLite's automatic
        // checkpoint off fail, the WAL still only grows until Litestream's
        // next checkpoint, so the server goes on.
        Checkpointer::Litestream => {
            if let Err(e) = super::schema::set_checkpointer(&conn, Checkpointer::Litestream) {
                crate::log_warn!("cannot turn off SQLite's automatic checkpoint", error = e);
            }
            crate::log_info!("WAL checkpoints left to Litestream");
            None
        }
    };
    let sync_wal = sync_after_commit(&conn, &settings);
    let stop = write(
        &conn,
        &mut sends,
        rx,
        settings.batch_max,
        &stats,
        &publisher.to,
        &mut Upkeep {
            checkpoints,
            idle,
            size_cap: settings.size_cap.clone(),
            sync_wal,
        },
    );
    publisher.finish();
    match settings.checkpoints {
        // Leave everything in the database file itself, so that a stopped
        // server's rim.db can be copied on its own (see the README).
        Checkpointer::Rim => {
            let _ = conn.execute_batch("PRAGMA optimize; PRAGMA wal_checkpoint(TRUNCATE);");
        }
        // Not with Litestream: its read transaction, held between its own
        // checkpoints, would keep a TRUNCATE checkpoint waiting out the
        // busy timeout, and the WAL is what it replicates from.
        Checkpointer::Litestream => {
            let _ = conn.execute_batch("PRAGMA optimize;");
        }
    }
    drop(conn);
    if let Some(done) = stop {
        let _ = done.send(());
    }
}

/// What the writer hands to the publisher thread, in commit order.
enum Outcome {
    /// A batch and the fate of its transaction.
    Batch(Vec<Box<dyn Job>>, Result<()>),
    /// The answer to a [`Command::Pragma`].
    Setting(oneshot::Sender<Result<()>>, Result<()>),
}

/// The writer's loop: forms batches, commits them, and hands each committed
/// batch to `publish` (through `out`) so that the next batch can start while
/// the last one's pushes and replies go out; then checkpoints when due.
/// Returns the Stop command's reply.
fn write(
    conn: &Connection,
    sends: &mut Sends,
    mut rx: mpsc::Receiver<Command>,
    batch_max: usize,
    stats: &Mutex<WriterStats>,
    out: &std::sync::mpsc::SyncSender<Outcome>,
    upkeep: &mut Upkeep,
) -> Option<oneshot::Sender<()>> {
    let mut stop: Option<oneshot::Sender<()>> = None;
    let mut pragma: Option<(Setting, oneshot::Sender<Result<()>>)> = None;
    while stop.is_none() {
        let mut batch: Vec<Box<dyn Job>> = Vec::with_capacity(batch_max.min(64));
        match rx.blocking_recv() {
            Some(Command::Job(job)) => batch.push(job),
            Some(Command::Stop(done)) => stop = Some(done),
            Some(Command::Pragma(sql, reply)) => pragma = Some((sql, reply)),
            Some(Command::Tick) => {
                upkeep.idle.tick(conn);
                continue;
            }
            None => break,
        }
        while batch.len() < batch_max && stop.is_none() && pragma.is_none() {
            match rx.try_recv() {
                Ok(Command::Job(job)) => batch.push(job),
                Ok(Command::Stop(done)) => stop = Some(done),
                Ok(Command::Pragma(sql, reply)) => pragma = Some((sql, reply)),
                // Not idle: a write came with it.
                Ok(Command::Tick) => {}
                Err(_) => break,
            }
        }
        // A setting applies after the writes queued before it, and before
        // those queued after it.
        let setting = pragma.take();
        if !batch.is_empty() || setting.is_some() {
            upkeep.idle.wrote();
        }
        if !batch.is_empty() {
            let cap = upkeep.size_cap.load(Ordering::Relaxed);
            fit_to_size_cap(conn, cap, upkeep.idle.truncate);
            let committed =
                commit_and_count(conn, sends, &mut batch, stats, upkeep.sync_wal.as_deref());
            let _ = out.send(Outcome::Batch(batch, committed));
        }
        if let Some((apply, reply)) = setting {
            let applied = apply(conn).map_err(Error::from);
            let _ = out.send(Outcome::Setting(reply, applied));
        }
        if let Some(checkpoints) = &upkeep.checkpoints {
            checkpoints.after_batch(conn, !rx.is_empty());
        }
    }
    // Close the queue so late writers get an error instead of waiting, then
    // answer whatever slipped in before the close.
    rx.close();
    while let Ok(cmd) = rx.try_recv() {
        if let Command::Job(job) = cmd {
            job.finish(Err(shutting_down()));
        }
    }
    stop
}

/// Commits one batch and records it in the writer's statistics.
fn commit_and_count(
    conn: &Connection,
    sends: &mut Sends,
    batch: &mut [Box<dyn Job>],
    stats: &Mutex<WriterStats>,
    sync_wal: Option<&std::path::Path>,
) -> Result<()> {
    let started = Instant::now();
    let size = batch.len() as u64;
    let committed = commit_batch(conn, sends, batch, sync_wal);
    let micros = started.elapsed().as_micros() as u64;
    if let Ok(mut s) = stats.lock() {
        s.batches += 1;
        s.jobs += size;
        s.largest_batch = s.largest_batch.max(size);
        s.batch_sizes[bucket(&BATCH_SIZE_BOUNDS, size)] += 1;
        s.commit_micros[bucket(&COMMIT_MICROS_BOUNDS, micros)] += 1;
        s.commit_micros_total += micros;
        if committed.is_err() {
            s.failed_commits += 1;
        }
    }
    if let Err(e) = &committed {
        crate::log_warn!("write batch failed", jobs = size, error = e);
    }
    crate::log_debug!("write batch", jobs = size, us = micros);
    committed
}

/// The publisher thread: hands out each batch's results in commit order
/// until the writer is gone.
fn publish(outcomes: std::sync::mpsc::Receiver<Outcome>) {
    while let Ok(outcome) = outcomes.recv() {
        publish_one(outcome);
    }
}

fn publish_one(outcome: Outcome) {
    match outcome {
        Outcome::Batch(mut batch, committed) => {
            // Every hook of the batch first, then every reply: a connection
            // woken by its ack then finds the pushes of the same batch
            // already queued, and sends them with the ack in one write.
            if committed.is_ok() {
                for job in batch.iter_mut() {
                    job.publish();
                }
            }
            for job in batch {
                job.finish(committed.clone());
            }
        }
        Outcome::Setting(reply, applied) => {
            let _ = reply.send(applied);
        }
    }
}

pub(super) fn shutting_down() -> Error {
    Error::Unavailable("the server is shutting down".into())
}

/// Runs every job of the batch in one transaction, one savepoint each (but
/// for jobs that check before they write). On any
/// failure the transaction is rolled back, so a batch is kept whole or not at all.
fn commit_batch(
    conn: &Connection,
    sends: &mut Sends,
    batch: &mut [Box<dyn Job>],
    sync_wal: Option<&std::path::Path>,
) -> Result<()> {
    let result = run_batch(conn, sends, batch, sync_wal);
    if result.is_err() {
        sends.discard_positions();
        if !conn.is_autocommit() {
            let _ = conn.execute_batch("ROLLBACK");
        }
    }
    result
}

/// `storage.max_db_mb` (`cap`, in bytes; 0 = none) is what the database
/// takes on disk, its WAL included: SQLite's `max_page_count` bounds only the
/// database file, and the WAL, which keeps its size between checkpoints, went
/// 2.9 MB past the cap. Before each batch the file may grow only by what the
/// WAL leaves of the cap (after a checkpoint that truncates the WAL, when
/// file and WAL reach the cap, the WAL is a sixteenth of it or more, and
/// Litestream does not own it). A write that
/// needs a new page past that fails as on a full disk (507), while writes in
/// place (the health probe's) go on; the cap is passed by at most the WAL of
/// one batch.
fn fit_to_size_cap(conn: &Connection, cap: u64, truncate: bool) {
    if cap == 0 {
        return;
    }
    let Some(path) = conn.path().filter(|p| !p.is_empty()) else {
        return;
    };
    let len = |p: &str| std::fs::metadata(p).map_or(0, |m| m.len());
    let wal_path = format!("{path}-wal");
    let mut wal = len(&wal_path);
    // Worth its two syncs only when the WAL holds a good part of the cap.
    if truncate && wal >= cap / 16 && len(path) + wal >= cap {
        let _ = conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);");
        wal = len(&wal_path);
    }
    let fit = || -> rusqlite::Result<()> {
        let page_size: u64 = conn.query_row("PRAGMA page_size", [], |r| r.get(0))?;
        // SQLite keeps the cap at the pages the file has if this is fewer.
        let pages = (cap.saturating_sub(wal) / page_size).max(1);
        conn.query_row(&format!("PRAGMA max_page_count = {pages}"), [], |_| Ok(()))
    };
    if let Err(e) = fit() {
        crate::log_warn!("cannot apply storage.max_db_mb", error = e);
    }
}

fn run_batch(
    conn: &Connection,
    sends: &mut Sends,
    batch: &mut [Box<dyn Job>],
    sync_wal: Option<&std::path::Path>,
) -> Result<()> {
    conn.prepare_cached("BEGIN IMMEDIATE")?.execute([])?;
    for job in batch.iter_mut() {
        let savepoint = !job.checks_first();
        if savepoint {
            // Other writes may read what the messages before them moved.
            sends.write_positions(conn)?;
            conn.prepare_cached("SAVEPOINT job")?.execute([])?;
        }
        let before = conn.total_changes();
        let ok = job.run(conn, sends);
        if conn.is_autocommit() {
            // SQLite rolled the whole transaction back by itself (it does so on
            // SQLITE_FULL and some I/O errors): the batch is lost, and every job
            // in it gets the error that caused it.
            return Err(job.error().unwrap_or_else(|| {
                Error::Unavailable("the database rejected the write, try again".into())
            }));
        }
        if savepoint {
            if !ok {
                conn.prepare_cached("ROLLBACK TO job")?.execute([])?;
            }
            conn.prepare_cached("RELEASE job")?.execute([])?;
        } else if !ok && conn.total_changes() != before {
            // Failed after writing, which only a storage failure does: the
            // job's half-written rows must not be committed with the rest.
            return Err(job.error().unwrap_or_else(|| {
                Error::Unavailable("the database rejected the write, try again".into())
            }));
        }
    }
    super::messages::before_commit(conn, sends)?;
    conn.prepare_cached("COMMIT")?.execute([])?;
    if let Some(wal) = sync_wal {
        // Committed but maybe not on disk: no result is given until it is.
        // Should the sync fail, every job gets an error (a resend is then
        // recognised: the rows are in the WAL).
        std::fs::File::open(wal)
            .and_then(|f| f.sync_data())
            .map_err(|e| Error::Unavailable(format!("cannot sync the database to disk: {e}")))?;
    }
    Ok(())
}

/// With Litestream and `synchronous = "full"`, the WAL is synced by the
/// writer right after COMMIT instead of by SQLite inside it, and the writer
/// connection runs at `synchronous = NORMAL`; `None` otherwise.
///
/// Why: SQLite's COMMIT writes a batch's WAL frames, syncs them, and only
/// then counts them in the WAL index (`rim.db-shm`). A kill -9 during that
/// sync leaves frames in the WAL file that SQLite never counts (Litestream's
/// open connection keeps the stale index alive) and later writes over, but
/// that Litestream, reading the file itself, has shipped: the replica then
/// restores malformed (10 of 94 kills in the middle of commits, Litestream
/// 0.5.17). At NORMAL the frames are counted the moment they are written,
/// and the sync that follows keeps "acknowledged" meaning "on disk": the
/// writer gives no result before it (see [`run_batch`]). The window left is
/// between writing the frames and counting them, microseconds instead of an
/// fsync (README, "Streaming backup with Litestream").
fn sync_after_commit(conn: &Connection, settings: &Settings) -> Option<std::path::PathBuf> {
    if settings.checkpoints != Checkpointer::Litestream
        || settings.synchronous != crate::config::Synchronous::Full
    {
        return None;
    }
    let path = conn.path().filter(|p| !p.is_empty())?;
    if let Err(e) = conn.execute_batch("PRAGMA synchronous = NORMAL;") {
        crate::log_warn!("cannot move the WAL sync after COMMIT", error = e);
        return None;
    }
    Some(std::path::PathBuf::from(format!("{path}-wal")))
}
