//! Runtime classes across real hosts (network namespaces booted with their own PID and
//! mount namespaces, the real `middlecon`, `k2i` and `dcos` binaries): a workload run by
//! gVisor's runsc (ptrace platform) is listed, paused, re-adopted after a daemon's SIGKILL
//! and stopped, and k2i names it `runsc` with its sandbox's and gofer's processes; a
//! workload moves from runc into the sandbox and back with its files; a host without runsc
//! says so in membership and refuses sandboxed work, naming itself and the class.
//!
//! Where runsc cannot run containers on this machine the runsc tests print why and pass
//! without checking anything (`dcos_tests::oci::runsc_unusable`).

use dcos_core::model::{ContainerList, ProcList, Runtime};
use dcos_proto::v1 as pb;
use dcos_tests::mesh::dcos_as;
use dcos_tests::workload_mesh::{rest_of, until_copying, Mesh};
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(5);
/// A workload that appends a line to `/starts` at each start and exits at once on SIGTERM.
const SCRIPT: &str = "echo start >> /starts; trap 'exit 0' TERM; sleep 3600 & wait";

/// Prints why runsc tests cannot run here, if they cannot.
fn skip() -> bool {
    match dcos_tests::oci::runsc_unusable() {
        Some(why) => {
            eprintln!("skipped: runsc cannot run containers on this machine: {why}");
            true
        }
        None => false,
    }
}

/// The command line of process `pid` inside host `i`, its arguments joined by spaces.
fn cmdline_on(mesh: &Mesh, i: usize, pid: u32) -> String {
    let out = mesh.fleet.exec_on(i, "cat", &[&format!("/proc/{pid}/cmdline")]).expect("cat runs");
    String::from_utf8_lossy(&out.stdout).replace('\0', " ")
}

/// How many lines `/starts` of workload `name` on host `i` has, once it has `want`.
async fn starts(mesh: &Mesh, i: usize, name: &str, want: usize) {
    dcos_tests::eventually(
        Duration::from_secs(10),
        &format!("{want} starts of {name} on host {i}"),
        || async { (mesh.file_in(i, name, "starts")?.lines().count() == want).then_some(()) },
    )
    .await;
}

fn only<'a>(list: &'a [pb::Workload], name: &str) -> &'a pb::Workload {
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0].name, name);
    &list[0]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runsc_workload_runs_pauses_is_re_adopted_and_stops_and_k2i_names_its_sandbox() {
    if skip() {
        return;
    }
    let mut mesh = Mesh::new(1);
    let req = pb::RunRequest {
        name: "sbx".into(),
        rootfs: mesh.rootfs.to_str().unwrap().into(),
        command: vec!["sh".into(), "-c".into(), SCRIPT.into()],
        runtime: "runsc".into(),
        memory_bytes: 64 << 20,
        ..Default::default()
    };
    let w = match mesh.client(0).await.run(req).await {
        Ok(r) => r.into_inner().workload.unwrap(),
        Err(e) => panic!("Run with runsc: {e}; middlecon's log: {}", mesh.log(0)),
    };
    assert_eq!((w.runtime.as_str(), w.status.as_str()), ("runsc", "running"), "{w:?}");
    assert!(w.pid > 0);
    starts(&mesh, 0, "sbx", 1).await;
    // The pid middlecon shows is the sandbox (gVisor's kernel), not a host process of busybox.
    assert!(cmdline_on(&mesh, 0, w.pid).starts_with("runsc-sandbox"), "{}", cmdline_on(&mesh, 0, w.pid));
    let daemon = middlecon::workloads::bundle::daemon_id("host-0", &mesh.state_dir(0));
    let cgroup = format!("/sys/fs/cgroup/memory/dcos/{daemon}/sbx");
    let limit =
        std::fs::read_to_string(format!("{cgroup}/memory.limit_in_bytes")).expect("runsc made the cgroup");
    assert_eq!(limit.trim(), (64u64 << 20).to_string(), "the memory limit holds the sandbox");

    // Paused by runsc itself (as a migration freezes it): List says so, then running again.
    let root = mesh.state_dir(0).join("runtime/runsc");
    let runsc = |verb: &str| {
        let out = mesh.fleet.exec_on(0, "runsc", &["--root", root.to_str().unwrap(), verb, "sbx"]).unwrap();
        assert!(out.status.success(), "runsc {verb}: {}", String::from_utf8_lossy(&out.stderr));
    };
    let status = |list: Vec<pb::Workload>| (only(&list, "sbx").status.clone(), list[0].pid);
    runsc("pause");
    assert_eq!(status(mesh.list(0).await), ("paused".to_string(), w.pid));
    runsc("resume");
    assert_eq!(status(mesh.list(0).await), ("running".to_string(), w.pid));

    // k2i: the container is runsc's, with the sandbox, the gofer and their helpers, and its
    // CPU and memory from its cgroup.
    let k = mesh.k2i(0);
    let admin = mesh.pki.client("admin");
    let seen: ContainerList =
        dcos_tests::eventually(Duration::from_secs(10), "sbx measured by k2i", || async {
            let l: ContainerList = admin.get_json(k.url(), "/v1/containers", T).await.ok()?;
            let c = l.containers.iter().find(|c| &*c.name == "sbx")?;
            (c.processes >= 2 && c.cpu_percent.is_some() && c.mem_bytes.is_some_and(|m| m > 0)).then_some(l)
        })
        .await;
    let ct = seen.containers.iter().find(|c| &*c.name == "sbx").unwrap();
    assert_eq!((ct.runtime, ct.status.as_str()), (Runtime::Runsc, "running"), "{ct:?}");
    assert_eq!(ct.pid, Some(w.pid as i32), "k2i and middlecon agree on the sandbox's pid");
    assert_eq!(ct.mem_limit_bytes, Some(64 << 20), "{ct:?}");
    let procs: ProcList = admin.get_json(k.url(), &format!("/v1/proc?container={}", ct.id), T).await.unwrap();
    let first_args: Vec<&str> =
        procs.processes.iter().filter_map(|p| p.cmdline.first().map(|a| &**a)).collect();
    for part in ["runsc-sandbox", "runsc-gofer"] {
        assert!(first_args.iter().any(|a| a.starts_with(part)), "{part} is the container's: {first_args:?}");
    }
    assert!(procs.processes.iter().all(|p| p.container.as_ref().is_some_and(|c| &*c.name == "sbx")));

    // The daemon SIGKILLed and started again adopts the same sandbox.
    mesh.daemons[0].take().unwrap().kill();
    mesh.daemons[0] = Some(mesh.start(0));
    assert_eq!(status(mesh.list(0).await), ("running".to_string(), w.pid), "the same sandbox");

    // Stop asks the container's init to end through runsc (its handler exits at once), and
    // removes the sandbox, its state and its cgroup.
    let t = Instant::now();
    let stopped = mesh.client(0).await.stop(pb::StopRequest { name: "sbx".into() }).await.expect("Stop");
    assert_eq!(stopped.into_inner().workload.unwrap().status, "stopped");
    assert!(t.elapsed() < Duration::from_secs(4), "SIGTERM reached the init: {:?}", t.elapsed());
    assert!(mesh.list(0).await.is_empty());
    assert!(dcos_linux::oci::ids(&root).is_empty(), "runsc keeps no state of it");
    assert!(!std::path::Path::new(&cgroup).exists(), "its cgroup is gone");
    assert!(!cmdline_on(&mesh, 0, w.pid).starts_with("runsc"), "the sandbox has ended");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workload_moves_from_runc_into_the_gvisor_sandbox_and_back_with_its_files() {
    if skip() {
        return;
    }
    let mesh = Mesh::new(2);
    let w = mesh.run(0, "mv", SCRIPT).await;
    assert_eq!(w.runtime, "runc");
    starts(&mesh, 0, "mv", 1).await;
    // Into the sandbox, as a user does it.
    let api0 = mesh.fleet.host(0).api_addr().to_string();
    let out = dcos_as(
        &mesh.pki,
        "admin",
        &["migrate", "mv", "--to", "host-1", "--runtime", "runsc", "--api", &api0],
    );
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "dcos migrate: {said} {}", String::from_utf8_lossy(&out.stderr));
    assert!(said.contains("downtime"), "{said}");
    let there = mesh.list(1).await;
    let w1 = only(&there, "mv");
    assert_eq!((w1.runtime.as_str(), w1.status.as_str(), w1.epoch), ("runsc", "running", 1), "{w1:?}");
    assert!(cmdline_on(&mesh, 1, w1.pid).starts_with("runsc-sandbox"), "runs in a sandbox on host-1");
    starts(&mesh, 1, "mv", 2).await;
    assert!(mesh.list(0).await.is_empty(), "nothing left on host-0");
    // And out again: its files, the sandbox's writes included, come along.
    let progress = mesh.migrate_as(1, "mv", 0, "runc").await.expect("Migrate starts");
    let last = progress.last().unwrap();
    assert!(last.done && last.error.is_empty(), "{last:?}");
    let back = mesh.list(0).await;
    assert_eq!((only(&back, "mv").runtime.as_str(), back[0].status.as_str()), ("runc", "running"));
    starts(&mesh, 0, "mv", 3).await;
    assert!(mesh.list(1).await.is_empty(), "nothing left on host-1");
    assert!(dcos_linux::oci::ids(&mesh.state_dir(1).join("runtime/runsc")).is_empty(), "no sandbox left");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sandbox_made_ahead_runs_nothing_before_its_start_and_a_target_that_died_removes_it() {
    if skip() {
        return;
    }
    let mut mesh = Mesh::new(2);
    mesh.add_state(48);
    mesh.run(0, "big", SCRIPT).await;
    starts(&mesh, 0, "big", 1).await;
    let req = pb::MigrateRequest {
        name: "big".into(),
        to: "host-1".into(),
        runtime: "runsc".into(),
        bwlimit: 8 << 20,
        ..Default::default()
    };
    let mut stream = mesh.client(0).await.migrate(req).await.expect("Migrate starts").into_inner();
    until_copying(&mut stream).await;
    // Since the reservation (before the freeze), host-1 has the sandbox booted, its
    // workload not started.
    let root = mesh.state_dir(1).join("runtime/runsc");
    let state = dcos_tests::eventually(Duration::from_secs(10), "the sandbox created ahead", || async {
        dcos_linux::oci::read(&root, "big")
    })
    .await;
    assert_eq!(state.recorded, Some(dcos_linux::oci::Status::Created), "{state:?}");
    let sandbox = state.init_pid.expect("the sandbox's pid");
    // The target dies mid-transfer: the workload stays on host-0, and host-1, restarted,
    // removes the sandbox it had made.
    mesh.daemons[1].take().expect("target daemon").kill();
    let last = rest_of(stream).await.pop().expect("a last message");
    assert!(last.done && !last.error.is_empty(), "the migration fails: {last:?}");
    let source = mesh.list(0).await;
    assert_eq!((only(&source, "big").status.as_str(), source[0].runtime.as_str()), ("running", "runc"));
    assert_eq!(mesh.file_in(0, "big", "starts").map(|s| s.lines().count()), Some(1), "never restarted");
    mesh.daemons[1] = Some(mesh.start(1));
    assert!(mesh.list(1).await.is_empty());
    assert!(dcos_linux::oci::ids(&root).is_empty(), "no sandbox state left on host-1");
    assert!(!cmdline_on(&mesh, 1, sandbox).starts_with("runsc-sandbox"), "the sandbox has ended");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_without_runsc_says_so_in_membership_and_refuses_sandboxed_work_naming_itself() {
    let Ok(runsc) = middlecon::workloads::runtime::locate("runsc") else {
        eprintln!("skipped: runsc is not installed, so no host can lack it here");
        return;
    };
    // Host 1 lacks runsc: its binary is hidden in host 1's own mount namespace.
    let mesh = Mesh::with(2, |m| {
        let hidden = m.fleet.exec_on(1, "mount", &["--bind", "/dev/null", runsc.to_str().unwrap()]).unwrap();
        assert!(hidden.status.success(), "{}", String::from_utf8_lossy(&hidden.stderr));
    });
    let api0 = mesh.fleet.host(0).api_addr().to_string();
    let runtimes: serde_json::Value =
        dcos_tests::eventually(Duration::from_secs(10), "both hosts' classes gossiped", || async {
            let out = dcos_as(&mesh.pki, "admin", &["hosts", "--seed", &api0, "-o", "json"]);
            let doc: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
            let by_host: serde_json::Map<String, serde_json::Value> = doc["members"]
                .as_array()?
                .iter()
                .map(|m| (m["name"].as_str().unwrap_or("").to_string(), m["runtimes"].clone()))
                .collect();
            (by_host.len() == 2 && by_host.values().all(|r| r.as_array().is_some_and(|a| !a.is_empty())))
                .then_some(serde_json::Value::Object(by_host))
        })
        .await;
    let has = |h: &str, class: &str| runtimes[h].as_array().unwrap().iter().any(|c| c == class);
    assert!(has("host-0", "runsc") && has("host-0", "runc"), "{runtimes}");
    assert!(has("host-1", "runc") && !has("host-1", "runsc"), "{runtimes}");
    let wide = dcos_as(&mesh.pki, "admin", &["hosts", "--seed", &api0, "-o", "wide"]);
    let table = String::from_utf8_lossy(&wide.stdout);
    assert!(table.lines().next().unwrap_or("").contains("RUNTIMES"), "{table}");
    let row = |h: &str| table.lines().find(|l| l.starts_with(h)).unwrap_or_default().to_string();
    assert!(row("host-0").contains("runsc") && !row("host-1").contains("runsc"), "{table}");

    // Moving into the sandbox there is refused before anything is frozen or sent.
    mesh.run(0, "web", SCRIPT).await;
    let out = dcos_as(
        &mesh.pki,
        "admin",
        &["migrate", "web", "--to", "host-1", "--runtime", "runsc", "--api", &api0],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("no_runtime") && err.contains("host-1") && err.contains("runsc"), "{err}");
    let list = mesh.list(0).await;
    let w = only(&list, "web");
    assert_eq!((w.status.as_str(), w.epoch, w.runtime.as_str()), ("running", 0, "runc"), "untouched: {w:?}");
    assert!(mesh.list(1).await.is_empty());
    // Running sandboxed work on host 1 directly: the same refusal, from host 1 itself.
    let req = pb::RunRequest {
        name: "x".into(),
        rootfs: mesh.rootfs.to_str().unwrap().into(),
        command: vec!["true".into()],
        runtime: "runsc".into(),
        ..Default::default()
    };
    let e = mesh.client(1).await.run(req).await.expect_err("host-1 has no runsc");
    assert_eq!(e.code(), tonic::Code::FailedPrecondition, "{e:?}");
    assert!(e.message().contains("host host-1 has no runtime \"runsc\""), "{}", e.message());
    assert!(mesh.list(1).await.is_empty(), "nothing was made");
}
