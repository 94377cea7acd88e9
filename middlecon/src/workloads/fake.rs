//! A fake of the host's containers for the workload core's unit tests: containers are
//! entries in a map (running, paused or stopped) with the runtime that started them, the
//! runtime classes `runc`, `crun` and `runsc` exist (a test may take some away), and a
//! start can be made to fail. No root, no runtime binary. Like real containers, the fake's
//! outlive a daemon's restart: a test reopens [`Workloads`] on the same fake.
//!
//! A container whose environment has `PORT` (a service's instance) listens there, in
//! process: on each connection, once the client has sent a first line, it answers with the
//! container's id and a newline, then echoes, until the container stops ([`FakeContainers::
//! greets`] has it send the id first instead, as a server with a banner would).

use super::{ContainerStatus, Containers, RunSpec, WorkloadError, Workloads};
use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Fake containers of one host.
#[derive(Default)]
pub struct FakeContainers {
    state: Mutex<HashMap<String, ContainerStatus>>,
    /// The listeners of containers with a `PORT`.
    servers: Mutex<HashMap<String, tokio::task::JoinHandle<()>>>,
    next_pid: AtomicU32,
    /// The next start fails (the runtime refuses the bundle).
    pub fail_start: AtomicBool,
    /// Every start fails.
    pub fail_every_start: AtomicBool,
    /// Containers start but never listen on their `PORT`.
    pub deaf: AtomicBool,
    /// How many containers were started.
    pub started: AtomicU32,
    /// How long a start takes, in milliseconds (a slow runtime or image).
    pub start_ms: std::sync::atomic::AtomicU64,
    /// Instances send their id as soon as a connection is accepted (a banner).
    pub greets: AtomicBool,
    /// Connections the instances accepted ([`FakeContainers::accepted`]).
    accepted_shared: std::sync::OnceLock<Arc<AtomicU32>>,
    /// The runtime classes this host has; `None`: runc, crun and runsc.
    classes: Mutex<Option<Vec<String>>>,
    /// The runtime each container was started with.
    started_with: Mutex<HashMap<String, String>>,
    /// Containers created (runsc's are, on a migration's target) and not started: nothing
    /// of them runs.
    created: Mutex<HashMap<String, (String, std::path::PathBuf)>>,
    /// How many containers were created ahead of their start.
    pub created_ahead: AtomicU32,
}

impl FakeContainers {
    pub fn new() -> Arc<FakeContainers> {
        Arc::new(FakeContainers { next_pid: AtomicU32::new(100), ..FakeContainers::default() })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, HashMap<String, ContainerStatus>> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The host has only these runtime classes.
    pub fn only(&self, classes: &[&str]) {
        *self.classes.lock().unwrap() = Some(classes.iter().map(|c| c.to_string()).collect());
    }

    /// The runtime container `id` was last started with.
    pub fn runtime_of(&self, id: &str) -> Option<String> {
        self.started_with.lock().unwrap().get(id).cloned()
    }

    /// Container `id`'s status now.
    pub fn get(&self, id: &str) -> ContainerStatus {
        self.state().get(id).copied().unwrap_or(ContainerStatus::Gone)
    }

    /// The ids of the containers this host has, running or not (created, too).
    pub fn ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self.state().keys().cloned().collect();
        ids.extend(self.created.lock().unwrap().keys().cloned());
        ids.sort();
        ids
    }

    /// A handle on [`FakeContainers::accepted`] for the listeners' tasks.
    fn accepted_counter(&self) -> Arc<AtomicU32> {
        self.accepted_shared.get_or_init(|| Arc::new(AtomicU32::new(0))).clone()
    }

    /// Connections the instances accepted so far.
    pub fn accepted(&self) -> u32 {
        self.accepted_counter().load(Ordering::SeqCst)
    }

    /// Container `id`'s process ends by itself.
    pub fn exit(&self, id: &str) {
        if let Some(s) = self.state().get_mut(id) {
            *s = ContainerStatus::Stopped;
        }
        if let Some(server) = self.servers.lock().unwrap().remove(id) {
            server.abort();
        }
    }

    /// Listens on the `PORT` of the bundle's environment, if it has one, as container `id`.
    fn listen(&self, id: &str, bundle: &Path) {
        let config: serde_json::Value =
            serde_json::from_slice(&std::fs::read(bundle.join("config.json")).unwrap()).unwrap();
        let env = config["process"]["env"].as_array().cloned().unwrap_or_default();
        let Some(port) =
            env.iter().filter_map(|v| v.as_str()?.strip_prefix("PORT=")?.parse::<u16>().ok()).next()
        else {
            return;
        };
        let listener = std::net::TcpListener::bind(("127.0.0.1", port)).expect("the instance's port is free");
        listener.set_nonblocking(true).unwrap();
        let listener = tokio::net::TcpListener::from_std(listener).unwrap();
        let name = id.to_string();
        let greets = self.greets.load(Ordering::SeqCst);
        let counts = self.accepted_counter();
        let server = tokio::spawn(async move {
            while let Ok((conn, _)) = listener.accept().await {
                counts.fetch_add(1, Ordering::SeqCst);
                let name = name.clone();
                tokio::spawn(async move {
                    use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
                    let mut conn = tokio::io::BufReader::new(conn);
                    if !greets && conn.read_line(&mut String::new()).await.unwrap_or(0) == 0 {
                        return;
                    }
                    if conn.get_mut().write_all(format!("{name}\n").as_bytes()).await.is_ok() {
                        let (mut r, mut w) = tokio::io::split(conn);
                        let _ = tokio::io::copy(&mut r, &mut w).await;
                    }
                });
            }
        });
        self.servers.lock().unwrap().insert(id.to_string(), server);
    }
}

impl FakeContainers {
    fn known(&self, name: &str) -> Result<String, WorkloadError> {
        let name = if name.is_empty() { "runc" } else { name };
        if self.kinds().iter().any(|k| k == name) {
            Ok(name.into())
        } else {
            Err(WorkloadError::NoRuntime(super::runtime::RuntimeError::NotFound(name.into())))
        }
    }
}

#[async_trait::async_trait]
impl Containers for FakeContainers {
    fn runtime(&self, name: &str) -> Result<String, WorkloadError> {
        self.known(name)
    }

    fn kinds(&self) -> Vec<String> {
        let only = self.classes.lock().unwrap().clone();
        only.unwrap_or_else(|| ["runc", "crun", "runsc"].map(String::from).to_vec())
    }

    async fn start(
        &self,
        id: &str,
        runtime: &str,
        bundle: &Path,
        _log: &Path,
    ) -> Result<Option<u32>, WorkloadError> {
        self.known(runtime)?;
        tokio::time::sleep(Duration::from_millis(self.start_ms.load(Ordering::SeqCst))).await;
        if self.fail_start.swap(false, Ordering::SeqCst) || self.fail_every_start.load(Ordering::SeqCst) {
            return Err(WorkloadError::Io(format!(
                "{id}: the runtime refused the bundle (a fault of the test)"
            )));
        }
        assert!(bundle.join("config.json").is_file(), "a start without config.json in {}", bundle.display());
        assert!(bundle.join("rootfs").is_dir(), "a start without a root filesystem in {}", bundle.display());
        let pid = self.next_pid.fetch_add(1, Ordering::SeqCst);
        self.state().insert(id.to_string(), ContainerStatus::Running(pid));
        self.started_with.lock().unwrap().insert(id.to_string(), runtime.to_string());
        self.started.fetch_add(1, Ordering::SeqCst);
        if !self.deaf.load(Ordering::SeqCst) {
            self.listen(id, bundle);
        }
        Ok(Some(pid))
    }

    fn creates_ahead(&self, runtime: &str) -> bool {
        runtime == "runsc"
    }

    async fn create(&self, id: &str, runtime: &str, bundle: &Path, _log: &Path) -> Result<(), WorkloadError> {
        self.known(runtime)?;
        assert!(bundle.join("config.json").is_file(), "a create without config.json in {}", bundle.display());
        self.created.lock().unwrap().insert(id.to_string(), (runtime.to_string(), bundle.to_path_buf()));
        self.created_ahead.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }

    async fn start_created(&self, id: &str, runtime: &str) -> Result<Option<u32>, WorkloadError> {
        let made = self.created.lock().unwrap().remove(id);
        let Some((by, bundle)) = made else { panic!("{id} was not created") };
        assert_eq!(by, runtime, "{id} was created by {by}");
        self.start(id, runtime, &bundle, Path::new("")).await
    }

    fn status(&self, id: &str, _runtime: &str) -> ContainerStatus {
        self.get(id)
    }

    async fn freeze(&self, id: &str, _runtime: &str, _wait: Duration) -> Result<(), WorkloadError> {
        match self.state().get_mut(id) {
            Some(s @ ContainerStatus::Running(_)) => {
                *s = ContainerStatus::Paused(s.pid());
                Ok(())
            }
            other => Err(WorkloadError::Io(format!("freezing {id}: it is {other:?}"))),
        }
    }

    async fn thaw(&self, id: &str, _runtime: &str) -> Result<(), WorkloadError> {
        if let Some(s @ ContainerStatus::Paused(_)) = self.state().get_mut(id) {
            *s = ContainerStatus::Running(s.pid());
        }
        Ok(())
    }

    async fn terminate(&self, id: &str, _runtime: &str, _grace: Duration) {
        self.exit(id);
    }

    async fn remove(&self, id: &str, _runtime: &str) -> Result<(), WorkloadError> {
        self.created.lock().unwrap().remove(id);
        self.exit(id);
        self.state().remove(id);
        Ok(())
    }

    fn sweep(&self, _keep: &(dyn Fn(&str) -> bool + Sync)) -> Vec<String> {
        Vec::new()
    }

    fn close(&self) {}
}

/// A host of fake containers: its state dir, its containers, its workloads as a daemon
/// opened them (again after each [`FakeHost::restart`]).
pub struct FakeHost {
    pub name: String,
    pub state: tempfile::TempDir,
    pub containers: Arc<FakeContainers>,
    /// Bytes free for workloads, as `statvfs` would say.
    pub free: Arc<std::sync::atomic::AtomicU64>,
}

impl FakeHost {
    pub fn new(name: &str) -> FakeHost {
        FakeHost {
            name: name.into(),
            state: tempfile::tempdir().unwrap(),
            containers: FakeContainers::new(),
            free: Arc::new(std::sync::atomic::AtomicU64::new(1 << 40)),
        }
    }

    /// The host's workloads, opened as a starting daemon opens them.
    pub async fn open(&self) -> Arc<Workloads> {
        let free = self.free.clone();
        Workloads::open_with(
            &self.name,
            self.state.path(),
            self.containers.clone(),
            Box::new(move |_| Ok(free.load(Ordering::SeqCst))),
        )
        .await
        .unwrap()
    }
}

/// A small image to run: one file in one directory.
pub fn image() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("etc")).unwrap();
    std::fs::write(dir.path().join("etc/motd"), "hello from the image\n").unwrap();
    dir
}

/// What `Run` takes for workload `name` from `image`.
pub fn spec(name: &str, image: &Path) -> RunSpec {
    RunSpec {
        name: name.into(),
        rootfs: image.to_path_buf(),
        command: vec!["/bin/app".into()],
        ..RunSpec::default()
    }
}

/// Waits (at most 5 s) until `done` holds.
pub async fn eventually(done: impl Fn() -> bool) {
    let until = std::time::Instant::now() + Duration::from_secs(5);
    while !done() {
        assert!(std::time::Instant::now() < until, "not done within 5 s");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
