//! The examples as a user runs them, against the real `middlecon` on network-namespace
//! hosts: the Rust runtime (`examples/echo_runtime.rs`, the `echo-runtime` binary) serves
//! `example.echo` and `example.upper` through its host's local socket, and the Python
//! client (`examples/python/middlecon_client.py`, grpcio with code generated from
//! `proto/`) calls them from another host over mTLS.
//!
//! The Python parts need `grpcio` and `grpcio-tools` for `python3`, which `scripts/setup.sh`
//! installs; without them those tests say so and skip.

use dcos_core::tls::TlsFiles;
use dcos_tests::netns::{Fleet, HostProcess};
use dcos_tests::Pki;
use std::path::PathBuf;
use std::process::Output;
use std::time::{Duration, Instant};

fn client_script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/python/middlecon_client.py")
}

/// Whether `python3` has grpc and grpcio-tools; `Err` says why not.
fn python_grpc() -> Result<(), String> {
    let out = std::process::Command::new("python3")
        .args(["-c", "import grpc, grpc_tools.protoc"])
        .output()
        .map_err(|e| format!("python3 cannot run: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "python3 lacks grpcio/grpcio-tools (scripts/setup.sh installs them): {}",
            String::from_utf8_lossy(&out.stderr).lines().last().unwrap_or_default()
        ))
    }
}

macro_rules! require_python_grpc {
    () => {
        if let Err(why) = python_grpc() {
            eprintln!("skipped: {why}");
            return;
        }
    };
}

/// middlecon on every host of `fleet`, each knowing the others from `--peer`.
fn middlecons(fleet: &Fleet, pki: &Pki) -> Vec<HostProcess> {
    let n = fleet.hosts().len();
    (0..n)
        .map(|i| {
            let peers: Vec<String> = (0..n)
                .filter(|j| *j != i)
                .map(|j| format!("--peer={}={}:7441", fleet.host(j).name, fleet.host(j).addr))
                .collect();
            let peers: Vec<&str> = peers.iter().map(String::as_str).collect();
            fleet.middlecon(i, &fleet.host(i).issue(pki), &peers).expect("middlecon starts")
        })
        .collect()
}

/// Starts `echo-runtime` on host `i`'s local socket and waits until it serves.
fn runtime(fleet: &Fleet, i: usize, extra: &[&str]) -> HostProcess {
    let socket = fleet.api_socket(i);
    let mut args = vec!["--socket", socket.to_str().unwrap()];
    args.extend_from_slice(extra);
    let mut p = fleet.spawn(i, dcos_tests::bin("echo-runtime"), &args).expect("echo-runtime starts");
    let line = p.line(Duration::from_secs(10));
    assert_eq!(
        line.as_deref(),
        Some("serving example.echo example.upper"),
        "the runtime registers; stderr: {}",
        p.stderr()
    );
    p
}

/// Runs the Python client on host `i` with `args` after `--api API --cert .. --key .. --ca ..`.
fn python(fleet: &Fleet, i: usize, api: &str, tls: &TlsFiles, args: &[&str]) -> Output {
    let script = client_script();
    let mut all = vec!["20", "python3", script.to_str().unwrap(), "--api", api];
    all.extend(["--cert", tls.cert.to_str().unwrap(), "--key", tls.key.to_str().unwrap()]);
    all.extend(["--ca", tls.ca.to_str().unwrap()]);
    all.extend_from_slice(args);
    fleet.exec(i, "timeout", &all).expect("python3 runs")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The runtime's stdout lines until one starting with `prefix` (within `limit`).
fn line_starting(p: &mut HostProcess, prefix: &str, limit: Duration) -> String {
    let deadline = Instant::now() + limit;
    while let Some(line) = p.line(deadline.saturating_duration_since(Instant::now())) {
        if line.starts_with(prefix) {
            return line;
        }
    }
    panic!("no line starting with {prefix:?} from the runtime within {limit:?}; stderr: {}", p.stderr())
}

#[test]
fn python_on_host_0_calls_the_rust_runtime_on_host_1() {
    require_python_grpc!();
    let fleet = Fleet::new(2).expect("fleet");
    let pki = Pki::new();
    let _mc = middlecons(&fleet, &pki);
    let mut rt = runtime(&fleet, 1, &[]);
    let admin = pki.files("admin");
    let api0 = fleet.host(0).api_addr().to_string();

    // Through host 0's TCP API with mTLS, to the runtime on host 1.
    let out = python(&fleet, 0, &api0, &admin, &["call", "--host", "host-1", "example.echo", "hello, fleet"]);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "hello, fleet", "the payload comes back as sent");
    assert!(text(&out.stderr).starts_with("ok: example.echo answered by host-1"), "{}", text(&out.stderr));
    let seen = line_starting(&mut rt, "request ", Duration::from_secs(2));
    // Across hosts the runtime sees the caller and the host that forwarded the call.
    assert!(seen.ends_with("example.echo from admin via host-0"), "the runtime sees the caller: {seen}");

    let out = python(&fleet, 0, &api0, &admin, &["call", "--host", "host-1", "example.upper", "héllo"]);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "HÉLLO");

    // A service nobody serves: exit 1, the outcome named, nothing on stdout.
    let out = python(&fleet, 0, &api0, &admin, &["call", "--host", "host-1", "example.nobody"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).starts_with("no_responders: "), "{}", text(&out.stderr));
    assert!(out.stdout.is_empty());

    // Membership through the same API lists both hosts.
    let out = python(&fleet, 0, &api0, &admin, &["members"]);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", text(&out.stderr));
    let listing = text(&out.stdout);
    let names: Vec<&str> = listing.lines().skip(1).filter_map(|l| l.split_whitespace().next()).collect();
    assert_eq!(names, ["host-0", "host-1"], "{listing}");
    assert!(listing.lines().nth(1).unwrap().contains(" alive "), "{listing}");

    // On host 1 itself, through the local socket (no certificate needed), any host.
    let local = format!("unix:{}", fleet.api_socket(1).display());
    let out = python(&fleet, 1, &local, &admin, &["call", "example.upper", "abc"]);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "ABC");

    // SIGTERM: the runtime exits 0 and its services are gone with it.
    let pid = rt.init_pid().expect("the runtime runs");
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), nix::sys::signal::Signal::SIGTERM)
        .unwrap();
    let status = rt.wait(Duration::from_secs(5)).expect("the runtime exits on SIGTERM");
    assert_eq!(status.code(), Some(0), "stderr: {}", rt.stderr());
    let out = python(&fleet, 0, &api0, &admin, &["call", "--host", "host-1", "example.echo", "x"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).starts_with("no_responders: "), "{}", text(&out.stderr));
}

#[test]
fn a_slow_answer_is_cancelled_at_the_deadline_and_the_runtime_ends_with_its_middlecon() {
    require_python_grpc!();
    let fleet = Fleet::new(1).expect("fleet");
    let pki = Pki::new();
    let mut mc = middlecons(&fleet, &pki);
    let mut rt = runtime(&fleet, 0, &["--delay", "30s"]);
    let admin = pki.files("admin");
    let api = fleet.host(0).api_addr().to_string();

    let out =
        python(&fleet, 0, &api, &admin, &["--timeout", "0.5", "call", "--host", "host-0", "example.echo"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).starts_with("deadline_exceeded: "), "{}", text(&out.stderr));
    let request = line_starting(&mut rt, "request ", Duration::from_secs(1));
    let id = request.split_whitespace().nth(1).unwrap().to_string();
    // The runtime is told to stop working on it, long before its 30 s delay is over.
    assert_eq!(line_starting(&mut rt, "cancelled ", Duration::from_secs(5)), format!("cancelled {id}"));

    // middlecon goes away: the runtime ends (status 1, saying why) instead of hanging.
    mc[0].kill();
    let status = rt.wait(Duration::from_secs(5)).expect("the runtime exits when its middlecon is gone");
    assert_eq!(status.code(), Some(1));
    assert!(rt.stderr().contains("the Serve stream broke"), "{}", rt.stderr());
}

#[test]
fn bad_usage_and_no_middlecon_are_plain_errors() {
    let run = |args: &[&str]| {
        std::process::Command::new(dcos_tests::bin("echo-runtime")).args(args).output().expect("runs")
    };
    // Neither --socket nor --api: usage, exit 2.
    let out = run(&[]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    // --api without certificates: usage, exit 2.
    let out = run(&["--api", "127.0.0.1:7442"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    // Nobody on the socket: exit 1, naming it.
    let out = run(&["--socket", "/nonexistent/api.sock"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("cannot reach the local middlecon socket /nonexistent/api.sock"),
        "{}",
        text(&out.stderr)
    );

    require_python_grpc!();
    let py = |args: &[&str]| {
        std::process::Command::new("python3")
            .arg(client_script())
            .args(args)
            .env_remove("DCOS_CERT")
            .output()
            .expect("python3 runs")
    };
    // TCP without a certificate: usage, exit 2.
    let out = py(&["--api", "127.0.0.1:1", "members"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("--cert"), "{}", text(&out.stderr));
    // No middlecon on the socket: unreachable, exit 1.
    let out = py(&["--api", "unix:/nonexistent/api.sock", "--timeout", "1", "call", "dcos.ping"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(text(&out.stderr).starts_with("unreachable: "), "{}", text(&out.stderr));
}
