//! `rim backup`, `rim restore` and `rim check`.
//!
//! A backup is one self-contained SQLite file, written by `VACUUM INTO` from
//! a single read snapshot: consistent even while the server runs and writes
//! go on, and `rim serve --db BACKUP` runs it as it is. Both backup and
//! restore write to a temporary name first, check the result (SQLite's
//! integrity check, the foreign keys, rim's application id and schema
//! version), flush it to disk and only then rename it into place, so a
//! crash or a full disk leaves no half-written file under the real name.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

use super::load_config;
use crate::cli::{BackupArgs, CheckArgs, RestoreArgs};
use crate::store::admin::{self, CheckReport};

pub fn backup(args: BackupArgs) -> anyhow::Result<()> {
    let config = load_config(&args.db)?;
    let dest = &args.dest;
    if dest.exists() {
        bail!("{} already exists; name a new file", dest.display());
    }
    let source = admin::open_read_only(&config.db)?;
    let partial = with_suffix(dest, ".partial");
    remove_if_exists(&partial)?;
    admin::copy_into(&source, &partial)
        .with_context(|| format!("cannot write the backup to {}", partial.display()))?;
    drop(source);
    let report = verify(&partial).inspect_err(|_| {
        let _ = std::fs::remove_file(&partial);
    })?;
    settle(&partial, dest)?;
    println!(
        "backup of {} written to {}",
        config.db.display(),
        dest.display()
    );
    print_report(&report);
    Ok(())
}

pub fn check(args: CheckArgs) -> anyhow::Result<()> {
    let config = load_config(&args.db)?;
    let conn = admin::open_read_only(&config.db)?;
    let report = admin::check(&conn)?;
    println!("{}", config.db.display());
    print_report(&report);
    if !report.ok() {
        bail!("{} failed its checks", config.db.display());
    }
    Ok(())
}

pub fn restore(args: RestoreArgs) -> anyhow::Result<()> {
    let config = load_config(&args.db)?;
    let db = &config.db;
    let src_report =
        verify(&args.src).with_context(|| format!("{} cannot be restored", args.src.display()))?;
    // Held until the end: no server can start on the file meanwhile.
    let _lock = admin::lock_database(db).context("rim restore needs the server stopped")?;
    let incoming = with_suffix(db, ".restoring");
    remove_if_exists(&incoming)?;
    let source = admin::open_read_only(&args.src)?;
    // A copy, not the file itself: the source may have a WAL of its own, and
    // stays untouched for another try.
    admin::copy_into(&source, &incoming)
        .with_context(|| format!("cannot write {}", incoming.display()))?;
    drop(source);
    verify(&incoming).inspect_err(|_| {
        let _ = std::fs::remove_file(&incoming);
    })?;
    let aside = if db.exists() {
        let aside = with_suffix(db, &format!(".replaced-{}", stamp()));
        // The WAL holds committed data that may not be in the main file yet:
        // it goes along, under the name SQLite will look for.
        std::fs::rename(db, &aside)
            .with_context(|| format!("cannot move {} aside", db.display()))?;
        let wal = with_suffix(db, "-wal");
        if wal.exists() {
            std::fs::rename(&wal, with_suffix(&aside, "-wal"))
                .with_context(|| format!("cannot move {} aside", wal.display()))?;
        }
        remove_if_exists(&with_suffix(db, "-shm"))?;
        Some(aside)
    } else {
        None
    };
    settle(&incoming, db)?;
    println!("restored {} into {}", args.src.display(), db.display());
    print_report(&src_report);
    match aside {
        Some(aside) => println!("kept aside: {}", aside.display()),
        None => println!("there was no database to replace"),
    }
    Ok(())
}

/// Opens `path` as a rim database and runs every check; an error unless
/// all pass.
fn verify(path: &Path) -> anyhow::Result<CheckReport> {
    let conn = admin::open_read_only(path)?;
    let report = admin::check(&conn)?;
    if !report.ok() {
        print_report(&report);
        bail!("{} failed its integrity checks", path.display());
    }
    Ok(report)
}

fn print_report(r: &CheckReport) {
    let s = &r.stats;
    println!(
        "  {} users, {} messages, {} conversations, {} sessions",
        s.users, s.messages, s.groups, s.sessions
    );
    println!(
        "  {} ({} bytes), schema version {}",
        human_size(s.bytes),
        s.bytes,
        s.schema_version
    );
    if r.ok() {
        println!("  integrity: ok");
    } else {
        for line in r.integrity.iter().take(20) {
            println!("  integrity: {line}");
        }
        if r.foreign_key_violations > 0 {
            println!(
                "  foreign keys: {} rows point nowhere",
                r.foreign_key_violations
            );
        }
    }
}

/// Flushes `from` to disk and renames it to `to`, then flushes the directory
/// so the new name survives a power cut too.
fn settle(from: &Path, to: &Path) -> anyhow::Result<()> {
    std::fs::File::open(from)
        .and_then(|f| f.sync_all())
        .with_context(|| format!("cannot flush {}", from.display()))?;
    std::fs::rename(from, to)
        .with_context(|| format!("cannot rename {} to {}", from.display(), to.display()))?;
    let dir = to
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if let Ok(dir) = std::fs::File::open(dir) {
        let _ = dir.sync_all();
    }
    Ok(())
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

fn remove_if_exists(path: &Path) -> anyhow::Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| format!("cannot remove {}", path.display())),
    }
}

/// `20261125T184008Z`: the UTC time, for names.
fn stamp() -> String {
    let text = crate::time::format_rfc3339(crate::time::now_ms());
    let text = text.split('.').next().unwrap_or_default();
    format!("{}Z", text.replace(['-', ':'], ""))
}

fn human_size(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 30 => format!("{:.1} GiB", b as f64 / f64::from(1 << 30)),
        b if b >= 1 << 20 => format!("{:.1} MiB", b as f64 / f64::from(1 << 20)),
        b => format!("{:.1} KiB", b as f64 / 1024.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_sizes_read_well() {
        assert_eq!(
            with_suffix(Path::new("/x/rim.db"), "-wal"),
            Path::new("/x/rim.db-wal")
        );
        let s = stamp();
        assert_eq!(s.len(), 16, "{s}");
        assert!(
            s.ends_with('Z') && s.contains('T') && !s.contains(':'),
            "{s}"
        );
        assert_eq!(human_size(2048), "2.0 KiB");
        assert_eq!(human_size(3 << 20), "3.0 MiB");
    }
}
