//! The protocol of middlecon (package `middlecon.v1`): the `.proto` sources beside this file
//! and the Rust types prost generates from them at build time.
//!
//! - `middlecon/v1/peer.proto`: the peer wire between middlecons over QUIC ([`v1::PeerRequest`],
//!   [`v1::PeerReply`], [`v1::Outcome`]).
//! - `middlecon/v1/middlecon.proto`: the gRPC API (`Messaging`, `Membership`, `Workloads`):
//!   messages, plus tonic servers (`v1::messaging_server`, ...) and clients
//!   (`v1::messaging_client`, ...).
//! - [`codec`]: prost's gRPC codec, with a message that does not decode reported as
//!   `INVALID_ARGUMENT`.
//! - [`local`]: the lean local protocol on the Unix socket beside gRPC (`Messaging.Call`
//!   without HTTP/2): its preface, frames, reading and writing.
//! - Where a middlecon listens unless told otherwise ([`DEFAULT_PEER_PORT`],
//!   [`DEFAULT_API_PORT`], [`DEFAULT_SOCKET`]): the daemon and its clients both read them here.
#![forbid(unsafe_code)]

pub mod codec;
pub mod local;

/// Generated from `middlecon/v1/*.proto`.
pub mod v1 {
    #![allow(clippy::all, missing_docs)]
    include!(concat!(env!("OUT_DIR"), "/middlecon.v1.rs"));
}

/// The gRPC API source, for tools that want to generate their own clients.
pub const MIDDLECON_V1_PROTO: &str = include_str!("middlecon/v1/middlecon.proto");
/// The peer wire source.
pub const PEER_V1_PROTO: &str = include_str!("middlecon/v1/peer.proto");

/// The UDP port of the peer wire (QUIC) between middlecons.
pub const DEFAULT_PEER_PORT: u16 = 7441;
/// The TCP port of the gRPC API (mTLS).
pub const DEFAULT_API_PORT: u16 = 7442;
/// The local Unix socket of the gRPC API.
pub const DEFAULT_SOCKET: &str = "/run/middlecon/api.sock";

use v1::{ErrorCode, MigratePhase};

impl v1::ServeMessage {
    /// A runtime's `ok` answer to request `id`, carrying `payload`.
    pub fn ok(id: u64, payload: Vec<u8>) -> v1::ServeMessage {
        let response = v1::Response { id, outcome: v1::Outcome::Ok as i32, payload, ..Default::default() };
        v1::ServeMessage { msg: Some(v1::serve_message::Msg::Response(response)) }
    }
}

impl ErrorCode {
    /// The code as users and scripts see it (`dcos: no_space: ...`): the name without its
    /// `ERROR_CODE_` prefix, in lower case; `unknown` for one this build does not know.
    pub fn word(self) -> &'static str {
        match self {
            ErrorCode::Unspecified => "unknown",
            ErrorCode::Invalid => "invalid",
            ErrorCode::NotFound => "not_found",
            ErrorCode::Exists => "exists",
            ErrorCode::Conflict => "conflict",
            ErrorCode::NoSpace => "no_space",
            ErrorCode::NoRuntime => "no_runtime",
            ErrorCode::Runtime => "runtime",
            ErrorCode::Io => "io",
            ErrorCode::Unreachable => "unreachable",
            ErrorCode::Transfer => "transfer",
            ErrorCode::Precondition => "precondition",
            ErrorCode::PermissionDenied => "permission_denied",
            ErrorCode::InDoubt => "in_doubt",
        }
    }

    /// The code carried as `value` on the wire; a value this build does not know (a newer
    /// peer's) is [`ErrorCode::Unspecified`].
    pub fn from_wire(value: i32) -> ErrorCode {
        ErrorCode::try_from(value).unwrap_or(ErrorCode::Unspecified)
    }
}

impl MigratePhase {
    /// The phase as the CLI shows it and `phase_ms` keys it: `reserve`, `freeze`, ...
    pub fn word(self) -> &'static str {
        match self {
            MigratePhase::Unspecified => "",
            MigratePhase::Reserve => "reserve",
            MigratePhase::Freeze => "freeze",
            MigratePhase::Copy => "copy",
            MigratePhase::Start => "start",
            MigratePhase::Delete => "delete",
            MigratePhase::Done => "done",
            MigratePhase::Failed => "failed",
            MigratePhase::Settle => "settle",
        }
    }
}

/// An error status of the gRPC API: `grpc` as the status code, `code` in its details
/// ([`v1::ErrorDetail`]), `message` for a person.
pub fn error_status(grpc: tonic::Code, code: ErrorCode, message: impl Into<String>) -> tonic::Status {
    use prost::Message;
    let detail = v1::ErrorDetail { code: code as i32 }.encode_to_vec();
    tonic::Status::with_details(grpc, message, detail.into())
}

/// The [`ErrorCode`] in the details of `status` ([`error_status`]); unspecified when it has
/// none (another server, an older middlecon, a status from the transport).
pub fn error_code(status: &tonic::Status) -> ErrorCode {
    use prost::Message;
    v1::ErrorDetail::decode(status.details()).map_or(ErrorCode::Unspecified, |d| ErrorCode::from_wire(d.code))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_the_names_without_their_prefix() {
        for v in 1..=13 {
            let c = ErrorCode::try_from(v).unwrap();
            assert_eq!(c.word(), c.as_str_name().trim_start_matches("ERROR_CODE_").to_lowercase());
        }
        assert_eq!(ErrorCode::from_wire(999), ErrorCode::Unspecified);
        for v in 1..=8 {
            let p = MigratePhase::try_from(v).unwrap();
            assert_eq!(p.word(), p.as_str_name().trim_start_matches("MIGRATE_PHASE_").to_lowercase());
        }
    }

    #[test]
    fn a_status_carries_its_code() {
        let s = error_status(tonic::Code::FailedPrecondition, ErrorCode::NoRuntime, "crun is missing");
        assert_eq!((error_code(&s), s.message()), (ErrorCode::NoRuntime, "crun is missing"));
        assert_eq!(error_code(&tonic::Status::internal("x")), ErrorCode::Unspecified);
    }
}
