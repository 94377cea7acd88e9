//! Cold migration of a workload between two peers, negotiated by the two hosts alone, and
//! evacuation. `docs/migration.md` is the specification: the state machine, the fencing
//! rule and what happens when each step fails; this code follows it step by step.
//!
//! - [`target`]: the four peer services a target answers (`reserve`, `transfer`, `start`,
//!   `settle`), as functions over this host's [`Workloads`].
//! - [`source`]: [`Mover::prepare`] (guard, target, reserve) and [`Mover::execute`] (freeze,
//!   copy, start, delete).
//! - [`recovery`]: settling the migrations a crash or a lost answer left in doubt.
//! - [`evacuate`]: moving every workload of this host to peers chosen by load.
//! - [`quic`]: the adapters to the peer transport: [`quic::QuicPeers`] (calls to peers) and
//!   [`quic::TargetServices`] (the target's services installed on it).
//!
//! The source reaches its target only through [`Peers`], so every rule here is tested
//! against a fake network of in-process hosts (`tests`).

pub mod evacuate;
pub mod quic;
pub mod recovery;
pub mod source;
pub mod target;

#[cfg(test)]
mod tests;

use super::{Record, WorkloadError, Workloads};
pub use dcos_proto::v1::MigratePhase;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

pub const RESERVE: &str = "dcos.workloads.reserve";
pub const TRANSFER: &str = "dcos.workloads.transfer";
pub const START: &str = "dcos.workloads.start";
pub const SETTLE: &str = "dcos.workloads.settle";

/// Room kept free on the target beyond the workload's size.
const SPACE_MARGIN: u64 = 1 << 20;

/// How long each side waits for what; [`Timings::default`] in the daemon, shorter in tests.
#[derive(Debug, Clone)]
pub struct Timings {
    /// A transfer that moves nothing for this long fails (both sides).
    pub stall: Duration,
    /// How long the source waits for the kernel to freeze a workload's processes.
    pub freeze_wait: Duration,
    /// A reservation that nothing touches for this long is dropped (target).
    pub reservation_idle: Duration,
    /// How long a source in doubt keeps asking within the migration before it hands the
    /// question to [`recovery`].
    pub settle_patience: Duration,
    /// How often a source in doubt asks again.
    pub settle_every: Duration,
    /// How long the target may take to reserve, and to start the workload.
    pub reserve_wait: Duration,
    pub start_wait: Duration,
    /// How long one `settle` question may take.
    pub settle_wait: Duration,
}

impl Default for Timings {
    fn default() -> Timings {
        Timings {
            stall: Duration::from_secs(5),
            freeze_wait: Duration::from_secs(5),
            reservation_idle: Duration::from_secs(10),
            settle_patience: Duration::from_secs(20),
            settle_every: Duration::from_millis(500),
            reserve_wait: Duration::from_secs(10),
            start_wait: Duration::from_secs(60),
            settle_wait: Duration::from_secs(3),
        }
    }
}

/// The other hosts, as a migration's source reaches them.
#[async_trait::async_trait]
pub trait Peers: Send + Sync + 'static {
    /// Whether `host` can be reached at all ([`WorkloadError::Unreachable`] naming why not):
    /// checked before a migration claims its workload.
    fn check(&self, host: &str) -> Result<(), WorkloadError>;

    /// Calls `service` on `host` with `payload`, waiting at most `wait`. The host's own error
    /// comes back with its code ([`WorkloadError::from_peer`]); not reaching it, or no
    /// answer in time, is [`WorkloadError::Unreachable`].
    async fn ask(
        &self,
        host: &str,
        service: &str,
        payload: Vec<u8>,
        wait: Duration,
    ) -> Result<Vec<u8>, WorkloadError>;

    /// Streams the tree at `dir` to `host`'s [`TRANSFER`] service for the attempt in
    /// `payload` ([`transfer`](super::transfer): at most `bwlimit` bytes per second, failing
    /// after `stall` without progress), reporting the bytes sent to `progress`. Returns the
    /// bytes the host received.
    async fn send_tree(
        &self,
        host: &str,
        payload: Vec<u8>,
        dir: PathBuf,
        bwlimit: u64,
        stall: Duration,
        progress: &(dyn Fn(u64) + Send + Sync),
    ) -> Result<u64, WorkloadError>;

    /// Live members other than this host, with their load (unknown: `None`).
    fn live(&self) -> Vec<(String, Option<f64>)>;

    /// The runtime classes `host` says it has (gossiped), `None` where not known.
    fn runtimes(&self, host: &str) -> Option<Vec<String>>;
}

/// `reserve`: the workload's record, the attempt's epoch, its source and the room it needs.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Reserve {
    pub record: Record,
    pub epoch: u64,
    pub from: String,
    pub bytes: u64,
}

/// `transfer`, `start` and `settle`: which attempt.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Attempt {
    pub name: String,
    pub epoch: u64,
}

/// What `transfer` answers.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Received {
    pub bytes: u64,
}

/// What `settle` answers.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq, Clone, Copy)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Verdict {
    /// The target owns the workload at this epoch (or a later one).
    Started,
    /// It was not started there and now never will be.
    Aborted,
}

pub(crate) fn encode(v: &impl Serialize) -> Vec<u8> {
    serde_json::to_vec(v).expect("migration messages serialize")
}

pub(crate) fn decode<T: for<'de> Deserialize<'de>>(what: &str, payload: &[u8]) -> Result<T, WorkloadError> {
    serde_json::from_slice(payload).map_err(|e| WorkloadError::Invalid(format!("{what}: bad message: {e}")))
}

/// How a migration reports where it is: the phase, the bytes sent and the bytes in all.
pub type Progress<'a> = dyn Fn(MigratePhase, u64, u64) + Send + Sync + 'a;

/// What a migration did.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    pub bytes: u64,
    /// Milliseconds per phase, keyed by [`MigratePhase::word`].
    pub phase_ms: BTreeMap<String, u64>,
    pub downtime_ms: u64,
    pub epoch: u64,
}

/// A migration to make: the workload, its target, the bandwidth limit (bytes/s, 0: none).
#[derive(Debug, Clone, Default)]
pub struct MoveSpec {
    pub name: String,
    pub to: String,
    pub bwlimit: u64,
    /// `--mode live`: refused until checkpoint/restore exists.
    pub live: bool,
    /// The runtime class to run it with on the target (`runsc`: into the sandbox); empty:
    /// the class it has.
    pub runtime: String,
}

/// Moves this host's workloads to peers.
#[derive(Clone)]
pub struct Mover {
    pub workloads: Arc<Workloads>,
    peers: Arc<dyn Peers>,
    timings: Timings,
}

impl Mover {
    pub fn new(workloads: Arc<Workloads>, peers: Arc<dyn Peers>, timings: Timings) -> Mover {
        Mover { workloads, peers, timings }
    }

    /// Calls `service` on `to` with `body`.
    async fn ask(
        &self,
        to: &str,
        service: &str,
        body: &impl Serialize,
        wait: Duration,
    ) -> Result<Vec<u8>, WorkloadError> {
        self.peers.ask(to, service, encode(body), wait).await
    }
}
