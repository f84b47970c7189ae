//! The application: shared state and the operations both REST and WebSocket
//! perform, where storing something and telling online users about it go
//! together (a message is committed, then pushed; a friend request is stored,
//! then notified).
//!
//! [`App`] is the one cheap-to-clone handle every connection holds.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use crate::auth::{self, Hasher};
use crate::config::{Config, RegistrationMode};
use crate::error::{Error, Result};
use crate::hub::{Hub, Push};
use crate::limits::{self, Limits};
use crate::metrics::Metrics;
use crate::protocol::{self, Notice};
use crate::push::Pusher;
use crate::store::{
    ChangeRequest, Changed, Committed, Db, FileRef, FriendEvent, Kind, MemberOp, NewChange,
    NewMessage, NewUser, Origin, Session, Stored,
};
use crate::validate;

#[derive(Clone)]
pub struct App {
    pub db: Db,
    pub hub: Arc<Hub>,
    pub hasher: Hasher,
    pub limits: Arc<Limits>,
    pub metrics: Arc<Metrics>,
    pub config: Arc<Config>,
    /// The minute each session's last use was last written for (see
    /// [`App::authenticate`]).
    touched: Arc<Mutex<HashMap<i64, i64>>>,
    pub push: Pusher,
}

/// A session's last use is written at most once per this many
/// milliseconds: one write a minute per active device, however many
/// requests it makes.
pub const LAST_USED_GRANULARITY_MS: i64 = 60_000;

/// Sessions remembered in [`App::authenticate`]'s coalescing map before it
/// starts over (the database's value then keeps the writes to one a minute).
const TOUCHED_CAP: usize = 10_000;

/// What `POST /api/user/create` asks for, before validation.
pub struct Registration {
    pub account: String,
    pub password: String,
    pub name: String,
    pub avatar: String,
    pub email: String,
    /// An invite code; required when `registration = "invite"`.
    pub invite: Option<String>,
}

/// A new invite: the code (shown once) and its join link, if `public_url` is set.
pub struct Invite {
    pub code: String,
    pub link: Option<String>,
}

impl App {
    /// The application over an open database, signing pushes with `vapid`.
    pub fn new(
        db: Db,
        config: Config,
        metrics: Metrics,
        vapid: crate::webpush::Vapid,
    ) -> anyhow::Result<App> {
        let hasher = Hasher::new(config.hash_cost, config.hash_concurrency)?;
        let metrics = Arc::new(metrics);
        let push = Pusher::new(vapid, &config, metrics.clone())?;
        Ok(App {
            db,
            hub: Arc::new(Hub::new()),
            hasher,
            limits: Arc::new(Limits::new(&config)),
            metrics,
            config: Arc::new(config),
            touched: Arc::default(),
            push,
        })
    }

    /// The live session a token belongs to, or 401. Records its use, to
    /// the minute: the write is queued only when the stored minute is older
    /// than the current one and no other request of this minute queued it,
    /// so a busy device costs one write a minute and a request never waits
    /// for it.
    pub async fn authenticate(&self, token: &str) -> Result<Session> {
        let session = self.session_of(token).await?;
        let now = crate::time::now_ms();
        let minute = now - now.rem_euclid(LAST_USED_GRANULARITY_MS);
        if session.last_used_at < minute {
            let first = match self.touched.lock() {
                Ok(mut touched) => {
                    if touched.len() >= TOUCHED_CAP {
                        touched.clear();
                    }
                    touched.insert(session.id, minute) != Some(minute)
                }
                Err(_) => false,
            };
            if first {
                let db = self.db.clone();
                tokio::spawn(async move {
                    if let Err(e) = db.touch_session(session.id, minute).await {
                        crate::log_debug!("cannot record a session's use", error = e);
                    }
                });
            }
        }
        Ok(session)
    }

    async fn session_of(&self, token: &str) -> Result<Session> {
        if token.is_empty() || token.len() > 256 {
            return Err(Error::Unauthorized(
                "login required: send Authorization: Bearer <token>".into(),
            ));
        }
        self.db
            .session(auth::token_hash(token))
            .await?
            .ok_or_else(|| {
                Error::Unauthorized("the token is invalid or expired; log in again".into())
            })
    }

    pub async fn register(&self, r: Registration, ip: IpAddr) -> Result<u64> {
        self.limits
            .register_per_ip
            .check(&ip)
            .map_err(|wait| limits::too_many("registrations from your address", wait))?;
        let invite = match self.config.registration {
            // An open server takes everyone; a code sent along changes nothing.
            RegistrationMode::Open => None,
            RegistrationMode::Closed => {
                return Err(Error::forbidden(
                    "registration is closed on this server: ask its operator for an account",
                ));
            }
            RegistrationMode::Invite => match r.invite.as_deref().map(str::trim) {
                Some(code) if !code.is_empty() && code.len() <= 64 => Some(auth::invite_hash(code)),
                Some(code) if !code.is_empty() => {
                    return Err(Error::forbidden(
                        "unknown invite code: check it, or ask for a new one",
                    ));
                }
                _ => {
                    return Err(Error::forbidden(
                        "registration on this server needs an invite code",
                    ));
                }
            },
        };
        validate::account(&r.account)?;
        validate::password(&r.password)?;
        let name = validate::display_name(&r.name, &r.account)?;
        validate::avatar(&r.avatar)?;
        validate::email(&r.email)?;
        let password_hash = self.hasher.hash(r.password).await?;
        self.db
            .register(
                NewUser {
                    account: r.account,
                    name,
                    avatar: r.avatar,
                    email: r.email,
                    password_hash,
                },
                invite,
            )
            .await
    }

    /// Creates an invite for `uses` registrations within `expires_days` days
    /// (0 = no expiry). Only admins may.
    pub async fn create_invite(&self, me: u64, uses: u32, expires_days: u32) -> Result<Invite> {
        if !self.db.is_admin(me).await? {
            return Err(Error::forbidden("only admins can create invites"));
        }
        if !(1..=1000).contains(&uses) {
            return Err(Error::bad_request("uses must be between 1 and 1000"));
        }
        if expires_days > 365 {
            return Err(Error::bad_request(
                "expiresDays must be between 0 (never) and 365",
            ));
        }
        let code = auth::new_invite_code();
        let expires_at = (expires_days > 0)
            .then(|| crate::time::now_ms() + i64::from(expires_days) * 86_400_000);
        self.db
            .create_invite(crate::store::admin::NewInvite {
                code_hash: auth::invite_hash(&code),
                max_uses: uses,
                expires_at,
                created_by: Some(me),
            })
            .await?;
        let link = self.config.invite_link(&code);
        Ok(Invite { code, link })
    }

    /// Checks the password and opens a new session; returns its token.
    pub async fn login(
        &self,
        account: String,
        password: String,
        ip: IpAddr,
        user_agent: &str,
    ) -> Result<(u64, String)> {
        // Checked before hashing: a flood of guesses costs us nothing. The
        // account's limits are per address, so guesses from one address do
        // not lock the owner out elsewhere; the slower one across addresses
        // spares those that have logged into the account before.
        let l = &self.limits;
        l.login_per_ip
            .check(&ip)
            .map_err(|wait| limits::too_many("login attempts from your address", wait))?;
        let known = (account.to_ascii_lowercase(), ip);
        l.login_per_account_ip
            .check(&known)
            .map_err(|wait| limits::too_many("login attempts for this account", wait))?;
        if !l.known_logins.contains(&known) {
            l.login_per_account
                .check(&known.0)
                .map_err(|wait| limits::too_many("login attempts for this account", wait))?;
        }
        let creds = if account.len() <= 64 && password.len() <= 1024 {
            self.db.credentials(account).await?
        } else {
            None
        };
        let (uid, stored) = match creds {
            Some((uid, hash)) => (Some(uid), Some(hash)),
            None => (None, None),
        };
        // Kept only when the stored hash was made at another cost and the
        // password may be hashed again below (a few hundred bytes).
        let again = stored
            .as_deref()
            .is_some_and(|s| !auth::made_at(s, self.config.hash_cost))
            .then(|| (password.clone(), stored.clone()));
        let ok = self.hasher.verify(password, stored).await?;
        let uid = match (ok, uid) {
            (true, Some(uid)) => uid,
            _ => return Err(Error::Unauthorized("wrong account or password".into())),
        };
        if let Some((password, Some(old))) = again {
            self.rehash(uid, password, old);
        }
        self.limits.known_logins.insert(known);
        let token = auth::new_token();
        let expires = crate::time::now_ms() + self.config.token_ttl.as_millis() as i64;
        let origin = Origin {
            user_agent: validate::user_agent(user_agent),
            address: ip.to_string(),
        };
        self.db
            .create_session(uid, auth::token_hash(&token), origin, expires)
            .await?;
        Ok((uid, token))
    }

    /// Hashes `uid`'s password again at the configured cost, after the
    /// login that proved it, and stores it if the stored hash is still
    /// `old`. In the background: the login does not wait for it, and a
    /// failure (a full hashing queue, the server stopping) leaves the old
    /// hash to be replaced at a later login.
    fn rehash(&self, uid: u64, password: String, old: String) {
        let hasher = self.hasher.clone();
        let db = self.db.clone();
        tokio::spawn(async move {
            let Ok(new) = hasher.hash(password).await else {
                return;
            };
            if let Err(e) = db.replace_password_hash(uid, old, new).await {
                crate::log_warn!("password hash not renewed", uid = uid, error = e);
            }
        });
    }

    /// Changes `me`'s password from `old` to `new` and revokes every other
    /// session of the account (closing their WebSockets); `session`, the
    /// caller's, stays. A wrong `old` is refused (403) and counts against
    /// the account's login attempts, like a wrong login.
    pub async fn change_password(
        &self,
        me: u64,
        session: i64,
        old: String,
        new: String,
    ) -> Result<usize> {
        validate::password(&new)?;
        let user =
            self.db.user(me).await?.ok_or_else(|| {
                Error::Unauthorized("the token's account no longer exists".into())
            })?;
        self.limits
            .login_per_account
            .check(&user.account.to_ascii_lowercase())
            .map_err(|wait| limits::too_many("password attempts for this account", wait))?;
        let stored = self.db.password_hash(me).await?;
        let ok = old.len() <= 1024 && self.hasher.verify(old, stored.clone()).await?;
        let Some(old_hash) = stored.filter(|_| ok) else {
            return Err(Error::forbidden("the old password is wrong"));
        };
        let new_hash = self.hasher.hash(new).await?;
        let revoked = self
            .db
            .change_password(me, old_hash, new_hash, session)
            .await?;
        for &id in &revoked {
            self.hub.end_session(id);
        }
        Ok(revoked.len())
    }

    /// Revokes one of `me`'s sessions and closes its WebSockets.
    pub async fn revoke_session(&self, me: u64, id: i64) -> Result<()> {
        self.db.revoke_device(me, id).await?;
        self.hub.end_session(id);
        Ok(())
    }

    /// Revokes a token and closes the WebSockets logged in with it.
    pub async fn logout(&self, token: &str) -> Result<()> {
        if let Some(session) = self.db.delete_session(auth::token_hash(token)).await? {
            self.hub.end_session(session);
        }
        Ok(())
    }

    /// Stores a message and, once committed, pushes it to every other online
    /// device of every member. `from_conn` is the sending connection, which
    /// gets the ack instead of a push. The content of an Image or File
    /// message is checked and rewritten from the stored file (see
    /// [`App::attach`]).
    pub async fn send_message(&self, msg: NewMessage, from_conn: Option<u64>) -> Result<Stored> {
        self.queue_message(msg, from_conn).await?.await
    }

    /// [`App::send_message`] in two steps: checks the message and hands it
    /// to the writer, then the returned [`Committed`] resolves once it is
    /// stored. A WebSocket connection reads its client's next frames
    /// meanwhile, so that a burst of messages shares commits.
    pub async fn queue_message(
        &self,
        mut msg: NewMessage,
        from_conn: Option<u64>,
    ) -> Result<Committed<Stored>> {
        validate::message_content(&msg.content, self.config.max_message_bytes)?;
        validate::client_msg_id(&msg.client_msg_id)?;
        self.limits
            .messages_per_user
            .check(&msg.uid)
            .map_err(|wait| limits::too_many("messages", wait))?;
        if matches!(msg.kind, Kind::Image | Kind::File) {
            // Boxed: a file lookup's state would otherwise make every
            // message's future larger.
            Box::pin(self.attach(&mut msg)).await?;
        }
        // Pushed by the database's publisher thread right after the commit, so every
        // member sees a conversation's messages in id order, even when several
        // members send at once.
        let hub = self.hub.clone();
        let metrics = self.metrics.clone();
        let config = self.config.clone();
        let pusher = self.push.clone();
        self.db
            .queue_message(msg, move |stored| {
                if !stored.duplicate {
                    let m = &stored.message;
                    let push =
                        Push::message(m.id, m.uid, protocol::push_message(m, &config.time_zone));
                    let pushed = hub.send(&stored.members, push, from_conn);
                    metrics.record_message(pushed);
                    // Who looks at rim right now, as the message arrives.
                    pusher.message(m, hub.visible_sessions(&stored.members));
                }
            })
            .await
    }

    /// Checks an edit, deletion or reaction and hands it to the writer; the
    /// returned [`Committed`] resolves once it is stored (or found to be a
    /// resend). Once committed it is pushed to every member's devices but
    /// `from_conn`, in commit order with the messages.
    pub async fn queue_change(
        &self,
        change: NewChange,
        from_conn: Option<u64>,
    ) -> Result<Committed<Changed>> {
        match &change.request {
            ChangeRequest::Edit(text) => {
                validate::message_content(text, self.config.max_message_bytes)?
            }
            ChangeRequest::React(emoji) => validate::reaction(emoji)?,
            ChangeRequest::Delete => {}
        }
        validate::client_msg_id(&change.client_msg_id)?;
        self.limits
            .messages_per_user
            .check(&change.uid)
            .map_err(|wait| limits::too_many("messages", wait))?;
        let hub = self.hub.clone();
        let config = self.config.clone();
        self.db
            .queue_change(change, move |changed| {
                if !changed.duplicate {
                    let c = &changed.change;
                    let frame = protocol::push_change(c, &config.time_zone);
                    let push = Push::change(c.id, c.uid, frame);
                    hub.send(&changed.members, push, from_conn);
                }
            })
            .await
    }

    /// Tells the other members' online devices that `me` is typing in
    /// `gid`: at most once per [`limits::TYPING_EVERY`]; more often is
    /// accepted and not passed on.
    pub async fn typing(&self, me: u64, gid: u64) -> Result<()> {
        let members = self.db.member_ids(me, gid).await?;
        if self.limits.typing.check(&(me, gid)).is_ok() {
            let others: Vec<u64> = members.into_iter().filter(|&u| u != me).collect();
            let push = Push::event(protocol::push_typing(gid, me));
            self.hub.send(&others, push, None);
        }
        Ok(())
    }

    /// `uid`'s first device has logged in: tells their friends and
    /// co-members. Awaited before the login is acknowledged, so the push
    /// is queued before anything that device sends next.
    pub async fn came_online(&self, uid: u64) {
        match self.db.audience(uid).await {
            Ok(audience) => {
                let push = Push::event(protocol::push_presence(
                    uid,
                    true,
                    None,
                    &self.config.time_zone,
                ));
                self.hub.send(&audience, push, None);
            }
            Err(e) => crate::log_warn!("presence not sent", uid = uid, error = e),
        }
    }

    /// `uid`'s last device has gone: records when, and tells their friends
    /// and co-members (unless a device of theirs logged in meanwhile).
    pub async fn went_offline(&self, uid: u64) {
        let now = crate::time::now_ms();
        if let Err(e) = self.db.set_last_seen(uid, now).await {
            // Shutting down: the writer is gone, and so are the listeners.
            crate::log_debug!("last seen not stored", uid = uid, error = e);
            return;
        }
        let (audience, seen) = match tokio::join!(self.db.audience(uid), self.db.last_seen(uid)) {
            (Ok(a), Ok(seen)) => (a, seen),
            (Err(e), _) | (_, Err(e)) => {
                crate::log_debug!("presence not sent", uid = uid, error = e);
                return;
            }
        };
        let frame =
            protocol::push_presence(uid, false, seen.shown_to(uid, 0), &self.config.time_zone);
        let push = Push::event(frame);
        self.hub.send_if_offline(uid, &audience, push);
    }

    /// Whether `uid` is online, and their last-seen time as `viewer` may
    /// see it (their own always).
    pub async fn presence(&self, uid: u64, viewer: u64) -> Result<(bool, Option<i64>)> {
        let seen = self.db.last_seen(uid).await?;
        Ok((self.hub.is_online(uid), seen.shown_to(uid, viewer)))
    }

    /// Checks the file an Image or File message names (the sender must have
    /// uploaded it: 403 otherwise; an Image must be a png, jpeg, gif or
    /// webp) and rewrites the content with the stored file's facts, so that
    /// what members see is what the server holds, whatever the client said.
    async fn attach(&self, msg: &mut NewMessage) -> Result<()> {
        let wanted = protocol::parse_attachment(msg.kind, &msg.content)?;
        let file = self.db.uploaded_file(msg.uid, wanted.file_id).await?;
        if msg.kind == Kind::Image && !crate::media::is_inline_image(&file.content_type) {
            return Err(Error::bad_request(format!(
                "file {} is {}, not a png, jpeg, gif or webp image: send it as a File message",
                file.id, file.content_type
            )));
        }
        let name = match wanted.name.as_deref() {
            Some(name) => validate::file_name(name)?,
            None => String::new(),
        };
        let name = if name.is_empty() {
            crate::media::default_name(Some(file.id), &file.content_type)
        } else {
            name
        };
        msg.content = protocol::attachment_content(&file, &name);
        msg.file = Some(FileRef { id: file.id, name });
        Ok(())
    }

    /// Marks a conversation read (up to `upto`, or all of it) and tells the
    /// other members' devices. Returns the id read up to.
    pub async fn mark_read(
        &self,
        me: u64,
        gid: u64,
        upto: Option<u64>,
        from_conn: Option<u64>,
    ) -> Result<u64> {
        let mark = self.db.mark_read(me, gid, upto).await?;
        if mark.moved {
            let push = Push::event(protocol::push_read(me, gid, mark.msg_id));
            self.hub.send(&mark.members, push, from_conn);
        }
        Ok(mark.msg_id)
    }

    /// Renames a group (admins) and tells its members' devices.
    pub async fn update_group(
        &self,
        me: u64,
        gid: u64,
        name: Option<String>,
        avatar: Option<String>,
    ) -> Result<()> {
        let members = self.db.update_group(me, gid, name, avatar).await?;
        self.notify_group_changed(me, gid, &members);
        Ok(())
    }

    /// Adds or removes members and tells everyone affected, the removed too.
    pub async fn change_members(
        &self,
        me: u64,
        gid: u64,
        uids: Vec<u64>,
        op: MemberOp,
    ) -> Result<()> {
        let affected = self.db.change_members(me, gid, uids, op).await?;
        self.notify_group_changed(me, gid, &affected);
        Ok(())
    }

    /// `me` leaves a group; its members (and `me`'s other devices) hear of it.
    pub async fn leave_group(&self, me: u64, gid: u64) -> Result<()> {
        let affected = self.db.leave_group(me, gid).await?;
        self.notify_group_changed(me, gid, &affected);
        Ok(())
    }

    fn notify_group_changed(&self, me: u64, gid: u64, uids: &[u64]) {
        let frame = protocol::push_notify_in(Notice::GroupChanged, me, Some(gid), "", None);
        self.hub.send(uids, Push::event(frame), None);
    }

    pub async fn friend_request(&self, me: u64, other: u64) -> Result<()> {
        let event = self.db.friend_request(me, other).await?;
        self.notify_friend(me, other, event).await;
        Ok(())
    }

    pub async fn friend_accept(&self, me: u64, other: u64) -> Result<()> {
        let event = self.db.friend_accept(me, other).await?;
        self.notify_friend(me, other, event).await;
        Ok(())
    }

    async fn notify_friend(&self, me: u64, other: u64, event: FriendEvent) {
        let notice = match event {
            FriendEvent::Requested => Notice::FriendRequest,
            FriendEvent::Accepted => Notice::FriendAccept,
        };
        let name = match self.db.user(me).await {
            Ok(Some(u)) => u.name,
            _ => String::new(),
        };
        let frame = protocol::push_notify(notice, me, &name, None);
        self.hub.send(&[other], Push::event(frame), None);
    }
}
