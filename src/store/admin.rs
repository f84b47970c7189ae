//! Operating rim: administrators, disabled accounts, invites, the revocations
//! the command line hands to a running server, and the checks and copies of
//! `rim check`, `rim backup` and `rim restore`.
//!
//! These functions take a plain `&Connection` so that both sides can use
//! them: the server through [`Db`](super::Db) (writes on the writer thread,
//! reads on the pool), and the `rim` command line on a connection of its own
//! to the same file, next to a running server. WAL mode and `busy_timeout`
//! make the two take turns; each command-line change is one transaction.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use rusqlite::{Connection, OpenFlags, OptionalExtension, params};

use super::model::{NewUser, User};
use super::rows::user_from_row;
use super::schema::{self, APPLICATION_ID, SCHEMA_VERSION};
use super::users;
use crate::config::{Checkpointer, Synchronous};
use crate::error::{Error, Result};

/// An account as the operator sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub user: User,
    pub is_admin: bool,
    /// When the account was disabled; `None` while it may log in.
    pub disabled_at: Option<i64>,
    /// Live login sessions (devices).
    pub sessions: u64,
}

/// A new invite. The code itself never reaches the database, only its hash.
#[derive(Debug, Clone)]
pub struct NewInvite {
    pub code_hash: [u8; 32],
    pub max_uses: u32,
    /// Unix milliseconds; `None` = never expires.
    pub expires_at: Option<i64>,
    /// The admin who made it over REST; `None` for the command line.
    pub created_by: Option<u64>,
}

/// What a database holds, for `rim backup`, `rim check` and `/metrics`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    pub users: u64,
    pub messages: u64,
    pub groups: u64,
    pub sessions: u64,
    /// Size of the main file in bytes (pages times page size; the WAL aside).
    pub bytes: u64,
    pub schema_version: i64,
}

/// The outcome of `rim check`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckReport {
    /// `PRAGMA integrity_check` lines other than "ok".
    pub integrity: Vec<String>,
    /// Rows whose foreign key points nowhere.
    pub foreign_key_violations: u64,
    pub stats: Stats,
}

impl CheckReport {
    pub fn ok(&self) -> bool {
        self.integrity.is_empty() && self.foreign_key_violations == 0
    }
}

// ---- one server per file -------------------------------------------------------

/// The lock file beside a database: `rim.db` has `rim.db.lock`.
pub fn lock_path(db: &Path) -> PathBuf {
    let mut path = db.as_os_str().to_owned();
    path.push(".lock");
    PathBuf::from(path)
}

/// Takes the exclusive lock that a server holds on its database for as long
/// as its writer runs (and `rim restore` while it replaces the file). The OS
/// drops the lock when the file is closed or the process dies, even by
/// `kill -9`, so a stale lock file is harmless. Fails at once if someone
/// else holds it.
///
/// The lock is taken beside the file itself, not beside the name given: a
/// symlink is followed to the database it names (two servers reached the
/// same file through a link and each stored the other's resends), and a
/// database with more than one hard link is refused, since its other names
/// would have locks of their own (two writers through a hard link corrupted
/// a database).
pub fn lock_database(db: &Path) -> anyhow::Result<File> {
    let db = &the_file_itself(db)?;
    let path = lock_path(db);
    let mut options = OpenOptions::new();
    options.create(true).truncate(false).write(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let file = options
        .open(&path)
        .with_context(|| format!("cannot create the lock file {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(TryLockError::WouldBlock) => bail!(
            "another rim server is using {} (it holds {}): stop it first",
            db.display(),
            path.display()
        ),
        Err(TryLockError::Error(e)) => {
            Err(e).with_context(|| format!("cannot lock {}", path.display()))
        }
    }
}

/// `db` with every symlink resolved (its directory's, when the file does
/// not exist yet); an error for a file with other hard links.
fn the_file_itself(db: &Path) -> anyhow::Result<PathBuf> {
    match std::fs::canonicalize(db) {
        Ok(real) => {
            #[cfg(unix)]
            {
                use std::os::unix::fs::MetadataExt;
                let links = std::fs::metadata(&real)
                    .with_context(|| format!("cannot read {}", real.display()))?
                    .nlink();
                if links > 1 {
                    bail!(
                        "{} has {links} hard links: another name for the same file would \
                         let a second server write it at once; keep one name (remove the \
                         other links) or copy the file with `rim backup`",
                        db.display()
                    );
                }
            }
            Ok(real)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let name = db
                .file_name()
                .with_context(|| format!("{} names no file", db.display()))?;
            let dir = match db.parent() {
                Some(d) if !d.as_os_str().is_empty() => d,
                _ => Path::new("."),
            };
            let dir = std::fs::canonicalize(dir)
                .with_context(|| format!("cannot find the directory of {}", db.display()))?;
            Ok(dir.join(name))
        }
        Err(e) => Err(e).with_context(|| format!("cannot find {}", db.display())),
    }
}

// ---- opening a file from the command line ----------------------------------

/// Opens an existing database read-write for an administrative change,
/// migrating it if this binary is newer. With `create`, a missing file is
/// created (so the first admin can be made before the first `rim serve`).
/// `checkpoints` is the configuration's: with Litestream, the command's
/// connection does not checkpoint either.
pub fn open_for_change(
    path: &Path,
    create: bool,
    checkpoints: Checkpointer,
) -> anyhow::Result<Connection> {
    if !create && !path.exists() {
        bail!("there is no database at {}", path.display());
    }
    let conn = schema::open_writer(path, Synchronous::Full, 0)?;
    schema::set_checkpointer(&conn, checkpoints)?;
    Ok(conn)
}

/// Runs `f` in one `BEGIN IMMEDIATE` transaction on a command-line
/// connection: it waits (`busy_timeout`) for the server's writer to finish
/// its batch instead of failing halfway when the server commits in between.
pub fn immediate<R>(c: &mut Connection, f: impl FnOnce(&Connection) -> Result<R>) -> Result<R> {
    let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let result = f(&tx)?;
    tx.commit()?;
    Ok(result)
}

/// Opens an existing rim database read-only, refusing a file that is not
/// rim's or is newer than this binary.
pub fn open_read_only(path: &Path) -> anyhow::Result<Connection> {
    if !path.is_file() {
        bail!("there is no database at {}", path.display());
    }
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .with_context(|| format!("cannot open {}", path.display()))?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    identify(&conn, path)?;
    Ok(conn)
}

/// Checks that `conn` is a rim database this binary understands; returns
/// its schema version.
pub fn identify(conn: &Connection, path: &Path) -> anyhow::Result<i64> {
    let app_id: i64 = conn
        .query_row("PRAGMA application_id", [], |r| r.get(0))
        .with_context(|| format!("{} is not a SQLite database", path.display()))?;
    if app_id != APPLICATION_ID {
        bail!(
            "{} is not a rim database (application_id {app_id:#x}, expected {APPLICATION_ID:#x})",
            path.display()
        );
    }
    let version = schema::version_of(conn)?;
    if !(1..=SCHEMA_VERSION).contains(&version) {
        bail!(
            "{} has schema version {version}; this rim understands 1 to {SCHEMA_VERSION}",
            path.display()
        );
    }
    Ok(version)
}

// ---- accounts -----------------------------------------------------------------

/// Creates an account, redeeming `invite` in the same transaction. The first
/// account of the database becomes an admin, as does any with `admin`.
/// Returns the uid and whether the account is an admin.
pub fn register(
    c: &Connection,
    user: &NewUser,
    invite: Option<&[u8; 32]>,
    admin: bool,
    now: i64,
) -> Result<(u64, bool)> {
    if let Some(code_hash) = invite {
        redeem_invite(c, code_hash, now)?;
    }
    let uid = users::create(c, user, now)?;
    let promoted = c
        .prepare_cached(
            "UPDATE users SET is_admin = 1
             WHERE id = ?1 AND (?2 OR NOT EXISTS (SELECT 1 FROM users WHERE id <> ?1))",
        )?
        .execute(params![uid, admin])?;
    Ok((uid, promoted == 1))
}

/// Uses one use of an invite, or says precisely why it cannot be used.
fn redeem_invite(c: &Connection, code_hash: &[u8; 32], now: i64) -> Result<()> {
    let redeemed = c
        .prepare_cached(
            "UPDATE invites SET used = used + 1
             WHERE code_hash = ?1 AND used < max_uses AND (expires_at IS NULL OR expires_at > ?2)",
        )?
        .execute(params![&code_hash[..], now])?;
    if redeemed == 1 {
        return Ok(());
    }
    let found: Option<(i64, i64, Option<i64>)> = c
        .prepare_cached("SELECT used, max_uses, expires_at FROM invites WHERE code_hash = ?1")?
        .query_row([&code_hash[..]], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .optional()?;
    Err(Error::forbidden(match found {
        None => "unknown invite code: check it, or ask for a new one".to_owned(),
        Some((_, _, Some(expires))) if expires <= now => format!(
            "this invite code expired on {} UTC: ask for a new one",
            crate::time::format_wire(expires, &crate::time::Zone::utc())
        ),
        Some((used, max, _)) => {
            format!("this invite code has been used up ({used} of {max} uses): ask for a new one")
        }
    }))
}

pub fn is_admin(c: &Connection, uid: u64) -> Result<bool> {
    Ok(
        c.prepare_cached("SELECT is_admin FROM users WHERE id = ?1")?
            .query_row([uid], |r| r.get::<_, bool>(0))
            .optional()?
            .unwrap_or(false),
    )
}

/// Every account, oldest first.
pub fn accounts(c: &Connection, now: i64) -> Result<Vec<Account>> {
    let sql = concat!(
        "SELECT ",
        user_cols!(),
        ", u.is_admin, u.disabled_at,
                (SELECT count(*) FROM sessions s WHERE s.uid = u.id AND s.expires_at > ?1)
         FROM users u ORDER BY u.id"
    );
    let mut stmt = c.prepare(sql)?;
    let rows = stmt.query_map([now], |r| {
        Ok(Account {
            user: user_from_row(r, 0)?,
            is_admin: r.get(8)?,
            disabled_at: r.get(9)?,
            sessions: r.get(10)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// The uid of an account (any case), or 404.
pub fn account_id(c: &Connection, account: &str) -> Result<u64> {
    c.prepare_cached("SELECT id FROM users WHERE account = ?1")?
        .query_row([account], |r| r.get(0))
        .optional()?
        .ok_or_else(|| Error::not_found(format!("no account {account:?}")))
}

/// Disables (or enables again) an account. Disabling revokes every session
/// of it; the data stays. Returns how many sessions were revoked.
pub fn set_disabled(c: &Connection, account: &str, disabled: bool, now: i64) -> Result<usize> {
    let uid = account_id(c, account)?;
    c.prepare_cached("UPDATE users SET disabled_at = ?2 WHERE id = ?1")?
        .execute(params![uid, disabled.then_some(now)])?;
    if disabled {
        revoke_sessions(c, uid, now)
    } else {
        Ok(0)
    }
}

/// Replaces an account's password hash and revokes its sessions.
pub fn set_password(c: &Connection, account: &str, password_hash: &str, now: i64) -> Result<usize> {
    let uid = account_id(c, account)?;
    c.prepare_cached("UPDATE users SET password_hash = ?2 WHERE id = ?1")?
        .execute(params![uid, password_hash])?;
    revoke_sessions(c, uid, now)
}

/// Deletes every session of `uid` and records the revocation, so that a
/// running server closes the account's WebSockets. Returns how many
/// sessions there were.
pub fn revoke_sessions(c: &Connection, uid: u64, now: i64) -> Result<usize> {
    let deleted = c
        .prepare_cached("DELETE FROM sessions WHERE uid = ?1")?
        .execute([uid])?;
    c.prepare_cached("INSERT INTO revocations (uid, created_at) VALUES (?1, ?2)")?
        .execute(params![uid, now])?;
    Ok(deleted)
}

/// Accounts revoked after revocation `after`: (revocation id, uid).
pub fn revocations_after(c: &Connection, after: i64) -> Result<Vec<(i64, u64)>> {
    Ok(
        c.prepare_cached("SELECT id, uid FROM revocations WHERE id > ?1 ORDER BY id")?
            .query_map([after], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<_>>()?,
    )
}

/// The newest revocation id (0 when there is none).
pub fn last_revocation(c: &Connection) -> Result<i64> {
    Ok(
        c.prepare_cached("SELECT coalesce(max(id), 0) FROM revocations")?
            .query_row([], |r| r.get(0))?,
    )
}

/// Forgets revocations made before `before`: every server polling the file
/// has acted on them long since.
pub fn purge_revocations(c: &Connection, before: i64) -> Result<usize> {
    Ok(
        c.prepare_cached("DELETE FROM revocations WHERE created_at < ?1")?
            .execute([before])?,
    )
}

// ---- invites ------------------------------------------------------------------

pub fn create_invite(c: &Connection, invite: &NewInvite, now: i64) -> Result<i64> {
    c.prepare_cached(
        "INSERT INTO invites (code_hash, max_uses, expires_at, created_by, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![
        &invite.code_hash[..],
        invite.max_uses,
        invite.expires_at,
        invite.created_by,
        now
    ])?;
    Ok(c.last_insert_rowid())
}

// ---- whole-file operations ------------------------------------------------------

pub fn stats(c: &Connection) -> Result<Stats> {
    let (users, messages, groups, sessions) = c.query_row(
        "SELECT (SELECT count(*) FROM users), (SELECT count(*) FROM messages),
                (SELECT count(*) FROM groups), (SELECT count(*) FROM sessions)",
        [],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
    )?;
    Ok(Stats {
        users,
        messages,
        groups,
        sessions,
        bytes: size_bytes(c)?,
        schema_version: schema::version_of(c)?,
    })
}

/// The size of the database file in bytes, cheaply (no table is read).
pub fn size_bytes(c: &Connection) -> Result<u64> {
    let pages: u64 = c.query_row("PRAGMA page_count", [], |r| r.get(0))?;
    let page_size: u64 = c.query_row("PRAGMA page_size", [], |r| r.get(0))?;
    Ok(pages * page_size)
}

/// Runs SQLite's full integrity check and the foreign key check.
pub fn check(c: &Connection) -> Result<CheckReport> {
    let integrity: Vec<String> = c
        .prepare("PRAGMA integrity_check")?
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<Vec<String>>>()?
        .into_iter()
        .filter(|line| line != "ok")
        .collect();
    let foreign_key_violations = c
        .prepare("PRAGMA foreign_key_check")?
        .query_map([], |_| Ok(()))?
        .count() as u64;
    Ok(CheckReport {
        integrity,
        foreign_key_violations,
        stats: stats(c)?,
    })
}

/// Writes a consistent copy of the database to `dest`, which must not exist.
///
/// `VACUUM INTO` reads one snapshot (a read transaction: in WAL mode the
/// server's writer goes on meanwhile) and writes it compacted to a new file
/// that keeps `application_id` and `user_version`, in rollback-journal mode,
/// so the copy is one self-contained file.
pub fn copy_into(c: &Connection, dest: &Path) -> Result<()> {
    let dest = dest
        .to_str()
        .ok_or_else(|| Error::bad_request("the destination path is not valid UTF-8"))?;
    schema::create_private(Path::new(dest))
        .map_err(|e| Error::Internal(format!("cannot create {dest}: {e}")))?;
    c.execute("VACUUM INTO ?1", [dest])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new_user(account: &str) -> NewUser {
        NewUser {
            account: account.into(),
            name: account.into(),
            avatar: String::new(),
            email: String::new(),
            password_hash: "x".into(),
        }
    }

    fn open(dir: &Path) -> Connection {
        open_for_change(&dir.join("a.db"), true, Checkpointer::Rim).unwrap()
    }

    #[test]
    fn the_database_lock_is_exclusive_and_released_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("l.db");
        let held = lock_database(&db).unwrap();
        let err = lock_database(&db).unwrap_err().to_string();
        assert!(err.contains("another rim server"), "{err}");
        drop(held);
        assert!(lock_database(&db).is_ok());
    }

    #[test]
    fn the_first_account_is_admin_and_later_ones_only_when_asked() {
        let dir = tempfile::tempdir().unwrap();
        let c = open(dir.path());
        assert_eq!(
            register(&c, &new_user("alice"), None, false, 1).unwrap(),
            (1, true)
        );
        assert_eq!(
            register(&c, &new_user("bob"), None, false, 2).unwrap(),
            (2, false)
        );
        assert_eq!(
            register(&c, &new_user("carol"), None, true, 3).unwrap(),
            (3, true)
        );
        assert!(
            is_admin(&c, 1).unwrap() && !is_admin(&c, 2).unwrap() && !is_admin(&c, 99).unwrap()
        );
    }

    #[test]
    fn invites_are_used_up_expire_and_unknown_codes_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let c = open(dir.path());
        let hash = |b: u8| [b; 32];
        let invite = |b: u8, max_uses, expires_at| NewInvite {
            code_hash: hash(b),
            max_uses,
            expires_at,
            created_by: None,
        };
        create_invite(&c, &invite(1, 1, None), 0).unwrap();
        create_invite(&c, &invite(2, 5, Some(100)), 0).unwrap();
        register(&c, &new_user("alice"), Some(&hash(1)), false, 10).unwrap();
        let used_up = register(&c, &new_user("bob"), Some(&hash(1)), false, 10).unwrap_err();
        assert!(used_up.message().contains("used up"), "{used_up}");
        let expired = register(&c, &new_user("bob"), Some(&hash(2)), false, 100).unwrap_err();
        assert!(expired.message().contains("expired"), "{expired}");
        let unknown = register(&c, &new_user("bob"), Some(&hash(3)), false, 10).unwrap_err();
        assert!(unknown.message().contains("unknown"), "{unknown}");
        assert_eq!(unknown.code(), 403);
    }

    #[test]
    fn disabling_revokes_sessions_for_the_server_to_see() {
        let dir = tempfile::tempdir().unwrap();
        let c = open(dir.path());
        register(&c, &new_user("alice"), None, false, 1).unwrap();
        users::create_session(&c, 1, &[7; 32], &Default::default(), 1, i64::MAX).unwrap();
        users::create_session(&c, 1, &[8; 32], &Default::default(), 1, i64::MAX).unwrap();
        let before = last_revocation(&c).unwrap();
        assert_eq!(set_disabled(&c, "alice", true, 5).unwrap(), 2);
        let revoked = revocations_after(&c, before).unwrap();
        assert_eq!(revoked.iter().map(|r| r.1).collect::<Vec<_>>(), vec![1]);
        let err =
            users::create_session(&c, 1, &[9; 32], &Default::default(), 6, i64::MAX).unwrap_err();
        assert_eq!(err.code(), 403, "a disabled account cannot log in");
        let list = accounts(&c, 6).unwrap();
        assert_eq!(list[0].disabled_at, Some(5));
        assert_eq!(list[0].sessions, 0);
        set_disabled(&c, "ALICE", false, 7).unwrap();
        assert!(users::create_session(&c, 1, &[9; 32], &Default::default(), 8, i64::MAX).is_ok());
        assert_eq!(purge_revocations(&c, 6).unwrap(), 1);
        assert_eq!(set_disabled(&c, "nobody", true, 9).unwrap_err().code(), 404);
    }

    #[test]
    fn a_copy_is_checked_and_identified() {
        let dir = tempfile::tempdir().unwrap();
        let c = open(dir.path());
        register(&c, &new_user("alice"), None, false, 1).unwrap();
        let dest = dir.path().join("copy.db");
        copy_into(&c, &dest).unwrap();
        let copy = open_read_only(&dest).unwrap();
        let report = check(&copy).unwrap();
        assert!(report.ok(), "{report:?}");
        assert_eq!(report.stats.users, 1);
        assert_eq!(report.stats.schema_version, SCHEMA_VERSION);
        assert!(
            copy_into(&c, &dest).is_err(),
            "an existing file is never overwritten"
        );
        let foreign = dir.path().join("foreign.db");
        Connection::open(&foreign)
            .unwrap()
            .execute_batch("CREATE TABLE t (x);")
            .unwrap();
        assert!(open_read_only(&foreign).is_err());
    }
}
