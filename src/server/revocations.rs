//! The server's half of `rim user disable` and `rim user passwd`: closing the
//! WebSockets of an account whose sessions another process revoked.
//!
//! The command line deletes the sessions itself (so REST requests with those
//! tokens fail at once) and adds a row to `revocations`. A running server
//! polls that table once a second with one query on its primary key and
//! kicks every connection of each account named, so a disabled user's open
//! chat ends within about a second. The server starts from the newest row
//! there is: older revocations were made before it ran and concern no
//! connection of its own.

use std::time::Duration;

use tokio::sync::watch;

use crate::app::App;

/// How often the server looks for revocations.
pub const POLL: Duration = Duration::from_secs(1);
/// Revocations older than this are deleted: every server has seen them.
const KEEP_MS: i64 = 3_600_000;

/// Polls until `stop` changes.
pub async fn watch(app: App, mut stop: watch::Receiver<bool>) {
    let mut last = match app.db.last_revocation().await {
        Ok(id) => id,
        Err(e) => {
            crate::log_warn!("cannot read revocations", error = e);
            0
        }
    };
    let mut every = tokio::time::interval(POLL);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut polls: u64 = 0;
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            _ = every.tick() => {}
        }
        match app.db.revocations_after(last).await {
            Ok(revoked) => {
                for (id, uid) in revoked {
                    app.hub.end_user(uid);
                    crate::log_info!("sessions revoked by the command line", uid = uid);
                    last = id;
                }
            }
            Err(e) => crate::log_debug!("cannot read revocations", error = e),
        }
        polls += 1;
        if polls.is_multiple_of(3600) {
            let _ = app
                .db
                .purge_revocations(crate::time::now_ms() - KEEP_MS)
                .await;
        }
    }
}
