//! `dcos demo`: a throwaway fleet on this machine. A CA is created in a temporary
//! directory, one certificate per host, one k2i per host on loopback; then each host's
//! summary and busiest processes are fetched over mTLS and shown.

use crate::cli::{DemoArgs, Format, PsArgs, TopArgs};
use crate::client::K2iClient;
use crate::commands::{self, Context};
use crate::fanout::FanOut;
use crate::fleet::Target;
use anyhow::{bail, Context as _, Result};
use dcos_core::pki::{self, LeafSpec};
use dcos_core::tls::{Identity, TlsFiles};
use dcos_core::Role;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// A k2i started by the demo; killed when dropped.
pub struct LocalHost {
    pub name: String,
    pub url: String,
    child: Child,
}

impl LocalHost {
    /// Asks the daemon to stop (SIGTERM) and waits for it.
    pub async fn stop(mut self) {
        if let Some(pid) = self.child.id() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
        let _ = tokio::time::timeout(Duration::from_secs(5), self.child.wait()).await;
    }
}

/// Finds a sibling binary of this executable (same build), else on `PATH`.
pub fn sibling_binary(name: &str) -> Result<PathBuf> {
    if let Ok(exe) = std::env::current_exe() {
        for dir in exe.ancestors().skip(1).take(2) {
            let candidate = dir.join(name);
            if candidate.is_file() {
                return Ok(candidate);
            }
        }
    }
    std::env::var_os("PATH")
        .and_then(|paths| std::env::split_paths(&paths).map(|p| p.join(name)).find(|p| p.is_file()))
        .with_context(|| {
            format!("cannot find the {name} binary next to dcos or on PATH (build it: cargo build --release)")
        })
}

/// Starts one k2i on 127.0.0.1 (a free port) and waits for it to announce its address.
///
/// With `workload` (a shell snippet) and root, the host gets its own PID namespace and
/// `/proc`, so its process table holds its k2i and its workload only, as on a real host.
pub async fn start_k2i(
    bin: &Path,
    dir: &Path,
    name: &str,
    dc: &str,
    extra: &[&str],
    workload: Option<&str>,
) -> Result<LocalHost> {
    let log = std::fs::File::create(dir.join(format!("{name}.log")))?;
    let mut command = match workload.filter(|_| own_pid_namespaces()) {
        Some(work) => {
            let mut c = Command::new("unshare");
            c.args(["--pid", "--fork", "--mount-proc", "--kill-child", "sh", "-c"])
                .arg(format!("{work} exec \"$0\" \"$@\""))
                .arg(bin);
            c
        }
        None => Command::new(bin),
    };
    let mut child = command
        .args(["--listen", "127.0.0.1:0", "--name", name, "--dc", dc])
        .arg("--cert")
        .arg(dir.join(format!("{name}.crt")))
        .arg("--key")
        .arg(dir.join(format!("{name}.key")))
        .arg("--ca")
        .arg(dir.join("ca.crt"))
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::from(log))
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))?;
    let stdout = child.stdout.take().context("k2i stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let line = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
        .await
        .with_context(|| {
            format!("{name}: k2i did not start within 20 s (see {}/{name}.log)", dir.display())
        })??
        .with_context(|| format!("{name}: k2i exited at start (see {}/{name}.log)", dir.display()))?;
    let url = line
        .split_whitespace()
        .find(|w| w.starts_with("https://"))
        .with_context(|| format!("{name}: unexpected first line {line:?}"))?
        .to_string();
    Ok(LocalHost { name: name.to_string(), url, child })
}

/// Whether demo hosts can have their own PID namespaces (root and `unshare` present).
fn own_pid_namespaces() -> bool {
    nix::unistd::geteuid().is_root()
        && std::process::Command::new("unshare")
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
}

/// Creates the demo CA and one host certificate per name, valid for 127.0.0.1.
pub fn make_certs(dir: &Path, names: &[String]) -> Result<()> {
    pki::init_dir(dir)?;
    for name in names {
        let mut spec = LeafSpec::new(name.clone(), Role::Host);
        spec.ips = vec!["127.0.0.1".parse()?];
        spec.dns = vec!["localhost".into()];
        pki::issue_into_dir(dir, &spec)?;
    }
    Ok(())
}

pub async fn run(args: DemoArgs) -> Result<()> {
    if args.size == 0 || args.size > 50 {
        bail!("--size must be between 1 and 50");
    }
    let temp;
    let dir = match &args.dir {
        Some(d) => d.clone(),
        None => {
            temp = tempfile::Builder::new().prefix("dcos-demo-").tempdir()?;
            temp.path().to_path_buf()
        }
    };
    let names: Vec<String> = (1..=args.size).map(|i| format!("demo-{i}")).collect();
    make_certs(&dir, &names)?;
    println!("== fleet CA and {} host certificates in {}", names.len(), dir.display());
    let k2i = sibling_binary("k2i")?;
    let mut hosts = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let dc = if i % 2 == 0 { "dc-east" } else { "dc-west" };
        // Something for `dcos ps` and `dcos top` to show: a service on every host, and on
        // the first one a low-priority busy loop that ends by itself.
        let work = if i == 0 {
            "sleep 100000 & (timeout 60 nice -n 19 sh -c 'while :; do :; done') &"
        } else {
            "sleep 100000 &"
        };
        let h = start_k2i(&k2i, &dir, name, dc, &["--sample-interval", "500ms"], Some(work)).await?;
        println!("   {} ({dc}) k2i at {}", h.name, h.url);
        hosts.push(h);
    }
    // Two samples, so cpu_percent has a value.
    tokio::time::sleep(Duration::from_millis(1200)).await;

    let admin = Identity::load(&TlsFiles {
        cert: dir.join("admin.crt"),
        key: dir.join("admin.key"),
        ca: dir.join("ca.crt"),
    })?;
    let targets: Vec<Target> = hosts
        .iter()
        .map(|h| Target {
            name: h.name.clone(),
            dc: String::new(),
            labels: Default::default(),
            k2i: h.url.clone(),
            api: None,
        })
        .collect();
    let ctx = Context {
        targets,
        fanout: FanOut::new(K2iClient::new(&admin)?, Duration::from_secs(3)),
        format: Format::Table,
    };
    println!("\n$ dcos hosts");
    let mut worst = commands::hosts::run(&ctx).await?;
    println!("\n$ dcos ps --sort=-cpu --limit 12");
    let ps = PsArgs {
        user: None,
        cmd: None,
        container: None,
        sort: Some("-cpu".into()),
        limit: Some(12),
        q: None,
        group_by: None,
    };
    worst = worst.max(commands::ps::run(&ctx, &ps).await?);
    println!("\n$ dcos top --once --limit 5");
    let top = TopArgs { once: true, interval: Duration::from_secs(2), limit: 5, sort: "-cpu".into() };
    worst = worst.max(commands::top::run(&ctx, &top).await?);

    if args.keep {
        println!("\nfleet running; try:\n  curl --cacert {0}/ca.crt --cert {0}/admin.crt --key {0}/admin.key '{1}/v1/proc?q=cpu>1&fields=pid,cmd,cpu'\nCtrl-C to stop.", dir.display(), hosts[0].url);
        let _ = tokio::signal::ctrl_c().await;
    }
    for h in hosts {
        h.stop().await;
    }
    if worst != crate::exit::OK {
        bail!("not every demo host answered");
    }
    println!("\ndemo fleet stopped");
    Ok(())
}
