//! k2i end to end: the real binary over real HTTPS with certificates from a real CA,
//! checked against what `ps` and the kernel say.

use dcos_core::model::{
    ContainerDetail, ContainerList, HostSummary, ProcList, ProcessDetail, SysctlValue, Top,
};
use dcos_core::tls::{Identity, TlsFiles};
use dcos_core::Role;
use dcos_tests::{eventually, urlencode, Daemon, Pki, Spawned};
use k2i_client::{FetchError, K2iClient};
use serde_json::Value;
use std::process::Command;
use std::time::Duration;

const T: Duration = Duration::from_secs(5);

struct Fixture {
    pki: Pki,
    k2i: Daemon,
    admin: K2iClient,
}

fn start(extra: &[&str]) -> Fixture {
    let pki = Pki::new();
    let host = pki.issue("node-a", Role::Host);
    let mut args = vec!["--name", "node-a", "--dc", "dc-test"];
    if !extra.contains(&"--sample-interval") {
        args.extend(["--sample-interval", "200ms"]);
    }
    args.extend(extra);
    let k2i = Daemon::k2i(&host, &args).expect("k2i starts");
    let admin = pki.client("admin");
    Fixture { pki, k2i, admin }
}

async fn procs(c: &K2iClient, url: &str, query: &str) -> ProcList<Value> {
    c.get_json(url, &format!("/v1/proc?{query}"), T).await.unwrap_or_else(|e| panic!("/v1/proc?{query}: {e}"))
}

fn http_status(r: Result<impl std::fmt::Debug, FetchError>) -> (u16, String, String) {
    match r {
        Err(FetchError::Http { status, code, message, .. }) => (status, code, message),
        other => panic!("expected an HTTP error, got {other:?}"),
    }
}

/// `ps -o FIELD= -p PID`, trimmed.
fn ps(pid: i32, field: &str) -> String {
    let out = Command::new("ps").args(["-o", &format!("{field}="), "-p", &pid.to_string()]).output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[tokio::test]
async fn spawned_processes_match_what_ps_reports() {
    let f = start(&[]);
    let a = Spawned::new("sleep", &["3600.25"]);
    let b = Spawned::new("sh", &["-c", "sleep 3600.5; echo done", "dcos-marker"]);
    for child in [&a, &b] {
        let pid = child.pid();
        // k2i may have sampled the child between fork and exec (as the test binary), or in
        // the middle of its exec (the new program named, its memory not mapped yet); wait
        // for the sample that shows it after the exec, as `ps` does now.
        let comm = ps(pid, "comm");
        let list = eventually(T, "the child in the table, after its exec", || {
            let c = f.admin.clone();
            let url = f.k2i.url.clone();
            let comm = comm.clone();
            async move {
                let l: ProcList = c.get_json(&url, &format!("/v1/proc?pid={pid}"), T).await.ok()?;
                let after_exec =
                    l.total == 1 && *l.processes[0].cmd == *comm && l.processes[0].mem_rss_bytes > 0;
                after_exec.then_some(l)
            }
        })
        .await;
        let p = &list.processes[0];
        assert_eq!(list.host, "node-a");
        assert_eq!(list.dc, "dc-test");
        assert_eq!(p.pid.to_string(), ps(pid, "pid"));
        assert_eq!(p.ppid.to_string(), ps(pid, "ppid"));
        assert_eq!(*p.user, *ps(pid, "user"));
        assert_eq!(*p.cmd, *ps(pid, "comm"));
        assert_eq!(p.cmdline.join(" "), ps(pid, "args"));
        assert_eq!(p.ppid, std::process::id() as i32, "spawned by this test");
        assert!(p.exe.is_some(), "exe is readable as root");
        assert!(p.mem_rss_bytes > 0 && p.mem_vsz_bytes >= p.mem_rss_bytes);
        assert!(p.start_time.ends_with('Z'), "RFC 3339 UTC: {}", p.start_time);
    }
}

#[tokio::test]
async fn a_busy_loop_shows_cpu_and_a_sleeper_does_not() {
    let f = start(&[]);
    let busy = Spawned::new("sh", &["-c", "while :; do :; done"]);
    let idle = Spawned::new("sleep", &["3600"]);
    let (bp, ip) = (busy.pid(), idle.pid());
    let cpu_of =
        |list: &ProcList, pid: i32| list.processes.iter().find(|p| p.pid == pid).and_then(|p| p.cpu_percent);
    // Busy for at least two sample intervals; take the best of a few samples so a
    // momentarily loaded test machine does not decide the outcome.
    let mut best_busy: f64 = 0.0;
    let mut idle_seen = Vec::new();
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let list: ProcList =
            f.admin.get_json(&f.k2i.url, &format!("/v1/proc?pid={bp},{ip}"), T).await.unwrap();
        if let Some(c) = cpu_of(&list, bp) {
            best_busy = best_busy.max(c);
        }
        if let Some(c) = cpu_of(&list, ip) {
            idle_seen.push(c);
        }
        if best_busy > 50.0 && idle_seen.len() >= 3 {
            break;
        }
    }
    assert!(best_busy > 50.0, "busy loop at {best_busy}% of a core");
    assert!(!idle_seen.is_empty() && idle_seen.iter().all(|c| *c < 5.0), "sleeper at {idle_seen:?}");
    let list: ProcList =
        f.admin.get_json(&f.k2i.url, &format!("/v1/proc?pid={bp},{ip}&sort=-cpu"), T).await.unwrap();
    assert_eq!(list.processes[0].pid, bp, "sorted by CPU, the busy loop comes first");
}

#[tokio::test]
async fn query_parameters_filter_sort_limit_and_project() {
    let f = start(&[]);
    let marker = format!("dcos-q-{}", std::process::id());
    let kids: Vec<Spawned> =
        (0..3).map(|i| Spawned::new("sh", &["-c", &format!("sleep 36{i}0; : {marker}"), &marker])).collect();
    let me = std::process::id();
    let url = &f.k2i.url;
    let c = &f.admin;
    eventually(T, "the three children, settled in their sleep", || async {
        let l = procs(c, url, &format!("ppid={me}&cmd={marker}&state=S")).await;
        (l.total == 3).then_some(())
    })
    .await;

    // cmd (substring of the command line), ppid, user, state
    let l = procs(c, url, &format!("cmd={marker}&ppid={me}&user=root&state=S")).await;
    assert_eq!(l.total, 3);
    let pids: Vec<i64> = l.processes.iter().map(|p| p["pid"].as_i64().unwrap()).collect();
    let mut want: Vec<i64> = kids.iter().map(|k| i64::from(k.pid())).collect();
    want.sort();
    assert_eq!(pids, want, "default order is pid ascending");
    assert_eq!(procs(c, url, &format!("cmd={marker}&state=R")).await.total, 0);
    assert_eq!(procs(c, url, &format!("cmd={marker}&user=nobody")).await.total, 0);
    // pid
    assert_eq!(procs(c, url, &format!("pid={}", want[1])).await.total, 1);
    // sort descending; limit keeps total
    let l = procs(c, url, &format!("cmd={marker}&sort=-pid&limit=2")).await;
    assert_eq!(l.total, 3);
    assert_eq!(l.processes.len(), 2);
    assert_eq!(l.processes[0]["pid"].as_i64(), Some(want[2]));
    // projection, in the order asked
    let l = procs(c, url, &format!("cmd={marker}&fields=pid,cmd,cpu&limit=1")).await;
    let keys: Vec<&String> = l.processes[0].as_object().unwrap().keys().collect();
    assert_eq!(keys, ["pid", "cmd", "cpu_percent"]);
    // q expressions
    let q = format!("cmdline ~ \"{marker}\" and pid >= {} and not (user != \"root\")", want[1]);
    assert_eq!(procs(c, url, &format!("q={}", urlencode(&q))).await.total, 2, "{q}");
    let q = format!("cmdline ~ \"{marker}\" and rss > 1G");
    assert_eq!(procs(c, url, &format!("q={}", urlencode(&q))).await.total, 0, "{q}");
    // container=none: these run in no container
    assert_eq!(procs(c, url, &format!("cmd={marker}&container=none")).await.total, 3);
    // /v1/proc/cmd/{name} is the same as ?cmd=
    let l: ProcList = c.get_json(url, &format!("/v1/proc/cmd/{marker}"), T).await.unwrap();
    assert_eq!(l.total, 3);
    // threads: k2i itself runs several threads, its sampler among them, each row once
    let k2i_pid = i64::from(f.k2i.pid());
    let l = procs(c, url, &format!("pid={k2i_pid}&threads=true")).await;
    assert!(l.processes.len() > 1, "k2i has threads: {}", l.processes.len());
    assert!(l.processes.iter().all(|t| t["tid"].is_i64() && t["pid"].as_i64() == Some(k2i_pid)));
    let tids: Vec<i64> = l.processes.iter().map(|t| t["tid"].as_i64().unwrap()).collect();
    assert!(tids.windows(2).all(|w| w[0] < w[1]), "each thread once, by tid: {tids:?}");
    assert!(tids.contains(&k2i_pid), "the main thread's tid is the pid: {tids:?}");
    let names: Vec<&str> = l.processes.iter().map(|t| t["cmd"].as_str().unwrap()).collect();
    assert!(names.contains(&"k2i-sampler"), "threads carry their own names: {names:?}");
    // and of several processes at once: one row per thread of each (these have one)
    let l = procs(c, url, &format!("cmd={marker}&threads=true")).await;
    let rows: Vec<(i64, i64)> =
        l.processes.iter().map(|t| (t["pid"].as_i64().unwrap(), t["tid"].as_i64().unwrap())).collect();
    assert_eq!(rows, want.iter().map(|&p| (p, p)).collect::<Vec<_>>(), "{rows:?}");
    // kernel threads only when asked
    let with = procs(c, url, "kernel=true&pid=2").await;
    let without = procs(c, url, "pid=2").await;
    assert_eq!((with.total, without.total), (1, 0), "pid 2 is kthreadd");
    // top: host summary plus top processes
    let top: Value = c.get_json(url, "/v1/top?limit=3", T).await.unwrap();
    assert_eq!(top["processes"].as_array().unwrap().len(), 3);
    assert_eq!(top["host"]["name"], "node-a");
    drop(kids);
}

#[tokio::test]
async fn bad_queries_get_400_with_the_position_of_the_fault() {
    let f = start(&[]);
    let (c, url) = (&f.admin, &f.k2i.url);
    let err = c.get_json::<Value>(url, &format!("/v1/proc?q={}", urlencode("cpu > ")), T).await;
    let (status, code, message) = http_status(err);
    assert_eq!((status, code.as_str()), (400, "bad_query"));
    assert!(message.contains("position 6"), "{message}");
    // The position is a field of the error body too.
    match c.get_json::<Value>(url, &format!("/v1/proc?q={}", urlencode("user == 5")), T).await {
        Err(FetchError::Http { status: 400, position, .. }) => assert_eq!(position, Some(8)),
        other => panic!("expected 400 with a position, got {other:?}"),
    }
    for bad in ["limit=-1", "sort=nonsense", "frobnicate=1", "threads=maybe", "pid=abc", "fields=pid,nope"] {
        let (s, code, m) = http_status(c.get_json::<Value>(url, &format!("/v1/proc?{bad}"), T).await);
        assert_eq!((s, code.as_str()), (400, "bad_query"), "{bad}: {m}");
    }
    let (s, code, _) = http_status(c.get_json::<Value>(url, "/v1/no/such/thing", T).await);
    assert_eq!((s, code.as_str()), (404, "not_found"));
}

#[tokio::test]
async fn a_process_that_is_gone_is_404_and_a_live_one_has_details() {
    let f = start(&[]);
    let live = Spawned::new("sleep", &["3600"]);
    let pid = live.pid();
    let d: ProcessDetail = f.admin.get_json(&f.k2i.url, &format!("/v1/proc/{pid}"), T).await.unwrap();
    assert_eq!(d.process.pid, pid);
    assert!(d.fds.contains_key("0"), "stdin is open: {:?}", d.fds);
    assert!(d.namespaces.contains_key("pid") && d.namespaces.contains_key("net"));
    assert!(d.limits.contains_key("max_open_files"));
    drop(live);
    let (s, code, _) =
        http_status(f.admin.get_json::<Value>(&f.k2i.url, &format!("/v1/proc/{pid}"), T).await);
    assert_eq!((s, code.as_str()), (404, "not_found"));
    let (s, code, _) = http_status(f.admin.get_json::<Value>(&f.k2i.url, "/v1/proc/notapid", T).await);
    assert_eq!((s, code.as_str()), (400, "bad_pid"));
}

#[tokio::test]
async fn identity_is_required_except_for_health_and_the_api_document() {
    let f = start(&[]);
    let roots = dcos_core::tls::load_roots(&f.pki.files("admin").ca).unwrap();
    let anon = K2iClient::anonymous(roots).unwrap();
    let (s, code, _) = http_status(anon.get_json::<Value>(&f.k2i.url, "/v1/host", T).await);
    assert_eq!((s, code.as_str()), (401, "unauthenticated"));
    let health: Value = anon.get_json(&f.k2i.url, "/healthz", T).await.unwrap();
    assert_eq!(health["status"], "ok");
    let doc: Value = anon.get_json(&f.k2i.url, "/v1/openapi.json", T).await.unwrap();
    for path in [
        "/v1/proc",
        "/v1/proc/{pid}",
        "/v1/top",
        "/v1/containers",
        "/v1/sysctl/{key}",
        "/metrics",
        "/v1/host",
    ] {
        assert!(doc["paths"].get(path).is_some(), "OpenAPI lacks {path}");
    }
    assert!(doc["components"]["schemas"]["Process"]["properties"]["cpu_percent"].is_object());
    // A client certificate from another CA fails the handshake, even for /healthz.
    let other = Pki::new();
    let mut foreign = other.files("admin");
    foreign.ca = f.pki.files("admin").ca;
    let stranger = K2iClient::new(&Identity::load(&foreign).unwrap()).unwrap();
    let err = stranger.get_json::<Value>(&f.k2i.url, "/v1/host", T).await.unwrap_err();
    assert!(matches!(err, FetchError::Tls(_) | FetchError::Unreachable(_)), "{err:?}");
    assert!(stranger.get_json::<Value>(&f.k2i.url, "/healthz", T).await.is_err());
}

#[tokio::test]
async fn bearer_tokens_work_only_when_they_hash_to_an_entry() {
    let pki = Pki::new();
    let tokens = pki.dir.path().join("tokens");
    let line = format!("{} viewer grafana\n", dcos_core::tokens::hash_hex("let-me-in"));
    std::fs::write(&tokens, line).unwrap();
    let host = pki.issue("node-a", Role::Host);
    let args = ["--tokens", tokens.to_str().unwrap(), "--sysctl-allow", "kernel.domainname"];
    let k2i = Daemon::k2i(&host, &args).unwrap();
    let roots = dcos_core::tls::load_roots(&host.ca).unwrap();
    let good = K2iClient::with_token(roots.clone(), "let-me-in".into()).unwrap();
    let summary: HostSummary = good.get_json(&k2i.url, "/v1/host", T).await.unwrap();
    assert!(summary.processes > 0 && summary.mem_total_bytes > 0 && summary.cpus > 0);
    let wrong = K2iClient::with_token(roots, "let-me-inn".into()).unwrap();
    let (s, code, _) = http_status(wrong.get_json::<Value>(&k2i.url, "/v1/host", T).await);
    assert_eq!((s, code.as_str()), (401, "invalid_token"));
    // A viewer token cannot write.
    let body = br#"{"value":"x"}"#.to_vec();
    let put = good.request("PUT", &k2i.url, "/v1/sysctl/kernel.domainname", Some(body), T).await;
    let (s, code, _) = http_status(put);
    assert_eq!((s, code.as_str()), (403, "forbidden"));
    let stored = std::fs::read_to_string(&tokens).unwrap();
    assert!(!stored.contains("let-me-in"), "plain tokens are never stored");
}

#[tokio::test]
async fn sysctl_reads_and_admin_writes_only_allowed_keys_with_an_audit_record() {
    let pki = Pki::new();
    let host = pki.issue("node-a", Role::Host);
    pki.issue("watcher", Role::Viewer);
    let audit = pki.dir.path().join("audit.log");
    // Its own UTS namespace, so the write below changes nothing outside this test.
    let args = ["--sysctl-allow", "kernel.domainname,vm.nothing*", "--audit-log", audit.to_str().unwrap()];
    let k2i = Daemon::k2i_wrapped(&["unshare", "--uts"], &host, &args).unwrap();
    let admin = pki.client("admin");
    let viewer = pki.client("watcher");
    let url = &k2i.url;
    let host_domain = std::fs::read_to_string("/proc/sys/kernel/domainname").unwrap();

    let v: SysctlValue = viewer.get_json(url, "/v1/sysctl/kernel.ostype", T).await.unwrap();
    assert_eq!(v.value, "Linux");
    let listed: std::collections::BTreeMap<String, String> =
        viewer.get_json(url, "/v1/sysctl?prefix=kernel.os", T).await.unwrap();
    assert!(listed.contains_key("kernel.ostype") && listed.contains_key("kernel.osrelease"), "{listed:?}");
    assert!(listed.keys().all(|k| k.starts_with("kernel.os")));

    let put = |c: &K2iClient, key: &str, value: &str| {
        let body = serde_json::to_vec(&serde_json::json!({ "value": value })).unwrap();
        let (c, path, url) = (c.clone(), format!("/v1/sysctl/{key}"), url.clone());
        async move { c.request("PUT", &url, &path, Some(body), T).await }
    };
    let (s, code, _) = http_status(put(&viewer, "kernel.domainname", "evil").await);
    assert_eq!((s, code.as_str()), (403, "forbidden"), "viewer");
    let (s, code, m) = http_status(put(&admin, "kernel.hostname", "evil").await);
    assert_eq!((s, code.as_str()), (403, "not_allowed"), "outside the allow-list: {m}");
    let written = put(&admin, "kernel.domainname", "dcos-test.example").await.unwrap();
    let written: SysctlValue = serde_json::from_slice(&written).unwrap();
    assert_eq!(written.value, "dcos-test.example");
    assert_eq!(written.old_value.as_deref(), Some(host_domain.trim()));
    let v: SysctlValue = admin.get_json(url, "/v1/sysctl/kernel.domainname", T).await.unwrap();
    assert_eq!(v.value, "dcos-test.example");
    let now_host = std::fs::read_to_string("/proc/sys/kernel/domainname").unwrap();
    assert_eq!(now_host, host_domain, "the host's own value is untouched");

    let log = std::fs::read_to_string(&audit).unwrap();
    let records: Vec<Value> = log.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let ok = records.iter().find(|r| r["result"] == "ok").expect("audited write");
    assert_eq!(ok["who"], "admin");
    assert_eq!(ok["key"], "kernel.domainname");
    assert_eq!(ok["new"], "dcos-test.example");
    assert_eq!(ok["old"], host_domain.trim());
    assert!(records.iter().any(|r| r["result"] == "not_allowed" && r["key"] == "kernel.hostname"));

    let (s, code, _) = http_status(admin.get_json::<Value>(url, "/v1/sysctl/kernel.no_such_key", T).await);
    assert_eq!((s, code.as_str()), (404, "not_found"));
    let (s, code, _) =
        http_status(admin.get_json::<Value>(url, "/v1/sysctl/..%2F..%2Fetc%2Fpasswd", T).await);
    assert_eq!((s, code.as_str()), (400, "bad_key"));
    let big = vec![b'x'; 100 * 1024];
    let (s, code, _) =
        http_status(admin.request("PUT", url, "/v1/sysctl/kernel.domainname", Some(big), T).await);
    assert_eq!((s, code.as_str()), (413, "too_large"));
    let (s, code, _) =
        http_status(admin.request("PUT", url, "/v1/sysctl/kernel.domainname", Some(b"{".to_vec()), T).await);
    assert_eq!((s, code.as_str()), (400, "bad_body"));
}

#[tokio::test]
async fn metrics_are_prometheus_text() {
    let f = start(&[]);
    let _ = f.admin.get_json::<Value>(&f.k2i.url, "/v1/host", T).await.unwrap();
    let body = f.admin.request("GET", &f.k2i.url, "/metrics", None, T).await.unwrap();
    let text = String::from_utf8(body.to_vec()).unwrap();
    for name in [
        "k2i_host_processes ",
        "k2i_http_requests_total{",
        "k2i_host_memory_total_bytes ",
        "k2i_sample_duration_seconds ",
    ] {
        assert!(text.contains(name), "metrics lack {name}:\n{text}");
    }
    assert!(text.contains("route=\"/v1/host\""));
}

#[test]
fn bad_settings_stop_k2i_before_it_binds_with_exit_2() {
    let pki = Pki::new();
    let host = pki.issue("node-a", Role::Host);
    let run = |tls: &TlsFiles, args: &[&str]| {
        Command::new(dcos_tests::bin("k2i")).args(tls.flags()).args(args).output().unwrap()
    };
    for (args, setting) in [
        (&["--sample-interval", "soon"][..], "sample-interval"),
        (&["--listen", "127.0.0.1"][..], "listen"),
        (&["--sysctl-allow", "a b"][..], "sysctl-allow"),
        (&["--tokens", "/nonexistent"][..], "tokens"),
    ] {
        let out = run(&host, args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(&format!("`{setting}`")), "{args:?}: {err}");
        assert!(out.stdout.is_empty(), "nothing was bound: {}", String::from_utf8_lossy(&out.stdout));
    }
    // An expired certificate is named.
    let mut spec = dcos_core::pki::LeafSpec::new("expired", Role::Host);
    spec.not_before = time_ago(10);
    spec.not_after = time_ago(1);
    let out = run(&pki.issue_spec(&spec), &[]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("expired") && err.contains("`cert`"), "{err}");
}

fn time_ago(days: i64) -> ::time::OffsetDateTime {
    ::time::OffsetDateTime::now_utc() - ::time::Duration::days(days)
}

#[test]
fn sigterm_stops_k2i_cleanly() {
    let pki = Pki::new();
    let mut k2i = Daemon::k2i(&pki.issue("node-a", Role::Host), &[]).unwrap();
    let pid = nix::unistd::Pid::from_raw(k2i.pid());
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let start = std::time::Instant::now();
    let status = loop {
        if let Some(s) = k2i.child.try_wait().unwrap() {
            break s;
        }
        assert!(start.elapsed() < Duration::from_secs(5), "k2i still running 5 s after SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(0), "{}", k2i.stderr());
}

#[tokio::test]
async fn a_runc_container_and_its_processes_are_attributed_to_it() {
    let runc = dcos_localfleet::oci_runtime("runc").expect("runc is installed by scripts/setup.sh");
    let work = tempfile::tempdir().unwrap();
    let state = work.path().join("runc-state");
    let id = format!("k2i-test-{}", std::process::id());
    let cgroup = format!("/dcos-test/{id}");
    let container =
        dcos_tests::oci::Container::run(&runc, &state, work.path(), &id, &cgroup, &["sleep", "3600"])
            .expect("runc runs a busybox container");
    let init = container.pid().unwrap();
    let f = start(&["--oci-root", &format!("runc={}", state.display())]);
    let (c, url) = (&f.admin, &f.k2i.url);
    let list: ContainerList = eventually(T, "the container in /v1/containers", || async {
        let l: ContainerList = c.get_json(url, "/v1/containers", T).await.ok()?;
        l.containers.iter().any(|x| *x.id == *id && x.processes >= 1).then_some(l)
    })
    .await;
    let ct = list.containers.iter().find(|x| *x.id == *id).unwrap();
    assert_eq!(ct.runtime, dcos_core::model::Runtime::Runc);
    assert_eq!(ct.status, "running");
    assert_eq!(ct.pid, Some(init));
    assert_eq!(&*ct.cgroup, cgroup.as_str());
    assert!(ct.mem_bytes.is_some_and(|m| m > 0), "memory from the cgroup: {:?}", ct.mem_bytes);
    assert_eq!(ct.bundle.as_deref(), Some(container.bundle.to_str().unwrap()));

    let l: ProcList = c.get_json(url, &format!("/v1/proc?pid={init}"), T).await.unwrap();
    let p = &l.processes[0];
    assert_eq!(&*p.cmd, "sleep");
    let cref = p.container.as_ref().expect("attributed to a container");
    assert_eq!((&*cref.id, cref.runtime), (id.as_str(), dcos_core::model::Runtime::Runc));
    let by_prefix: ProcList = c.get_json(url, &format!("/v1/proc?container={}", &id[..10]), T).await.unwrap();
    assert!(by_prefix.processes.iter().any(|q| q.pid == init));
    let none: ProcList = c.get_json(url, &format!("/v1/proc?pid={init}&container=none"), T).await.unwrap();
    assert_eq!(none.total, 0);

    let detail: ContainerDetail = c.get_json(url, &format!("/v1/containers/{id}"), T).await.unwrap();
    assert!(detail.processes.iter().any(|q| q.pid == init));
    let (s, code, _) = http_status(c.get_json::<Value>(url, "/v1/containers/no-such-container", T).await);
    assert_eq!((s, code.as_str()), (404, "not_found"));
}

#[tokio::test]
async fn an_idle_agent_samples_less_yet_answers_with_fresh_data() {
    let f = start(&["--sample-interval", "100ms", "--idle-after", "300ms", "--idle-interval", "20s"]);
    // Nobody asks for 2 s: at 100 ms that would be 20 samples; idle, it takes about 3.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let body = f.admin.request("GET", &f.k2i.url, "/metrics", None, T).await.unwrap();
    let text = String::from_utf8(body.to_vec()).unwrap();
    let samples: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("k2i_samples_total "))
        .and_then(|v| v.trim().parse().ok())
        .expect("k2i_samples_total");
    assert!(samples <= 8.0, "{samples} samples while idle");
    // The request that woke it was answered from a sample taken for it.
    let host: HostSummary = f.admin.get_json(&f.k2i.url, "/v1/host", T).await.unwrap();
    let sampled =
        ::time::OffsetDateTime::parse(&host.sampled_at, &::time::format_description::well_known::Rfc3339)
            .unwrap();
    let age = ::time::OffsetDateTime::now_utc() - sampled;
    assert!(age < ::time::Duration::seconds(2), "sample is {age} old");
}

/// The next line of a watch as a `/v1/top` document, within `T`.
async fn next_top(lines: &mut k2i_client::Lines) -> Top {
    let line = tokio::time::timeout(T, lines.next())
        .await
        .expect("a document within 5 s")
        .expect("the watch goes on")
        .expect("a line");
    serde_json::from_slice(&line).unwrap_or_else(|e| panic!("a /v1/top document ({e}): {line:?}"))
}

#[tokio::test]
async fn a_watched_top_sends_each_new_sample_until_k2i_stops() {
    let f = start(&[]);
    let path = "/v1/top?sort=-pid&limit=500&watch=true";
    let mut lines = f.admin.lines_with(&f.k2i.url, path, &[], T).await.expect("the watch opens");
    let first = next_top(&mut lines).await;
    assert_eq!(first.host.name, "node-a");
    // A process started after the watch opened shows up in a later document, without asking
    // again; every document is a newer sample than the one before.
    let sleeper = Spawned::new("sleep", &["3600.75"]);
    let at = |t: &Top| {
        ::time::OffsetDateTime::parse(&t.host.sampled_at, &::time::format_description::well_known::Rfc3339)
            .unwrap()
    };
    let mut last = at(&first);
    let mut seen = false;
    for _ in 0..25 {
        let top = next_top(&mut lines).await;
        assert!(at(&top) > last, "{} after {last}", top.host.sampled_at);
        last = at(&top);
        if top.processes.iter().any(|p| p.pid == sleeper.pid()) {
            seen = true;
            break;
        }
    }
    assert!(seen, "sleep {} in a watched document", sleeper.pid());
    // Not a watch: one document, as before; a bad `watch` is a 400 before anything streams.
    let one: Top = f.admin.get_json(&f.k2i.url, "/v1/top?watch=false&limit=1", T).await.unwrap();
    assert_eq!(one.processes.len(), 1);
    let (status, code, _) = http_status(f.admin.lines_with(&f.k2i.url, "/v1/top?watch=yes", &[], T).await);
    assert_eq!((status, code.as_str()), (400, "bad_query"));

    // SIGTERM ends the watch and k2i exits at once, not after the 5 s it gives connections.
    let started = std::time::Instant::now();
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(f.k2i.pid()), nix::sys::signal::Signal::SIGTERM)
        .unwrap();
    while let Some(Ok(_)) = tokio::time::timeout(T, lines.next()).await.expect("the watch ends within 5 s") {}
    let mut k2i = f.k2i;
    let status = tokio::task::spawn_blocking(move || k2i.child.wait()).await.unwrap().unwrap();
    assert_eq!(status.code(), Some(0));
    assert!(started.elapsed() < Duration::from_secs(3), "k2i took {:?} to stop", started.elapsed());
}
