//! k2i, the kernel interface: one host's live state as JSON over HTTPS.
//!
//! How a request flows, and where each part lives:
//!
//! - [`config`]: flags and TOML merged and validated before anything binds.
//! - [`procfs`]: plain reads of `/proc` files (`stat`, `cmdline`, `io`, host counters).
//! - [`sampler`]: the background thread that turns those reads into an immutable
//!   [`sampler::Snapshot`] every interval, reading per-process constants only once.
//! - [`intern`]: one shared copy of equal strings and command lines.
//! - [`containers`]: which container a cgroup path belongs to, OCI runtime state, and
//!   per-container CPU and memory from the cgroup filesystem.
//! - `dcos_query` (crate `query/`): the `/v1/proc` parameters and the `q` filter language.
//! - [`sysctl`]: `/proc/sys` reads, the write allow-list and the audit record.
//! - [`auth`]: the caller's identity, from its certificate or a bearer token.
//! - [`api`]: one module per resource of SPEC section 3.
//! - [`limits`]: requests in flight per identity, and the gate before a write's body.
//! - [`wire`]: hyper's own parse-error answers given the JSON error body.
//! - [`server`]: the router, middleware, and the TLS accept loop ([`server::serve`] takes
//!   its listener and shutdown signal, so tests run it in-process on port 0).
//! - [`metrics`]: `/metrics` in Prometheus text format.
//! - [`cors`]: `--cors-origin`, for dashboards in a browser.
#![forbid(unsafe_code)]

pub mod api;
pub mod auth;
pub mod config;
pub mod containers;
pub mod cors;
pub mod error;
pub mod intern;
pub mod limits;
pub mod metrics;
pub mod procfs;
pub mod sampler;
pub mod server;
pub mod sysctl;
pub mod wire;

use std::future::Future;
use tokio::net::TcpListener;

/// Runs k2i with a validated `config` on `listener` until `shutdown` resolves; `release`
/// gives freed memory back to the system (see [`server::serve`]).
pub async fn run(
    config: config::Config,
    listener: TcpListener,
    release: Option<server::ReleaseMemory>,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    use anyhow::Context;
    let mut sampling =
        sampler::SamplerConfig::new(config.name.clone(), config.dc.clone(), config.sample_interval);
    sampling.idle_interval = config.idle_interval;
    sampling.labels = config.labels.clone();
    sampling.catalog.oci_roots = config.oci_roots.clone();
    let handle = tokio::task::spawn_blocking(move || sampler::spawn(sampling))
        .await
        .context("starting the sampler")?
        .context("starting the sampler thread")?;
    let state = server::AppState::new(
        handle,
        &config.name,
        &config.dc,
        config.tokens,
        config.sysctl_allow,
        config.audit_log,
    );
    let metrics = state.metrics.clone();
    let closing = state.closing.clone();
    let tls =
        config.identity.server_config(&[b"http/1.1"], false).context("building the TLS configuration")?;
    let app = cors::layer(server::router(state), config.cors_origins);
    let shutdown = async move {
        shutdown.await;
        // Watches end their answers, so their connections close with the others.
        closing.send_replace(true);
    };
    server::serve(listener, tls, app, metrics, release, shutdown).await?;
    Ok(())
}
