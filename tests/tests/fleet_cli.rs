//! `dcos` across a fleet of real hosts: network namespaces on a bridge, each with its own
//! address and PID namespace, each running its own k2i and a marker process. Faults are
//! real: iptables black holes, killed daemons, a certificate from another CA.

use dcos_core::Role;
use dcos_tests::netns::{Fleet, HostProcess};
use dcos_tests::{eventually, Pki};
use serde_json::Value;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// Starts k2i on host `i` inside one PID namespace with a marker `sleep 1000<i>` beside it.
fn k2i_with_marker(fleet: &Fleet, pki: &Pki, i: usize) -> HostProcess {
    let dc = if i == 2 { "dc-b" } else { "dc-a" };
    fleet.k2i_after(i, pki, dc, &format!("sleep 1000{i} &")).expect("k2i starts on its host")
}

struct Setup {
    fleet: Fleet,
    pki: Pki,
    daemons: Vec<HostProcess>,
}

fn setup(n: usize) -> Setup {
    let fleet = Fleet::new(n).expect("fleet");
    let pki = Pki::new();
    let daemons = (0..n).map(|i| k2i_with_marker(&fleet, &pki, i)).collect();
    let s = Setup { fleet, pki, daemons };
    // Two samples on every host, so every process has cpu_percent.
    let setup = &s;
    let sampled = || async move {
        let (doc, code) = setup.json(&["ps", "--cmd", "sleep 1000"]);
        let markers = doc["processes"].as_array().cloned().unwrap_or_default();
        (code == 0 && markers.len() == n && markers.iter().all(|p| p["cpu_percent"].is_number()))
            .then_some(())
    };
    let runtime = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
    runtime.block_on(eventually(Duration::from_secs(10), "a second sample on every host", sampled));
    s
}

impl Setup {
    fn hosts_list(&self) -> String {
        self.fleet.hosts().iter().map(|h| h.addr.to_string()).collect::<Vec<_>>().join(",")
    }

    /// Runs `dcos` with the admin identity and `--hosts` for the whole fleet.
    fn dcos(&self, args: &[&str]) -> (Output, Duration) {
        let admin = self.pki.files("admin");
        let started = Instant::now();
        let out = Command::new(dcos_tests::bin("dcos"))
            .env("DCOS_CERT", &admin.cert)
            .env("DCOS_KEY", &admin.key)
            .env("DCOS_CA", &admin.ca)
            .env("DCOS_HOSTS", self.hosts_list())
            .args(args)
            .output()
            .expect("dcos runs");
        (out, started.elapsed())
    }

    fn json(&self, args: &[&str]) -> (Value, i32) {
        let mut all = vec!["-o", "json"];
        all.extend_from_slice(args);
        let (out, _) = self.dcos(&all);
        let doc = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{args:?}: {e}: {}", String::from_utf8_lossy(&out.stderr)));
        (doc, out.status.code().unwrap_or(-1))
    }
}

fn statuses(doc: &Value) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = doc["hosts"]
        .as_array()
        .expect("hosts array")
        .iter()
        .map(|h| (h["host"].as_str().unwrap().to_string(), h["status"].as_str().unwrap().to_string()))
        .collect();
    v.sort();
    v
}

#[test]
fn each_marker_shows_on_its_own_host_and_nowhere_else() {
    let s = setup(3);
    let (doc, code) = s.json(&["ps", "--cmd", "sleep 1000"]);
    assert_eq!(code, 0, "{doc}");
    assert_eq!(
        statuses(&doc),
        [("host-0".into(), "ok".into()), ("host-1".into(), "ok".into()), ("host-2".into(), "ok".into())]
    );
    let mut seen: Vec<(String, String)> = doc["processes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["host"].as_str().unwrap().to_string(), p["cmdline"][1].as_str().unwrap().to_string()))
        .collect();
    seen.sort();
    assert_eq!(
        seen,
        [
            ("host-0".into(), "10000".into()),
            ("host-1".into(), "10001".into()),
            ("host-2".into(), "10002".into())
        ]
    );

    // The table has HOST first and one row per marker.
    let (out, _) = s.dcos(&["ps", "--cmd", "sleep 1000"]);
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("HOST "), "{text}");
    assert_eq!(lines.len(), 4, "{text}");
    assert!(lines.iter().any(|l| l.starts_with("host-1 ") && l.ends_with("sleep 10001")), "{text}");

    // Fleet-wide sort and limit: the three k2i daemons are pid 1 on every host, so the
    // first two rows by pid are two hosts' k2i.
    let (doc, _) = s.json(&["ps", "--sort", "pid", "--limit", "2"]);
    let rows = doc["processes"].as_array().unwrap();
    assert_eq!(rows.len(), 2);
    assert!(rows.iter().all(|p| p["pid"] == 1 && p["cmd"] == "k2i"), "{doc}");

    // --dc narrows an inventory's fleet before asking.
    let inventory = s.pki.dir.path().join("inventory.toml");
    let mut text = String::new();
    for (i, h) in s.fleet.hosts().iter().enumerate() {
        let dc = if i == 2 { "dc-b" } else { "dc-a" };
        text += &format!("[[host]]\nname = \"{}\"\ndc = \"{dc}\"\nk2i = \"{}\"\n", h.name, h.addr);
    }
    std::fs::write(&inventory, text).unwrap();
    let inv = inventory.to_str().unwrap();
    let (doc, code) = s.json(&["ps", "--cmd", "sleep 1000", "--inventory", inv, "--dc", "dc-b"]);
    assert_eq!(doc["hosts"].as_array().unwrap().len(), 1, "only dc-b was asked");
    assert_eq!(code, 0);
    let hosts: Vec<&str> =
        doc["processes"].as_array().unwrap().iter().map(|p| p["host"].as_str().unwrap()).collect();
    assert!(hosts.iter().all(|h| *h == "host-2"), "{hosts:?}");
}

#[test]
fn a_black_holed_host_times_out_within_the_timeout_and_the_rest_answer() {
    let s = setup(3);
    s.fleet.blackhole(1).unwrap();
    let (out, took) = s.dcos(&["--timeout", "1s", "-o", "json", "ps", "--cmd", "sleep 1000"]);
    assert_eq!(out.status.code(), Some(3), "partial: {}", String::from_utf8_lossy(&out.stderr));
    assert!(took < Duration::from_millis(1200), "took {took:?} with --timeout 1s");
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    let st = statuses(&doc);
    assert_eq!(st.iter().filter(|(_, s)| s == "timeout").count(), 1, "{st:?}");
    assert_eq!(st.iter().filter(|(_, s)| s == "ok").count(), 2, "{st:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&s.fleet.host(1).addr.to_string()) && stderr.contains("timeout"),
        "named on stderr: {stderr}"
    );
    assert_eq!(doc["processes"].as_array().unwrap().len(), 2, "the other hosts' markers");
    s.fleet.heal(1).unwrap();
    let (_, code) = s.json(&["ps", "--cmd", "sleep 1000"]);
    assert_eq!(code, 0, "healed");
}

#[test]
fn a_stopped_k2i_is_refused_and_a_foreign_ca_is_a_tls_error() {
    let mut s = setup(3);
    s.fleet.kill(&mut s.daemons[0]);
    // Host 2 gets a certificate from a CA this fleet does not trust.
    s.fleet.kill(&mut s.daemons[2]);
    let other = Pki::new();
    let host = s.fleet.host(2);
    let foreign = other.issue_for(&host.name, Role::Host, &[host.addr.into()]);
    let _k2i = s.fleet.k2i(2, &foreign, &[]).unwrap();

    let (doc, code) = s.json(&["ps", "--limit", "5"]);
    assert_eq!(code, 3, "{doc}");
    let by_addr = |i: usize| {
        let addr = s.fleet.host(i).addr.to_string();
        doc["hosts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|h| h["address"].as_str().unwrap().contains(&addr))
            .cloned()
            .unwrap()
    };
    let refused = by_addr(0);
    assert!(["refused", "unreachable"].contains(&refused["status"].as_str().unwrap()), "{refused}");
    assert_eq!(by_addr(1)["status"], "ok");
    let tls = by_addr(2);
    assert_eq!(tls["status"], "tls_error", "{tls}");
    assert!(tls["error"].as_str().unwrap().len() > 3 && tls["elapsed_ms"].is_u64());

    // Nobody answering at all is exit 1.
    s.fleet.kill(&mut s.daemons[1]);
    let (out, _) = s.dcos(&["ps", "--hosts", &s.fleet.host(0).addr.to_string()]);
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn ndjson_streams_items_and_every_hosts_status() {
    let s = setup(2);
    s.fleet.blackhole(1).unwrap();
    let (out, _) = s.dcos(&["--timeout", "500ms", "-o", "ndjson", "ps", "--cmd", "sleep 1000"]);
    assert_eq!(out.status.code(), Some(3));
    let lines: Vec<Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect();
    let statuses: Vec<&str> =
        lines.iter().filter_map(|l| l["host_status"]["status"].as_str()).collect::<Vec<_>>();
    assert_eq!(statuses.len(), 2, "{lines:?}");
    assert!(statuses.contains(&"ok") && statuses.contains(&"timeout"));
    let items: Vec<&Value> = lines.iter().filter(|l| l.get("pid").is_some()).collect();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["host"], "host-0");
    assert_eq!(items[0]["cmdline"][1], "10000");
}

#[test]
fn hosts_top_group_by_and_usage_errors() {
    let s = setup(2);
    let (doc, code) = s.json(&["hosts"]);
    assert_eq!(code, 0);
    let members = doc["members"].as_array().unwrap();
    assert_eq!(members.len(), 2);
    assert!(members.iter().all(|m| m["state"] == "alive" && m["agent_version"].is_string()));

    let (out, _) = s.dcos(&["top", "--once", "--limit", "3"]);
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.starts_with("fleet: 2/2 hosts answering"), "{text}");
    assert!(text.contains("host-0") && text.contains("host-1"));
    assert!(text.contains("sleep 10000") || text.contains("/k2i"), "the top processes: {text}");

    let (doc, _) = s.json(&["ps", "--group-by", "host"]);
    let groups = doc["groups"].as_array().unwrap();
    assert_eq!(groups.len(), 2);
    // Each host's PID namespace holds its shell-exec'd k2i and its marker.
    assert!(groups.iter().all(|g| g["processes"] == 2 && g["hosts"] == 1), "{doc}");

    let (out, _) = s.dcos(&["ps", "-q", "cpu >"]);
    assert_eq!(out.status.code(), Some(2), "a bad expression is bad usage");
    assert!(String::from_utf8_lossy(&out.stderr).contains("position"));
    let (out, _) = s.dcos(&["ps", "--label", "nolabel"]);
    assert_eq!(out.status.code(), Some(2));
}
