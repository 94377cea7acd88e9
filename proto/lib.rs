//! The protocol of middlecon (package `middlecon.v1`): the `.proto` sources beside this file
//! and the Rust types prost generates from them at build time.
//!
//! - `middlecon/v1/peer.proto`: the peer wire between middlecons over QUIC ([`v1::PeerRequest`],
//!   [`v1::PeerReply`], [`v1::Outcome`]).
//! - `middlecon/v1/middlecon.proto`: the gRPC API (`Messaging`, `Membership`, `Workloads`):
//!   messages, plus tonic servers (`v1::messaging_server`, ...) and clients
//!   (`v1::messaging_client`, ...).
#![forbid(unsafe_code)]

/// Generated from `middlecon/v1/*.proto`.
pub mod v1 {
    #![allow(clippy::all, missing_docs)]
    include!(concat!(env!("OUT_DIR"), "/middlecon.v1.rs"));
}

/// The gRPC API source, for tools that want to generate their own clients.
pub const MIDDLECON_V1_PROTO: &str = include_str!("middlecon/v1/middlecon.proto");
/// The peer wire source.
pub const PEER_V1_PROTO: &str = include_str!("middlecon/v1/peer.proto");
