//! Who is asking: the verified client certificate of the connection, or else a bearer
//! token from the tokens file. Every route but `/healthz` and the OpenAPI document
//! requires one; a token, when sent, must be valid even beside a certificate (which then
//! names the caller); writes require `admin` (checked before the body is read,
//! `limits::write_gate`, and by the handlers through [`Caller`]).
//!
//! Relayed requests (SPEC section 8): a `host` certificate may ask on an operator's behalf
//! ([`dcos_core::role::ON_BEHALF_OF_HEADER`] and its role header). The request then has the
//! operator's role, never the host's, is logged naming both, and may not write. The headers
//! from any other identity are refused (403), never silently ignored.

use crate::error::ApiError;
use crate::server::AppState;
use axum::extract::{Request, State};
use axum::http::header::AUTHORIZATION;
use axum::middleware::Next;
use axum::response::Response;
use dcos_core::tls::PeerIdentity;
use dcos_core::Role;
use std::net::SocketAddr;

/// Set on every request by the connection loop.
#[derive(Debug, Clone)]
pub struct ConnInfo {
    pub remote: SocketAddr,
    /// The client certificate's identity, when one was presented (and verified by TLS).
    pub peer: Option<PeerIdentity>,
}

/// The authenticated caller, for handlers.
#[derive(Debug, Clone)]
pub struct Caller {
    pub name: String,
    pub role: Role,
    /// `cert`, `token` or `relay`.
    pub via: &'static str,
    /// The host that relayed the request for the operator named in `name`, if one did.
    pub relay: Option<String>,
}

impl Caller {
    /// 403 unless the caller may change state.
    pub fn require_write(&self, what: &str) -> Result<(), ApiError> {
        if let Some(relay) = &self.relay {
            return Err(ApiError::forbidden(format!(
                "{what} is never relayed: {relay} asked on behalf of {}; ask this host directly",
                self.name
            )));
        }
        if self.role.can_write() {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!(
                "{what} needs the admin role; {} has the {} role",
                self.name, self.role
            )))
        }
    }
}

/// Paths anyone may read without an identity.
pub fn is_public(path: &str) -> bool {
    matches!(path, "/healthz" | "/v1/openapi.json")
}

/// Middleware: attaches a [`Caller`] or answers 401.
pub async fn authenticate(
    State(state): State<AppState>,
    mut req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    if is_public(req.uri().path()) {
        return Ok(next.run(req).await);
    }
    let conn = req.extensions().get::<ConnInfo>().cloned();
    // A bearer token, when one is given, must be valid, certificate or not: a client that
    // sends a wrong one is told so rather than let in on its certificate.
    let token = match req.headers().get(AUTHORIZATION) {
        Some(value) => {
            let token = value
                .to_str()
                .ok()
                .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
                .map(str::trim)
                .ok_or_else(|| {
                    state.metrics.auth_failure("malformed_authorization");
                    ApiError::unauthenticated(
                        "bad_authorization",
                        "Authorization header must be `Bearer <token>`",
                    )
                })?;
            let grant = state.tokens.lookup(token).ok_or_else(|| {
                state.metrics.auth_failure("invalid_token");
                ApiError::unauthenticated("invalid_token", "the bearer token is not valid on this host")
            })?;
            Some(Caller { name: grant.label.clone(), role: grant.role, via: "token", relay: None })
        }
        None => None,
    };
    let caller = match (conn.and_then(|c| c.peer), token) {
        (Some(peer), _) => Caller { name: peer.name, role: peer.role, via: "cert", relay: None },
        (None, Some(token)) => token,
        (None, None) => {
            state.metrics.auth_failure("no_identity");
            return Err(ApiError::unauthenticated(
                "unauthenticated",
                "present a client certificate issued by the fleet CA, or a bearer token",
            ));
        }
    };
    let caller = on_behalf_of(&req, caller)?;
    req.extensions_mut().insert(caller);
    Ok(next.run(req).await)
}

/// The operator a relay asks for, when the request names one: only a `host` certificate may
/// (403 otherwise); the request then carries the operator's name and role and the relay's
/// name, and is logged naming both.
fn on_behalf_of(req: &Request, caller: Caller) -> Result<Caller, ApiError> {
    use dcos_core::role::{ON_BEHALF_OF_HEADER, ON_BEHALF_OF_ROLE_HEADER};
    let Some(operator) = req.headers().get(ON_BEHALF_OF_HEADER) else {
        return Ok(caller);
    };
    if caller.via != "cert" || caller.role != Role::Host {
        return Err(ApiError::forbidden(format!(
            "only a host certificate may ask on behalf of someone ({ON_BEHALF_OF_HEADER}); {} has the {} role",
            caller.name, caller.role
        )));
    }
    let bad =
        |what: &str| ApiError::bad_request("bad_relay", format!("{what} must name the operator and a role"));
    let operator =
        operator.to_str().ok().filter(|o| !o.is_empty()).ok_or_else(|| bad(ON_BEHALF_OF_HEADER))?;
    let role = req
        .headers()
        .get(ON_BEHALF_OF_ROLE_HEADER)
        .and_then(|r| r.to_str().ok()?.parse::<Role>().ok())
        .ok_or_else(|| bad(ON_BEHALF_OF_ROLE_HEADER))?;
    tracing::info!(
        target: "relay",
        relay = %caller.name,
        operator = %operator,
        role = %role,
        method = %req.method(),
        path = %req.uri().path(),
        "relayed request: {} for {operator} ({role})",
        caller.name
    );
    Ok(Caller { name: operator.to_string(), role, via: "relay", relay: Some(caller.name) })
}
