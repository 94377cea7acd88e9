//! The middlecon request/reply benchmark (issue 4): latency and throughput of a call that
//! crosses two real middlecon daemons, side by side in ONE run with NATS request-reply and
//! with a bare tonic unary call (the floor).
//!
//! - **middlecon**: caller → daemon A (`Messaging.Call` on A's Unix socket) → QUIC (mTLS)
//!   → daemon B → a runtime registered on B's Unix socket with `Messaging.Serve`, which
//!   answers with the payload, and back. Both daemons are the release binary on
//!   127.0.0.1, A knowing B from `--peer`.
//! - **NATS**: Debian's `nats-server` on 127.0.0.1; `async-nats` clients, one subscriber
//!   replying with the payload, callers using `Client::request`.
//! - **tonic**: a `Messaging` server in this process on 127.0.0.1 TCP (h2, no TLS) whose
//!   `Call` answers with the payload.
//!
//! Every cell (payload × concurrent callers × system) runs for a fixed time after a short
//! warm-up, the systems in a rotating order, for several runs; the report gives the
//! medians over the runs of p50, p99 and calls/s, and the ratios middlecon/NATS. It also
//! times `no_responders` (a service nobody serves on B) against `dcos.ping` on B.
//!
//! Run it through `scripts/bench-middlecon.sh` (release build, installs nats-server if
//! missing). See `docs/benchmarks.md`.

use anyhow::{bail, ensure, Context, Result};
use clap::Parser;
use dcos_bench::middlecon::{binary, run_report, Ca, Daemon, Spec};
use dcos_bench::probe;
use dcos_bench::stats::{percentile, summarize};
use dcos_proto::v1 as pb;
use futures::StreamExt;
use pb::messaging_client::MessagingClient;
use pb::Outcome;
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;
use tonic::{Request, Response, Status};

const ECHO: &str = "bench.echo";
const NOBODY: &str = "bench.nobody";
const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
/// `no_responders` is "within one round trip" when its p50 is at most this times the p50
/// of `dcos.ping` on the same host: both are one round trip, and two p50s of the same path
/// measured a moment apart differ by a few percent on a busy machine.
const ROUND_TRIP_NOISE: f64 = 1.1;
/// Every call's deadline, from when it is made.
const DEADLINE: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Parser)]
#[command(
    name = "middlecon-bench",
    about = "Request/reply through two middlecon daemons, side by side with NATS request-reply and a bare tonic call."
)]
struct Args {
    /// Runs of every cell, interleaved; medians over the runs are reported.
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// Milliseconds each cell runs in each run.
    #[arg(long, default_value_t = 1000)]
    cell_ms: u64,
    /// Milliseconds of warm-up (not counted) before each cell.
    #[arg(long, default_value_t = 150)]
    warmup_ms: u64,
    /// At most this many calls per cell and run (the time bound usually comes first).
    #[arg(long, default_value_t = 200_000)]
    max_calls: usize,
    /// Payload sizes in bytes.
    #[arg(long, value_delimiter = ',', default_value = "128,4096")]
    payloads: Vec<usize>,
    /// Concurrent callers.
    #[arg(long, value_delimiter = ',', default_value = "1,64")]
    callers: Vec<usize>,
    /// Sequential calls of each kind in the no_responders measurement, per run.
    #[arg(long, default_value_t = 500)]
    no_responders_calls: usize,
    /// The middlecon binary [default: `middlecon` next to this executable].
    #[arg(long)]
    middlecon: Option<PathBuf>,
    /// The NATS server binary.
    #[arg(long, default_value = "nats-server")]
    nats_server: PathBuf,
    #[command(flatten)]
    report: dcos_bench::report::ReportArgs,
}

fn main() -> ExitCode {
    let args = Args::parse();
    run_report("middlecon-bench", &args.report, run(&args))
}

fn progress(msg: impl AsRef<str>) {
    dcos_bench::report::progress("middlecon-bench", msg.as_ref());
}

// ---------------------------------------------------------------------------------------
// The three systems, each behind the same `call`.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum System {
    Middlecon,
    Nats,
    Tonic,
}

const SYSTEMS: [System; 3] = [System::Middlecon, System::Nats, System::Tonic];

impl System {
    fn label(self) -> &'static str {
        match self {
            System::Middlecon => "middlecon",
            System::Nats => "NATS",
            System::Tonic => "tonic (floor)",
        }
    }
}

/// A caller of one system; clones share the connection.
#[derive(Clone)]
enum Caller {
    /// `Messaging.Call` on daemon A's socket, to `host`.
    Middlecon {
        client: MessagingClient<Channel>,
        host: String,
    },
    Nats(async_nats::Client),
    Tonic(MessagingClient<Channel>),
}

fn call_request(service: &str, host: &str, payload: &[u8]) -> pb::CallRequest {
    pb::CallRequest {
        service: service.into(),
        target: Some(pb::Target { to: Some(pb::target::To::Host(host.into())) }),
        deadline_unix_ms: dcos_core::unix_ms(SystemTime::now() + DEADLINE),
        headers: Default::default(),
        payload: payload.to_vec(),
    }
}

impl Caller {
    /// One echo call; the reply must carry the payload back.
    async fn echo(&mut self, payload: &[u8]) -> Result<()> {
        let back = match self {
            Caller::Middlecon { client, host } => {
                let reply = client.call(call_request(ECHO, host, payload)).await?.into_inner();
                ensure!(
                    reply.outcome() == Outcome::Ok,
                    "middlecon call: {:?}: {}",
                    reply.outcome(),
                    reply.message
                );
                reply.payload
            }
            Caller::Nats(client) => client.request(ECHO, payload.to_vec().into()).await?.payload.to_vec(),
            Caller::Tonic(client) => client.call(call_request(ECHO, "", payload)).await?.into_inner().payload,
        };
        ensure!(
            back == payload,
            "the echo came back with {} bytes, not the {} sent",
            back.len(),
            payload.len()
        );
        Ok(())
    }
}

/// The tonic floor: `Call` answers with its payload; the other methods are not served.
struct TonicEcho;

type NoStream<T> = ReceiverStream<Result<T, Status>>;

#[tonic::async_trait]
impl pb::messaging_server::Messaging for TonicEcho {
    async fn call(&self, request: Request<pb::CallRequest>) -> Result<Response<pb::CallReply>, Status> {
        let payload = request.into_inner().payload;
        Ok(Response::new(pb::CallReply { outcome: Outcome::Ok as i32, payload, ..Default::default() }))
    }

    type QueryStream = NoStream<pb::QueryReply>;

    async fn query(&self, _: Request<pb::QueryRequest>) -> Result<Response<Self::QueryStream>, Status> {
        Err(Status::unimplemented("the tonic floor serves Call only"))
    }

    type ServeStream = NoStream<pb::Delivery>;

    async fn serve(
        &self,
        _: Request<tonic::Streaming<pb::ServeMessage>>,
    ) -> Result<Response<Self::ServeStream>, Status> {
        Err(Status::unimplemented("the tonic floor serves Call only"))
    }
}

/// Starts the tonic floor on 127.0.0.1 and connects a client to it.
async fn tonic_floor() -> Result<MessagingClient<Channel>> {
    let incoming = tonic::transport::server::TcpIncoming::bind(SocketAddr::new(LOCALHOST, 0))
        .context("binding the tonic floor")?
        .with_nodelay(Some(true));
    let addr = incoming.local_addr()?;
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(pb::messaging_server::MessagingServer::new(TonicEcho))
            .serve_with_incoming(incoming),
    );
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))?
        .tcp_nodelay(true)
        .connect()
        .await
        .with_context(|| format!("connecting to the tonic floor at {addr}"))?;
    Ok(MessagingClient::new(channel))
}

/// A runtime on `socket` serving [`ECHO`] with `Messaging.Serve`: answers with the payload.
async fn serve_echo(socket: &Path) -> Result<()> {
    let channel = middlecon_client::connect_unix(socket).await?;
    let mut client = MessagingClient::new(channel);
    let (tx, rx) = mpsc::channel::<pb::ServeMessage>(1024);
    let register = pb::serve_message::Msg::Register(pb::Register { services: vec![ECHO.into()] });
    tx.send(pb::ServeMessage { msg: Some(register) }).await?;
    let mut deliveries = client.serve(ReceiverStream::new(rx)).await.context("Messaging.Serve")?.into_inner();
    match deliveries.message().await.context("the registration's acknowledgement")? {
        Some(pb::Delivery { msg: Some(pb::delivery::Msg::Registered(_)) }) => {}
        other => bail!("Serve answered {other:?}, not Registered"),
    }
    tokio::spawn(async move {
        while let Ok(Some(d)) = deliveries.message().await {
            if let Some(pb::delivery::Msg::Request(r)) = d.msg {
                let resp = pb::Response {
                    id: r.id,
                    outcome: Outcome::Ok as i32,
                    payload: r.payload,
                    ..Default::default()
                };
                let msg = pb::ServeMessage { msg: Some(pb::serve_message::Msg::Response(resp)) };
                if tx.send(msg).await.is_err() {
                    return;
                }
            }
        }
    });
    Ok(())
}

/// `nats-server` on 127.0.0.1, killed when dropped.
struct NatsServer {
    child: Child,
    url: String,
}

impl NatsServer {
    async fn start(bin: &Path, dir: &Path) -> Result<NatsServer> {
        // A port the kernel just handed out, released for the server to bind.
        let port = std::net::TcpListener::bind((LOCALHOST, 0))?.local_addr()?.port();
        let log = std::fs::File::create(dir.join("nats-server.log"))?;
        let child = Command::new(bin)
            .args(["-a", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {} (apt package nats-server)", bin.display()))?;
        let server = NatsServer { child, url: format!("nats://127.0.0.1:{port}") };
        let started = Instant::now();
        while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
            ensure!(
                started.elapsed() < Duration::from_secs(10),
                "nats-server did not listen on {port} within 10 s"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(server)
    }

    fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    fn version(bin: &Path) -> String {
        Command::new(bin)
            .arg("--version")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_default()
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A NATS subscriber on [`ECHO`] replying with the payload, on its own connection.
async fn nats_echo(url: &str) -> Result<()> {
    let client = async_nats::connect(url).await.context("connecting the NATS responder")?;
    let mut sub = client.subscribe(ECHO).await?;
    client.flush().await?;
    tokio::spawn(async move {
        while let Some(m) = sub.next().await {
            if let Some(reply) = m.reply {
                if client.publish(reply, m.payload).await.is_err() {
                    return;
                }
            }
        }
    });
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Measuring one cell.

/// One cell of one run.
#[derive(Debug, Clone, Copy)]
struct Cell {
    p50_us: f64,
    p99_us: f64,
    per_s: f64,
    /// CPU per call of the serving processes (daemons A and B; nats-server; none for the
    /// in-process tonic floor), and of this process (callers, responders), in µs.
    infra_cpu_us: f64,
    bench_cpu_us: f64,
}

/// CPU ticks of a set of processes.
fn ticks(pids: &[i32]) -> u64 {
    pids.iter().map(|&p| probe::cpu_ticks(p).unwrap_or(0)).sum()
}

fn ticks_to_us(t: u64) -> f64 {
    t as f64 / probe::clk_tck() * 1e6
}

/// `callers` tasks calling for `time` (or until `max_calls` in all); latencies in µs.
async fn load(
    caller: &Caller,
    payload: &Arc<Vec<u8>>,
    callers: usize,
    time: Duration,
    max_calls: usize,
) -> Result<(Vec<f64>, Duration)> {
    let start = Instant::now();
    let end = start + time;
    let cap = (max_calls / callers).max(1);
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..callers {
        let mut c = caller.clone();
        let p = payload.clone();
        tasks.spawn(async move {
            let mut lat = Vec::with_capacity(cap.min(65_536));
            while lat.len() < cap && Instant::now() < end {
                let t = Instant::now();
                c.echo(&p).await?;
                lat.push(t.elapsed().as_secs_f64() * 1e6);
            }
            anyhow::Ok(lat)
        });
    }
    let mut all = Vec::new();
    while let Some(r) = tasks.join_next().await {
        all.extend(r.context("a caller task")??);
    }
    Ok((all, start.elapsed()))
}

async fn measure(
    caller: &Caller,
    infra: &[i32],
    payload: usize,
    callers: usize,
    args: &Args,
) -> Result<Cell> {
    let payload = Arc::new((0..payload).map(|i| (i % 251) as u8).collect::<Vec<u8>>());
    load(caller, &payload, callers, Duration::from_millis(args.warmup_ms), args.max_calls).await?;
    let (i0, b0) = (ticks(infra), ticks(&[std::process::id() as i32]));
    let (mut lat, elapsed) =
        load(caller, &payload, callers, Duration::from_millis(args.cell_ms), args.max_calls).await?;
    let (i1, b1) = (ticks(infra), ticks(&[std::process::id() as i32]));
    lat.sort_by(f64::total_cmp);
    let n = lat.len() as f64;
    Ok(Cell {
        p50_us: percentile(&lat, 50.0),
        p99_us: percentile(&lat, 99.0),
        per_s: n / elapsed.as_secs_f64(),
        infra_cpu_us: if infra.is_empty() { f64::NAN } else { ticks_to_us(i1 - i0) / n },
        bench_cpu_us: ticks_to_us(b1 - b0) / n,
    })
}

/// p50 of `n` sequential calls of `service` on `host` through daemon A, each answered
/// with `expect` (µs).
async fn sequential(
    client: &MessagingClient<Channel>,
    host: &str,
    service: &str,
    expect: Outcome,
    n: usize,
) -> Result<Vec<f64>> {
    let mut c = client.clone();
    let mut lat = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        let reply = c.call(call_request(service, host, b"")).await?.into_inner();
        lat.push(t.elapsed().as_secs_f64() * 1e6);
        ensure!(
            reply.outcome() == expect,
            "{service} on {host}: {:?}, not {expect:?}: {}",
            reply.outcome(),
            reply.message
        );
    }
    Ok(lat)
}

/// The same for NATS: `n` requests to a subject nobody subscribes to (µs).
async fn nats_no_responders(client: &async_nats::Client, n: usize) -> Result<Vec<f64>> {
    let mut lat = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        let r = client.request(NOBODY, Vec::new().into()).await;
        lat.push(t.elapsed().as_secs_f64() * 1e6);
        match r {
            Err(e) if e.kind() == async_nats::RequestErrorKind::NoResponders => {}
            other => bail!("a NATS request to {NOBODY} gave {other:?}, not no responders"),
        }
    }
    Ok(lat)
}

fn p50(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    percentile(&v, 50.0)
}

// ---------------------------------------------------------------------------------------
// The run.

struct Setup {
    _ca: Ca,
    a: Daemon,
    b: Daemon,
    nats: NatsServer,
    callers: [Caller; 3],
    /// A NATS client for the no_responders comparison.
    nats_client: async_nats::Client,
    mc_client: MessagingClient<Channel>,
}

async fn setup(args: &Args) -> Result<Setup> {
    let bin = binary(args.middlecon.as_deref())?;
    let ca = Ca::new("middlecon-bench-")?;
    let spec = |name: &str| -> Result<Spec> {
        Ok(Spec {
            name: name.into(),
            ip: LOCALHOST,
            port: 0,
            tls: ca.issue_host(name, LOCALHOST)?,
            state_dir: ca.dir.path().join(name),
            seeds: vec![],
            peers: vec![],
        })
    };
    let b = Daemon::start(&bin, &spec("mc-b")?)?;
    let mut sa = spec("mc-a")?;
    sa.peers = vec![(b.name.clone(), b.addr)];
    let a = Daemon::start(&bin, &sa)?;
    progress(format!("middlecon A at {} and B at {}", a.addr, b.addr));
    serve_echo(&b.socket).await.context("registering the echo runtime on B")?;
    let channel = middlecon_client::connect_unix(&a.socket).await?;
    let mc_client = MessagingClient::new(channel);

    let nats = NatsServer::start(&args.nats_server, ca.dir.path()).await?;
    progress(format!("{} at {}", NatsServer::version(&args.nats_server), nats.url));
    nats_echo(&nats.url).await?;
    let nats_client = async_nats::ConnectOptions::new()
        .request_timeout(Some(DEADLINE))
        .connect(&nats.url)
        .await
        .context("connecting the NATS caller")?;
    let tonic = tonic_floor().await?;
    let callers = [
        Caller::Middlecon { client: mc_client.clone(), host: b.name.clone() },
        Caller::Nats(nats_client.clone()),
        Caller::Tonic(tonic),
    ];
    // Every path answers before anything is timed.
    for c in &callers {
        c.clone().echo(b"hello").await.context("a first echo call")?;
    }
    Ok(Setup { _ca: ca, a, b, nats, callers, nats_client, mc_client })
}

/// Samples of one cell over the runs.
#[derive(Debug, Default, Clone)]
struct Samples(Vec<Cell>);

impl Samples {
    fn med(&self, f: impl Fn(&Cell) -> f64) -> f64 {
        summarize(&self.0.iter().map(f).collect::<Vec<_>>()).median
    }
}

struct Results {
    /// Indexed by (payload, callers) cell, then system.
    cells: Vec<((usize, usize), [Samples; 3])>,
    none_mc: Vec<f64>,
    ping_mc: Vec<f64>,
    /// `dcos.ping` on daemon A itself: the API hop alone.
    ping_local: Vec<f64>,
    none_nats: Vec<f64>,
    rss: Vec<(String, u64)>,
}

async fn run(args: &Args) -> Result<String> {
    ensure!(args.runs > 0 && args.cell_ms > 0, "--runs and --cell-ms must be at least 1");
    ensure!(!args.payloads.is_empty() && !args.callers.is_empty(), "--payloads and --callers need a value");
    ensure!(args.callers.iter().all(|&c| c > 0), "--callers must be at least 1");
    ensure!(
        args.payloads.iter().all(|&p| p <= 1 << 20),
        "--payloads: at most 1 MiB (nats-server's default max_payload)"
    );
    let date = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    let load_start = probe::loadavg();
    let s = setup(args).await?;
    let mc_pids = [s.a.pid(), s.b.pid()];
    let nats_pid = [s.nats.pid()];
    let infra = |sys: System| -> &[i32] {
        match sys {
            System::Middlecon => &mc_pids,
            System::Nats => &nats_pid,
            System::Tonic => &[],
        }
    };
    let grid: Vec<(usize, usize)> =
        args.payloads.iter().flat_map(|&p| args.callers.iter().map(move |&c| (p, c))).collect();
    let mut r = Results {
        cells: grid.iter().map(|&k| (k, Default::default())).collect(),
        none_mc: vec![],
        ping_mc: vec![],
        ping_local: vec![],
        none_nats: vec![],
        rss: vec![],
    };
    let started = Instant::now();
    for run in 0..args.runs {
        for (i, &(payload, callers)) in grid.iter().enumerate() {
            let mut line = format!("run {}/{}: {payload} B × {callers}:", run + 1, args.runs);
            // A rotating order, so no system always runs first (or right after another).
            for k in 0..SYSTEMS.len() {
                let idx = (k + run + i) % SYSTEMS.len();
                let sys = SYSTEMS[idx];
                let cell = measure(&s.callers[idx], infra(sys), payload, callers, args)
                    .await
                    .with_context(|| format!("{} with {payload} B and {callers} callers", sys.label()))?;
                let _ = write!(line, " {} p50 {:.0} µs {:.0}/s;", sys.label(), cell.p50_us, cell.per_s);
                r.cells[i].1[idx].0.push(cell);
            }
            progress(line);
        }
        // no_responders against one round trip, in alternating blocks.
        let block = (args.no_responders_calls / 5).max(1);
        for _ in 0..5 {
            r.ping_mc.push(p50(sequential(&s.mc_client, &s.b.name, "dcos.ping", Outcome::Ok, block).await?));
            r.none_mc
                .push(p50(sequential(&s.mc_client, &s.b.name, NOBODY, Outcome::NoResponders, block).await?));
            r.none_nats.push(p50(nats_no_responders(&s.nats_client, block).await?));
            r.ping_local
                .push(p50(sequential(&s.mc_client, &s.a.name, "dcos.ping", Outcome::Ok, block).await?));
        }
    }
    progress(format!("measured in {:.0} s", started.elapsed().as_secs_f64()));
    let mut s = s;
    for d in [&mut s.a, &mut s.b] {
        ensure!(d.running(), "{} exited during the benchmark: {}", d.name, d.stderr_tail());
    }
    for (name, pid) in [("middlecon A", s.a.pid()), ("middlecon B", s.b.pid()), ("nats-server", s.nats.pid())]
    {
        r.rss.push((name.into(), probe::status_bytes(pid, "VmRSS").unwrap_or(0)));
    }
    let header = Header { date, load_start, nats_version: NatsServer::version(&args.nats_server) };
    Ok(render(&r, args, &header))
}

// ---------------------------------------------------------------------------------------
// The report.

struct Header {
    date: String,
    load_start: String,
    nats_version: String,
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "PASS"
    } else {
        "FAIL"
    }
}

fn us(v: f64) -> String {
    if v.is_nan() {
        "—".into()
    } else if v < 10.0 {
        format!("{v:.1} µs")
    } else {
        format!("{v:.0} µs")
    }
}

fn payload_label(bytes: usize) -> String {
    if bytes >= 1024 && bytes % 1024 == 0 {
        format!("{} KiB", bytes / 1024)
    } else {
        format!("{bytes} B")
    }
}

fn render(r: &Results, args: &Args, h: &Header) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "### middlecon request/reply benchmark, {}\n", h.date);
    let _ = writeln!(out, "- machine: {}", probe::machine());
    if let Some(note) = &args.report.note {
        let _ = writeln!(out, "- {note}");
    }
    let _ = writeln!(
        out,
        "- middlecon: caller → `Messaging.Call` on daemon A's Unix socket → QUIC (TLS 1.3, mTLS) → daemon B → \
         a runtime on B's Unix socket (`Messaging.Serve`) echoing the payload, and back; two release `middlecon` \
         processes on 127.0.0.1"
    );
    let _ = writeln!(
        out,
        "- NATS: {} on 127.0.0.1 (defaults, plain TCP, no TLS); async-nats `Client::request` callers on one \
         connection, one subscriber echoing on another",
        h.nats_version
    );
    let _ = writeln!(
        out,
        "- tonic (floor): a `Messaging` server in the benchmark process on 127.0.0.1 TCP (h2, no TLS) whose \
         `Call` echoes the payload"
    );
    let _ = writeln!(
        out,
        "- callers and responders share this benchmark process (tokio, 2 worker threads); every caller's clone \
         shares one connection; each cell runs {} ms after {} ms of warm-up, in a rotating order of the systems; \
         {} runs; figures are medians over the runs of each run's p50, p99 and calls/s",
        args.cell_ms, args.warmup_ms, args.runs
    );
    let _ = writeln!(
        out,
        "- load average (1, 5, 15 min) at the start: {}; at the end: {}\n",
        h.load_start,
        probe::loadavg()
    );

    let _ = writeln!(
        out,
        "| payload | callers | system | p50 | p99 | calls/s | server CPU / call | bench CPU / call |"
    );
    let _ = writeln!(out, "| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: |");
    for ((payload, callers), samples) in &r.cells {
        for (idx, sys) in SYSTEMS.iter().enumerate() {
            let s = &samples[idx];
            let _ = writeln!(
                out,
                "| {} | {callers} | {} | {} | {} | {:.0} | {} | {} |",
                payload_label(*payload),
                sys.label(),
                us(s.med(|c| c.p50_us)),
                us(s.med(|c| c.p99_us)),
                s.med(|c| c.per_s),
                us(s.med(|c| c.infra_cpu_us)),
                us(s.med(|c| c.bench_cpu_us)),
            );
        }
    }
    let _ = writeln!(
        out,
        "\nServer CPU is the user + system time of daemons A and B together (middlecon) or of nats-server, per call; \
         bench CPU is this process's (callers and responders; for tonic, the server too). From `/proc/PID/stat`, \
         {:.0} ms ticks.\n",
        1e3 / probe::clk_tck()
    );

    let _ = writeln!(out, "| measure | middlecon | NATS | middlecon ÷ NATS | target | result |");
    let _ = writeln!(out, "| --- | ---: | ---: | ---: | --- | --- |");
    for ((payload, callers), samples) in &r.cells {
        let (mc, nats) = (&samples[0], &samples[1]);
        let cell =
            format!("{}, {callers} caller{}", payload_label(*payload), if *callers == 1 { "" } else { "s" });
        if *callers == 1 {
            let (m50, n50) = (mc.med(|c| c.p50_us), nats.med(|c| c.p50_us));
            let (m99, n99) = (mc.med(|c| c.p99_us), nats.med(|c| c.p99_us));
            let _ = writeln!(
                out,
                "| p50, {cell} | {} | {} | {:.2} | ≤ NATS (aim ≤ 100 µs: {}) | {} |",
                us(m50),
                us(n50),
                m50 / n50,
                if m50 <= 100.0 { "met" } else { "missed" },
                verdict(m50 <= n50)
            );
            let _ = writeln!(
                out,
                "| p99, {cell} | {} | {} | {:.2} | ≤ NATS | {} |",
                us(m99),
                us(n99),
                m99 / n99,
                verdict(m99 <= n99)
            );
        }
        let (mt, nt) = (mc.med(|c| c.per_s), nats.med(|c| c.per_s));
        let target = if *callers >= 64 { "≥ NATS" } else { "(stated)" };
        let result = if *callers >= 64 { verdict(mt >= nt) } else { "" };
        let _ =
            writeln!(out, "| calls/s, {cell} | {mt:.0} | {nt:.0} | {:.2} | {target} | {result} |", mt / nt);
    }
    let none = summarize(&r.none_mc).median;
    let ping = summarize(&r.ping_mc).median;
    let none_nats = summarize(&r.none_nats).median;
    let _ = writeln!(
        out,
        "| `no_responders` p50 (middlecon: a service nobody serves on B; NATS: a subject nobody subscribes to) | {} | {} | {:.2} | within one round trip: ≤ 1.1 × middlecon's `dcos.ping` on B (p50 {}; here {:.2} ×) | {} |",
        us(none),
        us(none_nats),
        none / none_nats,
        us(ping),
        none / ping,
        verdict(none <= ROUND_TRIP_NOISE * ping)
    );
    let local = summarize(&r.ping_local).median;
    let echo_1 = r.cells.iter().find(|((_, c), _)| *c == 1).map(|((p, _), s)| (*p, s[0].med(|c| c.p50_us)));
    let _ = writeln!(
        out,
        "\n`no_responders` and `dcos.ping`: {} sequential calls of each per run, in alternating blocks; the median \
         of the blocks' p50s.\n",
        args.no_responders_calls
    );
    let _ = writeln!(out, "Where a middlecon call's time goes (one caller, p50s):\n");
    let _ = writeln!(out, "| path | p50 | step | adds |");
    let _ = writeln!(out, "| --- | ---: | --- | ---: |");
    let _ = writeln!(
        out,
        "| `dcos.ping` on A itself | {} | caller ↔ A (gRPC on the Unix socket) | {} |",
        us(local),
        us(local)
    );
    let _ =
        writeln!(out, "| `dcos.ping` on B through A | {} | A ↔ B (QUIC) | {} |", us(ping), us(ping - local));
    if let Some((payload, echo)) = echo_1 {
        let _ = writeln!(
            out,
            "| echo of {} on B's runtime through A | {} | B ↔ runtime (`Serve` stream) and the payload | {} |",
            payload_label(payload),
            us(echo),
            us(echo - ping)
        );
    }
    let rss: Vec<String> =
        r.rss.iter().map(|(name, b)| format!("{name} {:.1} MB", *b as f64 / 1e6)).collect();
    let _ = writeln!(out, "\nResident memory at the end: {}.", rss.join(", "));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_are_labelled_in_bytes_or_kib() {
        assert_eq!(payload_label(128), "128 B");
        assert_eq!(payload_label(4096), "4 KiB");
        assert_eq!(payload_label(1000), "1000 B");
    }

    #[test]
    fn microseconds_are_rounded_for_reading() {
        assert_eq!(us(87.4), "87 µs");
        assert_eq!(us(3.25), "3.2 µs");
        assert_eq!(us(f64::NAN), "—");
    }
}
