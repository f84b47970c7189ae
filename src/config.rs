//! Settings: the raw `rim.toml` file, and the validated [`Config`] the server runs with.
//!
//! Two types on purpose: [`FileConfig`] mirrors the file (every key optional, unknown
//! keys rejected so typos are caught), and [`Config`] is what the rest of the code
//! sees, complete and checked. Command-line flags override the file.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use serde::Deserialize;

use crate::log::Level;

/// How hard SQLite syncs to disk on commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Synchronous {
    /// fsync on every commit: an acknowledged message survives power loss.
    Full,
    /// WAL-mode NORMAL: survives a crash of rim, may lose the last commits on power loss.
    Normal,
}

/// Argon2id cost. The defaults are OWASP's minimum recommendation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HashCost {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
}

impl Default for HashCost {
    fn default() -> Self {
        HashCost {
            memory_kib: 19_456,
            iterations: 2,
            parallelism: 1,
        }
    }
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub db: PathBuf,
    pub log_level: Level,

    pub synchronous: Synchronous,
    pub read_connections: usize,
    pub writer_batch: usize,
    pub writer_queue: usize,

    pub token_ttl: Duration,
    pub hash_cost: HashCost,
    /// How many password hashes may run at once (0 in the file = number of cores).
    pub hash_concurrency: usize,

    pub max_connections: usize,
    pub max_body_bytes: usize,
    pub max_frame_bytes: usize,
    pub max_message_bytes: usize,
    pub max_group_members: usize,
    pub outbound_queue: usize,
    pub replay_limit: usize,

    pub header_timeout: Duration,
    pub login_timeout: Duration,
    pub ping_interval: Duration,
    pub idle_timeout: Duration,
    pub write_timeout: Duration,
    pub shutdown_grace: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 8000)),
            db: PathBuf::from("rim.db"),
            log_level: Level::Info,
            synchronous: Synchronous::Full,
            read_connections: 4,
            writer_batch: 1024,
            writer_queue: 8192,
            token_ttl: Duration::from_secs(30 * 86_400),
            hash_cost: HashCost::default(),
            hash_concurrency: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2),
            max_connections: 10_000,
            max_body_bytes: 64 * 1024,
            max_frame_bytes: 64 * 1024,
            max_message_bytes: 16 * 1024,
            max_group_members: 2_000,
            outbound_queue: 512,
            replay_limit: 1_000,
            header_timeout: Duration::from_secs(10),
            login_timeout: Duration::from_secs(15),
            ping_interval: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(90),
            write_timeout: Duration::from_secs(10),
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

/// `rim.toml` as written. Every key is optional; see the shipped `rim.toml` for docs.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub listen: Option<String>,
    pub db: Option<PathBuf>,
    pub log_level: Option<String>,
    #[serde(default)]
    pub storage: StorageSection,
    #[serde(default)]
    pub auth: AuthSection,
    #[serde(default)]
    pub limits: LimitsSection,
    #[serde(default)]
    pub timeouts: TimeoutsSection,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageSection {
    pub synchronous: Option<String>,
    pub read_connections: Option<usize>,
    pub writer_batch: Option<usize>,
    pub writer_queue: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthSection {
    pub token_ttl_days: Option<u64>,
    pub argon2_memory_kib: Option<u32>,
    pub argon2_iterations: Option<u32>,
    pub argon2_parallelism: Option<u32>,
    pub hash_concurrency: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsSection {
    pub max_connections: Option<usize>,
    pub max_body_bytes: Option<usize>,
    pub max_frame_bytes: Option<usize>,
    pub max_message_bytes: Option<usize>,
    pub max_group_members: Option<usize>,
    pub outbound_queue: Option<usize>,
    pub replay_limit: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimeoutsSection {
    pub header_secs: Option<u64>,
    pub login_secs: Option<u64>,
    pub ping_interval_secs: Option<u64>,
    pub idle_secs: Option<u64>,
    pub write_secs: Option<u64>,
    pub shutdown_grace_secs: Option<u64>,
}

/// Overrides from the command line; `None` leaves the file's value.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub listen: Option<SocketAddr>,
    pub db: Option<PathBuf>,
}

impl Config {
    /// Reads `path` if given (it must then exist), else `rim.toml` in the current
    /// directory if present, else the defaults; then applies `overrides` and the
    /// `RIM_LOG` environment variable.
    pub fn load(path: Option<&Path>, overrides: &Overrides) -> anyhow::Result<Config> {
        let file = match path {
            Some(path) => read_file(path)?,
            None if Path::new("rim.toml").exists() => read_file(Path::new("rim.toml"))?,
            None => FileConfig::default(),
        };
        let mut config = Config::from_file(file)?;
        if let Some(listen) = overrides.listen {
            config.listen = listen;
        }
        if let Some(db) = &overrides.db {
            config.db = db.clone();
        }
        if let Ok(level) = std::env::var("RIM_LOG") {
            config.log_level =
                Level::parse(&level).with_context(|| format!("RIM_LOG={level:?} is not a log level"))?;
        }
        Ok(config)
    }

    /// Validates a parsed file, filling in defaults.
    pub fn from_file(file: FileConfig) -> anyhow::Result<Config> {
        let mut c = Config::default();
        if let Some(listen) = file.listen {
            c.listen = listen
                .parse()
                .with_context(|| format!("listen = {listen:?} is not an address like 127.0.0.1:8000"))?;
        }
        if let Some(db) = file.db {
            c.db = db;
        }
        if let Some(level) = file.log_level {
            c.log_level = Level::parse(&level)
                .with_context(|| format!("log_level = {level:?}: use error, warn, info or debug"))?;
        }

        let s = file.storage;
        if let Some(sync) = s.synchronous {
            c.synchronous = match sync.to_ascii_lowercase().as_str() {
                "full" => Synchronous::Full,
                "normal" => Synchronous::Normal,
                _ => bail!("storage.synchronous = {sync:?}: use \"full\" or \"normal\""),
            };
        }
        set(&mut c.read_connections, s.read_connections, "storage.read_connections", 1..=64)?;
        set(&mut c.writer_batch, s.writer_batch, "storage.writer_batch", 1..=100_000)?;
        set(&mut c.writer_queue, s.writer_queue, "storage.writer_queue", 1..=1_000_000)?;

        let a = file.auth;
        if let Some(days) = a.token_ttl_days {
            if !(1..=3650).contains(&days) {
                bail!("auth.token_ttl_days = {days}: must be between 1 and 3650");
            }
            c.token_ttl = Duration::from_secs(days * 86_400);
        }
        let mut cost = c.hash_cost;
        set(&mut cost.memory_kib, a.argon2_memory_kib, "auth.argon2_memory_kib", 8..=4_194_304)?;
        set(&mut cost.iterations, a.argon2_iterations, "auth.argon2_iterations", 1..=100)?;
        set(&mut cost.parallelism, a.argon2_parallelism, "auth.argon2_parallelism", 1..=64)?;
        if cost.memory_kib < 8 * cost.parallelism {
            bail!("auth.argon2_memory_kib must be at least 8 x argon2_parallelism");
        }
        c.hash_cost = cost;
        match a.hash_concurrency {
            Some(0) | None => {}
            Some(n) => set(&mut c.hash_concurrency, Some(n), "auth.hash_concurrency", 1..=1024)?,
        }

        let l = file.limits;
        set(&mut c.max_connections, l.max_connections, "limits.max_connections", 1..=1_000_000)?;
        set(&mut c.max_body_bytes, l.max_body_bytes, "limits.max_body_bytes", 1024..=64 << 20)?;
        set(&mut c.max_frame_bytes, l.max_frame_bytes, "limits.max_frame_bytes", 1024..=64 << 20)?;
        set(&mut c.max_message_bytes, l.max_message_bytes, "limits.max_message_bytes", 1..=64 << 20)?;
        set(&mut c.max_group_members, l.max_group_members, "limits.max_group_members", 2..=100_000)?;
        set(&mut c.outbound_queue, l.outbound_queue, "limits.outbound_queue", 1..=1_000_000)?;
        set(&mut c.replay_limit, l.replay_limit, "limits.replay_limit", 0..=1_000_000)?;

        let t = file.timeouts;
        secs(&mut c.header_timeout, t.header_secs, "timeouts.header_secs")?;
        secs(&mut c.login_timeout, t.login_secs, "timeouts.login_secs")?;
        secs(&mut c.ping_interval, t.ping_interval_secs, "timeouts.ping_interval_secs")?;
        secs(&mut c.idle_timeout, t.idle_secs, "timeouts.idle_secs")?;
        secs(&mut c.write_timeout, t.write_secs, "timeouts.write_secs")?;
        secs(&mut c.shutdown_grace, t.shutdown_grace_secs, "timeouts.shutdown_grace_secs")?;
        if c.idle_timeout <= c.ping_interval {
            bail!("timeouts.idle_secs must be longer than timeouts.ping_interval_secs");
        }
        Ok(c)
    }
}

fn read_file(path: &Path) -> anyhow::Result<FileConfig> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read config file {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("invalid config file {}", path.display()))
}

fn set<T: PartialOrd + Copy + std::fmt::Display>(
    slot: &mut T,
    value: Option<T>,
    key: &str,
    range: std::ops::RangeInclusive<T>,
) -> anyhow::Result<()> {
    if let Some(v) = value {
        if !range.contains(&v) {
            bail!("{key} = {v}: must be between {} and {}", range.start(), range.end());
        }
        *slot = v;
    }
    Ok(())
}

fn secs(slot: &mut Duration, value: Option<u64>, key: &str) -> anyhow::Result<()> {
    if let Some(v) = value {
        if !(1..=86_400).contains(&v) {
            bail!("{key} = {v}: must be between 1 and 86400 seconds");
        }
        *slot = Duration::from_secs(v);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_rim_toml_parses_to_the_defaults() {
        let text = include_str!("../rim.toml");
        let file: FileConfig = toml::from_str(text).expect("rim.toml parses");
        let c = Config::from_file(file).expect("rim.toml validates");
        let d = Config::default();
        assert_eq!(c.listen, d.listen);
        assert_eq!(c.db, d.db);
        assert_eq!(c.synchronous, d.synchronous);
        assert_eq!(c.hash_cost, d.hash_cost);
        assert_eq!(c.token_ttl, d.token_ttl);
        assert_eq!(c.max_frame_bytes, d.max_frame_bytes);
        assert_eq!(c.idle_timeout, d.idle_timeout);
    }

    #[test]
    fn rejects_unknown_keys_and_bad_values() {
        assert!(toml::from_str::<FileConfig>("lissen = \"x\"").is_err());
        let file: FileConfig = toml::from_str("[storage]\nsynchronous = \"off\"").unwrap();
        assert!(Config::from_file(file).is_err());
        let file: FileConfig = toml::from_str("[limits]\nmax_frame_bytes = 1").unwrap();
        assert!(Config::from_file(file).is_err());
    }
}
