//! Workloads and their migration across real hosts (network namespaces, each booted with
//! one PID namespace that its middlecon, its k2i and its containers share), each running the
//! real `middlecon` and `k2i` binaries, with real OCI containers (runc) from a busybox root
//! filesystem built by the test. Clients use each host's TCP API with the admin
//! certificate, as `dcos` does. Faults are real: killed daemons, iptables cuts, a full tmpfs.

use dcos_core::model::{ContainerList, ProcList};
use dcos_core::tls::Identity;
use dcos_proto::v1 as pb;
use dcos_proto::v1::workloads_client::WorkloadsClient;
use dcos_tests::workload_mesh::{rest_of, until_copying, Mesh};
use std::time::Duration;

const T: Duration = Duration::from_secs(5);

fn running(list: &[pb::Workload], name: &str) -> bool {
    list.iter().any(|w| w.name == name && w.status == "running" && w.pid > 0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workload_with_a_file_written_inside_moves_to_another_host() {
    let mesh = Mesh::new(2);
    let w = mesh.run(0, "web", "echo written-inside > /state.txt; exec sleep 3600").await;
    assert_eq!(w.status, "running", "{w:?}");
    assert_eq!(w.runtime, "runc");
    dcos_tests::eventually(Duration::from_secs(5), "the file written inside", || async {
        mesh.file_in(0, "web", "state.txt")
    })
    .await;
    // Run made an overlay over the image: the write is in the upper layer, not in the image.
    let source = mesh.state_dir(0).join("workloads/web");
    assert!(source.join("layers/upper/state.txt").is_file(), "the write lands in the upper layer");
    assert!(!mesh.rootfs.join("state.txt").exists(), "the image is left as it was");
    let progress = mesh.migrate(0, "web", 1).await.expect("Migrate starts");
    let last = progress.last().expect("progress messages");
    assert!(last.done && last.error.is_empty(), "migration done: {last:?}");
    assert!(last.bytes_sent > 0 && last.downtime_ms > 0, "{last:?}");
    let phases: Vec<&str> = progress.iter().map(|p| p.step().word()).collect();
    for p in ["freeze", "copy", "start", "delete", "done"] {
        assert!(phases.contains(&p), "phase {p} reported: {phases:?}");
    }
    assert_eq!(last.epoch, 1);
    // On the target: the file written on the source, and the process running.
    // The merged view travelled: the target's root filesystem is a plain tree with the image's
    // files and the workload's.
    let target_root = mesh.state_dir(1).join("workloads/web/bundle/rootfs");
    assert!(target_root.join("bin/busybox").is_file(), "the image's files moved too");
    assert_eq!(std::fs::read_to_string(target_root.join("state.txt")).unwrap(), "written-inside\n");
    let on_target = mesh.list(1).await;
    assert!(running(&on_target, "web"), "{on_target:?}");
    // On the source: nothing left.
    assert!(mesh.list(0).await.is_empty(), "the source keeps no copy");
    assert!(!mesh.state_dir(0).join("workloads/web").exists(), "the source's bundle is deleted");
    // k2i on each host: the target shows the container and its process, the source nothing.
    let (k0, k1) = (mesh.k2i(0), mesh.k2i(1));
    let admin = mesh.pki.client("admin");
    let seen: ContainerList =
        dcos_tests::eventually(Duration::from_secs(10), "web in k2i on host-1", || async {
            let l: ContainerList = admin.get_json(k1.url(), "/v1/containers", T).await.ok()?;
            l.containers
                .iter()
                .any(|c| &*c.name == "web" && c.status == "running" && c.processes >= 1)
                .then_some(l)
        })
        .await;
    let ct = seen.containers.iter().find(|c| &*c.name == "web").unwrap();
    assert_eq!(ct.pid, Some(on_target[0].pid as i32), "k2i and middlecon agree on the init pid: {ct:?}");
    let procs: ProcList =
        admin.get_json(k1.url(), &format!("/v1/proc?container={}", ct.id), T).await.unwrap();
    assert!(procs.processes.iter().any(|p| &*p.cmd == "sleep"), "{procs:?}");
    let on0: ContainerList = admin.get_json(k0.url(), "/v1/containers", T).await.unwrap();
    assert!(!on0.containers.iter().any(|c| &*c.name == "web"), "k2i on the source shows it: {on0:?}");
    let procs0: ProcList = admin.get_json(k0.url(), "/v1/proc", T).await.unwrap();
    assert!(
        !procs0.processes.iter().any(|p| &*p.cmd == "sleep"),
        "a process of it on the source: {procs0:?}"
    );
}

/// A migration that cannot complete leaves the workload running on the source: shared by
/// the target-killed and link-cut tests.
async fn assert_failed_and_still_on_source(mesh: &Mesh, progress: &[pb::MigrateProgress]) {
    let last = progress.last().expect("a last message");
    assert!(last.done && !last.error.is_empty(), "the migration fails: {last:?}");
    assert!(
        [pb::ErrorCode::Unreachable, pb::ErrorCode::Transfer].contains(&last.code()),
        "a transfer failure, told as such: {last:?}"
    );
    let source = mesh.list(0).await;
    assert!(running(&source, "big"), "the workload runs on the source again: {source:?}");
    assert!(source[0].epoch >= 1, "the failed attempt used up its epoch: {source:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_target_killed_mid_transfer_leaves_the_workload_running_on_the_source() {
    let mut mesh = Mesh::new(2);
    mesh.add_state(48);
    mesh.run(0, "big", "exec sleep 3600").await;
    let mut stream = mesh.start_migration(0, "big", 1, 8 << 20).await.expect("Migrate starts");
    until_copying(&mut stream).await;
    mesh.daemons[1].take().expect("target daemon").kill();
    let progress = rest_of(stream).await;
    assert_failed_and_still_on_source(&mesh, &progress).await;
    // The target, restarted, keeps nothing of the half-received workload.
    mesh.daemons[1] = Some(mesh.start(1));
    assert!(mesh.list(1).await.is_empty(), "the target dropped the partial copy");
    assert!(!mesh.state_dir(1).join("workloads/big").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_link_cut_mid_transfer_leaves_the_workload_running_on_the_source() {
    let mesh = Mesh::new(2);
    mesh.add_state(48);
    mesh.run(0, "big", "exec sleep 3600").await;
    let mut stream = mesh.start_migration(0, "big", 1, 8 << 20).await.expect("Migrate starts");
    until_copying(&mut stream).await;
    mesh.fleet.cut(0, 1).expect("cut");
    let progress = rest_of(stream).await;
    assert_failed_and_still_on_source(&mesh, &progress).await;
    // The target gives the stalled transfer up by itself and keeps nothing.
    dcos_tests::eventually(Duration::from_secs(15), "the target to drop the reservation", || async {
        mesh.list(1).await.is_empty().then_some(())
    })
    .await;
    mesh.fleet.uncut(0, 1).expect("uncut");
    assert!(running(&mesh.list(0).await, "big"), "still exactly one copy, on the source");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_migrations_of_one_workload_at_once_one_wins_the_other_is_a_conflict() {
    let mesh = Mesh::new(3);
    mesh.add_state(16);
    mesh.run(0, "web", "exec sleep 3600").await;
    let first = mesh.start_migration(0, "web", 1, 16 << 20).await.expect("the first starts");
    let second = mesh.start_migration(0, "web", 2, 0).await;
    let err = second.expect_err("the second is refused");
    assert_eq!(err.code(), tonic::Code::Aborted, "{err:?}");
    assert_eq!(dcos_proto::error_code(&err), pb::ErrorCode::Conflict);
    assert!(err.message().starts_with("web is already migrating"), "{}", err.message());
    let progress = rest_of(first).await;
    let last = progress.last().unwrap();
    assert!(last.done && last.error.is_empty(), "the first one completes: {last:?}");
    // --bwlimit held: 16 MiB at 16 MiB/s takes about a second.
    assert!(last.phase_ms["copy"] >= 800, "the copy respected the bandwidth limit: {last:?}");
    assert!(running(&mesh.list(1).await, "web"));
    assert!(mesh.list(0).await.is_empty() && mesh.list(2).await.is_empty(), "one copy, on host 1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_source_killed_after_the_freeze_and_restarted_runs_the_workload_exactly_once() {
    let mut mesh = Mesh::new(2);
    mesh.add_state(48);
    mesh.run(0, "big", "exec sleep 3600").await;
    let mut stream = mesh.start_migration(0, "big", 1, 8 << 20).await.expect("Migrate starts");
    until_copying(&mut stream).await;
    // Frozen and half-sent: the source's middlecon dies (its containers stay with the host).
    // A killed process sends nothing: the target's transfer just goes silent.
    mesh.daemons[0].take().expect("source daemon").kill();
    drop(stream);
    mesh.daemons[0] = Some(mesh.start(0));
    let on_source = mesh.list(0).await;
    assert!(running(&on_source, "big"), "resumed on the source after the restart: {on_source:?}");
    // Tried again at once: the new attempt replaces the old one's reservation on the target
    // (no `conflict` while the old transfer waits to stall).
    let progress = mesh.migrate(0, "big", 1).await.expect("Migrate");
    let last = progress.last().unwrap();
    assert!(last.done && last.error.is_empty(), "{last:?}");
    assert!(last.epoch >= 2, "a fresh epoch after the abandoned one: {last:?}");
    // Exactly one copy runs in the fleet, on the target: k2i on both hosts agree.
    let (k0, k1) = (mesh.k2i(0), mesh.k2i(1));
    let admin = mesh.pki.client("admin");
    let count = |url: String| {
        let admin = admin.clone();
        async move {
            let l: ContainerList = admin.get_json(&url, "/v1/containers", T).await.unwrap();
            l.containers.iter().filter(|c| &*c.name == "big" && c.status == "running").count()
        }
    };
    dcos_tests::eventually(Duration::from_secs(10), "k2i on host-1 to show big", || async {
        (count(k1.url().to_string()).await == 1).then_some(())
    })
    .await;
    assert_eq!(count(k0.url().to_string()).await, 0, "no copy left on the source");
    assert!(mesh.list(0).await.is_empty(), "the source lists nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_target_state_dir_is_a_clear_error_and_the_workload_stays_on_the_source() {
    let mut tmpfs = None;
    let mesh = Mesh::with(2, |m| {
        let path = m.state_dir(1);
        std::fs::create_dir_all(&path).unwrap();
        tmpfs = Some(m.fleet.tmpfs_on(1, &path, 8 << 20).expect("an 8 MiB tmpfs as host-1's state dir"));
    });
    mesh.add_state(16);
    mesh.run(0, "big", "exec sleep 3600").await;
    let err = mesh.migrate(0, "big", 1).await.expect_err("refused before it starts");
    assert_eq!(err.code(), tonic::Code::ResourceExhausted, "{err:?}");
    assert_eq!(dcos_proto::error_code(&err), pb::ErrorCode::NoSpace);
    assert!(err.message().starts_with("host-1: host-1 has"), "{}", err.message());
    assert!(running(&mesh.list(0).await, "big"), "still running on the source");
    assert!(mesh.list(1).await.is_empty());
    drop(tmpfs);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn evacuating_a_host_with_five_workloads_moves_all_of_them_to_two_peers() {
    let mesh = Mesh::new(3);
    for k in 1..=5 {
        mesh.run(0, &format!("w{k}"), &format!("echo {k} > /id; exec sleep 3600")).await;
    }
    // Everyone must see the others alive (and their load) before choosing targets.
    dcos_tests::eventually(Duration::from_secs(10), "membership formed", || async {
        let ch = middlecon_client::connect(
            mesh.fleet.host(0).api_addr(),
            &Identity::load(&mesh.pki.files("admin")).unwrap(),
        )
        .await
        .ok()?;
        let r = pb::membership_client::MembershipClient::new(ch).members(pb::MembersRequest {}).await.ok()?;
        let m = r.into_inner().members;
        (m.iter().filter(|m| m.state() == pb::MemberState::Alive && m.load >= 0.0).count() == 3).then_some(())
    })
    .await;
    let mut stream = mesh
        .client(0)
        .await
        .evacuate(pb::EvacuateRequest { parallel: 2, ..Default::default() })
        .await
        .expect("Evacuate")
        .into_inner();
    let mut done = std::collections::BTreeMap::new();
    while let Some(m) = tokio::time::timeout(Duration::from_secs(60), stream.message())
        .await
        .expect("progress")
        .expect("stream")
    {
        if m.done {
            done.insert(m.workload.clone(), m);
        }
    }
    assert_eq!(done.len(), 5, "one last message per workload: {done:?}");
    for m in done.values() {
        assert!(m.error.is_empty(), "{m:?}");
    }
    assert!(mesh.list(0).await.is_empty(), "nothing left on the evacuated host");
    let (on1, on2) = (mesh.list(1).await, mesh.list(2).await);
    assert_eq!(on1.len() + on2.len(), 5, "{on1:?} {on2:?}");
    assert!(!on1.is_empty() && !on2.is_empty(), "spread over both peers: {on1:?} {on2:?}");
    for w in on1.iter().chain(&on2) {
        assert_eq!(w.status, "running", "{w:?}");
        let host = if on1.contains(w) { 1 } else { 2 };
        assert_eq!(mesh.file_in(host, &w.name, "id").as_deref(), Some(&*format!("{}\n", &w.name[1..])));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_and_environment_reach_the_container_and_a_restart_re_adopts_it() {
    let mut mesh = Mesh::new(1);
    let req = pb::RunRequest {
        name: "lim".into(),
        rootfs: mesh.rootfs.to_str().unwrap().into(),
        command: vec!["sh".into(), "-c".into(), "echo $MODE > /env; exec sleep 3600".into()],
        memory_bytes: 64 << 20,
        cpus: 0.5,
        env: [("MODE".to_string(), "fast".to_string())].into(),
        ..Default::default()
    };
    let w = mesh.client(0).await.run(req).await.expect("Run").into_inner().workload.unwrap();
    dcos_tests::eventually(Duration::from_secs(5), "the environment inside", || async {
        (mesh.file_in(0, "lim", "env").as_deref() == Some("fast\n")).then_some(())
    })
    .await;
    let daemon = middlecon::workloads::bundle::daemon_id("host-0", &mesh.state_dir(0));
    let cg = |ctrl: &str, file: &str| {
        std::fs::read_to_string(format!("/sys/fs/cgroup/{ctrl}/dcos/{daemon}/lim/{file}")).unwrap()
    };
    assert_eq!(cg("memory", "memory.limit_in_bytes").trim(), (64u64 << 20).to_string());
    assert_eq!(cg("cpu", "cpu.cfs_quota_us").trim(), "50000");
    assert_eq!(cg("cpu", "cpu.cfs_period_us").trim(), "100000");
    // List tells what the runtime would, from its state file, /proc and the freezer: a
    // container paused behind the daemon's back is `paused`, then `running` again.
    // (runc inside host 0: the pids in its state are that host's.)
    let runc = |verb: &str| {
        let root = mesh.state_dir(0).join("runtime/runc");
        let out = mesh.fleet.exec_on(0, "runc", &["--root", root.to_str().unwrap(), verb, "lim"]).unwrap();
        assert!(out.status.success(), "runc {verb}: {}", String::from_utf8_lossy(&out.stderr));
    };
    runc("pause");
    let status = |list: Vec<pb::Workload>| (list[0].status.clone(), list[0].pid);
    assert_eq!(status(mesh.list(0).await), ("paused".to_string(), w.pid));
    runc("resume");
    assert_eq!(status(mesh.list(0).await), ("running".to_string(), w.pid));
    // The daemon dies (SIGKILL) and comes back: the container ran on and is adopted again.
    mesh.daemons[0].take().unwrap().kill();
    mesh.daemons[0] = Some(mesh.start(0));
    let list = mesh.list(0).await;
    assert!(running(&list, "lim"), "{list:?}");
    assert_eq!(list[0].pid, w.pid, "the same process, not a new one");
    assert_eq!((list[0].memory_bytes, list[0].cpus), (64 << 20, 0.5));
    // Its process killed behind the daemon's back: `stopped`, with no pid.
    let sleeper = mesh.run(0, "gone", "exec sleep 3600").await;
    let killed = mesh.fleet.exec_on(0, "kill", &["-KILL", &sleeper.pid.to_string()]).unwrap();
    assert!(killed.status.success(), "kill: {}", String::from_utf8_lossy(&killed.stderr));
    dcos_tests::eventually(Duration::from_secs(5), "the killed workload shown stopped", || async {
        let list = mesh.list(0).await;
        list.iter().any(|w| w.name == "gone" && w.status == "stopped" && w.pid == 0).then_some(())
    })
    .await;
    mesh.client(0).await.stop(pb::StopRequest { name: "gone".into() }).await.expect("Stop of a stopped one");
    // Stop removes it, and its cgroup with it.
    let stopped = mesh.client(0).await.stop(pb::StopRequest { name: "lim".into() }).await.expect("Stop");
    assert_eq!(stopped.into_inner().workload.unwrap().status, "stopped");
    assert!(mesh.list(0).await.is_empty());
    assert!(!std::path::Path::new(&format!("/sys/fs/cgroup/memory/dcos/{daemon}/lim")).exists());
    // A host killed with a container running leaves no cgroup of that daemon behind once
    // the fleet is torn down: they would pile up, and slow every later container start.
    mesh.run(0, "left", "exec sleep 3600").await;
    let own = middlecon::workloads::cgroup::Cgroups::new(&daemon);
    assert!(own.exists(), "the running workload has its cgroups");
    drop(mesh);
    assert!(!own.exists(), "the torn-down fleet left cgroups of {daemon}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_the_host_restarts_its_workloads_run_again_with_their_writes() {
    let mut mesh = Mesh::new(1);
    let w = mesh.run(0, "web", "echo run >> /runs; exec sleep 3600").await;
    dcos_tests::eventually(Duration::from_secs(5), "the first run's line", || async {
        (mesh.file_in(0, "web", "runs").as_deref() == Some("run\n")).then_some(())
    })
    .await;
    // What a restart of the machine does: the daemon and the container's processes end, the
    // overlay's mount is gone, the disk stays. Only the boot time cannot be moved by a test:
    // the record is made to say it started before this boot.
    mesh.daemons[0].take().unwrap().kill();
    let killed = mesh.fleet.exec_on(0, "kill", &["-KILL", &w.pid.to_string()]).unwrap();
    assert!(killed.status.success(), "kill: {}", String::from_utf8_lossy(&killed.stderr));
    let dir = mesh.state_dir(0).join("workloads/web");
    let _ = mesh.fleet.exec_on(0, "umount", &["-l", dir.join("bundle/rootfs").to_str().unwrap()]);
    let file = dir.join("workload.json");
    let mut record: serde_json::Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    record["started_unix_ms"] = 1.into();
    std::fs::write(&file, serde_json::to_vec(&record).unwrap()).unwrap();
    mesh.daemons[0] = Some(mesh.start(0));
    let list = mesh.list(0).await;
    assert!(running(&list, "web"), "started again: {list:?}");
    assert_ne!(list[0].pid, w.pid, "a new process");
    assert!(list[0].started_unix_ms > 1, "a new start time: {list:?}");
    dcos_tests::eventually(Duration::from_secs(5), "the second run's line after the first's", || async {
        (mesh.file_in(0, "web", "runs").as_deref() == Some("run\nrun\n")).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purge_removes_what_a_killed_daemon_left_containers_cgroups_overlays_and_directories() {
    let mut mesh = Mesh::new(1);
    let w = mesh.run(0, "left", "echo kept > /file; exec sleep 3600").await;
    let state = mesh.state_dir(0);
    let daemon = middlecon::workloads::bundle::daemon_id("host-0", &state);
    let own = middlecon::workloads::cgroup::Cgroups::new(&daemon);
    assert!(own.exists(), "the running workload has its cgroups");
    // Mounts as host 0 sees them (it has a mount namespace of its own).
    let mounted = || {
        let info = mesh.fleet.exec_on(0, "cat", &["/proc/self/mountinfo"]).unwrap();
        String::from_utf8_lossy(&info.stdout).contains(state.to_str().unwrap())
    };
    // The daemon is killed: its container runs on, as designed, with its overlay mounted.
    mesh.daemons[0].take().unwrap().kill();
    let alive = |pid: u32| mesh.fleet.exec_on(0, "kill", &["-0", &pid.to_string()]).unwrap().status.success();
    assert!(alive(w.pid), "the container outlives its daemon");
    assert!(mounted(), "its root filesystem is an overlay under {}", state.display());
    let purge = |extra: &[&str]| {
        let mut args = vec!["purge", "--state-dir", state.to_str().unwrap(), "--name", "host-0"];
        args.extend_from_slice(extra);
        mesh.fleet.exec_on(0, dcos_tests::bin("middlecon").to_str().unwrap(), &args).unwrap()
    };
    let out = purge(&[]);
    assert!(out.status.success(), "purge: {}", String::from_utf8_lossy(&out.stderr));
    assert!(!alive(w.pid), "the container's process is killed");
    let runc_state = state.join("runtime/runc");
    let containers = std::fs::read_dir(&runc_state).map(|d| d.count()).unwrap_or(0);
    assert_eq!(containers, 0, "runc keeps no container in {}", runc_state.display());
    assert!(!own.exists(), "no cgroup of {daemon} is left");
    assert!(!mounted(), "no overlay under {} is left mounted", state.display());
    let dirs = std::fs::read_dir(state.join("workloads")).map(|d| d.count()).unwrap_or(0);
    assert_eq!(dirs, 0, "no workload directory is left");
    // Twice is harmless; a bad option is a usage error.
    assert!(purge(&[]).status.success());
    assert_eq!(purge(&["--bogus"]).status.code(), Some(2));
}

/// The spare workload directories of host `i` (`middlecon/src/workloads/spare.rs`).
fn spares(mesh: &Mesh, i: usize) -> std::collections::BTreeSet<String> {
    std::fs::read_dir(mesh.state_dir(i).join("workloads"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| middlecon::workloads::spare::Spares::is_spare(n))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_takes_a_spare_directory_another_is_made_and_a_restart_leaves_none_behind() {
    use middlecon::workloads::spare::POOL;
    let mut mesh = Mesh::new(1);
    let before = spares(&mesh, 0);
    assert_eq!(before.len(), POOL, "spares made at start: {before:?}");
    mesh.run(0, "first", "echo hi > /hi; exec sleep 3600").await;
    let after = dcos_tests::eventually(Duration::from_secs(5), "the pool refilled", || async {
        let now = spares(&mesh, 0);
        (now.len() == POOL && now != before).then_some(now)
    })
    .await;
    assert_eq!(before.intersection(&after).count(), POOL - 1, "one spare taken: {before:?} then {after:?}");
    dcos_tests::eventually(Duration::from_secs(5), "the workload's write in its own layer", || async {
        (mesh.file_in(0, "first", "hi").as_deref() == Some("hi\n")).then_some(())
    })
    .await;
    // A run the runtime refuses (no such command in the image) gives its spare back too.
    let refused = pb::RunRequest {
        name: "refused".into(),
        rootfs: mesh.rootfs.to_str().unwrap().into(),
        command: vec!["/no/such/command".into()],
        ..Default::default()
    };
    let e = mesh.client(0).await.run(refused).await.expect_err("a command that is not there");
    assert_eq!(dcos_proto::error_code(&e), pb::ErrorCode::Runtime, "{e:?}");
    dcos_tests::eventually(Duration::from_secs(5), "the pool refilled after a failed run", || async {
        (spares(&mesh, 0).len() == POOL).then_some(())
    })
    .await;
    // More runs than the pool holds, at once: those that find no spare make their own tree.
    let names: Vec<String> = (0..POOL + 2).map(|n| format!("burst-{n}")).collect();
    let runs = names.iter().map(|n| mesh.run(0, n, "exec sleep 3600"));
    let started = futures::future::join_all(runs).await;
    assert!(started.iter().all(|w| w.status == "running"), "{started:?}");
    // A daemon killed and started again removes the spares it finds and makes new, empty
    // ones: what was put into the old ones is not handed to the next run.
    mesh.daemons[0].take().unwrap().kill();
    let workloads = mesh.state_dir(0).join("workloads");
    for spare in spares(&mesh, 0) {
        std::fs::write(workloads.join(spare).join("bundle/rootfs/left-behind"), "x").unwrap();
    }
    mesh.daemons[0] = Some(mesh.start(0));
    let list = mesh.list(0).await;
    assert_eq!(list.len(), POOL + 3, "every workload re-adopted, no spare among them: {list:?}");
    let fresh = spares(&mesh, 0);
    assert_eq!(fresh.len(), POOL, "{fresh:?}");
    for spare in &fresh {
        let rootfs = workloads.join(spare).join("bundle/rootfs");
        assert_eq!(std::fs::read_dir(&rootfs).unwrap().count(), 0, "{spare} is empty after the restart");
    }
    let after = mesh.run(0, "after-restart", "exec sleep 3600").await;
    assert_eq!(after.status, "running");
    assert!(
        mesh.file_in(0, "after-restart", "left-behind").is_none(),
        "a run after the restart starts clean"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_distinct_statuses_and_change_nothing() {
    let mesh = Mesh::new(2);
    let mut c = mesh.client(0).await;
    let rootfs = mesh.rootfs.to_str().unwrap().to_string();
    let run = |name: &str, rootfs: &str, runtime: &str, command: &[&str]| pb::RunRequest {
        name: name.into(),
        rootfs: rootfs.into(),
        runtime: runtime.into(),
        command: command.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    };
    use pb::ErrorCode::{Invalid, NoRuntime};
    use tonic::Code::{FailedPrecondition, InvalidArgument};
    let cases = [
        (run("bad/name", &rootfs, "", &["sleep", "1"]), InvalidArgument, Invalid, "workload name"),
        (run("x", &rootfs, "", &[]), InvalidArgument, Invalid, "a command is required"),
        (run("x", "relative", "", &["sleep", "1"]), InvalidArgument, Invalid, "rootfs"),
        (
            run("x", &rootfs, "nosuchruntime", &["sleep", "1"]),
            FailedPrecondition,
            NoRuntime,
            "host host-0 has no runtime \"nosuchruntime\"",
        ),
    ];
    for (req, code, typed, prefix) in cases {
        let e = c.run(req).await.expect_err("refused");
        assert_eq!((e.code(), dcos_proto::error_code(&e)), (code, typed), "{e:?}");
        assert!(e.message().starts_with(prefix), "{prefix}: {}", e.message());
    }
    c.run(run("web", &rootfs, "", &["sleep", "3600"])).await.expect("Run");
    let e = c.run(run("web", &rootfs, "", &["sleep", "1"])).await.expect_err("the name is taken");
    assert_eq!(e.code(), tonic::Code::AlreadyExists, "{e:?}");
    // crun is chosen per workload: where Debian's crun refuses this machine's cgroups, the
    // runtime's own reason comes back, and nothing is left behind.
    if let Err(e) = c.run(run("c1", &rootfs, "crun", &["sleep", "3600"])).await {
        assert_eq!(e.code(), tonic::Code::Internal, "{e:?}");
        assert!(e.message().contains("crun run c1 failed"), "{}", e.message());
        assert!(!mesh.state_dir(0).join("workloads/c1").exists());
    } else {
        let l = mesh.list(0).await;
        assert!(l.iter().any(|w| w.name == "c1" && w.runtime == "crun" && w.status == "running"), "{l:?}");
    }
    let e = c.stop(pb::StopRequest { name: "nope".into() }).await.expect_err("unknown");
    assert_eq!(e.code(), tonic::Code::NotFound, "{e:?}");
    // Bytes that are no RunRequest (field 1, the name, as a number): the sender's error.
    let identity = dcos_core::tls::Identity::load(&mesh.pki.files("admin")).unwrap();
    let channel = middlecon_client::connect(mesh.fleet.host(0).api_addr(), &identity).await.unwrap();
    let mut raw = tonic::client::Grpc::new(channel);
    raw.ready().await.unwrap();
    let path = tonic::codegen::http::uri::PathAndQuery::from_static("/middlecon.v1.Workloads/Run");
    let not_a_run = tonic::Request::new(pb::ErrorDetail { code: 5 });
    let codec = dcos_proto::codec::Codec::<pb::ErrorDetail, pb::RunReply>::default();
    let e = raw.unary(not_a_run, path, codec).await.expect_err("malformed");
    assert_eq!(e.code(), tonic::Code::InvalidArgument, "{e:?}");
    assert!(e.message().starts_with("malformed protobuf message"), "{}", e.message());
    let live = pb::MigrateRequest {
        name: "web".into(),
        to: "host-1".into(),
        mode: pb::MigrateMode::Live as i32,
        ..Default::default()
    };
    let e = c.migrate(live).await.expect_err("live is refused here");
    assert_eq!(e.code(), tonic::Code::FailedPrecondition, "{e:?}");
    assert!(
        e.message().contains("live migration is not available") && e.message().contains("criu"),
        "{}",
        e.message()
    );
    let to_self = pb::MigrateRequest { name: "web".into(), to: "host-0".into(), ..Default::default() };
    assert_eq!(c.migrate(to_self).await.expect_err("to itself").code(), tonic::Code::InvalidArgument);
    let nowhere = pb::MigrateRequest { name: "web".into(), to: "host-9".into(), ..Default::default() };
    assert_eq!(c.migrate(nowhere).await.expect_err("unknown host").code(), tonic::Code::Unavailable);
    assert!(running(&mesh.list(0).await, "web"), "still running after every refusal");
    // Only a running workload moves: a paused one and one whose process ended are refused
    // before anything is asked of the target, naming what they are, and stay where they are.
    let move_it =
        |name: &str| pb::MigrateRequest { name: name.into(), to: "host-1".into(), ..Default::default() };
    let runc = |verb: &str, name: &str| {
        let root = mesh.state_dir(0).join("runtime/runc");
        let out = mesh.fleet.exec_on(0, "runc", &["--root", root.to_str().unwrap(), verb, name]).unwrap();
        assert!(out.status.success(), "runc {verb}: {}", String::from_utf8_lossy(&out.stderr));
    };
    runc("pause", "web");
    let e = c.migrate(move_it("web")).await.expect_err("paused");
    assert_eq!(e.code(), tonic::Code::FailedPrecondition, "{e:?}");
    assert!(e.message().contains("web is not running on host-0 (paused)"), "{}", e.message());
    runc("resume", "web");
    let dead = mesh.run(0, "dead", "exec sleep 3600").await;
    let killed = mesh.fleet.exec_on(0, "kill", &["-KILL", &dead.pid.to_string()]).unwrap();
    assert!(killed.status.success(), "kill: {}", String::from_utf8_lossy(&killed.stderr));
    // A SIGKILL takes a moment to end a PID namespace's init: asked before that, the move
    // would rightly go ahead.
    dcos_tests::eventually(Duration::from_secs(5), "the killed workload listed as stopped", || async {
        mesh.list(0).await.iter().any(|w| w.name == "dead" && w.status == "stopped").then_some(())
    })
    .await;
    let e = c.migrate(move_it("dead")).await.expect_err("stopped");
    assert_eq!(e.code(), tonic::Code::FailedPrecondition, "{e:?}");
    assert!(e.message().contains("dead is not running on host-0 (stopped)"), "{}", e.message());
    assert!(mesh.list(1).await.is_empty(), "nothing reached host-1");
    assert!(running(&mesh.list(0).await, "web"), "the paused one runs again, on host-0");
    // A viewer may list but not run.
    let viewer = Identity::load(&mesh.pki.issue("grafana", dcos_core::Role::Viewer)).unwrap();
    let ch = middlecon_client::connect(mesh.fleet.host(0).api_addr(), &viewer).await.unwrap();
    let mut v = WorkloadsClient::new(ch);
    assert_eq!(
        v.list(pb::ListRequest {}).await.expect("List").into_inner().workloads.len(),
        mesh.list(0).await.len()
    );
    let e = v.run(run("v", &rootfs, "", &["sleep", "1"])).await.expect_err("viewer");
    assert_eq!(e.code(), tonic::Code::PermissionDenied, "{e:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_target_killed_while_starting_leaves_exactly_one_copy_once_settled() {
    let mut mesh = Mesh::new(2);
    mesh.add_state(1);
    mesh.run(0, "web", "exec sleep 3600").await;
    let mut stream = mesh.start_migration(0, "web", 1, 0).await.expect("Migrate starts");
    loop {
        let m = stream.message().await.expect("stream").expect("a message before the end");
        if m.step() == pb::MigratePhase::Start {
            break;
        }
        assert!(!m.done, "ended before the start: {m:?}");
    }
    // The target dies around the start: before, during or after it; the source cannot
    // tell which, so it stays frozen until the restarted target settles the question.
    mesh.daemons[1].take().unwrap().kill();
    tokio::time::sleep(Duration::from_millis(500)).await;
    mesh.daemons[1] = Some(mesh.start(1));
    let last = rest_of(stream).await.pop().expect("a last message");
    assert!(last.done, "{last:?}");
    let (w0, w1) = dcos_tests::eventually(Duration::from_secs(30), "the migration to settle", || async {
        let (a, b) = (mesh.list(0).await, mesh.list(1).await);
        let settled = a.iter().chain(&b).all(|w| w.status == "running");
        settled.then_some((a, b))
    })
    .await;
    assert_eq!(w0.len() + w1.len(), 1, "exactly one copy in the fleet: {w0:?} {w1:?} (last: {last:?})");
    if last.error.is_empty() {
        assert_eq!(w1.len(), 1, "a migration reported done runs on the target");
    }
}
