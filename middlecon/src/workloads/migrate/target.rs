//! The target side of a migration: what this host answers a source, as four peer services
//! (host role only, like all peer traffic), each a function over this host's workloads:
//!
//! - [`reserve`] (`dcos.workloads.reserve`): checks runtime, free space and that the name
//!   is free, and records an `Incoming` reservation for the attempt's epoch (dropped when
//!   idle: [`expire`]);
//! - [`receive`] (`dcos.workloads.transfer`, bulk): receives the root filesystem into the
//!   reservation;
//! - [`start`] (`dcos.workloads.start`): starts the received workload, then makes it
//!   `Owned` (the target's commit point) and answers;
//! - [`settle`] (`dcos.workloads.settle`): tells a source in doubt whether an epoch was
//!   started here; a reservation not started is dropped, so it can never start later.

use super::{decode, encode, Attempt, Received, Reserve, Timings, Verdict, SPACE_MARGIN};
use crate::workloads::record::Phase;
use crate::workloads::{check_name, transfer, Record, WorkloadError, Workloads};
use std::sync::Arc;
use tokio::io::AsyncRead;

/// `runc` or `crun` for a runtime named or given as a path by a peer.
fn runtime_kind(named: &str) -> Result<String, WorkloadError> {
    let kind = std::path::Path::new(named).file_name().and_then(|f| f.to_str()).unwrap_or("");
    match kind {
        "runc" | "crun" => Ok(kind.to_string()),
        _ => Err(WorkloadError::Precondition(format!(
            "runtime {named:?} is neither runc nor crun: this host will not run it for a peer"
        ))),
    }
}

/// `dcos.workloads.reserve`.
pub async fn reserve(w: &Arc<Workloads>, t: &Timings, payload: &[u8]) -> Result<Vec<u8>, WorkloadError> {
    let req: Reserve = decode(super::RESERVE, payload)?;
    let name = req.record.name.clone();
    check_name(&name)?;
    let mut record = req.record;
    // A peer names the runtime; this host decides which binary that is. Only the runtimes'
    // names cross hosts, never a path to run.
    record.runtime = w.containers().runtime(&runtime_kind(&record.runtime)?)?;
    let free = w.free_bytes()?;
    if free < req.bytes + SPACE_MARGIN {
        return Err(WorkloadError::NoSpace(format!(
            "{} has {} bytes free in {}; {name} needs {} bytes",
            w.host,
            free,
            w.dir().display(),
            req.bytes + SPACE_MARGIN
        )));
    }
    record.epoch = req.epoch;
    record.phase = Phase::Incoming { from: req.from.clone(), epoch: req.epoch, received: false };
    let host = w.host.clone();
    w.update(&name, |cur| match cur {
        Some(c) => Err(WorkloadError::Conflict(format!(
            "{host} already has a workload named {name:?} ({})",
            c.phase.word()
        ))),
        None => Ok((Some(record.clone()), ())),
    })?;
    let dir = w.workload_dir(&name);
    let _ = crate::workloads::rootfs::remove(&dir);
    let made =
        std::fs::create_dir_all(dir.join("bundle")).map_err(crate::workloads::error::io_err(dir.display()));
    if let Err(e) = match made {
        Ok(()) => w.save(&record).await,
        Err(e) => Err(e),
    } {
        w.discard(&record).await;
        return Err(e);
    }
    tracing::info!(workload = %name, from = %req.from, epoch = req.epoch, "reserved for an incoming migration");
    tokio::spawn(expire(w.clone(), name, req.epoch, t.reservation_idle));
    Ok(encode(&serde_json::json!({})))
}

/// Drops the reservation `(name, epoch)` once it has been idle (not started, no transfer
/// running) for `idle`.
async fn expire(w: Arc<Workloads>, name: String, epoch: u64, idle: std::time::Duration) {
    loop {
        tokio::time::sleep(idle).await;
        let lock = w.name_lock(&name);
        let Ok(_guard) = lock.try_lock() else { continue };
        match w.get(&name) {
            Some(r) if matches!(r.phase, Phase::Incoming { epoch: e, .. } if e == epoch) => {
                tracing::warn!(workload = %name, epoch, "reservation expired unstarted: dropped");
                w.discard(&r).await;
                return;
            }
            _ => return,
        }
    }
}

/// The target's record of `a` if its phase allows `verb` (`allows`), else the conflict.
fn reserved(
    w: &Workloads,
    a: &Attempt,
    verb: &str,
    allows: impl Fn(&Phase) -> bool,
) -> Result<Record, WorkloadError> {
    match w.get(&a.name) {
        Some(rec) if allows(&rec.phase) => Ok(rec),
        other => Err(WorkloadError::Conflict(format!(
            "{} cannot {verb} {} for epoch {} ({})",
            w.host,
            a.name,
            a.epoch,
            other.map_or("no reservation", |o| o.phase.word())
        ))),
    }
}

/// `dcos.workloads.transfer`: the root filesystem of the attempt in `payload`, read from
/// `body` ([`transfer::receive_tree`]).
pub async fn receive(
    w: &Arc<Workloads>,
    t: &Timings,
    payload: &[u8],
    body: impl AsyncRead + Unpin + Send,
) -> Result<Vec<u8>, WorkloadError> {
    let a: Attempt = decode(super::TRANSFER, payload)?;
    let lock = w.name_lock(&a.name);
    let _guard = lock.lock().await;
    let record = reserved(w, &a, "receive", |p| p.can_receive(a.epoch))?;
    let dest = w.rootfs(&a.name);
    let _ = std::fs::remove_dir_all(&dest);
    match transfer::receive_tree(body, dest, t.stall).await {
        Ok(bytes) => {
            let mut done = record.clone();
            if let Phase::Incoming { received, .. } = &mut done.phase {
                *received = true;
            }
            w.save(&done).await?;
            w.update(&a.name, |_| Ok((Some(done.clone()), ())))?;
            tracing::info!(workload = %a.name, epoch = a.epoch, bytes, "root filesystem received");
            Ok(encode(&Received { bytes }))
        }
        Err(e) => {
            tracing::warn!(workload = %a.name, epoch = a.epoch, "transfer failed, reservation dropped: {e}");
            w.discard(&record).await;
            Err(e)
        }
    }
}

/// `dcos.workloads.start`.
pub async fn start(w: &Arc<Workloads>, payload: &[u8]) -> Result<Vec<u8>, WorkloadError> {
    let a: Attempt = decode(super::START, payload)?;
    let lock = w.name_lock(&a.name);
    let _guard = lock.lock().await;
    let mut record = reserved(w, &a, "start", |p| p.can_start_incoming(a.epoch))?;
    let started = match w.start_container(&record).await {
        Ok(t) => t,
        Err(e) => {
            w.discard(&record).await;
            return Err(e);
        }
    };
    record.started_unix_ms = started;
    record.phase = Phase::Owned;
    // The commit point: once this record is on disk the workload is this host's.
    if let Err(e) = w.save(&record).await {
        w.discard(&record).await;
        return Err(e);
    }
    w.update(&a.name, |_| Ok((Some(record.clone()), ())))?;
    tracing::info!(workload = %a.name, epoch = a.epoch, "migrated workload started");
    Ok(encode(&serde_json::json!({ "started_unix_ms": started })))
}

/// `dcos.workloads.settle`.
pub async fn settle(w: &Arc<Workloads>, payload: &[u8]) -> Result<Vec<u8>, WorkloadError> {
    let a: Attempt = decode(super::SETTLE, payload)?;
    let lock = w.name_lock(&a.name);
    let _guard = lock.lock().await;
    let verdict = match w.get(&a.name) {
        Some(rec)
            if !matches!(rec.phase, Phase::Incoming { .. } | Phase::Creating) && rec.epoch >= a.epoch =>
        {
            Verdict::Started
        }
        Some(rec) if matches!(rec.phase, Phase::Incoming { epoch, .. } if epoch == a.epoch) => {
            w.discard(&rec).await;
            Verdict::Aborted
        }
        _ => Verdict::Aborted,
    };
    tracing::info!(workload = %a.name, epoch = a.epoch, ?verdict, "settled");
    Ok(encode(&verdict))
}
