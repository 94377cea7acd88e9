//! `dcos service create|ls|show|rm` as a user meets them: the real `dcos` binary against
//! the real middlecon on two network-namespace hosts, with a busybox `httpd` service run by
//! runc. A request with `curl` on a host wakes the service there; `ls` and `show` count it;
//! `rm` leaves no instance. Bad definitions (a rootfs missing on one host only, a port in
//! use on one host only, `--min` above `--max`, an unknown runtime) are refused with the
//! field named and nothing made on any host. A host whose middlecon is down is named, exit 3.
//!
//! Needs root, runc, busybox and curl; without them each test says so and skips.

use dcos_tests::workload_mesh::Mesh;
use serde_json::{json, Value};
use std::io::Write;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// Why these tests cannot run here, if they cannot.
fn missing() -> Option<String> {
    if !nix::unistd::geteuid().is_root() {
        return Some("needs root (network namespaces, containers)".into());
    }
    if dcos_localfleet::oci_runtime("runc").is_none() {
        return Some("runc is not installed".into());
    }
    if busybox().is_none() {
        return Some("busybox is not installed (busybox-static)".into());
    }
    if Command::new("curl").arg("--version").output().is_err() {
        return Some("curl is not installed".into());
    }
    None
}

fn busybox() -> Option<&'static str> {
    ["/bin/busybox", "/usr/bin/busybox"].into_iter().find(|p| Path::new(p).is_file())
}

macro_rules! require_root_runc_busybox {
    () => {
        if let Some(why) = missing() {
            eprintln!("skipped: {why}");
            return;
        }
    };
}

/// Two hosts running middlecon, an inventory naming their APIs, and a busybox root
/// filesystem whose `/www/index.html` is [`PAGE`].
struct Setup {
    mesh: Mesh,
    inventory: tempfile::NamedTempFile,
}

const PAGE: &str = "hello from a service\n";

impl std::ops::Deref for Setup {
    type Target = Mesh;

    fn deref(&self) -> &Mesh {
        &self.mesh
    }
}

impl Setup {
    fn new() -> Setup {
        let mesh = Mesh::new(2);
        let mut inventory = tempfile::NamedTempFile::new().unwrap();
        for h in mesh.fleet.hosts() {
            let (name, addr, api) = (&h.name, h.addr, h.api_addr());
            write!(inventory, "[[host]]\nname = \"{name}\"\nk2i = \"{addr}\"\napi = \"{api}\"\n\n").unwrap();
        }
        std::fs::create_dir_all(mesh.rootfs.join("www")).unwrap();
        std::fs::write(mesh.rootfs.join("www/index.html"), PAGE).unwrap();
        Setup { mesh, inventory }
    }

    /// `dcos --inventory <both hosts> args...` as admin, with `env` set.
    fn dcos_with(&self, env: &[(&str, &str)], args: &[&str]) -> Output {
        let admin = self.pki.files("admin");
        let mut cmd = Command::new(dcos_tests::bin("dcos"));
        for k in ["DCOS_API", "DCOS_SEED", "DCOS_HOSTS", "DCOS_SOCKET"] {
            cmd.env_remove(k);
        }
        cmd.envs(env.iter().copied())
            .env("DCOS_INVENTORY", self.inventory.path())
            .env("DCOS_CERT", &admin.cert)
            .env("DCOS_KEY", &admin.key)
            .env("DCOS_CA", &admin.ca)
            .args(args)
            .output()
            .expect("dcos runs")
    }

    fn dcos(&self, args: &[&str]) -> Output {
        self.dcos_with(&[], args)
    }

    /// `dcos args... -o json`, which must exit 0.
    fn json(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.extend(["-o", "json"]);
        let out = self.dcos(&all);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", stderr(&out));
        serde_json::from_slice(&out.stdout).expect("one JSON document")
    }

    /// `dcos service create NAME --rootfs ROOTFS --port PORT extra... -- <busybox httpd>`.
    fn create(&self, name: &str, port: u16, rootfs: &Path, extra: &[&str]) -> Output {
        self.create_with(&[], name, port, rootfs, extra)
    }

    fn create_with(
        &self,
        env: &[(&str, &str)],
        name: &str,
        port: u16,
        rootfs: &Path,
        extra: &[&str],
    ) -> Output {
        let port = port.to_string();
        let mut args = vec!["service", "create", name, "--rootfs", rootfs.to_str().unwrap(), "--port", &port];
        args.extend(["--timeout", "10s"]);
        args.extend_from_slice(extra);
        // PORT is in the instance's environment: a shell expands it.
        args.extend(["--", "/bin/sh", "-c", "exec /bin/busybox httpd -f -p 127.0.0.1:$PORT -h /www"]);
        self.dcos_with(env, &args)
    }

    /// The names of the services `dcos service ls` shows.
    fn services(&self) -> Value {
        pick(&self.json(&["service", "ls"]), "services", &["name"])
    }

    /// Whether something listens on TCP `port` on host `i` (read from the host's socket
    /// table: a connection to a front would be a request, and wake the service).
    fn listening(&self, i: usize, port: u16) -> bool {
        let filter = format!("sport = :{port}");
        let out = self.fleet.exec(i, "ss", &["-Hltn", &filter]).expect("ss runs");
        assert!(out.status.success(), "ss: {}", stderr(&out));
        !out.stdout.is_empty()
    }

    /// `curl` of `http://127.0.0.1:PORT/` run inside host `i`.
    fn curl(&self, i: usize, port: u16) -> Output {
        let url = format!("http://127.0.0.1:{port}/");
        self.fleet.exec_on(i, "curl", &["-sS", "--max-time", "20", &url]).expect("curl runs")
    }

    /// The names of the workloads on every host.
    fn workloads(&self) -> Vec<String> {
        let doc = self.json(&["workloads"]);
        doc["workloads"].as_array().unwrap().iter().map(|w| w["name"].as_str().unwrap().to_string()).collect()
    }
}

/// Polls `done` every 50 ms until it holds (true) or `limit` has passed (false).
fn until(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if done() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `keys` of each of the `items` of a `-o json` document: `[[v, ...], ...]`, or `[v, ...]`
/// for one key.
fn pick(doc: &Value, items: &str, keys: &[&str]) -> Value {
    let one = |item: &Value| match keys {
        [key] => item[*key].clone(),
        _ => keys.iter().map(|k| item[*k].clone()).collect(),
    };
    doc[items].as_array().unwrap_or_else(|| panic!("no {items} in {doc}")).iter().map(one).collect()
}

/// Both hosts answered.
fn both_ok(doc: &Value) -> bool {
    pick(doc, "hosts", &["host", "status"]) == json!([["host-0", "ok"], ["host-1", "ok"]])
}

#[test]
fn a_service_wakes_on_a_request_is_listed_shown_and_removed_through_the_cli() {
    require_root_runc_busybox!();
    let mut s = Setup::new();

    // Created on the selected fleet (the inventory's two hosts). DCOS_HOSTS, the global
    // --hosts' k2i addresses, is not taken for the service's hosts.
    let created = s.create_with(&[("DCOS_HOSTS", "10.9.9.9")], "web", 8080, &s.rootfs, &["-o", "json"]);
    assert_eq!(created.status.code(), Some(0), "{}", stderr(&created));
    let doc: Value = serde_json::from_slice(&created.stdout).expect("one JSON document");
    assert!(both_ok(&doc), "{doc}");
    let made = pick(&doc, "services", &["host", "name", "port", "instances"]);
    assert_eq!(made, json!([["host-0", "web", 8080, 0], ["host-1", "web", 8080, 0]]), "{doc}");

    // Listed before any request: on both hosts, nothing running.
    let doc = s.json(&["service", "ls"]);
    assert!(both_ok(&doc), "{doc}");
    let web = &doc["services"][0];
    assert_eq!(
        (&web["name"], &web["port"], &web["hosts"]),
        (&"web".into(), &8080.into(), &2.into()),
        "{doc}"
    );
    assert_eq!(
        (&web["instances"], &web["connections"], &web["cold_starts"]),
        (&0.into(), &0.into(), &0.into())
    );
    assert_eq!(web["placed"], serde_json::json!(["host-0", "host-1"]), "every host's spec names both");
    assert!(s.listening(0, 8080) && s.listening(1, 8080), "the fronts are open on both hosts");

    // A request on host-0 starts an instance there and is answered by it.
    let out = s.curl(0, 8080);
    assert!(out.status.success(), "curl: {}; middlecon's log: {}", stderr(&out), s.log(0));
    assert_eq!(stdout(&out), PAGE);

    // show: one ready instance, on host-0, that took the request.
    let doc = s.json(&["service", "show", "web"]);
    assert!(both_ok(&doc), "{doc}");
    let instances = doc["instances"].as_array().unwrap();
    assert_eq!(instances.len(), 1, "{doc}");
    let i = &instances[0];
    assert_eq!(
        (&i["host"], &i["service"], &i["state"]),
        (&"host-0".into(), &"web".into(), &"ready".into()),
        "{i}"
    );
    assert!(i["id"].as_str().is_some_and(|id| id.starts_with("web.")), "{i}");
    assert!(i["pid"].as_u64().is_some_and(|p| p > 0), "{i}");
    assert_eq!((&i["connections"], &i["spare"]), (&1.into(), &false.into()), "{i}");
    let started = i["started_at"].as_str().unwrap();
    time::OffsetDateTime::parse(started, &time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|e| panic!("started_at {started:?} is not RFC 3339: {e}"));
    let counters = pick(&doc, "services", &["host", "connections", "cold_starts"]);
    assert_eq!(counters, json!([["host-0", 1, 1], ["host-1", 0, 0]]), "{doc}");

    // The tables say the same, once the relay has seen curl close.
    let closed =
        until(Duration::from_secs(10), || s.json(&["service", "ls"])["services"][0]["inflight"] == 0);
    assert!(closed, "the relay never saw curl close");
    let out = s.dcos(&["service", "show", "web"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    let lines: Vec<Vec<&str>> = text.lines().map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(lines[0], ["HOST", "ID", "PID", "STATE", "STARTED", "CONNECTIONS", "INFLIGHT"], "{text}");
    assert_eq!((lines[1][0], lines[1][3], lines[1][5]), ("host-0", "ready", "1"), "{text}");
    assert!(lines[2].is_empty() && lines[3][0] == "HOST" && lines[3].contains(&"COLD_STARTS"), "{text}");
    let out = s.dcos(&["service", "ls"]);
    let text = stdout(&out);
    let lines: Vec<Vec<&str>> = text.lines().map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(lines[0], ["NAME", "PORT", "HOSTS", "INSTANCES", "INFLIGHT", "CONNECTIONS", "COLD_STARTS"]);
    assert_eq!(lines[1], ["web", "8080", "2", "1", "0", "1", "1"], "{text}");

    // The same name again is a conflict, and changes nothing.
    let out = s.create("web", 8090, &s.rootfs, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let e = stderr(&out);
    assert!(e.contains("dcos: conflict: host-0 (") && e.contains("already exists"), "{e}");
    assert!(e.ends_with("dcos: conflict: service web refused by 2 of 2 hosts: nothing was created\n"), "{e}");
    assert!(!s.listening(0, 8090) && !s.listening(1, 8090));

    // rm: every host that has it; the instance is stopped, the fronts closed.
    let doc = s.json(&["service", "rm", "web", "--timeout", "20s"]);
    assert!(both_ok(&doc), "{doc}");
    let stopped = pick(&doc, "services", &["host", "stopped"]);
    assert_eq!(stopped, json!([["host-0", 1], ["host-1", 0]]), "{doc}");
    assert_eq!(s.services(), json!([]));
    assert!(!s.workloads().iter().any(|w| w.starts_with("web.")), "an instance is left: {:?}", s.workloads());
    assert!(!s.listening(0, 8080) && !s.listening(1, 8080), "a front is left open");
    let out = s.dcos(&["service", "show", "web"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stderr(&out), "dcos: not_found: no service web in the fleet\n");
    let out = s.dcos(&["service", "rm", "web"]);
    assert_eq!(
        (out.status.code(), stderr(&out)),
        (Some(1), "dcos: not_found: no service web in the fleet\n".into())
    );

    // --hosts places it on the hosts named only.
    let out = s.create("one", 8081, &s.rootfs, &["--hosts", "host-1", "--prestart"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let doc = s.json(&["service", "ls"]);
    let one = &doc["services"][0];
    assert_eq!(
        (&one["name"], &one["hosts"], &one["on"]),
        (&"one".into(), &1.into(), &serde_json::json!(["host-1"]))
    );
    assert!(!s.listening(0, 8081) && s.listening(1, 8081));

    // A host whose middlecon is down is named; the others' services are still shown: exit 3.
    s.mesh.daemons[0].as_mut().expect("host-0's middlecon").kill();
    let out = s.dcos(&["service", "ls", "-o", "json"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let doc: Value = serde_json::from_slice(&out.stdout).expect("one JSON document");
    let st = pick(&doc, "hosts", &["host", "status"]);
    assert_eq!((&st[0][0], &st[1][1]), (&json!("host-0"), &json!("ok")), "{doc}");
    assert_ne!(st[0][1], "ok", "{doc}");
    assert_eq!(doc["services"][0]["name"], "one", "{doc}");
    assert!(stderr(&out).starts_with("dcos: host-0 ("), "{}", stderr(&out));
}

#[test]
fn bad_definitions_are_refused_with_the_field_named_and_nothing_is_made_on_any_host() {
    require_root_runc_busybox!();
    let s = Setup::new();

    // A rootfs that host-0 has and host-1 does not: hidden there under an empty tmpfs.
    let work = tempfile::Builder::new().prefix("dcos-service-cli-").tempdir().unwrap();
    let hidden = work.path().join("hidden");
    std::fs::create_dir_all(&hidden).unwrap();
    let lost = dcos_tests::oci::busybox_rootfs(&hidden).expect("busybox rootfs");
    let _tmpfs = s.fleet.tmpfs_on(1, &hidden, 1 << 20).expect("tmpfs on host-1");
    // A port in use on host-1 only.
    let _busy =
        s.fleet.spawn(1, busybox().unwrap(), &["httpd", "-f", "-p", "8082", "-h", "/tmp"]).expect("listener");
    assert!(until(Duration::from_secs(10), || s.listening(1, 8082)), "the listener on host-1 did not start");

    let rootfs = s.rootfs.clone();
    /// A definition some host refuses: `code` and `field` in one line per `refusing` host.
    struct Bad<'a> {
        name: &'a str,
        port: u16,
        rootfs: &'a Path,
        extra: &'a [&'a str],
        code: &'a str,
        field: &'a str,
        refusing: &'a [&'a str],
    }
    let cases = [
        Bad {
            name: "lost",
            port: 8081,
            rootfs: &lost,
            extra: &[],
            code: "invalid",
            field: "rootfs: ",
            refusing: &["host-1"],
        },
        Bad {
            name: "busy",
            port: 8082,
            rootfs: &rootfs,
            extra: &[],
            code: "invalid",
            field: "port: 8082",
            refusing: &["host-1"],
        },
        Bad {
            name: "small",
            port: 8083,
            rootfs: &rootfs,
            extra: &["--min", "5", "--max", "2"],
            code: "invalid",
            field: "min: 5 is more than max 2",
            refusing: &["host-0", "host-1"],
        },
        Bad {
            name: "odd",
            port: 8084,
            rootfs: &rootfs,
            extra: &["--runtime", "nosuchruntime"],
            code: "no_runtime",
            field: "nosuchruntime",
            refusing: &["host-0", "host-1"],
        },
    ];
    for Bad { name, port, rootfs, extra, code, field, refusing } in cases {
        let out = s.create(name, port, rootfs, extra);
        assert_eq!(out.status.code(), Some(1), "{name}: {}", stderr(&out));
        let e = stderr(&out);
        // One line per refusing host, naming it and the field; then the verdict.
        let lines: Vec<&str> = e.lines().collect();
        assert_eq!(lines.len(), refusing.len() + 1, "{name}: {e}");
        for (line, host) in lines.iter().zip(refusing) {
            assert!(line.starts_with(&format!("dcos: {code}: {host} (")), "{name}: {e}");
            assert!(line.contains(field), "{name}: {e}");
        }
        let verdict = format!(
            "dcos: {code}: service {name} refused by {} of 2 hosts: nothing was created",
            refusing.len()
        );
        assert_eq!(lines.last().copied(), Some(verdict.as_str()), "{name}: {e}");
        // Nothing anywhere: no definition, no front, no instance.
        assert_eq!(s.services(), json!([]), "{name}");
        assert!(!s.listening(0, port), "{name}: host-0 opened a front");
        assert!(s.workloads().is_empty(), "{name}: {:?}", s.workloads());
    }
    assert!(s.listening(1, 8082), "host-1's own listener is untouched");

    // Checked on both hosts, then made on host-0 but not on host-1, whose definitions live
    // on a read-only disk: removed from host-0 again, and said so.
    let defs = s.fleet.middlecon_state_dir(1).join("services");
    let _ro = s.fleet.tmpfs_on(1, &defs, 1 << 20).expect("tmpfs on host-1");
    let out = s.fleet.exec_on(1, "mount", &["-o", "remount,ro", defs.to_str().unwrap()]).unwrap();
    assert!(out.status.success(), "remount: {}", stderr(&out));
    let out = s.create("half", 8085, &rootfs, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let e = stderr(&out);
    let lines: Vec<&str> = e.lines().collect();
    assert_eq!(lines.len(), 2, "{e}");
    assert!(lines[0].starts_with("dcos: io: host-1 (") && lines[0].contains("half"), "{e}");
    assert_eq!(
        lines[1], "dcos: io: service half was not created on host-1: removed again from host-0",
        "{e}"
    );
    assert_eq!(s.services(), json!([]));
    assert!(!s.listening(0, 8085), "host-0 kept the front");

    // No definition is kept on either host.
    for i in 0..2 {
        let dir = s.fleet.middlecon_state_dir(i).join("services");
        let kept: Vec<_> =
            std::fs::read_dir(&dir).map(|d| d.flatten().map(|e| e.file_name()).collect()).unwrap_or_default();
        assert!(kept.is_empty(), "host-{i} keeps {kept:?}");
    }
}

/// `service rm` of a service whose instance is still starting (here `--min 1`, removed right
/// after `create`) stops that instance too: it must not come up afterwards and run on as a
/// workload of no service.
#[test]
fn rm_while_an_instance_starts_stops_it_too() {
    require_root_runc_busybox!();
    let s = Setup::new();
    let out = s.create("early", 8093, &s.rootfs, &["--min", "1"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let doc = s.json(&["service", "rm", "early", "--timeout", "20s"]);
    let left = || s.workloads().into_iter().filter(|w| w.starts_with("early.")).collect::<Vec<_>>();
    assert!(
        until(Duration::from_secs(10), || left().is_empty()),
        "instances left after rm ({doc}): {:?}\nhost-0's middlecon: {}",
        left(),
        s.log(0)
    );
    assert_eq!(pick(&doc, "services", &["stopped"]), json!([1, 1]), "{doc}");
}
