//! Services (SPEC section 7): containers that start on request, stop when idle, scale and
//! renew themselves. `docs/services.md` is the specification: the states of an instance,
//! what happens to a connection in each, and the failure table.
//!
//! - [`spec`]: a service's definition, its checks, and the store under
//!   `<state-dir>/services/`.
//! - [`pool`]: one service on this host: its instances and the rules that start, hand out,
//!   renew and stop them.
//! - [`front`]: the TCP listener on the service's port and the relay to an instance (or to
//!   a peer's front when this host is saturated).
//! - [`relay`]: the bytes of one connection to an instance and back (a lent buffer, then
//!   `splice(2)` for bulk), half-closes passed on, resets propagated.
//! - [`spill`]: where a saturated front sends a connection (a peer's front with room).
//! - [`steer`]: the kernel's NAT sending a ready instance its connections directly, the
//!   front out of their path, and conntrack's events counting them.
//! - [`counters`]: per-service counters, also as Prometheus text.
//!
//! [`Services`] holds this host's services: it opens them at start (definitions from the
//! store, instances re-adopted from the workloads, never doubled), creates and removes them,
//! and runs each one's tick. Instances are workloads ([`crate::workloads`]) named
//! `<service>.<n>` and tagged with their service.

pub mod counters;
pub mod front;
pub mod pool;
pub mod relay;
pub mod spec;
pub mod spill;
pub mod steer;

#[cfg(test)]
mod tests;

use crate::workloads::{Status, Workload, WorkloadError, Workloads};
use pool::{Instance, Service};
pub use spec::ServiceSpec;
pub use spill::NoSpill;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;
pub use steer::NoSteer;
use steer::Steer;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// How often each service's rules run over time (idle stops, ages, exits, drains).
const TICK: Duration = Duration::from_millis(50);
/// How often the services saturated here are told to the fleet (with SWIM's packets).
const PUBLISH: Duration = Duration::from_millis(250);

/// A service as `service ls` and `show` report it on this host.
#[derive(Debug, Clone)]
pub struct Summary {
    pub spec: ServiceSpec,
    pub instances: u32,
    pub inflight: u32,
    pub connections: u64,
    pub cold_starts: u64,
    pub renewals: u64,
    pub start_timeouts: u64,
    pub failures: u64,
    pub spilled: u64,
    pub throttled: u64,
    pub last_error: String,
}

/// One instance as `service show` reports it.
#[derive(Debug, Clone)]
pub struct InstanceView {
    pub id: String,
    pub pid: u32,
    pub state: pool::State,
    pub spare: bool,
    /// The kernel sends it new connections now.
    pub steered: bool,
    pub started_unix_ms: i64,
    pub connections: u64,
    pub inflight: u32,
    pub port: u16,
}

impl From<&Instance> for InstanceView {
    fn from(i: &Instance) -> InstanceView {
        InstanceView {
            id: i.id.clone(),
            pid: i.pid,
            state: i.state,
            spare: i.spare,
            steered: i.routed,
            started_unix_ms: i.started_unix_ms,
            connections: i.taken,
            inflight: i.load(),
            port: i.port,
        }
    }
}

/// How this host's services get their connections: steered by the kernel where
/// `--service-steering kernel` asks and the host can (else relayed, with a warning).
pub async fn steering(how: crate::config::Steering) -> Arc<dyn Steer> {
    if how == crate::config::Steering::Relay {
        return Arc::new(NoSteer);
    }
    match steer::Kernel::start().await {
        Ok(k) => k,
        Err(e) => {
            tracing::warn!(
                "services: connections are relayed by their fronts, not steered by the kernel: {e}"
            );
            Arc::new(NoSteer)
        }
    }
}

/// A service that runs: its rules and its front, stopped through `stop`.
struct Running {
    service: Arc<Service>,
    stop: watch::Sender<bool>,
    /// The front's task: its listener is closed once it ends.
    front: tokio::task::JoinHandle<()>,
}

/// This host's services.
pub struct Services {
    workloads: Arc<Workloads>,
    store: spec::Store,
    pub metrics: counters::Metrics,
    spill: Arc<dyn spill::Spill>,
    steer: Arc<dyn Steer>,
    running: Mutex<BTreeMap<String, Running>>,
    /// One create or remove at a time: a name is never half-made.
    changing: tokio::sync::Mutex<()>,
}

impl Services {
    /// Opens this host's services: definitions from `<state_dir>/services`, each with the
    /// running instances a previous daemon left (re-adopted); instances of no service, or
    /// whose process ended, are stopped.
    pub async fn open(
        state_dir: &Path,
        workloads: Arc<Workloads>,
        spill: Arc<dyn spill::Spill>,
        steer: Arc<dyn Steer>,
    ) -> Result<Arc<Services>, WorkloadError> {
        let store = spec::Store::open(state_dir)
            .map_err(crate::workloads::error::io_err(format!("{}/services", state_dir.display())))?;
        let services = Arc::new(Services {
            workloads,
            store,
            metrics: counters::Metrics::default(),
            spill,
            steer,
            running: Mutex::default(),
            changing: tokio::sync::Mutex::new(()),
        });
        let specs = services.store.load();
        let fronts: Vec<u16> = specs.iter().map(|s| s.port).collect();
        services.steer.keep_only(&fronts).await;
        let mut instances: BTreeMap<String, Vec<Workload>> = BTreeMap::new();
        for w in services.workloads.list() {
            if let Some(name) = w.service.clone() {
                instances.entry(name).or_default().push(w);
            }
        }
        for spec in specs {
            let mine = instances.remove(&spec.name).unwrap_or_default();
            let (alive, ended): (Vec<Workload>, Vec<Workload>) =
                mine.into_iter().partition(|w| w.status == Status::Running);
            services.stop_all(ended).await;
            // Bound now if the port is free, so the front answers once the daemon is up;
            // else the front keeps trying.
            let listener = front::bind(spec.port).await.ok();
            services.start(spec, listener, alive);
        }
        services.stop_all(instances.into_values().flatten().collect()).await;
        let weak = Arc::downgrade(&services);
        tokio::spawn(async move {
            let mut said = Vec::new();
            loop {
                tokio::time::sleep(PUBLISH).await;
                let Some(services) = weak.upgrade() else { return };
                let now = services.saturated();
                if now != said {
                    services.spill.publish(&now);
                    said = now;
                }
            }
        });
        Ok(services)
    }

    /// The services whose fronts are saturated here now.
    fn saturated(&self) -> Vec<String> {
        let running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        running
            .values()
            .filter(|r| r.service.pool().saturated(&r.service.spec))
            .map(|r| r.service.spec.name.clone())
            .collect()
    }

    async fn stop_all(&self, orphans: Vec<Workload>) {
        for w in orphans {
            tracing::info!(instance = %w.name, service = ?w.service, "instance of no running service: stopped");
            if let Err(e) = self.workloads.stop(&w.name).await {
                tracing::warn!(instance = %w.name, "stopping: {e}");
            }
        }
    }

    /// Runs `spec` with the `adopted` instances: its front (on `listener`, else bound by
    /// the front) and its tick.
    fn start(&self, spec: ServiceSpec, listener: Option<TcpListener>, adopted: Vec<Workload>) {
        let name = spec.name.clone();
        let service = Service::new(
            spec,
            self.workloads.clone(),
            self.steer.clone(),
            self.spill.clone(),
            self.metrics.of(&name),
            adopted,
        );
        let (stop, stopped) = watch::channel(false);
        let front =
            tokio::spawn(front::serve(service.clone(), listener, self.spill.clone(), stopped.clone()));
        let ticking = service.clone();
        let mut done = stopped;
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(TICK);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            loop {
                tokio::select! {
                    _ = tick.tick() => ticking.tick(),
                    _ = async { drop(done.wait_for(|s| *s).await) } => break,
                }
            }
        });
        service.tick();
        self.running.lock().unwrap_or_else(|e| e.into_inner()).insert(name, Running { service, stop, front });
    }

    fn services(&self) -> Vec<Arc<Service>> {
        self.running.lock().unwrap_or_else(|e| e.into_inner()).values().map(|r| r.service.clone()).collect()
    }

    fn get(&self, name: &str) -> Option<Arc<Service>> {
        self.running.lock().unwrap_or_else(|e| e.into_inner()).get(name).map(|r| r.service.clone())
    }

    /// Checks `spec` against this host (rootfs, runtime, the name and the port free) and,
    /// unless `validate_only`, keeps it, opens its front and starts what `--min` and
    /// `--prestart` want. Every refusal names its field; nothing is left of a refused one.
    pub async fn create(&self, spec: ServiceSpec, validate_only: bool) -> Result<Summary, WorkloadError> {
        let _one = self.changing.lock().await;
        spec.check()?;
        if self.get(&spec.name).is_some() {
            return Err(WorkloadError::Conflict(format!(
                "name: a service named {:?} already exists on {}",
                spec.name, self.workloads.host
            )));
        }
        if !spec.rootfs.is_dir() {
            return Err(WorkloadError::Invalid(format!(
                "rootfs: {} is not a directory on {}",
                spec.rootfs.display(),
                self.workloads.host
            )));
        }
        self.workloads.containers().runtime(&spec.runtime)?;
        if let Some(other) = self.list().into_iter().find(|s| s.spec.port == spec.port) {
            return Err(WorkloadError::Invalid(format!(
                "port: {} is the front of service {} on {}",
                spec.port, other.spec.name, self.workloads.host
            )));
        }
        let port = spec.port;
        let listener = front::bind(port)
            .await
            .map_err(|e| WorkloadError::Invalid(format!("port: {port} cannot be listened on here: {e}")))?;
        if validate_only {
            return Ok(self.summary_of(&spec, None));
        }
        self.store
            .save(&spec)
            .map_err(crate::workloads::error::io_err(format!("saving the definition of {}", spec.name)))?;
        let name = spec.name.clone();
        tracing::info!(service = %name, port = spec.port, "service created");
        self.start(spec, Some(listener), Vec::new());
        self.show(&name).map(|(s, _)| s)
    }

    fn summary_of(&self, spec: &ServiceSpec, service: Option<&Service>) -> Summary {
        let c = self.metrics.of(&spec.name);
        let (instances, inflight, last_error) = match service {
            Some(s) => {
                let pool = s.synced();
                (pool.instances.len() as u32, pool.inflight(), pool.last_error.clone())
            }
            None => (0, 0, String::new()),
        };
        Summary {
            spec: spec.clone(),
            instances,
            inflight,
            connections: c.connections.get(),
            cold_starts: c.cold_starts.get(),
            renewals: c.renewals.get(),
            start_timeouts: c.start_timeouts.get(),
            failures: c.failures.get(),
            spilled: c.spilled.get(),
            throttled: c.throttled.get(),
            last_error,
        }
    }

    /// The counters of this host's services as Prometheus text, steered connections counted
    /// up to now.
    pub fn metrics_text(&self) -> String {
        for s in self.services() {
            drop(s.synced());
        }
        self.metrics.text()
    }

    /// Every service of this host.
    pub fn list(&self) -> Vec<Summary> {
        self.services().iter().map(|s| self.summary_of(&s.spec, Some(s))).collect()
    }

    /// Service `name` and its instances.
    pub fn show(&self, name: &str) -> Result<(Summary, Vec<InstanceView>), WorkloadError> {
        let service = self.get(name).ok_or_else(|| WorkloadError::NotFound {
            name: name.to_string(),
            host: self.workloads.host.clone(),
        })?;
        // The summary brings the steered counts in; the instances are read right after.
        let summary = self.summary_of(&service.spec, Some(&service));
        let instances = service.pool().instances.iter().map(InstanceView::from).collect();
        Ok((summary, instances))
    }

    /// Closes service `name`'s front, drains (at most `drain`, else its `--drain`) and
    /// stops its instances, and forgets it. Returns the instances stopped.
    pub async fn remove(&self, name: &str, drain: Option<Duration>) -> Result<u32, WorkloadError> {
        let _one = self.changing.lock().await;
        let running = self.running.lock().unwrap_or_else(|e| e.into_inner()).remove(name);
        let Some(running) = running else {
            return Err(WorkloadError::NotFound {
                name: name.to_string(),
                host: self.workloads.host.clone(),
            });
        };
        let _ = running.stop.send(true);
        let _ = running.front.await;
        let stopped = running.service.remove(drain.unwrap_or(running.service.spec.drain)).await;
        if let Err(e) = self.store.remove(name) {
            return Err(WorkloadError::Io(format!("forgetting {name}: {e}")));
        }
        self.metrics.forget(name);
        tracing::info!(service = %name, stopped, "service removed");
        Ok(stopped)
    }

    /// The daemon stops: every front closes, held connections are closed (counted), and open
    /// relays are given their service's `--drain` to finish. Instances run on, for the next
    /// daemon to re-adopt.
    pub async fn shutdown(&self) {
        let running: Vec<Running> =
            std::mem::take(&mut *self.running.lock().unwrap_or_else(|e| e.into_inner()))
                .into_values()
                .collect();
        for r in &running {
            let _ = r.stop.send(true);
            r.service.close();
        }
        for r in running {
            let _ = r.front.await;
            r.service.quiesce(r.service.spec.drain).await;
        }
    }
}
