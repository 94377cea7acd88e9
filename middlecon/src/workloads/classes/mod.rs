//! Runtime classes: what differs between the OCI runtimes middlecon runs workloads with.
//! One [`RuntimeClass`] per runtime, each in a file of its own: [`runc`], [`crun`] and
//! [`runsc`] (gVisor: the container runs on a user-space kernel, the sandboxed class).
//! The verbs they share (run, pause, resume, delete, the state they keep) are
//! [`super::runtime::OciRuntime`]'s; a class says what it adds to each command line, how
//! its containers are frozen and thawed, and how one is asked to end.
//!
//! The defaults are runc's ways: the cgroup freezer (the runtime's `pause` where no freezer
//! holds the container) and signals sent straight to the container's init. Adding a class
//! is a file implementing [`RuntimeClass`] with its test, and a line in [`CLASSES`].

pub mod crun;
pub mod runc;
pub mod runsc;

use super::cgroup::Cgroups;
use super::runtime::{self, Liveness, OciRuntime};
use super::WorkloadError;
use nix::sys::signal::Signal;
use std::path::Path;
use std::time::Duration;

/// How often a stopping container is looked at.
const POLL: Duration = Duration::from_millis(5);

/// A runtime and the cgroups of the daemon's workloads: what a class acts on.
pub struct Driver<'a> {
    pub rt: &'a OciRuntime,
    pub cgroups: &'a Cgroups,
}

/// What one OCI runtime does its own way.
#[async_trait::async_trait]
pub trait RuntimeClass: Send + Sync + 'static {
    /// Its name: what `--runtime` takes, records keep, k2i shows and hosts gossip; the
    /// runtime binary's file name.
    fn name(&self) -> &'static str;

    /// Global flags given before every verb.
    fn flags(&self) -> &'static [&'static str] {
        &[]
    }

    /// Whether a migration's target creates the container (OCI `create`) while the files
    /// arrive and only starts it (`start`) when told to: for a class whose start is mostly
    /// its `create` (runsc boots its sandbox there), that takes the creation out of the
    /// workload's downtime. The container's process does not run before `start`.
    fn creates_ahead(&self) -> bool {
        false
    }

    /// Whether container `id` (whose init runs) is frozen.
    fn paused(&self, d: &Driver<'_>, id: &str) -> bool {
        d.cgroups.frozen(id) == Some(true)
    }

    /// Freezes every process of container `id` and waits (at most `wait`) until they are:
    /// through the cgroup freezer, as `runtime pause` would, without its process; the
    /// runtime's own `pause` where no freezer holds the container's cgroup.
    async fn freeze(&self, d: &Driver<'_>, id: &str, wait: Duration) -> Result<(), WorkloadError> {
        match d.cgroups.freeze(id, wait).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                d.rt.pause(id).await.map_err(WorkloadError::Runtime)
            }
            Err(e) => Err(WorkloadError::Io(format!("freezing {id}: {e}"))),
        }
    }

    /// Thaws container `id` as [`RuntimeClass::freeze`] froze it. A container that is not
    /// frozen is no error.
    async fn thaw(&self, d: &Driver<'_>, id: &str) -> Result<(), WorkloadError> {
        match d.cgroups.unfreeze(id) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                d.rt.resume(id).await.map_err(WorkloadError::Runtime)
            }
            Err(e) => Err(WorkloadError::Io(format!("thawing {id}: {e}"))),
        }
    }

    /// Asks container `id` to end (SIGTERM, thawed first) and waits up to `grace` for it if
    /// it catches the signal: sent to its init, as `runtime kill` would, without its
    /// process. An init that does not catch SIGTERM ignores it (it is PID 1 of its
    /// namespace): nothing to wait for, the delete kills it.
    async fn terminate(&self, d: &Driver<'_>, id: &str, grace: Duration) {
        d.cgroups.thaw(id);
        if let Some(pid) = d.rt.signal_init(id, Signal::SIGTERM) {
            if !runtime::catches(pid, Signal::SIGTERM) {
                return;
            }
            wait_for_end(d.rt, id, grace).await;
        }
    }
}

/// Waits until container `id`'s init has ended, at most `grace`.
pub(crate) async fn wait_for_end(rt: &OciRuntime, id: &str, grace: Duration) {
    let until = tokio::time::Instant::now() + grace;
    while matches!(rt.liveness(id), Liveness::Running(_)) && tokio::time::Instant::now() < until {
        tokio::time::sleep(POLL).await;
    }
}

/// Every class this build knows.
pub static CLASSES: [&dyn RuntimeClass; 3] = [&runc::Runc, &crun::Crun, &runsc::Runsc];

/// The class named `name`.
pub fn named(name: &str) -> Option<&'static dyn RuntimeClass> {
    CLASSES.iter().copied().find(|c| c.name() == name)
}

/// The class of the runtime binary at `binary` (by its file name); a binary of another
/// name is driven as runc is (the OCI runtime command line).
pub fn of_binary(binary: &Path) -> &'static dyn RuntimeClass {
    binary.file_name().and_then(|f| f.to_str()).and_then(named).unwrap_or(&runc::Runc)
}

/// The names of every class this build knows, for messages.
pub fn names() -> String {
    CLASSES.iter().map(|c| c.name()).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_are_found_by_name_and_by_binary() {
        assert_eq!(names(), "runc, crun, runsc");
        for c in CLASSES {
            assert_eq!(named(c.name()).map(|n| n.name()), Some(c.name()));
            assert_eq!(of_binary(&Path::new("/usr/bin").join(c.name())).name(), c.name());
        }
        assert!(named("kata").is_none());
        assert_eq!(of_binary(Path::new("/opt/bin/my-oci-runtime")).name(), "runc", "driven as runc is");
    }
}
