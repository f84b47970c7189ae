//! The server under test: a `rim serve` child process on a loopback port it
//! chose itself, with a fresh database and a configuration written for the
//! benchmark, or a server someone else started (`--url`).
//!
//! The child is a separate process on purpose: its memory and CPU are then
//! its own, readable from `/proc/<pid>`, and never mixed with the load
//! generator's. Its port is learnt from the `listening addr=` line it logs
//! once bound, so no port is ever guessed. Its log is drained by a thread (a
//! full pipe would stall the server) and the last lines are kept to explain
//! a child that dies.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// How long a child may take to start listening.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// Log lines kept to explain a failure.
const LOG_TAIL: usize = 40;

/// The server settings a scenario asks for.
#[derive(Debug, Clone)]
pub struct ServerSpec {
    /// OWASP argon2id cost (the shipped default) instead of a cheap one.
    pub owasp_hashing: bool,
    /// `limits.max_connections`.
    pub max_connections: usize,
    /// `auth.hash_concurrency` (None: the shipped default, cores - 1).
    pub hash_concurrency: Option<usize>,
}

impl ServerSpec {
    pub fn cheap(max_connections: usize) -> ServerSpec {
        ServerSpec {
            owasp_hashing: false,
            max_connections,
            hash_concurrency: None,
        }
    }

    /// The shipped argon2 cost.
    pub fn owasp(max_connections: usize) -> ServerSpec {
        ServerSpec {
            owasp_hashing: true,
            ..ServerSpec::cheap(max_connections)
        }
    }

    /// The configuration file: the shipped defaults except what a benchmark
    /// must change. Rate limits are off (one address registers thousands of
    /// users and sends thousands of messages a second); hashing is cheap
    /// unless the scenario measures it; the connection limits fit the load.
    /// Durability stays `synchronous = "full"`: every ack is on disk.
    pub fn config_text(&self) -> String {
        let mut s = String::from(
            "# Written by `rim-bench`.\n\
             log_level = \"info\"\n\
             [storage]\nsynchronous = \"full\"\n\
             [rate_limits]\nlogins_per_account_per_minute = 0\nlogins_per_ip_per_minute = 0\n\
             registrations_per_ip_per_hour = 0\nmessages_per_second = 0\n\
             logins_per_account_per_hour = 0\nframes_per_second = 0\ngroups_per_user_per_hour = 0\n\
             member_adds_per_user_per_hour = 0\nsearches_per_user_per_minute = 0\n\
             [timeouts]\nshutdown_grace_secs = 3\n",
        );
        if !self.owasp_hashing || self.hash_concurrency.is_some() {
            s.push_str("[auth]\n");
        }
        if !self.owasp_hashing {
            s.push_str("argon2_memory_kib = 64\nargon2_iterations = 1\n");
        }
        if let Some(n) = self.hash_concurrency {
            s.push_str(&format!("hash_concurrency = {n}\n"));
        }
        // All the load comes from one address, and a scenario opens its
        // sockets faster than they log in.
        s.push_str(&format!(
            "[limits]\nmax_connections = {n}\nmax_connections_per_address = {n}\n\
             max_sockets_before_login = {n}\nmax_sockets_before_login_per_address = {n}\n",
            n = self.max_connections
        ));
        s
    }
}

/// A server the load generator talks to.
pub struct Target {
    pub addr: SocketAddr,
    /// The server's process id, when known: for its memory and CPU.
    pub pid: Option<u32>,
    child: Option<Spawned>,
    /// The database of a child server.
    pub db: Option<PathBuf>,
}

impl Target {
    /// A server somebody else runs.
    pub fn external(addr: SocketAddr, pid: Option<u32>) -> Target {
        Target {
            addr,
            pid,
            child: None,
            db: None,
        }
    }

    /// Starts `rim serve` from `exe` on 127.0.0.1 with `db` (created if
    /// missing) and the configuration of `spec`, written next to it.
    pub async fn start(
        exe: &Path,
        dir: &Path,
        db: &Path,
        spec: &ServerSpec,
    ) -> anyhow::Result<Target> {
        Target::start_in(exe, dir, db, spec, None).await
    }

    /// [`Target::start`] with the server placed in the memory cgroup whose
    /// `cgroup.procs` file is `procs`, before it runs (so every page it ever
    /// touches is charged there).
    pub async fn start_in(
        exe: &Path,
        dir: &Path,
        db: &Path,
        spec: &ServerSpec,
        procs: Option<&Path>,
    ) -> anyhow::Result<Target> {
        let config = dir.join("rim-bench.toml");
        std::fs::write(&config, spec.config_text())
            .with_context(|| format!("cannot write {}", config.display()))?;
        let mut cmd = Command::new(exe);
        cmd.arg("serve")
            .arg("--listen")
            .arg("127.0.0.1:0")
            .arg("--db")
            .arg(db)
            .arg("--config")
            .arg(&config)
            .env_remove("RIM_LOG")
            .stdin(Stdio::null());
        if let Some(procs) = procs {
            super::cgroup::join_before_exec(&mut cmd, procs)?;
        }
        let (child, addr) = Spawned::start(cmd).await?;
        Ok(Target {
            addr,
            pid: Some(child.pid()),
            child: Some(child),
            db: Some(db.to_owned()),
        })
    }

    /// Whether this is a child process the benchmark started.
    pub fn is_child(&self) -> bool {
        self.child.is_some()
    }

    /// Stops a child server gracefully (SIGTERM, then SIGKILL after a
    /// deadline) and waits for it. A no-op for an external server.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        match self.child.take() {
            Some(child) => child.stop().await,
            None => Ok(()),
        }
    }

    /// Fails with the child's last log lines if it has exited.
    pub fn check_alive(&mut self) -> anyhow::Result<()> {
        match &mut self.child {
            Some(child) => child.check_alive(),
            None => Ok(()),
        }
    }
}

/// A child process that logs `listening addr=...` on stderr once it serves.
pub struct Spawned {
    child: Child,
    log: Arc<Mutex<VecDeque<String>>>,
}

impl Spawned {
    pub async fn start(mut cmd: Command) -> anyhow::Result<(Spawned, SocketAddr)> {
        cmd.stdout(Stdio::null()).stderr(Stdio::piped());
        let mut child = cmd.spawn().context("cannot start the server process")?;
        let stderr = child.stderr.take().context("no stderr pipe")?;
        let log = Arc::new(Mutex::new(VecDeque::with_capacity(LOG_TAIL)));
        let (tx, rx) = tokio::sync::oneshot::channel::<SocketAddr>();
        let thread_log = log.clone();
        std::thread::Builder::new()
            .name("rim-bench-log".into())
            .spawn(move || drain(stderr, thread_log, tx))
            .context("cannot start the log thread")?;
        let mut spawned = Spawned { child, log };
        match tokio::time::timeout(START_TIMEOUT, rx).await {
            Ok(Ok(addr)) => Ok((spawned, addr)),
            _ => {
                let _ = spawned.child.kill();
                let _ = spawned.child.wait();
                bail!(
                    "the server did not start listening; its log ends with:\n{}",
                    spawned.tail()
                )
            }
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    fn tail(&self) -> String {
        let log = self.log.lock().unwrap_or_else(|e| e.into_inner());
        log.iter().cloned().collect::<Vec<_>>().join("\n")
    }

    fn check_alive(&mut self) -> anyhow::Result<()> {
        if let Ok(Some(status)) = self.child.try_wait() {
            bail!(
                "the server exited ({status}); its log ends with:\n{}",
                self.tail()
            );
        }
        Ok(())
    }

    /// SIGTERM (std has no signals; `kill(1)` sends one), then SIGKILL if it
    /// has not exited within ten seconds.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.pid().to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        bail!(
            "the server did not stop within 10 s of SIGTERM; its log ends with:\n{}",
            self.tail()
        )
    }
}

impl Drop for Spawned {
    /// A benchmark that fails half-way must not leave servers behind.
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn drain(
    stderr: std::process::ChildStderr,
    log: Arc<Mutex<VecDeque<String>>>,
    tx: tokio::sync::oneshot::Sender<SocketAddr>,
) {
    let mut tx = Some(tx);
    for line in BufReader::new(stderr).lines() {
        let Ok(line) = line else { break };
        if let Some(rest) = line.split(" listening addr=").nth(1)
            && let Some(addr) = rest.split_whitespace().next().and_then(|a| a.parse().ok())
            && let Some(tx) = tx.take()
        {
            let _ = tx.send(addr);
        }
        let mut log = log.lock().unwrap_or_else(|e| e.into_inner());
        if log.len() == LOG_TAIL {
            log.pop_front();
        }
        log.push_back(line);
    }
}
