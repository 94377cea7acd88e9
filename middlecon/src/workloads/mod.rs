//! The host's OCI container workloads (SPEC section 5) and their migration between peers:
//! the workload core. It takes and returns its own types ([`RunSpec`], [`Workload`]) and
//! reaches the host's containers through the [`Containers`] trait and other hosts through
//! [`migrate::Peers`], so that its rules run in unit tests against fakes; the gRPC API
//! (`crate::api::workloads`) and the peer transport are adapters around it.
//!
//! - [`containers`]: the [`Containers`] trait and [`containers::Oci`], the OCI runtimes with
//!   the workloads' cgroups.
//! - [`classes`]: the runtime classes (runc, crun, runsc), one [`classes::RuntimeClass`]
//!   each: what each runtime does its own way.
//! - [`runtime`]: the OCI runtime binary (per workload) and its verbs.
//! - [`bundle`]: `config.json` (oci-spec types) and copying a tree.
//! - [`rootfs`]: a workload's root filesystem: an overlay over the image it was run from
//!   (its writes in `layers/`), or a copy where the kernel refuses the overlay.
//! - [`cgroup`]: the workloads' cgroups, and removing what the runtime leaves of them.
//! - [`spare`]: workload directories made ahead of time, so `Run` allocates no inode.
//! - [`record`]: what is kept on disk per workload, and the [`Phase`] guards.
//! - [`error`]: [`WorkloadError`] and its typed codes.
//! - [`transfer`]: the bundle's root filesystem as a checksummed tar stream, with a
//!   bandwidth limit.
//! - [`migrate`]: cold migration, negotiated between the two hosts (source, target,
//!   recovery after a crash) and evacuation; the state machine and its failure table are in
//!   `docs/migration.md`.
//!
//! Layout under `--state-dir`: `workloads/<name>/{workload.json, bundle/config.json,
//! bundle/rootfs/, layers/{upper,work}/, output.log}`, spare trees of that shape in
//! `workloads/.spare-*/`, and the runtimes' own state in `runtime/<runc|crun|runsc>/` (which k2i
//! reads with `--oci-root runc=<state-dir>/runtime/runc`).

pub mod bundle;
pub mod cgroup;
pub mod classes;
pub mod containers;
pub mod error;
pub mod migrate;
pub mod record;
pub mod rootfs;
pub mod runtime;
pub mod spare;
pub mod transfer;

#[cfg(test)]
pub(crate) mod fake;

pub use containers::{ContainerStatus, Containers};
pub use error::{ErrorCode, WorkloadError};
pub use record::{Phase, Record};

use error::io_err;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

/// Prefix of a workload directory being removed (no workload name starts with a dot).
pub const REMOVING: &str = ".removing-";
/// How long `Stop` waits after SIGTERM before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// A workload to run, as `Run` takes it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunSpec {
    /// `[A-Za-z0-9][A-Za-z0-9_.-]{0,62}`: unique on the host.
    pub name: String,
    /// The image: an absolute path to a directory on the host.
    pub rootfs: PathBuf,
    /// `runc`, `crun`, `runsc` or a path; empty: the host's default.
    pub runtime: String,
    /// 0: no limit.
    pub memory_bytes: u64,
    /// Cores; 0: no limit.
    pub cpus: f64,
    pub env: BTreeMap<String, String>,
    /// The command and its arguments, inside the root filesystem.
    pub command: Vec<String>,
    /// The host the caller means: another name is refused. Empty: this host.
    pub host: String,
    /// The service it is an instance of (`crate::services` runs those).
    pub service: Option<String>,
}

/// Where a workload is, as `List` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Running,
    Paused,
    /// Its process has ended (or the runtime lost it).
    Stopped,
    /// Being made by `Run`.
    Creating,
    /// Frozen, being moved to a peer.
    Migrating,
    /// Being received from a peer.
    Incoming,
    /// Its runtime is not on this host (any more).
    NoRuntime,
}

impl Status {
    /// The word `dcos workloads` shows.
    pub fn word(self) -> &'static str {
        match self {
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Stopped => "stopped",
            Status::Creating => "creating",
            Status::Migrating => "migrating",
            Status::Incoming => "incoming",
            Status::NoRuntime => "no_runtime",
        }
    }

    /// The status of a workload in `phase` whose container is `container`.
    fn of(phase: &Phase, container: ContainerStatus) -> Status {
        match (phase, container) {
            (Phase::Owned, ContainerStatus::Running(_)) => Status::Running,
            (Phase::Owned, ContainerStatus::Paused(_)) => Status::Paused,
            (Phase::Owned, ContainerStatus::Stopped | ContainerStatus::Gone) => Status::Stopped,
            (Phase::Creating, _) => Status::Creating,
            (Phase::MigratingOut { .. }, _) => Status::Migrating,
            (Phase::Incoming { .. }, _) => Status::Incoming,
        }
    }
}

/// A workload of this host, as `Run`, `Stop` and `List` answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Workload {
    pub name: String,
    pub host: String,
    pub runtime: String,
    pub status: Status,
    /// The container's init pid (0 if none).
    pub pid: u32,
    pub started_unix_ms: i64,
    pub command: Vec<String>,
    pub memory_bytes: u64,
    pub cpus: f64,
    pub env: BTreeMap<String, String>,
    /// The migration epoch: 0 where it was first run, +1 at every move.
    pub epoch: u64,
    /// The service it is an instance of.
    pub service: Option<String>,
}

/// Checks a workload name: `[A-Za-z0-9][A-Za-z0-9_.-]{0,62}`.
pub fn check_name(name: &str) -> Result<(), WorkloadError> {
    dcos_core::names::check_workload_name(name)
        .map_err(|m| WorkloadError::Invalid(format!("workload name {m}")))
}

/// Free bytes of the filesystem that holds a directory ([`Workloads::with_free_space`]).
pub type FreeSpace = dyn Fn(&Path) -> std::io::Result<u64> + Send + Sync;

/// The free bytes of the filesystem holding `dir`, from `statvfs`.
fn statvfs_free(dir: &Path) -> std::io::Result<u64> {
    let s = nix::sys::statvfs::statvfs(dir).map_err(std::io::Error::from)?;
    Ok(s.blocks_available() as u64 * s.fragment_size() as u64)
}

/// This host's workloads.
/// When this host last booted (ms since the epoch), read once per start of the daemon;
/// unknown: 0, so that no workload counts as started before it.
fn boot_unix_ms() -> i64 {
    dcos_linux::boot::unix_ms(dcos_linux::proc_root()).unwrap_or_else(|e| {
        tracing::warn!("the host's boot time: {e}");
        0
    })
}

pub struct Workloads {
    /// This host's name.
    pub host: String,
    /// This daemon in cgroup paths ([`bundle::daemon_id`]).
    daemon_id: String,
    containers: Arc<dyn Containers>,
    /// `<state-dir>/workloads`.
    dir: PathBuf,
    /// Directory trees `Run` renames into place ([`spare`]).
    spares: Arc<spare::Spares>,
    table: Mutex<BTreeMap<String, Record>>,
    /// One lock per name for the target side's start and settle, so they never interleave.
    name_locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// The incoming transfers running on the target side ([`migrate::target::Transfers`]).
    pub(crate) transfers: migrate::target::Transfers,
    free_space: Box<FreeSpace>,
    /// Incoming workloads whose container was created ahead of their start
    /// ([`Workloads::create_ahead`]).
    ahead: Mutex<std::collections::HashSet<String>>,
}

impl Workloads {
    /// Opens the workloads under `state_dir` run by runc or crun ([`containers::Oci`]);
    /// see [`Workloads::open_with`].
    pub async fn open(
        host: &str,
        state_dir: &Path,
        default_runtime: &str,
    ) -> Result<Arc<Workloads>, WorkloadError> {
        let daemon_id = bundle::daemon_id(host, state_dir);
        let containers = Arc::new(containers::Oci::new(state_dir, &daemon_id, default_runtime));
        Workloads::open_with(host, state_dir, containers, Box::new(statvfs_free)).await
    }

    /// Opens (creating) `<state_dir>/workloads` and re-adopts what a previous run left:
    /// owned workloads are kept as they are (running containers go on running),
    /// half-created ones and unstarted incoming ones are removed, and a migration that had
    /// not asked its target to start is undone (the container resumed). Migrations that had
    /// are left for [`migrate::recover`], which needs the peers.
    pub async fn open_with(
        host: &str,
        state_dir: &Path,
        containers: Arc<dyn Containers>,
        free_space: Box<FreeSpace>,
    ) -> Result<Arc<Workloads>, WorkloadError> {
        let dir = state_dir.join("workloads");
        std::fs::create_dir_all(&dir).map_err(io_err(dir.display()))?;
        let w = Arc::new(Workloads {
            host: host.to_string(),
            daemon_id: bundle::daemon_id(host, state_dir),
            containers,
            spares: Arc::new(spare::Spares::new(&dir)),
            dir: dir.clone(),
            table: Mutex::default(),
            name_locks: Mutex::default(),
            transfers: Default::default(),
            free_space,
            ahead: Mutex::default(),
        });
        let booted = boot_unix_ms();
        let entries = std::fs::read_dir(&dir).map_err(io_err(dir.display()))?;
        for entry in entries.flatten() {
            let path = entry.path();
            if !path.is_dir() {
                continue;
            }
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with(REMOVING) || spare::Spares::is_spare(&name) {
                // Its removal was cut short by a crash, or a spare of an earlier run.
                let _ = rootfs::remove(&path);
                continue;
            }
            let record = match Record::load(&path) {
                Ok(r) => r,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    // No record was ever made durable here: not a workload this host owns
                    // (a Run or a reservation cut short by a crash).
                    tracing::warn!(dir = %path.display(), "workload directory without a record: removed");
                    for kind in w.containers.kinds() {
                        let _ = w.containers.remove(&name, &kind).await;
                    }
                    let _ = rootfs::remove(&path);
                    continue;
                }
                Err(e) => {
                    tracing::warn!(dir = %path.display(), "no readable workload record, left alone: {e}");
                    continue;
                }
            };
            w.readopt(record, booted).await;
        }
        // What containers this host no longer has left of themselves: they died without a
        // `delete` (the machine or the daemon's whole PID namespace killed).
        let swept = w.containers.sweep(&|name| w.get(name).is_some());
        if !swept.is_empty() {
            tracing::info!(cgroups = ?swept, "removed the empty cgroups of workloads this host no longer has");
        }
        w.spares.refill();
        Ok(w)
    }

    /// At the daemon's exit: removes what the daemon itself holds (its own cgroup) if no
    /// workload needs it. Running workloads keep theirs, for the next start.
    pub fn close(&self) {
        self.containers.close();
    }

    /// Adopts `record` as a starting daemon finds it; `booted`: the host's boot time.
    async fn readopt(&self, mut record: Record, booted: i64) {
        let name = record.name.clone();
        match record.phase.clone() {
            Phase::Owned => {
                tracing::info!(workload = %name, "re-adopted");
                self.put(record.clone());
                let before_boot = record.started_unix_ms > 0 && record.started_unix_ms < booted;
                if record.service.is_none() && before_boot {
                    self.start_again_after_boot(record).await;
                }
            }
            Phase::MigratingOut { committed: true, .. } => {
                tracing::warn!(workload = %name, "migration in doubt: kept frozen until the target answers");
                self.put(record);
            }
            Phase::MigratingOut { committed: false, to, epoch } => {
                // The target was never asked to start it: it cannot run there.
                if let Err(e) = self.containers.thaw(&name, &record.runtime).await {
                    tracing::debug!(workload = %name, "resume after restart: {e}");
                }
                tracing::warn!(workload = %name, %to, epoch, "migration undone after a restart: runs here");
                record.phase = Phase::Owned;
                // The abandoned attempt's epoch stays used: the next attempt gets a fresh one.
                record.epoch = record.epoch.max(epoch);
                if let Err(e) = self.save(&record).await {
                    tracing::error!(workload = %name, "saving the undone migration: {e}");
                }
                self.put(record);
            }
            Phase::Creating | Phase::Incoming { .. } => {
                tracing::warn!(workload = %name, phase = ?record.phase, "unfinished on restart: removed");
                self.discard(&record).await;
            }
        }
    }

    /// Starts again a workload started before the host last booted: its processes and the
    /// mount of its root filesystem did not survive the restart, its directory and its
    /// writes did. Its overlay is mounted again and it runs as it was run (the same record
    /// and epoch, a new start time). A service's instances are left to their service.
    async fn start_again_after_boot(&self, mut record: Record) {
        let name = record.name.clone();
        if matches!(self.container_status(&record), ContainerStatus::Running(_) | ContainerStatus::Paused(_))
        {
            return;
        }
        let dir = self.workload_dir(&name);
        match tokio::task::spawn_blocking(move || rootfs::remount(&dir)).await {
            Ok(Ok(_)) => {}
            Ok(Err(why)) => {
                tracing::error!(workload = %name, "not started again after the host restarted: its root filesystem: {why}");
                return;
            }
            Err(e) => {
                tracing::error!(workload = %name, "not started again after the host restarted: {e}");
                return;
            }
        }
        // The runtime's state of the earlier boot names processes that are gone.
        if let Err(e) = self.containers.remove(&name, &record.runtime).await {
            tracing::debug!(workload = %name, "the runtime's state of the earlier boot: {e}");
        }
        match self.launch(&record).await {
            Ok((started, pid)) => {
                record.started_unix_ms = started;
                if let Err(e) = self.save(&record).await {
                    tracing::error!(workload = %name, "saving the record after starting again: {e}");
                }
                tracing::info!(workload = %name, pid = ?pid, "started again after the host restarted");
                self.put(record);
            }
            Err(e) => tracing::error!(workload = %name, "starting again after the host restarted: {e}"),
        }
    }

    fn put(&self, record: Record) {
        self.table.lock().unwrap_or_else(|e| e.into_inner()).insert(record.name.clone(), record);
    }

    pub(crate) fn get(&self, name: &str) -> Option<Record> {
        self.table.lock().unwrap_or_else(|e| e.into_inner()).get(name).cloned()
    }

    /// Changes `name`'s record under the table lock: `f` sees the current record (or none)
    /// and returns the new one (or none to remove it), or refuses.
    pub(crate) fn update<T>(
        &self,
        name: &str,
        f: impl FnOnce(Option<&Record>) -> Result<(Option<Record>, T), WorkloadError>,
    ) -> Result<T, WorkloadError> {
        let mut table = self.table.lock().unwrap_or_else(|e| e.into_inner());
        let (next, out) = f(table.get(name))?;
        match next {
            Some(r) => {
                table.insert(name.to_string(), r);
            }
            None => {
                table.remove(name);
            }
        }
        Ok(out)
    }

    /// The lock of `name` for the target side's steps. Locks nobody holds or waits for are
    /// dropped on the way, so the map does not keep one per name ever migrated here.
    pub(crate) fn name_lock(&self, name: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.name_locks.lock().unwrap_or_else(|e| e.into_inner());
        locks.retain(|_, lock| Arc::strong_count(lock) > 1);
        locks.entry(name.to_string()).or_default().clone()
    }

    pub fn workload_dir(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    pub fn rootfs(&self, name: &str) -> PathBuf {
        self.workload_dir(name).join("bundle").join("rootfs")
    }

    /// Where workloads are kept (free space is checked here).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The runtime `name` (empty: the host's default) as records keep it, if this host has
    /// it; else [`WorkloadError::NoRuntime`] naming it and this host.
    pub(crate) fn runtime(&self, name: &str) -> Result<String, WorkloadError> {
        self.containers.runtime(name).map_err(|e| match e {
            WorkloadError::NoRuntime(runtime::RuntimeError::NotFound(name)) => {
                WorkloadError::NoRuntime(runtime::RuntimeError::Missing {
                    name,
                    host: self.host.clone(),
                    has: self.containers.kinds().join(", "),
                })
            }
            e => e,
        })
    }

    /// The runtime classes this host has (`runc`, `crun`, `runsc`): what it gossips.
    pub fn classes(&self) -> Vec<String> {
        self.containers.kinds()
    }

    /// The host's containers.
    pub(crate) fn containers(&self) -> &dyn Containers {
        &*self.containers
    }

    /// Free bytes where workloads are kept.
    pub(crate) fn free_bytes(&self) -> Result<u64, WorkloadError> {
        (self.free_space)(&self.dir).map_err(io_err(format!("free space of {}", self.dir.display())))
    }

    /// Persists `record` into its directory, atomically and durably (off the async
    /// runtime: an fsync waits for the disk).
    pub(crate) async fn save(&self, record: &Record) -> Result<(), WorkloadError> {
        let (r, dir) = (record.clone(), self.workload_dir(&record.name));
        let what = format!("saving {}", record.name);
        tokio::task::spawn_blocking(move || r.save(&dir))
            .await
            .map_err(|e| WorkloadError::Io(format!("{what}: {e}")))?
            .map_err(io_err(what))
    }

    /// Writes config.json for this host and starts the container (the bundle's rootfs must
    /// be in place). Returns the start time.
    pub(crate) async fn start_container(&self, record: &Record) -> Result<i64, WorkloadError> {
        self.write_config(record)?;
        self.launch(record).await.map(|(started, _)| started)
    }

    /// Writes the bundle's `config.json` for `record` on this host.
    fn write_config(&self, record: &Record) -> Result<(), WorkloadError> {
        let bundle = self.workload_dir(&record.name).join("bundle");
        bundle::write_config(&bundle, record, &self.daemon_id).map_err(|e| WorkloadError::Io(e.to_string()))
    }

    /// Starts the container of a complete bundle (`config.json` and the rootfs in place).
    /// Returns the start time and the init's pid if the runtime recorded it.
    async fn launch(&self, record: &Record) -> Result<(i64, Option<u32>), WorkloadError> {
        let dir = self.workload_dir(&record.name);
        let pid = self
            .containers
            .start(&record.name, &record.runtime, &dir.join("bundle"), &dir.join("output.log"))
            .await?;
        Ok((crate::peer::unix_ms(SystemTime::now()), pid))
    }

    /// A migration's target: creates reserved workload `record`'s container before its
    /// files arrive, where its runtime class gains by it ([`Containers::creates_ahead`]);
    /// the start then only starts it ([`Workloads::start_created`]). Its process does not
    /// run before that start. A failure is logged and leaves the whole start to the start.
    /// The caller holds the name's lock, so nothing drops the reservation meanwhile.
    pub(crate) async fn create_ahead(&self, record: &Record) {
        if !self.containers.creates_ahead(&record.runtime) {
            return;
        }
        let dir = self.workload_dir(&record.name);
        let bundle = dir.join("bundle");
        let made = std::fs::create_dir_all(bundle.join("rootfs"))
            .map_err(io_err(dir.display()))
            .and_then(|()| self.write_config(record));
        let created = match made {
            Ok(()) => {
                self.containers.create(&record.name, &record.runtime, &bundle, &dir.join("output.log")).await
            }
            Err(e) => Err(e),
        };
        match created {
            Ok(()) => {
                self.ahead.lock().unwrap_or_else(|e| e.into_inner()).insert(record.name.clone());
            }
            Err(e) => {
                tracing::warn!(workload = %record.name, "creating ahead of the start failed, left to the start: {e}")
            }
        }
    }

    /// Whether workload `name`'s container was created ahead ([`Workloads::create_ahead`]).
    pub(crate) fn created_ahead(&self, name: &str) -> bool {
        self.ahead.lock().unwrap_or_else(|e| e.into_inner()).contains(name)
    }

    /// A migration's target: starts incoming workload `record`, created ahead if it was,
    /// else from its bundle. Returns the start time.
    pub(crate) async fn start_created(&self, record: &Record) -> Result<i64, WorkloadError> {
        if !self.ahead.lock().unwrap_or_else(|e| e.into_inner()).remove(&record.name) {
            return self.start_container(record).await;
        }
        self.containers.start_created(&record.name, &record.runtime).await?;
        Ok(crate::peer::unix_ms(SystemTime::now()))
    }

    /// Removes a workload's container and directory (best effort, logged) and its entry.
    pub(crate) async fn discard(&self, record: &Record) {
        self.ahead.lock().unwrap_or_else(|e| e.into_inner()).remove(&record.name);
        if let Err(e) = self.containers.remove(&record.name, &record.runtime).await {
            tracing::warn!(workload = %record.name, "deleting the container: {e}");
        }
        self.remove_dir(&record.name);
        self.table.lock().unwrap_or_else(|e| e.into_inner()).remove(&record.name);
    }

    /// Removes workload directory `name` from sight at once (renamed to a `.removing-` name,
    /// which `open` sweeps after a crash) and from the disk in the background: unmounting an
    /// overlay syncs the whole filesystem under it, which can take longer than the rest of a
    /// migration.
    fn remove_dir(&self, name: &str) {
        let dir = self.workload_dir(name);
        let nanos = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default().as_nanos();
        let doomed = self.dir.join(format!("{REMOVING}{name}-{nanos}"));
        match std::fs::rename(&dir, &doomed) {
            Ok(()) => {
                tokio::task::spawn_blocking(move || {
                    if let Err(e) = rootfs::remove(&doomed) {
                        tracing::warn!(dir = %doomed.display(), "removing: {e}");
                    }
                });
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            // Not renamed: removed here and now, so the name is free when this returns.
            Err(e) => {
                tracing::debug!(dir = %dir.display(), "renaming before removal: {e}");
                if let Err(e) = rootfs::remove(&dir) {
                    tracing::warn!(dir = %dir.display(), "removing: {e}");
                }
            }
        }
    }

    /// Runs a new workload: checks the request, makes its root filesystem under the state
    /// dir (an overlay over `rootfs`, see [`rootfs`]), writes `config.json` and starts it
    /// detached.
    pub async fn run(&self, spec: RunSpec) -> Result<Workload, WorkloadError> {
        if !spec.host.is_empty() && spec.host != self.host {
            return Err(WorkloadError::Invalid(format!(
                "this middlecon is host {}, not {:?}: nothing was run",
                self.host, spec.host
            )));
        }
        check_name(&spec.name)?;
        if spec.command.first().is_none_or(|c| c.is_empty()) {
            return Err(WorkloadError::Invalid("a command is required (dcos run ... -- CMD ARGS...)".into()));
        }
        if !spec.cpus.is_finite() || spec.cpus < 0.0 {
            return Err(WorkloadError::Invalid(format!("cpus {} is not a positive number", spec.cpus)));
        }
        if let Some(k) = spec.env.keys().find(|k| k.is_empty() || k.contains('=')) {
            return Err(WorkloadError::Invalid(format!("environment variable name {k:?}")));
        }
        if !spec.rootfs.is_absolute() || !spec.rootfs.is_dir() {
            return Err(WorkloadError::Invalid(format!(
                "rootfs {:?} is not an absolute path to a directory on {}",
                spec.rootfs.display().to_string(),
                self.host
            )));
        }
        let record = Record {
            name: spec.name,
            runtime: self.runtime(&spec.runtime)?,
            command: spec.command,
            env: spec.env,
            memory_bytes: spec.memory_bytes,
            cpus: spec.cpus,
            epoch: 0,
            started_unix_ms: 0,
            phase: Phase::Creating,
            service: spec.service,
        };
        let host = self.host.clone();
        self.update(&record.name, |cur| match cur {
            Some(_) => Err(WorkloadError::Exists { name: record.name.clone(), host }),
            None => Ok((Some(record.clone()), ())),
        })?;
        let begun = std::time::Instant::now();
        match self.create(record.clone(), &spec.rootfs).await {
            Ok((r, pid, times)) => {
                let w = match pid {
                    Some(pid) => self.to_workload(&r, Status::Running, pid),
                    None => self.describe(&r),
                };
                tracing::info!(
                    workload = %r.name,
                    runtime = %r.runtime,
                    pid = w.pid,
                    rootfs = ?times.made,
                    bundle_ms = times.bundle.as_secs_f64() * 1e3,
                    runtime_ms = times.runtime.as_secs_f64() * 1e3,
                    total_ms = begun.elapsed().as_secs_f64() * 1e3,
                    "workload running"
                );
                Ok(w)
            }
            Err(e) => {
                self.discard(&record).await;
                // The spare it may have taken: made again, as after a run that started.
                let spares = self.spares.clone();
                tokio::task::spawn_blocking(move || spares.refill());
                Err(e)
            }
        }
    }

    /// Makes the bundle and starts it: the record, the init's pid if known, and where the
    /// time went.
    async fn create(
        &self,
        mut record: Record,
        image: &Path,
    ) -> Result<(Record, Option<u32>, RunTimes), WorkloadError> {
        let dir = self.workload_dir(&record.name);
        let bundle = dir.join("bundle");
        // A directory left behind by an earlier failure is not ours to keep.
        let _ = rootfs::remove(&dir);
        if !self.spares.take(&dir) {
            std::fs::create_dir_all(&bundle).map_err(io_err(bundle.display()))?;
        }
        let (image, into) = (image.to_path_buf(), dir.clone());
        let making = std::time::Instant::now();
        let mounting = tokio::task::spawn_blocking(move || rootfs::make(&image, &into));
        // Meanwhile, the two files that do not need the root filesystem. The first is only a
        // marker for cleanup: lost in a crash, the directory has no record and is removed at
        // the next start; the record written once the container runs is durable. The mount
        // is awaited even if they fail, so that what removes the directory finds it done.
        let written = record
            .save_unsynced(&dir)
            .map_err(io_err(format!("saving {}", record.name)))
            .and_then(|()| self.write_config(&record));
        let made = mounting.await.map_err(|e| WorkloadError::Io(e.to_string()))?.map_err(|e| match e {
            bundle::BundleError::Io { ref source, .. } if error::is_no_space(source) => {
                WorkloadError::NoSpace(format!("copying the root filesystem: {e}"))
            }
            e => WorkloadError::Io(format!("copying the root filesystem: {e}")),
        })?;
        written?;
        let bundle = making.elapsed();
        let starting = std::time::Instant::now();
        let (started, pid) = self.launch(&record).await?;
        record.started_unix_ms = started;
        let times = RunTimes { made, bundle, runtime: starting.elapsed() };
        record.phase = Phase::Owned;
        // Atomic now, durable a moment later, off the caller's clock: each fsync is a journal
        // commit that waits for every dirty page of the filesystem. A process crash in
        // between still finds the new record (the rename is in the page cache); only a
        // machine crash in that moment loses it, and that ends the container too (the
        // directory, the workload's writes included, is then removed at the next start as an
        // unfinished Run). Migration records stay synced before use. The next run's spare
        // is made then too: after the sync, so after this reply.
        record.save_unsynced(&dir).map_err(io_err(format!("saving {}", record.name)))?;
        let spares = self.spares.clone();
        tokio::task::spawn_blocking(move || {
            if let Err(e) = Record::sync(&dir) {
                tracing::debug!(dir = %dir.display(), "making the record durable: {e}");
            }
            spares.refill();
        });
        self.put(record.clone());
        Ok((record, pid, times))
    }

    /// Stops a workload (SIGTERM, SIGKILL after a grace period) and removes it from this
    /// host, bundle and writable state included.
    pub async fn stop(&self, name: &str) -> Result<Workload, WorkloadError> {
        let host = self.host.clone();
        let record = self.update(name, |cur| match cur {
            None => Err(WorkloadError::NotFound { name: name.to_string(), host }),
            Some(r) if !r.phase.can_stop() => {
                Err(WorkloadError::Conflict(format!("{name} cannot be stopped now ({})", r.phase.word())))
            }
            Some(r) => {
                let mut next = r.clone();
                next.phase = Phase::Creating;
                Ok((Some(next), r.clone()))
            }
        })?;
        let mut shown = self.describe(&record);
        self.containers.terminate(name, &record.runtime, STOP_GRACE).await;
        self.discard(&record).await;
        shown.status = Status::Stopped;
        tracing::info!(workload = %name, "workload stopped and removed");
        Ok(shown)
    }

    /// Every workload of this host, with the runtime's view of each.
    pub fn list(&self) -> Vec<Workload> {
        self.list_records().iter().map(|r| self.describe(r)).collect()
    }

    /// Workload `name` with the runtime's view of it, if this host has it.
    pub fn list_one(&self, name: &str) -> Option<Workload> {
        self.get(name).map(|r| self.describe(&r))
    }

    /// Every record, as it is now.
    pub(crate) fn list_records(&self) -> Vec<Record> {
        self.table.lock().unwrap_or_else(|e| e.into_inner()).values().cloned().collect()
    }

    /// Names of the workloads this host owns.
    pub fn owned(&self) -> Vec<String> {
        let table = self.table.lock().unwrap_or_else(|e| e.into_inner());
        table.values().filter(|r| r.phase == Phase::Owned).map(|r| r.name.clone()).collect()
    }

    /// What the runtime says of workload `r`'s container.
    pub(crate) fn container_status(&self, r: &Record) -> ContainerStatus {
        self.containers.status(&r.name, &r.runtime)
    }

    /// `r` with its container's status and init pid.
    fn describe(&self, r: &Record) -> Workload {
        if self.containers.runtime(&r.runtime).is_err() {
            return self.to_workload(r, Status::NoRuntime, 0);
        }
        let container = self.container_status(r);
        self.to_workload(r, Status::of(&r.phase, container), container.pid())
    }

    fn to_workload(&self, r: &Record, status: Status, pid: u32) -> Workload {
        Workload {
            name: r.name.clone(),
            host: self.host.clone(),
            runtime: r.runtime.clone(),
            status,
            pid,
            started_unix_ms: r.started_unix_ms,
            command: r.command.clone(),
            memory_bytes: r.memory_bytes,
            cpus: r.cpus,
            env: r.env.clone(),
            epoch: r.epoch,
            service: r.service.clone(),
        }
    }
}

/// Removes everything the daemon of host `host` with state dir `state_dir` left on this
/// machine when it is gone for good: its runtimes' containers (killed), every cgroup of its
/// workloads, the overlays of their root filesystems, and then the workloads directory.
/// For a stopped daemon only (`middlecon purge`); returns what could not be removed.
pub async fn purge(host: &str, state_dir: &Path, default_runtime: &str) -> Vec<String> {
    let daemon_id = bundle::daemon_id(host, state_dir);
    let dir = state_dir.join("workloads");
    let mut left = containers::Oci::new(state_dir, &daemon_id, default_runtime).purge(&dir).await;
    for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
        if let Err(e) = rootfs::remove(&entry.path()) {
            left.push(format!("{}: {e}", entry.path().display()));
        }
    }
    // The services' steering rules, which send their ports' connections to instances gone now.
    let kept = state_dir.join("services").is_dir();
    if let Some(store) = kept.then(|| crate::services::spec::Store::open(state_dir).ok()).flatten() {
        let fronts: Vec<u16> = store.load().iter().map(|s| s.port).collect();
        left.extend(crate::services::steer::purge(&fronts).await);
    }
    left
}

/// Where a `Run` spent its time (logged with `workload running`).
struct RunTimes {
    /// How the root filesystem was made (overlay or copy).
    made: rootfs::Made,
    /// The bundle: the root filesystem, `config.json` and the first record, made at once.
    bundle: Duration,
    /// The runtime's `run` until it returned.
    runtime: Duration,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        for ok in ["web", "a", "web-1.v2_x", &"a".repeat(63)] {
            assert!(check_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "-x", ".x", "a/b", "a b", &"a".repeat(64), "é"] {
            let e = check_name(bad).unwrap_err();
            assert_eq!(e.code(), ErrorCode::Invalid, "{bad}");
        }
    }

    #[tokio::test]
    async fn run_list_stop_and_a_restart_against_fake_containers() {
        let host = fake::FakeHost::new("h");
        let image = fake::image();
        let w = host.open().await;
        let mut spec = fake::spec("web", image.path());
        spec.env.insert("MODE".into(), "lru".into());
        let ran = w.run(spec.clone()).await.unwrap();
        assert_eq!((ran.status, ran.runtime.as_str(), ran.epoch), (Status::Running, "runc", 0));
        assert!(ran.pid > 0 && ran.started_unix_ms > 0);
        assert_eq!(
            std::fs::read_to_string(w.rootfs("web").join("etc/motd")).unwrap(),
            "hello from the image\n"
        );
        // The name is taken; a bad request is refused with its field named and nothing made.
        assert_eq!(w.run(spec.clone()).await.unwrap_err().code(), ErrorCode::Exists);
        let refusals = [
            (RunSpec { name: "bad/name".into(), ..spec.clone() }, ErrorCode::Invalid, "workload name"),
            (RunSpec { name: "x".into(), command: vec![], ..spec.clone() }, ErrorCode::Invalid, "command"),
            (
                RunSpec { name: "x".into(), rootfs: "rel".into(), ..spec.clone() },
                ErrorCode::Invalid,
                "rootfs",
            ),
            (
                RunSpec { name: "x".into(), runtime: "kata".into(), ..spec.clone() },
                ErrorCode::NoRuntime,
                "kata",
            ),
            (RunSpec { name: "x".into(), host: "other".into(), ..spec.clone() }, ErrorCode::Invalid, "other"),
        ];
        for (bad, code, says) in refusals {
            let e = w.run(bad).await.unwrap_err();
            assert_eq!(e.code(), code, "{e}");
            assert!(e.to_string().contains(says), "{says}: {e}");
            assert!(w.get("x").is_none() && !w.workload_dir("x").exists());
        }
        // A container whose process ended is listed as stopped; a restarted daemon adopts it.
        host.containers.exit("web");
        assert_eq!(w.list()[0].status, Status::Stopped);
        let w = host.open().await;
        assert_eq!(
            w.list().iter().map(|l| (l.name.as_str(), l.status)).collect::<Vec<_>>(),
            [("web", Status::Stopped)]
        );
        let stopped = w.stop("web").await.unwrap();
        assert_eq!(stopped.env.get("MODE").map(String::as_str), Some("lru"));
        assert!(w.list().is_empty() && host.containers.ids().is_empty());
        assert_eq!(w.stop("web").await.unwrap_err().code(), ErrorCode::NotFound);
        // A runtime class this host lacks is refused naming the class and the host.
        host.containers.only(&["runc", "crun"]);
        let e = w.run(RunSpec { runtime: "runsc".into(), ..spec.clone() }).await.unwrap_err();
        assert_eq!(e.code(), ErrorCode::NoRuntime);
        assert!(e.to_string().contains("host h has no runtime \"runsc\""), "{e}");
        assert!(w.get("web").is_none() && host.containers.ids().is_empty(), "nothing was started");
        // A start the runtime refuses leaves nothing behind.
        host.containers.fail_start.store(true, std::sync::atomic::Ordering::SeqCst);
        assert_eq!(w.run(spec).await.unwrap_err().code(), ErrorCode::Io);
        assert!(w.get("web").is_none());
        let dir = w.workload_dir("web");
        fake::eventually(|| !dir.exists()).await;
    }

    #[tokio::test]
    async fn name_locks_are_kept_only_while_held() {
        let host = fake::FakeHost::new("h");
        let w = host.open().await;
        let held = w.name_lock("kept");
        for i in 0..100 {
            drop(w.name_lock(&format!("gone-{i}")));
        }
        let again = w.name_lock("kept");
        assert!(Arc::ptr_eq(&held, &again), "a held lock is the one a second caller gets");
        assert_eq!(w.name_locks.lock().unwrap().len(), 1, "only the held one is kept");
    }

    #[tokio::test]
    async fn a_workload_started_before_the_host_booted_runs_again_with_its_writes() {
        use fake::FakeHost;
        let host = FakeHost::new("h");
        let image = fake::image();
        let w = host.open().await;
        w.run(fake::spec("web", image.path())).await.unwrap();
        let mut instance = fake::spec("web.0", image.path());
        instance.service = Some("web".into());
        w.run(instance).await.unwrap();
        std::fs::write(w.rootfs("web").join("written"), "before the reboot").unwrap();
        // The host restarts: its processes end, its mounts are gone, the disk stays; the
        // records say the workloads started before this boot.
        for name in ["web", "web.0"] {
            host.containers.exit(name);
            let mut r = w.get(name).unwrap();
            r.started_unix_ms = 1;
            r.save(&w.workload_dir(name)).unwrap();
        }
        let dir = w.workload_dir("web");
        if rootfs::mounted(&dir) {
            nix::mount::umount2(&dir.join("bundle/rootfs"), nix::mount::MntFlags::MNT_DETACH).unwrap();
        }
        drop(w);
        let w = host.open().await;
        assert!(matches!(host.containers.get("web"), ContainerStatus::Running(_)), "started again");
        let r = w.get("web").unwrap();
        assert!(r.started_unix_ms > 1, "with a new start time: {r:?}");
        assert_eq!(Record::load(&w.workload_dir("web")).unwrap().started_unix_ms, r.started_unix_ms, "saved");
        assert_eq!(std::fs::read_to_string(w.rootfs("web").join("written")).unwrap(), "before the reboot");
        // An instance is its service's to start or not.
        assert_eq!(host.containers.get("web.0"), ContainerStatus::Stopped);
        // Started in this boot and stopped since: left stopped, as it ended.
        host.containers.exit("web");
        drop(w);
        host.open().await;
        assert_eq!(host.containers.get("web"), ContainerStatus::Stopped);
    }

    #[tokio::test]
    async fn a_directory_without_a_record_is_removed_at_start_and_a_record_is_kept() {
        let state = tempfile::tempdir().unwrap();
        let orphan = state.path().join("workloads/half-made/bundle");
        std::fs::create_dir_all(&orphan).unwrap();
        let kept = state.path().join("workloads/web");
        std::fs::create_dir_all(&kept).unwrap();
        let record = Record {
            name: "web".into(),
            runtime: "runc".into(),
            command: vec!["sleep".into(), "1".into()],
            env: Default::default(),
            memory_bytes: 0,
            cpus: 0.0,
            epoch: 2,
            // Started in this boot: adopted as it is.
            started_unix_ms: crate::peer::unix_ms(SystemTime::now()),
            phase: Phase::Owned,
            service: None,
        };
        record.save(&kept).unwrap();
        // A removal cut short: the record is still in it, but it is no workload any more.
        let removing = state.path().join(format!("workloads/{REMOVING}web-1"));
        std::fs::create_dir_all(&removing).unwrap();
        Record { epoch: 1, ..record.clone() }.save(&removing).unwrap();
        // A spare an earlier daemon made (`spare`): made again, not kept.
        let stale = state.path().join(format!("workloads/{}1-0", spare::PREFIX));
        std::fs::create_dir_all(stale.join("bundle/rootfs")).unwrap();
        // Cgroups its containers left, as a daemon killed with them leaves them (in the first
        // cgroup hierarchy, where this machine has one): one of a workload this host no longer
        // has, and the adopted workload's own.
        let daemon_cgroup = cgroup::hierarchies()
            .first()
            .map(|m| m.join(cgroup::ROOT).join(bundle::daemon_id("h", state.path())))
            .filter(|d| std::fs::create_dir_all(d.join("ghost")).is_ok());
        if let Some(d) = &daemon_cgroup {
            std::fs::create_dir_all(d.join("web")).unwrap();
        }
        let w = Workloads::open("h", state.path(), "runc").await.unwrap();
        assert!(!state.path().join("workloads/half-made").exists(), "the recordless directory is gone");
        assert!(!removing.exists(), "an interrupted removal is finished");
        assert!(!stale.exists(), "an earlier daemon's spare is removed");
        let spares = || {
            std::fs::read_dir(state.path().join("workloads"))
                .unwrap()
                .filter(|e| spare::Spares::is_spare(&e.as_ref().unwrap().file_name().to_string_lossy()))
                .count()
        };
        assert_eq!(spares(), spare::POOL, "fresh spares are made");
        assert_eq!(w.get("web").map(|r| r.epoch), Some(2), "the owned workload is adopted");
        if let Some(d) = &daemon_cgroup {
            assert!(!d.join("ghost").exists(), "the cgroup of a workload this host lost is removed");
            assert!(d.join("web").exists(), "the adopted workload keeps its cgroup");
        }
        // Discarding it takes it out of sight at once; the disk follows in the background.
        w.discard(&record).await;
        assert!(w.get("web").is_none() && !kept.exists());
        let workloads = state.path().join("workloads");
        fake::eventually(|| std::fs::read_dir(&workloads).unwrap().count() == spares()).await;
        // Its cgroup went with it, and the daemon's own goes when it closes.
        w.close();
        if let Some(d) = &daemon_cgroup {
            assert!(!d.exists(), "no cgroup of this daemon is left: {}", d.display());
        }
    }
}
