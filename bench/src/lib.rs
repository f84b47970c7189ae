//! `rim-bench`: a load generator and the yardstick for rim's performance.
//!
//! Like pgbench or redis-benchmark, it is a binary of its own beside the
//! server's, so that the deployed `rim` carries only what serves people. It
//! drives a real server the way clients do (REST for setup, WebSockets for traffic, over loopback) and reports
//! what it measured: throughput, latency percentiles (from a log-linear
//! histogram, [`hist`]), and the server's memory and CPU next to the load
//! generator's own CPU, so a reader can tell which side was the bottleneck.
//!
//! Each scenario starts its own `rim serve` child process ([`target`]) with a
//! fresh database in a temporary directory, or uses a running server given
//! with `--url` (loopback only). Scenarios live one per file:
//! [`idle`], [`direct`], [`fanout`], [`history`], [`login`], [`limits`]; they
//! share the client code in [`client`] and the load loop in [`load`]. Every
//! loop is bounded in count and in time.
//!
//! The benchmark is a client: it uses rim only through rim's public library
//! API and shares no code with the server's request handling. It does write
//! SQL of its own, in two places that are about SQLite rather than rim:
//! bulk-loading the history database while the server is stopped, and the
//! raw insert ceiling of `limits`.

pub mod cgroup;
pub mod cli;
pub mod client;
pub mod direct;
pub mod fanout;
pub mod hist;
pub mod history;
pub mod idle;
pub mod limits;
pub mod load;
pub mod login;
pub mod memory;
pub mod sys;
pub mod target;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use serde::Serialize;

use crate::cli::Args;
use hist::Histogram;
use sys::Usage;
use target::{ServerSpec, Target};

/// The scenarios, in the order a full run takes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Scenario {
    /// Many logged-in connections doing nothing: memory per connection.
    Idle,
    /// 1:1 conversations: peak persisted messages/s, then latency at fixed rates.
    Direct,
    /// Groups of 100 and 1,000 members: deliveries/s, and one slow reader.
    Fanout,
    /// A 1,000,000-message database: history page latency while writes go on.
    History,
    /// A register/login storm at OWASP argon2 cost, and everyone else's latency.
    Login,
    /// The raw WebSocket echo and SQLite insert ceilings, and rim against them.
    Limits,
    /// Memory on a small machine: hashing, the WAL, crowds in a memory
    /// cgroup. Not part of a default run (minutes, and root for the cgroup).
    Memory,
}

impl Scenario {
    pub const ALL: [Scenario; 6] = [
        Scenario::Idle,
        Scenario::Direct,
        Scenario::Fanout,
        Scenario::History,
        Scenario::Login,
        Scenario::Limits,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Scenario::Idle => "idle",
            Scenario::Direct => "direct",
            Scenario::Fanout => "fanout",
            Scenario::History => "history",
            Scenario::Login => "login",
            Scenario::Limits => "limits",
            Scenario::Memory => "memory",
        }
    }
}

/// How big and how long each scenario is.
#[derive(Debug, Clone)]
pub struct Sizes {
    pub idle_connections: usize,
    pub idle_secs: f64,
    /// Each idle client sends a Heart this often.
    pub heartbeat_secs: f64,

    pub direct_pairs: usize,
    pub direct_closed_secs: f64,
    /// Messages in flight per sender in the closed loops after the first
    /// (which keeps one in flight).
    pub direct_pipeline: Vec<usize>,
    /// Offered rates of the open-loop phases, messages/s.
    pub direct_rates: Vec<u64>,
    pub direct_open_secs: f64,
    /// Also offer Heart frames at the highest rate (the path without storage).
    pub direct_heart_diagnostic: bool,

    pub fanout_groups: Vec<usize>,
    pub fanout_senders: Vec<usize>,
    /// Messages in flight per sender in one more phase of the first group
    /// with the slow reader's senders (0: no such phase).
    pub fanout_pipeline: usize,
    pub fanout_secs: f64,
    pub slow_reader_secs: f64,

    pub history_messages: u64,
    pub history_groups: usize,
    pub history_users: usize,
    pub history_secs: f64,
    pub history_readers: usize,
    /// Messages/s written while the history is read.
    pub history_write_rate: u64,

    /// Accounts the login storm logs in with.
    pub login_users: usize,
    /// Pairs exchanging messages during the storm (their latency is measured).
    pub login_pairs: usize,
    pub login_rate: u64,
    pub login_secs: f64,
    pub login_concurrency: usize,

    pub limits_connections: usize,
    pub limits_secs: f64,

    /// Logins after the one registration of the memory scenario's hashing part.
    pub memory_logins: usize,
    /// The quiet spell after which memory and the WAL are read.
    pub memory_quiet_secs: f64,
    pub memory_wal_pairs: usize,
    pub memory_wal_secs: f64,
    /// Crowds: (users, cgroup limit in MiB; 0 = none).
    pub memory_crowds: Vec<(usize, u64)>,
    /// Users of each crowd who register and log in at OWASP cost while the
    /// others are connected (the others' accounts are made beforehand).
    pub memory_crowd_owasp_users: usize,
    pub memory_hold_secs: f64,
    pub memory_fanout_messages: u64,
}

impl Sizes {
    /// The full run: under two minutes on two cores.
    pub fn full() -> Sizes {
        Sizes {
            idle_connections: 10_000,
            idle_secs: 5.0,
            heartbeat_secs: 30.0,
            direct_pairs: 1000,
            direct_closed_secs: 6.0,
            direct_pipeline: vec![4],
            direct_rates: vec![1000, 5000],
            direct_open_secs: 5.0,
            direct_heart_diagnostic: true,
            fanout_groups: vec![100, 1000],
            // 32 senders is a diagnostic beyond the 1 and 8: it shows
            // whether the limit is the fan-out or the senders' commit waits.
            fanout_senders: vec![1, 8, 32],
            fanout_pipeline: 4,
            fanout_secs: 3.0,
            slow_reader_secs: 5.0,
            history_messages: 1_000_000,
            history_groups: 1000,
            history_users: 100,
            history_secs: 5.0,
            history_readers: 4,
            history_write_rate: 500,
            login_users: 16,
            login_pairs: 25,
            login_rate: 500,
            login_secs: 4.0,
            login_concurrency: 32,
            limits_connections: 200,
            limits_secs: 3.0,
            memory_logins: 100,
            memory_quiet_secs: 10.0,
            memory_wal_pairs: 50,
            memory_wal_secs: 10.0,
            memory_crowds: vec![(5000, 64), (10_000, 128)],
            memory_crowd_owasp_users: 100,
            memory_hold_secs: 60.0,
            memory_fanout_messages: 1000,
        }
    }

    /// `--quick`: smaller and shorter, under 20 seconds.
    pub fn quick() -> Sizes {
        Sizes {
            idle_connections: 2000,
            idle_secs: 0.5,
            direct_pairs: 150,
            direct_closed_secs: 0.8,
            direct_rates: vec![5000],
            direct_open_secs: 1.0,
            direct_heart_diagnostic: false,
            fanout_groups: vec![100],
            fanout_senders: vec![1, 8],
            fanout_secs: 0.5,
            slow_reader_secs: 1.0,
            history_messages: 100_000,
            history_groups: 200,
            history_users: 20,
            history_secs: 1.0,
            history_readers: 1,
            login_users: 4,
            login_pairs: 5,
            login_secs: 1.0,
            login_concurrency: 16,
            limits_connections: 100,
            limits_secs: 1.0,
            memory_logins: 30,
            memory_wal_secs: 3.0,
            memory_crowds: vec![(1000, 64)],
            memory_hold_secs: 5.0,
            memory_fanout_messages: 100,
            ..Sizes::full()
        }
    }

    /// Tiny: for the test that keeps the scenarios from rotting.
    pub fn smoke() -> Sizes {
        // Windows of a second: on a loaded machine a first round trip can take
        // a few hundred milliseconds, and a window must still count something.
        Sizes {
            idle_connections: 20,
            idle_secs: 0.3,
            heartbeat_secs: 0.1,
            direct_pairs: 5,
            direct_closed_secs: 1.0,
            direct_pipeline: vec![2],
            direct_rates: vec![100],
            direct_open_secs: 1.0,
            direct_heart_diagnostic: true,
            fanout_groups: vec![10],
            fanout_senders: vec![1, 2],
            fanout_pipeline: 2,
            fanout_secs: 1.0,
            slow_reader_secs: 0.5,
            history_messages: 2000,
            history_groups: 10,
            history_users: 4,
            history_secs: 1.0,
            history_readers: 2,
            history_write_rate: 50,
            login_users: 2,
            login_pairs: 2,
            login_rate: 50,
            login_secs: 1.0,
            login_concurrency: 2,
            limits_connections: 4,
            limits_secs: 1.0,
            memory_logins: 4,
            memory_quiet_secs: 0.3,
            memory_wal_pairs: 2,
            memory_wal_secs: 0.3,
            memory_crowds: vec![(12, 0)],
            memory_crowd_owasp_users: 2,
            memory_hold_secs: 0.3,
            memory_fanout_messages: 5,
        }
    }
}

/// The validated options of a run.
#[derive(Debug, Clone)]
pub struct Options {
    /// The `rim` binary to start servers from.
    pub server_exe: PathBuf,
    /// The `rim-bench` binary to start the echo server of `limits` from.
    pub echo_exe: PathBuf,
    /// A running server to use instead of starting one.
    pub url: Option<SocketAddr>,
    /// Its process id, to read its memory and CPU.
    pub pid: Option<u32>,
    /// Where temporary databases go (a fresh directory inside it).
    pub dir: Option<PathBuf>,
    pub sizes: Sizes,
    pub scenarios: Vec<Scenario>,
    /// Progress lines on stderr.
    pub progress: bool,
}

impl Options {
    pub fn from_args(args: &Args) -> anyhow::Result<Options> {
        let mut sizes = if args.quick {
            Sizes::quick()
        } else {
            Sizes::full()
        };
        if let Some(n) = args.connections {
            if n == 0 {
                bail!("--connections must be at least 1");
            }
            sizes.idle_connections = n;
        }
        let url = args.url.as_deref().map(parse_loopback_url).transpose()?;
        let echo_exe = std::env::current_exe().context("cannot find the rim-bench binary")?;
        let server_exe = match &args.server {
            Some(path) => path.clone(),
            None => rim_next_to(&echo_exe),
        };
        // A `--url` server is started by someone else; no scenario starts
        // another then.
        if url.is_none() {
            check_server(&server_exe)?;
        }
        Ok(Options {
            server_exe,
            echo_exe,
            url,
            pid: args.pid,
            dir: args.dir.clone(),
            sizes,
            scenarios: match args.scenario {
                Some(s) => vec![s],
                None => Scenario::ALL.to_vec(),
            },
            progress: true,
        })
    }
}

/// The `rim` binary beside `exe`: where cargo puts it when it builds the
/// workspace (`target/release/rim` next to `target/release/rim-bench`).
pub fn rim_next_to(exe: &Path) -> PathBuf {
    exe.with_file_name(format!("rim{}", std::env::consts::EXE_SUFFIX))
}

/// Fails unless `path` is a file, telling how to build one.
fn check_server(path: &Path) -> anyhow::Result<()> {
    if path.is_file() {
        return Ok(());
    }
    bail!(
        "no rim server binary at {}: rim-bench starts `rim serve` children from it; \
         build it first (`cargo build --release` at the top of the checkout builds both) \
         or give its path with --server PATH",
        path.display()
    )
}

/// `http://127.0.0.1:8000` (or `ws://`, `localhost`, `[::1]`) to an address;
/// anything that is not loopback is refused: the benchmark floods its target.
fn parse_loopback_url(url: &str) -> anyhow::Result<SocketAddr> {
    let rest = ["http://", "ws://"]
        .iter()
        .find_map(|p| url.strip_prefix(p))
        .with_context(|| format!("--url {url:?}: use http://127.0.0.1:PORT"))?;
    let authority = rest.split('/').next().unwrap_or("");
    let authority = authority.replace("localhost", "127.0.0.1");
    let addr: SocketAddr = authority
        .parse()
        .with_context(|| format!("--url {url:?}: expected a loopback address with a port"))?;
    let loopback = match addr.ip() {
        IpAddr::V4(ip) => ip.is_loopback(),
        IpAddr::V6(ip) => ip.is_loopback(),
    };
    if !loopback {
        bail!("--url {url:?}: rim-bench only targets loopback addresses (127.0.0.0/8, ::1)");
    }
    Ok(addr)
}

// ---- reports -------------------------------------------------------------------

/// Latency percentiles, in microseconds.
#[derive(Debug, Clone, Serialize)]
pub struct Latency {
    /// What was timed: "ack", "delivery", "last delivery", "request", ...
    pub of: &'static str,
    pub count: u64,
    pub p50_us: f64,
    pub p99_us: f64,
    pub p999_us: f64,
    pub max_us: f64,
}

impl Latency {
    pub fn from_hist(of: &'static str, h: &Histogram) -> Latency {
        let us = |ns: u64| ns as f64 / 1000.0;
        Latency {
            of,
            count: h.count(),
            p50_us: us(h.quantile_ns(0.5)),
            p99_us: us(h.quantile_ns(0.99)),
            p999_us: us(h.quantile_ns(0.999)),
            max_us: us(h.max_ns()),
        }
    }
}

/// One measured line of a scenario.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub phase: String,
    /// Operations counted in the window.
    pub count: u64,
    pub rate: f64,
    pub unit: &'static str,
    pub latency: Option<Latency>,
    pub usage: Usage,
}

impl Row {
    pub fn new(phase: impl Into<String>, count: u64, unit: &'static str, usage: Usage) -> Row {
        Row {
            phase: phase.into(),
            count,
            rate: count as f64 / usage.secs.max(1e-9),
            unit,
            latency: None,
            usage,
        }
    }

    pub fn latency(mut self, of: &'static str, h: &Histogram) -> Row {
        if h.count() > 0 {
            self.latency = Some(Latency::from_hist(of, h));
        }
        self
    }
}

/// A target of issue 4 and whether this run met it.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub target: String,
    pub measured: String,
    pub met: bool,
}

/// The machine and build a report was measured on.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    pub cpu: String,
    pub cores: usize,
    pub build: &'static str,
    /// The version of rim and of this load generator: the workspace has one.
    pub rim: &'static str,
}

impl Machine {
    pub fn this() -> Machine {
        Machine {
            cpu: sys::cpu_model(),
            cores: sys::cores(),
            build: if cfg!(debug_assertions) {
                "debug"
            } else {
                "release"
            },
            rim: env!("CARGO_PKG_VERSION"),
        }
    }
}

/// Everything one scenario measured.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub scenario: &'static str,
    pub machine: Machine,
    pub rows: Vec<Row>,
    pub checks: Vec<Check>,
    /// Key figures by name, for scripts and for later scenarios.
    pub figures: BTreeMap<&'static str, f64>,
    pub notes: Vec<String>,
    /// Things that went wrong: refused or unanswered frames, lost
    /// connections, short pages. A clean run has none.
    pub problems: Vec<String>,
}

impl Report {
    pub fn new(scenario: Scenario) -> Report {
        Report {
            scenario: scenario.name(),
            machine: Machine::this(),
            rows: Vec::new(),
            checks: Vec::new(),
            figures: BTreeMap::new(),
            notes: Vec::new(),
            problems: Vec::new(),
        }
    }

    pub fn check(&mut self, target: impl Into<String>, measured: impl Into<String>, met: bool) {
        self.checks.push(Check {
            target: target.into(),
            measured: measured.into(),
            met,
        });
    }

    pub fn figure(&self, name: &str) -> Option<f64> {
        self.figures.get(name).copied()
    }
}

// ---- running -------------------------------------------------------------------

/// What a scenario gets: the options, a place for files, earlier reports.
pub struct Ctx<'a> {
    pub opts: &'a Options,
    pub sizes: &'a Sizes,
    /// A directory of its own, removed after the run.
    pub dir: PathBuf,
    /// Prefix of account names, unique per run (a `--url` server keeps them).
    pub run_id: String,
    pub earlier: &'a [Report],
}

impl Ctx<'_> {
    /// Starts a child server with a fresh database named `name`, or returns
    /// the `--url` server.
    pub async fn server(&self, name: &str, spec: &ServerSpec) -> anyhow::Result<Target> {
        match self.opts.url {
            Some(addr) => Ok(Target::external(addr, self.opts.pid)),
            None => {
                let db = self.dir.join(format!("{name}.db"));
                Target::start(&self.opts.server_exe, &self.dir, &db, spec).await
            }
        }
    }

    pub fn progress(&self, what: impl std::fmt::Display) {
        if self.opts.progress {
            eprintln!("rim-bench: {what}");
        }
    }

    /// An account name prefix unique to this run and scenario part.
    pub fn accounts(&self, part: &str) -> String {
        format!("{}{part}", self.run_id)
    }
}

/// A directory removed when dropped.
struct WorkDir(PathBuf);

impl Drop for WorkDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs the chosen scenarios in order, handing each report to `on_report`
/// as soon as it is complete.
pub async fn run(
    opts: &Options,
    mut on_report: impl FnMut(&Report),
) -> anyhow::Result<Vec<Report>> {
    client::epoch();
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let run_id = format!(
        "b{:x}",
        (nanos as u64 ^ u64::from(std::process::id())) & 0xff_ffff
    );
    let base = opts.dir.clone().unwrap_or_else(std::env::temp_dir);
    let work = WorkDir(base.join(format!("rim-bench-{}-{run_id}", std::process::id())));
    std::fs::create_dir_all(&work.0)
        .with_context(|| format!("cannot create {}", work.0.display()))?;
    let mut reports: Vec<Report> = Vec::new();
    for &scenario in &opts.scenarios {
        let dir = work.0.join(scenario.name());
        std::fs::create_dir_all(&dir)?;
        let ctx = Ctx {
            opts,
            sizes: &opts.sizes,
            dir: dir.clone(),
            run_id: format!("{run_id}{}", &scenario.name()[..2]),
            earlier: &reports,
        };
        ctx.progress(format_args!("scenario {}", scenario.name()));
        let report = match scenario {
            Scenario::Idle => idle::run(&ctx).await,
            Scenario::Direct => direct::run(&ctx).await,
            Scenario::Fanout => fanout::run(&ctx).await,
            Scenario::History => history::run(&ctx).await,
            Scenario::Login => login::run(&ctx).await,
            Scenario::Limits => limits::run(&ctx).await,
            Scenario::Memory => memory::run(&ctx).await,
        }
        .with_context(|| format!("scenario {}", scenario.name()))?;
        let _ = std::fs::remove_dir_all(&dir);
        on_report(&report);
        reports.push(report);
        // Let sockets of the finished scenario close before the next starts.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(reports)
}

/// `rim-bench`: check the options, run, print (or serve the echo of
/// `limits`, when started as its echo server).
pub fn main(args: Args) -> anyhow::Result<()> {
    if args.echo_server {
        return limits::echo_server_main();
    }
    let opts = Options::from_args(&args)?;
    // The raw SQLite ceilings open databases through rim's own store, which
    // logs at info; the table is the output here.
    rim::log::set_level(rim::log::Level::Warn);
    let want_fds = opts.sizes.idle_connections as u64 * 2 + 4096;
    let fds = sys::raise_nofile(want_fds);
    let mut opts = opts;
    if (fds as usize) < opts.sizes.idle_connections + 1024 {
        let n = (fds as usize).saturating_sub(1024).max(1);
        eprintln!(
            "rim-bench: the open-file limit is {fds}; idle uses {n} connections instead of {} (raise `ulimit -n`)",
            opts.sizes.idle_connections
        );
        opts.sizes.idle_connections = n;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let json = args.json;
    if !json {
        print!("{}", header(&Machine::this(), &opts));
    }
    let reports = runtime.block_on(run(&opts, |report| {
        if json {
            println!("{}", serde_json::to_string(report).unwrap_or_default());
        } else {
            print!("{}", table(report));
        }
    }))?;
    if !json {
        print!("{}", summary(&reports));
    }
    Ok(())
}

// ---- printing ------------------------------------------------------------------

fn header(m: &Machine, opts: &Options) -> String {
    let target = match opts.url {
        Some(addr) => format!("the server at {addr}"),
        None => "a fresh `rim serve` child per scenario (synchronous = FULL, WAL)".into(),
    };
    let load =
        sys::load_average().map_or_else(String::new, |l| format!(", load average {l:.2} at start"));
    format!(
        "rim-bench {}: {} build, {} x {}{load}, {}\n\
         latency in ms; CPU seconds over each phase: srv = server, gen = this load generator, \
         other = everything else on the machine\n\n",
        m.rim, m.build, m.cores, m.cpu, target
    )
}

fn ms(us: f64) -> String {
    let v = us / 1000.0;
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

fn opt<T: std::fmt::Display>(v: Option<T>) -> String {
    v.map_or_else(|| "-".into(), |v| v.to_string())
}

pub fn rate(v: f64) -> String {
    let v = v.round() as u64;
    let s = v.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

pub fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

/// One scenario as table lines.
pub fn table(r: &Report) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{:<8} {:<40} {:>16} {:<14} {:>8} {:>8} {:>8} {:>8} {:>6} {:>6} {:>6} {:>6} {:>10}",
        "scenario",
        "phase",
        "rate",
        "latency of",
        "p50",
        "p99",
        "p99.9",
        "max",
        "secs",
        "srv",
        "gen",
        "other",
        "srv RSS"
    );
    for row in &r.rows {
        let (of, p50, p99, p999, max) = match &row.latency {
            Some(l) => (
                l.of,
                ms(l.p50_us),
                ms(l.p99_us),
                ms(l.p999_us),
                ms(l.max_us),
            ),
            None => ("", "".into(), "".into(), "".into(), "".into()),
        };
        let u = &row.usage;
        let _ = writeln!(
            s,
            "{:<8} {:<40} {:>16} {:<14} {:>8} {:>8} {:>8} {:>8} {:>6.1} {:>6} {:>6} {:>6} {:>10}",
            r.scenario,
            row.phase,
            format!("{} {}", rate(row.rate), row.unit),
            of,
            p50,
            p99,
            p999,
            max,
            u.secs,
            opt(u.server_cpu_secs.map(|c| format!("{c:.1}"))),
            opt(u.loadgen_cpu_secs.map(|c| format!("{c:.1}"))),
            opt(u.other_cpu_secs.map(|c| format!("{c:.1}"))),
            opt(u.server_rss_kib.map(mib)),
        );
    }
    for c in &r.checks {
        let _ = writeln!(
            s,
            "         {} {}: {}",
            if c.met { "MET   " } else { "MISSED" },
            c.target,
            c.measured
        );
    }
    for n in &r.notes {
        let _ = writeln!(s, "         note: {n}");
    }
    for p in &r.problems {
        let _ = writeln!(s, "         PROBLEM: {p}");
    }
    s.push('\n');
    s
}

fn summary(reports: &[Report]) -> String {
    let checks: Vec<&Check> = reports.iter().flat_map(|r| &r.checks).collect();
    let met = checks.iter().filter(|c| c.met).count();
    format!("targets met: {met} of {}\n", checks.len())
}

/// The path of the database of a child target (for scenarios that write it directly).
pub fn db_path(target: &Target) -> anyhow::Result<&Path> {
    target
        .db
        .as_deref()
        .context("this scenario needs a child server's database")
}
