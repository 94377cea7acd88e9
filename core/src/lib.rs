//! Shared vocabulary of dcos: everything more than one component must agree on.
//!
//! - `daemon` (feature `daemon`): logging, runtime and signal handling for the daemons' `main`.
//! - [`model`]: the JSON documents k2i serves and the CLI reads (processes, containers,
//!   host summaries, error bodies).
//! - [`names`]: names checked alike everywhere (workload names).
//! - [`role`]: the three roles (`viewer`, `host`, `admin`) and what each may do.
//! - [`pki`]: the fleet CA, issuing certificates that carry a name and a role.
//! - [`tls`]: rustls server and client configurations built from those files, and the
//!   identity (name, role) read back from a peer's certificate.
//! - [`reload`]: a daemon's TLS identity replaced while it runs (SIGHUP, changed files).
//! - [`settings`](mod@settings): a daemon's settings declared once (flags and file), merged and checked
//!   alike: the error naming a setting, TLS files.
//! - [`tokens`]: bearer tokens for dashboards, stored only as SHA-256 hashes.
//! - [`unix_ms`]: a time as milliseconds since the Unix epoch, as deadlines and timestamps
//!   cross the wire.
#![forbid(unsafe_code)]

#[cfg(feature = "daemon")]
pub mod daemon;
pub mod model;
pub mod names;
pub mod pki;
pub mod reload;
pub mod role;
pub mod settings;
pub mod tls;
pub mod tokens;

pub use role::Role;

/// The version every dcos binary reports (`agent_version`, `--version`).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Milliseconds since the Unix epoch (negative before it).
pub fn unix_ms(t: std::time::SystemTime) -> i64 {
    match t.duration_since(std::time::UNIX_EPOCH) {
        Ok(d) => d.as_millis() as i64,
        Err(e) => -(e.duration().as_millis() as i64),
    }
}
