//! The HTTPS server: the router, the middleware stack, and the accept loop that terminates
//! TLS and hands each connection's verified identity to the handlers.
//!
//! [`serve`] takes its listener and shutdown signal as arguments, so tests run it in-process
//! on port 0.

use crate::api;
use crate::auth::{self, ConnInfo};
use crate::error::ApiError;
use crate::limits::{self, PerIdentity};
use crate::metrics::Metrics;
use crate::sampler::SamplerHandle;
use crate::sysctl::{AllowList, Sysctl};
use crate::wire::JsonErrors;
use axum::error_handling::HandleErrorLayer;
use axum::extract::{MatchedPath, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::Router;
use dcos_core::tokens::Tokens;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tower::limit::GlobalConcurrencyLimitLayer;
use tower::ServiceExt;

pub use crate::limits::{MAX_BODY_BYTES, MAX_IN_FLIGHT};
/// A client has this long to finish the TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Request headers must arrive within this (and an idle keep-alive connection is closed
/// once it has waited this long for the next request).
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// As [`HEADER_TIMEOUT`] on connections from `host` certificates: a datacenter relay (SPEC
/// section 8) keeps its connection to every k2i of its datacenter open between requests.
pub const HOST_IDLE_TIMEOUT: Duration = Duration::from_secs(120);

/// What every handler may reach: one shared [`Host`], so that the clone each layer of the
/// router takes per request is one reference count.
#[derive(Clone)]
pub struct AppState(Arc<Host>);

/// The served host's state behind [`AppState`].
pub struct Host {
    pub sampler: SamplerHandle,
    pub name: Arc<str>,
    pub dc: Arc<str>,
    pub tokens: Arc<Tokens>,
    pub sysctl: Sysctl,
    pub sysctl_allow: Arc<AllowList>,
    pub audit_log: Option<Arc<PathBuf>>,
    pub metrics: Arc<Metrics>,
    /// Answers to repeated identical requests against the current snapshot.
    pub responses: Arc<crate::api::cache::ResponseCache>,
    /// Requests in flight per identity.
    pub identities: Arc<PerIdentity>,
    /// Set once the server is shutting down: answers that keep coming (`/v1/top?watch=true`)
    /// end.
    pub closing: Arc<tokio::sync::watch::Sender<bool>>,
    /// How long after its sample a `/v1/top?watch=true` document goes out: zero on a host.
    /// Hosts simulated in one process share its sampler (`fleet-bench`); each is given its
    /// share of the interval, so their documents come spread over it as independent hosts'
    /// clocks spread them, not all in the same millisecond.
    pub watch_offset: Duration,
}

impl std::ops::Deref for AppState {
    type Target = Host;
    fn deref(&self) -> &Host {
        &self.0
    }
}

impl AppState {
    pub fn new(
        sampler: SamplerHandle,
        name: &str,
        dc: &str,
        tokens: Tokens,
        sysctl_allow: AllowList,
        audit_log: Option<PathBuf>,
    ) -> AppState {
        AppState(Arc::new(Host {
            sampler,
            name: name.into(),
            dc: dc.into(),
            tokens: Arc::new(tokens),
            sysctl: Sysctl::default(),
            sysctl_allow: Arc::new(sysctl_allow),
            audit_log: audit_log.map(Arc::new),
            metrics: Arc::new(Metrics::new()),
            responses: Arc::default(),
            identities: Arc::default(),
            closing: Arc::new(tokio::sync::watch::channel(false).0),
            watch_offset: Duration::ZERO,
        }))
    }

    /// As [`Host::watch_offset`] says. Only a fresh state, not yet cloned, takes it (a
    /// router holding a clone would not see the change).
    pub fn with_watch_offset(mut self, offset: Duration) -> AppState {
        let fresh = Arc::get_mut(&mut self.0).map(|host| host.watch_offset = offset).is_some();
        debug_assert!(fresh, "with_watch_offset on a state already shared");
        self
    }
}

/// The whole API: routes, authentication, the in-flight caps (server-wide and per identity),
/// the body limit, and a latency observation per route. `/healthz` answers outside the caps
/// and without an identity, so a load balancer's probe never waits behind other clients.
pub fn router(state: AppState) -> Router {
    let shed = tower::ServiceBuilder::new()
        .layer(HandleErrorLayer::new(limits::shed))
        .load_shed()
        .layer(GlobalConcurrencyLimitLayer::new(MAX_IN_FLIGHT));
    let capped = api::routes()
        .fallback(|| async { ApiError::not_found("no such endpoint; see /v1/openapi.json") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "method not allowed on this endpoint",
            )
        })
        .layer(middleware::from_fn_with_state(state.identities.clone(), limits::per_identity))
        .layer(middleware::from_fn_with_state(state.clone(), auth::authenticate))
        .layer(shed)
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES));
    Router::new()
        .route("/healthz", axum::routing::get(api::healthz))
        .merge(capped)
        .layer(middleware::from_fn_with_state(state.clone(), measure))
        .with_state(state)
}

/// Outermost middleware: a latency observation per route and status.
async fn measure(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".into());
    let started = Instant::now();
    let resp = next.run(req).await;
    state.metrics.observe_request(&route, resp.status().as_u16(), started.elapsed().as_secs_f64());
    resp
}

/// Gives memory the allocator keeps back to the system (the daemon's `malloc_trim`).
pub type ReleaseMemory = fn();

/// Only a burst of at least this many connections is worth giving memory back after.
const RELEASE_AFTER_PEAK: usize = 64;

/// Open connections, counted to give memory back after a burst of them.
///
/// Each connection holds buffers of its own (TLS records both ways, hyper's read and write
/// buffers); when thousands close, glibc keeps the freed memory in its heaps, fragmented,
/// and the daemon would stay at its peak. Each time the open connections of a burst of at
/// least [`RELEASE_AFTER_PEAK`] fall to half of where they were last, and when the last
/// closes, the freed memory is given back.
#[derive(Default)]
struct Connections {
    burst: std::sync::Mutex<Burst>,
}

#[derive(Default)]
struct Burst {
    open: usize,
    peak: usize,
    /// Give memory back once `open` is down to this.
    release_at: usize,
}

/// One open connection, counted until dropped.
struct Open {
    all: Arc<Connections>,
    release: Option<ReleaseMemory>,
}

impl Connections {
    fn enter(self: &Arc<Self>, release: Option<ReleaseMemory>) -> Open {
        let mut b = self.burst.lock().unwrap_or_else(|e| e.into_inner());
        b.open += 1;
        if b.open > b.peak {
            b.peak = b.open;
            b.release_at = b.peak / 2;
        }
        Open { all: self.clone(), release }
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        let mut b = self.all.burst.lock().unwrap_or_else(|e| e.into_inner());
        b.open -= 1;
        let due = b.peak >= RELEASE_AFTER_PEAK && b.open <= b.release_at;
        if due {
            b.release_at = b.open / 2;
        }
        if b.open == 0 {
            b.peak = 0;
        }
        drop(b);
        if let Some(release) = self.release.filter(|_| due) {
            tokio::task::spawn_blocking(release);
        }
    }
}

/// Accepts TLS connections on `listener` until `shutdown` resolves, then lets the
/// requests in progress finish (at most 5 s). `release` gives memory back after a burst of
/// connections has closed.
pub async fn serve(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    app: Router,
    metrics: Arc<Metrics>,
    release: Option<ReleaseMemory>,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let acceptor = TlsAcceptor::from(tls);
    let connections = Arc::new(Connections::default());
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let (tcp, remote) = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of descriptors and the like: back off instead of spinning.
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let app = app.clone();
        let metrics = metrics.clone();
        let watcher = graceful.watcher();
        let open = connections.enter(release);
        tokio::spawn(async move {
            let _open = open;
            let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(tls)) => tls,
                Ok(Err(e)) => {
                    metrics.tls_handshake_failed();
                    tracing::debug!(%remote, "TLS handshake failed: {e}");
                    return;
                }
                Err(_) => {
                    metrics.tls_handshake_failed();
                    tracing::debug!(%remote, "TLS handshake timed out");
                    return;
                }
            };
            let peer = tls
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|c| c.first())
                .and_then(|c| dcos_core::tls::peer_identity(c).ok());
            let idle = match &peer {
                Some(p) if p.role == dcos_core::Role::Host => HOST_IDLE_TIMEOUT,
                _ => HEADER_TIMEOUT,
            };
            let info = ConnInfo { remote, peer };
            let svc = hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
                req.extensions_mut().insert(info.clone());
                app.clone().oneshot(req.map(axum::body::Body::new))
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(idle)
                .serve_connection(TokioIo::new(JsonErrors::new(tls)), svc);
            if let Err(e) = watcher.watch(conn).await {
                tracing::debug!(%remote, "connection ended: {e}");
            }
        });
    }
    drop(listener);
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(Duration::from_secs(5)) => tracing::warn!("shutdown: gave up waiting for open connections"),
    }
    Ok(())
}
