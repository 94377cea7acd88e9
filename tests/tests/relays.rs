//! `dcos ps`, `top` and `containers` through datacenter relays (SPEC section 8) on four real
//! hosts (network namespaces) in two datacenters, each running k2i and middlecon: the
//! relayed table is the direct one, each host says which relay asked it, k2i's log names
//! the operator and the relay, a relay killed mid-request leaves its hosts `unreachable`
//! well within `--timeout`, a refreshing `top` is answered from the relays' watches with
//! each host's age (a host fallen silent becomes `timeout`, never old data passed off as
//! new), and nothing lets a relay write.

use dcos_core::role::{ON_BEHALF_OF_HEADER, ON_BEHALF_OF_ROLE_HEADER};
use dcos_core::Role;
use dcos_proto::v1 as pb;
use dcos_tests::mesh;
use dcos_tests::netns::{Fleet, HostProcess, MIDDLECON_PORT};
use dcos_tests::{eventually, Pki};
use k2i_client::FetchError;
use serde_json::Value;
use std::collections::BTreeSet;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Host `i`'s datacenter: hosts 0 and 1 in `dc-a`, 2 and 3 in `dc-b`.
fn dc(i: usize) -> &'static str {
    if i < 2 {
        "dc-a"
    } else {
        "dc-b"
    }
}

/// Starts k2i on host `i` with two `sleep` processes beside it in its PID namespace.
fn k2i_on(fleet: &Fleet, pki: &Pki, i: usize) -> HostProcess {
    fleet
        .k2i_after(i, pki, dc(i), &format!("sleep 1000{i} & sleep 2000{i} &"))
        .expect("k2i starts on its host")
}

/// Four hosts, each with k2i and middlecon (seeded with host 0) in its datacenter.
struct Setup {
    fleet: Fleet,
    pki: Pki,
    k2i: Vec<HostProcess>,
    middlecon: Vec<Option<HostProcess>>,
}

async fn setup() -> Setup {
    let fleet = Fleet::new(4).expect("fleet");
    let pki = Pki::new();
    pki.issue("olivia", Role::Viewer);
    let seed = format!("{}:{MIDDLECON_PORT}", fleet.host(0).addr);
    let mut k2i = Vec::new();
    let mut middlecon = Vec::new();
    for i in 0..4 {
        let tls = fleet.host(i).issue(&pki);
        k2i.push(k2i_on(&fleet, &pki, i));
        let url = fleet.host(i).k2i_url();
        let args = ["--dc", dc(i), "--seed", &seed, "--k2i", &url];
        middlecon.push(Some(fleet.middlecon(i, &tls, &args).expect("middlecon")));
    }
    mesh::wait_formed(&fleet, &pki, 4).await;
    Setup { fleet, pki, k2i, middlecon }
}

impl Setup {
    fn seed(&self) -> String {
        mesh::api_addr(&self.fleet, 0).to_string()
    }

    fn dcos(&self, who: &str, args: &[&str]) -> Command {
        let f = self.pki.files(who);
        let mut cmd = Command::new(dcos_tests::bin("dcos"));
        cmd.args(["--cert", f.cert.to_str().unwrap(), "--key", f.key.to_str().unwrap()])
            .args(["--ca", f.ca.to_str().unwrap(), "--seed", &self.seed()])
            .args(args)
            .env_remove("DCOS_SEED")
            .env_remove("DCOS_INVENTORY")
            .env_remove("DCOS_HOSTS")
            .stdin(Stdio::null());
        cmd
    }

    fn json(&self, who: &str, args: &[&str]) -> (Value, i32, String) {
        let out: Output = self.dcos(who, args).output().expect("dcos runs");
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        let doc = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!("one JSON document ({e}): {}\n{stderr}", String::from_utf8_lossy(&out.stdout))
        });
        (doc, out.status.code().unwrap_or(-1), stderr)
    }
}

/// `(host, pid, cmd)` of every row.
fn rows(doc: &Value) -> Vec<(String, i64, String)> {
    doc["processes"]
        .as_array()
        .expect("processes")
        .iter()
        .map(|p| {
            (
                p["host"].as_str().unwrap().into(),
                p["pid"].as_i64().unwrap(),
                p["cmd"].as_str().unwrap().into(),
            )
        })
        .collect()
}

fn host_entry<'a>(doc: &'a Value, host: &str) -> &'a Value {
    doc["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["host"] == host)
        .unwrap_or_else(|| panic!("{host} in {doc}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relayed_tables_are_the_direct_ones_and_say_which_relay_asked() {
    let s = setup().await;

    // The same sorted, limited table through relays (auto: two datacenters) and directly.
    let query = ["-o", "json", "ps", "--sort", "pid,cmd", "--limit", "6"];
    let (relayed, code, stderr) = s.json("olivia", &query);
    assert_eq!(code, 0, "{stderr}");
    let direct_args: Vec<&str> = ["--relay", "never"].iter().chain(query.iter()).copied().collect();
    let (direct, code, stderr) = s.json("olivia", &direct_args);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(rows(&relayed), rows(&direct), "relayed {relayed}\ndirect {direct}");
    assert_eq!(rows(&relayed).len(), 6);
    for i in 0..4 {
        let name = format!("host-{i}");
        let via = host_entry(&relayed, &name)["via"]
            .as_str()
            .unwrap_or_else(|| panic!("via for {name}: {relayed}"));
        let relay: usize = via.trim_start_matches("host-").parse().expect("a host's name");
        assert_eq!(dc(relay), dc(i), "{name} asked by a relay of its own datacenter");
        assert_eq!(host_entry(&relayed, &name)["status"], "ok");
        assert!(host_entry(&direct, &name).get("via").is_none(), "direct: no via: {direct}");
    }

    // A relay first asks each host for a few rows (two of three here), and asks again the
    // host whose every row it took: one per datacenter, three requests each, the same table.
    let relayed_requests =
        |s: &Setup| s.k2i.iter().map(|k| k.stderr().matches("relayed request").count()).sum::<usize>();
    let before = relayed_requests(&s);
    let query = ["-o", "json", "ps", "--sort", "pid,cmd", "--limit", "3"];
    let (relayed, code, stderr) = s.json("olivia", &query);
    assert_eq!(code, 0, "{stderr}");
    let (direct, _, _) = s.json("olivia", &[&["--relay", "never"][..], &query].concat());
    assert_eq!(rows(&relayed), rows(&direct), "relayed {relayed}\ndirect {direct}");
    assert_eq!(rows(&relayed).len(), 3);
    assert_eq!(relayed_requests(&s) - before, 6, "two rounds in each datacenter");

    // Every row, unsorted: the same set; containers and top answer through relays too.
    let (all_relayed, _, _) = s.json("olivia", &["-o", "json", "ps"]);
    let (all_direct, _, _) = s.json("olivia", &["--relay", "never", "-o", "json", "ps"]);
    let set = |d: &Value| rows(d).into_iter().collect::<BTreeSet<_>>();
    assert_eq!(set(&all_relayed), set(&all_direct));
    let (containers, code, stderr) = s.json("olivia", &["-o", "json", "containers"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(containers["hosts"].as_array().unwrap().iter().all(|h| h["via"].is_string()), "{containers}");
    let (top, code, stderr) = s.json("olivia", &["-o", "json", "top", "--once", "--limit", "3"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(top["summaries"].as_array().unwrap().len(), 4, "{top}");
    assert_eq!(top["processes"].as_array().unwrap().len(), 3, "{top}");
    assert!(top["hosts"].as_array().unwrap().iter().all(|h| h["via"].is_string()), "{top}");

    // Refreshing: three frames, each through the relays (the same channels, kept open).
    let out = s.dcos("olivia", &["-o", "ndjson", "top", "-n", "3", "--interval", "300ms"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let frames: Vec<Value> =
        String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(frames.len(), 3);
    for f in &frames {
        assert_eq!(f["summaries"].as_array().unwrap().len(), 4, "{f}");
        assert!(f["hosts"].as_array().unwrap().iter().all(|h| h["via"].is_string()), "{f}");
    }

    // k2i's log names the operator and the relay that asked for her.
    for (i, k2i) in s.k2i.iter().enumerate() {
        let via = host_entry(&relayed, &format!("host-{i}"))["via"].as_str().unwrap().to_string();
        let log = k2i.stderr();
        assert!(
            log.lines().any(|l| l.contains("relayed request") && l.contains("olivia") && l.contains(&via)),
            "host-{i}'s k2i names olivia and {via}:\n{log}"
        );
    }

    // `--relay always` with one datacenter relays; without a seed it is bad usage.
    let (one_dc, code, _) =
        s.json("olivia", &["--relay", "always", "--dc", "dc-b", "-o", "json", "ps", "--limit", "1"]);
    assert_eq!(code, 0);
    assert!(one_dc["hosts"].as_array().unwrap().iter().all(|h| h["via"].is_string()), "{one_dc}");
    let out = Command::new(dcos_tests::bin("dcos"))
        .args(["--relay", "always", "--hosts", &s.fleet.host(0).addr.to_string(), "ps"])
        .env_remove("DCOS_SEED")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_killed_mid_request_leaves_its_hosts_unreachable_within_the_timeout() {
    let mut s = setup().await;
    // host-3's k2i stops answering (its connections open, nothing comes back): a relay
    // asking it waits until its deadline.
    let k2i3 = s.k2i[3].init_pid().expect("k2i's pid");
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(k2i3 as i32), nix::sys::signal::Signal::SIGSTOP)
        .unwrap();

    let started = Instant::now();
    let child = s
        .dcos("olivia", &["--timeout", "10s", "-o", "json", "ps"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("dcos starts");
    // The relay of dc-b is the one whose request reached host-2's k2i.
    let relay: usize = eventually(Duration::from_secs(8), "dc-b's relay to ask host-2", || {
        let log = s.k2i[2].stderr();
        async move {
            let line =
                log.lines().find(|l| l.contains("relayed request") && l.contains("olivia"))?.to_string();
            ["host-2", "host-3"].iter().position(|h| {
                line.contains(&format!("relay={h}")) || line.contains(&format!("relayed request: {h} "))
            })
        }
    })
    .await
        + 2;
    let mut killed = s.middlecon[relay].take().expect("the relay's middlecon");
    s.fleet.kill(&mut killed);
    let killed_at = started.elapsed();
    let out = child.wait_with_output().unwrap();
    let took = started.elapsed();
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(k2i3 as i32), nix::sys::signal::Signal::SIGCONT)
        .unwrap();

    let stderr = String::from_utf8_lossy(&out.stderr);
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {stderr}"));
    assert_eq!(out.status.code(), Some(3), "partial: {stderr}");
    assert!(took < killed_at + Duration::from_secs(3), "done {took:?}, the relay killed at {killed_at:?}");
    assert!(took < Duration::from_secs(10), "within --timeout: {took:?}");
    let relay_name = format!("host-{relay}");
    let h3 = host_entry(&doc, "host-3");
    assert_eq!(h3["status"], "unreachable", "{doc}");
    assert_eq!(h3["via"], relay_name.as_str());
    assert!(h3["error"].as_str().unwrap().contains(&relay_name), "{h3}");
    assert!(stderr.contains("host-3") && stderr.contains("unreachable"), "{stderr}");
    // host-2 is ok if the relay passed its answer on before it died, else unreachable
    // through it too; dc-a is untouched; every host is reported.
    assert_eq!(doc["hosts"].as_array().unwrap().len(), 4, "every host reported: {doc}");
    let h2 = host_entry(&doc, "host-2");
    assert!(h2["status"] == "ok" || h2["status"] == "unreachable", "{h2}");
    assert_eq!(h2["via"], relay_name.as_str());
    for h in ["host-0", "host-1"] {
        assert_eq!(host_entry(&doc, h)["status"], "ok", "{doc}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_relayed_can_write() {
    let s = setup().await;
    let k2i = s.fleet.host(2).k2i_url();
    let body = || Some(br#"{"value":"10"}"#.to_vec());
    let t = Duration::from_secs(5);

    // A host asking k2i on someone's behalf may read with their role, never write, even
    // for an admin.
    let host = s.pki.client("host-1");
    let as_viewer =
        [(ON_BEHALF_OF_HEADER, "olivia".to_string()), (ON_BEHALF_OF_ROLE_HEADER, "viewer".to_string())];
    let as_admin =
        [(ON_BEHALF_OF_HEADER, "admin".to_string()), (ON_BEHALF_OF_ROLE_HEADER, "admin".to_string())];
    host.request_with("GET", &k2i, "/v1/host", None, &as_viewer, t).await.expect("a relayed read");
    for headers in [&as_viewer, &as_admin] {
        let e =
            host.request_with("PUT", &k2i, "/v1/sysctl/vm.swappiness", body(), headers, t).await.unwrap_err();
        assert!(
            matches!(&e, FetchError::Http { status: 403, message, .. } if message.contains("never relayed")),
            "{e}"
        );
    }
    // Only a host certificate may speak for someone else.
    let viewer = s.pki.client("olivia");
    let as_admin_from_viewer =
        [(ON_BEHALF_OF_HEADER, "root".into()), (ON_BEHALF_OF_ROLE_HEADER, "admin".into())];
    let e = viewer.request_with("GET", &k2i, "/v1/host", None, &as_admin_from_viewer, t).await.unwrap_err();
    assert!(matches!(&e, FetchError::Http { status: 403, .. }), "{e}");

    // The relay's API has no write to ask for: a request naming none is refused, and a
    // viewer's relayed reads reach k2i as a viewer.
    let channel = mesh::channel(&s.fleet, &s.pki, 2, "olivia", Role::Viewer).await;
    let mut relay = pb::relay_client::RelayClient::new(channel);
    let hosts = vec![pb::FanOutHost { name: "host-3".into(), k2i: s.fleet.host(3).k2i_url() }];
    let bad = pb::FanOutRequest {
        kind: pb::FanOutKind::Unspecified as i32,
        hosts: hosts.clone(),
        ..Default::default()
    };
    let status = relay.fan_out(bad).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    let read = pb::FanOutRequest {
        kind: pb::FanOutKind::Processes as i32,
        query: "limit=1".into(),
        hosts,
        timeout_ms: 3000,
        live_ms: 0,
    };
    let mut stream = relay.fan_out(read).await.unwrap().into_inner();
    let reply = stream.message().await.unwrap().expect("an answer");
    assert_eq!(reply.answers[0].status, "ok", "{reply:?}");
    let log = s.k2i[3].stderr();
    assert!(
        log.lines().any(|l| l.contains("relayed request") && l.contains("olivia") && l.contains("viewer")),
        "{log}"
    );
    // And `dcos sysctl set` is never relayed: it goes to the host itself.
    let out = s.dcos("olivia", &["sysctl", "set", "vm.swappiness=10", "--host", "host-3"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0), "a viewer cannot write: {stderr}");
    assert!(!stderr.contains("relay"), "{stderr}");
}

/// Relayed `/v1/top` requests in `k2i`'s log.
fn relayed_tops(k2i: &HostProcess) -> usize {
    k2i.stderr().lines().filter(|l| l.contains("relayed request") && l.contains("/v1/top")).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refreshing_top_is_answered_from_watches_and_a_silent_host_becomes_timeout() {
    let mut s = setup().await;
    let asked_before: Vec<usize> = s.k2i.iter().map(relayed_tops).collect();
    let k2i3 = s.k2i[3].init_pid().expect("k2i's pid");
    let stop = move |sig| nix::sys::signal::kill(nix::unistd::Pid::from_raw(k2i3 as i32), sig).unwrap();

    // The fleet's first processes by pid, asked of every host directly.
    let top_args = ["top", "--sort", "pid", "--limit", "5"];
    let direct_args: Vec<&str> =
        ["--relay", "never", "-o", "json"].iter().chain(&top_args).copied().chain(["--once"]).collect();
    let (direct, code, stderr) = s.json("olivia", &direct_args);
    assert_eq!(code, 0, "{stderr}");
    let live_args: Vec<&str> = ["--timeout", "2s", "-o", "ndjson"]
        .iter()
        .chain(&top_args)
        .copied()
        .chain(["-n", "9", "--interval", "500ms"])
        .collect();
    let mut child = s
        .dcos("olivia", &live_args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("dcos starts");
    let stdout = child.stdout.take().unwrap();
    let frames = tokio::task::spawn_blocking(move || {
        use std::io::BufRead;
        let mut frames: Vec<Value> = Vec::new();
        for line in std::io::BufReader::new(stdout).lines() {
            frames.push(serde_json::from_str(&line.unwrap()).expect("a JSON frame"));
            if frames.len() == 2 {
                // host-3's k2i stops answering (its connections open, nothing comes).
                stop(nix::sys::signal::Signal::SIGSTOP);
            }
        }
        frames
    })
    .await
    .unwrap();
    let out = child.wait_with_output().unwrap();
    stop(nix::sys::signal::Signal::SIGCONT);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(frames.len(), 9, "{stderr}");
    assert_eq!(out.status.code(), Some(3), "host-3 silent at the end: partial: {stderr}");

    for (n, f) in frames.iter().enumerate() {
        assert_eq!(f["hosts"].as_array().unwrap().len(), 4, "frame {n}: every host reported: {f}");
        for i in 0..4 {
            let h = host_entry(f, &format!("host-{i}"));
            assert!(h["via"].is_string(), "frame {n}: {h}");
            if h["status"] == "ok" {
                // Every answer says how old it is, and none is older than --timeout.
                let age = h["age_ms"].as_u64().unwrap_or_else(|| panic!("frame {n}: age_ms in {h}"));
                assert!(age <= 2000, "frame {n}: {h}");
            } else {
                assert_eq!(i, 3, "frame {n}: only host-3 fails: {f}");
                assert_eq!(h["status"], "timeout", "frame {n}: {h}");
                assert!(h.get("age_ms").is_none(), "frame {n}: {h}");
            }
        }
        let summaries = f["summaries"].as_array().unwrap().len();
        let ok = f["hosts"].as_array().unwrap().iter().filter(|h| h["status"] == "ok").count();
        assert_eq!(summaries, ok, "frame {n}: a summary for each host answering: {f}");
    }
    for (n, frame) in frames.iter().enumerate().take(2) {
        assert_eq!(frame["summaries"].as_array().unwrap().len(), 4, "frame {n}: {frame}");
        // Merged from the watched documents: the table the hosts give when asked.
        let pids = |d: &Value| -> Vec<(String, i64)> {
            d["processes"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| (p["host"].as_str().unwrap().into(), p["pid"].as_i64().unwrap()))
                .collect()
        };
        assert_eq!(pids(frame), pids(&direct), "frame {n}: {frame}\ndirect: {direct}");
        assert_eq!(pids(&direct).len(), 5);
    }
    let last = &frames[8];
    assert_eq!(host_entry(last, "host-3")["status"], "timeout", "silent for 3 s: {last}");
    // Each k2i was asked once for the nine frames: the relays watched, they did not poll.
    for (i, k2i) in s.k2i.iter().enumerate().take(3) {
        assert_eq!(relayed_tops(k2i), asked_before[i] + 1, "host-{i}:\n{}", k2i.stderr());
    }
}
