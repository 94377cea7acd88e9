//! Helpers shared by the end-to-end tests: a throwaway fleet CA ([`Pki`]), real daemons
//! started from the workspace's binaries ([`Daemon`]), and real OCI containers from a
//! busybox root filesystem ([`oci`]), hand-written HTTP over real TLS ([`raw_https`]), a multi-host fleet of network namespaces
//! ([`netns::Fleet`]) and middlecon daemons and runtimes on it ([`mesh`]).
//!
//! The binaries must be built before the tests run (`scripts/test` does it:
//! `cargo build --workspace --bins`).

pub mod mesh;
pub mod netns;
pub mod oci;
pub mod raw_https;
pub mod workload_mesh;

use anyhow::{bail, Context, Result};
use dcos_core::pki::{self, LeafSpec};
use dcos_core::tls::{Identity, TlsFiles};
use dcos_core::Role;
use k2i_client::K2iClient;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A built binary of the workspace (`k2i`, `dcos`, `middlecon`, `host-init`): next to the
/// running executable (a benchmark in `target/<profile>/`), else one directory up (a test in
/// `target/<profile>/deps/`).
pub fn bin(name: &str) -> PathBuf {
    dcos_localfleet::built_binary(name).unwrap_or_else(|| {
        panic!("{name} is not built; run `cargo build --workspace --bins` first (scripts/test does)")
    })
}

/// A fleet CA in a temporary directory, with certificates issued on demand.
pub struct Pki {
    pub dir: tempfile::TempDir,
}

impl Pki {
    /// A CA with `admin` already issued.
    pub fn new() -> Pki {
        let dir = tempfile::Builder::new().prefix("dcos-pki-").tempdir().expect("tempdir");
        pki::init_dir(dir.path()).expect("certs init");
        Pki { dir }
    }

    /// Issues `name` with `role`, valid for 127.0.0.1 and localhost.
    pub fn issue(&self, name: &str, role: Role) -> TlsFiles {
        self.issue_spec(&dcos_localfleet::loopback_leaf(name, role))
    }

    /// Issues `name` with `role`, valid for `ips` only (e.g. a fleet host's address).
    pub fn issue_for(&self, name: &str, role: Role, ips: &[std::net::IpAddr]) -> TlsFiles {
        let mut spec = LeafSpec::new(name, role);
        spec.ips = ips.to_vec();
        self.issue_spec(&spec)
    }

    pub fn issue_spec(&self, spec: &LeafSpec) -> TlsFiles {
        pki::issue_into_dir(self.dir.path(), spec).expect("certs issue");
        self.files(&spec.name)
    }

    pub fn files(&self, name: &str) -> TlsFiles {
        TlsFiles {
            cert: self.dir.path().join(format!("{name}.crt")),
            key: self.dir.path().join(format!("{name}.key")),
            ca: self.dir.path().join("ca.crt"),
        }
    }

    /// An HTTPS client presenting `name`'s certificate.
    pub fn client(&self, name: &str) -> K2iClient {
        K2iClient::new(&Identity::load(&self.files(name)).expect("identity")).expect("client")
    }
}

impl Default for Pki {
    fn default() -> Self {
        Self::new()
    }
}

/// A daemon process; killed when dropped.
pub struct Daemon {
    pub child: Child,
    /// `https://127.0.0.1:PORT`.
    pub url: String,
    pub stderr_log: PathBuf,
    _logdir: tempfile::TempDir,
}

impl Daemon {
    /// Starts `k2i` on 127.0.0.1:0 with `tls` and `extra` flags and waits until it
    /// announces its address.
    pub fn k2i(tls: &TlsFiles, extra: &[&str]) -> Result<Daemon> {
        Self::k2i_wrapped(&[], tls, extra)
    }

    /// As [`Daemon::k2i`], run under a wrapper command (e.g. `unshare --uts`).
    pub fn k2i_wrapped(wrapper: &[&str], tls: &TlsFiles, extra: &[&str]) -> Result<Daemon> {
        let logdir = tempfile::tempdir()?;
        let stderr_log = logdir.path().join("stderr.log");
        let k2i = bin("k2i");
        let mut cmd = match wrapper.split_first() {
            Some((w, rest)) => {
                let mut c = Command::new(w);
                c.args(rest).arg(&k2i);
                c
            }
            None => Command::new(&k2i),
        };
        cmd.args(["--listen", "127.0.0.1:0"])
            .args(tls.flags())
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr_log)?);
        let mut child = cmd.spawn().context("spawning k2i")?;
        let stdout = child.stdout.take().context("stdout")?;
        let line = dcos_localfleet::first_line(stdout, Duration::from_secs(20)).unwrap_or_default();
        let Some(url) = line.split_whitespace().find(|w| w.starts_with("https://")) else {
            let _ = child.kill();
            let log = std::fs::read_to_string(&stderr_log).unwrap_or_default();
            bail!("k2i did not start: {line:?}; stderr: {log}");
        };
        Ok(Daemon { url: url.to_string(), child, stderr_log, _logdir: logdir })
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_log).unwrap_or_default()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A child process killed when dropped (test markers, busy loops).
pub struct Spawned(pub Child);

impl Spawned {
    pub fn new(program: &str, args: &[&str]) -> Spawned {
        let child = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("spawning {program}: {e}"));
        Spawned(child)
    }

    pub fn pid(&self) -> i32 {
        self.0.id() as i32
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Polls `f` every 100 ms until it returns `Some`, or fails after `limit`.
pub async fn eventually<T, F, Fut>(limit: Duration, what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(start.elapsed() < limit, "timed out after {limit:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `s` percent-encoded for a query string (all but letters, digits, `-`, `_`, `.`).
pub fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}
