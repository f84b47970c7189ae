//! The load loop shared by the scenarios: logged-in WebSocket clients that
//! send messages (or heartbeats) closed-loop or open-loop, read their
//! answers and pushes, and record latencies.
//!
//! Every client is one task owning its socket. A phase runs in three steps:
//! send until the deadline (or the per-client message cap), drain until
//! every sent frame is answered and every push has arrived (bounded by
//! [`DRAIN_TIMEOUT`]), then stop; the tasks hand back their sockets for the
//! next phase and their histograms for the report. Throughput counts only
//! what was answered inside the sending window.
//!
//! Latency is measured from when a frame was *meant* to be sent: in an open
//! loop that is its slot in the schedule, not the moment the client got
//! around to it, so a stalled server cannot hide its stall by slowing the
//! load down (coordinated omission). Only the timer's own granularity is
//! forgiven: a send less than [`TIMER_SLACK`] late is timed from when it
//! went out.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::{FutureExt, SinkExt, StreamExt};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::sleep_until;
use tokio_tungstenite::tungstenite::Message;

use super::client::{self, Incoming, Ws};
use super::hist::Histogram;
use super::sys::{Meter, Usage};

/// The longest a phase waits for outstanding answers and pushes.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// How late an open-loop send may be and still be timed from when it went
/// out. tokio's timers fire on a 1 ms wheel, so a send is routinely up to a
/// millisecond after its slot for reasons of the load generator's own; that
/// is not the server's latency. A send later than this was held up by
/// something (a stalled socket, a starved client) and is timed from its slot.
const TIMER_SLACK: Duration = Duration::from_millis(2);

/// One logged-in WebSocket client.
pub struct Client {
    pub ws: Ws,
    /// Its slot among the phase's senders (for fan-out bookkeeping).
    pub slot: usize,
    /// Where its messages go.
    pub gid: u64,
    /// The next clientMsgId; unique per user across phases.
    pub seq: u64,
    /// Its newest acknowledged message, and the newest pushed to it (what
    /// a Mixed phase edits and reacts to).
    pub own_last: Option<u64>,
    pub their_last: Option<u64>,
}

impl Client {
    pub fn new(ws: Ws, slot: usize, gid: u64) -> Client {
        Client {
            ws,
            slot,
            gid,
            seq: 1,
            own_last: None,
            their_last: None,
        }
    }
}

/// How a client sends.
#[derive(Debug, Clone, Copy)]
pub enum Pace {
    /// Only reads.
    Silent,
    /// Keeps `window` frames outstanding: a new one as soon as one is answered.
    Closed { window: usize },
    /// One frame every `every`, starting `offset` after the phase start.
    Open { every: Duration, offset: Duration },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameKind {
    Msg,
    Heart,
    /// Msg frames, and every [`CHANGE_EVERY`]th frame a change instead:
    /// alternately an `Edit` of the client's own newest message and a
    /// `React` (a toggle) to the newest message pushed to it, once it knows
    /// one (a Msg until then).
    Mixed,
}

/// In a [`FrameKind::Mixed`] phase, one frame in this many is a change.
pub const CHANGE_EVERY: u64 = 5;

/// Per-message receive counts for fan-out: the receiver that brings a
/// message's count to `need` is its last recipient.
pub struct FanoutTracker {
    counts: Vec<Vec<AtomicU32>>,
    need: u32,
}

impl FanoutTracker {
    pub fn new(senders: usize, per_sender: u64, need: u32) -> FanoutTracker {
        FanoutTracker {
            counts: (0..senders)
                .map(|_| (0..per_sender).map(|_| AtomicU32::new(0)).collect())
                .collect(),
            need,
        }
    }

    pub fn capacity(&self) -> u64 {
        self.counts.first().map_or(0, |c| c.len() as u64)
    }

    /// Counts a delivery; true when it was the last one the message needed.
    fn delivered(&self, sender: usize, seq: u64) -> bool {
        let Some(slot) = self.counts.get(sender).and_then(|c| c.get(seq as usize)) else {
            return false;
        };
        slot.fetch_add(1, Ordering::Relaxed) + 1 == self.need
    }
}

/// What a phase asks of one client.
#[derive(Clone)]
pub struct Plan {
    pub pace: Pace,
    pub kind: FrameKind,
    /// The server answers with a copy of the frame (the raw echo server).
    pub echo: bool,
    /// Messages this client may send at most in the phase.
    pub max_frames: u64,
    /// Reads one frame per this interval instead of as fast as it can.
    pub slow_read: Option<Duration>,
}

/// Counters shared by the clients of a phase.
#[derive(Default)]
pub struct Counters {
    pub sent: AtomicU64,
    pub answered: AtomicU64,
    /// Frames answered with an error, or out of order.
    pub errors: AtomicU64,
    /// Frames never answered because their connection ended.
    pub lost: AtomicU64,
    /// Pushed messages received by clients that read normally.
    pub delivered: AtomicU64,
    /// Frames received by slow readers.
    pub slow_received: AtomicU64,
    /// Connections that ended during the phase.
    pub closed: AtomicU64,
}

/// What a client task gives back.
pub struct Done {
    pub client: Option<Client>,
    pub ack: Histogram,
    pub delivery: Histogram,
    pub last: Histogram,
    /// The close code, if the server closed this connection.
    pub close_code: Option<u16>,
}

/// A phase's results, merged over its clients.
pub struct Outcome {
    pub clients: Vec<Client>,
    pub usage: Usage,
    /// Frames answered within the sending window.
    pub answered: u64,
    /// Pushes delivered within the sending window.
    pub delivered: u64,
    pub sent_total: u64,
    pub answered_total: u64,
    pub delivered_total: u64,
    pub errors: u64,
    pub lost: u64,
    pub closed: u64,
    pub slow_received: u64,
    pub close_codes: Vec<u16>,
    pub ack: Histogram,
    pub delivery: Histogram,
    pub last: Histogram,
    /// True when the drain ended by timeout with answers or pushes missing.
    pub incomplete: bool,
}

impl Outcome {
    pub fn answered_per_sec(&self) -> f64 {
        self.answered as f64 / self.usage.secs.max(1e-9)
    }

    pub fn delivered_per_sec(&self) -> f64 {
        self.delivered as f64 / self.usage.secs.max(1e-9)
    }
}

/// Runs one phase over `clients` (each with its plan) for `secs`.
/// `recipients` is how many pushes each answered message should produce
/// among normally-reading clients, so the drain knows when all have arrived.
pub async fn run_phase(
    clients: Vec<(Client, Plan)>,
    secs: f64,
    recipients: u64,
    tracker: Option<Arc<FanoutTracker>>,
    pid: Option<u32>,
) -> Outcome {
    // Frames the clients may send in all: the phase may end early once every
    // one of them is answered (a bounded fill rather than a timed window).
    let cap = clients
        .iter()
        .fold(0u64, |sum, (_, plan)| match (plan.pace, plan.slow_read) {
            (Pace::Silent, _) | (_, Some(_)) => sum,
            _ => sum.saturating_add(plan.max_frames),
        });
    let counters = Arc::new(Counters::default());
    let (stop_tx, stop_rx) = watch::channel(false);
    let start = Instant::now();
    let send_until = start + Duration::from_secs_f64(secs);
    let meter = Meter::start(pid);
    let tasks: Vec<JoinHandle<Done>> = clients
        .into_iter()
        .map(|(client, plan)| {
            let task = Task {
                client,
                plan,
                start,
                send_until,
                counters: counters.clone(),
                tracker: tracker.clone(),
                stop: stop_rx.clone(),
            };
            tokio::spawn(task.run())
        })
        .collect();

    while Instant::now() < send_until {
        let finished = counters.answered.load(Ordering::Relaxed)
            + counters.errors.load(Ordering::Relaxed)
            + counters.lost.load(Ordering::Relaxed);
        if cap > 0 && finished >= cap {
            break;
        }
        let nap = send_until
            .saturating_duration_since(Instant::now())
            .min(Duration::from_millis(10));
        tokio::time::sleep(nap).await;
    }
    let usage = meter.finish();
    let answered = counters.answered.load(Ordering::Relaxed);
    let delivered = counters.delivered.load(Ordering::Relaxed);

    // Drain: everything sent gets its answer, every answered message its pushes.
    let drain_until = Instant::now() + DRAIN_TIMEOUT;
    let mut incomplete = false;
    loop {
        let sent = counters.sent.load(Ordering::Relaxed);
        let done = counters.answered.load(Ordering::Relaxed)
            + counters.errors.load(Ordering::Relaxed)
            + counters.lost.load(Ordering::Relaxed);
        let want = counters.answered.load(Ordering::Relaxed) * recipients;
        let got = counters.delivered.load(Ordering::Relaxed);
        if done >= sent && got >= want {
            break;
        }
        if Instant::now() >= drain_until {
            incomplete = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let _ = stop_tx.send(true);

    let mut dones = Vec::with_capacity(tasks.len());
    let mut panicked = 0;
    for task in tasks {
        match task.await {
            Ok(done) => dones.push(done),
            Err(_) => panicked += 1,
        }
    }
    let mut out = Outcome {
        clients: Vec::new(),
        usage,
        answered,
        delivered,
        sent_total: counters.sent.load(Ordering::Relaxed),
        answered_total: counters.answered.load(Ordering::Relaxed),
        delivered_total: counters.delivered.load(Ordering::Relaxed),
        errors: counters.errors.load(Ordering::Relaxed) + panicked,
        lost: counters.lost.load(Ordering::Relaxed),
        closed: counters.closed.load(Ordering::Relaxed),
        slow_received: counters.slow_received.load(Ordering::Relaxed),
        close_codes: Vec::new(),
        ack: Histogram::new(),
        delivery: Histogram::new(),
        last: Histogram::new(),
        incomplete,
    };
    for done in dones {
        out.ack.merge(&done.ack);
        out.delivery.merge(&done.delivery);
        out.last.merge(&done.last);
        if let Some(code) = done.close_code {
            out.close_codes.push(code);
        }
        if let Some(client) = done.client {
            out.clients.push(client);
        }
    }
    out.clients.sort_by_key(|c| c.slot);
    out
}

struct Task {
    client: Client,
    plan: Plan,
    start: Instant,
    send_until: Instant,
    counters: Arc<Counters>,
    tracker: Option<Arc<FanoutTracker>>,
    stop: watch::Receiver<bool>,
}

impl Task {
    async fn run(mut self) -> Done {
        let mut done = Done {
            client: None,
            ack: Histogram::new(),
            delivery: Histogram::new(),
            last: Histogram::new(),
            close_code: None,
        };
        if let Some(every) = self.plan.slow_read {
            self.read_slowly(every, &mut done).await;
            return done;
        }
        // Frames sent and not yet answered: (clientMsgId, meant-to-send time).
        let mut pending: VecDeque<(u64, Instant)> = VecDeque::new();
        let mut sent = 0u64;
        let mut next_due = match self.plan.pace {
            Pace::Open { offset, .. } => self.start + offset,
            _ => self.send_until,
        };
        let open_every = match self.plan.pace {
            Pace::Open { every, .. } => Some(every),
            _ => None,
        };
        if let Pace::Closed { window } = self.plan.pace {
            for _ in 0..window {
                if !self.send(&mut pending, &mut sent, Instant::now()).await {
                    return self.fail(done, pending.len());
                }
            }
        }
        let mut stop = self.stop.clone();
        loop {
            let may_send =
                open_every.is_some() && next_due < self.send_until && sent < self.plan.max_frames;
            tokio::select! {
                _ = stop.changed() => break,
                _ = sleep_until(next_due.into()), if may_send => {
                    let slot = next_due;
                    next_due += open_every.unwrap_or_default();
                    let now = Instant::now();
                    let meant = if now.saturating_duration_since(slot) <= TIMER_SLACK { now } else { slot };
                    if !self.send(&mut pending, &mut sent, meant).await {
                        return self.fail(done, pending.len());
                    }
                }
                frame = self.client.ws.next() => {
                    // This frame and every one that already arrived behind
                    // it, then the refills in one write: a sender with
                    // several messages in flight sends as the server answers.
                    let mut frame = frame;
                    loop {
                        if let Err(close_code) = self.take(frame, &mut pending, &mut done) {
                            done.close_code = close_code;
                            return self.fail(done, pending.len());
                        }
                        match self.client.ws.next().now_or_never() {
                            Some(next) => frame = next,
                            None => break,
                        }
                    }
                    if let Pace::Closed { window } = self.plan.pace {
                        let now = Instant::now();
                        let mut fed = false;
                        while pending.len() < window && now < self.send_until && sent < self.plan.max_frames {
                            if !self.feed(&mut pending, &mut sent, now).await {
                                return self.fail(done, pending.len());
                            }
                            fed = true;
                        }
                        if fed && self.client.ws.flush().await.is_err() {
                            return self.fail(done, pending.len());
                        }
                    }
                }
            }
        }
        done.client = Some(self.client);
        done
    }

    /// Takes in one frame from the server; `Err` with the close code, if
    /// any, when the connection ended.
    fn take(
        &mut self,
        frame: Option<Result<Message, tokio_tungstenite::tungstenite::Error>>,
        pending: &mut VecDeque<(u64, Instant)>,
        done: &mut Done,
    ) -> Result<(), Option<u16>> {
        let text = match frame {
            Some(Ok(Message::Text(text))) => text,
            Some(Ok(Message::Close(close))) => return Err(close.map(|c| u16::from(c.code))),
            Some(Ok(_)) => return Ok(()),
            None | Some(Err(_)) => return Err(None),
        };
        let now = Instant::now();
        match client::classify(text.as_str()) {
            Incoming::Answer { id, ok } if !self.plan.echo => {
                let seq: Option<u64> = id.parse().ok();
                if ok
                    && matches!(self.plan.kind, FrameKind::Mixed)
                    && seq.is_some_and(|s| !s.is_multiple_of(CHANGE_EVERY))
                {
                    // The ack of a Msg: its id is the one to edit.
                    self.client.own_last = client::number_after(text.as_str(), "\"serverMsgId\":");
                }
                self.answered(pending, seq, ok, now, done);
            }
            _ if self.plan.echo => self.answered(pending, None, true, now, done),
            Incoming::Msg { content } => {
                self.counters.delivered.fetch_add(1, Ordering::Relaxed);
                if matches!(self.plan.kind, FrameKind::Mixed) {
                    self.client.their_last = client::number_after(text.as_str(), "\"msgId\":");
                }
                if let Some((sent_ns, sender, seq)) = client::parse_content(content) {
                    let latency = client::since_epoch_ns(now).saturating_sub(sent_ns);
                    done.delivery.record_ns(latency);
                    if let Some(t) = &self.tracker
                        && t.delivered(sender, seq)
                    {
                        done.last.record_ns(latency);
                    }
                }
            }
            // A change's push counts as its delivery.
            Incoming::Other
                if matches!(self.plan.kind, FrameKind::Mixed)
                    && (text.starts_with(r#"{"event":"Edit""#)
                        || text.starts_with(r#"{"event":"React""#)) =>
            {
                self.counters.delivered.fetch_add(1, Ordering::Relaxed);
            }
            _ => {}
        }
        Ok(())
    }

    fn answered(
        &mut self,
        pending: &mut VecDeque<(u64, Instant)>,
        id: Option<u64>,
        ok: bool,
        now: Instant,
        done: &mut Done,
    ) {
        let Some((seq, meant)) = pending.pop_front() else {
            return; // an answer to something else (a Login resend, a stray Heart)
        };
        if !ok || id.is_some_and(|id| id != seq) {
            self.counters.errors.fetch_add(1, Ordering::Relaxed);
            return;
        }
        self.counters.answered.fetch_add(1, Ordering::Relaxed);
        done.ack.record(now.saturating_duration_since(meant));
    }

    /// Sends one frame meant for `meant`; false if the connection failed.
    async fn send(
        &mut self,
        pending: &mut VecDeque<(u64, Instant)>,
        sent: &mut u64,
        meant: Instant,
    ) -> bool {
        self.feed(pending, sent, meant).await && self.client.ws.flush().await.is_ok()
    }

    /// Queues one frame meant for `meant` without flushing it; false if the
    /// connection failed.
    async fn feed(
        &mut self,
        pending: &mut VecDeque<(u64, Instant)>,
        sent: &mut u64,
        meant: Instant,
    ) -> bool {
        let seq = self.client.seq;
        self.client.seq += 1;
        let text = match self.plan.kind {
            FrameKind::Msg => client::msg_frame(
                self.client.gid,
                seq,
                &client::content(client::since_epoch_ns(meant), self.client.slot, *sent),
            ),
            FrameKind::Heart => client::heart_frame(seq),
            FrameKind::Mixed => {
                let change = seq.is_multiple_of(CHANGE_EVERY);
                let target = if (seq / CHANGE_EVERY).is_multiple_of(2) {
                    self.client.own_last.map(|id| (id, true))
                } else {
                    self.client.their_last.map(|id| (id, false))
                };
                match target {
                    Some((id, true)) if change => {
                        client::edit_frame(self.client.gid, id, seq, &format!("edited {seq}"))
                    }
                    Some((id, false)) if change => client::react_frame(self.client.gid, id, seq),
                    _ => client::msg_frame(
                        self.client.gid,
                        seq,
                        &client::content(client::since_epoch_ns(meant), self.client.slot, *sent),
                    ),
                }
            }
        };
        pending.push_back((seq, meant));
        *sent += 1;
        self.counters.sent.fetch_add(1, Ordering::Relaxed);
        self.client.ws.feed(Message::text(text)).await.is_ok()
    }

    /// The connection failed: its outstanding frames will never be answered.
    fn fail(&self, mut done: Done, outstanding: usize) -> Done {
        self.counters
            .lost
            .fetch_add(outstanding as u64, Ordering::Relaxed);
        self.counters.closed.fetch_add(1, Ordering::Relaxed);
        done.client = None;
        done
    }

    /// A deliberately slow reader: one frame per `every` until the phase
    /// stops; then it reads fast to find out whether the server closed it.
    async fn read_slowly(&mut self, every: Duration, done: &mut Done) {
        let mut stop = self.stop.clone();
        let mut tick = tokio::time::interval(every);
        loop {
            tokio::select! {
                _ = stop.changed() => break,
                _ = tick.tick() => {}
            }
            match tokio::time::timeout(every, self.client.ws.next()).await {
                Err(_) => {}
                Ok(Some(Ok(Message::Close(close)))) => {
                    done.close_code = Some(close.map_or(1005, |c| u16::from(c.code)));
                    self.counters.closed.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                Ok(Some(Ok(_))) => {
                    self.counters.slow_received.fetch_add(1, Ordering::Relaxed);
                }
                Ok(Some(Err(_)) | None) => {
                    // Closed without a close frame reaching us (the server
                    // gave up writing to a full socket): 1006 in RFC terms.
                    done.close_code = Some(1006);
                    self.counters.closed.fetch_add(1, Ordering::Relaxed);
                    return;
                }
            }
        }
        let deadline = Instant::now() + Duration::from_secs(1);
        loop {
            match tokio::time::timeout_at(deadline.into(), self.client.ws.next()).await {
                Err(_) => break, // still open
                Ok(Some(Ok(Message::Close(close)))) => {
                    done.close_code = Some(close.map_or(1005, |c| u16::from(c.code)));
                    break;
                }
                Ok(Some(Ok(_))) => {}
                Ok(Some(Err(_)) | None) => {
                    done.close_code = Some(1006);
                    break;
                }
            }
        }
    }
}
