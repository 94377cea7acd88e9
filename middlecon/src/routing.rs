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
/// Room kept free on a stream for acknowledgements.
const SLACK: usize = 64;
/// The capacity of a Serve stream's delivery queue: requests are only queued while
/// `MAX_IN_FLIGHT + SLACK` places stay free, so the `Cancel` of every request in flight
/// always fits, even when the runtime has stopped reading.
pub const STREAM_CAPACITY: usize = 2 * MAX_IN_FLIGHT + 2 * SLACK;

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
            // There is room: requests are only queued while enough places stay free for
            // the cancels of all in flight (see STREAM_CAPACITY).
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
        if responder.tx.capacity() <= MAX_IN_FLIGHT + SLACK || responder.tx.try_send(Ok(delivery)).is_err() {
            responder.pending.lock().unwrap_or_else(|e| e.into_inner()).remove(&id);
            return Some(Box::pin(async move {
                drop(guard);
                reply(
                    Outcome::ResourceExhausted,
                    format!("{service}: its responder is not reading its stream (queue full)"),
                )
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
                        ..PeerReply::default()
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

#[cfg(test)]
mod tests {
    use super::*;
    use dcos_core::tls::PeerIdentity;
    use dcos_core::Role;
    use std::time::{Duration, SystemTime};

    fn request(service: &str) -> Request {
        Request {
            caller: PeerIdentity { name: "tester".into(), role: Role::Host, not_after: i64::MAX },
            service: service.into(),
            deadline: SystemTime::now() + Duration::from_secs(5),
            headers: BTreeMap::new(),
            payload: b"x".to_vec(),
        }
    }

    type Rx = mpsc::Receiver<Result<pb::Delivery, tonic::Status>>;

    fn stream(owner: &str) -> (Arc<Responder>, Rx) {
        let (tx, rx) = mpsc::channel(STREAM_CAPACITY);
        (Responder::new(owner, tx), rx)
    }

    fn next(rx: &mut Rx) -> pb::delivery::Msg {
        rx.try_recv().expect("a delivery").expect("not an error").msg.expect("a message")
    }

    #[tokio::test]
    async fn fewest_in_flight_gets_the_request_and_answers_come_back() {
        let registry = Registry::new();
        assert!(registry.dispatch(request("s")).is_none(), "nobody serves s yet");
        let (a, mut a_rx) = stream("a");
        let (b, mut b_rx) = stream("b");
        registry.register("s", &a);
        registry.register("s", &b);
        let first = registry.dispatch(request("s")).unwrap();
        let second = registry.dispatch(request("s")).unwrap();
        let pb::delivery::Msg::Request(ra) = next(&mut a_rx) else { panic!("a gets a request") };
        let pb::delivery::Msg::Request(rb) = next(&mut b_rx) else { panic!("b gets the second") };
        assert_eq!((a.in_flight(), b.in_flight()), (1, 1));
        a.complete(pb::Response {
            id: ra.id,
            outcome: Outcome::Ok as i32,
            payload: b"A".to_vec(),
            ..Default::default()
        });
        b.complete(pb::Response {
            id: rb.id,
            outcome: Outcome::AppError as i32,
            message: "nope".into(),
            ..Default::default()
        });
        let (r1, r2) = (first.await, second.await);
        assert_eq!((r1.outcome(), r1.payload.as_slice()), (Outcome::Ok, b"A".as_slice()));
        assert_eq!((r2.outcome(), r2.message.as_str()), (Outcome::AppError, "nope"));
        assert_eq!((a.in_flight(), b.in_flight()), (0, 0));
    }

    #[tokio::test]
    async fn a_full_responder_means_resource_exhausted_at_once_and_drops_cancel() {
        let registry = Registry::new();
        let (a, mut rx) = stream("a");
        registry.register("s", &a);
        let held: Vec<_> = (0..MAX_IN_FLIGHT).map(|_| registry.dispatch(request("s")).unwrap()).collect();
        let over = registry.dispatch(request("s")).unwrap().await;
        assert_eq!(over.outcome(), Outcome::ResourceExhausted, "{over:?}");
        assert_eq!(a.in_flight(), MAX_IN_FLIGHT);
        let first_id = match next(&mut rx) {
            pb::delivery::Msg::Request(r) => r.id,
            other => panic!("{other:?}"),
        };
        // Callers that give up cancel their requests on the runtime.
        drop(held);
        assert_eq!(a.in_flight(), 0);
        let mut cancels = Vec::new();
        while let Ok(Ok(d)) = rx.try_recv() {
            if let Some(pb::delivery::Msg::Cancel(c)) = d.msg {
                cancels.push(c.id);
            }
        }
        assert_eq!(cancels.len(), MAX_IN_FLIGHT);
        assert!(cancels.contains(&first_id));
    }

    #[tokio::test]
    async fn a_runtime_that_stops_reading_gets_no_more_requests_and_cancels_still_fit() {
        let registry = Registry::new();
        let (a, mut rx) = stream("a");
        registry.register("s", &a);
        // Calls come and go (each delivered, then cancelled) while nothing is read.
        let mut exhausted = 0;
        for _ in 0..3 * MAX_IN_FLIGHT {
            let mut r = registry.dispatch(request("s")).unwrap();
            // Polled once: an exhausted call answers at once; a delivered one is pending
            // and is dropped (cancelled).
            let now = tokio::select! {
                biased;
                reply = &mut r => Some(reply),
                _ = std::future::ready(()) => None,
            };
            if let Some(reply) = now {
                assert_eq!(reply.outcome(), Outcome::ResourceExhausted, "{reply:?}");
                exhausted += 1;
            }
        }
        assert!(exhausted > 0, "the queue stops taking requests");
        let (mut requests, mut cancels) = (0, 0);
        while let Ok(Ok(d)) = rx.try_recv() {
            match d.msg {
                Some(pb::delivery::Msg::Request(_)) => requests += 1,
                Some(pb::delivery::Msg::Cancel(_)) => cancels += 1,
                _ => {}
            }
        }
        assert_eq!(requests, cancels, "every delivered request that was dropped got its Cancel");
    }

    #[tokio::test]
    async fn registrations_end_with_the_stream() {
        let registry = Registry::new();
        let (a, _rx) = stream("a");
        registry.register("s", &a);
        let pending = registry.dispatch(request("s")).unwrap();
        registry.remove(&a);
        let r = pending.await;
        assert_eq!(r.outcome(), Outcome::Unreachable, "{r:?}");
        assert!(registry.dispatch(request("s")).is_none(), "s is no longer served");
        assert!(registry.services().is_empty());
    }
}
