//! Per-service counters, kept in a `prometheus-client` registry so that the same figures
//! `dcos service show` reports are the daemon's Prometheus text (`dcos_service_*`, labelled
//! by service). Each counter is declared once, in [`counters!`]'s list.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::sync::{Arc, Mutex};

/// The label of every service metric.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ServiceLabel {
    pub service: String,
}

/// Cold-start latency buckets, in seconds: from a hand-over to a slow image.
const COLD_START_BUCKETS: [f64; 12] =
    [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0];

fn cold_start_histogram() -> Histogram {
    Histogram::new(COLD_START_BUCKETS)
}

/// Declares the counters once: their families in [`Metrics`], their handles in
/// [`Counters`], their registration, lookup and removal.
macro_rules! counters {
    ($($name:ident: $help:literal,)*) => {
        /// Every service's metrics.
        pub struct Metrics {
            registry: Mutex<Registry>,
            cold_start_seconds: Family<ServiceLabel, Histogram, fn() -> Histogram>,
            $($name: Family<ServiceLabel, Counter>,)*
        }

        /// One service's counters (handles into [`Metrics`]).
        pub struct Counters {
            /// How long a cold start held its connection.
            pub cold_start_seconds: Histogram,
            $(#[doc = $help] pub $name: Counter,)*
        }

        impl Default for Metrics {
            fn default() -> Metrics {
                let m = Metrics {
                    registry: Mutex::new(Registry::with_prefix("dcos_service")),
                    cold_start_seconds: Family::new_with_constructor(cold_start_histogram),
                    $($name: Family::default(),)*
                };
                {
                    let mut r = m.registry.lock().unwrap_or_else(|e| e.into_inner());
                    r.register("cold_start_seconds", "How long a cold start held its connection", m.cold_start_seconds.clone());
                    $(r.register(stringify!($name), $help, m.$name.clone());)*
                }
                m
            }
        }

        impl Metrics {
            /// The counters of `service`.
            pub fn of(&self, service: &str) -> Arc<Counters> {
                let l = ServiceLabel { service: service.to_string() };
                Arc::new(Counters {
                    cold_start_seconds: self.cold_start_seconds.get_or_create(&l).clone(),
                    $($name: self.$name.get_or_create(&l).clone(),)*
                })
            }

            /// Forgets `service`'s series (it was removed).
            pub fn forget(&self, service: &str) {
                let l = ServiceLabel { service: service.to_string() };
                self.cold_start_seconds.remove(&l);
                $(self.$name.remove(&l);)*
            }
        }
    };
}

counters! {
    connections: "Connections relayed to an instance",
    cold_starts: "Connections that waited for an instance to start",
    renewals: "Instances replaced for --max-age or --max-requests",
    start_timeouts: "Held connections closed: no instance accepted in time",
    failures: "Instances that failed to start or exited",
    spilled: "Connections relayed to a peer's front (this host full)",
    throttled: "Starts refused by the failure rate limit",
    closed_on_stop: "Held connections closed because the daemon stopped or the service was removed",
}

impl Metrics {
    /// The Prometheus (OpenMetrics) text of every service.
    pub fn text(&self) -> String {
        let mut out = String::new();
        let r = self.registry.lock().unwrap_or_else(|e| e.into_inner());
        prometheus_client::encoding::text::encode(&mut out, &r).expect("writing to a String");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_are_prometheus_text_labelled_by_service() {
        let m = Metrics::default();
        let web = m.of("web");
        web.connections.inc();
        web.cold_starts.inc();
        web.cold_start_seconds.observe(0.03);
        m.of("api").failures.inc();
        let text = m.text();
        assert!(text.contains(r#"dcos_service_connections_total{service="web"} 1"#), "{text}");
        assert!(text.contains(r#"dcos_service_failures_total{service="api"} 1"#), "{text}");
        assert!(
            text.contains(r#"dcos_service_cold_start_seconds_bucket{le="0.05",service="web"} 1"#),
            "{text}"
        );
        m.forget("web");
        assert!(!m.text().contains(r#"service="web""#));
    }
}
