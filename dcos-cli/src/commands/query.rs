//! `dcos query SERVICE [DATA]`: scatter-gather through a middlecon's gRPC API
//! (`Messaging.Query`): every live host serving SERVICE (narrowed by `--dc` and `--label`)
//! is asked at once and each reply is printed as it comes.
//!
//! - The API is chosen as for `dcos call` ([`crate::api::entry`]); the deadline is
//!   `--timeout` from now; `--max-replies`, `--max-wait` and `--stall` end it earlier.
//! - Table: `HOST OUTCOME PAYLOAD` (the message instead of the payload for an outcome other
//!   than `ok`). `-o json`: `{"hosts": [...], "replies": [...]}`, one `hosts` entry per
//!   responder (its `status` in the SPEC vocabulary: `deadline_exceeded` is `timeout`,
//!   `unreachable` stays, other refusals are `refused`); each reply is `{host, outcome,
//!   payload (text), message, elapsed_ms}`. `-o ndjson`: one reply a line, each followed
//!   by its `host_status` line.
//! - Exit 0 when every reply is `ok`, 3 when some are not, 1 when none is or nobody
//!   answered (`no_responders` on stderr), 2 for bad usage.

use super::call::outcome_name;
use crate::api::{answer, open, GRACE};
use crate::cli::{FleetArgs, Format, QueryArgs, TlsArgs};
use crate::exit;
use crate::fanout::HostReport;
use crate::output;
use dcos_proto::v1 as pb;
use std::time::{Duration, Instant, SystemTime};

/// One reply, as printed.
#[derive(Debug, serde::Serialize)]
struct Reply {
    host: String,
    outcome: &'static str,
    payload: String,
    message: String,
    elapsed_ms: u64,
}

fn status_of(outcome: pb::Outcome) -> &'static str {
    match outcome {
        pb::Outcome::Ok => "ok",
        pb::Outcome::DeadlineExceeded => "timeout",
        pb::Outcome::Unreachable => "unreachable",
        _ => "refused",
    }
}

fn millis(d: Option<Duration>) -> u32 {
    d.map(|d| d.as_millis().min(u32::MAX as u128) as u32).unwrap_or(0)
}

/// Host and outcome columns wide enough for typical names and every outcome name.
const HOST_WIDTH: usize = 16;
const OUTCOME_WIDTH: usize = 17;

/// Runs `dcos query`; returns the exit status.
pub async fn run(tls: &TlsArgs, fleet: &FleetArgs, args: &QueryArgs) -> u8 {
    let labels = match crate::fleet::parse_labels(&fleet.labels) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("dcos: {e}");
            return exit::USAGE;
        }
    };
    let (addr, channel) = match open(tls, fleet, &args.api, None).await {
        Ok(c) => c,
        Err(status) => return status,
    };
    let request = pb::QueryRequest {
        service: args.service.clone(),
        dc: fleet.dc.clone().unwrap_or_default(),
        labels: labels.into_iter().collect(),
        deadline_unix_ms: dcos_core::unix_ms(SystemTime::now() + fleet.timeout),
        max_replies: args.max_replies.unwrap_or(0),
        max_wait_ms: millis(args.max_wait),
        stall_ms: millis(args.stall),
        headers: Default::default(),
        payload: args.data.clone().unwrap_or_default().into_bytes(),
    };
    let started = Instant::now();
    let give_up = tokio::time::Instant::now() + fleet.timeout + GRACE;
    let mut client = pb::messaging_client::MessagingClient::new(channel);
    let mut stream = match answer(&addr, fleet, give_up, client.query(request)).await {
        Ok(s) => s,
        Err(status) => return status,
    };
    if fleet.output == Format::Table || fleet.output == Format::Wide {
        println!("{:<HOST_WIDTH$} {:<OUTCOME_WIDTH$} PAYLOAD", "HOST", "OUTCOME");
    }
    let (mut reports, mut replies) = (Vec::new(), Vec::new());
    loop {
        let next = match tokio::time::timeout_at(give_up, stream.message()).await {
            Ok(Ok(Some(m))) => m,
            Ok(Ok(None)) => break,
            Ok(Err(status)) => {
                eprintln!("dcos: {addr}: the query stream broke: {}: {}", status.code(), status.message());
                break;
            }
            Err(_) => {
                eprintln!("dcos: {addr}: the query stream did not end by the deadline");
                break;
            }
        };
        let Some(r) = next.reply else { continue };
        let outcome = r.outcome();
        let reply = Reply {
            host: r.responder.clone(),
            outcome: outcome_name(outcome),
            payload: String::from_utf8_lossy(&r.payload).trim_end_matches('\n').to_string(),
            message: r.message.clone(),
            elapsed_ms: started.elapsed().as_millis() as u64,
        };
        let report = HostReport {
            host: reply.host.clone(),
            address: addr.to_string(),
            status: status_of(outcome),
            error: (outcome != pb::Outcome::Ok).then(|| format!("{}: {}", reply.outcome, reply.message)),
            elapsed_ms: reply.elapsed_ms,
            via: None,
            age_ms: None,
        };
        match fleet.output {
            Format::Table | Format::Wide => {
                let text = if outcome == pb::Outcome::Ok { &reply.payload } else { &reply.message };
                println!(
                    "{:<HOST_WIDTH$} {:<OUTCOME_WIDTH$} {}",
                    reply.host,
                    reply.outcome,
                    text.replace('\n', " ")
                );
            }
            Format::Ndjson => {
                output::print_line(&reply);
                output::print_line(&output::host_status_line(&report));
            }
            Format::Json => {}
        }
        reports.push(report);
        replies.push(reply);
    }
    if fleet.output == Format::Json {
        output::print_document("replies", &reports, &replies);
    }
    if replies.is_empty() {
        eprintln!("dcos: no_responders: no host answered {:?} (asked through {addr})", args.service);
        return exit::FAILED;
    }
    output::finish(&reports)
}
