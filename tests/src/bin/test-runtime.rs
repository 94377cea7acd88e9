//! A runtime for the end-to-end tests, as a process of its own (so a test can kill it
//! mid-call): it opens `Messaging.Serve` on a middlecon's Unix socket, registers the
//! services named on the command line and reports on stdout, one line each, what it sees:
//! `registered`, `request ID SERVICE`, `cancel ID`.
//!
//! `test-runtime SOCKET SERVICE...`: a service whose name ends in `.slow` never answers
//! (its calls end by deadline, cancellation or this process dying); every other one
//! answers `ok` with the request's payload.
#![forbid(unsafe_code)]

use anyhow::{bail, Context, Result};
use dcos_proto::v1 as pb;
use std::io::Write;
use tokio::sync::mpsc;

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((socket, services)) = args.split_first().filter(|(_, s)| !s.is_empty()) else {
        bail!("usage: test-runtime SOCKET SERVICE...");
    };
    let channel = middlecon_client::connect_unix(socket.as_ref()).await?;
    let mut client = pb::messaging_client::MessagingClient::new(channel);
    let (tx, rx) = mpsc::channel::<pb::ServeMessage>(4096);
    let register = pb::Register { services: services.to_vec() };
    tx.send(pb::ServeMessage { msg: Some(pb::serve_message::Msg::Register(register)) }).await?;
    let mut deliveries =
        client.serve(tokio_stream::wrappers::ReceiverStream::new(rx)).await.context("Serve")?.into_inner();
    while let Some(d) = deliveries.message().await.context("delivery stream")? {
        match d.msg {
            Some(pb::delivery::Msg::Registered(_)) => say("registered"),
            Some(pb::delivery::Msg::Request(r)) => {
                say(&format!("request {} {}", r.id, r.service));
                if !r.service.ends_with(".slow") {
                    let resp = pb::Response {
                        id: r.id,
                        outcome: pb::Outcome::Ok as i32,
                        payload: r.payload,
                        ..Default::default()
                    };
                    tx.send(pb::ServeMessage { msg: Some(pb::serve_message::Msg::Response(resp)) }).await?;
                }
            }
            Some(pb::delivery::Msg::Cancel(c)) => say(&format!("cancel {}", c.id)),
            None => {}
        }
    }
    Ok(())
}
