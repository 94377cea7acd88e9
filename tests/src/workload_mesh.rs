//! A fleet of network-namespace hosts each running the real `middlecon` (seeded with host 0,
//! knowing the others' peer addresses), the admin's clients of their APIs, and a busybox
//! root filesystem to run: what the workload and service tests share.

use crate::netns::{Fleet, HostProcess};
use crate::Pki;
use dcos_core::tls::Identity;
use dcos_proto::v1 as pb;
use dcos_proto::v1::workloads_client::WorkloadsClient;
use std::path::PathBuf;
use std::time::Duration;
use tonic::transport::Channel;

/// A fleet of hosts each running middlecon, and a busybox root filesystem to run.
pub struct Mesh {
    pub fleet: Fleet,
    pub pki: Pki,
    pub daemons: Vec<Option<HostProcess>>,
    /// Holds the root filesystem.
    _work: tempfile::TempDir,
    pub rootfs: PathBuf,
}

impl Mesh {
    pub fn new(n: usize) -> Mesh {
        Mesh::with(n, |_| {})
    }

    /// A mesh prepared by `before` (e.g. a small tmpfs as a state dir) before the daemons start.
    pub fn with(n: usize, before: impl FnOnce(&Mesh)) -> Mesh {
        let fleet = Fleet::new(n).expect("fleet");
        let pki = Pki::new();
        let work = tempfile::Builder::new().prefix("dcos-workloads-").tempdir().expect("tempdir");
        let rootfs = crate::oci::busybox_rootfs(work.path()).expect("busybox rootfs");
        let mut mesh = Mesh { fleet, pki, daemons: Vec::new(), _work: work, rootfs };
        before(&mesh);
        for i in 0..n {
            let d = mesh.start(i);
            mesh.daemons.push(Some(d));
        }
        mesh
    }

    pub fn state_dir(&self, i: usize) -> PathBuf {
        self.fleet.middlecon_state_dir(i)
    }

    /// Host `i`'s k2i, reading the OCI state of its middlecon's workloads.
    pub fn k2i(&self, i: usize) -> HostProcess {
        let oci =
            |class: &str| format!("{class}={}", self.state_dir(i).join("runtime").join(class).display());
        let (runc, runsc) = (oci("runc"), oci("runsc"));
        let args = ["--sample-interval", "200ms", "--oci-root", &runc, "--oci-root", &runsc];
        self.fleet.k2i_on(i, &self.fleet.host(i).issue(&self.pki), &args).expect("k2i starts")
    }

    /// Starts (or restarts) middlecon inside host `i`, seeded with host 0 and knowing the
    /// others' peer addresses.
    pub fn start(&self, i: usize) -> HostProcess {
        let seed = format!("{}:7441", self.fleet.host(0).addr);
        let peers: Vec<String> = (0..self.fleet.hosts().len())
            .filter(|j| *j != i)
            .map(|j| format!("{}={}:7441", self.fleet.host(j).name, self.fleet.host(j).addr))
            .collect();
        let mut args = vec!["--seed", seed.as_str()];
        for p in &peers {
            args.extend(["--peer", p.as_str()]);
        }
        let tls = self.fleet.host(i).issue(&self.pki);
        self.fleet.middlecon_on(i, &tls, &args).expect("middlecon starts")
    }

    pub fn log(&self, i: usize) -> String {
        self.daemons[i].as_ref().map(|d| d.stderr()).unwrap_or_default()
    }

    pub async fn client(&self, i: usize) -> WorkloadsClient<Channel> {
        let identity = Identity::load(&self.pki.files("admin")).expect("identity");
        let addr = self.fleet.host(i).api_addr();
        let channel = middlecon_client::connect(addr, &identity).await.expect("connects to the API");
        WorkloadsClient::new(channel)
    }

    pub async fn run(&self, i: usize, name: &str, script: &str) -> pb::Workload {
        self.run_as(i, name, script, "").await
    }

    /// Runs `name` on host `i` with runtime `runtime` (empty: the daemon's default).
    pub async fn run_as(&self, i: usize, name: &str, script: &str, runtime: &str) -> pb::Workload {
        let req = pb::RunRequest {
            name: name.into(),
            rootfs: self.rootfs.to_str().unwrap().into(),
            command: vec!["sh".into(), "-c".into(), script.into()],
            runtime: runtime.into(),
            ..Default::default()
        };
        match self.client(i).await.run(req).await {
            Ok(reply) => reply.into_inner().workload.expect("the workload"),
            Err(e) => panic!("Run on host {i}: {e}; middlecon's log: {}", self.log(i)),
        }
    }

    pub async fn list(&self, i: usize) -> Vec<pb::Workload> {
        self.client(i).await.list(pb::ListRequest {}).await.expect("List").into_inner().workloads
    }

    /// Starts migrating `name` from host `from` to host `to`, at most `bwlimit` bytes/s.
    pub async fn start_migration(
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
            runtime: String::new(),
        };
        Ok(self.client(from).await.migrate(req).await?.into_inner())
    }

    /// Migrates `name` from host `from` to host `to`, run there with runtime class
    /// `runtime`, and collects every progress message.
    pub async fn migrate_as(
        &self,
        from: usize,
        name: &str,
        to: usize,
        runtime: &str,
    ) -> Result<Vec<pb::MigrateProgress>, tonic::Status> {
        let req = pb::MigrateRequest {
            name: name.into(),
            to: self.fleet.host(to).name.clone(),
            mode: pb::MigrateMode::Cold as i32,
            runtime: runtime.into(),
            ..Default::default()
        };
        Ok(rest_of(self.client(from).await.migrate(req).await?.into_inner()).await)
    }

    /// Migrates and collects every progress message.
    pub async fn migrate(
        &self,
        from: usize,
        name: &str,
        to: usize,
    ) -> Result<Vec<pb::MigrateProgress>, tonic::Status> {
        let stream = self.start_migration(from, name, to, 0).await?;
        Ok(rest_of(stream).await)
    }

    /// Adds a file of `mib` MiB of pseudo-random bytes to the root filesystem (before `run`).
    pub fn add_state(&self, mib: usize) {
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

    /// A file the workload wrote, from outside host `i`: in its copied root filesystem, or in
    /// the upper layer of its overlay (mounted in the host's own mount namespace only).
    pub fn file_in(&self, i: usize, name: &str, path: &str) -> Option<String> {
        let dir = self.state_dir(i).join("workloads").join(name);
        ["bundle/rootfs", "layers/upper"]
            .iter()
            .find_map(|d| std::fs::read_to_string(dir.join(d).join(path)).ok())
    }
}

/// Reads progress messages until the last one (or the stream ends).
pub async fn rest_of(mut stream: tonic::Streaming<pb::MigrateProgress>) -> Vec<pb::MigrateProgress> {
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
pub async fn until_copying(stream: &mut tonic::Streaming<pb::MigrateProgress>) {
    until_step(stream, pb::MigratePhase::Copy).await;
}

/// Reads progress until a message of `phase` (for `copy`, one that has sent some bytes);
/// returns the messages read. The migration ending first fails the test.
pub async fn until_step(
    stream: &mut tonic::Streaming<pb::MigrateProgress>,
    phase: pb::MigratePhase,
) -> Vec<pb::MigrateProgress> {
    let mut seen = Vec::new();
    loop {
        let m = tokio::time::timeout(Duration::from_secs(20), stream.message())
            .await
            .expect("progress within 20 s")
            .expect("stream open")
            .expect("a message");
        assert!(!m.done, "the migration ended before {}: {m:?}", phase.word());
        let reached = m.step() == phase && (phase != pb::MigratePhase::Copy || m.bytes_sent > 0);
        seen.push(m);
        if reached {
            return seen;
        }
    }
}
