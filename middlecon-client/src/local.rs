//! A client of the lean local protocol on middlecon's Unix socket
//! ([`dcos_proto::local`]): `Messaging.Call` without HTTP/2, with the same messages and
//! outcomes. One connection carries any number of calls at once; clones share it.
//! Dropping a call's future before its reply cancels the call on the daemon (a `Cancel`
//! frame), as dropping a gRPC call does.

use dcos_proto::local::{self, Frame, Kind};
use dcos_proto::v1 as pb;
use prost::Message;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::io::AsyncWriteExt;
use tokio::sync::{mpsc, oneshot};

/// Why a call on the local protocol got no reply.
#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    #[error("cannot connect to {path}: {source}")]
    Connect { path: PathBuf, source: std::io::Error },
    #[error("the connection to middlecon closed before the reply")]
    Closed,
    #[error("undecodable reply from middlecon: {0}")]
    Decode(#[from] prost::DecodeError),
}

type Pending = Mutex<HashMap<u64, oneshot::Sender<Vec<u8>>>>;

struct Shared {
    tx: mpsc::Sender<Vec<u8>>,
    pending: Pending,
    next_id: AtomicU64,
}

fn lock(p: &Pending) -> std::sync::MutexGuard<'_, HashMap<u64, oneshot::Sender<Vec<u8>>>> {
    p.lock().unwrap_or_else(|e| e.into_inner())
}

/// A connection to a middlecon's Unix socket speaking the local protocol.
#[derive(Clone)]
pub struct LocalClient {
    shared: Arc<Shared>,
}

/// A call not answered yet: dropping it sends the daemon a `Cancel`.
struct Waiting<'a> {
    shared: &'a Shared,
    id: u64,
    answered: bool,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        if !self.answered && lock(&self.shared.pending).remove(&self.id).is_some() {
            // With the queue full (the daemon reads nothing) the call is left to its deadline.
            let _ = self.shared.tx.try_send(local::frame(Kind::Cancel, self.id, None::<&pb::CallRequest>));
        }
    }
}

impl LocalClient {
    /// Connects to the socket at `path` and sends the protocol's preface.
    pub async fn connect(path: &Path) -> Result<LocalClient, LocalError> {
        let err = |source| LocalError::Connect { path: path.to_path_buf(), source };
        let mut io = tokio::net::UnixStream::connect(path).await.map_err(err)?;
        io.write_all(local::PREFACE).await.map_err(err)?;
        let (rd, wr) = io.into_split();
        let (tx, rx) = mpsc::channel(local::MAX_IN_FLIGHT);
        tokio::spawn(local::write_frames(rx, wr));
        let shared = Arc::new(Shared { tx, pending: Mutex::default(), next_id: AtomicU64::new(1) });
        let reader = Arc::downgrade(&shared);
        tokio::spawn(async move {
            let mut rd = tokio::io::BufReader::new(rd);
            while let Ok(Some(Frame { kind: Kind::Reply, id, body })) = local::read_frame(&mut rd).await {
                let Some(shared) = reader.upgrade() else { return };
                let waiter = lock(&shared.pending).remove(&id);
                if let Some(waiter) = waiter {
                    let _ = waiter.send(body);
                }
            }
            // The connection ended (or sent nonsense): every call waiting fails.
            if let Some(shared) = reader.upgrade() {
                lock(&shared.pending).clear();
            }
        });
        Ok(LocalClient { shared })
    }

    /// `Messaging.Call`: the reply, whatever its outcome; an error only when the
    /// connection failed before it.
    pub async fn call(&self, request: &pb::CallRequest) -> Result<pb::CallReply, LocalError> {
        let shared = &*self.shared;
        let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        lock(&shared.pending).insert(id, tx);
        let mut waiting = Waiting { shared, id, answered: false };
        if shared.tx.send(local::frame(Kind::Call, id, Some(request))).await.is_err() {
            return Err(LocalError::Closed);
        }
        let body = rx.await.map_err(|_| LocalError::Closed)?;
        waiting.answered = true;
        Ok(pb::CallReply::decode(body.as_slice())?)
    }
}
