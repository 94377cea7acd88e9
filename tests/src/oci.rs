//! Real OCI containers for tests: a busybox root filesystem built from Debian's
//! busybox-static, a `config.json` derived from `runc spec`, and a container run detached
//! under a private runtime state root, deleted when dropped. The runtime runs in the test's
//! namespaces ([`Container::run`]) or through a wrapper such as a fleet host's `nsenter`
//! ([`Container::run_in`], with [`crate::netns::Fleet::enter`]), which puts the container on
//! that host.

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

pub use dcos_localfleet::busybox_rootfs;

/// A container run detached by an OCI runtime; `delete -f`d when dropped.
pub struct Container {
    pub runtime: PathBuf,
    pub state_root: PathBuf,
    pub id: String,
    pub bundle: PathBuf,
    /// The command prefix every runtime call goes through (empty: none).
    pub wrapper: Vec<String>,
}

impl Container {
    /// Creates a bundle in `dir` (busybox rootfs, `config.json` running `args` in the
    /// cgroup `cgroup_path`) and runs it detached with state under `state_root`.
    pub fn run(
        runtime: &Path,
        state_root: &Path,
        dir: &Path,
        id: &str,
        cgroup_path: &str,
        args: &[&str],
    ) -> Result<Container> {
        Self::run_in(&[], runtime, state_root, dir, id, cgroup_path, args)
    }

    /// As [`Container::run`], with every runtime call (`run`, `state`, `delete`) made as
    /// `wrapper... runtime ...`; with a fleet host's [`crate::netns::Fleet::enter`], the
    /// container runs on that host (a child of its PID namespace, reparented to its init)
    /// and [`Container::pid`] is its pid there. Paths must mean the same inside the wrapper.
    pub fn run_in(
        wrapper: &[String],
        runtime: &Path,
        state_root: &Path,
        dir: &Path,
        id: &str,
        cgroup_path: &str,
        args: &[&str],
    ) -> Result<Container> {
        let bundle = dir.join(id);
        std::fs::create_dir_all(&bundle)?;
        busybox_rootfs(&bundle)?;
        let out = Command::new(runtime).arg("spec").current_dir(&bundle).output()?;
        if !out.status.success() {
            bail!("{} spec: {}", runtime.display(), String::from_utf8_lossy(&out.stderr));
        }
        let path = bundle.join("config.json");
        let mut spec: serde_json::Value = serde_json::from_slice(&std::fs::read(&path)?)?;
        spec["process"]["terminal"] = false.into();
        spec["process"]["args"] = args.iter().map(|a| serde_json::Value::from(*a)).collect();
        spec["root"]["readonly"] = false.into();
        spec["linux"]["cgroupsPath"] = cgroup_path.into();
        std::fs::write(&path, serde_json::to_vec_pretty(&spec)?)?;
        std::fs::create_dir_all(state_root)?;
        // The container inherits the runtime's stdio: a file, not a pipe, or waiting for
        // the runtime to finish would wait for the container too.
        let log = bundle.join("runtime.log");
        let status = runtime_command(wrapper, runtime)
            .arg("--root")
            .arg(state_root)
            .args(["run", "--detach", "--bundle"])
            .arg(&bundle)
            .arg(id)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log)?)
            .status()?;
        if !status.success() {
            bail!("{} run: {}", runtime.display(), std::fs::read_to_string(&log).unwrap_or_default());
        }
        Ok(Container {
            runtime: runtime.into(),
            state_root: state_root.into(),
            id: id.into(),
            bundle,
            wrapper: wrapper.to_vec(),
        })
    }

    /// The container's init pid, from `runtime state` (in the wrapper's PID namespace).
    pub fn pid(&self) -> Result<i32> {
        let out = runtime_command(&self.wrapper, &self.runtime)
            .arg("--root")
            .arg(&self.state_root)
            .args(["state", &self.id])
            .output()?;
        let v: serde_json::Value = serde_json::from_slice(&out.stdout)
            .with_context(|| format!("state: {}", String::from_utf8_lossy(&out.stderr)))?;
        v["pid"].as_i64().map(|p| p as i32).context("no pid in state")
    }
}

impl Drop for Container {
    /// Deletes it through its wrapper; if that fails (e.g. its fleet host is gone, and the
    /// container with it), without, so that the runtime still removes its state and cgroup
    /// (it tells a dead init from a live process by the start time, never kills a stranger).
    fn drop(&mut self) {
        let delete = |wrapper: &[String]| {
            runtime_command(wrapper, &self.runtime)
                .arg("--root")
                .arg(&self.state_root)
                .args(["delete", "--force", &self.id])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        };
        if !delete(&self.wrapper) && !self.wrapper.is_empty() {
            delete(&[]);
        }
    }
}

/// `wrapper... runtime`, or `runtime` alone.
fn runtime_command(wrapper: &[String], runtime: &Path) -> Command {
    match wrapper.split_first() {
        Some((first, rest)) => {
            let mut c = Command::new(first);
            c.args(rest).arg(runtime);
            c
        }
        None => Command::new(runtime),
    }
}

/// Why gVisor's runsc cannot run containers on this machine, `None` where it can: not
/// installed, or a sandbox of busybox `true` on the ptrace platform (as middlecon runs it)
/// fails or hangs. Found out once per test process; tests of the runsc class skip, saying
/// this, where it is `Some`.
pub fn runsc_unusable() -> Option<String> {
    static WHY: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    WHY.get_or_init(|| probe_runsc().err().map(|e| format!("{e:#}"))).clone()
}

fn probe_runsc() -> Result<()> {
    use middlecon::workloads::classes::RuntimeClass;
    let binary = middlecon::workloads::runtime::locate("runsc").context("runsc is not installed")?;
    let work = tempfile::Builder::new().prefix("dcos-runsc-probe-").tempdir()?;
    let bundle = work.path().join("bundle");
    busybox_rootfs(&bundle)?;
    let record = middlecon::workloads::Record::new("probe", "runsc", &["true"]);
    let daemon = format!("probe-{}", std::process::id());
    middlecon::workloads::bundle::write_config(&bundle, &record, &daemon)?;
    let root = work.path().join("root");
    let mut child = Command::new(&binary)
        .args(middlecon::workloads::classes::runsc::Runsc.flags())
        .arg("--root")
        .arg(&root)
        .args(["run", "--bundle"])
        .arg(&bundle)
        .arg("probe")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()?;
    let until = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let status = loop {
        if let Some(s) = child.try_wait()? {
            break s;
        }
        if std::time::Instant::now() > until {
            let _ = child.kill();
            let _ = child.wait();
            bail!("`runsc run` of busybox true did not finish within 30 s (a platform that hangs?)");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let mut err = String::new();
    if let Some(mut e) = child.stderr.take() {
        use std::io::Read;
        let _ = e.read_to_string(&mut err);
    }
    // runsc removed the container's cgroups; the daemon-level ones are the probe's own.
    middlecon::workloads::cgroup::Cgroups::new(&daemon).remove(&record.name);
    middlecon::workloads::cgroup::Cgroups::new(&daemon).remove_own();
    if !status.success() {
        bail!("`runsc run` of busybox true failed ({status}): {}", err.trim());
    }
    Ok(())
}
