//! One WebSocket connection on `/ws`: rim's frames, login, replay, live pushes.
//!
//! Each connection is one task running a `select!` over: the client's next
//! frame, the answers it is waiting for, the live pushes queued for it by the
//! [`Hub`](crate::hub::Hub), a timer (login deadline, pings, idle timeout,
//! token expiry), its kick signal and server shutdown.
//!
//! Frames are read in order and may overlap: a message is handed to the
//! writer and the next frame is read while it waits for its commit, up to
//! [`MAX_IN_FLIGHT`] frames. Answers are written in the order of the frames
//! they answer, and every answer that is ready goes out in one write, so a
//! client that sends a burst gets it stored in a few commits and acked in a
//! few writes. Pushes queue (bounded) while answers are outstanding and
//! follow them in the same write, as they did when frames were handled one
//! at a time: a client sees its message's ack before the messages committed
//! after it.
//!
//! Every client frame gets exactly one answer: the rim ack or an `Error`
//! answer of the same shape. Only transport-level faults close the socket:
//! a message over the size limit (1009), invalid UTF-8 (1007), a protocol
//! violation (1002), a client too slow to keep up or a revoked session
//! (1008), and server shutdown (1001).

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use hyper_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use hyper_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use hyper_tungstenite::tungstenite::{Error as WsError, Message};
use hyper_tungstenite::{HyperWebsocket, HyperWebsocketStream};
use tokio::io::AsyncReadExt;
use tokio::sync::{mpsc, watch};
use tokio::time::{Instant, timeout};

use crate::app::App;
use crate::error::Error;
use crate::hub::{Kick, KickReason, Push, PushKind, Unsettled};
use crate::limits::{self, Slot};
use crate::protocol::{self, ClientFrame, Notice};
use crate::store::{
    ChangeRequest, Changed, Committed, NewChange, NewMessage, Replay, Replayed, Stored,
};
use crate::time::Zone;

/// How many of one client's frames may wait for their answers at once. The
/// connection reads no further frame until the oldest is answered.
pub const MAX_IN_FLIGHT: usize = 32;

/// Pushes written at most in one write when no answer is outstanding.
const PUSHES_PER_WRITE: usize = 64;

/// Buffer sizes for one connection. Small on purpose: an idle connection
/// should cost a few kilobytes, and chat frames are small.
pub fn websocket_config(max_frame_bytes: usize) -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(1024)
        .write_buffer_size(8 * 1024)
        .max_write_buffer_size(max_frame_bytes * 4 + 64 * 1024)
        .max_message_size(Some(max_frame_bytes))
        .max_frame_size(Some(max_frame_bytes))
}

/// Who this connection is logged in as.
struct LoggedIn {
    uid: u64,
    /// The session (token) it logged in with.
    session: i64,
    expires_at: i64,
    live: mpsc::Receiver<Arc<Push>>,
    /// Live pushes of messages at or below this id were covered by the login
    /// replay (see [`LoggedIn::covered`]).
    snapshot: u64,
    /// The client gave a cursor: the replay included its own messages too.
    cursor_mode: bool,
}

impl LoggedIn {
    fn covered(&self, push: &Push) -> bool {
        match push.kind {
            PushKind::Message { id, sender } => {
                id <= self.snapshot && (self.cursor_mode || sender != self.uid)
            }
            PushKind::Event => false,
        }
    }

    /// Moves the queued pushes the replay did not cover into `frames`, until
    /// it holds `max` frames or the queue is empty.
    fn take_pushes(&mut self, frames: &mut Vec<Message>, max: usize) {
        while frames.len() < max {
            match self.live.try_recv() {
                Ok(push) if self.covered(&push) => {}
                Ok(push) => frames.push(Message::Text(push.frame.clone())),
                Err(_) => break,
            }
        }
    }
}

struct Conn {
    app: App,
    id: u64,
    peer: SocketAddr,
    /// The client's address (after trusted proxies), which the slot counts against.
    client: IpAddr,
    /// Held while not logged in: the caps on sockets before login.
    before_login: Option<Slot>,
    ws: HyperWebsocketStream,
    kick: Arc<Kick>,
    login: Option<LoggedIn>,
    last_seen: Instant,
    unbound_since: Instant,
    pinged: bool,
    /// Answers not yet written, in the order of the frames they answer.
    answers: VecDeque<Answer>,
    /// What frames other than messages may still cost
    /// (`rate_limits.frames_per_second`); messages have their own limit.
    frames: limits::Bucket,
}

/// The answer to one client frame.
enum Answer {
    /// Known at once: an error, a Heart's ack, a read mark's ack.
    Ready(String),
    /// A message the writer has: acked once it is committed.
    Stored {
        client_msg_id: String,
        committed: Committed<Stored>,
        /// Its user's REST requests wait for it (until the answer is taken).
        _unsettled: Unsettled,
    },
    /// An edit, deletion or reaction the writer has: acked once committed.
    Changed {
        client_msg_id: String,
        committed: Committed<Changed>,
        /// Its user's REST requests wait for it (until the answer is taken).
        _unsettled: Unsettled,
    },
}

/// Waits until the oldest answer is known; returns it and every answer behind
/// it that is known too, in order. Never resolves when there are none.
async fn ready_answers(answers: &mut VecDeque<Answer>, zone: &Zone) -> Vec<String> {
    std::future::poll_fn(|cx| {
        let mut ready = Vec::new();
        while let Some(front) = answers.front_mut() {
            let text = match front {
                Answer::Ready(text) => std::mem::take(text),
                Answer::Stored {
                    client_msg_id,
                    committed,
                    ..
                } => match Pin::new(committed).poll(cx) {
                    Poll::Pending => break,
                    Poll::Ready(Ok(stored)) => {
                        protocol::ack_message(client_msg_id, &stored.message, zone)
                    }
                    Poll::Ready(Err(e)) => protocol::error_answer(client_msg_id, &e),
                },
                Answer::Changed {
                    client_msg_id,
                    committed,
                    ..
                } => match Pin::new(committed).poll(cx) {
                    Poll::Pending => break,
                    Poll::Ready(Ok(changed)) => {
                        protocol::ack_change(client_msg_id, &changed.change)
                    }
                    Poll::Ready(Err(e)) => protocol::error_answer(client_msg_id, &e),
                },
            };
            answers.pop_front();
            ready.push(text);
        }
        if ready.is_empty() {
            Poll::Pending
        } else {
            Poll::Ready(ready)
        }
    })
    .await
}

/// What a Login asks of the replay.
struct Want {
    /// The client's resume cursor (`msgId`).
    after: Option<u64>,
    /// `"replay": true`.
    replay: bool,
}

/// Why the loop ended, and what to tell the client.
enum End {
    /// The client closed or vanished; nothing more to send.
    Gone,
    /// Close with this code and reason.
    Close(CloseCode, &'static str),
}

pub async fn serve(
    app: App,
    websocket: HyperWebsocket,
    peer: SocketAddr,
    client: IpAddr,
    before_login: Slot,
    shutdown: watch::Receiver<bool>,
) {
    let ws = match websocket.await {
        Ok(ws) => ws,
        Err(e) => {
            crate::log_debug!("websocket upgrade failed", peer = peer, error = e);
            return;
        }
    };
    let id = app.hub.next_conn_id();
    crate::log_info!("ws open", conn = id, peer = peer);
    let mut conn = Conn {
        id,
        peer,
        client,
        before_login: Some(before_login),
        ws,
        kick: Arc::new(Kick::default()),
        login: None,
        last_seen: Instant::now(),
        unbound_since: Instant::now(),
        pinged: false,
        answers: VecDeque::new(),
        frames: app.limits.frame_bucket(),
        app,
    };
    let end = conn.run(shutdown).await;
    let reason = match &end {
        End::Gone => "client closed",
        End::Close(_, reason) => reason,
    };
    crate::log_info!("ws close", conn = id, peer = conn.peer, reason = reason);
    if let End::Close(code, reason) = end {
        conn.close(code, reason).await;
    }
}

impl Conn {
    /// The handlers below are boxed where they are awaited: a connection's
    /// task then only holds their state while one runs, and an idle
    /// connection stays small (the 8 KiB per connection of `rim-bench`).
    async fn run(&mut self, mut shutdown: watch::Receiver<bool>) -> End {
        let config = self.app.config.clone();
        // The login deadline runs from the moment the connection has no login:
        // when it opens, and again after a Logout.
        self.unbound_since = Instant::now();
        let opened = self.unbound_since;
        let tick_every = config
            .ping_interval
            .min(config.login_timeout)
            .div_f32(2.0)
            .max(Duration::from_millis(100));
        // Housekeeping (login deadline, session expiry, pings, idle timeout)
        // is due every `tick_every`. It is checked at the top of every turn,
        // so that no flood of frames or pushes can put it off, and `wake`
        // wakes a connection that is idle when it falls due.
        let mut due = opened + tick_every;
        let mut wake = Box::pin(tokio::time::sleep_until(due));
        if *shutdown.borrow() {
            return End::Close(CloseCode::Away, "server shutting down");
        }
        // The connection's own handle, so that waiting on it does not borrow
        // `self`, which the handlers below need.
        let kick = self.kick.clone();
        loop {
            // Checked here, cheaply, on every turn, so that a busy connection
            // (whose other branches below are always ready) still notices;
            // the branches at the end of the select wake an idle one.
            if let Some(reason) = kick.reason() {
                return kicked(reason);
            }
            if !matches!(shutdown.has_changed(), Ok(false)) {
                return self.shut_down().await;
            }
            let now = Instant::now();
            if now >= due {
                due = now + tick_every;
                wake.as_mut().reset(due);
                if let Err(end) = Box::pin(self.on_tick(now)).await {
                    return end;
                }
            }
            let reading = self.answers.len() < MAX_IN_FLIGHT;
            let answering = !self.answers.is_empty();
            tokio::select! {
                // In this order: answers before new frames and pushes, so that
                // what is ready goes out before more work comes in; the
                // signals last, so that they register their waiters only
                // when nothing else is ready.
                biased;
                texts = ready_answers(&mut self.answers, &self.app.config.time_zone), if answering => {
                    if let Err(end) = Box::pin(self.write_answers(texts)).await {
                        return end;
                    }
                }
                frame = self.ws.next(), if reading => {
                    self.last_seen = Instant::now();
                    self.pinged = false;
                    match frame {
                        None => return End::Gone,
                        Some(Ok(Message::Text(text))) => {
                            if let Err(end) = Box::pin(self.on_text(text.as_str())).await {
                                return end;
                            }
                        }
                        Some(Ok(Message::Binary(_))) => {
                            let err = Error::bad_request("binary frames are not supported: send JSON text frames");
                            self.answers.push_back(Answer::Ready(protocol::error_answer("", &err)));
                        }
                        Some(Ok(Message::Close(_))) => return End::Gone,
                        Some(Ok(_)) => {} // ping (answered by tungstenite), pong, raw frame
                        Some(Err(e)) => return read_error(e),
                    }
                }
                push = recv_live(&mut self.login), if !answering => {
                    let Some(push) = push else {
                        return End::Close(CloseCode::Policy, "session ended");
                    };
                    if let Err(end) = Box::pin(self.forward(push)).await {
                        return end;
                    }
                }
                () = &mut wake => {} // the housekeeping above is due
                _ = shutdown.changed() => return self.shut_down().await,
                reason = kick.fired() => return kicked(reason),
            }
        }
    }

    /// The server is shutting down: frames already read get their answers
    /// (each message is committed or refused by now or soon), within the
    /// write timeout.
    async fn shut_down(&mut self) -> End {
        let write_timeout = self.app.config.write_timeout;
        let _ = timeout(write_timeout, Box::pin(self.flush_answers())).await;
        End::Close(CloseCode::Away, "server shutting down")
    }

    async fn on_tick(&mut self, now: Instant) -> Result<(), End> {
        let config = self.app.config.clone();
        match &self.login {
            None if now.duration_since(self.unbound_since) > config.login_timeout => {
                let err = Error::Unauthorized("no Login within the login timeout".into());
                let _ = self.send(protocol::error_answer("", &err)).await;
                return Err(End::Close(CloseCode::Policy, "login timeout"));
            }
            Some(login) if login.expires_at <= crate::time::now_ms() => {
                let err = Error::Unauthorized("the session expired; log in again".into());
                let _ = self.send(protocol::error_answer("", &err)).await;
                return Err(End::Close(CloseCode::Policy, "session expired"));
            }
            _ => {}
        }
        let quiet = now.duration_since(self.last_seen);
        if quiet > config.idle_timeout {
            return Err(End::Close(CloseCode::Normal, "idle timeout"));
        }
        if quiet >= config.ping_interval && !self.pinged {
            self.pinged = true;
            self.send_message(Message::Ping(Default::default())).await?;
        }
        Ok(())
    }

    /// Sends a live push, and whatever else is already queued behind it, in
    /// one flush.
    async fn forward(&mut self, first: Arc<Push>) -> Result<(), End> {
        let Some(login) = &mut self.login else {
            return Ok(());
        };
        let mut frames = Vec::new();
        if !login.covered(&first) {
            frames.push(Message::Text(first.frame.clone()));
        }
        login.take_pushes(&mut frames, PUSHES_PER_WRITE);
        if frames.is_empty() {
            return Ok(());
        }
        self.write(frames.into_iter()).await
    }

    async fn send(&mut self, text: String) -> Result<(), End> {
        self.write(std::iter::once(Message::text(text))).await
    }

    async fn send_message(&mut self, msg: Message) -> Result<(), End> {
        self.write(std::iter::once(msg)).await
    }

    /// Writes and flushes `msgs`, bounded by the write timeout, and gives up
    /// at once if the connection is kicked meanwhile (a client that stopped
    /// reading must not hold its slot until the timeout).
    async fn write(&mut self, msgs: impl Iterator<Item = Message>) -> Result<(), End> {
        let kick = &self.kick;
        let write_timeout = self.app.config.write_timeout;
        let ws = &mut self.ws;
        let write = async {
            for msg in msgs {
                ws.feed(msg).await?;
            }
            ws.flush().await
        };
        tokio::select! {
            // The write first: it usually completes at once, and then no
            // waiter for the kick is registered.
            biased;
            sent = timeout(write_timeout, write) => match sent {
                Ok(Ok(())) => Ok(()),
                Ok(Err(_)) => Err(End::Gone),
                Err(_) => Err(End::Close(CloseCode::Policy, "too slow: write timed out")),
            },
            reason = kick.fired() => Err(kicked(reason)),
        }
    }

    /// Handles a text frame: queues its answer, or for a Login, answers it
    /// and every frame before it.
    async fn on_text(&mut self, text: &str) -> Result<(), End> {
        let parsed = protocol::parse_frame(text);
        // Every frame but a message, unusable ones included, draws on the
        // connection's budget: a flood of Reads or Hearts is answered 429
        // and costs no write and no push.
        let is_message = matches!(&parsed.frame, Ok(f) if f.is_message());
        if !is_message && let Err(wait) = self.frames.take() {
            let e = limits::too_many("frames on this connection", wait);
            let answer = protocol::error_answer(&parsed.client_msg_id, &e);
            self.answers.push_back(Answer::Ready(answer));
            return Ok(());
        }
        let answer = match parsed.frame {
            Ok(ClientFrame::Login {
                token,
                after,
                replay,
            }) => {
                // The login's ack and replay come after every earlier answer.
                // Both boxed on their own: their state is large, and a
                // message's should stay small (888 bytes: under glibc's
                // 1 KiB limit for its fast allocation path).
                Box::pin(self.flush_answers()).await?;
                let want = Want { after, replay };
                return Box::pin(self.on_login(&parsed.client_msg_id, &token, parsed.uid, want))
                    .await;
            }
            Ok(frame) => {
                self.on_frame(frame, &parsed.client_msg_id, parsed.uid)
                    .await
            }
            Err(e) => Err(e),
        };
        let answer = answer
            .unwrap_or_else(|e| Answer::Ready(protocol::error_answer(&parsed.client_msg_id, &e)));
        self.answers.push_back(answer);
        Ok(())
    }

    /// Sends answers, and the live pushes queued while they were pending, in
    /// one write: one syscall and one TCP segment instead of one each (the
    /// writer queues a batch's pushes before it wakes the batch's senders, so
    /// a sender usually finds its peers' messages waiting). It takes every
    /// queued push: while answers are outstanding this is the only place
    /// pushes leave the queue, and a client that keeps frames in flight must
    /// not find it full. The queue's bound bounds the write.
    async fn write_answers(&mut self, texts: Vec<String>) -> Result<(), End> {
        let mut frames: Vec<Message> = texts.into_iter().map(Message::text).collect();
        if let Some(login) = &mut self.login {
            login.take_pushes(&mut frames, usize::MAX);
        }
        self.write(frames.into_iter()).await
    }

    /// Waits for every outstanding answer and writes it.
    async fn flush_answers(&mut self) -> Result<(), End> {
        while !self.answers.is_empty() {
            let texts = ready_answers(&mut self.answers, &self.app.config.time_zone).await;
            self.write_answers(texts).await?;
        }
        Ok(())
    }

    /// Handles every frame but Login; returns its answer, or the answer to
    /// come once the writer has committed.
    async fn on_frame(
        &mut self,
        frame: ClientFrame,
        client_msg_id: &str,
        claimed: Option<u64>,
    ) -> Result<Answer, Error> {
        let ack = |server_msg_id| Ok(Answer::Ready(protocol::ack(client_msg_id, server_msg_id)));
        if let ClientFrame::Heart = frame {
            return ack(None);
        }
        let (uid, session) = self.require_login()?;
        // rim acted for whatever uid a frame named; we act for the logged-in
        // user only, and refuse frames that claim to be someone else.
        if let Some(claimed) = claimed
            && claimed != uid
        {
            return Err(Error::forbidden(format!(
                "body.uid {claimed} is not the logged-in user {uid}"
            )));
        }
        // Held until the frame's change is committed (moved into a message's
        // answer, dropped at the end of this call for the rest).
        let unsettled = self.app.hub.unsettled(uid);
        match frame {
            ClientFrame::Msg {
                gid,
                kind,
                content,
                reply_to,
            } => {
                let committed = self
                    .app
                    .queue_message(
                        NewMessage {
                            gid,
                            uid,
                            kind,
                            content,
                            client_msg_id: client_msg_id.to_owned(),
                            file: None,
                            reply_to,
                        },
                        Some(self.id),
                    )
                    .await?;
                Ok(Answer::Stored {
                    client_msg_id: client_msg_id.to_owned(),
                    committed,
                    _unsettled: unsettled,
                })
            }
            // Boxed, as a login is: only a message's state is in every
            // frame's future.
            ClientFrame::Ack { gid, msg_id } => {
                Box::pin(self.app.db.mark_delivered(uid, session, gid, msg_id)).await?;
                ack(Some(msg_id))
            }
            ClientFrame::Read { gid, msg_id } => {
                Box::pin(self.app.mark_read(uid, gid, Some(msg_id), Some(self.id))).await?;
                ack(Some(msg_id))
            }
            ClientFrame::Edit {
                gid,
                msg_id,
                content,
            } => {
                Box::pin(self.change(
                    gid,
                    msg_id,
                    uid,
                    ChangeRequest::Edit(content),
                    client_msg_id,
                    unsettled,
                ))
                .await
            }
            ClientFrame::Delete { gid, msg_id } => {
                Box::pin(self.change(
                    gid,
                    msg_id,
                    uid,
                    ChangeRequest::Delete,
                    client_msg_id,
                    unsettled,
                ))
                .await
            }
            ClientFrame::React {
                gid,
                msg_id,
                content,
            } => {
                Box::pin(self.change(
                    gid,
                    msg_id,
                    uid,
                    ChangeRequest::React(content),
                    client_msg_id,
                    unsettled,
                ))
                .await
            }
            ClientFrame::Typing { gid } => {
                Box::pin(self.app.typing(uid, gid)).await?;
                ack(None)
            }
            ClientFrame::Logout => {
                // Awaited here, unlike a dropped connection's: the others
                // hear of it before this Logout is answered.
                if let Some(gone) = self.end_login() {
                    Box::pin(self.app.went_offline(gone)).await;
                }
                ack(None)
            }
            ClientFrame::Visibility { visible } => {
                self.app.hub.set_visible(uid, self.id, visible);
                ack(None)
            }
            ClientFrame::Heart | ClientFrame::Login { .. } => ack(None),
        }
    }

    /// Hands an edit, deletion or reaction to the writer; answered once
    /// committed. Boxed like a login: only a message's state is in every
    /// frame's future.
    async fn change(
        &mut self,
        gid: u64,
        msg_id: u64,
        uid: u64,
        request: ChangeRequest,
        client_msg_id: &str,
        unsettled: Unsettled,
    ) -> Result<Answer, Error> {
        let change = NewChange {
            gid,
            msg_id,
            uid,
            request,
            client_msg_id: client_msg_id.to_owned(),
        };
        let committed = self.app.queue_change(change, Some(self.id)).await?;
        Ok(Answer::Changed {
            client_msg_id: client_msg_id.to_owned(),
            committed,
            _unsettled: unsettled,
        })
    }

    /// The logged-in user and session, or 401.
    fn require_login(&mut self) -> Result<(u64, i64), Error> {
        let Some(login) = &self.login else {
            return Err(Error::Unauthorized(
                "not logged in: send Login with your token first".into(),
            ));
        };
        if login.expires_at <= crate::time::now_ms() {
            self.logout();
            return Err(Error::Unauthorized(
                "the session expired; log in again".into(),
            ));
        }
        Ok((login.uid, login.session))
    }

    async fn on_login(
        &mut self,
        client_msg_id: &str,
        token: &str,
        claimed: Option<u64>,
        want: Want,
    ) -> Result<(), End> {
        let session = match check_login(&self.app, self.login.is_some(), token, claimed).await {
            Ok(session) => session,
            Err(e) => return self.send(protocol::error_answer(client_msg_id, &e)).await,
        };
        let uid = session.uid;
        let after = want.after;
        // The replay is for devices that keep count of what they have: those
        // that name a cursor or ask, and those whose token has acknowledged
        // messages before. A client that never acks would count every
        // replayed message as new at each login (its unread badges doubled).
        let replaying = after.is_some() || want.replay || session.acks;
        // Register first, so nothing sent from here on is missed; pushes that
        // the replay below also covers are dropped by `LoggedIn::covered`.
        let (tx, rx) = mpsc::channel(self.app.config.outbound_queue);
        let first = self
            .app
            .hub
            .register(uid, self.id, session.id, tx, self.kick.clone());
        self.before_login = None;
        self.login = Some(LoggedIn {
            uid,
            session: session.id,
            expires_at: session.expires_at,
            live: rx,
            snapshot: u64::MAX,
            cursor_mode: after.is_some(),
        });
        let replay = if !replaying {
            // Nothing replayed, so no live push is covered (snapshot 0).
            Replay::default()
        } else {
            match self
                .app
                .db
                .replay(uid, after, self.app.config.replay_limit)
                .await
            {
                Ok(replay) => replay,
                Err(e) => {
                    self.logout();
                    return self.send(protocol::error_answer(client_msg_id, &e)).await;
                }
            }
        };
        if let Some(login) = &mut self.login {
            login.snapshot = replay.snapshot;
        }
        crate::log_info!(
            "ws login",
            conn = self.id,
            uid = uid,
            replay = replay.items.len()
        );
        if first {
            // Before the ack: whatever this device sends next reaches the
            // others after they heard it came online.
            self.app.came_online(uid).await;
        }
        self.send(protocol::ack(client_msg_id, None)).await?;
        let config = self.app.config.clone();
        let zone = &config.time_zone;
        for item in &replay.items {
            self.send(match item {
                Replayed::Message(m) => protocol::push_message(m, zone),
                Replayed::Change(c) => protocol::push_change(c, zone),
            })
            .await?;
        }
        if replay.truncated {
            let last = replay.items.last().map(Replayed::id);
            let note = "more messages are waiting: fetch them with /api/message/history";
            self.send(protocol::push_notify(
                Notice::ReplayTruncated,
                uid,
                note,
                last,
            ))
            .await?;
        }
        Ok(())
    }

    /// Ends this connection's login, if any; the socket stays open. When it
    /// was the user's last device, the others hear of it soon (a task of its
    /// own: this also runs when the connection is dropped).
    fn logout(&mut self) {
        if let Some(uid) = self.end_login()
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            let app = self.app.clone();
            runtime.spawn(async move { app.went_offline(uid).await });
        }
    }

    /// Ends this connection's login; returns the uid when it was the user's
    /// last logged-in device.
    fn end_login(&mut self) -> Option<u64> {
        let login = self.login.take()?;
        self.unbound_since = Instant::now();
        // Counted again, past the caps if need be: they keep newcomers
        // out, not a socket that has shown a token.
        self.before_login = Some(
            self.app
                .limits
                .sockets_before_login
                .take_anyway(self.client),
        );
        self.app
            .hub
            .unregister(login.uid, self.id)
            .then_some(login.uid)
    }

    async fn close(mut self, code: CloseCode, reason: &'static str) {
        let frame = CloseFrame {
            code,
            reason: reason.into(),
        };
        let _ = timeout(Duration::from_secs(2), self.ws.close(Some(frame))).await;
        // A well-behaved client answers our close frame and then waits for us
        // to end the TCP connection (RFC 6455, 7.1.1): read until its answer
        // completes the handshake and hang up at once, instead of holding the
        // socket (and delaying shutdown) until a timeout. After a transport
        // fault the stream is unusable and its remaining bytes are not frames;
        // those go to the raw drain below.
        let broken = matches!(
            code,
            CloseCode::Size | CloseCode::Invalid | CloseCode::Protocol
        );
        if !broken {
            let handshake = timeout(Duration::from_secs(2), async {
                loop {
                    match self.ws.next().await {
                        Some(Ok(_)) => {}
                        None => return true,
                        Some(Err(_)) => return false,
                    }
                }
            })
            .await;
            if !matches!(handshake, Ok(false)) {
                return;
            }
        }
        // Read (and discard) until the client closes too, so that unread bytes
        // do not make the kernel reset the connection before our close frame
        // arrives. Bounded in time.
        let raw = self.ws.get_mut();
        let mut scratch = [0u8; 1024];
        let _ = timeout(Duration::from_secs(2), async {
            while let Ok(n) = raw.read(&mut scratch).await {
                if n == 0 {
                    break;
                }
            }
        })
        .await;
    }
}

async fn check_login(
    app: &App,
    logged_in: bool,
    token: &str,
    claimed: Option<u64>,
) -> Result<crate::store::Session, Error> {
    if logged_in {
        return Err(Error::bad_request("already logged in: send Logout first"));
    }
    let session = app.authenticate(token).await?;
    if let Some(claimed) = claimed {
        // rim-front sends its uid; 0 means "not known yet".
        if claimed != 0 && claimed != session.uid {
            return Err(Error::forbidden(format!(
                "body.uid {claimed} does not own this token"
            )));
        }
    }
    Ok(session)
}

impl Drop for Conn {
    /// However the connection ends (even by a panic), it leaves the registry.
    fn drop(&mut self) {
        self.logout();
    }
}

/// Waits for the next live push, or forever when not logged in.
async fn recv_live(login: &mut Option<LoggedIn>) -> Option<Arc<Push>> {
    match login {
        Some(login) => login.live.recv().await,
        None => std::future::pending().await,
    }
}

fn kicked(reason: KickReason) -> End {
    match reason {
        KickReason::TooSlow => End::Close(CloseCode::Policy, "too slow: reconnect to catch up"),
        KickReason::SessionEnded => End::Close(CloseCode::Policy, "session ended"),
        KickReason::Shutdown => End::Close(CloseCode::Away, "server shutting down"),
    }
}

fn read_error(e: WsError) -> End {
    match e {
        WsError::Capacity(_) => End::Close(CloseCode::Size, "message too large"),
        WsError::Utf8(_) => End::Close(CloseCode::Invalid, "text frame is not valid UTF-8"),
        WsError::Protocol(_) => End::Close(CloseCode::Protocol, "websocket protocol error"),
        _ => End::Gone,
    }
}
