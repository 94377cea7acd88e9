//! `dcos call HOST SERVICE [DATA]`: one request to a service on a named host, through a
//! middlecon's gRPC API (`Messaging.Call`, mTLS with the operator's certificate).
//!
//! The API address is `--api ADDR` (or `DCOS_API`), else `--seed ADDR` (or `DCOS_SEED`),
//! else the `api` field of HOST in the inventory ([`crate::api::entry`]). The deadline is
//! `--timeout` from now. The reply's payload goes to stdout; exit 0 when the outcome is
//! `ok`, 1 for any other outcome (named on stderr) or when the API cannot be reached, 2 for
//! bad usage.

use crate::api::{answer, open, GRACE};
use crate::cli::{CallArgs, FleetArgs, TlsArgs};
use crate::exit;
use dcos_proto::v1 as pb;
use std::io::Write;
use std::time::SystemTime;

/// The SPEC name of an outcome (`ok`, `no_responders`, ...).
pub fn outcome_name(outcome: pb::Outcome) -> &'static str {
    match outcome {
        pb::Outcome::Ok => "ok",
        pb::Outcome::NoResponders => "no_responders",
        pb::Outcome::Unreachable => "unreachable",
        pb::Outcome::DeadlineExceeded => "deadline_exceeded",
        pb::Outcome::ResourceExhausted => "resource_exhausted",
        pb::Outcome::PermissionDenied => "permission_denied",
        pb::Outcome::AppError => "app_error",
        pb::Outcome::Unspecified => "unspecified",
    }
}

/// Runs `dcos call`; returns the exit status.
pub async fn run(tls: &TlsArgs, fleet: &FleetArgs, args: &CallArgs) -> u8 {
    let (addr, channel) = match open(tls, fleet, &args.api, Some(&args.host)).await {
        Ok(c) => c,
        Err(status) => return status,
    };
    let request = pb::CallRequest {
        service: args.service.clone(),
        target: Some(pb::Target { to: Some(pb::target::To::Host(args.host.clone())) }),
        deadline_unix_ms: dcos_core::unix_ms(SystemTime::now() + fleet.timeout),
        headers: Default::default(),
        payload: args.data.clone().unwrap_or_default().into_bytes(),
    };
    let mut client = pb::messaging_client::MessagingClient::new(channel);
    let give_up = tokio::time::Instant::now() + fleet.timeout + GRACE;
    let reply = match answer(&addr, fleet, give_up, client.call(request)).await {
        Ok(r) => r,
        Err(status) => return status,
    };
    let outcome = reply.outcome();
    if outcome != pb::Outcome::Ok {
        let detail = if reply.message.is_empty() { String::new() } else { format!(": {}", reply.message) };
        eprintln!("dcos: {}{detail}", outcome_name(outcome));
        return exit::FAILED;
    }
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(&reply.payload);
    if !reply.payload.ends_with(b"\n") {
        let _ = out.write_all(b"\n");
    }
    exit::OK
}
