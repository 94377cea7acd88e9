//! Whether a cgroup's processes are frozen, as `runc pause` / `crun pause` leave them: the
//! cgroup v1 freezer (`freezer.state` in the `freezer` hierarchy) or the v2 tree's
//! `cgroup.freeze` and `cgroup.events`. Reading only: freezing and thawing are the daemon's.

use std::io;
use std::path::{Path, PathBuf};

/// v1: `THAWED`, `FREEZING` or `FROZEN`; writing `FROZEN` or `THAWED` asks for it.
pub const V1_STATE: &str = "freezer.state";
/// v2: `1` while the cgroup is asked to be frozen, `0` otherwise; writable.
pub const V2_FREEZE: &str = "cgroup.freeze";
/// v2: `frozen 1` once the kernel has frozen every process of the cgroup.
pub const V2_EVENTS: &str = "cgroup.events";

/// v1: whether `freezer.state` of the cgroup at `dir` says `FROZEN` (`FREEZING` is not yet).
pub fn v1_frozen(dir: &Path) -> io::Result<bool> {
    Ok(std::fs::read_to_string(dir.join(V1_STATE))?.trim() == "FROZEN")
}

/// v2: whether the cgroup at `dir` is asked to be frozen (`cgroup.freeze` is `1`).
pub fn v2_freeze_asked(dir: &Path) -> io::Result<bool> {
    Ok(std::fs::read_to_string(dir.join(V2_FREEZE))?.trim() == "1")
}

/// v2: whether the kernel reports every process of the cgroup at `dir` frozen
/// (`frozen 1` in `cgroup.events`), not just asked to be.
pub fn v2_frozen(dir: &Path) -> io::Result<bool> {
    Ok(std::fs::read_to_string(dir.join(V2_EVENTS))?.lines().any(|l| l.trim() == "frozen 1"))
}

/// Whether one cgroup is frozen, given its directories in the hierarchies mounted (one per
/// v1 controller and the v2 tree, or just the v2 tree): the v1 freezer's `freezer.state`
/// where one of `dirs` has it (the runtimes freeze through it where it is mounted), else
/// the v2 tree's `cgroup.freeze`. `None` if no directory has either: there is no such
/// cgroup, or no freezer.
pub fn frozen(dirs: &[PathBuf]) -> Option<bool> {
    dirs.iter().find_map(|d| v1_frozen(d).ok()).or_else(|| dirs.iter().find_map(|d| v2_freeze_asked(d).ok()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(path: &Path, text: &str) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    #[test]
    fn v1_state_is_read_before_the_v2_tree() {
        let t = tempfile::tempdir().unwrap();
        let (freezer, unified, memory) = (
            t.path().join("freezer/dcos/web"),
            t.path().join("unified/dcos/web"),
            t.path().join("memory/dcos/web"),
        );
        let dirs = [memory.clone(), unified.clone(), freezer.clone()];
        assert_eq!(frozen(&dirs), None, "no cgroup");
        std::fs::create_dir_all(&memory).unwrap();
        write(&unified.join(V2_FREEZE), "0\n");
        assert_eq!(frozen(&dirs), Some(false), "only the v2 tree says");
        write(&freezer.join(V1_STATE), "FREEZING\n");
        assert_eq!(frozen(&dirs), Some(false), "freezing is not frozen yet");
        write(&freezer.join(V1_STATE), "FROZEN\n");
        assert_eq!(frozen(&dirs), Some(true), "the v1 freezer is the one the runtimes use");
        assert!(v1_frozen(&freezer).unwrap());
        assert!(v1_frozen(&memory).is_err(), "no freezer in the memory hierarchy");
    }

    #[test]
    fn v2_asked_and_done_are_apart() {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join("system.slice/crun-c.scope");
        write(&dir.join(V2_FREEZE), "1\n");
        write(&dir.join(V2_EVENTS), "populated 1\nfrozen 0\n");
        assert_eq!(frozen(std::slice::from_ref(&dir)), Some(true));
        assert!(v2_freeze_asked(&dir).unwrap());
        assert!(!v2_frozen(&dir).unwrap(), "asked, not yet done");
        write(&dir.join(V2_EVENTS), "populated 1\nfrozen 1\n");
        assert!(v2_frozen(&dir).unwrap());
    }
}
