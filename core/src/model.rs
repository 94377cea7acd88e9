//! The JSON documents of the k2i API (SPEC section 3), shared by k2i and the dcos CLI.
//!
//! Strings that repeat across samples are `Arc<str>` so a snapshot of ten thousand
//! processes shares them with the sampler's cache instead of copying them every tick.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;

/// The container runtime a process or container belongs to.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Runtime {
    Docker,
    Containerd,
    #[serde(rename = "cri-o")]
    CriO,
    Podman,
    Runc,
    Crun,
    /// gVisor's runsc: the container runs on a user-space kernel (its sandbox process).
    Runsc,
    Systemd,
    /// A Kubernetes pod's own cgroup (no single container below it).
    Kubernetes,
}

impl Runtime {
    pub fn as_str(self) -> &'static str {
        match self {
            Runtime::Docker => "docker",
            Runtime::Containerd => "containerd",
            Runtime::CriO => "cri-o",
            Runtime::Podman => "podman",
            Runtime::Runc => "runc",
            Runtime::Crun => "crun",
            Runtime::Runsc => "runsc",
            Runtime::Systemd => "systemd",
            Runtime::Kubernetes => "kubernetes",
        }
    }
}

/// The container a process runs in, as carried on each process.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerRef {
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub id: Arc<str>,
    pub runtime: Runtime,
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub name: Arc<str>,
}

/// One row of the process table. `Default` gives an empty row (pid 0, empty strings,
/// nulls), handy for building rows in tests and examples.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Process {
    pub pid: i32,
    /// Thread id, present only when the table lists threads (`threads=true`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tid: Option<i32>,
    pub ppid: i32,
    pub pgid: i32,
    pub sid: i32,
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub user: Arc<str>,
    pub uid: u32,
    pub gid: u32,
    /// One letter, as in `ps` (R, S, D, Z, T, t, X, I).
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub state: char,
    pub nice: i32,
    pub threads: u32,
    /// The kernel's comm (at most 15 bytes).
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub cmd: Arc<str>,
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<String>))]
    pub cmdline: Arc<[Arc<str>]>,
    /// Path of the executable; `null` when it cannot be read (kernel threads, permissions).
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub exe: Option<Arc<str>>,
    /// RFC 3339, UTC.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub start_time: Arc<str>,
    /// Percent of one core over the last sample interval; `null` before the second sample.
    pub cpu_percent: Option<f64>,
    pub cpu_time_s: f64,
    pub mem_rss_bytes: u64,
    pub mem_vsz_bytes: u64,
    pub mem_percent: f64,
    /// `null` when `/proc/PID/io` is not readable.
    pub io_read_bytes: Option<u64>,
    pub io_write_bytes: Option<u64>,
    /// Controlling terminal (`pts/3`, `tty1`), `null` when none.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub tty: Option<Arc<str>>,
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub cgroup: Arc<str>,
    #[cfg_attr(feature = "openapi", schema(value_type = Option<ContainerRef>))]
    pub container: Option<Arc<ContainerRef>>,
}

/// `GET /v1/proc`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProcList<P = Process> {
    pub host: String,
    pub dc: String,
    pub sampled_at: String,
    /// Matches before `limit`.
    pub total: usize,
    pub processes: Vec<P>,
}

/// `GET /v1/proc/{pid}`: one process and what is too costly to keep for all of them.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProcessDetail {
    #[serde(flatten)]
    pub process: Process,
    /// Open file descriptors: fd number to target.
    pub fds: BTreeMap<String, String>,
    /// `/proc/PID/limits`: name to `{soft, hard, units}`.
    pub limits: BTreeMap<String, Limit>,
    /// Namespace kind to inode identifier (`net` -> `net:[4026531840]`).
    pub namespaces: BTreeMap<String, String>,
    pub environ_readable: bool,
}

/// One resource limit; `None` is unlimited.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Limit {
    pub soft: Option<u64>,
    pub hard: Option<u64>,
    pub units: Option<String>,
}

/// `GET /v1/host`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostSummary {
    pub name: String,
    pub dc: String,
    pub labels: BTreeMap<String, String>,
    pub kernel: String,
    pub uptime_s: f64,
    pub load: [f64; 3],
    pub cpus: u32,
    /// Whole-host CPU busy percent over the last interval, 0..=100 × cpus; `null` before the second sample.
    pub cpu_percent: Option<f64>,
    pub mem_total_bytes: u64,
    pub mem_used_bytes: u64,
    pub swap_total_bytes: u64,
    pub swap_used_bytes: u64,
    pub processes: u32,
    pub threads: u32,
    pub agent_version: String,
    pub sampled_at: String,
}

/// `GET /v1/top`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Top {
    pub host: HostSummary,
    pub processes: Vec<Process>,
}

/// One container on a host.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Container {
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub id: Arc<str>,
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub name: Arc<str>,
    pub runtime: Runtime,
    /// `running`, `paused`, `stopped`, or `unknown` when no runtime state says more.
    pub status: String,
    /// The container's init process (lowest pid seen in it when no runtime state says).
    pub pid: Option<i32>,
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub cgroup: Arc<str>,
    /// Number of processes in the container.
    pub processes: u32,
    pub cpu_percent: Option<f64>,
    pub mem_bytes: Option<u64>,
    pub mem_limit_bytes: Option<u64>,
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub started_at: Option<Arc<str>>,
    /// Kubernetes pod UID when the cgroup path names one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub pod_uid: Option<Arc<str>>,
    /// OCI bundle directory, when an OCI runtime state directory names it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub bundle: Option<Arc<str>>,
    /// The dcos service it is an instance of (middlecon's annotation `dcos.service`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub service: Option<Arc<str>>,
}

/// `GET /v1/containers`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ContainerList {
    pub host: String,
    pub dc: String,
    pub sampled_at: String,
    pub containers: Vec<Container>,
}

/// `GET /v1/containers/{id}`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ContainerDetail {
    pub container: Container,
    pub processes: Vec<Process>,
}

/// `GET /v1/sysctl/{key}` and the answer to a `PUT`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SysctlValue {
    pub key: String,
    pub value: String,
    /// On a write: the value before it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub old_value: Option<String>,
}

/// Body of `PUT /v1/sysctl/{key}`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SysctlWrite {
    pub value: String,
}

/// Every error answer: `{"error": {"code", "message"}}`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorDetail {
    /// Machine-readable, stable: `bad_query`, `unauthenticated`, `forbidden`, `not_found`, ...
    pub code: String,
    /// For a person.
    pub message: String,
    /// For a malformed `q` expression: the byte offset of the fault.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub position: Option<usize>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runtime_names_are_the_specs() {
        let names: Vec<String> = [Runtime::CriO, Runtime::Kubernetes, Runtime::Runc]
            .iter()
            .map(|r| serde_json::to_string(r).unwrap())
            .collect();
        assert_eq!(names, ["\"cri-o\"", "\"kubernetes\"", "\"runc\""]);
        for r in [
            Runtime::Docker,
            Runtime::Podman,
            Runtime::Systemd,
            Runtime::Containerd,
            Runtime::Crun,
            Runtime::Runsc,
        ] {
            assert_eq!(serde_json::to_value(r).unwrap(), r.as_str());
        }
    }

    #[test]
    fn error_body_has_the_spec_shape() {
        let e = ErrorBody {
            error: ErrorDetail { code: "bad_query".into(), message: "x".into(), position: None },
        };
        assert_eq!(
            serde_json::to_value(&e).unwrap(),
            serde_json::json!({"error": {"code": "bad_query", "message": "x"}})
        );
    }
}
