//! Fan-out through one middlecon per datacenter (SPEC section 8, `--relay`).
//!
//! With a `--seed`, each datacenter's hosts may be asked by a relay in that datacenter: a
//! live member with an API address, the least loaded by gossip first. The CLI opens one
//! gRPC stream per datacenter (`Relay.FanOut`), names the hosts to ask, and turns what
//! comes back into the same per-host answers a direct fan-out gives, each report carrying
//! `via`. If a relay cannot be reached, the next member of its datacenter is tried; if none
//! can, the datacenter's hosts are asked directly with the time left. Once a relay has
//! taken the request, every host it has not answered for when its stream breaks, ends or
//! outlives the deadline is reported `unreachable`, naming the relay: never missing.

use crate::fanout::{Answer, FanOut, HostReport};
use crate::fleet::Target;
use dcos_core::tls::Identity;
use dcos_proto::v1 as pb;
use futures::stream::{BoxStream, StreamExt};
use k2i_client::fanout::{status_word, Read};
use serde::de::DeserializeOwned;
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tonic::transport::Channel;

/// The relay's share of the deadline is this much shorter than the CLI's, so its answers
/// (timeouts included) arrive before the CLI gives up on it.
const RELAY_MARGIN: Duration = Duration::from_millis(150);
/// How long past the deadline the CLI waits for a relay's last answers.
const GRACE: Duration = Duration::from_millis(100);
/// The largest reply message accepted from a relay.
const MAX_REPLY: usize = 256 << 20;

/// Whether to ask through relays (`--relay`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum RelayMode {
    /// Through relays when the selected hosts span more than one datacenter.
    #[default]
    Auto,
    /// Through relays whenever a seed gives members to relay through.
    Always,
    /// Every host directly from this machine.
    Never,
}

/// A member that may relay for its datacenter.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    pub name: String,
    pub api: SocketAddr,
}

/// The relays of each datacenter, and the channels opened to them (kept for the next
/// request: `dcos top` refreshes through the same ones).
pub struct Relays {
    candidates: BTreeMap<String, Vec<Candidate>>,
    identity: Identity,
    channels: Mutex<HashMap<String, Channel>>,
}

/// Each datacenter's live members with an API address, least loaded first (an unknown load
/// last), then by name.
pub fn candidates(members: &[pb::Member]) -> BTreeMap<String, Vec<Candidate>> {
    let mut by_dc: BTreeMap<String, Vec<(f64, Candidate)>> = BTreeMap::new();
    for m in members.iter().filter(|m| m.state() == pb::MemberState::Alive) {
        let Ok(api) = m.api.parse::<SocketAddr>() else { continue };
        let load = if m.load < 0.0 { f64::MAX } else { m.load };
        by_dc.entry(m.dc.clone()).or_default().push((load, Candidate { name: m.name.clone(), api }));
    }
    by_dc
        .into_iter()
        .map(|(dc, mut list)| {
            list.sort_by(|a, b| a.0.total_cmp(&b.0).then_with(|| a.1.name.cmp(&b.1.name)));
            (dc, list.into_iter().map(|(_, c)| c).collect())
        })
        .collect()
}

impl Relays {
    pub fn new(members: &[pb::Member], identity: Identity) -> Relays {
        Relays { candidates: candidates(members), identity, channels: Mutex::default() }
    }

    fn cached(&self, name: &str) -> Option<Channel> {
        self.channels.lock().unwrap_or_else(|e| e.into_inner()).get(name).cloned()
    }

    fn forget(&self, name: &str) {
        self.channels.lock().unwrap_or_else(|e| e.into_inner()).remove(name);
    }

    async fn channel(&self, c: &Candidate) -> Result<Channel, String> {
        if let Some(ch) = self.cached(&c.name) {
            return Ok(ch);
        }
        let ch = middlecon_client::connect(c.api, &self.identity).await.map_err(|e| e.to_string())?;
        self.channels.lock().unwrap_or_else(|e| e.into_inner()).insert(c.name.clone(), ch.clone());
        Ok(ch)
    }

    /// `read` with `query` on every target: each datacenter with a relay through it, the
    /// others directly; answers as they come, with `target` the index in `targets`. With
    /// `live` (a refreshing `top`), the relays keep the answer fresh for the same request
    /// coming again within `live` (zero: this is the last).
    pub fn answers<T>(
        self: &Arc<Self>,
        fanout: &FanOut,
        targets: &[Target],
        read: Read,
        query: &str,
        live: Duration,
    ) -> BoxStream<'static, Answer<T>>
    where
        T: DeserializeOwned + Send + 'static,
    {
        let deadline = Instant::now() + fanout.timeout;
        let mut groups: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
        for (i, t) in targets.iter().enumerate() {
            groups.entry(t.dc.as_str()).or_default().push(i);
        }
        // A reply's answers travel together: one wake-up of the reader per relay message.
        let (tx, rx) = mpsc::channel::<Vec<Answer<T>>>(16);
        for (dc, indexes) in groups {
            let job = Job {
                relays: self.clone(),
                candidates: self.candidates.get(dc).cloned().unwrap_or_default(),
                targets: indexes.iter().map(|&i| targets[i].clone()).collect(),
                indexes,
                read,
                query: query.to_string(),
                live,
                fanout: fanout.clone(),
                deadline,
                tx: tx.clone(),
            };
            tokio::spawn(job.run());
        }
        drop(tx);
        tokio_stream::wrappers::ReceiverStream::new(rx).flat_map(futures::stream::iter).boxed()
    }
}

/// One datacenter's share of a fan-out.
struct Job<T> {
    relays: Arc<Relays>,
    candidates: Vec<Candidate>,
    targets: Vec<Target>,
    /// Each target's index in the whole fan-out.
    indexes: Vec<usize>,
    read: Read,
    query: String,
    /// `FanOutRequest.live_ms`.
    live: Duration,
    fanout: FanOut,
    deadline: Instant,
    tx: mpsc::Sender<Vec<Answer<T>>>,
}

/// How asking one relay ended.
enum Asked {
    /// It took the request: whatever it did not answer for is reported.
    Taken,
    /// It could not be asked (why): try the next.
    Failed(String),
    /// The caller went away.
    Gone,
}

impl<T: DeserializeOwned + Send + 'static> Job<T> {
    async fn run(self) {
        let mut done = vec![false; self.targets.len()];
        let mut tried = Vec::new();
        for c in &self.candidates {
            if Instant::now() >= self.deadline {
                break;
            }
            match self.ask(c, &mut done).await {
                Asked::Taken | Asked::Gone => return,
                Asked::Failed(why) => {
                    self.relays.forget(&c.name);
                    tried.push(format!("{}: {why}", c.name));
                }
            }
        }
        if !tried.is_empty() {
            tracing::info!("no relay answered ({}); asking directly", tried.join("; "));
        }
        self.direct(&done).await;
    }

    /// Asks relay `c`; marks in `done` the targets it answered for.
    async fn ask(&self, c: &Candidate, done: &mut [bool]) -> Asked {
        let connecting = Instant::now();
        let left = self.deadline.saturating_duration_since(connecting);
        let channel = match tokio::time::timeout_at(self.deadline, self.relays.channel(c)).await {
            Ok(Ok(ch)) => ch,
            Ok(Err(e)) => return Asked::Failed(e),
            Err(_) => return Asked::Failed("no connection before the deadline".into()),
        };
        let request = pb::FanOutRequest {
            kind: match self.read {
                Read::Processes => pb::FanOutKind::Processes,
                Read::Top => pb::FanOutKind::Top,
                Read::Containers => pb::FanOutKind::Containers,
            } as i32,
            query: self.query.clone(),
            hosts: self
                .targets
                .iter()
                .map(|t| pb::FanOutHost { name: t.name.clone(), k2i: t.k2i.clone() })
                .collect(),
            timeout_ms: left.saturating_sub(RELAY_MARGIN).as_millis().max(1) as u32,
            live_ms: self.live.as_millis().min(u32::MAX as u128) as u32,
        };
        let mut client = pb::relay_client::RelayClient::new(channel).max_decoding_message_size(MAX_REPLY);
        let asked = Instant::now();
        tracing::trace!(relay = %c.name, "a channel in {:?}", asked - connecting);
        let mut stream = match tokio::time::timeout_at(self.deadline, client.fan_out(request)).await {
            Ok(Ok(s)) => s.into_inner(),
            Ok(Err(status)) => return Asked::Failed(format!("{}: {}", status.code(), status.message())),
            Err(_) => return Asked::Failed("no answer before the deadline".into()),
        };
        let why = loop {
            let next = tokio::time::timeout_at(self.deadline + GRACE, stream.message()).await;
            let reply = match next {
                Ok(Ok(Some(reply))) => {
                    tracing::trace!(relay = %c.name, answers = reply.answers.len(), "a reply after {:?}", asked.elapsed());
                    reply
                }
                Ok(Ok(None)) => break "the relay ended its answer without this host".to_string(),
                Ok(Err(status)) => {
                    self.relays.forget(&c.name);
                    break format!("the relay failed: {}: {}", status.code(), status.message());
                }
                Err(_) => break format!("no answer from the relay within {:?}", self.fanout.timeout),
            };
            let mut batch = Vec::with_capacity(reply.answers.len());
            for a in reply.answers {
                let i = a.index as usize;
                if i >= done.len() || done[i] {
                    continue;
                }
                done[i] = true;
                batch.push(self.answer(i, a, &c.name));
            }
            if self.tx.send(batch).await.is_err() {
                return Asked::Gone;
            }
            if done.iter().all(|d| *d) {
                tracing::debug!(relay = %c.name, hosts = done.len(), "answered in {:?}", asked.elapsed());
                return Asked::Taken;
            }
        };
        let mut missing = Vec::new();
        for i in (0..done.len()).filter(|&i| !done[i]) {
            let t = &self.targets[i];
            let report = HostReport {
                host: t.name.clone(),
                address: t.k2i.clone(),
                status: "unreachable",
                error: Some(format!("via {}: {why}", c.name)),
                elapsed_ms: self
                    .fanout
                    .timeout
                    .saturating_sub(self.deadline.saturating_duration_since(Instant::now()))
                    .as_millis() as u64,
                via: Some(c.name.clone()),
                age_ms: None,
            };
            missing.push(Answer { target: self.indexes[i], report, value: None });
        }
        if self.tx.send(missing).await.is_err() {
            return Asked::Gone;
        }
        Asked::Taken
    }

    fn answer(&self, i: usize, a: pb::HostAnswer, relay: &str) -> Answer<T> {
        let mut report = HostReport {
            host: a.host,
            address: a.address,
            status: status_word(&a.status),
            error: (!a.error.is_empty()).then_some(a.error),
            elapsed_ms: a.elapsed_ms,
            via: Some(relay.to_string()),
            age_ms: a.age_ms,
        };
        let mut value = None;
        if report.ok() {
            match serde_json::from_slice::<T>(&a.body) {
                Ok(v) => value = Some(v),
                Err(e) => {
                    report.status = "http_error";
                    report.error = Some(format!("bad answer: {e}"));
                }
            }
        }
        Answer { target: self.indexes[i], report, value }
    }

    /// Asks the targets not yet answered for directly, with the time left.
    async fn direct(&self, done: &[bool]) {
        let rest: Vec<usize> = (0..done.len()).filter(|&i| !done[i]).collect();
        let targets: Vec<Target> = rest.iter().map(|&i| self.targets[i].clone()).collect();
        let mut fan = self.fanout.clone();
        fan.timeout = self.deadline.saturating_duration_since(Instant::now()).max(Duration::from_millis(1));
        let path = self.read.path(&self.query);
        let mut answers = fan.get::<T>(&targets, |_| path.clone()).ready_chunks(64);
        while let Some(mut batch) = answers.next().await {
            for a in &mut batch {
                a.target = self.indexes[rest[a.target]];
            }
            if self.tx.send(batch).await.is_err() {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relays_are_live_members_with_an_api_least_loaded_first() {
        let m = |name: &str, dc: &str, api: &str, load: f64, state: pb::MemberState| pb::Member {
            name: name.into(),
            dc: dc.into(),
            api: api.into(),
            load,
            state: state as i32,
            ..pb::Member::default()
        };
        use pb::MemberState::{Alive, Dead, Suspect};
        let c = candidates(&[
            m("a", "eu", "10.0.0.1:7442", 2.0, Alive),
            m("b", "eu", "10.0.0.2:7442", 0.5, Alive),
            m("c", "eu", "10.0.0.3:7442", -1.0, Alive),
            m("d", "eu", "10.0.0.4:7442", 0.1, Dead),
            m("e", "eu", "", 0.1, Alive),
            m("f", "us", "10.1.0.1:7442", 0.0, Suspect),
            m("g", "us", "10.1.0.2:7442", 9.0, Alive),
        ]);
        let names = |dc: &str| c[dc].iter().map(|c| c.name.as_str()).collect::<Vec<_>>();
        assert_eq!(names("eu"), ["b", "a", "c"], "by load, unknown load last; dead and API-less left out");
        assert_eq!(names("us"), ["g"]);
    }
}
