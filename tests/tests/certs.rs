//! Certificates in operation, against the real daemons over real TLS: a certificate revoked
//! with `dcos certs revoke` is refused at the next handshake once the daemon has reloaded
//! (on SIGHUP, or by itself when the files change) while connections opened before keep
//! working; a renewed certificate is served from the next handshake; a reload that fails
//! keeps the identity in use; `dcos hosts` warns about certificates about to expire.

use dcos_core::tls::Identity;
use dcos_core::Role;
use dcos_proto::v1::messaging_client::MessagingClient;
use dcos_proto::v1::{CallReply, Outcome};
use dcos_tests::mesh::{self, dcos_as};
use dcos_tests::netns::{Fleet, HostProcess, MIDDLECON_PORT};
use dcos_tests::raw_https::{head, RawHttps};
use dcos_tests::{bin, eventually, Daemon, Pki};
use middlecon::peer::{CallError, Client};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::net::SocketAddr;
use std::process::{Command, Output};
use std::time::{Duration, SystemTime};

/// How long a daemon may take to notice changed files by itself (two polls, and slack).
const NOTICE: Duration = Duration::from_secs(15);

/// `dcos certs ARGS`, which must succeed.
fn certs(args: &[&str]) -> String {
    let out = Command::new(bin("dcos")).arg("certs").args(args).output().expect("dcos runs");
    assert!(out.status.success(), "dcos certs {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `dcos hosts --hosts ADDR ARGS` as `name`.
fn hosts(pki: &Pki, name: &str, k2i: &Daemon, args: &[&str]) -> Output {
    let addr = k2i.url.trim_start_matches("https://");
    let mut all = vec!["hosts", "--hosts", addr];
    all.extend_from_slice(args);
    dcos_as(pki, name, &all)
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// One more request on an open connection: it answers 200.
async fn still_answers(conn: &mut RawHttps) {
    conn.send(&head("GET", "/v1/host", "")).await.expect("the open connection takes a request");
    let answer = conn.answer(Duration::from_secs(5)).await.expect("the open connection answers");
    assert_eq!(answer.status, 200, "{}", String::from_utf8_lossy(&answer.body));
}

/// A viewer whose certificate is revoked is refused by k2i at its next handshake, once k2i
/// has reloaded (`sighup`: on the signal, with polling off; else by itself), while the
/// kept-alive connection it opened before keeps answering.
async fn revoked_viewer_is_refused(sighup: bool) {
    if sighup {
        // SAFETY of the test: nextest runs each test in its own process.
        std::env::set_var("DCOS_TLS_POLL_MS", "0");
    }
    let pki = Pki::new();
    let viewer = pki.issue("viewer", Role::Viewer);
    let k2i = Daemon::k2i(&pki.issue("k2i", Role::Host), &[]).expect("k2i starts");
    let mut open = RawHttps::connect(&k2i.url, &viewer).await.expect("the viewer connects");
    still_answers(&mut open).await;
    assert!(hosts(&pki, "viewer", &k2i, &[]).status.success(), "not revoked yet");

    let dir = pki.dir.path().to_str().unwrap();
    let said = certs(&["revoke", "--dir", dir, viewer.cert.to_str().unwrap()]);
    assert!(said.contains("revoked serial") && said.contains("(viewer)"), "{said}");
    assert!(pki.dir.path().join("crl.pem").exists());
    if sighup {
        kill(Pid::from_raw(k2i.pid()), Signal::SIGHUP).expect("SIGHUP");
    }
    let shared = std::sync::Arc::new(tokio::sync::Mutex::new(open));
    let refused = eventually(NOTICE, "k2i to refuse the revoked viewer", || {
        let out = hosts(&pki, "viewer", &k2i, &[]);
        let open = shared.clone();
        async move {
            // The connection opened before answers all along (and stays alive meanwhile).
            still_answers(&mut *open.lock().await).await;
            (!out.status.success()).then_some(out)
        }
    })
    .await;
    let mut open = shared.lock().await;
    let err = stderr(&refused);
    assert!(err.contains("tls_error") && err.contains("CertificateRevoked"), "a clear error: {err}");
    still_answers(&mut open).await;
    assert!(hosts(&pki, "admin", &k2i, &[]).status.success(), "others are still let in");
    let log = k2i.stderr();
    let why = if sighup { "(SIGHUP)" } else { "(the files changed)" };
    assert!(log.contains(&format!("TLS identity reloaded {why}")) && log.contains("1 revoked"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn k2i_refuses_a_revoked_certificate_after_sighup_and_keeps_open_connections() {
    revoked_viewer_is_refused(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn k2i_refuses_a_revoked_certificate_once_the_list_changes_on_disk() {
    revoked_viewer_is_refused(false).await;
}

/// `dcos hosts` warns about a host certificate issued for 3 days and about the operator's;
/// a renewed certificate put in place is served from the next handshake (no warning) while
/// a connection from before keeps answering; a key that does not match its certificate is
/// refused by name and k2i goes on serving with the certificate in use.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hosts_warns_of_expiring_certificates_and_k2i_serves_a_renewed_one() {
    std::env::set_var("DCOS_TLS_POLL_MS", "0");
    let pki = Pki::new();
    let dir = pki.dir.path().to_str().unwrap();
    let issue = |name: &str, role: &str, days: &str| {
        certs(&["issue", "--dir", dir, "--name", name, "--role", role, "--ip", "127.0.0.1", "--days", days]);
    };
    issue("short", "host", "3");
    issue("me", "viewer", "3");
    let k2i = Daemon::k2i(&pki.files("short"), &["--name", "short-lived"]).expect("k2i starts");
    let mut open = RawHttps::connect(&k2i.url, &pki.files("admin")).await.expect("connects");
    still_answers(&mut open).await;

    let out = hosts(&pki, "me", &k2i, &["-o", "json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("warning: short-lived's certificate") && err.contains("(in 2 days)"), "{err}");
    assert!(err.contains("warning: your certificate expires"), "{err}");
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let cert = &doc["members"][0]["certificate"];
    assert_eq!((cert["expiring"].as_bool(), cert["days_left"].as_i64()), (Some(true), Some(2)), "{doc}");
    assert_eq!(doc["certificate"]["expiring"], true, "the operator's own: {doc}");
    let quiet = hosts(&pki, "me", &k2i, &["--warn-expiry", "1"]);
    assert!(!stderr(&quiet).contains("warning"), "a shorter window: {}", stderr(&quiet));

    // A broken key: refused by name, the certificate in use stays.
    let key = pki.files("short").key;
    let good_key = std::fs::read(&key).unwrap();
    std::fs::write(&key, b"not a key").unwrap();
    kill(Pid::from_raw(k2i.pid()), Signal::SIGHUP).expect("SIGHUP");
    eventually(NOTICE, "the failed reload in the log", || async {
        k2i.stderr()
            .contains(&format!("TLS reload (SIGHUP) failed, the identity in use stays: {}", key.display()))
            .then_some(())
    })
    .await;
    std::fs::write(&key, good_key).unwrap();
    let out = hosts(&pki, "admin", &k2i, &[]);
    assert!(out.status.success() && stderr(&out).contains("short-lived's certificate"), "{}", stderr(&out));

    // Renewed for a year: served at the next handshake.
    issue("short", "host", "365");
    kill(Pid::from_raw(k2i.pid()), Signal::SIGHUP).expect("SIGHUP");
    eventually(NOTICE, "the renewed certificate served", || async {
        let out = hosts(&pki, "admin", &k2i, &["-o", "json"]);
        let doc: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
        (doc["members"][0]["certificate"]["expiring"] == false && !stderr(&out).contains("warning"))
            .then_some(())
    })
    .await;
    still_answers(&mut open).await;
}

/// `dcos.ping` on the middlecon at `addr` through the peer client `c`.
async fn ping(c: &Client, addr: SocketAddr) -> Result<(), CallError> {
    let reply = c.call(addr, "dcos.ping", Vec::new(), SystemTime::now() + Duration::from_secs(3)).await?;
    assert_eq!(reply.outcome(), middlecon::peer::Outcome::Ok, "{reply:?}");
    Ok(())
}

/// `dcos.ping` on `host` through the gRPC API of `channel`'s middlecon.
async fn api_ping(channel: &tonic::transport::Channel, host: &str) -> CallReply {
    let mut m = MessagingClient::new(channel.clone());
    m.call(mesh::call("dcos.ping", host, 3000, b"")).await.expect("the API answers").into_inner()
}

/// host-0 and host-1, each told the other's address (`--peer`), joined.
async fn two_middlecons(fleet: &Fleet, pki: &Pki) -> (HostProcess, HostProcess) {
    let start = |i: usize| {
        let other = 1 - i;
        let peer = format!("host-{other}={}:{MIDDLECON_PORT}", fleet.host(other).addr);
        mesh::start(fleet, pki, i, &["--peer", &peer])
    };
    let both = (start(0), start(1));
    mesh::wait_formed(fleet, pki, 2).await;
    both
}

/// Revoked certificates and middlecon (`sighup`: reloaded on the signal, with polling
/// off; else by itself): a new connection from a revoked tool is refused (on the peer port
/// and on the API) while the one it opened before keeps answering; a revoked peer (host-1) keeps its open connection, and
/// once restarted it is refused both ways: host-0 will not dial it and will not let it in.
async fn revoked_peer_is_refused(sighup: bool) {
    if sighup {
        std::env::set_var("DCOS_TLS_POLL_MS", "0");
    }
    let fleet = Fleet::new(2).expect("fleet");
    let pki = Pki::new();
    let (mut mc0, mut mc1) = two_middlecons(&fleet, &pki).await;
    let addr0 = SocketAddr::new(fleet.host(0).addr.into(), MIDDLECON_PORT);
    let tester = pki.issue("tester", Role::Host);
    let tool = || Client::new(&Identity::load(&tester).expect("identity")).expect("client");
    let open = tool();
    ping(&open, addr0).await.expect("the tool is let in before");
    let api0 = mesh::channel(&fleet, &pki, 0, "admin", Role::Admin).await;
    assert_eq!(api_ping(&api0, "host-1").await.outcome(), Outcome::Ok);

    let dir = pki.dir.path().to_str().unwrap();
    certs(&["revoke", "--dir", dir, tester.cert.to_str().unwrap()]);
    certs(&["revoke", "--dir", dir, pki.files("host-1").cert.to_str().unwrap()]);
    if sighup {
        for p in [&mut mc0, &mut mc1] {
            kill(Pid::from_raw(p.init_pid().expect("running") as i32), Signal::SIGHUP).expect("SIGHUP");
        }
    }
    let refused = eventually(NOTICE, "host-0 to refuse the revoked tool", || {
        let (fresh, open) = (tool(), &open);
        async move {
            ping(open, addr0).await.expect("the connection opened before answers");
            ping(&fresh, addr0).await.err()
        }
    })
    .await;
    assert!(matches!(refused, CallError::Handshake { .. }), "{refused}");
    assert!(refused.to_string().contains("Revoked"), "a clear error: {refused}");
    // Its gRPC API refuses the revoked certificate too (the CLI cannot tell why: the TLS
    // alert comes after its side of the handshake, and hyper reports a closed connection).
    let out = dcos_as(&pki, "tester", &["hosts", "--seed", &fleet.host(0).addr.to_string()]);
    assert!(!out.status.success() && stderr(&out).contains("cannot ask the seed"), "{}", stderr(&out));
    let admin = dcos_as(&pki, "admin", &["hosts", "--seed", &fleet.host(0).addr.to_string()]);
    assert!(admin.status.success(), "others are still let in: {}", stderr(&admin));
    ping(&open, addr0).await.expect("the connection opened before still answers");
    let why = if sighup { "(SIGHUP)" } else { "(the files changed)" };
    assert!(mc0.stderr().contains(&format!("TLS identity reloaded {why}")), "{}", mc0.stderr());
    eventually(NOTICE, "host-1 to see its own certificate revoked", || async {
        mc1.stderr().contains("revokes this host's own certificate").then_some(())
    })
    .await;
    let reply = api_ping(&api0, "host-1").await;
    assert_eq!(reply.outcome(), Outcome::Ok, "the open peer connection still carries calls: {reply:?}");

    // host-1 restarted, with its revoked certificate: its open connection is gone, and no
    // new one is made, whoever dials.
    mc1.kill();
    let again = ["--dc", "dc-a", "--peer", &format!("host-0={addr0}")];
    let _mc1 = fleet.middlecon(1, &pki.files("host-1"), &again).expect("host-1 starts again");
    let reply = eventually(NOTICE, "host-0 to refuse to dial host-1", || async {
        let reply = api_ping(&api0, "host-1").await;
        reply.message.contains("Revoked").then_some(reply)
    })
    .await;
    assert_eq!(reply.outcome(), Outcome::PermissionDenied, "{reply:?}");
    let api1 = mesh::channel(&fleet, &pki, 1, "admin", Role::Admin).await;
    let reply = api_ping(&api1, "host-0").await;
    assert_eq!(reply.outcome(), Outcome::PermissionDenied, "host-0 lets host-1 in no more: {reply:?}");
    assert!(reply.message.contains("Revoked"), "{reply:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn middlecon_refuses_revoked_peers_after_sighup_and_keeps_open_connections() {
    revoked_peer_is_refused(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn middlecon_refuses_revoked_peers_once_the_list_changes_on_disk() {
    revoked_peer_is_refused(false).await;
}

/// `dcos hosts --seed` warns about a member whose certificate expires within the window, as
/// membership gossips it, and no more once that member's middlecon has reloaded a renewed
/// certificate (SIGHUP): the gossip follows the certificate in use.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hosts_seed_warns_of_a_members_expiring_certificate_as_gossiped() {
    std::env::set_var("DCOS_TLS_POLL_MS", "0");
    let fleet = Fleet::new(2).expect("fleet");
    let pki = Pki::new();
    let dir = pki.dir.path().to_str().unwrap();
    let ip1 = fleet.host(1).addr.to_string();
    let issue = |days: &str| {
        certs(&["issue", "--dir", dir, "--name", "host-1", "--role", "host", "--ip", &ip1, "--days", days]);
    };
    issue("3");
    let _mc0 = mesh::start(&fleet, &pki, 0, &[]);
    let seed = format!("{}:{MIDDLECON_PORT}", fleet.host(0).addr);
    let mut mc1 =
        fleet.middlecon(1, &pki.files("host-1"), &["--dc", "dc-a", "--seed", &seed]).expect("starts");
    mesh::wait_formed(&fleet, &pki, 2).await;
    let ask = || dcos_as(&pki, "admin", &["hosts", "--seed", &fleet.host(0).addr.to_string(), "-o", "json"]);
    let member = |doc: &serde_json::Value, name: &str| {
        doc["members"].as_array().unwrap().iter().find(|m| m["name"] == name).cloned().unwrap_or_default()
    };

    let out = eventually(NOTICE, "a warning about host-1's certificate", || async {
        let out = ask();
        stderr(&out).contains("warning: host-1's certificate (middlecon").then_some(out)
    })
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("(in 2 days)"), "{}", stderr(&out));
    assert!(!stderr(&out).contains("host-0's certificate"), "host-0's is valid for a year: {}", stderr(&out));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(member(&doc, "host-1")["certificate"]["expiring"], true, "{doc}");
    assert_eq!(member(&doc, "host-0")["certificate"]["expiring"], false, "{doc}");

    issue("365");
    kill(Pid::from_raw(mc1.init_pid().expect("running") as i32), Signal::SIGHUP).expect("SIGHUP");
    eventually(NOTICE, "host-1's renewed certificate gossiped", || async {
        let out = ask();
        let doc: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
        (member(&doc, "host-1")["certificate"]["expiring"] == false && !stderr(&out).contains("warning"))
            .then_some(())
    })
    .await;
}
