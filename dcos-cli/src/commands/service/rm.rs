//! `dcos service rm NAME [--drain D]`: finds the hosts that have NAME (every selected host's
//! `Services.List` at once), then asks each of them at once to close its front, drain (for
//! `--drain`, else the service's own) and stop its instances, and forget it. Prints the
//! instances stopped per host: NAME HOST STOPPED. Hosts that did not answer may still have
//! it: they are named, with the exit status of SPEC section 6.

use super::create::STOP_MORE;
use super::{list_all, print, silent_hosts};
use crate::api::ApiHost;
use crate::cli::{FleetArgs, ServiceRmArgs, TlsArgs};
use crate::fanout::HostReport;
use crate::output;
use crate::workload::{Answer, Session, WorkloadError};
use dcos_proto::v1 as pb;
use middlecon_client::ServicesClient;
use serde::Serialize;
use std::time::Duration;

/// What was removed from one host, as `-o json` prints it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RemovedItem {
    pub host: String,
    pub name: String,
    /// Instances stopped.
    pub stopped: u32,
}

pub const HEADER: [&str; 3] = ["NAME", "HOST", "STOPPED"];

/// The hosts among `listed` that have service `name`, and the longest drain of theirs.
pub fn placing(listed: &[Answer<pb::ListServicesReply>], name: &str) -> (Vec<ApiHost>, Duration) {
    let mut hosts = Vec::new();
    let mut drain = Duration::ZERO;
    for a in listed {
        let Ok(reply) = &a.result else { continue };
        if let Some(spec) = reply.services.iter().filter_map(|s| s.spec.as_ref()).find(|s| s.name == name) {
            hosts.push(a.host.clone());
            drain = drain.max(Duration::from_millis(spec.drain_ms));
        }
    }
    (hosts, drain)
}

pub async fn run(tls: &TlsArgs, fleet: &FleetArgs, args: &ServiceRmArgs) -> Result<u8, WorkloadError> {
    let hosts = crate::api::hosts(tls, fleet, &args.api).await?;
    let session = Session::new(tls, fleet, &args.api)?;
    let name = &args.name;
    let listed = list_all(&session, &hosts).await;
    let (having, drain) = placing(&listed, name);
    let mut reports: Vec<HostReport> = listed.iter().map(|a| a.report.clone()).collect();
    if having.is_empty() {
        output::finish(&reports);
        return Err(WorkloadError::Failed {
            code: "not_found",
            message: format!("no service {name} in the fleet{}", silent_hosts(&reports)),
        });
    }
    let drain_ms = args.drain.map_or(0, |d| d.as_millis().try_into().unwrap_or(u64::MAX));
    let more = args.drain.unwrap_or(drain) + STOP_MORE;
    let removed = session
        .on_all(&having, |h| {
            let request = pb::RemoveServiceRequest { name: name.clone(), drain_ms };
            session.call(more, h, ServicesClient::new, request, |mut c, r| async move { c.remove(r).await })
        })
        .await;
    let mut items = Vec::new();
    for a in removed {
        if let Some(r) = reports.iter_mut().find(|r| r.host == a.host.name) {
            *r = a.report;
        }
        if let Ok(reply) = a.result {
            items.push(RemovedItem { host: a.host.name, name: name.clone(), stopped: reply.stopped });
        }
    }
    print(session.format, &reports, "services", &items, |_| {
        let rows =
            items.iter().map(|i| vec![i.name.clone(), i.host.clone(), i.stopped.to_string()]).collect();
        (HEADER.to_vec(), rows)
    });
    Ok(output::finish(&reports))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::Endpoint;
    use crate::commands::service::tests::{report, summary};

    #[test]
    fn only_the_hosts_that_have_it_are_asked_given_their_longest_drain() {
        let answer = |host: &str, services: Vec<pb::ServiceSummary>| Answer {
            host: ApiHost::new(host, Endpoint::Tcp("10.0.0.1:7442".parse().unwrap())),
            report: report(host, "ok"),
            result: Ok(pb::ListServicesReply { host: host.into(), services }),
        };
        let mut long = summary("web", 8080, 0);
        long.spec.as_mut().unwrap().drain_ms = 45_000;
        let mut short = summary("web", 8080, 0);
        short.spec.as_mut().unwrap().drain_ms = 1_000;
        let listed = vec![
            answer("h0", vec![short, summary("api", 9000, 0)]),
            answer("h1", vec![summary("api", 9000, 0)]),
            answer("h2", vec![long]),
        ];
        let (hosts, drain) = placing(&listed, "web");
        assert_eq!(hosts.iter().map(|h| h.name.as_str()).collect::<Vec<_>>(), ["h0", "h2"]);
        assert_eq!(drain, Duration::from_secs(45));
        assert!(placing(&listed, "nope").0.is_empty());
        let v =
            serde_json::to_value(RemovedItem { host: "h0".into(), name: "web".into(), stopped: 2 }).unwrap();
        assert_eq!(v, serde_json::json!({"host": "h0", "name": "web", "stopped": 2}));
    }
}
