//! Settling migrations left in doubt (source side): a source that asked its target to start
//! a workload and got no answer keeps the workload frozen and asks the target, until it
//! answers, whether it started that epoch; then deletes its copy (started there) or resumes
//! it (aborted). A restarted daemon finds such migrations in its records
//! (`Workloads::open` keeps them) and [`recover`] settles them.

use super::{Attempt, Mover, Verdict};
use crate::workloads::record::Phase;
use crate::workloads::Record;
use std::time::Duration;

/// How often a migration in doubt asks its target again.
const RETRY: Duration = Duration::from_secs(1);

/// Settles the in-doubt migration of `name`: asks its target until it answers.
pub(super) async fn recover_one(mover: Mover, name: String) {
    let Some(Record { phase: Phase::MigratingOut { to, epoch, committed: true }, .. }) =
        mover.workloads.get(&name)
    else {
        return;
    };
    let attempt = Attempt { name: name.clone(), epoch };
    loop {
        match mover.settle_once(&to, &attempt).await {
            Ok(Verdict::Started) => {
                if let Some(r) = mover.workloads.get(&name) {
                    mover.workloads.discard(&r).await;
                }
                tracing::info!(workload = %name, %to, epoch, "in-doubt migration settled: runs on the target");
                return;
            }
            Ok(Verdict::Aborted) => {
                mover.undo(&name, epoch, true).await;
                tracing::info!(workload = %name, %to, epoch, "in-doubt migration settled: runs here again");
                return;
            }
            Err(e) => tracing::debug!(workload = %name, "still in doubt: {e}"),
        }
        tokio::time::sleep(RETRY.min(mover.timings.settle_patience)).await;
    }
}

/// Starts settling every migration a previous run of this daemon left in doubt.
pub fn recover(mover: &Mover) {
    for r in mover.workloads.list_records() {
        if matches!(r.phase, Phase::MigratingOut { committed: true, .. }) {
            tokio::spawn(recover_one(mover.clone(), r.name));
        }
    }
}
