//! The OCI runtime binary (runc, crun, runsc) as middlecon drives it: one [`OciRuntime`]
//! per binary, its state (`--root`) under the daemon's state dir, its class
//! ([`super::classes`]: what it does its own way), and the lifecycle verbs middlecon needs
//! (`run --detach`, `pause`, `resume`, `kill`, `delete`). What `state` and `kill` would do is
//! done without a runtime process where the class allows: [`OciRuntime::liveness`] reads
//! the runtime's state file and `/proc`, [`OciRuntime::signal_init`] signals the init.
//!
//! The runtimes take the same command line for these verbs, after their class's flags. Every call is bounded: a
//! runtime that hangs is killed and reported as [`RuntimeError::Timeout`]. A container's
//! init pid is read from the state file the runtime keeps under its root
//! ([`OciRuntime::init_pid`]), not from a `--pid-file`: runc writes that with `O_SYNC`, a
//! disk flush in the middle of every start.

use super::classes::RuntimeClass;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::process::Command;

/// How long one runtime command may take.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);
/// How long [`OciRuntime::delete`] waits for a killed container to stop.
const KILL_WAIT: Duration = Duration::from_secs(2);
/// Where runtime binaries are looked for when given by name.
const SEARCH_PATH: [&str; 6] =
    ["/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"];

/// Why a runtime command failed.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("OCI runtime {0:?} not found (looked in {dirs})", dirs = SEARCH_PATH.join(", "))]
    NotFound(String),
    /// A runtime class a host does not have, named with the host.
    #[error("host {host} has no runtime {name:?} (OCI runtime not installed there; it has: {has})")]
    Missing { name: String, host: String, has: String },
    /// A peer's refusal for want of a runtime, as the peer worded it.
    #[error("{0}")]
    Peer(String),
    #[error("cannot start {bin}: {source}")]
    Spawn { bin: String, source: std::io::Error },
    #[error("{bin} {verb} {id} did not finish within {COMMAND_TIMEOUT:?}")]
    Timeout { bin: String, verb: &'static str, id: String },
    #[error("{bin} {verb} {id} failed: {message}")]
    Failed { bin: String, verb: &'static str, id: String, message: String },
}

/// One OCI runtime binary with its state root.
#[derive(Clone)]
pub struct OciRuntime {
    /// As the user named it: `runc`, `crun`, `runsc` or a path.
    pub name: String,
    pub binary: PathBuf,
    /// The runtime's `--root`: `<state-dir>/runtime/<file name of the binary>`.
    pub root: PathBuf,
    /// What it does its own way.
    pub class: &'static dyn RuntimeClass,
}

impl std::fmt::Debug for OciRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OciRuntime")
            .field("name", &self.name)
            .field("binary", &self.binary)
            .field("root", &self.root)
            .field("class", &self.class.name())
            .finish()
    }
}

/// Finds `name` (`runc`, `crun`, or a path to a binary).
pub fn locate(name: &str) -> Result<PathBuf, RuntimeError> {
    let p = Path::new(name);
    if name.contains('/') {
        return if p.is_file() { Ok(p.to_path_buf()) } else { Err(RuntimeError::NotFound(name.into())) };
    }
    SEARCH_PATH
        .iter()
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file())
        .ok_or_else(|| RuntimeError::NotFound(name.into()))
}

impl OciRuntime {
    /// The runtime `name`, keeping its state under `state_dir/runtime/`.
    pub fn new(name: &str, state_dir: &Path) -> Result<OciRuntime, RuntimeError> {
        Ok(OciRuntime::with_binary(name, locate(name)?, state_dir))
    }

    /// The runtime `name` that is the binary `binary`, keeping its state under
    /// `state_dir/runtime/`.
    pub fn with_binary(name: &str, binary: PathBuf, state_dir: &Path) -> OciRuntime {
        let kind =
            binary.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_else(|| name.into());
        OciRuntime {
            name: name.to_string(),
            root: state_dir.join("runtime").join(kind),
            class: super::classes::of_binary(&binary),
            binary,
        }
    }

    /// `runc`, `crun` or `runsc` (the binary's file name), as k2i names the runtime.
    pub fn kind(&self) -> String {
        self.binary.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default()
    }

    fn command(&self) -> Command {
        let mut c = Command::new(&self.binary);
        c.args(self.class.flags()).arg("--root").arg(&self.root).stdin(Stdio::null()).kill_on_drop(true);
        c
    }

    async fn exec(&self, verb: &'static str, id: &str, mut cmd: Command) -> Result<Vec<u8>, RuntimeError> {
        let bin = self.binary.display().to_string();
        let out = tokio::time::timeout(COMMAND_TIMEOUT, cmd.output())
            .await
            .map_err(|_| RuntimeError::Timeout { bin: bin.clone(), verb, id: id.into() })?
            .map_err(|source| RuntimeError::Spawn { bin: bin.clone(), source })?;
        if !out.status.success() {
            let message = String::from_utf8_lossy(&out.stderr).trim().to_string();
            let message = if message.is_empty() { out.status.to_string() } else { message };
            return Err(RuntimeError::Failed { bin, verb, id: id.into(), message });
        }
        Ok(out.stdout)
    }

    /// Creates and starts container `id` from `bundle`, detached ([`OciRuntime::init_pid`]
    /// then tells its init). The container's stdout and stderr go to `log` (a file: a pipe
    /// would tie the container to this process).
    pub async fn run(&self, id: &str, bundle: &Path, log: &Path) -> Result<(), RuntimeError> {
        self.launch("run", &["run", "--detach", "--bundle"], id, bundle, log).await
    }

    /// Creates container `id` from `bundle` without starting its process (OCI `create`);
    /// [`OciRuntime::start`] starts it. Its output goes to `log`, as for [`OciRuntime::run`].
    pub async fn create(&self, id: &str, bundle: &Path, log: &Path) -> Result<(), RuntimeError> {
        self.launch("create", &["create", "--bundle"], id, bundle, log).await
    }

    /// Starts the process of container `id`, made by [`OciRuntime::create`].
    pub async fn start(&self, id: &str) -> Result<(), RuntimeError> {
        let mut cmd = self.command();
        cmd.args(["start", id]);
        self.exec("start", id, cmd).await.map(|_| ())
    }

    /// `verb` (`args`, then `bundle` and `id`) with the container's output appended to
    /// `log`, waited for.
    async fn launch(
        &self,
        verb: &'static str,
        args: &[&str],
        id: &str,
        bundle: &Path,
        log: &Path,
    ) -> Result<(), RuntimeError> {
        std::fs::create_dir_all(&self.root)
            .map_err(|source| RuntimeError::Spawn { bin: self.binary.display().to_string(), source })?;
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .map_err(|source| RuntimeError::Spawn { bin: self.binary.display().to_string(), source })?;
        let err = file
            .try_clone()
            .map_err(|source| RuntimeError::Spawn { bin: self.binary.display().to_string(), source })?;
        let mut cmd = self.command();
        cmd.args(args).arg(bundle).arg(id);
        cmd.stdout(file).stderr(err);
        // Not `output()`: that would pipe stdout and stderr, which the container inherits,
        // and wait for the container to close them. The runtime's complaints are in the log.
        let bin = self.binary.display().to_string();
        let mut child = cmd.spawn().map_err(|source| RuntimeError::Spawn { bin: bin.clone(), source })?;
        let status = tokio::time::timeout(COMMAND_TIMEOUT, child.wait())
            .await
            .map_err(|_| RuntimeError::Timeout { bin: bin.clone(), verb, id: id.into() })?
            .map_err(|source| RuntimeError::Spawn { bin: bin.clone(), source })?;
        if !status.success() {
            return Err(RuntimeError::Failed {
                bin,
                verb,
                id: id.into(),
                message: format!("{status}: {}", tail(log)),
            });
        }
        Ok(())
    }

    /// The init pid of container `id` as the runtime recorded it in its own state under
    /// `--root` (runc: `<root>/<id>/state.json`; crun: `<root>/<id>/status`), read without
    /// starting a runtime process. The process may have ended since: [`OciRuntime::liveness`]
    /// checks.
    pub fn init_pid(&self, id: &str) -> Option<u32> {
        dcos_linux::oci::read(&self.root, id).and_then(|s| s.init_pid).filter(|p| *p > 0)
    }

    /// Whether container `id`'s init runs, from the runtime's state file and `/proc` alone
    /// (`dcos_linux::oci::liveness`): what `runtime state` says (`running` or `stopped`;
    /// frozen is the cgroup's to tell), without a runtime process for each container asked
    /// about. The init counts as running only if it is the process the runtime started:
    /// not a zombie, and with the start time the runtime recorded (a pid can be reused).
    pub fn liveness(&self, id: &str) -> Liveness {
        dcos_linux::oci::liveness(&self.root, dcos_linux::proc_root(), id)
    }

    /// Freezes every process of the container (cgroup freezer).
    pub async fn pause(&self, id: &str) -> Result<(), RuntimeError> {
        let mut cmd = self.command();
        cmd.args(["pause", id]);
        self.exec("pause", id, cmd).await.map(|_| ())
    }

    pub async fn resume(&self, id: &str) -> Result<(), RuntimeError> {
        let mut cmd = self.command();
        cmd.args(["resume", id]);
        self.exec("resume", id, cmd).await.map(|_| ())
    }

    /// Sends `signal` (a name: `TERM`) to the container's init through the runtime.
    pub async fn kill(&self, id: &str, signal: &str) -> Result<(), RuntimeError> {
        let mut cmd = self.command();
        cmd.args(["kill", id, signal]);
        self.exec("kill", id, cmd).await.map(|_| ())
    }

    /// Deletes the container, killing what still runs in it. Deleting a container the
    /// runtime does not know is not an error. `thaw` thaws the container's cgroup (frozen by
    /// `pause`, e.g. during a migration): a process frozen by cgroup v1's freezer dies of a
    /// SIGKILL only once thawed.
    pub async fn delete(&self, id: &str, thaw: impl FnOnce()) -> Result<(), RuntimeError> {
        // Without the state the runtime keeps of the container there is nothing to delete,
        // and no runtime process to start (a start's usual case).
        if !dcos_linux::oci::has_state(&self.root, id) {
            return Ok(());
        }
        // `runc delete --force` of a running or frozen container signals it, then sleeps
        // 100 ms before it looks again. SIGKILL its init first, and wait here until it has
        // stopped: then `delete` removes it at once. The init is signalled directly, as
        // `runtime kill` would (the pid its state records, if that process still runs:
        // [`OciRuntime::liveness`]), which saves a runtime process; the rest of
        // the container dies with its PID namespace's init. One that does not die in time
        // is left to `--force`.
        if let Some(pid) = self.signal_init(id, nix::sys::signal::Signal::SIGKILL) {
            thaw();
            let until = tokio::time::Instant::now() + KILL_WAIT;
            while process_running(pid) && tokio::time::Instant::now() < until {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
        let mut cmd = self.command();
        cmd.args(["delete", "--force", id]);
        match self.exec("delete", id, cmd).await {
            Err(RuntimeError::Failed { message, .. })
                if message.contains("does not exist") || message.contains("not found") =>
            {
                Ok(())
            }
            other => other.map(|_| ()),
        }
    }

    /// Sends `sig` to container `id`'s init, as `runtime kill` does, without a runtime
    /// process: the pid its state records, if that process still runs. The pid signalled,
    /// `None` if it does not run or the signal could not be sent.
    pub fn signal_init(&self, id: &str, sig: nix::sys::signal::Signal) -> Option<u32> {
        match self.liveness(id) {
            Liveness::Running(pid) => signal(pid, sig).ok().map(|()| pid),
            Liveness::Stopped | Liveness::Unknown => None,
        }
    }
}

fn signal(pid: u32, sig: nix::sys::signal::Signal) -> std::io::Result<()> {
    let pid = i32::try_from(pid).map_err(|_| std::io::Error::other(format!("pid {pid} out of range")))?;
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), sig).map_err(std::io::Error::from)
}

pub use dcos_linux::oci::Liveness;

/// Whether process `pid` still runs: not gone and not a zombie waiting for its reaper
/// (the runtime counts a container whose init is a zombie as stopped).
pub(crate) fn process_running(pid: u32) -> bool {
    dcos_linux::process::running(dcos_linux::proc_root(), pid)
}

/// Whether process `pid` catches `sig` (its `SigCgt` in `/proc/PID/status`). A container's
/// init is PID 1 of its namespace: a signal it does not catch is ignored, not fatal.
pub(crate) fn catches(pid: u32, sig: nix::sys::signal::Signal) -> bool {
    let Ok(status) = dcos_linux::status::read(dcos_linux::proc_root(), pid) else { return false };
    let mask = dcos_linux::status::value(&status, "SigCgt").and_then(|m| u64::from_str_radix(m, 16).ok());
    mask.unwrap_or(0) & (1 << (sig as i32 - 1)) != 0
}

/// The last lines of a log, for an error message.
fn tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().rev().take(5).collect();
    let joined = lines.into_iter().rev().collect::<Vec<_>>().join(" | ");
    if joined.is_empty() {
        "no output".into()
    } else {
        joined
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn deleting_a_container_the_runtime_never_had_starts_no_runtime_process() {
        let state = tempfile::tempdir().unwrap();
        // A "runtime" that fails whatever it is asked: only a call that is never made passes.
        let rt = OciRuntime::with_binary("false", PathBuf::from("/bin/false"), state.path());
        rt.delete("web", || {}).await.expect("nothing to delete, nothing run");
        std::fs::create_dir_all(rt.root.join("web")).unwrap();
        let err =
            rt.delete("web", || {}).await.expect_err("a container the runtime keeps state for is asked for");
        assert!(matches!(err, RuntimeError::Failed { verb: "delete", .. }), "{err}");
    }

    #[test]
    fn the_init_pid_is_read_from_either_runtimes_state() {
        let state = tempfile::tempdir().unwrap();
        let rt = OciRuntime {
            root: state.path().into(),
            ..OciRuntime::with_binary("runc", "/usr/sbin/runc".into(), state.path())
        };
        assert_eq!(rt.init_pid("web"), None, "no state: no pid");
        std::fs::create_dir_all(state.path().join("web")).unwrap();
        std::fs::write(
            state.path().join("web/state.json"),
            r#"{"id":"web","init_process_pid":4242,"created":"x"}"#,
        )
        .unwrap();
        assert_eq!(rt.init_pid("web"), Some(4242), "runc's state.json");
        std::fs::create_dir_all(state.path().join("db")).unwrap();
        std::fs::write(state.path().join("db/status"), r#"{"pid":77,"bundle":"/b","rootfs":"/r"}"#).unwrap();
        assert_eq!(rt.init_pid("db"), Some(77), "crun's status");
        std::fs::create_dir_all(state.path().join("half")).unwrap();
        std::fs::write(state.path().join("half/state.json"), "{\"init_process_pid\":").unwrap();
        assert_eq!(rt.init_pid("half"), None, "a state file cut short is no pid");
    }

    #[test]
    fn liveness_comes_from_the_state_file_and_proc_and_a_reused_pid_is_not_the_init() {
        let state = tempfile::tempdir().unwrap();
        let rt = OciRuntime {
            root: state.path().into(),
            ..OciRuntime::with_binary("runc", "/usr/sbin/runc".into(), state.path())
        };
        assert_eq!(rt.liveness("web"), Liveness::Unknown, "no state: the runtime does not know it");
        let mut sleeper = std::process::Command::new("sleep").arg("30").spawn().unwrap();
        let pid = sleeper.id();
        let start = dcos_linux::process::start_time(dcos_linux::proc_root(), pid).expect("a live process");
        let write = |id: &str, file: &str, json: String| {
            std::fs::create_dir_all(state.path().join(id)).unwrap();
            std::fs::write(state.path().join(id).join(file), json).unwrap();
        };
        write("web", "state.json", format!(r#"{{"init_process_pid":{pid},"init_process_start":{start}}}"#));
        assert_eq!(rt.liveness("web"), Liveness::Running(pid), "runc's state.json");
        write("db", "status", format!(r#"{{"pid":{pid},"process-start-time":{start},"bundle":"/b"}}"#));
        assert_eq!(rt.liveness("db"), Liveness::Running(pid), "crun's status");
        write(
            "old",
            "state.json",
            format!(r#"{{"init_process_pid":{pid},"init_process_start":{}}}"#, start + 1),
        );
        assert_eq!(rt.liveness("old"), Liveness::Stopped, "the pid now belongs to another process");
        sleeper.kill().unwrap();
        sleeper.wait().unwrap();
        assert_eq!(rt.liveness("web"), Liveness::Stopped, "its init has ended");
    }

    #[test]
    fn a_caught_signal_is_told_apart_from_one_left_to_its_default() {
        use nix::sys::signal::Signal;
        // Its `sleep` outlives it by up to a second: it must not hold the test's output open.
        let mut trapping = std::process::Command::new("sh")
            .args(["-c", "trap 'exit 0' TERM; while :; do sleep 1; done"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let pid = trapping.id();
        let until = std::time::Instant::now() + Duration::from_secs(5);
        while !catches(pid, Signal::SIGTERM) {
            assert!(std::time::Instant::now() < until, "the shell never set its trap");
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(!catches(pid, Signal::SIGUSR2));
        trapping.kill().unwrap();
        trapping.wait().unwrap();
        assert!(!catches(pid, Signal::SIGTERM), "a process that is gone catches nothing");
    }

    #[test]
    fn a_zombie_or_a_missing_process_is_not_running() {
        let mut sleeper = std::process::Command::new("sleep").arg("10").spawn().unwrap();
        assert!(process_running(sleeper.id()));
        sleeper.kill().unwrap();
        sleeper.wait().unwrap();
        assert!(!process_running(sleeper.id()), "a reaped process is gone");
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        let until = std::time::Instant::now() + Duration::from_secs(5);
        while process_running(pid) {
            assert!(std::time::Instant::now() < until, "`true` never ended");
            std::thread::sleep(Duration::from_millis(1));
        }
        assert!(Path::new(&format!("/proc/{pid}")).exists(), "not reaped yet: a zombie, not running");
        child.wait().unwrap();
    }

    #[test]
    fn runtimes_are_found_by_name_or_path_and_missing_ones_are_named() {
        let err = locate("no-such-runtime").unwrap_err();
        assert!(err.to_string().contains("no-such-runtime"), "{err}");
        let err = locate("/nonexistent/runc").unwrap_err();
        assert!(matches!(err, RuntimeError::NotFound(_)), "{err}");
        if let Ok(p) = locate("runc") {
            let rt = OciRuntime::new(p.to_str().unwrap(), Path::new("/var/lib/mc")).unwrap();
            assert_eq!(rt.kind(), "runc");
            assert_eq!(rt.root, Path::new("/var/lib/mc/runtime/runc"));
        }
    }
}
