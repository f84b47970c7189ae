//! Settings: the raw `rim.toml` file, and the validated [`Config`] the server runs with.
//!
//! Two types on purpose: [`FileConfig`] mirrors the file (every key optional, unknown
//! keys rejected so typos are caught), and [`Config`] is what the rest of the code
//! sees, complete and checked. Command-line flags override the file.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use serde::Deserialize;

use crate::log::Level;
use crate::time::Zone;

/// How hard SQLite syncs to disk on commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Synchronous {
    /// fsync on every commit: an acknowledged message survives power loss.
    Full,
    /// WAL-mode NORMAL: survives a crash of rim, may lose the last commits on power loss.
    Normal,
}

/// Who checkpoints the WAL, copying committed pages back into the database
/// file (`storage.checkpoints`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Checkpointer {
    /// rim's writer, between its batches (see `store::writer`).
    Rim,
    /// Litestream, which replicates the WAL before it lets it be copied back
    /// and started over. rim then never checkpoints, and tells SQLite not to.
    Litestream,
}

/// Argon2id cost. The defaults are one of the settings OWASP's Password
/// Storage Cheat Sheet lists as equally strong (19 MiB and 2 passes, 12 MiB
/// and 3, 9 MiB and 4, 7 MiB and 5): the one with the least memory, for
/// small machines, at about the same CPU time per hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HashCost {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
}

impl Default for HashCost {
    fn default() -> Self {
        HashCost {
            memory_kib: 7_168,
            iterations: 5,
            parallelism: 1,
        }
    }
}

/// Who may create an account over REST (`POST /api/user/create`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegistrationMode {
    /// Anyone who reaches the server.
    Open,
    /// Only with an invite code (`rim invite create`, or an admin over REST).
    Invite,
    /// Nobody: accounts are made with `rim user add`.
    Closed,
}

/// Abuse limits; 0 turns a limit off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimits {
    /// Login attempts for one account from one address.
    pub logins_per_account_per_minute: u32,
    /// Login attempts for one account from all the addresses that have not
    /// logged into it before: slower, so guessing from many addresses stays
    /// slow, and one address alone cannot reach it before its own limit.
    pub logins_per_account_per_hour: u32,
    pub logins_per_ip_per_minute: u32,
    pub registrations_per_ip_per_hour: u32,
    pub messages_per_second: u32,
    pub message_burst: u32,
    /// WebSocket frames other than `Msg` (Read, Ack, Heart, ...) per
    /// connection, on average and in a burst.
    pub frames_per_second: u32,
    pub frame_burst: u32,
    /// Groups one user may create per hour.
    pub groups_per_user_per_hour: u32,
    /// Members one user may add to groups per hour (at creation or later).
    pub member_adds_per_user_per_hour: u32,
    /// Searches one user may run per minute.
    pub searches_per_user_per_minute: u32,
}

impl Default for RateLimits {
    fn default() -> Self {
        RateLimits {
            logins_per_account_per_minute: 10,
            logins_per_account_per_hour: 1000,
            logins_per_ip_per_minute: 30,
            registrations_per_ip_per_hour: 20,
            messages_per_second: 20,
            message_burst: 50,
            frames_per_second: 20,
            frame_burst: 200,
            groups_per_user_per_hour: 30,
            member_adds_per_user_per_hour: 500,
            searches_per_user_per_minute: 60,
        }
    }
}

/// Web Push (`[push]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushConfig {
    /// Off: no pushes are sent and subscribing answers 403.
    pub enabled: bool,
    /// The VAPID `sub` claim: how a push service reaches the operator
    /// (`mailto:` or `https:`). `None`: `public_url`, if set.
    pub contact: Option<String>,
    /// Off: notifications say "New message" instead of the text.
    pub show_content: bool,
    /// How long a push service keeps a push for an offline device.
    pub ttl: Duration,
    /// Hosts push endpoints may name: exact names, or `*.example.com` for
    /// any name under example.com.
    pub allowed_hosts: Vec<String>,
    /// Also plain `http://` endpoints (for tests against a stand-in service).
    pub allow_insecure_http: bool,
    /// Messages waiting to be pushed; beyond it pushes are dropped (and
    /// counted), never delaying messages.
    pub queue: usize,
}

impl Default for PushConfig {
    fn default() -> Self {
        PushConfig {
            enabled: true,
            contact: None,
            show_content: true,
            ttl: Duration::from_secs(86_400),
            allowed_hosts: [
                "fcm.googleapis.com",
                "updates.push.services.mozilla.com",
                "*.push.apple.com",
                "*.notify.windows.com",
            ]
            .map(String::from)
            .to_vec(),
            allow_insecure_http: false,
            queue: 1024,
        }
    }
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub db: PathBuf,
    pub log_level: Level,

    pub registration: RegistrationMode,
    /// The address people reach rim at (`https://chat.example.org`, no
    /// trailing slash), for the join links of invites.
    pub public_url: Option<String>,
    /// With a token, `GET /metrics` needs `Authorization: Bearer <token>`.
    pub metrics_token: Option<String>,
    /// Reverse proxies whose `X-Forwarded-For` is believed: the client address
    /// (for rate limits and logs) is then the one the proxy reports.
    pub trusted_proxies: Vec<IpAddr>,
    /// The zone `createTime`-style wire times are written in.
    pub time_zone: Zone,

    pub synchronous: Synchronous,
    pub checkpoints: Checkpointer,
    pub read_connections: usize,
    pub writer_batch: usize,
    pub writer_queue: usize,
    /// Largest the database may grow, in MiB (0 = no limit). Writes past it
    /// fail with 507 and succeed again once there is room.
    pub max_db_mb: u64,
    /// How long the writer waits without a write before it checkpoints and
    /// truncates the WAL and hands SQLite's caches back (None = never: another
    /// tool owns the checkpoints).
    pub checkpoint_idle: Option<Duration>,

    /// Origins (`https://chat.example.org`) allowed to call the API from a
    /// browser and to open WebSockets. Empty = cross-origin requests get no
    /// CORS headers; same-origin pages always work.
    pub cors_origins: Vec<String>,
    pub rate_limits: RateLimits,

    pub token_ttl: Duration,
    pub hash_cost: HashCost,
    /// Threads hashing passwords, so at most this many hashes run at once
    /// (0 in the file = one fewer than the cores, at least one: a login
    /// storm leaves a core to the messages).
    pub hash_concurrency: usize,

    pub max_connections: usize,
    /// Open connections from one client address (after `trusted_proxies`);
    /// one more is refused at once with 429.
    pub max_connections_per_address: usize,
    /// WebSockets that have not logged in, from one client address (after
    /// `trusted_proxies`) and in all; an upgrade past either gets 429 / 503.
    pub max_sockets_before_login_per_address: usize,
    pub max_sockets_before_login: usize,
    pub max_body_bytes: usize,
    /// The slowest average pace an upload may keep, counted over the whole
    /// upload once `body_timeout` has passed (0 = no floor).
    pub upload_min_bytes_per_sec: u64,
    pub max_frame_bytes: usize,
    pub max_message_bytes: usize,
    pub max_group_members: usize,
    pub outbound_queue: usize,
    pub replay_limit: usize,

    /// Largest file `POST /api/file` takes, in bytes (413 above it).
    pub max_upload_bytes: u64,
    /// Bytes of files one user may have uploaded (0 = no limit).
    pub file_quota_bytes: u64,
    /// Files no message refers to are removed this long after their last upload.
    pub file_gc_grace: Duration,

    pub header_timeout: Duration,
    /// Time a request body has, from the end of its headers (408 past it);
    /// uploads get at least this, then `upload_min_bytes_per_sec` rules.
    pub body_timeout: Duration,
    pub login_timeout: Duration,
    pub ping_interval: Duration,
    pub idle_timeout: Duration,
    pub write_timeout: Duration,
    pub shutdown_grace: Duration,

    pub push: PushConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 8000)),
            db: PathBuf::from("rim.db"),
            log_level: Level::Info,
            registration: RegistrationMode::Open,
            public_url: None,
            metrics_token: None,
            trusted_proxies: Vec::new(),
            time_zone: Zone::system(),
            synchronous: Synchronous::Full,
            checkpoints: Checkpointer::Rim,
            read_connections: 4,
            writer_batch: 1024,
            writer_queue: 8192,
            max_db_mb: 0,
            checkpoint_idle: Some(Duration::from_secs(5)),
            cors_origins: Vec::new(),
            rate_limits: RateLimits::default(),
            token_ttl: Duration::from_secs(30 * 86_400),
            hash_cost: HashCost::default(),
            hash_concurrency: std::thread::available_parallelism()
                .map(|n| n.get().saturating_sub(1).max(1))
                .unwrap_or(1),
            max_connections: 10_000,
            max_connections_per_address: 64,
            max_sockets_before_login_per_address: 32,
            max_sockets_before_login: 1_000,
            max_body_bytes: 64 * 1024,
            upload_min_bytes_per_sec: 4096,
            max_frame_bytes: 64 * 1024,
            max_message_bytes: 16 * 1024,
            max_group_members: 2_000,
            outbound_queue: 512,
            replay_limit: 1_000,
            max_upload_bytes: 25 << 20,
            file_quota_bytes: 1 << 30,
            file_gc_grace: Duration::from_secs(24 * 3600),
            header_timeout: Duration::from_secs(10),
            // 64 KiB, the largest JSON body, over a poor mobile link.
            body_timeout: Duration::from_secs(20),
            // Long: a web client opens its socket with the page and logs in
            // when the person has typed their password. Sockets waiting that
            // long are bounded by the two caps above instead.
            login_timeout: Duration::from_secs(600),
            ping_interval: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(90),
            write_timeout: Duration::from_secs(10),
            shutdown_grace: Duration::from_secs(10),
            push: PushConfig::default(),
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
    pub registration: Option<String>,
    pub public_url: Option<String>,
    pub metrics_token: Option<String>,
    pub trusted_proxies: Option<Vec<String>>,
    pub time_zone: Option<String>,
    #[serde(default)]
    pub storage: StorageSection,
    #[serde(default)]
    pub auth: AuthSection,
    #[serde(default)]
    pub limits: LimitsSection,
    #[serde(default)]
    pub timeouts: TimeoutsSection,
    #[serde(default)]
    pub http: HttpSection,
    #[serde(default)]
    pub rate_limits: RateLimitsSection,
    #[serde(default)]
    pub files: FilesSection,
    #[serde(default)]
    pub push: PushSection,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PushSection {
    pub enabled: Option<bool>,
    pub contact: Option<String>,
    pub show_content: Option<bool>,
    pub ttl_hours: Option<u64>,
    pub allowed_hosts: Option<Vec<String>>,
    pub allow_insecure_http: Option<bool>,
    pub queue: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilesSection {
    pub max_upload_mb: Option<u64>,
    pub quota_mb: Option<u64>,
    pub gc_grace_hours: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSection {
    pub cors_origins: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitsSection {
    pub logins_per_account_per_minute: Option<u32>,
    pub logins_per_account_per_hour: Option<u32>,
    pub logins_per_ip_per_minute: Option<u32>,
    pub registrations_per_ip_per_hour: Option<u32>,
    pub messages_per_second: Option<u32>,
    pub message_burst: Option<u32>,
    pub frames_per_second: Option<u32>,
    pub frame_burst: Option<u32>,
    pub groups_per_user_per_hour: Option<u32>,
    pub member_adds_per_user_per_hour: Option<u32>,
    pub searches_per_user_per_minute: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageSection {
    pub synchronous: Option<String>,
    pub checkpoints: Option<String>,
    pub read_connections: Option<usize>,
    pub writer_batch: Option<usize>,
    pub writer_queue: Option<usize>,
    pub max_db_mb: Option<u64>,
    pub checkpoint_idle_ms: Option<u64>,
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
    pub max_connections_per_address: Option<usize>,
    pub max_sockets_before_login_per_address: Option<usize>,
    pub max_sockets_before_login: Option<usize>,
    pub max_body_bytes: Option<usize>,
    pub upload_min_bytes_per_sec: Option<u64>,
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
    pub body_secs: Option<u64>,
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
    /// The join link of an invite: the web client's page with the code
    /// filled in, when `public_url` is set.
    pub fn invite_link(&self, code: &str) -> Option<String> {
        self.public_url
            .as_deref()
            .map(|url| format!("{url}/?invite={code}"))
    }

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
            config.log_level = Level::parse(&level)
                .with_context(|| format!("RIM_LOG={level:?} is not a log level"))?;
        }
        Ok(config)
    }

    /// Validates a parsed file, filling in defaults: each section in turn.
    pub fn from_file(file: FileConfig) -> anyhow::Result<Config> {
        let mut c = Config::default();
        c.apply_top(&file)?;
        c.apply_storage(file.storage)?;
        c.apply_http(file.http)?;
        c.apply_rate_limits(file.rate_limits)?;
        c.apply_auth(file.auth)?;
        c.apply_limits(file.limits)?;
        c.apply_files(file.files)?;
        c.apply_timeouts(file.timeouts)?;
        c.apply_push(file.push)?;
        Ok(c)
    }

    /// The top-level keys.
    fn apply_top(&mut self, file: &FileConfig) -> anyhow::Result<()> {
        let c = self;
        if let Some(listen) = file.listen.as_ref() {
            c.listen = listen.parse().with_context(|| {
                format!("listen = {listen:?} is not an address like 127.0.0.1:8000")
            })?;
        }
        if let Some(db) = file.db.clone() {
            c.db = db;
        }
        if let Some(level) = file.log_level.as_ref() {
            c.log_level = Level::parse(level).with_context(|| {
                format!("log_level = {level:?}: use error, warn, info or debug")
            })?;
        }

        if let Some(mode) = file.registration.as_ref() {
            c.registration = match mode.to_ascii_lowercase().as_str() {
                "open" => RegistrationMode::Open,
                "invite" => RegistrationMode::Invite,
                "closed" => RegistrationMode::Closed,
                _ => bail!("registration = {mode:?}: use \"open\", \"invite\" or \"closed\""),
            };
        }
        if let Some(url) = file.public_url.clone().filter(|u| !u.is_empty()) {
            let url = url.trim_end_matches('/').to_owned();
            let ok = (url.starts_with("http://") || url.starts_with("https://"))
                && url.len() > "https://".len()
                && !url.contains(char::is_whitespace);
            if !ok {
                bail!("public_url = {url:?} is not an address like https://chat.example.org");
            }
            c.public_url = Some(url);
        }
        if let Some(token) = file.metrics_token.clone().filter(|t| !t.is_empty()) {
            if token.len() < 16 || token.contains(char::is_whitespace) {
                bail!("metrics_token must be at least 16 characters, without spaces");
            }
            c.metrics_token = Some(token);
        }
        if let Some(proxies) = file.trusted_proxies.as_ref() {
            c.trusted_proxies = proxies
                .iter()
                .map(|p| {
                    p.parse::<IpAddr>()
                        .map(|ip| ip.to_canonical())
                        .with_context(|| {
                            format!("trusted_proxies: {p:?} is not an IP address like 127.0.0.1")
                        })
                })
                .collect::<anyhow::Result<_>>()?;
        }
        if let Some(name) = file.time_zone.as_deref().filter(|n| !n.is_empty()) {
            c.time_zone = Zone::named(name).map_err(|e| anyhow::anyhow!("time_zone = {e}"))?;
        }
        Ok(())
    }

    /// `[storage]`.
    fn apply_storage(&mut self, s: StorageSection) -> anyhow::Result<()> {
        let c = self;
        if let Some(sync) = s.synchronous {
            c.synchronous = match sync.to_ascii_lowercase().as_str() {
                "full" => Synchronous::Full,
                "normal" => Synchronous::Normal,
                _ => bail!("storage.synchronous = {sync:?}: use \"full\" or \"normal\""),
            };
        }
        if let Some(by) = s.checkpoints {
            c.checkpoints = match by.to_ascii_lowercase().as_str() {
                "rim" => Checkpointer::Rim,
                "litestream" => Checkpointer::Litestream,
                _ => bail!("storage.checkpoints = {by:?}: use \"rim\" or \"litestream\""),
            };
        }
        set(
            &mut c.read_connections,
            s.read_connections,
            "storage.read_connections",
            1..=64,
        )?;
        set(
            &mut c.writer_batch,
            s.writer_batch,
            "storage.writer_batch",
            1..=100_000,
        )?;
        set(
            &mut c.writer_queue,
            s.writer_queue,
            "storage.writer_queue",
            1..=1_000_000,
        )?;
        set(
            &mut c.max_db_mb,
            s.max_db_mb,
            "storage.max_db_mb",
            0..=16_777_216,
        )?;
        if let Some(ms) = s.checkpoint_idle_ms {
            if ms > 3_600_000 {
                bail!("storage.checkpoint_idle_ms = {ms}: use 0 (never) to 3600000 (an hour)");
            }
            c.checkpoint_idle = (ms > 0).then(|| Duration::from_millis(ms));
        }
        Ok(())
    }

    /// `[http]`.
    fn apply_http(&mut self, h: HttpSection) -> anyhow::Result<()> {
        let c = self;
        if let Some(origins) = h.cors_origins {
            for o in &origins {
                let ok = (o.starts_with("http://") || o.starts_with("https://"))
                    && !o.ends_with('/')
                    && !o.contains(char::is_whitespace);
                if !ok {
                    bail!(
                        "http.cors_origins: {o:?} is not an origin like https://chat.example.org"
                    );
                }
            }
            c.cors_origins = origins;
        }
        Ok(())
    }

    /// `[rate_limits]`.
    fn apply_rate_limits(&mut self, r: RateLimitsSection) -> anyhow::Result<()> {
        let c = self;
        let mut rl = c.rate_limits;
        set(
            &mut rl.logins_per_account_per_minute,
            r.logins_per_account_per_minute,
            "rate_limits.logins_per_account_per_minute",
            0..=1_000_000,
        )?;
        set(
            &mut rl.logins_per_ip_per_minute,
            r.logins_per_ip_per_minute,
            "rate_limits.logins_per_ip_per_minute",
            0..=1_000_000,
        )?;
        set(
            &mut rl.registrations_per_ip_per_hour,
            r.registrations_per_ip_per_hour,
            "rate_limits.registrations_per_ip_per_hour",
            0..=1_000_000,
        )?;
        set(
            &mut rl.messages_per_second,
            r.messages_per_second,
            "rate_limits.messages_per_second",
            0..=1_000_000,
        )?;
        set(
            &mut rl.message_burst,
            r.message_burst,
            "rate_limits.message_burst",
            1..=1_000_000,
        )?;
        for (slot, value, key) in [
            (
                &mut rl.logins_per_account_per_hour,
                r.logins_per_account_per_hour,
                "rate_limits.logins_per_account_per_hour",
            ),
            (
                &mut rl.frames_per_second,
                r.frames_per_second,
                "rate_limits.frames_per_second",
            ),
            (
                &mut rl.groups_per_user_per_hour,
                r.groups_per_user_per_hour,
                "rate_limits.groups_per_user_per_hour",
            ),
            (
                &mut rl.member_adds_per_user_per_hour,
                r.member_adds_per_user_per_hour,
                "rate_limits.member_adds_per_user_per_hour",
            ),
            (
                &mut rl.searches_per_user_per_minute,
                r.searches_per_user_per_minute,
                "rate_limits.searches_per_user_per_minute",
            ),
        ] {
            set(slot, value, key, 0..=1_000_000)?;
        }
        set(
            &mut rl.frame_burst,
            r.frame_burst,
            "rate_limits.frame_burst",
            1..=1_000_000,
        )?;
        c.rate_limits = rl;
        Ok(())
    }

    /// `[auth]`.
    fn apply_auth(&mut self, a: AuthSection) -> anyhow::Result<()> {
        let c = self;
        if let Some(days) = a.token_ttl_days {
            if !(1..=3650).contains(&days) {
                bail!("auth.token_ttl_days = {days}: must be between 1 and 3650");
            }
            c.token_ttl = Duration::from_secs(days * 86_400);
        }
        let mut cost = c.hash_cost;
        set(
            &mut cost.memory_kib,
            a.argon2_memory_kib,
            "auth.argon2_memory_kib",
            8..=4_194_304,
        )?;
        set(
            &mut cost.iterations,
            a.argon2_iterations,
            "auth.argon2_iterations",
            1..=100,
        )?;
        set(
            &mut cost.parallelism,
            a.argon2_parallelism,
            "auth.argon2_parallelism",
            1..=64,
        )?;
        if cost.memory_kib < 8 * cost.parallelism {
            bail!("auth.argon2_memory_kib must be at least 8 x argon2_parallelism");
        }
        c.hash_cost = cost;
        match a.hash_concurrency {
            Some(0) | None => {}
            Some(n) => set(
                &mut c.hash_concurrency,
                Some(n),
                "auth.hash_concurrency",
                1..=1024,
            )?,
        }
        Ok(())
    }

    /// `[limits]`.
    fn apply_limits(&mut self, l: LimitsSection) -> anyhow::Result<()> {
        let c = self;
        set(
            &mut c.max_connections,
            l.max_connections,
            "limits.max_connections",
            1..=1_000_000,
        )?;
        set(
            &mut c.max_connections_per_address,
            l.max_connections_per_address,
            "limits.max_connections_per_address",
            1..=1_000_000,
        )?;
        set(
            &mut c.max_sockets_before_login_per_address,
            l.max_sockets_before_login_per_address,
            "limits.max_sockets_before_login_per_address",
            1..=1_000_000,
        )?;
        set(
            &mut c.max_sockets_before_login,
            l.max_sockets_before_login,
            "limits.max_sockets_before_login",
            1..=1_000_000,
        )?;
        set(
            &mut c.max_body_bytes,
            l.max_body_bytes,
            "limits.max_body_bytes",
            1024..=64 << 20,
        )?;
        set(
            &mut c.upload_min_bytes_per_sec,
            l.upload_min_bytes_per_sec,
            "limits.upload_min_bytes_per_sec",
            0..=1 << 30,
        )?;
        set(
            &mut c.max_frame_bytes,
            l.max_frame_bytes,
            "limits.max_frame_bytes",
            1024..=64 << 20,
        )?;
        set(
            &mut c.max_message_bytes,
            l.max_message_bytes,
            "limits.max_message_bytes",
            1..=64 << 20,
        )?;
        set(
            &mut c.max_group_members,
            l.max_group_members,
            "limits.max_group_members",
            2..=100_000,
        )?;
        set(
            &mut c.outbound_queue,
            l.outbound_queue,
            "limits.outbound_queue",
            1..=1_000_000,
        )?;
        set(
            &mut c.replay_limit,
            l.replay_limit,
            "limits.replay_limit",
            0..=1_000_000,
        )?;
        Ok(())
    }

    /// `[files]`.
    fn apply_files(&mut self, f: FilesSection) -> anyhow::Result<()> {
        let c = self;
        let mut mb = c.max_upload_bytes >> 20;
        set(&mut mb, f.max_upload_mb, "files.max_upload_mb", 1..=4096)?;
        c.max_upload_bytes = mb << 20;
        let mut mb = c.file_quota_bytes >> 20;
        set(&mut mb, f.quota_mb, "files.quota_mb", 0..=16_777_216)?;
        c.file_quota_bytes = mb << 20;
        if let Some(hours) = f.gc_grace_hours {
            if !(1..=87_600).contains(&hours) {
                bail!("files.gc_grace_hours = {hours}: must be between 1 and 87600");
            }
            c.file_gc_grace = Duration::from_secs(hours * 3600);
        }
        Ok(())
    }

    /// `[timeouts]`.
    fn apply_timeouts(&mut self, t: TimeoutsSection) -> anyhow::Result<()> {
        let c = self;
        secs(&mut c.header_timeout, t.header_secs, "timeouts.header_secs")?;
        secs(&mut c.body_timeout, t.body_secs, "timeouts.body_secs")?;
        secs(&mut c.login_timeout, t.login_secs, "timeouts.login_secs")?;
        secs(
            &mut c.ping_interval,
            t.ping_interval_secs,
            "timeouts.ping_interval_secs",
        )?;
        secs(&mut c.idle_timeout, t.idle_secs, "timeouts.idle_secs")?;
        secs(&mut c.write_timeout, t.write_secs, "timeouts.write_secs")?;
        secs(
            &mut c.shutdown_grace,
            t.shutdown_grace_secs,
            "timeouts.shutdown_grace_secs",
        )?;
        if c.idle_timeout <= c.ping_interval {
            bail!("timeouts.idle_secs must be longer than timeouts.ping_interval_secs");
        }
        Ok(())
    }
}

impl Config {
    /// `[push]`.
    fn apply_push(&mut self, p: PushSection) -> anyhow::Result<()> {
        let c = &mut self.push;
        if let Some(on) = p.enabled {
            c.enabled = on;
        }
        if let Some(contact) = p.contact.filter(|s| !s.is_empty()) {
            let ok = (contact.starts_with("mailto:") || contact.starts_with("https://"))
                && !contact.contains(char::is_whitespace);
            if !ok {
                bail!(
                    "push.contact = {contact:?}: use mailto:you@example.org or an https:// address"
                );
            }
            c.contact = Some(contact);
        }
        if let Some(show) = p.show_content {
            c.show_content = show;
        }
        if let Some(hours) = p.ttl_hours {
            if !(0..=672).contains(&hours) {
                bail!("push.ttl_hours = {hours}: must be between 0 and 672 (four weeks)");
            }
            c.ttl = Duration::from_secs(hours * 3600);
        }
        if let Some(hosts) = p.allowed_hosts {
            for h in &hosts {
                let name = h.strip_prefix("*.").unwrap_or(h);
                let ok = !name.is_empty()
                    && name
                        .chars()
                        .all(|ch| ch.is_ascii_alphanumeric() || ch == '-' || ch == '.');
                if !ok {
                    bail!(
                        "push.allowed_hosts: {h:?} is not a host name like fcm.googleapis.com or *.push.apple.com"
                    );
                }
            }
            c.allowed_hosts = hosts.into_iter().map(|h| h.to_ascii_lowercase()).collect();
        }
        if let Some(insecure) = p.allow_insecure_http {
            c.allow_insecure_http = insecure;
        }
        set(&mut c.queue, p.queue, "push.queue", 1..=1_000_000)?;
        Ok(())
    }

    /// The VAPID `sub` claim: `push.contact`, else `public_url`.
    pub fn push_contact(&self) -> Option<&str> {
        self.push.contact.as_deref().or(self.public_url.as_deref())
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
            bail!(
                "{key} = {v}: must be between {} and {}",
                range.start(),
                range.end()
            );
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
        assert_eq!(c.checkpoints, d.checkpoints);
        assert_eq!(c.hash_cost, d.hash_cost);
        assert_eq!(c.token_ttl, d.token_ttl);
        assert_eq!(c.max_frame_bytes, d.max_frame_bytes);
        assert_eq!(c.idle_timeout, d.idle_timeout);
        assert_eq!(c.login_timeout, d.login_timeout);
        assert!(c.login_timeout >= Duration::from_secs(600));
        assert_eq!(
            c.max_sockets_before_login_per_address,
            d.max_sockets_before_login_per_address
        );
        assert_eq!(c.max_sockets_before_login, d.max_sockets_before_login);
        assert_eq!(c.rate_limits, d.rate_limits);
        assert_eq!(c.cors_origins, d.cors_origins);
        assert_eq!(c.max_db_mb, d.max_db_mb);
        assert_eq!(c.max_upload_bytes, d.max_upload_bytes);
        assert_eq!(c.file_quota_bytes, d.file_quota_bytes);
        assert_eq!(c.file_gc_grace, d.file_gc_grace);
        assert_eq!(c.shutdown_grace, d.shutdown_grace);
        assert_eq!(c.replay_limit, d.replay_limit);
        assert_eq!(c.registration, d.registration);
        assert_eq!(c.public_url, d.public_url);
        assert_eq!(c.metrics_token, d.metrics_token);
        assert_eq!(c.trusted_proxies, d.trusted_proxies);
        assert_eq!(c.time_zone, d.time_zone);
        assert_eq!(c.push, d.push);
    }

    #[test]
    fn push_keys_validate() {
        let parse = |text: &str| Config::from_file(toml::from_str::<FileConfig>(text).unwrap());
        let c = parse(
            "[push]\ncontact = \"mailto:ops@example.org\"\nttl_hours = 2\nallowed_hosts = [\"*.Example.com\"]",
        )
        .unwrap();
        assert_eq!(c.push.contact.as_deref(), Some("mailto:ops@example.org"));
        assert_eq!(c.push.ttl, Duration::from_secs(7200));
        assert_eq!(c.push.allowed_hosts, ["*.example.com"]);
        assert!(parse("[push]\ncontact = \"ops@example.org\"").is_err());
        assert!(parse("[push]\nallowed_hosts = [\"https://x.org\"]").is_err());
        assert!(parse("[push]\nttl_hours = 10000").is_err());
    }

    #[test]
    fn operations_keys_validate() {
        let parse = |text: &str| Config::from_file(toml::from_str::<FileConfig>(text).unwrap());
        let c = parse(
            "registration = \"Invite\"\npublic_url = \"https://chat.example.org/\"\n\
             metrics_token = \"0123456789abcdef\"\ntrusted_proxies = [\"127.0.0.1\", \"::1\"]",
        )
        .unwrap();
        assert_eq!(c.registration, RegistrationMode::Invite);
        assert_eq!(c.public_url.as_deref(), Some("https://chat.example.org"));
        assert_eq!(c.metrics_token.as_deref(), Some("0123456789abcdef"));
        assert_eq!(c.trusted_proxies.len(), 2);
        let c = parse("time_zone = \"Asia/Shanghai\"").unwrap();
        assert_eq!(c.time_zone.name(), "Asia/Shanghai");
        assert!(parse("time_zone = \"Asia/Atlantis\"").is_err());
        assert_eq!(parse("time_zone = \"\"").unwrap().time_zone, Zone::system());
        assert!(parse("registration = \"maybe\"").is_err());
        assert!(parse("public_url = \"chat.example.org\"").is_err());
        assert!(parse("metrics_token = \"short\"").is_err());
        assert!(parse("trusted_proxies = [\"10.0.0.0/8\"]").is_err());
        assert_eq!(
            parse("public_url = \"\"\nmetrics_token = \"\"")
                .unwrap()
                .metrics_token,
            None
        );
    }

    #[test]
    fn rejects_unknown_keys_and_bad_values() {
        assert!(toml::from_str::<FileConfig>("lissen = \"x\"").is_err());
        let file: FileConfig = toml::from_str("[storage]\nsynchronous = \"off\"").unwrap();
        assert!(Config::from_file(file).is_err());
        let file: FileConfig = toml::from_str("[limits]\nmax_frame_bytes = 1").unwrap();
        assert!(Config::from_file(file).is_err());
        let file: FileConfig = toml::from_str("[storage]\ncheckpoints = \"sqlite\"").unwrap();
        assert!(Config::from_file(file).is_err());
    }

    #[test]
    fn checkpoints_can_be_left_to_litestream() {
        let file: FileConfig = toml::from_str("[storage]\ncheckpoints = \"litestream\"").unwrap();
        let c = Config::from_file(file).unwrap();
        assert_eq!(c.checkpoints, Checkpointer::Litestream);
        assert_eq!(Config::default().checkpoints, Checkpointer::Rim);
    }
}
