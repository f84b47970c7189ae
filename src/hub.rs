//! Who is online: the registry of logged-in WebSocket connections and the
//! fan-out of pushes to them.
//!
//! A push is serialized once by the caller and shared (`Utf8Bytes` is a
//! reference-counted buffer), so a message to a thousand members costs one
//! encoding. Each connection has a bounded queue; a push that finds it full
//! does not wait: the connection is told to close (it is too slow to keep up,
//! and will catch up through replay at its next login). The registry lock is a
//! std `Mutex` held only to look up and enqueue, never across an `.await`.
//!
//! It also counts each user's *unsettled* frames: those a connection has
//! read and whose change is not committed yet. A client may send `Read` on
//! its socket and at once ask REST for the chat list; the list must count
//! the read. [`Hub::settled`] lets a REST request wait (bounded) until the
//! user's frames read before it are committed.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use hyper_tungstenite::tungstenite::Utf8Bytes;
use tokio::sync::{Notify, mpsc};

/// What a push is. A connection's login replay covers stored messages up
/// to a point, so a live push must say whether it is one of those (and
/// which) or an event that no replay carries; there is no default that a
/// new kind of push could fall into by accident.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushKind {
    /// A stored message or an entry of the change log (an edit, deletion
    /// or reaction: the same id sequence, and the same replay), with its id
    /// and sender.
    Message { id: u64, sender: u64 },
    /// Anything else (a read receipt, a notice): never covered by a replay.
    Event,
}

/// A frame to push to connections, serialized once.
#[derive(Debug, Clone)]
pub struct Push {
    pub kind: PushKind,
    pub frame: Utf8Bytes,
}

impl Push {
    /// The push of stored message `id`, sent by `sender`.
    pub fn message(id: u64, sender: u64, frame: String) -> Push {
        Push {
            kind: PushKind::Message { id, sender },
            frame: frame.into(),
        }
    }

    /// The push of change-log entry `id` (an edit, deletion or reaction)
    /// made by `sender`: a replay covers it like a message.
    pub fn change(id: u64, sender: u64, frame: String) -> Push {
        Push::message(id, sender, frame)
    }

    /// The push of an event that is not a stored message.
    pub fn event(frame: String) -> Push {
        Push {
            kind: PushKind::Event,
            frame: frame.into(),
        }
    }
}

/// Why a connection was told to close.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KickReason {
    /// Its queue overflowed.
    TooSlow = 1,
    /// Its session was revoked or its account removed.
    SessionEnded = 2,
    /// The server is going away.
    Shutdown = 3,
}

/// The "please close" signal a connection task listens to.
#[derive(Debug, Default)]
pub struct Kick {
    notify: Notify,
    reason: AtomicU8,
}

impl Kick {
    pub fn fire(&self, reason: KickReason) {
        self.reason.store(reason as u8, Ordering::Relaxed);
        self.notify.notify_one();
    }

    /// Waits until fired; returns why.
    pub async fn fired(&self) -> KickReason {
        self.notify.notified().await;
        self.reason().unwrap_or(KickReason::SessionEnded)
    }

    /// Why it was fired, if it was: a check that costs one atomic load,
    /// where [`Kick::fired`] registers a waiter.
    pub fn reason(&self) -> Option<KickReason> {
        match self.reason.load(Ordering::Relaxed) {
            0 => None,
            1 => Some(KickReason::TooSlow),
            3 => Some(KickReason::Shutdown),
            _ => Some(KickReason::SessionEnded),
        }
    }
}

struct Peer {
    conn: u64,
    session: i64,
    /// Queues carry `Arc<Push>`, 8 bytes a slot: tokio allocates a queue's
    /// first block of 32 slots when the channel is made, so every logged-in
    /// connection pays for it even when idle (256 bytes instead of the 1.5
    /// KiB that 48-byte `Push` slots took; measured with `rim-bench`).
    tx: mpsc::Sender<Arc<Push>>,
    kick: Arc<Kick>,
    /// The client said it is in the foreground (`Visibility`): this device
    /// sees new messages as they come and is not sent Web Push notifications.
    visible: bool,
}

#[derive(Default)]
pub struct Hub {
    peers: Mutex<HashMap<u64, Vec<Peer>>>,
    next_conn: AtomicU64,
    connections: AtomicU64,
    /// Per user with unsettled frames: how many, and who waits for none.
    /// Only users with at least one are in the map.
    unsettled: Mutex<HashMap<u64, (usize, Arc<Notify>)>>,
}

/// One frame of `uid` read and not yet committed; dropping it settles it.
pub struct Unsettled {
    hub: Arc<Hub>,
    uid: u64,
}

impl Drop for Unsettled {
    fn drop(&mut self) {
        let mut map = self.hub.unsettled_map();
        if let Some((count, done)) = map.get_mut(&self.uid) {
            *count -= 1;
            if *count == 0 {
                done.notify_waiters();
                map.remove(&self.uid);
            }
        }
    }
}

impl Hub {
    pub fn new() -> Hub {
        Hub::default()
    }

    /// A process-unique id for a new connection.
    pub fn next_conn_id(&self) -> u64 {
        self.next_conn.fetch_add(1, Ordering::Relaxed) + 1
    }

    fn peers(&self) -> MutexGuard<'_, HashMap<u64, Vec<Peer>>> {
        // Nothing panics while holding this lock, but if something ever did,
        // the map is still consistent: keep serving rather than poison everyone.
        self.peers.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds a logged-in connection; true when it is the user's first (they
    /// just came online).
    pub fn register(
        &self,
        uid: u64,
        conn: u64,
        session: i64,
        tx: mpsc::Sender<Arc<Push>>,
        kick: Arc<Kick>,
    ) -> bool {
        let mut peers = self.peers();
        let list = peers.entry(uid).or_default();
        let first = list.is_empty();
        list.push(Peer {
            conn,
            session,
            tx,
            kick,
            visible: false,
        });
        self.connections.fetch_add(1, Ordering::Relaxed);
        first
    }

    /// Removes a connection; true when it was the user's last (they just
    /// went offline).
    pub fn unregister(&self, uid: u64, conn: u64) -> bool {
        let mut peers = self.peers();
        let Some(list) = peers.get_mut(&uid) else {
            return false;
        };
        let before = list.len();
        list.retain(|p| p.conn != conn);
        let removed = list.len() < before;
        if removed {
            self.connections.fetch_sub(1, Ordering::Relaxed);
        }
        if list.is_empty() {
            peers.remove(&uid);
        }
        removed && !peers.contains_key(&uid)
    }

    /// Whether any connection of `uid` is logged in.
    pub fn is_online(&self, uid: u64) -> bool {
        self.peers().contains_key(&uid)
    }

    /// [`Hub::send`], unless `uid` is online again: decided under the same
    /// lock as a new login's registration, so a "went offline" push cannot
    /// overtake the "came online" of a reconnection.
    pub fn send_if_offline(&self, uid: u64, uids: &[u64], push: Push) -> usize {
        let mut peers = self.peers();
        if peers.contains_key(&uid) {
            return 0;
        }
        self.send_locked(&mut peers, uids, push, None)
    }

    /// Queues `push` for every connection of every user in `uids`, except the
    /// connection `skip` (the one that sent it). Returns how many were queued.
    pub fn send(&self, uids: &[u64], push: Push, skip: Option<u64>) -> usize {
        let mut peers = self.peers();
        self.send_locked(&mut peers, uids, push, skip)
    }

    fn send_locked(
        &self,
        peers: &mut HashMap<u64, Vec<Peer>>,
        uids: &[u64],
        push: Push,
        skip: Option<u64>,
    ) -> usize {
        let shared = Arc::new(push);
        let mut queued = 0;
        let mut dropped = 0;
        for uid in uids {
            let Some(list) = peers.get_mut(uid) else {
                continue;
            };
            list.retain(|peer| {
                if Some(peer.conn) == skip {
                    return true;
                }
                match peer.tx.try_send(shared.clone()) {
                    Ok(()) => {
                        queued += 1;
                        true
                    }
                    Err(mpsc::error::TrySendError::Full(_)) => {
                        // Too slow: it gets nothing more from now on, and is
                        // told to close (it catches up by replay next login).
                        peer.kick.fire(KickReason::TooSlow);
                        dropped += 1;
                        false
                    }
                    Err(mpsc::error::TrySendError::Closed(_)) => {
                        dropped += 1;
                        false
                    }
                }
            });
            if list.is_empty() {
                peers.remove(uid);
            }
        }
        if dropped > 0 {
            self.connections.fetch_sub(dropped, Ordering::Relaxed);
        }
        queued
    }

    /// Records whether connection `conn` of `uid` is in the foreground.
    pub fn set_visible(&self, uid: u64, conn: u64, visible: bool) {
        if let Some(list) = self.peers().get_mut(&uid) {
            for peer in list.iter_mut().filter(|p| p.conn == conn) {
                peer.visible = visible;
            }
        }
    }

    /// The sessions of `uids` with a logged-in connection in the foreground.
    pub fn visible_sessions(&self, uids: &[u64]) -> Vec<i64> {
        let peers = self.peers();
        uids.iter()
            .filter_map(|uid| peers.get(uid))
            .flatten()
            .filter(|p| p.visible)
            .map(|p| p.session)
            .collect()
    }

    /// Closes every connection logged in with this session.
    pub fn end_session(&self, session: i64) {
        for list in self.peers().values() {
            for peer in list.iter().filter(|p| p.session == session) {
                peer.kick.fire(KickReason::SessionEnded);
            }
        }
    }

    /// The sessions of `uid` with a logged-in connection now.
    pub fn sessions_online(&self, uid: u64) -> Vec<i64> {
        self.peers()
            .get(&uid)
            .map(|list| list.iter().map(|p| p.session).collect())
            .unwrap_or_default()
    }

    /// Closes every connection of `uid` (its sessions were revoked).
    pub fn end_user(&self, uid: u64) {
        if let Some(list) = self.peers().get(&uid) {
            for peer in list {
                peer.kick.fire(KickReason::SessionEnded);
            }
        }
    }

    /// Tells every logged-in connection the server is going away.
    pub fn shutdown_all(&self) {
        for list in self.peers().values() {
            for peer in list {
                peer.kick.fire(KickReason::Shutdown);
            }
        }
    }

    fn unsettled_map(&self) -> MutexGuard<'_, HashMap<u64, (usize, Arc<Notify>)>> {
        self.unsettled.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Counts a frame of `uid` as read and not yet committed, until the
    /// returned guard is dropped.
    pub fn unsettled(self: &Arc<Self>, uid: u64) -> Unsettled {
        let mut map = self.unsettled_map();
        map.entry(uid)
            .or_insert_with(|| (0, Arc::new(Notify::new())))
            .0 += 1;
        Unsettled {
            hub: self.clone(),
            uid,
        }
    }

    /// Waits until `uid` has no unsettled frame, at most `max`. Returns
    /// whether it got there in time. Frames read after the call started may
    /// make it wait for them too; the bound keeps that short.
    pub async fn settled(&self, uid: u64, max: Duration) -> bool {
        let done = match self.unsettled_map().get(&uid) {
            None => return true,
            Some((_, done)) => done.clone(),
        };
        let notified = done.notified();
        tokio::pin!(notified);
        // Registered before looking again, so a settling in between is not
        // missed.
        notified.as_mut().enable();
        match self.unsettled_map().get(&uid) {
            Some((_, now)) if Arc::ptr_eq(now, &done) => {}
            _ => return true,
        }
        tokio::time::timeout(max, notified).await.is_ok()
    }

    pub fn online_users(&self) -> usize {
        self.peers().len()
    }

    pub fn online_connections(&self) -> u64 {
        self.connections.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn settled_waits_for_the_users_frames_only() {
        let hub = Arc::new(Hub::new());
        assert!(hub.settled(1, Duration::ZERO).await, "nothing unsettled");
        let first = hub.unsettled(1);
        let second = hub.unsettled(1);
        let other = hub.unsettled(2);
        assert!(!hub.settled(1, Duration::from_millis(1)).await);
        drop(other);
        assert!(!hub.settled(1, Duration::from_millis(1)).await);
        let waiting = {
            let hub = hub.clone();
            tokio::spawn(async move { hub.settled(1, Duration::from_secs(60)).await })
        };
        drop(first);
        drop(second);
        assert!(waiting.await.unwrap(), "woken when the last frame settled");
        assert!(hub.unsettled_map().is_empty());
    }
}
