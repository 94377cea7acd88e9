//! Migration over the peer transport: [`QuicPeers`], the source's [`Peers`] through the
//! daemon's QUIC client and the host [`Directory`]; and [`TargetServices`], the target's
//! four services ([`super::target`]) installed as peer services, their errors sent as app
//! errors with their codes.

use super::{target, Peers, Timings};
use crate::directory::Directory;
use crate::peer::{
    self, AppError, Client, Outcome, PeerReply, PeerRequest, Request, Response, Service, ServiceFuture,
};
use crate::workloads::{transfer, ErrorCode, WorkloadError, Workloads};
use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// How long a transfer's reply may take once all was sent (the target unpacks the rest).
const TRANSFER_REPLY_WAIT: Duration = Duration::from_secs(120);
/// How long the target's own verdict is waited for after a transfer broke.
const VERDICT_WAIT: Duration = Duration::from_secs(2);

/// Other hosts, through the daemon's QUIC client.
pub struct QuicPeers {
    client: Client,
    directory: Directory,
}

impl QuicPeers {
    pub fn new(client: Client, directory: Directory) -> QuicPeers {
        QuicPeers { client, directory }
    }

    fn addr(&self, host: &str) -> Result<SocketAddr, WorkloadError> {
        self.directory.resolve(host).map_err(WorkloadError::Unreachable)
    }
}

fn request(service: &str, payload: Vec<u8>, wait: Duration) -> PeerRequest {
    PeerRequest {
        service: service.into(),
        deadline_unix_ms: peer::unix_ms(SystemTime::now() + wait),
        headers: BTreeMap::new(),
        payload,
    }
}

/// A peer's reply as the answer or the error it carries.
fn answer(host: &str, reply: Result<PeerReply, peer::CallError>) -> Result<Vec<u8>, WorkloadError> {
    match reply {
        Ok(r) if r.outcome() == Outcome::Ok => Ok(r.payload),
        Ok(r) if r.outcome() == Outcome::AppError => {
            Err(WorkloadError::from_peer(ErrorCode::from_wire(r.code), &r.message, host))
        }
        Ok(r) => {
            Err(WorkloadError::Unreachable(format!("{host}: {}: {}", r.outcome().as_str_name(), r.message)))
        }
        Err(e) => Err(WorkloadError::Unreachable(format!("{host}: {e}"))),
    }
}

#[async_trait::async_trait]
impl Peers for QuicPeers {
    fn check(&self, host: &str) -> Result<(), WorkloadError> {
        self.addr(host).map(|_| ())
    }

    async fn ask(
        &self,
        host: &str,
        service: &str,
        payload: Vec<u8>,
        wait: Duration,
    ) -> Result<Vec<u8>, WorkloadError> {
        let addr = self.addr(host)?;
        answer(host, self.client.request(addr, request(service, payload, wait)).await)
    }

    async fn send_tree(
        &self,
        host: &str,
        payload: Vec<u8>,
        dir: PathBuf,
        bwlimit: u64,
        stall: Duration,
        progress: &(dyn Fn(u64) + Send + Sync),
    ) -> Result<u64, WorkloadError> {
        let addr = self.addr(host)?;
        // Stalls, not the deadline, end a transfer that stopped moving.
        let req = request(super::TRANSFER, payload, Duration::from_secs(24 * 3600));
        let mut call = self
            .client
            .open_bulk(addr, req)
            .await
            .map_err(|e| WorkloadError::Unreachable(format!("{host}: {e}")))?;
        if let Err(e) = transfer::send_tree(dir, call.body(), bwlimit, stall, progress).await {
            // The target's own verdict (e.g. no space) says more than a broken stream.
            return match call.finish(VERDICT_WAIT).await {
                Ok(r) if r.outcome() == Outcome::AppError => answer(host, Ok(r)).map(|_| 0),
                _ => Err(e),
            };
        }
        let payload = answer(host, call.finish(TRANSFER_REPLY_WAIT).await)?;
        super::source::received(&payload)
    }

    fn live(&self) -> Vec<(String, Option<f64>)> {
        self.directory.live()
    }

    fn runtimes(&self, host: &str) -> Option<Vec<String>> {
        self.directory.runtimes(host)
    }
}

impl From<WorkloadError> for AppError {
    fn from(e: WorkloadError) -> AppError {
        AppError { code: e.code(), message: e.to_string() }
    }
}

/// The target side's peer services, over this host's workloads.
#[derive(Clone)]
pub struct TargetServices {
    workloads: Arc<Workloads>,
    timings: Arc<Timings>,
}

/// A target service as a peer [`Service`]: `F` answers a request's payload.
struct Handler<F>(TargetServices, F);

impl<F, Fut> Service for Handler<F>
where
    F: Fn(TargetServices, Vec<u8>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Vec<u8>, WorkloadError>> + Send + 'static,
{
    fn call(&self, request: Request) -> ServiceFuture {
        let fut = (self.1)(self.0.clone(), request.payload);
        Box::pin(async move { Ok(Response { payload: fut.await?, ..Response::default() }) })
    }
}

impl peer::BulkService for TargetServices {
    fn receive(&self, request: Request, body: quinn::RecvStream) -> ServiceFuture {
        let t = self.clone();
        Box::pin(async move {
            let payload = target::receive(&t.workloads, &t.timings, &request.payload, body).await?;
            Ok(Response { payload, ..Response::default() })
        })
    }
}

impl TargetServices {
    pub fn new(workloads: Arc<Workloads>, timings: Timings) -> TargetServices {
        TargetServices { workloads, timings: Arc::new(timings) }
    }

    /// Adds the four services to `services`.
    pub fn install(self, services: peer::Services) -> peer::Services {
        services
            .with(
                super::RESERVE,
                Handler(self.clone(), |t: TargetServices, p: Vec<u8>| async move {
                    target::reserve(&t.workloads, &t.timings, &p).await
                }),
            )
            .with(
                super::START,
                Handler(self.clone(), |t: TargetServices, p: Vec<u8>| async move {
                    target::start(&t.workloads, &p).await
                }),
            )
            .with(
                super::SETTLE,
                Handler(self.clone(), |t: TargetServices, p: Vec<u8>| async move {
                    target::settle(&t.workloads, &p).await
                }),
            )
            .with_bulk(super::TRANSFER, self)
    }
}
