//! Housekeeping while the server runs, hourly: expired sessions, and
//! uploaded files that no message refers to once their grace period is over.

use std::time::Duration;

use tokio::sync::watch;

use crate::app::App;

/// Runs until `stop` changes.
pub async fn run(app: App, mut stop: watch::Receiver<bool>) {
    let mut every = tokio::time::interval(Duration::from_secs(3600));
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            _ = every.tick() => {
                match app.db.collect_files(app.config.file_gc_grace).await {
                    Ok(c) if c.files > 0 => {
                        crate::log_info!("unsent files removed", count = c.files, bytes = c.bytes);
                    }
                    Ok(_) => {}
                    Err(e) => crate::log_warn!("file collection failed", error = e),
                }
                if let Ok(n) = app.db.purge_expired_sessions().await
                    && n > 0
                {
                    crate::log_info!("expired sessions removed", count = n);
                }
            }
        }
    }
}
