//! The application: shared state and the operations both REST and WebSocket
//! perform, where storing something and telling online users about it go
//! together (a message is committed, then pushed; a friend request is stored,
//! then notified).
//!
//! [`App`] is the one cheap-to-clone handle every connection holds.

use std::sync::Arc;

use crate::auth::{self, Hasher};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::hub::{Hub, Push};
use crate::protocol::{self, Notice};
use crate::store::{Db, FriendEvent, NewMessage, NewUser, Session, Stored};

#[derive(Clone)]
pub struct App {
    pub db: Db,
    pub hub: Arc<Hub>,
    pub hasher: Hasher,
    pub config: Arc<Config>,
}

/// What `POST /api/user/create` asks for, before validation.
pub struct Registration {
    pub account: String,
    pub password: String,
    pub name: String,
    pub avatar: String,
    pub email: String,
}

impl App {
    pub fn new(db: Db, config: Config) -> anyhow::Result<App> {
        let hasher = Hasher::new(config.hash_cost, config.hash_concurrency)?;
        Ok(App {
            db,
            hub: Arc::new(Hub::new()),
            hasher,
            config: Arc::new(config),
        })
    }

    /// The live session a token belongs to, or 401.
    pub async fn authenticate(&self, token: &str) -> Result<Session> {
        if token.is_empty() || token.len() > 256 {
            return Err(Error::Unauthorized("login required: send Authorization: Bearer <token>".into()));
        }
        self.db
            .session(auth::token_hash(token))
            .await?
            .ok_or_else(|| Error::Unauthorized("the token is invalid or expired; log in again".into()))
    }

    pub async fn register(&self, r: Registration) -> Result<u64> {
        validate_account(&r.account)?;
        validate_password(&r.password)?;
        let name = if r.name.trim().is_empty() {
            r.account.clone()
        } else {
            r.name.trim().to_owned()
        };
        validate_text("name", &name, 64)?;
        validate_text("avatar", &r.avatar, 1024)?;
        validate_email(&r.email)?;
        let password_hash = self.hasher.hash(r.password).await?;
        self.db
            .create_user(NewUser {
                account: r.account,
                name,
                avatar: r.avatar,
                email: r.email,
                password_hash,
            })
            .await
    }

    /// Checks the password and opens a new session; returns its token.
    pub async fn login(&self, account: String, password: String) -> Result<(u64, String)> {
        let creds = if account.len() <= 64 && password.len() <= 1024 {
            self.db.credentials(account).await?
        } else {
            None
        };
        let (uid, stored) = match creds {
            Some((uid, hash)) => (Some(uid), Some(hash)),
            None => (None, None),
        };
        let ok = self.hasher.verify(password, stored).await?;
        let uid = match (ok, uid) {
            (true, Some(uid)) => uid,
            _ => return Err(Error::Unauthorized("wrong account or password".into())),
        };
        let token = auth::new_token();
        let expires = crate::time::now_ms() + self.config.token_ttl.as_millis() as i64;
        self.db.create_session(uid, auth::token_hash(&token), expires).await?;
        Ok((uid, token))
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
    /// gets the ack instead of a push.
    pub async fn send_message(&self, msg: NewMessage, from_conn: Option<u64>) -> Result<Stored> {
        if msg.content.is_empty() {
            return Err(Error::bad_request("a message needs content"));
        }
        if msg.content.len() > self.config.max_message_bytes {
            return Err(Error::TooLarge(format!(
                "the message is longer than {} bytes",
                self.config.max_message_bytes
            )));
        }
        if msg.client_msg_id.len() > 128 {
            return Err(Error::bad_request("clientMsgId is longer than 128 characters"));
        }
        let stored = self.db.send_message(msg).await?;
        if !stored.duplicate {
            let push = Push {
                msg_id: stored.message.id,
                sender: stored.message.uid,
                frame: protocol::push_message(&stored.message).into(),
            };
            self.hub.send(&stored.members, &push, from_conn);
        }
        Ok(stored)
    }

    /// Marks a conversation read (up to `upto`, or all of it) and tells the
    /// other members' devices. Returns the id read up to.
    pub async fn mark_read(&self, me: u64, gid: u64, upto: Option<u64>, from_conn: Option<u64>) -> Result<u64> {
        let mark = self.db.mark_read(me, gid, upto).await?;
        if mark.msg_id > 0 {
            let push = Push {
                msg_id: 0,
                sender: me,
                frame: protocol::push_read(me, gid, mark.msg_id).into(),
            };
            self.hub.send(&mark.members, &push, from_conn);
        }
        Ok(mark.msg_id)
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
        let push = Push {
            msg_id: 0,
            sender: me,
            frame: protocol::push_notify(notice, me, &name, None).into(),
        };
        self.hub.send(&[other], &push, None);
    }
}

fn validate_account(account: &str) -> Result<()> {
    let ok_len = (3..=32).contains(&account.len());
    let ok_chars = account
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if !ok_len || !ok_chars {
        return Err(Error::bad_request(
            "account must be 3 to 32 characters of letters, digits, '_', '.' or '-'",
        ));
    }
    Ok(())
}

fn validate_password(password: &str) -> Result<()> {
    let chars = password.chars().count();
    if chars < 8 || password.len() > 1024 {
        return Err(Error::bad_request("password must be 8 to 1024 characters long"));
    }
    Ok(())
}

/// Bounded length and no control characters.
pub fn validate_text(field: &str, value: &str, max_chars: usize) -> Result<()> {
    if value.chars().count() > max_chars {
        return Err(Error::bad_request(format!("{field} is longer than {max_chars} characters")));
    }
    if value.chars().any(char::is_control) {
        return Err(Error::bad_request(format!("{field} contains control characters")));
    }
    Ok(())
}

fn validate_email(email: &str) -> Result<()> {
    if email.is_empty() {
        return Ok(());
    }
    validate_text("email", email, 254)?;
    match email.split_once('@') {
        Some((local, domain)) if !local.is_empty() && !domain.is_empty() && !email.contains(' ') => Ok(()),
        _ => Err(Error::bad_request("email is not an address like name@example.org")),
    }
}
