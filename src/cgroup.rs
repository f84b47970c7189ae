//! The memory limit the kernel holds this process to, if any: the memory
//! cgroup it runs in (a systemd unit's `MemoryMax=`, a container's
//! `--memory`), version 2 or version 1, and its ancestors'. Password
//! hashing asks it how much is left before it takes its buffer (see
//! `auth`), so that a login on a full machine waits a moment instead of
//! getting the server killed.
//!
//! Read from the files the kernel publishes, at each question (a few
//! microseconds); nothing is cached but where the files are.

use std::fs;
use std::path::{Path, PathBuf};

/// Values at or above this mean "no limit" (cgroup v1 writes
/// `9223372036854771712` for an unlimited group).
const UNLIMITED: u64 = 1 << 60;

/// The memory cgroups this process is in, its own first, then each parent.
#[derive(Debug, Clone)]
pub struct MemoryLimit {
    groups: Vec<Group>,
}

#[derive(Debug, Clone)]
struct Group {
    dir: PathBuf,
    v2: bool,
}

impl MemoryLimit {
    /// The cgroups of this process that have a memory limit, from
    /// `/proc/self/cgroup`; `None` when there are none (no cgroup, no
    /// limit, or not Linux).
    pub fn detect() -> Option<MemoryLimit> {
        let listing = fs::read_to_string("/proc/self/cgroup").ok()?;
        MemoryLimit::from_listing(&listing, Path::new("/sys/fs/cgroup"))
    }

    /// [`MemoryLimit::detect`] for a `/proc/self/cgroup` text and the
    /// directory cgroups are mounted under.
    pub(crate) fn from_listing(listing: &str, root: &Path) -> Option<MemoryLimit> {
        let mut groups = Vec::new();
        for line in listing.lines() {
            // "hierarchy-id:controllers:path"; v2 is "0::path".
            let mut parts = line.splitn(3, ':');
            let (Some(id), Some(controllers), Some(path)) =
                (parts.next(), parts.next(), parts.next())
            else {
                continue;
            };
            let (base, v2) = if id == "0" && controllers.is_empty() {
                (root.to_path_buf(), true)
            } else if controllers.split(',').any(|c| c == "memory") {
                (root.join("memory"), false)
            } else {
                continue;
            };
            let mut dir = base.join(path.trim_start_matches('/'));
            loop {
                let group = Group {
                    dir: dir.clone(),
                    v2,
                };
                if group.limit().is_some() {
                    groups.push(group);
                }
                if dir == base || !dir.pop() {
                    break;
                }
            }
        }
        (!groups.is_empty()).then_some(MemoryLimit { groups })
    }

    /// Bytes that can still be taken before the tightest limit is reached:
    /// the limit less what is in use, page cache that the kernel can drop
    /// at once (inactive file pages) not counted as used. `None` when the
    /// files cannot be read (the group went away).
    pub fn headroom(&self) -> Option<u64> {
        self.groups.iter().filter_map(Group::headroom).min()
    }
}

impl Group {
    fn read(&self, file: &str) -> Option<u64> {
        let text = fs::read_to_string(self.dir.join(file)).ok()?;
        text.trim().parse().ok()
    }

    fn limit(&self) -> Option<u64> {
        let file = if self.v2 {
            "memory.max"
        } else {
            "memory.limit_in_bytes"
        };
        // v2 writes "max" for no limit, which does not parse.
        self.read(file).filter(|&l| l < UNLIMITED)
    }

    fn headroom(&self) -> Option<u64> {
        let limit = self.limit()?;
        let (usage, stat_key) = if self.v2 {
            (self.read("memory.current")?, "inactive_file")
        } else {
            (self.read("memory.usage_in_bytes")?, "total_inactive_file")
        };
        let stat = fs::read_to_string(self.dir.join("memory.stat")).unwrap_or_default();
        let droppable = stat
            .lines()
            .find_map(|l| l.strip_prefix(stat_key)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or(0u64);
        Some(limit.saturating_sub(usage.saturating_sub(droppable)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, file: &str, text: &str) {
        fs::create_dir_all(dir).unwrap();
        fs::write(dir.join(file), text).unwrap();
    }

    #[test]
    fn a_v2_group_and_a_limited_parent_give_the_tightest_headroom() {
        let root = tempfile::tempdir().unwrap();
        let unit = root.path().join("system.slice/rim.service");
        write(&unit, "memory.max", "max\n");
        write(&unit, "memory.current", "1000\n");
        let slice = root.path().join("system.slice");
        write(&slice, "memory.max", "67108864\n");
        write(&slice, "memory.current", "60000000\n");
        write(
            &slice,
            "memory.stat",
            "anon 50000000\ninactive_file 4000000\nfile 9000000\n",
        );
        let limit = MemoryLimit::from_listing("0::/system.slice/rim.service\n", root.path())
            .expect("the slice has a limit");
        assert_eq!(
            limit.headroom(),
            Some(67_108_864 - (60_000_000 - 4_000_000))
        );
    }

    #[test]
    fn a_v1_memory_hierarchy_is_found_among_the_others() {
        let root = tempfile::tempdir().unwrap();
        let group = root.path().join("memory/bench/crowd");
        write(&group, "memory.limit_in_bytes", "134217728\n");
        write(&group, "memory.usage_in_bytes", "100000000\n");
        write(
            &group,
            "memory.stat",
            "cache 5\ntotal_inactive_file 1000000\n",
        );
        write(
            &root.path().join("memory"),
            "memory.limit_in_bytes",
            "9223372036854771712\n",
        );
        let listing = "12:pids:/bench/crowd\n4:cpu,memory:/bench/crowd\n0::/other\n";
        let limit = MemoryLimit::from_listing(listing, root.path()).unwrap();
        assert_eq!(limit.headroom(), Some(134_217_728 - 99_000_000));
    }

    #[test]
    fn no_limit_anywhere_is_none() {
        let root = tempfile::tempdir().unwrap();
        write(root.path(), "memory.max", "max\n");
        assert!(MemoryLimit::from_listing("0::/\n", root.path()).is_none());
        assert!(MemoryLimit::from_listing("", root.path()).is_none());
    }
}
