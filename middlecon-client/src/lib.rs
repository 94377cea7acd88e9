//! The gRPC client of middlecon (package `middlecon.v1`), for the `dcos` CLI, programs of
//! your own, the tests and the benchmarks; it does not link the daemon.
//!
//! - [`Endpoint`]: where an API is reached: its mTLS TCP port, or its Unix socket on this
//!   machine (no certificate; the socket's file mode decides who may connect).
//! - [`connect`], [`connect_unix`], [`connect_to`] (in `connect.rs`): a tonic [`Channel`] to
//!   one of them; [`ConnectError`] says why none could be opened and sorts it into a
//!   per-host status of SPEC section 6 (`refused`, `tls_error`, `timeout`, `unreachable`).
//! - [`LocalClient`] (in `local.rs`): `Messaging.Call` over the lean local protocol on the
//!   Unix socket, beside gRPC: the same messages and outcomes without HTTP/2, less CPU per
//!   call for a caller on the same machine.
//! - The generated clients and messages, re-exported from `dcos-proto` ([`pb`],
//!   [`MembershipClient`], [`MessagingClient`], [`WorkloadsClient`], [`ServicesClient`]), and
//!   where a middlecon listens unless told otherwise ([`DEFAULT_API_PORT`],
//!   [`DEFAULT_PEER_PORT`], [`DEFAULT_SOCKET`]).
#![forbid(unsafe_code)]

mod connect;
mod local;

pub use connect::{connect, connect_to, connect_unix, ConnectError};
pub use dcos_proto::v1 as pb;
pub use dcos_proto::{DEFAULT_API_PORT, DEFAULT_PEER_PORT, DEFAULT_SOCKET};
pub use local::{LocalClient, LocalError};
pub use pb::membership_client::MembershipClient;
pub use pb::messaging_client::MessagingClient;
pub use pb::services_client::ServicesClient;
pub use pb::workloads_client::WorkloadsClient;
pub use tonic::transport::Channel;

use std::net::SocketAddr;
use std::path::PathBuf;

/// Where a middlecon's gRPC API is reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// Its mTLS TCP port: a certificate of the fleet CA is presented.
    Tcp(SocketAddr),
    /// Its Unix socket, on this machine: no certificate; the socket's file mode decides who
    /// may connect, and middlecon counts those callers as `admin`.
    Unix(PathBuf),
}

impl Endpoint {
    /// Whether reaching it takes a certificate.
    pub fn needs_certificate(&self) -> bool {
        matches!(self, Endpoint::Tcp(_))
    }
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Endpoint::Tcp(a) => write!(f, "{a}"),
            Endpoint::Unix(p) => write!(f, "unix:{}", p.display()),
        }
    }
}
