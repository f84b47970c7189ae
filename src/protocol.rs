//! The wire format: every JSON field name rim clients see lives here.
//!
//! Inbound, it turns request bodies and WebSocket frames into plain Rust
//! values (or a 400 saying which field is wrong). Outbound, it turns storage
//! types into rim's JSON objects: the REST wrapper `{"ok","code","msg","data"}`,
//! User, Group, Message, and the WebSocket acks and pushes. Nothing outside
//! this module names a JSON field.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{Error, Result};
use crate::store::{
    Change, ChangeOp, ChatRow, Device, FileMeta, Group, Hit, Kind, Member, Message, NotifyLevel,
    Reaction, Role, User,
};
use crate::time::{Zone, format_wire};

// ---- REST: the wrapper ---------------------------------------------------------

#[derive(Serialize)]
struct Envelope<'a, T: Serialize> {
    ok: bool,
    code: u16,
    msg: Option<&'a str>,
    data: Option<T>,
}

/// `{"ok":true,"code":200,"msg":null,"data":...}`
pub fn success<T: Serialize>(data: &T) -> Vec<u8> {
    serde_json::to_vec(&Envelope {
        ok: true,
        code: 200,
        msg: None,
        data: Some(data),
    })
    .unwrap_or_else(|_| failure(&Error::Internal("cannot encode the answer".into())))
}

/// `{"ok":false,"code":<status>,"msg":"<reason>","data":null}`
pub fn failure(err: &Error) -> Vec<u8> {
    serde_json::to_vec(&Envelope::<()> {
        ok: false,
        code: err.code(),
        msg: Some(err.message()),
        data: None,
    })
    .unwrap_or_else(|_| br#"{"ok":false,"code":500,"msg":"internal error","data":null}"#.to_vec())
}

/// Decodes a JSON request body into `T`, with a 400 that names the problem.
pub fn decode<T: DeserializeOwned>(body: &[u8]) -> Result<T> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(Error::bad_request(
            "the request body is empty; send a JSON object",
        ));
    }
    // serde would also fill a struct from a JSON array; rim's bodies are objects.
    if body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(Error::bad_request("the request body must be a JSON object"));
    }
    serde_json::from_slice(body).map_err(|e| {
        Error::bad_request(match e.classify() {
            serde_json::error::Category::Syntax | serde_json::error::Category::Eof => {
                format!("the request body is not valid JSON: {e}")
            }
            _ => format!("invalid request: {e}"),
        })
    })
}

// ---- REST: request bodies ------------------------------------------------------

#[derive(Deserialize)]
pub struct CreateUser {
    pub account: String,
    pub password: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub avatar: String,
    #[serde(default)]
    pub email: String,
    /// Required when the server's `registration = "invite"`.
    #[serde(default)]
    pub invite: Option<String>,
}

/// `POST /api/invite/create` (admins).
#[derive(Deserialize)]
pub struct InviteCreate {
    /// How many accounts the code may create (default 1).
    #[serde(default)]
    pub uses: Option<u32>,
    /// Days until the code expires (default 7; 0 = never).
    #[serde(default, rename = "expiresDays")]
    pub expires_days: Option<u32>,
}

#[derive(Deserialize)]
pub struct Login {
    pub account: String,
    pub password: String,
}

/// `POST /api/user/update`: the fields to change (absent: unchanged).
#[derive(Deserialize)]
pub struct UserUpdate {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub avatar: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default, rename = "hideLastSeen")]
    pub hide_last_seen: Option<bool>,
}

/// `POST /api/user/password`.
#[derive(Deserialize)]
pub struct PasswordChange {
    pub old: String,
    pub new: String,
}

/// `POST /api/user/sessions/revoke`.
#[derive(Deserialize)]
pub struct SessionRevoke {
    pub id: i64,
}

/// `POST /api/group/leave`.
#[derive(Deserialize)]
pub struct GroupLeave {
    pub gid: u64,
}

#[derive(Deserialize)]
pub struct GroupCreate {
    pub group: GroupFields,
    #[serde(default)]
    pub users: Vec<MemberIn>,
}

#[derive(Deserialize)]
pub struct GroupFields {
    pub name: String,
    #[serde(default)]
    pub avatar: String,
    /// Accepted for rim compatibility; `group/create` always makes a group.
    #[serde(default)]
    pub mode: Option<u8>,
}

#[derive(Deserialize)]
pub struct MemberIn {
    pub uid: u64,
    #[serde(default)]
    pub role: Option<u8>,
}

impl MemberIn {
    pub fn role(&self) -> Result<Role> {
        match self.role {
            None => Ok(Role::Member),
            Some(r) => Role::from_u8(r).ok_or_else(|| {
                Error::bad_request(format!(
                    "role {r} is not valid: use 1 (member) or 2 (admin)"
                ))
            }),
        }
    }
}

#[derive(Deserialize)]
pub struct GroupUpdate {
    pub id: u64,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub avatar: Option<String>,
}

#[derive(Deserialize)]
pub struct MemberChange {
    pub gid: u64,
    pub uids: Vec<u64>,
    #[serde(rename = "opType")]
    pub op_type: u8,
}

#[derive(Deserialize)]
pub struct Direct {
    pub uid: u64,
}

#[derive(Deserialize)]
pub struct ChatListQuery {
    #[serde(default)]
    pub page: Option<i64>,
    #[serde(default)]
    pub size: Option<i64>,
}

#[derive(Deserialize)]
pub struct HistoryQuery {
    pub gid: u64,
    #[serde(default)]
    pub page: Option<i64>,
    #[serde(default)]
    pub size: Option<i64>,
    #[serde(default, rename = "beforeId")]
    pub before_id: Option<u64>,
    #[serde(default, rename = "afterId")]
    pub after_id: Option<u64>,
}

#[derive(Deserialize)]
pub struct GroupRead {
    pub gid: u64,
}

#[derive(Deserialize)]
pub struct FriendAdd {
    pub fid: u64,
}

#[derive(Deserialize)]
pub struct FriendModify {
    pub fid: u64,
    pub status: u8,
}

/// `POST /api/push/subscribe`: the browser's `PushSubscription.toJSON()`.
#[derive(Deserialize)]
pub struct PushSubscribe {
    pub endpoint: String,
    pub keys: PushKeys,
    /// When the browser will drop the subscription (ms), or null. Read so
    /// that a value of the wrong type is refused like any other field;
    /// otherwise unused, since the push service's 404/410 says when it ended.
    #[serde(default, rename = "expirationTime")]
    pub expiration_time: Option<f64>,
}

#[derive(Deserialize)]
pub struct PushKeys {
    pub p256dh: String,
    pub auth: String,
}

/// `POST /api/bot/<key>/message` with a JSON body.
#[derive(Deserialize)]
pub struct BotMessage {
    pub content: String,
}

#[derive(Deserialize)]
pub struct PushUnsubscribe {
    pub endpoint: String,
}

#[derive(Deserialize)]
pub struct GroupNotify {
    pub gid: u64,
    pub level: String,
}

/// A notification level by its wire name: `all`, `mentions` or `none`.
pub fn parse_level(s: &str) -> Result<NotifyLevel> {
    match s {
        "all" => Ok(NotifyLevel::All),
        "mentions" => Ok(NotifyLevel::Mentions),
        "none" => Ok(NotifyLevel::None),
        other => Err(Error::bad_request(format!(
            "unknown level {other:?}: use all, mentions or none"
        ))),
    }
}

fn level_name(level: NotifyLevel) -> &'static str {
    match level {
        NotifyLevel::All => "all",
        NotifyLevel::Mentions => "mentions",
        NotifyLevel::None => "none",
    }
}

#[derive(Serialize)]
pub struct PushKeyOut {
    /// The VAPID public key: base64url of the uncompressed P-256 point, the
    /// browser's `applicationServerKey`.
    key: String,
}

impl PushKeyOut {
    pub fn new(key: String) -> Self {
        PushKeyOut { key }
    }
}

#[derive(Serialize)]
struct PushPayload<'a> {
    gid: u64,
    #[serde(rename = "msgId")]
    msg_id: u64,
    title: &'a str,
    body: &'a str,
}

/// The JSON a push carries to the service worker, before encryption.
pub fn push_payload(gid: u64, msg_id: u64, title: &str, body: &str) -> String {
    encode(&PushPayload {
        gid,
        msg_id,
        title,
        body,
    })
}

#[derive(Serialize)]
struct VapidClaims<'a> {
    aud: &'a str,
    exp: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    sub: Option<&'a str>,
}

/// The claims of a VAPID JWT (RFC 8292): the push service's origin, the
/// expiry (Unix seconds) and the operator's contact.
pub fn vapid_claims(aud: &str, exp: i64, sub: Option<&str>) -> String {
    encode(&VapidClaims { aud, exp, sub })
}

// ---- REST: objects -------------------------------------------------------------

#[derive(Serialize)]
pub struct UserOut<'a> {
    id: u64,
    name: &'a str,
    avatar: &'a str,
    email: &'a str,
    account: &'a str,
    /// Always empty: rim clients expect the key.
    password: &'static str,
    /// An admin of this server (may create invites).
    admin: bool,
    /// This person keeps their last-seen time to themselves.
    #[serde(rename = "hideLastSeen")]
    hide_last_seen: bool,
    /// `GET /api/user/get` only: a device of theirs is connected now.
    #[serde(skip_serializing_if = "Option::is_none")]
    online: Option<bool>,
    /// `GET /api/user/get` only: when their last device went away (null
    /// when never, or when they hide it).
    #[serde(rename = "lastSeen", skip_serializing_if = "Option::is_none")]
    last_seen: Option<Option<String>>,
    /// `lastSeen` in Unix milliseconds, beside it.
    #[serde(rename = "lastSeenAt", skip_serializing_if = "Option::is_none")]
    last_seen_at: Option<Option<i64>>,
}

impl<'a> UserOut<'a> {
    /// `viewer` decides whether the email is shown: only to its owner.
    pub fn new(u: &'a User, viewer: u64) -> Self {
        UserOut {
            id: u.id,
            name: &u.name,
            avatar: &u.avatar,
            email: if u.id == viewer { &u.email } else { "" },
            account: &u.account,
            password: "",
            admin: u.admin,
            hide_last_seen: u.hide_last_seen,
            online: None,
            last_seen: None,
            last_seen_at: None,
        }
    }

    /// With `online` and `lastSeen` (their own is always shown to oneself).
    pub fn with_presence(
        u: &'a User,
        viewer: u64,
        online: bool,
        seen: Option<i64>,
        zone: &Zone,
    ) -> Self {
        UserOut {
            online: Some(online),
            last_seen: Some(seen.map(|t| format_wire(t, zone))),
            last_seen_at: Some(seen),
            ..UserOut::new(u, viewer)
        }
    }
}

/// A row of `GET /api/user/sessions`: one logged-in device.
#[derive(Serialize)]
pub struct DeviceOut<'a> {
    id: i64,
    #[serde(rename = "createTime")]
    create_time: String,
    /// When the token was last used, to the minute; null when not since
    /// the login.
    #[serde(rename = "lastUsedTime")]
    last_used_time: Option<String>,
    /// The same instants in Unix milliseconds.
    #[serde(rename = "createdAt")]
    created_at: i64,
    #[serde(rename = "lastUsedAt")]
    last_used_at: Option<i64>,
    #[serde(rename = "userAgent")]
    user_agent: &'a str,
    address: &'a str,
    /// The session of the request that lists them.
    current: bool,
    /// A WebSocket is logged in with it right now.
    online: bool,
}

impl<'a> DeviceOut<'a> {
    pub fn new(d: &'a Device, current_session: i64, online: bool, zone: &Zone) -> Self {
        let last_used = (d.last_used_at > 0).then_some(d.last_used_at);
        DeviceOut {
            id: d.id,
            create_time: format_wire(d.created_at, zone),
            last_used_time: last_used.map(|at| format_wire(at, zone)),
            created_at: d.created_at,
            last_used_at: last_used,
            user_agent: &d.user_agent,
            address: &d.address,
            current: d.id == current_session,
            online,
        }
    }
}

/// The answer to `POST /api/user/avatar`: the avatar now shown, and its file.
#[derive(Serialize)]
pub struct AvatarOut<'a> {
    pub avatar: &'a str,
    #[serde(rename = "fileId")]
    pub file_id: u64,
}

#[derive(Serialize)]
pub struct GroupOut<'a> {
    id: u64,
    name: &'a str,
    avatar: &'a str,
    mode: u8,
    #[serde(rename = "creatorUid")]
    creator_uid: u64,
    /// The caller's notification level here (`GET /api/group/get` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    notify: Option<&'static str>,
}

impl<'a> From<&'a Group> for GroupOut<'a> {
    fn from(g: &'a Group) -> Self {
        GroupOut {
            id: g.id,
            name: &g.name,
            avatar: &g.avatar,
            mode: g.mode.as_u8(),
            creator_uid: g.creator_uid,
            notify: None,
        }
    }
}

impl GroupOut<'_> {
    /// With the caller's notification level.
    pub fn with_level(mut self, level: NotifyLevel) -> Self {
        self.notify = Some(level_name(level));
        self
    }
}

#[derive(Serialize)]
pub struct MessageOut<'a> {
    id: u64,
    /// 0 Text, 1 RichText, 2 Image, 3 File.
    kind: u8,
    content: &'a str,
    gid: u64,
    uid: u64,
    client_msg_id: &'a str,
    /// In the server's `time_zone`, as rim clients read it.
    #[serde(rename = "createTime")]
    create_time: String,
    #[serde(rename = "updateTime")]
    update_time: String,
    /// The same instants as Unix milliseconds: no zone to guess.
    #[serde(rename = "createdAt")]
    created_at: i64,
    #[serde(rename = "updatedAt")]
    updated_at: i64,
    /// The message this one answers (same conversation), or null.
    #[serde(rename = "replyTo")]
    reply_to: Option<u64>,
    /// The members the text names as `@account`.
    mentions: &'a [u64],
    /// When it was last edited, or null.
    #[serde(rename = "editTime")]
    edit_time: Option<String>,
    /// `editTime` in Unix milliseconds, or null.
    #[serde(rename = "editedAt")]
    edited_at: Option<i64>,
    /// A tombstone: its content was erased.
    deleted: bool,
    /// History rows only: who reacted with what.
    #[serde(skip_serializing_if = "Option::is_none")]
    reactions: Option<Vec<ReactionOut<'a>>>,
}

#[derive(Serialize)]
pub struct ReactionOut<'a> {
    content: &'a str,
    uids: &'a [u64],
}

impl<'a> MessageOut<'a> {
    pub fn new(m: &'a Message, zone: &Zone) -> Self {
        MessageOut {
            id: m.id,
            kind: m.kind.as_u8(),
            content: &m.content,
            gid: m.gid,
            uid: m.uid,
            client_msg_id: &m.client_msg_id,
            create_time: format_wire(m.created_at, zone),
            update_time: format_wire(m.updated_at, zone),
            created_at: m.created_at,
            updated_at: m.updated_at,
            reply_to: m.reply_to,
            mentions: &m.mentions,
            edit_time: m.edited_at.map(|t| format_wire(t, zone)),
            edited_at: m.edited_at,
            deleted: m.deleted,
            reactions: None,
        }
    }
}

fn reactions_out(list: &[Reaction]) -> Vec<ReactionOut<'_>> {
    list.iter()
        .map(|r| ReactionOut {
            content: &r.content,
            uids: &r.uids,
        })
        .collect()
}

#[derive(Serialize)]
pub struct MemberOut<'a> {
    role: u8,
    user: UserOut<'a>,
    /// The newest message this member has read (0 = none), for read receipts.
    #[serde(rename = "readId")]
    read_id: u64,
}

impl<'a> MemberOut<'a> {
    pub fn new(m: &'a Member, viewer: u64) -> Self {
        MemberOut {
            role: m.role.as_u8(),
            user: UserOut::new(&m.user, viewer),
            read_id: m.read_id,
        }
    }
}

/// A row of `chat/list` (`unread` = count) or `history` (`unread` = null).
#[derive(Serialize)]
pub struct ChatRowOut<'a> {
    group: GroupOut<'a>,
    msg: MessageOut<'a>,
    user: UserOut<'a>,
    unread: Option<u64>,
}

impl<'a> ChatRowOut<'a> {
    pub fn chat(row: &'a ChatRow, viewer: u64, zone: &Zone) -> Self {
        ChatRowOut {
            group: (&row.group).into(),
            msg: MessageOut::new(&row.last, zone),
            user: UserOut::new(&row.user, viewer),
            unread: Some(row.unread),
        }
    }

    pub fn history(
        group: &'a Group,
        msg: &'a Message,
        sender: &'a User,
        viewer: u64,
        zone: &Zone,
    ) -> Self {
        let mut out = MessageOut::new(msg, zone);
        out.reactions = Some(reactions_out(&msg.reactions));
        ChatRowOut {
            group: group.into(),
            msg: out,
            user: UserOut::new(sender, viewer),
            unread: None,
        }
    }
}

/// A search result: a history row without `unread`, plus the snippet.
#[derive(Serialize)]
pub struct SearchHitOut<'a> {
    group: GroupOut<'a>,
    msg: MessageOut<'a>,
    user: UserOut<'a>,
    /// An excerpt of the message with each hit between `«` and `»`.
    snippet: &'a str,
}

impl<'a> SearchHitOut<'a> {
    pub fn new(hit: &'a Hit, viewer: u64, zone: &Zone) -> Self {
        SearchHitOut {
            group: (&hit.group).into(),
            msg: MessageOut::new(&hit.message, zone),
            user: UserOut::new(&hit.user, viewer),
            snippet: &hit.snippet,
        }
    }
}

/// The answer to `POST /api/file`: the stored file.
#[derive(Serialize)]
pub struct FileOut<'a> {
    id: u64,
    name: &'a str,
    size: u64,
    #[serde(rename = "contentType")]
    content_type: &'a str,
    /// Hex SHA-256 of the bytes (also the download's ETag).
    sha256: String,
    width: Option<u32>,
    height: Option<u32>,
}

impl<'a> FileOut<'a> {
    pub fn new(f: &'a FileMeta, name: &'a str) -> Self {
        FileOut {
            id: f.id,
            name,
            size: f.size,
            content_type: &f.content_type,
            sha256: hex(&f.sha256),
            width: f.width,
            height: f.height,
        }
    }
}

/// Lowercase hexadecimal.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// The content of an `Image` or `File` message as sent: the id of a file the
/// sender uploaded, and the name to show (other fields are ignored: the
/// server fills them in from the stored file).
#[derive(Deserialize)]
struct AttachmentIn {
    #[serde(rename = "fileId")]
    file_id: u64,
    #[serde(default)]
    name: Option<String>,
}

/// What an `Image` or `File` message refers to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    pub file_id: u64,
    pub name: Option<String>,
}

/// Reads the content of an `Image` or `File` message:
/// `{"fileId":N,"name":"..."}` (400 otherwise).
pub fn parse_attachment(kind: Kind, content: &str) -> Result<Attachment> {
    let what = kind_name(kind);
    let usage = || {
        format!(
            "the content of a{} {what} message is a JSON object like {{\"fileId\":7,\"name\":\"cat.jpg\"}} naming a file you uploaded with POST /api/file",
            if what.starts_with(['A', 'E', 'I', 'O', 'U']) {
                "n"
            } else {
                ""
            }
        )
    };
    if content.trim_start().as_bytes().first() != Some(&b'{') {
        return Err(Error::bad_request(usage()));
    }
    let a: AttachmentIn = serde_json::from_str(content)
        .map_err(|e| Error::bad_request(format!("{}: {e}", usage())))?;
    Ok(Attachment {
        file_id: a.file_id,
        name: a.name,
    })
}

#[derive(Serialize)]
struct AttachmentOut<'a> {
    #[serde(rename = "fileId")]
    file_id: u64,
    name: &'a str,
    size: u64,
    #[serde(rename = "contentType")]
    content_type: &'a str,
    width: Option<u32>,
    height: Option<u32>,
}

/// The content an `Image` or `File` message is stored and pushed with:
/// `{"fileId","name","size","contentType","width","height"}`, the facts
/// taken from the stored file.
pub fn attachment_content(f: &FileMeta, name: &str) -> String {
    encode(&AttachmentOut {
        file_id: f.id,
        name,
        size: f.size,
        content_type: &f.content_type,
        width: f.width,
        height: f.height,
    })
}

/// A new invite: the code, and the join link when `public_url` is set.
#[derive(Serialize)]
pub struct InviteOut<'a> {
    pub code: &'a str,
    pub link: Option<&'a str>,
}

/// What a client needs to know before anyone logs in.
#[derive(Serialize)]
pub struct ServerInfo {
    pub version: &'static str,
    /// "open", "invite" or "closed".
    pub registration: &'static str,
}

#[derive(Serialize)]
pub struct Health {
    pub status: &'static str,
    pub schema: i64,
    /// Logged-in WebSocket connections right now.
    pub connections: u64,
}

// ---- WebSocket: client frames --------------------------------------------------

#[derive(Deserialize)]
struct RawFrame {
    event: String,
    #[serde(default)]
    body: Option<RawBody>,
}

#[derive(Deserialize, Default)]
struct RawBody {
    #[serde(default)]
    kind: Option<String>,
    #[serde(default)]
    uid: Option<u64>,
    #[serde(default)]
    gid: Option<u64>,
    #[serde(default)]
    content: Option<String>,
    /// Read from the raw JSON before typing (see [`parse_frame`]); declared so a
    /// non-string clientMsgId is refused.
    #[allow(dead_code)]
    #[serde(default, rename = "clientMsgId")]
    client_msg_id: Option<String>,
    #[serde(default, rename = "msgId")]
    msg_id: Option<u64>,
    /// Login only: the device wants the replay even without a cursor.
    #[serde(default)]
    replay: Option<bool>,
    #[serde(default, rename = "replyTo")]
    reply_to: Option<u64>,
}

/// A client frame, checked for the fields its event needs. The `uid` a
/// frame may name is in [`Parsed::uid`], for every event alike.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientFrame {
    /// `content` = the REST token; `after` = the client's resume cursor;
    /// `replay` = `"replay": true`, the replay asked for without a cursor.
    Login {
        token: String,
        after: Option<u64>,
        replay: bool,
    },
    Msg {
        gid: u64,
        kind: Kind,
        content: String,
        reply_to: Option<u64>,
    },
    /// New text for the caller's message `msg_id`.
    Edit {
        gid: u64,
        msg_id: u64,
        content: String,
    },
    Delete {
        gid: u64,
        msg_id: u64,
    },
    /// Toggles the caller's reaction `content` (one emoji).
    React {
        gid: u64,
        msg_id: u64,
        content: String,
    },
    Typing {
        gid: u64,
    },
    Ack {
        gid: u64,
        msg_id: u64,
    },
    Read {
        gid: u64,
        msg_id: u64,
    },
    Heart,
    Logout,
    /// The client is in the foreground (`Visible`) or not (`Hidden`): a
    /// device in the foreground is not sent Web Push notifications.
    Visibility {
        visible: bool,
    },
}

impl ClientFrame {
    /// Whether the frame is a message, which the sender's message limit
    /// (`rate_limits.messages_per_second`) governs. Every other frame, and
    /// so every event added later unless it is named here, draws on its
    /// connection's frame limit (`rate_limits.frames_per_second`).
    pub fn is_message(&self) -> bool {
        matches!(self, ClientFrame::Msg { .. })
    }
}

/// How one event's body becomes its frame.
type ParseBody = fn(RawBody) -> Result<ClientFrame>;

/// Every event a client may send, and how its body becomes a
/// [`ClientFrame`]: the one place a new client event is declared (its body
/// fields are [`RawBody`]'s).
const CLIENT_EVENTS: &[(&str, ParseBody)] = &[
    ("Login", |b| {
        Ok(ClientFrame::Login {
            token: need(b.content, "Login", "content (the login token)")?,
            after: b.msg_id,
            replay: b.replay.unwrap_or(false),
        })
    }),
    ("Msg", |b| {
        Ok(ClientFrame::Msg {
            gid: need(b.gid, "Msg", "gid")?,
            kind: parse_kind(&need(b.kind, "Msg", "kind")?)?,
            content: need(b.content, "Msg", "content")?,
            reply_to: b.reply_to,
        })
    }),
    ("Edit", |b| {
        Ok(ClientFrame::Edit {
            gid: need(b.gid, "Edit", "gid")?,
            msg_id: need(b.msg_id, "Edit", "msgId")?,
            content: need(b.content, "Edit", "content")?,
        })
    }),
    ("Delete", |b| {
        Ok(ClientFrame::Delete {
            gid: need(b.gid, "Delete", "gid")?,
            msg_id: need(b.msg_id, "Delete", "msgId")?,
        })
    }),
    ("React", |b| {
        Ok(ClientFrame::React {
            gid: need(b.gid, "React", "gid")?,
            msg_id: need(b.msg_id, "React", "msgId")?,
            content: need(b.content, "React", "content (the emoji)")?,
        })
    }),
    ("Typing", |b| {
        Ok(ClientFrame::Typing {
            gid: need(b.gid, "Typing", "gid")?,
        })
    }),
    ("Ack", |b| {
        Ok(ClientFrame::Ack {
            gid: need(b.gid, "Ack", "gid")?,
            msg_id: need(b.msg_id, "Ack", "msgId")?,
        })
    }),
    ("Read", |b| {
        Ok(ClientFrame::Read {
            gid: need(b.gid, "Read", "gid")?,
            msg_id: need(b.msg_id, "Read", "msgId")?,
        })
    }),
    ("Heart", |_| Ok(ClientFrame::Heart)),
    ("Logout", |_| Ok(ClientFrame::Logout)),
    ("Visibility", |b| {
        let visible = match need(b.kind, "Visibility", "kind")?.as_str() {
            "Visible" => true,
            "Hidden" => false,
            other => {
                return Err(Error::bad_request(format!(
                    "unknown visibility {other:?}: use Visible or Hidden"
                )));
            }
        };
        Ok(ClientFrame::Visibility { visible })
    }),
];

/// A field the event needs, or a 400 naming it.
fn need<T>(v: Option<T>, event: &str, field: &str) -> Result<T> {
    v.ok_or_else(|| Error::bad_request(format!("{event} needs body.{field}")))
}

/// A parsed frame, plus the `clientMsgId` to echo in its answer (which is
/// known even when the rest of the frame is unusable).
pub struct Parsed {
    pub client_msg_id: String,
    /// The `uid` the frame names, if any: rim clients send their own; the
    /// server acts for the logged-in user and refuses any other.
    pub uid: Option<u64>,
    pub frame: Result<ClientFrame>,
}

pub fn parse_kind(s: &str) -> Result<Kind> {
    match s {
        "Text" => Ok(Kind::Text),
        "RichText" => Ok(Kind::RichText),
        "Image" => Ok(Kind::Image),
        "File" => Ok(Kind::File),
        other => Err(Error::bad_request(format!(
            "unknown message kind {other:?}: use Text, RichText, Image or File"
        ))),
    }
}

fn kind_name(k: Kind) -> &'static str {
    match k {
        Kind::Text => "Text",
        Kind::RichText => "RichText",
        Kind::Image => "Image",
        Kind::File => "File",
    }
}

pub fn parse_frame(text: &str) -> Parsed {
    let value: Value = match serde_json::from_str::<UniqueKeys>(text) {
        Ok(UniqueKeys(v)) => v,
        Err(e) => {
            // A frame refused for a repeated key may still say which
            // clientMsgId its answer belongs to.
            let client_msg_id = serde_json::from_str::<Value>(text)
                .ok()
                .and_then(|v| Some(v.get("body")?.get("clientMsgId")?.as_str()?.to_owned()))
                .unwrap_or_default();
            return Parsed {
                client_msg_id,
                uid: None,
                frame: Err(Error::bad_request(format!(
                    "the frame is not valid JSON: {e}"
                ))),
            };
        }
    };
    // serde would also fill the structs below from JSON arrays; frames are objects.
    let body_ok = value
        .get("body")
        .is_none_or(|b| b.is_object() || b.is_null());
    if !value.is_object() || !body_ok {
        return Parsed {
            client_msg_id: String::new(),
            uid: None,
            frame: Err(Error::bad_request(
                "a frame is a JSON object: {\"event\": ..., \"body\": {...}}",
            )),
        };
    }
    let client_msg_id = value
        .get("body")
        .and_then(|b| b.get("clientMsgId"))
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    let raw = serde_json::from_value::<RawFrame>(value)
        .map_err(|e| Error::bad_request(format!("invalid frame: {e}")));
    let uid = raw.as_ref().ok().and_then(|r| r.body.as_ref()?.uid);
    Parsed {
        client_msg_id,
        uid,
        frame: raw.and_then(check_frame),
    }
}

/// A JSON value in which no object names a key twice. serde_json keeps the
/// last of repeated keys, so `{"gid":1,"gid":999}` would act on 999 while a
/// proxy or log reading the first saw 1; a frame says each thing once.
struct UniqueKeys(Value);

impl<'de> Deserialize<'de> for UniqueKeys {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        d.deserialize_any(UniqueKeysVisitor).map(UniqueKeys)
    }
}

struct UniqueKeysVisitor;

impl<'de> serde::de::Visitor<'de> for UniqueKeysVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> std::result::Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> std::result::Result<Value, E> {
        Ok(v.into())
    }
    fn visit_u64<E>(self, v: u64) -> std::result::Result<Value, E> {
        Ok(v.into())
    }
    fn visit_f64<E>(self, v: f64) -> std::result::Result<Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }
    fn visit_str<E>(self, v: &str) -> std::result::Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> std::result::Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> std::result::Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> std::result::Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_some<D: serde::Deserializer<'de>>(self, d: D) -> std::result::Result<Value, D::Error> {
        UniqueKeys::deserialize(d).map(|u| u.0)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(
        self,
        mut seq: A,
    ) -> std::result::Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(UniqueKeys(v)) = seq.next_element()? {
            items.push(v);
        }
        Ok(Value::Array(items))
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(
        self,
        mut map: A,
    ) -> std::result::Result<Value, A::Error> {
        let mut object = serde_json::Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let UniqueKeys(v) = map.next_value()?;
            if object.contains_key(&key) {
                return Err(serde::de::Error::custom(format_args!(
                    "the key {key:?} appears twice"
                )));
            }
            object.insert(key, v);
        }
        Ok(Value::Object(object))
    }
}

fn check_frame(raw: RawFrame) -> Result<ClientFrame> {
    let event = raw.event.as_str();
    let body = raw.body.unwrap_or_default();
    if let Some((_, parse)) = CLIENT_EVENTS.iter().find(|(name, _)| *name == event) {
        return parse(body);
    }
    if matches!(event, "Notify" | "Presence") {
        return Err(Error::bad_request(format!(
            "{event} is sent by the server, not by clients"
        )));
    }
    let names: Vec<&str> = CLIENT_EVENTS.iter().map(|(name, _)| *name).collect();
    let (last, rest) = names.split_last().unwrap_or((&"", &[]));
    Err(Error::bad_request(format!(
        "unknown event {event:?}: use {} or {last}",
        rest.join(", ")
    )))
}

// ---- WebSocket: server frames --------------------------------------------------

#[derive(Serialize)]
struct Answer<'a> {
    #[serde(rename = "clientMsgId")]
    client_msg_id: &'a str,
    #[serde(rename = "serverMsgId")]
    server_msg_id: Option<u64>,
    kind: &'static str,
    content: &'a str,
    code: u16,
    /// On the ack of a `Msg`: when the server stored it, in its
    /// `time_zone` and as Unix milliseconds.
    #[serde(rename = "createTime", skip_serializing_if = "Option::is_none")]
    create_time: Option<String>,
    #[serde(rename = "createdAt", skip_serializing_if = "Option::is_none")]
    created_at: Option<i64>,
}

/// The rim acknowledgement: `{"clientMsgId","serverMsgId","kind":"Ack","content":"Ok","code":200}`.
pub fn ack(client_msg_id: &str, server_msg_id: Option<u64>) -> String {
    encode(&Answer {
        client_msg_id,
        server_msg_id,
        kind: "Ack",
        content: "Ok",
        code: 200,
        create_time: None,
        created_at: None,
    })
}

/// The ack of a stored message: the rim ack plus the message's
/// `createTime` and `createdAt`.
pub fn ack_message(client_msg_id: &str, m: &Message, zone: &Zone) -> String {
    encode(&Answer {
        client_msg_id,
        server_msg_id: Some(m.id),
        kind: "Ack",
        content: "Ok",
        code: 200,
        create_time: Some(format_wire(m.created_at, zone)),
        created_at: Some(m.created_at),
    })
}

/// The ack of a stored change: `serverMsgId` is the change's id in the
/// change log (the resume cursor counts it like a message id).
pub fn ack_change(client_msg_id: &str, c: &Change) -> String {
    ack(client_msg_id, Some(c.id))
}

/// The refusal of a frame: the ack's shape with `kind:"Error"`, the reason and its code.
pub fn error_answer(client_msg_id: &str, err: &Error) -> String {
    encode(&Answer {
        client_msg_id,
        server_msg_id: None,
        kind: "Error",
        content: err.message(),
        code: err.code(),
        create_time: None,
        created_at: None,
    })
}

#[derive(Serialize)]
struct Push<'a> {
    event: &'static str,
    body: PushBody<'a>,
}

#[derive(Serialize)]
struct PushBody<'a> {
    kind: &'a str,
    uid: u64,
    gid: Option<u64>,
    content: &'a str,
    #[serde(rename = "clientMsgId")]
    client_msg_id: &'a str,
    #[serde(rename = "msgId")]
    msg_id: Option<u64>,
    #[serde(rename = "createTime", skip_serializing_if = "Option::is_none")]
    create_time: Option<String>,
    #[serde(rename = "createdAt", skip_serializing_if = "Option::is_none")]
    created_at: Option<i64>,
    /// The fields below are left out where they are empty, so that the
    /// pushes of plain messages stay as they were.
    #[serde(rename = "replyTo", skip_serializing_if = "Option::is_none")]
    reply_to: Option<u64>,
    #[serde(skip_serializing_if = "<[u64]>::is_empty")]
    mentions: &'a [u64],
    /// A replayed message that was edited since.
    #[serde(rename = "editTime", skip_serializing_if = "Option::is_none")]
    edit_time: Option<String>,
    #[serde(rename = "editedAt", skip_serializing_if = "Option::is_none")]
    edited_at: Option<i64>,
    /// A replayed message that was deleted since.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    deleted: bool,
}

impl<'a> PushBody<'a> {
    fn plain(kind: &'a str, uid: u64, gid: Option<u64>, msg_id: Option<u64>) -> Self {
        PushBody {
            kind,
            uid,
            gid,
            content: "",
            client_msg_id: "",
            msg_id,
            create_time: None,
            reply_to: None,
            mentions: &[],
            edit_time: None,
            edited_at: None,
            created_at: None,
            deleted: false,
        }
    }
}

/// A stored message pushed to members: `{"event":"Msg","body":{...,"msgId":id}}`.
pub fn push_message(m: &Message, zone: &Zone) -> String {
    encode(&Push {
        event: "Msg",
        body: PushBody {
            kind: kind_name(m.kind),
            uid: m.uid,
            gid: Some(m.gid),
            content: &m.content,
            client_msg_id: &m.client_msg_id,
            msg_id: Some(m.id),
            create_time: Some(format_wire(m.created_at, zone)),
            created_at: Some(m.created_at),
            reply_to: m.reply_to,
            mentions: &m.mentions,
            edit_time: m.edited_at.map(|t| format_wire(t, zone)),
            edited_at: m.edited_at,
            deleted: m.deleted,
        },
    })
}

#[derive(Serialize)]
struct EventPush<T: Serialize> {
    event: &'static str,
    body: T,
}

#[derive(Serialize)]
struct EditBody<'a> {
    gid: u64,
    #[serde(rename = "msgId")]
    msg_id: u64,
    uid: u64,
    content: &'a str,
    kind: &'static str,
    #[serde(rename = "editTime")]
    edit_time: String,
    #[serde(rename = "editedAt")]
    edited_at: i64,
    #[serde(rename = "changeId")]
    change_id: u64,
}

#[derive(Serialize)]
struct DeleteBody {
    gid: u64,
    #[serde(rename = "msgId")]
    msg_id: u64,
    uid: u64,
    #[serde(rename = "deleteTime")]
    delete_time: String,
    #[serde(rename = "deletedAt")]
    deleted_at: i64,
    #[serde(rename = "changeId")]
    change_id: u64,
}

#[derive(Serialize)]
struct ReactBody<'a> {
    gid: u64,
    #[serde(rename = "msgId")]
    msg_id: u64,
    uid: u64,
    content: &'a str,
    on: bool,
    #[serde(rename = "changeId")]
    change_id: u64,
}

/// An entry of the change log, pushed live or replayed: `Edit`, `Delete` or
/// `React`, each with the `changeId` a resume cursor counts.
pub fn push_change(c: &Change, zone: &Zone) -> String {
    match c.op {
        ChangeOp::Edit => encode(&EventPush {
            event: "Edit",
            body: EditBody {
                gid: c.gid,
                msg_id: c.msg_id,
                uid: c.uid,
                content: &c.content,
                kind: kind_name(c.kind),
                edit_time: format_wire(c.created_at, zone),
                edited_at: c.created_at,
                change_id: c.id,
            },
        }),
        ChangeOp::Delete => encode(&EventPush {
            event: "Delete",
            body: DeleteBody {
                gid: c.gid,
                msg_id: c.msg_id,
                uid: c.uid,
                delete_time: format_wire(c.created_at, zone),
                deleted_at: c.created_at,
                change_id: c.id,
            },
        }),
        ChangeOp::React { on } => encode(&EventPush {
            event: "React",
            body: ReactBody {
                gid: c.gid,
                msg_id: c.msg_id,
                uid: c.uid,
                content: &c.content,
                on,
                change_id: c.id,
            },
        }),
    }
}

#[derive(Serialize)]
struct TypingBody {
    gid: u64,
    uid: u64,
}

/// `uid` is typing in `gid`.
pub fn push_typing(gid: u64, uid: u64) -> String {
    encode(&EventPush {
        event: "Typing",
        body: TypingBody { gid, uid },
    })
}

#[derive(Serialize)]
struct PresenceBody {
    uid: u64,
    online: bool,
    #[serde(rename = "lastSeen")]
    last_seen: Option<String>,
    #[serde(rename = "lastSeenAt")]
    last_seen_at: Option<i64>,
}

/// `uid`'s first device connected (`online`) or last one went away;
/// `last_seen` is null when they hide it.
pub fn push_presence(uid: u64, online: bool, last_seen: Option<i64>, zone: &Zone) -> String {
    encode(&EventPush {
        event: "Presence",
        body: PresenceBody {
            uid,
            online,
            last_seen: last_seen.map(|t| format_wire(t, zone)),
            last_seen_at: last_seen,
        },
    })
}

/// A read receipt: `reader` read `gid` up to `msg_id`.
pub fn push_read(reader: u64, gid: u64, msg_id: u64) -> String {
    encode(&Push {
        event: "Read",
        body: PushBody::plain("Read", reader, Some(gid), Some(msg_id)),
    })
}

/// What a `Notify` push is about.
#[derive(Debug, Clone, Copy)]
pub enum Notice {
    /// `uid` sent you a friend request.
    FriendRequest,
    /// `uid` accepted your friend request.
    FriendAccept,
    /// The login replay stopped at its limit; `msgId` is the last replayed id,
    /// fetch older unread messages with `/api/message/history`.
    ReplayTruncated,
    /// `uid` changed group `gid`: its name, avatar, members or roles (or left
    /// it). Reload it with
    /// `/api/group/get` and `/api/group/user/get` (a removed member gets 403).
    GroupChanged,
}

pub fn push_notify(notice: Notice, uid: u64, content: &str, msg_id: Option<u64>) -> String {
    push_notify_in(notice, uid, None, content, msg_id)
}

/// A `Notify` about conversation `gid`.
pub fn push_notify_in(
    notice: Notice,
    uid: u64,
    gid: Option<u64>,
    content: &str,
    msg_id: Option<u64>,
) -> String {
    let kind = match notice {
        Notice::FriendRequest => "FriendRequest",
        Notice::FriendAccept => "FriendAccept",
        Notice::ReplayTruncated => "ReplayTruncated",
        Notice::GroupChanged => "GroupChanged",
    };
    encode(&Push {
        event: "Notify",
        body: PushBody {
            content,
            ..PushBody::plain(kind, uid, gid, msg_id)
        },
    })
}

fn encode<T: Serialize>(v: &T) -> String {
    // Our own structs of strings and numbers always serialize.
    serde_json::to_string(v).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrapper_has_rims_fields_in_order() {
        assert_eq!(
            String::from_utf8(success(&true)).unwrap(),
            r#"{"ok":true,"code":200,"msg":null,"data":true}"#
        );
        assert_eq!(
            String::from_utf8(failure(&Error::not_found("user 7 not found"))).unwrap(),
            r#"{"ok":false,"code":404,"msg":"user 7 not found","data":null}"#
        );
    }

    #[test]
    fn frames_need_their_fields() {
        let p = parse_frame(
            r#"{"event":"Msg","body":{"gid":1,"kind":"Text","content":"hi","clientMsgId":"c1"}}"#,
        );
        assert_eq!(p.client_msg_id, "c1");
        assert!(matches!(p.frame, Ok(ClientFrame::Msg { gid: 1, .. })));

        let p = parse_frame(
            r#"{"event":"Msg","body":{"kind":"Text","content":"hi","clientMsgId":"c2"}}"#,
        );
        assert_eq!(p.client_msg_id, "c2");
        assert_eq!(p.frame.unwrap_err().code(), 400);

        assert!(parse_frame("{not json").frame.is_err());
        assert!(parse_frame(r#"{"event":"Fly"}"#).frame.is_err());
        assert!(
            parse_frame(r#"{"event":"Msg","body":{"gid":"x"}}"#)
                .frame
                .is_err()
        );
        assert_eq!(
            parse_frame(r#"{"event":"Heart"}"#).frame,
            Ok(ClientFrame::Heart)
        );
    }
}
