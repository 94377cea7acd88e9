//! The `Workloads` gRPC service (`proto/middlecon/v1/middlecon.proto`): `Run`, `Stop`,
//! `Migrate` and `Evacuate` need the admin role (or the local socket); `List` is open to
//! every role. Errors found before a migration starts are gRPC statuses
//! ([`WorkloadError::status`]); later ones end the progress stream with `error_code`.

use super::migrate::{self, Mover, Progress};
use super::{WorkloadError, Workloads};
use crate::api::{caller_of, Api, Caller};
use dcos_core::Role;
use dcos_proto::v1 as pb;
use std::sync::Arc;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

/// Evacuations move this many workloads at once unless told otherwise.
const DEFAULT_PARALLEL: usize = 2;

/// Serves `Workloads` over this host's workloads.
#[derive(Clone)]
pub struct WorkloadsApi {
    mover: Mover,
}

impl WorkloadsApi {
    pub fn new(api: Api, workloads: Arc<Workloads>) -> WorkloadsApi {
        WorkloadsApi { mover: Mover { api, workloads } }
    }

    pub fn mover(&self) -> &Mover {
        &self.mover
    }
}

/// Runs `work` to its end in a task of its own, so that a caller who goes away halfway
/// never leaves a workload between two states (a half-made bundle, a claimed name).
async fn detached<T: Send + 'static>(work: impl std::future::Future<Output = T> + Send + 'static) -> T {
    tokio::spawn(work).await.expect("workload tasks do not panic")
}

fn admit(caller: &Caller, what: &str) -> Result<(), Status> {
    match caller.role {
        None | Some(Role::Admin) => Ok(()),
        Some(_) => Err(WorkloadError::PermissionDenied(format!(
            "{} may not {what} workloads (admin or local callers only)",
            caller.describe()
        ))
        .status()),
    }
}

type ProgressStream = ReceiverStream<Result<pb::MigrateProgress, Status>>;

#[tonic::async_trait]
impl pb::workloads_server::Workloads for WorkloadsApi {
    async fn run(&self, request: Request<pb::RunRequest>) -> Result<Response<pb::RunReply>, Status> {
        admit(&caller_of(&request), "run")?;
        let workloads = self.mover.workloads.clone();
        let req = request.into_inner();
        let w = detached(async move { workloads.run(req).await }).await.map_err(|e| e.status())?;
        Ok(Response::new(pb::RunReply { workload: Some(w) }))
    }

    async fn stop(&self, request: Request<pb::StopRequest>) -> Result<Response<pb::StopReply>, Status> {
        admit(&caller_of(&request), "stop")?;
        let workloads = self.mover.workloads.clone();
        let name = request.into_inner().name;
        let w = detached(async move { workloads.stop(&name).await }).await.map_err(|e| e.status())?;
        Ok(Response::new(pb::StopReply { workload: Some(w) }))
    }

    async fn list(&self, _request: Request<pb::ListRequest>) -> Result<Response<pb::ListReply>, Status> {
        let workloads = self.mover.workloads.list().await;
        Ok(Response::new(pb::ListReply { host: self.mover.workloads.host.clone(), workloads }))
    }

    type MigrateStream = ProgressStream;

    async fn migrate(
        &self,
        request: Request<pb::MigrateRequest>,
    ) -> Result<Response<ProgressStream>, Status> {
        admit(&caller_of(&request), "migrate")?;
        let req = request.into_inner();
        let (tx, rx) = mpsc::channel(64);
        let (ready_tx, ready) = tokio::sync::oneshot::channel();
        let mover = self.mover.clone();
        // The whole migration runs in its own task: it goes on if the caller goes away
        // (stopping it halfway helps nobody), and a refusal comes back as a status.
        tokio::spawn(async move {
            let prepared = match mover.prepare(&req).await {
                Ok(p) => p,
                Err(e) => {
                    let _ = ready_tx.send(Err(e.status()));
                    return;
                }
            };
            let _ = ready_tx.send(Ok(()));
            let progress = Progress::new(tx, &req.name, &mover.workloads.host, &req.to);
            let result = mover.execute(prepared, &progress).await;
            progress.finish(&result).await;
        });
        ready.await.map_err(|_| Status::internal("the migration task ended early"))??;
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    type EvacuateStream = ProgressStream;

    async fn evacuate(
        &self,
        request: Request<pb::EvacuateRequest>,
    ) -> Result<Response<ProgressStream>, Status> {
        admit(&caller_of(&request), "evacuate")?;
        let req = request.into_inner();
        let host = self.mover.workloads.host.clone();
        let names = self.mover.workloads.owned();
        let candidates: Vec<(String, Option<f64>)> = self
            .mover
            .api
            .live_members()
            .into_iter()
            .filter(|(n, _)| *n != host && (req.to.is_empty() || req.to.contains(n)))
            .collect();
        if !names.is_empty() && candidates.is_empty() {
            return Err(WorkloadError::Precondition(format!(
                "no live peer of {host} can take its workloads{}",
                if req.to.is_empty() { String::new() } else { format!(" among {}", req.to.join(", ")) }
            ))
            .status());
        }
        let plan = migrate::plan(&names, &candidates);
        let parallel = if req.parallel == 0 { DEFAULT_PARALLEL } else { req.parallel as usize };
        let (tx, rx) = mpsc::channel(256);
        let mover = self.mover.clone();
        tokio::spawn(async move {
            let limit = Arc::new(tokio::sync::Semaphore::new(parallel));
            let mut moves = tokio::task::JoinSet::new();
            for (name, to) in plan {
                let (mover, tx, limit) = (mover.clone(), tx.clone(), limit.clone());
                let m = pb::MigrateRequest { name, to, mode: req.mode, bwlimit: req.bwlimit };
                moves.spawn(async move {
                    let _slot = limit.acquire_owned().await;
                    let progress = Progress::new(tx, &m.name, &mover.workloads.host, &m.to);
                    let result = match mover.prepare(&m).await {
                        Ok(p) => mover.execute(p, &progress).await,
                        Err(e) => Err(e),
                    };
                    progress.finish(&result).await;
                });
            }
            while moves.join_next().await.is_some() {}
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}
