//! The storage layer's plain types: what a row is once read, and what a
//! caller hands in to be written. None is serializable: the wire's shapes
//! are `protocol`'s.

/// A registered person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: u64,
    pub account: String,
    pub name: String,
    pub avatar: String,
    pub email: String,
    pub created_at: i64,
    /// May create invites over REST.
    pub admin: bool,
    /// Others see whether this person is online, not when they last were.
    pub hide_last_seen: bool,
}

/// Fields of a new account; the password arrives already hashed.
#[derive(Debug, Clone)]
pub struct NewUser {
    pub account: String,
    pub name: String,
    pub avatar: String,
    pub email: String,
    pub password_hash: String,
}

/// A logged-in device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Session {
    pub id: i64,
    pub uid: u64,
    pub expires_at: i64,
    /// When the token was last used, to the minute (0: not since the login).
    pub last_used_at: i64,
    /// A device logged in with this token has sent an Ack.
    pub acks: bool,
}

/// A logged-in device as its owner lists them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    pub id: i64,
    pub created_at: i64,
    pub last_used_at: i64,
    pub user_agent: String,
    pub address: String,
}

/// Where a login came from, remembered with its session.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Origin {
    pub user_agent: String,
    pub address: String,
}

/// What `POST /api/user/update` changes; `None` keeps the stored value.
#[derive(Debug, Clone, Default)]
pub struct ProfileChange {
    pub name: Option<String>,
    pub avatar: Option<String>,
    pub email: Option<String>,
    pub hide_last_seen: Option<bool>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Group,
    Direct,
}

impl Mode {
    pub fn as_u8(self) -> u8 {
        match self {
            Mode::Group => 0,
            Mode::Direct => 1,
        }
    }

    pub(super) fn from_db(v: i64) -> Mode {
        if v == 1 { Mode::Direct } else { Mode::Group }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    Member,
    Admin,
}

impl Role {
    pub fn as_u8(self) -> u8 {
        match self {
            Role::Member => 1,
            Role::Admin => 2,
        }
    }

    pub fn from_u8(v: u8) -> Option<Role> {
        match v {
            1 => Some(Role::Member),
            2 => Some(Role::Admin),
            _ => None,
        }
    }

    pub(super) fn from_db(v: i64) -> Role {
        if v == 2 { Role::Admin } else { Role::Member }
    }
}

/// A conversation: a group, or a direct chat between two people.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    pub id: u64,
    pub name: String,
    pub avatar: String,
    pub mode: Mode,
    pub creator_uid: u64,
    pub created_at: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Text,
    RichText,
    Image,
    File,
}

impl Kind {
    pub fn as_u8(self) -> u8 {
        match self {
            Kind::Text => 0,
            Kind::RichText => 1,
            Kind::Image => 2,
            Kind::File => 3,
        }
    }

    pub(super) fn from_db(v: i64) -> Kind {
        match v {
            1 => Kind::RichText,
            2 => Kind::Image,
            3 => Kind::File,
            _ => Kind::Text,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub id: u64,
    pub gid: u64,
    pub uid: u64,
    pub kind: Kind,
    pub content: String,
    pub client_msg_id: String,
    pub created_at: i64,
    pub updated_at: i64,
    /// The message of the same conversation this one answers.
    pub reply_to: Option<u64>,
    /// The members the text names as `@account`.
    pub mentions: Vec<u64>,
    pub edited_at: Option<i64>,
    /// A tombstone: the content and everything derived from it is erased.
    pub deleted: bool,
    /// Who reacted with what, by emoji in first-use order; read for history
    /// pages only (empty elsewhere).
    pub reactions: Vec<Reaction>,
}

/// The people who reacted to a message with one emoji.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reaction {
    pub content: String,
    pub uids: Vec<u64>,
}

/// What a change of the change log did to its message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeOp {
    Edit,
    Delete,
    /// A reaction added (`on`) or taken back.
    React {
        on: bool,
    },
}

impl ChangeOp {
    pub(super) fn as_db(self) -> i64 {
        match self {
            ChangeOp::Edit => 1,
            ChangeOp::Delete => 2,
            ChangeOp::React { on: true } => 3,
            ChangeOp::React { on: false } => 4,
        }
    }

    pub(super) fn from_db(v: i64) -> ChangeOp {
        match v {
            1 => ChangeOp::Edit,
            2 => ChangeOp::Delete,
            3 => ChangeOp::React { on: true },
            _ => ChangeOp::React { on: false },
        }
    }
}

/// One entry of a conversation's change log: an edit, a deletion or a
/// reaction, with an id from the messages' sequence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub id: u64,
    pub gid: u64,
    pub msg_id: u64,
    /// Who made the change.
    pub uid: u64,
    pub op: ChangeOp,
    /// The new text of an Edit, the emoji of a reaction, '' for a Delete.
    pub content: String,
    /// The kind of the changed message.
    pub kind: Kind,
    pub client_msg_id: String,
    pub created_at: i64,
}

/// When a person's last device went away, and whether they hide it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LastSeen {
    /// `None`: never (since schema version 6).
    pub at: Option<i64>,
    pub hidden: bool,
}

impl LastSeen {
    /// What `viewer` may see of `owner`'s time: all of it for themselves.
    pub fn shown_to(self, owner: u64, viewer: u64) -> Option<i64> {
        if self.hidden && owner != viewer {
            None
        } else {
            self.at
        }
    }
}

/// One row of a user's conversation list.
#[derive(Debug, Clone)]
pub struct ChatRow {
    pub group: Group,
    pub last: Message,
    /// The partner in a direct chat, the last sender in a group.
    pub user: User,
    pub unread: u64,
}

/// A member of a conversation, with how far they have read.
#[derive(Debug, Clone)]
pub struct Member {
    pub role: Role,
    pub read_id: u64,
    pub user: User,
}

/// A page of one conversation's history, oldest first.
#[derive(Debug, Clone)]
pub struct History {
    pub group: Group,
    pub rows: Vec<(Message, User)>,
}

/// Where a history page starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cursor {
    /// Page n (from 1) counted back from the newest message.
    Page(u32),
    /// The newest messages below this id.
    Before(u64),
    /// The oldest messages above this id.
    After(u64),
}

/// What a read receipt changed, for pushing to the other members.
#[derive(Debug, Clone)]
pub struct ReadMark {
    pub gid: u64,
    pub msg_id: u64,
    pub members: Vec<u64>,
    /// Whether the mark moved; one that stayed is not pushed.
    pub moved: bool,
}

impl ReadMark {
    /// A receipt for `msg_id` that left the mark where it was (at or past it).
    pub fn unmoved(gid: u64, msg_id: u64) -> ReadMark {
        ReadMark {
            gid,
            msg_id,
            members: Vec::new(),
            moved: false,
        }
    }
}

/// Member list operation of `POST /api/group/user/change`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberOp {
    Add,
    Remove,
    /// Make the members named admins.
    Promote,
    /// Make the admins named plain members (a group keeps at least one).
    Demote,
}

/// Friend list selector of `GET /api/friend/list`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FriendList {
    /// Requests waiting for this user's answer.
    Incoming,
    /// Mutual friends.
    Friends,
    /// Requests this user sent that are still pending.
    Outgoing,
}

/// When a member is notified of a conversation's messages through Web Push.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotifyLevel {
    /// Every message.
    All,
    /// Only messages that mention them.
    Mentions,
    /// Never.
    None,
}

impl NotifyLevel {
    /// The level of a member who never chose one: every message of a direct
    /// chat, the mentions of a group.
    pub fn default_for(mode: Mode) -> NotifyLevel {
        match mode {
            Mode::Direct => NotifyLevel::All,
            Mode::Group => NotifyLevel::Mentions,
        }
    }

    pub(super) fn as_db(self) -> i64 {
        match self {
            NotifyLevel::All => 0,
            NotifyLevel::Mentions => 1,
            NotifyLevel::None => 2,
        }
    }

    /// A stored level, or the conversation's default when none was chosen.
    pub(super) fn from_db(v: Option<i64>, mode: Mode) -> NotifyLevel {
        match v {
            Some(0) => NotifyLevel::All,
            Some(1) => NotifyLevel::Mentions,
            Some(2) => NotifyLevel::None,
            _ => NotifyLevel::default_for(mode),
        }
    }
}

/// A browser's push subscription, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    pub id: i64,
    pub uid: u64,
    /// The session (device) that subscribed.
    pub session: i64,
    pub endpoint: String,
    pub p256dh: Vec<u8>,
    pub auth: Vec<u8>,
}

/// A new subscription, its keys already checked.
#[derive(Debug, Clone)]
pub struct NewSubscription {
    pub endpoint: String,
    pub p256dh: Vec<u8>,
    pub auth: Vec<u8>,
}

/// Whom a stored message is pushed to: the subscriptions of the members
/// (but the sender) whose level lets it through, and what the notification
/// shows.
#[derive(Debug, Clone, Default)]
pub struct PushTargets {
    /// The sender's display name.
    pub sender: String,
    /// The conversation's name for a group, `None` for a direct chat.
    pub group: Option<String>,
    pub subscriptions: Vec<Subscription>,
}

/// A bot, as `rim bot list` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bot {
    pub id: i64,
    pub uid: u64,
    pub name: String,
    pub gid: u64,
    pub group: String,
    pub created_at: i64,
}
