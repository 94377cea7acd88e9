//! The workloads benchmark (issue 5): middlecon's cold migration and `Run`, side by side in
//! the same run with what a user would do without dcos.
//!
//! Modes of one binary:
//!
//! - `workload-bench run`: the driver (as root). It builds a two-host fleet of network
//!   namespaces on a bridge (`dcos_tests::netns::Fleet`, the harness of the end-to-end
//!   tests: `10.241.F.1` and `.2`, removed at the end and by the next fleet if this process
//!   is killed), boots each host (its own PID and mount namespaces, as in the workload
//!   tests), starts the release `middlecon` on each with a throwaway CA, and times,
//!   interleaved run by run:
//!   - a plain `runc run --detach` (and `crun run --detach`, where crun works here) of a
//!     bundle made with middlecon's own `config.json` writer: the time until the process runs
//!     (the runtime returns once the container's process has been started), once from this
//!     process and twice inside host 0 (`runtime-run`, in the host's PID, mount and network
//!     namespaces, where middlecon runs its runtime): of the reused bundle, and of a fresh
//!     one (a new overlay over the image, as every `Run` makes), which `dcos run` is held
//!     against;
//!   - `dcos run` (the real CLI) until the workload runs, if the given `dcos` has the `run`
//!     subcommand (otherwise `Workloads.Run` over a fresh mTLS gRPC connection, as the CLI
//!     would make it): from this process over host 0's mTLS API, as a remote operator runs
//!     it, and inside host 0 on the daemon's Unix socket (`timed-exec`), where runc is run,
//!     which is held against the fresh bundle's runc, timed beside it in an order swapped
//!     every round (each step waits until the one before is cleaned up, plus `--quiet-ms`);
//!   - for each state size, a plain copy of the same bytes from host 0 to host 1 over TCP and
//!     over QUIC (quinn with mTLS, default transport settings), then the cold migration of a
//!     workload carrying that state: the `Migrate` call's elapsed time and what the last
//!     progress message says (downtime, time per phase, bytes sent).
//! - `workload-bench copy-recv` / `copy-send`: the plain copy's two ends, started by the
//!   driver inside the hosts' namespaces; `runtime-run`: one timed runtime `run` there;
//!   `timed-exec`: one timed command there.
//!
//! Run it through `scripts/bench-workloads.sh`, which builds everything in release mode.
//! The method and the results are in `docs/benchmarks.md`.

#![forbid(unsafe_code)]

use anyhow::{bail, ensure, Context, Result};
use clap::{Args, Parser, Subcommand, ValueEnum};
use dcos_bench::probe;
use dcos_bench::stats::{ms, summarize, Summary};
use dcos_core::tls::{Identity, TlsFiles};
use dcos_proto::v1 as pb;
use dcos_proto::v1::workloads_client::WorkloadsClient;
use dcos_tests::netns::{Fleet, HostProcess, MIDDLECON_PORT};
use dcos_tests::Pki;
use middlecon::workloads::{bundle, cgroup, rootfs, runtime, Phase, Record};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tonic::transport::Channel;

/// Ports of the plain copy's receivers on host 1.
const TCP_COPY_PORT: u16 = 7450;
const QUIC_COPY_PORT: u16 = 7451;
const COPY_ALPN: &[u8] = b"workload-bench-copy";
/// What every workload runs: a shell that exits at once on SIGTERM (a pid 1 without a
/// handler would ignore it, and `Stop` would wait its 5 s grace period).
const SCRIPT: &str = "trap 'exit 0' TERM; sleep 3600 & wait";
/// Bytes per write of the plain QUIC copy (middlecon's transfer chunk is 256 KiB too).
const COPY_CHUNK: usize = 256 * 1024;

#[derive(Debug, Parser)]
#[command(
    name = "workload-bench",
    about = "middlecon's workloads and cold migration, side by side with runc and plain copies."
)]
struct Cli {
    #[command(subcommand)]
    mode: Mode,
}

#[derive(Debug, Subcommand)]
enum Mode {
    /// Run the benchmark and print the report (as root).
    Run(RunArgs),
    /// Time every runtime class (runc, crun, runsc) side by side, raw and through
    /// `dcos run`, and a migration from runc into runsc, and print the report (as root).
    Classes(ClassesArgs),
    /// Receive plain copies (the driver starts it on host 1).
    CopyRecv(RecvArgs),
    /// Send one plain copy and print `{"bytes": N, "ms": T}` (the driver runs it on host 0).
    CopySend(SendArgs),
    /// Time one `RUNTIME run --detach` of a bundle and print `{"ms": T}` (the driver runs it
    /// on host 0, in the namespaces middlecon starts its runtime in).
    RuntimeRun(RuntimeRunArgs),
    /// Time one command to its exit (stdout dropped) and print `{"ms": T}`; a failure is an
    /// error with its stderr (the driver runs `dcos run --socket` this way on host 0).
    TimedExec {
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
}

#[derive(Debug, Clone, Args)]
struct RuntimeRunArgs {
    #[arg(long)]
    runtime: PathBuf,
    #[arg(long)]
    bundle: PathBuf,
    /// The runtime's `--root`.
    #[arg(long)]
    root: PathBuf,
    #[arg(long)]
    id: String,
    /// Run a fresh bundle instead, next to `--bundle`: its `config.json` with a new overlay
    /// over this image as the root filesystem (made before the clock starts, removed after),
    /// as middlecon makes one for every `Run`.
    #[arg(long)]
    fresh_from: Option<PathBuf>,
}

#[derive(Debug, Clone, Args)]
struct RunArgs {
    /// Repetitions of every measurement, interleaved (after one untimed warm-up round).
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// Sizes of the workload's writable state, in MiB (a file of random bytes in its rootfs).
    #[arg(long, value_delimiter = ',', default_values_t = [1, 10, 100])]
    sizes: Vec<u64>,
    /// The state size (MiB) whose downtime is held against `runc run` + 100 ms.
    #[arg(long, default_value_t = 10)]
    downtime_size: u64,
    /// The pause after each timed step and its cleanup, before the next (ms). 0 runs them
    /// back to back: then a runtime started right after another container's teardown is
    /// slower. A pause lets that teardown end, but an idle virtual CPU is slower to wake,
    /// and that costs a lone `runc run` more than `dcos run`, whose CLI wakes it first
    /// (docs/benchmarks.md).
    #[arg(long, default_value_t = 0)]
    quiet_ms: u64,
    #[command(flatten)]
    common: Common,
}

/// What `run` and `classes` share: the binaries the hosts run, and the report's options.
#[derive(Debug, Clone, Args)]
struct Common {
    /// The middlecon binary [default: `middlecon` next to this executable].
    #[arg(long)]
    middlecon: Option<PathBuf>,
    /// The dcos binary [default: `dcos` next to this executable]; used for `dcos run` if it
    /// has that subcommand, else `Workloads.Run` is called over gRPC.
    #[arg(long)]
    dcos: Option<PathBuf>,
    #[command(flatten)]
    report: dcos_bench::report::ReportArgs,
}

#[derive(Debug, Clone, Args)]
struct ClassesArgs {
    /// Repetitions of every measurement, interleaved (after one untimed warm-up round).
    #[arg(long, default_value_t = 7)]
    runs: usize,
    /// The runtime classes to time; one that cannot run the bundle here is reported so.
    #[arg(long, value_delimiter = ',', default_values_t = ["runc".to_string(), "crun".into(), "runsc".into()])]
    classes: Vec<String>,
    /// The state (MiB of random bytes in its root filesystem) of the workload migrated
    /// from runc into runsc.
    #[arg(long, default_value_t = 10)]
    state_mib: u64,
    #[command(flatten)]
    common: Common,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Proto {
    Tcp,
    Quic,
}

/// A certificate, its key and the fleet CA, for the QUIC copy.
#[derive(Debug, Clone, Args)]
struct TlsFlags {
    #[arg(long)]
    cert: Option<PathBuf>,
    #[arg(long)]
    key: Option<PathBuf>,
    #[arg(long)]
    ca: Option<PathBuf>,
}

impl TlsFlags {
    fn identity(&self) -> Result<Identity> {
        let (Some(cert), Some(key), Some(ca)) = (&self.cert, &self.key, &self.ca) else {
            bail!("--proto quic needs --cert, --key and --ca");
        };
        let files = TlsFiles { cert: cert.clone(), key: key.clone(), ca: ca.clone() };
        Identity::load(&files).with_context(|| format!("loading {}", cert.display()))
    }
}

#[derive(Debug, Clone, Args)]
struct RecvArgs {
    #[arg(long, value_enum)]
    proto: Proto,
    #[arg(long)]
    listen: SocketAddr,
    /// Where each received copy is written (and removed once acknowledged).
    #[arg(long)]
    dir: PathBuf,
    #[command(flatten)]
    tls: TlsFlags,
}

#[derive(Debug, Clone, Args)]
struct SendArgs {
    #[arg(long, value_enum)]
    proto: Proto,
    #[arg(long)]
    to: SocketAddr,
    #[arg(long)]
    file: PathBuf,
    #[command(flatten)]
    tls: TlsFlags,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let (what, result) = match cli.mode {
        Mode::Run(args) => ("workload-bench", run_and_report(&args)),
        Mode::Classes(args) => ("workload-bench classes", classes_and_report(&args)),
        Mode::CopyRecv(args) => ("workload-bench copy-recv", copy_recv(&args)),
        Mode::CopySend(args) => ("workload-bench copy-send", copy_send(&args)),
        Mode::RuntimeRun(args) => ("workload-bench runtime-run", runtime_run(&args)),
        Mode::TimedExec { command } => ("workload-bench timed-exec", timed_exec(&command)),
    };
    dcos_bench::report::exit_code(what, result)
}

fn progress(msg: impl AsRef<str>) {
    dcos_bench::report::progress("workload-bench", msg.as_ref());
}

fn tokio_runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("tokio runtime")
}

// ---------------------------------------------------------------------------------------
// The plain copy: `[u64 BE length][bytes]`, answered with the u64 count received, once the
// bytes are in a file on the receiver (written, not fsynced: middlecon's unpacker does not
// fsync the files it writes either).

fn copy_recv(args: &RecvArgs) -> Result<()> {
    std::fs::create_dir_all(&args.dir).with_context(|| format!("creating {}", args.dir.display()))?;
    let dest = args.dir.join("copy.bin");
    match args.proto {
        Proto::Tcp => {
            let listener = std::net::TcpListener::bind(args.listen)
                .with_context(|| format!("binding {}", args.listen))?;
            println!("ready");
            loop {
                let (mut stream, _) = listener.accept().context("accepting")?;
                let mut len = [0u8; 8];
                stream.read_exact(&mut len).context("reading the length")?;
                let len = u64::from_be_bytes(len);
                let mut file = std::fs::File::create(&dest)?;
                let got = std::io::copy(&mut (&mut stream).take(len), &mut file)?;
                drop(file);
                stream.write_all(&got.to_be_bytes())?;
                std::fs::remove_file(&dest)?;
            }
        }
        Proto::Quic => {
            let identity = args.tls.identity()?;
            tokio_runtime()?.block_on(async move {
                let tls = identity.server_config_require_client_auth(&[COPY_ALPN])?;
                let quic = quinn::crypto::rustls::QuicServerConfig::try_from(tls)?;
                let endpoint =
                    quinn::Endpoint::server(quinn::ServerConfig::with_crypto(Arc::new(quic)), args.listen)
                        .with_context(|| format!("binding {}", args.listen))?;
                println!("ready");
                while let Some(incoming) = endpoint.accept().await {
                    let conn = incoming.await.context("QUIC handshake")?;
                    let (mut send, mut recv) = conn.accept_bi().await?;
                    let mut len = [0u8; 8];
                    recv.read_exact(&mut len).await?;
                    let len = u64::from_be_bytes(len);
                    let mut file = std::fs::File::create(&dest)?;
                    let mut got = 0u64;
                    while got < len {
                        let Some(chunk) = recv.read_chunk(usize::MAX, true).await? else { break };
                        file.write_all(&chunk.bytes)?;
                        got += chunk.bytes.len() as u64;
                    }
                    drop(file);
                    send.write_all(&got.to_be_bytes()).await?;
                    send.finish()?;
                    conn.closed().await;
                    std::fs::remove_file(&dest)?;
                }
                Ok(())
            })
        }
    }
}

fn copy_send(args: &SendArgs) -> Result<()> {
    let len = std::fs::metadata(&args.file).with_context(|| format!("{}", args.file.display()))?.len();
    let mut file = std::fs::File::open(&args.file)?;
    let (got, elapsed) = match args.proto {
        Proto::Tcp => {
            let start = Instant::now();
            let mut stream = std::net::TcpStream::connect(args.to)
                .with_context(|| format!("connecting to {}", args.to))?;
            stream.set_nodelay(true)?;
            stream.write_all(&len.to_be_bytes())?;
            std::io::copy(&mut file, &mut stream)?;
            let mut ack = [0u8; 8];
            stream.read_exact(&mut ack).context("reading the acknowledgement")?;
            (u64::from_be_bytes(ack), start.elapsed())
        }
        Proto::Quic => {
            let identity = args.tls.identity()?;
            tokio_runtime()?.block_on(async move {
                let tls = identity.client_config(&[COPY_ALPN])?;
                let quic = quinn::crypto::rustls::QuicClientConfig::try_from(tls)?;
                let mut endpoint = quinn::Endpoint::client("0.0.0.0:0".parse()?)?;
                endpoint.set_default_client_config(quinn::ClientConfig::new(Arc::new(quic)));
                let start = Instant::now();
                let conn =
                    endpoint.connect(args.to, &args.to.ip().to_string())?.await.context("QUIC handshake")?;
                let (mut send, mut recv) = conn.open_bi().await?;
                send.write_all(&len.to_be_bytes()).await?;
                let mut buf = vec![0u8; COPY_CHUNK];
                loop {
                    let n = file.read(&mut buf)?;
                    if n == 0 {
                        break;
                    }
                    send.write_all(&buf[..n]).await?;
                }
                send.finish()?;
                let mut ack = [0u8; 8];
                recv.read_exact(&mut ack).await.context("reading the acknowledgement")?;
                let elapsed = start.elapsed();
                conn.close(0u32.into(), b"done");
                endpoint.wait_idle().await;
                anyhow::Ok((u64::from_be_bytes(ack), elapsed))
            })?
        }
    };
    ensure!(got == len, "the receiver got {got} of {len} bytes");
    println!("{}", serde_json::json!({ "bytes": got, "ms": ms(elapsed) }));
    Ok(())
}

// ---------------------------------------------------------------------------------------
// The driver.

fn run_and_report(args: &RunArgs) -> Result<()> {
    ensure!(
        nix::unistd::Uid::effective().is_root(),
        "run as root: it builds network namespaces and runs containers"
    );
    ensure!(!args.sizes.is_empty() && args.runs > 0, "--sizes and --runs must not be empty");
    ensure!(
        args.sizes.contains(&args.downtime_size),
        "--downtime-size {} is not one of --sizes",
        args.downtime_size
    );
    let report = tokio_runtime()?.block_on(run(args))?;
    args.common.report.emit(&report)
}

fn sibling(name: &str) -> Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let path = exe.parent().context("the executable's directory")?.join(name);
    ensure!(path.is_file(), "{} is not built (scripts/bench-workloads.sh builds it)", path.display());
    Ok(path)
}

/// Everything one run measures; each vector has one entry per timed run.
#[derive(Debug, Default)]
struct Samples {
    runc: Vec<f64>,
    /// The same bundle's `runc run`, timed inside host-0 (where middlecon runs its runtime).
    runc_host: Vec<f64>,
    /// ... and of a fresh bundle each time (new overlay over the image), as middlecon's `Run`.
    runc_fresh: Vec<f64>,
    runc_state: Vec<f64>,
    crun: Vec<f64>,
    run: Vec<f64>,
    /// `dcos run --socket`, timed inside host-0.
    run_local: Vec<f64>,
    /// The local runs (else the remote ones) as middlecon's own log times them (`total_ms`
    /// of `workload running`).
    run_daemon: Vec<f64>,
    /// ... and the runtime's `run` within it (spawned by middlecon on host-0).
    run_runtime: Vec<f64>,
    per_size: BTreeMap<u64, SizeSamples>,
}

#[derive(Debug, Default)]
struct SizeSamples {
    tcp_ms: Vec<f64>,
    quic_ms: Vec<f64>,
    copied_bytes: u64,
    total_ms: Vec<f64>,
    downtime_ms: Vec<f64>,
    bytes_sent: Vec<f64>,
    phases: BTreeMap<String, Vec<f64>>,
}

/// The fleet, its daemons and what they run from.
struct Bench {
    fleet: Fleet,
    pki: Pki,
    work: tempfile::TempDir,
    exe: PathBuf,
    runc: PathBuf,
    /// The busybox root filesystem, and one per state size with its state file.
    base_rootfs: PathBuf,
    rootfs: BTreeMap<u64, PathBuf>,
    daemons: Vec<HostProcess>,
    receivers: Vec<HostProcess>,
    admin: Identity,
    clients: Vec<WorkloadsClient<Channel>>,
    /// `Some(path)` when that dcos has `run`.
    dcos_run: Option<PathBuf>,
}

impl Bench {
    fn host_tls(&self, i: usize) -> TlsFiles {
        self.fleet.host(i).issue(&self.pki)
    }

    fn start_middlecon(&self, i: usize, middlecon: &Path) -> Result<HostProcess> {
        let other = self.fleet.host(1 - i);
        let peer = format!("{}={}:{MIDDLECON_PORT}", other.name, other.addr);
        let seed = format!("{}:{MIDDLECON_PORT}", self.fleet.host(0).addr);
        self.fleet
            .middlecon_binary_on(i, middlecon, &self.host_tls(i), &["--peer", &peer, "--seed", &seed])
            .with_context(|| format!("starting middlecon on {}", self.fleet.host(i).name))
    }

    fn start_receiver(&self, proto: Proto, port: u16) -> Result<HostProcess> {
        let tls = self.host_tls(1);
        let listen = format!("{}:{port}", self.fleet.host(1).addr);
        let dir = self.work.path().join(format!("copy-{port}"));
        let proto = if proto == Proto::Tcp { "tcp" } else { "quic" };
        let args = [
            "copy-recv",
            "--proto",
            proto,
            "--listen",
            &listen,
            "--dir",
            path_str(&dir)?,
            "--cert",
            path_str(&tls.cert)?,
            "--key",
            path_str(&tls.key)?,
            "--ca",
            path_str(&tls.ca)?,
        ];
        let mut p = self.fleet.spawn(1, &self.exe, &args)?;
        if p.line(Duration::from_secs(10)).as_deref() != Some("ready") {
            bail!("the {proto} copy receiver did not start: {}", p.stderr());
        }
        Ok(p)
    }

    /// One plain copy of `file` from host 0 to host 1; its elapsed milliseconds.
    fn plain_copy(&self, proto: Proto, file: &Path) -> Result<(u64, f64)> {
        let tls = self.host_tls(0);
        let (name, port) =
            if proto == Proto::Tcp { ("tcp", TCP_COPY_PORT) } else { ("quic", QUIC_COPY_PORT) };
        let to = format!("{}:{port}", self.fleet.host(1).addr);
        let args = [
            "copy-send",
            "--proto",
            name,
            "--to",
            &to,
            "--file",
            path_str(file)?,
            "--cert",
            path_str(&tls.cert)?,
            "--key",
            path_str(&tls.key)?,
            "--ca",
            path_str(&tls.ca)?,
        ];
        let out = self.fleet.exec(0, path_str(&self.exe)?, &args)?;
        ensure!(out.status.success(), "{name} copy: {}", String::from_utf8_lossy(&out.stderr).trim());
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).context("the copy's report")?;
        let bytes = v["bytes"].as_u64().context("bytes")?;
        Ok((bytes, v["ms"].as_f64().context("ms")?))
    }

    fn run_request(&self, name: &str, rootfs: &Path) -> pb::RunRequest {
        pb::RunRequest {
            name: name.into(),
            rootfs: rootfs.display().to_string(),
            command: ["sh", "-c", SCRIPT].map(String::from).to_vec(),
            ..Default::default()
        }
    }

    async fn run_workload(&self, i: usize, name: &str, rootfs: &Path) -> Result<()> {
        let w = self.clients[i].clone().run(self.run_request(name, rootfs)).await.with_context(|| {
            format!("Run {name} on host-{i}; middlecon's log: {}", self.daemons[i].stderr())
        })?;
        let status = w.into_inner().workload.map(|w| w.status).unwrap_or_default();
        ensure!(status == "running", "{name} is {status:?} after Run");
        Ok(())
    }

    /// The timed `dcos run --socket` of `name` inside host 0 (`None` without the CLI's `run`),
    /// with `--runtime runtime` unless it is empty.
    fn timed_local_run(&self, name: &str, runtime: &str) -> Result<Option<f64>> {
        let Some(dcos) = &self.dcos_run else { return Ok(None) };
        let socket = self.fleet.api_socket(0);
        let mut args = vec!["timed-exec", "--", path_str(dcos)?, "run", "--socket", path_str(&socket)?];
        args.extend([
            "--host",
            &self.fleet.host(0).name,
            "--name",
            name,
            "--rootfs",
            path_str(&self.base_rootfs)?,
        ]);
        if !runtime.is_empty() {
            args.extend(["--runtime", runtime]);
        }
        args.extend(["--timeout", "30s", "--", "sh", "-c", SCRIPT]);
        let out = self.fleet.exec_on(0, path_str(&self.exe)?, &args)?;
        ensure!(
            out.status.success(),
            "dcos run --socket on host-0: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).context("timed-exec's answer")?;
        v["ms"].as_f64().context("timed-exec printed no ms").map(Some)
    }

    /// The timed `dcos run` (or `Workloads.Run` on a fresh connection) of `name` on host 0,
    /// from this process over its mTLS API.
    async fn timed_run(&self, name: &str) -> Result<f64> {
        let host = self.fleet.host(0);
        if let Some(dcos) = &self.dcos_run {
            let files = self.pki.files("admin");
            let api = host.api_addr().to_string();
            let mut cmd = Command::new(dcos);
            cmd.args(files.flags());
            cmd.args(["run", "--api", &api, "--host", &host.name, "--name", name, "--rootfs"]);
            cmd.arg(&self.base_rootfs).args(["--timeout", "30s", "--", "sh", "-c", SCRIPT]);
            let (out, elapsed) = timed(&mut cmd)?;
            ensure!(out.status.success(), "dcos run: {}", String::from_utf8_lossy(&out.stderr).trim());
            return Ok(elapsed);
        }
        let start = Instant::now();
        let channel = middlecon_client::connect(host.api_addr(), &self.admin).await?;
        let reply = WorkloadsClient::new(channel).run(self.run_request(name, &self.base_rootfs)).await;
        let elapsed = ms(start.elapsed());
        let status =
            reply.context("Workloads.Run")?.into_inner().workload.map(|w| w.status).unwrap_or_default();
        ensure!(status == "running", "{name} is {status:?} after Run");
        Ok(elapsed)
    }

    /// Stops `name` on host `i` and waits until both hosts have finished removing what
    /// stopped or moved away: middlecon unmounts and deletes a workload directory in the
    /// background, and that flush of the filesystem must not land in the next measurement.
    async fn stop(&self, i: usize, name: &str) -> Result<()> {
        self.clients[i]
            .clone()
            .stop(pb::StopRequest { name: name.into() })
            .await
            .with_context(|| format!("Stop {name} on host-{i}"))?;
        self.settle().await
    }

    /// Waits (up to 30 s) until no workload directory is being removed on either host.
    async fn settle(&self) -> Result<()> {
        let dirs: Vec<PathBuf> =
            (0..2).map(|i| self.fleet.middlecon_state_dir(i).join("workloads")).collect();
        let until = Instant::now() + Duration::from_secs(30);
        loop {
            let busy = dirs.iter().any(|d| {
                std::fs::read_dir(d).is_ok_and(|entries| {
                    entries
                        .flatten()
                        .any(|e| e.file_name().to_string_lossy().starts_with(middlecon::workloads::REMOVING))
                })
            });
            if !busy {
                return Ok(());
            }
            ensure!(Instant::now() < until, "workload directories still being removed after 30 s");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Migrates `name` from host 0 to host 1, run there by `runtime` (empty: the class it
    /// has): the call's elapsed ms and its last message.
    async fn migrate(&self, name: &str, runtime: &str) -> Result<(f64, pb::MigrateProgress)> {
        let req = pb::MigrateRequest {
            name: name.into(),
            to: self.fleet.host(1).name.clone(),
            mode: pb::MigrateMode::Cold as i32,
            runtime: runtime.into(),
            ..Default::default()
        };
        let start = Instant::now();
        let mut stream = self.clients[0].clone().migrate(req).await.context("Migrate")?.into_inner();
        loop {
            let m = tokio::time::timeout(Duration::from_secs(120), stream.message())
                .await
                .context("no progress for 120 s")?
                .context("the progress stream")?
                .context("the progress stream ended before the last message")?;
            if m.done {
                let elapsed = ms(start.elapsed());
                ensure!(
                    m.error.is_empty(),
                    "migrating {name}: {}: {}; source log: {}; target log: {}",
                    m.code().word(),
                    m.error,
                    self.daemons[0].stderr(),
                    self.daemons[1].stderr()
                );
                return Ok((elapsed, m));
            }
        }
    }

    /// Stops whatever is left on both hosts (after an error), so no cgroup is left behind.
    async fn stop_all(&self) {
        for i in 0..self.clients.len() {
            let Ok(list) = self.clients[i].clone().list(pb::ListRequest {}).await else { continue };
            for w in list.into_inner().workloads {
                let _ = self.stop(i, &w.name).await;
            }
        }
    }
}

fn path_str(p: &Path) -> Result<&str> {
    p.to_str().with_context(|| format!("{} is not UTF-8", p.display()))
}

/// Runs `cmd` to completion (stdin null, stdout dropped): its output and elapsed ms.
fn timed(cmd: &mut Command) -> Result<(std::process::Output, f64)> {
    let start = Instant::now();
    let out = cmd.stdin(Stdio::null()).output().context("spawning")?;
    Ok((out, ms(start.elapsed())))
}

/// A time middlecon logged for running workload `name` (its `workload running` line):
/// `key` is `total_ms` (the whole `Run`) or `runtime_ms` (the runtime's `run` in it).
fn logged_run_ms(log: &str, name: &str, key: &str) -> Option<f64> {
    let field = format!("workload={name} ");
    let key = format!("{key}=");
    log.lines()
        .map(dcos_bench::daemon_log::strip_ansi)
        .filter(|l| l.contains("workload running") && l.contains(&field))
        .find_map(|l| {
            let v = l.split(key.as_str()).nth(1)?;
            v.split_whitespace().next()?.parse().ok()
        })
}

/// Writes `mib` MiB from `/dev/urandom` to `path`.
fn random_file(path: &Path, mib: u64) -> Result<()> {
    let mut src = std::fs::File::open("/dev/urandom")?.take(mib << 20);
    let mut dst = std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    std::io::copy(&mut src, &mut dst)?;
    Ok(())
}

/// The daemon id in the reference bundles' cgroup paths.
const REF_DAEMON: &str = "workload-bench";

/// A bundle run by a runtime directly, with middlecon's `config.json` for the same command.
struct RefBundle {
    bundle: PathBuf,
    root: PathBuf,
}

impl RefBundle {
    fn new(dir: &Path, rootfs: &Path) -> Result<RefBundle> {
        let bundle = dir.join("bundle");
        std::fs::create_dir_all(&bundle)?;
        bundle::copy_tree(rootfs, &bundle.join("rootfs"))?;
        let record = Record {
            name: "ref".into(),
            runtime: "runc".into(),
            command: ["sh", "-c", SCRIPT].map(String::from).to_vec(),
            env: BTreeMap::new(),
            memory_bytes: 0,
            cpus: 0.0,
            epoch: 0,
            started_unix_ms: 0,
            phase: Phase::Owned,
            service: None,
        };
        bundle::write_config(&bundle, &record, REF_DAEMON)?;
        Ok(RefBundle { bundle, root: dir.join("runtime") })
    }

    /// The runtime's `--root` for this bundle.
    fn root_for(&self, runtime: &Path) -> PathBuf {
        self.root.join(runtime.file_name().unwrap_or_default())
    }

    /// `runtime run --detach` of the bundle as `id`, from this process (the root
    /// namespaces): the elapsed ms ([`time_runtime_run`]).
    fn run(&self, runtime: &Path, id: &str) -> Result<f64> {
        time_runtime_run(runtime, &self.root_for(runtime), &self.bundle, id)
    }

    /// The same, timed inside host `i` (`workload-bench runtime-run` entered into the
    /// host's PID, mount and network namespaces, as middlecon runs there); with `fresh`, of a
    /// new bundle with this config and a new overlay over that image, as middlecon's `Run`.
    fn run_on(&self, b: &Bench, i: usize, runtime: &Path, id: &str, fresh: Option<&Path>) -> Result<f64> {
        let root = self.root_for(runtime);
        let mut args =
            vec!["runtime-run", "--runtime", path_str(runtime)?, "--bundle", path_str(&self.bundle)?];
        args.extend(["--root", path_str(&root)?, "--id", id]);
        if let Some(image) = fresh {
            args.extend(["--fresh-from", path_str(image)?]);
        }
        let out = b.fleet.exec_on(i, path_str(&b.exe)?, &args)?;
        ensure!(
            out.status.success(),
            "runtime-run on host-{i}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).context("runtime-run's answer")?;
        v["ms"].as_f64().context("runtime-run printed no ms")
    }
}

/// `runtime --root root run --detach --bundle bundle id`: the elapsed ms, then the container
/// is deleted (untimed). The runtime's stdout and stderr go to a file, as middlecon does.
fn time_runtime_run(runtime: &Path, root: &Path, bundle: &Path, id: &str) -> Result<f64> {
    std::fs::create_dir_all(root)?;
    let log = bundle.join(format!("{id}.log"));
    let file = std::fs::File::create(&log)?;
    // The flags middlecon gives this runtime's class (runsc: its platform and network).
    let flags = middlecon::workloads::classes::of_binary(runtime).flags();
    let mut cmd = Command::new(runtime);
    cmd.args(flags).arg("--root").arg(root).args(["run", "--detach", "--bundle"]).arg(bundle).arg(id);
    cmd.stdout(file.try_clone()?).stderr(file);
    let start = Instant::now();
    let status = cmd.stdin(Stdio::null()).status()?;
    let elapsed = ms(start.elapsed());
    let deleted = Command::new(runtime)
        .args(flags)
        .arg("--root")
        .arg(root)
        .args(["delete", "--force", id])
        .stdin(Stdio::null())
        .output()?;
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    ensure!(status.success(), "{} run: {status}: {}", runtime.display(), text.trim());
    ensure!(
        deleted.status.success(),
        "{} delete: {}",
        runtime.display(),
        String::from_utf8_lossy(&deleted.stderr)
    );
    Ok(elapsed)
}

/// `workload-bench timed-exec -- CMD ARGS...`: `CMD ARGS...` run here to its exit, printed as
/// `{"ms": T}`.
fn timed_exec(command: &[String]) -> Result<()> {
    let (program, args) = command.split_first().context("no command to time")?;
    let (out, ms) = timed(Command::new(program).args(args))?;
    ensure!(
        out.status.success(),
        "{program}: {}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr).trim()
    );
    println!("{}", serde_json::json!({ "ms": ms }));
    Ok(())
}

/// `workload-bench runtime-run`: [`time_runtime_run`] here, of `--bundle` or of a fresh
/// bundle (`--fresh-from`), printed as `{"ms": T}`.
fn runtime_run(args: &RuntimeRunArgs) -> Result<()> {
    let ms = match &args.fresh_from {
        None => time_runtime_run(&args.runtime, &args.root, &args.bundle, &args.id)?,
        Some(image) => {
            let dir =
                args.bundle.parent().context("the bundle's directory")?.join(format!("fresh-{}", args.id));
            let bundle = dir.join("bundle");
            std::fs::create_dir_all(&bundle)?;
            std::fs::copy(args.bundle.join("config.json"), bundle.join("config.json"))?;
            rootfs::make(image, &dir).context("making the fresh root filesystem")?;
            let timed = time_runtime_run(&args.runtime, &args.root, &bundle, &args.id);
            rootfs::remove(&dir).with_context(|| format!("removing {}", dir.display()))?;
            timed?
        }
    };
    println!("{}", serde_json::json!({ "ms": ms }));
    Ok(())
}

/// The middlecon binary the hosts run: `given`, else the one next to this executable.
fn middlecon_binary(given: Option<&Path>) -> Result<PathBuf> {
    match given {
        // Absolute: the daemons are started from inside the hosts, in another directory.
        Some(p) => std::fs::canonicalize(p).with_context(|| format!("--middlecon {}", p.display())),
        None => sibling("middlecon"),
    }
}

/// The two-host fleet with `middlecon` running on each and a client of each API, the
/// busybox root filesystem, and one with a state file per size of `sizes` (MiB).
async fn build(middlecon: &Path, dcos: Option<&Path>, sizes: &[u64]) -> Result<Bench> {
    let dcos = match dcos {
        Some(p) => Some(p.to_path_buf()),
        None => sibling("dcos").ok(),
    };
    let dcos_run = dcos.filter(|d| {
        Command::new(d)
            .args(["run", "--help"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    });
    // The hosts' init (`Fleet::boot`), which `dcos_tests::bin` finds next to this executable.
    sibling(dcos_tests::netns::HOST_INIT)?;
    let runc = runtime::locate("runc").context("runc is needed (scripts/setup.sh installs it)")?;

    progress("building the fleet (2 network namespaces on a bridge) and the root filesystems");
    let fleet = Fleet::new(2)?;
    let pki = Pki::new();
    let work = tempfile::Builder::new().prefix("workload-bench-").tempdir_in("/var/tmp")?;
    let base_rootfs = dcos_tests::oci::busybox_rootfs(&work.path().join("base"))?;
    let mut rootfs = BTreeMap::new();
    for &mib in sizes {
        let dir = work.path().join(format!("state-{mib}"));
        std::fs::create_dir_all(&dir)?;
        let r = dir.join("rootfs");
        bundle::copy_tree(&base_rootfs, &r)?;
        random_file(&r.join("state.bin"), mib)?;
        rootfs.insert(mib, r);
    }
    let admin = Identity::load(&pki.files("admin"))?;
    let mut b = Bench {
        fleet,
        pki,
        work,
        exe: std::env::current_exe()?,
        runc,
        base_rootfs,
        rootfs,
        daemons: Vec::new(),
        receivers: Vec::new(),
        admin,
        clients: Vec::new(),
        dcos_run,
    };
    for i in 0..2 {
        let d = b.start_middlecon(i, middlecon)?;
        b.daemons.push(d);
    }
    for i in 0..2 {
        let ch = middlecon_client::connect(b.fleet.host(i).api_addr(), &b.admin).await?;
        b.clients.push(WorkloadsClient::new(ch));
    }
    Ok(b)
}

async fn run(args: &RunArgs) -> Result<String> {
    let started = Instant::now();
    let date = time::OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339)?;
    let load_start = probe::loadavg();
    let middlecon = middlecon_binary(args.common.middlecon.as_deref())?;
    let crun = runtime::locate("crun").ok();
    let mut b = build(&middlecon, args.common.dcos.as_deref(), &args.sizes).await?;
    b.receivers.push(b.start_receiver(Proto::Tcp, TCP_COPY_PORT)?);
    b.receivers.push(b.start_receiver(Proto::Quic, QUIC_COPY_PORT)?);
    let result = measure(&b, args, crun.as_deref()).await;
    b.stop_all().await;
    let (samples, crun_note) = result?;
    let header = Header {
        date,
        load_start,
        seconds: started.elapsed().as_secs_f64(),
        runc: probe::version(&b.runc),
        crun: crun_note,
        cli: b.dcos_run.as_ref().map(|p| p.display().to_string()),
        middlecon: middlecon.display().to_string(),
        gateway: b.fleet.gateway.to_string(),
        hosts: [b.fleet.host(0).addr.to_string(), b.fleet.host(1).addr.to_string()],
        base_bytes: bundle::tree_size(&b.base_rootfs).0,
    };
    Ok(render(&samples, args, &header))
}

/// The timed rounds (after an untimed warm-up); the crun note says what crun did.
async fn measure(b: &Bench, args: &RunArgs, crun: Option<&Path>) -> Result<(Samples, String)> {
    let refs = b.work.path().join("ref");
    let plain = RefBundle::new(&refs.join("busybox"), &b.base_rootfs)?;
    let stateful = RefBundle::new(&refs.join("state"), &b.rootfs[&args.downtime_size])?;
    let (crun, note) = match crun {
        None => (None, "crun is not installed".to_string()),
        Some(c) => match plain.run(c, "crun-probe") {
            Ok(_) => (Some(c), format!("{} runs the bundle", probe::version(c))),
            Err(e) => {
                progress(format!("crun refuses to run the bundle: {e:#}"));
                (None, crun_refusal(c, &e))
            }
        },
    };
    let measured = measure_with(b, args, &plain, &stateful, crun).await;
    // The reference bundles' cgroups (the runtime removed each container's own).
    let left = cgroup::Cgroups::new(REF_DAEMON).remove_all(Duration::from_secs(2));
    if !left.is_empty() {
        progress(format!("cgroups left behind: {left:?}"));
    }
    Ok((measured?, note))
}

fn crun_refusal(crun: &Path, e: &anyhow::Error) -> String {
    let msg = format!("{e:#}");
    let last = msg.lines().rfind(|l| !l.trim().is_empty()).unwrap_or("").trim().to_string();
    format!("{} refuses the bundle on this machine: `{last}`", probe::version(crun))
}

async fn measure_with(
    b: &Bench,
    args: &RunArgs,
    plain: &RefBundle,
    stateful: &RefBundle,
    crun: Option<&Path>,
) -> Result<Samples> {
    let mut s = Samples::default();
    for round in 0..=args.runs {
        let warm = round == 0;
        let label = if warm { "warm-up".to_string() } else { format!("run {round}/{}", args.runs) };
        progress(format!("{label}: runc, crun, run"));
        // Every timed step starts once the one before it has been cleaned up (its container
        // deleted, its directory removed) and `--quiet-ms` have passed.
        let quiet = || tokio::time::sleep(Duration::from_millis(args.quiet_ms));
        let runc = plain.run(&b.runc, &format!("runc-{round}"))?;
        quiet().await;
        let runc_host = plain.run_on(b, 0, &b.runc, &format!("runc-host-{round}"), None)?;
        quiet().await;
        let runc_state = stateful.run(&b.runc, &format!("runc-state-{round}"))?;
        quiet().await;
        let crun_ms = crun.map(|c| plain.run(c, &format!("crun-{round}"))).transpose()?;
        let name = format!("run-{round}");
        let run = b.timed_run(&name).await?;
        b.stop(0, &name).await?;
        quiet().await;
        // The local `dcos run` and its reference side by side, their order swapped every
        // round, so that neither always follows the same step.
        let local_name = format!("local-{round}");
        let fresh = || async {
            let ms = plain.run_on(b, 0, &b.runc, &format!("runc-fresh-{round}"), Some(&b.base_rootfs))?;
            quiet().await;
            anyhow::Ok(ms)
        };
        let local = || async {
            let ms = b.timed_local_run(&local_name, "")?;
            b.stop(0, &local_name).await?;
            quiet().await;
            anyhow::Ok(ms)
        };
        let (runc_fresh, run_local) = if round % 2 == 0 {
            let f = fresh().await?;
            (f, local().await?)
        } else {
            let l = local().await?;
            (fresh().await?, l)
        };
        if !warm {
            s.runc.push(runc);
            s.runc_host.push(runc_host);
            s.runc_fresh.push(runc_fresh);
            s.runc_state.push(runc_state);
            s.crun.extend(crun_ms);
            s.run.push(run);
            s.run_local.extend(run_local);
            // The parts of the run the target is held to: the local one, if there is one.
            let log = b.daemons[0].stderr();
            let parted = if run_local.is_some() { &local_name } else { &name };
            s.run_daemon.extend(logged_run_ms(&log, parted, "total_ms"));
            s.run_runtime.extend(logged_run_ms(&log, parted, "runtime_ms"));
        }
        for &mib in &args.sizes {
            progress(format!("{label}: {mib} MiB: plain copies and migration"));
            let file = b.rootfs[&mib].join("state.bin");
            let (copied, tcp) = b.plain_copy(Proto::Tcp, &file)?;
            let (_, quic) = b.plain_copy(Proto::Quic, &file)?;
            let name = format!("m{mib}-{round}");
            b.run_workload(0, &name, &b.rootfs[&mib]).await?;
            let (total, last) = b.migrate(&name, "").await?;
            b.stop(1, &name).await?;
            if warm {
                continue;
            }
            let e = s.per_size.entry(mib).or_default();
            e.copied_bytes = copied;
            e.tcp_ms.push(tcp);
            e.quic_ms.push(quic);
            e.total_ms.push(total);
            e.downtime_ms.push(last.downtime_ms as f64);
            e.bytes_sent.push(last.bytes_sent as f64);
            for (phase, v) in &last.phase_ms {
                e.phases.entry(phase.clone()).or_default().push(*v as f64);
            }
        }
    }
    Ok(s)
}

// ---------------------------------------------------------------------------------------
// The report.

struct Header {
    date: String,
    load_start: String,
    seconds: f64,
    runc: String,
    crun: String,
    cli: Option<String>,
    middlecon: String,
    gateway: String,
    hosts: [String; 2],
    base_bytes: u64,
}

fn f_ms(v: f64) -> String {
    if v.is_nan() {
        "—".into()
    } else if v < 10.0 {
        format!("{v:.1} ms")
    } else {
        format!("{v:.0} ms")
    }
}

fn pass(ok: bool) -> &'static str {
    if ok {
        "PASS"
    } else {
        "FAIL"
    }
}

/// `| measure | median | min | max | target | ratio | result |`
/// A row whose median is held against `allowed` ms, the value of `rule`.
fn held(out: &mut String, what: &str, s: &Summary, rule: &str, allowed: f64) {
    let target = format!("≤ {rule} = {}", f_ms(allowed));
    row(out, what, s, &target, &format!("{:.2} × target", s.median / allowed), pass(s.median <= allowed));
}

fn row(out: &mut String, what: &str, s: &Summary, target: &str, ratio: &str, result: &str) {
    let _ = writeln!(
        out,
        "| {what} | {} | {} | {} | {target} | {ratio} | {result} |",
        f_ms(s.median),
        f_ms(s.min),
        f_ms(s.max)
    );
}

/// MB/s (10^6 bytes per second) of `bytes` in `ms`.
fn mbps(bytes: f64, ms: f64) -> f64 {
    bytes / 1e3 / ms
}

const PHASES: [&str; 5] = ["reserve", "freeze", "copy", "start", "delete"];

fn render(s: &Samples, args: &RunArgs, h: &Header) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "### Results: one run, {}\n", h.date);
    let _ = writeln!(out, "- machine: {}", probe::machine());
    if let Some(note) = &args.common.report.note {
        let _ = writeln!(out, "- {note}");
    }
    let _ = writeln!(
        out,
        "- two hosts: network namespaces `{}` and `{}` on a bridge (`{}`, veth pairs, MTU 1500), each running the release middlecon ({}) in a PID namespace of its own; the benchmark runs in the root namespace and reaches their APIs over the bridge",
        h.hosts[0], h.hosts[1], h.gateway, h.middlecon
    );
    let _ = writeln!(out, "- {}; {}", h.runc, h.crun);
    let _ = writeln!(
        out,
        "- `run` measured with {}",
        match &h.cli {
            Some(p) => format!("the real CLI from spawn to exit: `{p} run --socket ...` inside host-0, and `{p} run --api ... --host host-0 ...` from the root namespace"),
            None => "`Workloads.Run` over gRPC from the benchmark (this `dcos` has no `run` subcommand yet): a fresh mTLS connection to host-0's API plus the call, as the CLI would make them".into(),
        }
    );
    let _ = writeln!(
        out,
        "- busybox root filesystem {:.1} MB; state: a file of random bytes in it; medians, minimums and maximums of {} run(s) after one warm-up, interleaved",
        h.base_bytes as f64 / 1e6,
        args.runs
    );
    let _ = writeln!(
        out,
        "- load average at the start: {}; at the end: {}; {:.0} s in all",
        h.load_start,
        probe::loadavg(),
        h.seconds
    );
    let _ = writeln!(out, "- command: `{}`\n", std::env::args().collect::<Vec<_>>().join(" "));

    let _ = writeln!(out, "| measure | median | min | max | target | ratio | result |");
    let _ = writeln!(out, "| --- | ---: | ---: | ---: | --- | ---: | --- |");
    let runc = summarize(&s.runc);
    let runc_state = summarize(&s.runc_state);
    let runc_host = summarize(&s.runc_host);
    let runc_fresh = summarize(&s.runc_fresh);
    row(
        &mut out,
        "`runc run --detach`, busybox bundle (until runc returns: the process runs)",
        &runc,
        "reference",
        "1.00 × runc",
        "",
    );
    row(
        &mut out,
        "the same `runc run`, inside host-0 (its PID, mount and network namespaces, where middlecon runs it)",
        &runc_host,
        "reference",
        &format!("{:.2} × runc", runc_host.median / runc.median),
        "",
    );
    row(
        &mut out,
        "the same inside host-0, each run a fresh bundle: a new overlay over the image, as every `Run` makes (made and removed outside the clock)",
        &runc_fresh,
        "reference for `run`",
        &format!("{:.2} × runc", runc_fresh.median / runc.median),
        "",
    );
    row(
        &mut out,
        &format!("`runc run --detach`, busybox + {} MiB state bundle", args.downtime_size),
        &runc_state,
        "reference",
        &format!("{:.2} × runc", runc_state.median / runc.median),
        "",
    );
    if !s.crun.is_empty() {
        let c = summarize(&s.crun);
        row(
            &mut out,
            "`crun run --detach`, busybox bundle",
            &c,
            "reference",
            &format!("{:.2} × runc", c.median / runc.median),
            "",
        );
    }
    // Held against runc run where middlecon runs it, of a bundle as new as the one each
    // `Run` makes: a reused bundle already holds the mount points runc created in it before.
    // The target is the local `dcos run`, run where runc is run (on host-0, through the
    // daemon's socket); the remote one adds a TLS handshake across the bridge and is shown.
    // Beside the ratio of the medians: the median of each round's own ratio, whose two
    // runs are seconds apart (the machine's slow swings cancel out of it).
    let per_round = |runs: &[f64]| {
        let ratios: Vec<f64> = runs.iter().zip(&s.runc_fresh).map(|(r, f)| r / f).collect();
        summarize(&ratios).median
    };
    let vs_fresh = |run: &Summary, runs: &[f64]| {
        format!(
            "{:.2} × fresh runc on host-0 (per round: median {:.2}; {:.2} × reused on host-0, {:.2} × runc)",
            run.median / runc_fresh.median,
            per_round(runs),
            run.median / runc_host.median,
            run.median / runc.median
        )
    };
    if !s.run_local.is_empty() {
        let local = summarize(&s.run_local);
        row(
            &mut out,
            "`dcos run --socket` on host-0 until running (the daemon's local socket, as runc is run on the host)",
            &local,
            "≤ 1.20 × fresh runc on host-0",
            &vs_fresh(&local, &s.run_local),
            pass(local.median <= 1.2 * runc_fresh.median),
        );
    }
    let run = summarize(&s.run);
    let (what, target, result) = match (h.cli.is_some(), s.run_local.is_empty()) {
        (true, false) => (
            "`dcos run` from the root namespace, over host-0's mTLS API across the bridge",
            "shown",
            String::new(),
        ),
        (true, true) => (
            "`dcos run` until running (overlay over the image)",
            "≤ 1.20 × fresh runc on host-0",
            pass(run.median <= 1.2 * runc_fresh.median).to_string(),
        ),
        (false, _) => (
            "`Workloads.Run` over gRPC until running (fresh connection; overlay over the image)",
            "≤ 1.20 × fresh runc on host-0",
            pass(run.median <= 1.2 * runc_fresh.median).to_string(),
        ),
    };
    row(&mut out, what, &run, target, &vs_fresh(&run, &s.run), &result);
    let parts = [
        ("… of which middlecon's own `Run` (its log: overlay, runtime, record)", &s.run_daemon),
        ("… of which the runtime's `run` that middlecon started on host-0", &s.run_runtime),
    ];
    for (what, values) in parts.into_iter().filter(|(_, v)| !v.is_empty()) {
        let part = summarize(values);
        let ratio = format!("{:.2} × fresh runc on host-0", part.median / runc_fresh.median);
        row(&mut out, what, &part, "", &ratio, "");
    }
    for (mib, z) in &s.per_size {
        let tcp = summarize(&z.tcp_ms);
        let quic = summarize(&z.quic_ms);
        let bytes = summarize(&z.bytes_sent).median;
        let tput = mbps(z.copied_bytes as f64, tcp.median);
        let _ = writeln!(
            out,
            "| {mib} MiB: plain TCP copy (connect, send, written on host-1, ack) | {} | {} | {} | reference | {tput:.0} MB/s | |",
            f_ms(tcp.median),
            f_ms(tcp.min),
            f_ms(tcp.max)
        );
        row(
            &mut out,
            &format!("{mib} MiB: plain quinn copy (mTLS, default transport)"),
            &quic,
            "",
            &format!("{:.0} MB/s", mbps(z.copied_bytes as f64, quic.median)),
            "",
        );
        let total = summarize(&z.total_ms);
        let allowed = 1.25 * bytes / (tput * 1e3) + 100.0;
        held(
            &mut out,
            &format!("{mib} MiB: migration, whole `Migrate` call ({:.1} MB sent)", bytes / 1e6),
            &total,
            "1.25 × bytes/TCP + 100 ms",
            allowed,
        );
        // The issue's other reference: a plain QUIC copy, the transport middlecon uses.
        let allowed_quic = 1.25 * bytes / (mbps(z.copied_bytes as f64, quic.median) * 1e3) + 100.0;
        held(
            &mut out,
            &format!("{mib} MiB: the same call against the plain quinn copy"),
            &total,
            "1.25 × bytes/QUIC + 100 ms",
            allowed_quic,
        );
        let down = summarize(&z.downtime_ms);
        if *mib == args.downtime_size {
            let allowed = runc_state.median + 100.0;
            held(
                &mut out,
                &format!("{mib} MiB: migration downtime (freeze to started on host-1)"),
                &down,
                "runc + 100 ms",
                allowed,
            );
        } else {
            row(&mut out, &format!("{mib} MiB: migration downtime"), &down, "", "", "");
        }
    }

    let _ = writeln!(out, "\nMigration phases (medians, ms; from the last progress message):\n");
    let _ =
        writeln!(out, "| state | {} | downtime | total | bytes sent | copy throughput |", PHASES.join(" | "));
    let _ = writeln!(out, "| --- |{} ---: | ---: | ---: | ---: |", " ---: |".repeat(PHASES.len()));
    for (mib, z) in &s.per_size {
        let mut line = format!("| {mib} MiB |");
        for p in PHASES {
            let v = z.phases.get(p).map(|v| summarize(v).median).unwrap_or(f64::NAN);
            let _ = write!(line, " {v:.0} |");
        }
        let copy = z.phases.get("copy").map(|v| summarize(v).median).unwrap_or(f64::NAN);
        let bytes = summarize(&z.bytes_sent).median;
        let _ = writeln!(
            out,
            "{line} {:.0} | {:.0} | {:.1} MB | {:.0} MB/s |",
            summarize(&z.downtime_ms).median,
            summarize(&z.total_ms).median,
            bytes / 1e6,
            mbps(bytes, copy)
        );
    }
    out
}

// ---------------------------------------------------------------------------------------
// Runtime classes (issue 16): every class's start, raw and through `dcos run`, and a
// migration from runc into runsc.

/// What `workload-bench classes` measures; per class, one entry per timed round.
#[derive(Debug, Default)]
struct ClassSamples {
    /// The raw runtime's `run --detach` of a fresh bundle, timed inside host-0.
    raw: BTreeMap<String, Vec<f64>>,
    /// `dcos run --socket --runtime CLASS` inside host-0 until running.
    run: BTreeMap<String, Vec<f64>>,
    /// Why a class was not timed.
    skipped: Vec<(String, String)>,
    /// runc on host-0 to runsc on host-1: the migration's downtime and whole call.
    downtime_ms: Vec<f64>,
    total_ms: Vec<f64>,
    phases: BTreeMap<String, Vec<f64>>,
    /// Raw `runsc run --detach` on host-1 of a fresh bundle of the same state.
    runsc_state: Vec<f64>,
}

fn classes_and_report(args: &ClassesArgs) -> Result<()> {
    ensure!(
        nix::unistd::Uid::effective().is_root(),
        "run as root: it builds network namespaces and runs containers"
    );
    ensure!(args.runs > 0 && !args.classes.is_empty(), "--runs and --classes must not be empty");
    let report = tokio_runtime()?.block_on(async {
        let started = Instant::now();
        let date = time::OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339)?;
        let load_start = probe::loadavg();
        let middlecon = middlecon_binary(args.common.middlecon.as_deref())?;
        let b = build(&middlecon, args.common.dcos.as_deref(), &[args.state_mib]).await?;
        ensure!(b.dcos_run.is_some(), "the dcos binary has no `run` subcommand");
        let result = measure_classes(&b, args).await;
        b.stop_all().await;
        let left = cgroup::Cgroups::new(REF_DAEMON).remove_all(Duration::from_secs(2));
        if !left.is_empty() {
            progress(format!("cgroups left behind: {left:?}"));
        }
        let s = result?;
        let versions: Vec<String> = args
            .classes
            .iter()
            .filter_map(|c| runtime::locate(c).ok())
            .map(|p| probe::version(&p))
            .collect();
        let mut out = String::new();
        let _ = writeln!(out, "### Runtime classes: one run, {date}\n");
        let _ = writeln!(out, "- machine: {}", probe::machine());
        if let Some(note) = &args.common.report.note {
            let _ = writeln!(out, "- {note}");
        }
        let _ = writeln!(out, "- runtimes: {}; middlecon {}", versions.join("; "), middlecon.display());
        let _ = writeln!(
            out,
            "- two network-namespace hosts on a bridge, each running that middlecon in a PID namespace of its own; runsc with middlecon's flags (`--platform=ptrace --network=host`)"
        );
        let _ = writeln!(
            out,
            "- medians, minimums and maximums of {} round(s) after one warm-up; in each round the classes follow one another, and each class's two measures swap order every round",
            args.runs
        );
        out.push_str(&dcos_bench::report::closing_lines(&load_start, started));
        out.push_str(&render_classes(&s, args));
        anyhow::Ok(out)
    })?;
    args.common.report.emit(&report)
}

async fn measure_classes(b: &Bench, args: &ClassesArgs) -> Result<ClassSamples> {
    let mut s = ClassSamples::default();
    let refs = b.work.path().join("ref");
    let plain = RefBundle::new(&refs.join("busybox"), &b.base_rootfs)?;
    let state_rootfs = &b.rootfs[&args.state_mib];
    let stateful = RefBundle::new(&refs.join("state"), state_rootfs)?;
    let mut classes = Vec::new();
    for class in &args.classes {
        let binary = match runtime::locate(class) {
            Ok(p) => p,
            Err(e) => {
                s.skipped.push((class.clone(), e.to_string()));
                continue;
            }
        };
        match plain.run_on(b, 0, &binary, &format!("{class}-probe"), Some(&b.base_rootfs)) {
            Ok(_) => classes.push((class.clone(), binary)),
            Err(e) => {
                progress(format!("{class} cannot run the bundle here: {e:#}"));
                s.skipped.push((class.clone(), crun_refusal(&binary, &e)));
            }
        }
    }
    let runsc = classes.iter().find(|(c, _)| c == "runsc").map(|(_, p)| p.clone());
    for round in 0..=args.runs {
        let warm = round == 0;
        let label = if warm { "warm-up".to_string() } else { format!("run {round}/{}", args.runs) };
        for (class, binary) in &classes {
            progress(format!("{label}: {class}: raw and dcos run"));
            let raw = || plain.run_on(b, 0, binary, &format!("{class}-raw-{round}"), Some(&b.base_rootfs));
            let name = format!("{class}-{round}");
            let run = || async {
                let ms = b.timed_local_run(&name, class)?.context("dcos has no run")?;
                b.stop(0, &name).await?;
                anyhow::Ok(ms)
            };
            let (raw_ms, run_ms) = if round % 2 == 0 {
                let r = raw()?;
                (r, run().await?)
            } else {
                let d = run().await?;
                (raw()?, d)
            };
            if !warm {
                s.raw.entry(class.clone()).or_default().push(raw_ms);
                s.run.entry(class.clone()).or_default().push(run_ms);
            }
        }
        let Some(runsc) = &runsc else { continue };
        progress(format!("{label}: {} MiB: runc on host-0 to runsc on host-1", args.state_mib));
        let name = format!("into-runsc-{round}");
        b.run_workload(0, &name, state_rootfs).await?;
        let (total, last) = b.migrate(&name, "runsc").await?;
        b.stop(1, &name).await?;
        let raw = stateful.run_on(b, 1, runsc, &format!("runsc-state-{round}"), Some(state_rootfs))?;
        if !warm {
            s.downtime_ms.push(last.downtime_ms as f64);
            s.total_ms.push(total);
            s.runsc_state.push(raw);
            for (phase, v) in &last.phase_ms {
                s.phases.entry(phase.clone()).or_default().push(*v as f64);
            }
        }
    }
    Ok(s)
}

fn render_classes(s: &ClassSamples, args: &ClassesArgs) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "| class | raw `run --detach` (fresh bundle, host-0) | `dcos run --runtime` (host-0) | ratio of medians | median ratio per round | target | result |");
    let _ = writeln!(out, "| --- | ---: | ---: | ---: | ---: | --- | --- |");
    let span = |v: &Summary| format!("{} ({}–{})", f_ms(v.median), f_ms(v.min), f_ms(v.max));
    for (class, raw) in &s.raw {
        let run = &s.run[class];
        let (r, d) = (summarize(raw), summarize(run));
        let per_round: Vec<f64> = run.iter().zip(raw).map(|(d, r)| d / r).collect();
        let per_round = summarize(&per_round).median;
        let _ = writeln!(
            out,
            "| {class} | {} | {} | {:.2} × | {per_round:.2} × | ≤ 1.20 × | {} |",
            span(&r),
            span(&d),
            d.median / r.median,
            pass(d.median <= 1.2 * r.median)
        );
    }
    for (class, why) in &s.skipped {
        let _ = writeln!(out, "| {class} | not timed: {why} | | | | | |");
    }
    if !s.downtime_ms.is_empty() {
        let down = summarize(&s.downtime_ms);
        let raw = summarize(&s.runsc_state);
        let total = summarize(&s.total_ms);
        let _ = writeln!(out, "\n| {} MiB workload, runc on host-0 to runsc on host-1 | median | min | max | target | ratio | result |", args.state_mib);
        let _ = writeln!(out, "| --- | ---: | ---: | ---: | --- | ---: | --- |");
        row(
            &mut out,
            "raw `runsc run --detach` of a fresh bundle with that state, on host-1",
            &raw,
            "reference",
            "",
            "",
        );
        held(
            &mut out,
            "migration downtime (frozen on host-0 to running in runsc on host-1)",
            &down,
            "raw runsc + 100 ms",
            raw.median + 100.0,
        );
        row(&mut out, "the whole `Migrate` call", &total, "shown", "", "");
        let _ = writeln!(
            out,
            "\nPhases (medians, ms): {}",
            PHASES
                .iter()
                .map(|p| format!(
                    "{p} {:.0}",
                    s.phases.get(*p).map(|v| summarize(v).median).unwrap_or(f64::NAN)
                ))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    out
}
