//! `dcos demo`: a throwaway fleet on this machine. A CA is created in a temporary
//! directory, one certificate per host, one k2i per host on loopback; then each host's
//! summary and busiest processes are fetched over mTLS and shown.

use crate::cli::DemoArgs;
use crate::client::K2iClient;
use crate::table;
use anyhow::{bail, Context, Result};
use dcos_core::model::{HostSummary, ProcList};
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
pub async fn start_k2i(bin: &Path, dir: &Path, name: &str, dc: &str, extra: &[&str]) -> Result<LocalHost> {
    let log = std::fs::File::create(dir.join(format!("{name}.log")))?;
    let mut child = Command::new(bin)
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
    if args.hosts == 0 || args.hosts > 50 {
        bail!("--hosts must be between 1 and 50");
    }
    let temp;
    let dir = match &args.dir {
        Some(d) => d.clone(),
        None => {
            temp = tempfile::Builder::new().prefix("dcos-demo-").tempdir()?;
            temp.path().to_path_buf()
        }
    };
    let names: Vec<String> = (1..=args.hosts).map(|i| format!("demo-{i}")).collect();
    make_certs(&dir, &names)?;
    println!("== fleet CA and {} host certificates in {}", names.len(), dir.display());
    let k2i = sibling_binary("k2i")?;
    let mut hosts = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let dc = if i % 2 == 0 { "dc-east" } else { "dc-west" };
        let h = start_k2i(&k2i, &dir, name, dc, &["--sample-interval", "500ms"]).await?;
        println!("   {} ({dc}) k2i at {}", h.name, h.url);
        hosts.push(h);
    }
    // Two samples, so cpu_percent has a value.
    tokio::time::sleep(Duration::from_millis(1100)).await;

    let admin = Identity::load(&TlsFiles {
        cert: dir.join("admin.crt"),
        key: dir.join("admin.key"),
        ca: dir.join("ca.crt"),
    })?;
    let client = K2iClient::new(&admin)?;
    let timeout = Duration::from_secs(3);
    let fetches = hosts.iter().map(|h| {
        let client = client.clone();
        async move {
            let summary = client.get_json::<HostSummary>(&h.url, "/v1/host", timeout).await;
            let procs = client.get_json::<ProcList>(&h.url, "/v1/proc?sort=-cpu&limit=5", timeout).await;
            (h, summary, procs)
        }
    });
    let results = futures::future::join_all(fetches).await;
    println!("\n== hosts (GET /v1/host over mTLS)");
    let mut rows = Vec::new();
    let mut procs = Vec::new();
    for (h, summary, list) in &results {
        match summary {
            Ok(s) => rows.push(vec![
                s.name.clone(),
                s.dc.clone(),
                s.kernel.clone(),
                format!("{:.2} {:.2} {:.2}", s.load[0], s.load[1], s.load[2]),
                format!("{}/{}", table::human_bytes(s.mem_used_bytes), table::human_bytes(s.mem_total_bytes)),
                s.processes.to_string(),
            ]),
            Err(e) => rows.push(vec![h.name.clone(), "-".into(), format!("error: {e}")]),
        }
        if let Ok(list) = list {
            for p in &list.processes {
                procs.push(table::process_row(&list.host, p, 60));
            }
        }
    }
    print!("{}", table::render(&["HOST", "DC", "KERNEL", "LOAD", "MEM", "PROCS"], &rows));
    println!("\n== busiest processes on each host (GET /v1/proc?sort=-cpu&limit=5)");
    print!("{}", table::render(&table::PROCESS_HEADER, &procs));

    let failed = results.iter().filter(|(_, s, p)| s.is_err() || p.is_err()).count();
    let asked = results.len();
    drop(results);
    if args.keep {
        println!("\nfleet running; try:\n  curl --cacert {0}/ca.crt --cert {0}/admin.crt --key {0}/admin.key '{1}/v1/proc?q=cpu>1&fields=pid,cmd,cpu'\nCtrl-C to stop.", dir.display(), hosts[0].url);
        let _ = tokio::signal::ctrl_c().await;
    }
    for h in hosts {
        h.stop().await;
    }
    if failed > 0 {
        bail!("{failed} of {asked} hosts did not answer");
    }
    println!("\ndemo fleet stopped");
    Ok(())
}
