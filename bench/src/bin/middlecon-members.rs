//! The middlecon membership benchmark (issue 4): 100 real middlecon daemons on this
//! machine, on 127.0.0.1 … 127.0.0.100, each with its own certificate for its address, its
//! own `--state-dir`, `--socket` and ports, all seeded with the first.
//!
//! Per run it measures (a) the time from the last daemon's start (its announce line) until
//! every member lists all members `alive`, polling every member's `Membership.Members`
//! over its Unix socket; then memory (RSS) per daemon and CPU in the steady state; (b) the
//! time from a SIGKILL of one member until every other member lists it `dead`.
//!
//! Run it through `scripts/bench-middlecon.sh`. See `docs/benchmarks.md`.

use anyhow::{ensure, Context, Result};
use clap::Parser;
use dcos_bench::middlecon::{binary, run_report, Ca, Daemon, Spec};
use dcos_bench::probe;
use dcos_bench::stats::summarize;
use dcos_proto::v1 as pb;
use pb::membership_client::MembershipClient;
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};
use tonic::transport::Channel;

#[derive(Debug, Clone, Parser)]
#[command(
    name = "middlecon-members",
    about = "Membership of 100 middlecon daemons on this machine: join and failure detection."
)]
struct Args {
    /// Daemons, on 127.0.0.1 … 127.0.0.N (at most 250).
    #[arg(long, default_value_t = 100)]
    members: usize,
    /// The QUIC port of every member, each on its own address (below the ephemeral range,
    /// away from middlecon's default 7441).
    #[arg(long, default_value_t = 27_441)]
    port: u16,
    /// Whole runs (start all, converge, measure, kill one, stop all).
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Milliseconds between polling rounds (every member asked once a round).
    #[arg(long, default_value_t = 50)]
    poll_ms: u64,
    /// Give up waiting for convergence or for the kill to be seen after this many seconds.
    #[arg(long, default_value_t = 30)]
    timeout_s: u64,
    /// Seconds of steady state (no polling) over which CPU is measured.
    #[arg(long, default_value_t = 5)]
    steady_s: u64,
    /// The middlecon binary [default: `middlecon` next to this executable].
    #[arg(long)]
    middlecon: Option<PathBuf>,
    /// Print, for every polling round until convergence, how many members see all alive and
    /// what the others lack (listed too few, or list some suspect or dead).
    #[arg(long)]
    trace: bool,
    #[command(flatten)]
    report: dcos_bench::report::ReportArgs,
}

fn main() -> ExitCode {
    let args = Args::parse();
    run_report("middlecon-members", &args.report, run(&args))
}

fn progress(msg: impl AsRef<str>) {
    dcos_bench::report::progress("middlecon-members", msg.as_ref());
}

fn ip_of(i: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, (i + 1) as u8))
}

fn name_of(i: usize) -> String {
    format!("m-{:03}", i + 1)
}

/// One running member and a client on its Unix socket.
struct Member {
    daemon: Daemon,
    client: MembershipClient<Channel>,
}

/// Every listed member's name with its state, as `members[i]` sees it (`None`: no answer).
async fn poll(members: &[Member]) -> Vec<Option<Vec<(String, pb::MemberState)>>> {
    let asks = members.iter().map(|m| {
        let mut c = m.client.clone();
        async move {
            let reply = c.members(pb::MembersRequest {}).await.ok()?.into_inner();
            Some(reply.members.into_iter().map(|m| (m.name.clone(), m.state())).collect::<Vec<_>>())
        }
    });
    futures::future::join_all(asks).await
}

/// One polling round in a line: members seeing all `n` alive, members listing fewer than
/// `n`, and the suspect and dead entries over all lists.
fn round_summary(views: &[Option<Vec<(String, pb::MemberState)>>], n: usize) -> String {
    let (mut all, mut short, mut silent, mut suspect, mut dead) = (0, 0, 0, 0, 0);
    for view in views {
        let Some(list) = view else {
            silent += 1;
            continue;
        };
        let alive = list.iter().filter(|(_, s)| *s == pb::MemberState::Alive).count();
        all += usize::from(alive == n);
        short += usize::from(list.len() < n);
        suspect += list.iter().filter(|(_, s)| *s == pb::MemberState::Suspect).count();
        dead += list.iter().filter(|(_, s)| *s == pb::MemberState::Dead).count();
    }
    format!(
        "{all} see all alive; {short} list fewer than {n}; {suspect} suspect and {dead} dead entries; \
         {silent} did not answer"
    )
}

/// For each member not seeing all `n` alive: what it lists otherwise (for the progress log).
fn missing(members: &[Member], views: &[Option<Vec<(String, pb::MemberState)>>], n: usize) -> Vec<String> {
    let mut lines = Vec::new();
    for (m, view) in members.iter().zip(views) {
        let Some(list) = view else {
            lines.push(format!("{} did not answer", m.daemon.name));
            continue;
        };
        let alive = list.iter().filter(|(_, s)| *s == pb::MemberState::Alive).count();
        if alive == n {
            continue;
        }
        let others: Vec<String> = list
            .iter()
            .filter(|(_, s)| *s != pb::MemberState::Alive)
            .map(|(name, s)| format!("{name} {s:?}"))
            .collect();
        lines.push(format!(
            "{} lists {} members, {alive} alive; not alive: {}",
            m.daemon.name,
            list.len(),
            others.join(", ")
        ));
    }
    lines
}

/// What one run measured.
#[derive(Debug, Default)]
struct Run {
    /// From the first start to the last announce line.
    start_all: Duration,
    /// From the last announce until every member sees all alive (`None`: not in time).
    converge: Option<Duration>,
    /// Members seeing all alive when it stopped waiting.
    converged_members: usize,
    /// Members seeing all alive in the first polling round ending 2 s or more after the last start.
    converged_at_2s: Option<usize>,
    /// `member down` events the daemons logged before the kill: false failure detections.
    false_downs: usize,
    /// Per daemon, in the steady state.
    rss: Vec<f64>,
    /// CPU of all daemons together in the steady state, in cores.
    daemons_cores: f64,
    /// The machine's CPU busy share in the steady state, 0-1.
    machine_busy: f64,
    /// The same during start-up and convergence.
    machine_busy_join: f64,
    /// From the SIGKILL until the first, and until every other member lists it dead.
    first_dead: Option<Duration>,
    all_dead: Option<Duration>,
    /// Members seeing it dead when it stopped waiting.
    dead_seen_by: usize,
}

async fn one_run(
    args: &Args,
    bin: &std::path::Path,
    ca: &Ca,
    tls: &[dcos_core::tls::TlsFiles],
    run: usize,
) -> Result<Run> {
    let n = args.members;
    let limit = Duration::from_secs(args.timeout_s);
    let poll_every = Duration::from_millis(args.poll_ms);
    let mut r = Run::default();
    let busy0 = probe::machine_busy_secs();
    let first_start = Instant::now();
    let mut members: Vec<Member> = Vec::with_capacity(n);
    let mut seeds = Vec::new();
    for (i, tls) in tls.iter().enumerate() {
        let spec = Spec {
            name: name_of(i),
            ip: ip_of(i),
            port: args.port,
            tls: tls.clone(),
            state_dir: ca.dir.path().join(format!("run-{run}")).join(name_of(i)),
            seeds: seeds.clone(),
            peers: vec![],
            env: vec![],
        };
        let daemon = Daemon::start(bin, &spec)?;
        if i == 0 {
            seeds.push(daemon.addr);
        }
        let channel = middlecon_client::connect_unix(&daemon.socket).await?;
        members.push(Member { daemon, client: MembershipClient::new(channel) });
    }
    let last_start = Instant::now();
    r.start_all = last_start - first_start;
    progress(format!("run {run}: {n} daemons started in {:.2} s", r.start_all.as_secs_f64()));

    // (a) Until every member sees all alive.
    loop {
        let views = poll(&members).await;
        let seen_all = |v: &Option<Vec<(String, pb::MemberState)>>| {
            v.as_ref().is_some_and(|l| l.iter().filter(|(_, s)| *s == pb::MemberState::Alive).count() == n)
        };
        r.converged_members = views.iter().filter(|v| seen_all(v)).count();
        let now = Instant::now();
        if args.trace {
            progress(format!(
                "run {run}: +{:.2} s: {}",
                (now - last_start).as_secs_f64(),
                round_summary(&views, n)
            ));
        }
        if r.converged_at_2s.is_none() && now - last_start >= Duration::from_secs(2) {
            r.converged_at_2s = Some(r.converged_members);
        }
        if r.converged_members == n {
            r.converge = Some(now - last_start);
            break;
        }
        if now - last_start > limit {
            break;
        }
        tokio::time::sleep(poll_every).await;
    }
    r.machine_busy_join =
        (probe::machine_busy_secs() - busy0) / (first_start.elapsed().as_secs_f64() * cpus() as f64);
    match r.converge {
        Some(d) => progress(format!(
            "run {run}: all {n} see all alive {:.2} s after the last start",
            d.as_secs_f64()
        )),
        None => {
            progress(format!("run {run}: only {} of {n} see all alive after {limit:?}", r.converged_members));
            for line in missing(&members, &poll(&members).await, n).iter().take(5) {
                progress(format!("run {run}: {line}"));
            }
        }
    }

    // Steady state: memory and CPU, with nobody polling.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let pids: Vec<i32> = members.iter().map(|m| m.daemon.pid()).collect();
    let ticks = |pids: &[i32]| pids.iter().map(|&p| probe::cpu_ticks(p).unwrap_or(0)).sum::<u64>();
    let (t0, b0, w0) = (ticks(&pids), probe::machine_busy_secs(), Instant::now());
    tokio::time::sleep(Duration::from_secs(args.steady_s)).await;
    let (t1, b1, wall) = (ticks(&pids), probe::machine_busy_secs(), w0.elapsed().as_secs_f64());
    r.daemons_cores = (t1 - t0) as f64 / probe::clk_tck() / wall;
    r.machine_busy = (b1 - b0) / (wall * cpus() as f64);
    r.rss = pids.iter().map(|&p| probe::status_bytes(p, "VmRSS").unwrap_or(0) as f64).collect();

    r.false_downs = members.iter().map(|m| m.daemon.log_lines_with("member down")).sum();

    // (b) Kill one member (not the seed); until every other one lists it dead.
    let victim = n / 2;
    let victim_name = name_of(victim);
    let mut gone = members.remove(victim);
    gone.daemon.kill();
    let killed = Instant::now();
    loop {
        let views = poll(&members).await;
        let now = Instant::now();
        r.dead_seen_by = views
            .iter()
            .filter(|v| {
                v.as_ref()
                    .is_some_and(|l| l.iter().any(|(m, s)| *m == victim_name && *s == pb::MemberState::Dead))
            })
            .count();
        if r.dead_seen_by > 0 && r.first_dead.is_none() {
            r.first_dead = Some(now - killed);
        }
        if r.dead_seen_by == members.len() {
            r.all_dead = Some(now - killed);
            break;
        }
        if now - killed > limit {
            break;
        }
        tokio::time::sleep(poll_every).await;
    }
    match r.all_dead {
        Some(d) => progress(format!(
            "run {run}: {victim_name} seen dead by all others {:.2} s after SIGKILL",
            d.as_secs_f64()
        )),
        None => progress(format!(
            "run {run}: {victim_name} seen dead by only {} of {} after {limit:?}",
            r.dead_seen_by,
            members.len()
        )),
    }
    for m in &mut members {
        ensure!(m.daemon.running(), "{} exited during the run: {}", m.daemon.name, m.daemon.stderr_tail());
    }
    Ok(r)
}

async fn run(args: &Args) -> Result<String> {
    ensure!((2..=250).contains(&args.members), "--members must be between 2 and 250");
    ensure!(args.runs > 0 && args.steady_s > 0, "--runs and --steady-s must be at least 1");
    let bin = binary(args.middlecon.as_deref())?;
    let date = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    let load_start = probe::loadavg();
    let ca = Ca::new("middlecon-members-")?;
    let tls = (0..args.members)
        .map(|i| ca.issue_host(&name_of(i), ip_of(i)))
        .collect::<Result<Vec<_>>>()
        .context("issuing the members' certificates")?;
    let mut runs = Vec::new();
    for run in 1..=args.runs {
        runs.push(one_run(args, &bin, &ca, &tls, run).await.with_context(|| format!("run {run}"))?);
        // Every daemon of the run is gone (dropped, SIGKILLed) before the next starts.
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Ok(render(&runs, args, &date, &load_start))
}

fn cpus() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}

fn secs(d: Option<Duration>) -> Option<f64> {
    d.map(|d| d.as_secs_f64())
}

/// Median, min and max of the runs that finished, and how many did not.
fn over_runs(values: &[Option<f64>]) -> (String, String, String, usize) {
    let done: Vec<f64> = values.iter().flatten().copied().collect();
    let missed = values.len() - done.len();
    if done.is_empty() {
        return ("—".into(), "—".into(), "—".into(), missed);
    }
    let s = summarize(&done);
    (format!("{:.2} s", s.median), format!("{:.2} s", s.min), format!("{:.2} s", s.max), missed)
}

fn render(runs: &[Run], args: &Args, date: &str, load_start: &str) -> String {
    let n = args.members;
    let mut out = String::new();
    let _ = writeln!(out, "### middlecon membership benchmark, {date}\n");
    let _ = writeln!(out, "- machine: {}", probe::machine());
    if let Some(note) = &args.report.note {
        let _ = writeln!(out, "- {note}");
    }
    let _ = writeln!(
        out,
        "- {n} release `middlecon` daemons on 127.0.0.1 … 127.0.0.{n} (one `host` certificate each, for its own \
         address; own `--state-dir`, `--socket`, QUIC and API ports), all `--seed`ed with the first, started one \
         after the other (each waits for the previous one's announce line)"
    );
    let _ = writeln!(
        out,
        "- every member's `Membership.Members` polled over its Unix socket, all at once every {} ms; times are to \
         the end of the first polling round that shows the condition; {} runs",
        args.poll_ms,
        runs.len()
    );
    let _ = writeln!(
        out,
        "- load average (1, 5, 15 min) at the start: {load_start}; at the end: {}\n",
        probe::loadavg()
    );
    let _ = writeln!(out, "| measure | median | min | max | target | result |");
    let _ = writeln!(out, "| --- | ---: | ---: | ---: | --- | --- |");
    let row = |out: &mut String, what: &str, values: &[Option<f64>], target: Option<f64>| {
        let (med, min, max, missed) = over_runs(values);
        let median = summarize(&values.iter().flatten().copied().collect::<Vec<_>>()).median;
        let (t, result) = match target {
            Some(t) => (
                format!("≤ {t:.0} s"),
                if missed == 0 && median <= t { "PASS".to_string() } else { "FAIL".to_string() },
            ),
            None => ("—".into(), String::new()),
        };
        let what = if missed > 0 {
            format!("{what} (not reached within {} s in {missed} runs)", args.timeout_s)
        } else {
            what.into()
        };
        let _ = writeln!(out, "| {what} | {med} | {min} | {max} | {t} | {result} |");
    };
    let start: Vec<Option<f64>> = runs.iter().map(|r| Some(r.start_all.as_secs_f64())).collect();
    row(&mut out, &format!("start {n} daemons, first start to last announce"), &start, None);
    let conv: Vec<Option<f64>> = runs.iter().map(|r| secs(r.converge)).collect();
    row(&mut out, &format!("(a) last start → all {n} see all {n} alive"), &conv, Some(2.0));
    let first: Vec<Option<f64>> = runs.iter().map(|r| secs(r.first_dead)).collect();
    row(&mut out, "(b) SIGKILL of one member → the first other member lists it dead", &first, None);
    let all: Vec<Option<f64>> = runs.iter().map(|r| secs(r.all_dead)).collect();
    row(&mut out, &format!("(b) SIGKILL of one member → all {} others list it dead", n - 1), &all, Some(5.0));

    let at_2s: Vec<String> = runs
        .iter()
        .map(|r| match r.converged_at_2s {
            Some(c) => c.to_string(),
            None => n.to_string(),
        })
        .collect();
    let downs: Vec<String> = runs.iter().map(|r| r.false_downs.to_string()).collect();
    let _ = writeln!(
        out,
        "\nPer run: members seeing all {n} alive 2 s after the last start: {}; `member down` events logged by the \
         daemons before the kill (live members wrongly declared dead, each later rejoining): {}.",
        at_2s.join(", "),
        downs.join(", ")
    );
    let rss: Vec<f64> = runs.iter().flat_map(|r| r.rss.iter().copied()).collect();
    let rs = summarize(&rss);
    let total = summarize(&runs.iter().map(|r| r.rss.iter().sum::<f64>()).collect::<Vec<_>>()).median;
    let cores = summarize(&runs.iter().map(|r| r.daemons_cores).collect::<Vec<_>>()).median;
    let busy = summarize(&runs.iter().map(|r| r.machine_busy).collect::<Vec<_>>()).median;
    let busy_join = summarize(&runs.iter().map(|r| r.machine_busy_join).collect::<Vec<_>>()).median;
    let _ = writeln!(
        out,
        "\nSteady state ({} s after convergence, nobody polling), medians over the runs:\n",
        args.steady_s
    );
    let _ = writeln!(
        out,
        "- RSS per daemon: median {:.1} MB (min {:.1}, max {:.1}); all {n} together {:.0} MB",
        rs.median / 1e6,
        rs.min / 1e6,
        rs.max / 1e6,
        total / 1e6
    );
    let _ = writeln!(
        out,
        "- CPU of all {n} daemons together: {:.2} cores ({:.1} ms of CPU per daemon per second) of the machine's {}; \
         the whole machine was {:.0} % busy (other agents' work included)",
        cores,
        cores / n as f64 * 1e3,
        cpus(),
        busy * 100.0
    );
    let _ = writeln!(
        out,
        "- during start-up and convergence the whole machine was {:.0} % busy",
        busy_join * 100.0
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_get_consecutive_loopback_addresses_and_names() {
        assert_eq!(ip_of(0).to_string(), "127.0.0.1");
        assert_eq!(ip_of(99).to_string(), "127.0.0.100");
        assert_eq!(name_of(0), "m-001");
        assert_eq!(name_of(99), "m-100");
    }

    #[test]
    fn runs_that_missed_are_counted_not_averaged() {
        let (med, min, max, missed) = over_runs(&[Some(1.0), None, Some(3.0)]);
        assert_eq!((med.as_str(), min.as_str(), max.as_str(), missed), ("2.00 s", "1.00 s", "3.00 s", 1));
        assert_eq!(over_runs(&[None]).3, 1);
    }
}
