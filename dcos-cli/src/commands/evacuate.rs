//! `dcos evacuate HOST [--parallel N] [--to H,...] [--mode] [--bwlimit]`:
//! `Workloads.Evacuate` on HOST's API, one progress bar (or line) per workload, then the
//! table WORKLOAD FROM TO STATUS DOWNTIME BYTES ERROR. Exit 0 when every workload moved (or
//! there was none), 3 when some did not, 1 when none did.

use crate::cli::{EvacuateArgs, FleetArgs, Format, TlsArgs};
use crate::commands::SetupError;
use crate::migration::{self, evacuation_table, follow, open, Display, End, Tracker, STALL};
use crate::output;
use crate::workload::{Session, WorkloadError};
use dcos_proto::v1 as pb;
use std::time::Instant;

pub async fn run(tls: &TlsArgs, fleet: &FleetArgs, args: &EvacuateArgs) -> Result<u8, WorkloadError> {
    if args.to.iter().any(|t| t.trim().is_empty()) {
        return Err(SetupError::Usage("--to: an empty host name in the list".into()).into());
    }
    let host = crate::api::host(tls, fleet, &args.moving.api, &args.host).await?;
    let session = Session::new(tls, fleet, &args.moving.api)?;
    session.confirm(&host).await?;
    let mut client =
        session.client(&host, Instant::now() + session.timeout).await.map_err(|f| f.into_error(&host))?;
    let request = pb::EvacuateRequest {
        parallel: args.parallel.unwrap_or(0),
        to: args.to.clone(),
        mode: migration::mode(args.moving.mode),
        bwlimit: args.moving.bwlimit.unwrap_or(0),
    };
    let mut tracker = Tracker::new(&host.name, args.moving.mode.as_str(), Display::for_stderr());
    let end = match open(client.evacuate(request), STALL).await {
        Ok(stream) => follow(stream, STALL, &mut tracker, false).await,
        Err(end) => end,
    };
    if tracker.migrations.is_empty() {
        match end {
            End::Ended => {}
            End::Stalled(d) => {
                let message = format!("no word from {} ({}) for {}s", host.name, host.addr, d.as_secs());
                return Err(WorkloadError::Failed { code: "stalled", message });
            }
            End::Status(s) => {
                let (code, message) = crate::workload::status_parts(&s);
                let message = format!("{} ({}): {message}", host.name, host.addr);
                return Err(WorkloadError::Failed { code, message });
            }
        }
    }
    let ms = tracker.close(&end);
    match session.format {
        Format::Json => output::print_line(&serde_json::json!({ "migrations": ms })),
        Format::Ndjson => ms.iter().for_each(output::print_line),
        Format::Table | Format::Wide if ms.is_empty() => println!("nothing to evacuate on {}", host.name),
        Format::Table | Format::Wide => print!("{}", evacuation_table(&ms)),
    }
    for m in ms.iter().filter(|m| m.status != "done") {
        eprintln!(
            "dcos: {}: {}: {}",
            m.workload,
            m.error_code.as_deref().unwrap_or("failed"),
            m.error.as_deref().unwrap_or("")
        );
    }
    Ok(exit_status(&ms))
}

/// 0 all moved (or nothing to move), 1 none did, 3 some did.
pub fn exit_status(ms: &[crate::migration::Migration]) -> u8 {
    let done = ms.iter().filter(|m| m.status == "done").count();
    if done == ms.len() {
        crate::exit::OK
    } else if done == 0 {
        crate::exit::FAILED
    } else {
        crate::exit::PARTIAL
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::migration::Migration;

    #[test]
    fn exit_tells_all_some_none() {
        let done = || {
            let mut m = Migration::new("a", "h0", "h1", "cold");
            m.status = "done";
            m
        };
        let failed = || {
            let mut m = Migration::new("b", "h0", "h1", "cold");
            m.fail("transfer", "cut".into());
            m
        };
        assert_eq!(exit_status(&[]), crate::exit::OK);
        assert_eq!(exit_status(&[done(), done()]), crate::exit::OK);
        assert_eq!(exit_status(&[done(), failed()]), crate::exit::PARTIAL);
        assert_eq!(exit_status(&[failed()]), crate::exit::FAILED);
    }
}
