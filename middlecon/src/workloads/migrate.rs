//! Cold migration of a workload between two peers, negotiated by the two hosts alone, and
//! evacuation. `docs/migration.md` is the specification: the state machine, the fencing
//! rule and what happens when each step fails; this code follows it step by step.
//!
//! Target side: four built-in peer services (host role only, like all peer traffic):
//!
//! - `dcos.workloads.reserve`: checks runtime, free space and that the name is free, and
//!   records an `Incoming` reservation for the attempt's epoch (expires when idle);
//! - `dcos.workloads.transfer` (bulk): receives the root filesystem into the reservation;
//! - `dcos.workloads.start`: starts the received workload, then makes it `Owned` (the
//!   target's commit point) and answers;
//! - `dcos.workloads.settle`: tells a source in doubt whether an epoch was started here;
//!   a reservation not started is dropped, so it can never start later.
//!
//! Source side: [`Mover::prepare`] (guard, target, reserve) and [`Mover::execute`]
//! (freeze, copy, start, delete), then [`recover`] for migrations left in doubt.

use super::{bundle, record::Phase, transfer, Record, WorkloadError, Workloads};
use crate::api::Api;
use crate::peer::{self, Outcome, PeerRequest, Request, Response, Service, ServiceFuture};
use dcos_proto::v1 as pb;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::mpsc;

pub const RESERVE: &str = "dcos.workloads.reserve";
pub const TRANSFER: &str = "dcos.workloads.transfer";
pub const START: &str = "dcos.workloads.start";
pub const SETTLE: &str = "dcos.workloads.settle";

/// A transfer that moves nothing for this long fails (both sides).
const STALL: Duration = Duration::from_secs(5);
/// How long the source waits for the kernel to freeze a workload's processes.
const FREEZE_WAIT: Duration = Duration::from_secs(5);
/// A reservation that nothing touches for this long is dropped.
const RESERVATION_IDLE: Duration = Duration::from_secs(30);
/// Room kept free on the target beyond the workload's size.
const SPACE_MARGIN: u64 = 1 << 20;
/// How long a source in doubt keeps asking within the Migrate call before it hands the
/// question to [`recover`].
const SETTLE_PATIENCE: Duration = Duration::from_secs(20);

#[derive(Debug, Serialize, Deserialize)]
struct Reserve {
    record: Record,
    epoch: u64,
    from: String,
    bytes: u64,
}

#[derive(Debug, Serialize, Deserialize)]
struct Attempt {
    name: String,
    epoch: u64,
}

#[derive(Debug, Serialize, Deserialize, PartialEq, Eq, Clone, Copy)]
#[serde(rename_all = "snake_case")]
enum Verdict {
    /// The target owns the workload at this epoch (or a later one).
    Started,
    /// It was not started there and now never will be.
    Aborted,
}

fn parse<T: for<'de> Deserialize<'de>>(r: &Request) -> Result<T, WorkloadError> {
    serde_json::from_slice(&r.payload)
        .map_err(|e| WorkloadError::Invalid(format!("{}: bad request: {e}", r.service)))
}

fn json(v: &impl Serialize) -> Result<Response, WorkloadError> {
    Ok(Response { payload: serde_json::to_vec(v).expect("serializes"), ..Response::default() })
}

// ---------------------------------------------------------------------------------------
// Target side

/// The target side's peer services, over this host's workloads.
#[derive(Clone)]
pub struct TargetServices {
    workloads: Arc<Workloads>,
}

struct Handler<F>(Arc<Workloads>, F);

impl<F, Fut> Service for Handler<F>
where
    F: Fn(Arc<Workloads>, Request) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<Response, WorkloadError>> + Send + 'static,
{
    fn call(&self, request: Request) -> ServiceFuture {
        let fut = (self.1)(self.0.clone(), request);
        Box::pin(async move { fut.await.map_err(|e| e.wire()) })
    }
}

impl peer::BulkService for TargetServices {
    fn receive(&self, request: Request, body: quinn::RecvStream) -> ServiceFuture {
        let w = self.workloads.clone();
        Box::pin(async move { receive(w, request, body).await.map_err(|e| e.wire()) })
    }
}

impl TargetServices {
    pub fn new(workloads: Arc<Workloads>) -> TargetServices {
        TargetServices { workloads }
    }

    /// Adds the four services to `services`.
    pub fn install(self, services: peer::Services) -> peer::Services {
        let w = self.workloads.clone();
        services
            .with(RESERVE, Handler(w.clone(), reserve))
            .with(START, Handler(w.clone(), start))
            .with(SETTLE, Handler(w, settle))
            .with_bulk(TRANSFER, self)
    }
}

fn free_bytes(dir: &std::path::Path) -> Result<u64, WorkloadError> {
    let s = nix::sys::statvfs::statvfs(dir)
        .map_err(|e| WorkloadError::Io(format!("statvfs {}: {e}", dir.display())))?;
    Ok(s.blocks_available() as u64 * s.fragment_size() as u64)
}

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

async fn reserve(w: Arc<Workloads>, r: Request) -> Result<Response, WorkloadError> {
    let req: Reserve = parse(&r)?;
    let name = req.record.name.clone();
    super::check_name(&name)?;
    let mut record = req.record;
    // A peer names the runtime; this host decides which binary that is. Only the runtimes'
    // names cross hosts, never a path to run.
    record.runtime = runtime_kind(&record.runtime)?;
    w.runtime(&record.runtime)?;
    let free = free_bytes(w.dir())?;
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
            super::status_word(&c.phase)
        ))),
        None => Ok((Some(record.clone()), ())),
    })?;
    let dir = w.workload_dir(&name);
    let _ = super::rootfs::remove(&dir);
    if let Err(e) = std::fs::create_dir_all(dir.join("bundle"))
        .map_err(|e| WorkloadError::Io(e.to_string()))
        .and_then(|_| w.save(&record))
    {
        w.discard(&record).await;
        return Err(e);
    }
    tracing::info!(workload = %name, from = %req.from, epoch = req.epoch, "reserved for an incoming migration");
    tokio::spawn(expire(w, name, req.epoch));
    json(&serde_json::json!({}))
}

/// Drops the reservation `(name, epoch)` once it has been idle (not started, no transfer
/// running) for [`RESERVATION_IDLE`].
async fn expire(w: Arc<Workloads>, name: String, epoch: u64) {
    loop {
        tokio::time::sleep(RESERVATION_IDLE).await;
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
            other.map_or("no reservation", |o| super::status_word(&o.phase))
        ))),
    }
}

async fn receive(w: Arc<Workloads>, r: Request, body: quinn::RecvStream) -> Result<Response, WorkloadError> {
    let a: Attempt = parse(&r)?;
    let lock = w.name_lock(&a.name);
    let _guard = lock.lock().await;
    let record = reserved(&w, &a, "receive", |p| p.can_receive(a.epoch))?;
    let dest = w.rootfs(&a.name);
    let _ = std::fs::remove_dir_all(&dest);
    match transfer::receive_tree(body, dest, STALL).await {
        Ok(bytes) => {
            let mut done = record.clone();
            if let Phase::Incoming { received, .. } = &mut done.phase {
                *received = true;
            }
            w.save(&done)?;
            w.update(&a.name, |_| Ok((Some(done.clone()), ())))?;
            tracing::info!(workload = %a.name, epoch = a.epoch, bytes, "root filesystem received");
            json(&serde_json::json!({ "bytes": bytes }))
        }
        Err(e) => {
            tracing::warn!(workload = %a.name, epoch = a.epoch, "transfer failed, reservation dropped: {e}");
            w.discard(&record).await;
            Err(e)
        }
    }
}

async fn start(w: Arc<Workloads>, r: Request) -> Result<Response, WorkloadError> {
    let a: Attempt = parse(&r)?;
    let lock = w.name_lock(&a.name);
    let _guard = lock.lock().await;
    let mut record = reserved(&w, &a, "start", |p| p.can_start_incoming(a.epoch))?;
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
    if let Err(e) = w.save(&record) {
        w.discard(&record).await;
        return Err(e);
    }
    w.update(&a.name, |_| Ok((Some(record.clone()), ())))?;
    tracing::info!(workload = %a.name, epoch = a.epoch, "migrated workload started");
    json(&serde_json::json!({ "started_unix_ms": started }))
}

async fn settle(w: Arc<Workloads>, r: Request) -> Result<Response, WorkloadError> {
    let a: Attempt = parse(&r)?;
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
    json(&verdict)
}

// ---------------------------------------------------------------------------------------
// Source side

/// Progress of one migration, as the `Migrate` and `Evacuate` streams carry it.
pub struct Progress {
    tx: mpsc::Sender<Result<pb::MigrateProgress, tonic::Status>>,
    base: pb::MigrateProgress,
    started: Instant,
}

impl Progress {
    pub fn new(
        tx: mpsc::Sender<Result<pb::MigrateProgress, tonic::Status>>,
        workload: &str,
        from: &str,
        to: &str,
    ) -> Progress {
        let base = pb::MigrateProgress {
            workload: workload.into(),
            from: from.into(),
            to: to.into(),
            ..Default::default()
        };
        Progress { tx, base, started: Instant::now() }
    }

    fn message(&self, phase: &str) -> pb::MigrateProgress {
        pb::MigrateProgress {
            phase: phase.into(),
            elapsed_ms: self.started.elapsed().as_millis() as u64,
            ..self.base.clone()
        }
    }

    /// Sends a progress message without waiting (a slow or gone reader never holds up a
    /// migration; the last message is sent with [`Progress::finish`]).
    fn phase(&self, phase: &str, sent: u64, total: u64) {
        let mut m = self.message(phase);
        m.bytes_sent = sent;
        m.bytes_total = total;
        let _ = self.tx.try_send(Ok(m));
    }

    /// Sends the last message of this migration.
    pub async fn finish(&self, result: &Result<Summary, WorkloadError>) {
        let mut m = self.message(if result.is_ok() { "done" } else { "failed" });
        m.done = true;
        match result {
            Ok(s) => {
                m.bytes_sent = s.bytes;
                m.bytes_total = s.bytes;
                m.phase_ms = s.phase_ms.clone();
                m.downtime_ms = s.downtime_ms;
                m.epoch = s.epoch;
            }
            Err(e) => {
                m.error = e.to_string();
                m.error_code = e.code().into();
            }
        }
        let _ = self.tx.send(Ok(m)).await;
    }
}

/// What a migration did.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    pub bytes: u64,
    pub phase_ms: BTreeMap<String, u64>,
    pub downtime_ms: u64,
    pub epoch: u64,
}

/// A migration whose target has reserved room ([`Mover::prepare`]).
pub struct Prepared {
    pub name: String,
    pub to: String,
    addr: SocketAddr,
    epoch: u64,
    bytes_estimate: u64,
    bwlimit: u64,
    reserve_ms: u64,
}

/// Moves this host's workloads to peers.
#[derive(Clone)]
pub struct Mover {
    pub api: Api,
    pub workloads: Arc<Workloads>,
}

fn deadline_in(d: Duration) -> i64 {
    peer::unix_ms(SystemTime::now() + d)
}

impl Mover {
    /// Calls `service` on `addr`; `app_error` replies become the target's own error.
    async fn ask(
        &self,
        to: &str,
        addr: SocketAddr,
        service: &str,
        body: &impl Serialize,
        wait: Duration,
    ) -> Result<Vec<u8>, WorkloadError> {
        let req = PeerRequest {
            service: service.into(),
            deadline_unix_ms: deadline_in(wait),
            headers: BTreeMap::new(),
            payload: serde_json::to_vec(body).expect("serializes"),
        };
        match self.api.client.request(addr, req).await {
            Ok(r) if r.outcome() == Outcome::Ok => Ok(r.payload),
            Ok(r) if r.outcome() == Outcome::AppError => Err(WorkloadError::from_wire(&r.message, to)),
            Ok(r) => {
                Err(WorkloadError::Unreachable(format!("{to}: {}: {}", r.outcome().as_str_name(), r.message)))
            }
            Err(e) => Err(WorkloadError::Unreachable(format!("{to}: {e}"))),
        }
    }

    /// Puts `name` back into `Owned` after a failed attempt at `epoch` (the epoch stays
    /// used) and, if `resume`, thaws the container.
    async fn undo(&self, name: &str, epoch: u64, resume: bool) {
        if resume {
            if let Some(r) = self.workloads.get(name) {
                if let Ok(rt) = self.workloads.runtime(&r.runtime) {
                    if let Err(e) = self.workloads.resume(name, &rt).await {
                        tracing::error!(workload = %name, "resuming after a failed migration: {e}");
                    }
                }
            }
        }
        let next = self.workloads.update(name, |cur| {
            let mut r = cur.cloned().ok_or_else(|| WorkloadError::Io("record vanished".into()))?;
            r.phase = Phase::Owned;
            r.epoch = r.epoch.max(epoch);
            Ok((Some(r.clone()), r))
        });
        if let Ok(r) = next {
            if let Err(e) = self.workloads.save(&r) {
                tracing::error!(workload = %name, "saving after a failed migration: {e}");
            }
        }
    }

    /// Checks and claims `name` for a migration to `to` and has the target reserve room.
    /// On error nothing has changed (the workload runs on here).
    pub async fn prepare(&self, req: &pb::MigrateRequest) -> Result<Prepared, WorkloadError> {
        let w = &self.workloads;
        if req.mode() == pb::MigrateMode::Live {
            return Err(live_refusal(&w.host).await);
        }
        if req.to.is_empty() {
            return Err(WorkloadError::Invalid("a target host is required (--to HOST)".into()));
        }
        if req.to == w.host {
            return Err(WorkloadError::Invalid(format!("{} is already on {}", req.name, w.host)));
        }
        let addr = self.api.resolve(&req.to).map_err(WorkloadError::Unreachable)?;
        let (name, to, host) = (req.name.clone(), req.to.clone(), w.host.clone());
        let (record, epoch) = w.update(&name, |cur| match cur {
            None => Err(WorkloadError::NotFound { name: name.clone(), host: host.clone() }),
            Some(r) => match &r.phase {
                Phase::MigratingOut { to: t, epoch, .. } => Err(WorkloadError::Conflict(format!(
                    "{name} is already migrating from {host} to {t} (epoch {epoch})"
                ))),
                p if !p.can_migrate() => Err(WorkloadError::Conflict(format!(
                    "{name} cannot move now ({})",
                    super::status_word(p)
                ))),
                _ => {
                    let epoch = r.epoch + 1;
                    let mut next = r.clone();
                    next.phase = Phase::MigratingOut { to: to.clone(), epoch, committed: false };
                    Ok((Some(next), (r.clone(), epoch)))
                }
            },
        })?;
        let started = Instant::now();
        let result = async {
            let rt = w.runtime(&record.runtime)?;
            match w.container_status(&name, &rt) {
                super::ContainerStatus::Running(_) => {}
                other => {
                    return Err(WorkloadError::Precondition(format!(
                        "{name} is not running on {host} ({})",
                        other.word()
                    )))
                }
            }
            if !super::rootfs::readable(&w.workload_dir(&name)) {
                return Err(WorkloadError::Precondition(format!(
                    "the root filesystem of {name} is an overlay this middlecon does not see mounted \
                     (restarted in another mount namespace?): restart middlecon where the workload was started"
                )));
            }
            let (bytes, entries) = bundle::tree_size(&w.rootfs(&name));
            let estimate = bytes + entries * 1024 + 1024;
            let reserve = Reserve { record: record.clone(), epoch, from: host.clone(), bytes: estimate };
            self.ask(&to, addr, RESERVE, &reserve, Duration::from_secs(10)).await?;
            Ok(estimate)
        }
        .await;
        match result {
            Ok(bytes_estimate) => Ok(Prepared {
                name,
                to,
                addr,
                epoch,
                bytes_estimate,
                bwlimit: req.bwlimit,
                reserve_ms: started.elapsed().as_millis() as u64,
            }),
            Err(e) => {
                self.undo(&req.name, epoch, false).await;
                Err(e)
            }
        }
    }

    /// Freezes, copies, starts on the target, deletes here; on any failure before the
    /// target started it, the workload is resumed here.
    pub async fn execute(&self, p: Prepared, progress: &Progress) -> Result<Summary, WorkloadError> {
        let w = &self.workloads;
        let mut summary = Summary { epoch: p.epoch, ..Summary::default() };
        summary.phase_ms.insert("reserve".into(), p.reserve_ms);
        let record = w.get(&p.name).ok_or_else(|| WorkloadError::Io("record vanished".into()))?;
        let rt = w.runtime(&record.runtime)?;
        let attempt = Attempt { name: p.name.clone(), epoch: p.epoch };

        // Durable before the freeze: a restart finds the attempt and undoes it.
        if let Err(e) = w.save(&record) {
            self.abandon(&p, &attempt, false).await;
            return Err(e);
        }
        progress.phase("freeze", 0, p.bytes_estimate);
        let t = Instant::now();
        // Through the cgroup freezer, as `runtime pause` would, without its process; the
        // runtime's own `pause` where no freezer holds the workload's cgroup.
        let froze = match w.cgroups.freeze(&p.name, FREEZE_WAIT).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                rt.pause(&p.name).await.map_err(WorkloadError::Runtime)
            }
            Err(e) => Err(WorkloadError::Io(format!("freezing {}: {e}", p.name))),
        };
        if let Err(e) = froze {
            self.abandon(&p, &attempt, false).await;
            return Err(e);
        }
        let frozen = Instant::now();
        summary.phase_ms.insert("freeze".into(), t.elapsed().as_millis() as u64);

        progress.phase("copy", 0, p.bytes_estimate);
        let t = Instant::now();
        match self.copy(&p, &attempt, progress).await {
            Ok(bytes) => summary.bytes = bytes,
            Err(e) => {
                self.abandon(&p, &attempt, true).await;
                return Err(e);
            }
        }
        summary.phase_ms.insert("copy".into(), t.elapsed().as_millis() as u64);

        progress.phase("start", summary.bytes, summary.bytes);
        let t = Instant::now();
        let committed = w.update(&p.name, |cur| {
            let mut r = cur.cloned().ok_or_else(|| WorkloadError::Io("record vanished".into()))?;
            r.phase = Phase::MigratingOut { to: p.to.clone(), epoch: p.epoch, committed: true };
            Ok((Some(r.clone()), r))
        })?;
        if let Err(e) = w.save(&committed) {
            self.abandon(&p, &attempt, true).await;
            return Err(e);
        }
        match self.ask(&p.to, p.addr, START, &attempt, Duration::from_secs(60)).await {
            Ok(_) => {}
            Err(WorkloadError::Unreachable(why)) => {
                // The start may or may not have happened: ask until we know.
                match self.settle_patiently(&p.to, &attempt).await {
                    Some(Verdict::Started) => {}
                    Some(Verdict::Aborted) => {
                        self.undo(&p.name, p.epoch, true).await;
                        return Err(WorkloadError::Unreachable(format!("starting on {}: {why}", p.to)));
                    }
                    None => {
                        tokio::spawn(recover_one(self.clone(), p.name.clone()));
                        return Err(WorkloadError::InDoubt(format!(
                            "{} was asked to start {} but did not answer ({why}); it stays frozen here until {} answers",
                            p.to, p.name, p.to
                        )));
                    }
                }
            }
            Err(e) => {
                // The target refused or failed to start it, and dropped its copy.
                self.undo(&p.name, p.epoch, true).await;
                return Err(e);
            }
        }
        summary.downtime_ms = frozen.elapsed().as_millis() as u64;
        summary.phase_ms.insert("start".into(), t.elapsed().as_millis() as u64);

        progress.phase("delete", summary.bytes, summary.bytes);
        let t = Instant::now();
        w.discard(&committed).await;
        summary.phase_ms.insert("delete".into(), t.elapsed().as_millis() as u64);
        tracing::info!(workload = %p.name, to = %p.to, epoch = p.epoch, bytes = summary.bytes,
            downtime_ms = summary.downtime_ms, "migrated");
        Ok(summary)
    }

    async fn copy(&self, p: &Prepared, attempt: &Attempt, progress: &Progress) -> Result<u64, WorkloadError> {
        let req = PeerRequest {
            service: TRANSFER.into(),
            // Stalls, not the deadline, end a transfer that stopped moving.
            deadline_unix_ms: deadline_in(Duration::from_secs(24 * 3600)),
            headers: BTreeMap::new(),
            payload: serde_json::to_vec(attempt).expect("serializes"),
        };
        let mut call = self
            .api
            .client
            .open_bulk(p.addr, req)
            .await
            .map_err(|e| WorkloadError::Unreachable(format!("{}: {e}", p.to)))?;
        let total = p.bytes_estimate;
        let sent = transfer::send_tree(self.workloads.rootfs(&p.name), &mut call, p.bwlimit, STALL, |n| {
            progress.phase("copy", n, total.max(n))
        })
        .await;
        let reply = match sent {
            // The target's own verdict (e.g. no space) says more than a broken stream.
            Err(e) => {
                return match call.finish(Duration::from_secs(2)).await {
                    Ok(r) if r.outcome() == Outcome::AppError => {
                        Err(WorkloadError::from_wire(&r.message, &p.to))
                    }
                    _ => Err(e),
                }
            }
            Ok(_) => call.finish(Duration::from_secs(120)).await,
        };
        match reply {
            Ok(r) if r.outcome() == Outcome::Ok => {
                #[derive(Deserialize)]
                struct Got {
                    bytes: u64,
                }
                let got: Got = serde_json::from_slice(&r.payload)
                    .map_err(|e| WorkloadError::Transfer(format!("{}: bad transfer reply: {e}", p.to)))?;
                Ok(got.bytes)
            }
            Ok(r) if r.outcome() == Outcome::AppError => Err(WorkloadError::from_wire(&r.message, &p.to)),
            Ok(r) => Err(WorkloadError::Unreachable(format!(
                "{}: {}: {}",
                p.to,
                r.outcome().as_str_name(),
                r.message
            ))),
            Err(e) => Err(WorkloadError::Unreachable(format!("{}: {e}", p.to))),
        }
    }

    /// Ends an attempt that never asked the target to start: the target cannot run it, so
    /// the workload resumes here; the target is told to drop its reservation (best effort:
    /// it also drops it by itself when the transfer fails or the reservation idles).
    async fn abandon(&self, p: &Prepared, attempt: &Attempt, resume: bool) {
        self.undo(&p.name, p.epoch, resume).await;
        let _ = self.ask(&p.to, p.addr, SETTLE, attempt, Duration::from_secs(2)).await;
    }

    async fn settle_once(&self, to: &str, attempt: &Attempt) -> Result<Verdict, WorkloadError> {
        let addr = self.api.resolve(to).map_err(WorkloadError::Unreachable)?;
        let bytes = self.ask(to, addr, SETTLE, attempt, Duration::from_secs(3)).await?;
        serde_json::from_slice(&bytes).map_err(|e| WorkloadError::Io(format!("{to}: bad settle reply: {e}")))
    }

    async fn settle_patiently(&self, to: &str, attempt: &Attempt) -> Option<Verdict> {
        let until = Instant::now() + SETTLE_PATIENCE;
        while Instant::now() < until {
            match self.settle_once(to, attempt).await {
                Ok(v) => return Some(v),
                Err(e) => tracing::debug!(workload = %attempt.name, "settle: {e}"),
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        None
    }
}

/// Why `--mode live` is refused here: CRIU must pass `criu check` on both hosts, and this
/// build does not checkpoint and restore yet.
async fn live_refusal(host: &str) -> WorkloadError {
    let check = tokio::process::Command::new("criu").arg("check").output().await;
    let why = match check {
        Err(e) => format!("criu is not installed on {host} ({e})"),
        Ok(o) if !o.status.success() => format!(
            "`criu check` fails on {host}: {}",
            String::from_utf8_lossy(&o.stderr).lines().last().unwrap_or("no output").trim()
        ),
        Ok(_) => format!("criu passes on {host}, but this build of middlecon migrates cold only"),
    };
    WorkloadError::Precondition(format!("live migration is not available: {why}; use --mode cold"))
}

/// Settles the in-doubt migration of `name` (source side): asks its target until it
/// answers, then deletes the frozen copy (started there) or resumes it (aborted).
async fn recover_one(mover: Mover, name: String) {
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
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Starts settling every migration a previous run of this daemon left in doubt.
pub fn recover(mover: &Mover) {
    let table = mover.workloads.list_records();
    for r in table {
        if matches!(r.phase, Phase::MigratingOut { committed: true, .. }) {
            tokio::spawn(recover_one(mover.clone(), r.name));
        }
    }
}

// ---------------------------------------------------------------------------------------
// Evacuation

/// Picks a target for each of `names` among `candidates` (name, load; unknown load last),
/// spreading them: each goes to the candidate with the lowest load plus the workloads it
/// was already given.
pub fn plan(names: &[String], candidates: &[(String, Option<f64>)]) -> Vec<(String, String)> {
    let mut given = vec![0usize; candidates.len()];
    names
        .iter()
        .filter_map(|n| {
            let best = (0..candidates.len()).min_by(|&a, &b| {
                let score = |i: usize| candidates[i].1.unwrap_or(1e9) + given[i] as f64;
                score(a).total_cmp(&score(b)).then(candidates[a].0.cmp(&candidates[b].0))
            })?;
            given[best] += 1;
            Some((n.clone(), candidates[best].0.clone()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evacuation_spreads_by_load() {
        let names: Vec<String> = (1..=5).map(|i| format!("w{i}")).collect();
        let c =
            vec![("a".to_string(), Some(0.1)), ("b".to_string(), Some(0.2)), ("busy".to_string(), Some(8.0))];
        let p = plan(&names, &c);
        let to_a = p.iter().filter(|(_, t)| t == "a").count();
        let to_b = p.iter().filter(|(_, t)| t == "b").count();
        assert_eq!((to_a, to_b, p.len()), (3, 2, 5), "{p:?}");
        assert!(plan(&names, &[]).is_empty());
        let unknown = plan(&names[..1], &[("x".into(), None), ("y".into(), Some(3.0))]);
        assert_eq!(unknown[0].1, "y", "a known load beats an unknown one");
    }
}
