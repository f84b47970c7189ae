//! A memory cgroup for the server under test: the limit a small machine (or
//! a container) puts on it, so that "fits in 64 MiB" is tried by the kernel
//! rather than inferred from RSS. The kernel charges everything the server
//! uses there (its heap, its stacks, the page cache of the files it writes,
//! its sockets' buffers), and kills it when the limit is reached and nothing
//! can be reclaimed.
//!
//! cgroup v2 (`memory.max`) where its memory controller is available, else
//! the v1 memory hierarchy (`memory.limit_in_bytes`). Creating a group needs
//! root, or a delegated subtree; when neither works the scenario says so and
//! runs without one. The group is removed when dropped (after the server has
//! exited).

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

/// A memory cgroup this process made.
pub struct Cgroup {
    path: PathBuf,
    v2: bool,
}

impl Cgroup {
    /// Makes the group `name` limited to `limit_bytes`, without swap.
    pub fn create(name: &str, limit_bytes: u64) -> anyhow::Result<Cgroup> {
        let v2_root = Path::new("/sys/fs/cgroup");
        let v2 = std::fs::read_to_string(v2_root.join("cgroup.controllers"))
            .is_ok_and(|c| c.split_whitespace().any(|c| c == "memory"));
        let (root, v2) = if v2 {
            // Children of the root get the memory controller only once the
            // root hands it down.
            let _ = std::fs::write(v2_root.join("cgroup.subtree_control"), "+memory");
            (v2_root.to_owned(), true)
        } else if Path::new("/sys/fs/cgroup/memory/memory.limit_in_bytes").exists() {
            (PathBuf::from("/sys/fs/cgroup/memory"), false)
        } else {
            bail!("no cgroup memory controller under /sys/fs/cgroup (neither v2 nor v1)");
        };
        let path = root.join(name);
        let _ = std::fs::remove_dir(&path);
        std::fs::create_dir(&path).with_context(|| format!("cannot create {}", path.display()))?;
        let group = Cgroup { path, v2 };
        let limit = limit_bytes.to_string();
        if v2 {
            group.set("memory.max", &limit)?;
            // Absent without swap accounting; without it there is no swap.
            let _ = group.set("memory.swap.max", "0");
        } else {
            group.set("memory.limit_in_bytes", &limit)?;
            // Memory plus swap: the same limit, so nothing is swapped out.
            let _ = group.set("memory.memsw.limit_in_bytes", &limit);
        }
        Ok(group)
    }

    fn set(&self, file: &str, value: &str) -> anyhow::Result<()> {
        let path = self.path.join(file);
        std::fs::write(&path, value).with_context(|| format!("cannot write {}", path.display()))
    }

    fn read(&self, file: &str) -> Option<String> {
        std::fs::read_to_string(self.path.join(file)).ok()
    }

    /// The file a process is moved into the group through.
    pub fn procs(&self) -> PathBuf {
        self.path.join("cgroup.procs")
    }

    pub fn version(&self) -> &'static str {
        if self.v2 { "v2" } else { "v1" }
    }

    /// The most the group has been charged, in KiB.
    pub fn peak_kib(&self) -> Option<u64> {
        let file = if self.v2 {
            "memory.peak"
        } else {
            "memory.max_usage_in_bytes"
        };
        self.read(file)?
            .trim()
            .parse::<u64>()
            .ok()
            .map(|b| b / 1024)
    }

    /// Processes the kernel killed for want of memory in the group.
    pub fn oom_kills(&self) -> Option<u64> {
        let file = if self.v2 {
            "memory.events"
        } else {
            "memory.oom_control"
        };
        self.read(file)?
            .lines()
            .find_map(|l| l.strip_prefix("oom_kill "))
            .and_then(|v| v.trim().parse().ok())
    }
}

impl Drop for Cgroup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.path);
    }
}

/// Makes the child started by `cmd` join the group of `procs` between fork
/// and exec: it then runs its first instruction inside the limit.
pub fn join_before_exec(cmd: &mut std::process::Command, procs: &Path) -> anyhow::Result<()> {
    let path = CString::new(procs.as_os_str().as_bytes())?;
    // SAFETY: between fork and exec only async-signal-safe calls may run;
    // open, write and close are, and the closure allocates nothing (the
    // path was made before the fork). Writing "0" moves the writer itself.
    unsafe {
        cmd.pre_exec(move || {
            let fd = libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
            if fd < 0 {
                return Err(std::io::Error::last_os_error());
            }
            let written = libc::write(fd, b"0".as_ptr().cast(), 1);
            let error = std::io::Error::last_os_error();
            libc::close(fd);
            if written != 1 {
                return Err(error);
            }
            Ok(())
        });
    }
    Ok(())
}
