//! `dcos call HOST SERVICE [DATA]`: one request to a service on a named host, through a
//! middlecon's gRPC API (`Messaging.Call`, mTLS with the operator's certificate).
//!
//! The API address is `--api ADDR` (or `DCOS_API`), else the `api` field of HOST in the
//! inventory. The deadline is `--timeout` from now. The reply's payload goes to stdout;
//! exit 0 when the outcome is `ok`, 1 for any other outcome (named on stderr), 2 for bad
//! usage.

use crate::cli::{CallArgs, FleetArgs, TlsArgs};
use crate::commands::{identity, SetupError};
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
    let setup =
        (|| Ok::<_, SetupError>((crate::api::host(&args.host, fleet, &args.api)?.addr, identity(tls)?)))();
    let (addr, id) = match setup {
        Ok(s) => s,
        Err(e) => {
            eprintln!("dcos: {e}");
            return e.exit_status();
        }
    };
    let channel = match crate::api::connect(addr, &id).await {
        Ok(c) => c,
        Err(e) => {
            eprintln!("dcos: unreachable: {}", e.message);
            return exit::FAILED;
        }
    };
    let request = pb::CallRequest {
        service: args.service.clone(),
        target: Some(pb::Target { to: Some(pb::target::To::Host(args.host.clone())) }),
        deadline_unix_ms: middlecon::peer::unix_ms(SystemTime::now() + fleet.timeout),
        headers: Default::default(),
        payload: args.data.clone().unwrap_or_default().into_bytes(),
    };
    let mut client = pb::messaging_client::MessagingClient::new(channel);
    // The API answers by the deadline; allow a little more for the way back.
    let wait = fleet.timeout + std::time::Duration::from_millis(500);
    let reply = match tokio::time::timeout(wait, client.call(request)).await {
        Ok(Ok(r)) => r.into_inner(),
        Ok(Err(status)) => {
            eprintln!("dcos: {addr}: {}: {}", status.code(), status.message());
            return exit::FAILED;
        }
        Err(_) => {
            eprintln!("dcos: deadline_exceeded: no answer from {addr} within {:?}", fleet.timeout);
            return exit::FAILED;
        }
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
