//! Opening a database file: recognising it as rim's, migrating it, and the
//! connection settings every connection shares.
//!
//! A rim database carries `PRAGMA application_id` = [`APPLICATION_ID`] and its
//! schema version in `PRAGMA user_version`. A file that is some other program's
//! database, or was written by a newer rim, is refused before anything in it is
//! changed.

use std::path::Path;

use anyhow::{Context, bail};
use rusqlite::{Connection, OpenFlags};

use crate::config::Synchronous;

/// "rim1" in ASCII: marks a SQLite file as rim's.
pub const APPLICATION_ID: i64 = 0x7269_6d31;

/// The whole current schema: a new database is made from this alone.
pub(super) const SCHEMA: &str = include_str!("../../schema.sql");

/// `MIGRATIONS[i]` takes a database from version `i` to `i + 1`: first the
/// frozen version-1 schema, then one file per later version, all in
/// `migrations/`. A database at version N runs `MIGRATIONS[N..]`; a new one
/// runs none of them (it gets [`SCHEMA`]). Changing the schema means
/// changing `schema.sql` and adding a migration here, which makes the same
/// change to an existing database and bumps [`SCHEMA_VERSION`].
pub(super) const MIGRATIONS: &[&str] = &[
    include_str!("../../migrations/001_initial.sql"),
    include_str!("../../migrations/002_accounts.sql"),
    include_str!("../../migrations/003_files_search.sql"),
    include_str!("../../migrations/004_resend_window.sql"),
    include_str!("../../migrations/005_index_merges.sql"),
];

/// The schema version this binary writes.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// Opens (creating if needed) the read-write connection and brings the schema
/// up to date.
pub fn open_writer(path: &Path, sync: Synchronous, max_mb: u64) -> anyhow::Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .with_context(|| format!("cannot open database {}", path.display()))?;
    check_identity(&conn, path)?;
    // WAL lets readers run beside the writer; foreign keys keep rows honest.
    let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        bail!("cannot switch {} to WAL mode (got {mode})", path.display());
    }
    conn.execute_batch(match sync {
        Synchronous::Full => "PRAGMA synchronous = FULL;",
        Synchronous::Normal => "PRAGMA synchronous = NORMAL;",
    })?;
    // The writer thread checkpoints the WAL between batches (see
    // `writer::Checkpoints`); other connections that write (the CLI's) keep
    // SQLite's automatic checkpoint. The WAL file is trimmed back to 64 MiB
    // after each checkpoint.
    conn.execute_batch("PRAGMA journal_size_limit = 67108864;")?;
    common_pragmas(&conn)?;
    migrate(&conn)?;
    set_size_limit(&conn, max_mb)?;
    super::search::create_queue(&conn)?;
    Ok(conn)
}

/// Caps the database size (0 = no cap). SQLite then answers SQLITE_FULL, which
/// rim reports as 507, exactly as for a full disk.
pub fn set_size_limit(conn: &Connection, max_mb: u64) -> rusqlite::Result<()> {
    let page_size: u64 = conn.query_row("PRAGMA page_size", [], |r| r.get(0))?;
    let pages = if max_mb == 0 {
        u64::from(u32::MAX - 1)
    } else {
        (max_mb * 1024 * 1024 / page_size).max(1)
    };
    conn.query_row(&format!("PRAGMA max_page_count = {pages}"), [], |_| Ok(()))
}

/// Opens a read-only connection for queries.
pub fn open_reader(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    common_pragmas(&conn)?;
    conn.execute_batch("PRAGMA query_only = ON;")?;
    Ok(conn)
}

fn common_pragmas(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute_batch(
        "PRAGMA foreign_keys = ON;
         PRAGMA busy_timeout = 5000;
         PRAGMA temp_store = MEMORY;
         PRAGMA cache_size = -8192;",
    )?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(())
}

/// Refuses files that are not rim's or are newer than this binary, without
/// writing to them.
fn check_identity(conn: &Connection, path: &Path) -> anyhow::Result<()> {
    let objects: i64 = conn
        .query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0))
        .with_context(|| format!("{} is not a SQLite database", path.display()))?;
    if objects == 0 {
        return Ok(()); // a new, empty file: ours to fill
    }
    let app_id: i64 = conn.query_row("PRAGMA application_id", [], |r| r.get(0))?;
    if app_id != APPLICATION_ID {
        bail!(
            "{} is a SQLite database but not rim's (application_id {app_id:#x}); refusing to touch it",
            path.display()
        );
    }
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if version > SCHEMA_VERSION {
        bail!(
            "{} has schema version {version}, newer than this rim understands ({SCHEMA_VERSION}); use a newer rim",
            path.display()
        );
    }
    Ok(())
}

fn migrate(conn: &Connection) -> anyhow::Result<()> {
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if version == 0 {
        // A new file. (Never one of ours half made: `apply` stamps the
        // version in the transaction that creates the tables.)
        apply(conn, SCHEMA, SCHEMA_VERSION, "creating the database schema")?;
        crate::log_info!("database created", version = SCHEMA_VERSION);
        return Ok(());
    }
    for (from, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        let to = from as i64 + 1;
        apply(
            conn,
            sql,
            to,
            &format!("migrating the database to schema version {to}"),
        )?;
        crate::log_info!("database migrated", version = to);
    }
    Ok(())
}

/// Runs `sql` and stamps the file as rim's at `version`, in one transaction.
fn apply(conn: &Connection, sql: &str, version: i64, doing: &str) -> anyhow::Result<()> {
    let tx = conn.unchecked_transaction()?;
    tx.execute_batch(sql).context(doing.to_owned())?;
    tx.execute_batch(&format!(
        "PRAGMA application_id = {APPLICATION_ID}; PRAGMA user_version = {version};"
    ))?;
    tx.commit()?;
    Ok(())
}

/// Reads the schema version of a database without changing it.
pub fn version_of(conn: &Connection) -> rusqlite::Result<i64> {
    conn.query_row("PRAGMA user_version", [], |r| r.get(0))
}

#[cfg(test)]
mod build_tests {
    #[test]
    fn sqlite_is_built_without_stat4() {
        // See .cargo/config.toml: STAT4 makes cached statements re-prepare.
        let c = rusqlite::Connection::open_in_memory().unwrap();
        let stat4: bool = c
            .query_row(
                "SELECT sqlite_compileoption_used('ENABLE_STAT4')",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert!(!stat4);
        let fts5: bool = c
            .query_row("SELECT sqlite_compileoption_used('ENABLE_FTS5')", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert!(fts5);
    }
}
