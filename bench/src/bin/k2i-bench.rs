//! The k2i benchmark (issue 2): k2i's sampler and API measured side by side, in one run,
//! with a floor (one read of every `/proc/PID/stat`) and with
//! `ps -eo pid,ppid,user,%cpu,rss,stat,lstart,args`, among thousands of extra sleeping
//! processes. Prints a Markdown table of medians, ratios and PASS/FAIL against the targets,
//! and a second one of the sampler against the `sysinfo` crate ([`dcos_bench::table`]).
//!
//! Run it as root through `scripts/bench-k2i.sh`, which builds `k2i` and this binary in
//! release mode first. See `docs/benchmarks.md` for the method.

use anyhow::{bail, Context, Result};
use clap::Parser;
use dcos_bench::probe::{self, CpuSplit};
use dcos_bench::sleepers::{self, Sleepers};
use dcos_bench::stats::{ms, percentile, summarize, Summary};
use dcos_bench::table::{self, Measured, Table};
use dcos_core::pki::{self, LeafSpec};
use dcos_core::tls::{Identity, TlsFiles};
use dcos_core::Role;
use k2i::sampler::{Sampler, SamplerConfig};
use k2i_client::K2iClient;
use std::fmt::Write as _;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

const PS_ARGS: [&str; 2] = ["-eo", "pid,ppid,user,%cpu,rss,stat,lstart,args"];
/// The name of k2i's sampling thread.
const SAMPLER_THREAD: &str = "k2i-sampler";
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug, Parser)]
#[command(
    name = "k2i-bench",
    about = "k2i against a /proc floor and ps, side by side, among many sleeping processes."
)]
struct Args {
    /// Extra sleeping processes during the main measurements.
    #[arg(long, default_value_t = 10_000)]
    procs: usize,
    /// Repetitions of every timed measurement; medians and minimums are reported.
    #[arg(long, default_value_t = 7)]
    runs: usize,
    #[command(flatten)]
    report: dcos_bench::report::ReportArgs,
    /// The k2i binary [default: `k2i` next to this executable].
    #[arg(long)]
    k2i: Option<PathBuf>,
    /// Concurrent clients, each with its own connection, for `GET /v1/top`.
    #[arg(long, default_value_t = 50)]
    clients: usize,
    /// `GET /v1/top?limit=20` requests in total, after one warm-up request per client.
    #[arg(long, default_value_t = 2000)]
    requests: usize,
    /// Seconds of no requests before k2i's RSS is read the second time.
    #[arg(long, default_value_t = 5)]
    rss_idle: u64,
    /// Extra sleeping processes during the idle-CPU measurement.
    #[arg(long, default_value_t = 1000)]
    idle_procs: usize,
    /// Seconds of the first idle-CPU window, which starts 2 s after k2i starts (k2i
    /// still samples every second then: it slows down after 60 s without requests).
    #[arg(long, default_value_t = 20)]
    idle_window: u64,
    /// Seconds of the second idle-CPU window, which starts 62 s after k2i starts, once it
    /// has slowed to --idle-interval 30s; 0 skips it.
    #[arg(long, default_value_t = 60)]
    idle_long: u64,
    /// Helper processes that fork the sleeping processes.
    #[arg(long, default_value_t = 4)]
    helpers: usize,
    /// Processes per table (k2i's sampler, sysinfo with and without threads) for the
    /// side-by-side refresh measurement, taken in turn; 0 skips it.
    #[arg(long, default_value_t = 5)]
    table_runs: usize,
    /// Refreshes after the first in each of those processes.
    #[arg(long, default_value_t = 5)]
    table_refreshes: usize,
}

fn main() -> ExitCode {
    sleepers::run_helper_if_requested();
    table::run_child_if_requested();
    let args = Args::parse();
    match run(&args) {
        Ok(report) => match args.report.emit(&report) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("k2i-bench: {e:#}");
                ExitCode::FAILURE
            }
        },
        Err(e) => {
            eprintln!("k2i-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn progress(msg: impl AsRef<str>) {
    dcos_bench::report::progress("k2i-bench", msg.as_ref());
}

// ---------------------------------------------------------------------------------------
// The in-process measurements.

/// The floor: list `/proc` and read every `/proc/PID/stat` once, nothing more.
fn floor() -> Result<(Duration, usize)> {
    let started = Instant::now();
    let mut read = 0;
    for entry in std::fs::read_dir("/proc").context("listing /proc")? {
        let Ok(entry) = entry else { continue };
        let name = entry.file_name();
        let bytes = name.as_encoded_bytes();
        if bytes.is_empty() || !bytes.iter().all(u8::is_ascii_digit) {
            continue;
        }
        let mut path = PathBuf::from("/proc");
        path.push(&name);
        path.push("stat");
        if std::fs::read(&path).is_ok() {
            read += 1;
        }
    }
    Ok((started.elapsed(), read))
}

/// `ps -eo ...` into a pipe that is drained; the wall time from spawn to exit.
fn ps() -> Result<(Duration, usize, usize)> {
    let started = Instant::now();
    let mut child = Command::new("ps")
        .args(PS_ARGS)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .context("running ps")?;
    let mut out = Vec::with_capacity(1 << 20);
    child.stdout.take().context("ps stdout")?.read_to_end(&mut out)?;
    let status = child.wait()?;
    let took = started.elapsed();
    if !status.success() {
        bail!("ps failed: {status}");
    }
    let lines = out.iter().filter(|&&b| b == b'\n').count();
    Ok((took, out.len(), lines))
}

fn sampler_config() -> SamplerConfig {
    SamplerConfig::new("bench".into(), "bench".into(), Duration::from_secs(1))
}

/// A fresh sampler's first snapshot: `Sampler::new` plus its first `tick`.
fn first_snapshot() -> (Duration, usize) {
    let started = Instant::now();
    let mut s = Sampler::new(sampler_config());
    let snap = s.tick();
    let took = started.elapsed();
    (took, snap.processes.len() + snap.kernel_threads.len())
}

/// One `tick` of a sampler that has ticked before.
fn steady_tick(s: &mut Sampler) -> Duration {
    let started = Instant::now();
    let snap = s.tick();
    let took = started.elapsed();
    drop(snap);
    took
}

#[derive(Debug, Default)]
struct Local {
    floor: Vec<f64>,
    ps: Vec<f64>,
    first: Vec<f64>,
    tick: Vec<f64>,
    procs_seen: usize,
    ps_bytes: usize,
    ps_lines: usize,
    snapshot_procs: usize,
}

/// Floor, ps, first snapshot and steady tick, interleaved run by run so that drift in
/// the machine's speed hits all four alike.
fn local_measurements(runs: usize, with_ps: bool) -> Result<Local> {
    let mut l = Local::default();
    let mut steady = Sampler::new(sampler_config());
    drop(steady.tick());
    std::thread::sleep(Duration::from_millis(200));
    drop(steady.tick());
    for r in 0..runs {
        let (d, n) = floor()?;
        l.floor.push(ms(d));
        l.procs_seen = n;
        if with_ps {
            let (d, bytes, lines) = ps()?;
            l.ps.push(ms(d));
            (l.ps_bytes, l.ps_lines) = (bytes, lines);
        }
        let (d, n) = first_snapshot();
        l.first.push(ms(d));
        l.snapshot_procs = n;
        std::thread::sleep(Duration::from_millis(100));
        l.tick.push(ms(steady_tick(&mut steady)));
        progress(format!(
            "run {}/{runs}: floor {:.1} ms, ps {}, first snapshot {:.1} ms, steady tick {:.1} ms",
            r + 1,
            l.floor[r],
            l.ps.get(r).map(|v| format!("{v:.1} ms")).unwrap_or_else(|| "-".into()),
            l.first[r],
            l.tick[r],
        ));
        std::thread::sleep(Duration::from_millis(200));
    }
    Ok(l)
}

/// Every [`Table`] `runs` times, in turn, each in a process of its own.
fn table_measurements(runs: usize, refreshes: usize) -> Result<Vec<(Table, Vec<Measured>)>> {
    let mut out: Vec<(Table, Vec<Measured>)> = Table::ALL.iter().map(|&t| (t, Vec::new())).collect();
    for r in 0..runs {
        for (t, all) in &mut out {
            let m = table::measure(*t, refreshes)?;
            progress(format!(
                "table run {}/{runs}, {}: first {:.1} ms, steady {:.1} ms, {} rows, RSS {}",
                r + 1,
                t.arg(),
                m.first_ms,
                summarize(&m.steady_ms).median,
                m.rows,
                f_mb(m.rss_after)
            ));
            all.push(m);
        }
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------
// The k2i daemon.

fn k2i_binary(flag: Option<&Path>) -> Result<PathBuf> {
    let path = match flag {
        Some(p) => p.to_path_buf(),
        None => {
            let exe = std::env::current_exe().context("finding this executable")?;
            exe.parent().context("executable directory")?.join("k2i")
        }
    };
    if !path.is_file() {
        bail!(
            "{} is not built; run `cargo build --release -p k2i` (scripts/bench-k2i.sh does)",
            path.display()
        );
    }
    Ok(path)
}

/// A throwaway CA, a host certificate for 127.0.0.1, and the admin certificate.
struct Certs {
    _dir: tempfile::TempDir,
    host: TlsFiles,
    admin: TlsFiles,
}

fn certs() -> Result<Certs> {
    let dir = tempfile::Builder::new().prefix("k2i-bench-pki-").tempdir()?;
    pki::init_dir(dir.path()).context("creating the CA")?;
    let mut spec = LeafSpec::new("bench-host", Role::Host);
    spec.ips = vec!["127.0.0.1".parse()?];
    spec.dns = vec!["localhost".into()];
    pki::issue_into_dir(dir.path(), &spec).context("issuing the host certificate")?;
    let files = |name: &str| TlsFiles {
        cert: dir.path().join(format!("{name}.crt")),
        key: dir.path().join(format!("{name}.key")),
        ca: dir.path().join("ca.crt"),
    };
    Ok(Certs { host: files("bench-host"), admin: files("admin"), _dir: dir })
}

/// A running k2i; stopped (SIGTERM, then SIGKILL) when dropped.
struct K2i {
    child: Child,
    url: String,
    started: Instant,
}

impl K2i {
    fn start(bin: &Path, tls: &TlsFiles, extra: &[&str]) -> Result<K2i> {
        let mut child = Command::new(bin)
            .args(["--listen", "127.0.0.1:0", "--name", "bench"])
            .args(tls.flags())
            .args(extra)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let started = Instant::now();
        let stdout = child.stdout.take().context("k2i stdout")?;
        let line = dcos_localfleet::first_line(stdout, Duration::from_secs(60)).unwrap_or_default();
        let mut k = K2i { child, url: String::new(), started };
        match line.split_whitespace().find(|w| w.starts_with("https://")) {
            Some(url) => k.url = url.to_string(),
            None => bail!("k2i did not announce its address: {line:?}"),
        }
        Ok(k)
    }

    fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    fn rss(&self) -> Result<u64> {
        probe::status_bytes(self.pid(), "VmRSS")
    }

    fn stop(mut self) {
        self.stop_inner();
    }

    fn stop_inner(&mut self) {
        if let Ok(Some(_)) = self.child.try_wait() {
            return;
        }
        // SAFETY: plain system call on our own child.
        unsafe { libc::kill(self.pid(), libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(10);
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

impl Drop for K2i {
    fn drop(&mut self) {
        self.stop_inner();
    }
}

// ---------------------------------------------------------------------------------------
// Over HTTPS.

#[derive(Debug, Default)]
struct Http {
    proc_full: Vec<f64>,
    proc_bytes: usize,
    proc_rows: usize,
    top: Vec<f64>,
    top_wall: Duration,
    rss_start: u64,
    rss_after_proc: u64,
    rss_loaded: u64,
    anon_idle: u64,
    rss_idle: u64,
    hwm: u64,
    /// k2i CPU ms outside its sampler thread, per timed `/v1/proc` request.
    proc_server_cpu: f64,
    /// k2i CPU ms during the `/v1/top` load: outside the sampler, and in it.
    top_server_cpu: f64,
    top_sampler_cpu: f64,
    /// This process's CPU ms (the clients) during the `/v1/top` load.
    top_client_cpu: f64,
}

async fn http_measurements(k: &K2i, admin: &Identity, args: &Args) -> Result<Http> {
    let mut h = Http { rss_start: k.rss()?, ..Http::default() };

    // (e) The full table, on one pooled connection: request, body, JSON parse.
    let client = K2iClient::new(admin)?;
    let warm = client.request("GET", &k.url, "/v1/proc", None, REQUEST_TIMEOUT).await?;
    serde_json::from_slice::<serde_json::Value>(&warm).context("parsing /v1/proc")?;
    let cpu0 = CpuSplit::read(k.pid(), SAMPLER_THREAD)?;
    for r in 0..args.runs {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let started = Instant::now();
        let body = client.request("GET", &k.url, "/v1/proc", None, REQUEST_TIMEOUT).await?;
        let doc: serde_json::Value = serde_json::from_slice(&body).context("parsing /v1/proc")?;
        let took = started.elapsed();
        h.proc_full.push(ms(took));
        h.proc_bytes = body.len();
        h.proc_rows = doc.get("processes").and_then(|p| p.as_array()).map_or(0, Vec::len);
        progress(format!(
            "GET /v1/proc {}/{}: {:.1} ms, {} bytes, {} rows",
            r + 1,
            args.runs,
            ms(took),
            h.proc_bytes,
            h.proc_rows
        ));
    }
    let (_, _, server) = CpuSplit::read(k.pid(), SAMPLER_THREAD)?.since_ms(&cpu0);
    h.proc_server_cpu = server / args.runs as f64;
    drop(client);
    h.rss_after_proc = k.rss()?;

    // (f) /v1/top?limit=20 from many clients at once, each with its own connection.
    let clients: Vec<K2iClient> =
        (0..args.clients.max(1)).map(|_| K2iClient::new(admin)).collect::<Result<_, _>>()?;
    let mut warmups = tokio::task::JoinSet::new();
    for c in &clients {
        let (c, url) = (c.clone(), k.url.clone());
        warmups.spawn(async move { c.request("GET", &url, "/v1/top?limit=20", None, REQUEST_TIMEOUT).await });
    }
    while let Some(done) = warmups.join_next().await {
        done.context("a warm-up task")??;
    }
    let per_client = args.requests.div_ceil(clients.len());
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(clients.len()));
    let mut tasks = tokio::task::JoinSet::new();
    for c in clients {
        let url = k.url.clone();
        let barrier = barrier.clone();
        tasks.spawn(async move {
            barrier.wait().await;
            let mut lat = Vec::with_capacity(per_client);
            for _ in 0..per_client {
                let t = Instant::now();
                c.request("GET", &url, "/v1/top?limit=20", None, REQUEST_TIMEOUT).await?;
                lat.push(ms(t.elapsed()));
            }
            anyhow::Ok(lat)
        });
    }
    let me = std::process::id() as i32;
    let (cpu0, me0) = (CpuSplit::read(k.pid(), SAMPLER_THREAD)?, probe::cpu_ticks(me)?);
    let started = Instant::now();
    while let Some(done) = tasks.join_next().await {
        h.top.extend(done.context("a client task")??);
    }
    h.top_wall = started.elapsed();
    let (_, sampler, server) = CpuSplit::read(k.pid(), SAMPLER_THREAD)?.since_ms(&cpu0);
    (h.top_server_cpu, h.top_sampler_cpu) = (server, sampler);
    h.top_client_cpu = (probe::cpu_ticks(me)? - me0) as f64 / probe::clk_tck() * 1e3;
    progress(format!(
        "GET /v1/top: {} requests from {} clients in {:.2} s",
        h.top.len(),
        args.clients,
        h.top_wall.as_secs_f64()
    ));

    // (g) Memory right after the load, then after a quiet spell.
    h.rss_loaded = k.rss()?;
    tokio::time::sleep(Duration::from_secs(args.rss_idle)).await;
    h.rss_idle = k.rss()?;
    h.hwm = probe::status_bytes(k.pid(), "VmHWM")?;
    h.anon_idle = probe::status_bytes(k.pid(), "RssAnon")?;
    Ok(h)
}

// ---------------------------------------------------------------------------------------
// Idle CPU.

#[derive(Debug)]
struct CpuWindow {
    /// Seconds after k2i's start.
    from: f64,
    secs: f64,
    percent: f64,
}

/// k2i's CPU use (all threads) over `[from, from + secs]` seconds of its life, as a
/// percentage of one core.
fn cpu_window(k: &K2i, from: Duration, secs: u64) -> Result<CpuWindow> {
    if let Some(wait) = from.checked_sub(k.started.elapsed()) {
        std::thread::sleep(wait);
    }
    let c0 = probe::cpu_ticks(k.pid())?;
    let t0 = Instant::now();
    let at = k.started.elapsed().as_secs_f64();
    std::thread::sleep(Duration::from_secs(secs));
    let c1 = probe::cpu_ticks(k.pid())?;
    let window = t0.elapsed().as_secs_f64();
    let cpu = (c1 - c0) as f64 / probe::clk_tck();
    Ok(CpuWindow { from: at, secs: window, percent: cpu / window * 100.0 })
}

// ---------------------------------------------------------------------------------------
// The report.

struct Row {
    measure: String,
    median: String,
    min: String,
    target: String,
    ratio: String,
    result: String,
}

fn row(
    measure: impl Into<String>,
    median: String,
    min: String,
    target: &str,
    ratio: String,
    result: &str,
) -> Row {
    Row { measure: measure.into(), median, min, target: target.into(), ratio, result: result.into() }
}

fn f_ms(v: f64) -> String {
    if v < 10.0 {
        format!("{v:.2} ms")
    } else {
        format!("{v:.1} ms")
    }
}

fn f_mb(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1e6)
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
    // The first group has 1 to 3 digits; every later one has 3.
    let head = digits.len() - (digits.len() - 1) / 3 * 3;
    let mut out = digits[..head].to_string();
    for group in digits.as_bytes()[head..].chunks(3) {
        out.push(',');
        out.push_str(std::str::from_utf8(group).unwrap_or_default());
    }
    out
}

struct Results {
    /// CPU seconds used by everything but this benchmark and its children, and the run's
    /// wall time in seconds.
    others: (f64, f64),
    /// Processes alive for the whole run that used CPU meanwhile: (command, pid, seconds).
    busiest: Vec<(String, i32, f64)>,
    args_line: String,
    load_start: String,
    date: String,
    big: Local,
    /// Each table's measurements ([`table_measurements`]), among the same processes as `big`.
    tables: Vec<(Table, Vec<Measured>)>,
    http: Http,
    small: Local,
    idle: Vec<CpuWindow>,
    idle_interval_s: f64,
    extra_big: usize,
    extra_small: usize,
}

fn render(r: &Results, args: &Args) -> String {
    let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let floor = summarize(&r.big.floor);
    let ps = summarize(&r.big.ps);
    let tick = summarize(&r.big.tick);
    let first = summarize(&r.big.first);
    let proc_full = summarize(&r.http.proc_full);
    let mut top = r.http.top.clone();
    top.sort_by(f64::total_cmp);
    let (p50, p99, pmax) = (percentile(&top, 50.0), percentile(&top, 99.0), percentile(&top, 100.0));
    let n = thousands(r.big.procs_seen);
    let mut rows = Vec::new();
    let both = |s: &Summary| (f_ms(s.median), f_ms(s.min));
    let (m, mi) = both(&floor);
    rows.push(row(
        format!("floor: list /proc, read every /proc/PID/stat once ({n} processes)"),
        m,
        mi,
        "reference",
        "1.00 × floor".into(),
        "",
    ));
    let (m, mi) = both(&ps);
    rows.push(row(
        format!(
            "`ps {} {}` (output to a drained pipe, {} lines)",
            PS_ARGS[0],
            PS_ARGS[1],
            thousands(r.big.ps_lines)
        ),
        m,
        mi,
        "reference",
        format!("{:.2} × floor", ps.median / floor.median),
        "",
    ));
    let (m, mi) = both(&tick);
    let ratio = tick.median / floor.median;
    rows.push(row(
        "sampler steady-state tick (`Sampler::tick`, warm sampler)",
        m,
        mi,
        "≤ 1.5 × floor",
        format!("{ratio:.2} × floor"),
        verdict(ratio <= 1.5),
    ));
    let (m, mi) = both(&first);
    let ratio = first.median / ps.median;
    rows.push(row(
        format!(
            "first full snapshot (`Sampler::new` + first `tick`, {} rows)",
            thousands(r.big.snapshot_procs)
        ),
        m,
        mi,
        "≤ 0.75 × ps",
        format!("{ratio:.2} × ps"),
        verdict(ratio <= 0.75),
    ));
    let (m, mi) = both(&proc_full);
    let ratio = proc_full.median / ps.median;
    rows.push(row(
        format!(
            "`GET /v1/proc` full table over HTTPS, pooled connection, incl. body + JSON parse ({} rows, {})",
            thousands(r.http.proc_rows),
            f_mb(r.http.proc_bytes as u64)
        ),
        m,
        mi,
        "≤ 0.2 × ps",
        format!("{ratio:.2} × ps"),
        verdict(ratio <= 0.2),
    ));
    let top_label =
        format!("`GET /v1/top?limit=20`, {} clients, {} requests", args.clients, thousands(top.len()));
    rows.push(row(format!("{top_label}: p50"), f_ms(p50), "—".into(), "", "".into(), ""));
    rows.push(row(
        format!("{top_label}: p99"),
        f_ms(p99),
        "—".into(),
        "≤ 20 ms",
        format!("{:.2} × target", p99 / 20.0),
        verdict(p99 <= 20.0),
    ));
    rows.push(row(format!("{top_label}: max"), f_ms(pmax), "—".into(), "", "".into(), ""));
    rows.push(row(
        "k2i RSS right after start (first snapshot taken)",
        f_mb(r.http.rss_start),
        "—".into(),
        "",
        "".into(),
        "",
    ));
    rows.push(row(
        format!("k2i RSS after the {} + 1 `GET /v1/proc` above", args.runs),
        f_mb(r.http.rss_after_proc),
        "—".into(),
        "",
        "".into(),
        "",
    ));
    rows.push(row(
        "k2i RSS right after the `/v1/top` load",
        f_mb(r.http.rss_loaded),
        "—".into(),
        "",
        "".into(),
        "",
    ));
    let idle_ok = r.http.rss_idle as f64 <= 20e6;
    rows.push(row(
        format!(
            "k2i RSS after {} s without requests (of which anonymous {}; peak VmHWM {})",
            args.rss_idle,
            f_mb(r.http.anon_idle),
            f_mb(r.http.hwm)
        ),
        f_mb(r.http.rss_idle),
        "—".into(),
        "≤ 20 MB",
        format!("{:.2} × target", r.http.rss_idle as f64 / 20e6),
        verdict(idle_ok),
    ));
    let n_small = thousands(r.small.procs_seen);
    for (i, w) in r.idle.iter().enumerate() {
        let regime = if i == 0 {
            "never asked since start (k2i starts idle: one tick per --idle-interval, 30 s)"
        } else {
            "still never asked: one tick per 30 s"
        };
        rows.push(row(
            format!(
                "k2i CPU, {n_small} processes, never queried, {:.0}–{:.0} s after start: {regime}",
                w.from,
                w.from + w.secs
            ),
            format!("{:.3} %", w.percent),
            "—".into(),
            "≤ 0.2 % of a core",
            format!("{:.2} × target", w.percent / 0.2),
            verdict(w.percent <= 0.2),
        ));
    }
    let small_tick = summarize(&r.small.tick);
    let small_floor = summarize(&r.small.floor);
    rows.push(row(
        format!(
            "sampler steady-state tick at {n_small} processes (floor there: {})",
            f_ms(small_floor.median)
        ),
        f_ms(small_tick.median),
        f_ms(small_tick.min),
        "",
        format!("{:.2} × floor", small_tick.median / small_floor.median),
        "",
    ));
    for (label, per_s) in [("1 s", 1.0), ("30 s (idle)", 1.0 / r.idle_interval_s)] {
        let pct = small_tick.median / 1e3 * per_s * 100.0;
        rows.push(row(
            format!("derived: tick at {n_small} processes × one tick per {label}"),
            format!("{pct:.3} %"),
            "—".into(),
            "≤ 0.2 % of a core",
            format!("{:.2} × target", pct / 0.2),
            "(derived)",
        ));
    }

    let mut out = String::new();
    let _ = writeln!(out, "### k2i benchmark, {}\n", r.date);
    let _ = writeln!(out, "- machine: {}", probe::machine());
    if let Some(note) = &args.report.note {
        let _ = writeln!(out, "- {note}");
    }
    let _ = writeln!(
        out,
        "- {} extra sleeping processes ({} in /proc) for all but the idle-CPU rows, which have {} extra ({} in /proc)",
        thousands(r.extra_big),
        n,
        thousands(r.extra_small),
        n_small
    );
    let _ = writeln!(
        out,
        "- medians and minimums of {} runs, interleaved; `ps` printed {} bytes",
        args.runs,
        thousands(r.big.ps_bytes)
    );
    let _ = writeln!(
        out,
        "- `/v1/top` load: {} requests in {:.2} s ({:.0} requests/s), client and server on the same machine",
        thousands(top.len()),
        r.http.top_wall.as_secs_f64(),
        top.len() as f64 / r.http.top_wall.as_secs_f64()
    );
    let reqs = top.len().max(1) as f64;
    let _ = writeln!(
        out,
        "- k2i CPU outside its sampler thread: {:.1} ms per `GET /v1/proc`; {:.2} ms per `GET /v1/top` \
         during the load, while its sampler thread used {:.0} ms and the benchmark's clients {:.2} ms per request \
         (CPU times have {:.0} ms resolution)",
        r.http.proc_server_cpu,
        r.http.top_server_cpu / reqs,
        r.http.top_sampler_cpu,
        r.http.top_client_cpu / reqs,
        1e3 / probe::clk_tck()
    );
    let _ = writeln!(
        out,
        "- load average (1, 5, 15 min) at the start: {}; at the end: {}",
        r.load_start,
        probe::loadavg()
    );
    let (others, wall) = r.others;
    let _ = writeln!(
        out,
        "- other processes used {others:.1} CPU-seconds during the {wall:.0} s run ({:.1} % of the machine's {} cores)",
        others / wall / cpus as f64 * 100.0,
        cpus
    );
    if !r.busiest.is_empty() {
        let list: Vec<String> =
            r.busiest.iter().map(|(comm, pid, secs)| format!("`{comm}` (pid {pid}) {secs:.1} s")).collect();
        let _ = writeln!(
            out,
            "- of which processes alive for the whole run: {}; the rest came and went (e.g. compilers)",
            list.join(", ")
        );
    }
    let _ = writeln!(out, "- command: `{}`\n", r.args_line);
    let _ = writeln!(out, "| measure | median | min | target | ratio | result |");
    let _ = writeln!(out, "| --- | ---: | ---: | --- | ---: | --- |");
    for x in rows {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} |",
            x.measure, x.median, x.min, x.target, x.ratio, x.result
        );
    }
    render_tables(&mut out, &r.tables, &n);
    out
}

/// The sampler against sysinfo: medians over the processes of each table, and how many
/// times the sampler's each one's figures are.
fn render_tables(out: &mut String, tables: &[(Table, Vec<Measured>)], procs: &str) {
    let Some((_, sampler)) = tables.iter().find(|(t, m)| *t == Table::Sampler && !m.is_empty()) else {
        return;
    };
    struct Figures {
        first: f64,
        steady: f64,
        rss: f64,
        grown: f64,
    }
    let figures = |all: &[Measured]| {
        let steady: Vec<f64> = all.iter().flat_map(|m| m.steady_ms.iter().copied()).collect();
        let mb = |f: &dyn Fn(&Measured) -> u64| {
            summarize(&all.iter().map(|m| f(m) as f64).collect::<Vec<_>>()).median
        };
        Figures {
            first: summarize(&all.iter().map(|m| m.first_ms).collect::<Vec<_>>()).median,
            steady: summarize(&steady).median,
            rss: mb(&|m| m.rss_after),
            grown: mb(&|m| m.rss_after.saturating_sub(m.rss_before)),
        }
    };
    let base = figures(sampler);
    let _ = writeln!(
        out,
        "\n#### sysinfo against the sampler\n\n- {procs} processes in /proc; each table in a process of its own, {} of each in turn; \
         medians (steady: over every refresh after the first, {} ms apart)\n",
        sampler.len(),
        table::GAP.as_millis()
    );
    let _ = writeln!(
        out,
        "| table | rows, threads | first refresh | steady refresh | × sampler | RSS after | of which the table | × sampler |"
    );
    let _ = writeln!(out, "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    for (t, all) in tables.iter().filter(|(_, m)| !m.is_empty()) {
        let f = figures(all);
        let last = &all[all.len() - 1];
        let _ = writeln!(
            out,
            "| {} | {}, {} | {} | {} | {:.2} | {} | {} | {:.2} |",
            t.label(),
            thousands(last.rows),
            if last.threads == 0 { "—".to_string() } else { thousands(last.threads as usize) },
            f_ms(f.first),
            f_ms(f.steady),
            f.steady / base.steady,
            f_mb(f.rss as u64),
            f_mb(f.grown as u64),
            f.grown / base.grown.max(1.0),
        );
    }
}

// ---------------------------------------------------------------------------------------

fn run(args: &Args) -> Result<String> {
    if args.runs == 0 {
        bail!("--runs must be at least 1");
    }
    let bin = k2i_binary(args.k2i.as_deref())?;
    let date = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    let args_line = std::env::args().collect::<Vec<_>>().join(" ");
    let load_start = probe::loadavg();
    let procs0 = probe::cpu_by_process();
    let (busy0, own0, wall0) = (probe::machine_busy_secs(), probe::own_and_children_secs(), Instant::now());
    let certs = certs()?;
    let admin = Identity::load(&certs.admin).context("loading the admin certificate")?;

    progress(format!("starting {} sleeping processes", args.procs));
    let t = Instant::now();
    let crowd = Sleepers::spawn(args.procs, args.helpers)?;
    progress(format!(
        "{} started in {:.1} s; {} processes in /proc",
        crowd.count,
        t.elapsed().as_secs_f64(),
        probe::process_count()
    ));

    let big = local_measurements(args.runs, true)?;
    let tables = table_measurements(args.table_runs, args.table_refreshes)?;

    progress("starting k2i");
    let k = K2i::start(&bin, &certs.host, &[])?;
    std::thread::sleep(Duration::from_secs(1));
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let http = runtime.block_on(http_measurements(&k, &admin, args))?;
    drop(runtime);
    k.stop();

    progress("stopping the sleeping processes");
    let extra_big = crowd.count;
    crowd.stop()?;
    progress(format!("starting {} sleeping processes for the idle measurements", args.idle_procs));
    let crowd = Sleepers::spawn(args.idle_procs, args.helpers)?;
    let extra_small = crowd.count;
    let small = local_measurements(args.runs, false)?;

    let idle_interval = "30s";
    progress(format!(
        "idle k2i: measuring CPU for {} s{}",
        args.idle_window,
        if args.idle_long > 0 {
            format!(" and, from 62 s after start, {} s", args.idle_long)
        } else {
            String::new()
        }
    ));
    let k = K2i::start(&bin, &certs.host, &["--sample-interval", "1s", "--idle-interval", idle_interval])?;
    let mut idle = vec![cpu_window(&k, Duration::from_secs(2), args.idle_window)?];
    if args.idle_long > 0 {
        idle.push(cpu_window(&k, Duration::from_secs(62), args.idle_long)?);
    }
    k.stop();
    crowd.stop()?;

    let wall = wall0.elapsed().as_secs_f64();
    let others = (probe::machine_busy_secs() - busy0) - (probe::own_and_children_secs() - own0);
    let me = std::process::id() as i32;
    let busiest: Vec<(String, i32, f64)> = probe::busiest_between(&procs0, &probe::cpu_by_process(), 0.5)
        .into_iter()
        .filter(|(_, pid, _)| *pid != me)
        .take(4)
        .collect();
    let results = Results {
        busiest,
        others: (others.max(0.0), wall),
        args_line,
        load_start,
        date,
        big,
        tables,
        http,
        small,
        idle,
        idle_interval_s: 30.0,
        extra_big,
        extra_small,
    };
    Ok(render(&results, args))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_groups_digits() {
        for (n, s) in [(0, "0"), (999, "999"), (1000, "1,000"), (10_085, "10,085"), (1_234_567, "1,234,567")]
        {
            assert_eq!(thousands(n), s);
        }
    }

    #[test]
    fn floor_reads_this_process() {
        let (_, n) = floor().unwrap();
        assert!(n >= 1);
    }
}
