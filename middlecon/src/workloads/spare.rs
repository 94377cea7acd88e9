//! Workload directories made ahead of time, so that `Run` creates no inode on its clock.
//!
//! A `Run` needs a directory tree before the runtime may start: `bundle/rootfs/`,
//! `layers/{upper,work}/`, `bundle/config.json`, `output.log` and the record. Made on the
//! spot, that is ten new inodes, and another for the record once the container runs. On ext4
//! a new inode is slow exactly where workloads come and go: the allocator skips the inodes of
//! recently deleted files, and every stopped workload leaves a tree of them: after a few
//! dozen runs and stops, a mkdir is many times slower (docs/benchmarks.md).
//!
//! So the host keeps [`POOL`] spare trees, `<workloads>/.spare-<pid>-<n>/`, with those
//! directories and empty files, the record's two among them (`record`: a save exchanges
//! them). The writers truncate and reuse a file that exists, and `Run` renames a spare to the
//! workload's name: nothing is allocated while the caller waits. A new spare is made off the
//! clock, once the run has its answer. When none is ready (more runs at once than spares,
//! failed runs since the last refill, a disk that was full), `Run` makes the tree itself.
//!
//! A spare holds nothing of any workload: one found at start is removed and made again.

use super::{record, rootfs};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// Prefix of a spare directory (no workload name starts with a dot).
pub const PREFIX: &str = ".spare-";
/// How many spares are kept ready: two runs at once both find one.
pub const POOL: usize = 2;

/// The spare directories of one workloads directory.
pub struct Spares {
    dir: PathBuf,
    ready: Mutex<Vec<PathBuf>>,
    /// Held by the one refill that runs: a second one has nothing to add.
    refilling: Mutex<()>,
    next: AtomicU64,
}

impl Spares {
    /// The spares of `dir` (`<state-dir>/workloads`); none is ready until [`Spares::refill`].
    pub fn new(dir: &Path) -> Spares {
        Spares {
            dir: dir.to_path_buf(),
            ready: Mutex::default(),
            refilling: Mutex::default(),
            next: AtomicU64::new(0),
        }
    }

    /// Whether `name`, an entry of the workloads directory, is a spare.
    pub fn is_spare(name: &str) -> bool {
        name.starts_with(PREFIX)
    }

    /// Renames a ready spare to `target`, which must not exist: `true` if one was there.
    /// A spare that could not be renamed stays ready if it is still there.
    pub fn take(&self, target: &Path) -> bool {
        let Some(spare) = self.ready.lock().unwrap_or_else(|e| e.into_inner()).pop() else {
            return false;
        };
        match std::fs::rename(&spare, target) {
            Ok(()) => true,
            Err(e) => {
                tracing::debug!(spare = %spare.display(), target = %target.display(), "renaming a spare: {e}");
                if spare.is_dir() {
                    self.ready.lock().unwrap_or_else(|e| e.into_inner()).push(spare);
                }
                false
            }
        }
    }

    /// Makes spares until [`POOL`] are ready (blocking: call it off the clock). A failure (a
    /// full disk) is logged, and runs make their trees themselves until a later refill.
    pub fn refill(&self) {
        let Ok(_only) = self.refilling.try_lock() else { return };
        while self.ready.lock().unwrap_or_else(|e| e.into_inner()).len() < POOL {
            let n = self.next.fetch_add(1, Ordering::Relaxed);
            let spare = self.dir.join(format!("{PREFIX}{}-{n}", std::process::id()));
            match make(&spare) {
                Ok(()) => {}
                // Left by an earlier daemon that had this pid (and not removed at start):
                // not ours to fill or to take, so the next number.
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => {
                    tracing::debug!(spare = %spare.display(), "making a spare workload directory: {e}");
                    let _ = std::fs::remove_dir_all(&spare);
                    return;
                }
            }
            self.ready.lock().unwrap_or_else(|e| e.into_inner()).push(spare);
        }
    }
}

/// The tree a `Run` fills: its directories and its files, empty.
fn make(spare: &Path) -> std::io::Result<()> {
    // Its own new directory, never one that is there already: a spare holds nothing.
    std::fs::create_dir(spare)?;
    rootfs::prepare(spare)?;
    for file in [spare.join("bundle").join("config.json"), spare.join("output.log")] {
        std::fs::File::create(file)?;
    }
    record::Record::prepare(spare)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spare_is_taken_once_and_refilled_with_an_empty_tree() {
        let tmp = tempfile::tempdir().unwrap();
        let spares = Spares::new(tmp.path());
        assert!(!spares.take(&tmp.path().join("early")), "no spare before the first refill");
        spares.refill();
        let made: Vec<String> = std::fs::read_dir(tmp.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(made.len(), POOL, "{made:?}");
        assert!(made.iter().all(|n| Spares::is_spare(n)), "{made:?}");

        let w = tmp.path().join("web");
        assert!(spares.take(&w));
        for d in ["bundle/rootfs", "layers/upper", "layers/work"] {
            let entries = std::fs::read_dir(w.join(d)).unwrap().count();
            assert_eq!(entries, 0, "{d} is an empty directory");
        }
        for f in ["bundle/config.json", "output.log"] {
            assert_eq!(std::fs::metadata(w.join(f)).unwrap().len(), 0, "{f} is an empty file");
        }
        // A record saved into it replaces the prepared temporary file, as into any directory.
        let r = record::Record::new("web", "runc", &["true"]);
        r.save_unsynced(&w).unwrap();
        assert_eq!(record::Record::load(&w).unwrap(), r);
        let names: std::collections::BTreeSet<String> =
            std::fs::read_dir(&w).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        let expected = [".workload.json.tmp", "bundle", "layers", "output.log", "workload.json"];
        assert_eq!(names, expected.map(String::from).into(), "nothing more, nothing less");

        assert!(spares.take(&tmp.path().join("db")));
        assert!(!spares.take(&tmp.path().join("third")), "the pool is empty until refilled");
        spares.refill();
        assert!(spares.take(&tmp.path().join("third")));
    }

    #[test]
    fn a_directory_already_there_is_never_made_a_spare() {
        let tmp = tempfile::tempdir().unwrap();
        let taken = tmp.path().join(format!("{PREFIX}{}-0", std::process::id()));
        std::fs::create_dir_all(taken.join("bundle/rootfs")).unwrap();
        std::fs::write(taken.join("bundle/rootfs/left-behind"), "x").unwrap();
        let spares = Spares::new(tmp.path());
        spares.refill();
        for name in ["a", "b"] {
            let w = tmp.path().join(name);
            assert!(spares.take(&w));
            assert_eq!(std::fs::read_dir(w.join("bundle/rootfs")).unwrap().count(), 0, "{name} is empty");
        }
        assert!(taken.join("bundle/rootfs/left-behind").exists(), "the one already there is left alone");
    }

    #[test]
    fn a_spare_is_not_renamed_over_an_existing_workload() {
        let tmp = tempfile::tempdir().unwrap();
        let spares = Spares::new(tmp.path());
        spares.refill();
        let w = tmp.path().join("web");
        std::fs::create_dir_all(w.join("kept")).unwrap();
        assert!(!spares.take(&w));
        assert!(w.join("kept").is_dir(), "the existing directory is untouched");
        // The spare it would have been stays ready: the pool still has two to give.
        assert!(spares.take(&tmp.path().join("a")) && spares.take(&tmp.path().join("b")));
    }
}
