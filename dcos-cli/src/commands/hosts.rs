//! `dcos hosts`: every selected host, its state and summary (`GET /v1/host` on each k2i),
//! or with `--seed` (and no inventory or `--hosts`) the member list of that middlecon
//! (`Membership.Members`): membership's view of every host, dead ones included.
//!
//! Both warn on stderr about certificates that expire within `--warn-expiry` days: the
//! operator's own, and (asking each k2i) each host's k2i certificate, read from the TLS
//! handshake; `-o json` carries the same as `certificate` fields.

use super::{Context, SetupError};
use crate::cli::Format;
use crate::cli::{FleetArgs, HostsArgs, TlsArgs};
use crate::fanout::HostReport;
use crate::output;
use crate::table;
use dcos_core::model::HostSummary;
use dcos_proto::v1 as pb;

pub async fn run(ctx: &Context, tls: &TlsArgs, args: &HostsArgs) -> Result<u8, SetupError> {
    let mine = Expiry::new(super::identity(tls)?.peer.not_after, args.warn_expiry);
    mine.warn("your certificate");
    let answers = ctx.fanout.get_all::<HostSummary>(&ctx.targets, |_| "/v1/host".into()).await;
    let mut reports = Vec::new();
    let mut rows = Vec::new();
    let mut items = Vec::new();
    for mut a in answers {
        let t = &ctx.targets[a.target];
        let address = t.k2i.trim_start_matches("https://").to_string();
        match &a.value {
            Some(h) => {
                a.report.host = h.name.clone();
                rows.push(vec![
                    h.name.clone(),
                    h.dc.clone(),
                    "alive".into(),
                    address.clone(),
                    format!("{:.2}", h.load[0]),
                    h.agent_version.clone(),
                    h.cpu_percent.map(|c| format!("{c:.0}")).unwrap_or_else(|| "-".into()),
                    format!(
                        "{}/{}",
                        table::human_bytes(h.mem_used_bytes),
                        table::human_bytes(h.mem_total_bytes)
                    ),
                    h.processes.to_string(),
                ]);
                let mut item = output::with_host(&h.name, h);
                item["state"] = "alive".into();
                item["address"] = address.into();
                if let Some(not_after) = ctx.fanout.client.certificate_not_after(&t.k2i) {
                    let expiry = Expiry::new(not_after, args.warn_expiry);
                    expiry.warn(&format!("{}'s certificate (k2i {})", h.name, t.k2i));
                    item["certificate"] = expiry.json();
                }
                items.push(item);
            }
            None => {
                rows.push(vec![
                    t.name.clone(),
                    t.dc.clone(),
                    a.report.status.to_string(),
                    address.clone(),
                    "-".into(),
                    "-".into(),
                    "-".into(),
                    "-".into(),
                    "-".into(),
                ]);
                items.push(serde_json::json!({
                    "host": t.name, "dc": t.dc, "state": a.report.status, "address": address,
                }));
            }
        }
        reports.push(a.report);
    }
    match ctx.format {
        Format::Json => output::print_line(&serde_json::json!({
            "hosts": reports, "members": items, "certificate": mine.json(),
        })),
        Format::Ndjson => items.iter().for_each(output::print_line),
        Format::Table => {
            let cut: Vec<Vec<String>> = rows
                .into_iter()
                .map(|mut r| {
                    r.truncate(6);
                    r
                })
                .collect();
            print!("{}", table::render(&["NAME", "DC", "STATE", "ADDRESS", "LOAD", "VERSION"], &cut));
        }
        Format::Wide => print!(
            "{}",
            table::render(
                &["NAME", "DC", "STATE", "ADDRESS", "LOAD", "VERSION", "%CPU", "MEM", "PROCS"],
                &rows
            )
        ),
    }
    Ok(output::finish(&reports))
}

/// `dcos hosts --seed ADDR`: the members the seed's middlecon lists, narrowed by `--dc`
/// and `--label`. Exit 0 once the seed answered (the STATE column tells who is dead).
/// Each member's certificate is checked as membership gossips it (its middlecon's).
pub async fn run_seed(
    tls: &TlsArgs,
    fleet: &FleetArgs,
    seed: &str,
    args: &HostsArgs,
) -> Result<u8, SetupError> {
    let started = std::time::Instant::now();
    let mine = Expiry::new(super::identity(tls)?.peer.not_after, args.warn_expiry);
    mine.warn("your certificate");
    let (addr, reply) = crate::api::members(tls, fleet, seed).await?;
    let wanted = crate::fleet::parse_labels(&fleet.labels)?;
    let members: Vec<&pb::Member> = reply
        .members
        .iter()
        .filter(|m| crate::fleet::selected(&m.dc, &m.labels, fleet.dc.as_deref(), &wanted))
        .collect();
    let state = |m: &pb::Member| match m.state() {
        pb::MemberState::Alive => "alive",
        pb::MemberState::Suspect => "suspect",
        pb::MemberState::Dead => "dead",
        pb::MemberState::Unspecified => "unknown",
    };
    let load = |m: &pb::Member| (m.load >= 0.0).then_some(m.load);
    let dash = |s: &str| if s.is_empty() { "-".to_string() } else { s.to_string() };
    let expiry =
        |m: &pb::Member| (m.cert_not_after > 0).then(|| Expiry::new(m.cert_not_after, args.warn_expiry));
    for m in &members {
        if let Some(e) = expiry(m) {
            e.warn(&format!("{}'s certificate (middlecon {})", m.name, m.addr));
        }
    }
    match fleet.output {
        Format::Json | Format::Ndjson => {
            let items: Vec<serde_json::Value> = members
                .iter()
                .map(|m| {
                    let mut item = serde_json::json!({
                        "host": m.name, "name": m.name, "dc": m.dc, "state": state(m),
                        "address": m.addr, "load": load(m), "version": m.version,
                        "labels": m.labels, "k2i": m.k2i, "api": m.api, "runtimes": m.runtimes,
                    });
                    if let Some(e) = expiry(m) {
                        item["certificate"] = e.json();
                    }
                    item
                })
                .collect();
            let report = HostReport {
                host: reply.host.clone(),
                address: addr.to_string(),
                status: "ok",
                error: None,
                elapsed_ms: started.elapsed().as_millis() as u64,
                via: None,
                age_ms: None,
            };
            if fleet.output == Format::Json {
                output::print_line(&serde_json::json!({
                    "hosts": [report], "members": items, "certificate": mine.json(),
                }));
            } else {
                items.iter().for_each(output::print_line);
                output::print_line(&output::host_status_line(&report));
            }
        }
        Format::Table | Format::Wide => {
            let rows: Vec<Vec<String>> = members
                .iter()
                .map(|m| {
                    let mut row = vec![
                        m.name.clone(),
                        dash(&m.dc),
                        state(m).to_string(),
                        dash(&m.addr),
                        load(m).map(|l| format!("{l:.2}")).unwrap_or_else(|| "-".into()),
                        dash(&m.version),
                    ];
                    if fleet.output == Format::Wide {
                        let labels: Vec<String> = m.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
                        row.extend([
                            dash(&m.k2i),
                            dash(&m.api),
                            dash(&m.runtimes.join(",")),
                            dash(&labels.join(",")),
                        ]);
                    }
                    row
                })
                .collect();
            let mut header = vec!["NAME", "DC", "STATE", "ADDRESS", "LOAD", "VERSION"];
            if fleet.output == Format::Wide {
                header.extend(["K2I", "API", "RUNTIMES", "LABELS"]);
            }
            print!("{}", table::render(&header, &rows));
        }
    }
    Ok(crate::exit::OK)
}

/// When a certificate expires, against the warning window.
struct Expiry {
    not_after: i64,
    /// Whole days left (negative: expired).
    days_left: i64,
    expiring: bool,
}

impl Expiry {
    fn new(not_after: i64, warn_days: u32) -> Expiry {
        let left = not_after - dcos_core::unix_ms(std::time::SystemTime::now()) / 1000;
        let expiring = warn_days > 0 && left <= i64::from(warn_days) * 86_400;
        Expiry { not_after, days_left: left.div_euclid(86_400), expiring }
    }

    /// A warning on stderr about `whose` certificate, if it is expiring.
    fn warn(&self, whose: &str) {
        if self.expiring {
            eprintln!(
                "dcos: warning: {whose} expires {} (in {} days): issue a new one (dcos certs issue) and put it in place",
                dcos_core::tls::rfc3339(self.not_after),
                self.days_left
            );
        }
    }

    fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "not_after": dcos_core::tls::rfc3339(self.not_after),
            "days_left": self.days_left,
            "expiring": self.expiring,
        })
    }
}
