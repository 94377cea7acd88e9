//! `dcos call HOST SERVICE [DATA]`: one request to a service on a named host, through a
//! middlecon's gRPC API (`Messaging.Call`, mTLS with the operator's certificate).
//!
//! The API address is `--api ADDR` (or `DCOS_API`), else `--seed ADDR` (or `DCOS_SEED`),
//! else the `api` field of HOST in the inventory ([`api_address`], shared with `dcos query`). The deadline is `--timeout` from now. The reply's payload goes to stdout;
//! exit 0 when the outcome is `ok`, 1 for any other outcome (named on stderr), 2 for bad
//! usage.

use crate::cli::{CallArgs, FleetArgs, TlsArgs};
use crate::commands::{identity, SetupError};
use crate::exit;
use dcos_proto::v1 as pb;
use std::io::Write;
use std::net::SocketAddr;
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

/// `IP[:PORT]` of a middlecon API (port 7442 if left out); `what` names the option.
pub fn parse_api(text: &str, what: &str) -> Result<SocketAddr, SetupError> {
    if let Ok(a) = text.parse() {
        return Ok(a);
    }
    text.parse::<std::net::IpAddr>()
        .map(|ip| SocketAddr::new(ip, middlecon::config::DEFAULT_API_PORT))
        .map_err(|_| SetupError::Usage(format!("{what}: {text:?} is not an address like 10.0.0.5:7442")))
}

/// Which middlecon API to ask: `--api` (or `DCOS_API`), else the `--seed` (a middlecon API
/// address, or `DCOS_SEED`), else the inventory's `api` of `host` (or of its first host
/// with one when `host` is `None`).
pub fn api_address(
    api: Option<&str>,
    fleet: &FleetArgs,
    host: Option<&str>,
) -> Result<SocketAddr, SetupError> {
    if let Some(a) = api {
        return parse_api(a, "--api");
    }
    if let Some(seed) = &fleet.seed {
        return parse_api(seed, "--seed");
    }
    let Some(path) = &fleet.inventory else {
        return Err(SetupError::Usage(
            "which middlecon? give --api ADDR (or DCOS_API), --seed ADDR, or --inventory with an api field"
                .into(),
        ));
    };
    let hosts = crate::fleet::load_inventory(path)?;
    let found = match host {
        Some(name) => {
            let t = hosts.iter().find(|t| t.name == name).ok_or_else(|| {
                SetupError::Usage(format!("{name} is not in {}; give --api ADDR", path.display()))
            })?;
            t.api.clone()
        }
        None => hosts.iter().find_map(|t| t.api.clone()),
    };
    let who = host.map(|h| h.to_string()).unwrap_or_else(|| "no host".into());
    let text = found.ok_or_else(|| {
        SetupError::Usage(format!("{who} has no api address in {}; give --api ADDR", path.display()))
    })?;
    parse_api(&text, &format!("{}: api", path.display()))
}

/// Chooses the API ([`api_address`]), loads the operator's certificate and connects. A
/// failure is printed and becomes the exit status: 2 for bad usage, 1 when the API is
/// unreachable (`unreachable` on stderr) or the certificate does not load.
pub async fn open(
    tls: &TlsArgs,
    fleet: &FleetArgs,
    api: Option<&str>,
    host: Option<&str>,
) -> Result<(SocketAddr, tonic::transport::Channel), u8> {
    let setup = (|| Ok::<_, SetupError>((api_address(api, fleet, host)?, identity(tls)?)))();
    let (addr, id) = setup.map_err(|e| {
        eprintln!("dcos: {e}");
        e.exit_status()
    })?;
    let channel = middlecon::api::connect(addr, &id).await.map_err(|e| {
        eprintln!("dcos: unreachable: cannot reach the middlecon API at {e}");
        exit::FAILED
    })?;
    Ok((addr, channel))
}

/// How long past the deadline the CLI waits for the API's answer (the way back).
pub const GRACE: std::time::Duration = std::time::Duration::from_millis(500);

/// The API's answer to `call` by `give_up`; a gRPC failure or no answer is printed and
/// becomes exit status 1.
pub async fn answer<T>(
    addr: SocketAddr,
    fleet: &FleetArgs,
    give_up: tokio::time::Instant,
    call: impl std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
) -> Result<T, u8> {
    match tokio::time::timeout_at(give_up, call).await {
        Ok(Ok(r)) => Ok(r.into_inner()),
        Ok(Err(status)) => {
            eprintln!("dcos: {addr}: {}: {}", status.code(), status.message());
            Err(exit::FAILED)
        }
        Err(_) => {
            eprintln!("dcos: deadline_exceeded: no answer from {addr} within {:?}", fleet.timeout);
            Err(exit::FAILED)
        }
    }
}

/// Runs `dcos call`; returns the exit status.
pub async fn run(tls: &TlsArgs, fleet: &FleetArgs, args: &CallArgs) -> u8 {
    let (addr, channel) = match open(tls, fleet, args.api.api.as_deref(), Some(&args.host)).await {
        Ok(c) => c,
        Err(status) => return status,
    };
    let request = pb::CallRequest {
        service: args.service.clone(),
        target: Some(pb::Target { to: Some(pb::target::To::Host(args.host.clone())) }),
        deadline_unix_ms: middlecon::peer::unix_ms(SystemTime::now() + fleet.timeout),
        headers: Default::default(),
        payload: args.data.clone().unwrap_or_default().into_bytes(),
    };
    let mut client = pb::messaging_client::MessagingClient::new(channel);
    let give_up = tokio::time::Instant::now() + fleet.timeout + GRACE;
    let reply = match answer(addr, fleet, give_up, client.call(request)).await {
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
