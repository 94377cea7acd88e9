//! `dcos service create|ls|show|rm` (SPEC section 7). Each host answers for its own part of
//! a service through middlecon's `Services` API, so every command asks all the hosts
//! concerned at once ([`Session::on_all`]) and prints the per-host statuses and the exit
//! status of SPEC section 6.
//!
//! - [`create`]: the definition checked on every host (`validate_only`) before it is made
//!   on any; a create that fails after others succeeded is removed from those again.
//! - [`ls`]: one row per service, its figures summed over the hosts that place it.
//! - [`show`]: one row per instance across the hosts, then each host's counters.
//! - [`rm`]: removes it from every host that has it.
//!
//! Here: the dispatch, `List` on every host, and what a service is on one host as printed
//! ([`HostService`], also `create`'s output).

pub mod create;
pub mod ls;
pub mod rm;
pub mod show;

use crate::api::ApiHost;
use crate::cli::{FleetArgs, Format, ServiceCommand, TlsArgs};
use crate::fanout::HostReport;
use crate::workload::{dash, Answer, Session, WorkloadError};
use crate::{output, table};
use dcos_proto::v1 as pb;
use middlecon_client::ServicesClient;
use serde::Serialize;
use std::time::Duration;

pub async fn run(tls: &TlsArgs, fleet: &FleetArgs, command: &ServiceCommand) -> Result<u8, WorkloadError> {
    match command {
        ServiceCommand::Create(args) => create::run(tls, fleet, args).await,
        ServiceCommand::Ls(args) => ls::run(tls, fleet, args).await,
        ServiceCommand::Show(args) => show::run(tls, fleet, args).await,
        ServiceCommand::Rm(args) => rm::run(tls, fleet, args).await,
    }
}

/// `Services.List` on every host at once.
pub async fn list_all(session: &Session, hosts: &[ApiHost]) -> Vec<Answer<pb::ListServicesReply>> {
    session
        .on_all(hosts, |h| {
            session.call(
                Duration::ZERO,
                h,
                ServicesClient::new,
                pb::ListServicesRequest {},
                |mut c, r| async move { c.list(r).await },
            )
        })
        .await
}

/// A service's figures on one host, or summed over several: instances and open connections
/// now, counters since it was made there (or the daemon started).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counters {
    pub instances: u64,
    pub inflight: u64,
    pub connections: u64,
    pub cold_starts: u64,
    pub renewals: u64,
    pub failures: u64,
    pub start_timeouts: u64,
    pub spilled: u64,
    pub throttled: u64,
}

impl Counters {
    pub fn of(s: &pb::ServiceSummary) -> Counters {
        Counters {
            instances: s.instances.into(),
            inflight: s.inflight.into(),
            connections: s.connections,
            cold_starts: s.cold_starts,
            renewals: s.renewals,
            failures: s.failures,
            start_timeouts: s.start_timeouts,
            spilled: s.spilled,
            throttled: s.throttled,
        }
    }

    pub fn add(&mut self, o: &Counters) {
        self.instances += o.instances;
        self.inflight += o.inflight;
        self.connections += o.connections;
        self.cold_starts += o.cold_starts;
        self.renewals += o.renewals;
        self.failures += o.failures;
        self.start_timeouts += o.start_timeouts;
        self.spilled += o.spilled;
        self.throttled += o.throttled;
    }

    /// INSTANCES INFLIGHT CONNECTIONS COLD_STARTS.
    fn now(&self) -> Vec<String> {
        [self.instances, self.inflight, self.connections, self.cold_starts].map(|n| n.to_string()).to_vec()
    }

    /// RENEWALS FAILURES TIMEOUTS SPILLED THROTTLED.
    fn troubles(&self) -> Vec<String> {
        [self.renewals, self.failures, self.start_timeouts, self.spilled, self.throttled]
            .map(|n| n.to_string())
            .to_vec()
    }
}

/// The columns of [`Counters::troubles`].
const TROUBLES: [&str; 5] = ["RENEWALS", "FAILURES", "TIMEOUTS", "SPILLED", "THROTTLED"];

/// One service on one host, as `create` prints what it made and `show` each host's
/// counters: `{"host", "name", "port", <counters>, "last_error"}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HostService {
    pub host: String,
    pub name: String,
    pub port: u32,
    #[serde(flatten)]
    pub counters: Counters,
    /// The latest failure there, for a person.
    pub last_error: Option<String>,
}

impl HostService {
    pub fn new(host: &str, s: &pb::ServiceSummary) -> HostService {
        let spec = s.spec.clone().unwrap_or_default();
        HostService {
            host: host.to_string(),
            name: spec.name,
            port: spec.port,
            counters: Counters::of(s),
            last_error: (!s.last_error.is_empty()).then(|| s.last_error.clone()),
        }
    }
}

/// What `create` prints per host: NAME HOST PORT INSTANCES.
const CREATED_HEADER: [&str; 4] = ["NAME", "HOST", "PORT", "INSTANCES"];

fn created_row(s: &HostService) -> Vec<String> {
    vec![s.name.clone(), s.host.clone(), s.port.to_string(), s.counters.instances.to_string()]
}

/// What `show` prints per host below the instances.
const COUNTERS_HEADER: [&str; 11] = [
    "HOST",
    "INSTANCES",
    "INFLIGHT",
    "CONNECTIONS",
    "COLD_STARTS",
    "RENEWALS",
    "FAILURES",
    "TIMEOUTS",
    "SPILLED",
    "THROTTLED",
    "LAST_ERROR",
];

fn counters_row(s: &HostService) -> Vec<String> {
    let mut row = vec![s.host.clone()];
    row.extend(s.counters.now());
    row.extend(s.counters.troubles());
    row.push(dash(s.last_error.as_deref().unwrap_or_default()));
    row
}

/// Prints `items`: `{"hosts": [...], "<kind>": [...]}`, one line each then the host
/// statuses, or the table `header` over `rows` (given whether `-o wide`).
fn print<T: Serialize>(
    format: Format,
    reports: &[HostReport],
    kind: &str,
    items: &[T],
    table: impl Fn(bool) -> (Vec<&'static str>, Vec<Vec<String>>),
) {
    match format {
        Format::Json => output::print_document(kind, reports, items),
        Format::Ndjson => output::print_ndjson(items, reports),
        Format::Table | Format::Wide => {
            let (header, rows) = table(format == Format::Wide);
            print!("{}", table::render(&header, &rows));
        }
    }
}

/// "(k of n hosts did not answer)" after a message, when some did not.
fn silent_hosts(reports: &[HostReport]) -> String {
    match reports.iter().filter(|r| !r.ok()).count() {
        0 => String::new(),
        k => format!(" ({k} of {} hosts did not answer)", reports.len()),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A summary of service `name` on a host, with `n` as every figure's base.
    pub fn summary(name: &str, port: u32, n: u64) -> pb::ServiceSummary {
        pb::ServiceSummary {
            spec: Some(pb::ServiceSpec {
                name: name.into(),
                port,
                hosts: vec!["h0".into(), "h1".into()],
                ..Default::default()
            }),
            instances: n as u32,
            inflight: n as u32 + 1,
            connections: n + 2,
            cold_starts: n + 3,
            renewals: n + 4,
            start_timeouts: n + 5,
            failures: n + 6,
            spilled: n + 7,
            last_error: String::new(),
            throttled: n + 8,
        }
    }

    /// The keys of a JSON object, in order, space-separated.
    pub fn keys(v: &serde_json::Value) -> String {
        v.as_object().unwrap().keys().map(String::as_str).collect::<Vec<_>>().join(" ")
    }

    pub fn report(host: &str, status: &'static str) -> HostReport {
        HostReport {
            host: host.into(),
            address: "10.0.0.1:7442".into(),
            status,
            error: (status != "ok").then(|| "no answer within 3s".into()),
            elapsed_ms: 1,
            via: None,
            age_ms: None,
        }
    }

    #[test]
    fn a_host_service_prints_its_counters_and_last_error() {
        let mut s = summary("web", 8080, 1);
        s.last_error = "instance web.3 exited with 1".into();
        let item = HostService::new("h0", &s);
        assert_eq!(created_row(&item), ["web", "h0", "8080", "1"]);
        assert_eq!(
            counters_row(&item),
            ["h0", "1", "2", "3", "4", "5", "7", "6", "8", "9", "instance web.3 exited with 1"]
        );
        assert_eq!(counters_row(&HostService::new("h0", &summary("web", 8080, 0)))[10], "-");
        let v = serde_json::to_value(&item).unwrap();
        let all = concat!(
            "host name port instances inflight connections cold_starts ",
            "renewals failures start_timeouts spilled throttled last_error"
        );
        assert_eq!(keys(&v), all);
        assert_eq!((v["start_timeouts"].as_u64(), v["failures"].as_u64()), (Some(6), Some(7)));
        assert!(serde_json::to_value(HostService::new("h0", &summary("w", 1, 0))).unwrap()["last_error"]
            .is_null());
        assert_eq!(
            silent_hosts(&[report("h0", "ok"), report("h1", "timeout")]),
            " (1 of 2 hosts did not answer)"
        );
        assert_eq!(silent_hosts(&[report("h0", "ok")]), "");
    }
}
