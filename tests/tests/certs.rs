//! Certificates in operation, against the real daemons over real TLS: a certificate revoked
//! with `dcos certs revoke` is refused at the next handshake once the daemon has reloaded
//! (on SIGHUP, or by itself when the files change) while connections opened before keep
//! working; a renewed certificate is served from the next handshake; a reload that fails
//! keeps the identity in use; `dcos hosts` warns about certificates about to expire.

use dcos_core::Role;
use dcos_tests::mesh::dcos_as;
use dcos_tests::raw_https::{head, RawHttps};
use dcos_tests::{bin, eventually, Daemon, Pki};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::process::{Command, Output};
use std::time::Duration;

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
