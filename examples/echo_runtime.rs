//! A runtime: a program that answers middlecon requests for services of its own.
//!
//! It serves `example.echo` (the payload back) and `example.upper` (UTF-8 text in upper
//! case; anything else is an `app_error`), so any host of the fleet can call them:
//!
//! ```sh
//! # On a host, through its middlecon's local socket (callers there are trusted as local):
//! echo-runtime --socket /run/middlecon/api.sock
//! # Or from elsewhere, through a middlecon's TCP API with a host or admin certificate:
//! echo-runtime --api 10.0.0.5:7442 --cert admin.crt --key admin.key --ca ca.crt
//! # Then, from anywhere in the fleet:
//! dcos call --api 10.0.0.6:7442 HOST example.upper 'hello'     # HELLO
//! ```
//!
//! `Messaging.Serve` (`proto/middlecon/v1/middlecon.proto`) is one bidirectional stream:
//!
//! 1. the runtime sends `Register { services }`; middlecon answers `Registered`;
//! 2. middlecon delivers `Request { id, service, caller, deadline_unix_ms, payload }` and
//!    the runtime answers `Response { id, outcome, payload }`: many at once, in any order;
//! 3. `Cancel { id }` means the caller went away or its deadline passed: stop working on
//!    it (an answer would be ignored).
//!
//! The registrations last as long as the stream. This program ends it on SIGTERM/SIGINT
//! (calls still in progress then end `unreachable` for their callers).
//!
//! Stdout has one line per event, for people and tests: `serving SERVICES`,
//! `request ID SERVICE from CALLER`, `answered ID`, `cancelled ID`, `stopping`.
//! Exit status: 0 after a signal or when middlecon ends the stream cleanly; 1 when
//! middlecon cannot be reached or the stream breaks (today also when middlecon stops:
//! it drops its connections rather than ending Serve streams); 2 for bad usage.
#![forbid(unsafe_code)]

use anyhow::{bail, Context, Result};
use clap::Parser;
use dcos_core::tls::TlsFiles;
use middlecon_client::{pb, Channel, MessagingClient};
use pb::delivery::Msg as Delivered;
use pb::serve_message::Msg as Send;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::{AbortHandle, JoinSet};

/// The services this runtime registers.
const SERVICES: [&str; 2] = ["example.echo", "example.upper"];

/// Serve example.echo and example.upper through a middlecon (Messaging.Serve).
#[derive(Debug, Parser)]
#[command(name = "echo-runtime")]
struct Args {
    /// The middlecon's local API socket.
    #[arg(long, value_name = "PATH", conflicts_with = "api", required_unless_present = "api")]
    socket: Option<PathBuf>,
    /// A middlecon's TCP API (mTLS; needs --cert, --key and --ca of a host or admin).
    #[arg(long, value_name = "ADDR", requires_all = ["cert", "key", "ca"])]
    api: Option<SocketAddr>,
    #[arg(long, env = "DCOS_CERT", value_name = "FILE")]
    cert: Option<PathBuf>,
    #[arg(long, env = "DCOS_KEY", value_name = "FILE")]
    key: Option<PathBuf>,
    #[arg(long, env = "DCOS_CA", value_name = "FILE")]
    ca: Option<PathBuf>,
    /// Answer each request only after this long (e.g. 2s), to see deadlines and Cancel.
    #[arg(long, value_parser = humantime::parse_duration)]
    delay: Option<Duration>,
}

/// The answer to one request (run as a task of its own, so that it can be cancelled).
async fn answer(request: pb::Request, delay: Option<Duration>) -> pb::Response {
    if let Some(d) = delay {
        tokio::time::sleep(d).await;
    }
    let id = request.id;
    let ok = |payload| pb::Response { id, outcome: pb::Outcome::Ok as i32, payload, ..Default::default() };
    let app_error = |message: String| pb::Response {
        id,
        outcome: pb::Outcome::AppError as i32,
        message,
        ..Default::default()
    };
    match request.service.as_str() {
        "example.echo" => ok(request.payload),
        "example.upper" => match String::from_utf8(request.payload) {
            Ok(text) => ok(text.to_uppercase().into_bytes()),
            Err(_) => app_error("example.upper takes UTF-8 text".into()),
        },
        // Only what we registered is delivered; answer plainly all the same.
        other => app_error(format!("{other} is not served by this runtime")),
    }
}

async fn connect(args: &Args) -> Result<Channel> {
    let channel = match (&args.socket, args.api) {
        (Some(path), _) => middlecon_client::connect_unix(path).await,
        (None, Some(addr)) => {
            // clap made sure all three are given with --api.
            let files = TlsFiles {
                cert: args.cert.clone().unwrap_or_default(),
                key: args.key.clone().unwrap_or_default(),
                ca: args.ca.clone().unwrap_or_default(),
            };
            let identity = dcos_core::settings::load_identity(&files)?;
            middlecon_client::connect(addr, &identity).await
        }
        (None, None) => unreachable!("clap requires --socket or --api"),
    };
    // "cannot reach the local middlecon socket PATH: why" (or "the middlecon API at ADDR").
    Ok(channel?)
}

async fn run(args: Args) -> Result<()> {
    // Installed before registering, so a signal that comes early still ends us cleanly.
    let stop = dcos_core::daemon::shutdown_signal().context("installing signal handlers")?;
    tokio::pin!(stop);
    let mut client = MessagingClient::new(connect(&args).await?);

    // What we send goes through this channel; the first message registers our services.
    let (out, out_rx) = mpsc::channel::<pb::ServeMessage>(64);
    let services = SERVICES.iter().map(|s| s.to_string()).collect();
    // (The channel buffers it until the stream opens.)
    let register = pb::ServeMessage { msg: Some(Send::Register(pb::Register { services })) };
    out.send(register).await.context("the Serve stream closed")?;
    let mut deliveries = client
        .serve(tokio_stream::wrappers::ReceiverStream::new(out_rx))
        .await
        .context("Messaging.Serve refused")?
        .into_inner();

    // Requests being worked on, by id, so that a Cancel can stop them.
    let mut working: HashMap<u64, AbortHandle> = HashMap::new();
    let mut tasks: JoinSet<pb::Response> = JoinSet::new();
    loop {
        tokio::select! {
            _ = &mut stop => {
                // Returning drops the stream: middlecon withdraws our registrations.
                println!("stopping");
                return Ok(());
            }
            // A request was answered (cancelled tasks end with an error and are skipped).
            Some(Ok(response)) = tasks.join_next() => {
                if working.remove(&response.id).is_some() {
                    println!("answered {}", response.id);
                    let answer = pb::ServeMessage { msg: Some(Send::Response(response)) };
                    out.send(answer).await.context("the Serve stream closed")?;
                }
            }
            delivery = deliveries.message() => match delivery {
                Ok(Some(pb::Delivery { msg: Some(Delivered::Registered(r)) })) => {
                    println!("serving {}", r.services.join(" "));
                }
                Ok(Some(pb::Delivery { msg: Some(Delivered::Request(r)) })) => {
                    println!("request {} {} from {}", r.id, r.service, r.caller);
                    let id = r.id;
                    working.insert(id, tasks.spawn(answer(r, args.delay)));
                }
                Ok(Some(pb::Delivery { msg: Some(Delivered::Cancel(c)) })) => {
                    if let Some(task) = working.remove(&c.id) {
                        task.abort();
                        println!("cancelled {}", c.id);
                    }
                }
                // A kind of delivery newer than this program: nothing to do.
                Ok(Some(_)) => {}
                Ok(None) => {
                    eprintln!("echo-runtime: middlecon ended the stream");
                    return Ok(());
                }
                Err(status) => bail!("the Serve stream broke: {}: {}", status.code(), status.message()),
            },
        }
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::process::ExitCode {
    let args = Args::parse();
    match run(args).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("echo-runtime: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
