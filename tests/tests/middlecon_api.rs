//! middlecon's gRPC API across real hosts (network namespaces on a bridge), each running
//! the real `middlecon` binary. A runtime on host 1 serves `demo.echo` and `demo.slow`
//! through host 1's local Unix socket (`Messaging.Serve`); callers use host 0's TCP API
//! with mTLS, as a remote client would.

use dcos_core::tls::Identity;
use dcos_core::Role;
use dcos_proto::v1 as pb;
use dcos_proto::v1::messaging_client::MessagingClient;
use dcos_tests::netns::{Fleet, HostProcess};
use dcos_tests::Pki;
use middlecon::peer::Outcome;
use middlecon::ping::Pong;
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::mpsc;
use tonic::transport::Channel;

use dcos_tests::mesh::{api_addr, socket};

/// Starts middlecon on every host of `fleet`, each knowing the others' peer addresses
/// from `--peer` (or, with `static_peers` false, only from membership seeded by host 0).
fn middlecons(fleet: &Fleet, pki: &Pki, static_peers: bool) -> Vec<HostProcess> {
    let n = fleet.hosts().len();
    (0..n)
        .map(|i| {
            let peers: Vec<String> = (0..n)
                .filter(|j| *j != i && static_peers)
                .flat_map(|j| {
                    ["--peer".into(), format!("{}={}:7441", fleet.host(j).name, fleet.host(j).addr)]
                })
                .collect();
            let peers: Vec<&str> = peers.iter().map(String::as_str).collect();
            dcos_tests::mesh::start_with(fleet, pki, i, !static_peers, &peers)
        })
        .collect()
}

/// A Messaging client on host `i`'s TCP API presenting `name`'s certificate with `role`.
async fn remote(fleet: &Fleet, pki: &Pki, i: usize, name: &str, role: Role) -> MessagingClient<Channel> {
    MessagingClient::new(dcos_tests::mesh::channel(fleet, pki, i, name, role).await)
}

fn in_ms(ms: u64) -> i64 {
    dcos_core::unix_ms(SystemTime::now() + Duration::from_millis(ms))
}

fn to_host(service: &str, host: &str, deadline_unix_ms: i64, payload: &[u8]) -> pb::CallRequest {
    pb::CallRequest {
        service: service.into(),
        target: Some(pb::Target { to: Some(pb::target::To::Host(host.into())) }),
        deadline_unix_ms,
        headers: Default::default(),
        payload: payload.to_vec(),
    }
}

/// What the test runtime saw.
#[derive(Debug)]
enum Seen {
    Request(u64, String),
    Cancel(u64),
}

/// A runtime on host `i`'s Unix socket serving `demo.echo` (answers with the payload) and
/// `demo.slow` (never answers). Returns what it sees.
async fn runtime(fleet: &Fleet, i: usize) -> (mpsc::UnboundedReceiver<Seen>, mpsc::Sender<pb::ServeMessage>) {
    let channel = middlecon_client::connect_unix(&socket(fleet, i)).await.expect("the local socket answers");
    let mut client = MessagingClient::new(channel);
    let (out_tx, out_rx) = mpsc::channel::<pb::ServeMessage>(16);
    out_tx
        .send(pb::ServeMessage {
            msg: Some(pb::serve_message::Msg::Register(pb::Register {
                services: vec!["demo.echo".into(), "demo.slow".into()],
            })),
        })
        .await
        .unwrap();
    let mut deliveries = client
        .serve(tokio_stream::wrappers::ReceiverStream::new(out_rx))
        .await
        .expect("Serve is accepted on the local socket")
        .into_inner();
    let first = deliveries.message().await.expect("a delivery").expect("stream open");
    assert!(
        matches!(&first.msg, Some(pb::delivery::Msg::Registered(r)) if r.services.len() == 2),
        "registration acknowledged: {first:?}"
    );
    let (seen_tx, seen_rx) = mpsc::unbounded_channel();
    let answers = out_tx.clone();
    tokio::spawn(async move {
        while let Ok(Some(d)) = deliveries.message().await {
            match d.msg {
                Some(pb::delivery::Msg::Request(r)) => {
                    let _ = seen_tx.send(Seen::Request(r.id, r.service.clone()));
                    if r.service == "demo.echo" {
                        let msg = pb::ServeMessage::ok(r.id, r.payload);
                        let _ = answers.send(msg).await;
                    }
                }
                Some(pb::delivery::Msg::Cancel(c)) => {
                    let _ = seen_tx.send(Seen::Cancel(c.id));
                }
                _ => {}
            }
        }
    });
    (seen_rx, out_tx)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runtime_on_host_1_answers_calls_made_through_host_0() {
    let fleet = Fleet::new(2).expect("fleet");
    let pki = Pki::new();
    let _d = middlecons(&fleet, &pki, true);
    let (_seen, _keep) = runtime(&fleet, 1).await;
    let mut c = remote(&fleet, &pki, 0, "admin", Role::Admin).await;

    // demo.echo on host 1, called through host 0's API.
    let reply =
        c.call(to_host("demo.echo", "host-1", in_ms(5_000), b"hello")).await.expect("Call").into_inner();
    assert_eq!(reply.outcome(), Outcome::Ok, "{reply:?}");
    assert_eq!(reply.payload, b"hello", "the runtime's echo comes back");
    assert_eq!(reply.responder, "host-1");

    // dcos.ping on a named host, and on the host that was asked.
    for host in ["host-1", "host-0"] {
        let reply = c.call(to_host("dcos.ping", host, in_ms(5_000), b"")).await.expect("Call").into_inner();
        assert_eq!(reply.outcome(), Outcome::Ok, "{reply:?}");
        let pong: Pong = serde_json::from_slice(&reply.payload).expect("JSON pong");
        assert_eq!(pong.name, host, "the named host answers");
        assert_eq!(pong.dc, "dc-a");
    }

    // The same through `dcos call`: the payload on stdout, the outcome named on stderr.
    let admin = pki.files("admin");
    let api = api_addr(&fleet, 0).to_string();
    let dcos = |args: &[&str]| {
        let mut all = vec![
            "--cert",
            admin.cert.to_str().unwrap(),
            "--key",
            admin.key.to_str().unwrap(),
            "--ca",
            admin.ca.to_str().unwrap(),
            "--timeout",
            "2s",
            "call",
            "--api",
            &api,
        ];
        all.extend_from_slice(args);
        std::process::Command::new(dcos_tests::bin("dcos")).args(&all).output().expect("dcos runs")
    };
    let out = dcos(&["host-1", "demo.echo", "hi there"]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hi there\n");
    let out = dcos(&["host-1", "dcos.ping"]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let pong: Pong = serde_json::from_slice(&out.stdout).expect("JSON pong on stdout");
    assert_eq!(pong.name, "host-1");
    let out = dcos(&["host-1", "demo.nobody"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no_responders"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stdout.is_empty());

    // Without an API address `dcos call` is a usage error.
    let out = std::process::Command::new(dcos_tests::bin("dcos"))
        .args(["--cert", admin.cert.to_str().unwrap(), "--key", admin.key.to_str().unwrap()])
        .args(["--ca", admin.ca.to_str().unwrap(), "call", "host-1", "dcos.ping"])
        .env_remove("DCOS_API")
        .env_remove("DCOS_INVENTORY")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--api"));

    // The local socket is for the host's own runtimes: owner and group only.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(socket(&fleet, 1)).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o660, "socket mode {mode:o}");

    // A host nobody knows is unreachable, said plainly.
    let reply = c.call(to_host("dcos.ping", "host-9", in_ms(5_000), b"")).await.expect("Call").into_inner();
    assert_eq!(reply.outcome(), Outcome::Unreachable, "{reply:?}");
    assert!(reply.message.contains("host-9"), "{}", reply.message);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_responders_is_fast_and_a_slow_responder_is_cancelled_at_the_deadline() {
    let fleet = Fleet::new(2).expect("fleet");
    let pki = Pki::new();
    let _d = middlecons(&fleet, &pki, true);
    let (mut seen, _keep) = runtime(&fleet, 1).await;
    let mut c = remote(&fleet, &pki, 0, "caller", Role::Host).await;
    // Warm the path (API connection, QUIC connection host 0 -> host 1).
    let reply = c.call(to_host("dcos.ping", "host-1", in_ms(5_000), b"")).await.unwrap().into_inner();
    assert_eq!(reply.outcome(), Outcome::Ok, "{reply:?}");

    let started = Instant::now();
    let reply = c.call(to_host("demo.nobody", "host-1", in_ms(5_000), b"")).await.unwrap().into_inner();
    let took = started.elapsed();
    assert_eq!(reply.outcome(), Outcome::NoResponders, "{reply:?}");
    assert!(reply.message.contains("demo.nobody"), "{}", reply.message);
    assert!(took < Duration::from_secs(1), "no_responders at once, not at the deadline: {took:?}");

    let budget = Duration::from_millis(700);
    let started = Instant::now();
    let reply = c
        .call(to_host("demo.slow", "host-1", in_ms(budget.as_millis() as u64), b"wait"))
        .await
        .unwrap()
        .into_inner();
    let took = started.elapsed();
    assert_eq!(reply.outcome(), Outcome::DeadlineExceeded, "{reply:?}");
    assert!(took >= budget - Duration::from_millis(50), "gave up early: {took:?}");
    assert!(took < budget + Duration::from_millis(600), "took {took:?}");

    // The runtime got the request, then a Cancel for it.
    slow_request_then_cancel(&mut seen).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_waiting_on_a_connection_the_peer_dialled_ends_soon_after_the_peer_restarts() {
    let fleet = Fleet::new(2).expect("fleet");
    let pki = Pki::new();
    // Static peer tables, no membership: no probes cross the connection. Host 1 calls host
    // 0 first, so the one connection between them is the one host 1 dialled, and host 0
    // calls host 1 on it.
    let tls = fleet.host(1).issue(&pki);
    let table = |j: usize| format!("{}={}:7441", fleet.host(j).name, fleet.host(j).addr);
    let (peer_0, peer_1) = (table(0), table(1));
    let start_1 =
        || fleet.middlecon(1, &tls, &["--dc", "dc-a", "--peer", &peer_0]).expect("middlecon starts");
    let _host_0 = dcos_tests::mesh::start_with(&fleet, &pki, 0, false, &["--peer", &peer_1]);
    let mut host_1 = start_1();
    let mut from_1 = remote(&fleet, &pki, 1, "app", Role::Host).await;
    let reply = from_1.call(to_host("dcos.ping", "host-0", in_ms(5_000), b"")).await.unwrap().into_inner();
    assert_eq!(reply.outcome(), Outcome::Ok, "{reply:?}");
    let (mut seen, _answers) = runtime(&fleet, 1).await;
    let mut c = remote(&fleet, &pki, 0, "app", Role::Host).await;
    let call =
        tokio::spawn(async move { c.call(to_host("demo.slow", "host-1", in_ms(30_000), b"wait")).await });
    match tokio::time::timeout(Duration::from_secs(5), seen.recv()).await {
        Ok(Some(Seen::Request(_, service))) if service == "demo.slow" => {}
        other => panic!("the runtime should have seen the demo.slow request: {other:?}"),
    }
    // Host 1's middlecon is killed (no close reaches host 0) and started again with the
    // same key. Nothing is in flight on host 0's side of the connection: only its own
    // keep-alive can meet the new process and its reset.
    fleet.kill(&mut host_1);
    let _host_1 = start_1();
    let restarted = Instant::now();
    let reply = tokio::time::timeout(Duration::from_secs(12), call)
        .await
        .expect("the call ends before the connection's 15 s idle timeout and its 30 s deadline")
        .unwrap()
        .expect("Call answers")
        .into_inner();
    assert_eq!(reply.outcome(), Outcome::Unreachable, "{reply:?}");
    assert!(restarted.elapsed() < Duration::from_secs(8), "took {:?}", restarted.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_certificate_cannot_call() {
    let fleet = Fleet::new(1).expect("fleet");
    let pki = Pki::new();
    let _d = middlecons(&fleet, &pki, true);
    let mut c = remote(&fleet, &pki, 0, "dash", Role::Viewer).await;
    let reply = c.call(to_host("dcos.ping", "host-0", in_ms(5_000), b"")).await.expect("Call").into_inner();
    assert_eq!(reply.outcome(), Outcome::PermissionDenied, "{reply:?}");
    assert!(reply.message.contains("role viewer"), "{}", reply.message);
    assert!(reply.payload.is_empty());

    // The viewer may read membership.
    let channel =
        middlecon_client::connect(api_addr(&fleet, 0), &Identity::load(&pki.files("dash")).unwrap())
            .await
            .unwrap();
    let members = pb::membership_client::MembershipClient::new(channel)
        .members(pb::MembersRequest {})
        .await
        .expect("viewers may list members")
        .into_inner();
    assert_eq!(members.host, "host-0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_names_resolve_through_membership() {
    let fleet = Fleet::new(2).expect("fleet");
    let pki = Pki::new();
    let _d = middlecons(&fleet, &pki, false);
    let admin = Identity::load(&pki.files("admin")).unwrap();
    let channel = middlecon_client::connect(api_addr(&fleet, 0), &admin).await.unwrap();
    let membership = pb::membership_client::MembershipClient::new(channel.clone());
    // Host 1 joins through host 0 (no --peer table anywhere).
    let members = dcos_tests::eventually(Duration::from_secs(10), "host-1 alive on host 0", || {
        let mut m = membership.clone();
        async move {
            let r = m.members(pb::MembersRequest {}).await.ok()?.into_inner();
            r.members.iter().any(|m| m.name == "host-1" && m.state() == pb::MemberState::Alive).then_some(r)
        }
    })
    .await;
    assert_eq!(members.host, "host-0");
    assert_eq!(members.members[0].name, "host-0", "this host first");
    let mut c = MessagingClient::new(channel);
    let reply = c.call(to_host("dcos.ping", "host-1", in_ms(5_000), b"")).await.unwrap().into_inner();
    assert_eq!(reply.outcome(), Outcome::Ok, "{reply:?}");
    let pong: Pong = serde_json::from_slice(&reply.payload).unwrap();
    assert_eq!(pong.name, "host-1", "the name was resolved by membership");

    // `any`: host 0 does not serve demo.echo, host 1's runtime does.
    let (_seen, _keep) = runtime(&fleet, 1).await;
    let mut any = to_host("demo.echo", "", in_ms(5_000), b"to whoever");
    any.target = Some(pb::Target { to: Some(pb::target::To::Any(true)) });
    let reply = c.call(any.clone()).await.unwrap().into_inner();
    assert_eq!(reply.outcome(), Outcome::Ok, "{reply:?}");
    assert_eq!((reply.responder.as_str(), reply.payload.as_slice()), ("host-1", b"to whoever".as_slice()));
    any.service = "demo.nobody".into();
    let reply = c.call(any).await.unwrap().into_inner();
    assert_eq!(reply.outcome(), Outcome::NoResponders, "{reply:?}");

    // Query: every host serving dcos.ping answers; max_replies stops early.
    let query = |max_replies: u32| pb::QueryRequest {
        service: "dcos.ping".into(),
        deadline_unix_ms: in_ms(3_000),
        max_replies,
        ..Default::default()
    };
    let mut names = Vec::new();
    let mut stream = c.query(query(0)).await.expect("Query").into_inner();
    while let Some(r) = stream.message().await.expect("stream") {
        let reply = r.reply.expect("a reply");
        assert_eq!(reply.outcome(), Outcome::Ok, "{reply:?}");
        names.push(reply.responder);
    }
    names.sort();
    assert_eq!(names, ["host-0", "host-1"]);
    let mut stream = c.query(query(1)).await.expect("Query").into_inner();
    let mut n = 0;
    while stream.message().await.expect("stream").is_some() {
        n += 1;
    }
    assert_eq!(n, 1, "max_replies 1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopping_daemon_ends_serve_streams_with_ok() {
    let fleet = Fleet::new(1).expect("fleet");
    let pki = Pki::new();
    let mut daemons = middlecons(&fleet, &pki, true);
    let channel = middlecon_client::connect_unix(&socket(&fleet, 0)).await.expect("the local socket answers");
    let (out_tx, out_rx) = mpsc::channel::<pb::ServeMessage>(4);
    let register = pb::Register { services: vec!["demo.echo".into()] };
    out_tx.send(pb::ServeMessage { msg: Some(pb::serve_message::Msg::Register(register)) }).await.unwrap();
    let mut deliveries = MessagingClient::new(channel)
        .serve(tokio_stream::wrappers::ReceiverStream::new(out_rx))
        .await
        .expect("Serve")
        .into_inner();
    deliveries.message().await.expect("registered").expect("stream open");
    let pid = daemons[0].init_pid().expect("middlecon runs");
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), nix::sys::signal::Signal::SIGTERM)
        .unwrap();
    let end = tokio::time::timeout(Duration::from_secs(5), deliveries.message())
        .await
        .expect("the stream ends within 5 s of SIGTERM");
    assert!(matches!(end, Ok(None)), "ended with OK, not a broken stream: {end:?}");
    let status = daemons[0].wait(Duration::from_secs(5)).expect("middlecon exits");
    assert!(status.success(), "{status}");
}

/// Waits for the runtime to see a `demo.slow` request (skipping other requests), then a
/// `Cancel` naming it.
async fn slow_request_then_cancel(seen: &mut mpsc::UnboundedReceiver<Seen>) {
    let id = loop {
        match tokio::time::timeout(Duration::from_secs(2), seen.recv()).await {
            Ok(Some(Seen::Request(id, service))) if service == "demo.slow" => break id,
            Ok(Some(_)) => continue,
            other => panic!("the runtime should have seen a demo.slow request: {other:?}"),
        }
    };
    match tokio::time::timeout(Duration::from_secs(2), seen.recv()).await {
        Ok(Some(Seen::Cancel(c))) => assert_eq!(c, id, "the Cancel names the request"),
        other => panic!("the runtime should be told to stop: {other:?}"),
    }
}

/// The lean local protocol on host 0's Unix socket (`middlecon_client::LocalClient`): the
/// outcomes of `Messaging.Call` over gRPC, many calls on one connection, a call dropped by
/// its caller cancelled on the runtime; gRPC on the same socket still answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_local_protocol_gives_the_same_outcomes_and_cancels_a_dropped_call() {
    let fleet = Fleet::new(2).expect("fleet");
    let pki = Pki::new();
    let _d = middlecons(&fleet, &pki, true);
    let (mut seen, _keep) = runtime(&fleet, 1).await;
    let local = middlecon_client::LocalClient::connect(&socket(&fleet, 0)).await.expect("local protocol");

    let reply = local.call(&to_host("demo.echo", "host-1", in_ms(5_000), b"hello")).await.unwrap();
    assert_eq!((reply.outcome(), reply.payload.as_slice()), (Outcome::Ok, &b"hello"[..]), "{reply:?}");
    assert_eq!(reply.responder, "host-1");
    let reply = local.call(&to_host("dcos.ping", "host-0", in_ms(5_000), b"")).await.unwrap();
    let pong: Pong = serde_json::from_slice(&reply.payload).expect("JSON pong");
    assert_eq!(pong.name, "host-0", "a call to this host is answered here");
    let reply = local.call(&to_host("dcos.ping", "host-9", in_ms(5_000), b"")).await.unwrap();
    assert_eq!(reply.outcome(), Outcome::Unreachable, "{reply:?}");
    let started = Instant::now();
    let reply = local.call(&to_host("demo.nobody", "host-1", in_ms(5_000), b"")).await.unwrap();
    assert_eq!(reply.outcome(), Outcome::NoResponders, "{reply:?}");
    assert!(started.elapsed() < Duration::from_secs(1), "no_responders at once");

    // Calls at once on one connection each get their own reply.
    let calls = (0..50u32).map(|i| {
        let local = local.clone();
        async move {
            let payload = format!("call {i}").into_bytes();
            let reply = local.call(&to_host("demo.echo", "host-1", in_ms(5_000), &payload)).await.unwrap();
            assert_eq!(reply.payload, payload, "{reply:?}");
        }
    });
    futures::future::join_all(calls).await;

    // The deadline: demo.slow never answers; the runtime is told to stop.
    let budget = Duration::from_millis(700);
    let started = Instant::now();
    let reply =
        local.call(&to_host("demo.slow", "host-1", in_ms(budget.as_millis() as u64), b"")).await.unwrap();
    assert_eq!(reply.outcome(), Outcome::DeadlineExceeded, "{reply:?}");
    assert!(started.elapsed() >= budget - Duration::from_millis(50), "gave up early");
    slow_request_then_cancel(&mut seen).await;

    // A caller that stops waiting long before the deadline cancels the call at once.
    let gave_up = Instant::now();
    let waited = tokio::time::timeout(
        Duration::from_millis(300),
        local.call(&to_host("demo.slow", "host-1", in_ms(30_000), b"")),
    )
    .await;
    assert!(waited.is_err(), "demo.slow does not answer");
    slow_request_then_cancel(&mut seen).await;
    assert!(gave_up.elapsed() < Duration::from_secs(5), "cancelled long before its 30 s deadline");

    // gRPC on the same socket is told apart and still served.
    let channel = middlecon_client::connect_unix(&socket(&fleet, 0)).await.expect("gRPC on the socket");
    let reply = MessagingClient::new(channel)
        .call(to_host("demo.echo", "host-1", in_ms(5_000), b"grpc"))
        .await
        .expect("Call over gRPC")
        .into_inner();
    assert_eq!(reply.payload, b"grpc");
}

/// One local-protocol connection holds at most `local::MAX_IN_FLIGHT` calls: with that
/// many waiting on runtimes that never answer, the next call on it is refused at once with
/// `resource_exhausted` naming the connection's limit, the calls waiting stay untouched,
/// and another connection is still served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_local_protocol_refuses_a_call_over_its_in_flight_limit() {
    use futures::stream::{FuturesUnordered, StreamExt};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    let fleet = Fleet::new(2).expect("fleet");
    let pki = Pki::new();
    let _d = middlecons(&fleet, &pki, true);
    // The router takes 1,024 calls in flight per runtime: four hold the connection's limit.
    let mut runtimes = Vec::new();
    for _ in 0..4 {
        runtimes.push(runtime(&fleet, 1).await);
    }
    let local = middlecon_client::LocalClient::connect(&socket(&fleet, 0)).await.expect("local protocol");
    let limit = dcos_proto::local::MAX_IN_FLIGHT;
    let slow = to_host("demo.slow", "host-1", in_ms(60_000), b"");
    // The calls wait in a task that counts any that end; the runtimes say when all of them
    // arrived, so the daemon has read every one before the call over the limit.
    let ended = Arc::new(AtomicUsize::new(0));
    let waiting = tokio::spawn({
        let (local, slow, ended) = (local.clone(), slow.clone(), ended.clone());
        async move {
            let mut calls: FuturesUnordered<_> = (0..limit).map(|_| local.call(&slow)).collect();
            while calls.next().await.is_some() {
                ended.fetch_add(1, Ordering::Relaxed);
            }
        }
    });
    let mut arrived = 0;
    let until = Instant::now() + Duration::from_secs(60);
    while arrived < limit {
        assert!(Instant::now() < until, "only {arrived} of {limit} calls reached the runtimes");
        for (seen, _) in runtimes.iter_mut() {
            while let Ok(s) = seen.try_recv() {
                arrived += matches!(s, Seen::Request(..)) as usize;
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let started = Instant::now();
    let over = local
        .call(&to_host("demo.slow", "host-1", in_ms(10_000), b""))
        .await
        .expect("the call over the limit is answered");
    assert_eq!(over.outcome(), Outcome::ResourceExhausted, "{over:?}");
    assert!(over.message.contains("in flight on this connection"), "{over:?}");
    assert!(started.elapsed() < Duration::from_secs(5), "refused at once, not at its deadline");
    assert_eq!(ended.load(Ordering::Relaxed), 0, "a waiting call ended");

    let other =
        middlecon_client::LocalClient::connect(&socket(&fleet, 0)).await.expect("a second connection");
    let reply = other.call(&to_host("dcos.ping", "host-0", in_ms(5_000), b"")).await.unwrap();
    assert_eq!(reply.outcome(), Outcome::Ok, "{reply:?}");
    waiting.abort();
    drop(runtimes);
}
