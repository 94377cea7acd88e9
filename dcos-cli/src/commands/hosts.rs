//! `dcos hosts`: every selected host, its state and summary (`GET /v1/host`).

use super::{Context, SetupError};
use crate::cli::Format;
use crate::output;
use crate::table;
use dcos_core::model::HostSummary;

pub async fn run(ctx: &Context) -> Result<u8, SetupError> {
    let answers = ctx.fanout.get_all::<HostSummary, _>(&ctx.targets, |_| "/v1/host".into()).await;
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
        Format::Json => output::print_document("members", &reports, &items),
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
