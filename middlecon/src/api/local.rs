//! The lean local protocol on the Unix socket ([`dcos_proto::local`]): `Messaging.Call`
//! without HTTP/2, for local callers, routed exactly as the gRPC `Call` is
//! ([`Api::route`]): same access rules (the caller is local), deadlines and outcomes. Each
//! call runs in a task of its own; a `Cancel` frame, or the connection's end, drops it, as
//! a cancelled gRPC call is dropped. Replies queued at once leave in one write. At most
//! [`local::MAX_IN_FLIGHT`] calls per connection, replies not yet written included; a call
//! over that is answered `resource_exhausted`. A frame that does not read or decode (or a
//! reply from the client) closes the connection: the client is broken, and its calls are
//! dropped.

use super::Api;
use crate::access::{Caller, LOCAL};
use dcos_proto::local::{self, Frame, Kind};
use dcos_proto::v1 as pb;
use prost::Message;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::net::UnixStream;
use tokio::sync::mpsc;
use tokio::task::AbortHandle;

/// Calls in flight on one connection, by id.
type InFlight = Arc<Mutex<HashMap<u64, AbortHandle>>>;

fn lock(m: &InFlight) -> std::sync::MutexGuard<'_, HashMap<u64, AbortHandle>> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Serves one connection whose preface was read, until it ends, a frame is unreadable or
/// the daemon stops; its calls still in flight are then dropped.
pub async fn serve(io: UnixStream, api: Api) {
    let (rd, wr) = io.into_split();
    let mut rd = tokio::io::BufReader::new(rd);
    let (tx, rx) = mpsc::channel(local::MAX_IN_FLIGHT + 1);
    tokio::spawn(local::write_frames(rx, wr));
    let in_flight: InFlight = Arc::default();
    let mut stopping = api.stopping.clone();
    loop {
        let frame = tokio::select! {
            f = local::read_frame(&mut rd) => f,
            _ = stopping.wait_for(|s| *s) => break,
        };
        match frame {
            Ok(Some(Frame { kind: Kind::Call, id, body })) => {
                let call = match pb::CallRequest::decode(body.as_slice()) {
                    Ok(call) => call,
                    Err(e) => {
                        tracing::debug!("local protocol: undecodable CallRequest ({e}); closing");
                        break;
                    }
                };
                if lock(&in_flight).len() < local::MAX_IN_FLIGHT {
                    start(id, call, &api, &tx, &in_flight);
                    continue;
                }
                let reply = pb::CallReply {
                    outcome: pb::Outcome::ResourceExhausted as i32,
                    message: format!("{} calls already in flight on this connection", local::MAX_IN_FLIGHT),
                    ..Default::default()
                };
                // The queue has room for it unless the client reads none of its replies.
                if tx.try_send(local::frame(Kind::Reply, id, Some(&reply))).is_err() {
                    tracing::debug!("local protocol: the client reads no replies; closing");
                    break;
                }
            }
            Ok(Some(Frame { kind: Kind::Cancel, id, .. })) => {
                if let Some(call) = lock(&in_flight).remove(&id) {
                    call.abort();
                }
            }
            Ok(Some(Frame { kind: Kind::Reply, .. })) => {
                tracing::debug!("local protocol: a client sent a reply; closing");
                break;
            }
            Ok(None) => break,
            Err(e) => {
                tracing::debug!("local protocol: {e}; closing");
                break;
            }
        }
    }
    for (_, call) in lock(&in_flight).drain() {
        call.abort();
    }
}

/// Runs call `id` in a task of its own, its reply queued on `tx` unless it is cancelled
/// first; it counts as in flight until its reply is queued.
fn start(id: u64, call: pb::CallRequest, api: &Api, tx: &mpsc::Sender<Vec<u8>>, in_flight: &InFlight) {
    let (api, tx, done) = (api.clone(), tx.clone(), in_flight.clone());
    // The task removes itself when done; holding the lock while spawning means it cannot
    // do so before it is inserted.
    let mut calls = lock(in_flight);
    let task = tokio::spawn(async move {
        let caller = Caller { name: LOCAL.into(), role: None };
        let reply = api.route(&caller, call).await;
        let _ = tx.send(local::frame(Kind::Reply, id, Some(&reply))).await;
        lock(&done).remove(&id);
    });
    calls.insert(id, task.abort_handle());
}
