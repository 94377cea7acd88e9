//! `/healthz`, `/v1/host` and `/metrics`.

use super::json;
use crate::server::AppState;
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};

/// Liveness, without authentication.
#[utoipa::path(get, path = "/healthz", tag = "host",
    responses((status = 200, description = "The agent is up", body = Object, example = json!({"status": "ok"}))))]
pub async fn healthz() -> Response {
    json(&serde_json::json!({"status": "ok"}))
}

/// This host's summary, read from the host's counters (no pass over the processes).
#[utoipa::path(get, path = "/v1/host", tag = "host",
    responses((status = 200, body = dcos_core::model::HostSummary), (status = 401, body = dcos_core::model::ErrorBody)))]
pub async fn summary(State(state): State<AppState>) -> Response {
    json(&state.sampler.host())
}

/// Host and agent metrics in Prometheus text format: the host's figures read now, the
/// containers' from the last sample of the process table (no new one is taken for them).
#[utoipa::path(get, path = "/metrics", tag = "host",
    responses((status = 200, description = "Prometheus text exposition format", content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8")))]
pub async fn metrics(State(state): State<AppState>) -> Response {
    let body = state.metrics.render(&state.sampler.host(), &state.sampler.peek());
    ([(CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], body).into_response()
}
