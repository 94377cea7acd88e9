//! `dcos workloads`: every selected host's `Workloads.List` at once (the inventory's hosts
//! with an `api`, or the one `--api`), one table NAME HOST RUNTIME STATUS PID EPOCH COMMAND.
//! Hosts that do not answer are named on stderr with the exit status of SPEC section 6.

use crate::cli::{FleetArgs, Format, TlsArgs, WorkloadsArgs};
use crate::workload::{Session, WorkloadError, WorkloadItem, LIST_HEADER, LIST_HEADER_WIDE};
use crate::{output, table};

pub async fn run(tls: &TlsArgs, fleet: &FleetArgs, args: &WorkloadsArgs) -> Result<u8, WorkloadError> {
    let hosts = crate::api::hosts(tls, fleet, &args.api).await?;
    let session = Session::new(tls, fleet, &args.api)?;
    let listed = session.list_all(&hosts).await;
    let mut items = Vec::new();
    let mut reports = Vec::new();
    for l in listed {
        let mut mine: Vec<WorkloadItem> =
            l.workloads.iter().map(|w| WorkloadItem::new(w, &l.host.name)).collect();
        mine.sort_by(|a, b| a.name.cmp(&b.name));
        items.extend(mine);
        reports.push(l.report);
    }
    match session.format {
        Format::Json => output::print_document("workloads", &reports, &items),
        Format::Ndjson => output::print_ndjson(&items, &reports),
        Format::Table => {
            let rows: Vec<Vec<String>> = items.iter().map(|i| i.list_row(false)).collect();
            print!("{}", table::render(&LIST_HEADER, &rows));
        }
        Format::Wide => {
            let rows: Vec<Vec<String>> = items.iter().map(|i| i.list_row(true)).collect();
            print!("{}", table::render(&LIST_HEADER_WIDE, &rows));
        }
    }
    Ok(output::finish(&reports))
}
