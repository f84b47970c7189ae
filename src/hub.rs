//! Who is online: the registry of logged-in WebSocket connections and the
//! fan-out of pushes to them.
//!
//! A push is serialized once by the caller and shared (`Utf8Bytes` is a
//! reference-counted buffer), so a message to a thousand members costs one
//! encoding. Each connection has a bounded queue; a push that finds it full
//! does not wait: the connection is told to close (it is too slow to keep up,
//! and will catch up through replay at its next login). The registry lock is a
//! std `Mutex` held only to look up and enqueue, never across an `.await`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use hyper_tungstenite::tungstenite::Utf8Bytes;
use tokio::sync::{Notify, mpsc};

/// What a push is. A connection's login replay covers stored messages up
/// to a point, so a live push must say whether it is one of those (and
/// which) or an event that no replay carries; there is no default that a
/// new kind of push could fall into by accident.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushKind {
    /// A stored message, with its id and sender.
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
}

#[derive(Default)]
pub struct Hub {
    peers: Mutex<HashMap<u64, Vec<Peer>>>,
    next_conn: AtomicU64,
    connections: AtomicU64,
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

    pub fn register(
        &self,
        uid: u64,
        conn: u64,
        session: i64,
        tx: mpsc::Sender<Arc<Push>>,
        kick: Arc<Kick>,
    ) {
        self.peers().entry(uid).or_default().push(Peer {
            conn,
            session,
            tx,
            kick,
        });
        self.connections.fetch_add(1, Ordering::Relaxed);
    }

    pub fn unregister(&self, uid: u64, conn: u64) {
        let mut peers = self.peers();
        if let Some(list) = peers.get_mut(&uid) {
            let before = list.len();
            list.retain(|p| p.conn != conn);
            if list.len() < before {
                self.connections.fetch_sub(1, Ordering::Relaxed);
            }
            if list.is_empty() {
                peers.remove(&uid);
            }
        }
    }

    /// Queues `push` for every connection of every user in `uids`, except the
    /// connection `skip` (the one that sent it). Returns how many were queued.
    pub fn send(&self, uids: &[u64], push: Push, skip: Option<u64>) -> usize {
        let shared = Arc::new(push);
        let mut peers = self.peers();
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

    /// Closes every connection logged in with this session.
    pub fn end_session(&self, session: i64) {
        for list in self.peers().values() {
            for peer in list.iter().filter(|p| p.session == session) {
                peer.kick.fire(KickReason::SessionEnded);
            }
        }
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

    pub fn online_users(&self) -> usize {
        self.peers().len()
    }

    pub fn online_connections(&self) -> u64 {
        self.connections.load(Ordering::Relaxed)
    }
}
