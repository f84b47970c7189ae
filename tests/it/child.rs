//! A real `rim serve` child process, for tests that kill or signal it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::common::WAIT;

/// A `rim serve` child process on a loopback port it picked itself.
pub struct ChildServer {
    pub child: Child,
    pub addr: SocketAddr,
    /// Everything the server logged so far.
    pub log: Arc<Mutex<String>>,
    /// The task copying the log; it ends when the child's stderr does.
    log_reader: Option<tokio::task::JoinHandle<()>>,
}

/// A config for child servers: cheap hashing, no rate limits.
pub fn write_config(dir: &Path) -> PathBuf {
    let path = dir.join("rim.toml");
    std::fs::write(
        &path,
        "log_level = \"info\"\n\
         [auth]\nargon2_memory_kib = 64\nargon2_iterations = 1\n\
         [rate_limits]\nlogins_per_account_per_minute = 0\nlogins_per_ip_per_minute = 0\n\
         registrations_per_ip_per_hour = 0\nmessages_per_second = 0\n\
             logins_per_account_per_hour = 0\nframes_per_second = 0\ngroups_per_user_per_hour = 0\n\
             member_adds_per_user_per_hour = 0\nsearches_per_user_per_minute = 0\n",
    )
    .unwrap();
    path
}

impl ChildServer {
    pub async fn start(config: &Path, db: &Path) -> ChildServer {
        let mut child = Command::new(env!("CARGO_BIN_EXE_rim"))
            .arg("serve")
            .arg("--listen")
            .arg("127.0.0.1:0")
            .arg("--db")
            .arg(db)
            .arg("--config")
            .arg(config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("rim starts");
        // The server logs `listening addr=127.0.0.1:PORT` once it is bound.
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let mut early = String::new();
        let addr = tokio::time::timeout(WAIT, async {
            while let Some(line) = lines.next_line().await.unwrap() {
                early.push_str(&line);
                early.push('\n');
                if let Some(rest) = line.split(" listening addr=").nth(1) {
                    return rest.split_whitespace().next().unwrap().parse().unwrap();
                }
            }
            panic!("rim exited before listening");
        })
        .await
        .expect("rim listens in time");
        // Keep draining the log so the child never blocks on a full pipe.
        let log = Arc::new(Mutex::new(early));
        let sink = log.clone();
        let log_reader = tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                let mut log = sink.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        ChildServer {
            child,
            addr,
            log,
            log_reader: Some(log_reader),
        }
    }

    pub async fn kill9(mut self) {
        self.child.start_kill().expect("SIGKILL");
        self.child.wait().await.expect("reaped");
    }

    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.child.id().expect("running")
    }

    /// Sends SIGTERM and waits for the exit status.
    pub async fn terminate(mut self) -> std::process::ExitStatus {
        let status = std::process::Command::new("kill")
            .arg("-TERM")
            .arg(self.pid().to_string())
            .status()
            .expect("kill runs");
        assert!(status.success());
        tokio::time::timeout(WAIT * 3, self.child.wait())
            .await
            .expect("exits in time")
            .expect("exit status")
    }

    /// Sends SIGTERM, waits for the exit, and returns the status with the log.
    pub async fn terminate_keep_log(mut self) -> (std::process::ExitStatus, String) {
        let log = self.log.clone();
        let reader = self.log_reader.take().expect("the log reader");
        let status = self.terminate().await;
        // The child is gone, so its stderr ends: the reader has copied
        // everything once it finishes.
        tokio::time::timeout(WAIT, reader)
            .await
            .expect("the log ends with the child")
            .expect("the log reader");
        let text = log.lock().unwrap().clone();
        (status, text)
    }

    /// Resident memory of the child in KiB, from /proc.
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }
}
