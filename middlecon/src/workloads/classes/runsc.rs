//! runsc, gVisor's OCI runtime: the sandboxed class. A container's processes run on a
//! user-space kernel (the sandbox process, with a gofer serving its files), not on the
//! host's; the host sees the sandbox, the gofer and the sandbox's helpers, all in the
//! container's cgroup, which runsc makes and removes itself.
//!
//! - Flags: the `ptrace` platform (it needs no hardware virtualisation; the KVM platform
//!   needs `/dev/kvm` and hangs where nested virtualisation is missing) and the host's
//!   network, as every dcos workload has (`config.json` asks for no network namespace).
//! - Frozen by its own `pause` and thawed by `resume`: the sandbox stops its tasks itself
//!   (the cgroup freezer would stop the user-space kernel between two steps) and records
//!   `paused` in its state, which is where [`Runsc::paused`] reads it.
//! - Created ahead on a migration's target (its `create` boots the sandbox while the files
//!   arrive) and started when the target is told to start it.
//! - Asked to end by its `kill`: the host pid runsc records is the sandbox, not the
//!   container's init, which only the sandbox can signal.

use super::{Driver, RuntimeClass};
use crate::workloads::WorkloadError;
use std::time::Duration;

/// runsc (gVisor).
pub struct Runsc;

#[async_trait::async_trait]
impl RuntimeClass for Runsc {
    fn name(&self) -> &'static str {
        "runsc"
    }

    fn flags(&self) -> &'static [&'static str] {
        &["--platform=ptrace", "--network=host"]
    }

    /// Its `create` boots the sandbox and the gofer (most of a `run`); `start` then only
    /// starts the container's process in it.
    fn creates_ahead(&self) -> bool {
        true
    }

    fn paused(&self, d: &Driver<'_>, id: &str) -> bool {
        recorded_paused(d, id)
    }

    /// `runsc pause` returns once the sandbox has stopped every task: `wait` is not needed.
    async fn freeze(&self, d: &Driver<'_>, id: &str, _wait: Duration) -> Result<(), WorkloadError> {
        d.rt.pause(id).await.map_err(WorkloadError::Runtime)
    }

    async fn thaw(&self, d: &Driver<'_>, id: &str) -> Result<(), WorkloadError> {
        if !recorded_paused(d, id) {
            return Ok(());
        }
        d.rt.resume(id).await.map_err(WorkloadError::Runtime)
    }

    async fn terminate(&self, d: &Driver<'_>, id: &str, grace: Duration) {
        if !matches!(d.rt.liveness(id), super::Liveness::Running(_)) {
            return;
        }
        if let Err(e) = self.thaw(d, id).await {
            tracing::debug!(workload = %id, "resuming before the stop: {e}");
        }
        match d.rt.kill(id, "TERM").await {
            Ok(()) => super::wait_for_end(d.rt, id, grace).await,
            Err(e) => tracing::debug!(workload = %id, "runsc kill: {e}"),
        }
    }
}

/// Whether runsc recorded container `id` as paused.
fn recorded_paused(d: &Driver<'_>, id: &str) -> bool {
    dcos_linux::oci::read(&d.rt.root, id).and_then(|s| s.recorded) == Some(dcos_linux::oci::Status::Paused)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workloads::cgroup::Cgroups;
    use crate::workloads::runtime::OciRuntime;

    #[test]
    fn runsc_runs_on_ptrace_with_the_hosts_network_and_reads_its_own_pause() {
        assert_eq!(Runsc.flags(), ["--platform=ptrace", "--network=host"]);
        assert!(Runsc.creates_ahead() && !super::super::runc::Runc.creates_ahead());
        let state = tempfile::tempdir().unwrap();
        let rt = OciRuntime::with_binary("runsc", "/usr/bin/runsc".into(), state.path());
        let cgroups = Cgroups::under(&[], "h-1");
        let d = Driver { rt: &rt, cgroups: &cgroups };
        let write = |status: &str| {
            std::fs::create_dir_all(&rt.root).unwrap();
            let json = serde_json::json!({"id": "web", "status": status, "sandbox": {"id": "web", "pid": 1}});
            std::fs::write(rt.root.join("web_sandbox:web.state"), json.to_string()).unwrap();
        };
        assert!(!Runsc.paused(&d, "web"), "no state");
        write("running");
        assert!(!Runsc.paused(&d, "web"));
        write("paused");
        assert!(Runsc.paused(&d, "web"), "runsc's own pause");
    }
}
