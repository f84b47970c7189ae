//! The command line of `rim-bench`: which scenarios, how large, against what.
//!
//! Parsing only; [`Options::from_args`](crate::Options::from_args) checks
//! the values and finds the `rim` binary to start.

use std::path::PathBuf;

use clap::Parser;

use crate::Scenario;

/// `rim-bench`: starts `rim serve` children on loopback (or uses `--url`)
/// and drives them with real WebSocket clients.
#[derive(Debug, Clone, Default, Parser)]
#[command(
    name = "rim-bench",
    version,
    about = "Measure a rim server: throughput, latency, memory and CPU (see BENCHMARKS.md)",
    long_about = None
)]
pub struct Args {
    /// Run only this scenario (default: all, in this order).
    #[arg(long, value_name = "NAME", value_enum)]
    pub scenario: Option<Scenario>,
    /// Smaller sizes and shorter phases: finishes in under 20 seconds.
    #[arg(long)]
    pub quick: bool,
    /// Print one JSON object per scenario instead of the table.
    #[arg(long)]
    pub json: bool,
    /// Benchmark a running server on loopback, e.g. http://127.0.0.1:8000,
    /// instead of starting one (its rate limits must be off).
    #[arg(long, value_name = "URL")]
    pub url: Option<String>,
    /// With --url: the server's process id, to report its memory and CPU.
    #[arg(long, value_name = "PID", requires = "url")]
    pub pid: Option<u32>,
    /// The `rim` binary to start servers from (default: the `rim` next to
    /// this binary, where `cargo build --release` puts both).
    #[arg(long, value_name = "PATH", conflicts_with = "url")]
    pub server: Option<PathBuf>,
    /// Directory for the temporary databases (default: the system temp
    /// directory); put it on the disk whose fsync you want measured.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Logged-in connections of the idle scenario (default 10000, --quick 2000).
    #[arg(long, value_name = "N")]
    pub connections: Option<usize>,
    /// Serve the raw WebSocket echo of the limits scenario (internal: the
    /// scenario starts this binary in this mode as its echo server).
    #[arg(long, hide = true)]
    pub echo_server: bool,
}
