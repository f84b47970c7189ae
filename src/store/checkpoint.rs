//! WAL checkpoints on a thread of their own.
//!
//! By default SQLite checkpoints inside the COMMIT that pushes the WAL past
//! 1,000 pages: that commit, and every ack waiting on it, then also copies the
//! WAL back into the database and syncs it. The writer turns that off
//! (`wal_autocheckpoint = 0`) and this thread runs a PASSIVE checkpoint a few
//! times a second instead; PASSIVE never blocks the writer or the readers.

use std::path::Path;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

/// How often the WAL is checkpointed.
const EVERY: Duration = Duration::from_millis(250);

pub(super) struct Checkpointer {
    stop: mpsc::Sender<()>,
    thread: JoinHandle<()>,
}

impl Checkpointer {
    pub(super) fn start(path: &Path) -> anyhow::Result<Checkpointer> {
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(Duration::from_secs(5))?;
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("rim-checkpoint".into())
            .spawn(move || {
                while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(EVERY) {
                    if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
                    {
                        crate::log_warn!("wal checkpoint failed", error = e);
                    }
                }
            })?;
        Ok(Checkpointer { stop, thread })
    }

    /// Stops the thread and waits for it (at most one checkpoint's time).
    pub(super) fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.thread.join();
    }
}
