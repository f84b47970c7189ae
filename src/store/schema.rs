//! Opening a database file: recognising it as rim's, migrating it, and the
//! connection settings every connection shares.
//!
//! A rim database carries `PRAGMA application_id` = [`APPLICATION_ID`] and its
//! schema version in `PRAGMA user_version`. A file that is some other program's
//! database, or was written by a newer rim, is refused before anything in it is
//! changed.

use std::path::Path;

use anyhow::{Context, bail};
use rusqlite::config::DbConfig;
use rusqlite::{Connection, OpenFlags};

use crate::config::{Checkpointer, Synchronous};

/// "rim1" in ASCII: marks a SQLite file as rim's.
pub const APPLICATION_ID: i64 = 0x7269_6d31;

/// The whole current schema: a new database is made from this alone.
pub(super) const SCHEMA: &str = include_str!("../../schema.sql");

/// `MIGRATIONS[i]` takes a database from version `i` to `i + 1`: first the
/// frozen version-1 schema, then one file per later version, all in
/// `migrations/`. A database at version N runs `MIGRATIONS[N..]`; a new one
/// runs none of them (it gets [`SCHEMA`]). Changing the schema means
/// changing `schema.sql` and adding a migration here, which makes the same
/// change to an existing database and bumps [`SCHEMA_VERSION`]; the test at
/// the bottom of this file fails when the two disagree.
pub(super) const MIGRATIONS: &[&str] = &[
    include_str!("../../migrations/001_initial.sql"),
    include_str!("../../migrations/002_accounts.sql"),
    include_str!("../../migrations/003_files_search.sql"),
    include_str!("../../migrations/004_resend_window.sql"),
    include_str!("../../migrations/005_index_merges.sql"),
    include_str!("../../migrations/006_profiles.sql"),
    include_str!("../../migrations/007_session_acks.sql"),
    include_str!("../../migrations/008_message_actions.sql"),
    include_str!("../../migrations/009_push.sql"),
    include_str!("../../migrations/010_bots.sql"),
    include_str!("../../migrations/011_scoped_index.sql"),
];

/// The schema version this binary writes.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// Opens (creating if needed) the read-write connection and brings the schema
/// up to date.
/// Creates `path` empty, readable and writable by its owner only (0600),
/// unless it exists. SQLite creates a database's `-wal` and `-shm` with the
/// database file's permissions, and `VACUUM INTO` writes into an empty file,
/// so a database, its companions and its copies stay private whatever the
/// umask (which would otherwise leave them 0644, readable by every local
/// user).
pub fn create_private(path: &Path) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

pub fn open_writer(path: &Path, sync: Synchronous, max_mb: u64) -> anyhow::Result<Connection> {
    create_private(path).with_context(|| format!("cannot create database {}", path.display()))?;
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
    // SQLite's automatic checkpoint, unless Litestream checkpoints
    // (`set_checkpointer`). The WAL file is trimmed back to 4 MiB each time
    // it starts over, so a burst of load leaves at most that on disk (and
    // the idle checkpoint, `writer::IdleCheckpoint`, nothing).
    conn.execute_batch("PRAGMA journal_size_limit = 4194304;")?;
    common_pragmas(&conn)?;
    // The writer's cache holds the pages every batch touches (the message
    // table's and the indexes' last leaves, the conversations' rows).
    conn.execute_batch("PRAGMA cache_size = -8192;")?;
    migrate(&conn)?;
    set_size_limit(&conn, max_mb)?;
    super::search::create_queue(&conn)?;
    Ok(conn)
}

/// Tells SQLite who checkpoints a connection that writes. With Litestream
/// (`storage.checkpoints = "litestream"`) nothing of rim may: Litestream
/// copies each WAL frame to its replica before it checkpoints itself, and a
/// checkpoint that lets SQLite start the WAL over behind its back makes it
/// miss frames and upload a whole new snapshot. SQLite's automatic checkpoint
/// is turned off here (Litestream's "disable autocheckpoints" advice); the
/// writer thread also skips its own ([`super::writer`]).
pub fn set_checkpointer(conn: &Connection, by: Checkpointer) -> rusqlite::Result<()> {
    match by {
        Checkpointer::Rim => Ok(()),
        Checkpointer::Litestream => conn.execute_batch("PRAGMA wal_autocheckpoint = 0;"),
    }
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

/// Settings of every connection. A reader's page cache is 2 MiB: the pages
/// a history page or a search needs are few, and what misses comes from the
/// kernel's page cache, which is shared and given up under pressure; at
/// 8 MiB, four readers and the writer held 40 MiB after a burst of reads.
fn common_pragmas(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute_batch(
        "PRAGMA foreign_keys = ON;
         PRAGMA busy_timeout = 5000;
         PRAGMA temp_store = MEMORY;
         PRAGMA cache_size = -2048;",
    )?;
    conn.set_prepared_statement_cache_capacity(64);
    // Plans that do not depend on the values bound. Without this, SQLite
    // plans a statement again whenever a parameter compared with `=` moves
    // between 0 or 1 and any other integer (it weighs small integers
    // differently), and FTS5 looks up each word in each index segment with
    // one statement, `segid = ?` in turn: with a segment 1 among them, two
    // plannings per word and query. For a member of 200 conversations on a
    // million messages that was 17 % of the server's time in a search, and
    // the FTS5 query alone took 5.5 ms instead of 3.3 (`rim-bench`,
    // history). rim's statements have one good plan whatever the values.
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)?;
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

/// `schema.sql` and the migrations describe the same database.
#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::fmt::Write as _;

    use rusqlite::types::Value;

    use super::*;

    /// Every fact about a database's schema that a statement can tell apart,
    /// keyed by what it is about ("columns users", "index sessions_by_uid",
    /// ...), so that the order objects were created in does not matter and a
    /// difference names the object that differs.
    type Shape = BTreeMap<String, String>;

    fn shape(c: &Connection) -> Shape {
        let mut s = Shape::new();
        for pragma in ["user_version", "application_id"] {
            s.insert(pragma.into(), rows(c, &format!("PRAGMA {pragma}"), []));
        }
        let objects: Vec<(String, String, String, Option<String>)> = c
            .prepare("SELECT type, name, tbl_name, sql FROM sqlite_master")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        for (kind, name, table, sql) in &objects {
            // Indexes SQLite makes for UNIQUE and PRIMARY KEY have no SQL.
            let sql = sql.as_deref().map(normalise).unwrap_or_default();
            s.insert(format!("{kind} {name}"), format!("on {table}: {sql}"));
            if kind != "table" && kind != "view" {
                continue;
            }
            let facets = [
                (
                    "kind",
                    "SELECT type, ncol, wr, strict FROM pragma_table_list(?1)",
                ),
                ("columns", "SELECT * FROM pragma_table_xinfo(?1)"),
                ("foreign keys", "SELECT * FROM pragma_foreign_key_list(?1)"),
                (
                    "indexes",
                    "SELECT name, \"unique\", origin, partial FROM pragma_index_list(?1) ORDER BY name",
                ),
            ];
            for (facet, query) in facets {
                s.insert(format!("{facet} {name}"), rows(c, query, [name]));
            }
            let indexes: Vec<String> = c
                .prepare("SELECT name FROM pragma_index_list(?1)")
                .unwrap()
                .query_map([name], |r| r.get(0))
                .unwrap()
                .map(Result::unwrap)
                .collect();
            for index in indexes {
                let query = "SELECT * FROM pragma_index_xinfo(?1)";
                s.insert(format!("index columns {index}"), rows(c, query, [&index]));
            }
            // An FTS5 table's settings (`automerge`, ...) are rows of its
            // `_config` shadow table, not part of any CREATE statement.
            if sql.starts_with("create virtual table") && sql.contains("using fts5") {
                let query = format!(
                    "SELECT k, v FROM \"{}_config\" ORDER BY k",
                    name.replace('"', "\"\"")
                );
                s.insert(format!("fts5 settings {name}"), rows(c, &query, []));
            }
        }
        s
    }

    /// The rows `query` returns, one line each.
    fn rows<P: rusqlite::Params>(c: &Connection, query: &str, params: P) -> String {
        let mut stmt = c.prepare(query).unwrap();
        let width = stmt.column_count();
        let mut out = String::new();
        let mut rows = stmt.query(params).unwrap();
        while let Some(row) = rows.next().unwrap() {
            let values: Vec<Value> = (0..width).map(|i| row.get(i).unwrap()).collect();
            writeln!(out, "{values:?}").unwrap();
        }
        out
    }

    /// `sql` without comments, with runs of whitespace made one space (none
    /// beside punctuation), and lowercase outside quotes: what is left is
    /// the definition. Comments inside a CREATE statement are kept in
    /// `sqlite_master`, and `ALTER TABLE ADD COLUMN` splices its text in
    /// with spacing of its own.
    fn normalise(sql: &str) -> String {
        fn punctuation(c: char) -> bool {
            "(),;=".contains(c)
        }
        let mut out = String::new();
        let mut space = false;
        let mut chars = sql.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '-' if chars.peek() == Some(&'-') => {
                    chars.by_ref().find(|&d| d == '\n');
                    space = true;
                    continue;
                }
                '/' if chars.peek() == Some(&'*') => {
                    chars.next();
                    let mut last = ' ';
                    chars
                        .by_ref()
                        .find(|&d| std::mem::replace(&mut last, d) == '*' && d == '/');
                    space = true;
                    continue;
                }
                c if c.is_whitespace() => {
                    space = true;
                    continue;
                }
                _ => {}
            }
            if space && out.ends_with(|d| !punctuation(d)) && !punctuation(c) {
                out.push(' ');
            }
            space = false;
            if let Some(close) = match c {
                '\'' | '"' | '`' => Some(c),
                '[' => Some(']'),
                _ => None,
            } {
                // Quoted text as it is (a doubled quote closes and reopens).
                out.push(c);
                for d in chars.by_ref() {
                    out.push(d);
                    if d == close {
                        break;
                    }
                }
            } else {
                out.extend(c.to_lowercase());
            }
        }
        out.trim_end_matches(';').to_owned()
    }

    /// The facts in which `new` and `migrated` differ, for an assertion
    /// message.
    fn differences(new: &Shape, migrated: &Shape) -> String {
        let show = |value: Option<&String>| match value {
            None => "    (absent)\n".to_owned(),
            Some(text) if text.is_empty() => "    (none)\n".to_owned(),
            Some(text) => text.lines().map(|line| format!("    {line}\n")).collect(),
        };
        let mut out = String::new();
        let keys = new
            .keys()
            .chain(migrated.keys().filter(|k| !new.contains_key(*k)));
        for key in keys {
            let (x, y) = (new.get(key), migrated.get(key));
            if x != y {
                write!(
                    out,
                    "{key}\n  from schema.sql:\n{}  migrated:\n{}",
                    show(x),
                    show(y)
                )
                .unwrap();
            }
        }
        out
    }

    /// A file of schema version `version` as `MIGRATIONS` built it.
    fn make_version(path: &Path, version: usize) {
        let c = Connection::open(path).unwrap();
        for sql in &MIGRATIONS[..version] {
            c.execute_batch(sql).unwrap();
        }
        c.execute_batch(&format!(
            "PRAGMA application_id = {APPLICATION_ID}; PRAGMA user_version = {version};"
        ))
        .unwrap();
    }

    /// A new database (made from schema.sql alone) and a database of every
    /// older version brought up to date by `open_writer` have the same
    /// schema. When this fails, schema.sql was changed without a migration
    /// or a migration without schema.sql (see migrations/README.md).
    #[test]
    fn schema_sql_and_the_migrations_make_the_same_database() {
        let dir = tempfile::tempdir().unwrap();
        let new = dir.path().join("new.db");
        let fresh = shape(&open_writer(&new, Synchronous::Normal, 0).unwrap());
        assert_eq!(
            fresh["user_version"],
            format!("[Integer({SCHEMA_VERSION})]\n")
        );
        assert_eq!(
            fresh["application_id"],
            format!("[Integer({APPLICATION_ID})]\n")
        );
        assert!(fresh.contains_key("table users"), "{fresh:#?}");
        for version in 1..=MIGRATIONS.len() {
            let old = dir.path().join(format!("version-{version}.db"));
            make_version(&old, version);
            let migrated = shape(&open_writer(&old, Synchronous::Normal, 0).unwrap());
            let differences = differences(&fresh, &migrated);
            assert!(
                differences.is_empty(),
                "a database of schema version {version} migrated to {SCHEMA_VERSION} differs \
                 from one made from schema.sql:\n{differences}"
            );
        }
    }

    /// The comparison sees what matters and ignores what does not.
    #[test]
    fn normalising_sql_keeps_the_definition_and_drops_the_layout() {
        assert_eq!(
            normalise("CREATE TABLE t (\n  a INTEGER, -- why\n  b TEXT /* c */ DEFAULT 'X  y'\n)"),
            "create table t(a integer,b text default 'X  y')"
        );
        assert_eq!(
            normalise("create table t(a integer,b text default 'X  y');"),
            "create table t(a integer,b text default 'X  y')"
        );
        assert_ne!(
            normalise("CREATE INDEX i ON t(a) WHERE a <> ''"),
            normalise("CREATE INDEX i ON t(a)")
        );
        assert_ne!(normalise("DEFAULT 'a'"), normalise("DEFAULT 'A'"));
    }
}
