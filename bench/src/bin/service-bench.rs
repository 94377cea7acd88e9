//! The services benchmark (issue 15): middlecon's services (SPEC section 7) side by side in
//! the same run with what a user would do without them.
//!
//! Modes of one binary:
//!
//! - `service-bench run`: the driver (as root). It builds a one-host fleet (a network
//!   namespace on a bridge, booted with its own PID and mount namespaces:
//!   `dcos_tests::netns::Fleet`, the end-to-end tests' harness), starts the release
//!   `middlecon` there with a throwaway CA, and measures, each section with a service of its
//!   own that serves a small page with busybox `httpd` on its `PORT`:
//!   - **cold start**: the first byte of a request to a stopped service (`--min 0`, no
//!     instance), against a plain `runc run --detach` of the same bundle (middlecon's own
//!     `config.json` writer, a fresh overlay over the same image made outside the clock)
//!     until `httpd` accepts on its port, then the first byte of the same request; both
//!     timed inside the host, their order swapped every round;
//!   - **prestart**: the first request to a service with `--prestart`'s spare ready,
//!     against a warm request (the next one, to the instance it woke);
//!   - **relay**: a warm request through the front against the same request straight to
//!     the instance's loopback port (from `Show`), interleaved, one connection per request
//!     (busybox `httpd` answers `Connection: close`), p50 and p99; then requests per second
//!     from 64 connections at a time, front and direct in alternating slices; and the same
//!     with connections kept alive, to `service-bench serve` (this static executable copied
//!     into the image: a thread per connection, HTTP/1.1);
//!   - **scale-up**: one slow connection (a request without its final blank line) held on
//!     the one instance, then 49 more at once with `--target-inflight 10`: the time until
//!     `Show` lists a second ready instance;
//!   - **idle stop**: the time from the end of the last connection until the instance is
//!     out of `Show` and its workload out of `Workloads.List`, against `--idle-stop`;
//!   - **metabolism**: `--max-requests 1` and N requests one after another: each waits for
//!     a fresh instance. The instances' bring-up (middlecon's `instance ready` log line:
//!     from the start of its `Run` until it accepts) and the requests' waits near renewal
//!     10 against near renewal N, beside a plain `runc run` timed between renewals at the
//!     same moments (the machine drifts over minutes); failed requests; and what the
//!     retired instances left (workload directories, runtime state, cgroups in every
//!     hierarchy, records, mounts).
//! - `service-bench raw-cold`: one timed plain runtime run until the first byte (the driver
//!   runs it inside the host); `get`: requests to one address, timed; `load`: the relay
//!   comparison's client (both inside the host, where the instances' loopback ports are);
//!   `serve`: the kept-alive comparison's instance.
//!
//! Run it through `scripts/bench-services.sh`, which builds everything in release mode.
//! The method and the results are in `docs/benchmarks.md`.

#![forbid(unsafe_code)]

use anyhow::{bail, ensure, Context, Result};
use clap::{Args, Parser, Subcommand, ValueEnum};
use dcos_bench::daemon_log::{events, field, number};
use dcos_bench::probe;
use dcos_bench::stats::{ms, percentile, summarize};
use dcos_core::tls::Identity;
use dcos_proto::v1 as pb;
use dcos_proto::v1::workloads_client::WorkloadsClient;
use dcos_tests::netns::{Fleet, HostProcess, MIDDLECON_PORT};
use dcos_tests::Pki;
use middlecon::workloads::{bundle, cgroup, rootfs, runtime, Phase, Record, REMOVING};
use middlecon_client::ServicesClient;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashSet};
use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};
use tonic::transport::Channel;

/// The page every instance serves, and the request for it.
const PAGE: &str = "hello from a dcos service\n";
const REQUEST: &[u8] = b"GET / HTTP/1.0\r\n\r\n";
/// A request without its final blank line: `httpd` waits for the rest, the connection stays.
const HALF_REQUEST: &[u8] = b"GET / HTTP/1.0\r\n";
/// Every instance's (and the reference's) command.
const HTTPD: &str = "exec busybox httpd -f -p 127.0.0.1:$PORT -h /www";
/// How often a starting container's port is tried: as middlecon's readiness poll.
const READY_POLL: Duration = Duration::from_millis(1);
/// How long a request, a start or a condition may take before the run fails.
const PATIENCE: Duration = Duration::from_secs(30);
/// The daemon id in the reference containers' cgroup paths.
const REF_DAEMON: &str = "service-bench";
/// The fronts' ports, one service per section.
const COLD_PORT: u16 = 8080;
const PRESTART_PORT: u16 = 8081;
const RELAY_PORT: u16 = 8082;
const SCALE_PORT: u16 = 8083;
const IDLE_PORT: u16 = 8084;
const METABOLISM_PORT: u16 = 8085;
const KEEPALIVE_PORT: u16 = 8086;
/// A request that keeps its connection (HTTP/1.1).
const KEEPALIVE_REQUEST: &[u8] = b"GET / HTTP/1.1\r\nHost: service-bench\r\n\r\n";
/// The scale-up step: from one connection to this many, with this `--target-inflight`.
const STEP_TO: usize = 50;
const TARGET_INFLIGHT: u32 = 10;

#[derive(Debug, Parser)]
#[command(
    name = "service-bench",
    about = "middlecon's services, side by side with runc and direct connections."
)]
struct Cli {
    #[command(subcommand)]
    mode: Mode,
}

#[derive(Debug, Subcommand)]
enum Mode {
    /// Run the benchmark and print the report (as root).
    Run(RunArgs),
    /// Run a fresh bundle of the page's `httpd` with a runtime and time it until the first
    /// byte of an answer; print `{"runtime_ms", "accept_ms", "first_byte_ms"}` (the driver
    /// runs it inside the host).
    RawCold(RawColdArgs),
    /// GET the page `--count` times, one connection each; print each one's first byte and
    /// end, in ms.
    Get(GetArgs),
    /// The relay comparison's client: latencies and throughput, front against direct.
    Load(LoadArgs),
    /// Serve the page on `127.0.0.1:$PORT`, HTTP/1.1 connections kept alive: the
    /// kept-alive relay comparison's instance (busybox `httpd` closes every connection).
    Serve,
    /// A relay with nothing else (accept, connect, copy both ways on tokio, as the front
    /// does): the relay comparison's floor. Prints `ready` once it listens.
    BareRelay(BareRelayArgs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Section {
    Cold,
    Prestart,
    Relay,
    /// The relay comparison again, with connections kept alive (`service-bench serve`).
    Keepalive,
    Scale,
    Idle,
    Metabolism,
}

#[derive(Debug, Clone, Args)]
struct RunArgs {
    /// A short run to try things out: --runs 5 --requests 300 --slices 2 --slice-secs 1
    /// --renewals 200 unless given.
    #[arg(long)]
    quick: bool,
    /// Rounds of the cold start, prestart, scale-up and idle-stop measurements (after one
    /// untimed warm-up round each) [default: 11].
    #[arg(long)]
    runs: Option<usize>,
    /// Warm requests through the front, and as many straight to the instance [default: 2000].
    #[arg(long)]
    requests: Option<usize>,
    /// Connections at a time for the throughput comparison.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Pairs of throughput slices (front, direct; the order swapped every pair) [default: 5].
    #[arg(long)]
    slices: Option<usize>,
    /// Seconds per throughput slice [default: 2].
    #[arg(long)]
    slice_secs: Option<f64>,
    /// Renewals in the metabolism measurement (`--max-requests 1`: one per request)
    /// [default: 10000].
    #[arg(long)]
    renewals: Option<usize>,
    /// Renewals per window of the metabolism comparison.
    #[arg(long, default_value_t = 20)]
    window: usize,
    /// The renewal at which the early window starts.
    #[arg(long, default_value_t = 10)]
    early: usize,
    /// The idle-stop section's `--idle-stop`, in ms.
    #[arg(long, default_value_t = 1000)]
    idle_stop_ms: u64,
    /// Only these sections (comma-separated) [default: all].
    #[arg(long, value_enum, value_delimiter = ',')]
    only: Vec<Section>,
    /// The middlecon binary [default: `middlecon` next to this executable].
    #[arg(long)]
    middlecon: Option<PathBuf>,
    /// middlecon's `--service-steering`: `kernel` (ready instances get connections from the
    /// kernel's NAT) or `relay` (the front relays every byte).
    #[arg(long, default_value = "kernel", value_parser = ["kernel", "relay"])]
    steering: String,
    /// Also write the figures as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    #[command(flatten)]
    report: dcos_bench::report::ReportArgs,
}

/// [`RunArgs`] with the defaults (or `--quick`'s) filled in.
#[derive(Debug, Clone, Serialize)]
struct Plan {
    runs: usize,
    requests: usize,
    concurrency: usize,
    slices: usize,
    slice_secs: f64,
    renewals: usize,
    window: usize,
    early: usize,
    idle_stop_ms: u64,
}

impl Plan {
    fn of(a: &RunArgs) -> Result<Plan> {
        let q = a.quick;
        let plan = Plan {
            runs: a.runs.unwrap_or(if q { 5 } else { 11 }),
            requests: a.requests.unwrap_or(if q { 300 } else { 2000 }),
            concurrency: a.concurrency,
            slices: a.slices.unwrap_or(if q { 2 } else { 5 }),
            slice_secs: a.slice_secs.unwrap_or(if q { 1.0 } else { 2.0 }),
            renewals: a.renewals.unwrap_or(if q { 200 } else { 10_000 }),
            window: a.window,
            early: a.early,
            idle_stop_ms: a.idle_stop_ms,
        };
        ensure!(
            plan.runs > 0 && plan.requests > 0 && plan.slices > 0,
            "--runs, --requests and --slices must be > 0"
        );
        ensure!(plan.concurrency > 0 && plan.slice_secs > 0.0, "--concurrency and --slice-secs must be > 0");
        ensure!(plan.window > 0, "--window must be > 0");
        ensure!(
            plan.renewals >= plan.early + 2 * plan.window,
            "--renewals {} is too few for two windows of {} from renewal {}",
            plan.renewals,
            plan.window,
            plan.early
        );
        Ok(plan)
    }
}

#[derive(Debug, Clone, Args)]
struct RawColdArgs {
    #[arg(long)]
    runtime: PathBuf,
    /// The runtime's `--root`.
    #[arg(long)]
    root: PathBuf,
    /// The image the fresh bundle's overlay is made over.
    #[arg(long)]
    image: PathBuf,
    /// Where the bundle is made (and removed after).
    #[arg(long)]
    dir: PathBuf,
    #[arg(long)]
    id: String,
}

#[derive(Debug, Clone, Args)]
struct GetArgs {
    #[arg(long)]
    addr: SocketAddr,
    #[arg(long, default_value_t = 1)]
    count: usize,
}

#[derive(Debug, Clone, Args)]
struct LoadArgs {
    /// `NAME=ADDR`: an address to measure, under a name (repeated; their order rotates).
    #[arg(long, required = true, value_parser = parse_target)]
    to: Vec<(String, SocketAddr)>,
    /// Timed requests to each, in turn (after 100 untimed to each).
    #[arg(long)]
    requests: usize,
    #[arg(long)]
    concurrency: usize,
    #[arg(long)]
    slices: usize,
    #[arg(long)]
    slice_secs: f64,
    /// Requests on connections kept alive (HTTP/1.1), one per client, instead of one
    /// connection per request.
    #[arg(long)]
    keep_alive: bool,
}

fn parse_target(s: &str) -> Result<(String, SocketAddr)> {
    let (name, addr) = s.split_once('=').context("NAME=ADDR")?;
    Ok((name.to_string(), addr.parse().with_context(|| format!("address {addr}"))?))
}

#[derive(Debug, Clone, Args)]
struct BareRelayArgs {
    #[arg(long)]
    listen: SocketAddr,
    #[arg(long)]
    to: SocketAddr,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let (what, result) = match cli.mode {
        Mode::Run(args) => ("service-bench", run_and_report(&args)),
        Mode::RawCold(args) => ("service-bench raw-cold", raw_cold(&args)),
        Mode::Get(args) => ("service-bench get", get(&args)),
        Mode::Load(args) => ("service-bench load", load(&args)),
        Mode::Serve => ("service-bench serve", serve()),
        Mode::BareRelay(args) => ("service-bench bare-relay", bare_relay(&args)),
    };
    dcos_bench::report::exit_code(what, result)
}

fn progress(msg: impl AsRef<str>) {
    dcos_bench::report::progress("service-bench", msg.as_ref());
}

// ---------------------------------------------------------------------------------------
// The client: one HTTP/1.0 request per connection.

/// Sends the request on `conn` and reads the answer to its end: ms from `start` to the
/// first byte and to the end. An answer that is not the page is an error.
fn exchange(mut conn: TcpStream, start: Instant) -> Result<(f64, f64)> {
    conn.set_nodelay(true)?;
    conn.set_read_timeout(Some(PATIENCE))?;
    conn.write_all(REQUEST).context("sending the request")?;
    let mut answer = Vec::with_capacity(512);
    let mut buf = [0u8; 2048];
    let mut first = None;
    loop {
        let n = conn.read(&mut buf).context("reading the answer")?;
        if n == 0 {
            break;
        }
        first.get_or_insert_with(|| ms(start.elapsed()));
        answer.extend_from_slice(&buf[..n]);
    }
    let end = ms(start.elapsed());
    let text = String::from_utf8_lossy(&answer);
    let status = text.lines().next().unwrap_or("");
    ensure!(
        status.starts_with("HTTP/1.") && status.contains(" 200 ") && text.ends_with(PAGE),
        "not the page: {text:?}"
    );
    Ok((first.context("an empty answer")?, end))
}

/// One request on a new connection to `addr`: ms to the first byte and to the end.
fn get_page(addr: SocketAddr) -> Result<(f64, f64)> {
    let start = Instant::now();
    let conn =
        TcpStream::connect_timeout(&addr, PATIENCE).with_context(|| format!("connecting to {addr}"))?;
    exchange(conn, start)
}

/// A connection to `addr` holding a request without its end.
fn slow_connection(addr: SocketAddr) -> Result<TcpStream> {
    let mut conn =
        TcpStream::connect_timeout(&addr, PATIENCE).with_context(|| format!("connecting to {addr}"))?;
    conn.write_all(HALF_REQUEST)?;
    Ok(conn)
}

#[derive(Debug, Serialize, Deserialize)]
struct Got {
    first_byte_ms: Vec<f64>,
    end_ms: Vec<f64>,
}

fn get(a: &GetArgs) -> Result<()> {
    let mut got = Got { first_byte_ms: Vec::new(), end_ms: Vec::new() };
    for _ in 0..a.count {
        let (first, end) = get_page(a.addr)?;
        got.first_byte_ms.push(first);
        got.end_ms.push(end);
    }
    println!("{}", serde_json::to_string(&got)?);
    Ok(())
}

/// What the relay comparison's client measured on one path.
#[derive(Debug, Default, Serialize, Deserialize)]
struct PathLoad {
    name: String,
    /// Each timed request, one at a time.
    ms: Vec<f64>,
    /// Requests per second at `--concurrency`, per slice.
    rps: Vec<f64>,
    failed: u64,
    /// Requests answered, every phase included.
    done: u64,
    /// The client's own CPU per request in each slice, in µs.
    client_us: Vec<f64>,
}

/// A client of one address: a new connection per request, or one kept alive.
enum Client {
    Close(SocketAddr),
    Kept(TcpStream, Vec<u8>),
}

impl Client {
    fn new(addr: SocketAddr, keep_alive: bool) -> Result<Client> {
        if !keep_alive {
            return Ok(Client::Close(addr));
        }
        let conn =
            TcpStream::connect_timeout(&addr, PATIENCE).with_context(|| format!("connecting to {addr}"))?;
        conn.set_nodelay(true)?;
        conn.set_read_timeout(Some(PATIENCE))?;
        Ok(Client::Kept(conn, Vec::with_capacity(512)))
    }

    /// One request: ms to the end of its answer.
    fn request(&mut self) -> Result<f64> {
        let (conn, answer) = match self {
            Client::Close(addr) => return get_page(*addr).map(|(_, end)| end),
            Client::Kept(conn, answer) => (conn, answer),
        };
        let start = Instant::now();
        conn.write_all(KEEPALIVE_REQUEST).context("sending the request")?;
        answer.clear();
        let mut buf = [0u8; 2048];
        // The page ends every answer, and the next request waits for it.
        while !answer.ends_with(PAGE.as_bytes()) {
            let n = conn.read(&mut buf).context("reading the answer")?;
            ensure!(n > 0, "the connection closed before the end of the answer");
            answer.extend_from_slice(&buf[..n]);
        }
        Ok(ms(start.elapsed()))
    }
}

fn load(a: &LoadArgs) -> Result<()> {
    let mut clients =
        a.to.iter().map(|(_, addr)| Client::new(*addr, a.keep_alive)).collect::<Result<Vec<_>>>()?;
    for c in clients.iter_mut() {
        for _ in 0..100 {
            c.request()?;
        }
    }
    let mut paths: Vec<PathLoad> =
        a.to.iter()
            .map(|(name, _)| PathLoad { name: name.clone(), done: 100, ..PathLoad::default() })
            .collect();
    let k = paths.len();
    for i in 0..a.requests {
        for j in 0..k {
            let t = (i + j) % k;
            paths[t].ms.push(clients[t].request()?);
        }
    }
    drop(clients);
    let span = Duration::from_secs_f64(a.slice_secs);
    for s in 0..a.slices {
        for j in 0..k {
            let t = (s + j) % k;
            let cpu = probe::own_and_children_secs();
            let (rps, done, failed) = hammer(a.to[t].1, a.keep_alive, a.concurrency, span);
            let p = &mut paths[t];
            p.client_us.push((probe::own_and_children_secs() - cpu) * 1e6 / done.max(1) as f64);
            p.rps.push(rps);
            (p.done, p.failed) = (p.done + done, p.failed + failed);
        }
    }
    for p in paths.iter_mut() {
        p.done += a.requests as u64;
    }
    println!("{}", serde_json::to_string(&paths)?);
    Ok(())
}

/// `concurrency` clients, each sending one request after another (a new connection each,
/// or each on its own kept-alive connection) for `span`: completed requests per second,
/// how many, and how many failed.
fn hammer(addr: SocketAddr, keep_alive: bool, concurrency: usize, span: Duration) -> (f64, u64, u64) {
    let start = Instant::now();
    let until = start + span;
    let counts: Vec<(u64, u64)> = std::thread::scope(|s| {
        let clients: Vec<_> = (0..concurrency)
            .map(|_| {
                s.spawn(move || {
                    let (mut ok, mut failed) = (0, 0);
                    let mut client = None;
                    while Instant::now() < until {
                        let done = match &mut client {
                            Some(c) => Client::request(c),
                            None => Client::new(addr, keep_alive).and_then(|c| client.insert(c).request()),
                        };
                        match done {
                            Ok(_) => ok += 1,
                            Err(_) => {
                                failed += 1;
                                client = None;
                            }
                        }
                    }
                    (ok, failed)
                })
            })
            .collect();
        clients.into_iter().map(|c| c.join().unwrap_or((0, 1))).collect()
    });
    let secs = start.elapsed().as_secs_f64();
    let ok: u64 = counts.iter().map(|c| c.0).sum();
    (ok as f64 / secs, ok, counts.iter().map(|c| c.1).sum())
}

fn bare_relay(a: &BareRelayArgs) -> Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind(a.listen).await?;
        println!("ready");
        loop {
            let (mut conn, _) = listener.accept().await?;
            let to = a.to;
            tokio::spawn(async move {
                let _ = conn.set_nodelay(true);
                if let Ok(mut upstream) = tokio::net::TcpStream::connect(to).await {
                    let _ = upstream.set_nodelay(true);
                    let _ = tokio::io::copy_bidirectional(&mut conn, &mut upstream).await;
                }
            });
        }
    })
}

/// `service-bench serve`: the page on `127.0.0.1:$PORT`, a thread per connection, each
/// connection kept for the next request unless it asks HTTP/1.0 without keep-alive.
fn serve() -> Result<()> {
    let port: u16 = std::env::var("PORT").context("PORT")?.parse().context("PORT")?;
    let listener = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, port))?;
    for conn in listener.incoming().flatten() {
        std::thread::spawn(move || answer_all(conn));
    }
    Ok(())
}

/// Answers every request on `conn` with the page, until the client closes (or asks to).
fn answer_all(mut conn: TcpStream) -> std::io::Result<()> {
    let answer =
        format!("HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\n\r\n{PAGE}", PAGE.len());
    conn.set_nodelay(true)?;
    let (mut pending, mut buf) = (Vec::new(), [0u8; 4096]);
    loop {
        let n = conn.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        pending.extend_from_slice(&buf[..n]);
        while let Some(end) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&pending[..end]).to_ascii_lowercase();
            conn.write_all(answer.as_bytes())?;
            if head.contains("http/1.0") && !head.contains("keep-alive") {
                return Ok(());
            }
            pending.drain(..end + 4);
        }
    }
}

/// CPU seconds of process `pid` (in this PID namespace).
fn process_cpu(pid: u32) -> f64 {
    probe::cpu_ticks(pid as i32).map(|t| t as f64 / probe::clk_tck()).unwrap_or(f64::NAN)
}

// ---------------------------------------------------------------------------------------
// The reference: a plain runtime run of the same bundle.

fn httpd_command() -> Vec<String> {
    ["sh", "-c", HTTPD].map(String::from).to_vec()
}

/// A free TCP port on this host's loopback.
fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?.local_addr()?.port())
}

#[derive(Debug, Serialize, Deserialize)]
struct RawTimes {
    /// Until the runtime's `run --detach` returned (the container's process runs).
    runtime_ms: f64,
    /// Until a connection to its port was accepted.
    accept_ms: f64,
    /// Until the first byte of the answer.
    first_byte_ms: f64,
}

fn raw_cold(a: &RawColdArgs) -> Result<()> {
    let bundle = a.dir.join("bundle");
    for dir in [&bundle, &a.root] {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let port = free_port()?;
    let record = Record {
        name: a.id.clone(),
        runtime: "runc".into(),
        command: httpd_command(),
        env: BTreeMap::from([("PORT".to_string(), port.to_string())]),
        memory_bytes: 0,
        cpus: 0.0,
        epoch: 0,
        started_unix_ms: 0,
        phase: Phase::Owned,
        service: None,
    };
    bundle::write_config(&bundle, &record, REF_DAEMON)?;
    rootfs::make(&a.image, &a.dir).context("making the fresh root filesystem")?;
    let timed = time_raw(a, &bundle, port);
    let deleted = Command::new(&a.runtime)
        .arg("--root")
        .arg(&a.root)
        .args(["delete", "--force", &a.id])
        .stdin(Stdio::null())
        .output()
        .context("spawning the runtime's delete")?;
    rootfs::remove(&a.dir).with_context(|| format!("removing {}", a.dir.display()))?;
    let times = timed?;
    ensure!(deleted.status.success(), "delete: {}", String::from_utf8_lossy(&deleted.stderr).trim());
    println!("{}", serde_json::to_string(&times)?);
    Ok(())
}

/// `runtime run --detach` of `bundle`, then connects to `port` every [`READY_POLL`] until
/// accepted, then the request: the times from the runtime's start.
fn time_raw(a: &RawColdArgs, bundle: &Path, port: u16) -> Result<RawTimes> {
    let log = std::fs::File::create(a.dir.join("output.log"))?;
    let mut cmd = Command::new(&a.runtime);
    cmd.arg("--root").arg(&a.root).args(["run", "--detach", "--bundle"]).arg(bundle).arg(&a.id);
    cmd.stdin(Stdio::null()).stdout(log.try_clone()?).stderr(log);
    let start = Instant::now();
    let status = cmd.status().context("spawning the runtime")?;
    let runtime_ms = ms(start.elapsed());
    let said = || std::fs::read_to_string(a.dir.join("output.log")).unwrap_or_default();
    ensure!(status.success(), "{} run: {status}: {}", a.runtime.display(), said().trim());
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let conn = loop {
        match TcpStream::connect(addr) {
            Ok(c) => break c,
            Err(_) if start.elapsed() < PATIENCE => std::thread::sleep(READY_POLL),
            Err(e) => bail!("{} never accepted on {addr}: {e}; its output: {}", a.id, said().trim()),
        }
    };
    let accept_ms = ms(start.elapsed());
    let (first_byte_ms, _) = exchange(conn, start)?;
    Ok(RawTimes { runtime_ms, accept_ms, first_byte_ms })
}

// ---------------------------------------------------------------------------------------
// The driver.

fn run_and_report(args: &RunArgs) -> Result<()> {
    ensure!(
        nix::unistd::Uid::effective().is_root(),
        "run as root: it builds network namespaces and runs containers"
    );
    let plan = Plan::of(args)?;
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let (report, json) = rt.block_on(run(args, &plan))?;
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&json)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    args.report.emit(&report)
}

fn sibling(name: &str) -> Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let path = exe.parent().context("the executable's directory")?.join(name);
    ensure!(path.is_file(), "{} is not built (scripts/bench-services.sh builds it)", path.display());
    Ok(path)
}

fn path_str(p: &Path) -> Result<&str> {
    p.to_str().with_context(|| format!("{} is not UTF-8", p.display()))
}

/// A line of the summary: one target of the issue.
#[derive(Debug, Clone, Serialize)]
struct Row {
    target: String,
    figure: String,
    reference: String,
    ratio: String,
    limit: String,
    pass: Option<bool>,
}

/// What one section measured: its summary rows, its details (Markdown) and its raw figures.
#[derive(Default)]
struct Measured {
    rows: Vec<Row>,
    details: String,
    json: serde_json::Map<String, serde_json::Value>,
}

impl Measured {
    fn row(
        &mut self,
        target: &str,
        figure: String,
        reference: String,
        ratio: String,
        limit: &str,
        pass: Option<bool>,
    ) {
        let (target, limit) = (target.to_string(), limit.to_string());
        self.rows.push(Row { target, figure, reference, ratio, limit, pass });
    }

    fn put(&mut self, key: &str, value: impl Serialize) {
        self.json.insert(key.into(), serde_json::to_value(value).unwrap_or_default());
    }
}

fn f_ms(v: f64) -> String {
    if v.is_nan() {
        "—".into()
    } else if v.abs() < 1.0 {
        format!("{:.0} µs", v * 1e3)
    } else if v < 10.0 {
        format!("{v:.2} ms")
    } else {
        format!("{v:.1} ms")
    }
}

/// A difference in ms, with its sign.
fn signed_ms(v: f64) -> String {
    if v < 0.0 {
        format!("−{}", f_ms(-v))
    } else {
        format!("+{}", f_ms(v))
    }
}

fn median(v: &[f64]) -> f64 {
    summarize(v).median
}

/// `median (min-max, n)` of `v`.
fn spread(v: &[f64]) -> String {
    let s = summarize(v);
    format!("{} ({}-{}, n={})", f_ms(s.median), f_ms(s.min), f_ms(s.max), s.n)
}

fn sorted(v: &[f64]) -> Vec<f64> {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    v
}

/// The host, its middlecon and the clients of its API.
struct Bench {
    fleet: Fleet,
    _pki: Pki,
    work: tempfile::TempDir,
    exe: PathBuf,
    runc: PathBuf,
    /// The busybox image with the page in `/www`.
    image: PathBuf,
    daemon: HostProcess,
    services: ServicesClient<Channel>,
    workloads: WorkloadsClient<Channel>,
    state_dir: PathBuf,
    daemon_id: String,
    /// middlecon steers ready instances' connections by the kernel (`--steering kernel`).
    steered: bool,
}

impl Bench {
    async fn new(middlecon: &Path, steering: &str) -> Result<Bench> {
        progress("building the host (a network namespace on a bridge) and the image");
        let fleet = Fleet::new(1)?;
        let pki = Pki::new();
        let work = tempfile::Builder::new().prefix("service-bench-").tempdir_in("/var/tmp")?;
        let image = dcos_tests::oci::busybox_rootfs(&work.path().join("image"))?;
        std::fs::create_dir_all(image.join("www"))?;
        std::fs::write(image.join("www/index.html"), PAGE)?;
        let host = fleet.host(0);
        let seed = format!("{}:{MIDDLECON_PORT}", host.addr);
        let daemon = fleet
            .middlecon_binary_on(
                0,
                middlecon,
                &host.issue(&pki),
                &["--seed", &seed, "--service-steering", steering],
            )
            .context("starting middlecon on host-0")?;
        let admin = Identity::load(&pki.files("admin"))?;
        let channel = middlecon_client::connect(host.api_addr(), &admin).await?;
        let state_dir = fleet.middlecon_state_dir(0);
        let daemon_id = bundle::daemon_id(&host.name, &state_dir);
        Ok(Bench {
            services: ServicesClient::new(channel.clone()),
            workloads: WorkloadsClient::new(channel),
            runc: runtime::locate("runc").context("runc is needed (scripts/setup.sh installs it)")?,
            exe: std::env::current_exe()?,
            fleet,
            _pki: pki,
            work,
            image,
            daemon,
            state_dir,
            daemon_id,
            steered: steering == "kernel",
        })
    }

    /// The front of the service on `port`, as a client outside the host reaches it.
    fn outside(&self, port: u16) -> SocketAddr {
        SocketAddr::new(self.fleet.host(0).addr.into(), port)
    }

    /// `httpd` on each instance's `PORT`, one instance at most per 10 connections, at most
    /// 4, stopped after 60 s idle.
    fn spec(&self, name: &str, port: u16) -> pb::ServiceSpec {
        pb::ServiceSpec {
            name: name.into(),
            rootfs: self.image.display().to_string(),
            port: port.into(),
            hosts: vec![self.fleet.host(0).name.clone()],
            command: httpd_command(),
            max: 4,
            idle_stop_ms: 60_000,
            target_inflight: TARGET_INFLIGHT,
            drain_ms: 5_000,
            ..Default::default()
        }
    }

    async fn create(&self, spec: pb::ServiceSpec) -> Result<()> {
        let name = spec.name.clone();
        let req = pb::CreateServiceRequest { spec: Some(spec), validate_only: false };
        self.services
            .clone()
            .create(req)
            .await
            .with_context(|| format!("creating {name}; middlecon's log: {}", self.daemon.stderr()))?;
        Ok(())
    }

    async fn remove(&self, name: &str) -> Result<()> {
        let req = pb::RemoveServiceRequest { name: name.into(), drain_ms: 1_000 };
        self.services.clone().remove(req).await.with_context(|| format!("removing {name}"))?;
        self.settle().await
    }

    async fn show(&self, name: &str) -> Result<pb::ShowServiceReply> {
        let req = pb::ShowServiceRequest { name: name.into() };
        Ok(self.services.clone().show(req).await.with_context(|| format!("Show {name}"))?.into_inner())
    }

    async fn list(&self) -> Result<Vec<pb::Workload>> {
        Ok(self.workloads.clone().list(pb::ListRequest {}).await.context("List")?.into_inner().workloads)
    }

    /// The workloads of service `name`.
    async fn instances_listed(&self, name: &str) -> Result<Vec<String>> {
        Ok(self.list().await?.into_iter().filter(|w| w.service == name).map(|w| w.name).collect())
    }

    /// Waits until no workload directory is being removed: the unmount that removal does
    /// syncs the filesystem, and must not land in the next measurement.
    async fn settle(&self) -> Result<()> {
        let dir = self.state_dir.join("workloads");
        let start = Instant::now();
        while std::fs::read_dir(&dir)
            .is_ok_and(|d| d.flatten().any(|e| e.file_name().to_string_lossy().starts_with(REMOVING)))
        {
            ensure!(
                start.elapsed() < PATIENCE,
                "workload directories still being removed after {PATIENCE:?}"
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        Ok(())
    }

    /// Waits until `ok` holds for service `name`'s `Show` (and its listed workloads), then
    /// until the host has settled.
    async fn wait_for(
        &self,
        name: &str,
        what: &str,
        ok: impl Fn(&pb::ShowServiceReply, &[String]) -> bool,
    ) -> Result<pb::ShowServiceReply> {
        let start = Instant::now();
        loop {
            let shown = self.show(name).await?;
            if ok(&shown, &self.instances_listed(name).await?) {
                self.settle().await?;
                return Ok(shown);
            }
            ensure!(start.elapsed() < PATIENCE, "{name}: not {what} after {PATIENCE:?}: {shown:?}");
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    /// Waits until service `name` has no instance and no workload, and the host has settled.
    async fn stopped(&self, name: &str) -> Result<()> {
        self.wait_for(name, "stopped", |s, listed| s.instances.is_empty() && listed.is_empty())
            .await
            .map(drop)
    }

    /// Runs `service-bench ARGS` inside the host (its PID, mount and network namespaces)
    /// and parses what it prints.
    fn in_host<T: serde::de::DeserializeOwned>(&self, args: &[&str]) -> Result<T> {
        let out = self.fleet.exec_on(0, path_str(&self.exe)?, args)?;
        ensure!(
            out.status.success(),
            "service-bench {} inside host-0: {}",
            args.first().unwrap_or(&""),
            String::from_utf8_lossy(&out.stderr).trim()
        );
        serde_json::from_slice(&out.stdout).with_context(|| format!("the answer of {}", args[0]))
    }

    fn loopback(port: u16) -> String {
        format!("127.0.0.1:{port}")
    }

    /// The times middlecon logged for instance `id`: its `Run` (`total_ms`, `bundle_ms`,
    /// `runtime_ms`) and its bring-up until it accepted (`ready_ms`).
    fn logged(log: &InstanceLog, id: &str) -> Option<Logged> {
        let run = log.running.get(id)?;
        Some(Logged { ready_ms: *log.ready.get(id)?, run_ms: run[0], bundle_ms: run[1], runtime_ms: run[2] })
    }

    fn instance_log(&self) -> InstanceLog {
        let text = self.daemon.stderr();
        let mut log = InstanceLog::default();
        for line in events(&text, "instance ready") {
            if let (Some(id), Some(v)) = (field(&line, "instance"), number(&line, "ready_ms")) {
                log.ready.insert(id.to_string(), v);
            }
        }
        for line in events(&text, "workload running") {
            let times = ["total_ms", "bundle_ms", "runtime_ms"].map(|k| number(&line, k).unwrap_or(f64::NAN));
            if let Some(id) = field(&line, "workload") {
                log.running.insert(id.to_string(), times);
            }
        }
        log
    }

    /// One plain `runc run` of the page's bundle inside the host, until the first byte
    /// (`service-bench raw-cold`); `tag` names its container.
    fn raw_run(&self, tag: &str) -> Result<RawTimes> {
        let root = self.work.path().join("raw-runtime");
        let (dir, id) = (self.work.path().join(format!("raw-{tag}")), format!("raw-{tag}"));
        let args = ["raw-cold", "--runtime", path_str(&self.runc)?, "--root", path_str(&root)?];
        let more = ["--image", path_str(&self.image)?, "--dir", path_str(&dir)?, "--id", &id];
        self.in_host(&[&args[..], &more[..]].concat())
    }

    // -----------------------------------------------------------------------------------
    // Cold start.

    async fn cold(&self, plan: &Plan) -> Result<Measured> {
        let name = "cold";
        let mut spec = self.spec(name, COLD_PORT);
        spec.idle_stop_ms = 250;
        self.create(spec).await?;
        let (mut raw, mut svc, mut diff) = (Vec::<RawTimes>::new(), Vec::new(), Vec::new());
        for round in 0..=plan.runs {
            progress(format!("cold start: round {round}/{} (0: warm-up)", plan.runs));
            let raw_run = || self.raw_run(&round.to_string());
            let addr = Self::loopback(COLD_PORT);
            let svc_run = || async {
                self.stopped(name).await?;
                let got: Got = self.in_host(&["get", "--addr", &addr])?;
                self.stopped(name).await?;
                anyhow::Ok(got.first_byte_ms[0])
            };
            let (r, s) = if round % 2 == 0 {
                let r = raw_run()?;
                (r, svc_run().await?)
            } else {
                let s = svc_run().await?;
                (raw_run()?, s)
            };
            if round > 0 {
                diff.push(s - r.first_byte_ms);
                raw.push(r);
                svc.push(s);
            }
        }
        let shown = self.show(name).await?.service.context("no summary")?;
        self.remove(name).await?;
        let log = self.instance_log();
        let parts: Vec<Logged> =
            (1..=plan.runs).filter_map(|r| Self::logged(&log, &format!("{name}.{r}"))).collect();
        let raw_first: Vec<f64> = raw.iter().map(|r| r.first_byte_ms).collect();
        let (svc_m, raw_m) = (median(&svc), median(&raw_first));
        let mut m = Measured::default();
        m.row(
            "cold start: first byte ≤ raw `runc run` + 20 ms",
            f_ms(svc_m),
            format!("`runc run` to first byte {}", f_ms(raw_m)),
            format!("{} ({:.2}×)", signed_ms(svc_m - raw_m), svc_m / raw_m),
            "≤ +20 ms",
            Some(svc_m <= raw_m + 20.0),
        );
        let mut d = String::new();
        let _ = writeln!(d, "Cold start, {} rounds (medians (min-max)):\n", plan.runs);
        let _ = writeln!(d, "| step | raw `runc run` | the service |");
        let _ = writeln!(d, "| --- | ---: | ---: |");
        let col = |f: fn(&Logged) -> f64| spread(&parts.iter().map(f).collect::<Vec<_>>());
        let _ = writeln!(d, "| overlay and `config.json` | outside the clock | {} |", col(|l| l.bundle_ms));
        let raw_rt: Vec<f64> = raw.iter().map(|r| r.runtime_ms).collect();
        let _ =
            writeln!(d, "| the runtime's `run --detach` | {} | {} |", spread(&raw_rt), col(|l| l.runtime_ms));
        let _ =
            writeln!(d, "| middlecon's whole `Run` (log: `workload running`) | — | {} |", col(|l| l.run_ms));
        let raw_acc: Vec<f64> = raw.iter().map(|r| r.accept_ms).collect();
        let _ = writeln!(
            d,
            "| until it accepts on its port (1 ms poll; service: `instance ready`'s `ready_ms`) | {} | {} |",
            spread(&raw_acc),
            col(|l| l.ready_ms)
        );
        let _ = writeln!(
            d,
            "| first byte of the answer (the whole figure) | {} | {} |",
            spread(&raw_first),
            spread(&svc)
        );
        let _ = writeln!(d, "| per round: the service minus the reference | | {} |", spread(&diff));
        let _ = writeln!(
            d,
            "\nThe service counted {} cold starts; `cold_start_seconds` holds each held connection's wait.",
            shown.cold_starts
        );
        m.details = d;
        m.put("service_first_byte_ms", &svc);
        m.put("raw", &raw);
        m.put("service_minus_raw_ms", &diff);
        m.put("middlecon_log", &parts);
        Ok(m)
    }

    // -----------------------------------------------------------------------------------
    // Cold start with a prestarted spare.

    async fn prestart(&self, plan: &Plan) -> Result<Measured> {
        let name = "prestart";
        let mut spec = self.spec(name, PRESTART_PORT);
        spec.prestart = true;
        spec.idle_stop_ms = 300;
        self.create(spec).await?;
        let (mut pre, mut warm, mut diff) = (Vec::new(), Vec::new(), Vec::new());
        let addr = Self::loopback(PRESTART_PORT);
        for round in 0..=plan.runs {
            progress(format!("prestart: round {round}/{} (0: warm-up)", plan.runs));
            self.wait_for(name, "down to its ready spare", |s, listed| {
                let ready_spare = |i: &pb::ServiceInstance| i.spare && i.state() == pb::InstanceState::Ready;
                s.instances.len() == 1 && ready_spare(&s.instances[0]) && listed.len() == 1
            })
            .await?;
            let got: Got = self.in_host(&["get", "--addr", &addr, "--count", "2"])?;
            if round > 0 {
                pre.push(got.first_byte_ms[0]);
                warm.push(got.first_byte_ms[1]);
                diff.push(got.first_byte_ms[0] - got.first_byte_ms[1]);
            }
        }
        let shown = self.show(name).await?.service.context("no summary")?;
        self.remove(name).await?;
        let (pre_m, warm_m) = (median(&pre), median(&warm));
        let mut m = Measured::default();
        m.row(
            "cold start with `--prestart`: first byte ≤ a warm request + 5 ms",
            f_ms(pre_m),
            format!("warm request {}", f_ms(warm_m)),
            format!("{} ({:.2}×)", signed_ms(pre_m - warm_m), pre_m / warm_m),
            "≤ +5 ms",
            Some(pre_m <= warm_m + 5.0),
        );
        let mut d = String::new();
        let _ = writeln!(d, "Prestart, {} rounds (first byte, medians (min-max)):\n", plan.runs);
        let _ = writeln!(d, "| request | first byte |\n| --- | ---: |");
        let _ = writeln!(d, "| the first, handed the ready spare | {} |", spread(&pre));
        let _ = writeln!(d, "| the next, to the instance it woke (warm) | {} |", spread(&warm));
        let _ = writeln!(d, "| per round: the first minus the warm | {} |", spread(&diff));
        let _ = writeln!(d, "\nThe service counted {} cold starts (hand-overs).", shown.cold_starts);
        m.details = d;
        m.put("prestart_first_byte_ms", &pre);
        m.put("warm_first_byte_ms", &warm);
        Ok(m)
    }

    // -----------------------------------------------------------------------------------
    // Relay overhead.

    /// The image for the kept-alive comparison: the page's, with this (static) executable
    /// as `/bin/service-bench` to run `service-bench serve`.
    fn kept_alive_image(&self) -> Result<PathBuf> {
        let image = self.work.path().join("image-kept-alive");
        bundle::copy_tree(&self.image, &image)?;
        std::fs::copy(&self.exe, image.join("bin/service-bench"))
            .context("copying service-bench into the image")?;
        Ok(image)
    }

    /// The relay comparison: busybox `httpd` and a connection per request, or (`kept`)
    /// `service-bench serve` and connections kept alive.
    async fn relay(&self, plan: &Plan, kept: bool) -> Result<Measured> {
        let (name, port) = if kept { ("relay-kept", KEEPALIVE_PORT) } else { ("relay", RELAY_PORT) };
        let mut spec = self.spec(name, port);
        if kept {
            spec.rootfs = self.kept_alive_image()?.display().to_string();
            spec.command = ["/bin/service-bench", "serve"].map(String::from).to_vec();
        }
        // One instance, always: the front relays to the very instance the direct requests reach.
        (spec.min, spec.max, spec.idle_stop_ms) = (1, 1, 0);
        self.create(spec).await?;
        // Warm: ready, and (when middlecon steers) reached through the kernel's rules.
        let steered = self.steered;
        let ready = |s: &pb::ShowServiceReply, _: &[String]| {
            s.instances.len() == 1
                && s.instances[0].state() == pb::InstanceState::Ready
                && (s.instances[0].steered || !steered)
        };
        let shown = self.wait_for(name, "one warm instance", ready).await?;
        let (id, instance_port) = (shown.instances[0].id.clone(), shown.instances[0].port as u16);
        progress(format!(
            "{name}: {} requests each way, then {} × 2 slices of {} s at {} connections",
            plan.requests, plan.slices, plan.slice_secs, plan.concurrency
        ));
        let direct = Self::loopback(instance_port);
        // The floor: a relay with nothing else, to the same instance.
        let bare_listen = Self::loopback(port + 100);
        let mut bare =
            self.fleet.spawn_on(0, &self.exe, &["bare-relay", "--listen", &bare_listen, "--to", &direct])?;
        ensure!(
            bare.line(PATIENCE).as_deref() == Some("ready"),
            "the bare relay did not start: {}",
            bare.stderr()
        );
        let to = [("front", Self::loopback(port)), ("bare", bare_listen), ("direct", direct)]
            .map(|(name, addr)| format!("{name}={addr}"));
        let (requests, concurrency) = (plan.requests.to_string(), plan.concurrency.to_string());
        let (slices, secs) = (plan.slices.to_string(), plan.slice_secs.to_string());
        // The instance's CPU from its cgroup: `httpd` forks a process per connection.
        let pids = [self.daemon_pid()?, pid_of(&bare)?];
        let cpu_now = || [process_cpu(pids[0]), process_cpu(pids[1]), self.cgroup_cpu(&id)];
        let cpu_before = cpu_now();
        let mut args =
            vec!["load", "--requests", &requests, "--concurrency", &concurrency, "--slices", &slices];
        args.extend(["--slice-secs", &secs, "--to", &to[0], "--to", &to[1], "--to", &to[2]]);
        if kept {
            args.push("--keep-alive");
        }
        let paths: Vec<PathLoad> = self.in_host(&args)?;
        let cpu: Vec<f64> = cpu_now().iter().zip(cpu_before).map(|(now, before)| now - before).collect();
        drop(bare);
        let [l_front, l_bare, l_direct] =
            <[PathLoad; 3]>::try_from(paths).map_err(|_| anyhow::anyhow!("three paths"))?;
        let after = self.show(name).await?;
        ensure!(
            after.instances.len() == 1 && after.instances[0].id == id,
            "the relay's instance changed during the measurement: {after:?}"
        );
        self.remove(name).await?;
        let (fs, bs, ds) = (sorted(&l_front.ms), sorted(&l_bare.ms), sorted(&l_direct.ms));
        let mut m = Measured::default();
        let what = if kept { "relay, connections kept alive" } else { "relay" };
        for p in [50.0, 99.0] {
            let (f, b, d) = (percentile(&fs, p), percentile(&bs, p), percentile(&ds, p));
            m.row(
                &format!("{what}: warm request through the front, p{p:.0} ≤ 1.15× direct"),
                f_ms(f),
                format!("direct {} (a bare relay: {})", f_ms(d), f_ms(b)),
                format!("{:.2}×", f / d),
                "≤ 1.15×",
                Some(f <= 1.15 * d),
            );
        }
        let (fr, br, dr) = (median(&l_front.rps), median(&l_bare.rps), median(&l_direct.rps));
        m.row(
            &format!("{what}: requests/s at {} connections ≥ 0.8× direct", plan.concurrency),
            format!("{fr:.0}/s"),
            format!("direct {dr:.0}/s (a bare relay: {br:.0}/s)"),
            format!("{:.2}×", fr / dr),
            "≥ 0.80×",
            Some(fr >= 0.8 * dr && l_front.failed == 0),
        );
        let mut d = String::new();
        let (server, request) = if kept {
            ("`service-bench serve` (a thread per connection)", "`GET / HTTP/1.1` and the")
        } else {
            ("busybox `httpd` (a process forked per connection)", "connect, `GET / HTTP/1.0`, the")
        };
        let _ = writeln!(
            d,
            "{what}: one instance (`--min 1 --max 1`) of {server}, the client inside the host; a request is \
             {request} {}-byte page{} ({} each way, alternating):\n",
            PAGE.len(),
            if kept { " on a connection kept alive (one per client)" } else { ", close" },
            plan.requests
        );
        let _ = writeln!(
            d,
            "| path | p50 | p90 | p99 | max | requests/s at {} (median of {}) | failed |",
            plan.concurrency, plan.slices
        );
        let _ = writeln!(d, "| --- | ---: | ---: | ---: | ---: | ---: | ---: |");
        for (what, v, rps, failed) in [
            ("through the front", &fs, &l_front.rps, l_front.failed),
            (
                "through a bare relay (tokio, `copy_bidirectional`, nothing else)",
                &bs,
                &l_bare.rps,
                l_bare.failed,
            ),
            ("straight to the instance", &ds, &l_direct.rps, l_direct.failed),
        ] {
            let _ = writeln!(
                d,
                "| {what} | {} | {} | {} | {} | {:.0} ({:.0}-{:.0}) | {failed} |",
                f_ms(percentile(v, 50.0)),
                f_ms(percentile(v, 90.0)),
                f_ms(percentile(v, 99.0)),
                f_ms(percentile(v, 100.0)),
                median(rps),
                summarize(rps).min,
                summarize(rps).max
            );
        }
        let per = |secs: f64, n: u64| secs * 1e6 / n.max(1) as f64;
        let _ = writeln!(
            d,
            "\nCPU per request: the client {:.0} µs through the front, {:.0} µs through the bare relay, \
             {:.0} µs direct; the instance {:.0} µs (its cgroup's); middlecon {:.0} µs per request it relayed, \
             the bare relay {:.0} µs ({}, {} and {} requests; processes' CPU from `/proc`, 10 ms ticks).",
            median(&l_front.client_us),
            median(&l_bare.client_us),
            median(&l_direct.client_us),
            per(cpu[2], l_front.done + l_bare.done + l_direct.done),
            per(cpu[0], l_front.done),
            per(cpu[1], l_bare.done),
            l_front.done,
            l_bare.done,
            l_direct.done
        );
        if !kept {
            let _ = writeln!(
                d,
                "\nbusybox `httpd` answers `Connection: close` to every request (HTTP/1.1 and keep-alive \
                 included): the kept-alive comparison (`--only keepalive`) runs `service-bench serve` instead."
            );
        }
        m.details = d;
        m.put("front_p50_ms", percentile(&fs, 50.0));
        m.put("front_p99_ms", percentile(&fs, 99.0));
        m.put("direct_p50_ms", percentile(&ds, 50.0));
        m.put("direct_p99_ms", percentile(&ds, 99.0));
        m.put("bare_p50_ms", percentile(&bs, 50.0));
        m.put("bare_p99_ms", percentile(&bs, 99.0));
        m.put("middlecon_cpu_us_per_relayed", per(cpu[0], l_front.done));
        m.put("bare_relay_cpu_us_per_relayed", per(cpu[1], l_bare.done));
        m.put("instance_cpu_us_per_request", per(cpu[2], l_front.done + l_bare.done + l_direct.done));
        m.put("front_rps", &l_front.rps);
        m.put("bare_rps", &l_bare.rps);
        m.put("direct_rps", &l_direct.rps);
        Ok(m)
    }

    // -----------------------------------------------------------------------------------
    // Scale-up reaction.

    async fn scale(&self, plan: &Plan) -> Result<Measured> {
        let name = "scale";
        let mut spec = self.spec(name, SCALE_PORT);
        // Room for what 50 connections want at 10 each.
        spec.max = (STEP_TO as u32).div_ceil(TARGET_INFLIGHT);
        spec.idle_stop_ms = 300;
        self.create(spec.clone()).await?;
        let addr = self.outside(SCALE_PORT);
        let (mut second, mut all, mut opened) = (Vec::new(), Vec::new(), Vec::new());
        for round in 0..=plan.runs {
            progress(format!("scale-up: round {round}/{} (0: warm-up)", plan.runs));
            self.stopped(name).await?;
            let first = tokio::task::spawn_blocking(move || slow_connection(addr)).await??;
            self.wait_for(name, "one ready instance holding one connection", |s, _| {
                s.instances.len() == 1
                    && s.instances[0].state() == pb::InstanceState::Ready
                    && s.instances[0].inflight == 1
            })
            .await?;
            let step = Instant::now();
            let opener = tokio::task::spawn_blocking(move || {
                let conns = (1..STEP_TO).map(|_| slow_connection(addr)).collect::<Result<Vec<_>>>();
                (conns, ms(step.elapsed()))
            });
            let (mut two, mut every) = (None, None);
            while every.is_none() && step.elapsed() < PATIENCE {
                let shown = self.show(name).await?;
                let at = ms(step.elapsed());
                let ready = shown.instances.iter().filter(|i| i.state() == pb::InstanceState::Ready).count();
                if ready >= 2 {
                    two.get_or_insert(at);
                }
                if ready >= spec.max as usize {
                    every = Some(at);
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            let (conns, open_ms) = opener.await?;
            let conns = conns?;
            let two = two.context("no second instance became ready")?;
            let every = every.context("not every wanted instance became ready")?;
            drop((first, conns));
            if round > 0 {
                second.push(two);
                all.push(every);
                opened.push(open_ms);
            }
        }
        self.stopped(name).await?;
        self.remove(name).await?;
        let sec = median(&second);
        let mut m = Measured::default();
        m.row(
            "scale-up: 1 → 50 slow connections, a second instance ready ≤ 1 s",
            f_ms(sec),
            "Knative's panic window 2 s; HPA 15 s".into(),
            format!("{:.2}× the limit", sec / 1000.0),
            "≤ 1000 ms",
            Some(sec <= 1000.0),
        );
        let mut d = String::new();
        let _ = writeln!(
            d,
            "Scale-up, {} rounds, `--target-inflight {TARGET_INFLIGHT} --max {}` (medians (min-max), from the step's \
             first connect; `Show` polled every ~1 ms):\n",
            plan.runs, spec.max
        );
        let _ = writeln!(d, "| | time |\n| --- | ---: |");
        let _ = writeln!(
            d,
            "| the 49 new connections opened (from the driver, across the bridge) | {} |",
            spread(&opened)
        );
        let _ = writeln!(d, "| a second instance ready | {} |", spread(&second));
        let _ = writeln!(d, "| all {} wanted instances ready | {} |", spec.max, spread(&all));
        m.details = d;
        m.put("second_ready_ms", &second);
        m.put("all_ready_ms", &all);
        Ok(m)
    }

    // -----------------------------------------------------------------------------------
    // Idle stop.

    async fn idle(&self, plan: &Plan) -> Result<Measured> {
        let name = "idle";
        let mut spec = self.spec(name, IDLE_PORT);
        spec.idle_stop_ms = plan.idle_stop_ms;
        self.create(spec).await?;
        let addr = self.outside(IDLE_PORT);
        let (mut out_of_show, mut gone) = (Vec::new(), Vec::new());
        for round in 0..=plan.runs {
            progress(format!("idle stop: round {round}/{} (0: warm-up)", plan.runs));
            self.stopped(name).await?;
            tokio::task::spawn_blocking(move || get_page(addr)).await??;
            // The connection ended as the page did.
            let ended = Instant::now();
            let (mut shown_at, mut gone_at) = (None, None);
            while gone_at.is_none() || shown_at.is_none() {
                ensure!(ended.elapsed() < PATIENCE, "the idle instance still runs after {PATIENCE:?}");
                let shown = self.show(name).await?;
                let listed = self.instances_listed(name).await?;
                let at = ms(ended.elapsed());
                if shown.instances.is_empty() {
                    shown_at.get_or_insert(at);
                }
                if listed.is_empty() {
                    gone_at.get_or_insert(at);
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            if round > 0 {
                out_of_show.extend(shown_at);
                gone.extend(gone_at);
            }
        }
        self.remove(name).await?;
        let limit = plan.idle_stop_ms as f64 + 200.0;
        let g = summarize(&gone);
        let mut m = Measured::default();
        m.row(
            &format!("idle stop within `--idle-stop` + 200 ms (`--idle-stop {}ms`)", plan.idle_stop_ms),
            format!("{} (max {})", f_ms(g.median), f_ms(g.max)),
            format!("`--idle-stop` {} ms", plan.idle_stop_ms),
            format!(
                "{} (max {})",
                signed_ms(g.median - plan.idle_stop_ms as f64),
                signed_ms(g.max - plan.idle_stop_ms as f64)
            ),
            "≤ +200 ms, every round",
            Some(g.max <= limit),
        );
        let mut d = String::new();
        let _ = writeln!(
            d,
            "Idle stop, `--idle-stop {}ms`, {} rounds, from the end of the only connection (medians (min-max)):\n",
            plan.idle_stop_ms, plan.runs
        );
        let _ = writeln!(d, "| | time |\n| --- | ---: |");
        let _ = writeln!(d, "| out of `Show` | {} |", spread(&out_of_show));
        let _ = writeln!(
            d,
            "| its workload out of `Workloads.List` (container deleted, stopped) | {} |",
            spread(&gone)
        );
        m.details = d;
        m.put("out_of_show_ms", &out_of_show);
        m.put("workload_gone_ms", &gone);
        Ok(m)
    }

    // -----------------------------------------------------------------------------------
    // Metabolism.

    async fn metabolism(&self, plan: &Plan) -> Result<Measured> {
        let name = "metab";
        let mut spec = self.spec(name, METABOLISM_PORT);
        spec.max_requests = 1;
        self.create(spec).await?;
        let addr = self.outside(METABOLISM_PORT);
        let n = plan.renewals;
        progress(format!("metabolism: {n} requests, each to a fresh instance"));
        let (early_from, late_from, tenth) = (plan.early, n - plan.window, (n / 10).max(1));
        let in_window = |k: usize| (early_from..early_from + plan.window).contains(&k) || k >= late_from;
        // The reference, at the same moments: a plain `runc run` after every other renewal
        // of each window and once in each tenth of the run, once the next instance is ready
        // and the host has settled (it would slow that instance's start, or be slowed by it).
        let sampled = |k: usize| (in_window(k) && k % 2 == 1) || k % tenth == tenth / 2;
        let started = Instant::now();
        let (mut waits, mut failed, mut raw) = (Vec::with_capacity(n), Vec::<String>::new(), BTreeMap::new());
        let mut held = true;
        for k in 0..n {
            match tokio::task::spawn_blocking(move || get_page(addr)).await? {
                // A request after a reference run found its instance ready: no wait to count.
                Ok((_, end)) => waits.push(if held { end } else { f64::NAN }),
                Err(e) => {
                    waits.push(f64::NAN);
                    failed.push(format!("request {k}: {e:#}"));
                }
            }
            held = true;
            if sampled(k) && k + 1 < n {
                self.wait_for(name, "its next instance ready and alone", |s, listed| {
                    let i = s.instances.first();
                    s.instances.len() == 1
                        && i.is_some_and(|i| i.state() == pb::InstanceState::Ready && i.connections == 0)
                        && listed.len() == 1
                })
                .await?;
                raw.insert(k, self.raw_run(&format!("m{k}"))?.first_byte_ms);
                held = false;
            }
            if (k + 1) % 500 == 0 {
                progress(format!("metabolism: {} of {n} ({:.0} s)", k + 1, started.elapsed().as_secs_f64()));
            }
            if failed.len() > 100 {
                break;
            }
        }
        let seconds = started.elapsed().as_secs_f64();
        let shown = self
            .wait_for(name, "down to one ready instance", |s, listed| {
                s.instances.len() == 1
                    && s.instances[0].state() == pb::InstanceState::Ready
                    && listed.len() == 1
            })
            .await?;
        let summary = shown.service.clone().context("no summary")?;
        let live: HashSet<String> = shown.instances.iter().map(|i| i.id.clone()).collect();
        let left_running = self.leftovers(&live).await?;
        self.remove(name).await?;
        let left_removed = self.leftovers(&HashSet::new()).await?;
        let log = self.instance_log();
        let window = |from: usize| -> (Vec<Logged>, Vec<f64>) {
            let range = from..from + plan.window;
            let logged = range.clone().filter_map(|k| Self::logged(&log, &format!("{name}.{k}"))).collect();
            (logged, range.filter_map(|k| waits.get(k).copied()).filter(|w| !w.is_nan()).collect())
        };
        let (early, early_waits) = window(early_from);
        let (late, late_waits) = window(late_from);
        let raw_in = |from: usize| raw.range(from..from + plan.window).map(|(_, v)| *v).collect::<Vec<f64>>();
        let (raw_early, raw_late) = (raw_in(early_from), raw_in(late_from));
        let ready = |v: &[Logged]| median(&v.iter().map(|l| l.ready_ms).collect::<Vec<_>>());
        let (re, rl) = (ready(&early), ready(&late));
        let mut m = Measured::default();
        m.row(
            &format!("metabolism: bring-up at renewal {n} ≤ 1.1× at renewal {}", plan.early),
            format!("{} (renewals {late_from}-{})", f_ms(rl), n - 1),
            format!("{} (renewals {}-{})", f_ms(re), plan.early, plan.early + plan.window - 1),
            format!("{:.2}×", rl / re),
            "≤ 1.10×",
            Some(rl <= 1.1 * re),
        );
        let (xe, xl) = (median(&raw_early), median(&raw_late));
        m.row(
            "… the same over a plain `runc run` (to first byte) at the same moments",
            format!("{:.2}× `runc run`", rl / xl),
            format!("{:.2}× `runc run`", re / xe),
            format!("{:.2}× (`runc run` itself: {:.2}×)", (rl / xl) / (re / xe), xl / xe),
            "≤ 1.10×",
            Some(rl / xl <= 1.1 * re / xe),
        );
        let (we, wl) = (median(&early_waits), median(&late_waits));
        m.row(
            "… the requests' waits for their fresh instance, same windows",
            f_ms(wl),
            f_ms(we),
            format!("{:.2}×", wl / we),
            "≤ 1.10×",
            Some(wl <= 1.1 * we),
        );
        m.row(
            &format!("metabolism: failed requests in {n} renewals"),
            failed.len().to_string(),
            format!("{} requests", waits.len()),
            String::new(),
            "0",
            Some(failed.is_empty()),
        );
        let clean = left_running.total() == 0 && left_removed.total() == 0;
        m.row(
            "metabolism: left of retired instances (dirs, runtime state, cgroups, records, mounts)",
            format!("{} (running), {} (removed)", left_running.total(), left_removed.total()),
            String::new(),
            String::new(),
            "0",
            Some(clean),
        );
        let mut d = String::new();
        let _ = writeln!(
            d,
            "Metabolism, `--max-requests 1`, {} requests one after another from outside the host ({seconds:.0} s): \
             the service counted {} renewals, {} failures, {} start timeouts, {} connections. Medians (min-max) \
             of {} renewals per window; middlecon's times from its log:\n",
            waits.len(),
            summary.renewals,
            summary.failures,
            summary.start_timeouts,
            summary.connections,
            plan.window
        );
        let _ = writeln!(
            d,
            "| | renewals {}-{} | renewals {late_from}-{} | ratio |",
            plan.early,
            plan.early + plan.window - 1,
            n - 1
        );
        let _ = writeln!(d, "| --- | ---: | ---: | ---: |");
        let lines: [LoggedPart; 4] = [
            ("overlay and `config.json` (`bundle_ms`)", |l| l.bundle_ms),
            ("the runtime's `run` (`runtime_ms`)", |l| l.runtime_ms),
            ("the whole `Run` (`total_ms`)", |l| l.run_ms),
            ("bring-up: `Run` until it accepts (`ready_ms`)", |l| l.ready_ms),
        ];
        for (what, f) in lines {
            let (a, b): (Vec<f64>, Vec<f64>) = (early.iter().map(f).collect(), late.iter().map(f).collect());
            let _ =
                writeln!(d, "| {what} | {} | {} | {:.2}× |", spread(&a), spread(&b), median(&b) / median(&a));
        }
        let _ = writeln!(
            d,
            "| a request's wait (first connect to end) | {} | {} | {:.2}× |",
            spread(&early_waits),
            spread(&late_waits),
            wl / we
        );
        let _ = writeln!(
            d,
            "| the reference: a plain `runc run` to first byte, between renewals | {} | {} | {:.2}× |",
            spread(&raw_early),
            spread(&raw_late),
            xl / xe
        );
        // The trend: the bring-up's median over each tenth of the run, and the reference's.
        let trend: Vec<String> = (0..n.div_ceil(tenth))
            .map(|t| {
                let v: Vec<f64> = (t * tenth..(t + 1) * tenth)
                    .filter_map(|k| log.ready.get(&format!("{name}.{k}")).copied())
                    .collect();
                format!("{:.1}", median(&v))
            })
            .collect();
        let raw_trend: Vec<String> = (0..n.div_ceil(tenth))
            .filter_map(|t| raw.get(&(t * tenth + tenth / 2)).map(|v| format!("{v:.1}")))
            .collect();
        let _ = writeln!(
            d,
            "\nBring-up (`ready_ms`) median per tenth of the run, in ms: {}; a plain `runc run` in each tenth: {}.",
            trend.join(", "),
            raw_trend.join(", ")
        );
        let _ = writeln!(
            d,
            "\nLeft behind, with the last instance running: {left_running}; after `Remove`: {left_removed}."
        );
        if !failed.is_empty() {
            let _ = writeln!(d, "\nFailed requests (the first 5): {:?}", &failed[..failed.len().min(5)]);
        }
        m.details = d;
        m.put("seconds", seconds);
        m.put("early_ready_ms", early.iter().map(|l| l.ready_ms).collect::<Vec<_>>());
        m.put("late_ready_ms", late.iter().map(|l| l.ready_ms).collect::<Vec<_>>());
        m.put("early_waits_ms", &early_waits);
        m.put("late_waits_ms", &late_waits);
        m.put("failed", &failed);
        m.put("trend_ready_ms", &trend);
        m.put("raw_by_renewal_ms", &raw);
        m.put("left_running", &left_running);
        m.put("left_removed", &left_removed);
        Ok(m)
    }

    /// What the host's workloads left that is not one of `live`'s: workload directories
    /// (spares aside), runtime state, cgroups in every hierarchy, records (`List`), mounts
    /// under the workloads directory (in middlecon's mount namespace).
    async fn leftovers(&self, live: &HashSet<String>) -> Result<Leftovers> {
        let foreign = |name: &str| !live.contains(name);
        let names = |dir: &Path| -> Vec<String> {
            std::fs::read_dir(dir)
                .into_iter()
                .flatten()
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| foreign(n))
                .collect()
        };
        let workloads = self.state_dir.join("workloads");
        let dirs = names(&workloads).into_iter().filter(|n| !n.starts_with(".spare-")).collect();
        let runtime_state = names(&self.state_dir.join("runtime/runc"));
        let mut cgroups = Vec::new();
        for h in cgroup::hierarchies() {
            let dir = h.join(cgroup::ROOT).join(&self.daemon_id);
            cgroups.extend(
                names(&dir)
                    .into_iter()
                    .filter(|n| dir.join(n).is_dir())
                    .map(|n| format!("{}/{n}", h.display())),
            );
        }
        let records = self.list().await?.into_iter().map(|w| w.name).filter(|n| foreign(n)).collect();
        let pid = self.daemon_pid()?;
        let mountinfo = std::fs::read_to_string(format!("/proc/{pid}/mountinfo"))?;
        let prefix = format!("{}/", workloads.display());
        let mounts = mountinfo
            .lines()
            .filter_map(|l| l.split(' ').nth(4))
            .filter_map(|point| point.strip_prefix(&prefix))
            .filter(|rest| {
                let owner = rest.split('/').next().unwrap_or("");
                !owner.starts_with(".spare-") && foreign(owner)
            })
            .map(String::from)
            .collect();
        Ok(Leftovers { dirs, runtime_state, cgroups, records, mounts })
    }

    /// CPU seconds used so far by workload `id`'s processes, children included: its cgroup's
    /// `cpuacct.usage` (cgroup v1) or `cpu.stat` (v2).
    fn cgroup_cpu(&self, id: &str) -> f64 {
        cgroup::hierarchies()
            .iter()
            .map(|h| h.join(cgroup::ROOT).join(&self.daemon_id).join(id))
            .find_map(|dir| {
                if let Ok(ns) = std::fs::read_to_string(dir.join("cpuacct.usage")) {
                    return ns.trim().parse::<f64>().ok().map(|ns| ns / 1e9);
                }
                let stat = std::fs::read_to_string(dir.join("cpu.stat")).ok()?;
                stat.lines()
                    .find_map(|l| l.strip_prefix("usage_usec ")?.parse::<f64>().ok())
                    .map(|us| us / 1e6)
            })
            .unwrap_or(f64::NAN)
    }

    /// middlecon's pid (in this process's PID namespace).
    fn daemon_pid(&self) -> Result<u32> {
        pid_of(&self.daemon)
    }

    /// Removes every service (after an error), so that no instance or cgroup is left.
    async fn remove_all(&self) {
        let Ok(list) = self.services.clone().list(pb::ListServicesRequest {}).await else { return };
        for s in list.into_inner().services {
            if let Some(spec) = s.spec {
                let _ = self.remove(&spec.name).await;
            }
        }
    }
}

/// The pid (in this PID namespace) of a program started inside a host: its wrapper's child
/// (`HostProcess::init_pid` needs `&mut`).
fn pid_of(p: &HostProcess) -> Result<u32> {
    let wrapper = p.wrapper_pid();
    let children = std::fs::read_to_string(format!("/proc/{wrapper}/task/{wrapper}/children"))
        .with_context(|| format!("the wrapper {wrapper}"))?;
    children.split_whitespace().next().and_then(|p| p.parse().ok()).context("the program is not running")
}

/// middlecon's times for one instance.
#[derive(Debug, Clone, Copy, Serialize)]
struct Logged {
    /// From the start of its `Run` until it accepted on its port.
    ready_ms: f64,
    /// Its `Run`, and the overlay and `config.json`, and the runtime's `run`, within it.
    run_ms: f64,
    bundle_ms: f64,
    runtime_ms: f64,
}

/// A row of a table of [`Logged`] times: its label and its field.
type LoggedPart = (&'static str, fn(&Logged) -> f64);

/// The instance lines of middlecon's log, by instance.
#[derive(Debug, Default)]
struct InstanceLog {
    ready: BTreeMap<String, f64>,
    /// `[total_ms, bundle_ms, runtime_ms]` of `workload running`.
    running: BTreeMap<String, [f64; 3]>,
}

/// What retired instances left on the host.
#[derive(Debug, Default, Serialize)]
struct Leftovers {
    dirs: Vec<String>,
    runtime_state: Vec<String>,
    cgroups: Vec<String>,
    records: Vec<String>,
    mounts: Vec<String>,
}

impl Leftovers {
    fn total(&self) -> usize {
        self.dirs.len()
            + self.runtime_state.len()
            + self.cgroups.len()
            + self.records.len()
            + self.mounts.len()
    }
}

impl std::fmt::Display for Leftovers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let part = |what: &str, v: &[String]| match v.len() {
            0 => format!("0 {what}"),
            n => format!("{n} {what} ({})", v.iter().take(3).cloned().collect::<Vec<_>>().join(", ")),
        };
        write!(
            f,
            "{}, {}, {}, {}, {}",
            part("workload directories", &self.dirs),
            part("runtime states", &self.runtime_state),
            part("cgroups", &self.cgroups),
            part("records", &self.records),
            part("mounts", &self.mounts)
        )
    }
}

async fn run(args: &RunArgs, plan: &Plan) -> Result<(String, serde_json::Value)> {
    let started = Instant::now();
    let date = time::OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339)?;
    let load_start = probe::loadavg();
    let middlecon = match &args.middlecon {
        // Absolute: the daemon is started from inside the host, in another directory.
        Some(p) => std::fs::canonicalize(p).with_context(|| format!("--middlecon {}", p.display()))?,
        None => sibling("middlecon")?,
    };
    // The host's init (`Fleet::boot`), which `dcos_tests::bin` finds next to this executable.
    sibling(dcos_tests::netns::HOST_INIT)?;
    let b = Bench::new(&middlecon, &args.steering).await?;
    let sections = if args.only.is_empty() {
        vec![
            Section::Cold,
            Section::Prestart,
            Section::Relay,
            Section::Keepalive,
            Section::Scale,
            Section::Idle,
            Section::Metabolism,
        ]
    } else {
        args.only.clone()
    };
    let mut measured = Vec::new();
    let mut failure = None;
    for s in &sections {
        let m = match s {
            Section::Cold => b.cold(plan).await,
            Section::Prestart => b.prestart(plan).await,
            Section::Relay => b.relay(plan, false).await,
            Section::Keepalive => b.relay(plan, true).await,
            Section::Scale => b.scale(plan).await,
            Section::Idle => b.idle(plan).await,
            Section::Metabolism => b.metabolism(plan).await,
        };
        match m {
            Ok(m) => measured.push((*s, m)),
            Err(e) => {
                failure = Some(e.context(format!("{s:?}")));
                break;
            }
        }
    }
    b.remove_all().await;
    let left = cgroup::Cgroups::new(REF_DAEMON).remove_all(Duration::from_secs(2));
    if !left.is_empty() {
        progress(format!("the reference's cgroups left behind: {left:?}"));
    }
    if let Some(e) = failure {
        return Err(e.context(format!("middlecon's log (tail): {}", tail(&b.daemon.stderr(), 40))));
    }
    let mut out = String::new();
    let _ = writeln!(out, "### Results: one run, {date}\n");
    let note = args.report.note.as_ref().map(|n| format!("\n- {n}")).unwrap_or_default();
    let _ = writeln!(out, "- machine: {}{note}", probe::machine());
    let _ = writeln!(
        out,
        "- one host: network namespace `{}` on a bridge (`{}`), booted with its own PID and mount namespaces, running the release middlecon ({}, `--service-steering {}`); instances and the reference are busybox `httpd` (`{HTTPD}`) in runc containers; {}",
        b.fleet.host(0).addr,
        b.fleet.gateway,
        middlecon.display(),
        args.steering,
        probe::version(&b.runc)
    );
    out.push_str(&dcos_bench::report::closing_lines(&load_start, started));
    let _ = writeln!(out, "| target | figure (median) | reference (same run) | ratio | limit | result |");
    let _ = writeln!(out, "| --- | ---: | ---: | ---: | --- | --- |");
    let mut json = serde_json::Map::new();
    json.insert("date".into(), date.clone().into());
    json.insert("plan".into(), serde_json::to_value(plan)?);
    let mut rows = Vec::new();
    for (_, m) in &measured {
        for r in &m.rows {
            let result = match r.pass {
                Some(true) => "PASS",
                Some(false) => "FAIL",
                None => "",
            };
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {result} |",
                r.target, r.figure, r.reference, r.ratio, r.limit
            );
            rows.push(r.clone());
        }
    }
    json.insert("rows".into(), serde_json::to_value(&rows)?);
    for (s, m) in &measured {
        let _ = writeln!(out, "\n{}", m.details.trim_end());
        json.insert(format!("{s:?}").to_lowercase(), serde_json::Value::Object(m.json.clone()));
    }
    Ok((out, serde_json::Value::Object(json)))
}

/// The last `n` lines of `text`.
fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
