//! `dcos migrate N --to HOST [--from H] [--runtime R] [--mode cold|live] [--bwlimit RATE]`:
//! `Workloads.Migrate` on the source's API (H, or the one selected host whose `List` shows
//! N), following its progress to the end, then a summary: phase times, bytes sent,
//! downtime, elapsed, epoch. Exit 0 when it is done, 1 otherwise with `dcos: CODE: ERROR`.

use crate::cli::{FleetArgs, Format, MigrateArgs, TlsArgs};
use crate::commands::SetupError;
use crate::migration::{self, follow, open, summary, Display, Tracker, STALL};
use crate::output;
use crate::workload::{Session, WorkloadError};
use dcos_proto::v1 as pb;
use std::time::Instant;

pub async fn run(tls: &TlsArgs, fleet: &FleetArgs, args: &MigrateArgs) -> Result<u8, WorkloadError> {
    if args.to.trim().is_empty() {
        return Err(SetupError::Usage("--to: give the target host's name".into()).into());
    }
    let already = || SetupError::Usage(format!("{} is already on {}", args.name, args.to));
    if args.from.as_deref() == Some(args.to.as_str()) {
        return Err(already().into());
    }
    let session = Session::new(tls, fleet, &args.moving.api)?;
    let from = session.find(tls, fleet, &args.moving.api, &args.name, args.from.as_deref(), "--from").await?;
    if from.name == args.to {
        return Err(already().into());
    }
    let mut client =
        session.client(&from, Instant::now() + session.timeout).await.map_err(|f| f.into_error(&from))?;
    let request = pb::MigrateRequest {
        name: args.name.clone(),
        to: args.to.clone(),
        mode: migration::mode(args.moving.mode),
        bwlimit: args.moving.bwlimit.unwrap_or(0),
        runtime: args.runtime.clone().unwrap_or_default(),
    };
    let mut tracker = Tracker::new(&from.name, args.moving.mode.as_str(), Display::for_stderr());
    tracker.expect(&args.name, &args.to);
    let end = match open(client.migrate(request), STALL).await {
        Ok(stream) => follow(stream, STALL, &mut tracker, true).await,
        Err(end) => end,
    };
    let m = tracker.close(&end).swap_remove(0);
    match session.format {
        Format::Json | Format::Ndjson => output::print_line(&serde_json::json!({ "migration": m })),
        Format::Table | Format::Wide => print!("{}", summary(&m)),
    }
    if m.status == "done" {
        return Ok(crate::exit::OK);
    }
    eprintln!("dcos: {}: {}", m.error_code.as_deref().unwrap_or("failed"), m.error.as_deref().unwrap_or(""));
    Ok(crate::exit::FAILED)
}
