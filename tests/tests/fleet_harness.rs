//! The multi-host harness itself ([`dcos_tests::netns::Fleet`]): hosts are separate network
//! and PID namespaces that reach each other over a bridge, faults do what they say, and
//! nothing is left behind, whether a test passes, panics or is killed.

use dcos_cli::client::{FetchError, K2iClient};
use dcos_core::model::ProcList;
use dcos_tests::netns::{Fleet, HostProcess, LOCK_DIR};
use dcos_tests::{eventually, Pki};
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
fn connects(fleet: &Fleet, from: usize, addr: Ipv4Addr, port: u16) -> bool {
    let script = format!("echo > /dev/tcp/{addr}/{port}");
    let out = fleet.exec(from, "timeout", &["1", "bash", "-c", &script]).unwrap();
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
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| !s.rsplit(')').next().unwrap_or("").trim_start().starts_with('Z'))
        .unwrap_or(false)
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

#[tokio::test]
async fn blackhole_times_out_heal_answers_and_kill_refuses() {
    let fleet = Fleet::new(3).expect("fleet");
    let pki = Pki::new();
    let h1 = fleet.host(1).clone();
    let mut k2i = fleet.k2i(1, &h1.issue(&pki), &["--sample-interval", "200ms"]).expect("k2i on host-1");
    let url = k2i.url().to_string();
    fetch(&pki, &url).await.expect("answers before any fault");
    assert!(connects(&fleet, 0, h1.addr, 7440));

    fleet.blackhole(1).unwrap();
    let start = Instant::now();
    match fetch(&pki, &url).await {
        Err(FetchError::Timeout(_)) => {}
        other => panic!("a black-holed host must time out, got {other:?}"),
    }
    assert!(start.elapsed() >= FAULT_DEADLINE);
    assert!(!connects(&fleet, 0, h1.addr, 7440), "host-0 reaches a black-holed host-1");

    fleet.heal(1).unwrap();
    eventually(T, "host-1 answering after heal", || {
        let url = url.clone();
        let pki = &pki;
        async move { fetch(pki, &url).await.ok() }
    })
    .await;

    // A cut link: host-0 and host-1 no longer talk; everyone else still does.
    fleet.cut(0, 1).unwrap();
    assert!(!connects(&fleet, 0, h1.addr, 7440), "cut 0-1, yet host-0 reaches host-1");
    assert!(connects(&fleet, 2, h1.addr, 7440), "host-2 is not part of the cut");
    fetch(&pki, &url).await.expect("the test process is not part of the cut");
    fleet.uncut(1, 0).unwrap();
    assert!(connects(&fleet, 0, h1.addr, 7440), "uncut");

    // Isolated: the test process still sees host-1, its peers do not.
    fleet.isolate(1).unwrap();
    assert!(!connects(&fleet, 2, h1.addr, 7440), "isolated, yet host-2 reaches host-1");
    fetch(&pki, &url).await.expect("the test process still reaches an isolated host");
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
    fetch(&pki, &url).await.expect("the restarted k2i answers");
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
        *seen.lock().unwrap() = Some((Footprint::of(&fleet), init, p.wrapper_pid()));
        panic!("the test body fails with a fleet up");
    }));
    assert!(result.is_err());
    let (footprint, init, wrapper) = seen.lock().unwrap().clone().expect("the fleet was built");
    footprint.assert_gone();
    assert!(!alive(init), "the sleep on host-1 survived its fleet");
    assert!(!std::path::Path::new(&format!("/proc/{wrapper}")).exists(), "the wrapper was not reaped");
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
    println!("FLEET {} {init}", fleet.index);
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
    let stale = Footprint {
        netns: vec![format!("dcf{index}-h0"), format!("dcf{index}-h1")],
        links: vec![format!("dcf{index}v0"), format!("dcf{index}v1"), format!("dcf{index}br")],
        lock: std::path::Path::new(LOCK_DIR).join(index.to_string()),
    };
    stale.assert_present();
    assert!(alive(init));
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
}
