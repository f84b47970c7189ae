//! The operator's commands: `rim user`, `rim invite`, `rim backup`,
//! `rim restore`, `rim check`, `rim files gc`, `rim bot` and `rim push test`.
//!
//! Each works on the database file directly, also while `rim serve` runs on
//! it: SQLite's WAL mode lets a second process read beside the server, and
//! changes wait their turn for the write lock (`busy_timeout`) in one short
//! `BEGIN IMMEDIATE` transaction each. What a running server must act on at
//! once (closing the connections of a disabled account) reaches it through
//! the `revocations` table, which the server polls (`server::revocations`). All SQL stays
//! in [`crate::store::admin`]; this module parses, asks, hashes and prints.

pub mod backup;
pub mod bot;
pub mod files;
pub mod invite;
pub mod push;
pub mod user;

use std::io::{BufRead, IsTerminal, Write};

use anyhow::{Context, bail};

use crate::cli::DbArgs;
use crate::config::Config;

/// The configuration a command runs with: `--config`, then `--db`. Logs stay
/// at warnings and errors unless `RIM_LOG` asks for more, so that the
/// command's own output is what the operator reads.
fn load_config(db: &DbArgs) -> anyhow::Result<Config> {
    let config = Config::load(db.config.as_deref(), &db.overrides())?;
    if std::env::var_os("RIM_LOG").is_none() {
        crate::log::set_level(crate::log::Level::Warn);
    } else {
        crate::log::set_level(config.log_level);
    }
    Ok(config)
}

/// Reads a new password: the first line of standard input, or typed twice at
/// a prompt without echo.
fn read_password(from_stdin: bool) -> anyhow::Result<String> {
    if from_stdin {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .context("cannot read the password from standard input")?;
        return Ok(line.trim_end_matches(['\r', '\n']).to_owned());
    }
    if !std::io::stdin().is_terminal() {
        bail!("standard input is not a terminal to ask for the password on: use --password-stdin");
    }
    let first = prompt("New password: ")?;
    let again = prompt("Once more: ")?;
    if first != again {
        bail!("the two passwords differ; nothing was changed");
    }
    Ok(first)
}

fn prompt(label: &str) -> anyhow::Result<String> {
    eprint!("{label}");
    std::io::stderr().flush()?;
    if !set_echo(false) {
        bail!("cannot hide the password while you type it (no `stty`): use --password-stdin");
    }
    let mut line = String::new();
    let read = std::io::stdin().lock().read_line(&mut line);
    set_echo(true);
    eprintln!();
    read.context("cannot read the password")?;
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}

/// Turns the terminal's echo off or on with `stty`, which acts on the
/// terminal it inherits as standard input. True when it worked.
fn set_echo(on: bool) -> bool {
    std::process::Command::new("stty")
        .arg(if on { "echo" } else { "-echo" })
        .stdin(std::process::Stdio::inherit())
        .status()
        .is_ok_and(|s| s.success())
}

/// `2026-11-25 18:40:08 UTC`, or "never".
fn when(ms: Option<i64>) -> String {
    ms.map_or_else(
        || "never".to_owned(),
        |ms| {
            format!(
                "{} UTC",
                crate::time::format_wire(ms, &crate::time::Zone::utc())
            )
        },
    )
}
