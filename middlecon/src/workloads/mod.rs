//! The host's OCI container workloads (SPEC section 5) and their migration between peers.
//!
//! - [`runtime`]: the OCI runtime binary (runc or crun, per workload) and its verbs.
//! - [`bundle`]: `config.json` (oci-spec types) and copying a tree.
//! - [`rootfs`]: a workload's root filesystem: an overlay over the image it was run from
//!   (its writes in `layers/`), or a copy where the kernel refuses the overlay.
//! - [`cgroup`]: the workloads' cgroups, and removing what the runtime leaves of them.
//! - [`spare`]: workload directories made ahead of time, so `Run` allocates no inode.
//! - [`record`]: what is kept on disk per workload, and the [`Phase`] guards.
//! - [`transfer`]: the bundle's root filesystem as a checksummed tar stream on its own QUIC
//!   stream, with a bandwidth limit.
//! - [`migrate`]: cold migration, negotiated between the two hosts (source and target
//!   sides, the epoch fencing rule, recovery after a crash), and evacuation; the state
//!   machine and its failure table are in `docs/migration.md`.
//! - [`grpc`]: the `Workloads` gRPC service.
//!
//! Layout under `--state-dir`: `workloads/<name>/{workload.json, bundle/config.json,
//! bundle/rootfs/, layers/{upper,work}/, output.log}`, spare trees of that shape in
//! `workloads/.spare-*/`, and the runtimes' own state in `runtime/<runc|crun>/` (which k2i
//! reads with `--oci-root runc=<state-dir>/runtime/runc`).

pub mod bundle;
pub mod cgroup;
pub mod grpc;
pub mod migrate;
pub mod record;
pub mod rootfs;
pub mod runtime;
pub mod spare;
pub mod transfer;

use dcos_proto::v1 as pb;
pub use record::{Phase, Record};
use runtime::{Liveness, OciRuntime, RuntimeError};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

/// Prefix of a workload directory being removed (no workload name starts with a dot).
pub const REMOVING: &str = ".removing-";
/// How long `Stop` waits after SIGTERM before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// Why a workload operation failed. [`WorkloadError::code`] is the word users and scripts
/// see (`dcos: conflict: ...`), [`WorkloadError::status`] the gRPC status.
#[derive(Debug, thiserror::Error)]
pub enum WorkloadError {
    #[error("{0}")]
    Invalid(String),
    #[error("no workload {name:?} on {host}")]
    NotFound { name: String, host: String },
    #[error("a workload named {name:?} already exists on {host}")]
    Exists { name: String, host: String },
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    NoSpace(String),
    #[error(transparent)]
    NoRuntime(RuntimeError),
    #[error(transparent)]
    Runtime(RuntimeError),
    #[error("{0}")]
    Io(String),
    #[error("{0}")]
    Unreachable(String),
    #[error("{0}")]
    Transfer(String),
    #[error("{0}")]
    Precondition(String),
    #[error("{0}")]
    PermissionDenied(String),
    /// The target may or may not have started it: the source stays frozen until it knows.
    #[error("{0}")]
    InDoubt(String),
}

impl WorkloadError {
    pub fn code(&self) -> &'static str {
        match self {
            WorkloadError::Invalid(_) => "invalid",
            WorkloadError::NotFound { .. } => "not_found",
            WorkloadError::Exists { .. } => "exists",
            WorkloadError::Conflict(_) => "conflict",
            WorkloadError::NoSpace(_) => "no_space",
            WorkloadError::NoRuntime(_) => "no_runtime",
            WorkloadError::Runtime(_) => "runtime",
            WorkloadError::Io(_) => "io",
            WorkloadError::Unreachable(_) => "unreachable",
            WorkloadError::Transfer(_) => "transfer",
            WorkloadError::Precondition(_) => "precondition",
            WorkloadError::PermissionDenied(_) => "permission_denied",
            WorkloadError::InDoubt(_) => "in_doubt",
        }
    }

    /// `code: message`, as carried in a peer's `app_error` and shown by the CLI.
    pub fn wire(&self) -> String {
        format!("{}: {self}", self.code())
    }

    /// Reads back [`WorkloadError::wire`] from a peer; `context` names the peer.
    pub fn from_wire(text: &str, context: &str) -> WorkloadError {
        let (code, message) = text.split_once(": ").unwrap_or(("", text));
        let m = format!("{context}: {message}");
        match code {
            "invalid" => WorkloadError::Invalid(m),
            "exists" | "conflict" => WorkloadError::Conflict(m),
            "no_space" => WorkloadError::NoSpace(m),
            "no_runtime" | "precondition" => WorkloadError::Precondition(m),
            "unreachable" => WorkloadError::Unreachable(m),
            "permission_denied" => WorkloadError::PermissionDenied(m),
            "transfer" => WorkloadError::Transfer(m),
            _ => WorkloadError::Io(format!("{context}: {text}")),
        }
    }

    pub fn status(&self) -> tonic::Status {
        let m = self.wire();
        match self {
            WorkloadError::Invalid(_) => tonic::Status::invalid_argument(m),
            WorkloadError::NotFound { .. } => tonic::Status::not_found(m),
            WorkloadError::Exists { .. } => tonic::Status::already_exists(m),
            WorkloadError::Conflict(_) => tonic::Status::aborted(m),
            WorkloadError::NoSpace(_) => tonic::Status::resource_exhausted(m),
            WorkloadError::NoRuntime(_) | WorkloadError::Precondition(_) => {
                tonic::Status::failed_precondition(m)
            }
            WorkloadError::Unreachable(_) | WorkloadError::InDoubt(_) => tonic::Status::unavailable(m),
            WorkloadError::PermissionDenied(_) => tonic::Status::permission_denied(m),
            WorkloadError::Runtime(_) | WorkloadError::Io(_) | WorkloadError::Transfer(_) => {
                tonic::Status::internal(m)
            }
        }
    }
}

/// Checks a workload name: `[A-Za-z0-9][A-Za-z0-9_.-]{0,62}`.
pub fn check_name(name: &str) -> Result<(), WorkloadError> {
    let mut chars = name.chars();
    let ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && name.len() <= 63
        && chars.all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
    if ok {
        Ok(())
    } else {
        Err(WorkloadError::Invalid(format!(
            "workload name {name:?}: 1 to 63 letters, digits, '_', '.' or '-', starting with a letter or digit"
        )))
    }
}

fn io_err(what: impl std::fmt::Display) -> impl FnOnce(std::io::Error) -> WorkloadError {
    move |e| WorkloadError::Io(format!("{what}: {e}"))
}

/// This host's workloads.
pub struct Workloads {
    /// This host's name.
    pub host: String,
    /// This daemon in cgroup paths ([`bundle::daemon_id`]).
    daemon_id: String,
    /// Its workloads' cgroups, for what the runtime leaves of them.
    cgroups: cgroup::Cgroups,
    state_dir: PathBuf,
    /// `<state-dir>/workloads`.
    dir: PathBuf,
    default_runtime: String,
    /// Directory trees `Run` renames into place ([`spare`]).
    spares: Arc<spare::Spares>,
    table: Mutex<BTreeMap<String, Record>>,
    /// One lock per name for the target side's start and settle, so they never interleave.
    name_locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl Workloads {
    /// Opens (creating) `<state_dir>/workloads` and re-adopts what a previous run left:
    /// owned workloads are kept as they are (running containers go on running),
    /// half-created ones and unstarted incoming ones are removed, and a migration that had
    /// not asked its target to start is undone (the container resumed). Migrations that had
    /// are left for [`migrate::recover`], which needs the peers.
    pub async fn open(
        host: &str,
        state_dir: &Path,
        default_runtime: &str,
    ) -> Result<Arc<Workloads>, WorkloadError> {
        let dir = state_dir.join("workloads");
        std::fs::create_dir_all(&dir).map_err(io_err(dir.display()))?;
        let daemon_id = bundle::daemon_id(host, state_dir);
        let w = Arc::new(Workloads {
            host: host.to_string(),
            cgroups: cgroup::Cgroups::new(&daemon_id),
            daemon_id,
            state_dir: state_dir.to_path_buf(),
            spares: Arc::new(spare::Spares::new(&dir)),
            dir: dir.clone(),
            default_runtime: default_runtime.to_string(),
            table: Mutex::default(),
            name_locks: Mutex::default(),
        });
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
                    for kind in ["runc", "crun"] {
                        if let Ok(rt) = w.runtime(kind) {
                            let _ = rt.delete(&name, || w.cgroups.thaw(&name)).await;
                        }
                    }
                    let _ = rootfs::remove(&path);
                    continue;
                }
                Err(e) => {
                    tracing::warn!(dir = %path.display(), "no readable workload record, left alone: {e}");
                    continue;
                }
            };
            w.readopt(record).await;
        }
        // Cgroups of workloads this host no longer has: their containers died without a
        // `delete` (the machine or the daemon's whole PID namespace killed).
        let swept = w.cgroups.sweep(|name| w.get(name).is_some());
        if !swept.is_empty() {
            tracing::info!(cgroups = ?swept, "removed the empty cgroups of workloads this host no longer has");
        }
        w.spares.refill();
        Ok(w)
    }

    /// At the daemon's exit: removes its own cgroup if no workload's is left under it.
    /// Running workloads keep theirs, and the daemon its own, for the next start.
    pub fn close(&self) {
        if !self.cgroups.remove_own() {
            tracing::debug!("the daemon's cgroup stays: workloads have cgroups under it");
        }
    }

    async fn readopt(&self, mut record: Record) {
        let name = record.name.clone();
        match record.phase.clone() {
            Phase::Owned => {
                tracing::info!(workload = %name, "re-adopted");
                self.put(record);
            }
            Phase::MigratingOut { committed: true, .. } => {
                tracing::warn!(workload = %name, "migration in doubt: kept frozen until the target answers");
                self.put(record);
            }
            Phase::MigratingOut { committed: false, to, epoch } => {
                // The target was never asked to start it: it cannot run there.
                if let Ok(rt) = self.runtime(&record.runtime) {
                    if let Err(e) = self.resume(&name, &rt).await {
                        tracing::debug!(workload = %name, "resume after restart: {e}");
                    }
                }
                tracing::warn!(workload = %name, %to, epoch, "migration undone after a restart: runs here");
                record.phase = Phase::Owned;
                // The abandoned attempt's epoch stays used: the next attempt gets a fresh one.
                record.epoch = record.epoch.max(epoch);
                let _ = record.save(&self.workload_dir(&name));
                self.put(record);
            }
            Phase::Creating | Phase::Incoming { .. } => {
                tracing::warn!(workload = %name, phase = ?record.phase, "unfinished on restart: removed");
                self.discard(&record).await;
            }
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

    pub(crate) fn name_lock(&self, name: &str) -> Arc<tokio::sync::Mutex<()>> {
        self.name_locks.lock().unwrap_or_else(|e| e.into_inner()).entry(name.to_string()).or_default().clone()
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

    /// The runtime `name` (empty: the daemon's default), with its state under the state dir.
    pub fn runtime(&self, name: &str) -> Result<OciRuntime, WorkloadError> {
        let name = if name.is_empty() { &self.default_runtime } else { name };
        OciRuntime::new(name, &self.state_dir).map_err(WorkloadError::NoRuntime)
    }

    /// Persists `record` into its directory.
    pub(crate) fn save(&self, record: &Record) -> Result<(), WorkloadError> {
        record.save(&self.workload_dir(&record.name)).map_err(io_err(format!("saving {}", record.name)))
    }

    /// Writes config.json for this host and starts the container (the bundle's rootfs must
    /// be in place). Returns the start time.
    pub(crate) async fn start_container(&self, record: &Record) -> Result<i64, WorkloadError> {
        self.write_config(record)?;
        self.launch(record).await
    }

    /// Writes the bundle's `config.json` for `record` on this host.
    fn write_config(&self, record: &Record) -> Result<(), WorkloadError> {
        let bundle = self.workload_dir(&record.name).join("bundle");
        bundle::write_config(&bundle, record, &self.daemon_id).map_err(|e| WorkloadError::Io(e.to_string()))
    }

    /// Starts the container of a complete bundle (`config.json` and the rootfs in place).
    /// Returns the start time.
    async fn launch(&self, record: &Record) -> Result<i64, WorkloadError> {
        let rt = self.runtime(&record.runtime)?;
        let dir = self.workload_dir(&record.name);
        let bundle = dir.join("bundle");
        // A container of that id left behind (killed daemon, failed start) is in the way.
        rt.delete(&record.name, || self.cgroups.thaw(&record.name)).await.map_err(WorkloadError::Runtime)?;
        rt.run(&record.name, &bundle, &dir.join("output.log")).await.map_err(WorkloadError::Runtime)?;
        Ok(crate::peer::unix_ms(SystemTime::now()))
    }

    /// Thaws workload `name`, frozen for a migration that did not happen: through the cgroup
    /// freezer, as the migration froze it ([`cgroup::Cgroups::freeze`]); the runtime's
    /// `resume` where no freezer holds its cgroup (as `pause` froze it then).
    pub(crate) async fn resume(&self, name: &str, rt: &OciRuntime) -> Result<(), WorkloadError> {
        match self.cgroups.unfreeze(name) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                rt.resume(name).await.map_err(WorkloadError::Runtime)
            }
            Err(e) => Err(WorkloadError::Io(format!("thawing {name}: {e}"))),
        }
    }

    /// Removes a workload's container and directory (best effort, logged) and its entry.
    pub(crate) async fn discard(&self, record: &Record) {
        if let Ok(rt) = self.runtime(&record.runtime) {
            if let Err(e) = rt.delete(&record.name, || self.cgroups.thaw(&record.name)).await {
                tracing::warn!(workload = %record.name, "deleting the container: {e}");
            }
        }
        // The runtime's delete removes them, unless it had no state left for the container.
        let busy = self.cgroups.remove(&record.name);
        if busy > 0 {
            tracing::warn!(workload = %record.name, busy, "cgroups still have processes: left in place");
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
    pub async fn run(&self, req: pb::RunRequest) -> Result<pb::Workload, WorkloadError> {
        if !req.host.is_empty() && req.host != self.host {
            return Err(WorkloadError::Invalid(format!(
                "this middlecon is host {}, not {:?}: nothing was run",
                self.host, req.host
            )));
        }
        check_name(&req.name)?;
        if req.command.is_empty() || req.command[0].is_empty() {
            return Err(WorkloadError::Invalid("a command is required (dcos run ... -- CMD ARGS...)".into()));
        }
        if !req.cpus.is_finite() || req.cpus < 0.0 {
            return Err(WorkloadError::Invalid(format!("cpus {} is not a positive number", req.cpus)));
        }
        for k in req.env.keys() {
            if k.is_empty() || k.contains('=') {
                return Err(WorkloadError::Invalid(format!("environment variable name {k:?}")));
            }
        }
        let rootfs = PathBuf::from(&req.rootfs);
        if !rootfs.is_absolute() || !rootfs.is_dir() {
            return Err(WorkloadError::Invalid(format!(
                "rootfs {:?} is not an absolute path to a directory on {}",
                req.rootfs, self.host
            )));
        }
        let rt = self.runtime(&req.runtime)?;
        let record = Record {
            name: req.name.clone(),
            runtime: if req.runtime.is_empty() { self.default_runtime.clone() } else { req.runtime.clone() },
            command: req.command,
            env: req.env.into_iter().collect(),
            memory_bytes: req.memory_bytes,
            cpus: req.cpus,
            epoch: 0,
            started_unix_ms: 0,
            phase: Phase::Creating,
        };
        let host = self.host.clone();
        self.update(&record.name, |cur| match cur {
            Some(_) => Err(WorkloadError::Exists { name: record.name.clone(), host }),
            None => Ok((Some(record.clone()), ())),
        })?;
        let begun = std::time::Instant::now();
        let made = self.create(record.clone(), &rootfs).await;
        match made {
            Ok((r, times)) => {
                // The runtime has just said it started: its state file saves asking it again.
                let w = match rt.init_pid(&r.name) {
                    Some(pid) => self.to_pb(&r, "running", pid),
                    None => self.describe(&r, &rt),
                };
                tracing::info!(
                    workload = %r.name,
                    runtime = %rt.kind(),
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

    /// Makes the bundle and starts it: the record, how the root filesystem was made, and
    /// how long that and the runtime took.
    async fn create(&self, mut record: Record, image: &Path) -> Result<(Record, RunTimes), WorkloadError> {
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
            bundle::BundleError::Io { ref source, .. } if source.raw_os_error() == Some(libc::ENOSPC) => {
                WorkloadError::NoSpace(format!("copying the root filesystem: {e}"))
            }
            e => WorkloadError::Io(format!("copying the root filesystem: {e}")),
        })?;
        written?;
        let bundle = making.elapsed();
        let starting = std::time::Instant::now();
        record.started_unix_ms = self.launch(&record).await?;
        let times = RunTimes { made, bundle, runtime: starting.elapsed() };
        record.phase = Phase::Owned;
        // Atomic now, durable a moment later, off the caller's clock: each fsync is a journal
        // commit that waits for every dirty page of the filesystem (milliseconds on a busy
        // disk). A process crash in between still finds the new record (the rename is in
        // the page cache); only a machine crash in that moment loses it, and that ends the
        // container too (the directory, the workload's writes included, is then removed at
        // the next start as an unfinished Run). Migration records stay synced before use.
        // The next run's spare is made then too: after the sync, so after this reply.
        let dir = self.workload_dir(&record.name);
        record.save_unsynced(&dir).map_err(io_err(format!("saving {}", record.name)))?;
        let spares = self.spares.clone();
        tokio::task::spawn_blocking(move || {
            if let Err(e) = Record::sync(&dir) {
                tracing::debug!(dir = %dir.display(), "making the record durable: {e}");
            }
            spares.refill();
        });
        self.put(record.clone());
        Ok((record, times))
    }

    /// Stops a workload (SIGTERM, SIGKILL after a grace period) and removes it from this
    /// host, bundle and writable state included.
    pub async fn stop(&self, name: &str) -> Result<pb::Workload, WorkloadError> {
        let host = self.host.clone();
        let record = self.update(name, |cur| match cur {
            None => Err(WorkloadError::NotFound { name: name.to_string(), host }),
            Some(r) if !r.phase.can_stop() => Err(WorkloadError::Conflict(format!(
                "{name} cannot be stopped now ({})",
                status_word(&r.phase)
            ))),
            Some(r) => {
                let mut next = r.clone();
                next.phase = Phase::Creating;
                Ok((Some(next), r.clone()))
            }
        })?;
        let rt = self.runtime(&record.runtime)?;
        let mut shown = self.describe(&record, &rt);
        // Thawed first if it was paused: a frozen process does not see the signal. Both as
        // `runtime resume` and `runtime kill` would, without their processes.
        self.cgroups.thaw(name);
        if let Some(pid) = rt.signal_init(name, nix::sys::signal::Signal::SIGTERM) {
            let until = tokio::time::Instant::now() + STOP_GRACE;
            while runtime::process_running(pid) && tokio::time::Instant::now() < until {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
        self.discard(&record).await;
        shown.status = "stopped".into();
        tracing::info!(workload = %name, "workload stopped and removed");
        Ok(shown)
    }

    /// Every workload of this host, with the runtime's view of each.
    pub async fn list(&self) -> Vec<pb::Workload> {
        let records: Vec<Record> =
            self.table.lock().unwrap_or_else(|e| e.into_inner()).values().cloned().collect();
        let mut out = Vec::with_capacity(records.len());
        for r in records {
            match self.runtime(&r.runtime) {
                Ok(rt) => out.push(self.describe(&r, &rt)),
                Err(_) => out.push(self.to_pb(&r, "no_runtime", 0)),
            }
        }
        out
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

    /// `r` with its container's status and init pid ([`Workloads::container_status`]), or
    /// the phase's word while it moves.
    fn describe(&self, r: &Record, rt: &OciRuntime) -> pb::Workload {
        let status = self.container_status(&r.name, rt);
        let word = match &r.phase {
            Phase::Owned if status == ContainerStatus::Gone => "stopped",
            Phase::Owned => status.word(),
            other => status_word(other),
        };
        self.to_pb(r, word, status.pid())
    }

    /// What `runtime state` would say of container `name`, read from the runtime's state
    /// file, `/proc` and the cgroup freezer, without a runtime process (several ms each:
    /// `List` of 20 workloads took 107 ms).
    pub(crate) fn container_status(&self, name: &str, rt: &OciRuntime) -> ContainerStatus {
        match rt.liveness(name) {
            Liveness::Running(pid) if self.cgroups.frozen(name) == Some(true) => ContainerStatus::Paused(pid),
            Liveness::Running(pid) => ContainerStatus::Running(pid),
            Liveness::Stopped => ContainerStatus::Stopped,
            Liveness::Unknown => ContainerStatus::Gone,
        }
    }

    fn to_pb(&self, r: &Record, status: &str, pid: u32) -> pb::Workload {
        pb::Workload {
            name: r.name.clone(),
            host: self.host.clone(),
            runtime: r.runtime.clone(),
            status: status.to_string(),
            pid,
            started_unix_ms: r.started_unix_ms,
            command: r.command.clone(),
            memory_bytes: r.memory_bytes,
            cpus: r.cpus,
            env: r.env.clone().into_iter().collect(),
            epoch: r.epoch,
        }
    }
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

/// A container as its runtime would describe it ([`Workloads::container_status`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContainerStatus {
    /// Its init runs, with this pid.
    Running(u32),
    /// Its init runs, frozen.
    Paused(u32),
    /// Its init has ended.
    Stopped,
    /// The runtime keeps no state for it.
    Gone,
}

impl ContainerStatus {
    /// Its word: `running`, `paused`, `stopped` or `gone` (which `List` shows as `stopped`).
    pub fn word(self) -> &'static str {
        match self {
            ContainerStatus::Running(_) => "running",
            ContainerStatus::Paused(_) => "paused",
            ContainerStatus::Stopped => "stopped",
            ContainerStatus::Gone => "gone",
        }
    }

    /// The init's pid while it runs, else 0.
    pub fn pid(self) -> u32 {
        match self {
            ContainerStatus::Running(pid) | ContainerStatus::Paused(pid) => pid,
            ContainerStatus::Stopped | ContainerStatus::Gone => 0,
        }
    }
}

/// The status word of a phase that is not simply "owned".
pub fn status_word(phase: &Phase) -> &'static str {
    match phase {
        Phase::Creating => "creating",
        Phase::Owned => "owned",
        Phase::MigratingOut { .. } => "migrating",
        Phase::Incoming { .. } => "incoming",
    }
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
            assert_eq!(e.code(), "invalid", "{bad}");
        }
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
            started_unix_ms: 1,
            phase: Phase::Owned,
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
        wait_until(|| std::fs::read_dir(&workloads).unwrap().count() == spares()).await;
        // Its cgroup went with it, and the daemon's own goes when it closes.
        w.close();
        if let Some(d) = &daemon_cgroup {
            assert!(!d.exists(), "no cgroup of this daemon is left: {}", d.display());
        }
    }

    /// Waits (at most 5 s) until `done` holds.
    async fn wait_until(done: impl Fn() -> bool) {
        let until = std::time::Instant::now() + Duration::from_secs(5);
        while !done() {
            assert!(std::time::Instant::now() < until, "not done within 5 s");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    #[test]
    fn codes_survive_the_wire() {
        let e = WorkloadError::NoSpace("3 MiB free, 9 MiB needed".into());
        let back = WorkloadError::from_wire(&e.wire(), "host-1");
        assert_eq!(back.code(), "no_space");
        assert!(back.to_string().contains("host-1: 3 MiB free"), "{back}");
        assert_eq!(back.status().code(), tonic::Code::ResourceExhausted);
        let c = WorkloadError::from_wire("conflict: web is incoming", "h");
        assert_eq!(c.status().code(), tonic::Code::Aborted);
    }
}
