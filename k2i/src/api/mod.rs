//! The HTTP endpoints of SPEC section 3, one module per resource. Handlers read the
//! sampler's current snapshot; none of them touches `/proc` for the whole table.

pub mod cache;
mod containers;
mod host;
pub mod openapi;
mod proc;
mod sysctl;

use crate::error::ApiError;
use crate::server::AppState;
use axum::body::Bytes;
use axum::handler::Handler;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde::Serialize;

pub use host::healthz;

/// Every route but `/healthz` (which the server mounts outside the in-flight caps).
pub fn routes() -> Router<AppState> {
    // A write: role and declared size checked before the body is read, then the body (and
    // the write) under a deadline.
    let write = tower::ServiceBuilder::new()
        .layer(axum::middleware::from_fn(crate::limits::write_gate))
        .layer(axum::error_handling::HandleErrorLayer::new(crate::limits::body_timed_out))
        .layer(tower::timeout::TimeoutLayer::new(crate::limits::BODY_TIMEOUT));
    Router::new()
        .route("/v1/host", get(host::summary))
        .route("/metrics", get(host::metrics))
        .route("/v1/openapi.json", get(openapi::document))
        .route("/v1/proc", get(proc::list))
        .route("/v1/proc/{pid}", get(proc::one))
        .route("/v1/proc/cmd/{name}", get(proc::by_cmd))
        .route("/v1/top", get(proc::top))
        .route("/v1/containers", get(containers::list))
        .route("/v1/containers/{id}", get(containers::one))
        .route("/v1/sysctl", get(sysctl::list))
        .route("/v1/sysctl/{*key}", get(sysctl::get).put(sysctl::put.layer(write)))
}

/// Serializes `value` as the JSON response body.
pub fn json<T: Serialize>(value: &T) -> Response {
    match to_json(value) {
        Ok(body) => json_bytes(body),
        Err(e) => e.into_response(),
    }
}

/// `value` as JSON bytes.
pub fn to_json<T: Serialize>(value: &T) -> Result<Bytes, ApiError> {
    serde_json::to_vec(value)
        .map(Bytes::from)
        .map_err(|e| ApiError::new(axum::http::StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))
}

/// A JSON response from bytes already rendered.
pub fn json_bytes(body: Bytes) -> Response {
    ([(CONTENT_TYPE, "application/json")], body).into_response()
}

/// The query string as ordered pairs; a malformed one is a 400.
pub fn query_pairs(raw: Option<String>) -> Result<Vec<(String, String)>, ApiError> {
    match raw {
        None => Ok(Vec::new()),
        Some(q) => serde_urlencoded::from_str(&q)
            .map_err(|e| ApiError::bad_request("bad_query", format!("malformed query string: {e}"))),
    }
}
