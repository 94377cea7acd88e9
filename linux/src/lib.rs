//! The Linux layer both daemons read the machine through: `/proc/PID/stat` and
//! `/proc/PID/status` ([`stat`], [`process`], [`status`]), the state OCI runtimes keep of
//! their containers ([`oci`]), whether a cgroup is frozen ([`freezer`]), and when the host
//! booted ([`boot`]).
//!
//! Everything here only reads, and takes the root it reads under (`/proc`, a runtime's
//! `--root`, a cgroup directory) as a parameter, so tests point it at a fixture tree.
//! Writing (freezing, thawing, removing cgroups; running containers) stays with the daemon
//! that does it.

#![forbid(unsafe_code)]

pub mod boot;
pub mod freezer;
pub mod oci;
pub mod process;
pub mod stat;
pub mod status;

/// Where the kernel's proc filesystem is normally mounted.
pub const PROC_ROOT: &str = "/proc";

/// [`PROC_ROOT`] as a path, for the functions that take the root to read under.
pub fn proc_root() -> &'static std::path::Path {
    std::path::Path::new(PROC_ROOT)
}
