//! middlecon on three real hosts (network namespaces), seeded with host 0: calls to a named
//! host and to `any`, a scatter-gather `Query`, `dcos query`, `dcos hosts --seed` and
//! `dcos ps --seed`; `no_responders` at once; deadlines, a runtime killed mid-call and a
//! caller that gives up; a flooded responder; access rules by role; a host restarted with a
//! new key. Runtimes are real processes (`test-runtime`) on a host's Unix socket.

use dcos_core::Role;
use dcos_proto::v1 as pb;
use dcos_proto::v1::messaging_client::MessagingClient;
use dcos_tests::mesh::{self, call};
use dcos_tests::netns::Fleet;
use dcos_tests::Pki;
use middlecon::peer::Outcome;
use middlecon::ping::Pong;
use std::time::{Duration, Instant};

fn text(out: &std::process::Output) -> (String, String) {
    (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_hosts_answer_by_name_any_and_query_and_the_cli_sees_them() {
    let fleet = Fleet::new(3).expect("fleet");
    let pki = Pki::new();
    let _k2i: Vec<_> = (0..3).map(|i| fleet.k2i(i, &fleet.host(i).issue(&pki), &[]).expect("k2i")).collect();
    let _mc: Vec<_> = (0..3)
        .map(|i| {
            let k2i = fleet.host(i).k2i_url();
            mesh::start(&fleet, &pki, i, &["--k2i", &k2i])
        })
        .collect();
    mesh::wait_formed(&fleet, &pki, 3).await;
    let _echo = mesh::runtime(&fleet, 2, &["demo.echo"]);
    let mut c = MessagingClient::new(mesh::channel(&fleet, &pki, 0, "admin", Role::Admin).await);

    // A named host answers with its own name, whichever host is asked.
    for host in ["host-0", "host-1", "host-2"] {
        let r = c.call(call("dcos.ping", host, 3_000, b"")).await.unwrap().into_inner();
        assert_eq!(r.outcome(), Outcome::Ok, "{r:?}");
        let pong: Pong = serde_json::from_slice(&r.payload).unwrap();
        assert_eq!((pong.name.as_str(), r.responder.as_str()), (host, host));
    }
    // `any`: only host 2's runtime serves demo.echo.
    let r = c.call(call("demo.echo", "", 3_000, b"whoever")).await.unwrap().into_inner();
    assert_eq!(r.outcome(), Outcome::Ok, "{r:?}");
    assert_eq!((r.responder.as_str(), r.payload.as_slice()), ("host-2", b"whoever".as_slice()));

    // Query: all three answer dcos.ping.
    let q = pb::QueryRequest {
        service: "dcos.ping".into(),
        deadline_unix_ms: mesh::in_ms(3_000),
        ..Default::default()
    };
    let mut stream = c.query(q).await.unwrap().into_inner();
    let mut names = Vec::new();
    while let Some(m) = stream.message().await.unwrap() {
        let r = m.reply.unwrap();
        assert_eq!(r.outcome(), Outcome::Ok, "{r:?}");
        names.push(r.responder);
    }
    names.sort();
    assert_eq!(names, ["host-0", "host-1", "host-2"]);

    // no_responders is answered at once: the median of 20 calls, after a warm-up.
    for _ in 0..5 {
        c.call(call("demo.nobody", "host-1", 3_000, b"")).await.unwrap();
    }
    let mut took: Vec<Duration> = Vec::new();
    for _ in 0..20 {
        let started = Instant::now();
        let r = c.call(call("demo.nobody", "host-1", 3_000, b"")).await.unwrap().into_inner();
        took.push(started.elapsed());
        assert_eq!(r.outcome(), Outcome::NoResponders, "{r:?}");
        assert!(r.message.contains("demo.nobody"), "{}", r.message);
    }
    took.sort();
    let median = took[took.len() / 2];
    eprintln!(
        "no_responders from host-1 through host-0's API: median {median:?}, max {:?}",
        took[took.len() - 1]
    );
    assert!(median < Duration::from_millis(10), "no_responders median {median:?}");

    // The CLI: dcos query through host 0, as a table and as JSON.
    let api = mesh::api_addr(&fleet, 0).to_string();
    let out = mesh::dcos_as(&pki, "admin", &["query", "dcos.ping", "--api", &api]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(
        lines[0].starts_with("HOST") && lines[0].contains("OUTCOME") && lines[0].contains("PAYLOAD"),
        "{stdout}"
    );
    for h in ["host-0", "host-1", "host-2"] {
        assert!(lines.iter().any(|l| l.starts_with(h) && l.contains(" ok ")), "{h} in {stdout}");
    }
    let out = mesh::dcos_as(
        &pki,
        "admin",
        &["query", "dcos.ping", "--api", &api, "-o", "json", "--max-replies", "2"],
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON document");
    assert_eq!(doc["replies"].as_array().unwrap().len(), 2, "--max-replies 2: {doc}");
    assert_eq!(doc["hosts"].as_array().unwrap().len(), 2);
    assert_eq!(doc["replies"][0]["outcome"], "ok");
    let out = mesh::dcos_as(&pki, "admin", &["query", "demo.nobody", "--api", &api]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).1.contains("no_responders"), "{}", text(&out).1);

    // dcos hosts --seed: membership's view of the three.
    let out =
        mesh::dcos_as(&pki, "admin", &["hosts", "--seed", &fleet.host(1).addr.to_string(), "-o", "json"]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let doc: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let members = doc["members"].as_array().unwrap();
    assert_eq!(members.len(), 3, "{doc}");
    for i in 0..3 {
        let name = format!("host-{i}");
        let m =
            members.iter().find(|m| m["name"] == name.as_str()).unwrap_or_else(|| panic!("{name}: {doc}"));
        assert_eq!(m["state"], "alive");
        assert_eq!(m["dc"], "dc-a");
        assert_eq!(m["address"], format!("{}:7441", fleet.host(i).addr));
        assert_eq!(m["k2i"], fleet.host(i).k2i_url());
        assert_eq!(m["api"], mesh::api_addr(&fleet, i).to_string());
        assert!(!m["version"].as_str().unwrap().is_empty());
    }
    assert_eq!(doc["hosts"][0]["host"], "host-1", "the seed asked");
    let out = mesh::dcos_as(&pki, "admin", &["hosts", "--seed", &fleet.host(0).addr.to_string()]);
    let (stdout, _) = text(&out);
    assert!(stdout.starts_with("NAME") && stdout.contains("VERSION"), "{stdout}");
    assert_eq!(stdout.lines().filter(|l| l.contains("alive")).count(), 3, "{stdout}");

    // dcos ps --seed: every member's k2i, found through membership.
    let out = mesh::dcos_as(&pki, "admin", &["ps", "--seed", &api, "-o", "json"]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let doc: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let mut hosts: Vec<&str> =
        doc["hosts"].as_array().unwrap().iter().map(|h| h["host"].as_str().unwrap()).collect();
    hosts.sort();
    assert_eq!(hosts, ["host-0", "host-1", "host-2"]);
    let procs = doc["processes"].as_array().unwrap();
    assert!(procs.iter().any(|p| p["host"] == "host-2" && p["cmd"] == "k2i"), "host-2's k2i is listed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_killed_and_abandoned_calls_end_promptly_and_the_runtime_is_told() {
    let fleet = Fleet::new(3).expect("fleet");
    let pki = Pki::new();
    let _mc: Vec<_> = (0..3).map(|i| mesh::start(&fleet, &pki, i, &[])).collect();
    mesh::wait_formed(&fleet, &pki, 3).await;
    let mut rt = mesh::runtime(&fleet, 2, &["demo.slow"]);
    let mut c = MessagingClient::new(mesh::channel(&fleet, &pki, 0, "caller", Role::Host).await);
    let r = c.call(call("dcos.ping", "host-2", 3_000, b"")).await.unwrap().into_inner();
    assert_eq!(r.outcome(), Outcome::Ok, "warm-up: {r:?}");

    // A responder slower than the deadline: deadline_exceeded at the deadline, and a Cancel.
    let started = Instant::now();
    let r = c.call(call("demo.slow", "host-2", 600, b"")).await.unwrap().into_inner();
    let took = started.elapsed();
    assert_eq!(r.outcome(), Outcome::DeadlineExceeded, "{r:?}");
    assert!(took >= Duration::from_millis(550) && took < Duration::from_millis(1_200), "took {took:?}");
    let req =
        mesh::next_line(&mut rt, "request", Duration::from_secs(2)).expect("the runtime got the request");
    let id = req.split_whitespace().nth(1).unwrap().to_string();
    assert_eq!(mesh::next_line(&mut rt, "cancel", Duration::from_secs(2)), Some(format!("cancel {id}")));

    // The caller gives up long before its deadline: the runtime is told at once.
    let mut c2 = c.clone();
    let gave_up =
        tokio::time::timeout(Duration::from_millis(300), c2.call(call("demo.slow", "host-2", 10_000, b"")));
    assert!(gave_up.await.is_err(), "still waiting after 300 ms");
    let dropped = Instant::now();
    let req =
        mesh::next_line(&mut rt, "request", Duration::from_secs(2)).expect("the runtime got the request");
    let id = req.split_whitespace().nth(1).unwrap().to_string();
    assert_eq!(
        mesh::next_line(&mut rt, "cancel", Duration::from_secs(2)),
        Some(format!("cancel {id}")),
        "the responder sees the caller go away"
    );
    eprintln!("cancel seen by the runtime {:?} after the caller dropped its call", dropped.elapsed());

    // The runtime dies mid-call: the caller hears a distinct outcome at once, not at its
    // 10 s deadline.
    let mut c3 = c.clone();
    let pending = tokio::spawn(async move {
        let r = c3.call(call("demo.slow", "host-2", 10_000, b"")).await.unwrap().into_inner();
        (r, Instant::now())
    });
    mesh::next_line(&mut rt, "request", Duration::from_secs(2)).expect("the runtime got the request");
    let killed = Instant::now();
    fleet.kill(&mut rt);
    let (r, answered) =
        tokio::time::timeout(Duration::from_secs(3), pending).await.expect("no hang").unwrap();
    let after = answered.saturating_duration_since(killed);
    eprintln!("runtime killed mid-call: the caller got {:?} {after:?} after the kill", r.outcome());
    assert_eq!(r.outcome(), Outcome::Unreachable, "{r:?}");
    assert!(r.message.contains("demo.slow") && r.message.contains("ended"), "{}", r.message);
    assert!(after < Duration::from_secs(1), "took {after:?}");
    // With its runtime gone, nobody serves it.
    let r = c.call(call("demo.slow", "host-2", 2_000, b"")).await.unwrap().into_inner();
    assert_eq!(r.outcome(), Outcome::NoResponders, "{r:?}");
}

/// Sends `n` calls of demo.slow on host-1 at once over `channels`, each due in `ms`;
/// counts the outcomes.
async fn flood(
    channels: &[tonic::transport::Channel],
    n: usize,
    ms: u64,
) -> std::collections::BTreeMap<String, usize> {
    let mut calls = tokio::task::JoinSet::new();
    for k in 0..n {
        let mut c = MessagingClient::new(channels[k % channels.len()].clone());
        calls.spawn(async move {
            match c.call(call("demo.slow", "host-1", ms, &[7u8; 1024])).await {
                Ok(r) => format!("{:?}", r.into_inner().outcome()),
                Err(s) => format!("grpc {:?}", s.code()),
            }
        });
    }
    let mut counts = std::collections::BTreeMap::new();
    while let Some(r) = calls.join_next().await {
        *counts.entry(r.unwrap()).or_insert(0) += 1;
    }
    counts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flooded_responder_says_resource_exhausted_and_memory_stays_bounded() {
    let fleet = Fleet::new(3).expect("fleet");
    let pki = Pki::new();
    let mut mc: Vec<_> = (0..3).map(|i| mesh::start(&fleet, &pki, i, &[])).collect();
    mesh::wait_formed(&fleet, &pki, 3).await;
    let _rt = mesh::runtime(&fleet, 1, &["demo.slow"]);
    let pid = mc[1].init_pid().expect("host-1's middlecon pid");
    let mut channels = Vec::new();
    for _ in 0..10 {
        channels.push(mesh::channel(&fleet, &pki, 0, "admin", Role::Admin).await);
    }
    let before = mesh::rss_bytes(pid).unwrap();
    let n = 1_500;
    let first = flood(&channels, n, 4_000).await;
    let after_first = mesh::rss_bytes(pid).unwrap();
    let second = flood(&channels, n, 4_000).await;
    let after_second = mesh::rss_bytes(pid).unwrap();
    let mb = |b: u64| b as f64 / 1e6;
    eprintln!(
        "flood of {n} calls, twice: {first:?} / {second:?}; host-1 middlecon RSS {:.1} MB before, {:.1} MB after one, {:.1} MB after two",
        mb(before), mb(after_first), mb(after_second)
    );
    for counts in [&first, &second] {
        let exhausted = counts.get("ResourceExhausted").copied().unwrap_or(0);
        let timed_out = counts.get("DeadlineExceeded").copied().unwrap_or(0);
        assert!(exhausted >= n - middlecon::routing::MAX_IN_FLIGHT, "{counts:?}");
        assert_eq!(exhausted + timed_out, n, "every call ends one of the two ways: {counts:?}");
    }
    assert!(after_second < 200_000_000, "RSS {:.1} MB", mb(after_second));
    assert!(
        after_second < after_first + 30_000_000,
        "RSS grows with each flood: {:.1} -> {:.1} MB",
        mb(after_first),
        mb(after_second)
    );
    // Still serving afterwards.
    let mut c = MessagingClient::new(channels[0].clone());
    let r = c.call(call("dcos.ping", "host-1", 2_000, b"")).await.unwrap().into_inner();
    assert_eq!(r.outcome(), Outcome::Ok, "{r:?}");
    assert!(mc[1].is_running());
}

const RULES: &str =
    "[access]\n\"admin.*\" = [\"admin\"]\n\"demo.echo\" = [\"admin\", \"host\", \"viewer\"]\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_rules_decide_by_role_at_the_entry_host_and_at_the_responder() {
    let fleet = Fleet::new(3).expect("fleet");
    let pki = Pki::new();
    let config = pki.dir.path().join("access.toml");
    std::fs::write(&config, RULES).unwrap();
    let with_rules = ["--config", config.to_str().unwrap()];
    // Hosts 1 and 2 have the rules; host 0 has none (the defaults).
    let _mc: Vec<_> =
        (0..3).map(|i| mesh::start(&fleet, &pki, i, if i == 0 { &[] } else { &with_rules })).collect();
    mesh::wait_formed(&fleet, &pki, 3).await;
    let _rt = mesh::runtime(&fleet, 1, &["demo.echo", "admin.status"]);

    let mut viewer_at_1 = MessagingClient::new(mesh::channel(&fleet, &pki, 1, "dash", Role::Viewer).await);
    let r = viewer_at_1.call(call("demo.echo", "host-1", 3_000, b"hi")).await.unwrap().into_inner();
    assert_eq!(
        (r.outcome(), r.payload.as_slice()),
        (Outcome::Ok, b"hi".as_slice()),
        "a rule lets viewers call demo.echo: {r:?}"
    );
    let r = viewer_at_1.call(call("admin.status", "host-1", 3_000, b"")).await.unwrap().into_inner();
    assert_eq!(r.outcome(), Outcome::PermissionDenied, "{r:?}");
    assert!(
        r.message.contains("\"admin.*\" = [admin]") && r.message.contains("viewer"),
        "names the rule: {}",
        r.message
    );
    // The viewer through host 2 to host 1: refused at the entry, host 1 never asked.
    let mut viewer_at_2 = MessagingClient::new(mesh::channel(&fleet, &pki, 2, "dash", Role::Viewer).await);
    let r = viewer_at_2.call(call("admin.status", "host-1", 3_000, b"")).await.unwrap().into_inner();
    assert_eq!((r.outcome(), r.responder.as_str()), (Outcome::PermissionDenied, "host-2"), "{r:?}");
    // Host 0 has no rules: its default keeps viewers out of everything.
    let mut viewer_at_0 = MessagingClient::new(mesh::channel(&fleet, &pki, 0, "dash", Role::Viewer).await);
    let r = viewer_at_0.call(call("demo.echo", "host-1", 3_000, b"")).await.unwrap().into_inner();
    assert_eq!(r.outcome(), Outcome::PermissionDenied, "{r:?}");
    assert!(r.message.contains("no access rule"), "{}", r.message);

    // A host certificate enters at host 0 (no rules: allowed there); host 1 checks the
    // relayed role against its own rule and refuses.
    let mut host_at_0 = MessagingClient::new(mesh::channel(&fleet, &pki, 0, "ops-box", Role::Host).await);
    let r = host_at_0.call(call("admin.status", "host-1", 3_000, b"")).await.unwrap().into_inner();
    assert_eq!((r.outcome(), r.responder.as_str()), (Outcome::PermissionDenied, "host-1"), "{r:?}");
    assert!(r.message.contains("role host") && r.message.contains("admin.*"), "{}", r.message);
    // A forged relay header from the client does not help: the entry host replaces it.
    let mut forged = call("admin.status", "host-1", 3_000, b"");
    forged.headers.insert(middlecon::access::ROLE_HEADER.into(), "admin".into());
    let r = host_at_0.call(forged).await.unwrap().into_inner();
    assert_eq!(r.outcome(), Outcome::PermissionDenied, "{r:?}");
    // The admin reaches it through host 0.
    let mut admin_at_0 = MessagingClient::new(mesh::channel(&fleet, &pki, 0, "admin", Role::Admin).await);
    let r = admin_at_0.call(call("admin.status", "host-1", 3_000, b"up")).await.unwrap().into_inner();
    assert_eq!((r.outcome(), r.payload.as_slice()), (Outcome::Ok, b"up".as_slice()), "{r:?}");

    // dcos call as the viewer: exit 1, the outcome and rule on stderr; a Query too.
    let api = mesh::api_addr(&fleet, 1).to_string();
    let out = mesh::dcos_as(&pki, "dash", &["call", "host-1", "admin.status", "--api", &api]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out).1.contains("permission_denied") && text(&out).1.contains("admin.*"),
        "{}",
        text(&out).1
    );
    let out = mesh::dcos_as(&pki, "dash", &["query", "admin.status", "--api", &api, "-o", "json"]);
    assert_eq!(out.status.code(), Some(1));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["replies"][0]["outcome"], "permission_denied", "{doc}");

    // A bad role in the rules stops middlecon before it binds: exit 2 naming `access`.
    let bad = pki.dir.path().join("bad.toml");
    std::fs::write(&bad, "[access]\n\"admin.*\" = [\"root\"]\n").unwrap();
    let tls = pki.issue("h9", Role::Host);
    let out = std::process::Command::new(dcos_tests::bin("middlecon"))
        .args(["--config", bad.to_str().unwrap(), "--cert", tls.cert.to_str().unwrap()])
        .args(["--key", tls.key.to_str().unwrap(), "--ca", tls.ca.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).1.contains("`access`") && text(&out).1.contains("root"), "{}", text(&out).1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_restarted_with_a_new_key_is_reached_again_at_once_not_after_the_idle_timeout() {
    let fleet = Fleet::new(2).expect("fleet");
    let pki = Pki::new();
    let _first = mesh::start(&fleet, &pki, 0, &[]);
    let mut second = mesh::start(&fleet, &pki, 1, &[]);
    mesh::wait_formed(&fleet, &pki, 2).await;
    let mut c = MessagingClient::new(mesh::channel(&fleet, &pki, 0, "admin", Role::Admin).await);
    let r = c.call(call("dcos.ping", "host-1", 3_000, b"")).await.unwrap().into_inner();
    assert_eq!(r.outcome(), Outcome::Ok, "host-0 reaches host-1: {r:?}");
    let key = pki.files("host-1").key;
    let old_key = std::fs::read(&key).expect("host-1's key");
    // SIGKILL: host-0 still holds a connection to the process that is gone. Host-1 comes
    // back with a certificate of a new key (each start issues one), so it cannot reset that
    // connection; it dials its seed, host-0, as it starts.
    fleet.kill(&mut second);
    let _second = mesh::start(&fleet, &pki, 1, &[]);
    assert_ne!(std::fs::read(&key).expect("host-1's key"), old_key, "the restarted host has a new key");
    let restarted = Instant::now();
    let mut reached = None;
    let mut last = None;
    while restarted.elapsed() < Duration::from_secs(12) {
        let r = c.call(call("dcos.ping", "host-1", 1_000, b"")).await.unwrap().into_inner();
        if r.outcome() == Outcome::Ok {
            reached = Some(restarted.elapsed());
            break;
        }
        last = Some(r);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let took = reached.unwrap_or_else(|| {
        panic!("host-0 did not reach the restarted host-1 within 12 s (idle timeout 15 s): {last:?}")
    });
    eprintln!("host-0 reached host-1 {took:?} after its restart with a new key");
    assert!(took < Duration::from_secs(3), "took {took:?}");
}
