//! A fleet on this machine, from the workspace's built binaries: what `dcos demo`, the
//! end-to-end tests and the benchmarks share, without any of them depending on the CLI.
//!
//! - [`daemon`]: k2i and middlecon started on loopback with a host's certificate
//!   ([`start_k2i`], [`start_middlecon`]; k2i optionally in a PID namespace of its own
//!   behind a workload), and a child's first line of output read within a limit while the
//!   rest is drained ([`FirstLine`]), which is how every daemon announces its address.
//! - [`lookup`]: where a built binary is ([`built_binary`], [`sibling_binary`]) and where an
//!   OCI runtime is installed ([`oci_runtime`]).
//! - [`certs`]: a fleet CA and one host certificate per name for 127.0.0.1 ([`make_certs`],
//!   [`loopback_leaf`]).
//! - [`rootfs`]: a small busybox root filesystem for containers ([`busybox_rootfs`]).
#![forbid(unsafe_code)]

pub mod certs;
pub mod daemon;
pub mod lookup;
pub mod rootfs;

pub use certs::{loopback_leaf, make_certs};
pub use daemon::{first_line, start_k2i, start_middlecon, FirstLine, LocalHost, LocalMiddlecon, NoLine};
pub use lookup::{built_binary, oci_runtime, sibling_binary};
pub use rootfs::busybox_rootfs;

use std::path::PathBuf;

/// Why a local host could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    #[error("cannot find the {0} binary next to dcos or on PATH (build it: cargo build --release)")]
    NoBinary(String),
    #[error("busybox not found: install busybox-static (scripts/setup.sh does)")]
    NoBusybox,
    #[error("starting {}", bin.display())]
    Start { bin: PathBuf, source: std::io::Error },
    #[error("{name}: {program} did not start within {} s (see {})", .limit.as_secs(), .log.display())]
    Silent { name: String, program: String, limit: std::time::Duration, log: PathBuf },
    #[error("{name}: {program} exited at start (see {})", .log.display())]
    ExitedAtStart { name: String, program: String, log: PathBuf },
    #[error("{name}: unexpected first line {line:?}")]
    K2iLine { name: String, line: String },
    #[error("{name}: unexpected first line from middlecon {line:?}")]
    MiddleconLine { name: String, line: String },
    #[error(transparent)]
    Pki(#[from] dcos_core::pki::PkiError),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}
