//! What the operating system knows about the two processes of a benchmark:
//! resident memory and CPU time of the server (from `/proc/<pid>`), the load
//! generator's own CPU time (`/proc/self`), the machine's CPU model, and the
//! open-file limit, raised so that ten thousand sockets fit.
//!
//! Linux only, like the figures it reads. Reading never fails loudly: a
//! missing file yields `None` and the table shows a dash.

use std::time::Instant;

/// Linux reports process times in clock ticks of 1/100 s (`USER_HZ`), fixed
/// at 100 for user space on every architecture it runs on.
const TICKS_PER_SEC: f64 = 100.0;

/// Resident memory (`VmRSS`) of a process, in KiB.
pub fn rss_kib(pid: u32) -> Option<u64> {
    status_field(pid, "VmRSS:")
}

/// Peak resident memory (`VmHWM`) since the process started, in KiB.
pub fn peak_rss_kib(pid: u32) -> Option<u64> {
    status_field(pid, "VmHWM:")
}

fn status_field(pid: u32, key: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// User plus system CPU seconds a process has used, all threads together.
pub fn cpu_secs(pid: Option<u32>) -> Option<f64> {
    let path = match pid {
        Some(pid) => format!("/proc/{pid}/stat"),
        None => "/proc/self/stat".to_owned(),
    };
    let stat = std::fs::read_to_string(path).ok()?;
    // The command name (field 2) may contain spaces; fields after it are
    // counted from the closing parenthesis. utime and stime are fields 14, 15.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / TICKS_PER_SEC)
}

/// CPU seconds the whole machine spent busy (all processes, all cores),
/// from the first line of `/proc/stat`: everything but idle and iowait.
pub fn machine_busy_secs() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().next()?.strip_prefix("cpu ")?;
    let f: Vec<f64> = line
        .split_whitespace()
        .filter_map(|v| v.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal [guest guest_nice, already in user]
    let busy =
        f.first()? + f.get(1)? + f.get(2)? + f.get(5)? + f.get(6)? + f.get(7).unwrap_or(&0.0);
    Some(busy / TICKS_PER_SEC)
}

/// The one-minute load average: above zero before a run means other work
/// is competing for the CPU.
pub fn load_average() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// The CPU model name from `/proc/cpuinfo`.
pub fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|v| v.trim_start_matches([' ', '\t', ':']).trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".into())
}

pub fn cores() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

/// The (soft, hard) limits on open files of this process.
pub fn nofile_limits() -> Option<(u64, u64)> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    let mut nums = line["Max open files".len()..].split_whitespace();
    let parse = |s: Option<&str>| match s? {
        "unlimited" => Some(u64::MAX),
        n => n.parse().ok(),
    };
    Some((parse(nums.next())?, parse(nums.next())?))
}

/// Raises this process's soft open-file limit towards `want` (never past the
/// hard limit) and returns the limit in force. Child processes started
/// afterwards inherit it, which is how the server gets it too.
///
/// std has no `setrlimit`, and this is not worth a libc dependency: util-linux's
/// `prlimit` does it from outside, on our own pid. Without it, the current
/// limit stays and the caller scales its connection count to fit.
pub fn raise_nofile(want: u64) -> u64 {
    let Some((soft, hard)) = nofile_limits() else {
        return 1024;
    };
    if soft >= want {
        return soft;
    }
    let target = want.min(hard);
    let _ = std::process::Command::new("prlimit")
        .arg("--pid")
        .arg(std::process::id().to_string())
        .arg(format!("--nofile={target}:{hard}"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status();
    nofile_limits().map_or(soft, |(s, _)| s)
}

/// CPU and memory figures over one phase of a scenario.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct Usage {
    /// Wall-clock length of the phase.
    pub secs: f64,
    /// Server CPU seconds (user + system, all threads) during the phase.
    pub server_cpu_secs: Option<f64>,
    /// The load generator's own CPU seconds during the phase.
    pub loadgen_cpu_secs: Option<f64>,
    /// CPU seconds used by everything else on the machine meanwhile (other
    /// processes; with `--url` and no `--pid`, the server too). Non-zero
    /// means the figures were measured on a busy machine.
    pub other_cpu_secs: Option<f64>,
    /// Server resident memory at the end of the phase, KiB.
    pub server_rss_kib: Option<u64>,
    /// Server peak resident memory since it started, KiB.
    pub server_peak_rss_kib: Option<u64>,
}

/// Started at the beginning of a phase; [`Meter::finish`] gives its [`Usage`].
pub struct Meter {
    pid: Option<u32>,
    started: Instant,
    server_cpu: Option<f64>,
    own_cpu: Option<f64>,
    machine: Option<f64>,
}

impl Meter {
    pub fn start(pid: Option<u32>) -> Meter {
        Meter {
            pid,
            started: Instant::now(),
            server_cpu: pid.and_then(|p| cpu_secs(Some(p))),
            own_cpu: cpu_secs(None),
            machine: machine_busy_secs(),
        }
    }

    pub fn finish(&self) -> Usage {
        let secs = self.started.elapsed().as_secs_f64();
        let server_now = self.pid.and_then(|p| cpu_secs(Some(p)));
        let own_now = cpu_secs(None);
        let machine_now = machine_busy_secs();
        let server = server_now.zip(self.server_cpu).map(|(b, a)| b - a);
        let own = own_now.zip(self.own_cpu).map(|(b, a)| b - a);
        let machine = machine_now.zip(self.machine).map(|(b, a)| b - a);
        Usage {
            secs,
            server_cpu_secs: server,
            loadgen_cpu_secs: own,
            other_cpu_secs: machine
                .map(|m| (m - server.unwrap_or(0.0) - own.unwrap_or(0.0)).max(0.0)),
            server_rss_kib: self.pid.and_then(rss_kib),
            server_peak_rss_kib: self.pid.and_then(peak_rss_kib),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_our_own_process() {
        let me = std::process::id();
        assert!(rss_kib(me).unwrap() > 0);
        assert!(peak_rss_kib(me).unwrap() >= rss_kib(me).unwrap() / 2);
        // Burn a little CPU so the counter is visibly non-negative.
        let mut x = 0u64;
        for i in 0..1_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(x);
        assert!(cpu_secs(None).unwrap() >= 0.0);
        assert!(cpu_secs(Some(me)).is_some());
        let (soft, hard) = nofile_limits().unwrap();
        assert!(soft <= hard);
        assert!(!cpu_model().is_empty());
    }
}
