//! `dcos stop N [--host H]`: `Workloads.Stop` on the host that has N: H, or the one
//! selected host whose `List` shows it (none: exit 1, `no workload N in the fleet`).

use crate::cli::{FleetArgs, StopArgs, TlsArgs};
use crate::workload::{print_acted_on, Session, WorkloadError, WorkloadItem};
use dcos_proto::v1 as pb;

pub async fn run(tls: &TlsArgs, fleet: &FleetArgs, args: &StopArgs) -> Result<u8, WorkloadError> {
    let session = Session::new(tls, fleet, &args.api)?;
    let host = session.find(tls, fleet, &args.api, &args.name, args.host.as_deref(), "--host").await?;
    let request = pb::StopRequest { name: args.name.clone() };
    let reply = session
        // The daemon gives the container 5 s to end after SIGTERM before SIGKILL.
        .unary(std::time::Duration::from_secs(10), &host, request, |mut c, r| async move { c.stop(r).await })
        .await
        .map_err(|f| f.into_error(&host))?;
    let workload = reply.workload.unwrap_or_else(|| pb::Workload {
        name: args.name.clone(),
        status: "stopped".into(),
        ..Default::default()
    });
    print_acted_on(session.format, &[WorkloadItem::new(&workload, &host.name)]);
    Ok(crate::exit::OK)
}
