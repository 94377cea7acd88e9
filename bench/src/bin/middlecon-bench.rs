//! The middlecon request/reply benchmark (issues 4 and 19): latency, throughput and CPU per
//! call of a call that crosses two real middlecon daemons, side by side in ONE run with
//! NATS request-reply (as a fleet runs it, and as one plain server) and with a bare tonic
//! unary call (the floor).
//!
//! - **middlecon**: caller → daemon A (`Messaging.Call` on A's Unix socket) → QUIC (mTLS)
//!   → daemon B → a runtime registered on B's Unix socket with `Messaging.Serve`, which
//!   answers with the payload, and back. Both daemons are the release binary on
//!   127.0.0.1, A knowing B from `--peer`. The caller speaks gRPC, or (**middlecon, local
//!   protocol**) the lean local protocol (`middlecon_client::LocalClient`) on the same socket.
//! - **middlecon, local protocol, two workers**: the same on a second pair of daemons that
//!   run two tokio workers (`DCOS_WORKER_THREADS=2`, as middlecon did before issue 19)
//!   instead of one thread, with its own runtime.
//! - **NATS clustered, TLS** (the fair anchor): one `nats-server` per host (A and B, both on
//!   127.0.0.1 like the daemons), routed to each other, TLS with verified certificates of
//!   the same fleet CA on client and route connections; the caller on A's server, the
//!   responder on B's.
//! - **NATS single, plain**: one `nats-server` with its defaults (plain TCP), caller and
//!   responder on it.
//! - **tonic**: a `Messaging` server in this process on 127.0.0.1 TCP (h2, no TLS) whose
//!   `Call` answers with the payload.
//!
//! Each system's responder is a process of its own (this binary, `respond`), so the report
//! gives the CPU per call of every process a call crosses: caller (this process), server
//! or daemon A, B, responder. Every cell (payload × concurrent callers × system) runs for a
//! fixed time after a short warm-up, the systems in a rotating order, for several runs; the
//! report gives the medians over the runs of p50, p99, calls/s and CPU, and the ratios of
//! middlecon to each NATS. It also times `no_responders` (a service nobody serves on B)
//! against `dcos.ping` on B.
//!
//! Run it through `scripts/bench-middlecon.sh` (release build, installs nats-server if
//! missing). See `docs/benchmarks.md`.

use anyhow::{bail, ensure, Context, Result};
use clap::Parser;
use dcos_bench::middlecon::{binary, run_report, Ca, Daemon, Spec};
use dcos_bench::nats::{self, Member, NatsServer};
use dcos_bench::probe;
use dcos_bench::stats::{percentile, summarize};
use dcos_core::tls::TlsFiles;
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
/// How long a path may take to answer its first call (a cluster's routes and interest).
const FIRST_CALL: Duration = Duration::from_secs(15);

#[derive(Debug, Clone, Parser)]
#[command(
    name = "middlecon-bench",
    about = "Request/reply through two middlecon daemons, side by side with NATS request-reply (clustered with TLS, and a single plain server) and a bare tonic call."
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
    /// Measure only these systems (all are started); e.g. `--only middlecon` to profile it.
    #[arg(long, value_delimiter = ',', value_enum)]
    only: Vec<System>,
    #[command(flatten)]
    report: dcos_bench::report::ReportArgs,
}

/// `middlecon-bench respond`: the echo responder of one system, in a process of its own.
/// Prints `ready` once it serves; exits when its stdin closes.
#[derive(Debug, Parser)]
#[command(name = "middlecon-bench respond")]
struct Respond {
    /// Serve on this middlecon's Unix socket (`Messaging.Serve`).
    #[arg(long, conflicts_with = "nats")]
    middlecon: Option<PathBuf>,
    /// Subscribe on this NATS server.
    #[arg(long)]
    nats: Option<String>,
    /// TLS for NATS: the client certificate.
    #[arg(long, requires_all = ["key", "ca"])]
    cert: Option<PathBuf>,
    #[arg(long)]
    key: Option<PathBuf>,
    #[arg(long)]
    ca: Option<PathBuf>,
}

impl Args {
    /// Whether `sys` is measured (`--only`).
    fn measures(&self, sys: System) -> bool {
        self.only.is_empty() || self.only.contains(&sys)
    }
}

fn main() -> ExitCode {
    if std::env::args_os().nth(1).is_some_and(|a| a == "respond") {
        let r = Respond::parse_from(std::env::args_os().skip(1));
        return dcos_bench::report::exit_code("middlecon-bench respond", respond(r));
    }
    let args = Args::parse();
    run_report("middlecon-bench", &args.report, run(&args))
}

fn progress(msg: impl AsRef<str>) {
    dcos_bench::report::progress("middlecon-bench", msg.as_ref());
}

// ---------------------------------------------------------------------------------------
// The responder process.

/// Serves the echo on one thread (the same runtime for every system) until stdin closes.
fn respond(r: Respond) -> Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(async move {
        match (&r.middlecon, &r.nats) {
            (Some(socket), None) => serve_echo(socket).await?,
            (None, Some(url)) => {
                let tls = match (r.cert, r.key, r.ca) {
                    (Some(cert), Some(key), Some(ca)) => Some(TlsFiles { cert, key, ca }),
                    _ => None,
                };
                nats_echo(url, tls.as_ref()).await?
            }
            _ => bail!("give --middlecon SOCKET or --nats URL"),
        }
        println!("ready");
        use std::io::Write as _;
        std::io::stdout().flush()?;
        tokio::task::spawn_blocking(|| {
            use std::io::Read as _;
            let _ = std::io::stdin().read_to_end(&mut Vec::new());
        })
        .await?;
        Ok(())
    })
}

/// A responder process of this binary; killed when dropped.
struct Responder {
    child: Child,
}

impl Responder {
    fn start(args: &[&std::ffi::OsStr]) -> Result<Responder> {
        let exe = std::env::current_exe().context("this benchmark's executable")?;
        let mut child = Command::new(exe)
            .arg("respond")
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .context("starting a responder")?;
        let stdout = child.stdout.take().context("responder stdout")?;
        let line = dcos_localfleet::first_line(stdout, FIRST_CALL).unwrap_or_default();
        let mut r = Responder { child };
        if line != "ready" {
            r.kill();
            bail!("the responder ({args:?}) did not start: {line:?}");
        }
        Ok(r)
    }

    fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Responder {
    fn drop(&mut self) {
        self.kill();
    }
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
                let msg = pb::ServeMessage::ok(r.id, r.payload);
                if tx.send(msg).await.is_err() {
                    return;
                }
            }
        }
    });
    Ok(())
}

/// A NATS subscriber on [`ECHO`] replying with the payload.
async fn nats_echo(url: &str, tls: Option<&TlsFiles>) -> Result<()> {
    let client = nats::connect(url, tls, DEADLINE).await.context("connecting the NATS responder")?;
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
// The systems, each behind the same `call`.

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum System {
    Middlecon,
    MiddleconLocal,
    MiddleconTwoWorkers,
    NatsCluster,
    NatsSingle,
    Tonic,
}

const SYSTEMS: [System; 6] = [
    System::Middlecon,
    System::MiddleconLocal,
    System::MiddleconTwoWorkers,
    System::NatsCluster,
    System::NatsSingle,
    System::Tonic,
];
/// The systems judged against the anchors.
const MIDDLECONS: [System; 3] = [System::Middlecon, System::MiddleconLocal, System::MiddleconTwoWorkers];

impl System {
    fn label(self) -> &'static str {
        match self {
            System::Middlecon => "middlecon",
            System::MiddleconLocal => "middlecon, local protocol",
            System::MiddleconTwoWorkers => "middlecon, local protocol, two workers",
            System::NatsCluster => "NATS clustered, TLS",
            System::NatsSingle => "NATS single, plain",
            System::Tonic => "tonic (floor)",
        }
    }

    fn index(self) -> usize {
        SYSTEMS.iter().position(|&s| s == self).unwrap_or(0)
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
    /// The same over the lean local protocol.
    MiddleconLocal {
        client: middlecon_client::LocalClient,
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
            Caller::MiddleconLocal { client, host } => {
                let reply = client.call(&call_request(ECHO, host, payload)).await?;
                ensure!(
                    reply.outcome() == Outcome::Ok,
                    "middlecon call (local protocol): {:?}: {}",
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

    /// The first echo, retried until [`FIRST_CALL`] has passed (a cluster's routes form and
    /// the responder's interest reaches the caller's server meanwhile).
    async fn first_echo(&mut self) -> Result<()> {
        let started = Instant::now();
        loop {
            match self.echo(b"hello").await {
                Ok(()) => return Ok(()),
                Err(e) if started.elapsed() > FIRST_CALL => return Err(e.context("a first echo call")),
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
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

// ---------------------------------------------------------------------------------------
// Measuring one cell.

/// The processes a call crosses, for CPU per call: caller (this process), server or
/// daemon A, B, responder.
const PROCESSES: [&str; 4] = ["caller", "A", "B", "responder"];

/// One cell of one run.
#[derive(Debug, Clone, Copy)]
struct Cell {
    p50_us: f64,
    p99_us: f64,
    per_s: f64,
    /// CPU per call (µs) of each of [`PROCESSES`]; NaN where the system has no such process.
    cpu_us: [f64; 4],
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

/// CPU ticks of each process (0 for an absent one).
fn ticks(pids: &[Option<i32>; 4]) -> [u64; 4] {
    pids.map(|p| p.map(|p| probe::cpu_ticks(p).unwrap_or(0)).unwrap_or(0))
}

async fn measure(
    caller: &Caller,
    pids: &[Option<i32>; 4],
    payload: usize,
    callers: usize,
    args: &Args,
) -> Result<Cell> {
    let payload = Arc::new((0..payload).map(|i| (i % 251) as u8).collect::<Vec<u8>>());
    load(caller, &payload, callers, Duration::from_millis(args.warmup_ms), args.max_calls).await?;
    let t0 = ticks(pids);
    let (mut lat, elapsed) =
        load(caller, &payload, callers, Duration::from_millis(args.cell_ms), args.max_calls).await?;
    let t1 = ticks(pids);
    lat.sort_by(f64::total_cmp);
    let n = lat.len() as f64;
    let mut cpu_us = [f64::NAN; 4];
    for i in 0..4 {
        if pids[i].is_some() {
            cpu_us[i] = ticks_to_us(t1[i] - t0[i]) / n;
        }
    }
    Ok(Cell {
        p50_us: percentile(&lat, 50.0),
        p99_us: percentile(&lat, 99.0),
        per_s: n / elapsed.as_secs_f64(),
        cpu_us,
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

/// Two middlecon daemons, A knowing B from `--peer`, and the echo's runtime on B.
struct Pair {
    a: Daemon,
    b: Daemon,
    responder: Responder,
}

impl Pair {
    /// Starts daemons `{prefix}-a` and `{prefix}-b` with `env`.
    fn start(bin: &Path, ca: &Ca, prefix: &str, env: &[(&str, &str)]) -> Result<Pair> {
        let spec = |name: String| -> Result<Spec> {
            Ok(Spec {
                ip: LOCALHOST,
                port: 0,
                tls: ca.issue_host(&name, LOCALHOST)?,
                state_dir: ca.dir.path().join(&name),
                seeds: vec![],
                peers: vec![],
                env: env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
                name,
            })
        };
        let b = Daemon::start(bin, &spec(format!("{prefix}-b"))?)?;
        let mut sa = spec(format!("{prefix}-a"))?;
        sa.peers = vec![(b.name.clone(), b.addr)];
        let a = Daemon::start(bin, &sa)?;
        progress(format!("middlecon {} at {} and {} at {}", a.name, a.addr, b.name, b.addr));
        let responder = Responder::start(&["--middlecon".as_ref(), b.socket.as_os_str()])
            .with_context(|| format!("the echo runtime on {}", b.name))?;
        Ok(Pair { a, b, responder })
    }

    fn pids(&self, me: Option<i32>) -> [Option<i32>; 4] {
        [me, Some(self.a.pid()), Some(self.b.pid()), Some(self.responder.pid())]
    }
}

struct Setup {
    _ca: Ca,
    /// The daemons as deployed (one thread each).
    mc: Pair,
    /// The same on two tokio workers (`DCOS_WORKER_THREADS=2`).
    two_workers: Pair,
    /// NATS servers: the cluster's A and B, then the single one.
    cluster: [NatsServer; 2],
    single: NatsServer,
    /// Responders of NATS clustered, NATS single.
    responders: [Responder; 2],
    callers: [Caller; 6],
    /// A NATS client of the single server, for the no_responders comparison.
    nats_client: async_nats::Client,
    mc_client: MessagingClient<Channel>,
}

impl Setup {
    /// The processes of `sys`'s calls ([`PROCESSES`]).
    fn pids(&self, sys: System) -> [Option<i32>; 4] {
        let me = Some(std::process::id() as i32);
        match sys {
            System::Middlecon | System::MiddleconLocal => self.mc.pids(me),
            System::MiddleconTwoWorkers => self.two_workers.pids(me),
            System::NatsCluster => {
                [me, Some(self.cluster[0].pid()), Some(self.cluster[1].pid()), Some(self.responders[0].pid())]
            }
            System::NatsSingle => [me, Some(self.single.pid()), None, Some(self.responders[1].pid())],
            System::Tonic => [me, None, None, None],
        }
    }
}

/// Two nats-servers on 127.0.0.1, one per host, routed to each other, all TLS.
async fn nats_cluster(ca: &Ca, bin: &Path) -> Result<[NatsServer; 2]> {
    let mut members = Vec::new();
    for name in ["nats-a", "nats-b"] {
        members.push(Member {
            name: name.into(),
            client: SocketAddr::new(LOCALHOST, nats::free_port(LOCALHOST)?),
            route: SocketAddr::new(LOCALHOST, nats::free_port(LOCALHOST)?),
            tls: ca.issue_host(name, LOCALHOST)?,
        });
    }
    let a = NatsServer::clustered(bin, ca.dir.path(), &members[0], &members).await?;
    let b = NatsServer::clustered(bin, ca.dir.path(), &members[1], &members).await?;
    Ok([a, b])
}

async fn setup(args: &Args) -> Result<Setup> {
    let bin = binary(args.middlecon.as_deref())?;
    let ca = Ca::new("middlecon-bench-")?;
    let mc = Pair::start(&bin, &ca, "mc", &[])?;
    let two_workers = Pair::start(&bin, &ca, "mc2", &[("DCOS_WORKER_THREADS", "2")])?;
    let channel = middlecon_client::connect_unix(&mc.a.socket).await?;
    let mc_client = MessagingClient::new(channel);
    let mc_local = middlecon_client::LocalClient::connect(&mc.a.socket).await?;
    let one_local = middlecon_client::LocalClient::connect(&two_workers.a.socket).await?;

    let cluster = nats_cluster(&ca, &args.nats_server).await?;
    progress(format!(
        "{} clustered with TLS at {} and {}",
        NatsServer::version(&args.nats_server),
        cluster[0].url(),
        cluster[1].url()
    ));
    let b_tls = cluster[1].tls.clone().context("the cluster's TLS files")?;
    let b_url = cluster[1].url();
    let mut flags: Vec<&std::ffi::OsStr> = vec!["--nats".as_ref(), b_url.as_ref()];
    flags.extend(b_tls.flags());
    let cluster_responder = Responder::start(&flags).context("the responder on NATS B")?;
    let caller_tls = ca.issue_host("nats-caller", LOCALHOST)?;
    let cluster_client = nats::connect(&cluster[0].url(), Some(&caller_tls), DEADLINE).await?;

    let single = NatsServer::plain(&args.nats_server, ca.dir.path(), LOCALHOST).await?;
    progress(format!("single plain server at {}", single.url()));
    let single_url = single.url();
    let single_responder = Responder::start(&["--nats".as_ref(), single_url.as_ref()])?;
    let nats_client = nats::connect(&single_url, None, DEADLINE).await.context("the NATS caller")?;

    let tonic = tonic_floor().await?;
    let mut callers = [
        Caller::Middlecon { client: mc_client.clone(), host: mc.b.name.clone() },
        Caller::MiddleconLocal { client: mc_local, host: mc.b.name.clone() },
        Caller::MiddleconLocal { client: one_local, host: two_workers.b.name.clone() },
        Caller::Nats(cluster_client),
        Caller::Nats(nats_client.clone()),
        Caller::Tonic(tonic),
    ];
    // Every path measured answers before anything is timed.
    for (c, sys) in callers.iter_mut().zip(SYSTEMS) {
        if args.measures(sys) {
            c.first_echo().await.with_context(|| sys.label())?;
        }
    }
    Ok(Setup {
        _ca: ca,
        mc,
        two_workers,
        cluster,
        single,
        responders: [cluster_responder, single_responder],
        callers,
        nats_client,
        mc_client,
    })
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
    cells: Vec<((usize, usize), [Samples; 6])>,
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
                if !args.measures(sys) {
                    continue;
                }
                let cell = measure(&s.callers[idx], &s.pids(sys), payload, callers, args)
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
            r.ping_mc
                .push(p50(sequential(&s.mc_client, &s.mc.b.name, "dcos.ping", Outcome::Ok, block).await?));
            r.none_mc.push(p50(
                sequential(&s.mc_client, &s.mc.b.name, NOBODY, Outcome::NoResponders, block).await?
            ));
            r.none_nats.push(p50(nats_no_responders(&s.nats_client, block).await?));
            r.ping_local
                .push(p50(sequential(&s.mc_client, &s.mc.a.name, "dcos.ping", Outcome::Ok, block).await?));
        }
    }
    progress(format!("measured in {:.0} s", started.elapsed().as_secs_f64()));
    let mut s = s;
    for d in [&mut s.mc.a, &mut s.mc.b, &mut s.two_workers.a, &mut s.two_workers.b] {
        ensure!(d.running(), "{} exited during the benchmark: {}", d.name, d.stderr_tail());
    }
    for (name, pid) in [
        ("middlecon A", s.mc.a.pid()),
        ("middlecon B", s.mc.b.pid()),
        ("middlecon A (two workers)", s.two_workers.a.pid()),
        ("middlecon B (two workers)", s.two_workers.b.pid()),
        ("nats-server A (cluster)", s.cluster[0].pid()),
        ("nats-server B (cluster)", s.cluster[1].pid()),
        ("nats-server (single)", s.single.pid()),
    ] {
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

/// A middlecon figure against an anchor's: the target is `ratio ≤ limit` (`at_most`) or
/// `ratio ≥ limit`.
struct Target {
    measure: String,
    system: System,
    anchor: System,
    mine: f64,
    theirs: f64,
    limit: f64,
    at_most: bool,
}

impl Target {
    fn row(&self, fmt: impl Fn(f64) -> String) -> String {
        let ratio = self.mine / self.theirs;
        let (sign, ok) =
            if self.at_most { ("≤", ratio <= self.limit) } else { ("≥", ratio >= self.limit) };
        format!(
            "| {} | {} | {} | {} | {} | {ratio:.2} | {sign} {:.2}× | {} |",
            self.measure,
            self.system.label(),
            fmt(self.mine),
            self.anchor.label(),
            fmt(self.theirs),
            self.limit,
            verdict(ok)
        )
    }
}

/// Issue 19's targets for one cell: with one caller p50 and p99 ≤ the clustered anchor's
/// and p50 ≤ 1.5× the single server's; with 64 callers or more calls/s ≥ the clustered
/// anchor's and ≥ 0.5× the single server's.
fn targets(system: System, cell: &str, callers: usize, s: &[Samples; 6]) -> (Vec<Target>, Vec<Target>) {
    let mc = &s[system.index()];
    let t = |measure: &str, anchor: System, f: &dyn Fn(&Cell) -> f64, limit: f64, at_most: bool| Target {
        measure: format!("{measure}, {cell}"),
        system,
        anchor,
        mine: mc.med(f),
        theirs: s[anchor.index()].med(f),
        limit,
        at_most,
    };
    let (mut lat, mut rate) = (vec![], vec![]);
    if callers == 1 {
        lat.push(t("p50", System::NatsCluster, &|c| c.p50_us, 1.0, true));
        lat.push(t("p99", System::NatsCluster, &|c| c.p99_us, 1.0, true));
        lat.push(t("p50", System::NatsSingle, &|c| c.p50_us, 1.5, true));
    }
    if callers >= 64 {
        rate.push(t("calls/s", System::NatsCluster, &|c| c.per_s, 1.0, false));
        rate.push(t("calls/s", System::NatsSingle, &|c| c.per_s, 0.5, false));
    }
    (lat, rate)
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
         processes on 127.0.0.1, each on one thread (the default)"
    );
    let _ = writeln!(
        out,
        "- middlecon, local protocol: the same, the caller speaking the lean local protocol \
         (`middlecon_client::LocalClient`) on A's socket instead of gRPC"
    );
    let _ = writeln!(
        out,
        "- middlecon, local protocol, two workers: the same with two more daemons that run two tokio workers \
         (`DCOS_WORKER_THREADS=2`, middlecon's runtime before issue 19) instead of one thread, and their own echo \
         runtime"
    );
    let _ = writeln!(
        out,
        "- NATS clustered, TLS: {} twice on 127.0.0.1 (servers A and B), routed to each other, TLS with verified \
         certificates of the fleet CA on client and route connections; the caller on A, the responder on B",
        h.nats_version
    );
    let _ = writeln!(
        out,
        "- NATS single, plain: the same server once, its defaults (plain TCP, no TLS); caller and responder on it"
    );
    let _ = writeln!(
        out,
        "- tonic (floor): a `Messaging` server in the benchmark process on 127.0.0.1 TCP (h2, no TLS) whose \
         `Call` echoes the payload"
    );
    let _ = writeln!(
        out,
        "- callers: async-nats `Client::request`, a tonic client or a `LocalClient`, in this benchmark process (tokio, 2 worker \
         threads), every caller's clone sharing one connection; each system's echo responder in a process of its \
         own (one thread); each cell runs {} ms after {} ms of warm-up, in a rotating order of the systems; {} runs; \
         figures are medians over the runs of each run's p50, p99, calls/s and CPU",
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
        "| payload | callers | system | p50 | p99 | calls/s | CPU / call: caller | A | B | responder | all |"
    );
    let _ = writeln!(out, "| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    for ((payload, callers), samples) in &r.cells {
        for (idx, sys) in SYSTEMS.iter().enumerate() {
            let s = &samples[idx];
            let cpu: Vec<f64> = (0..PROCESSES.len()).map(|i| s.med(|c| c.cpu_us[i])).collect();
            let all = s.med(|c| c.cpu_us.iter().filter(|v| !v.is_nan()).sum());
            let _ = writeln!(
                out,
                "| {} | {callers} | {} | {} | {} | {:.0} | {} | {} | {} | {} | {} |",
                payload_label(*payload),
                sys.label(),
                us(s.med(|c| c.p50_us)),
                us(s.med(|c| c.p99_us)),
                s.med(|c| c.per_s),
                us(cpu[0]),
                us(cpu[1]),
                us(cpu[2]),
                us(cpu[3]),
                us(all),
            );
        }
    }
    let _ = writeln!(
        out,
        "\nCPU per call is each process's user + system time over the cell's calls, from `/proc/PID/stat` ({:.0} ms \
         ticks): the caller is this process (for tonic, the server too); A and B are the daemons (middlecon) or \
         the servers (NATS; the single server is A); the responder is the echo's process.\n",
        1e3 / probe::clk_tck()
    );

    let _ = writeln!(out, "| measure | system | figure | anchor | anchor's | ratio | target | result |");
    let _ = writeln!(out, "| --- | --- | ---: | --- | ---: | ---: | --- | --- |");
    for ((payload, callers), samples) in &r.cells {
        let cell =
            format!("{}, {callers} caller{}", payload_label(*payload), if *callers == 1 { "" } else { "s" });
        for system in MIDDLECONS {
            let (lat, rate) = targets(system, &cell, *callers, samples);
            for t in lat {
                let _ = writeln!(out, "{}", t.row(us));
            }
            for t in rate {
                let _ = writeln!(out, "{}", t.row(|v| format!("{v:.0}")));
            }
        }
    }
    let none = summarize(&r.none_mc).median;
    let ping = summarize(&r.ping_mc).median;
    let none_nats = summarize(&r.none_nats).median;
    let _ = writeln!(
        out,
        "| `no_responders` p50 (a service nobody serves on B) | middlecon | {} | `dcos.ping` on B (NATS single: {}) | {} | {:.2} | ≤ 1.1× (one round trip) | {} |",
        us(none),
        us(none_nats),
        us(ping),
        none / ping,
        verdict(none <= ROUND_TRIP_NOISE * ping)
    );
    let local = summarize(&r.ping_local).median;
    let echo_1 = r
        .cells
        .iter()
        .find(|((_, c), _)| *c == 1)
        .map(|((p, _), s)| (*p, s[System::Middlecon.index()].med(|c| c.p50_us)));
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

    fn cell(p50_us: f64, per_s: f64) -> Cell {
        Cell { p50_us, p99_us: 2.0 * p50_us, per_s, cpu_us: [1.0; 4] }
    }

    #[test]
    fn targets_compare_with_both_anchors() {
        let s = |c: Cell| Samples(vec![c]);
        let cells = [
            s(cell(150.0, 20_000.0)),
            s(cell(900.0, 1.0)),
            s(cell(900.0, 1.0)),
            s(cell(200.0, 30_000.0)),
            s(cell(100.0, 35_000.0)),
            s(cell(1.0, 1.0)),
        ];
        let (lat, rate) = targets(System::Middlecon, "128 B, 1 caller", 1, &cells);
        assert!(rate.is_empty());
        let rows: Vec<String> = lat.iter().map(|t| t.row(us)).collect();
        assert!(rows[0].contains("NATS clustered, TLS") && rows[0].ends_with("PASS |"), "{}", rows[0]);
        assert!(rows[2].contains("NATS single, plain") && rows[2].contains("≤ 1.50×"), "{}", rows[2]);
        assert!(rows[2].contains("1.50 |") && rows[2].ends_with("PASS |"), "{}", rows[2]);
        let (lat, rate) = targets(System::Middlecon, "128 B, 64 callers", 64, &cells);
        assert!(lat.is_empty());
        let rows: Vec<String> = rate.iter().map(|t| t.row(|v| format!("{v:.0}"))).collect();
        assert!(rows[0].ends_with("FAIL |"), "{}", rows[0]);
        assert!(rows[1].contains("≥ 0.50×") && rows[1].ends_with("PASS |"), "{}", rows[1]);
    }
}
