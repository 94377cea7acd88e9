//! middlecon's peer transport across a fleet of real hosts (network namespaces on a bridge),
//! each running the real `middlecon` binary with a `host` certificate for its address. The
//! test process calls them over QUIC with `middlecon::peer::Client`, as another host would.

use dcos_core::tls::Identity;
use dcos_core::Role;
use dcos_tests::netns::{Fleet, HostProcess};
use dcos_tests::Pki;
use middlecon::peer::{CallError, Client, Outcome, PeerReply};
use middlecon::ping::Pong;
use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, Instant, SystemTime};

const PORT: u16 = 7441;

/// Starts middlecon on host `i`, listening on `<addr>:7441` as `host-<i>`.
fn middlecon(fleet: &Fleet, pki: &Pki, i: usize) -> HostProcess {
    let tls = fleet.host(i).issue(pki);
    let p = fleet.middlecon(i, &tls, &["--dc", "dc-a"]).expect("middlecon starts on its host");
    assert_eq!(
        p.url(),
        format!("quic://{}:{PORT}", fleet.host(i).addr),
        "middlecon announces its peer address"
    );
    p
}

fn peer_addr(fleet: &Fleet, i: usize) -> SocketAddr {
    SocketAddr::new(fleet.host(i).addr.into(), PORT)
}

/// A peer client presenting `name`'s certificate (issued with `role` by `pki`).
fn client(pki: &Pki, name: &str, role: Role) -> Client {
    let files = pki.issue(name, role);
    Client::new(&Identity::load(&files).expect("identity")).expect("client endpoint")
}

fn in_secs(s: u64) -> SystemTime {
    SystemTime::now() + Duration::from_secs(s)
}

fn pong(reply: &PeerReply) -> Pong {
    assert_eq!(reply.outcome(), Outcome::Ok, "dcos.ping answers ok: {reply:?}");
    serde_json::from_slice(&reply.payload).expect("dcos.ping answers JSON")
}

fn now_ms() -> i64 {
    dcos_core::unix_ms(SystemTime::now())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ping_answers_with_each_hosts_own_name_and_clock() {
    let fleet = Fleet::new(3).expect("fleet");
    let pki = Pki::new();
    let _daemons: Vec<_> = (0..3).map(|i| middlecon(&fleet, &pki, i)).collect();
    let c = client(&pki, "tester", Role::Host);
    for i in 0..3 {
        let before = now_ms();
        let reply = c.call(peer_addr(&fleet, i), "dcos.ping", Vec::new(), in_secs(5)).await.expect("ping");
        let p = pong(&reply);
        assert_eq!(p.name, fleet.host(i).name, "each host answers with its own name");
        assert_eq!(p.dc, "dc-a");
        assert!((p.unix_ms - before).abs() < 3_000, "host clock {} vs ours {before}", p.unix_ms);
        // The connection is reused: a second call answers too.
        let again = c.call(peer_addr(&fleet, i), "dcos.ping", Vec::new(), in_secs(5)).await.expect("ping");
        assert_eq!(pong(&again).name, fleet.host(i).name);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_of_another_ca_and_non_host_roles_are_refused() {
    let fleet = Fleet::new(1).expect("fleet");
    let pki = Pki::new();
    let _d = middlecon(&fleet, &pki, 0);
    let addr = peer_addr(&fleet, 0);

    // Another CA's host certificate fails the TLS handshake, reported as such.
    let other = Pki::new();
    let err = client(&other, "intruder", Role::Host)
        .call(addr, "dcos.ping", Vec::new(), in_secs(5))
        .await
        .expect_err("a foreign CA's certificate is refused");
    assert!(matches!(err, CallError::Handshake { .. }), "handshake error expected, got {err:?}");
    assert!(err.to_string().contains("TLS handshake"), "{err}");

    // Fleet certificates with the admin or viewer role pass TLS but are refused at the peer port.
    for (name, role) in [("ops", Role::Admin), ("dash", Role::Viewer)] {
        let err = client(&pki, name, role)
            .call(addr, "dcos.ping", Vec::new(), in_secs(5))
            .await
            .expect_err("only host certificates may call peers");
        match &err {
            CallError::PermissionDenied { reason, .. } => {
                assert!(reason.contains(&format!("role {role}")), "{reason}")
            }
            other => panic!("{role}: permission_denied expected, got {other:?}"),
        }
        assert_eq!(err.outcome(), Outcome::PermissionDenied);
    }

    // A host certificate of the fleet still gets in.
    let ok = client(&pki, "tester", Role::Host).call(addr, "dcos.ping", Vec::new(), in_secs(5)).await;
    assert_eq!(pong(&ok.expect("ping")).name, "host-0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_services_and_past_deadlines_are_answered_at_once() {
    let fleet = Fleet::new(1).expect("fleet");
    let pki = Pki::new();
    let _d = middlecon(&fleet, &pki, 0);
    let addr = peer_addr(&fleet, 0);
    let c = client(&pki, "tester", Role::Host);
    pong(&c.call(addr, "dcos.ping", Vec::new(), in_secs(5)).await.expect("ping"));

    // The connection exists now: an unknown service answers no_responders promptly.
    let started = Instant::now();
    let reply = c.call(addr, "no.such.service", b"hi".to_vec(), in_secs(5)).await.expect("a reply");
    let took = started.elapsed();
    assert_eq!(reply.outcome(), Outcome::NoResponders, "{reply:?}");
    assert!(reply.message.contains("no.such.service"), "{}", reply.message);
    // At once, not at the 5 s deadline (its latency is benchmarked, not asserted here).
    assert!(took < Duration::from_secs(1), "no_responders took {took:?}");

    // A deadline already past: deadline_exceeded from the responder, without a pong.
    let past = SystemTime::now() - Duration::from_secs(1);
    let reply = c.call(addr, "dcos.ping", Vec::new(), past).await.expect("the responder's verdict");
    assert_eq!(reply.outcome(), Outcome::DeadlineExceeded, "{reply:?}");
    assert!(reply.payload.is_empty(), "the service did not run: {reply:?}");
    assert!(reply.message.contains("deadline"), "{}", reply.message);

    // A payload over 4 MiB is refused before anything is sent.
    let big = vec![0u8; middlecon::peer::MAX_PAYLOAD + 1];
    let err = c.call(addr, "dcos.ping", big, in_secs(5)).await.expect_err("too large");
    assert!(matches!(err, CallError::TooLarge { .. }), "{err:?}");
    assert!(err.to_string().contains("4194304-byte limit"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_black_holed_host_fails_within_the_deadline() {
    let fleet = Fleet::new(2).expect("fleet");
    let pki = Pki::new();
    let _daemons: Vec<_> = (0..2).map(|i| middlecon(&fleet, &pki, i)).collect();
    let c = client(&pki, "tester", Role::Host);
    // Host 0 is connected before it vanishes; host 1 never was.
    pong(&c.call(peer_addr(&fleet, 0), "dcos.ping", Vec::new(), in_secs(5)).await.expect("ping"));
    fleet.blackhole(0).expect("blackhole 0");
    fleet.blackhole(1).expect("blackhole 1");
    for i in 0..2 {
        let budget = Duration::from_secs(1);
        let started = Instant::now();
        let err = c
            .call(peer_addr(&fleet, i), "dcos.ping", Vec::new(), SystemTime::now() + budget)
            .await
            .expect_err("a black-holed host does not answer");
        let took = started.elapsed();
        assert!(
            matches!(err, CallError::Unreachable { .. } | CallError::DeadlineExceeded { .. }),
            "host {i}: unreachable or deadline_exceeded expected, got {err:?}"
        );
        if i == 1 {
            assert!(matches!(err, CallError::Unreachable { .. }), "never connected: {err:?}");
        }
        assert!(took >= budget, "host {i}: gave up early ({took:?})");
        assert!(took < budget + Duration::from_millis(500), "host {i}: took {took:?}");
    }
    // Healed, the host answers again (the dead connection is replaced).
    fleet.heal(1).expect("heal");
    let reply = c.call(peer_addr(&fleet, 1), "dcos.ping", Vec::new(), in_secs(5)).await.expect("ping");
    assert_eq!(pong(&reply).name, "host-1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_restarted_after_a_kill_answers_the_next_call_at_once() {
    let fleet = Fleet::new(1).expect("fleet");
    let pki = Pki::new();
    let tls = fleet.host(0).issue(&pki);
    let mut first = fleet.middlecon(0, &tls, &["--dc", "dc-a"]).expect("middlecon starts");
    let c = client(&pki, "tester", Role::Host);
    let addr = peer_addr(&fleet, 0);
    pong(&c.call(addr, "dcos.ping", Vec::new(), in_secs(5)).await.expect("ping"));
    // SIGKILL: no close reaches us; our connection now points at a process that is gone.
    fleet.kill(&mut first);
    let _second = fleet.middlecon(0, &tls, &["--dc", "dc-a"]).expect("middlecon starts again");
    // The new process resets the old connection with the key both derive from the host
    // key, at the first packet of it that arrives: the call fails at once, saying so,
    // instead of waiting for its deadline and the connection for its 15 s idle timeout (as
    // with a random key). It is not sent again by itself (the old process might have run
    // it), but the next call is answered. When a packet of the old connection (a late
    // acknowledgement, a probe) met the new process before the call, the reset came first
    // and the call goes out on a new connection: answered at once too.
    let started = Instant::now();
    match c.call(addr, "dcos.ping", Vec::new(), in_secs(3)).await {
        Err(err) => {
            assert!(matches!(err, CallError::ConnectionLost { .. }), "{err:?}");
            assert_eq!(err.outcome(), Outcome::Unreachable);
            assert!(err.to_string().contains("restarted"), "{err}");
        }
        Ok(reply) => assert_eq!(pong(&reply).name, "host-0", "answered by the new process"),
    }
    assert!(started.elapsed() < Duration::from_secs(1), "took {:?}", started.elapsed());
    let reply = c.call(addr, "dcos.ping", Vec::new(), in_secs(3)).await.expect("the restarted host answers");
    assert_eq!(pong(&reply).name, "host-0");
    assert!(started.elapsed() < Duration::from_secs(2), "took {:?}", started.elapsed());
}

#[test]
fn bad_settings_exit_2_naming_the_setting() {
    let pki = Pki::new();
    let host = pki.issue("h1", Role::Host);
    let admin = pki.files("admin");
    let s = |p: &std::path::Path| p.to_str().unwrap().to_string();
    let tls = |f: &dcos_core::tls::TlsFiles| {
        vec!["--cert".into(), s(&f.cert), "--key".into(), s(&f.key), "--ca".into(), s(&f.ca)]
    };
    let toml = pki.dir.path().join("bad.toml");
    std::fs::write(&toml, "lisen = \"0.0.0.0:1\"\n").unwrap();
    let cases: Vec<(Vec<String>, &str)> = vec![
        ([vec!["--listen".into(), "nope".into()], tls(&host)].concat(), "`listen`"),
        ([vec!["--listen".into(), "127.0.0.1:0".into()], tls(&admin)].concat(), "`cert`"),
        ([vec!["--seed".into(), "10.0.0.1:x".into()], tls(&host)].concat(), "`seed`"),
        ([vec!["--label".into(), "novalue".into()], tls(&host)].concat(), "`label`"),
        ([vec!["--config".into(), s(&toml)], tls(&host)].concat(), "`config`"),
        (vec!["--listen".into(), "127.0.0.1:0".into()], "`cert`"),
    ];
    for (args, setting) in cases {
        let out = Command::new(dcos_tests::bin("middlecon")).args(&args).output().expect("middlecon runs");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(setting), "{args:?} should name {setting}: {stderr}");
        assert!(out.stdout.is_empty(), "nothing announced: {}", String::from_utf8_lossy(&out.stdout));
    }
    // The admin certificate is refused for what it is.
    let out = Command::new(dcos_tests::bin("middlecon")).args(tls(&admin)).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("needs a host certificate"));
}
