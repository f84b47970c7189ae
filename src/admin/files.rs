//! `rim files gc`: removes the files no message refers to once their grace
//! period is over, like the server's hourly maintenance does, also while the
//! server runs. Each file goes in a transaction of its own, which checks
//! again that no message took it meanwhile.

use std::time::Duration;

use anyhow::bail;

use super::load_config;
use crate::cli::{FilesCommand, FilesGcArgs};
use crate::store::{admin, files};

pub fn run(cmd: FilesCommand) -> anyhow::Result<()> {
    match cmd {
        FilesCommand::Gc(args) => gc(args),
    }
}

fn gc(args: FilesGcArgs) -> anyhow::Result<()> {
    let config = load_config(&args.db)?;
    let grace = match &args.grace {
        Some(text) => parse_duration(text)?,
        None => config.file_gc_grace,
    };
    let mut conn = admin::open_for_change(&config.db, false, config.checkpoints)?;
    let now = crate::time::now_ms();
    let grace_ms = grace.as_millis() as i64;
    let candidates = files::collectable(&conn, now, grace_ms)?;
    let (mut removed, mut bytes) = (0u64, 0u64);
    for id in candidates {
        if let Some(freed) = admin::immediate(&mut conn, |c| files::collect(c, id, now, grace_ms))?
        {
            removed += 1;
            bytes += freed;
        }
    }
    println!(
        "{removed} unsent file{} removed, {bytes} bytes freed (grace {})",
        if removed == 1 { "" } else { "s" },
        describe(grace)
    );
    Ok(())
}

/// `90s`, `30m`, `24h` or `7d`.
fn parse_duration(text: &str) -> anyhow::Result<Duration> {
    let text = text.trim().to_ascii_lowercase();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let secs = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => bail!("--grace {text:?}: use seconds (90s), minutes (30m), hours (24h) or days (7d)"),
    };
    match number.parse::<u64>() {
        Ok(n) if n <= 3650 * 86_400 / secs => Ok(Duration::from_secs(n * secs)),
        _ => bail!("--grace {text:?}: use a whole number up to 3650 days"),
    }
}

fn describe(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0 => "0s".to_owned(),
        _ if s.is_multiple_of(86_400) => format!("{}d", s / 86_400),
        _ if s.is_multiple_of(3600) => format!("{}h", s / 3600),
        _ if s.is_multiple_of(60) => format!("{}m", s / 60),
        _ => format!("{s}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("24h").unwrap(), Duration::from_secs(86_400));
        assert_eq!(parse_duration("0s").unwrap(), Duration::ZERO);
        assert_eq!(
            parse_duration("7D").unwrap(),
            Duration::from_secs(7 * 86_400)
        );
        assert_eq!(parse_duration("30m").unwrap(), Duration::from_secs(1800));
        for bad in ["", "24", "h", "-1h", "1w", "99999d"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
        assert_eq!(describe(Duration::from_secs(86_400)), "1d");
        assert_eq!(describe(Duration::from_secs(90)), "90s");
    }
}
