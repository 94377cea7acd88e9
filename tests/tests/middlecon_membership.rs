//! middlecon membership (SWIM over the peer transport) across a fleet of real hosts
//! (network namespaces), each running the real `middlecon` binary with host 0 as everyone's
//! seed. The test process reads each host's member list with `dcos.members`, as
//! `dcos hosts` will.

use dcos_core::tls::Identity;
use dcos_core::Role;
use dcos_tests::netns::{Fleet, HostProcess};
use dcos_tests::Pki;
use middlecon::membership::{Member, MembersReply, State};
use middlecon::peer::{Client, Outcome};
use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime};

const PORT: u16 = 7441;

fn dc_of(i: usize) -> &'static str {
    if i == 2 {
        "dc-b"
    } else {
        "dc-a"
    }
}

/// Starts middlecon on host `i` as `host-<i>` (dc-a, host 2 in dc-b, label `rack=r<i>`),
/// seeded with host 0, with a certificate from `pki`.
fn middlecon(fleet: &Fleet, pki: &Pki, i: usize) -> HostProcess {
    let tls = fleet.host(i).issue(pki);
    let seed = format!("{}:{PORT}", fleet.host(0).addr);
    let rack = format!("rack=r{i}");
    let args = ["--dc", dc_of(i), "--label", &rack, "--seed", &seed];
    fleet.middlecon(i, &tls, &args).expect("middlecon starts on its host")
}

fn peer_addr(fleet: &Fleet, i: usize) -> SocketAddr {
    SocketAddr::new(fleet.host(i).addr.into(), PORT)
}

fn client(pki: &Pki) -> Client {
    let files = pki.issue("tester", Role::Host);
    Client::new(&Identity::load(&files).expect("identity")).expect("client endpoint")
}

/// Host `i`'s member list, or `None` when it does not answer.
async fn members(c: &Client, fleet: &Fleet, i: usize) -> Option<Vec<Member>> {
    let deadline = SystemTime::now() + Duration::from_secs(1);
    let reply = c.call(peer_addr(fleet, i), "dcos.members", Vec::new(), deadline).await.ok()?;
    assert_eq!(reply.outcome(), Outcome::Ok, "dcos.members answers ok: {reply:?}");
    let r: MembersReply = serde_json::from_slice(&reply.payload).expect("dcos.members answers JSON");
    Some(r.members)
}

fn state_of(list: &[Member], name: &str) -> Option<State> {
    list.iter().find(|m| m.name == name).map(|m| m.state)
}

/// Polls until `done` holds for every host in `observers`, or `limit` passes; returns
/// the time it took and the last lists seen.
async fn wait_until(
    c: &Client,
    fleet: &Fleet,
    observers: &[usize],
    limit: Duration,
    done: impl Fn(usize, &[Member]) -> bool,
) -> (Option<Duration>, Vec<Option<Vec<Member>>>) {
    let started = Instant::now();
    loop {
        let mut lists = Vec::new();
        for &i in observers {
            lists.push(members(c, fleet, i).await);
        }
        let all = observers.iter().zip(&lists).all(|(&i, l)| l.as_deref().is_some_and(|l| done(i, l)));
        if all {
            return (Some(started.elapsed()), lists);
        }
        if started.elapsed() > limit {
            return (None, lists);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn everyone_alive(fleet: &Fleet, n: usize) -> impl Fn(usize, &[Member]) -> bool + '_ {
    move |_, list| {
        (0..n).all(|j| {
            let h = fleet.host(j);
            list.iter().any(|m| {
                m.name == h.name
                    && m.state == State::Alive
                    && m.dc == dc_of(j)
                    && m.labels.get("rack").map(String::as_str) == Some(&format!("r{j}"))
                    && m.addr == SocketAddr::new(h.addr.into(), PORT)
            })
        }) && list.len() == n
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_host_sees_every_host_alive_with_its_metadata_and_load() {
    let fleet = Fleet::new(3).expect("fleet");
    let pki = Pki::new();
    let _daemons: Vec<_> = (0..3).map(|i| middlecon(&fleet, &pki, i)).collect();
    let last_start = Instant::now();
    let c = client(&pki);
    let (took, lists) =
        wait_until(&c, &fleet, &[0, 1, 2], Duration::from_secs(5), everyone_alive(&fleet, 3)).await;
    let took = took.unwrap_or_else(|| panic!("not everyone sees everyone alive after 5 s: {lists:#?}"));
    eprintln!("join: all 3 see all 3 alive {:?} after the last start", last_start.elapsed().min(took));
    // Each list starts with the host itself.
    for (i, l) in lists.iter().enumerate() {
        assert_eq!(l.as_ref().unwrap()[0].name, fleet.host(i).name, "a host lists itself first");
    }
    // Load figures (the 1-minute load average) reach everyone too.
    let (took, lists) = wait_until(&c, &fleet, &[0, 1, 2], Duration::from_secs(8), |_, l| {
        l.iter().all(|m| m.load.is_some_and(|x| x >= 0.0) && !m.version.is_empty())
    })
    .await;
    assert!(took.is_some(), "every member carries a load figure and a version: {lists:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_member_is_seen_dead_then_alive_again_after_a_restart() {
    let fleet = Fleet::new(3).expect("fleet");
    let pki = Pki::new();
    let mut daemons: Vec<_> = (0..3).map(|i| middlecon(&fleet, &pki, i)).collect();
    let c = client(&pki);
    let (took, lists) =
        wait_until(&c, &fleet, &[0, 1, 2], Duration::from_secs(5), everyone_alive(&fleet, 3)).await;
    assert!(took.is_some(), "the fleet forms: {lists:#?}");

    fleet.kill(&mut daemons[2]);
    let killed = Instant::now();
    let (took, lists) = wait_until(&c, &fleet, &[0, 1], Duration::from_secs(8), |_, l| {
        state_of(l, "host-2") == Some(State::Dead)
    })
    .await;
    let took = took.unwrap_or_else(|| panic!("host-2 not seen dead by hosts 0 and 1 within 8 s: {lists:#?}"));
    eprintln!("failure detection: host-2 seen dead by hosts 0 and 1 {took:?} after the kill");
    assert!(killed.elapsed() <= Duration::from_secs(9));
    // The survivors still see each other alive.
    for l in lists.iter().flatten() {
        assert_eq!(state_of(l, "host-0"), Some(State::Alive));
        assert_eq!(state_of(l, "host-1"), Some(State::Alive));
    }

    daemons[2] = middlecon(&fleet, &pki, 2);
    // A fresh client: the old one's connection to host 2 died with the killed daemon.
    let c = client(&pki);
    let (took, lists) =
        wait_until(&c, &fleet, &[0, 1, 2], Duration::from_secs(8), everyone_alive(&fleet, 3)).await;
    let took = took.unwrap_or_else(|| panic!("restarted host-2 not seen alive again: {lists:#?}"));
    eprintln!("rejoin: restarted host-2 seen alive by all {took:?} after its restart");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_with_a_certificate_of_another_ca_never_joins() {
    let fleet = Fleet::new(3).expect("fleet");
    let pki = Pki::new();
    let other = Pki::new();
    let _good: Vec<_> = (0..2).map(|i| middlecon(&fleet, &pki, i)).collect();
    // Host 2 runs middlecon with a host certificate of another CA, seeded with host 0.
    let _intruder = middlecon(&fleet, &other, 2);
    let c = client(&pki);
    let (took, lists) = wait_until(&c, &fleet, &[0, 1], Duration::from_secs(5), |_, l| {
        state_of(l, "host-0") == Some(State::Alive) && state_of(l, "host-1") == Some(State::Alive)
    })
    .await;
    assert!(took.is_some(), "hosts 0 and 1 form a fleet: {lists:#?}");
    // For several seconds (many join attempts), nobody lists the intruder.
    let intruder_addr = peer_addr(&fleet, 2);
    let until = Instant::now() + Duration::from_secs(4);
    while Instant::now() < until {
        for i in 0..2 {
            let l = members(&c, &fleet, i).await.expect("host answers");
            assert!(
                l.iter().all(|m| m.name != "host-2" && m.addr != intruder_addr),
                "host-{i} lists the intruder: {l:#?}"
            );
            assert_eq!(l.len(), 2, "host-{i} lists exactly the fleet: {l:#?}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The intruder itself is alone: it knows only itself.
    let intruder_view = members(&client(&other), &fleet, 2).await.expect("the intruder answers its own CA");
    assert_eq!(intruder_view.len(), 1, "{intruder_view:#?}");
    assert_eq!(intruder_view[0].name, "host-2");
}
