//! The one error type of the HTTP API: a status, a stable machine code and a message for
//! a person, rendered as `{"error": {"code", "message"}}`.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use dcos_core::model::{ErrorBody, ErrorDetail};

#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub position: Option<usize>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError { status, code, message: message.into(), position: None }
    }
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, code, message)
    }
    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
    }
    pub fn forbidden(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, "forbidden", message)
    }
    pub fn unauthenticated(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, code, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code.to_string(),
                message: self.message,
                position: self.position,
            },
        };
        let mut resp = (self.status, axum::Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer realm=\"k2i\""),
            );
        }
        if self.status == StatusCode::TOO_MANY_REQUESTS {
            resp.headers_mut()
                .insert(axum::http::header::RETRY_AFTER, axum::http::HeaderValue::from_static("1"));
        }
        resp
    }
}

/// Work moved to a blocking thread (`spawn_blocking`) that panicked or was cancelled.
impl From<tokio::task::JoinError> for ApiError {
    fn from(e: tokio::task::JoinError) -> ApiError {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string())
    }
}

impl From<dcos_query::QueryError> for ApiError {
    fn from(e: dcos_query::QueryError) -> ApiError {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            code: "bad_query",
            message: e.to_string(),
            position: e.position,
        }
    }
}

impl From<crate::sysctl::SysctlError> for ApiError {
    fn from(e: crate::sysctl::SysctlError) -> ApiError {
        use crate::sysctl::SysctlError as E;
        let (status, code) = match &e {
            E::BadKey(_) => (StatusCode::BAD_REQUEST, "bad_key"),
            E::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            E::Unreadable { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "unreadable"),
            E::Rejected { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_value"),
            E::TooLong(_) => (StatusCode::PAYLOAD_TOO_LARGE, "too_large"),
            E::ControlCharacter(_) => (StatusCode::BAD_REQUEST, "bad_value"),
        };
        ApiError::new(status, code, e.to_string())
    }
}
