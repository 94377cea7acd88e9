//! The `Workloads` gRPC service (`proto/middlecon/v1/middlecon.proto`) over the workload
//! core ([`crate::workloads`]): `Run`, `Stop`, `Migrate` and `Evacuate` need the admin role
//! (or the local socket); `List` is open to every role. The core's types are turned into
//! the protocol's here and nowhere else. Errors found before a migration starts are gRPC
//! statuses with the [`ErrorCode`] in their details; later ones end the progress stream
//! with `code`.

use crate::access::Caller;
use crate::workloads::migrate::{evacuate, MigratePhase, MoveSpec, Mover, Summary};
use crate::workloads::{ErrorCode, RunSpec, Workload, WorkloadError};
use dcos_core::Role;
use dcos_proto::v1 as pb;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

/// Evacuations move this many workloads at once unless told otherwise.
const DEFAULT_PARALLEL: usize = 2;

/// The gRPC status of a workload error: its code in the details, the gRPC code that fits.
pub fn status(e: &WorkloadError) -> Status {
    use tonic::Code;
    let grpc = match e.code() {
        ErrorCode::Invalid => Code::InvalidArgument,
        ErrorCode::NotFound => Code::NotFound,
        ErrorCode::Exists => Code::AlreadyExists,
        ErrorCode::Conflict => Code::Aborted,
        ErrorCode::NoSpace => Code::ResourceExhausted,
        ErrorCode::NoRuntime | ErrorCode::Precondition => Code::FailedPrecondition,
        ErrorCode::Unreachable | ErrorCode::InDoubt => Code::Unavailable,
        ErrorCode::PermissionDenied => Code::PermissionDenied,
        ErrorCode::Runtime | ErrorCode::Io | ErrorCode::Transfer | ErrorCode::Unspecified => Code::Internal,
    };
    dcos_proto::error_status(grpc, e.code(), e.to_string())
}

fn to_pb(w: Workload) -> pb::Workload {
    pb::Workload {
        name: w.name,
        host: w.host,
        runtime: w.runtime,
        status: w.status.word().to_string(),
        pid: w.pid,
        started_unix_ms: w.started_unix_ms,
        command: w.command,
        memory_bytes: w.memory_bytes,
        cpus: w.cpus,
        env: w.env.into_iter().collect(),
        epoch: w.epoch,
        service: w.service.unwrap_or_default(),
    }
}

fn run_spec(r: pb::RunRequest) -> RunSpec {
    RunSpec {
        name: r.name,
        rootfs: r.rootfs.into(),
        runtime: r.runtime,
        memory_bytes: r.memory_bytes,
        cpus: r.cpus,
        env: r.env.into_iter().collect(),
        command: r.command,
        host: r.host,
        service: None,
    }
}

/// Serves `Workloads` over this host's workloads.
#[derive(Clone)]
pub struct WorkloadsApi {
    mover: Mover,
}

impl WorkloadsApi {
    pub fn new(mover: Mover) -> WorkloadsApi {
        WorkloadsApi { mover }
    }
}

/// Runs `work` to its end in a task of its own, so that a caller who goes away halfway
/// never leaves a workload between two states (a half-made bundle, a claimed name).
async fn detached<T: Send + 'static>(work: impl std::future::Future<Output = T> + Send + 'static) -> T {
    tokio::spawn(work).await.expect("workload tasks do not panic")
}

/// Lets admins and local callers `action`; refuses anyone else.
pub(super) fn admit(caller: &Caller, action: &str) -> Result<(), Status> {
    match caller.role {
        None | Some(Role::Admin) => Ok(()),
        Some(_) => Err(status(&WorkloadError::PermissionDenied(format!(
            "{} may not {action} (admin or local callers only)",
            caller.describe()
        )))),
    }
}

type Tx = mpsc::Sender<Result<pb::MigrateProgress, Status>>;
type ProgressStream = ReceiverStream<Result<pb::MigrateProgress, Status>>;

/// One migration's progress messages on a `Migrate` or `Evacuate` stream.
#[derive(Clone)]
struct Messages {
    tx: Tx,
    base: pb::MigrateProgress,
    started: Instant,
}

impl Messages {
    fn new(tx: Tx, workload: &str, from: &str, to: &str) -> Messages {
        let base = pb::MigrateProgress {
            workload: workload.into(),
            from: from.into(),
            to: to.into(),
            ..Default::default()
        };
        Messages { tx, base, started: Instant::now() }
    }

    #[allow(deprecated)]
    fn message(&self, phase: MigratePhase) -> pb::MigrateProgress {
        pb::MigrateProgress {
            step: phase as i32,
            phase: phase.word().into(),
            elapsed_ms: self.started.elapsed().as_millis() as u64,
            ..self.base.clone()
        }
    }

    /// Sends a progress message without waiting (a slow or gone reader never holds up a
    /// migration; the last message is sent with [`Messages::finish`]).
    fn phase(&self, phase: MigratePhase, sent: u64, total: u64) {
        let m = pb::MigrateProgress { bytes_sent: sent, bytes_total: total, ..self.message(phase) };
        let _ = self.tx.try_send(Ok(m));
    }

    /// Sends the last message of this migration.
    #[allow(deprecated)]
    async fn finish(&self, result: &Result<Summary, WorkloadError>) {
        let mut m = self.message(if result.is_ok() { MigratePhase::Done } else { MigratePhase::Failed });
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
                m.code = e.code() as i32;
                m.error_code = e.code().word().into();
            }
        }
        let _ = self.tx.send(Ok(m)).await;
    }
}

/// An evacuation's moves, each on the shared stream.
struct EvacuationStream {
    tx: Tx,
    host: String,
    /// When each move was first reported (its messages' `elapsed_ms`).
    moves: std::sync::Mutex<std::collections::HashMap<String, Messages>>,
}

impl EvacuationStream {
    fn with<T>(&self, name: &str, to: &str, f: impl FnOnce(&Messages) -> T) -> T {
        let mut moves = self.moves.lock().unwrap_or_else(|e| e.into_inner());
        let m = moves
            .entry(name.to_string())
            .or_insert_with(|| Messages::new(self.tx.clone(), name, &self.host, to));
        f(m)
    }
}

impl evacuate::Report for EvacuationStream {
    fn progress(&self, name: &str, to: &str, phase: MigratePhase, sent: u64, total: u64) {
        self.with(name, to, |m| m.phase(phase, sent, total));
    }

    async fn finished(&self, name: &str, to: &str, result: Result<Summary, WorkloadError>) {
        let m = self.with(name, to, Messages::clone);
        m.finish(&result).await;
    }
}

#[tonic::async_trait]
impl pb::workloads_server::Workloads for WorkloadsApi {
    async fn run(&self, request: Request<pb::RunRequest>) -> Result<Response<pb::RunReply>, Status> {
        admit(&Caller::of(&request), "run workloads")?;
        let workloads = self.mover.workloads.clone();
        let spec = run_spec(request.into_inner());
        let w = detached(async move { workloads.run(spec).await }).await.map_err(|e| status(&e))?;
        Ok(Response::new(pb::RunReply { workload: Some(to_pb(w)) }))
    }

    async fn stop(&self, request: Request<pb::StopRequest>) -> Result<Response<pb::StopReply>, Status> {
        admit(&Caller::of(&request), "stop workloads")?;
        let workloads = self.mover.workloads.clone();
        let name = request.into_inner().name;
        let w = detached(async move { workloads.stop(&name).await }).await.map_err(|e| status(&e))?;
        Ok(Response::new(pb::StopReply { workload: Some(to_pb(w)) }))
    }

    async fn list(&self, _request: Request<pb::ListRequest>) -> Result<Response<pb::ListReply>, Status> {
        let workloads = self.mover.workloads.list().into_iter().map(to_pb).collect();
        Ok(Response::new(pb::ListReply { host: self.mover.workloads.host.clone(), workloads }))
    }

    type MigrateStream = ProgressStream;

    async fn migrate(
        &self,
        request: Request<pb::MigrateRequest>,
    ) -> Result<Response<ProgressStream>, Status> {
        admit(&Caller::of(&request), "migrate workloads")?;
        let req = request.into_inner();
        let m = MoveSpec {
            live: req.mode() == pb::MigrateMode::Live,
            name: req.name,
            to: req.to,
            bwlimit: req.bwlimit,
            runtime: req.runtime,
        };
        let (tx, rx) = mpsc::channel(64);
        let (ready_tx, ready) = tokio::sync::oneshot::channel();
        let mover = self.mover.clone();
        // The whole migration runs in its own task: it goes on if the caller goes away
        // (stopping it halfway helps nobody), and a refusal comes back as a status.
        tokio::spawn(async move {
            let prepared = match mover.prepare(&m).await {
                Ok(p) => p,
                Err(e) => {
                    let _ = ready_tx.send(Err(status(&e)));
                    return;
                }
            };
            let _ = ready_tx.send(Ok(()));
            let messages = Messages::new(tx, &m.name, &mover.workloads.host, &m.to);
            let result =
                mover.execute(prepared, &|phase, sent, total| messages.phase(phase, sent, total)).await;
            messages.finish(&result).await;
        });
        ready.await.map_err(|_| Status::internal("the migration task ended early"))??;
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    type EvacuateStream = ProgressStream;

    async fn evacuate(
        &self,
        request: Request<pb::EvacuateRequest>,
    ) -> Result<Response<ProgressStream>, Status> {
        admit(&Caller::of(&request), "evacuate workloads")?;
        let req = request.into_inner();
        let plan = self.mover.evacuation(&req.to).map_err(|e| status(&e))?;
        let parallel = if req.parallel == 0 { DEFAULT_PARALLEL } else { req.parallel as usize };
        let live = req.mode() == pb::MigrateMode::Live;
        let (tx, rx) = mpsc::channel(256);
        let mover = self.mover.clone();
        let report =
            Arc::new(EvacuationStream { tx, host: mover.workloads.host.clone(), moves: Default::default() });
        tokio::spawn(async move { mover.evacuate(plan, parallel, req.bwlimit, live, report).await });
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}
