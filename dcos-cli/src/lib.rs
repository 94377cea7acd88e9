//! The `dcos` command line. What other programs share with it lives in crates of its own:
//! the clients of k2i (`k2i-client`) and of middlecon's API (`middlecon-client`), and the
//! local fleet `dcos demo` starts (`dcos-localfleet`).
//!
//! - [`cli`]: the command-line grammar (clap) and global options.
//! - [`certs`]: `dcos certs init|issue` and `dcos tokens new`.
//! - [`fleet`]: which hosts to ask (inventory, `--hosts`, a `--seed`'s members, `--dc`,
//!   `--label`).
//! - [`fanout`]: asking every host at once, one deadline, one status per host;
//!   [`relay`]: the same through one middlecon per datacenter (`--relay`).
//! - [`commands`]: `hosts`, `ps`, `top`, `containers`, `sysctl`; `call`, `query`, the
//!   workload commands `run`, `workloads`, `stop`, `migrate`, `evacuate` and the service
//!   commands `service create|ls|show|rm` through middlecon.
//! - [`api`]: finding a middlecon's gRPC API (`--api`, `--seed`, the inventory's `api`,
//!   `--socket`) and reaching it, failures printed as per-host statuses.
//! - [`workload`]: what the commands on middlecon's API share (unary calls of any of its
//!   services, one call on every host at once, fleet-wide `List`, workload rows).
//! - [`migration`]: following a migration's progress stream, bars, summaries.
//! - [`output`], [`table`]: JSON documents, NDJSON lines, `ps`-like tables, exit statuses.
//! - [`demo`]: `dcos demo`, a throwaway local fleet, shown through the commands above.
//! - [`ui`]: `dcos ui`, the fleet in a browser, served on the operator's machine.
#![forbid(unsafe_code)]

pub mod api;
pub mod certs;
pub mod cli;
pub mod commands;
pub mod demo;
pub mod fanout;
pub mod fleet;
pub mod migration;
pub mod output;
pub mod relay;
pub mod table;
pub mod ui;
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
