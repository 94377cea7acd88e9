//! The target side of a migration: what this host answers a source, as four peer services
//! (host role only, like all peer traffic), each a function over this host's workloads:
//!
//! - [`reserve`] (`dcos.workloads.reserve`): checks runtime, free space and that the name
//!   is free, records an `Incoming` reservation for the attempt's epoch (dropped when
//!   idle: [`expire`]), and creates the container ahead where its class gains by it (runsc
//!   boots its sandbox before the source freezes anything). A newer attempt of the same
//!   source replaces an unstarted reservation of an older epoch (the source restarted and
//!   tries again), stopping its transfer first;
//! - [`receive`] (`dcos.workloads.transfer`, bulk): receives the root filesystem into the
//!   reservation, until it ends, stalls, or is stopped ([`Transfers`]);
//! - [`start`] (`dcos.workloads.start`): starts the received workload (only its process,
//!   where it was created at the reservation), then makes it `Owned` (the target's commit
//!   point) and answers;
//! - [`settle`] (`dcos.workloads.settle`): tells a source in doubt whether an epoch was
//!   started here; a reservation not started is dropped (its transfer stopped), so it can
//!   never start later.

use super::{decode, encode, Attempt, Received, Reserve, Timings, Verdict, SPACE_MARGIN};
use crate::workloads::record::Phase;
use crate::workloads::{check_name, transfer, Record, WorkloadError, Workloads};
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, ReadBuf};
use tokio::sync::watch;

/// The incoming transfers running on this host, by workload name: each one's epoch and the
/// switch that stops it. A transfer holds its name's lock while it runs, so whoever must
/// replace or drop its reservation stops it first, then takes the lock.
#[derive(Default)]
pub(crate) struct Transfers(Mutex<HashMap<String, (u64, watch::Sender<bool>)>>);

impl Transfers {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, (u64, watch::Sender<bool>)>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers the transfer of `name` at `epoch`; its stop switch, and its entry is removed
    /// when the returned guard drops.
    fn begin(&self, name: &str, epoch: u64) -> (watch::Receiver<bool>, Running<'_>) {
        let (tx, rx) = watch::channel(false);
        self.map().insert(name.to_string(), (epoch, tx));
        (rx, Running { transfers: self, name: name.to_string(), epoch })
    }

    /// The epoch of the transfer of `name` running now.
    #[cfg(test)]
    pub(crate) fn epoch(&self, name: &str) -> Option<u64> {
        self.map().get(name).map(|(e, _)| *e)
    }

    /// Stops the transfer of `name` if its epoch is one `which` selects; whether one was.
    fn stop(&self, name: &str, which: impl Fn(u64) -> bool) -> bool {
        match self.map().get(name) {
            Some((epoch, switch)) if which(*epoch) => {
                switch.send_replace(true);
                true
            }
            _ => false,
        }
    }
}

/// A registered transfer; unregisters it when dropped.
struct Running<'a> {
    transfers: &'a Transfers,
    name: String,
    epoch: u64,
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        let mut map = self.transfers.map();
        if map.get(&self.name).is_some_and(|(e, _)| *e == self.epoch) {
            map.remove(&self.name);
        }
    }
}

/// A transfer's byte stream that fails once its stop switch is thrown, even while the
/// sender is silent (a killed source sends nothing, not even a reset).
struct Stoppable<R> {
    inner: R,
    stopped: Pin<Box<dyn Future<Output = ()> + Send>>,
}

impl<R> Stoppable<R> {
    fn new(inner: R, mut switch: watch::Receiver<bool>) -> Self {
        let stopped = Box::pin(async move {
            // A dropped sender cannot stop it any more: wait forever.
            if switch.wait_for(|s| *s).await.is_err() {
                std::future::pending::<()>().await
            }
        });
        Stoppable { inner, stopped }
    }
}

impl<R: AsyncRead + Unpin> AsyncRead for Stoppable<R> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if self.stopped.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Err(std::io::Error::other("stopped: the attempt was superseded or settled")));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

/// The runtime class (`runc`, `crun`, `runsc`) of a runtime named or given as a path by a
/// peer.
pub(crate) fn runtime_kind(named: &str) -> Result<String, WorkloadError> {
    let kind = std::path::Path::new(named).file_name().and_then(|f| f.to_str()).unwrap_or("");
    match crate::workloads::classes::named(kind) {
        Some(class) => Ok(class.name().to_string()),
        None => Err(WorkloadError::Precondition(format!(
            "runtime {named:?} is not a runtime class ({}): this host will not run it for a peer",
            crate::workloads::classes::names()
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
    record.runtime = w.runtime(&runtime_kind(&record.runtime)?)?;
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
    supersede(w, &name, &req.from, req.epoch).await;
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
    if w.containers().creates_ahead(&record.runtime) {
        // Held while the container is created ahead: a settle waits for it, then removes
        // it; a reservation dropped before it is not created for. (Taken once the name is
        // claimed: another source's reserve is refused at once, not after a running
        // transfer of this name lets go of it.)
        let lock = w.name_lock(&name);
        let _guard = lock.lock().await;
        if w.get(&name).is_some_and(|r| r.phase == record.phase) {
            w.create_ahead(&record).await;
        }
    }
    tokio::spawn(expire(w.clone(), name, req.epoch, t.reservation_idle));
    Ok(encode(&serde_json::json!({})))
}

/// Drops an unstarted reservation of `name` made by the same source for an older epoch
/// than `epoch`: that source gave the attempt up (it restarted, or its transfer broke) and
/// tries again. Its transfer, if one runs, is stopped first. Epochs fence the rest: the old
/// attempt's late messages find no reservation of their epoch.
async fn supersede(w: &Workloads, name: &str, source: &str, epoch: u64) {
    let older = |r: &Record| matches!(&r.phase, Phase::Incoming { from, epoch: e, .. } if from == source && *e < epoch);
    let Some(old) = w.get(name).filter(older) else { return };
    w.transfers.stop(name, |e| e == old.epoch);
    let lock = w.name_lock(name);
    let _guard = lock.lock().await;
    if let Some(r) = w.get(name).filter(older) {
        tracing::warn!(workload = %name, from = %source, old = r.epoch, new = epoch,
            "reservation superseded by a newer attempt of the same source: dropped");
        w.discard(&r).await;
    }
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
    // A container created ahead serves this very directory: it is filled, not replaced.
    if !w.created_ahead(&a.name) {
        let _ = std::fs::remove_dir_all(&dest);
    }
    let (switch, _running) = w.transfers.begin(&a.name, a.epoch);
    match transfer::receive_tree(Stoppable::new(body, switch), dest, t.stall).await {
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
    let started = match w.start_created(&record).await {
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
    // A transfer of this epoch still running would hold the lock until it stalls.
    w.transfers.stop(&a.name, |e| e == a.epoch);
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
