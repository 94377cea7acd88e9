//! Real `middlecon` daemons for the middlecon benchmarks: a throwaway fleet CA issuing one
//! `host` certificate per daemon for its own loopback address ([`Ca`]), and a daemon
//! process started from the release binary with its own `--state-dir`, `--socket` and
//! ports, killed when dropped ([`Daemon`]); and the `main` both benchmarks share
//! ([`run_report`]).

use anyhow::{bail, Context, Result};
use dcos_core::pki::{self, LeafSpec};
use dcos_core::tls::TlsFiles;
use dcos_core::Role;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::Duration;

/// A fleet CA in a temporary directory; daemons' state directories go there too.
pub struct Ca {
    pub dir: tempfile::TempDir,
}

impl Ca {
    pub fn new(prefix: &str) -> Result<Ca> {
        let dir =
            tempfile::Builder::new().prefix(prefix).tempdir().context("creating a temporary directory")?;
        pki::init_dir(dir.path()).context("creating the fleet CA")?;
        Ok(Ca { dir })
    }

    /// Issues a `host` certificate named `name`, valid for `ip` only.
    pub fn issue_host(&self, name: &str, ip: IpAddr) -> Result<TlsFiles> {
        let mut spec = LeafSpec::new(name, Role::Host);
        spec.ips = vec![ip];
        pki::issue_into_dir(self.dir.path(), &spec)
            .with_context(|| format!("issuing {name}'s certificate"))?;
        Ok(TlsFiles {
            cert: self.dir.path().join(format!("{name}.crt")),
            key: self.dir.path().join(format!("{name}.key")),
            ca: self.dir.path().join("ca.crt"),
        })
    }
}

/// How to start one daemon.
#[derive(Debug, Clone)]
pub struct Spec {
    pub name: String,
    /// Its loopback address; the TCP API port is chosen by the kernel.
    pub ip: IpAddr,
    /// The QUIC port; 0 lets the kernel choose, which only suits daemons that need no
    /// membership: membership advertises the `--listen` address as given, port 0 included.
    pub port: u16,
    pub tls: TlsFiles,
    /// `--state-dir`; the Unix socket is `api.sock` inside it.
    pub state_dir: PathBuf,
    pub seeds: Vec<SocketAddr>,
    /// `--peer NAME=ADDR`.
    pub peers: Vec<(String, SocketAddr)>,
    /// Environment variables set for it (e.g. `DCOS_WORKER_THREADS`).
    pub env: Vec<(String, String)>,
}

/// A running middlecon; SIGKILLed and reaped when dropped.
pub struct Daemon {
    pub name: String,
    /// The QUIC address it announced.
    pub addr: SocketAddr,
    pub socket: PathBuf,
    child: Child,
    stderr_log: PathBuf,
}

impl Daemon {
    /// Starts `bin` with `spec` and waits (at most 20 s) for its announce line.
    pub fn start(bin: &Path, spec: &Spec) -> Result<Daemon> {
        std::fs::create_dir_all(&spec.state_dir)
            .with_context(|| format!("creating {}", spec.state_dir.display()))?;
        let socket = spec.state_dir.join("api.sock");
        let stderr_log = spec.state_dir.join("stderr.log");
        let mut cmd = Command::new(bin);
        cmd.arg("--name")
            .arg(&spec.name)
            .arg("--listen")
            .arg(SocketAddr::new(spec.ip, spec.port).to_string())
            .arg("--api")
            .arg(SocketAddr::new(spec.ip, 0).to_string())
            .arg("--socket")
            .arg(&socket)
            .arg("--state-dir")
            .arg(&spec.state_dir)
            .args(spec.tls.flags());
        for seed in &spec.seeds {
            cmd.arg("--seed").arg(seed.to_string());
        }
        for (name, addr) in &spec.peers {
            cmd.arg("--peer").arg(format!("{name}={addr}"));
        }
        cmd.envs(spec.env.iter().map(|(k, v)| (k, v)));
        let log = std::fs::File::create(&stderr_log).context("creating the daemon's log")?;
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let stdout = child.stdout.take().context("daemon stdout")?;
        let line = dcos_localfleet::first_line(stdout, Duration::from_secs(20)).unwrap_or_default();
        let addr = line
            .split_whitespace()
            .find_map(|w| w.strip_prefix("quic://"))
            .and_then(|a| a.parse::<SocketAddr>().ok());
        let Some(addr) = addr else {
            let _ = child.kill();
            let _ = child.wait();
            let log = std::fs::read_to_string(&stderr_log).unwrap_or_default();
            bail!("{} did not start: {line:?}; stderr: {}", spec.name, log.trim());
        };
        Ok(Daemon { name: spec.name.clone(), addr, socket, child, stderr_log })
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// SIGKILL, and reap it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Still running?
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Lines of its stderr log containing `needle` (e.g. membership's `member down`).
    pub fn log_lines_with(&self, needle: &str) -> usize {
        let log = std::fs::read_to_string(&self.stderr_log).unwrap_or_default();
        log.lines().filter(|l| l.contains(needle)).count()
    }

    /// The last lines of its stderr, for error messages.
    pub fn stderr_tail(&self) -> String {
        let log = std::fs::read_to_string(&self.stderr_log).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(5)..].join("\n")
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The release `middlecon` next to this executable, unless `given`.
pub fn binary(given: Option<&Path>) -> Result<PathBuf> {
    let path = match given {
        Some(p) => p.to_path_buf(),
        None => std::env::current_exe()?.parent().context("executable directory")?.join("middlecon"),
    };
    if !path.is_file() {
        bail!(
            "{} is not built; run `cargo build --release -p middlecon` (scripts/bench-middlecon.sh does)",
            path.display()
        );
    }
    Ok(path)
}

/// Runs `report` on a 2-worker tokio runtime and prints the Markdown it returns (also to
/// `--out`, if given); errors go to stderr as `tool: ...` with exit status 1.
pub fn run_report(
    tool: &str,
    args: &crate::report::ReportArgs,
    report: impl Future<Output = Result<String>>,
) -> ExitCode {
    let result = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the runtime")
        .and_then(|rt| rt.block_on(report));
    let written = result.and_then(|text| args.emit(&text));
    match written {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{tool}: {e:#}");
            ExitCode::FAILURE
        }
    }
}
