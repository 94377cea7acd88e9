//! The service front relay benchmark (issue 15): a warm request through a front's byte relay
//! (`middlecon::services::relay`) side by side, in one run, with the same request straight
//! to the upstream, for each way the relay can copy bytes.
//!
//! Modes of one binary:
//!
//! - `relay-bench run`: the driver. It starts the upstreams and one front process per
//!   copier, then times, run after run, every cell of: upstream × connection handling ×
//!   response size × concurrent connections, over each path: straight to the upstream, and
//!   through a front that relays with the adaptive copy (the default), with splice alone,
//!   with the relay's buffered copy, and with tokio's `copy_bidirectional` (64 KiB buffers, a reference for the buffered copy).
//!   Connection handling: one connection per request, as an HTTP/1.0 client makes them
//!   (connect, send, read to the end), or every request on one kept-alive connection per
//!   client. Latency cells (one connection) take the paths in turn request by request, so
//!   load from elsewhere on the machine falls on all paths alike; throughput cells (many
//!   connections) run each path alone, in an order rotating from cell to cell and run to
//!   run. It reports the medians over the runs of p50, p99 and requests/s, the medians of
//!   each run's ratio to the direct path, the fronts' CPU per request, and a verdict against
//!   the targets.
//! - `relay-bench upstream`: the small upstream: a tokio server whose requests say how many
//!   bytes they are, how many bytes to answer, and whether to close after the answer.
//! - `relay-bench front --copier C --upstream ADDR...`: one listener per upstream; each
//!   connection it accepts is connected to that upstream and relayed, as a service's front
//!   does with an instance.
//!
//! Upstreams: the small server above, and busybox `httpd` (if `--busybox` exists) serving a
//! file of each response size (it closes after each answer, so only one connection per
//! request). Processes: the driver (clients), the upstream, busybox, and each front, each on
//! a 2-worker tokio runtime like middlecon; all on 127.0.0.1.
//!
//! Run it through `scripts/bench-relay.sh` (release build). See `docs/benchmarks.md`.

#![forbid(unsafe_code)]

use anyhow::{bail, ensure, Context, Result};
use clap::{Args, Parser, Subcommand, ValueEnum};
use dcos_bench::probe;
use dcos_bench::stats::{percentile, summarize};
use middlecon::services::relay;
use std::fmt::Write as _;
use std::io::BufRead;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The targets: through the front, p50 and p99 at most this times direct ...
const LATENCY_TARGET: f64 = 1.15;
/// ... and at least this times direct's requests/s at 64 connections.
const THROUGHPUT_TARGET: f64 = 0.8;
/// A request to the small upstream: mode byte, its own length, the answer's length.
const HEAD: usize = 9;
/// Mode bytes: close after the answer, or wait for the next request.
const CLOSE: u8 = b'C';
const KEEP: u8 = b'K';
/// Any single request slower than this fails the benchmark.
const REQUEST_DEADLINE: Duration = Duration::from_secs(10);

#[derive(Debug, Parser)]
#[command(
    name = "relay-bench",
    about = "A warm request through a service front's relay, side by side with the same request straight to the upstream."
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Measure (the driver).
    Run(RunArgs),
    /// The small upstream (started by `run`).
    #[command(hide = true)]
    Upstream,
    /// A front relaying to upstreams (started by `run`).
    #[command(hide = true)]
    Front(FrontArgs),
}

#[derive(Debug, Args)]
struct RunArgs {
    /// How many times the whole grid is measured; the report gives medians over them.
    #[arg(long, default_value_t = 7)]
    runs: usize,
    /// How long each path of a cell is measured in a run, in milliseconds (after the warm-up).
    #[arg(long, default_value_t = 1000)]
    cell_ms: u64,
    /// Requests before this many milliseconds of a cell are made but not counted.
    #[arg(long, default_value_t = 150)]
    warmup_ms: u64,
    /// Bytes of each request to the small upstream (at least 9).
    #[arg(long, default_value_t = 128)]
    request_bytes: usize,
    /// Response sizes in bytes.
    #[arg(long, value_delimiter = ',', default_value = "1024,65536,1048576")]
    sizes: Vec<usize>,
    /// Concurrent connections of the throughput cells.
    #[arg(long, default_value_t = 64)]
    conns: usize,
    /// busybox, for its httpd; skipped if the file does not exist.
    #[arg(long, default_value = "/bin/busybox")]
    busybox: PathBuf,
    #[command(flatten)]
    report: dcos_bench::report::ReportArgs,
}

#[derive(Debug, Args)]
struct FrontArgs {
    #[arg(long, value_enum)]
    copier: FrontCopier,
    /// Upstream addresses; one listener each, printed in this order.
    #[arg(long, required = true)]
    upstream: Vec<SocketAddr>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum FrontCopier {
    Adaptive,
    Splice,
    Buffered,
    Tokio,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Run(args) => dcos_bench::middlecon::run_report("relay-bench", &args.report, run(&args)),
        Cmd::Upstream => serve_until_stdin_closes(upstream()),
        Cmd::Front(args) => serve_until_stdin_closes(front(args)),
    }
}

fn progress(msg: impl AsRef<str>) {
    dcos_bench::report::progress("relay-bench", msg.as_ref());
}

// ---------------------------------------------------------------------------------------
// The helper processes: they print their listening addresses on one line, then serve until
// the driver closes their stdin (or dies).

fn serve_until_stdin_closes(serve: impl std::future::Future<Output = Result<Vec<SocketAddr>>>) -> ExitCode {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build();
    let result = rt.context("starting the runtime").and_then(|rt| {
        rt.block_on(async {
            let addrs = serve.await?;
            let line: Vec<String> = addrs.iter().map(ToString::to_string).collect();
            println!("{}", line.join(" "));
            tokio::task::spawn_blocking(|| std::io::copy(&mut std::io::stdin(), &mut std::io::sink()))
                .await??;
            Ok(())
        })
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("relay-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn listen() -> Result<(TcpListener, SocketAddr)> {
    let listener = TcpListener::bind("127.0.0.1:0").await.context("binding on 127.0.0.1")?;
    let addr = listener.local_addr()?;
    Ok((listener, addr))
}

/// Starts the small upstream; returns its address.
async fn upstream() -> Result<Vec<SocketAddr>> {
    let (listener, addr) = listen().await?;
    tokio::spawn(async move {
        loop {
            match listener.accept().await {
                Ok((sock, _)) => drop(tokio::spawn(answer(sock))),
                Err(e) => eprintln!("relay-bench upstream: accept: {e}"),
            }
        }
    });
    Ok(vec![addr])
}

/// Answers the requests of one connection until the client closes it or asks to close.
async fn answer(mut sock: TcpStream) -> std::io::Result<()> {
    sock.set_nodelay(true)?;
    let mut head = [0u8; HEAD];
    let mut rest = vec![0u8; 4096];
    let mut out = Vec::new();
    loop {
        match sock.read_exact(&mut head).await {
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
            other => other?,
        };
        let len = |at: usize| u32::from_be_bytes(head[at..at + 4].try_into().unwrap_or_default()) as usize;
        let (mut left, answer_len) = (len(1).saturating_sub(HEAD), len(5));
        while left > 0 {
            let n = left.min(rest.len());
            sock.read_exact(&mut rest[..n]).await?;
            left -= n;
        }
        out.resize(answer_len.max(out.len()), b'x');
        sock.write_all(&out[..answer_len]).await?;
        if head[0] == CLOSE {
            return Ok(());
        }
    }
}

/// Starts one listener per upstream, relaying with `args.copier`; returns their addresses.
async fn front(args: FrontArgs) -> Result<Vec<SocketAddr>> {
    let mut addrs = Vec::new();
    for upstream in args.upstream {
        let (listener, addr) = listen().await?;
        addrs.push(addr);
        tokio::spawn(async move {
            loop {
                match listener.accept().await {
                    Ok((client, _)) => drop(tokio::spawn(relay_to(args.copier, client, upstream))),
                    Err(e) => eprintln!("relay-bench front: accept: {e}"),
                }
            }
        });
    }
    Ok(addrs)
}

async fn relay_to(copier: FrontCopier, mut client: TcpStream, upstream: SocketAddr) {
    let done = match TcpStream::connect(upstream).await {
        Ok(up) => match copier {
            FrontCopier::Adaptive => relay::relay_with(relay::Copier::Adaptive, client, up).await.map(drop),
            FrontCopier::Splice => relay::relay_with(relay::Copier::Splice, client, up).await.map(drop),
            FrontCopier::Buffered => relay::relay_with(relay::Copier::Buffered, client, up).await.map(drop),
            FrontCopier::Tokio => tokio_copy(&mut client, up).await,
        },
        Err(e) => Err(e),
    };
    if let Err(e) = done {
        eprintln!("relay-bench front ({copier:?}): {e}");
    }
}

async fn tokio_copy(client: &mut TcpStream, mut up: TcpStream) -> std::io::Result<()> {
    client.set_nodelay(true)?;
    up.set_nodelay(true)?;
    tokio::io::copy_bidirectional_with_sizes(client, &mut up, 64 * 1024, 64 * 1024).await.map(drop)
}

/// A helper process; killed when dropped.
struct Helper {
    child: Child,
    addrs: Vec<SocketAddr>,
}

impl Helper {
    /// Starts this binary with `args` and reads the addresses it prints.
    fn start(args: &[String]) -> Result<Helper> {
        let exe = std::env::current_exe()?;
        let mut child = Command::new(&exe)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting {} {}", exe.display(), args.join(" ")))?;
        let mut line = String::new();
        let stdout = child.stdout.take().context("helper stdout")?;
        std::io::BufReader::new(stdout).read_line(&mut line)?;
        let addrs = line.split_whitespace().map(str::parse).collect::<Result<Vec<SocketAddr>, _>>();
        match addrs {
            Ok(addrs) if !addrs.is_empty() => Ok(Helper { child, addrs }),
            _ => bail!("{} {} printed {line:?}, not its addresses", exe.display(), args.join(" ")),
        }
    }

    fn pid(&self) -> i32 {
        self.child.id() as i32
    }
}

impl Drop for Helper {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// busybox `httpd` serving a file of each size as `/N`; killed when dropped.
struct Httpd {
    child: Child,
    addr: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Httpd {
    async fn start(busybox: &std::path::Path, sizes: &[usize]) -> Result<Httpd> {
        let dir = tempfile::tempdir()?;
        for &size in sizes {
            std::fs::write(dir.path().join(size.to_string()), vec![b'x'; size])?;
        }
        // A free port: the kernel's pick, released for httpd to bind.
        let addr = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
        let child = Command::new(busybox)
            .args(["httpd", "-f", "-p", &addr.to_string(), "-h"])
            .arg(dir.path())
            .stdin(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {} httpd", busybox.display()))?;
        let httpd = Httpd { child, addr, _dir: dir };
        let deadline = Instant::now() + Duration::from_secs(5);
        while TcpStream::connect(addr).await.is_err() {
            ensure!(Instant::now() < deadline, "busybox httpd did not listen on {addr} within 5 s");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Ok(httpd)
    }
}

impl Drop for Httpd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------------------
// The driver.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Server {
    Small,
    Httpd,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Conn {
    PerRequest,
    KeptAlive,
}

/// One cell of the grid; each is measured over every path.
#[derive(Debug, Clone, Copy)]
struct Cell {
    server: Server,
    conn: Conn,
    size: usize,
    conns: usize,
}

impl Cell {
    fn label(&self) -> String {
        let server = match self.server {
            Server::Small => "small server",
            Server::Httpd => "busybox httpd",
        };
        let conn = match self.conn {
            Conn::PerRequest => "new connection",
            Conn::KeptAlive => "kept alive",
        };
        format!("{server}, {conn}, {}", size_label(self.size))
    }
}

fn size_label(size: usize) -> String {
    match size {
        s if s >= 1 << 20 && s % (1 << 20) == 0 => format!("{} MiB", s >> 20),
        s if s >= 1 << 10 && s % (1 << 10) == 0 => format!("{} KiB", s >> 10),
        s => format!("{s} B"),
    }
}

/// The paths a request can take: straight, then through each front.
const PATHS: [&str; 5] = ["direct", "adaptive", "splice", "buffered", "tokio copy"];
const FRONTS: [FrontCopier; 4] =
    [FrontCopier::Adaptive, FrontCopier::Splice, FrontCopier::Buffered, FrontCopier::Tokio];

/// One path of one cell in one run.
#[derive(Debug, Clone, Copy, Default)]
struct Measured {
    p50_us: f64,
    p99_us: f64,
    per_s: f64,
    /// The front process's CPU per request, over the cell with its warm-up (NaN direct).
    front_cpu_us: f64,
}

/// What a request is sent to, and the request bytes.
struct Target {
    addr: SocketAddr,
    cell: Cell,
    request: Vec<u8>,
}

impl Target {
    fn new(addr: SocketAddr, cell: Cell, request_bytes: usize) -> Target {
        let request = match cell.server {
            Server::Small => {
                let mode = if cell.conn == Conn::KeptAlive { KEEP } else { CLOSE };
                let len = request_bytes.max(HEAD);
                let mut r = vec![b'r'; len];
                r[0] = mode;
                r[1..5].copy_from_slice(&(len as u32).to_be_bytes());
                r[5..9].copy_from_slice(&(cell.size as u32).to_be_bytes());
                r
            }
            Server::Httpd => format!("GET /{} HTTP/1.0\r\nHost: bench\r\n\r\n", cell.size).into_bytes(),
        };
        Target { addr, cell, request }
    }

    async fn connect(&self) -> Result<TcpStream> {
        let sock =
            TcpStream::connect(self.addr).await.with_context(|| format!("connecting to {}", self.addr))?;
        sock.set_nodelay(true)?;
        Ok(sock)
    }

    /// One request and its whole answer, on `kept` if the cell keeps connections alive.
    async fn request(&self, kept: &mut Option<TcpStream>, buf: &mut Vec<u8>) -> Result<()> {
        buf.clear();
        let Some(sock) = kept else {
            let mut sock = self.connect().await?;
            sock.write_all(&self.request).await?;
            sock.read_to_end(buf).await.context("reading the answer")?;
            return self.check(buf);
        };
        sock.write_all(&self.request).await?;
        buf.resize(self.cell.size, 0);
        sock.read_exact(buf).await.context("reading the answer")?;
        Ok(())
    }

    fn check(&self, answer: &[u8]) -> Result<()> {
        let body = match self.cell.server {
            Server::Small => answer.len(),
            Server::Httpd => {
                let head_end =
                    answer.windows(4).position(|w| w == b"\r\n\r\n").context("no HTTP header end")?;
                let status = String::from_utf8_lossy(&answer[..head_end.min(20)]).into_owned();
                ensure!(
                    status.starts_with("HTTP/1.") && status.contains(" 200"),
                    "httpd answered {status:?}"
                );
                answer.len() - head_end - 4
            }
        };
        ensure!(body == self.cell.size, "an answer of {body} bytes, not {}", self.cell.size);
        Ok(())
    }
}

/// One path of a cell: where its requests go, and the front process on the way (if any).
struct Lane {
    target: Arc<Target>,
    front_pid: Option<i32>,
}

/// What a lane's clients got: latencies of the requests started after the warm-up, how
/// many requests in all, and the front's CPU ticks before the first.
struct Tally {
    lat: Vec<f64>,
    all: usize,
    cpu_before: Option<u64>,
}

impl Lane {
    fn tally(&self) -> Result<Tally> {
        Ok(Tally { lat: Vec::new(), all: 0, cpu_before: self.front_pid.map(probe::cpu_ticks).transpose()? })
    }

    /// One request, timed; counted after `from`.
    async fn request(
        &self,
        kept: &mut Option<TcpStream>,
        buf: &mut Vec<u8>,
        from: Instant,
        t: &mut Tally,
    ) -> Result<()> {
        let t0 = Instant::now();
        tokio::time::timeout(REQUEST_DEADLINE, self.target.request(kept, buf))
            .await
            .context("a request took longer than 10 s")??;
        t.all += 1;
        if t0 >= from {
            t.lat.push(t0.elapsed().as_secs_f64() * 1e6);
        }
        Ok(())
    }

    async fn kept(&self) -> Result<Option<TcpStream>> {
        Ok(match self.target.cell.conn {
            Conn::KeptAlive => Some(self.target.connect().await?),
            Conn::PerRequest => None,
        })
    }

    fn measured(&self, mut t: Tally, args: &RunArgs) -> Result<Measured> {
        ensure!(!t.lat.is_empty(), "no request finished");
        let front_cpu_us = match (self.front_pid, t.cpu_before) {
            (Some(pid), Some(before)) => {
                (probe::cpu_ticks(pid)? - before) as f64 / probe::clk_tck() * 1e6 / t.all.max(1) as f64
            }
            _ => f64::NAN,
        };
        t.lat.sort_by(f64::total_cmp);
        Ok(Measured {
            p50_us: percentile(&t.lat, 50.0),
            p99_us: percentile(&t.lat, 99.0),
            per_s: t.lat.len() as f64 / (args.cell_ms as f64 / 1e3),
            front_cpu_us,
        })
    }
}

/// The window of a cell: requests count from the first instant, until the second.
fn window(args: &RunArgs) -> (Instant, Instant) {
    let from = Instant::now() + Duration::from_millis(args.warmup_ms);
    (from, from + Duration::from_millis(args.cell_ms))
}

/// The latency of every lane at once: one client taking the lanes in turn, request by
/// request, from a different lane each round, so that load from elsewhere on the machine
/// falls on all of them alike.
async fn measure_interleaved(lanes: &[Lane], args: &RunArgs) -> Result<Vec<Measured>> {
    let mut kept = Vec::new();
    let mut tallies = Vec::new();
    for lane in lanes {
        kept.push(lane.kept().await?);
        tallies.push(lane.tally()?);
    }
    let mut buf = Vec::new();
    let (from, end) = window(args);
    for round in 0.. {
        if Instant::now() >= end {
            break;
        }
        for k in 0..lanes.len() {
            let i = (round + k) % lanes.len();
            lanes[i]
                .request(&mut kept[i], &mut buf, from, &mut tallies[i])
                .await
                .with_context(|| PATHS[i])?;
        }
    }
    lanes.iter().zip(tallies).map(|(lane, t)| lane.measured(t, args)).collect()
}

/// One lane alone under `cell.conns` clients, each making requests back to back.
async fn measure_loaded(lane: &Lane, args: &RunArgs) -> Result<Measured> {
    let mut total = lane.tally()?;
    let (from, end) = window(args);
    let clients: Vec<_> = (0..lane.target.cell.conns)
        .map(|_| {
            let lane = Lane { target: Arc::clone(&lane.target), front_pid: None };
            tokio::spawn(async move {
                let (mut kept, mut t) = (lane.kept().await?, lane.tally()?);
                let mut buf = Vec::new();
                while Instant::now() < end {
                    lane.request(&mut kept, &mut buf, from, &mut t).await?;
                }
                anyhow::Ok(t)
            })
        })
        .collect();
    for c in clients {
        let t = c.await??;
        total.lat.extend(t.lat);
        total.all += t.all;
    }
    lane.measured(total, args)
}

/// The cells, latency (one connection) and throughput (`conns`), for each server.
fn grid(args: &RunArgs, httpd: bool) -> Vec<Cell> {
    let mut cells = Vec::new();
    for (server, conn) in [
        (Server::Small, Conn::PerRequest),
        (Server::Small, Conn::KeptAlive),
        (Server::Httpd, Conn::PerRequest),
    ] {
        if server == Server::Httpd && !httpd {
            continue;
        }
        for &size in &args.sizes {
            for conns in [1, args.conns] {
                cells.push(Cell { server, conn, size, conns });
            }
        }
    }
    cells
}

async fn run(args: &RunArgs) -> Result<String> {
    ensure!(args.runs > 0 && args.cell_ms > 0, "--runs and --cell-ms must be at least 1");
    ensure!(args.request_bytes >= HEAD, "--request-bytes must be at least {HEAD}");
    ensure!(!args.sizes.is_empty() && args.conns > 0, "--sizes and --conns need a value");
    let date = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    let load_start = probe::loadavg();
    let small = Helper::start(&["upstream".into()])?;
    let httpd = if args.busybox.is_file() {
        Some(Httpd::start(&args.busybox, &args.sizes).await?)
    } else {
        progress(format!("{} is missing: busybox httpd is skipped", args.busybox.display()));
        None
    };
    let mut upstreams = vec![small.addrs[0]];
    upstreams.extend(httpd.as_ref().map(|h| h.addr));
    let fronts = FRONTS
        .iter()
        .map(|c| {
            let copier = format!("{c:?}").to_lowercase();
            let mut a = vec!["front".to_string(), "--copier".into(), copier];
            for u in &upstreams {
                a.extend(["--upstream".into(), u.to_string()]);
            }
            Helper::start(&a)
        })
        .collect::<Result<Vec<_>>>()?;
    let cells = grid(args, httpd.is_some());
    // results[cell][path]: one Measured per run.
    let mut results = vec![vec![Vec::new(); PATHS.len()]; cells.len()];
    let started = Instant::now();
    for run in 0..args.runs {
        for (i, cell) in cells.iter().enumerate() {
            let up = usize::from(cell.server == Server::Httpd);
            let lanes: Vec<Lane> = (0..PATHS.len())
                .map(|path| {
                    let (addr, front_pid) = match path {
                        0 => (upstreams[up], None),
                        f => (fronts[f - 1].addrs[up], Some(fronts[f - 1].pid())),
                    };
                    Lane { target: Arc::new(Target::new(addr, *cell, args.request_bytes)), front_pid }
                })
                .collect();
            let what = || format!("{} × {}", cell.label(), cell.conns);
            let measured = if cell.conns == 1 {
                measure_interleaved(&lanes, args).await.with_context(what)?
            } else {
                let mut m = vec![Measured::default(); PATHS.len()];
                for k in 0..PATHS.len() {
                    // A rotating order, so no path always runs first (or right after another).
                    let path = (k + run + i) % PATHS.len();
                    m[path] = measure_loaded(&lanes[path], args)
                        .await
                        .with_context(|| PATHS[path])
                        .with_context(what)?;
                }
                m
            };
            let mut line = format!("run {}/{}: {}:", run + 1, args.runs, what());
            for (path, m) in measured.into_iter().enumerate() {
                let _ = write!(line, " {} p50 {:.0} µs {:.0}/s;", PATHS[path], m.p50_us, m.per_s);
                results[i][path].push(m);
            }
            progress(line);
        }
    }
    progress(format!("measured in {:.0} s", started.elapsed().as_secs_f64()));
    let env = format!(
        "{date}; {}; load average {load_start} at the start, {} at the end",
        probe::machine(),
        probe::loadavg()
    );
    Ok(report(args, &cells, &results, &env))
}

// ---------------------------------------------------------------------------------------
// The report.

fn median(values: impl Iterator<Item = f64>) -> f64 {
    summarize(&values.collect::<Vec<_>>()).median
}

/// The median over the runs of `f(front) / f(direct)`, run by run.
fn ratio(runs: &[Vec<Measured>], path: usize, f: impl Fn(&Measured) -> f64) -> f64 {
    median(runs[path].iter().zip(&runs[0]).map(|(front, direct)| f(front) / f(direct)))
}

/// Writes a table of the cells `pick` selects, a row per cell and a column per path, each
/// entry from `entry(runs of the cell, path)` with whether a front path meets its target.
/// Returns how many cells each path met its target in, and how many cells there were.
fn table(
    out: &mut String,
    title: &str,
    cells: &[Cell],
    results: &[Vec<Vec<Measured>>],
    pick: impl Fn(&Cell) -> bool,
    entry: impl Fn(&[Vec<Measured>], usize) -> (String, bool),
) -> ([usize; PATHS.len()], usize) {
    let _ =
        writeln!(out, "\n{title}\n\n| cell | {} |\n|---|{}", PATHS.join(" | "), "---:|".repeat(PATHS.len()));
    let (mut met, mut count) = ([0usize; PATHS.len()], 0);
    for (cell, runs) in cells.iter().zip(results).filter(|(c, _)| pick(c)) {
        count += 1;
        let mut row = format!("| {} |", cell.label());
        for (path, met) in met.iter_mut().enumerate() {
            let (text, ok) = entry(runs, path);
            *met += usize::from(ok);
            let _ = write!(row, " {text} |");
        }
        let _ = writeln!(out, "{row}");
    }
    (met, count)
}

fn report(args: &RunArgs, cells: &[Cell], results: &[Vec<Vec<Measured>>], env: &str) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "### Service front relay: {} runs of {} ms per cell\n\n{env}.",
        args.runs, args.cell_ms
    );
    if let Some(note) = &args.report.note {
        let _ = writeln!(out, "{note}.");
    }
    let _ = writeln!(
        out,
        "\nMedians over the runs; a ratio is the median of each run's ratio to `direct`. \
         Requests of {} B to the small server. With one connection the paths take turns \
         request by request; with more, each runs alone.",
        args.request_bytes
    );
    let med = |runs: &[Vec<Measured>], path: usize, f: fn(&Measured) -> f64| median(runs[path].iter().map(f));
    let (latency_met, latency_cells) = table(
        &mut out,
        "One connection, a request at a time: p50 / p99 in µs (× direct)",
        cells,
        results,
        |c| c.conns == 1,
        |runs, path| {
            let (p50, p99) = (med(runs, path, |m| m.p50_us), med(runs, path, |m| m.p99_us));
            if path == 0 {
                return (format!("{p50:.0} / {p99:.0}"), false);
            }
            let (r50, r99) = (ratio(runs, path, |m| m.p50_us), ratio(runs, path, |m| m.p99_us));
            (
                format!("{p50:.0} / {p99:.0} ({r50:.2}× / {r99:.2}×)"),
                r50 <= LATENCY_TARGET && r99 <= LATENCY_TARGET,
            )
        },
    );
    let (throughput_met, throughput_cells) = table(
        &mut out,
        &format!("{} connections: requests/s (× direct); the front's CPU per request in µs", args.conns),
        cells,
        results,
        |c| c.conns > 1,
        |runs, path| {
            let per_s = med(runs, path, |m| m.per_s);
            if path == 0 {
                return (format!("{per_s:.0}"), false);
            }
            let (r, cpu) = (ratio(runs, path, |m| m.per_s), med(runs, path, |m| m.front_cpu_us));
            (format!("{per_s:.0} ({r:.2}×), {cpu:.1} µs"), r >= THROUGHPUT_TARGET)
        },
    );
    let _ = writeln!(
        out,
        "\nTargets (issue 15): p50 and p99 ≤ {LATENCY_TARGET}× direct; ≥ {THROUGHPUT_TARGET}× direct's requests/s at {} connections.\n",
        args.conns
    );
    for path in 1..PATHS.len() {
        let _ = writeln!(
            out,
            "- {}: latency within target in {} of {latency_cells} cells, throughput in {} of {throughput_cells}.",
            PATHS[path], latency_met[path], throughput_met[path]
        );
    }
    out
}
