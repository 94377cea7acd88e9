//! One process at a time: whether it still runs, and which process it is. A pid alone
//! does not say: the kernel hands a pid out again once its process has gone, so a pid is
//! kept with its start time (field 22 of `/proc/PID/stat`), and a zombie (ended, not yet
//! reaped) counts as ended.

use crate::stat;
use std::path::{Path, PathBuf};

/// Why a process's `/proc/PID/stat` could not be had.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file could not be read: most often, no such process.
    #[error("cannot read {}: {source}", path.display())]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{} is not a /proc/PID/stat", path.display())]
    Malformed { path: PathBuf },
}

/// The fields of a process's `/proc/PID/stat` that tell whether it runs, which process it
/// is, and where it hangs in the tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Brief {
    /// The state letter: `R`, `S`, `D`, `T`, `Z` (zombie), `X` (dead), ...
    pub state: u8,
    /// The parent's pid (0 for the init of a PID namespace seen from inside it).
    pub ppid: u32,
    /// Clock ticks after boot ([`stat::CLK_TCK`] a second).
    pub start_time: u64,
}

impl Brief {
    /// Not a zombie or dead: the process has not ended.
    pub fn running(&self) -> bool {
        !matches!(self.state, b'Z' | b'X')
    }
}

/// Reads the [`Brief`] of process `pid` from `<proc_root>/<pid>/stat`.
pub fn brief(proc_root: &Path, pid: u32) -> Result<Brief, Error> {
    let path = proc_root.join(pid.to_string()).join("stat");
    let raw = std::fs::read(&path).map_err(|source| Error::Read { path: path.clone(), source })?;
    let s = stat::parse(&raw).ok_or(Error::Malformed { path })?;
    Ok(Brief { state: s.state, ppid: s.ppid.max(0) as u32, start_time: s.starttime })
}

/// Whether process `pid` exists and has not ended (a zombie has).
pub fn running(proc_root: &Path, pid: u32) -> bool {
    brief(proc_root, pid).is_ok_and(|b| b.running())
}

/// The start time of process `pid` (clock ticks after boot), `None` if it is gone.
pub fn start_time(proc_root: &Path, pid: u32) -> Option<u64> {
    brief(proc_root, pid).ok().map(|b| b.start_time)
}

/// Whether the process that had `pid` and started at `start_time` still runs: `pid` runs and
/// is that process, not a later one given the same pid. With `start_time` unknown, whether
/// `pid` runs.
///
/// A `<pid>` directory whose `stat` cannot be read or parsed (a fixture tree, a proc mount
/// that hides it) counts as the process running: nothing says it ended.
pub fn still_runs(proc_root: &Path, pid: u32, start_time: Option<u64>) -> bool {
    match brief(proc_root, pid) {
        Ok(b) => b.running() && start_time.is_none_or(|want| want == b.start_time),
        Err(_) => proc_root.join(pid.to_string()).is_dir(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    fn proc_stat(pid: u32, state: char, start: u64) -> String {
        format!("{pid} (sh (x) y) {state} 7 {pid} {pid} 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 1 0 {start} 1000 10 0\n")
    }

    #[test]
    fn a_fake_proc_tree_tells_state_parent_start_and_reuse() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path();
        assert!(matches!(brief(root, 100), Err(Error::Read { .. })));
        assert!(!running(root, 100));
        assert!(!still_runs(root, 100, None), "no such process");

        std::fs::create_dir_all(root.join("100")).unwrap();
        std::fs::write(root.join("100/stat"), proc_stat(100, 'S', 555)).unwrap();
        assert_eq!(brief(root, 100).unwrap(), Brief { state: b'S', ppid: 7, start_time: 555 });
        assert!(running(root, 100));
        assert_eq!(start_time(root, 100), Some(555));
        assert!(still_runs(root, 100, Some(555)));
        assert!(still_runs(root, 100, None));
        assert!(!still_runs(root, 100, Some(554)), "the pid now belongs to a later process");

        std::fs::write(root.join("100/stat"), proc_stat(100, 'Z', 555)).unwrap();
        assert!(!running(root, 100), "a zombie has ended");
        assert!(!still_runs(root, 100, Some(555)));

        std::fs::write(root.join("100/stat"), "garbage").unwrap();
        assert!(matches!(brief(root, 100), Err(Error::Malformed { .. })));
        assert!(!running(root, 100));
        assert!(still_runs(root, 100, Some(555)), "only the directory: nothing says it ended");
    }

    #[test]
    fn a_real_child_runs_then_is_a_zombie_then_gone() {
        let proc_root = crate::proc_root();
        let mut child = std::process::Command::new("sleep").arg("30").spawn().unwrap();
        let pid = child.id();
        let b = brief(proc_root, pid).unwrap();
        assert_eq!(b.ppid, std::process::id(), "our child");
        assert!(b.running());
        let start = start_time(proc_root, pid).expect("a live process has a start time");
        assert!(still_runs(proc_root, pid, Some(start)));
        assert!(!still_runs(proc_root, pid, Some(start + 1)));
        child.kill().unwrap();
        let until = Instant::now() + Duration::from_secs(5);
        while running(proc_root, pid) {
            assert!(Instant::now() < until, "the killed child never ended");
            std::thread::sleep(Duration::from_millis(1));
        }
        assert!(proc_root.join(pid.to_string()).exists(), "not reaped yet: a zombie");
        child.wait().unwrap();
        assert!(!still_runs(proc_root, pid, Some(start)), "reaped: gone");
    }
}
