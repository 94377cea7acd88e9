//! The `dcos` workload commands (`run`, `workloads`, `stop`, `migrate`, `evacuate`) as a
//! user meets them: the happy path on two hosts running the real middlecon with a busybox
//! container (run, list, migrate, list, stop, then run, list and stop again on host-0's own
//! socket, with no certificate); and when things go wrong: bad usage is
//! refused before any network, and a middlecon API that is silent, refuses, or belongs to
//! another fleet's CA is named with its status while the command stays within its
//! `--timeout`.
//!
//! The silent API is a real listening socket nobody answers on (the TLS handshake never
//! completes); the foreign fleet is a real middlecon with certificates of its own CA.

use dcos_tests::netns::Fleet;
use dcos_tests::Pki;
use serde_json::Value;
use std::io::Write;
use std::net::TcpListener;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// Runs `dcos` with `pki`'s admin identity and the given environment.
fn dcos(pki: &Pki, env: &[(&str, &str)], args: &[&str]) -> (Output, Duration) {
    let admin = pki.files("admin");
    let mut cmd = Command::new(dcos_tests::bin("dcos"));
    cmd.env_remove("DCOS_API")
        .env_remove("DCOS_SEED")
        .env_remove("DCOS_INVENTORY")
        .env_remove("DCOS_HOSTS")
        .env("DCOS_CERT", &admin.cert)
        .env("DCOS_KEY", &admin.key)
        .env("DCOS_CA", &admin.ca)
        .args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let started = Instant::now();
    let out = cmd.output().expect("dcos runs");
    (out, started.elapsed())
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A TCP port on 127.0.0.1 where nothing listens (connections are refused).
fn closed_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[test]
fn bad_usage_exits_2_before_any_network() {
    let pki = Pki::new();
    // Connections to this socket complete in the kernel but are never answered: a command
    // that dialled it would hang until its timeout, and would show in the backlog.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let api = silent.local_addr().unwrap().to_string();
    let env = [("DCOS_API", api.as_str())];
    let cases: &[(&[&str], &str)] = &[
        (&["run", "--host", "h0", "--name", "web/1", "--rootfs", "/r", "--", "sleep", "9"], "'/'"),
        (&["run", "--host", "h0", "--name", "web", "--rootfs", "/r"], "give the command to run after --"),
        (
            &["run", "--host", "h0", "--name", "web", "--rootfs", "/r", "--memory", "lots", "--", "x"],
            "not a size",
        ),
        (&["run", "--host", "h0", "--name", "web", "--rootfs", "/r", "--env", "X", "--", "x"], "is not K=V"),
        (
            &[
                "run", "--host", "h0", "--name", "web", "--rootfs", "/r", "--env", "A=1", "--env", "A=2",
                "--", "x",
            ],
            "--env A is given twice",
        ),
        (&["stop", "a b"], "' '"),
        (&["migrate", "web"], "--to"),
        (&["migrate", "web", "--to", "h1", "--bwlimit", "fast"], "not a rate like 10M"),
        (&["migrate", "web", "--to", "h1", "--mode", "warm"], "warm"),
        (&["migrate", "web", "--to", "h0", "--from", "h0"], "web is already on h0"),
        (&["evacuate", "h0", "--parallel", "0"], "--parallel"),
        (&["workloads", "--api", "10.0.0.1", "--socket", "/run/mc.sock"], "give one"),
    ];
    for (args, message) in cases {
        let mut all = vec!["--timeout", "10s"];
        all.extend_from_slice(args);
        let (out, took) = dcos(&pki, &env, &all);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(message), "{args:?}: {}", stderr(&out));
        assert!(out.stdout.is_empty(), "{args:?} printed {:?}", String::from_utf8_lossy(&out.stdout));
        assert!(took < Duration::from_secs(5), "{args:?} took {took:?}");
    }
    // Without --api or an inventory there is nobody to ask: usage, naming the fix.
    let (out, _) = dcos(&pki, &[], &["workloads"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--inventory"), "{}", stderr(&out));
    silent.set_nonblocking(true).unwrap();
    assert!(silent.accept().is_err(), "a usage error dialled the API");
}

#[test]
fn silent_and_refusing_hosts_are_named_within_the_timeout() {
    let pki = Pki::new();
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_addr = silent.local_addr().unwrap().to_string();
    let refused_addr = format!("127.0.0.1:{}", closed_port());
    let mut inventory = tempfile::NamedTempFile::new().unwrap();
    write!(
        inventory,
        "[[host]]\nname = \"h0\"\nk2i = \"127.0.0.1\"\napi = \"{silent_addr}\"\n\n\
         [[host]]\nname = \"h1\"\nk2i = \"127.0.0.1\"\napi = \"{refused_addr}\"\n\n\
         [[host]]\nname = \"k2i-only\"\nk2i = \"127.0.0.1\"\n"
    )
    .unwrap();
    let inv = inventory.path().to_str().unwrap();
    let env = [("DCOS_INVENTORY", inv)];
    let bound = Duration::from_millis(1000 + 1500);

    // workloads: one document, every host with an api named with its status; none answered.
    let (out, took) = dcos(&pki, &env, &["workloads", "-o", "json", "--timeout", "1s"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(took < bound, "took {took:?}");
    let doc: Value = serde_json::from_slice(&out.stdout).expect("one JSON document");
    let hosts: Vec<(&str, &str)> = doc["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| (h["host"].as_str().unwrap(), h["status"].as_str().unwrap()))
        .collect();
    assert_eq!(hosts, [("h0", "timeout"), ("h1", "refused")]);
    assert_eq!(doc["hosts"][1]["address"], refused_addr.as_str());
    assert_eq!(doc["workloads"], serde_json::json!([]));
    assert!(stderr(&out).contains(&format!("h0 ({silent_addr}): timeout")), "{}", stderr(&out));
    assert!(stderr(&out).contains(&format!("h1 ({refused_addr}): refused")), "{}", stderr(&out));

    // The table has its header even when nobody answered.
    let (out, _) = dcos(&pki, &env, &["workloads", "--timeout", "1s"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "NAME  HOST  RUNTIME  STATUS  PID  EPOCH  COMMAND\n");

    // stop without --host searches the fleet; finding nobody that answered is a failure.
    let (out, took) = dcos(&pki, &env, &["stop", "web", "--timeout", "1s"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(took < bound, "took {took:?}");
    assert!(
        stderr(&out).contains("dcos: not_found: no workload web in the fleet (2 of 2 hosts did not answer)"),
        "{}",
        stderr(&out)
    );

    // Straight to a named host: its failure, in words a script can match.
    let (out, took) = dcos(&pki, &env, &["migrate", "web", "--to", "h1", "--from", "h0", "--timeout", "1s"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(took < bound, "took {took:?}");
    assert!(
        stderr(&out).contains(&format!("dcos: timeout: no answer from h0 ({silent_addr}) within 1s")),
        "{}",
        stderr(&out)
    );
    let (out, _) = dcos(&pki, &env, &["evacuate", "h1"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).starts_with("dcos: refused: cannot reach the middlecon API at"), "{}", stderr(&out));
    let (out, _) = dcos(&pki, &env, &["stop", "web", "--host", "k2i-only"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("k2i-only has no api address"), "{}", stderr(&out));
    drop(silent);
}

#[test]
fn a_middlecon_of_another_fleet_is_a_tls_error() {
    let fleet = Fleet::new(1).expect("fleet");
    let theirs = Pki::new();
    let host = fleet.host(0);
    let _daemon = fleet.middlecon(0, &host.issue(&theirs), &[]).expect("middlecon starts");
    let api = host.api_addr().to_string();
    let ours = Pki::new();
    let (out, took) = dcos(&ours, &[("DCOS_API", api.as_str())], &["workloads", "-o", "json"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(took < Duration::from_secs(3 + 2), "took {took:?}");
    let doc: Value = serde_json::from_slice(&out.stdout).expect("one JSON document");
    assert_eq!(doc["hosts"][0]["status"], "tls_error", "{doc}");
    assert!(stderr(&out).contains("tls_error"), "{}", stderr(&out));
    let (out, _) = dcos(&ours, &[("DCOS_API", api.as_str())], &["stop", "web", "--host", "host-0"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).starts_with("dcos: tls_error: cannot reach the middlecon API at"),
        "{}",
        stderr(&out)
    );
}

/// `(host, status)` of each workload named `name` in a `dcos workloads -o json` document.
fn placed(doc: &Value, name: &str) -> Vec<(String, String)> {
    doc["workloads"]
        .as_array()
        .expect("workloads")
        .iter()
        .filter(|w| w["name"] == name)
        .map(|w| (w["host"].as_str().unwrap().to_string(), w["status"].as_str().unwrap().to_string()))
        .collect()
}

#[test]
fn a_workload_runs_moves_to_another_host_and_stops_through_the_cli() {
    let fleet = Fleet::new(2).expect("fleet");
    let pki = Pki::new();
    let seed = format!("{}:7441", fleet.host(0).addr);
    let _daemons: Vec<_> = (0..2)
        .map(|i| {
            let other = fleet.host(1 - i);
            let peer = format!("{}={}:7441", other.name, other.addr);
            let tls = fleet.host(i).issue(&pki);
            fleet.middlecon_on(i, &tls, &["--seed", &seed, "--peer", &peer]).expect("middlecon starts")
        })
        .collect();
    let work = tempfile::Builder::new().prefix("dcos-workload-cli-").tempdir().unwrap();
    let rootfs = dcos_tests::oci::busybox_rootfs(work.path()).expect("busybox rootfs");
    let api0 = fleet.host(0).api_addr().to_string();
    let json = |out: &Output| -> Value {
        assert_eq!(out.status.code(), Some(0), "{}", stderr(out));
        serde_json::from_slice(&out.stdout).expect("one JSON document")
    };

    // run on host-0 through its API; the shell exits at once on SIGTERM.
    let script = "trap 'exit 0' TERM; sleep 3600 & wait";
    let run = [
        "run",
        "--api",
        &api0,
        "--host",
        "host-0",
        "--name",
        "web",
        "--rootfs",
        rootfs.to_str().unwrap(),
        "--timeout",
        "10s",
        "-o",
        "json",
        "--",
        "sh",
        "-c",
        script,
    ];
    let doc = json(&dcos(&pki, &[], &run).0);
    let w = &doc["workloads"][0];
    assert_eq!((&w["name"], &w["host"], &w["status"]), (&"web".into(), &"host-0".into(), &"running".into()));
    assert!(w["pid"].as_u64().is_some_and(|p| p > 0), "{w}");

    // The inventory names both hosts' APIs; dcos workloads asks both.
    let mut inventory = tempfile::NamedTempFile::new().unwrap();
    for i in 0..2 {
        let h = fleet.host(i);
        write!(
            inventory,
            "[[host]]\nname = \"{}\"\nk2i = \"{}\"\napi = \"{}\"\n\n",
            h.name,
            h.addr,
            h.api_addr()
        )
        .unwrap();
    }
    let env = [("DCOS_INVENTORY", inventory.path().to_str().unwrap())];
    let doc = json(&dcos(&pki, &env, &["workloads", "-o", "json"]).0);
    let hosts: Vec<&str> =
        doc["hosts"].as_array().unwrap().iter().map(|h| h["status"].as_str().unwrap()).collect();
    assert_eq!(hosts, ["ok", "ok"], "{doc}");
    assert_eq!(placed(&doc, "web"), [("host-0".to_string(), "running".to_string())]);

    // migrate finds web on host-0 and moves it, cold, to host-1.
    let doc = json(&dcos(&pki, &env, &["migrate", "web", "--to", "host-1", "-o", "json"]).0);
    let m = &doc["migration"];
    assert_eq!(
        (&m["status"], &m["from"], &m["to"], &m["epoch"]),
        (&"done".into(), &"host-0".into(), &"host-1".into(), &1.into()),
        "{m}"
    );
    assert!(m["bytes_sent"].as_u64().is_some_and(|b| b > 0), "{m}");
    assert!(m["downtime_ms"].as_u64().is_some_and(|d| d > 0), "{m}");

    // Listed through --seed: the hosts are the members host-0 lists (each one's `api`), once
    // membership has both.
    let listed = || json(&dcos(&pki, &[], &["--seed", &api0, "workloads", "-o", "json"]).0);
    let until = Instant::now() + Duration::from_secs(10);
    let mut doc = listed();
    while doc["hosts"].as_array().unwrap().len() < 2 && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(100));
        doc = listed();
    }
    let hosts: Vec<&str> =
        doc["hosts"].as_array().unwrap().iter().map(|h| h["host"].as_str().unwrap()).collect();
    assert_eq!(hosts, ["host-0", "host-1"], "{doc}");
    assert_eq!(placed(&doc, "web"), [("host-1".to_string(), "running".to_string())], "{doc}");

    // stop finds it on host-1 and stops it; nothing is left.
    let doc = json(&dcos(&pki, &env, &["stop", "web", "--timeout", "10s", "-o", "json"]).0);
    let w = &doc["workloads"][0];
    assert_eq!((&w["host"], &w["status"]), (&"host-1".into(), &"stopped".into()), "{w}");
    let doc = json(&dcos(&pki, &env, &["workloads", "-o", "json"]).0);
    assert_eq!(placed(&doc, "web"), [], "{doc}");

    // On host-0 itself, through its socket: no certificate, no host name needed, and an
    // exported DCOS_API (here one nobody answers on) gives way to --socket.
    let socket = fleet.api_socket(0);
    let socket = socket.to_str().unwrap();
    let nobody = format!("127.0.0.1:{}", closed_port());
    let local = |args: &[&str]| {
        Command::new(dcos_tests::bin("dcos"))
            .env("DCOS_API", &nobody)
            .env_remove("DCOS_CERT")
            .env_remove("DCOS_KEY")
            .env_remove("DCOS_CA")
            .arg(args[0])
            .args(["--socket", socket])
            .args(&args[1..])
            .output()
            .expect("dcos runs")
    };
    let rootfs = rootfs.to_str().unwrap();
    let run_local = |extra: &[&str], name: &str| {
        let mut args = vec!["run", "--name", name, "--rootfs", rootfs, "-o", "json"];
        args.extend_from_slice(extra);
        args.extend(["--", "sh", "-c", script]);
        local(&args)
    };
    let doc = json(&run_local(&[], "local"));
    let w = &doc["workloads"][0];
    assert_eq!((&w["host"], &w["status"]), (&"host-0".into(), &"running".into()), "{w}");
    // A --host the local middlecon is not: refused, and nothing runs.
    let wrong = run_local(&["--host", "host-1"], "elsewhere");
    assert_eq!(wrong.status.code(), Some(1), "{}", stderr(&wrong));
    let e = stderr(&wrong);
    assert!(
        e.starts_with("dcos: invalid: ") && e.contains("this middlecon is host host-0, not \"host-1\""),
        "{e}"
    );
    let doc = json(&local(&["workloads", "-o", "json"]));
    assert_eq!(placed(&doc, "local"), [("host-0".to_string(), "running".to_string())], "{doc}");
    assert_eq!(placed(&doc, "elsewhere"), [], "{doc}");
    // So is a stop naming another host: the local middlecon is asked its name first.
    let wrong = local(&["stop", "local", "--host", "host-1"]);
    assert_eq!(wrong.status.code(), Some(1), "{}", stderr(&wrong));
    assert!(
        stderr(&wrong).contains("is host host-0, not \"host-1\": nothing was done"),
        "{}",
        stderr(&wrong)
    );
    let doc = json(&local(&["workloads", "-o", "json"]));
    assert_eq!(placed(&doc, "local"), [("host-0".to_string(), "running".to_string())], "{doc}");
    // And an evacuation of another host: nothing moves.
    let wrong = local(&["evacuate", "host-1"]);
    assert_eq!(wrong.status.code(), Some(1), "{}", stderr(&wrong));
    assert!(stderr(&wrong).contains("is host host-0, not \"host-1\""), "{}", stderr(&wrong));
    // --api on the command line wins over an exported DCOS_SOCKET in turn.
    let env = [("DCOS_SOCKET", "/nonexistent/api.sock")];
    let doc = json(&dcos(&pki, &env, &["workloads", "--api", &api0, "-o", "json"]).0);
    assert_eq!(placed(&doc, "local"), [("host-0".to_string(), "running".to_string())], "{doc}");
    let doc = json(&local(&["stop", "local", "--timeout", "10s", "-o", "json"]));
    assert_eq!(doc["workloads"][0]["status"], "stopped", "{doc}");
}
