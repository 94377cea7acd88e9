//! CORS for dashboards in a browser (`--cors-origin`, SPEC section 9): which web origins
//! may read k2i's answers from a page, and the preflights they send first.
//!
//! - No origin configured (the default): nothing changes, no CORS header is ever sent.
//! - A request whose `Origin` is listed (or any, with `*`) gets
//!   `Access-Control-Allow-Origin` naming that origin and `Vary: Origin`; its preflight
//!   (`OPTIONS` with `Access-Control-Request-Method`) is answered here with 204, before
//!   authentication (a browser sends no credentials with a preflight), allowing `GET` and
//!   `PUT` with the `Authorization` and `Content-Type` headers.
//! - A preflight from an origin not listed gets 403 `origin_not_allowed`; any other request
//!   from it is served as usual but without CORS headers, so the browser withholds it.
//!
//! The page still needs an identity for everything but the public paths: a bearer token
//! (`--tokens`) or a client certificate the browser presents.

use crate::error::ApiError;
use axum::extract::{Request, State};
use axum::http::header::{
    ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS, ACCESS_CONTROL_ALLOW_ORIGIN,
    ACCESS_CONTROL_EXPOSE_HEADERS, ACCESS_CONTROL_MAX_AGE, ACCESS_CONTROL_REQUEST_METHOD, ORIGIN, VARY,
};
use axum::http::{HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::Router;
use std::sync::Arc;

/// How long a browser may keep a preflight's answer.
const MAX_AGE_S: &str = "600";

/// The web origins allowed to read k2i from a page.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Origins(Vec<String>);

impl Origins {
    /// Checks `list` (`scheme://host[:port]`, or `*` for any origin); the error says which
    /// entry is wrong and why.
    pub fn new(list: &[String]) -> Result<Origins, String> {
        let mut origins = Vec::new();
        for o in list.iter().map(|o| o.trim()).filter(|o| !o.is_empty()) {
            if o != "*" {
                let Some((scheme, host)) = o.split_once("://") else {
                    return Err(format!("{o:?} is not an origin like https://grafana.example:3000"));
                };
                let bad_host = host.is_empty() || host.contains(['/', '?', '#', ' ', '@']);
                let scheme = scheme.to_ascii_lowercase();
                if !matches!(scheme.as_str(), "http" | "https") || bad_host {
                    return Err(format!("{o:?} is not an origin like https://grafana.example:3000 (scheme, host and port only)"));
                }
            }
            // Browsers send origins in lower case.
            origins.push(o.to_ascii_lowercase());
        }
        Ok(Origins(origins))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn allows(&self, origin: &str) -> bool {
        self.0.iter().any(|o| o == "*" || o.eq_ignore_ascii_case(origin))
    }
}

/// `app` answering CORS for `origins`; `app` itself when there are none.
pub fn layer(app: Router, origins: Origins) -> Router {
    if origins.is_empty() {
        return app;
    }
    app.layer(middleware::from_fn_with_state(Arc::new(origins), cors))
}

async fn cors(State(origins): State<Arc<Origins>>, req: Request, next: Next) -> Response {
    let Some(origin) = req.headers().get(ORIGIN).cloned() else {
        return next.run(req).await;
    };
    let allowed = origin.to_str().is_ok_and(|o| origins.allows(o));
    let preflight =
        req.method() == Method::OPTIONS && req.headers().contains_key(ACCESS_CONTROL_REQUEST_METHOD);
    if preflight && !allowed {
        return ApiError::new(
            StatusCode::FORBIDDEN,
            "origin_not_allowed",
            format!("origin {origin:?} is not among k2i's --cors-origin"),
        )
        .into_response();
    }
    if !allowed {
        return next.run(req).await;
    }
    let mut resp = if preflight {
        let mut r = StatusCode::NO_CONTENT.into_response();
        let h = r.headers_mut();
        h.insert(ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static("GET, PUT"));
        h.insert(ACCESS_CONTROL_ALLOW_HEADERS, HeaderValue::from_static("authorization, content-type"));
        h.insert(ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static(MAX_AGE_S));
        r
    } else {
        let mut r = next.run(req).await;
        r.headers_mut().insert(ACCESS_CONTROL_EXPOSE_HEADERS, HeaderValue::from_static("retry-after"));
        r
    };
    resp.headers_mut().insert(ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    resp.headers_mut().append(VARY, HeaderValue::from_static("origin"));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::routing::get;
    use tower::ServiceExt;

    fn app(origins: &[&str]) -> Router {
        let list: Vec<String> = origins.iter().map(|o| o.to_string()).collect();
        layer(Router::new().route("/v1/host", get(|| async { "{}" })), Origins::new(&list).unwrap())
    }

    async fn send(app: &Router, method: &str, origin: Option<&str>, preflight: bool) -> Response {
        let mut req = Request::builder().method(method).uri("/v1/host");
        if let Some(o) = origin {
            req = req.header(ORIGIN, o);
        }
        if preflight {
            req = req.header(ACCESS_CONTROL_REQUEST_METHOD, "GET");
        }
        app.clone().oneshot(req.body(Body::empty()).unwrap()).await.unwrap()
    }

    fn allow_origin(r: &Response) -> Option<&str> {
        r.headers().get(ACCESS_CONTROL_ALLOW_ORIGIN).and_then(|v| v.to_str().ok())
    }

    #[tokio::test]
    async fn listed_origins_get_headers_and_preflights_others_get_none() {
        let a = app(&["https://grafana.example:3000", "http://localhost:7450"]);
        let r = send(&a, "OPTIONS", Some("https://grafana.example:3000"), true).await;
        assert_eq!(r.status(), StatusCode::NO_CONTENT);
        assert_eq!(allow_origin(&r), Some("https://grafana.example:3000"));
        assert_eq!(r.headers()[ACCESS_CONTROL_ALLOW_HEADERS], "authorization, content-type");
        let r = send(&a, "GET", Some("http://localhost:7450"), false).await;
        assert_eq!((r.status(), allow_origin(&r)), (StatusCode::OK, Some("http://localhost:7450")));
        assert_eq!(r.headers()[VARY], "origin");

        let r = send(&a, "OPTIONS", Some("https://evil.example"), true).await;
        assert_eq!((r.status(), allow_origin(&r)), (StatusCode::FORBIDDEN, None));
        let r = send(&a, "GET", Some("https://evil.example"), false).await;
        assert_eq!((r.status(), allow_origin(&r)), (StatusCode::OK, None));
        let r = send(&a, "GET", None, false).await;
        assert_eq!((r.status(), allow_origin(&r)), (StatusCode::OK, None));
    }

    #[tokio::test]
    async fn none_configured_means_no_cors_and_a_star_means_any() {
        let r = send(&app(&[]), "GET", Some("https://grafana.example"), false).await;
        assert_eq!((r.status(), allow_origin(&r)), (StatusCode::OK, None));
        let r = send(&app(&[]), "OPTIONS", Some("https://grafana.example"), true).await;
        assert_eq!((r.status(), allow_origin(&r)), (StatusCode::METHOD_NOT_ALLOWED, None));
        let r = send(&app(&["*"]), "OPTIONS", Some("https://anyone.example"), true).await;
        assert_eq!((r.status(), allow_origin(&r)), (StatusCode::NO_CONTENT, Some("https://anyone.example")));
    }

    #[test]
    fn only_origins_are_accepted() {
        for bad in ["grafana.example", "ftp://x", "https://x/path", "https://", "https://u@x"] {
            assert!(Origins::new(&[bad.to_string()]).is_err(), "{bad}");
        }
        let ok = Origins::new(&["HTTPS://Grafana.example:3000".into(), " ".into()]).unwrap();
        assert!(ok.allows("https://grafana.example:3000") && !ok.allows("https://grafana.example"));
    }
}
