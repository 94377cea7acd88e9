//! The multi-host harness itself ([`dcos_tests::netns::Fleet`]): hosts are separate network
//! and PID namespaces that reach each other over a bridge, faults do what they say, and
//! nothing is left behind, whether a test passes, panics or is killed. A booted host is one
//! PID namespace its programs and containers share: they see each other and no other host's,
//! a killed program's orphans stay with the host until the host dies, and its tmpfs fills up.

use dcos_core::model::{ContainerList, ProcList};
use dcos_linux::process;
use dcos_tests::netns::{Fleet, HostProcess, HOST_INIT, LOCK_DIR};
use dcos_tests::oci::Container;
use dcos_tests::{eventually, Pki};
use k2i_client::{FetchError, K2iClient};
use serde_json::Value;
use std::collections::HashSet;
use std::io::Read;
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::os::unix::fs::MetadataExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(5);
const FAULT_DEADLINE: Duration = Duration::from_millis(500);

/// Connects from the test process and reads what the listener says (retrying while it
/// starts).
fn read_from(addr: Ipv4Addr, port: u16) -> String {
    let start = Instant::now();
    loop {
        let sa = SocketAddr::from((addr, port));
        if let Ok(mut s) = TcpStream::connect_timeout(&sa, Duration::from_secs(1)) {
            s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
            let mut out = String::new();
            let _ = s.read_to_string(&mut out);
            if !out.is_empty() {
                return out;
            }
        }
        assert!(start.elapsed() < T, "{addr}:{port} never answered");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Whether a TCP connect from inside host `from` to `addr:port` succeeds within 1 s.
/// Whether host `from` opens a TCP connection to `addr:port` within 5 s (`ip netns exec`,
/// bash and the connect can take over a second when the whole suite runs on two cores).
fn connects(fleet: &Fleet, from: usize, addr: Ipv4Addr, port: u16) -> bool {
    tcp_within(fleet, from, addr, port, 5)
}

/// Whether it does within 1 s: for a host that must not be reachable (a cut or black hole
/// makes the connect hang, so a refusal is not waited for any longer).
fn blocked(fleet: &Fleet, from: usize, addr: Ipv4Addr, port: u16) -> bool {
    !tcp_within(fleet, from, addr, port, 1)
}

fn tcp_within(fleet: &Fleet, from: usize, addr: Ipv4Addr, port: u16, secs: u32) -> bool {
    let script = format!("echo > /dev/tcp/{addr}/{port}");
    let out = fleet.exec(from, "timeout", &[&secs.to_string(), "bash", "-c", &script]).unwrap();
    out.status.success()
}

fn listed(cmd: &[&str]) -> String {
    let out = Command::new(cmd[0]).args(&cmd[1..]).output().unwrap();
    assert!(out.status.success(), "{cmd:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Names of the root namespace's network namespaces and interfaces, as `ip` lists them.
fn netns_and_links() -> (Vec<String>, Vec<String>) {
    let netns = listed(&["ip", "netns", "list"])
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(String::from))
        .collect();
    let links = listed(&["ip", "-o", "link", "show"])
        .lines()
        .filter_map(|l| l.split(": ").nth(1))
        .map(|n| n.split('@').next().unwrap_or(n).to_string())
        .collect();
    (netns, links)
}

/// What a fleet consists of, recorded before it goes away.
#[derive(Debug, Clone)]
struct Footprint {
    netns: Vec<String>,
    links: Vec<String>,
    lock: std::path::PathBuf,
}

impl Footprint {
    fn of(fleet: &Fleet) -> Footprint {
        let mut links: Vec<String> = fleet.hosts().iter().map(|h| h.veth.clone()).collect();
        links.push(fleet.bridge.clone());
        Footprint {
            netns: fleet.hosts().iter().map(|h| h.netns.clone()).collect(),
            links,
            lock: std::path::Path::new(LOCK_DIR).join(fleet.index.to_string()),
        }
    }

    fn assert_present(&self) {
        let (netns, links) = netns_and_links();
        for n in &self.netns {
            assert!(netns.contains(n), "namespace {n} missing from {netns:?}");
        }
        for l in &self.links {
            assert!(links.contains(l), "interface {l} missing from {links:?}");
        }
        assert!(self.lock.exists(), "{} missing", self.lock.display());
    }

    fn assert_gone(&self) {
        let (netns, links) = netns_and_links();
        for n in &self.netns {
            assert!(!netns.contains(n), "namespace {n} left behind: {netns:?}");
        }
        for l in &self.links {
            assert!(!links.contains(l), "interface {l} left behind: {links:?}");
        }
        assert!(!self.lock.exists(), "{} left behind", self.lock.display());
    }
}

/// Whether `pid` still runs (a zombie does not).
fn alive(pid: u32) -> bool {
    process::running(dcos_linux::proc_root(), pid)
}

fn wait_init_pid(p: &mut HostProcess) -> u32 {
    let start = Instant::now();
    loop {
        if let Some(pid) = p.init_pid() {
            return pid;
        }
        assert!(start.elapsed() < T, "the process never started: {}", p.stderr());
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn ns_inode(link: &str) -> u64 {
    let target = std::fs::read_link(link).unwrap().to_string_lossy().into_owned();
    // "pid:[4026531836]"
    target.split(['[', ']']).nth(1).unwrap().parse().unwrap()
}

#[test]
fn hosts_have_their_own_addresses_and_reach_each_other() {
    let fleet = Fleet::new(3).expect("fleet");
    let addrs: HashSet<Ipv4Addr> = fleet.hosts().iter().map(|h| h.addr).collect();
    assert_eq!(addrs.len(), 3, "distinct addresses: {:?}", fleet.hosts());
    assert!(!addrs.contains(&fleet.gateway));

    // A listener on every host, on the same port, each saying which host it is.
    let _listeners: Vec<HostProcess> = fleet
        .hosts()
        .iter()
        .map(|h| fleet.spawn(h.index, "busybox", &["nc", "-ll", "-p", "7000", "-e", "echo", &h.name]))
        .collect::<Result<_, _>>()
        .expect("listeners");
    for h in fleet.hosts() {
        assert_eq!(read_from(h.addr, 7000).trim(), h.name, "from the test process to {}", h.addr);
    }

    // Host to host, over the bridge.
    let h1 = fleet.host(1).addr.to_string();
    let out = fleet.exec(0, "busybox", &["nc", "-w", "2", &h1, "7000"]).unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "host-1", "host-0 -> host-1: {out:?}");

    // A host routes its fleet's /24 and nothing else.
    let routes = fleet.exec(2, "ip", &["-4", "route", "show"]).unwrap();
    let routes = String::from_utf8_lossy(&routes.stdout);
    let net = format!("{}0/24", h1.trim_end_matches(|c: char| c.is_ascii_digit()));
    assert_eq!(routes.lines().count(), 1, "{routes}");
    assert!(routes.starts_with(&net), "{routes} is not {net}");
}

#[tokio::test]
async fn a_host_process_has_its_own_pid_namespace_and_k2i_sees_only_it() {
    let fleet = Fleet::new(3).expect("fleet");

    let mut sh =
        fleet.spawn(1, "sh", &["-c", "echo $$; ls /proc | grep -c '^[0-9]'; exec sleep 600"]).unwrap();
    assert_eq!(sh.line(T).as_deref(), Some("1"), "pid in its namespace; {}", sh.stderr());
    let count: usize = sh.line(T).unwrap().parse().unwrap();
    assert!(count <= 3, "its /proc lists {count} processes (sh, ls, grep at most)");
    let init = wait_init_pid(&mut sh);
    assert_ne!(ns_inode(&format!("/proc/{init}/ns/pid")), ns_inode("/proc/self/ns/pid"));
    let host_netns = std::fs::metadata(format!("/run/netns/{}", fleet.host(1).netns)).unwrap().ino();
    assert_eq!(ns_inode(&format!("/proc/{init}/ns/net")), host_netns, "in host-1's network");

    let pki = Pki::new();
    let host = fleet.host(2);
    let k2i = fleet.k2i(2, &host.issue(&pki), &["--sample-interval", "200ms"]).expect("k2i on host-2");
    assert_eq!(k2i.url(), host.k2i_url());
    let admin = pki.client("admin");
    let list: ProcList = eventually(T, "k2i's process table", || {
        let (admin, url) = (admin.clone(), k2i.url().to_string());
        async move {
            let l: ProcList = admin.get_json(&url, "/v1/proc", T).await.ok()?;
            (l.total >= 1).then_some(l)
        }
    })
    .await;
    assert_eq!(list.host, "host-2");
    let pids: Vec<(i32, String)> = list.processes.iter().map(|p| (p.pid, p.cmd.to_string())).collect();
    assert!(list.total <= 3, "host-2 shows only its own processes, not the machine's: {pids:?}");
    assert!(pids.contains(&(1, "k2i".to_string())), "k2i is pid 1 of host-2: {pids:?}");
    assert!(!pids.iter().any(|(_, cmd)| cmd == "sleep"), "host-1's sleep is not on host-2: {pids:?}");
}

async fn fetch(pki: &Pki, url: &str) -> Result<Value, FetchError> {
    // A fresh client each time: a new connection, not one pooled before the fault.
    let c: K2iClient = pki.client("admin");
    c.get_json(url, "/v1/host", FAULT_DEADLINE).await
}

/// Waits (at most [`T`]) for `url` to answer a fetch, each within [`FAULT_DEADLINE`]: for
/// a host that must answer, where one slow first answer on a loaded machine is no fault.
async fn answers(pki: &Pki, url: &str, what: &str) {
    eventually(T, what, || async move { fetch(pki, url).await.ok() }).await;
}

#[tokio::test]
async fn blackhole_times_out_heal_answers_and_kill_refuses() {
    let fleet = Fleet::new(3).expect("fleet");
    let pki = Pki::new();
    let h1 = fleet.host(1).clone();
    let mut k2i = fleet.k2i(1, &h1.issue(&pki), &["--sample-interval", "200ms"]).expect("k2i on host-1");
    let url = k2i.url().to_string();
    answers(&pki, &url, "answers before any fault").await;
    assert!(connects(&fleet, 0, h1.addr, 7440));

    fleet.blackhole(1).unwrap();
    let start = Instant::now();
    match fetch(&pki, &url).await {
        Err(FetchError::Timeout(_)) => {}
        other => panic!("a black-holed host must time out, got {other:?}"),
    }
    assert!(start.elapsed() >= FAULT_DEADLINE);
    assert!(blocked(&fleet, 0, h1.addr, 7440), "host-0 reaches a black-holed host-1");

    fleet.heal(1).unwrap();
    eventually(T, "host-1 answering after heal", || {
        let url = url.clone();
        let pki = &pki;
        async move { fetch(pki, &url).await.ok() }
    })
    .await;

    // A cut link: host-0 and host-1 no longer talk; everyone else still does.
    fleet.cut(0, 1).unwrap();
    assert!(blocked(&fleet, 0, h1.addr, 7440), "cut 0-1, yet host-0 reaches host-1");
    assert!(connects(&fleet, 2, h1.addr, 7440), "host-2 is not part of the cut");
    answers(&pki, &url, "the test process is not part of the cut").await;
    fleet.uncut(1, 0).unwrap();
    assert!(connects(&fleet, 0, h1.addr, 7440), "uncut");

    // Isolated: the test process still sees host-1, its peers do not.
    fleet.isolate(1).unwrap();
    assert!(blocked(&fleet, 2, h1.addr, 7440), "isolated, yet host-2 reaches host-1");
    answers(&pki, &url, "the test process still reaches an isolated host").await;
    fleet.heal(1).unwrap();
    assert!(connects(&fleet, 2, h1.addr, 7440), "healed");

    fleet.kill(&mut k2i);
    assert!(!k2i.is_running());
    match fetch(&pki, &url).await {
        Err(FetchError::Refused | FetchError::Unreachable(_)) => {}
        other => panic!("a stopped k2i must be refused or unreachable, got {other:?}"),
    }

    // Restarted on the same address, then the whole host killed.
    let mut again = fleet.k2i(1, &pki.files(&h1.name), &[]).expect("k2i restarts");
    answers(&pki, &url, "the restarted k2i answers").await;
    fleet.kill_host(1);
    assert!(!again.is_running());
    match fetch(&pki, &url).await {
        Err(FetchError::Refused | FetchError::Unreachable(_)) => {}
        other => panic!("a killed host must be refused or unreachable, got {other:?}"),
    }
}

#[test]
fn teardown_leaves_nothing_behind_even_after_a_panic() {
    let fleet = Fleet::new(2).expect("fleet");
    let footprint = Footprint::of(&fleet);
    footprint.assert_present();
    drop(fleet);
    footprint.assert_gone();

    let seen = std::sync::Mutex::new(None);
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let fleet = Fleet::new(2).expect("fleet");
        let mut p = fleet.spawn(1, "sleep", &["600"]).unwrap();
        let init = wait_init_pid(&mut p);
        fleet.blackhole(1).unwrap();
        // A booted host with a program and a disk, as a workload test would leave it.
        let disk_dir = tempfile::tempdir().unwrap();
        let disk = fleet.tmpfs_on(0, disk_dir.path(), 1 << 16).unwrap();
        let mut on0 = fleet.spawn_on(0, "sleep", &["600"]).unwrap();
        let booted = (fleet.host_init_pid(0).unwrap(), wait_init_pid(&mut on0));
        std::mem::forget(disk); // left mounted: it goes with the host
        *seen.lock().unwrap() = Some((Footprint::of(&fleet), init, p.wrapper_pid(), booted));
        panic!("the test body fails with a fleet up");
    }));
    assert!(result.is_err());
    let (footprint, init, wrapper, (host_init, on0)) =
        seen.lock().unwrap().clone().expect("the fleet was built");
    footprint.assert_gone();
    assert!(!alive(init), "the sleep on host-1 survived its fleet");
    assert!(!std::path::Path::new(&format!("/proc/{wrapper}")).exists(), "the wrapper was not reaped");
    assert!(!alive(host_init), "host-0's init survived its fleet");
    assert!(!alive(on0), "the sleep inside host-0 survived its fleet");
}

/// Not a test on its own: run by [`a_killed_test_leaves_leftovers_the_next_fleet_removes`] as
/// a separate process that builds a fleet, reports it and waits to be SIGKILLed.
#[test]
#[ignore = "helper process for a_killed_test_leaves_leftovers_the_next_fleet_removes"]
fn fleet_owner_killed_by_its_parent() {
    if std::env::var_os("DCOS_FLEET_OWNER").is_none() {
        return;
    }
    let fleet = Fleet::new(2).expect("fleet");
    let mut p = fleet.spawn(1, "sleep", &["600"]).unwrap();
    let init = wait_init_pid(&mut p);
    let mut on0 = fleet.spawn_on(0, "sleep", &["600"]).unwrap();
    let on0 = wait_init_pid(&mut on0);
    let host_init = fleet.host_init_pid(0).unwrap();
    println!("FLEET {} {init} {host_init} {on0}", fleet.index);
    std::thread::sleep(Duration::from_secs(60));
}

#[test]
fn a_killed_test_leaves_leftovers_the_next_fleet_removes() {
    let mut owner = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "fleet_owner_killed_by_its_parent", "--ignored", "--nocapture"])
        .env("DCOS_FLEET_OWNER", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = std::io::BufReader::new(owner.stdout.take().unwrap());
    let report = std::io::BufRead::lines(stdout)
        .map_while(Result::ok)
        .find(|l| l.starts_with("FLEET "))
        .expect("the owner reports its fleet");
    let mut words = report.split_whitespace().skip(1);
    let index: u32 = words.next().unwrap().parse().unwrap();
    let init: u32 = words.next().unwrap().parse().unwrap();
    let host_init: u32 = words.next().unwrap().parse().unwrap();
    let on0: u32 = words.next().unwrap().parse().unwrap();
    let stale = Footprint {
        netns: vec![format!("dcf{index}-h0"), format!("dcf{index}-h1")],
        links: vec![format!("dcf{index}v0"), format!("dcf{index}v1"), format!("dcf{index}br")],
        lock: std::path::Path::new(LOCK_DIR).join(index.to_string()),
    };
    stale.assert_present();
    assert!(alive(init) && alive(host_init) && alive(on0));
    // SIGKILL: no destructor runs. (Not checked here that the leftovers are still there:
    // any test starting a fleet from now on may already remove them.)
    owner.kill().unwrap();
    owner.wait().unwrap();

    // The next fleet, whichever index it gets, removes them (it may reuse the index, but it
    // has one host only).
    let fleet = Fleet::new(1).expect("fleet");
    if fleet.index == index {
        Footprint {
            netns: vec![stale.netns[1].clone()],
            links: vec![stale.links[1].clone()],
            lock: "/nonexistent".into(),
        }
        .assert_gone();
    } else {
        stale.assert_gone();
    }
    assert!(!alive(init), "the killed test's sleep was not killed");
    assert!(!alive(host_init), "the killed test's host init was not killed");
    assert!(!alive(on0), "the sleep inside the killed test's host was not killed");
}

/// `pid`'s start time (clock ticks since boot), to tell it from a later process reusing the pid.
fn start_time(pid: u32) -> Option<u64> {
    process::start_time(dcos_linux::proc_root(), pid)
}

/// Whether the process that had `pid` and `started` still runs.
fn still_runs(pid: u32, started: u64) -> bool {
    process::still_runs(dcos_linux::proc_root(), pid, Some(started))
}

/// The processes k2i at `url` lists, as (pid, cmd), once it lists `want` (5 s at most).
async fn k2i_processes(pki: &Pki, url: &str, want: impl Fn(&[(i32, String)]) -> bool) -> Vec<(i32, String)> {
    let admin = pki.client("admin");
    eventually(T, "k2i's process table", || {
        let (admin, url) = (admin.clone(), url.to_string());
        let want = &want;
        async move {
            let l: ProcList = admin.get_json(&url, "/v1/proc", T).await.ok()?;
            let pids: Vec<(i32, String)> = l.processes.iter().map(|p| (p.pid, p.cmd.to_string())).collect();
            want(&pids).then_some(pids)
        }
    })
    .await
}

fn names(pids: &[(i32, String)]) -> Vec<&str> {
    let mut n: Vec<&str> = pids.iter().map(|(_, c)| c.as_str()).collect();
    n.sort_unstable();
    n
}

#[tokio::test]
async fn programs_on_a_booted_host_see_each_other_and_no_other_host() {
    let fleet = Fleet::new(2).expect("fleet");
    let pki = Pki::new();
    let mut sleep = fleet.spawn_on(0, "sleep", &["600"]).expect("sleep on host-0");
    let sleep_pid = sleep.ns_pid().expect("the sleep runs") as i32;
    assert_ne!(sleep_pid, 1, "host-0's init is pid 1, the sleep one more process");
    let mut k2i0 = fleet.k2i_on(0, &fleet.host(0).issue(&pki), &["--sample-interval", "200ms"]).expect("k2i");
    let mut k2i1 = fleet.k2i_on(1, &fleet.host(1).issue(&pki), &["--sample-interval", "200ms"]).expect("k2i");
    assert_eq!(k2i0.url(), fleet.host(0).k2i_url());

    let init0 = fleet.host_init_pid(0).expect("host-0 was booted");
    let init1 = fleet.host_init_pid(1).expect("host-1 was booted");
    let pid_ns = |pid: u32| ns_inode(&format!("/proc/{pid}/ns/pid"));
    let (k0, k1, s0) = (wait_init_pid(&mut k2i0), wait_init_pid(&mut k2i1), wait_init_pid(&mut sleep));
    assert_eq!(pid_ns(k0), pid_ns(init0), "k2i shares host-0's PID namespace");
    assert_eq!(pid_ns(s0), pid_ns(init0), "the sleep shares host-0's PID namespace");
    assert_eq!(pid_ns(k1), pid_ns(init1));
    assert_ne!(pid_ns(init0), pid_ns(init1), "hosts have PID namespaces of their own");
    assert_ne!(pid_ns(init0), ns_inode("/proc/self/ns/pid"));
    let host_netns = std::fs::metadata(format!("/run/netns/{}", fleet.host(0).netns)).unwrap().ino();
    assert_eq!(ns_inode(&format!("/proc/{k0}/ns/net")), host_netns, "in host-0's network");

    let k2i0_pid = k2i0.ns_pid().unwrap() as i32;
    let on0 = k2i_processes(&pki, k2i0.url(), |p| p.iter().any(|(_, c)| c == "sleep")).await;
    assert!(on0.contains(&(sleep_pid, "sleep".into())), "host-0's k2i lists the sleep: {on0:?}");
    assert!(on0.contains(&(k2i0_pid, "k2i".into())), "and itself: {on0:?}");
    assert!(on0.contains(&(1, HOST_INIT.into())), "and the host's init as pid 1: {on0:?}");
    assert_eq!(names(&on0), [HOST_INIT, "k2i", "sleep"], "and nothing else: {on0:?}");
    let on1 = k2i_processes(&pki, k2i1.url(), |p| !p.is_empty()).await;
    assert_eq!(names(&on1), [HOST_INIT, "k2i"], "host-1 sees none of host-0's processes: {on1:?}");

    // Booting is idempotent: programs started later join the same host.
    assert_eq!(fleet.boot(0).unwrap(), init0);
    let out = fleet.exec_on(0, "sh", &["-c", "ls /proc | grep -c '^[0-9]'"]).unwrap();
    let count: usize = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
    assert!((5..=7).contains(&count), "init, sleep, k2i, sh, ls, grep (one may be gone): {count}");
}

#[test]
fn a_killed_programs_orphan_stays_on_the_host_until_the_host_dies() {
    let fleet = Fleet::new(1).expect("fleet");
    let mut parent =
        fleet.spawn_on(0, "sh", &["-c", "sleep 300 & echo $!; exec sleep 600"]).expect("sh on host-0");
    let orphan_host_pid: u32 = parent.line(T).expect("the child's pid").parse().unwrap();
    let orphan = fleet.test_pid(0, orphan_host_pid).expect("the child, seen from the test");
    let started = start_time(orphan).unwrap();
    let init = fleet.host_init_pid(0).unwrap();
    let parent_pid = wait_init_pid(&mut parent);
    assert_eq!(ppid_of(orphan), parent_pid, "the sleep is the program's child");

    parent.kill();
    assert!(!parent.is_running());
    assert!(!alive(parent_pid), "the program itself is gone");
    assert!(still_runs(orphan, started), "the program's child survived it");
    assert_eq!(ppid_of(orphan), init, "reparented to the host's init");
    let stat = fleet.exec_on(0, "cat", &[&format!("/proc/{orphan_host_pid}/stat")]).unwrap();
    let host_ppid = dcos_linux::stat::parse(&stat.stdout).expect("a /proc/PID/stat").ppid;
    assert_eq!(
        host_ppid,
        1,
        "inside the host its parent is pid 1: {}",
        String::from_utf8_lossy(&stat.stdout)
    );

    let err = fleet.spawn_daemon_on(0, "/nonexistent/daemon", &[]).err().expect("no such program");
    assert!(format!("{err:#}").contains("/nonexistent/daemon"), "{err:#}");
    assert!(still_runs(orphan, started), "a failed start disturbs nothing");

    fleet.kill_host(0);
    assert!(!still_runs(orphan, started), "kill_host leaves the orphan running");
    assert!(!alive(init), "kill_host leaves the host's init running");
    assert_eq!(fleet.host_init_pid(0), None, "host-0 is down");
    // Powered on again: a fresh host, without the old one's processes.
    let again = fleet.boot(0).expect("host-0 boots again");
    assert_ne!(again, init);
    assert_eq!(fleet.test_pid(0, orphan_host_pid), None, "the orphan did not come back");
}

/// `pid`'s parent.
fn ppid_of(pid: u32) -> u32 {
    process::brief(dcos_linux::proc_root(), pid).expect("a running process").ppid
}

#[tokio::test]
async fn a_container_run_on_a_host_is_seen_by_its_k2i_alone() {
    let runc = dcos_localfleet::oci_runtime("runc").expect("runc is installed by scripts/setup.sh");
    let fleet = Fleet::new(2).expect("fleet");
    let pki = Pki::new();
    let work = tempfile::tempdir().unwrap();
    let state = work.path().join("runc-state");
    let id = format!("fleet-test-{}", std::process::id());
    let cgroup = format!("/dcos-test/{id}");
    let container = Container::run_in(
        &fleet.enter(0).unwrap(),
        &runc,
        &state,
        work.path(),
        &id,
        &cgroup,
        &["sleep", "3600"],
    )
    .expect("runc runs a busybox container inside host-0");
    let init = container.pid().expect("its pid on host-0");
    // runc has exited: the container lives on as a child of the host's init.
    let seen = fleet.test_pid(0, init as u32).expect("the container's init, seen from the test");
    assert_eq!(ppid_of(seen), fleet.host_init_pid(0).unwrap(), "a child of host-0's init");

    // Both k2i read the same state root; only host-0 has the container's processes.
    let oci = format!("runc={}", state.display());
    let args = ["--sample-interval", "200ms", "--oci-root", &oci];
    let k2i0 = fleet.k2i_on(0, &fleet.host(0).issue(&pki), &args).expect("k2i on host-0");
    let k2i1 = fleet.k2i_on(1, &fleet.host(1).issue(&pki), &args).expect("k2i on host-1");
    let admin = pki.client("admin");
    let list: ContainerList = eventually(T, "the container on host-0", || {
        let (admin, url, id) = (admin.clone(), k2i0.url().to_string(), id.clone());
        async move {
            let l: ContainerList = admin.get_json(&url, "/v1/containers", T).await.ok()?;
            l.containers.iter().any(|c| *c.id == *id && c.processes >= 1).then_some(l)
        }
    })
    .await;
    let ct = list.containers.iter().find(|c| *c.id == *id).unwrap();
    assert_eq!((ct.status.as_str(), ct.pid), ("running", Some(init)), "{ct:?}");
    // A table answer may be a sample or two old: the init is `runc:[2:INIT]` until it execs.
    let l: ProcList = eventually(T, "the container's init seen as sleep", || {
        let (admin, url) = (admin.clone(), k2i0.url().to_string());
        async move {
            let l: ProcList = admin.get_json(&url, &format!("/v1/proc?pid={init}"), T).await.ok()?;
            (l.processes.len() == 1 && &*l.processes[0].cmd == "sleep").then_some(l)
        }
    })
    .await;
    assert_eq!(l.processes[0].container.as_ref().map(|c| &*c.id), Some(id.as_str()));

    let on1: ContainerList = admin.get_json(k2i1.url(), "/v1/containers", T).await.unwrap();
    for c in on1.containers.iter().filter(|c| *c.id == *id) {
        assert!(c.status != "running" && c.processes == 0, "host-1 sees host-0's container run: {c:?}");
    }
    let procs1: ProcList = admin.get_json(k2i1.url(), &format!("/v1/proc?container={id}"), T).await.unwrap();
    assert_eq!(procs1.total, 0, "host-1 attributes processes to host-0's container: {procs1:?}");
    let all1: ProcList = admin.get_json(k2i1.url(), "/v1/proc", T).await.unwrap();
    assert!(!all1.processes.iter().any(|p| &*p.cmd == "sleep"), "host-1 lists the container's sleep");

    // The host dies with its container; deleting it afterwards still removes its state.
    fleet.kill_host(0);
    assert!(!alive(seen), "the container survived its host");
    drop(container);
    assert!(!state.join(&id).exists(), "the runtime state of the container was left behind");
}

#[test]
fn a_host_tmpfs_has_its_size_and_fills_up() {
    const SIZE: u64 = 1 << 20;
    let fleet = Fleet::new(2).expect("fleet");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_str().unwrap();

    let err = fleet.tmpfs_on(0, dir.path(), 0).unwrap_err();
    assert!(format!("{err:#}").contains("above 0 bytes"), "{err:#}");
    let err = fleet.tmpfs_on(0, "relative/dir", SIZE).unwrap_err();
    assert!(format!("{err:#}").contains("not absolute"), "{err:#}");

    let disk = fleet.tmpfs_on(0, dir.path(), SIZE).expect("a tmpfs on host-0");
    assert_eq!(disk.path(), dir.path());
    let vfs = nix::sys::statvfs::statvfs(disk.outside()).unwrap();
    assert_eq!(vfs.blocks() as u64 * vfs.fragment_size() as u64, SIZE, "its size");
    let inside = fleet.exec_on(0, "stat", &["-f", "-c", "%T %b %S", path]).unwrap();
    assert_eq!(String::from_utf8_lossy(&inside.stdout).trim(), "tmpfs 256 4096", "as host-0 sees it");
    let mounted_on = |h: usize| fleet.exec_on(h, "mountpoint", &["-q", path]).unwrap().status.success();
    assert!(mounted_on(0));
    assert!(!mounted_on(1), "host-1 has no such disk");

    // 2 MiB do not fit in 1 MiB, whoever writes them.
    let dd =
        fleet.exec_on(0, "dd", &["if=/dev/zero", &format!("of={path}/fill"), "bs=64K", "count=32"]).unwrap();
    assert!(!dd.status.success());
    assert!(String::from_utf8_lossy(&dd.stderr).contains("No space left on device"), "{dd:?}");
    let err = std::fs::write(disk.outside().join("more"), [0u8; 8192]).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::ENOSPC), "{err}");
    assert!(!dir.path().join("fill").exists(), "the test's own view of the directory is untouched");

    drop(disk);
    assert!(!mounted_on(0), "unmounted when dropped");
}

#[test]
fn sigterm_to_a_hosts_init_shuts_the_host_down() {
    let fleet = Fleet::new(1).expect("fleet");
    let mut sleep = fleet.spawn_on(0, "sleep", &["600"]).expect("sleep on host-0");
    let sleep_pid = wait_init_pid(&mut sleep);
    let init = fleet.host_init_pid(0).unwrap();
    let pid = nix::unistd::Pid::from_raw(init as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let start = Instant::now();
    while fleet.host_init_pid(0).is_some() {
        assert!(start.elapsed() < T, "host-0's init ignores SIGTERM");
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(!alive(sleep_pid), "the host's programs die with its init");
    // Its nsenter exits right after it has reaped the sleep.
    while sleep.is_running() {
        assert!(start.elapsed() < T, "the sleep's handle still runs");
        std::thread::sleep(Duration::from_millis(10));
    }
}
