//! Reading a container's resource use and freezer state from the cgroup filesystem,
//! on cgroup v1 (one mount per controller) and v2 (one unified tree). The freezer's files
//! are read by [`dcos_linux::freezer`]; this module knows where they are.

use std::fs;
use std::path::{Path, PathBuf};

/// Which cgroup layout the filesystem at a root has. Hybrid hosts (v1 controllers plus a
/// `unified` v2 tree for systemd) count as v1: that is where the controllers are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CgroupVersion {
    V1,
    V2,
}

/// CPU and memory use of one cgroup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Usage {
    /// Cumulative CPU time in nanoseconds; `None` when the cpu accounting files cannot
    /// be read (the container may only exist in some v1 hierarchies).
    pub cpu_ns: Option<u64>,
    pub mem_bytes: Option<u64>,
    /// `None` when unlimited.
    pub mem_limit_bytes: Option<u64>,
}

/// The cgroup filesystem mounted at `root` (normally `/sys/fs/cgroup`).
#[derive(Debug, Clone)]
pub struct CgroupFs {
    root: PathBuf,
    version: CgroupVersion,
}

/// v1 reports "no limit" as the largest page-aligned i64 (9223372036854771712 on 4 KiB
/// pages); anything this large is no limit.
const V1_UNLIMITED: u64 = 1 << 62;

/// The v1 mount directories that may hold `cpuacct.usage`, most common first.
const V1_CPUACCT_DIRS: [&str; 3] = ["cpuacct", "cpu,cpuacct", "cpuacct,cpu"];

impl CgroupFs {
    pub fn new(root: impl Into<PathBuf>, version: CgroupVersion) -> Self {
        CgroupFs { root: root.into(), version }
    }

    /// v2 when `<root>/cgroup.controllers` exists, else v1.
    pub fn detect(root: impl Into<PathBuf>) -> Self {
        let root = root.into();
        let version =
            if root.join("cgroup.controllers").exists() { CgroupVersion::V2 } else { CgroupVersion::V1 };
        CgroupFs { root, version }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn version(&self) -> CgroupVersion {
        self.version
    }

    /// CPU and memory use of the cgroup at `path` (relative to the mount, e.g.
    /// `/dcos/web`); `None` when nothing about it can be read.
    pub fn usage(&self, path: &str) -> Option<Usage> {
        let usage = match self.version {
            CgroupVersion::V1 => {
                let cpu_ns = V1_CPUACCT_DIRS
                    .iter()
                    .find_map(|dir| read_u64(&under(&self.root.join(dir), path)?.join("cpuacct.usage")));
                let mem = under(&self.root.join("memory"), path);
                let mem_bytes = mem.as_ref().and_then(|m| read_u64(&m.join("memory.usage_in_bytes")));
                let mem_limit_bytes = mem
                    .as_ref()
                    .and_then(|m| read_u64(&m.join("memory.limit_in_bytes")))
                    .filter(|&l| l < V1_UNLIMITED);
                Usage { cpu_ns, mem_bytes, mem_limit_bytes }
            }
            CgroupVersion::V2 => {
                let dir = under(&self.root, path)?;
                let cpu_ns = read_text(&dir.join("cpu.stat"))
                    .and_then(|t| stat_field(&t, "usage_usec"))
                    .map(|us| us.saturating_mul(1000));
                let mem_bytes = read_u64(&dir.join("memory.current"));
                // `max` (no limit) does not parse as a number.
                let mem_limit_bytes = read_u64(&dir.join("memory.max"));
                Usage { cpu_ns, mem_bytes, mem_limit_bytes }
            }
        };
        (usage.cpu_ns.is_some() || usage.mem_bytes.is_some()).then_some(usage)
    }

    /// Whether the cgroup at `path` is frozen ([`dcos_linux::freezer::frozen`]): in the v1
    /// `freezer` hierarchy, or the v2 tree.
    pub fn is_frozen(&self, path: &str) -> bool {
        let dir = match self.version {
            CgroupVersion::V1 => under(&self.root.join("freezer"), path),
            CgroupVersion::V2 => under(&self.root, path),
        };
        dir.and_then(|d| dcos_linux::freezer::frozen(&[d])).unwrap_or(false)
    }
}

/// `base` joined with a cgroup path (leading `/` or not). `None` for paths that would
/// climb out of `base`.
pub(crate) fn under(base: &Path, cgroup: &str) -> Option<PathBuf> {
    let mut p = base.to_path_buf();
    for c in cgroup.split('/') {
        match c {
            "" | "." => {}
            ".." => return None,
            c => p.push(c),
        }
    }
    Some(p)
}

fn read_text(path: &Path) -> Option<String> {
    fs::read_to_string(path).ok()
}

fn read_u64(path: &Path) -> Option<u64> {
    read_text(path)?.trim().parse().ok()
}

/// The value of `key` in a flat-keyed file such as `cpu.stat` (`key value` lines).
fn stat_field(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok()).flatten()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(root: &Path, rel: &str, text: &str) {
        let p = root.join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, text).unwrap();
    }

    #[test]
    fn detects_the_version() {
        let t = tempfile::tempdir().unwrap();
        assert_eq!(CgroupFs::detect(t.path()).version(), CgroupVersion::V1);
        write(t.path(), "cgroup.controllers", "cpu memory pids\n");
        assert_eq!(CgroupFs::detect(t.path()).version(), CgroupVersion::V2);
    }

    #[test]
    fn v1_usage() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        write(r, "cpuacct/dcos/web/cpuacct.usage", "123456789\n");
        write(r, "memory/dcos/web/memory.usage_in_bytes", "4096\n");
        write(r, "memory/dcos/web/memory.limit_in_bytes", "9223372036854771712\n");
        let fs = CgroupFs::detect(r);
        assert_eq!(
            fs.usage("/dcos/web"),
            Some(Usage { cpu_ns: Some(123456789), mem_bytes: Some(4096), mem_limit_bytes: None })
        );

        // co-mounted cpu,cpuacct and a real limit
        write(r, "cpu,cpuacct/dcos/api/cpuacct.usage", "5\n");
        write(r, "memory/dcos/api/memory.usage_in_bytes", "100\n");
        write(r, "memory/dcos/api/memory.limit_in_bytes", "268435456\n");
        assert_eq!(
            fs.usage("dcos/api"),
            Some(Usage { cpu_ns: Some(5), mem_bytes: Some(100), mem_limit_bytes: Some(268435456) })
        );

        // only in the memory hierarchy
        write(r, "memory/only-mem/memory.usage_in_bytes", "7\n");
        assert_eq!(
            fs.usage("/only-mem"),
            Some(Usage { cpu_ns: None, mem_bytes: Some(7), mem_limit_bytes: None })
        );

        assert_eq!(fs.usage("/missing"), None);
        assert_eq!(fs.usage("/dcos/../dcos/web"), None);
    }

    #[test]
    fn v2_usage() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        write(r, "cgroup.controllers", "cpu memory\n");
        write(r, "system.slice/a.scope/cpu.stat", "usage_usec 2500\nuser_usec 2000\nsystem_usec 500\n");
        write(r, "system.slice/a.scope/memory.current", "8192\n");
        write(r, "system.slice/a.scope/memory.max", "max\n");
        write(r, "system.slice/b.scope/cpu.stat", "user_usec 1\nusage_usec 10\n");
        write(r, "system.slice/b.scope/memory.max", "1048576\n");
        let fs = CgroupFs::detect(r);
        assert_eq!(
            fs.usage("/system.slice/a.scope"),
            Some(Usage { cpu_ns: Some(2_500_000), mem_bytes: Some(8192), mem_limit_bytes: None })
        );
        assert_eq!(
            fs.usage("/system.slice/b.scope"),
            Some(Usage { cpu_ns: Some(10_000), mem_bytes: None, mem_limit_bytes: Some(1048576) })
        );
        assert_eq!(fs.usage("/system.slice/none.scope"), None);
    }

    #[test]
    fn freezer() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        write(r, "freezer/dcos/web/freezer.state", "FROZEN\n");
        write(r, "freezer/dcos/api/freezer.state", "THAWED\n");
        let v1 = CgroupFs::detect(r);
        assert!(v1.is_frozen("/dcos/web"));
        assert!(!v1.is_frozen("/dcos/api"));
        assert!(!v1.is_frozen("/dcos/gone"));

        let t2 = tempfile::tempdir().unwrap();
        write(t2.path(), "cgroup.controllers", "");
        write(t2.path(), "x/cgroup.freeze", "1\n");
        write(t2.path(), "y/cgroup.freeze", "0\n");
        let v2 = CgroupFs::detect(t2.path());
        assert!(v2.is_frozen("/x"));
        assert!(!v2.is_frozen("/y"));
    }
}
