//! Workloads and their migration across real hosts (network namespaces), each running the
//! real `middlecon` binary, with real OCI containers (runc) from a busybox root filesystem
//! built by the test. Clients use each host's TCP API with the admin certificate, as
//! `dcos` does.

use dcos_core::tls::Identity;
use dcos_proto::v1 as pb;
use dcos_proto::v1::workloads_client::WorkloadsClient;
use dcos_tests::netns::{Fleet, HostProcess};
use dcos_tests::Pki;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;
use tonic::transport::Channel;

const API_PORT: u16 = 7442;

/// A fleet of hosts each running middlecon, and a busybox root filesystem to run.
struct Mesh {
    fleet: Fleet,
    pki: Pki,
    daemons: Vec<Option<HostProcess>>,
    work: tempfile::TempDir,
    rootfs: PathBuf,
}

impl Mesh {
    fn new(n: usize) -> Mesh {
        let fleet = Fleet::new(n).expect("fleet");
        let pki = Pki::new();
        let work = tempfile::Builder::new().prefix("dcos-workloads-").tempdir().expect("tempdir");
        let rootfs = dcos_tests::oci::busybox_rootfs(work.path()).expect("busybox rootfs");
        let mut mesh = Mesh { fleet, pki, daemons: Vec::new(), work, rootfs };
        for i in 0..n {
            let d = mesh.start(i);
            mesh.daemons.push(Some(d));
        }
        mesh
    }

    fn state_dir(&self, i: usize) -> PathBuf {
        self.work.path().join(format!("state-{i}"))
    }

    /// Starts (or restarts) middlecon on host `i`.
    fn start(&self, i: usize) -> HostProcess {
        let n = self.fleet.hosts().len();
        let host = self.fleet.host(i);
        let tls = host.issue(&self.pki);
        let listen = format!("{}:7441", host.addr);
        let api = format!("{}:{API_PORT}", host.addr);
        let state = self.state_dir(i).to_str().unwrap().to_string();
        let sock = format!("{state}/api.sock");
        let seed = format!("{}:7441", self.fleet.host(0).addr);
        let peers: Vec<String> = (0..n)
            .filter(|j| *j != i)
            .map(|j| format!("{}={}:7441", self.fleet.host(j).name, self.fleet.host(j).addr))
            .collect();
        let mut args: Vec<&str> = vec![
            "--listen",
            &listen,
            "--api",
            &api,
            "--socket",
            &sock,
            "--name",
            &host.name,
            "--state-dir",
            &state,
            "--seed",
            &seed,
            "--cert",
            tls.cert.to_str().unwrap(),
            "--key",
            tls.key.to_str().unwrap(),
            "--ca",
            tls.ca.to_str().unwrap(),
        ];
        for p in &peers {
            args.extend(["--peer", p]);
        }
        self.fleet.spawn_daemon(i, dcos_tests::bin("middlecon"), &args).expect("middlecon starts")
    }

    fn log(&self, i: usize) -> String {
        self.daemons[i].as_ref().map(|d| d.stderr()).unwrap_or_default()
    }

    async fn client(&self, i: usize) -> WorkloadsClient<Channel> {
        let identity = Identity::load(&self.pki.files("admin")).expect("identity");
        let addr = SocketAddr::new(self.fleet.host(i).addr.into(), API_PORT);
        let channel = middlecon::api::connect(addr, &identity).await.expect("connects to the API");
        WorkloadsClient::new(channel)
    }

    async fn run(&self, i: usize, name: &str, script: &str) -> pb::Workload {
        let req = pb::RunRequest {
            name: name.into(),
            rootfs: self.rootfs.to_str().unwrap().into(),
            command: vec!["sh".into(), "-c".into(), script.into()],
            ..Default::default()
        };
        match self.client(i).await.run(req).await {
            Ok(reply) => reply.into_inner().workload.expect("the workload"),
            Err(e) => panic!("Run on host {i}: {e}; middlecon's log: {}", self.log(i)),
        }
    }

    async fn list(&self, i: usize) -> Vec<pb::Workload> {
        self.client(i).await.list(pb::ListRequest {}).await.expect("List").into_inner().workloads
    }

    /// Starts migrating `name` from host `from` to host `to`, at most `bwlimit` bytes/s.
    async fn start_migration(
        &self,
        from: usize,
        name: &str,
        to: usize,
        bwlimit: u64,
    ) -> Result<tonic::Streaming<pb::MigrateProgress>, tonic::Status> {
        let req = pb::MigrateRequest {
            name: name.into(),
            to: self.fleet.host(to).name.clone(),
            mode: pb::MigrateMode::Cold as i32,
            bwlimit,
        };
        Ok(self.client(from).await.migrate(req).await?.into_inner())
    }

    /// Migrates and collects every progress message.
    async fn migrate(
        &self,
        from: usize,
        name: &str,
        to: usize,
    ) -> Result<Vec<pb::MigrateProgress>, tonic::Status> {
        let stream = self.start_migration(from, name, to, 0).await?;
        Ok(rest_of(stream).await)
    }

    /// Adds a file of `mib` MiB of pseudo-random bytes to the root filesystem (before `run`).
    fn add_state(&self, mib: usize) {
        use std::io::Write;
        let mut f = std::fs::File::create(self.rootfs.join("state.bin")).unwrap();
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut block = vec![0u8; 1 << 20];
        for _ in 0..mib {
            for b in block.chunks_mut(8) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                b.copy_from_slice(&x.to_le_bytes());
            }
            f.write_all(&block).unwrap();
        }
    }

    fn file_in(&self, i: usize, name: &str, path: &str) -> Option<String> {
        let p = self.state_dir(i).join("workloads").join(name).join("bundle/rootfs").join(path);
        std::fs::read_to_string(p).ok()
    }
}

/// Reads progress messages until the last one (or the stream ends).
async fn rest_of(mut stream: tonic::Streaming<pb::MigrateProgress>) -> Vec<pb::MigrateProgress> {
    let mut all = Vec::new();
    loop {
        let next = tokio::time::timeout(Duration::from_secs(60), stream.message())
            .await
            .expect("a progress message within 60 s");
        match next {
            Ok(Some(m)) => {
                let last = m.done;
                all.push(m);
                if last {
                    break;
                }
            }
            Ok(None) | Err(_) => break,
        }
    }
    all
}

/// Waits for a `copy` message that has sent some bytes.
async fn until_copying(stream: &mut tonic::Streaming<pb::MigrateProgress>) {
    loop {
        let m = tokio::time::timeout(Duration::from_secs(20), stream.message())
            .await
            .expect("progress within 20 s")
            .expect("stream open")
            .expect("a message");
        assert!(!m.done, "the migration ended before copying: {m:?}");
        if m.phase == "copy" && m.bytes_sent > 0 {
            return;
        }
    }
}

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
    let progress = mesh.migrate(0, "web", 1).await.expect("Migrate starts");
    let last = progress.last().expect("progress messages");
    assert!(last.done && last.error.is_empty(), "migration done: {last:?}");
    assert!(last.bytes_sent > 0 && last.downtime_ms > 0, "{last:?}");
    let phases: Vec<&str> = progress.iter().map(|p| p.phase.as_str()).collect();
    for p in ["freeze", "copy", "start", "delete", "done"] {
        assert!(phases.contains(&p), "phase {p} reported: {phases:?}");
    }
    assert_eq!(last.epoch, 1);
    // On the target: the file written on the source, and the process running.
    assert_eq!(mesh.file_in(1, "web", "state.txt").as_deref(), Some("written-inside\n"));
    let on_target = mesh.list(1).await;
    assert!(running(&on_target, "web"), "{on_target:?}");
    // On the source: nothing left.
    assert!(mesh.list(0).await.is_empty(), "the source keeps no copy");
    assert!(!mesh.state_dir(0).join("workloads/web").exists(), "the source's bundle is deleted");
}

/// A migration that cannot complete leaves the workload running on the source: shared by
/// the target-killed and link-cut tests.
async fn assert_failed_and_still_on_source(mesh: &Mesh, progress: &[pb::MigrateProgress]) {
    let last = progress.last().expect("a last message");
    assert!(last.done && !last.error.is_empty(), "the migration fails: {last:?}");
    assert!(
        ["unreachable", "transfer"].contains(&last.error_code.as_str()),
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
    assert!(err.message().starts_with("conflict: web is already migrating"), "{}", err.message());
    let progress = rest_of(first).await;
    let last = progress.last().unwrap();
    assert!(last.done && last.error.is_empty(), "the first one completes: {last:?}");
    assert!(running(&mesh.list(1).await, "web"));
    assert!(mesh.list(0).await.is_empty() && mesh.list(2).await.is_empty(), "one copy, on host 1");
}
