//! The fleet fan-out benchmark (issue 3): `dcos ps` across 1,000 k2i endpoints on this
//! machine, side by side in the same run with what a user would do without `dcos`:
//! `xargs -P 64 curl` over the same endpoints.
//!
//! Two modes of one binary:
//!
//! - `fleet-bench serve`: ONE process serving N real k2i HTTPS listeners on
//!   `127.0.0.1:P..P+N-1`. They share one sampler and one TLS configuration; each has its
//!   own `AppState` named `sim-NNNN`, so every endpoint answers as a distinct host, and
//!   each runs `k2i::server::serve` on its own listener. Endpoint `i` of N sends its
//!   `/v1/top?watch=true` documents `i/N` of the sample interval after each sample, as
//!   hosts sampling on their own clocks would, not all at the same instant.
//! - `fleet-bench run`: the driver. It re-runs itself under `unshare --net`, so the
//!   iptables rules that black-hole hosts live and die with a private network namespace,
//!   makes a throwaway CA, starts `serve`, and times the real `dcos` binary and the curl
//!   baseline, interleaved run by run. It prints a Markdown report.
//!
//! - `fleet-bench multi` ([`multi`]): the multi-datacenter mode (issue 18): 10,000 endpoints
//!   in 10 datacenters behind a delaying proxy (`fleet-bench proxy`), a relay per datacenter,
//!   `dcos ps` and `dcos top` relayed and direct, side by side.
//!
//! Run it as root through `scripts/bench-fleet.sh`, which builds `dcos` and this binary in
//! release mode first. See `docs/benchmarks.md` for the method.

use anyhow::{bail, ensure, Context, Result};
use clap::{Args, Parser, Subcommand};
use dcos_bench::probe;
use dcos_bench::stats::{ms, summarize, Summary};
use dcos_core::pki::{self, LeafSpec};
use dcos_core::tls::{Identity, TlsFiles};
use dcos_core::tokens::Tokens;
use dcos_core::Role;
use k2i::sampler::{self, SamplerConfig};
use k2i::server::{self, AppState};
use k2i::sysctl::AllowList;
use serde::de::IgnoredAny;
use serde::Deserialize;
use std::collections::HashSet;
use std::fmt::Write as _;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

#[path = "fleet-bench-dc/multi.rs"]
mod multi;
#[path = "fleet-bench-dc/proxy.rs"]
mod proxy;

/// Set in the environment of the copy of this program that runs inside the private
/// network namespace, to the namespace it was started from.
const NETNS_ENV: &str = "FLEET_BENCH_NETNS";
/// The name of the simulated hosts' certificate (valid for 127.0.0.1) in the CA directory.
const HOST_CERT: &str = "fleet-sim";
/// The datacenter every simulated host reports.
const SIM_DC: &str = "bench";

#[derive(Debug, Parser)]
#[command(
    name = "fleet-bench",
    about = "dcos ps across many k2i endpoints, side by side with xargs -P 64 curl over the same endpoints."
)]
struct Cli {
    #[command(subcommand)]
    mode: Mode,
}

#[derive(Debug, Subcommand)]
enum Mode {
    /// Serve many k2i endpoints from this one process (the driver starts it itself).
    Serve(ServeArgs),
    /// Run the benchmark in a private network namespace and print the report (as root).
    Run(RunArgs),
    /// The multi-datacenter benchmark (as root; see `fleet-bench multi --help`).
    Multi(multi::MultiArgs),
    /// A TCP proxy adding a round trip (the driver of `multi` starts it itself).
    Proxy(proxy::ProxyArgs),
}

#[derive(Debug, Clone, Args)]
struct ServeArgs {
    /// Endpoints to serve.
    #[arg(long, default_value_t = 1000)]
    count: usize,
    /// The first port; endpoint i listens on 127.0.0.1:(base-port + i).
    #[arg(long, default_value_t = 20_000)]
    base_port: u16,
    /// Directory with `ca.crt`, `fleet-sim.crt` and `fleet-sim.key`.
    #[arg(long)]
    ca: PathBuf,
    /// Endpoints per datacenter: endpoint i reports dc `dc<i / dc-size>` (0: all `bench`).
    #[arg(long, default_value_t = 0)]
    dc_size: usize,
    /// Also serve a seed's `Membership.Members` here, listing the endpoints and a relay per
    /// datacenter ([`multi::seed_members`]).
    #[arg(long)]
    seed_listen: Option<std::net::SocketAddr>,
    /// The fleet-wide index of this process's first endpoint (several processes share a
    /// fleet when one process may not hold enough open files): endpoint i is `sim-(first+i)`.
    #[arg(long, default_value_t = 0)]
    first: usize,
    /// Endpoints in the whole fleet, for the seed's list [default: --count].
    #[arg(long)]
    fleet_count: Option<usize>,
}

#[derive(Debug, Clone, Args)]
struct RunArgs {
    /// Simulated hosts (k2i endpoints) for the full fan-out.
    #[arg(long, default_value_t = 1000)]
    count: usize,
    /// Hosts for the small fan-out.
    #[arg(long, default_value_t = 100)]
    small: usize,
    /// Hosts black-holed (SYNs dropped) for the timeout measurement.
    #[arg(long, default_value_t = 100)]
    blackhole: usize,
    /// Repetitions of every measurement, interleaved; medians and minimums are reported.
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// The first port of the endpoints.
    #[arg(long, default_value_t = 20_000)]
    base_port: u16,
    /// Concurrent curl processes in the baseline (`xargs -P`).
    #[arg(long, default_value_t = 64)]
    parallel: usize,
    /// `--limit` of the timed `dcos ps` runs.
    #[arg(long, default_value_t = 20)]
    limit: usize,
    /// `--timeout` of the full `dcos ps` (no limit) whose peak memory is measured.
    #[arg(long, default_value = "30s")]
    full_timeout: String,
    /// Seconds to wait after the endpoints are up, before the untimed warm-up round (whose
    /// first request also wakes the sampler: k2i starts idle, and samples every second once
    /// asked).
    #[arg(long, default_value_t = 2)]
    settle: u64,
    /// The dcos binary [default: `dcos` next to this executable].
    #[arg(long)]
    dcos: Option<PathBuf>,
    #[command(flatten)]
    report: dcos_bench::report::ReportArgs,
}

fn main() -> ExitCode {
    run_measure_helper_if_requested();
    let cli = Cli::parse();
    match cli.mode {
        Mode::Serve(args) => match serve(&args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("fleet-bench serve: {e:#}");
                ExitCode::FAILURE
            }
        },
        Mode::Proxy(args) => dcos_bench::report::exit_code("fleet-bench proxy", proxy::run(&args)),
        Mode::Multi(args) => in_netns(|| {
            let report = multi::run(&args).and_then(|r| args.report.emit(&r));
            dcos_bench::report::exit_code("fleet-bench multi", report)
        }),
        Mode::Run(args) => in_netns(|| match run(&args) {
            Ok(report) => match args.report.emit(&report) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("fleet-bench: {e:#}");
                    ExitCode::FAILURE
                }
            },
            Err(e) => {
                eprintln!("fleet-bench: {e:#}");
                ExitCode::FAILURE
            }
        }),
    }
}

/// Runs `measure` in the benchmark's private network namespace: from outside it, this
/// program again inside one ([`reexec_in_netns`]).
fn in_netns(measure: impl FnOnce() -> ExitCode) -> ExitCode {
    if std::env::var_os(NETNS_ENV).is_some() {
        return measure();
    }
    match reexec_in_netns() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("fleet-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn progress(msg: impl AsRef<str>) {
    dcos_bench::report::progress("fleet-bench", msg.as_ref());
}

/// Raises the open-files limit: to [`FD_LIMIT`] as root (tens of thousands of listeners and
/// sockets), else to its hard maximum.
fn raise_fd_limit() {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: plain system calls on local structs.
    unsafe {
        let wide = libc::rlimit { rlim_cur: FD_LIMIT, rlim_max: FD_LIMIT };
        if libc::setrlimit(libc::RLIMIT_NOFILE, &wide) == 0 {
            return;
        }
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

/// The open-files limit of the benchmark's processes when it runs as root.
const FD_LIMIT: libc::rlim_t = 262_144;

// ---------------------------------------------------------------------------------------
// `serve`: many k2i endpoints in one process.

fn serve(args: &ServeArgs) -> Result<()> {
    ensure!(args.count > 0, "--count must be at least 1");
    ensure!(
        args.base_port as usize + args.count <= 65_536,
        "--base-port {} + --count {} goes past port 65535",
        args.base_port,
        args.count
    );
    // Go when the driver goes, however it ends.
    // SAFETY: prctl with integer arguments only.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) };
    raise_fd_limit();
    let files = TlsFiles {
        cert: args.ca.join(format!("{HOST_CERT}.crt")),
        key: args.ca.join(format!("{HOST_CERT}.key")),
        ca: args.ca.join("ca.crt"),
    };
    let identity = Identity::load(&files).context("loading the simulated hosts' certificate")?;
    let tls = identity.server_config(&[b"http/1.1"]).context("building the TLS configuration")?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async {
        // One sampler for every endpoint: they all show this machine's process table.
        let cfg = SamplerConfig::new(HOST_CERT.into(), SIM_DC.into(), Duration::from_secs(1));
        let sampler = tokio::task::spawn_blocking(move || sampler::spawn(cfg))
            .await
            .context("starting the sampler")?
            .context("starting the sampler thread")?;
        if let Some(addr) = args.seed_listen {
            multi::serve_seed(addr, &identity, multi::seed_members(args)).await?;
        }
        for i in 0..args.count {
            let port = args.base_port + i as u16;
            let dc = (args.first + i)
                .checked_div(args.dc_size)
                .map_or_else(|| SIM_DC.to_string(), |k| format!("dc{k}"));
            let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
                .await
                .with_context(|| format!("binding 127.0.0.1:{port}"))?;
            let state = AppState::new(
                sampler.clone(),
                &multi::sim_name(args.first + i),
                &dc,
                Tokens::default(),
                AllowList::default(),
                None,
            )
            .with_watch_offset(sampler.interval().mul_f64(i as f64 / args.count as f64));
            let metrics = state.metrics.clone();
            let app = server::router(state);
            let tls = tls.clone();
            tokio::spawn(async move {
                if let Err(e) = server::serve(listener, tls, app, metrics, None, std::future::pending()).await
                {
                    eprintln!("fleet-bench serve: 127.0.0.1:{port}: {e}");
                }
            });
        }
        anyhow::Ok(())
    })?;
    println!(
        "ready {} https://127.0.0.1:{}..{} (one process, one sampler)",
        args.count,
        args.base_port,
        args.base_port as usize + args.count - 1
    );
    // The runtime's workers serve; this thread waits for the driver to close our stdin.
    let mut sink = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut sink);
    std::process::exit(0);
}

// ---------------------------------------------------------------------------------------
// The driver's setup: the namespace, certificates, the serving process.

/// Runs this program again, with the same arguments, in a new network namespace.
fn reexec_in_netns() -> Result<ExitCode> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        bail!("run as root (scripts/bench-fleet.sh): the benchmark needs `unshare --net` and iptables");
    }
    let exe = std::env::current_exe().context("finding this executable")?;
    // A mount namespace too: `multi` gives its clients and relays their own /etc/hosts.
    let status = Command::new("unshare")
        .args(["--net", "--mount", "--"])
        .arg(&exe)
        .args(std::env::args_os().skip(1))
        .env(NETNS_ENV, own_netns()?)
        .status()
        .context("running unshare --net (util-linux)")?;
    Ok(match status.code() {
        Some(0) => ExitCode::SUCCESS,
        Some(c) => ExitCode::from(c.clamp(1, 255) as u8),
        None => ExitCode::FAILURE,
    })
}

/// Checks that this process is not in the network namespace it was started from (whose
/// name the outer copy put in [`NETNS_ENV`]), and brings `lo` up.
fn prepare_netns() -> Result<()> {
    let outer = std::env::var(NETNS_ENV).unwrap_or_default();
    let here = own_netns()?;
    if outer.is_empty() || outer == here {
        bail!("not in a private network namespace ({here}); refusing to add iptables rules");
    }
    run_quiet(Command::new("ip").args(["link", "set", "lo", "up"]))
}

/// This process's network namespace, e.g. `net:[4026531833]`.
fn own_netns() -> Result<String> {
    let link = std::fs::read_link("/proc/self/ns/net").context("reading /proc/self/ns/net")?;
    Ok(link.to_string_lossy().into_owned())
}

/// Runs a short command; fails with its stderr if it fails.
fn run_quiet(cmd: &mut Command) -> Result<()> {
    let out = cmd.stdin(Stdio::null()).output().with_context(|| format!("running {cmd:?}"))?;
    if !out.status.success() {
        bail!("{cmd:?} failed ({}): {}", out.status, String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(())
}

/// A throwaway CA with the admin certificate and one host certificate for 127.0.0.1.
struct Certs {
    dir: tempfile::TempDir,
}

impl Certs {
    fn new() -> Result<Certs> {
        Certs::with_names(&[], &[])
    }

    /// As [`Certs::new`], the host certificate also valid for `ips` and `dns` names.
    fn with_names(ips: &[std::net::IpAddr], dns: &[String]) -> Result<Certs> {
        let dir = tempfile::Builder::new().prefix("fleet-bench-").tempdir()?;
        pki::init_dir(dir.path()).context("creating the CA")?;
        let mut spec = LeafSpec::new(HOST_CERT, Role::Host);
        spec.ips = vec!["127.0.0.1".parse()?];
        spec.ips.extend_from_slice(ips);
        spec.dns = dns.to_vec();
        pki::issue_into_dir(dir.path(), &spec).context("issuing the host certificate")?;
        Ok(Certs { dir })
    }

    fn path(&self, file: &str) -> PathBuf {
        self.dir.path().join(file)
    }
}

/// The `serve` child; its stdin closing tells it to exit.
struct Server {
    child: Child,
    stdin: Option<ChildStdin>,
}

impl Server {
    fn start(count: usize, base_port: u16, ca: &Path) -> Result<Server> {
        Server::start_with(count, base_port, ca, &[])
    }

    /// As [`Server::start`], with more `serve` arguments.
    fn start_with(count: usize, base_port: u16, ca: &Path, extra: &[String]) -> Result<Server> {
        let exe = std::env::current_exe().context("finding this executable")?;
        let mut child = Command::new(exe)
            .arg("serve")
            .args(["--count", &count.to_string(), "--base-port", &base_port.to_string()])
            .args(extra)
            .arg("--ca")
            .arg(ca)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("starting fleet-bench serve")?;
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().context("serve stdout")?;
        let ready = dcos_localfleet::FirstLine::read(stdout);
        let mut server = Server { child, stdin };
        let line = ready.wait(Duration::from_secs(120)).unwrap_or_default();
        if !line.starts_with("ready ") {
            bail!("fleet-bench serve did not become ready: {line:?}");
        }
        progress(line.trim());
        if let Ok(Some(status)) = server.child.try_wait() {
            bail!("fleet-bench serve exited: {status}");
        }
        server.stdin.as_ref().context("serve stdin")?;
        Ok(server)
    }

    fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    fn rss(&self) -> u64 {
        probe::status_bytes(self.pid(), "VmRSS").unwrap_or(0)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An iptables rule dropping TCP to a port range on `lo`, removed when dropped.
struct BlackHole {
    rule: Vec<String>,
}

impl BlackHole {
    fn new(first: u16, last: u16) -> Result<BlackHole> {
        let rule: Vec<String> =
            ["INPUT", "-i", "lo", "-p", "tcp", "--dport", &format!("{first}:{last}"), "-j", "DROP"]
                .iter()
                .map(|s| s.to_string())
                .collect();
        run_quiet(Command::new("iptables").args(["-w", "-A"]).args(&rule))?;
        Ok(BlackHole { rule })
    }
}

impl Drop for BlackHole {
    fn drop(&mut self) {
        if let Err(e) = run_quiet(Command::new("iptables").args(["-w", "-D"]).args(&self.rule)) {
            eprintln!("fleet-bench: removing the black hole: {e:#}");
        }
    }
}

// ---------------------------------------------------------------------------------------
// Timing one command.

/// One timed command: from spawn to the moment it was reaped.
#[derive(Debug)]
struct Exec {
    wall: Duration,
    /// Exit status, or 128 + the signal.
    code: i32,
    stdout: Vec<u8>,
    /// Bytes and lines of stdout (also when it was not kept).
    stdout_bytes: u64,
    stdout_lines: u64,
    stderr: Vec<u8>,
    /// User + system CPU of the command and the children it waited for (all curls under
    /// xargs), in ms.
    cpu_ms: f64,
    /// Its peak resident set (largest of it and its children), in bytes.
    max_rss: u64,
    /// CPU the serving process used meanwhile, in ms.
    server_cpu_ms: f64,
    /// CPU the whole machine used meanwhile (every process), in ms.
    machine_cpu_ms: f64,
}

impl Exec {
    fn stderr_head(&self) -> String {
        let text = String::from_utf8_lossy(&self.stderr);
        let lines: Vec<&str> = text.lines().take(5).collect();
        lines.join("\n")
    }
}

/// Reaps `pid` and returns its wait status with its resource usage (which, on Linux,
/// includes the children it waited for).
fn wait_rusage(pid: libc::pid_t) -> Result<(i32, libc::rusage)> {
    let mut status = 0;
    // SAFETY: rusage is plain data; zeroes are a valid value.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: pointers to locals; pid is our own unreaped child.
        let r = unsafe { libc::wait4(pid, &mut status, 0, &mut ru) };
        if r == pid {
            break;
        }
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::Interrupted {
            return Err(e).context("wait4");
        }
    }
    let code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else if libc::WIFSIGNALED(status) {
        128 + libc::WTERMSIG(status)
    } else {
        -1
    };
    Ok((code, ru))
}

fn tv_ms(tv: libc::timeval) -> f64 {
    tv.tv_sec as f64 * 1e3 + tv.tv_usec as f64 / 1e3
}

fn drain(pipe: Option<impl Read + Send + 'static>) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(mut p) = pipe {
            let _ = p.read_to_end(&mut buf);
        }
        buf
    })
}

/// Reads `pipe` to its end keeping nothing: its bytes and lines.
fn count(pipe: Option<impl Read + Send + 'static>) -> std::thread::JoinHandle<(u64, u64)> {
    std::thread::spawn(move || {
        let (mut bytes, mut lines) = (0u64, 0u64);
        let mut buf = vec![0u8; 1 << 16];
        if let Some(mut p) = pipe {
            while let Ok(n) = p.read(&mut buf) {
                if n == 0 {
                    break;
                }
                bytes += n as u64;
                lines += buf[..n].iter().filter(|b| **b == b'\n').count() as u64;
            }
        }
        (bytes, lines)
    })
}

/// The argument that turns this program into the measuring helper:
/// `fleet-bench __fleet-bench-measure REPORT PROGRAM ARGS...`.
///
/// A child's `ru_maxrss` starts from its parent's peak: `fork` (and `posix_spawn`, which
/// shares the parent's memory until `exec`) counts the parent's resident pages, and `exec`
/// keeps that peak. The driver holds megabytes of JSON, so the commands are started from
/// this small, fresh process instead; its own peak (a few MB, stated in the report) is the
/// floor of every RSS figure.
const MEASURE_ARG: &str = "__fleet-bench-measure";

/// If this process was started as the measuring helper, runs PROGRAM (inheriting stdin,
/// stdout, stderr, environment and directory), reaps it with `wait4`, writes
/// `status wall_ns cpu_us maxrss_kb` to REPORT and exits.
fn run_measure_helper_if_requested() {
    let mut args = std::env::args_os().skip(1);
    if args.next().as_deref() != Some(std::ffi::OsStr::new(MEASURE_ARG)) {
        return;
    }
    let (Some(report), Some(program)) = (args.next(), args.next()) else {
        eprintln!("fleet-bench: {MEASURE_ARG} REPORT PROGRAM [ARGS...]");
        std::process::exit(2);
    };
    let started = Instant::now();
    let line = match Command::new(&program).args(args).spawn() {
        Ok(child) => match wait_rusage(child.id() as libc::pid_t) {
            Ok((code, ru)) => {
                let wall = started.elapsed();
                let cpu_us = (tv_ms(ru.ru_utime) + tv_ms(ru.ru_stime)) * 1e3;
                format!("{code} {} {cpu_us:.0} {}\n", wall.as_nanos(), ru.ru_maxrss)
            }
            Err(e) => format!("error {e:#}\n"),
        },
        Err(e) => format!("error starting {}: {e}\n", Path::new(&program).display()),
    };
    let written = std::fs::write(&report, line);
    std::process::exit(if written.is_ok() { 0 } else { 1 });
}

/// A command to be run by [`timed`], through the measuring helper.
fn measured(program: impl AsRef<std::ffi::OsStr>, report: &Path) -> Result<Command> {
    let exe = std::env::current_exe().context("finding this executable")?;
    let mut cmd = Command::new(exe);
    cmd.arg(MEASURE_ARG).arg(report).arg(program);
    Ok(cmd)
}

/// Runs a [`measured`] command (stdout and stderr drained into memory) and reads what the
/// helper wrote to `report`: exit status, wall time from spawn to reaping, CPU, peak RSS.
fn timed(cmd: &mut Command, report: &Path, server: &Server) -> Result<Exec> {
    timed_output(cmd, report, server, true)
}

/// As [`timed`]; without `keep`, stdout is only counted ([`Exec::stdout_bytes`],
/// [`Exec::stdout_lines`]), not kept.
fn timed_output(cmd: &mut Command, report: &Path, server: &Server, keep: bool) -> Result<Exec> {
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let _ = std::fs::remove_file(report);
    let s0 = probe::cpu_ticks(server.pid())?;
    let m0 = MachineCpu::read()?;
    let mut child = cmd.spawn().context("spawning the measuring helper")?;
    let (out, counted) = if keep {
        (Some(drain(child.stdout.take())), None)
    } else {
        (None, Some(count(child.stdout.take())))
    };
    let err = drain(child.stderr.take());
    let helper = child.wait().context("waiting for the measuring helper")?;
    let s1 = probe::cpu_ticks(server.pid())?;
    let machine_cpu_ms = MachineCpu::read()?.busy_ms_since(&m0);
    let stdout = out.map(|o| o.join().unwrap_or_default()).unwrap_or_default();
    let (stdout_bytes, stdout_lines) = match counted {
        Some(c) => c.join().unwrap_or_default(),
        None => (stdout.len() as u64, stdout.iter().filter(|b| **b == b'\n').count() as u64),
    };
    let stderr = err.join().unwrap_or_default();
    let line = std::fs::read_to_string(report).unwrap_or_default();
    let fields: Vec<&str> = line.split_whitespace().collect();
    let num = |i: usize| fields.get(i).and_then(|f| f.parse::<i64>().ok());
    let (Some(code), Some(wall_ns), Some(cpu_us), Some(rss_kb)) = (num(0), num(1), num(2), num(3)) else {
        bail!(
            "the measuring helper ({helper}) reported {:?}; stderr: {}",
            line.trim(),
            String::from_utf8_lossy(&stderr).lines().take(5).collect::<Vec<_>>().join("\n")
        );
    };
    Ok(Exec {
        wall: Duration::from_nanos(wall_ns.max(0) as u64),
        code: code as i32,
        stdout,
        stdout_bytes,
        stdout_lines,
        stderr,
        cpu_ms: cpu_us as f64 / 1e3,
        max_rss: rss_kb.max(0) as u64 * 1024,
        server_cpu_ms: s1.saturating_sub(s0) as f64 / probe::clk_tck() * 1e3,
        machine_cpu_ms,
    })
}

/// The machine's CPU time, from the `cpu` line of `/proc/stat`.
#[derive(Debug, Clone, Copy)]
struct MachineCpu {
    busy: u64,
}

impl MachineCpu {
    fn read() -> Result<MachineCpu> {
        let text = std::fs::read_to_string("/proc/stat").context("reading /proc/stat")?;
        let line = text.lines().find(|l| l.starts_with("cpu ")).context("no cpu line in /proc/stat")?;
        let v: Vec<u64> = line.split_whitespace().skip(1).filter_map(|f| f.parse().ok()).collect();
        // user nice system idle iowait irq softirq steal [guest guest_nice, already in user].
        let busy = v.iter().take(8).enumerate().filter(|(i, _)| *i != 3 && *i != 4).map(|(_, t)| t).sum();
        Ok(MachineCpu { busy })
    }

    fn busy_ms_since(&self, earlier: &MachineCpu) -> f64 {
        self.busy.saturating_sub(earlier.busy) as f64 / probe::clk_tck() * 1e3
    }
}

// ---------------------------------------------------------------------------------------
// The measurements.

/// What `dcos -o json ps` prints, as much as the checks need.
#[derive(Debug, Deserialize)]
struct PsDoc {
    hosts: Vec<HostRow>,
    processes: Vec<IgnoredAny>,
}

#[derive(Debug, Deserialize)]
struct HostRow {
    host: String,
    address: String,
    status: String,
    elapsed_ms: u64,
    /// The relay that asked the host, when one did.
    #[serde(default)]
    via: Option<String>,
}

struct Bench {
    dcos: PathBuf,
    certs: Certs,
    server: Server,
    args: RunArgs,
    urls_file: PathBuf,
    /// Where the measuring helper writes what it measured.
    report: PathBuf,
}

impl Bench {
    fn port(&self, i: usize) -> u16 {
        self.args.base_port + i as u16
    }

    fn hosts(&self, n: usize) -> String {
        (0..n).map(|i| format!("127.0.0.1:{}", self.port(i))).collect::<Vec<_>>().join(",")
    }

    fn run(&self, cmd: &mut Command) -> Result<Exec> {
        timed(cmd, &self.report, &self.server)
    }

    fn dcos(&self, hosts: usize, timeout: &str, limit: Option<usize>) -> Result<Command> {
        let mut cmd = measured(&self.dcos, &self.report)?;
        cmd.env("DCOS_CERT", self.certs.path("admin.crt"))
            .env("DCOS_KEY", self.certs.path("admin.key"))
            .env("DCOS_CA", self.certs.path("ca.crt"))
            .env("DCOS_HOSTS", self.hosts(hosts))
            .env_remove("DCOS_INVENTORY")
            .env_remove("DCOS_SEED")
            .env_remove("DCOS_LOG")
            .args(["--timeout", timeout, "-o", "json", "ps"])
            .stdin(Stdio::null());
        if let Some(l) = limit {
            cmd.args(["--limit", &l.to_string()]);
        }
        Ok(cmd)
    }

    /// `dcos ps --limit N` over the first `hosts` endpoints; every host must answer.
    fn dcos_limited(&self, hosts: usize) -> Result<(Exec, PsDoc)> {
        let e = self.run(&mut self.dcos(hosts, "3s", Some(self.args.limit))?)?;
        let doc = parse_ps(&e)?;
        check_all_ok(&e, &doc, hosts)?;
        ensure!(
            doc.processes.len() == self.args.limit,
            "dcos ps --limit {} printed {} processes",
            self.args.limit,
            doc.processes.len()
        );
        Ok((e, doc))
    }

    /// The baseline: `xargs -P 64 -n 1 curl ...` over the same URLs, from the CA directory.
    fn curl(&self) -> Result<Exec> {
        let urls = std::fs::File::open(&self.urls_file).context("opening the URL list")?;
        let mut cmd = measured("xargs", &self.report)?;
        cmd.args(["-P", &self.args.parallel.to_string(), "-n", "1", "curl", "-sS", "--fail"])
            .args(["--cacert", "ca.crt", "--cert", "admin.crt", "--key", "admin.key", "-o", "/dev/null"])
            .current_dir(self.certs.dir.path())
            .stdin(urls);
        let e = self.run(&mut cmd)?;
        if e.code != 0 {
            bail!("xargs curl exited with {}: {}", e.code, e.stderr_head());
        }
        Ok(e)
    }

    /// `dcos --timeout 1s ps --limit N` with the last `blackhole` endpoints black-holed.
    /// Returns the answer and how many hosts outside the black hole timed out too.
    fn dcos_blackholed(&self) -> Result<(Exec, PsDoc, usize)> {
        let n = self.args.count;
        let first = self.port(n - self.args.blackhole);
        let last = self.port(n - 1);
        let hole = BlackHole::new(first, last)?;
        let e = self.dcos(n, "1s", Some(self.args.limit)).and_then(|mut c| self.run(&mut c));
        drop(hole);
        let e = e?;
        let doc = parse_ps(&e)?;
        ensure!(
            e.code == 3,
            "dcos with black-holed hosts exited with {}, not 3: {}",
            e.code,
            e.stderr_head()
        );
        ensure!(doc.hosts.len() == n, "{} hosts reported, not {n}", doc.hosts.len());
        let in_hole = |h: &HostRow| {
            h.address
                .rsplit(':')
                .next()
                .and_then(|p| p.parse::<u16>().ok())
                .is_some_and(|p| (first..=last).contains(&p))
        };
        // Every black-holed host must time out and every other one answer or time out: a
        // loaded machine may keep an answering host past the deadline, which is counted
        // and reported, not hidden.
        if let Some(h) = doc.hosts.iter().find(|h| {
            if in_hole(h) {
                h.status != "timeout"
            } else {
                h.status != "ok" && h.status != "timeout"
            }
        }) {
            bail!("host {} ({}) is {}, black-holed: {}", h.host, h.address, h.status, in_hole(h));
        }
        let extra = doc.hosts.iter().filter(|h| !in_hole(h) && h.status == "timeout").count();
        if extra > 0 {
            progress(format!("black hole: {extra} answering hosts also missed the 1 s deadline"));
        }
        ensure!(doc.processes.len() == self.args.limit, "{} processes printed", doc.processes.len());
        Ok((e, doc, extra))
    }

    /// The full `dcos ps -o json` (no limit) over every endpoint.
    fn dcos_full(&self) -> Result<(Exec, PsDoc)> {
        let n = self.args.count;
        // Every endpoint shows this machine's whole process table: with another benchmark's
        // ten thousand sleepers running, the full fan-out would be ten million rows.
        let rows = probe::process_count() * n;
        let need = rows as f64 * FULL_BYTES_PER_ROW;
        let have = mem_available().unwrap_or(f64::INFINITY);
        ensure!(
            need <= 0.6 * have,
            "a full dcos ps would carry {rows} rows ({} processes here × {n} hosts), about {:.1} GB for dcos \
             with {:.1} GB available; is another benchmark running?",
            probe::process_count(),
            need / 1e9,
            have / 1e9
        );
        let e = self.run(&mut self.dcos(n, &self.args.full_timeout, None)?)?;
        let doc = parse_ps(&e)?;
        check_all_ok(&e, &doc, n)?;
        ensure!(doc.processes.len() >= n, "only {} processes from {n} hosts", doc.processes.len());
        Ok((e, doc))
    }
}

/// A generous estimate of `dcos ps -o json`'s memory per process row (measured near 11 kB).
const FULL_BYTES_PER_ROW: f64 = 16e3;

/// `MemAvailable` of `/proc/meminfo`, in bytes.
fn mem_available() -> Option<f64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024.0)
}

fn parse_ps(e: &Exec) -> Result<PsDoc> {
    serde_json::from_slice(&e.stdout).with_context(|| {
        format!(
            "dcos exited with {} and printed {} bytes that are not its JSON document; stderr: {}",
            e.code,
            e.stdout.len(),
            e.stderr_head()
        )
    })
}

fn check_all_ok(e: &Exec, doc: &PsDoc, n: usize) -> Result<()> {
    ensure!(e.code == 0, "dcos exited with {}: {}", e.code, e.stderr_head());
    ensure!(doc.hosts.len() == n, "{} hosts reported, not {n}", doc.hosts.len());
    if let Some(bad) = doc.hosts.iter().find(|h| h.status != "ok") {
        bail!("host {} ({}) is {}", bad.host, bad.address, bad.status);
    }
    let names: HashSet<&str> = doc.hosts.iter().map(|h| h.host.as_str()).collect();
    ensure!(names.len() == n, "{n} hosts answered under {} distinct names", names.len());
    Ok(())
}

/// One measure's samples over the runs.
#[derive(Debug, Default)]
struct Series {
    wall: Vec<f64>,
    cpu: Vec<f64>,
    server_cpu: Vec<f64>,
    /// CPU of every other process on the machine meanwhile.
    other_cpu: Vec<f64>,
    /// The whole machine's CPU, as a share of wall time × CPUs.
    busy: Vec<f64>,
    rss: Vec<f64>,
    /// The slowest host's `elapsed_ms` as dcos reports it.
    slowest: Vec<f64>,
}

impl Series {
    fn push(&mut self, e: &Exec, doc: Option<&PsDoc>) {
        self.wall.push(ms(e.wall));
        self.cpu.push(e.cpu_ms);
        self.server_cpu.push(e.server_cpu_ms);
        self.other_cpu.push((e.machine_cpu_ms - e.cpu_ms - e.server_cpu_ms).max(0.0));
        self.busy.push(e.machine_cpu_ms / (ms(e.wall) * cpus() as f64) * 100.0);
        self.rss.push(e.max_rss as f64);
        if let Some(d) = doc {
            let ok = d.hosts.iter().filter(|h| h.status == "ok");
            self.slowest.push(ok.map(|h| h.elapsed_ms).max().unwrap_or(0) as f64);
        }
    }
}

#[derive(Debug, Default)]
struct Results {
    big: Series,
    curl: Series,
    small: Series,
    hole: Series,
    /// Per run: answering hosts that timed out in the black-hole measurement.
    extra_timeouts: Vec<usize>,
    full: Series,
    /// Per run: bytes of JSON and processes in the full `dcos ps`.
    full_bytes: Vec<f64>,
    full_procs: Vec<f64>,
    server_rss: u64,
    /// Peak RSS the measuring helper reports for `true`: the floor of every RSS figure.
    rss_floor: u64,
    /// Processes on the machine (what every simulated host shows), at the start and end.
    procs_start: usize,
    procs_end: usize,
}

fn run(args: &RunArgs) -> Result<String> {
    ensure!(args.runs > 0, "--runs must be at least 1");
    ensure!(args.count > 0 && args.small > 0, "--count and --small must be at least 1");
    ensure!(args.small <= args.count, "--small {} is more than --count {}", args.small, args.count);
    ensure!(
        args.blackhole > 0 && args.blackhole < args.count,
        "--blackhole must be between 1 and --count - 1"
    );
    ensure!(args.parallel > 0, "--parallel must be at least 1");
    let last_port = args.base_port as usize + args.count - 1;
    let ephemeral = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").unwrap_or_default();
    let eph: Vec<usize> = ephemeral.split_whitespace().filter_map(|s| s.parse().ok()).collect();
    if let [lo, hi] = eph[..] {
        ensure!(
            last_port < lo || args.base_port as usize > hi,
            "ports {}..{last_port} overlap the ephemeral range {lo}-{hi}; choose another --base-port",
            args.base_port
        );
    }
    ensure!(last_port <= 65_535, "--base-port + --count goes past port 65535");
    let dcos = match &args.dcos {
        Some(p) => p.clone(),
        None => std::env::current_exe()?.parent().context("executable directory")?.join("dcos"),
    };
    ensure!(
        dcos.is_file(),
        "{} is not built; run `cargo build --release -p dcos-cli` (scripts/bench-fleet.sh does)",
        dcos.display()
    );
    for tool in ["curl", "xargs", "iptables"] {
        run_quiet(Command::new(tool).arg("--version"))
            .with_context(|| format!("{tool} is needed (scripts/setup.sh installs it)"))?;
    }

    prepare_netns()?;
    raise_fd_limit();
    let date = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    let args_line = std::env::args().collect::<Vec<_>>().join(" ");
    let load_start = probe::loadavg();
    let curl_version = Command::new("curl")
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).lines().next().map(short_curl_version))
        .unwrap_or_default();

    let certs = Certs::new()?;
    let urls_file = certs.path("urls.txt");
    let urls: String = (0..args.count)
        .map(|i| {
            format!(
                "https://127.0.0.1:{}/v1/proc?limit={}&sort=pid\n",
                args.base_port as usize + i,
                args.limit
            )
        })
        .collect();
    std::fs::write(&urls_file, urls).context("writing the URL list")?;

    progress(format!("starting {} k2i endpoints in one process", args.count));
    let server = Server::start(args.count, args.base_port, certs.dir.path())?;
    std::thread::sleep(Duration::from_secs(args.settle));
    let report = certs.path("measured.txt");
    let bench = Bench { dcos, certs, server, args: args.clone(), urls_file, report };

    progress("warm-up: one dcos ps and one curl round, not counted");
    bench.dcos_limited(args.count)?;
    bench.curl()?;

    let floor = bench.run(&mut measured("true", &bench.report)?)?;
    ensure!(floor.code == 0, "`true` exited with {}", floor.code);
    let mut r =
        Results { procs_start: probe::process_count(), rss_floor: floor.max_rss, ..Results::default() };
    let pause = || std::thread::sleep(Duration::from_millis(500));
    for run in 1..=args.runs {
        pause();
        let (e, doc) = bench.dcos_limited(args.count)?;
        r.big.push(&e, Some(&doc));
        pause();
        let c = bench.curl()?;
        r.curl.push(&c, None);
        pause();
        let (s, doc) = bench.dcos_limited(args.small)?;
        r.small.push(&s, Some(&doc));
        pause();
        let (h, doc, extra) = bench.dcos_blackholed()?;
        r.hole.push(&h, Some(&doc));
        r.extra_timeouts.push(extra);
        pause();
        let (f, doc) = bench.dcos_full()?;
        r.full.push(&f, Some(&doc));
        r.full_bytes.push(f.stdout.len() as f64);
        r.full_procs.push(doc.processes.len() as f64);
        r.server_rss = r.server_rss.max(bench.server.rss());
        progress(format!(
            "run {run}/{}: dcos {} hosts {:.0} ms, curl {:.0} ms, dcos {} hosts {:.0} ms, \
             black hole {:.0} ms, full ps {:.0} ms peak RSS {:.1} MB ({} processes, {} bytes)",
            args.runs,
            args.count,
            ms(e.wall),
            ms(c.wall),
            args.small,
            ms(s.wall),
            ms(h.wall),
            ms(f.wall),
            f.max_rss as f64 / 1e6,
            doc.processes.len(),
            f.stdout.len()
        ));
    }
    r.procs_end = probe::process_count();
    drop(bench);

    let header = Header { date, args_line, load_start, curl_version };
    Ok(render(&r, args, &header))
}

// ---------------------------------------------------------------------------------------
// The report.

struct Header {
    date: String,
    args_line: String,
    load_start: String,
    curl_version: String,
}

fn f_ms(v: f64) -> String {
    if v < 10.0 {
        format!("{v:.2} ms")
    } else {
        format!("{v:.0} ms")
    }
}

fn f_mb(bytes: f64) -> String {
    format!("{:.1} MB", bytes / 1e6)
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "PASS"
    } else {
        "FAIL"
    }
}

fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let head = digits.len() - (digits.len() - 1) / 3 * 3;
    let mut out = digits[..head].to_string();
    for group in digits.as_bytes()[head..].chunks(3) {
        out.push(',');
        out.push_str(std::str::from_utf8(group).unwrap_or_default());
    }
    out
}

fn render(r: &Results, args: &RunArgs, h: &Header) -> String {
    let n = thousands(args.count);
    let small = thousands(args.small);
    let big = summarize(&r.big.wall);
    let curl = summarize(&r.curl.wall);
    let sm = summarize(&r.small.wall);
    let hole = summarize(&r.hole.wall);
    let full = summarize(&r.full.wall);
    let rss = summarize(&r.full.rss);
    let procs = summarize(&r.full_procs);
    let mut rows: Vec<[String; 6]> = Vec::new();
    let within = |s: &Summary, target_ms: f64| {
        [f_ms(s.median), f_ms(s.min), format!("{:.2} × target", s.median / target_ms)]
    };

    let [m, mi, ratio] = within(&big, 1000.0);
    rows.push([
        format!("`dcos ps --limit {}`, {n} hosts", args.limit),
        m,
        mi,
        "≤ 1 s".into(),
        ratio,
        verdict(big.median <= 1000.0).into(),
    ]);
    rows.push([
        format!("`xargs -P {} curl`, the same {n} URLs", args.parallel),
        f_ms(curl.median),
        f_ms(curl.min),
        "reference".into(),
        "1.00 × curl".into(),
        String::new(),
    ]);
    let vs = big.median / curl.median;
    rows.push([
        format!("`dcos ps` ÷ curl baseline, {n} hosts"),
        format!("{vs:.3}"),
        format!("{:.3}", big.min / curl.min),
        "≤ 0.2 × curl".into(),
        format!("{:.2} × target", vs / 0.2),
        verdict(vs <= 0.2).into(),
    ]);
    let [m, mi, ratio] = within(&sm, 200.0);
    rows.push([
        format!("`dcos ps --limit {}`, {small} hosts", args.limit),
        m,
        mi,
        "≤ 200 ms".into(),
        ratio,
        verdict(sm.median <= 200.0).into(),
    ]);
    let [m, mi, ratio] = within(&hole, 1200.0);
    rows.push([
        format!(
            "`dcos --timeout 1s ps --limit {}`, {n} hosts of which {} black-holed (exit 3, {} `timeout`){}",
            args.limit,
            thousands(args.blackhole),
            thousands(args.blackhole),
            extra_timeouts_note(&r.extra_timeouts)
        ),
        m,
        mi,
        "≤ 1.2 s".into(),
        ratio,
        verdict(hole.median <= 1200.0).into(),
    ]);
    rows.push([
        format!(
            "peak RSS of `dcos` for a full `dcos ps -o json`, {n} hosts (max of {} runs: {})",
            args.runs,
            f_mb(rss.max)
        ),
        f_mb(rss.median),
        f_mb(rss.min),
        "stated".into(),
        "—".into(),
        "(stated)".into(),
    ]);
    rows.push([
        format!(
            "wall time of that full `dcos ps` (median {} processes, {:.0} per host, range {}–{}; {} bytes of JSON)",
            thousands(procs.median as usize),
            procs.median / args.count as f64,
            thousands(procs.min as usize),
            thousands(procs.max as usize),
            thousands(summarize(&r.full_bytes).median as usize)
        ),
        f_ms(full.median),
        f_ms(full.min),
        "—".into(),
        "—".into(),
        String::new(),
    ]);

    let mut out = String::new();
    let _ = writeln!(out, "### Fleet fan-out benchmark, {}\n", h.date);
    let _ = writeln!(out, "- machine: {}", probe::machine());
    if let Some(note) = &args.report.note {
        let _ = writeln!(out, "- {note}");
    }
    let _ = writeln!(
        out,
        "- {n} real k2i HTTPS listeners (mTLS) on 127.0.0.1:{}–{}, ALL SERVED BY ONE PROCESS \
         (`fleet-bench serve`: one shared sampler, one TLS config, one `AppState` per endpoint), \
         on the same machine as the clients, in a private network namespace",
        args.base_port,
        args.base_port as usize + args.count - 1
    );
    let _ = writeln!(
        out,
        "- every endpoint answers with this machine's process table: {} processes in /proc at the start, {} at the end",
        thousands(r.procs_start),
        thousands(r.procs_end)
    );
    let _ = writeln!(
        out,
        "- medians and minimums of {} runs, interleaved (dcos {n}, curl, dcos {small}, black hole, full ps), \
         after one warm-up round; wall time from spawn to exit; PASS/FAIL on the median",
        args.runs
    );
    let _ = writeln!(
        out,
        "- baseline: `xargs -P {} -n 1 curl -sS --fail --cacert ca.crt --cert admin.crt --key admin.key -o /dev/null` \
         over `https://127.0.0.1:PORT/v1/proc?limit={}&sort=pid` ({})",
        args.parallel, args.limit, h.curl_version
    );
    let _ = writeln!(
        out,
        "- the full `dcos ps` runs with `--timeout {}`; peak RSS is the command's `ru_maxrss` from `wait4`, \
         started from a small helper process (for `true` it reports {}: the floor of the measurement)",
        args.full_timeout,
        f_mb(r.rss_floor as f64)
    );
    let _ = writeln!(
        out,
        "- serving process RSS (largest seen after a round): {}; load average (1, 5, 15 min) at the start: {}; \
         at the end: {} (the baseline's 64 concurrent curls alone raise it)",
        f_mb(r.server_rss as f64),
        h.load_start,
        probe::loadavg()
    );
    let _ = writeln!(out, "- command: `{}`\n", h.args_line);
    targets_table(&mut out, &rows);
    let _ = writeln!(
        out,
        "| measure | wall | client CPU | serving process CPU | other processes' CPU | machine busy | client peak RSS | slowest host (dcos) |"
    );
    let _ = writeln!(out, "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    let series = [
        (format!("dcos, {n} hosts"), &r.big),
        (format!("xargs curl, {n} URLs (CPU of all curls)"), &r.curl),
        (format!("dcos, {small} hosts"), &r.small),
        (format!("dcos, {n} hosts, {} black-holed", thousands(args.blackhole)), &r.hole),
        (format!("dcos, full ps, {n} hosts"), &r.full),
    ];
    for (label, s) in series {
        let med = |v: &[f64]| summarize(v).median;
        let slowest = if s.slowest.is_empty() { "—".into() } else { f_ms(med(&s.slowest)) };
        let _ = writeln!(
            out,
            "| {label} | {} | {} | {} | {} | {:.0} % | {} | {slowest} |",
            f_ms(med(&s.wall)),
            f_ms(med(&s.cpu)),
            f_ms(med(&s.server_cpu)),
            f_ms(med(&s.other_cpu)),
            med(&s.busy),
            f_mb(med(&s.rss)),
        );
    }
    let _ = writeln!(
        out,
        "\nCPU times are user + system. The serving process's comes from `/proc/PID/stat` and includes its \
         sampler thread; the machine's from `/proc/stat` ({:.0} ms resolution), of which \"other processes\" \
         is what is left after the client and the serving process (the benchmark's own driver included). \
         \"Machine busy\" is the machine's CPU time over wall time × {} CPUs.",
        1e3 / probe::clk_tck(),
        cpus()
    );
    out
}

/// The table of targets, then the heading of the table of where the time goes.
fn targets_table(out: &mut String, rows: &[[String; 6]]) {
    let _ = writeln!(out, "| measure | median | min | target | ratio | result |");
    let _ = writeln!(out, "| --- | ---: | ---: | --- | ---: | --- |");
    for x in rows {
        let _ = writeln!(out, "| {} | {} | {} | {} | {} | {} |", x[0], x[1], x[2], x[3], x[4], x[5]);
    }
    let _ = writeln!(out, "\nWhere the time goes (medians over the runs):\n");
}

/// What the black-hole row says about answering hosts that timed out too, if any did.
fn extra_timeouts_note(per_run: &[usize]) -> String {
    let runs = per_run.iter().filter(|&&n| n > 0).count();
    if runs == 0 {
        return String::new();
    }
    format!(
        "; in {runs} of {} runs answering hosts also missed the deadline ({} at most)",
        per_run.len(),
        per_run.iter().max().unwrap_or(&0)
    )
}

/// `curl 7.88.1 (x86_64-pc-linux-gnu) libcurl/7.88.1 OpenSSL/3.0.19 zlib/...` →
/// `curl 7.88.1, OpenSSL/3.0.19`.
fn short_curl_version(line: &str) -> String {
    let words: Vec<&str> = line.split_whitespace().collect();
    let mut out = words.iter().take(2).copied().collect::<Vec<_>>().join(" ");
    if let Some(tls) = words.iter().find(|w| w.contains("SSL/") || w.starts_with("GnuTLS/")) {
        out.push_str(", ");
        out.push_str(tls);
    }
    out
}

fn cpus() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_groups_digits() {
        for (n, s) in [(0, "0"), (999, "999"), (1000, "1,000"), (100_000, "100,000")] {
            assert_eq!(thousands(n), s);
        }
    }

    #[test]
    #[allow(clippy::zombie_processes, reason = "reaped by wait_rusage, not through std")]
    fn wait_rusage_reports_the_exit_status_and_cpu() {
        let child = Command::new("sh").args(["-c", "exit 3"]).spawn().unwrap();
        let (code, ru) = wait_rusage(child.id() as libc::pid_t).unwrap();
        assert_eq!(code, 3);
        assert!(ru.ru_maxrss > 0);
    }

    #[test]
    fn extra_timeouts_are_stated_only_when_there_were_some() {
        assert_eq!(extra_timeouts_note(&[0, 0, 0]), "");
        assert_eq!(
            extra_timeouts_note(&[0, 2, 0, 5]),
            "; in 2 of 4 runs answering hosts also missed the deadline (5 at most)"
        );
    }

    #[test]
    fn curl_version_is_shortened() {
        let line = "curl 7.88.1 (x86_64-pc-linux-gnu) libcurl/7.88.1 OpenSSL/3.0.19 zlib/1.2.13";
        assert_eq!(short_curl_version(line), "curl 7.88.1, OpenSSL/3.0.19");
    }

    #[test]
    fn the_ps_document_parses_with_statuses() {
        let doc: PsDoc = serde_json::from_str(
            r#"{"hosts":[{"host":"sim-0001","address":"https://127.0.0.1:20001","status":"ok","error":null,"elapsed_ms":4}],
                "processes":[{"host":"sim-0001","pid":1},{"host":"sim-0001","pid":2}]}"#,
        )
        .unwrap();
        assert_eq!(doc.hosts[0].status, "ok");
        assert_eq!(doc.processes.len(), 2);
    }
}
