//! What one client may hold of the server: requests in flight per identity, and the gate in
//! front of every write (role and declared body size checked before a byte of the body is
//! read, the body itself under a deadline).
//!
//! The server-wide cap is tower's (`GlobalConcurrencyLimitLayer` behind `LoadShedLayer`, in
//! [`crate::server::router`]); tower has no limit keyed by caller, so the per-identity one is
//! here: a count per identity, taken when a request starts and given back when its answer is
//! ready.

use crate::auth::Caller;
use crate::error::ApiError;
use axum::extract::{Request, State};
use axum::http::header::CONTENT_LENGTH;
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Largest request body accepted (only `PUT /v1/sysctl` has one).
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// A request body must have arrived completely this long after its headers.
pub const BODY_TIMEOUT: Duration = Duration::from_secs(10);
/// A refused write's body is read and dropped, up to this much, after the answer (so the
/// client, still sending, reads the answer instead of a reset); a larger one is not.
pub const DRAIN_BYTES: u64 = 1024 * 1024;
/// Above this many requests in flight, new ones get 429 (`/healthz` is never counted).
pub const MAX_IN_FLIGHT: usize = 512;
/// Above this many requests in flight from one identity, its new ones get 429.
pub const MAX_IN_FLIGHT_PER_IDENTITY: usize = 16;

/// Requests in flight, by identity (`via:name`). An identity with none has no entry.
#[derive(Debug, Default)]
pub struct PerIdentity {
    counts: Mutex<HashMap<String, usize>>,
}

/// One request's place in its identity's budget; given back when dropped.
pub struct Slot {
    owner: Arc<PerIdentity>,
    key: String,
}

impl PerIdentity {
    /// A place for `key` if it has fewer than `max` requests in flight.
    pub fn try_enter(self: &Arc<Self>, key: &str, max: usize) -> Option<Slot> {
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        let n = counts.entry(key.to_string()).or_insert(0);
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(Slot { owner: self.clone(), key: key.to_string() })
    }

    /// Requests in flight for `key`.
    pub fn in_flight(&self, key: &str) -> usize {
        self.counts.lock().unwrap_or_else(|e| e.into_inner()).get(key).copied().unwrap_or(0)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut counts = self.owner.counts.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = counts.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                counts.remove(&self.key);
            }
        }
    }
}

/// Middleware after authentication: 429 once the caller has
/// [`MAX_IN_FLIGHT_PER_IDENTITY`] requests in flight. Public routes (no caller) pass.
pub async fn per_identity(State(limits): State<Arc<PerIdentity>>, req: Request, next: Next) -> Response {
    let Some(caller) = req.extensions().get::<Caller>() else {
        return next.run(req).await;
    };
    let key = format!("{}:{}", caller.via, caller.name);
    match limits.try_enter(&key, MAX_IN_FLIGHT_PER_IDENTITY) {
        Some(_slot) => next.run(req).await,
        None => overloaded(format!(
            "{} has {MAX_IN_FLIGHT_PER_IDENTITY} requests in flight, the most one identity may have; \
             retry shortly",
            caller.name
        ))
        .into_response(),
    }
}

/// 429 `overloaded` (with `Retry-After: 1`).
pub fn overloaded(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::TOO_MANY_REQUESTS, "overloaded", message)
}

/// Middleware in front of a write handler, before its body is read: 403 unless the caller
/// may write, 413 at once when `Content-Length` is above [`MAX_BODY_BYTES`].
pub async fn write_gate(req: Request, next: Next) -> Result<Response, ApiError> {
    let declared = req.headers().get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    let refusal = match req.extensions().get::<Caller>() {
        None => Some(ApiError::unauthenticated(
            "unauthenticated",
            "writes need a client certificate or a bearer token",
        )),
        Some(caller) => caller.require_write("writing a sysctl").err(),
    };
    let refusal = refusal.or_else(|| declared.filter(|n| *n > MAX_BODY_BYTES as u64).map(|_| too_large()));
    match refusal {
        None => Ok(next.run(req).await),
        Some(e) => {
            if declared.is_none_or(|n| n <= DRAIN_BYTES) {
                tokio::spawn(drain(req.into_body()));
            }
            Err(e)
        }
    }
}

/// Reads and drops a refused request's body (at most [`DRAIN_BYTES`], within
/// [`BODY_TIMEOUT`]) while the answer goes out, so that closing the connection does not
/// reset it under a client still sending.
async fn drain(body: axum::body::Body) {
    use http_body_util::BodyExt;
    let mut body = body;
    let mut seen = 0u64;
    let _ = tokio::time::timeout(BODY_TIMEOUT, async {
        while let Some(Ok(frame)) = body.frame().await {
            seen += frame.data_ref().map_or(0, |d| d.len() as u64);
            if seen > DRAIN_BYTES {
                break;
            }
        }
    })
    .await;
}

/// 413 `too_large`.
pub fn too_large() -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "too_large",
        format!("body larger than {MAX_BODY_BYTES} bytes"),
    )
}

/// What `tower::timeout` around a write handler ends with: its body did not arrive in time.
pub async fn body_timed_out(_: tower::BoxError) -> ApiError {
    ApiError::new(
        StatusCode::REQUEST_TIMEOUT,
        "body_timeout",
        format!("the request body did not arrive within {} s", BODY_TIMEOUT.as_secs()),
    )
}

/// What the server-wide cap (tower's load shedding) ends with.
pub async fn shed(_: tower::BoxError) -> ApiError {
    overloaded("too many requests in flight; retry shortly")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_identity_has_its_own_budget_and_gets_it_back() {
        let limits = Arc::new(PerIdentity::default());
        let held: Vec<Slot> = (0..3).map(|_| limits.try_enter("cert:a", 3).unwrap()).collect();
        assert!(limits.try_enter("cert:a", 3).is_none(), "a is at its limit");
        let b = limits.try_enter("cert:b", 3).expect("b is not held back by a");
        assert_eq!(limits.in_flight("cert:a"), 3);
        drop(held);
        drop(b);
        assert_eq!(limits.in_flight("cert:a"), 0);
        assert!(limits.counts.lock().unwrap().is_empty(), "no entry is kept for an idle identity");
        assert!(limits.try_enter("cert:a", 3).is_some());
    }
}
