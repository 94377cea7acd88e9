//! middlecon, the middleware conversation between hosts: synchronous request/reply over
//! QUIC (SPEC section 4) with per-service access rules, the fleet's membership, and the
//! host's OCI container workloads with their migration between peers (SPEC section 5). See
//! `docs/middlecon.md` and `docs/migration.md`.
//!
//! Where each part lives:
//!
//! - [`config`]: flags and TOML merged and validated before anything binds; the identity
//!   must be a `host` certificate of the fleet CA.
//! - [`access`]: the `[access]` rules (service pattern -> roles), checked where a call
//!   enters and on the host that answers it.
//! - [`peer`]: the QUIC endpoint (server and client on one UDP socket, ALPN `middlecon/1`,
//!   mTLS with `host` certificates), the frames of `proto/middlecon/v1/peer.proto`, the
//!   responder ([`peer::serve`], given the daemon's client and a shutdown signal so tests
//!   run it in-process) and the caller ([`peer::Client`]: one per daemon, shared by membership,
//!   the API and migrations, with one connection per peer, used both ways).
//! - [`ping`]: the built-in `dcos.ping` service.
//! - [`api`]: the gRPC API (`middlecon.v1`) on the Unix socket and on TCP with mTLS, the
//!   `Workloads` service an adapter over the workload core ([`api::workloads`]);
//!   [`routing`]: services registered by `Messaging.Serve` streams; [`directory`]: a host's
//!   name to its peer address (membership, then `--peer`).
//! - [`membership`]: seeds plus SWIM gossip (foca) over the peer transport, the member
//!   list ([`membership::Handle`]) and the built-in `dcos.members` service.
//! - [`workloads`]: the workload core: OCI containers run by runc or crun under
//!   `--state-dir`, re-adopted on restart, and moved to peers (cold migration, evacuation)
//!   with the `dcos.workloads.*` peer services. Its own types in and out; containers and
//!   peers behind traits, so its rules are unit-tested against fakes.
//! - [`services`]: services (SPEC section 7, `docs/services.md`): a front per service port,
//!   instances as workloads started on request, scaled, renewed and stopped when idle; the
//!   kernel's NAT steering ready instances their connections, counted from conntrack.
#![forbid(unsafe_code)]

pub mod access;
pub mod api;
pub mod config;
pub mod directory;
pub mod membership;
pub mod peer;
pub mod ping;
pub mod routing;
pub mod services;
pub mod workloads;

use std::future::Future;
use std::sync::Arc;

/// The services every middlecon serves.
pub fn builtin_services(config: &config::Config) -> peer::Services {
    peer::Services::new()
        .with(ping::SERVICE, ping::Ping::new(&config.name, &config.dc))
        .with_access(config.access.clone())
}

/// Runs middlecon with a validated `config` on `endpoint` (from [`peer::endpoint`]) until
/// `shutdown` resolves; serves the gRPC API on `api` (from [`api::Listeners::bind`]) if given,
/// and `workloads` (from [`workloads::Workloads::open`]) if given.
pub async fn run(
    config: config::Config,
    endpoint: quinn::Endpoint,
    api: Option<api::Listeners>,
    workloads: Option<std::sync::Arc<workloads::Workloads>>,
    shutdown: impl Future<Output = ()>,
) {
    let bound = endpoint.local_addr().unwrap_or(config.listen);
    let api_addr = api.as_ref().and_then(|l| l.tcp.local_addr().ok());
    let mut settings = membership::Settings::from_config(&config, bound, api_addr);
    settings.runtimes = workloads.as_ref().map(|w| w.classes()).unwrap_or_default();
    let client = peer::Client::with_endpoint(endpoint);
    let members = membership::start(settings, client.clone());
    let services = builtin_services(&config)
        .with(membership::SWIM_SERVICE, members.swim_service())
        .with(membership::SERVICE, members.members_service());
    let handle = members.clone();
    let shutdown = async move {
        shutdown.await;
        members.leave(std::time::Duration::from_millis(300)).await;
    };
    let registry = routing::Registry::new();
    let mut services = services.with_dispatch(registry.clone());
    let mut fronts = None;
    if let Some(w) = &workloads {
        services =
            workloads::migrate::quic::TargetServices::new(w.clone(), Default::default()).install(services);
        let spill = Arc::new(services::spill::Members { me: config.name.clone(), members: handle.clone() });
        let steer = services::steering(config.steering).await;
        match services::Services::open(&config.state_dir, w.clone(), spill, steer).await {
            Ok(s) => fronts = Some(s),
            Err(e) => tracing::error!("services not opened: {e}"),
        }
    }
    let api = api.map(|l| {
        let hosted = api::Hosted { workloads: workloads.clone(), services: fronts.clone() };
        api::spawn(l, &config, client.clone(), services.clone(), registry, Some(handle), hosted)
    });
    peer::serve(client, services, shutdown).await;
    if let Some(api) = api {
        api.stop().await;
    }
    // The fronts' open relays finish (each service's --drain at most); instances run on.
    if let Some(s) = fronts {
        s.shutdown().await;
    }
    if let Some(w) = workloads {
        w.close();
    }
}
