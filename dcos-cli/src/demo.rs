//! `dcos demo`: a throwaway fleet on this machine. A CA is created in a temporary
//! directory, one certificate per host, and per host on loopback a k2i (in a PID namespace
//! of its own, as root) and a middlecon beside it, all seeded with the first host's. Then,
//! with the fleet found through the first middlecon's membership (`--seed`), the members,
//! the busiest processes, a cross-host `dcos call` and a `dcos query` are shown; then (as
//! root, with runc and busybox) a busybox container runs on the first host and is migrated
//! to the second, and a busybox `httpd` service is woken by a request. At the end each
//! middlecon stops and `middlecon purge` removes what it left. The hosts are started by
//! `dcos-localfleet`.

use crate::cli::{
    ApiArgs, CallArgs, ContainerArgs, DemoArgs, FleetArgs, Format, MigrateArgs, Mode, MoveArgs, PsArgs,
    QueryArgs, RunArgs, ServiceCreateArgs, ServiceLsArgs, ServiceRmArgs, ServiceShowArgs, StopArgs, TlsArgs,
    TopArgs, WorkloadsArgs,
};
use crate::commands::{self, Context};
use anyhow::{bail, Result};
use dcos_core::tls::{Identity, TlsFiles};
use dcos_localfleet::{
    busybox_rootfs, make_certs, sibling_binary, start_k2i, start_middlecon, LocalMiddlecon,
};
use std::path::Path;
use std::time::Duration;

/// A busybox root filesystem in `dir` for the container part of the demo, with a page
/// for `httpd` in `/www`; `None` (said why) where containers cannot run here.
fn demo_rootfs(dir: &Path) -> Option<std::path::PathBuf> {
    let missing = if !nix::unistd::geteuid().is_root() {
        Some("root")
    } else if dcos_localfleet::oci_runtime("runc").is_none() {
        Some("runc")
    } else {
        None
    };
    let rootfs = match missing {
        Some(what) => Err(anyhow::anyhow!("needs {what}")),
        None => busybox_rootfs(dir).map_err(anyhow::Error::from).and_then(|r| {
            std::fs::create_dir_all(r.join("www"))?;
            std::fs::write(r.join("www/index.html"), "hello from a dcos service\n")?;
            Ok(r)
        }),
    };
    match rootfs {
        Ok(r) => Some(r),
        Err(e) => {
            println!("\n(no container part: {e:#}; scripts/setup.sh installs runc and busybox, run as root)");
            None
        }
    }
}

/// A failed command's message, and its exit status.
fn shown(e: crate::workload::WorkloadError) -> u8 {
    eprintln!("dcos: {e}");
    e.exit_status()
}

/// Runs a busybox container on `from`, migrates it to `to` and stops it, through the same
/// commands an operator types. Returns the worst exit status.
async fn show_workloads(tls: &TlsArgs, fleet: &FleetArgs, rootfs: &Path, from: &str, to: &str) -> u8 {
    let rootfs = rootfs.to_path_buf();
    let api = ApiArgs { api: None, socket: None };
    let script = "trap \"exit 0\" TERM; date > /started; while :; do date > /now; sleep 1; done";
    println!(
        "
$ dcos run --host {from} --name hello --rootfs {} --memory 64M -- sh -c '{script}'",
        rootfs.display()
    );
    let run = RunArgs {
        host: Some(from.to_string()),
        name: "hello".into(),
        rootfs,
        container: ContainerArgs { runtime: None, memory: Some(64 << 20), cpus: None, env: Vec::new() },
        api: api.clone(),
        command: vec!["sh".into(), "-c".into(), script.into()],
    };
    let mut worst = commands::run::run(tls, fleet, &run).await.unwrap_or_else(shown);
    if worst != crate::exit::OK {
        return worst;
    }
    let list = WorkloadsArgs { api: api.clone() };
    println!(
        "
$ dcos workloads"
    );
    worst = worst.max(commands::workloads::run(tls, fleet, &list).await.unwrap_or_else(shown));
    println!(
        "
$ dcos migrate hello --to {to}      # {from} and {to} negotiate it between them"
    );
    let moving = MoveArgs { mode: Mode::Cold, bwlimit: None, api: api.clone() };
    let migrate = MigrateArgs { name: "hello".into(), to: to.to_string(), from: None, runtime: None, moving };
    worst = worst.max(commands::migrate::run(tls, fleet, &migrate).await.unwrap_or_else(shown));
    println!(
        "
$ dcos workloads                  # now on {to}, with its files"
    );
    worst = worst.max(commands::workloads::run(tls, fleet, &list).await.unwrap_or_else(shown));
    println!(
        "
$ dcos stop hello"
    );
    let stop = StopArgs { name: "hello".into(), host: None, api };
    worst.max(commands::stop::run(tls, fleet, &stop).await.unwrap_or_else(shown))
}

/// A busybox `httpd` service on `host`: created stopped, woken by a request (its first
/// byte timed), shown, removed. Returns the worst exit status.
async fn show_services(tls: &TlsArgs, fleet: &FleetArgs, rootfs: &Path, host: &str) -> u8 {
    let port = match std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()) {
        Ok(a) => a.port(),
        Err(e) => {
            eprintln!("dcos demo: no free port for the service: {e}");
            return crate::exit::FAILED;
        }
    };
    let api = ApiArgs { api: None, socket: None };
    let script = "exec busybox httpd -f -p 127.0.0.1:$PORT -h /www";
    println!(
        "\n$ dcos service create web --hosts {host} --port {port} --rootfs {} --idle-stop 30s -- sh -c '{script}'",
        rootfs.display()
    );
    let create = ServiceCreateArgs {
        name: "web".into(),
        rootfs: rootfs.to_path_buf(),
        port,
        hosts: Some(host.to_string()),
        container: ContainerArgs { runtime: None, memory: None, cpus: None, env: Vec::new() },
        min: 0,
        max: 4,
        idle_stop: Duration::from_secs(30),
        target_inflight: 10,
        max_age: None,
        max_requests: 0,
        drain: Duration::from_secs(30),
        prestart: false,
        start_timeout: Duration::from_secs(10),
        api: api.clone(),
        command: vec!["sh".into(), "-c".into(), script.into()],
    };
    let mut worst = commands::service::create::run(tls, fleet, &create).await.unwrap_or_else(shown);
    if worst != crate::exit::OK {
        return worst;
    }
    println!("\n$ dcos service ls                 # defined, and nothing runs until a request comes");
    let ls = ServiceLsArgs { api: api.clone() };
    worst = worst.max(commands::service::ls::run(tls, fleet, &ls).await.unwrap_or_else(shown));
    println!("\n$ curl http://127.0.0.1:{port}/     # the request starts an instance and waits for it");
    match wake(port).await {
        Ok((body, first_byte)) => {
            println!("{body}(first byte after {:.1} ms)", first_byte.as_secs_f64() * 1e3)
        }
        Err(e) => {
            eprintln!("dcos demo: the request to the service failed: {e}");
            worst = worst.max(crate::exit::FAILED);
        }
    }
    println!("\n$ dcos service show web");
    let show = ServiceShowArgs { name: "web".into(), api: api.clone() };
    worst = worst.max(commands::service::show::run(tls, fleet, &show).await.unwrap_or_else(shown));
    println!("\n$ dcos service rm web");
    let rm = ServiceRmArgs { name: "web".into(), drain: None, api };
    worst.max(commands::service::rm::run(tls, fleet, &rm).await.unwrap_or_else(shown))
}

/// `GET /` on the service's port: the body, and how long the first byte of the answer took.
async fn wake(port: u16) -> std::io::Result<(String, Duration)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let asked = std::time::Instant::now();
    let mut conn = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    conn.write_all(b"GET / HTTP/1.0\r\n\r\n").await?;
    let mut answer = vec![0u8; 1];
    conn.read_exact(&mut answer).await?;
    let first_byte = asked.elapsed();
    tokio::time::timeout(Duration::from_secs(10), conn.read_to_end(&mut answer)).await??;
    let text = String::from_utf8_lossy(&answer).into_owned();
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or(text);
    Ok((body, first_byte))
}

/// Has `middlecon purge` remove what each demo middlecon left (the containers of a demo
/// interrupted before its `stop`, their cgroups and root filesystem overlays): containers
/// outlive their daemon by design, but not the demo's temporary directory. What stays is
/// named by `middlecon purge` itself.
async fn remove_leftovers(middlecon: &Path, dir: &Path, names: &[String]) {
    for name in names {
        let purged = tokio::process::Command::new(middlecon)
            .arg("purge")
            .arg("--state-dir")
            .arg(dir.join(format!("{name}-state")))
            .args(["--name", name])
            .stdin(std::process::Stdio::null())
            .status()
            .await;
        if let Err(e) = purged {
            eprintln!("dcos demo: running {} purge for {name}: {e}", middlecon.display());
        }
    }
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
    let middlecon = sibling_binary("middlecon")?;
    let mut hosts = Vec::new();
    let mut meshes: Vec<LocalMiddlecon> = Vec::new();
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
        // Beside each k2i a middlecon, every one seeded with the first host's.
        let seed = meshes.first().map(|m| m.peer.clone());
        let m = start_middlecon(&middlecon, &dir, name, dc, seed.as_deref(), &h.url).await?;
        println!("   {} ({dc}) k2i at {}, middlecon API at {}", h.name, h.url, m.api);
        hosts.push(h);
        meshes.push(m);
    }
    let admin_files =
        TlsFiles { cert: dir.join("admin.crt"), key: dir.join("admin.key"), ca: dir.join("ca.crt") };
    let admin = Identity::load(&admin_files)?;
    let seed = meshes[0].api.clone();
    let started = tokio::time::Instant::now();
    wait_for_members(&seed, &admin, names.len()).await;
    // Two k2i samples, so cpu_percent has a value.
    tokio::time::sleep_until(started + Duration::from_millis(1200)).await;

    let tls = TlsArgs {
        cert: Some(admin_files.cert.clone()),
        key: Some(admin_files.key.clone()),
        ca: Some(admin_files.ca.clone()),
    };
    let fleet = FleetArgs {
        inventory: None,
        seed: Some(seed.clone()),
        hosts: None,
        dc: None,
        labels: Vec::new(),
        timeout: Duration::from_secs(3),
        output: Format::Table,
        relay: crate::relay::RelayMode::Auto,
    };
    let d = dir.display();
    println!(
        "\nEvery command below runs as the demo's admin and finds the fleet through {}'s middlecon:\n  \
         export DCOS_CERT={d}/admin.crt DCOS_KEY={d}/admin.key DCOS_CA={d}/ca.crt\n  \
         export DCOS_SEED={seed}",
        names[0]
    );
    println!("\n$ dcos hosts            # membership, as the seed's middlecon sees it");
    let expiry = crate::cli::HostsArgs { warn_expiry: 14 };
    let mut worst = commands::hosts::run_seed(&tls, &fleet, &seed, &expiry).await?;
    let ctx = Context::new(&tls, &fleet).await?;
    println!("\n$ dcos ps --sort=-cpu --limit 12      # every member's k2i");
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
    let top = TopArgs {
        once: true,
        interval: Duration::from_secs(2),
        limit: 5,
        sort: "-cpu".into(),
        iterations: None,
    };
    worst = worst.max(commands::top::run(&ctx, &top).await?);
    if let Some(last) = names.last().filter(|_| names.len() > 1) {
        println!(
            "\n$ dcos call {last} dcos.ping      # through {}'s middlecon, over QUIC to {last}",
            names[0]
        );
        let call = CallArgs {
            host: last.clone(),
            service: "dcos.ping".into(),
            data: None,
            api: ApiArgs { api: None, socket: None },
        };
        worst = worst.max(commands::call::run(&tls, &fleet, &call).await);
    }
    println!("\n$ dcos query dcos.ping      # every host answers, each reply as it comes");
    let query = QueryArgs {
        service: "dcos.ping".into(),
        data: None,
        api: ApiArgs { api: None, socket: None },
        max_replies: None,
        max_wait: None,
        stall: None,
    };
    worst = worst.max(commands::query::run(&tls, &fleet, &query).await);
    if let Some(rootfs) = demo_rootfs(&dir) {
        if names.len() > 1 {
            worst = worst.max(show_workloads(&tls, &fleet, &rootfs, &names[0], &names[1]).await);
        }
        worst = worst.max(show_services(&tls, &fleet, &rootfs, &names[0]).await);
    }

    if args.keep {
        println!(
            "\nfleet running; try, with the two exports above:\n  \
             dcos hosts -o wide\n  dcos query dcos.ping -o json\n  \
             curl --cacert {d}/ca.crt --cert {d}/admin.crt --key {d}/admin.key '{}/v1/proc?q=cpu>1&fields=pid,cmd,cpu'\n\
             Ctrl-C to stop.",
            hosts[0].url
        );
        let _ = tokio::signal::ctrl_c().await;
    }
    for m in meshes {
        m.host.stop().await;
    }
    remove_leftovers(&middlecon, &dir, &names).await;
    for h in hosts {
        h.stop().await;
    }
    if worst != crate::exit::OK {
        bail!("not every demo host answered");
    }
    println!("\ndemo fleet stopped");
    Ok(())
}

/// Waits (at most 5 s) until the middlecon API at `api` lists `n` members alive.
async fn wait_for_members(api: &str, admin: &Identity, n: usize) {
    let Ok(addr) = api.parse() else { return };
    let Ok(channel) = middlecon_client::connect(addr, admin).await else { return };
    let mut client = dcos_proto::v1::membership_client::MembershipClient::new(channel);
    let until = tokio::time::Instant::now() + Duration::from_secs(5);
    while tokio::time::Instant::now() < until {
        if let Ok(r) = client.members(dcos_proto::v1::MembersRequest {}).await {
            let alive = r
                .into_inner()
                .members
                .iter()
                .filter(|m| m.state() == dcos_proto::v1::MemberState::Alive)
                .count();
            if alive >= n {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
