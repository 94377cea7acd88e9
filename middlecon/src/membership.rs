//! Fleet membership: seeds plus SWIM gossip, with the `foca` crate doing SWIM.
//!
//! - **Transport.** foca is runtime-agnostic: it is fed incoming packets and timer events
//!   and hands back packets to send. Every packet travels as one ordinary peer call to the
//!   built-in service [`SWIM_SERVICE`] (`dcos.swim`) over the authenticated QUIC
//!   connections of [`crate::peer`] (mTLS, `host` role), never over a socket of its own.
//!   The call's headers name the sender's peer address (`swim-from`) and its load
//!   (`swim-load`); the reply carries what SWIM answers that packet with for its sender
//!   (an ack, a join's member list), framed like peer frames (4-byte length, bytes), with
//!   the same two headers for the answering host, so an ack needs no call (nor
//!   connection) back. Other packets are calls of their own, on the one connection the
//!   two daemons share (whoever dialled it; a restarted peer resets the old one at once,
//!   see [`crate::peer`]).
//! - **Identity.** foca's identity type is [`Node`]: the peer address plus the static
//!   metadata (name, dc, labels, k2i URL, API address, version) and a `bump` (start time
//!   in ms, +1 on each renewal) so a restarted daemon on the same address wins over its
//!   dead predecessor.
//! - **Load.** The 1-minute load average from `/proc/loadavg` changes, so it is not in the
//!   identity: every [`LOAD_EVERY`] (`MIDDLECON_LOAD_EVERY_MS` overrides it) each member
//!   reads it, and every SWIM packet it sends or answers carries it; a member keeps the
//!   latest figure heard from each. Probes and their acks alone bring a member's figure to
//!   every other one twice per probe round (a probe every 500 ms: with 100 members, about
//!   every 25 s; gossip more often while there is news). It used to be a foca
//!   custom broadcast, and foca gossips every 200 ms while any broadcast is pending, which
//!   kept a large fleet's gossip (and CPU) busy all the time.
//! - **Certificate expiry.** The not-after of this host's certificate in use (it changes
//!   when the daemon reloads its TLS files) travels like the load figure, in the header
//!   `swim-cert` of every SWIM packet (refreshed every [`LOAD_EVERY`]); members list it as
//!   `cert_not_after`, so `dcos hosts --seed` can warn about a host's certificate.
//! - **Member list.** Rebuilt (sorted, with the load figures) only when foca reports a
//!   member change, a member's first load figure arrives, or every 500 ms (foca does not
//!   report suspicions; newer load figures wait for it), not after every packet.
//! - **Join.** While it knows no other member, a daemon announces itself to every seed
//!   (and every member it still lists as dead) once a second; members it lists as dead are
//!   also sent an announce every 5 s, so the two sides of a healed partition merge. Every
//!   [`SYNC_EVERY`] a member also announces itself to one random member, whose answer lists
//!   every member it knows: gossip tells each update to a few members a few times, and a
//!   member it missed (now and then, in a 100-member fleet) learns it here instead of
//!   only when the two probe each other.
//! - **Timings** (LAN): probe every 500 ms with a 200 ms round trip before 3 indirect
//!   probes, suspects declared dead after 2 s (with foca's LAN defaults, 1 s and 500 ms, a
//!   killed member took too long to be seen dead by all: docs/benchmarks.md), gossip every
//!   200 ms to 3 members, dead members forgotten after 60 s
//!   (`MIDDLECON_FORGET_DEAD_AFTER_MS` overrides it).
//!
//! [`Handle::members`] lists every member (this host first); the built-in service
//! [`SERVICE`] (`dcos.members`) answers the same list as JSON.

use crate::peer::{AppError, Client, PeerRequest, Request, Response, Service, ServiceFuture};
use foca::{AccumulatingRuntime, Foca, NoCustomBroadcast, PostcardCodec, Timer};
use rand::rngs::SmallRng;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::num::{NonZeroU32, NonZeroUsize};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use tokio::sync::{mpsc, oneshot};

/// The built-in service that carries SWIM packets between middlecons.
pub const SWIM_SERVICE: &str = "dcos.swim";
/// The built-in service that answers the member list (JSON [`MembersReply`]).
pub const SERVICE: &str = "dcos.members";
/// How often each member refreshes and disseminates its load figure.
pub const LOAD_EVERY: Duration = Duration::from_secs(3);
/// How long dead members stay listed by default.
pub const FORGET_DEAD_AFTER: Duration = Duration::from_secs(60);
const PROBE_PERIOD: Duration = Duration::from_millis(500);
const PROBE_RTT: Duration = Duration::from_millis(200);
const SUSPECT_TO_DEAD: Duration = Duration::from_secs(2);
const JOIN_EVERY: Duration = Duration::from_secs(1);
/// How often a member asks one random member for its whole member list.
pub const SYNC_EVERY: Duration = Duration::from_secs(2);
/// How often the member list is rebuilt even without a reported change (suspicions).
const REFRESH_EVERY: Duration = Duration::from_millis(500);
/// Largest SWIM packet: streams have no datagram limit, so a join reply carries many members.
const MAX_PACKET: usize = 32 * 1024;
/// How long one SWIM packet may take to be delivered.
const SEND_DEADLINE: Duration = Duration::from_secs(1);
const INPUT_QUEUE: usize = 4096;

/// A member's identity as SWIM knows it: its peer address and static metadata.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Node {
    pub addr: SocketAddr,
    /// Start time in ms since the epoch, +1 on each renewal: the larger wins an address.
    pub bump: u64,
    pub name: String,
    pub dc: String,
    pub labels: BTreeMap<String, String>,
    pub k2i: String,
    pub api: String,
    pub version: String,
}

impl Node {
    /// A stand-in for whoever listens on `addr` (a seed, before it answers).
    fn at(addr: SocketAddr) -> Node {
        Node {
            addr,
            bump: 0,
            name: String::new(),
            dc: String::new(),
            labels: BTreeMap::new(),
            k2i: String::new(),
            api: String::new(),
            version: String::new(),
        }
    }
}

impl foca::Identity for Node {
    type Addr = SocketAddr;

    fn renew(&self) -> Option<Self> {
        Some(Node { bump: self.bump.wrapping_add(1), ..self.clone() })
    }

    fn addr(&self) -> SocketAddr {
        self.addr
    }

    fn win_addr_conflict(&self, adversary: &Self) -> bool {
        self.bump > adversary.bump
    }
}

/// A member's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Alive,
    Suspect,
    Dead,
}

/// One member as [`Handle::members`] and `dcos.members` list it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Member {
    pub name: String,
    pub dc: String,
    pub labels: BTreeMap<String, String>,
    /// Its k2i URL (empty when not configured).
    pub k2i: String,
    /// Its gRPC API address (empty when not configured).
    pub api: String,
    /// Its peer (QUIC) address.
    pub addr: SocketAddr,
    pub state: State,
    /// Its 1-minute load average, once heard.
    pub load: Option<f64>,
    pub version: String,
    /// The runtime classes it has (empty: none, or not told).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub runtimes: Vec<String>,
    /// The services whose fronts it said are saturated, as last heard.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub saturated: Vec<String>,
    /// When its certificate expires (seconds since the epoch), as last heard.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_not_after: Option<i64>,
}

/// The `dcos.members` reply.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MembersReply {
    pub members: Vec<Member>,
}

/// What this host says about itself.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The peer address others reach this host on.
    pub addr: SocketAddr,
    pub name: String,
    pub dc: String,
    pub labels: BTreeMap<String, String>,
    pub k2i: String,
    pub api: String,
    /// The runtime classes this host has, told to the others.
    pub runtimes: Vec<String>,
    pub seeds: Vec<SocketAddr>,
    pub forget_dead_after: Duration,
    /// How often this host spreads its load figure.
    pub load_every: Duration,
    /// This host's identity, whose certificate's expiry is told to the others.
    pub identity: Option<Arc<dcos_core::reload::ReloadableIdentity>>,
}

/// The label a host's runtime classes travel in (`runc,runsc`), so that the gossiped
/// identity keeps its encoding and hosts of the versions before and after the classes still
/// understand each other; members list the classes in `runtimes`, not among their labels.
const RUNTIMES_LABEL: &str = "dcos.runtimes";

/// `labels` with the runtime classes added under [`RUNTIMES_LABEL`].
fn with_runtimes(labels: &BTreeMap<String, String>, runtimes: &[String]) -> BTreeMap<String, String> {
    let mut labels = labels.clone();
    if !runtimes.is_empty() {
        labels.insert(RUNTIMES_LABEL.to_string(), runtimes.join(","));
    }
    labels
}

/// A duration in milliseconds from the environment variable `name`, else `default`.
fn env_ms(name: &str, default: Duration) -> Duration {
    std::env::var(name).ok().and_then(|v| v.parse::<u64>().ok()).map(Duration::from_millis).unwrap_or(default)
}

impl Settings {
    /// From the daemon's configuration, `bound` (the peer socket's address) and `api` (the
    /// API's TCP address, if served). A wildcard address is replaced by the local address
    /// that routes to the first seed (or loopback without seeds); port 0 by the bound port.
    pub fn from_config(
        config: &crate::config::Config,
        bound: SocketAddr,
        api: Option<SocketAddr>,
    ) -> Settings {
        let mut addr = config.listen;
        if addr.ip().is_unspecified() {
            addr.set_ip(route_to(config.seeds.first()).unwrap_or(IpAddr::from([127, 0, 0, 1])));
        }
        if addr.port() == 0 {
            addr.set_port(bound.port());
        }
        let api = api.map(|mut a| {
            if a.ip().is_unspecified() {
                a.set_ip(addr.ip());
            }
            a.to_string()
        });
        Settings {
            addr,
            name: config.name.clone(),
            dc: config.dc.clone(),
            labels: config.labels.clone(),
            k2i: config.k2i.clone(),
            api: api.unwrap_or_default(),
            runtimes: Vec::new(),
            seeds: config.seeds.clone(),
            forget_dead_after: env_ms("MIDDLECON_FORGET_DEAD_AFTER_MS", FORGET_DEAD_AFTER),
            // A tokio interval may not be zero.
            load_every: env_ms("MIDDLECON_LOAD_EVERY_MS", LOAD_EVERY).max(Duration::from_millis(1)),
            identity: Some(config.identity.clone()),
        }
    }
}

/// The local address the kernel would use towards `seed` (no packet is sent).
fn route_to(seed: Option<&SocketAddr>) -> Option<IpAddr> {
    let seed = seed?;
    let any: SocketAddr = if seed.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" }.parse().ok()?;
    let s = UdpSocket::bind(any).ok()?;
    s.connect(seed).ok()?;
    Some(s.local_addr().ok()?.ip())
}

// ---------------------------------------------------------------------------------------
// Load figures, carried in the headers of every SWIM packet

/// Header of a `dcos.swim` call: the sender's peer address (as SWIM knows it).
const FROM_HEADER: &str = "swim-from";
/// Header of a `dcos.swim` call: the sender's 1-minute load average.
const LOAD_HEADER: &str = "swim-load";
/// Header of a `dcos.swim` call: the services whose fronts are saturated on the sender,
/// comma-separated (absent: none).
const FULL_HEADER: &str = "swim-full";
/// Header of a `dcos.swim` call: when the sender's certificate expires (seconds since the
/// epoch).
const CERT_HEADER: &str = "swim-cert";

/// This host's load figure and every member's latest one heard, and whether a member's
/// first figure arrived since the member list was last rebuilt (later ones wait for the
/// periodic rebuild).
#[derive(Default)]
struct LoadTable {
    mine: Option<f64>,
    figures: HashMap<SocketAddr, f64>,
    changed: bool,
    /// The services saturated here (`Handle::set_saturated`), and on each member as heard.
    full_mine: String,
    full: HashMap<SocketAddr, String>,
    /// When this host's certificate expires, and each member's as heard.
    cert_mine: Option<i64>,
    certs: HashMap<SocketAddr, i64>,
}

impl LoadTable {
    fn set_cert(&mut self, addr: SocketAddr, not_after: i64) {
        if self.certs.insert(addr, not_after) != Some(not_after) {
            self.changed = true;
        }
    }

    fn record(&mut self, addr: SocketAddr, load: f64) {
        if self.figures.insert(addr, load).is_none() {
            self.changed = true;
        }
    }

    /// The headers that name this host (`me`) and its load, for a call or a reply.
    fn headers(&self, me: SocketAddr) -> BTreeMap<String, String> {
        let mut headers = BTreeMap::from([(FROM_HEADER.to_string(), me.to_string())]);
        if let Some(load) = self.mine {
            headers.insert(LOAD_HEADER.to_string(), load.to_string());
        }
        if !self.full_mine.is_empty() {
            headers.insert(FULL_HEADER.to_string(), self.full_mine.clone());
        }
        if let Some(cert) = self.cert_mine {
            headers.insert(CERT_HEADER.to_string(), cert.to_string());
        }
        headers
    }

    /// Records what a `dcos.swim` call's (or reply's) headers say; returns the sender's address.
    fn heard(&mut self, headers: &BTreeMap<String, String>) -> Option<SocketAddr> {
        let from: SocketAddr = headers.get(FROM_HEADER)?.parse().ok()?;
        if let Some(load) = headers.get(LOAD_HEADER).and_then(|l| l.parse::<f64>().ok()) {
            if load.is_finite() && load >= 0.0 {
                self.record(from, load);
            }
        }
        let full = headers.get(FULL_HEADER).cloned().unwrap_or_default();
        if self.full.get(&from).map_or(!full.is_empty(), |f| *f != full) {
            self.full.insert(from, full);
            self.changed = true;
        }
        if let Some(cert) = headers.get(CERT_HEADER).and_then(|c| c.parse::<i64>().ok()) {
            self.set_cert(from, cert);
        }
        Some(from)
    }
}

type Loads = Arc<Mutex<LoadTable>>;

/// The 1-minute load average, from `/proc/loadavg`.
pub fn load_average() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg").ok()?.split_whitespace().next()?.parse().ok()
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn now_ms() -> u64 {
    crate::peer::unix_ms(SystemTime::now()).max(0) as u64
}

// ---------------------------------------------------------------------------------------
// The membership task

enum Input {
    /// A SWIM packet. `back`: it came in a call from that peer address whose reply waits
    /// for the packets SWIM answers it with (an ack, a join's member list).
    Data {
        data: Vec<u8>,
        back: Option<(SocketAddr, oneshot::Sender<Vec<u8>>)>,
    },
    Timer(Timer<Node>),
    Leave(oneshot::Sender<()>),
}

/// Reads the member list; cheap to clone.
#[derive(Clone)]
pub struct Handle {
    members: Arc<Mutex<Vec<Member>>>,
    input: mpsc::Sender<Input>,
    loads: Loads,
    me: SocketAddr,
}

impl Handle {
    /// Every member this host knows: itself first, then the others by name.
    pub fn members(&self) -> Vec<Member> {
        lock(&self.members).clone()
    }

    /// The peer address and state of the member called `name`, copying nothing else (a
    /// call's route looks its target up here).
    pub fn address_of(&self, name: &str) -> Option<(SocketAddr, State)> {
        lock(&self.members).iter().find(|m| m.name == name).map(|m| (m.addr, m.state))
    }

    /// Says, with every SWIM packet from now on, which services' fronts are saturated on this
    /// host (a peer's front spills to it only if not).
    pub fn set_saturated(&self, services: &[String]) {
        let mut loads = lock(&self.loads);
        let full = services.join(",");
        if loads.full_mine != full {
            loads.full.insert(self.me, full.clone());
            loads.full_mine = full;
            loads.changed = true;
        }
    }

    /// Tells the others this host leaves, waiting at most `wait` for the packets to go.
    pub async fn leave(&self, wait: Duration) {
        let (tx, rx) = oneshot::channel();
        if self.input.send(Input::Leave(tx)).await.is_ok() {
            let _ = tokio::time::timeout(wait, rx).await;
        }
    }

    /// The `dcos.swim` service, feeding received packets to SWIM.
    pub fn swim_service(&self) -> SwimService {
        SwimService { input: self.input.clone(), loads: self.loads.clone(), me: self.me }
    }

    /// The `dcos.members` service.
    pub fn members_service(&self) -> MembersService {
        MembersService { handle: self.clone() }
    }
}

type Swim = Foca<Node, PostcardCodec, SmallRng, NoCustomBroadcast>;

fn swim_config(forget_dead_after: Duration) -> foca::Config {
    let mut c = foca::Config::new_lan(NonZeroU32::new(100).expect("nonzero"));
    c.probe_period = PROBE_PERIOD;
    c.probe_rtt = PROBE_RTT;
    c.suspect_to_down_after = SUSPECT_TO_DEAD;
    c.remove_down_after = Some(forget_dead_after);
    c.max_packet_size = NonZeroUsize::new(MAX_PACKET).expect("nonzero");
    c.periodic_announce =
        Some(foca::PeriodicParams { frequency: SYNC_EVERY, num_members: NonZeroUsize::MIN });
    c.periodic_announce_to_down_members =
        Some(foca::PeriodicParams { frequency: Duration::from_secs(5), num_members: NonZeroUsize::MIN });
    c
}

/// Starts membership, sending SWIM packets through the daemon's peer `client`.
pub fn start(settings: Settings, client: Client) -> Handle {
    let me = Node {
        addr: settings.addr,
        bump: now_ms(),
        name: settings.name.clone(),
        dc: settings.dc.clone(),
        labels: with_runtimes(&settings.labels, &settings.runtimes),
        k2i: settings.k2i.clone(),
        api: settings.api.clone(),
        version: env!("CARGO_PKG_VERSION").to_string(),
    };
    let loads: Loads = Arc::default();
    let seed = now_ms() ^ (u64::from(std::process::id()) << 32);
    let addr = me.addr;
    let foca =
        Swim::new(me, swim_config(settings.forget_dead_after), SmallRng::seed_from_u64(seed), PostcardCodec);
    let (tx, rx) = mpsc::channel(INPUT_QUEUE);
    let handle = Handle { members: Arc::default(), input: tx.clone(), loads: loads.clone(), me: addr };
    let task = Task {
        foca,
        loads: loads.clone(),
        runtime: AccumulatingRuntime::new(),
        sender: Sender { client, me: addr, loads: loads.clone(), input: tx.clone() },
        input: tx,
        members: handle.members.clone(),
        changed: true,
        seeds: settings.seeds,
        load_every: settings.load_every,
        identity: settings.identity,
    };
    tokio::spawn(task.run(rx));
    handle
}

struct Task {
    foca: Swim,
    loads: Loads,
    runtime: AccumulatingRuntime<Node>,
    sender: Sender,
    input: mpsc::Sender<Input>,
    members: Arc<Mutex<Vec<Member>>>,
    /// foca reported a member change since the list was last rebuilt.
    changed: bool,
    seeds: Vec<SocketAddr>,
    load_every: Duration,
    identity: Option<Arc<dcos_core::reload::ReloadableIdentity>>,
}

impl Task {
    async fn run(mut self, mut rx: mpsc::Receiver<Input>) {
        let mut join = tokio::time::interval(JOIN_EVERY);
        let mut load = tokio::time::interval(self.load_every);
        let mut refresh = tokio::time::interval(REFRESH_EVERY);
        join.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        load.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        refresh.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let mut refreshing = false;
            let result = tokio::select! {
                input = rx.recv() => match input {
                    None => return,
                    Some(Input::Data { data, back }) => {
                        let r = self.foca.handle_data(&data, &mut self.runtime);
                        if let Some((from, reply)) = back {
                            let _ = reply.send(self.answers_to(from));
                        }
                        r
                    }
                    Some(Input::Timer(t)) => self.foca.handle_timer(t, &mut self.runtime),
                    Some(Input::Leave(done)) => {
                        let r = self.foca.leave_cluster(&mut self.runtime);
                        let sends = self.flush();
                        tokio::spawn(async move {
                            for s in sends {
                                let _ = s.await;
                            }
                            let _ = done.send(());
                        });
                        if let Err(e) = r {
                            tracing::debug!("leaving the cluster: {e}");
                        }
                        return;
                    }
                },
                _ = join.tick() => {
                    if self.foca.num_members() == 0 {
                        self.announce_to_seeds()
                    } else {
                        Ok(())
                    }
                }
                _ = load.tick() => self.refresh_load(),
                _ = refresh.tick() => {
                    refreshing = true;
                    Ok(())
                }
            };
            if let Err(e) = result {
                tracing::debug!("swim: {e}");
            }
            self.flush();
            self.snapshot(refreshing);
        }
    }

    /// Announces this host to every seed and every member it still lists as dead (a seed
    /// that was cut off has only itself as seed, and finds its way back through them).
    fn announce_to_seeds(&mut self) -> Result<(), foca::Error> {
        let me = self.foca.identity().addr;
        let mut targets: Vec<SocketAddr> = self.seeds.clone();
        targets.extend(self.foca.iter_membership_state().map(|m| m.id().addr));
        targets.sort();
        targets.dedup();
        for addr in targets.into_iter().filter(|&a| a != me) {
            self.foca.announce(Node::at(addr), &mut self.runtime)?;
        }
        Ok(())
    }

    /// Reads this host's load figure and its certificate's expiry, which every SWIM packet
    /// it sends then carries.
    fn refresh_load(&mut self) -> Result<(), foca::Error> {
        let me = self.foca.identity().addr;
        let mut loads = lock(&self.loads);
        if let Some(load) = load_average() {
            loads.mine = Some(load);
            loads.record(me, load);
        }
        if let Some(identity) = &self.identity {
            let not_after = identity.current().identity.peer.not_after;
            loads.cert_mine = Some(not_after);
            loads.set_cert(me, not_after);
        }
        Ok(())
    }

    /// Takes the packets foca produced for `from` (framed, for the reply of the call that
    /// brought its packet), and sends the others.
    fn answers_to(&mut self, from: SocketAddr) -> Vec<u8> {
        let mut back = Vec::new();
        while let Some((to, data)) = self.runtime.to_send() {
            if to.addr == from && back.len() + 4 + data.len() <= MAX_PACKET {
                back.extend_from_slice(&(data.len() as u32).to_be_bytes());
                back.extend_from_slice(&data);
            } else {
                self.sender.send(to.addr, data.to_vec());
            }
        }
        back
    }

    /// Sends what foca produced, schedules its timers, logs its notifications. Returns the
    /// send tasks.
    fn flush(&mut self) -> Vec<tokio::task::JoinHandle<()>> {
        let mut sends = Vec::new();
        while let Some((to, data)) = self.runtime.to_send() {
            sends.push(self.sender.send(to.addr, data.to_vec()));
        }
        while let Some((after, timer)) = self.runtime.to_schedule() {
            let input = self.input.clone();
            tokio::spawn(async move {
                tokio::time::sleep(after).await;
                let _ = input.send(Input::Timer(timer)).await;
            });
        }
        while let Some(n) = self.runtime.to_notify() {
            match n {
                foca::OwnedNotification::MemberUp(m) => {
                    self.changed = true;
                    tracing::info!(member = %m.name, addr = %m.addr, "member up")
                }
                foca::OwnedNotification::MemberDown(m) => {
                    self.changed = true;
                    tracing::info!(member = %m.name, addr = %m.addr, "member down")
                }
                foca::OwnedNotification::Rename(..) => self.changed = true,
                foca::OwnedNotification::Rejoin(m) => {
                    self.changed = true;
                    tracing::info!(bump = m.bump, "declared down by the others; rejoined")
                }
                other => tracing::debug!("swim: {other:?}"),
            }
        }
        sends
    }

    /// Rebuilds the member list if foca reported a change, a load figure arrived or
    /// `refresh` asks for it (foca does not report suspicions).
    fn snapshot(&mut self, refresh: bool) {
        let mut loads = lock(&self.loads);
        if !(refresh || self.changed || loads.changed) {
            return;
        }
        self.changed = false;
        loads.changed = false;
        let member = |n: &Node, state: State| Member {
            name: n.name.clone(),
            dc: n.dc.clone(),
            labels: n
                .labels
                .iter()
                .filter(|(k, _)| *k != RUNTIMES_LABEL)
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            k2i: n.k2i.clone(),
            api: n.api.clone(),
            addr: n.addr,
            state,
            load: loads.figures.get(&n.addr).copied(),
            version: n.version.clone(),
            runtimes: n
                .labels
                .get(RUNTIMES_LABEL)
                .map(|r| r.split(',').map(String::from).collect())
                .unwrap_or_default(),
            saturated: loads
                .full
                .get(&n.addr)
                .map(|f| f.split(',').filter(|s| !s.is_empty()).map(String::from).collect())
                .unwrap_or_default(),
            cert_not_after: loads.certs.get(&n.addr).copied(),
        };
        let mut others: Vec<Member> = self
            .foca
            .iter_membership_state()
            .map(|m| {
                let state = match m.state() {
                    foca::State::Alive => State::Alive,
                    foca::State::Suspect => State::Suspect,
                    foca::State::Down => State::Dead,
                };
                member(m.id(), state)
            })
            .collect();
        others.sort_by(|a, b| a.name.cmp(&b.name).then(a.addr.cmp(&b.addr)));
        let mut all = vec![member(self.foca.identity(), State::Alive)];
        all.extend(others);
        drop(loads);
        *lock(&self.members) = all;
    }
}

/// Sends SWIM packets as `dcos.swim` calls, on the daemon's connection to each peer.
struct Sender {
    client: Client,
    /// This host's peer address and load figure, sent along in headers.
    me: SocketAddr,
    loads: Loads,
    /// Where the packets in a call's reply go.
    input: mpsc::Sender<Input>,
}

impl Sender {
    fn send(&self, to: SocketAddr, data: Vec<u8>) -> tokio::task::JoinHandle<()> {
        let client = self.client.clone();
        let loads = self.loads.clone();
        let req = PeerRequest {
            service: SWIM_SERVICE.to_string(),
            deadline_unix_ms: crate::peer::unix_ms(SystemTime::now() + SEND_DEADLINE),
            headers: lock(&self.loads).headers(self.me),
            payload: data,
        };
        let input = self.input.clone();
        tokio::spawn(async move {
            match client.request_idempotent(to, req).await {
                Ok(reply) if reply.outcome() == crate::peer::Outcome::Ok => {
                    lock(&loads).heard(&reply.headers);
                    for data in unframe(&reply.payload) {
                        let _ = input.send(Input::Data { data, back: None }).await;
                    }
                }
                Ok(reply) => {
                    tracing::debug!(%to, "swim packet refused: {:?} {}", reply.outcome(), reply.message)
                }
                // A restarted peer resets the old connection (the next packet dials afresh).
                Err(e) => tracing::debug!(%to, "swim packet lost: {e}"),
            }
        })
    }
}

/// The packets in a `dcos.swim` reply: each a 4-byte big-endian length and its bytes (a
/// truncated tail is dropped).
fn unframe(mut payload: &[u8]) -> Vec<Vec<u8>> {
    let mut packets = Vec::new();
    while let Some((len, rest)) = payload.split_first_chunk::<4>() {
        let len = u32::from_be_bytes(*len) as usize;
        if len > rest.len() {
            break;
        }
        packets.push(rest[..len].to_vec());
        payload = &rest[len..];
    }
    packets
}

// ---------------------------------------------------------------------------------------
// Services

/// `dcos.swim`: a SWIM packet from a verified `host` peer.
pub struct SwimService {
    input: mpsc::Sender<Input>,
    loads: Loads,
    /// This host's peer address, named in the reply with its load.
    me: SocketAddr,
}

impl Service for SwimService {
    fn call(&self, request: Request) -> ServiceFuture {
        if request.payload.len() > MAX_PACKET {
            let e = format!("SWIM packet of {} bytes is over {MAX_PACKET}", request.payload.len());
            return Box::pin(async move { Err(AppError::new(e)) });
        }
        // A sender that names its address gets SWIM's answers in the reply (no call back,
        // so no connection dialled back just for an ack).
        let (from, headers) = {
            let mut loads = lock(&self.loads);
            (loads.heard(&request.headers), loads.headers(self.me))
        };
        let (back, answers) = match from {
            Some(from) => {
                let (tx, rx) = oneshot::channel();
                (Some((from, tx)), Some(rx))
            }
            None => (None, None),
        };
        if self.input.try_send(Input::Data { data: request.payload, back }).is_err() {
            return Box::pin(async { Err(AppError::new("membership is busy or stopped")) });
        }
        Box::pin(async move {
            let payload = match answers {
                Some(rx) => rx.await.unwrap_or_default(),
                None => Vec::new(),
            };
            Ok(Response { payload, headers })
        })
    }
}

/// `dcos.members`: the member list as JSON ([`MembersReply`]).
pub struct MembersService {
    handle: Handle,
}

impl Service for MembersService {
    fn call(&self, _request: Request) -> ServiceFuture {
        let reply = MembersReply { members: self.handle.members() };
        Box::pin(async move {
            let payload = serde_json::to_vec(&reply).map_err(|e| AppError::new(e.to_string()))?;
            Ok(Response { payload, ..Response::default() })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn node(last: u8) -> Node {
        Node {
            addr: SocketAddr::from(([10, 0, 0, last], 7441)),
            bump: 1,
            name: format!("host-{last}"),
            dc: "dc-a".into(),
            labels: BTreeMap::new(),
            k2i: String::new(),
            api: String::new(),
            version: "0".into(),
        }
    }

    fn swim() -> Swim {
        Swim::new(node(1), swim_config(Duration::from_secs(60)), SmallRng::seed_from_u64(7), PostcardCodec)
    }

    /// Fuzz targets of the membership wire (bounded here; `scripts/fuzz.sh` runs them
    /// longer): whatever a peer sends, the reply splitter and SWIM's decoder end in packets
    /// or an error, never a panic, and garbage adds no member.
    mod fuzz {
        use super::*;
        proptest! {
            #[test]
            fn any_reply_splits_into_packets_no_longer_than_itself(payload in any::<Vec<u8>>()) {
                let packets = unframe(&payload);
                let carried: usize = packets.iter().map(|p| p.len() + 4).sum();
                prop_assert!(carried <= payload.len());
            }

            #[test]
            fn any_packet_is_handled_or_refused_and_garbage_adds_no_member(data in any::<Vec<u8>>()) {
                let mut swim = swim();
                let mut runtime = AccumulatingRuntime::new();
                let _ = swim.handle_data(&data, &mut runtime);
                prop_assert_eq!(swim.num_members(), 0);
            }
        }
    }

    #[test]
    fn a_real_announce_still_adds_its_member_after_garbage() {
        let mut theirs = swim();
        let mut other = Swim::new(
            node(2),
            swim_config(Duration::from_secs(60)),
            SmallRng::seed_from_u64(8),
            PostcardCodec,
        );
        let mut runtime = AccumulatingRuntime::new();
        other.announce(node(1), &mut runtime).unwrap();
        let (_, packet) = runtime.to_send().expect("an announce to send");
        let mut mine = AccumulatingRuntime::new();
        assert!(theirs.handle_data(&[0xde, 0xad], &mut mine).is_err());
        theirs.handle_data(&packet, &mut mine).expect("a real packet is taken");
        assert_eq!(theirs.num_members(), 1);
    }

    #[test]
    fn a_reply_is_split_into_its_packets_and_a_truncated_tail_is_dropped() {
        let mut payload = Vec::new();
        for p in [&b"ack"[..], &b""[..], &[7u8; 300][..]] {
            payload.extend_from_slice(&(p.len() as u32).to_be_bytes());
            payload.extend_from_slice(p);
        }
        let whole = unframe(&payload);
        assert_eq!(whole, vec![b"ack".to_vec(), Vec::new(), vec![7u8; 300]]);
        assert_eq!(unframe(&payload[..payload.len() - 1]), whole[..2].to_vec(), "cut inside the last packet");
        assert!(unframe(&[0, 0]).is_empty(), "cut inside a length");
        assert!(unframe(&[]).is_empty());
    }

    #[test]
    fn load_headers_name_the_sender_and_only_sane_figures_are_kept() {
        let me: SocketAddr = "10.0.0.1:7441".parse().unwrap();
        let mut mine = LoadTable::default();
        assert_eq!(mine.headers(me).get(FROM_HEADER).map(String::as_str), Some("10.0.0.1:7441"));
        assert!(!mine.headers(me).contains_key(LOAD_HEADER), "no figure read yet");
        mine.mine = Some(1.5);

        let mut theirs = LoadTable::default();
        assert_eq!(theirs.heard(&mine.headers(me)), Some(me));
        assert_eq!(theirs.figures.get(&me), Some(&1.5));
        assert!(theirs.changed, "a member's first figure rebuilds the list");
        theirs.changed = false;
        mine.mine = Some(2.0);
        theirs.heard(&mine.headers(me));
        assert_eq!(theirs.figures.get(&me), Some(&2.0));
        assert!(!theirs.changed, "later figures wait for the periodic rebuild");

        for bad in ["-1", "NaN", "inf", "high"] {
            let mut h = mine.headers(me);
            h.insert(LOAD_HEADER.to_string(), bad.to_string());
            theirs.heard(&h);
            assert_eq!(theirs.figures.get(&me), Some(&2.0), "{bad} is ignored");
        }
        assert_eq!(theirs.heard(&BTreeMap::new()), None, "an older sender names nobody");
    }
}
