//! The cgroups of this daemon's workloads: `/dcos/<daemon id>/<name>` ([`path`]) in every
//! cgroup hierarchy mounted on the machine (each cgroup v1 controller, the v2 tree), which
//! the OCI runtime makes when it starts a container and removes when it deletes one.
//!
//! What the runtime does not remove is removed here: a workload's cgroup left behind when
//! its container died without a `delete` (its host killed whole, a runtime state deleted by
//! hand), and the daemon's own `/dcos/<daemon id>`, which no runtime owns. Left alone, such
//! empty cgroups pile up, one set per daemon and workload in every hierarchy (test fleets
//! torn down with their containers leave thousands): kernel memory, page cache still
//! charged to them, and cgroup v1's 65,535 memory cgroups at most,
//! after which no container starts. Only empty cgroups are ever removed: the kernel refuses
//! to remove one that still has processes or children.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The directory under each hierarchy's root that holds every middlecon's cgroups.
pub const ROOT: &str = "dcos";

/// The cgroup of workload `name` of the daemon `daemon` ([`super::bundle::daemon_id`]), as
/// `config.json` gives it to the runtime.
pub fn path(daemon: &str, name: &str) -> String {
    format!("/{ROOT}/{daemon}/{name}")
}

/// One daemon's cgroups in every mounted hierarchy.
#[derive(Debug, Clone)]
pub struct Cgroups {
    /// `<hierarchy mount>/dcos/<daemon id>`, one per hierarchy.
    dirs: Vec<PathBuf>,
}

impl Cgroups {
    /// The cgroups of daemon `daemon` in the hierarchies mounted now ([`hierarchies`]).
    pub fn new(daemon: &str) -> Cgroups {
        Cgroups::under(&hierarchies(), daemon)
    }

    /// The same, in the hierarchies mounted at `mounts`.
    pub fn under(mounts: &[PathBuf], daemon: &str) -> Cgroups {
        Cgroups { dirs: mounts.iter().map(|m| m.join(ROOT).join(daemon)).collect() }
    }

    /// Removes workload `name`'s cgroups wherever they were left (none is the usual case:
    /// the runtime's `delete` removed them). Returns how many are still there: busy, with
    /// processes in them.
    pub fn remove(&self, name: &str) -> usize {
        self.dirs.iter().filter(|d| !remove_empty(&d.join(name))).count()
    }

    /// Removes every empty workload cgroup of this daemon whose name `keep` does not
    /// claim, then the daemon's own if that leaves it empty. Returns the names removed.
    pub fn sweep(&self, keep: impl Fn(&str) -> bool) -> Vec<String> {
        let mut removed = std::collections::BTreeSet::new();
        for dir in &self.dirs {
            let Ok(entries) = std::fs::read_dir(dir) else { continue };
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                let is_cgroup = entry.file_type().is_ok_and(|t| t.is_dir());
                if is_cgroup && !keep(&name) && remove_empty(&entry.path()) {
                    removed.insert(name);
                }
            }
        }
        self.remove_own();
        removed.into_iter().collect()
    }

    /// Removes the daemon's own cgroups where no workload's is left under them. Returns
    /// whether none is left.
    pub fn remove_own(&self) -> bool {
        // Every one is tried: no short cut at the first that stays.
        self.dirs.iter().filter(|d| !remove_empty(d)).count() == 0
    }

    /// Removes all of this daemon's cgroups, waiting up to `wait` for the processes of
    /// killed containers to leave them: for a host that was killed with its containers.
    /// Returns the cgroups still there after that.
    pub fn remove_all(&self, wait: Duration) -> Vec<PathBuf> {
        let until = Instant::now() + wait;
        loop {
            self.sweep(|_| false);
            let left: Vec<PathBuf> = self.dirs.iter().filter(|d| d.exists()).cloned().collect();
            if left.is_empty() || Instant::now() >= until {
                return left;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Whether workload `name`'s processes are frozen, as `runtime pause` leaves them: the
    /// cgroup v1 freezer's `freezer.state` if that hierarchy is mounted (the runtimes use it
    /// where it is), else the v2 tree's `cgroup.freeze`. `None` if neither says.
    pub fn frozen(&self, name: &str) -> Option<bool> {
        let dirs: Vec<PathBuf> = self.dirs.iter().map(|d| d.join(name)).collect();
        dcos_linux::freezer::frozen(&dirs)
    }

    /// Freezes workload `name`'s processes, as `runtime pause` does, and waits (at most
    /// `wait`) until the kernel reports them frozen: the v1 freezer's `freezer.state` where
    /// that hierarchy is mounted (written again while it says `FREEZING`), else the v2
    /// tree's `cgroup.freeze` and `cgroup.events`. A freeze that fails or does not complete
    /// in time is thawed again. No runtime process: `runc pause` is one more process on
    /// every migration's downtime.
    pub async fn freeze(&self, name: &str, wait: Duration) -> std::io::Result<()> {
        use dcos_linux::freezer::{v1_frozen, v2_frozen, V1_STATE, V2_FREEZE};
        let find = |file: &str| self.dirs.iter().map(|d| d.join(name)).find(|d| d.join(file).exists());
        // The directory, the file written and its value, and what says the kernel is done.
        type Freezer = (PathBuf, &'static str, &'static str, fn(&Path) -> std::io::Result<bool>);
        let (dir, file, value, frozen): Freezer = if let Some(d) = find(V1_STATE) {
            (d, V1_STATE, "FROZEN", v1_frozen)
        } else if let Some(d) = find(V2_FREEZE) {
            (d, V2_FREEZE, "1", v2_frozen)
        } else {
            return Err(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("no freezer holds the cgroup of {name}"),
            ));
        };
        let until = Instant::now() + wait;
        let result = loop {
            match std::fs::write(dir.join(file), value).and_then(|()| frozen(&dir)) {
                Ok(true) => break Ok(()),
                Ok(false) if Instant::now() < until => tokio::time::sleep(Duration::from_millis(1)).await,
                Ok(false) => {
                    break Err(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        format!("the processes of {name} were not frozen within {wait:?}"),
                    ))
                }
                Err(e) => break Err(e),
            }
        };
        if result.is_err() {
            // Never left half frozen: the caller goes on as if nothing had been frozen.
            self.thaw(name);
        }
        result
    }

    /// Thaws workload `name`'s processes if they are frozen, as `runtime resume` does
    /// (the v1 freezer where it is mounted, the v2 tree's `cgroup.freeze` otherwise); a
    /// failure is logged ([`Cgroups::unfreeze`] reports it).
    pub fn thaw(&self, name: &str) {
        if let Err(e) = self.unfreeze(name) {
            tracing::debug!(workload = %name, "thawing: {e}");
        }
    }

    /// [`Cgroups::thaw`], reporting why it could not: `NotFound` if no freezer holds the
    /// cgroup (the runtime's `resume` is then the way).
    pub fn unfreeze(&self, name: &str) -> std::io::Result<()> {
        for (file, value) in [("freezer.state", "THAWED"), ("cgroup.freeze", "0")] {
            if let Some(f) = self.dirs.iter().map(|d| d.join(name).join(file)).find(|f| f.exists()) {
                return std::fs::write(&f, value);
            }
        }
        Err(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!("no freezer holds the cgroup of {name}"),
        ))
    }

    /// Whether any of this daemon's cgroups exists.
    pub fn exists(&self) -> bool {
        self.dirs.iter().any(|d| d.exists())
    }
}

/// Removes cgroup `dir` if it is empty. Whether it is gone (also: it never was there).
fn remove_empty(dir: &Path) -> bool {
    match std::fs::remove_dir(dir) {
        Ok(()) => true,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => true,
        Err(e) => {
            tracing::debug!(cgroup = %dir.display(), "not removed: {e}");
            false
        }
    }
}

/// The mount points of the cgroup hierarchies this process sees from their roots (cgroup
/// v1 and v2), from `/proc/self/mountinfo`. A hierarchy mounted twice is listed once.
pub fn hierarchies() -> Vec<PathBuf> {
    std::fs::read_to_string("/proc/self/mountinfo").map(|t| parse_mountinfo(&t)).unwrap_or_default()
}

fn parse_mountinfo(text: &str) -> Vec<PathBuf> {
    let mut seen = std::collections::BTreeSet::new();
    let mut out = Vec::new();
    for line in text.lines() {
        // `id parent major:minor root mount-point options [optional fields] - type source super`
        let Some((left, right)) = line.split_once(" - ") else { continue };
        let fields: Vec<&str> = left.split(' ').collect();
        let fstype = right.split(' ').next().unwrap_or("");
        if fields.len() < 5 || !matches!(fstype, "cgroup" | "cgroup2") || fields[3] != "/" {
            continue;
        }
        // The same hierarchy (major:minor) mounted again elsewhere is the same cgroups.
        if seen.insert(fields[2]) {
            out.push(PathBuf::from(fields[4]));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cgroup_hierarchies_are_read_from_mountinfo() {
        let text = "\
25 1 0:23 / /sys rw - sysfs sysfs rw
30 25 0:26 / /sys/fs/cgroup ro shared:9 - tmpfs tmpfs ro,mode=755
31 30 0:27 / /sys/fs/cgroup/unified rw shared:10 - cgroup2 cgroup2 rw
34 30 0:30 / /sys/fs/cgroup/memory rw shared:14 - cgroup cgroup rw,memory
35 30 0:31 / /sys/fs/cgroup/cpu,cpuacct rw shared:15 - cgroup cgroup rw,cpu,cpuacct
90 88 0:30 / /run/again/memory rw - cgroup cgroup rw,memory
91 88 0:31 /inner /run/ns/cpu rw - cgroup cgroup rw,cpu,cpuacct
";
        let got = parse_mountinfo(text);
        let want: Vec<PathBuf> =
            ["/sys/fs/cgroup/unified", "/sys/fs/cgroup/memory", "/sys/fs/cgroup/cpu,cpuacct"]
                .iter()
                .map(PathBuf::from)
                .collect();
        assert_eq!(got, want, "cgroup mounts from their roots, each hierarchy once");
    }

    /// Real cgroups of a made-up daemon, in every hierarchy of this machine (as root).
    #[test]
    fn empty_cgroups_are_swept_and_busy_or_kept_ones_stay() {
        let mounts = hierarchies();
        if mounts.is_empty() || !is_root() {
            eprintln!("skipped: no cgroup hierarchy writable here");
            return;
        }
        let daemon = format!("unit-test-{}", std::process::id());
        let cg = Cgroups::under(&mounts, &daemon);
        for m in &mounts {
            for leaf in ["kept", "stale", "busy"] {
                std::fs::create_dir_all(m.join(ROOT).join(&daemon).join(leaf)).unwrap();
            }
        }
        // A process in `busy` (in the first hierarchy) makes that one impossible to remove.
        let mut sleeper = std::process::Command::new("sleep").arg("30").spawn().unwrap();
        let busy = mounts[0].join(ROOT).join(&daemon).join("busy");
        std::fs::write(busy.join("cgroup.procs"), sleeper.id().to_string()).unwrap();

        let removed = cg.sweep(|n| n == "kept");
        assert!(removed.contains(&"stale".to_string()), "{removed:?}");
        for m in &mounts {
            let own = m.join(ROOT).join(&daemon);
            assert!(!own.join("stale").exists(), "{}: the stale cgroup is removed", own.display());
            assert!(own.join("kept").exists(), "{}: a kept workload's cgroup stays", own.display());
        }
        assert!(busy.exists(), "a cgroup with a process in it stays");
        assert_eq!(cg.remove("busy"), 1, "one hierarchy still has the process");
        assert!(cg.exists());

        sleeper.kill().unwrap();
        sleeper.wait().unwrap();
        let left = cg.remove_all(Duration::from_secs(2));
        assert!(left.is_empty(), "all of the daemon's cgroups are gone once empty: {left:?}");
        assert!(!cg.exists());
    }

    /// A real freezer cgroup (as root, where the v1 freezer or the v2 tree is mounted).
    #[test]
    fn a_frozen_cgroup_is_seen_as_frozen_and_thawed() {
        let mounts = hierarchies();
        let Some(freezer) = mounts
            .iter()
            .find(|m| m.join("freezer.state").exists() || m.join("cgroup.subtree_control").exists())
            .filter(|_| is_root())
        else {
            eprintln!("skipped: no freezer writable here");
            return;
        };
        let daemon = format!("unit-test-freeze-{}", std::process::id());
        let cg = Cgroups::under(std::slice::from_ref(freezer), &daemon);
        assert_eq!(cg.frozen("web"), None, "no cgroup: nothing to say");
        let dir = freezer.join(ROOT).join(&daemon).join("web");
        std::fs::create_dir_all(&dir).unwrap();
        let mut sleeper = std::process::Command::new("sleep").arg("30").spawn().unwrap();
        std::fs::write(dir.join("cgroup.procs"), sleeper.id().to_string()).unwrap();
        let (file, freeze) = if dir.join("freezer.state").exists() {
            ("freezer.state", "FROZEN")
        } else {
            ("cgroup.freeze", "1")
        };
        assert_eq!(cg.frozen("web"), Some(false));
        std::fs::write(dir.join(file), freeze).unwrap();
        let until = Instant::now() + Duration::from_secs(2);
        while cg.frozen("web") != Some(true) {
            assert!(Instant::now() < until, "never frozen");
            std::thread::sleep(Duration::from_millis(5));
        }
        cg.thaw("web");
        assert_eq!(cg.frozen("web"), Some(false), "thawed");
        // And frozen by freeze(), which returns once the kernel says so.
        let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
        rt.block_on(cg.freeze("web", Duration::from_secs(2))).expect("freezes");
        assert_eq!(cg.frozen("web"), Some(true));
        let err = rt.block_on(cg.freeze("nothing-here", Duration::from_millis(10))).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::NotFound, "{err}");
        let err = cg.unfreeze("nothing-here").unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::NotFound, "{err}");
        cg.unfreeze("web").expect("thaws");
        assert_eq!(cg.frozen("web"), Some(false), "thawed");
        sleeper.kill().unwrap();
        sleeper.wait().unwrap();
        assert!(cg.remove_all(Duration::from_secs(2)).is_empty());
    }

    fn is_root() -> bool {
        nix::unistd::geteuid().is_root()
    }
}
