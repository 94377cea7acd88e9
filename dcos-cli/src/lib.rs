//! The `dcos` command line, as a library so tests and examples reuse its parts.
//!
//! - [`cli`]: the command-line grammar (clap) and global options.
//! - [`certs`]: `dcos certs init|issue` and `dcos tokens new`.
//! - [`client`]: an HTTPS client for k2i that presents the operator's certificate.
//! - [`table`]: process tables the way `ps` prints them, with human units.
//! - [`demo`]: `dcos demo`, a throwaway local fleet.
#![forbid(unsafe_code)]

pub mod certs;
pub mod cli;
pub mod client;
pub mod demo;
pub mod table;

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
