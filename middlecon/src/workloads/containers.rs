//! The host's containers as the workload core reaches them: the [`Containers`] trait, every
//! call the core makes that needs an OCI runtime, a cgroup or a signal, so that its rules
//! (run, stop, re-adopt, migrate) can be tested without root against a fake; and [`Oci`],
//! the implementation that drives the OCI runtimes ([`super::runtime`]), each its class's
//! way ([`super::classes`]: runc, crun, runsc), and the workloads' cgroups
//! ([`super::cgroup`]).

use super::cgroup::Cgroups;
use super::classes::{Driver, CLASSES};
use super::runtime::{Liveness, OciRuntime, RuntimeError};
use super::WorkloadError;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A container as its runtime would describe it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContainerStatus {
    /// Its init runs, with this pid.
    Running(u32),
    /// Its init runs, frozen.
    Paused(u32),
    /// Its init has ended.
    Stopped,
    /// The runtime keeps no state for it.
    Gone,
}

impl ContainerStatus {
    /// Its word: `running`, `paused`, `stopped` or `gone`.
    pub fn word(self) -> &'static str {
        match self {
            ContainerStatus::Running(_) => "running",
            ContainerStatus::Paused(_) => "paused",
            ContainerStatus::Stopped => "stopped",
            ContainerStatus::Gone => "gone",
        }
    }

    /// The init's pid while it runs, else 0.
    pub fn pid(self) -> u32 {
        match self {
            ContainerStatus::Running(pid) | ContainerStatus::Paused(pid) => pid,
            ContainerStatus::Stopped | ContainerStatus::Gone => 0,
        }
    }
}

/// The host's containers, by id (a workload's name) and runtime (as the workload's record
/// names it: `runc`, `crun`, `runsc` or a path).
#[async_trait::async_trait]
pub trait Containers: Send + Sync + 'static {
    /// The runtime `name` (empty: the host's default) as a record keeps it, if this host
    /// has it; else [`WorkloadError::NoRuntime`].
    fn runtime(&self, name: &str) -> Result<String, WorkloadError>;

    /// The runtime classes this host has (`runc`, `crun`, `runsc`).
    fn kinds(&self) -> Vec<String>;

    /// Starts container `id` from the complete bundle `bundle` (`config.json` and its root
    /// filesystem), detached, its output appended to `log`. A container of that id left
    /// behind (a killed daemon, a failed start) is deleted first. Returns the init's pid
    /// when the runtime recorded it.
    async fn start(
        &self,
        id: &str,
        runtime: &str,
        bundle: &Path,
        log: &Path,
    ) -> Result<Option<u32>, WorkloadError>;

    /// Whether `runtime`'s containers are created ahead on a migration's target
    /// ([`super::classes::RuntimeClass::creates_ahead`]).
    fn creates_ahead(&self, runtime: &str) -> bool;

    /// Creates container `id` from the bundle (`config.json` and its root filesystem
    /// directory, which may still be filling) without starting its process: nothing of the
    /// workload runs until [`Containers::start_created`]. A container of that id left
    /// behind is deleted first.
    async fn create(&self, id: &str, runtime: &str, bundle: &Path, log: &Path) -> Result<(), WorkloadError>;

    /// Starts the process of container `id`, made by [`Containers::create`]. Returns the
    /// init's pid when the runtime recorded it.
    async fn start_created(&self, id: &str, runtime: &str) -> Result<Option<u32>, WorkloadError>;

    /// What the runtime would say of container `id`.
    fn status(&self, id: &str, runtime: &str) -> ContainerStatus;

    /// Freezes every process of container `id` and waits (at most `wait`) until the kernel
    /// reports them frozen.
    async fn freeze(&self, id: &str, runtime: &str, wait: Duration) -> Result<(), WorkloadError>;

    /// Thaws container `id`, frozen by [`Containers::freeze`].
    async fn thaw(&self, id: &str, runtime: &str) -> Result<(), WorkloadError>;

    /// Asks container `id`'s init to end (SIGTERM, thawed first) and waits up to `grace`
    /// for it, if it catches the signal; [`Containers::remove`] then kills what is left.
    async fn terminate(&self, id: &str, runtime: &str, grace: Duration);

    /// Deletes container `id`, killing what still runs in it, and its cgroups. A container
    /// the runtime does not know is no error.
    async fn remove(&self, id: &str, runtime: &str) -> Result<(), WorkloadError>;

    /// Removes what containers left of themselves (cgroups) for every id `keep` does not
    /// claim. Returns the ids cleaned up.
    fn sweep(&self, keep: &(dyn Fn(&str) -> bool + Sync)) -> Vec<String>;

    /// At the daemon's exit: removes what the daemon itself holds if no container needs it.
    fn close(&self);
}

/// The containers of the OCI runtimes, with their state under the daemon's state dir and
/// their cgroups under `/dcos/<daemon id>/`.
pub struct Oci {
    state_dir: PathBuf,
    default_runtime: String,
    cgroups: Cgroups,
}

impl Oci {
    /// The containers of the daemon whose state dir is `state_dir` and whose cgroups are
    /// named after `daemon_id` ([`super::bundle::daemon_id`]); `default_runtime` serves
    /// workloads that name none.
    pub fn new(state_dir: &Path, daemon_id: &str, default_runtime: &str) -> Oci {
        Oci {
            state_dir: state_dir.to_path_buf(),
            default_runtime: default_runtime.to_string(),
            cgroups: Cgroups::new(daemon_id),
        }
    }

    fn oci(&self, name: &str) -> Result<OciRuntime, WorkloadError> {
        let name = if name.is_empty() { &self.default_runtime } else { name };
        OciRuntime::new(name, &self.state_dir).map_err(WorkloadError::NoRuntime)
    }

    /// Deletes container `id` of `rt`, thawing its cgroup for the kill.
    async fn delete(&self, rt: &OciRuntime, id: &str) -> Result<(), RuntimeError> {
        rt.delete(id, || self.cgroups.thaw(id)).await
    }

    fn driver<'a>(&'a self, rt: &'a OciRuntime) -> Driver<'a> {
        Driver { rt, cgroups: &self.cgroups }
    }

    /// Deletes every container this daemon's runtimes keep state for and every cgroup of its
    /// workloads, and unmounts their root filesystems under `workloads`: what a daemon leaves
    /// on the machine when it is gone for good (`middlecon purge`). Returns what could not be
    /// removed, for a person.
    pub async fn purge(&self, workloads: &Path) -> Vec<String> {
        let mut left = Vec::new();
        for kind in self.kinds() {
            let Ok(rt) = self.oci(&kind) else { continue };
            for id in dcos_linux::oci::ids(&rt.root) {
                if let Err(e) = self.delete(&rt, &id).await {
                    left.push(format!("container {id} ({kind}): {e}"));
                }
            }
        }
        // The cgroups of containers that died with their host, without a delete.
        for dir in self.cgroups.remove_all(Duration::from_secs(2)) {
            left.push(format!("cgroup {} still has processes", dir.display()));
        }
        for entry in std::fs::read_dir(workloads).into_iter().flatten().flatten() {
            super::rootfs::release(&entry.path());
        }
        left
    }
}

#[async_trait::async_trait]
impl Containers for Oci {
    fn runtime(&self, name: &str) -> Result<String, WorkloadError> {
        self.oci(name).map(|rt| rt.name)
    }

    fn kinds(&self) -> Vec<String> {
        CLASSES
            .iter()
            .map(|c| c.name())
            .filter(|k| super::runtime::locate(k).is_ok())
            .map(String::from)
            .collect()
    }

    async fn start(
        &self,
        id: &str,
        runtime: &str,
        bundle: &Path,
        log: &Path,
    ) -> Result<Option<u32>, WorkloadError> {
        let rt = self.oci(runtime)?;
        self.delete(&rt, id).await.map_err(WorkloadError::Runtime)?;
        rt.run(id, bundle, log).await.map_err(WorkloadError::Runtime)?;
        // The runtime has just said it started: its state file saves asking it again.
        Ok(rt.init_pid(id))
    }

    fn creates_ahead(&self, runtime: &str) -> bool {
        self.oci(runtime).is_ok_and(|rt| rt.class.creates_ahead())
    }

    async fn create(&self, id: &str, runtime: &str, bundle: &Path, log: &Path) -> Result<(), WorkloadError> {
        let rt = self.oci(runtime)?;
        self.delete(&rt, id).await.map_err(WorkloadError::Runtime)?;
        rt.create(id, bundle, log).await.map_err(WorkloadError::Runtime)
    }

    async fn start_created(&self, id: &str, runtime: &str) -> Result<Option<u32>, WorkloadError> {
        let rt = self.oci(runtime)?;
        rt.start(id).await.map_err(WorkloadError::Runtime)?;
        Ok(rt.init_pid(id))
    }

    fn status(&self, id: &str, runtime: &str) -> ContainerStatus {
        let Ok(rt) = self.oci(runtime) else { return ContainerStatus::Gone };
        match rt.liveness(id) {
            Liveness::Running(pid) if rt.class.paused(&self.driver(&rt), id) => ContainerStatus::Paused(pid),
            Liveness::Running(pid) => ContainerStatus::Running(pid),
            Liveness::Stopped => ContainerStatus::Stopped,
            Liveness::Unknown => ContainerStatus::Gone,
        }
    }

    /// Its class's way ([`super::classes::RuntimeClass::freeze`]): for runc and crun the
    /// cgroup freezer, without a runtime process.
    async fn freeze(&self, id: &str, runtime: &str, wait: Duration) -> Result<(), WorkloadError> {
        let rt = self.oci(runtime)?;
        rt.class.freeze(&self.driver(&rt), id, wait).await
    }

    async fn thaw(&self, id: &str, runtime: &str) -> Result<(), WorkloadError> {
        let rt = self.oci(runtime)?;
        rt.class.thaw(&self.driver(&rt), id).await
    }

    async fn terminate(&self, id: &str, runtime: &str, grace: Duration) {
        let Ok(rt) = self.oci(runtime) else { return };
        rt.class.terminate(&self.driver(&rt), id, grace).await
    }

    async fn remove(&self, id: &str, runtime: &str) -> Result<(), WorkloadError> {
        let deleted = match self.oci(runtime) {
            Ok(rt) => self.delete(&rt, id).await.map_err(WorkloadError::Runtime),
            Err(e) => Err(e),
        };
        // The runtime's delete removes them, unless it had no state left for the container.
        let busy = self.cgroups.remove(id);
        if busy > 0 {
            tracing::warn!(workload = %id, busy, "cgroups still have processes: left in place");
        }
        deleted
    }

    fn sweep(&self, keep: &(dyn Fn(&str) -> bool + Sync)) -> Vec<String> {
        self.cgroups.sweep(keep)
    }

    fn close(&self) {
        if !self.cgroups.remove_own() {
            tracing::debug!("the daemon's cgroup stays: workloads have cgroups under it");
        }
    }
}
