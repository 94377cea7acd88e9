//! `dcos containers`: containers across the fleet (`GET /v1/containers`).

use super::{Context, SetupError};
use crate::cli::Format;
use crate::output;
use crate::table;
use dcos_core::model::ContainerList;
use k2i_client::fanout::Read;

pub async fn run(ctx: &Context) -> Result<u8, SetupError> {
    let answers = ctx.all_answers::<ContainerList>(Read::Containers, "").await;
    let mut reports = Vec::new();
    let mut items = Vec::new();
    let mut rows = Vec::new();
    for mut a in answers {
        if let Some(list) = a.value.take() {
            a.report.host = list.host.clone();
            for c in &list.containers {
                items.push(output::with_host(&list.host, c));
                let mut row = vec![
                    list.host.clone(),
                    c.id.chars().take(12).collect(),
                    c.name.to_string(),
                    c.runtime.as_str().to_string(),
                    c.status.clone(),
                    c.pid.map(|p| p.to_string()).unwrap_or_else(|| "-".into()),
                    c.processes.to_string(),
                    c.cpu_percent.map(|v| format!("{v:.1}")).unwrap_or_else(|| "-".into()),
                    c.mem_bytes.map(table::human_bytes).unwrap_or_else(|| "-".into()),
                ];
                if ctx.format == Format::Wide {
                    row[1] = c.id.to_string();
                    row.push(c.mem_limit_bytes.map(table::human_bytes).unwrap_or_else(|| "-".into()));
                    row.push(c.service.as_deref().unwrap_or("-").to_string());
                    row.push(c.cgroup.to_string());
                }
                rows.push(row);
            }
        }
        reports.push(a.report);
    }
    match ctx.format {
        Format::Json => output::print_document("containers", &reports, &items),
        Format::Ndjson => output::print_ndjson(&items, &reports),
        Format::Table => print!(
            "{}",
            table::render(&["HOST", "ID", "NAME", "RUNTIME", "STATUS", "PID", "PROCS", "%CPU", "MEM"], &rows)
        ),
        Format::Wide => print!(
            "{}",
            table::render(
                &[
                    "HOST", "ID", "NAME", "RUNTIME", "STATUS", "PID", "PROCS", "%CPU", "MEM", "LIMIT",
                    "SERVICE", "CGROUP"
                ],
                &rows
            )
        ),
    }
    Ok(output::finish(&reports))
}
