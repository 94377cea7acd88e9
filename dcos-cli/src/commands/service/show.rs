//! `dcos service show NAME`: `Services.Show` on every selected host at once; one row per
//! instance across the hosts: HOST ID PID STATE STARTED CONNECTIONS INFLIGHT (`-o wide`:
//! PORT, the loopback port it listens on, and PATH: `kernel` when the kernel sends it new
//! connections, else `front`), the spare kept by `--prestart` marked; below,
//! each host's counters and last error. A host that answers without the service does not
//! have it; when no host has it: `not_found`, exit 1.

use super::{silent_hosts, HostService, COUNTERS_HEADER};
use crate::cli::{FleetArgs, Format, ServiceShowArgs, TlsArgs};
use crate::fanout::HostReport;
use crate::output;
use crate::workload::{rfc3339, Session, WorkloadError};
use dcos_proto::v1 as pb;
use middlecon_client::ServicesClient;
use serde::Serialize;
use std::time::Duration;

/// An instance, as `-o json` prints it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InstanceItem {
    pub host: String,
    pub service: String,
    /// Its workload's name.
    pub id: String,
    pub pid: Option<u32>,
    /// `starting`, `ready` or `draining`.
    pub state: &'static str,
    /// The started, idle instance `--prestart` keeps for the next cold start.
    pub spare: bool,
    /// The loopback port it listens on.
    pub port: u32,
    /// The kernel sends it the service's new connections (else the front relays them).
    pub steered: bool,
    /// RFC 3339.
    pub started_at: Option<String>,
    /// Connections it took since it started.
    pub connections: u64,
    /// Connections open to it now.
    pub inflight: u32,
}

pub fn state_word(state: i32) -> &'static str {
    match pb::InstanceState::try_from(state) {
        Ok(pb::InstanceState::Starting) => "starting",
        Ok(pb::InstanceState::Ready) => "ready",
        Ok(pb::InstanceState::Draining) => "draining",
        _ => "unknown",
    }
}

pub const HEADER: [&str; 7] = ["HOST", "ID", "PID", "STATE", "STARTED", "CONNECTIONS", "INFLIGHT"];

impl InstanceItem {
    pub fn new(host: &str, i: &pb::ServiceInstance) -> InstanceItem {
        InstanceItem {
            host: host.to_string(),
            service: i.service.clone(),
            id: i.id.clone(),
            pid: (i.pid != 0).then_some(i.pid),
            state: state_word(i.state),
            spare: i.spare,
            port: i.port,
            steered: i.steered,
            started_at: (i.started_unix_ms != 0).then(|| rfc3339(i.started_unix_ms)),
            connections: i.connections,
            inflight: i.inflight,
        }
    }

    /// [`HEADER`]'s columns (STATE `ready (spare)` for the spare); wide: then PORT and PATH.
    pub fn row(&self, wide: bool) -> Vec<String> {
        let mut row = vec![
            self.host.clone(),
            self.id.clone(),
            self.pid.map_or_else(|| "-".into(), |p| p.to_string()),
            if self.spare { format!("{} (spare)", self.state) } else { self.state.to_string() },
            self.started_at.clone().unwrap_or_else(|| "-".into()),
            self.connections.to_string(),
            self.inflight.to_string(),
        ];
        if wide {
            row.push(self.port.to_string());
            row.push(if self.steered { "kernel" } else { "front" }.to_string());
        }
        row
    }
}

/// What the hosts that have the service said: its instances, and its counters per host.
pub fn collect(answers: &[(String, pb::ShowServiceReply)]) -> (Vec<InstanceItem>, Vec<HostService>) {
    let mut instances = Vec::new();
    let mut services = Vec::new();
    for (host, reply) in answers {
        let mut mine: Vec<InstanceItem> =
            reply.instances.iter().map(|i| InstanceItem::new(host, i)).collect();
        mine.sort_by(|a, b| a.id.cmp(&b.id));
        instances.extend(mine);
        services.push(HostService::new(host, &reply.service.clone().unwrap_or_default()));
    }
    (instances, services)
}

/// The instances' table, a blank line, and the counters' table.
pub fn render(instances: &[InstanceItem], services: &[HostService], wide: bool) -> String {
    let mut header = HEADER.to_vec();
    if wide {
        header.extend(["PORT", "PATH"]);
    }
    let rows: Vec<Vec<String>> = instances.iter().map(|i| i.row(wide)).collect();
    let counters: Vec<Vec<String>> = services.iter().map(super::counters_row).collect();
    format!("{}\n{}", crate::table::render(&header, &rows), crate::table::render(&COUNTERS_HEADER, &counters))
}

pub async fn run(tls: &TlsArgs, fleet: &FleetArgs, args: &ServiceShowArgs) -> Result<u8, WorkloadError> {
    let hosts = crate::api::hosts(tls, fleet, &args.api).await?;
    let session = Session::new(tls, fleet, &args.api)?;
    let name = &args.name;
    let asking = &session;
    let answers =
        session
            .on_all(&hosts, |h| async move {
                let request = pb::ShowServiceRequest { name: name.clone() };
                match asking
                    .call(Duration::ZERO, h, ServicesClient::new, request, |mut c, r| async move {
                        c.show(r).await
                    })
                    .await
                {
                    Ok(reply) => Ok(Some(reply)),
                    Err(f) if f.is_status(tonic::Code::NotFound) => Ok(None),
                    Err(f) => Err(f),
                }
            })
            .await;
    let reports: Vec<HostReport> = answers.iter().map(|a| a.report.clone()).collect();
    let having: Vec<(String, pb::ShowServiceReply)> = answers
        .into_iter()
        .filter_map(|a| a.result.ok().flatten().map(|reply| (a.host.name, reply)))
        .collect();
    if having.is_empty() {
        output::finish(&reports);
        return Err(WorkloadError::Failed {
            code: "not_found",
            message: format!("no service {name} in the fleet{}", silent_hosts(&reports)),
        });
    }
    let (instances, services) = collect(&having);
    match session.format {
        Format::Json => {
            #[derive(Serialize)]
            struct Document<'a> {
                hosts: &'a [HostReport],
                instances: &'a [InstanceItem],
                services: &'a [HostService],
            }
            output::print_line(&Document { hosts: &reports, instances: &instances, services: &services });
        }
        Format::Ndjson => {
            instances.iter().for_each(output::print_line);
            for s in &services {
                output::print_line(&serde_json::json!({ "service": s }));
            }
            reports.iter().for_each(|r| output::print_line(&output::host_status_line(r)));
        }
        Format::Table | Format::Wide => {
            print!("{}", render(&instances, &services, session.format == Format::Wide))
        }
    }
    Ok(output::finish(&reports))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::service::tests::{keys, summary};

    fn instance(id: &str, state: pb::InstanceState, spare: bool) -> pb::ServiceInstance {
        pb::ServiceInstance {
            service: "web".into(),
            id: id.into(),
            pid: 4242,
            state: state as i32,
            started_unix_ms: 1_700_000_000_000,
            connections: 5,
            inflight: 1,
            port: 40001,
            spare,
            steered: state == pb::InstanceState::Ready && !spare,
        }
    }

    #[test]
    fn instances_across_hosts_then_each_host_s_counters() {
        let h0 = pb::ShowServiceReply {
            host: "h0".into(),
            service: Some(summary("web", 8080, 0)),
            instances: vec![
                instance("web.2", pb::InstanceState::Ready, true),
                instance("web.1", pb::InstanceState::Ready, false),
            ],
        };
        let mut draining = instance("web.7", pb::InstanceState::Draining, false);
        draining.pid = 0;
        draining.started_unix_ms = 0;
        let mut s = summary("web", 8080, 1);
        s.last_error = "web.6: exited with 1".into();
        let h1 = pb::ShowServiceReply { host: "h1".into(), service: Some(s), instances: vec![draining] };
        let (instances, services) = collect(&[("h0".into(), h0), ("h1".into(), h1)]);
        assert_eq!(instances.iter().map(|i| i.id.as_str()).collect::<Vec<_>>(), ["web.1", "web.2", "web.7"]);
        assert_eq!(
            instances[0].row(false),
            ["h0", "web.1", "4242", "ready", "2023-11-14T22:13:20Z", "5", "1"]
        );
        assert_eq!(instances[1].row(false)[3], "ready (spare)");
        assert_eq!(instances[2].row(true), ["h1", "web.7", "-", "draining", "-", "5", "1", "40001", "front"]);
        assert_eq!(instances[0].row(true)[8], "kernel");
        let text = render(&instances, &services, false);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("HOST  ID     PID   STATE"), "{text}");
        assert_eq!(lines[4], "");
        assert!(lines[5].starts_with("HOST  INSTANCES  INFLIGHT  CONNECTIONS  COLD_STARTS"), "{text}");
        assert!(lines[7].starts_with("h1") && lines[7].ends_with("web.6: exited with 1"), "{text}");
        let v = serde_json::to_value(&instances[1]).unwrap();
        assert_eq!(keys(&v), "host service id pid state spare port steered started_at connections inflight");
        assert_eq!(
            (&v["state"], &v["spare"], &v["started_at"]),
            (&"ready".into(), &true.into(), &"2023-11-14T22:13:20Z".into())
        );
        let v = serde_json::to_value(&instances[2]).unwrap();
        assert!(v["pid"].is_null() && v["started_at"].is_null(), "{v}");
        assert_eq!(state_word(0), "unknown");
        assert_eq!(state_word(pb::InstanceState::Starting as i32), "starting");
    }
}
