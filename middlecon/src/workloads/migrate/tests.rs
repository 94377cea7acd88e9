//! The migration's safety rules against a fake network of in-process hosts (fake
//! containers, real state dirs and records, the real target services and transfer stream),
//! without root: every phase of a migration meets every fault (the peer lost, a host
//! restarted, a reply lost, a late message of an older epoch, a full disk, a corrupted or
//! cut transfer), and each scenario ends with exactly one running copy of the workload and
//! nothing left on the other host.

use super::*;
use crate::workloads::fake::{self, FakeHost};
use crate::workloads::{transfer, ContainerStatus, Containers, ErrorCode, Phase};
use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use tokio::io::AsyncWriteExt;

/// What goes wrong, and when.
#[derive(Default)]
struct Faults {
    /// Hosts nobody reaches.
    down: HashSet<String>,
    /// Calls to these services run on the target, but their reply is lost.
    lose_reply: HashSet<&'static str>,
    /// Calls to these services never reach the target.
    drop_call: HashSet<&'static str>,
    /// The transfer's bytes are cut after this many.
    cut_after: Option<usize>,
    /// One byte of the transfer is flipped.
    corrupt: bool,
    /// The target's daemon restarts just before a call to this service reaches it.
    restart_before: Option<&'static str>,
    /// Calls to these services never reach the target and are never answered (the target
    /// was killed as they were sent; only the membership can tell).
    hang: HashSet<&'static str>,
    /// Membership has not told the hosts' runtime classes yet.
    classes_unknown: bool,
}

/// Hosts by name, each with the workloads its daemon has open now.
struct Net {
    machines: HashMap<String, FakeHost>,
    hosts: Mutex<HashMap<String, Arc<Workloads>>>,
    faults: Mutex<Faults>,
    timings: Timings,
}

impl Net {
    fn faults(&self) -> std::sync::MutexGuard<'_, Faults> {
        self.faults.lock().unwrap()
    }

    /// Host `name`'s daemon starts again: its workloads reopened from its state dir.
    async fn restart(&self, name: &str) -> Arc<Workloads> {
        let w = self.machines[name].open().await;
        self.hosts.lock().unwrap().insert(name.into(), w.clone());
        w
    }

    fn host(&self, name: &str) -> Result<Arc<Workloads>, WorkloadError> {
        if self.faults().down.contains(name) {
            return Err(WorkloadError::Unreachable(format!("{name}: no route (a fault of the test)")));
        }
        self.hosts
            .lock()
            .unwrap()
            .get(name)
            .cloned()
            .ok_or_else(|| WorkloadError::Unreachable(format!("no host named {name:?}")))
    }
}

/// One host's view of the network.
struct FakePeers {
    net: Arc<Net>,
    me: String,
}

#[async_trait::async_trait]
impl Peers for FakePeers {
    fn check(&self, host: &str) -> Result<(), WorkloadError> {
        self.net.host(host).map(|_| ())
    }

    async fn ask(
        &self,
        host: &str,
        service: &str,
        payload: Vec<u8>,
        _wait: Duration,
    ) -> Result<Vec<u8>, WorkloadError> {
        let mut w = self.net.host(host)?;
        let service: &'static str =
            [RESERVE, START, SETTLE].into_iter().find(|s| *s == service).expect("a known service");
        if self.net.faults().drop_call.contains(service) {
            return Err(WorkloadError::Unreachable(format!("{host}: {service} lost on the way")));
        }
        if self.net.faults().hang.contains(service) {
            return std::future::pending().await;
        }
        if self.net.faults().restart_before == Some(service) {
            self.net.faults().restart_before = None;
            w = self.net.restart(host).await;
        }
        let answer = match service {
            RESERVE => target::reserve(&w, &self.net.timings, &payload).await,
            START => target::start(&w, &payload).await,
            _ => target::settle(&w, &payload).await,
        };
        if self.net.faults().lose_reply.contains(service) {
            return Err(WorkloadError::Unreachable(format!("{host}: the reply to {service} was lost")));
        }
        // As over the wire: the target's error comes back with its code, named after it.
        answer.map_err(|e| WorkloadError::from_peer(e.code(), &e.to_string(), host))
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
        let w = self.net.host(host)?;
        let (mut tx, rx) = tokio::io::duplex(64 * 1024);
        let timings = self.net.timings.clone();
        let receiving = tokio::spawn(async move { target::receive(&w, &timings, &payload, rx).await });
        // The source's stream, then through the faults into the target's.
        let (mut mine, mut wire) = tokio::io::duplex(64 * 1024);
        let (cut, corrupt) = {
            let f = self.net.faults();
            (f.cut_after, f.corrupt)
        };
        let relay = tokio::spawn(async move {
            use tokio::io::AsyncReadExt;
            let (mut passed, mut buf) = (0usize, vec![0u8; 8192]);
            loop {
                let n = wire.read(&mut buf).await.unwrap_or(0);
                if n == 0 {
                    return;
                }
                if corrupt && passed == 0 && n > 600 {
                    buf[600] ^= 0xff;
                }
                if cut.is_some_and(|c| passed + n > c) {
                    return; // the link is cut: both ends see the stream end early
                }
                passed += n;
                if tx.write_all(&buf[..n]).await.is_err() {
                    return;
                }
            }
        });
        let sent = transfer::send_tree(dir, &mut mine, bwlimit, stall, progress).await;
        drop(mine);
        let _ = relay.await;
        let received = receiving.await.expect("the target's receive does not panic");
        match (sent, received) {
            (_, Ok(reply)) => source::received(&reply),
            // The target's own verdict says more than a broken stream.
            (_, Err(e)) => Err(WorkloadError::from_peer(e.code(), &e.to_string(), host)),
        }
    }

    fn runtimes(&self, host: &str) -> Option<Vec<String>> {
        if self.net.faults().classes_unknown {
            return None;
        }
        self.net.host(host).ok().map(|w| w.classes())
    }

    fn live(&self) -> Vec<(String, Option<f64>)> {
        let hosts = self.net.hosts.lock().unwrap();
        let down = &self.net.faults().down;
        hosts
            .keys()
            .filter(|h| **h != self.me && !down.contains(*h))
            .map(|h| (h.clone(), Some(0.0)))
            .collect()
    }
}

/// Two hosts, `a` running workload `web`, and the network between them.
struct Fleet {
    net: Arc<Net>,
    _image: tempfile::TempDir,
}

fn quick() -> Timings {
    Timings {
        stall: Duration::from_millis(500),
        freeze_wait: Duration::from_millis(100),
        reservation_idle: Duration::from_millis(300),
        settle_patience: Duration::from_millis(300),
        settle_every: Duration::from_millis(20),
        reserve_wait: Duration::from_secs(1),
        start_wait: Duration::from_secs(1),
        settle_wait: Duration::from_millis(200),
    }
}

impl Fleet {
    async fn new() -> Fleet {
        Fleet::with(quick()).await
    }

    async fn with(timings: Timings) -> Fleet {
        let machines = ["a", "b"].into_iter().map(|n| (n.to_string(), FakeHost::new(n))).collect();
        let net = Arc::new(Net { machines, hosts: Mutex::default(), faults: Mutex::default(), timings });
        let fleet = Fleet { net, _image: fake::image() };
        let wa = fleet.restart("a").await;
        fleet.restart("b").await;
        wa.run(fake::spec("web", fleet._image.path())).await.expect("web runs on a");
        // What the workload wrote while it ran: it must arrive.
        std::fs::write(wa.rootfs("web").join("state"), "written by web on a").unwrap();
        fleet
    }

    fn host(&self, name: &str) -> &FakeHost {
        &self.net.machines[name]
    }

    async fn restart(&self, name: &str) -> Arc<Workloads> {
        self.net.restart(name).await
    }

    fn workloads(&self, name: &str) -> Arc<Workloads> {
        self.net.hosts.lock().unwrap()[name].clone()
    }

    fn mover(&self, name: &str) -> Mover {
        let peers = Arc::new(FakePeers { net: self.net.clone(), me: name.into() });
        Mover::new(self.workloads(name), peers, self.net.timings.clone())
    }

    async fn migrate(&self, to: &str) -> Result<Summary, WorkloadError> {
        let mover = self.mover("a");
        let p = mover.prepare(&MoveSpec { name: "web".into(), to: to.into(), ..MoveSpec::default() }).await?;
        mover.execute(p, &|_, _, _| {}).await
    }

    /// The one host where `web` runs, checked: owned there with a running container and the
    /// files it wrote, and nothing of it on the other host (no record, no container, no
    /// directory). Waits (briefly) for background removals.
    async fn one_copy(&self) -> &'static str {
        let mut running = Vec::new();
        for name in ["a", "b"] {
            let w = self.workloads(name);
            if let ContainerStatus::Running(_) = self.host(name).containers.get("web") {
                running.push(name);
                let r = w.get("web").expect("a running container has its record");
                assert_eq!(r.phase, Phase::Owned, "on {name}");
                let state = std::fs::read_to_string(w.rootfs("web").join("state")).unwrap();
                assert_eq!(state, "written by web on a", "its writes came with it");
            }
        }
        assert_eq!(running.len(), 1, "exactly one running copy: {running:?}");
        let (here, other) = if running[0] == "a" { ("a", "b") } else { ("b", "a") };
        let w = self.workloads(other);
        assert!(w.get("web").is_none(), "{other} keeps a record of web: {:?}", w.get("web"));
        assert_eq!(self.host(other).containers.ids(), Vec::<String>::new(), "{other} keeps a container");
        let dir = w.workload_dir("web");
        fake::eventually(|| !dir.exists()).await;
        // Nothing but spares: no directory being removed, no reservation.
        fake::eventually(|| {
            std::fs::read_dir(w.dir()).unwrap().all(|e| {
                e.unwrap().file_name().to_string_lossy().starts_with(crate::workloads::spare::PREFIX)
            })
        })
        .await;
        if here == "a" {
            assert_eq!(self.host("a").containers.get("web").word(), "running", "resumed on the source");
        }
        here
    }
}

#[tokio::test]
async fn a_migration_moves_the_workload_and_its_writes() {
    let f = Fleet::new().await;
    let s = f.migrate("b").await.expect("migrated");
    assert_eq!(s.epoch, 1);
    assert!(s.bytes > 0);
    for phase in ["reserve", "freeze", "copy", "start", "delete"] {
        assert!(s.phase_ms.contains_key(phase), "{phase} timed: {:?}", s.phase_ms);
    }
    assert_eq!(f.one_copy().await, "b");
    assert_eq!(f.workloads("b").get("web").unwrap().epoch, 1);
}

impl Fleet {
    /// Migrates `web` from `from` to `to`, run there with runtime class `runtime`.
    async fn migrate_as(&self, from: &str, to: &str, runtime: &str) -> Result<Summary, WorkloadError> {
        let mover = self.mover(from);
        let m =
            MoveSpec { name: "web".into(), to: to.into(), runtime: runtime.into(), ..MoveSpec::default() };
        let p = mover.prepare(&m).await?;
        mover.execute(p, &|_, _, _| {}).await
    }
}

#[tokio::test]
async fn a_migration_may_change_the_runtime_class_into_the_sandbox_and_back() {
    let f = Fleet::new().await;
    assert_eq!(f.host("a").containers.runtime_of("web").as_deref(), Some("runc"));
    f.migrate_as("a", "b", "runsc").await.expect("into the sandbox");
    assert_eq!(f.one_copy().await, "b");
    assert_eq!(f.workloads("b").get("web").unwrap().runtime, "runsc", "b's record keeps the new class");
    assert_eq!(f.host("b").containers.runtime_of("web").as_deref(), Some("runsc"), "started by runsc");
    let created = |h: &str| f.host(h).containers.created_ahead.load(std::sync::atomic::Ordering::SeqCst);
    assert_eq!(created("b"), 1, "runsc's container was created while the files arrived, then started");
    // Without --runtime the class stays: back to a, still sandboxed, then out of it.
    f.migrate_as("b", "a", "").await.expect("moved back");
    assert_eq!(f.workloads("a").get("web").unwrap().runtime, "runsc");
    assert_eq!(f.host("a").containers.runtime_of("web").as_deref(), Some("runsc"));
    assert_eq!(created("a"), 1, "created ahead on a too");
    f.migrate_as("a", "b", "runc").await.expect("out of the sandbox");
    assert_eq!(created("b"), 1, "runc's containers are not created ahead");
    assert_eq!(f.host("b").containers.runtime_of("web").as_deref(), Some("runc"));
    assert_eq!(f.workloads("b").list_one("web").unwrap().runtime, "runc");
}

#[tokio::test]
async fn a_container_created_ahead_never_runs_unless_started_and_goes_when_the_attempt_does() {
    // Each fault ends the attempt after the target created runsc's container ahead of the
    // start: it must never have run there, and nothing of it may stay.
    for fault in ["start lost", "target restarted before start", "copy cut"] {
        let f = Fleet::new().await;
        match fault {
            "start lost" => drop(f.net.faults().drop_call.insert(START)),
            "target restarted before start" => f.net.faults().restart_before = Some(START),
            _ => f.net.faults().cut_after = Some(2000),
        }
        let e = f.migrate_as("a", "b", "runsc").await.unwrap_err();
        assert!(
            matches!(e.code(), ErrorCode::Unreachable | ErrorCode::Conflict | ErrorCode::Transfer),
            "{fault}: {e}"
        );
        let b = &f.host("b").containers;
        assert_eq!(b.created_ahead.load(std::sync::atomic::Ordering::SeqCst), 1, "{fault}: created ahead");
        assert_eq!(b.started.load(std::sync::atomic::Ordering::SeqCst), 0, "{fault}: never started on b");
        assert_eq!(f.one_copy().await, "a", "{fault}");
    }
}

#[tokio::test]
async fn a_runtime_class_the_target_lacks_is_refused_before_anything_is_frozen_or_sent() {
    let f = Fleet::new().await;
    f.host("b").containers.only(&["runc", "crun"]);
    let claimed = || f.workloads("a").get("web").unwrap().epoch;
    // Known from membership: refused before the workload is claimed (no epoch used).
    let e = f.migrate_as("a", "b", "runsc").await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::NoRuntime, "{e}");
    assert!(
        e.to_string().contains("\"runsc\"") && e.to_string().contains("host b"),
        "class and host named: {e}"
    );
    assert_eq!(claimed(), 0, "not claimed");
    // Not known yet: the target refuses the reservation itself, naming both.
    f.net.faults().classes_unknown = true;
    let e = f.migrate_as("a", "b", "runsc").await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::NoRuntime, "{e}");
    assert!(
        e.to_string().contains("\"runsc\"") && e.to_string().contains("host b"),
        "class and host named: {e}"
    );
    for host in ["a", "b"] {
        assert_eq!(
            f.host(host).containers.started.load(std::sync::atomic::Ordering::SeqCst),
            u32::from(host == "a"),
            "{host} started nothing more"
        );
    }
    assert_eq!(f.one_copy().await, "a");
    assert_eq!(f.host("a").containers.get("web").word(), "running", "never frozen");
    // A name that is no class, or a path, does not cross hosts.
    for bad in ["kata", "/usr/bin/runsc"] {
        let e = f.migrate_as("a", "b", bad).await.unwrap_err();
        assert_eq!(e.code(), ErrorCode::Invalid, "{bad}: {e}");
        assert!(e.to_string().contains("runc, crun, runsc"), "{e}");
    }
    // The workload's own class, missing there, is refused alike.
    f.net.faults().classes_unknown = false;
    f.host("b").containers.only(&["crun"]);
    let e = f.migrate_as("a", "b", "").await.unwrap_err();
    assert!(e.code() == ErrorCode::NoRuntime && e.to_string().contains("\"runc\""), "{e}");
    f.migrate_as("a", "b", "crun").await.expect("a class b has");
    assert_eq!(f.one_copy().await, "b");
}

#[tokio::test]
async fn refusals_before_the_freeze_leave_the_workload_running_where_it_was() {
    let f = Fleet::new().await;
    // The target is not known: refused before the workload is claimed.
    let e = f.migrate("nowhere").await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::Unreachable, "{e}");
    // The target's disk is full.
    f.host("b").free.store(1000, std::sync::atomic::Ordering::SeqCst);
    let e = f.migrate("b").await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::NoSpace, "{e}");
    assert!(e.to_string().starts_with("b: "), "the target is named: {e}");
    f.host("b").free.store(1 << 40, std::sync::atomic::Ordering::SeqCst);
    // The name is taken there.
    f.workloads("b").run(fake::spec("web", f._image.path())).await.unwrap();
    let e = f.migrate("b").await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::Conflict, "{e}");
    f.workloads("b").stop("web").await.unwrap();
    // The workload is not running (its process ended).
    f.host("a").containers.exit("web");
    let e = f.migrate("b").await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::Precondition, "{e}");
    assert_eq!(f.workloads("a").get("web").unwrap().phase, Phase::Owned);
    // An instance of a service is renewed, not moved.
    let mut instance = fake::spec("web.3", f._image.path());
    instance.service = Some("web".into());
    f.workloads("a").run(instance).await.unwrap();
    let e =
        f.mover("a").prepare(&MoveSpec { name: "web.3".into(), to: "b".into(), ..MoveSpec::default() }).await;
    assert_eq!(e.err().map(|e| e.code()), Some(ErrorCode::Precondition));
    assert!(f.mover("a").evacuation(&[]).unwrap().iter().all(|(n, _)| n != "web.3"), "nor evacuated");
    // Every refused attempt used an epoch: the next one has a fresh one.
    assert!(f.workloads("a").get("web").unwrap().epoch >= 3);
}

#[tokio::test]
async fn the_target_lost_at_reserve_or_during_the_copy_leaves_the_source_running() {
    for fault in ["reserve lost", "reserve reply lost", "copy cut", "copy corrupted", "target down at copy"] {
        let f = Fleet::new().await;
        match fault {
            "reserve lost" => drop(f.net.faults().drop_call.insert(RESERVE)),
            "reserve reply lost" => drop(f.net.faults().lose_reply.insert(RESERVE)),
            "copy cut" => f.net.faults().cut_after = Some(2000),
            "copy corrupted" => f.net.faults().corrupt = true,
            _ => {}
        }
        let mover = f.mover("a");
        let prepared =
            mover.prepare(&MoveSpec { name: "web".into(), to: "b".into(), ..MoveSpec::default() }).await;
        let result = match prepared {
            Ok(p) => {
                if fault == "target down at copy" {
                    f.net.faults().down.insert("b".into());
                }
                mover.execute(p, &|_, _, _| {}).await
            }
            Err(e) => Err(e),
        };
        let e = result.expect_err(fault);
        let want = match fault {
            "copy cut" | "copy corrupted" => ErrorCode::Transfer,
            _ => ErrorCode::Unreachable,
        };
        assert_eq!(e.code(), want, "{fault}: {e}");
        *f.net.faults() = Faults::default();
        // A reservation the source could not cancel expires by itself.
        let b = f.workloads("b");
        fake::eventually(|| b.get("web").is_none()).await;
        assert_eq!(f.one_copy().await, "a", "{fault}");
        // And the workload can move again at once.
        f.migrate("b").await.unwrap_or_else(|e| panic!("{fault}: the retry: {e}"));
        assert_eq!(f.one_copy().await, "b", "{fault}");
    }
}

#[tokio::test]
async fn a_start_that_fails_on_the_target_resumes_the_source() {
    let f = Fleet::new().await;
    f.host("b").containers.fail_start.store(true, std::sync::atomic::Ordering::SeqCst);
    let e = f.migrate("b").await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::Io, "{e}");
    assert_eq!(f.one_copy().await, "a");
}

#[tokio::test]
async fn a_lost_answer_to_start_is_settled_before_anything_is_decided() {
    // The target started it, but its answer was lost: the source asks, learns, deletes.
    let f = Fleet::new().await;
    f.net.faults().lose_reply.insert(START);
    f.migrate("b").await.expect("settled: started there");
    assert_eq!(f.one_copy().await, "b");
    // The start never reached the target: settling drops the reservation; the source resumes.
    let f = Fleet::new().await;
    f.net.faults().drop_call.insert(START);
    let e = f.migrate("b").await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::Unreachable, "{e}");
    assert_eq!(f.one_copy().await, "a");
    // The start never reached the target, which restarted before the source asked: it has
    // no trace of the attempt, so it was not started there.
    let f = Fleet::new().await;
    f.net.faults().drop_call.insert(START);
    f.net.faults().restart_before = Some(SETTLE);
    let e = f.migrate("b").await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::Unreachable, "{e}");
    assert_eq!(f.one_copy().await, "a");
}

#[tokio::test]
async fn a_target_silent_after_start_leaves_the_source_frozen_until_it_answers() {
    let f = Fleet::new().await;
    f.net.faults().lose_reply.insert(START);
    f.net.faults().drop_call.insert(SETTLE);
    let e = f.migrate("b").await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::InDoubt, "{e}");
    // Never two running copies: the source's is frozen while the target's runs.
    assert!(matches!(f.host("a").containers.get("web"), ContainerStatus::Paused(_)), "frozen on the source");
    assert!(matches!(
        f.workloads("a").get("web").unwrap().phase,
        Phase::MigratingOut { committed: true, .. }
    ));
    // The target answers again: the source learns it runs there and deletes its copy.
    f.net.faults().drop_call.clear();
    let a = f.workloads("a");
    fake::eventually(|| a.get("web").is_none()).await;
    assert_eq!(f.one_copy().await, "b");
}

#[tokio::test]
async fn a_target_killed_during_start_is_in_doubt_after_the_settle_window_not_the_start_wait() {
    // A start that nobody answers would hold the migration for the whole start wait; the
    // membership declaring the target dead ends that wait, and the settle window follows.
    let f = Fleet::with(Timings { start_wait: Duration::from_secs(60), ..quick() }).await;
    f.net.faults().hang.insert(START);
    let steps = Mutex::new(Vec::new());
    let mover = f.mover("a");
    let p =
        mover.prepare(&MoveSpec { name: "web".into(), to: "b".into(), ..MoveSpec::default() }).await.unwrap();
    let report = |phase, _, _| steps.lock().unwrap().push(phase);
    let migration = mover.execute(p, &report);
    let killed = async {
        fake::eventually(|| steps.lock().unwrap().contains(&MigratePhase::Start)).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        f.net.faults().down.insert("b".into());
    };
    let (result, ()) =
        tokio::time::timeout(Duration::from_secs(5), async { tokio::join!(migration, killed) }).await.expect(
            "in doubt once the target is gone and the settle window passed, not after the start wait",
        );
    let e = result.unwrap_err();
    assert_eq!(e.code(), ErrorCode::InDoubt, "{e}");
    // The operator's stream heard from it meanwhile: no silence to mistake for a stall.
    assert!(steps.lock().unwrap().contains(&MigratePhase::Settle), "settling reported: {steps:?}");
    assert!(matches!(f.host("a").containers.get("web"), ContainerStatus::Paused(_)), "frozen on the source");
    // The target comes back; it never received the start, so the source resumes its copy.
    *f.net.faults() = Faults::default();
    let a = f.workloads("a");
    fake::eventually(|| a.get("web").is_some_and(|r| r.phase == Phase::Owned)).await;
    assert_eq!(f.one_copy().await, "a");
}

#[tokio::test]
async fn a_source_killed_mid_copy_tries_again_at_once_and_its_silent_transfer_is_stopped() {
    // A long stall period: what frees the target here must not be the stall.
    let f = Fleet::with(Timings { stall: Duration::from_secs(60), ..quick() }).await;
    let mover = f.mover("a");
    let p =
        mover.prepare(&MoveSpec { name: "web".into(), to: "b".into(), ..MoveSpec::default() }).await.unwrap();
    // The copy begins, then the source is killed: its stream goes silent, without a reset.
    let b = f.workloads("b");
    let (mut source, body) = tokio::io::duplex(64 * 1024);
    source.write_all(&[0, 0, 0, 16]).await.unwrap();
    let attempt = encode(&Attempt { name: "web".into(), epoch: 1 });
    let (b2, timings) = (b.clone(), f.net.timings.clone());
    let silent = tokio::spawn(async move { target::receive(&b2, &timings, &attempt, body).await });
    fake::eventually(|| b.transfers.epoch("web") == Some(1) || silent.is_finished()).await;
    assert!(!silent.is_finished(), "the silent transfer waits for its stall");
    // Another source may not take the name meanwhile.
    let mut record = f.workloads("a").get("web").unwrap();
    record.phase = Phase::Owned;
    let other = Reserve { record, epoch: 9, from: "c".into(), bytes: 10 };
    let e = target::reserve(&b, &f.net.timings, &encode(&other)).await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::Conflict, "{e}");
    // The source's daemon restarts (the attempt undone, its epoch used) and tries again.
    let frozen = f.workloads("a").get("web").unwrap();
    f.host("a").containers.freeze("web", "runc", Duration::ZERO).await.unwrap();
    frozen.save(&f.workloads("a").workload_dir("web")).unwrap();
    drop((p, mover));
    f.restart("a").await;
    let s = tokio::time::timeout(Duration::from_secs(5), f.migrate("b"))
        .await
        .expect("the retry does not wait for the old transfer to stall")
        .expect("the retry supersedes the unstarted reservation of the old epoch");
    assert_eq!(s.epoch, 2);
    let old = silent.await.unwrap().unwrap_err();
    assert_eq!(old.code(), ErrorCode::Transfer, "the old transfer was stopped: {old}");
    drop(source);
    assert_eq!(f.one_copy().await, "b");
}

#[tokio::test]
async fn a_source_restarted_mid_migration_ends_with_one_copy() {
    // Restarted after the freeze, before the target was asked to start: undone, runs here;
    // the target's reservation is dropped when it idles.
    let f = Fleet::new().await;
    f.net.faults().cut_after = Some(1); // the copy never completes
    let mover = f.mover("a");
    let p =
        mover.prepare(&MoveSpec { name: "web".into(), to: "b".into(), ..MoveSpec::default() }).await.unwrap();
    // The daemon dies while frozen: its record says MigratingOut, not committed.
    let frozen = f.workloads("a").get("web").unwrap();
    assert!(matches!(frozen.phase, Phase::MigratingOut { committed: false, .. }));
    f.host("a").containers.freeze("web", "runc", Duration::ZERO).await.unwrap();
    frozen.save(&f.workloads("a").workload_dir("web")).unwrap();
    drop((p, mover));
    let a = f.restart("a").await;
    assert_eq!(a.get("web").unwrap().phase, Phase::Owned, "undone at start");
    let b = f.workloads("b");
    fake::eventually(|| b.get("web").is_none()).await;
    *f.net.faults() = Faults::default();
    assert_eq!(f.one_copy().await, "a");
    assert_eq!(a.get("web").unwrap().epoch, 1, "the abandoned epoch stays used");

    // Restarted after it asked the target to start (in doubt): kept frozen, then settled.
    let f = Fleet::new().await;
    f.net.faults().lose_reply.insert(START);
    f.net.faults().drop_call.insert(SETTLE);
    f.migrate("b").await.unwrap_err();
    let a = f.restart("a").await;
    assert!(
        matches!(a.get("web").unwrap().phase, Phase::MigratingOut { committed: true, .. }),
        "still in doubt"
    );
    f.net.faults().drop_call.clear();
    recovery::recover(&f.mover("a"));
    fake::eventually(|| a.get("web").is_none()).await;
    assert_eq!(f.one_copy().await, "b");
}

#[tokio::test]
async fn a_target_restarted_mid_migration_ends_with_one_copy() {
    // Restarted after the reservation (nothing started): the reservation is gone, the start
    // is refused, the source resumes.
    let f = Fleet::new().await;
    let mover = f.mover("a");
    let p =
        mover.prepare(&MoveSpec { name: "web".into(), to: "b".into(), ..MoveSpec::default() }).await.unwrap();
    let b = f.restart("b").await;
    assert!(b.get("web").is_none(), "an unstarted reservation does not survive a restart");
    let e = mover.execute(p, &|_, _, _| {}).await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::Conflict, "{e}");
    assert_eq!(f.one_copy().await, "a");

    // Restarted after it started the workload (the commit point): it keeps it, and the
    // source, whose answer was lost, learns so.
    let f = Fleet::new().await;
    f.net.faults().lose_reply.insert(START);
    f.migrate("b").await.expect("settled");
    let b = f.restart("b").await;
    assert_eq!(b.get("web").unwrap().phase, Phase::Owned, "adopted after the restart");
    assert_eq!(f.one_copy().await, "b");
}

#[tokio::test]
async fn late_messages_of_an_older_epoch_change_nothing() {
    let f = Fleet::new().await;
    // Epoch 1 fails at start (its reply lost and no settle reaches b before patience ends,
    // then b's reservation for epoch 1 is dropped by settle); epoch 2 succeeds.
    f.net.faults().drop_call.insert(START);
    f.migrate("b").await.unwrap_err();
    f.net.faults().drop_call.clear();
    f.migrate("b").await.expect("epoch 2");
    let b = f.workloads("b");
    assert_eq!(b.get("web").unwrap().epoch, 2);
    // Epoch 1's start, transfer and settle arrive late.
    let old = encode(&Attempt { name: "web".into(), epoch: 1 });
    let e = target::start(&b, &old).await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::Conflict, "{e}");
    let e = target::receive(&b, &f.net.timings, &old, tokio::io::empty()).await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::Conflict, "{e}");
    let v: Verdict = decode(SETTLE, &target::settle(&b, &old).await.unwrap()).unwrap();
    assert_eq!(v, Verdict::Started, "epoch 2 runs here, which supersedes epoch 1");
    // A question about a later epoch than the one running here is not answered by it.
    let later = encode(&Attempt { name: "web".into(), epoch: 3 });
    let v: Verdict = decode(SETTLE, &target::settle(&b, &later).await.unwrap()).unwrap();
    assert_eq!(v, Verdict::Aborted, "epoch 3 was never started here");
    assert_eq!(f.one_copy().await, "b");
    // A reservation for epoch 3 is not filled by a transfer of epoch 2.
    let mut record = b.get("web").unwrap();
    record.phase = Phase::Owned;
    b.stop("web").await.unwrap();
    let reserve = Reserve { record, epoch: 3, from: "a".into(), bytes: 10 };
    target::reserve(&b, &f.net.timings, &encode(&reserve)).await.unwrap();
    let stale = encode(&Attempt { name: "web".into(), epoch: 2 });
    let e = target::receive(&b, &f.net.timings, &stale, tokio::io::empty()).await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::Conflict, "{e}");
    assert!(matches!(b.get("web").unwrap().phase, Phase::Incoming { epoch: 3, received: false, .. }));
}

#[tokio::test]
async fn evacuation_moves_everything_and_reports_each_move() {
    let f = Fleet::new().await;
    let a = f.workloads("a");
    a.run(fake::spec("db", f._image.path())).await.unwrap();
    std::fs::write(a.rootfs("db").join("state"), "written by web on a").unwrap();
    struct Seen(Mutex<Vec<(String, String, bool)>>);
    impl evacuate::Report for Seen {
        fn progress(&self, _: &str, _: &str, _: MigratePhase, _: u64, _: u64) {}
        async fn finished(&self, name: &str, to: &str, result: Result<Summary, WorkloadError>) {
            self.0.lock().unwrap().push((name.into(), to.into(), result.is_ok()));
        }
    }
    let mover = f.mover("a");
    let plan = mover.evacuation(&[]).unwrap();
    assert_eq!(plan.len(), 2);
    let seen = Arc::new(Seen(Mutex::default()));
    mover.evacuate(plan, 2, 0, false, seen.clone()).await;
    let mut seen = seen.0.lock().unwrap().clone();
    seen.sort();
    assert_eq!(seen, [("db".into(), "b".into(), true), ("web".into(), "b".into(), true)]);
    assert!(a.owned().is_empty());
    assert_eq!(f.workloads("b").owned().len(), 2);
    // With b down there is nowhere to go: refused before anything moves.
    let f = Fleet::new().await;
    f.net.faults().down.insert("b".into());
    let e = f.mover("a").evacuation(&[]).unwrap_err();
    assert_eq!(e.code(), ErrorCode::Precondition, "{e}");
}

/// Fuzz targets of the migration messages (bounded here; `scripts/fuzz.sh` runs them
/// longer): whatever bytes a peer sends to a target's services, they are refused with
/// `invalid` and leave nothing behind; whatever a transfer stream carries, it ends in an
/// error (or the tree), never a panic, and a failed one drops its reservation.
mod fuzz {
    use super::*;
    use proptest::prelude::*;
    use proptest::test_runner::TestRunner;

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
    }

    #[test]
    fn any_message_to_the_target_services_is_refused_and_leaves_nothing() {
        let rt = runtime();
        let host = FakeHost::new("b");
        let w = rt.block_on(host.open());
        let timings = quick();
        TestRunner::default()
            .run(&any::<Vec<u8>>(), |payload| {
                rt.block_on(async {
                    let refusals = [
                        target::reserve(&w, &timings, &payload).await.err(),
                        target::start(&w, &payload).await.err(),
                        target::settle(&w, &payload).await.err(),
                        target::receive(&w, &timings, &payload, payload.as_slice()).await.err(),
                    ];
                    for e in refusals {
                        prop_assert_eq!(e.map(|e| e.code()), Some(ErrorCode::Invalid));
                    }
                    prop_assert!(w.list_records().is_empty());
                    Ok(())
                })
            })
            .unwrap();
    }

    /// A transfer body: raw bytes, or bytes in a well-formed chunk (so they reach the
    /// archive reader).
    fn body() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            any::<Vec<u8>>(),
            proptest::collection::vec(any::<u8>(), 0..4096).prop_map(|b| {
                let mut v = (b.len() as u32).to_be_bytes().to_vec();
                v.extend(b);
                v
            }),
        ]
    }

    #[test]
    fn any_transfer_stream_ends_in_an_error_and_drops_its_reservation() {
        let rt = runtime();
        let a = FakeHost::new("a");
        let b = FakeHost::new("b");
        let image = fake::image();
        let (wa, wb) = rt.block_on(async { (a.open().await, b.open().await) });
        rt.block_on(wa.run(fake::spec("web", image.path()))).unwrap();
        let record = wa.get("web").unwrap();
        let timings = Timings { stall: Duration::from_millis(200), ..quick() };
        let epochs = std::sync::atomic::AtomicU64::new(0);
        TestRunner::default()
            .run(&body(), |bytes| {
                let epoch = epochs.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
                rt.block_on(async {
                    let reserve = Reserve { record: record.clone(), epoch, from: "a".into(), bytes: 10 };
                    target::reserve(&wb, &timings, &encode(&reserve)).await.unwrap();
                    let attempt = encode(&Attempt { name: "web".into(), epoch });
                    let e = target::receive(&wb, &timings, &attempt, bytes.as_slice()).await;
                    prop_assert!(e.is_err(), "garbage was taken for a tree");
                    prop_assert!(wb.get("web").is_none(), "the reservation is dropped");
                    Ok(())
                })
            })
            .unwrap();
    }
}
