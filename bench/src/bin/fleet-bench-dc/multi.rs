//! `fleet-bench multi` (issue 18): `dcos ps` and `dcos top` across 10,000 k2i endpoints in
//! 10 datacenters, through a relay per datacenter and directly, side by side in one run.
//!
//! The simulated world, in the benchmark's own network and mount namespaces:
//!
//! - `serve`: the 10,000 real k2i endpoints (one process, one sampler), endpoint i on
//!   `127.0.0.1:(base + i)` reporting datacenter `dc<i / 1000>`; and a seed answering
//!   `Membership.Members` with them ([`seed_members`]): each endpoint's k2i as
//!   `https://dc<K>.sim:PORT`, and one relay per datacenter with its API address and a load.
//! - 10 real middlecon daemons, the relays, `relay-K` in `dcK` (API on `127.0.0.1:7600+K`).
//!   They run in a mount namespace of their own whose `/etc/hosts` puts every `dcK.sim` on
//!   `127.0.0.1`: inside a datacenter, nothing is added.
//! - The operator sits in `dc0`. The driver (and so every `dcos` it starts) sees `dc0.sim`
//!   on `127.0.0.1` and every other `dcK.sim` on `127.0.0.2`, where `fleet-bench proxy`
//!   forwards each port to `127.0.0.1` with the round trip added (at nice -20, ahead of
//!   the simulated hosts, as netem would be in the kernel); the seed gives the other
//!   datacenters' relays as `127.0.0.2:7600+K` too. Between datacenters, everything crosses
//!   the proxy.
//!
//! Measured, interleaved run by run: `dcos ps --limit 20` relayed (the default with two
//! datacenters or more) and `--relay never`; `dcos top` refreshing (`-n`, each frame's
//! `elapsed_ms`); the 1,000 hosts of `dc0` alone with this `dcos` and, if given, another
//! build's (`--dcos-before`); the whole table of 50 hosts (`-o json`) against
//! `xargs -P 64 curl`; and, once at the end, a refreshing `dcos top` whose relays' and
//! endpoints' CPU a second is measured from its second frame to its last (what keeping the
//! relays' watches fresh costs), and the full `dcos ps -o ndjson` of all 10,000 hosts through
//! the relays, for the client's peak RSS.

use super::*;
use dcos_bench::stats::percentile;
use dcos_proto::v1 as pb;
use std::net::SocketAddr;

/// The seed's API port on `127.0.0.1`.
const SEED_PORT: u16 = 7599;
/// Relay K's API port is this plus K; its peer (QUIC) port is [`RELAY_PEER_BASE`] plus K.
const RELAY_API_BASE: u16 = 7600;
const RELAY_PEER_BASE: u16 = 7700;
/// Where the other datacenters are, seen from the operator's: the proxy's address.
const FAR: &str = "127.0.0.2";
/// Endpoints per serving process: with the relays' kept connections and a direct fan-out's
/// beside its listeners, a process holds up to three open files per endpoint, and the
/// machine allows a process 20,000 (its hard limit, which root in this container cannot
/// raise).
const PER_PROCESS: usize = 5000;
/// The load every relay gossips in the seed's list.
const RELAY_LOAD: f64 = 0.5;

#[derive(Debug, Clone, Args)]
pub struct MultiArgs {
    /// Datacenters.
    #[arg(long, default_value_t = 10)]
    dcs: usize,
    /// k2i endpoints per datacenter.
    #[arg(long, default_value_t = 1000)]
    per_dc: usize,
    /// The round trip added between datacenters, in milliseconds (none within one).
    #[arg(long, default_value_t = 30)]
    rtt_ms: u64,
    /// Rounds of every interleaved measurement; medians and minimums are reported.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// `--limit` of the timed `dcos ps` runs.
    #[arg(long, default_value_t = 20)]
    limit: usize,
    /// Frames of each timed `dcos top` (1 s apart).
    #[arg(long, default_value_t = 5)]
    top_frames: usize,
    /// Hosts of the full-table measurement (every row, `-o json`, against curl).
    #[arg(long, default_value_t = 50)]
    full_hosts: usize,
    /// Concurrent curl processes in the baseline (`xargs -P`).
    #[arg(long, default_value_t = 64)]
    parallel: usize,
    /// The first port of the endpoints.
    #[arg(long, default_value_t = 20_000)]
    base_port: u16,
    /// `--timeout` of the timed `dcos ps` runs, relayed and direct.
    #[arg(long, default_value = "60s")]
    timeout: String,
    /// `--timeout` of the full `dcos ps -o ndjson` of every host.
    #[arg(long, default_value = "600s")]
    full_timeout: String,
    /// Skip the full `dcos ps -o ndjson` of every host.
    #[arg(long)]
    no_full_ndjson: bool,
    /// Frames of the `dcos top` whose steady cost is measured once at the end (the relays'
    /// and the endpoints' CPU a second from its second frame to its last; 0: none).
    #[arg(long, default_value_t = 12)]
    steady_frames: usize,
    /// Seconds to wait after everything is up, before the warm-up round.
    #[arg(long, default_value_t = 3)]
    settle: u64,
    /// The dcos binary [default: `dcos` next to this executable].
    #[arg(long)]
    dcos: Option<PathBuf>,
    /// The middlecon binary of the relays [default: `middlecon` next to this executable].
    #[arg(long)]
    middlecon: Option<PathBuf>,
    /// Another build of dcos (before this work), timed beside this one where it can be.
    #[arg(long)]
    dcos_before: Option<PathBuf>,
    /// Time only this measure, `--runs` times after the warm-up, and print each run's wall
    /// time and CPU (to profile one of them): `ps` (relayed) or `top` (its frames).
    #[arg(long, value_parser = ["ps", "top"])]
    only: Option<String>,
    #[command(flatten)]
    pub report: dcos_bench::report::ReportArgs,
}

/// A wait of over two sample intervals: the endpoints take a new sample for the next
/// command and render their answers anew (sooner, k2i answers from the current sample and
/// keeps its rendered answer to a repeated query).
const FRESH: Duration = Duration::from_millis(2_500);

/// The name of simulated host `i`.
pub fn sim_name(i: usize) -> String {
    format!("sim-{i:04}")
}

fn dc_host(k: usize) -> String {
    format!("dc{k}.sim")
}

/// The seed's member list for `serve --seed-listen`: every endpoint (k2i named by its
/// datacenter's host name, no API) and relay `relay-K` of each datacenter (API, no k2i),
/// `dc0`'s on `127.0.0.1`, the others' on [`FAR`].
pub fn seed_members(args: &ServeArgs) -> Vec<pb::Member> {
    let per = args.dc_size.max(1);
    let count = args.fleet_count.unwrap_or(args.count);
    let dcs = count.div_ceil(per);
    let alive = pb::MemberState::Alive as i32;
    let mut members: Vec<pb::Member> = (0..count)
        .map(|i| pb::Member {
            name: sim_name(i),
            dc: format!("dc{}", i / per),
            k2i: format!("https://{}:{}", dc_host(i / per), args.base_port as usize + i),
            state: alive,
            load: -1.0,
            ..pb::Member::default()
        })
        .collect();
    members.extend((0..dcs).map(|k| {
        let ip = if k == 0 { "127.0.0.1" } else { FAR };
        pb::Member {
            name: format!("relay-{k}"),
            dc: format!("dc{k}"),
            api: format!("{ip}:{}", RELAY_API_BASE as usize + k),
            state: alive,
            load: RELAY_LOAD,
            ..pb::Member::default()
        }
    }));
    members
}

/// A seed's `Membership` over mTLS with a fixed member list.
#[derive(Clone)]
struct Seed {
    members: std::sync::Arc<Vec<pb::Member>>,
}

#[tonic::async_trait]
impl pb::membership_server::Membership for Seed {
    async fn members(
        &self,
        _: tonic::Request<pb::MembersRequest>,
    ) -> Result<tonic::Response<pb::MembersReply>, tonic::Status> {
        Ok(tonic::Response::new(pb::MembersReply { host: "seed".into(), members: (*self.members).clone() }))
    }
}

/// Serves [`Seed`] on `addr` with `identity` (in the background).
pub async fn serve_seed(addr: SocketAddr, identity: &Identity, members: Vec<pb::Member>) -> Result<()> {
    use middlecon::access::Caller;
    use middlecon::api::Conn;
    let tls = identity.server_config_require_client_auth(&[b"h2"]).context("the seed's TLS")?;
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    let listener = tokio::net::TcpListener::bind(addr).await.with_context(|| format!("binding {addr}"))?;
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (acceptor, tx) = (acceptor.clone(), tx.clone());
            tokio::spawn(async move {
                if let Ok(tls) = acceptor.accept(tcp).await {
                    let caller = Caller { name: "operator".into(), role: None };
                    let _ = tx.send(Ok::<_, std::io::Error>(Conn::new(tls, caller))).await;
                }
            });
        }
    });
    let seed = Seed { members: std::sync::Arc::new(members) };
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(pb::membership_server::MembershipServer::new(seed))
            .serve_with_incoming(tokio_stream::wrappers::ReceiverStream::new(rx)),
    );
    Ok(())
}

/// A child process killed (and reaped) when dropped; its stdin closing asks it to go.
struct Child2 {
    child: Child,
}

impl Drop for Child2 {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `cmd`, waits for its first stdout line to contain `ready`.
fn start_announced(mut cmd: Command, ready: &str, what: &str) -> Result<Child2> {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| format!("starting {what}"))?;
    let out = child.stdout.take().context("stdout")?;
    let line = dcos_localfleet::FirstLine::read(out).wait(Duration::from_secs(120)).unwrap_or_default();
    let child = Child2 { child };
    ensure!(line.contains(ready), "{what} did not start: {line:?}");
    progress(format!("{what}: {line}"));
    Ok(child)
}

/// `/etc/hosts` text putting `dcK.sim` on `ip(K)`.
fn hosts_file(dcs: usize, ip: impl Fn(usize) -> &'static str) -> String {
    let mut text = String::from("127.0.0.1 localhost\n::1 localhost\n");
    for k in 0..dcs {
        let _ = writeln!(text, "{} {}", ip(k), dc_host(k));
    }
    text
}

/// Everything the measurements use.
struct World {
    dcos: PathBuf,
    certs: Certs,
    /// The endpoints are split over several processes (and the proxy over several) so that
    /// none needs more open files than the machine allows one process; the first serves
    /// the seed too.
    server: Server,
    more_servers: Vec<Server>,
    proxies: Vec<Child2>,
    relays: Vec<Child2>,
    args: MultiArgs,
    report: PathBuf,
}

/// One frame of `dcos -o ndjson top`, as much as the checks need.
#[derive(Debug, Deserialize)]
struct TopFrame {
    hosts: Vec<HostRow>,
    elapsed_ms: u64,
}

impl World {
    fn total(&self) -> usize {
        self.args.dcs * self.args.per_dc
    }

    fn env(&self, cmd: &mut Command) {
        cmd.env("DCOS_CERT", self.certs.path("admin.crt"))
            .env("DCOS_KEY", self.certs.path("admin.key"))
            .env("DCOS_CA", self.certs.path("ca.crt"))
            .env_remove("DCOS_INVENTORY")
            .env_remove("DCOS_HOSTS")
            .env_remove("DCOS_SEED")
            .env_remove("DCOS_LOG")
            .stdin(Stdio::null());
    }

    /// `dcos --seed SEED ARGS...` (or another build's).
    fn seeded(&self, binary: &Path, args: &[&str]) -> Result<Command> {
        let mut cmd = measured(binary, &self.report)?;
        self.env(&mut cmd);
        cmd.args(["--seed", &format!("127.0.0.1:{SEED_PORT}")]).args(args);
        Ok(cmd)
    }

    /// CPU ticks of the relays, of the proxies, and of the endpoints' other processes.
    fn side_ticks(&self) -> (u64, u64, u64) {
        let ticks = |pids: &mut dyn Iterator<Item = u32>| -> u64 {
            pids.map(|p| probe::cpu_ticks(p as i32).unwrap_or(0)).sum()
        };
        (
            ticks(&mut self.relays.iter().map(|r| r.child.id())),
            ticks(&mut self.proxies.iter().map(|p| p.child.id())),
            ticks(&mut self.more_servers.iter().map(|s| s.pid() as u32)),
        )
    }

    fn run(&self, cmd: &mut Command, keep: bool) -> Result<(Exec, Side)> {
        let (r0, p0, s0) = self.side_ticks();
        let mut e = timed_output(cmd, &self.report, &self.server, keep)?;
        let (r1, p1, s1) = self.side_ticks();
        let tick = |t: u64| t as f64 / probe::clk_tck() * 1e3;
        e.server_cpu_ms += tick(s1.saturating_sub(s0));
        Ok((e, Side { relays_ms: tick(r1.saturating_sub(r0)), proxy_ms: tick(p1.saturating_sub(p0)) }))
    }

    /// `dcos ps --limit N -o json` over the seed's fleet (`extra` first); every host must
    /// answer, relayed ones with `via` when `relayed`.
    fn ps(&self, binary: &Path, extra: &[&str], hosts: usize, relayed: bool) -> Result<(Exec, Side, PsDoc)> {
        let limit = self.args.limit.to_string();
        let mut args: Vec<&str> = extra.to_vec();
        args.extend(["--timeout", &self.args.timeout, "-o", "json", "ps", "--limit", &limit]);
        let (e, side) = self.run(&mut self.seeded(binary, &args)?, true)?;
        let doc = parse_ps(&e)?;
        ensure!(doc.hosts.len() == hosts, "{} hosts reported, not {hosts}", doc.hosts.len());
        // A few hosts missing the deadline on this loaded machine are stated, not hidden;
        // more than one in a hundred ends the benchmark.
        let failed: Vec<&HostRow> = doc.hosts.iter().filter(|h| h.status != "ok").collect();
        ensure!(
            failed.len() * 100 <= hosts,
            "{} of {hosts} hosts did not answer: {}",
            failed.len(),
            e.stderr_head()
        );
        if let Some(h) = failed.first() {
            progress(format!(
                "{} of {hosts} hosts did not answer, e.g. {} {}",
                failed.len(),
                h.host,
                h.status
            ));
        }
        ensure!(
            e.code == 0 || (e.code == 3 && !failed.is_empty()),
            "dcos exited with {}: {}",
            e.code,
            e.stderr_head()
        );
        ensure!(doc.processes.len() == self.args.limit, "{} processes printed", doc.processes.len());
        let via = doc.hosts.iter().filter(|h| h.via.is_some()).count();
        ensure!(
            via == if relayed { hosts } else { 0 },
            "{via} of {hosts} hosts carry via (relayed: {relayed})"
        );
        Ok((e, side, doc))
    }

    /// `--only`: one measure `--runs` times, a line each.
    fn only(&self, what: &str) -> Result<String> {
        let mut out = String::new();
        for run in 1..=self.args.runs {
            std::thread::sleep(FRESH);
            let (e, side, frames) = match what {
                "ps" => {
                    let (e, side, _) = self.ps(&self.dcos, &[], self.total(), true)?;
                    (e, side, Vec::new())
                }
                _ => {
                    let got = self.top()?;
                    self.quiet_after_top();
                    got
                }
            };
            let line = format!(
                "{what} run {run}: wall {:.0} ms, client CPU {:.0} ms, endpoints' CPU {:.0} ms, relays' CPU {:.0} ms, frames {frames:?} ms",
                ms(e.wall),
                e.cpu_ms,
                e.server_cpu_ms,
                side.relays_ms
            );
            progress(&line);
            let _ = writeln!(out, "{line}");
        }
        Ok(out)
    }

    /// `dcos -o ndjson top -n F --interval 1s`: the exec and each frame's `elapsed_ms`.
    fn top(&self) -> Result<(Exec, Side, Vec<f64>)> {
        let (frames, limit) = (self.args.top_frames.to_string(), self.args.limit.to_string());
        let timeout = &self.args.timeout;
        let args = [
            "--timeout",
            timeout,
            "-o",
            "ndjson",
            "top",
            "-n",
            &frames,
            "--interval",
            "1s",
            "--limit",
            &limit,
        ];
        let (e, side) = self.run(&mut self.seeded(&self.dcos, &args)?, true)?;
        ensure!(e.code == 0 || e.code == 3, "dcos top exited with {}: {}", e.code, e.stderr_head());
        let mut elapsed = Vec::new();
        for line in String::from_utf8_lossy(&e.stdout).lines() {
            let f: TopFrame = serde_json::from_str(line).context("a dcos top frame")?;
            ensure!(f.hosts.len() == self.total(), "a frame reported {} hosts", f.hosts.len());
            ensure!(f.hosts.iter().all(|h| h.via.is_some()), "a frame's hosts not all through relays");
            let failed = f.hosts.iter().filter(|h| h.status != "ok").count();
            ensure!(
                failed * 100 <= f.hosts.len(),
                "{failed} hosts of a frame did not answer: {}",
                e.stderr_head()
            );
            elapsed.push(f.elapsed_ms as f64);
        }
        ensure!(elapsed.len() == self.args.top_frames, "{} frames printed", elapsed.len());
        Ok((e, side, elapsed))
    }

    /// The whole table of the first `full_hosts` endpoints, `-o json`, with `binary`.
    fn full_table(&self, binary: &Path) -> Result<(Exec, PsDoc)> {
        let n = self.args.full_hosts;
        let hosts: Vec<String> =
            (0..n).map(|i| format!("127.0.0.1:{}", self.args.base_port as usize + i)).collect();
        let mut cmd = measured(binary, &self.report)?;
        self.env(&mut cmd);
        cmd.env("DCOS_HOSTS", hosts.join(",")).args(["--timeout", "30s", "-o", "json", "ps"]);
        let (e, _) = self.run(&mut cmd, true)?;
        let doc = parse_ps(&e)?;
        check_all_ok(&e, &doc, n)?;
        Ok((e, doc))
    }

    /// `xargs -P 64 curl` of the same endpoints' whole tables.
    fn full_curl(&self) -> Result<Exec> {
        let urls: String = (0..self.args.full_hosts)
            .map(|i| format!("https://127.0.0.1:{}/v1/proc\n", self.args.base_port as usize + i))
            .collect();
        let file = self.certs.path("full-urls.txt");
        std::fs::write(&file, urls)?;
        let mut cmd = measured("xargs", &self.report)?;
        cmd.args(["-P", &self.args.parallel.to_string(), "-n", "1", "curl", "-sS", "--fail"])
            .args(["--cacert", "ca.crt", "--cert", "admin.crt", "--key", "admin.key", "-o", "/dev/null"])
            .current_dir(self.certs.dir.path())
            .stdin(std::fs::File::open(&file)?);
        let (e, _) = self.run(&mut cmd, true)?;
        ensure!(e.code == 0, "xargs curl exited with {}: {}", e.code, e.stderr_head());
        Ok(e)
    }

    /// Waits (at most 15 s) until the relays and the endpoints are idle again after a `top`:
    /// the relays' sessions live on a little after the last frame, then their 10,000 watch
    /// connections close, and what is measured next must not pay for either. A watched host
    /// sends a document a second, so idle is judged over whole seconds.
    fn quiet_after_top(&self) {
        let busy = || self.side_ticks().0 + self.endpoint_ticks();
        let until = Instant::now() + Duration::from_secs(15);
        while Instant::now() < until {
            let before = busy();
            std::thread::sleep(Duration::from_secs(1));
            // Under 50 ms of CPU in a second: idle.
            if busy().saturating_sub(before) as f64 / probe::clk_tck() < 0.05 {
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(500));
    }

    /// CPU ticks of every endpoint process.
    fn endpoint_ticks(&self) -> u64 {
        std::iter::once(self.server.pid())
            .chain(self.more_servers.iter().map(|s| s.pid()))
            .map(|p| probe::cpu_ticks(p).unwrap_or(0))
            .sum()
    }

    /// A refreshing `dcos top` of `frames` frames at 1 s, the CPU from its second frame
    /// printed to its last.
    fn top_steady(&self, frames: usize) -> Result<Steady> {
        use std::io::BufRead;
        let mut cmd = Command::new(&self.dcos);
        self.env(&mut cmd);
        cmd.args(["--seed", &format!("127.0.0.1:{SEED_PORT}"), "--timeout", &self.args.timeout])
            .args(["-o", "ndjson", "top", "-n", &frames.to_string(), "--interval", "1s"])
            .args(["--limit", &self.args.limit.to_string()])
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        let mut child = cmd.spawn().context("starting dcos top")?;
        let stdout = child.stdout.take().context("dcos top's stdout")?;
        let mut marks = Vec::new();
        for (n, line) in std::io::BufReader::new(stdout).lines().enumerate() {
            line.context("reading dcos top")?;
            if n == 1 || n + 1 == frames {
                marks.push((Instant::now(), self.side_ticks().0, self.endpoint_ticks(), MachineCpu::read()?));
            }
        }
        child.wait()?;
        let [(t0, r0, e0, m0), (t1, r1, e1, m1)] = marks[..] else {
            bail!("dcos top printed too few frames for the steady measure")
        };
        let secs = t1.duration_since(t0).as_secs_f64();
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
        let per_s = |ticks: u64| ticks as f64 / probe::clk_tck() * 1e3 / secs;
        Ok(Steady {
            frames: frames - 2,
            secs,
            relays_ms_per_s: per_s(r1 - r0),
            endpoints_ms_per_s: per_s(e1 - e0),
            machine_busy: m1.busy_ms_since(&m0) / (secs * 1e3 * cpus) * 100.0,
        })
    }

    /// The full `dcos ps -o ndjson` of every host through the relays: stdout counted only.
    fn full_ndjson(&self) -> Result<(Exec, Side)> {
        let args = ["--timeout", &self.args.full_timeout, "-o", "ndjson", "ps"];
        let (e, side) = self.run(&mut self.seeded(&self.dcos, &args)?, false)?;
        ensure!(e.code == 0 || e.code == 3, "dcos ps -o ndjson exited with {}: {}", e.code, e.stderr_head());
        Ok((e, side))
    }
}

/// CPU of the relays and the proxy during one command, in ms.
#[derive(Debug, Default, Clone, Copy)]
struct Side {
    relays_ms: f64,
    proxy_ms: f64,
}

/// One measure's samples.
#[derive(Debug, Default)]
struct Samples {
    series: Series,
    relays_cpu: Vec<f64>,
    proxy_cpu: Vec<f64>,
}

impl Samples {
    fn push(&mut self, e: &Exec, side: Side, doc: Option<&PsDoc>) {
        self.series.push(e, doc);
        self.relays_cpu.push(side.relays_ms);
        self.proxy_cpu.push(side.proxy_ms);
    }
}

#[derive(Debug, Default)]
struct Found {
    relayed: Samples,
    direct: Samples,
    top: Samples,
    /// Frame elapsed_ms: the first of each run, and the others.
    top_first: Vec<f64>,
    top_rest: Vec<f64>,
    one_dc: Samples,
    one_dc_relayed: Samples,
    one_dc_before: Samples,
    full_new: Samples,
    full_before: Samples,
    full_curl: Samples,
    full_rows: Vec<f64>,
    ndjson: Samples,
    ndjson_bytes: u64,
    ndjson_lines: u64,
    steady: Option<Steady>,
}

/// A refreshing `dcos top` from its second frame to its last: CPU a second of wall time.
#[derive(Debug, Clone, Copy)]
struct Steady {
    frames: usize,
    secs: f64,
    relays_ms_per_s: f64,
    endpoints_ms_per_s: f64,
    machine_busy: f64,
}

pub fn run(args: &MultiArgs) -> Result<String> {
    ensure!(
        args.dcs >= 2 && args.per_dc >= 1 && args.runs >= 1,
        "--dcs 2 or more, --per-dc and --runs 1 or more"
    );
    ensure!(args.full_hosts <= args.per_dc, "--full-hosts must be at most --per-dc");
    let total = args.dcs * args.per_dc;
    ensure!(args.base_port as usize + total <= 32_768, "--base-port + every endpoint must stay below 32768");
    let here = std::env::current_exe()?.parent().context("executable directory")?.to_path_buf();
    let dcos = args.dcos.clone().unwrap_or_else(|| here.join("dcos"));
    let middlecon = args.middlecon.clone().unwrap_or_else(|| here.join("middlecon"));
    for b in [&dcos, &middlecon] {
        ensure!(b.is_file(), "{} is not built (scripts/bench-fleet.sh builds it)", b.display());
    }
    prepare_netns()?;
    raise_fd_limit();
    let started = Instant::now();
    let load_start = probe::loadavg();
    let date = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();

    let far: std::net::IpAddr = FAR.parse()?;
    let names: Vec<String> = (0..args.dcs).map(dc_host).collect();
    let certs = Certs::with_names(&[far], &names)?;
    for k in 0..args.dcs {
        let mut spec = LeafSpec::new(format!("relay-{k}"), Role::Host);
        spec.ips = vec!["127.0.0.1".parse()?, far];
        pki::issue_into_dir(certs.dir.path(), &spec).context("issuing a relay's certificate")?;
    }
    // The operator's view (this process and every dcos it starts) and the relays'.
    let operator_hosts = certs.path("hosts-operator");
    std::fs::write(&operator_hosts, hosts_file(args.dcs, |k| if k == 0 { "127.0.0.1" } else { FAR }))?;
    let relay_hosts = certs.path("hosts-relays");
    std::fs::write(&relay_hosts, hosts_file(args.dcs, |_| "127.0.0.1"))?;
    run_quiet(Command::new("mount").arg("--bind").arg(&operator_hosts).arg("/etc/hosts"))?;

    progress(format!("starting {total} k2i endpoints in {} datacenters, and the seed", args.dcs));
    // A process holds its listeners, the relays' kept connections and the direct ones.
    let per_process = PER_PROCESS.min(total);
    let mut servers = Vec::new();
    for first in (0..total).step_by(per_process) {
        let count = per_process.min(total - first);
        let mut extra =
            vec!["--dc-size".to_string(), args.per_dc.to_string(), "--first".into(), first.to_string()];
        if first == 0 {
            extra.extend(["--seed-listen".into(), format!("127.0.0.1:{SEED_PORT}")]);
            extra.extend(["--fleet-count".into(), total.to_string()]);
        }
        let base = u16::try_from(args.base_port as usize + first)?;
        servers.push(Server::start_with(count, base, certs.dir.path(), &extra)?);
    }
    let server = servers.remove(0);
    let exe = std::env::current_exe()?;
    let first_far = args.base_port as usize + args.per_dc;
    let last = args.base_port as usize + total - 1;
    let mut proxies = Vec::new();
    for (n, from) in (first_far..=last).step_by(PER_PROCESS / 2).enumerate() {
        let to = (from + PER_PROCESS / 2 - 1).min(last);
        let mut proxy = Command::new(&exe);
        proxy
            .args(["proxy", "--listen-ip", FAR, "--to-ip", "127.0.0.1", "--rtt-ms", &args.rtt_ms.to_string()])
            .args(["--ports", &format!("{from}-{to}")]);
        if n == 0 {
            let relays =
                format!("{}-{}", RELAY_API_BASE as usize + 1, RELAY_API_BASE as usize + args.dcs - 1);
            proxy.args(["--ports", &relays]);
        }
        proxies.push(start_announced(proxy, "ready", "a proxy")?);
    }
    let state = tempfile::Builder::new().prefix("fleet-bench-relays-").tempdir()?;
    let mut relays = Vec::new();
    for k in 0..args.dcs {
        let name = format!("relay-{k}");
        let dir = state.path().join(&name);
        std::fs::create_dir_all(&dir)?;
        let mut cmd = Command::new("unshare");
        cmd.args(["--mount", "--", "sh", "-c", "mount --bind \"$0\" /etc/hosts && exec \"$@\""])
            .arg(&relay_hosts)
            .arg(&middlecon)
            .args(["--name", &name, "--dc", &format!("dc{k}")])
            .args(["--listen", &format!("127.0.0.1:{}", RELAY_PEER_BASE as usize + k)])
            .args(["--api", &format!("127.0.0.1:{}", RELAY_API_BASE as usize + k)])
            .arg("--socket")
            .arg(dir.join("api.sock"))
            .arg("--state-dir")
            .arg(&dir)
            .arg("--cert")
            .arg(certs.path(&format!("{name}.crt")))
            .arg("--key")
            .arg(certs.path(&format!("{name}.key")))
            .arg("--ca")
            .arg(certs.path("ca.crt"))
            .env("RUST_LOG", "warn");
        relays.push(start_announced(cmd, "listening", &name)?);
    }
    std::thread::sleep(Duration::from_secs(args.settle));
    let report = certs.path("measured.txt");
    let world = World {
        dcos: dcos.clone(),
        certs,
        server,
        more_servers: servers,
        proxies,
        relays,
        args: args.clone(),
        report,
    };

    progress("warm-up, not counted: relayed and direct ps, the full table, a refreshing top");
    for (what, extra, relayed) in [("relayed", &[][..], true), ("direct", &["--relay", "never"][..], false)] {
        // The first round opens every connection at once: a host missing it is stated.
        if let Err(e) = world.ps(&dcos, extra, total, relayed) {
            progress(format!("warm-up, {what}: {e:#}"));
        }
    }
    world.full_table(&dcos)?;
    // A relay's first live session also grows its memory (a thousand watch connections):
    // a daemon pays that once in its life, not each refresh.
    world.top()?;
    world.quiet_after_top();
    if let Some(only) = &args.only {
        return world.only(only);
    }

    let mut f = Found::default();
    let pause = || std::thread::sleep(Duration::from_millis(500));
    let fresh = || std::thread::sleep(FRESH);
    for run in 1..=args.runs {
        pause();
        let (e, side, doc) = world.ps(&dcos, &[], total, true)?;
        f.relayed.push(&e, side, Some(&doc));
        pause();
        let (d, side, doc) = world.ps(&dcos, &["--relay", "never"], total, false)?;
        f.direct.push(&d, side, Some(&doc));
        pause();
        let (t, side, frames) = world.top()?;
        f.top.push(&t, side, None);
        f.top_first.push(frames[0]);
        f.top_rest.extend_from_slice(&frames[1..]);
        world.quiet_after_top();
        // This build and the one before take turns going first, round by round, and each
        // finds a new sample: k2i keeps its rendered answer to a query for the sample, so
        // the second of two commands asking the same would be answered from what the
        // first paid for.
        let before_first = run % 2 == 0;
        let one_dc_before = |f: &mut Found| -> Result<()> {
            if let Some(before) = &args.dcos_before {
                fresh();
                let (o, side, doc) = world.ps(before, &["--dc", "dc0"], args.per_dc, false)?;
                f.one_dc_before.push(&o, side, Some(&doc));
            }
            Ok(())
        };
        if before_first {
            one_dc_before(&mut f)?;
        }
        fresh();
        let (o, side, doc) = world.ps(&dcos, &["--dc", "dc0"], args.per_dc, false)?;
        f.one_dc.push(&o, side, Some(&doc));
        if !before_first {
            one_dc_before(&mut f)?;
        }
        let (o, side, doc) = world.ps(&dcos, &["--relay", "always", "--dc", "dc0"], args.per_dc, true)?;
        f.one_dc_relayed.push(&o, side, Some(&doc));
        pause();
        // The whole tables, this build first: curl and the build before may then be
        // answered from what it paid to render (k2i keeps its answer to `/v1/proc` for the
        // sample), which can only flatter them. Waiting for a new sample before each
        // instead would put the sampler's work in all three.
        let (n, doc) = world.full_table(&dcos)?;
        f.full_rows.push(doc.processes.len() as f64);
        f.full_new.push(&n, Side::default(), Some(&doc));
        let c = world.full_curl()?;
        f.full_curl.push(&c, Side::default(), None);
        if let Some(before) = &args.dcos_before {
            let (b, doc) = world.full_table(before)?;
            f.full_before.push(&b, Side::default(), Some(&doc));
        }
        progress(format!(
            "run {run}/{}: relayed {:.0} ms, direct {:.0} ms, top frames {:?} ms, dc0 {:.0} ms, full table {:.0} ms against curl {:.0} ms",
            args.runs,
            ms(e.wall),
            ms(d.wall),
            frames,
            ms(o.wall),
            ms(n.wall),
            ms(c.wall)
        ));
    }
    if args.steady_frames >= 3 {
        progress(format!("a refreshing dcos top of {} frames, its steady cost", args.steady_frames));
        let steady = world.top_steady(args.steady_frames)?;
        progress(format!("{steady:?}"));
        f.steady = Some(steady);
    }
    if !args.no_full_ndjson {
        progress(format!("the full dcos ps -o ndjson of {total} hosts through the relays"));
        let (e, side) = world.full_ndjson()?;
        f.ndjson_bytes = e.stdout_bytes;
        f.ndjson_lines = e.stdout_lines;
        f.ndjson.push(&e, side, None);
        progress(format!(
            "full ndjson: {:.1} s, peak RSS {:.1} MB, {} lines, {} bytes",
            ms(e.wall) / 1e3,
            e.max_rss as f64 / 1e6,
            e.stdout_lines,
            e.stdout_bytes
        ));
    }
    let closing = dcos_bench::report::closing_lines(&load_start, started);
    Ok(render(&f, args, &date, &closing))
}

fn render(f: &Found, args: &MultiArgs, date: &str, closing: &str) -> String {
    let total = thousands(args.dcs * args.per_dc);
    let per = thousands(args.per_dc);
    let med = |v: &[f64]| summarize(v).median;
    let min = |v: &[f64]| summarize(v).min;
    let mut rows: Vec<[String; 6]> = Vec::new();
    let (relayed, direct) = (&f.relayed.series.wall, &f.direct.series.wall);
    rows.push([
        format!("`dcos ps --limit {}`, {total} hosts in {} datacenters, relayed", args.limit, args.dcs),
        f_ms(med(relayed)),
        f_ms(min(relayed)),
        "≤ 1 s".into(),
        format!("{:.2} × target", med(relayed) / 1000.0),
        verdict(med(relayed) <= 1000.0).into(),
    ]);
    rows.push([
        "the same, `--relay never` (every host from the operator's machine)".into(),
        f_ms(med(direct)),
        f_ms(min(direct)),
        "reference".into(),
        "1.00 × direct".into(),
        String::new(),
    ]);
    let ratio = med(relayed) / med(direct);
    rows.push([
        "relayed ÷ direct".into(),
        format!("{ratio:.3}"),
        format!("{:.3}", min(relayed) / min(direct)),
        "≤ 0.3 × direct".into(),
        format!("{:.2} × target", ratio / 0.3),
        verdict(ratio <= 0.3).into(),
    ]);
    let mut rest = f.top_rest.clone();
    rest.sort_by(f64::total_cmp);
    let (rest_med, rest_max) = (med(&rest), rest.last().copied().unwrap_or(0.0));
    rows.push([
        format!(
            "`dcos top` refresh after the first, {total} hosts, relayed ({} frames a run at 1 s; p90 {}, max {}; the first frame: median {})",
            args.top_frames,
            f_ms(percentile(&rest, 90.0)),
            f_ms(rest_max),
            f_ms(med(&f.top_first))
        ),
        f_ms(rest_med),
        f_ms(min(&rest)),
        "≤ 200 ms".into(),
        format!("{:.2} × target", rest_med / 200.0),
        verdict(rest_med <= 200.0).into(),
    ]);
    let one = &f.one_dc.series.wall;
    let one_relayed = &f.one_dc_relayed.series.wall;
    if f.one_dc_before.series.wall.is_empty() {
        rows.push([
            format!("`dcos ps --limit {}`, the {per} hosts of one datacenter (direct: `auto` with one datacenter)", args.limit),
            f_ms(med(one)),
            f_ms(min(one)),
            "no slower than before".into(),
            "no build before given".into(),
            "(stated)".into(),
        ]);
    } else {
        let before = &f.one_dc_before.series.wall;
        let r = med(one) / med(before);
        rows.push([
            format!(
                "`dcos ps --limit {}`, the {per} hosts of one datacenter, this build ÷ the build before (before: {})",
                args.limit,
                f_ms(med(before))
            ),
            format!("{r:.3} ({})", f_ms(med(one))),
            format!("{:.3}", min(one) / min(before)),
            "≤ 1.05 × before (noise)".into(),
            format!("{:.2} × target", r / 1.05),
            verdict(r <= 1.05).into(),
        ]);
    }
    rows.push([
        format!("the same {per} hosts through their relay (`--relay always --dc dc0`)"),
        f_ms(med(one_relayed)),
        f_ms(min(one_relayed)),
        "—".into(),
        format!("{:.2} × direct", med(one_relayed) / med(one)),
        String::new(),
    ]);
    if !f.ndjson.series.rss.is_empty() {
        let rss = med(&f.ndjson.series.rss);
        rows.push([
            format!(
                "peak RSS of `dcos ps -o ndjson` of all {total} hosts through the relays ({} lines, {:.2} GB, {:.1} s)",
                thousands(f.ndjson_lines as usize),
                f.ndjson_bytes as f64 / 1e9,
                med(&f.ndjson.series.wall) / 1e3
            ),
            f_mb(rss),
            f_mb(rss),
            "≤ 100 MB".into(),
            format!("{:.2} × target", rss / 100e6),
            verdict(rss <= 100e6).into(),
        ]);
    }
    let (full, curl) = (&f.full_new.series.wall, &f.full_curl.series.wall);
    let fr = med(full) / med(curl);
    let before_note = if f.full_before.series.wall.is_empty() {
        String::new()
    } else {
        format!("; the build before: {:.3} × curl", med(&f.full_before.series.wall) / med(curl))
    };
    rows.push([
        format!(
            "the whole table of {} hosts (`dcos ps -o json`, {} rows) ÷ `xargs -P {} curl` of the same ({}){before_note}",
            args.full_hosts,
            thousands(med(&f.full_rows) as usize),
            args.parallel,
            f_ms(med(curl))
        ),
        format!("{fr:.3} ({})", f_ms(med(full))),
        format!("{:.3}", min(full) / min(curl)),
        "≤ 0.3 × curl".into(),
        format!("{:.2} × target", fr / 0.3),
        verdict(fr <= 0.3).into(),
    ]);

    let mut out = String::new();
    let _ = writeln!(out, "### Multi-datacenter fan-out benchmark, {date}\n");
    let _ = writeln!(out, "- machine: {}", probe::machine());
    if let Some(note) = &args.report.note {
        let _ = writeln!(out, "- {note}");
    }
    let _ = writeln!(
        out,
        "- {total} real k2i HTTPS endpoints (mTLS) in {} datacenters of {per}, served by {} processes on \
         this machine (a sampler each), with a seed listing them and one relay (a real middlecon, release build) per datacenter; \
         {} ms round trip added between datacenters by `fleet-bench proxy` (one round trip before a connection \
         reaches its server, half a round trip on every chunk each way, at nice -20 as netem would delay in the kernel), \
         none within one; the operator in `dc0`",
        args.dcs,
        (args.dcs * args.per_dc).div_ceil(PER_PROCESS),
        args.rtt_ms
    );
    let _ = writeln!(
        out,
        "- medians and minimums of {} runs, interleaved, after a warm-up round (each `ps`, the full table and a refreshing `top`); the two builds' `dc0` commands each 2.5 s after the one before, so each finds a new sample; `--timeout {}`; every host answered \
         in every timed command unless the progress lines in the history say otherwise; PASS/FAIL on the median",
        args.runs, args.timeout
    );
    out.push_str(closing);
    targets_table(&mut out, &rows);
    let _ = writeln!(
        out,
        "| measure | wall | client CPU | k2i endpoints' CPU | relays' CPU | proxy CPU | machine busy | client peak RSS |"
    );
    let _ = writeln!(out, "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    let series = [
        (format!("ps --limit {}, {total} hosts, relayed", args.limit), &f.relayed),
        (format!("ps --limit {}, {total} hosts, direct", args.limit), &f.direct),
        (format!("top, {} frames, relayed", args.top_frames), &f.top),
        (format!("ps --limit {}, {per} hosts of dc0, direct", args.limit), &f.one_dc),
        (format!("ps --limit {}, {per} hosts of dc0, through its relay", args.limit), &f.one_dc_relayed),
        (format!("ps --limit {}, {per} hosts of dc0, the build before", args.limit), &f.one_dc_before),
        (format!("ps -o json, whole tables of {} hosts", args.full_hosts), &f.full_new),
        ("the same, the build before".to_string(), &f.full_before),
        (format!("xargs curl, whole tables of {} hosts", args.full_hosts), &f.full_curl),
        (format!("ps -o ndjson, every row of {total} hosts, relayed"), &f.ndjson),
    ];
    for (label, s) in series {
        if s.series.wall.is_empty() {
            continue;
        }
        let _ = writeln!(
            out,
            "| {label} | {} | {} | {} | {} | {} | {:.0} % | {} |",
            f_ms(med(&s.series.wall)),
            f_ms(med(&s.series.cpu)),
            f_ms(med(&s.series.server_cpu)),
            f_ms(med(&s.relays_cpu)),
            f_ms(med(&s.proxy_cpu)),
            med(&s.series.busy),
            f_mb(med(&s.series.rss)),
        );
    }
    if let Some(s) = f.steady {
        let _ = writeln!(
            out,
            "\nA refreshing `dcos top` once it runs (frames 2 to {} of one `top -n {}`, {:.1} s): the relays' CPU \
             {:.0} ms a second ({:.0} ms a second for each relay's {per} hosts, {:.1} µs a host), the k2i endpoints' \
             {:.0} ms a second ({:.1} µs a host); the machine {:.0} % busy (100 % = both cores).",
            s.frames + 2,
            s.frames + 2,
            s.secs,
            s.relays_ms_per_s,
            s.relays_ms_per_s / args.dcs as f64,
            s.relays_ms_per_s * 1e3 / (args.dcs * args.per_dc) as f64,
            s.endpoints_ms_per_s,
            s.endpoints_ms_per_s * 1e3 / (args.dcs * args.per_dc) as f64,
            s.machine_busy,
        );
    }
    out
}
