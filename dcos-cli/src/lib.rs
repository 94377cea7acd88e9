//! The `dcos` command line, as a library so tests and examples reuse its parts.
//!
//! - [`cli`]: the command-line grammar (clap) and global options.
//! - [`certs`]: `dcos certs init|issue` and `dcos tokens new`.
//! - [`fleet`]: which hosts to ask (inventory, `--hosts`, a `--seed`'s members, `--dc`,
//!   `--label`).
//! - [`client`]: an HTTPS client for k2i that presents the operator's certificate.
//! - [`fanout`]: asking every host at once, one deadline, one status per host.
//! - [`commands`]: `hosts`, `ps`, `top`, `containers`, `sysctl`; `call`, `query` and the
//!   workload commands `run`, `workloads`, `stop`, `migrate`, `evacuate` through middlecon.
//! - [`api`]: finding and reaching a middlecon's gRPC API (`--api`, `--seed`, the inventory's
//!   `api`), with connection failures sorted into per-host statuses.
//! - [`workload`]: what the workload commands share (unary calls, fleet-wide `List`, rows).
//! - [`migration`]: following a migration's progress stream, bars, summaries.
//! - [`output`], [`table`]: JSON documents, NDJSON lines, `ps`-like tables, exit statuses.
//! - [`demo`]: `dcos demo`, a throwaway local fleet.
#![forbid(unsafe_code)]

pub mod api;
pub mod certs;
pub mod cli;
pub mod client;
pub mod commands;
pub mod demo;
pub mod fanout;
pub mod fleet;
pub mod migration;
pub mod output;
pub mod table;
pub mod workload;

/// Exit statuses of SPEC section 6.
pub mod exit {
    /// Every host answered.
    pub const OK: u8 = 0;
    /// The operation failed.
    pub const FAILED: u8 = 1;
    /// Bad usage.
    pub const USAGE: u8 = 2;
    /// Some hosts answered, some did not.
    pub const PARTIAL: u8 = 3;
}
