//! One service on this host: its instances and the rules that start, hand out, renew and
//! stop them (`docs/services.md` is the specification; this follows it).
//!
//! - **Admission** ([`Service::admit`]): a connection gets the ready instance with the
//!   fewest open connections, as a [`Lease`] it holds while it is relayed. None ready: the
//!   connection is held (counted as waiting) until one is, or until the service's start
//!   timeout, or until the start fails.
//! - **Scale** ([`Pool::wanted`]): the active instances a host wants are its open and
//!   held connections over `--target-inflight`, rounded up, at least `--min` (and one while
//!   any connection is held), at most `--max`. Decided at every admission and every tick,
//!   with starting instances counted as capacity: a burst of connections at a stopped
//!   service starts one instance, not one each; a step of load starts what it needs at once.
//! - **Idle stop** (the tick): an active instance without a connection for `--idle-stop`
//!   is stopped while the host has more than it wants.
//! - **Prestart**: one spare instance kept started and idle, handed over at a cold start
//!   (it becomes active at once) and then replaced.
//! - **Renew**: an instance past `--max-requests` connections or older than `--max-age`
//!   retires: it takes no new connection, so the scale rule starts its replacement at once,
//!   and it stops once its open connections end (at most `--drain` later). No back-off.
//! - **Failures**: an instance whose start fails, that exits, or that does not accept on
//!   its port within the start timeout is removed (and stopped); held connections are
//!   closed at once when no other instance is on its way. Starts after failures are
//!   bounded by a fixed rate ([`FAILURES_ALLOWED`] per [`FAILURE_WINDOW`]): past it, the
//!   service is throttled until the window has room, and says so in `service show`.
//! - **Steering** ([`Service::steer_routes`]): the instances that take new connections are
//!   given them by the kernel ([`super::steer`]), unless the host is saturated and a peer
//!   has room (then the front spills); an instance's load is its relayed connections plus
//!   the steered ones conntrack counts. A service with `--max-requests` is not steered: its
//!   front counts every connection as it admits it. An instance leaves the routes before it
//!   drains, and stops only once the kernel has stopped sending it connections.

use super::counters::Counters;
use super::spec::ServiceSpec;
use super::spill::Spill;
use super::steer::Steer;
use crate::workloads::{RunSpec, Status, Workloads};
use std::collections::VecDeque;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};
use tokio::net::TcpStream;
use tokio::sync::Notify;

/// Failed starts allowed per [`FAILURE_WINDOW`] before the service is throttled.
pub const FAILURES_ALLOWED: usize = 5;
pub const FAILURE_WINDOW: Duration = Duration::from_secs(30);
/// How often a starting instance's port is tried.
const READY_POLL: Duration = Duration::from_millis(1);
/// How long after the kernel stops steering to an instance its last connection events are
/// awaited before the instance may stop.
const UNSTEER_GRACE: Duration = Duration::from_millis(30);

/// Where an instance is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Its workload is being run, or it does not accept on its port yet.
    Starting,
    /// It accepts connections.
    Ready,
    /// It takes no new connections; it stops once its open ones end (or `--drain` passes).
    Draining,
}

/// One instance: a workload of this host that listens on a loopback port.
#[derive(Debug)]
pub struct Instance {
    /// Its workload's name: `<service>.<n>`.
    pub id: String,
    pub port: u16,
    pub state: State,
    /// Kept started and idle for the next cold start (`--prestart`).
    pub spare: bool,
    /// Past `--max-requests` or `--max-age`: replaced, then drained.
    pub retiring: bool,
    pub pid: u32,
    pub started: Instant,
    pub started_unix_ms: i64,
    /// Connections relayed to it by the front now, and connections taken since it started
    /// (relayed and steered).
    pub inflight: u32,
    pub taken: u64,
    /// Connections the kernel steered to it, open now, and in all (as last counted).
    pub steered: u32,
    steered_taken: u64,
    /// The kernel steers new connections to it now; and when it stopped doing so.
    pub routed: bool,
    unrouted_at: Option<Instant>,
    /// When its last connection ended (or it became ready).
    pub idle_since: Instant,
    /// A connection to its port made ahead of time, for the next client ([`Service::warm_up`]).
    warm: Option<TcpStream>,
    /// That connection is being made.
    warming: bool,
    /// It sent bytes on a connection before the client did: it gets no connection ahead
    /// of time ([`Lease::usable`]).
    speaks_first: bool,
}

impl Instance {
    /// A new instance of the pool.
    fn new(id: String, port: u16, state: State, spare: bool, pid: u32, started_unix_ms: i64) -> Instance {
        let now = Instant::now();
        Instance {
            id,
            port,
            state,
            spare,
            retiring: false,
            pid,
            started: now,
            started_unix_ms,
            inflight: 0,
            taken: 0,
            steered: 0,
            steered_taken: 0,
            routed: false,
            unrouted_at: None,
            idle_since: now,
            warm: None,
            warming: false,
            speaks_first: false,
        }
    }

    /// May hold a warm connection: ready, not leaving, and not one that speaks first.
    fn warmable(&self) -> bool {
        self.state == State::Ready && !self.retiring && !self.speaks_first
    }

    /// Its open connections: relayed and steered.
    pub fn load(&self) -> u32 {
        self.inflight + self.steered
    }

    /// The kernel sends it no new connection, and has not for long enough that every one it
    /// sent is counted.
    fn unsteered(&self, now: Instant) -> bool {
        !self.routed && self.unrouted_at.is_none_or(|t| now.duration_since(t) >= UNSTEER_GRACE)
    }

    /// Takes new connections.
    fn open(&self) -> bool {
        self.state == State::Ready && !self.spare && !self.retiring
    }

    /// Counts as capacity for the scale rule (ready or on its way, not spare, not leaving).
    fn active(&self) -> bool {
        matches!(self.state, State::Starting | State::Ready) && !self.spare && !self.retiring
    }
}

/// The instances of one service on this host, under one lock.
#[derive(Debug, Default)]
pub struct Pool {
    pub instances: Vec<Instance>,
    /// Connections held for an instance now.
    pub waiting: u32,
    /// A held connection found no instance on its way (a cold start) and waits still.
    cold: bool,
    /// Failed starts within the window.
    failures: VecDeque<Instant>,
    /// The latest failure, for a person.
    pub last_error: String,
    /// Set when a start failed and nothing else is on its way: held connections give up.
    failed: bool,
    /// ... because the instance did not accept within the start timeout.
    failed_in_time: bool,
}

impl Pool {
    fn get(&mut self, id: &str) -> Option<&mut Instance> {
        self.instances.iter_mut().find(|i| i.id == id)
    }

    /// Open connections now, relayed and steered.
    pub fn inflight(&self) -> u32 {
        self.instances.iter().map(|i| i.load()).sum()
    }

    /// Open connections relayed by the front now.
    fn relayed(&self) -> u32 {
        self.instances.iter().map(|i| i.inflight).sum()
    }

    /// The active instances the load wants (see the module documentation).
    pub fn wanted(&self, spec: &ServiceSpec) -> u32 {
        let load = self.inflight() + self.waiting;
        let mut want = load.div_ceil(spec.target_inflight).max(spec.min);
        if self.waiting > 0 {
            want = want.max(1);
        }
        want.min(spec.max)
    }

    fn active(&self) -> u32 {
        self.instances.iter().filter(|i| i.active()).count() as u32
    }

    /// Whether every instance this host may have is busy at the target: a front may spill.
    pub fn saturated(&self, spec: &ServiceSpec) -> bool {
        let open: Vec<&Instance> = self.instances.iter().filter(|i| i.open()).collect();
        self.active() >= spec.max && open.iter().all(|i| i.load() >= spec.target_inflight)
    }

    /// Why held connections give up after a failed start.
    fn refusal(&self, start_timeout: Duration) -> Refused {
        if self.failed_in_time {
            Refused::Timeout(start_timeout)
        } else {
            Refused::Failed(self.last_error.clone())
        }
    }

    /// Whether starts are throttled now, the failures in the window pruned.
    fn throttled(&mut self, now: Instant) -> bool {
        while self.failures.front().is_some_and(|t| now.duration_since(*t) > FAILURE_WINDOW) {
            self.failures.pop_front();
        }
        self.failures.len() >= FAILURES_ALLOWED
    }
}

/// Why a held connection got no instance.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("no instance accepted within {0:?}")]
    Timeout(Duration),
    #[error("the instance failed to start: {0}")]
    Failed(String),
    #[error("the service is being removed or the daemon stops")]
    Closing,
}

/// A connection's hold on an instance; given back when dropped.
pub struct Lease {
    service: Arc<Service>,
    pub id: String,
    pub port: u16,
    /// The instance's warm connection, if it had one ([`Service::warm_up`]).
    pub warm: Option<TcpStream>,
}

impl Lease {
    /// Whether `warm`, the instance's connection made ahead of time, may carry this client:
    /// only if the instance has neither closed it nor sent anything on it. An instance that
    /// speaks first (a banner) gets no more such connections: its greeting is the client's.
    pub fn usable(&self, warm: &TcpStream) -> bool {
        use nix::sys::socket::{recv, MsgFlags};
        use std::os::fd::AsRawFd;
        match recv(warm.as_raw_fd(), &mut [0u8; 1], MsgFlags::MSG_PEEK | MsgFlags::MSG_DONTWAIT) {
            Err(nix::errno::Errno::EAGAIN) => true,
            Ok(n) if n > 0 => {
                if let Some(i) = self.service.pool().get(&self.id) {
                    i.speaks_first = true;
                }
                false
            }
            _ => false,
        }
    }

    /// The instance's address.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.port))
    }

    /// The instance did not take the connection (it is gone): it is failed, and the lease
    /// given back.
    pub fn refused(self, why: &str) {
        self.service.fail(&self.id, format!("{} refused a connection: {why}", self.id), true);
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let mut pool = self.service.pool();
        if let Some(i) = pool.get(&self.id) {
            i.inflight = i.inflight.saturating_sub(1);
            i.idle_since = Instant::now();
        }
        drop(pool);
        self.service.changed.notify_waiters();
    }
}

/// One service on this host.
pub struct Service {
    pub spec: ServiceSpec,
    workloads: Arc<Workloads>,
    steer: Arc<dyn Steer>,
    /// Where a saturated front may send connections: steering stops while one has room.
    spill: Arc<dyn Spill>,
    /// The front listens on the service's port (steering to instances is then allowed).
    pub front_bound: AtomicBool,
    pool: Mutex<Pool>,
    /// Told when an instance becomes ready, fails or frees a connection, or the service closes.
    changed: Notify,
    pub counters: Arc<Counters>,
    next: AtomicU64,
    closing: AtomicBool,
}

impl Service {
    /// Service `spec` over this host's workloads, with the instances a previous run of the
    /// daemon left (`adopted`: its running workloads of this service).
    pub fn new(
        spec: ServiceSpec,
        workloads: Arc<Workloads>,
        steer: Arc<dyn Steer>,
        spill: Arc<dyn Spill>,
        counters: Arc<Counters>,
        adopted: Vec<crate::workloads::Workload>,
    ) -> Arc<Service> {
        let mut next = 0;
        let instances = adopted
            .into_iter()
            .filter_map(|w| {
                let n: u64 = w.name.rsplit_once('.')?.1.parse().ok()?;
                next = next.max(n + 1);
                let port = w.env.get("PORT")?.parse().ok()?;
                tracing::info!(service = %spec.name, instance = %w.name, port, "instance re-adopted");
                Some(Instance::new(w.name, port, State::Ready, false, w.pid, w.started_unix_ms))
            })
            .collect();
        Arc::new(Service {
            spec,
            workloads,
            steer,
            spill,
            front_bound: AtomicBool::new(false),
            pool: Mutex::new(Pool { instances, ..Pool::default() }),
            changed: Notify::new(),
            counters,
            next: AtomicU64::new(next),
            closing: AtomicBool::new(false),
        })
    }

    pub fn pool(&self) -> MutexGuard<'_, Pool> {
        self.pool.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A ready instance for one connection, holding it until there is one (see the module
    /// documentation).
    pub async fn admit(self: &Arc<Self>) -> Result<Lease, Refused> {
        let arrived = Instant::now();
        let deadline = tokio::time::Instant::from_std(arrived + self.spec.start_timeout);
        let mut held = false;
        // This connection found no instance on its way: its wait is the cold start.
        let mut cold = false;
        let outcome = loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let mut pool = self.pool();
                if self.closing.load(Ordering::SeqCst) {
                    break Err(Refused::Closing);
                }
                if let Some(lease) = self.take(&mut pool) {
                    break Ok(lease);
                }
                if !held {
                    held = true;
                    pool.waiting += 1;
                    if !pool.instances.iter().any(|i| i.active()) && !pool.cold {
                        pool.cold = true;
                        cold = true;
                    }
                    pool.failed = false;
                    pool.failed_in_time = false;
                } else if pool.failed {
                    break Err(pool.refusal(self.spec.start_timeout));
                }
                self.scale(&mut pool);
                if pool.failed {
                    break Err(pool.refusal(self.spec.start_timeout));
                }
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                break Err(Refused::Timeout(self.spec.start_timeout));
            }
        };
        if held {
            let mut pool = self.pool();
            pool.waiting -= 1;
            if pool.waiting == 0 {
                pool.failed = false;
                pool.failed_in_time = false;
            }
            if cold {
                pool.cold = false;
            }
        }
        match &outcome {
            Ok(_) if cold => {
                self.counters.cold_starts.inc();
                self.counters.cold_start_seconds.observe(arrived.elapsed().as_secs_f64());
            }
            Ok(_) => {}
            Err(Refused::Timeout(_)) => {
                self.counters.start_timeouts.inc();
                tracing::warn!(service = %self.spec.name, waited_ms = arrived.elapsed().as_millis() as u64,
                    "held connection closed: no instance accepted within the start timeout");
            }
            Err(e) => tracing::info!(service = %self.spec.name, "held connection closed: {e}"),
        }
        outcome
    }

    /// The open instance with the fewest connections, leased (under the pool lock).
    fn take(self: &Arc<Self>, pool: &mut Pool) -> Option<Lease> {
        let max_requests = self.spec.max_requests;
        let i = pool.instances.iter_mut().filter(|i| i.open()).min_by_key(|i| (i.load(), i.taken))?;
        i.inflight += 1;
        i.taken += 1;
        if max_requests > 0 && i.taken >= max_requests {
            i.retiring = true;
            self.counters.renewals.inc();
        }
        let lease = Lease { service: self.clone(), id: i.id.clone(), port: i.port, warm: i.warm.take() };
        self.counters.connections.inc();
        // The load just rose: what it wants starts now, not at the next tick.
        self.scale(pool);
        self.warm_up(pool);
        Some(lease)
    }

    /// Starts what the load wants (under the pool lock): a spare handed over first, then
    /// new instances; and a new spare where `--prestart` wants one.
    fn scale(self: &Arc<Self>, pool: &mut Pool) {
        if self.closing.load(Ordering::SeqCst) {
            return;
        }
        let now = Instant::now();
        let mut missing = pool.wanted(&self.spec).saturating_sub(pool.active());
        while missing > 0 {
            if let Some(spare) = pool.instances.iter_mut().find(|i| i.spare && i.state == State::Ready) {
                spare.spare = false;
                spare.idle_since = now;
                tracing::debug!(service = %self.spec.name, instance = %spare.id, "spare handed over");
                self.changed.notify_waiters();
                missing -= 1;
                continue;
            }
            if !self.start(pool, false) {
                break;
            }
            missing -= 1;
        }
        let spare_kept = pool.instances.iter().any(|i| i.spare);
        if self.spec.prestart && !spare_kept {
            self.start(pool, true);
        }
    }

    /// Starts one instance in the background (under the pool lock); `false` when throttled
    /// (then held connections are told, unless another instance is on its way).
    fn start(self: &Arc<Self>, pool: &mut Pool, spare: bool) -> bool {
        let now = Instant::now();
        if pool.throttled(now) {
            self.counters.throttled.inc();
            pool.last_error = format!(
                "throttled: {} failed starts within {}s; the next start when the oldest is {}s old ({})",
                pool.failures.len(),
                FAILURE_WINDOW.as_secs(),
                FAILURE_WINDOW.as_secs(),
                pool.last_error.trim_start_matches("throttled: ")
            );
            if !pool.instances.iter().any(|i| i.active()) {
                pool.failed = true;
                self.changed.notify_waiters();
            }
            return false;
        }
        let n = self.next.fetch_add(1, Ordering::SeqCst);
        let id = format!("{}.{n}", self.spec.name);
        let port = match free_port() {
            Ok(p) => p,
            Err(e) => {
                pool.last_error = format!("no free loopback port: {e}");
                return false;
            }
        };
        let started_unix_ms = crate::peer::unix_ms(SystemTime::now());
        pool.instances.push(Instance::new(id.clone(), port, State::Starting, spare, 0, started_unix_ms));
        let service = self.clone();
        tokio::spawn(async move { service.bring_up(id, port).await });
        true
    }

    /// Runs instance `id` and waits until it accepts on `port`.
    async fn bring_up(self: Arc<Self>, id: String, port: u16) {
        let mut env = self.spec.env.clone();
        env.insert("PORT".into(), port.to_string());
        let run = RunSpec {
            name: id.clone(),
            rootfs: self.spec.rootfs.clone(),
            runtime: self.spec.runtime.clone(),
            memory_bytes: self.spec.memory_bytes,
            cpus: self.spec.cpus,
            env,
            command: self.spec.command.clone(),
            host: String::new(),
            service: Some(self.spec.name.clone()),
        };
        let began = Instant::now();
        let pid = match self.workloads.run(run).await {
            Ok(w) => w.pid,
            Err(e) => return self.fail(&id, format!("{id} did not start: {e}"), false),
        };
        if let Some(i) = self.pool().get(&id) {
            i.pid = pid;
        }
        let until = began + self.spec.start_timeout;
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        // The connection that finds it ready is kept for its first client.
        let first = loop {
            if let Ok(conn) = TcpStream::connect(addr).await {
                break conn;
            }
            if self.closing.load(Ordering::SeqCst) {
                return self.fail(&id, format!("{id}: the service closed while it started"), true);
            }
            if self.exited(&id) {
                return self.fail(&id, format!("{id} exited before it accepted on port {port}"), true);
            }
            if Instant::now() >= until {
                let waited = self.spec.start_timeout;
                self.pool().failed_in_time = true;
                return self.fail(&id, format!("{id} did not accept on port {port} within {waited:?}"), true);
            }
            tokio::time::sleep(READY_POLL).await;
        };
        let mut pool = self.pool();
        let Some(i) = pool.get(&id).filter(|_| !self.closing.load(Ordering::SeqCst)) else {
            // The service was removed (or the daemon stops) while this one started: it is
            // no one's, so it goes.
            drop(pool);
            tracing::info!(service = %self.spec.name, instance = %id, "ready after its service closed: stopped");
            return self.stop_instance(id);
        };
        i.state = State::Ready;
        i.idle_since = Instant::now();
        let spare = i.spare;
        if i.warmable() {
            let _ = first.set_nodelay(true);
            i.warm = Some(first);
        }
        self.steer_routes(&mut pool);
        drop(pool);
        tracing::info!(service = %self.spec.name, instance = %id, port, spare,
            ready_ms = began.elapsed().as_millis() as u64, "instance ready");
        self.changed.notify_waiters();
    }

    /// Makes a connection ahead of time to every ready instance that has none (one at a
    /// time each, under the pool lock; the connects run in the background). A new client is
    /// then relayed at once, without waiting for a connect and the instance's accept: what
    /// a front adds to a request is the relay alone. The instance sees a connection that
    /// has sent nothing yet; one it closes is found closed at use and replaced
    /// ([`Lease::usable`]).
    fn warm_up(self: &Arc<Self>, pool: &mut Pool) {
        for i in pool.instances.iter_mut().filter(|i| i.warmable() && i.warm.is_none() && !i.warming) {
            i.warming = true;
            let (service, id, port) = (self.clone(), i.id.clone(), i.port);
            tokio::spawn(async move {
                let made = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).await;
                let mut pool = service.pool();
                let Some(i) = pool.get(&id) else { return };
                i.warming = false;
                match made {
                    Ok(conn) if i.warmable() => {
                        let _ = conn.set_nodelay(true);
                        i.warm = Some(conn);
                    }
                    Ok(_) => {}
                    Err(e) => {
                        tracing::debug!(service = %service.spec.name, instance = %id, "warm connection: {e}")
                    }
                }
            });
        }
    }

    /// Whether instance `id`'s workload has ended (or is gone).
    fn exited(&self, id: &str) -> bool {
        self.workloads.list_one(id).is_none_or(|w| w.status == Status::Stopped)
    }

    /// Instance `id` failed: counted, its error kept, removed from the pool and (`stop`)
    /// its workload stopped; held connections give up if nothing else is on its way.
    fn fail(self: &Arc<Self>, id: &str, why: String, stop: bool) {
        tracing::warn!(service = %self.spec.name, instance = %id, "instance failed: {why}");
        self.counters.failures.inc();
        let mut pool = self.pool();
        pool.failures.push_back(Instant::now());
        pool.last_error = why;
        if let Some(i) = pool.get(id) {
            self.steer.release(i.port);
        }
        pool.instances.retain(|i| i.id != id);
        self.steer_routes(&mut pool);
        if !pool.instances.iter().any(|i| i.active()) {
            pool.failed = true;
        }
        drop(pool);
        self.changed.notify_waiters();
        if stop {
            self.stop_instance(id.to_string());
        }
    }

    /// Stops instance `id`'s workload in the background (already out of the pool, or
    /// draining with nothing open).
    fn stop_instance(self: &Arc<Self>, id: String) {
        let service = self.clone();
        tokio::spawn(async move {
            match service.workloads.stop(&id).await {
                Ok(_) => tracing::info!(service = %service.spec.name, instance = %id, "instance stopped"),
                Err(e) if e.code() == crate::workloads::ErrorCode::NotFound => {}
                Err(e) => tracing::warn!(service = %service.spec.name, instance = %id, "stopping: {e}"),
            }
            let mut pool = service.pool();
            if let Some(i) = pool.get(&id) {
                service.steer.release(i.port);
            }
            pool.instances.retain(|i| i.id != id);
            drop(pool);
            service.changed.notify_waiters();
        });
    }

    /// The pool, with the kernel's counts of steered connections brought in first.
    pub fn synced(&self) -> MutexGuard<'_, Pool> {
        let mut pool = self.pool();
        self.sync_steered(&mut pool);
        pool
    }

    /// Brings the kernel's counts of steered connections, and what it steers to, into the
    /// pool (under the pool lock). New steered connections count as taken, and as the
    /// service's connections; an instance with one open, or one that just ended, is not idle.
    fn sync_steered(&self, pool: &mut Pool) {
        let now = Instant::now();
        let routed = self.steer.routed(self.spec.port);
        for i in pool.instances.iter_mut() {
            let load = self.steer.load(i.port);
            let new = load.taken.saturating_sub(i.steered_taken);
            if new > 0 {
                i.taken += new;
                i.steered_taken = load.taken;
                self.counters.connections.inc_by(new);
            }
            i.steered = load.open;
            if let Some(last) = load.last.filter(|l| *l > i.idle_since && i.state != State::Draining) {
                i.idle_since = last;
            }
            if i.steered > 0 && i.state != State::Draining {
                i.idle_since = now;
            }
            let routed_now = routed.ports.contains(&i.port);
            if i.routed && !routed_now {
                i.unrouted_at = Some(routed.since);
            }
            i.routed = routed_now;
        }
    }

    /// Asks the kernel to steer new connections to the instances that take them, spread
    /// evenly (under the pool lock); to none (the front) while the host is saturated and a
    /// peer has room (so the front spills), the service closes, its front is not bound, or it
    /// counts requests.
    fn steer_routes(&self, pool: &mut Pool) {
        let anyone = SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0));
        let spilling = || pool.saturated(&self.spec) && self.spill.target(&self.spec, anyone).is_some();
        let steerable = !self.closing.load(Ordering::SeqCst)
            && self.front_bound.load(Ordering::SeqCst)
            && self.spec.max_requests == 0
            && !spilling();
        let mut to: Vec<u16> = if steerable {
            pool.instances.iter().filter(|i| i.open()).map(|i| i.port).collect()
        } else {
            Vec::new()
        };
        to.sort_unstable();
        self.steer.route(self.spec.port, to);
    }

    /// One pass of the service's rules over time: idle stops, ages, exits, drains and the
    /// instances `--min` and `--prestart` want. Called by the service's tick.
    pub fn tick(self: &Arc<Self>) {
        let now = Instant::now();
        let spec = &self.spec;
        let mut stop = Vec::new();
        let mut gone = Vec::new();
        {
            let mut pool = self.pool();
            self.sync_steered(&mut pool);
            let mut surplus = pool.active().saturating_sub(pool.wanted(spec));
            for i in pool.instances.iter_mut() {
                if i.state == State::Ready
                    && spec.max_age.is_some_and(|age| now.duration_since(i.started) >= age)
                {
                    if !i.retiring && !i.spare {
                        self.counters.renewals.inc();
                    }
                    i.retiring = true;
                }
                let idle = spec.idle_stop.is_some_and(|d| now.duration_since(i.idle_since) >= d);
                if i.active() && i.state == State::Ready && i.load() == 0 && idle && surplus > 0 {
                    surplus -= 1;
                    i.state = State::Draining;
                    i.idle_since = now;
                    tracing::info!(service = %spec.name, instance = %i.id, "idle: stopping");
                }
                if i.retiring && i.state == State::Ready {
                    i.state = State::Draining;
                    i.idle_since = now;
                }
                if !i.warmable() {
                    i.warm = None;
                }
                let drained =
                    (i.load() == 0 && i.unsteered(now)) || now.duration_since(i.idle_since) >= spec.drain;
                if i.state == State::Draining && drained {
                    if i.load() > 0 {
                        tracing::warn!(service = %spec.name, instance = %i.id, open = i.load(),
                            "drain time over: its open connections are cut");
                    }
                    stop.push(i.id.clone());
                    // Its port may serve another instance later: its count goes now.
                    self.steer.release(i.port);
                }
            }
            for i in pool.instances.iter().filter(|i| i.state == State::Ready) {
                if self.workloads.list_one(&i.id).is_none_or(|w| w.status == Status::Stopped) {
                    gone.push(i.id.clone());
                }
            }
            // Stopping ones leave the pool now: their workloads stop in the background.
            pool.instances.retain(|i| !stop.contains(&i.id));
            self.scale(&mut pool);
            self.warm_up(&mut pool);
            self.steer_routes(&mut pool);
        }
        for id in gone {
            self.fail(&id, format!("{id} exited"), true);
        }
        for id in stop {
            self.stop_instance(id);
        }
    }

    /// Stops admitting: held connections are refused at once.
    pub fn close(&self) {
        self.closing.store(true, Ordering::SeqCst);
        self.changed.notify_waiters();
    }

    /// Drains every instance (at most `drain`) and stops them: `service rm`. Returns how
    /// many there were (those still starting stop themselves).
    pub async fn remove(self: &Arc<Self>, drain: Duration) -> u32 {
        self.close();
        let had = self.pool().instances.len() as u32;
        // The kernel sends no more connections to the instances; those it sent are awaited.
        self.steer.remove(self.spec.port).await;
        tokio::time::sleep(UNSTEER_GRACE).await;
        let until = Instant::now() + drain;
        while self.synced().inflight() > 0 && Instant::now() < until {
            let changed = self.changed.notified();
            let _ = tokio::time::timeout(Duration::from_millis(50), changed).await;
        }
        // Instances still starting see the service closed and stop themselves.
        let until = Instant::now() + self.spec.start_timeout;
        while self.pool().instances.iter().any(|i| i.state == State::Starting) && Instant::now() < until {
            let changed = self.changed.notified();
            let _ = tokio::time::timeout(Duration::from_millis(50), changed).await;
        }
        let mut stops = tokio::task::JoinSet::new();
        for i in self.pool().instances.drain(..) {
            self.steer.release(i.port);
            let workloads = self.workloads.clone();
            stops.spawn(async move { workloads.stop(&i.id).await });
        }
        let failed = stops.join_all().await.iter().filter(|r| r.is_err()).count() as u32;
        had - failed
    }

    /// Waits (at most `drain`) until no relayed connection is open: a daemon that stops lets
    /// its relays finish, leaving the instances running for the next daemon, and the kernel
    /// steering to them.
    pub async fn quiesce(&self, drain: Duration) {
        let until = Instant::now() + drain;
        while self.pool().relayed() > 0 && Instant::now() < until {
            let changed = self.changed.notified();
            let _ = tokio::time::timeout(Duration::from_millis(50), changed).await;
        }
    }
}

/// A free loopback TCP port, for an instance to listen on.
fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?.local_addr()?.port())
}
