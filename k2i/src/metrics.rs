//! `/metrics`: the host's figures and the agent's own, in Prometheus text format.

use crate::sampler::Snapshot;
use dcos_core::model::HostSummary;
use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;
use std::sync::Mutex;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: String,
    code: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteOnly {
    route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Window {
    window: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Reason {
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ContainerLabels {
    id: String,
    name: String,
    runtime: String,
}

type FGauge = Gauge<f64, AtomicU64>;

/// Every metric k2i exports.
pub struct Metrics {
    registry: Registry,
    requests: Family<RouteLabels, Counter>,
    latency: Family<RouteOnly, Histogram>,
    auth_failures: Family<Reason, Counter>,
    sysctl_writes: Family<Reason, Counter>,
    tls_handshake_failures: Counter,
    sample_seconds: FGauge,
    samples: Counter,
    /// Sequence number of the last snapshot counted into `samples`.
    samples_seen: AtomicU64,
    processes: Gauge,
    threads: Gauge,
    load: Family<Window, FGauge>,
    cpu_percent: FGauge,
    mem_total: Gauge,
    mem_used: Gauge,
    swap_used: Gauge,
    uptime: FGauge,
    container_cpu: Family<ContainerLabels, FGauge>,
    container_mem: Family<ContainerLabels, Gauge>,
    /// Serializes scrapes: the host gauges are set then encoded.
    scrape: Mutex<()>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("k2i");
        let m = Metrics {
            requests: Family::default(),
            latency: Family::new_with_constructor(|| {
                Histogram::new([0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0])
            }),
            auth_failures: Family::default(),
            sysctl_writes: Family::default(),
            tls_handshake_failures: Counter::default(),
            sample_seconds: FGauge::default(),
            samples: Counter::default(),
            samples_seen: AtomicU64::new(0),
            processes: Gauge::default(),
            threads: Gauge::default(),
            load: Family::default(),
            cpu_percent: FGauge::default(),
            mem_total: Gauge::default(),
            mem_used: Gauge::default(),
            swap_used: Gauge::default(),
            uptime: FGauge::default(),
            container_cpu: Family::default(),
            container_mem: Family::default(),
            scrape: Mutex::new(()),
            registry: Registry::default(),
        };
        registry.register("http_requests", "HTTP requests answered, by route and status", m.requests.clone());
        registry.register("http_request_duration_seconds", "Time to answer, by route", m.latency.clone());
        registry.register(
            "auth_failures",
            "Requests refused for lack of a valid identity",
            m.auth_failures.clone(),
        );
        registry.register("sysctl_writes", "sysctl writes, by result", m.sysctl_writes.clone());
        registry.register(
            "tls_handshake_failures",
            "TLS handshakes that failed or timed out",
            m.tls_handshake_failures.clone(),
        );
        registry.register("samples", "Samples of /proc taken", m.samples.clone());
        registry.register(
            "sample_duration_seconds",
            "Duration of the last /proc sample",
            m.sample_seconds.clone(),
        );
        registry.register(
            "host_processes",
            "Processes on the host, kernel threads included",
            m.processes.clone(),
        );
        registry.register("host_threads", "Threads on the host", m.threads.clone());
        registry.register("host_load", "Load average, by window", m.load.clone());
        registry.register("host_cpu_percent", "Host CPU busy percent (100 per core)", m.cpu_percent.clone());
        registry.register("host_memory_total_bytes", "Physical memory", m.mem_total.clone());
        registry.register(
            "host_memory_used_bytes",
            "Memory in use (total minus available)",
            m.mem_used.clone(),
        );
        registry.register("host_swap_used_bytes", "Swap in use", m.swap_used.clone());
        registry.register("host_uptime_seconds", "Seconds since boot", m.uptime.clone());
        registry.register(
            "container_cpu_percent",
            "Container CPU percent of one core",
            m.container_cpu.clone(),
        );
        registry.register("container_memory_bytes", "Container memory in use", m.container_mem.clone());
        Metrics { registry, ..m }
    }

    pub fn observe_request(&self, route: &str, code: u16, seconds: f64) {
        self.requests.get_or_create(&RouteLabels { route: route.to_string(), code }).inc();
        self.latency.get_or_create(&RouteOnly { route: route.to_string() }).observe(seconds);
    }

    pub fn auth_failure(&self, reason: &str) {
        self.auth_failures.get_or_create(&Reason { reason: reason.to_string() }).inc();
    }

    pub fn sysctl_write(&self, result: &str) {
        self.sysctl_writes.get_or_create(&Reason { reason: result.to_string() }).inc();
    }

    pub fn tls_handshake_failed(&self) {
        self.tls_handshake_failures.inc();
    }

    /// Sets the host gauges from `h`, the sampler's and containers' from `snap`, and encodes
    /// everything.
    pub fn render(&self, h: &HostSummary, snap: &Snapshot) -> String {
        let _guard = self.scrape.lock().unwrap_or_else(|e| e.into_inner());
        self.sample_seconds.set(snap.tick_duration.as_secs_f64());
        let seen = self.samples_seen.swap(snap.seq, std::sync::atomic::Ordering::Relaxed);
        self.samples.inc_by(snap.seq.saturating_sub(seen));
        self.processes.set(i64::from(h.processes));
        self.threads.set(i64::from(h.threads));
        for (w, v) in ["1m", "5m", "15m"].iter().zip(h.load) {
            self.load.get_or_create(&Window { window: w.to_string() }).set(v);
        }
        self.cpu_percent.set(h.cpu_percent.unwrap_or(0.0));
        self.mem_total.set(h.mem_total_bytes as i64);
        self.mem_used.set(h.mem_used_bytes as i64);
        self.swap_used.set(h.swap_used_bytes as i64);
        self.uptime.set(h.uptime_s);
        self.container_cpu.clear();
        self.container_mem.clear();
        for c in &snap.containers {
            let l = ContainerLabels {
                id: c.id.to_string(),
                name: c.name.to_string(),
                runtime: c.runtime.as_str().into(),
            };
            if let Some(cpu) = c.cpu_percent {
                self.container_cpu.get_or_create(&l).set(cpu);
            }
            if let Some(mem) = c.mem_bytes {
                self.container_mem.get_or_create(&l).set(mem as i64);
            }
        }
        let mut out = String::with_capacity(8192);
        let _ = encode(&mut out, &self.registry);
        out
    }
}
