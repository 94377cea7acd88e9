//! Steering: a service's new connections sent by the kernel straight to a ready instance,
//! the front out of their path, while the front still knows each one.
//!
//! - [`rules`]: the NAT chain per front (`REDIRECT` to the instances' ports).
//! - [`conntrack`]: the kernel's connection events and table, read over netlink.
//!
//! [`Kernel`] carries out what each service's pool asks ([`Steer::route`]), one
//! `iptables-restore` transaction per change, in order, in the background; and counts, from
//! conntrack's events, the connections it steered to each instance: open now, taken in all,
//! and when the last one opened or ended ([`PortLoad`]). A service whose front is not
//! steered ([`NoSteer`], or an empty route) has every connection relayed by its front.
//!
//! conntrack reports every connection of the host, so its events are followed only while
//! they can matter: from the moment a front is to steer (before its rules are applied)
//! until no front steers and no steered connection is open. A host without steered
//! services reads none.

pub mod conntrack;
pub mod rules;

use conntrack::{End, Event};
use rules::Rules;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// How long the conntrack thread rests between reads: events wait in the socket meanwhile
/// (counts lag by at most this; the pools read them every tick).
const BATCH: Duration = Duration::from_millis(2);
/// The least time between two changes of one front's rules.
const MIN_GAP: Duration = Duration::from_millis(50);
/// How long a front's removal waits for its rules to go.
const REMOVE_WAIT: Duration = Duration::from_secs(5);

/// Connections the kernel steered to one instance.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PortLoad {
    /// Open now.
    pub open: u32,
    /// Taken since the instance's port was first steered to.
    pub taken: u64,
    /// When the latest one opened or ended.
    pub last: Option<Instant>,
}

/// What a front's rules steer to now: the instance ports, and since when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Routed {
    pub ports: Vec<u16>,
    pub since: Instant,
}

/// Where a service's new connections go (see the module documentation).
#[async_trait::async_trait]
pub trait Steer: Send + Sync {
    /// From now on, new connections to the front on `front` go to these instance ports,
    /// spread evenly (none: to the front). Applied in the background, in order.
    fn route(&self, front: u16, to: Vec<u16>);
    /// What the kernel does with `front`'s new connections now (applied, not only asked).
    fn routed(&self, front: u16) -> Routed;
    /// The connections steered to instance `port`.
    fn load(&self, port: u16) -> PortLoad;
    /// Instance `port` is gone: its count is forgotten (the port may be reused).
    fn release(&self, port: u16);
    /// The front on `front` is gone: its rules are removed before this returns.
    async fn remove(&self, front: u16);
    /// The fronts of this host are `fronts`: rules an earlier daemon left for others go.
    async fn keep_only(&self, fronts: &[u16]);
}

/// No steering: every connection goes through its front.
pub struct NoSteer;

#[async_trait::async_trait]
impl Steer for NoSteer {
    fn route(&self, _: u16, _: Vec<u16>) {}
    fn routed(&self, _: u16) -> Routed {
        Routed { ports: Vec::new(), since: Instant::now() }
    }
    fn load(&self, _: u16) -> PortLoad {
        PortLoad::default()
    }
    fn release(&self, _: u16) {}
    async fn remove(&self, _: u16) {}
    async fn keep_only(&self, _: &[u16]) {}
}

/// One front's rules: what was applied, what is asked.
#[derive(Debug)]
struct Front {
    had: Rules,
    want: Rules,
    since: Instant,
    applying: bool,
}

#[derive(Debug, Default)]
struct Counts {
    fronts: HashMap<u16, Front>,
    loads: HashMap<u16, PortLoad>,
    /// Steered connections open now: (client, the address it asked for) -> instance port.
    open: HashMap<(End, End), u16>,
    /// A thread follows conntrack's events.
    following: bool,
}

impl Counts {
    /// Whether steered connections may come or are open: a front steers, or is to, to some
    /// instance, or a connection it steered is still open.
    fn needs_events(&self) -> bool {
        let steers = |r: &Rules| matches!(r, Rules::Steer(ports) if !ports.is_empty());
        !self.open.is_empty() || self.fronts.values().any(|f| steers(&f.had) || steers(&f.want))
    }

    /// One connection's event.
    fn saw(&mut self, e: &Event, now: Instant) {
        let key = (e.client, e.asked);
        if e.destroyed || e.state.is_some_and(|s| s.ended()) {
            if let Some(port) = self.open.remove(&key) {
                let load = self.loads.entry(port).or_default();
                load.open = load.open.saturating_sub(1);
                load.last = Some(now);
            }
            return;
        }
        let steered = e.served_by.port != e.asked.port && self.fronts.contains_key(&e.asked.port);
        if steered && !self.open.contains_key(&key) {
            self.open.insert(key, e.served_by.port);
            let load = self.loads.entry(e.served_by.port).or_default();
            load.open += 1;
            load.taken += 1;
            load.last = Some(now);
        }
    }

    /// The connections open now are `table`'s: counts of open ones rebuilt (taken kept).
    fn resync(&mut self, table: &[Event], now: Instant) {
        self.open.clear();
        for load in self.loads.values_mut() {
            load.open = 0;
        }
        for e in table {
            let steered = e.served_by.port != e.asked.port && self.fronts.contains_key(&e.asked.port);
            if steered && !e.state.is_some_and(|s| s.ended()) {
                self.open.insert((e.client, e.asked), e.served_by.port);
                let load = self.loads.entry(e.served_by.port).or_default();
                load.open += 1;
                load.last = Some(now);
            }
        }
    }
}

/// Steering by the kernel's NAT, counted from conntrack (see the module documentation).
pub struct Kernel {
    counts: Arc<Mutex<Counts>>,
}

impl Kernel {
    /// Starts steering in this network namespace: the chains an earlier daemon left are
    /// found, conntrack's events followed, and the connections they already steer counted.
    /// An error when this host cannot steer (no `iptables`, no netlink conntrack).
    pub async fn start() -> Result<Arc<Kernel>, String> {
        let existing = rules::existing().await?;
        // Opened once to know the host can count; followed only when needed.
        drop(conntrack::Socket::events().map_err(|e| format!("conntrack events: {e}"))?);
        rules::allow_localnet().await?;
        let now = Instant::now();
        let mut counts = Counts::default();
        for (port, to) in existing {
            let had = Rules::Steer(to);
            counts.fronts.insert(port, Front { had: had.clone(), want: had, since: now, applying: false });
        }
        let counts = Arc::new(Mutex::new(counts));
        Kernel::follow_if_needed(&counts, &mut counts.lock().unwrap_or_else(|e| e.into_inner()));
        Ok(Arc::new(Kernel { counts }))
    }

    /// Starts a thread following conntrack's events if they are needed and none follows
    /// (`c` is `counts`, locked). It subscribes before it returns, so a rule applied after
    /// this steers no connection it misses; the thread first counts the table.
    fn follow_if_needed(counts: &Arc<Mutex<Counts>>, c: &mut Counts) {
        if c.following || !c.needs_events() {
            return;
        }
        let events = match conntrack::Socket::events() {
            Ok(events) => events,
            Err(e) => {
                tracing::error!("conntrack events: {e}; steered connections are not counted");
                return;
            }
        };
        let following = Arc::downgrade(counts);
        match std::thread::Builder::new().name("conntrack".into()).spawn(move || follow(events, following)) {
            Ok(_) => c.following = true,
            Err(e) => tracing::error!("conntrack events: {e}; steered connections are not counted"),
        }
    }

    fn counts(&self) -> MutexGuard<'_, Counts> {
        self.counts.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Applies what `front` wants until what was applied is what is wanted (one task per
    /// front at a time; a failure is logged and left for the next change to try again).
    fn apply(counts: Arc<Mutex<Counts>>, front: u16) {
        tokio::spawn(async move {
            loop {
                let (script, target) = {
                    let mut c = counts.lock().unwrap_or_else(|e| e.into_inner());
                    let Some(f) = c.fronts.get_mut(&front) else { return };
                    if f.want == f.had {
                        f.applying = false;
                        if f.had == Rules::Gone {
                            c.fronts.remove(&front);
                        }
                        return;
                    }
                    (rules::script(front, &f.had, &f.want), f.want.clone())
                };
                let result = rules::apply(&script).await;
                {
                    let mut c = counts.lock().unwrap_or_else(|e| e.into_inner());
                    let Some(f) = c.fronts.get_mut(&front) else { return };
                    match result {
                        Ok(()) => {
                            tracing::debug!(front, rules = ?target, "steering applied");
                            f.had = target;
                            f.since = Instant::now();
                        }
                        Err(e) => {
                            tracing::error!(front, rules = ?target, "steering not applied: {e}");
                            f.applying = false;
                            return;
                        }
                    }
                }
                // Changes that come faster are taken together: one transaction at most per
                // gap, whatever the load does.
                tokio::time::sleep(MIN_GAP).await;
            }
        });
    }

    fn ask(&self, front: u16, want: Rules) {
        let mut c = self.counts();
        let f = c.fronts.entry(front).or_insert_with(|| Front {
            had: Rules::Gone,
            want: Rules::Gone,
            since: Instant::now(),
            applying: false,
        });
        if f.want == want && (f.applying || f.had == want) {
            return;
        }
        f.want = want;
        let start = !f.applying;
        f.applying = true;
        Kernel::follow_if_needed(&self.counts, &mut c);
        if start {
            Kernel::apply(self.counts.clone(), front);
        }
    }
}

/// Removes the rules of the fronts on `fronts` that exist in this network namespace (for
/// `middlecon purge`); what could not be removed, named.
pub async fn purge(fronts: &[u16]) -> Vec<String> {
    let existing = match rules::existing().await {
        Ok(e) => e,
        // No iptables here: no rules either.
        Err(_) => return Vec::new(),
    };
    let mut left = Vec::new();
    for front in fronts.iter().filter(|f| existing.contains_key(f)) {
        let script = rules::script(*front, &Rules::Steer(Vec::new()), &Rules::Gone);
        if let Err(e) = rules::apply(&script).await {
            left.push(format!("NAT chain {}: {e}", rules::chain(*front)));
        }
    }
    left
}

/// Follows conntrack's events on a thread of its own while they are needed
/// ([`Counts::needs_events`]) and the counts live: it counts the table first, then wakes for
/// the first event, takes every one waiting, and rests [`BATCH`] so that a busy host's
/// events are read many at a time. Lost events (the socket's buffer overflowed) are made
/// good by recounting from the table.
fn follow(events: conntrack::Socket, counts: std::sync::Weak<Mutex<Counts>>) {
    let recount = |counts: &Mutex<Counts>| match conntrack::dump() {
        Ok(table) => counts.lock().unwrap_or_else(|e| e.into_inner()).resync(&table, Instant::now()),
        Err(e) => tracing::warn!("recounting steered connections: {e}"),
    };
    match counts.upgrade() {
        Some(counts) => recount(&counts),
        None => return,
    }
    let mut buf = vec![0u8; 256 << 10];
    loop {
        let mut wait = true;
        loop {
            let received = events.recv(&mut buf, wait);
            wait = false;
            let Some(counts) = counts.upgrade() else { return };
            let now = Instant::now();
            match received {
                Ok(datagram) => {
                    let mut c = counts.lock().unwrap_or_else(|e| e.into_inner());
                    for e in conntrack::decode(datagram) {
                        c.saw(&e, now);
                    }
                }
                Err(nix::errno::Errno::EAGAIN) => break,
                Err(nix::errno::Errno::ENOBUFS) => {
                    tracing::warn!("conntrack events overflowed: recounting steered connections");
                    recount(&counts);
                }
                Err(nix::errno::Errno::EINTR) => {}
                Err(e) => {
                    tracing::error!("conntrack events: {e}; steered connections are no longer counted");
                    counts.lock().unwrap_or_else(|e| e.into_inner()).following = false;
                    return;
                }
            }
        }
        let Some(counts) = counts.upgrade() else { return };
        let mut c = counts.lock().unwrap_or_else(|e| e.into_inner());
        if !c.needs_events() {
            c.following = false;
            return;
        }
        drop(c);
        std::thread::sleep(BATCH);
    }
}

#[async_trait::async_trait]
impl Steer for Kernel {
    fn route(&self, front: u16, to: Vec<u16>) {
        self.ask(front, Rules::Steer(to));
    }

    fn routed(&self, front: u16) -> Routed {
        match self.counts().fronts.get(&front) {
            Some(Front { had: Rules::Steer(ports), since, .. }) => {
                Routed { ports: ports.clone(), since: *since }
            }
            Some(f) => Routed { ports: Vec::new(), since: f.since },
            None => Routed { ports: Vec::new(), since: Instant::now() },
        }
    }

    fn load(&self, port: u16) -> PortLoad {
        self.counts().loads.get(&port).copied().unwrap_or_default()
    }

    fn release(&self, port: u16) {
        let mut c = self.counts();
        c.loads.remove(&port);
        c.open.retain(|_, p| *p != port);
    }

    async fn remove(&self, front: u16) {
        self.ask(front, Rules::Gone);
        let until = Instant::now() + REMOVE_WAIT;
        while Instant::now() < until {
            match self.counts().fronts.get(&front) {
                None => return,
                Some(f) if !f.applying => break,
                Some(_) => {}
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        tracing::error!(front, "the steering rules of a removed front could not be removed");
    }

    async fn keep_only(&self, fronts: &[u16]) {
        let stale: Vec<u16> = self.counts().fronts.keys().filter(|p| !fronts.contains(p)).copied().collect();
        for front in stale {
            tracing::info!(front, "steering rules of no service: removed");
            self.remove(front).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::conntrack::tests::message;
    use super::*;

    fn counts_with_front(port: u16) -> Counts {
        let mut c = Counts::default();
        let had = Rules::Steer(vec![4001]);
        c.fronts.insert(port, Front { had: had.clone(), want: had, since: Instant::now(), applying: false });
        c
    }

    fn event(client_port: u16, asked: u16, served_by: u16, state: u8, destroyed: bool) -> Event {
        let m = message(
            ([127, 0, 0, 1], client_port),
            ([127, 0, 0, 1], asked),
            ([127, 0, 0, 1], served_by),
            state,
            destroyed,
        );
        let event = conntrack::decode(&m).next().unwrap();
        event
    }

    #[test]
    fn a_steered_connection_is_counted_once_while_open_and_released_when_it_ends() {
        let mut c = counts_with_front(8080);
        let now = Instant::now();
        c.saw(&event(50000, 8080, 4001, 1, false), now);
        c.saw(&event(50000, 8080, 4001, 3, false), now);
        assert_eq!(c.loads[&4001].open, 1);
        assert_eq!(c.loads[&4001].taken, 1);
        c.saw(&event(50001, 8080, 4001, 3, false), now);
        assert_eq!(c.loads[&4001].open, 2);
        c.saw(&event(50000, 8080, 4001, 7, false), now);
        c.saw(&event(50000, 8080, 4001, 7, true), now);
        assert_eq!(c.loads[&4001], PortLoad { open: 1, taken: 2, last: Some(now) });
    }

    #[test]
    fn events_are_needed_only_while_a_front_steers_or_a_steered_connection_is_open() {
        let mut c = Counts::default();
        assert!(!c.needs_events(), "no front: a host without services reads no events");
        let empty = Rules::Steer(Vec::new());
        c.fronts
            .insert(8080, Front { had: empty.clone(), want: empty, since: Instant::now(), applying: false });
        assert!(!c.needs_events(), "a front steering to no instance");
        c.fronts.get_mut(&8080).unwrap().want = Rules::Steer(vec![4001]);
        assert!(c.needs_events(), "a front about to steer: followed before its rules apply");
        let now = Instant::now();
        c.saw(&event(50000, 8080, 4001, 3, false), now);
        let f = c.fronts.get_mut(&8080).unwrap();
        (f.had, f.want) = (Rules::Gone, Rules::Gone);
        assert!(c.needs_events(), "no longer steering, one steered connection still open");
        c.saw(&event(50000, 8080, 4001, 7, true), now);
        assert!(!c.needs_events(), "its last steered connection ended");
    }

    #[test]
    fn connections_to_the_front_itself_or_to_other_ports_are_not_counted() {
        let mut c = counts_with_front(8080);
        let now = Instant::now();
        // Reached the front (not steered): the front counts it itself.
        c.saw(&event(50000, 8080, 8080, 3, false), now);
        // The front's own connection to an instance, and one to an unrelated port.
        c.saw(&event(50001, 4001, 4001, 3, false), now);
        c.saw(&event(50002, 9000, 4001, 3, false), now);
        assert!(c.loads.is_empty() && c.open.is_empty());
    }

    #[test]
    fn a_recount_from_the_table_replaces_open_counts_and_keeps_taken() {
        let mut c = counts_with_front(8080);
        let now = Instant::now();
        c.saw(&event(50000, 8080, 4001, 3, false), now);
        c.saw(&event(50001, 8080, 4001, 3, false), now);
        // Their ends were lost; the table has one other open and one ended.
        c.resync(&[event(50002, 8080, 4001, 3, false), event(50003, 8080, 4001, 7, false)], now);
        assert_eq!(c.loads[&4001].open, 1);
        assert_eq!(c.loads[&4001].taken, 2);
        c.saw(&event(50002, 8080, 4001, 8, false), now);
        assert_eq!(c.loads[&4001].open, 0);
    }
}
