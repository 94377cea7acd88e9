//! Services registered by `Messaging.Serve` streams, and how a call reaches one.
//!
//! - A runtime's stream is a [`Responder`]: the services it registered, its requests in
//!   flight (each waiting for the `Response` with its id) and the sender of its
//!   `Delivery` stream.
//! - [`Registry`] maps a service name to its responders. A call goes to the responder
//!   with the fewest requests in flight; when that one already has [`MAX_IN_FLIGHT`], the
//!   caller gets `resource_exhausted` at once (never a silent drop).
//! - A call whose future is dropped (caller gone, deadline passed) sends the responder a
//!   `Cancel` with its id. When the stream ends, its registrations end and its pending
//!   calls fail with `unreachable`.
//! - [`Registry`] is a [`Dispatch`], so the peer responder and local gRPC calls find these
//!   services after the built-in ones.

use crate::peer::{Dispatch, Outcome, PeerReply, ReplyFuture, Request};
use dcos_proto::v1 as pb;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::{mpsc, oneshot};

/// Requests in flight per responder stream before callers get `resource_exhausted`.
pub const MAX_IN_FLIGHT: usize = 1024;

/// What a Serve stream carries to its runtime (the gRPC layer wraps it in `Ok`).
pub type DeliveryTx = mpsc::Sender<Result<pb::Delivery, tonic::Status>>;

/// One runtime's `Serve` stream.
pub struct Responder {
    /// Who opened the stream (certificate name, or `local`).
    pub owner: String,
    tx: DeliveryTx,
    in_flight: AtomicUsize,
    next_id: AtomicU64,
    pending: Mutex<HashMap<u64, oneshot::Sender<pb::Response>>>,
}

impl Responder {
    pub fn new(owner: impl Into<String>, tx: DeliveryTx) -> Arc<Responder> {
        Arc::new(Responder {
            owner: owner.into(),
            tx,
            in_flight: AtomicUsize::new(0),
            next_id: AtomicU64::new(1),
            pending: Mutex::default(),
        })
    }

    /// Hands the runtime's answer to the call waiting for it (unknown ids are ignored:
    /// the call was cancelled or timed out).
    pub fn complete(&self, response: pb::Response) {
        let waiter = self.pending.lock().unwrap_or_else(|e| e.into_inner()).remove(&response.id);
        if let Some(w) = waiter {
            let _ = w.send(response);
        }
    }

    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }
}

/// Services registered by Serve streams on this host.
#[derive(Default)]
pub struct Registry {
    by_service: Mutex<BTreeMap<String, Vec<Arc<Responder>>>>,
}

impl Registry {
    pub fn new() -> Arc<Registry> {
        Arc::new(Registry::default())
    }

    /// `responder` answers `service` from now on.
    pub fn register(&self, service: &str, responder: &Arc<Responder>) {
        let mut map = self.by_service.lock().unwrap_or_else(|e| e.into_inner());
        let list = map.entry(service.to_string()).or_default();
        if !list.iter().any(|r| Arc::ptr_eq(r, responder)) {
            list.push(responder.clone());
        }
    }

    /// Ends every registration of `responder` (its stream ended).
    pub fn remove(&self, responder: &Arc<Responder>) {
        let mut map = self.by_service.lock().unwrap_or_else(|e| e.into_inner());
        map.retain(|_, list| {
            list.retain(|r| !Arc::ptr_eq(r, responder));
            !list.is_empty()
        });
        // Pending calls see their sender dropped: `unreachable`.
        responder.pending.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }

    /// The names served by Serve streams.
    pub fn services(&self) -> Vec<String> {
        self.by_service.lock().unwrap_or_else(|e| e.into_inner()).keys().cloned().collect()
    }

    /// The responder of `service` with the fewest requests in flight.
    fn pick(&self, service: &str) -> Option<Arc<Responder>> {
        let map = self.by_service.lock().unwrap_or_else(|e| e.into_inner());
        map.get(service)?.iter().min_by_key(|r| r.in_flight()).cloned()
    }
}

fn reply(outcome: Outcome, message: impl Into<String>) -> PeerReply {
    PeerReply { outcome: outcome as i32, message: message.into(), ..PeerReply::default() }
}

/// Undoes a delivery's bookkeeping when its call ends, and tells the runtime to stop when
/// the call ended without an answer.
struct InFlight {
    responder: Arc<Responder>,
    id: u64,
    answered: bool,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.responder.in_flight.fetch_sub(1, Ordering::Relaxed);
        if !self.answered {
            self.responder.pending.lock().unwrap_or_else(|e| e.into_inner()).remove(&self.id);
            let cancel = pb::Delivery { msg: Some(pb::delivery::Msg::Cancel(pb::Cancel { id: self.id })) };
            // A full stream cannot take the Cancel either; the runtime then sees the
            // reply refused when it answers (unknown id).
            let _ = self.responder.tx.try_send(Ok(cancel));
        }
    }
}

impl Dispatch for Registry {
    fn dispatch(&self, request: Request) -> Option<ReplyFuture> {
        let responder = self.pick(&request.service)?;
        let service = request.service.clone();
        let claimed = responder.in_flight.fetch_add(1, Ordering::Relaxed);
        let id = responder.next_id.fetch_add(1, Ordering::Relaxed);
        let mut guard = InFlight { responder: responder.clone(), id, answered: true };
        if claimed >= MAX_IN_FLIGHT {
            return Some(Box::pin(async move {
                drop(guard);
                reply(
                    Outcome::ResourceExhausted,
                    format!("{service}: {MAX_IN_FLIGHT} requests already in flight on its responder"),
                )
            }));
        }
        let (tx, rx) = oneshot::channel();
        responder.pending.lock().unwrap_or_else(|e| e.into_inner()).insert(id, tx);
        let delivery = pb::Delivery {
            msg: Some(pb::delivery::Msg::Request(pb::Request {
                id,
                service: service.clone(),
                caller: request.caller.name.clone(),
                deadline_unix_ms: crate::peer::unix_ms(request.deadline),
                headers: request.headers,
                payload: request.payload,
            })),
        };
        if responder.tx.try_send(Ok(delivery)).is_err() {
            responder.pending.lock().unwrap_or_else(|e| e.into_inner()).remove(&id);
            return Some(Box::pin(async move {
                drop(guard);
                reply(Outcome::ResourceExhausted, format!("{service}: its responder's stream is full"))
            }));
        }
        guard.answered = false;
        Some(Box::pin(async move {
            let result = rx.await;
            guard.answered = true;
            drop(guard);
            match result {
                Ok(r) => {
                    let outcome = match Outcome::try_from(r.outcome) {
                        Ok(Outcome::Ok) | Ok(Outcome::Unspecified) => Outcome::Ok,
                        Ok(other) => other,
                        Err(_) => Outcome::AppError,
                    };
                    PeerReply {
                        outcome: outcome as i32,
                        message: r.message,
                        headers: r.headers,
                        payload: r.payload,
                    }
                }
                Err(_) => reply(
                    Outcome::Unreachable,
                    format!("{service}: the responder's Serve stream ended before it answered"),
                ),
            }
        }))
    }
}
