//! `dcos service ls`: every selected host's `Services.List` at once, one row per service
//! with its figures summed over the hosts that answered with it: NAME PORT HOSTS INSTANCES
//! INFLIGHT CONNECTIONS COLD_STARTS (`-o wide`: RENEWALS FAILURES TIMEOUTS SPILLED THROTTLED
//! LAST_ERROR). Hosts that do not answer are named on stderr with the exit status of SPEC
//! section 6.

use super::{list_all, print, Counters, TROUBLES};
use crate::cli::{FleetArgs, ServiceLsArgs, TlsArgs};
use crate::fanout::HostReport;
use crate::output;
use crate::workload::{dash, Answer, Session, WorkloadError};
use dcos_proto::v1 as pb;
use serde::Serialize;
use std::collections::BTreeMap;

/// A service across the fleet, as `-o json` prints it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ServiceItem {
    pub name: String,
    /// The front's port (the first answering host's, should they differ).
    pub port: u32,
    /// How many of the hosts that answered place it.
    pub hosts: usize,
    #[serde(flatten)]
    pub counters: Counters,
    /// The hosts that answered with it.
    pub on: Vec<String>,
    /// Every host its definition names (the first answering host's).
    pub placed: Vec<String>,
    /// The latest failure on each host that has one.
    pub last_errors: BTreeMap<String, String>,
}

pub const HEADER: [&str; 7] =
    ["NAME", "PORT", "HOSTS", "INSTANCES", "INFLIGHT", "CONNECTIONS", "COLD_STARTS"];

impl ServiceItem {
    /// [`HEADER`]'s columns; wide: then [`TROUBLES`] and LAST_ERROR (`host: message`, the
    /// first one).
    pub fn row(&self, wide: bool) -> Vec<String> {
        let mut row = vec![self.name.clone(), self.port.to_string(), self.hosts.to_string()];
        row.extend(self.counters.now());
        if wide {
            row.extend(self.counters.troubles());
            let last = self.last_errors.iter().next().map(|(h, e)| format!("{h}: {e}"));
            row.push(dash(last.as_deref().unwrap_or_default()));
        }
        row
    }
}

/// One item per service, by name, summed over the hosts that answered.
pub fn summarize(answers: &[Answer<pb::ListServicesReply>]) -> Vec<ServiceItem> {
    let mut by_name: BTreeMap<String, ServiceItem> = BTreeMap::new();
    for a in answers {
        let Ok(reply) = &a.result else { continue };
        for s in &reply.services {
            let spec = s.spec.clone().unwrap_or_default();
            let item = by_name.entry(spec.name.clone()).or_insert_with(|| ServiceItem {
                name: spec.name.clone(),
                port: spec.port,
                hosts: 0,
                counters: Counters::default(),
                on: Vec::new(),
                placed: spec.hosts.clone(),
                last_errors: BTreeMap::new(),
            });
            item.hosts += 1;
            item.counters.add(&Counters::of(s));
            item.on.push(a.host.name.clone());
            if !s.last_error.is_empty() {
                item.last_errors.insert(a.host.name.clone(), s.last_error.clone());
            }
        }
    }
    by_name.into_values().collect()
}

pub async fn run(tls: &TlsArgs, fleet: &FleetArgs, args: &ServiceLsArgs) -> Result<u8, WorkloadError> {
    let hosts = crate::api::hosts(tls, fleet, &args.api).await?;
    let session = Session::new(tls, fleet, &args.api)?;
    let answers = list_all(&session, &hosts).await;
    let items = summarize(&answers);
    let reports: Vec<HostReport> = answers.into_iter().map(|a| a.report).collect();
    print(session.format, &reports, "services", &items, |wide| {
        let mut header = HEADER.to_vec();
        if wide {
            header.extend(TROUBLES);
            header.push("LAST_ERROR");
        }
        (header, items.iter().map(|i| i.row(wide)).collect())
    });
    Ok(output::finish(&reports))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{ApiHost, Endpoint};
    use crate::commands::service::tests::{keys, report, summary};
    use crate::workload::Fault;

    fn answer(host: &str, services: Vec<pb::ServiceSummary>) -> Answer<pb::ListServicesReply> {
        Answer {
            host: ApiHost::new(host, Endpoint::Tcp("10.0.0.1:7442".parse().unwrap())),
            report: report(host, "ok"),
            result: Ok(pb::ListServicesReply { host: host.into(), services }),
        }
    }

    #[test]
    fn services_are_summed_over_the_hosts_that_place_them() {
        let mut failing = summary("web", 8080, 10);
        failing.last_error = "start timed out".into();
        let silent = Answer {
            host: ApiHost::new("h2", Endpoint::Tcp("10.0.0.3:7442".parse().unwrap())),
            report: report("h2", "timeout"),
            result: Err(Fault::Timeout(std::time::Duration::from_secs(3))),
        };
        let answers = vec![
            answer("h0", vec![summary("web", 8080, 0), summary("api", 9000, 1)]),
            answer("h1", vec![failing]),
            silent,
        ];
        let items = summarize(&answers);
        assert_eq!(items.iter().map(|i| i.name.as_str()).collect::<Vec<_>>(), ["api", "web"]);
        let web = &items[1];
        assert_eq!((web.port, web.hosts, &web.on), (8080, 2, &vec!["h0".to_string(), "h1".into()]));
        // instances 0+10, inflight 1+11, connections 2+12, cold starts 3+13.
        assert_eq!(web.row(false), ["web", "8080", "2", "10", "12", "14", "16"]);
        assert_eq!(
            web.row(true)[7..],
            [
                "18".to_string(),
                "22".into(),
                "20".into(),
                "24".into(),
                "26".into(),
                "h1: start timed out".into()
            ]
        );
        assert_eq!(items[0].row(true).last().unwrap(), "-");
        let v = serde_json::to_value(web).unwrap();
        let spec_s = "name port hosts instances inflight connections cold_starts";
        assert!(keys(&v).starts_with(spec_s), "{}", keys(&v));
        assert_eq!(v["placed"], serde_json::json!(["h0", "h1"]));
        assert_eq!(v["last_errors"], serde_json::json!({"h1": "start timed out"}));
        assert!(summarize(&answers[2..]).is_empty());
    }
}
