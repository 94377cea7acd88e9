//! `dcos top`: per-host summary rows and the fleet's top processes. Each host is asked for
//! its own top N (`/v1/top`) with the same sort and the answers are merged, so no host
//! sends its whole table. Live by default (a full-screen view redrawn every `--interval`,
//! `q` to quit); `--once` prints one frame as text.

use super::{encode, Context, SetupError};
use crate::cli::{Format, TopArgs};
use crate::fanout::HostReport;
use crate::output;
use crate::table;
use dcos_core::model::{HostSummary, Top};
use dcos_query::{parse_sort, SortKey};
use k2i_client::fanout::Read;
use std::time::Duration;

/// One refresh: who answered, their summaries, and the merged top processes.
pub struct Frame {
    pub reports: Vec<HostReport>,
    /// The datacenter of each report's host, as the fleet lists it.
    pub dcs: Vec<String>,
    pub hosts: Vec<(String, HostSummary)>,
    pub processes: Vec<(String, dcos_core::model::Process)>,
    /// How long the frame took to gather, in milliseconds.
    pub elapsed_ms: u64,
}

/// Gathers a frame. `live`: another frame follows within this long (through relays, they
/// keep the answer fresh until then; zero: this is the last).
pub async fn fetch(ctx: &Context, sort: &[SortKey], sort_text: &str, limit: usize, live: Duration) -> Frame {
    let started = std::time::Instant::now();
    let query = format!("limit={limit}&sort={}", encode(sort_text));
    let answers = ctx.all_live_answers::<Top>(Read::Top, &query, live).await;
    tracing::debug!("a top frame's {} answers in {:?}", answers.len(), started.elapsed());
    let mut frame = Frame {
        reports: Vec::new(),
        dcs: Vec::new(),
        hosts: Vec::new(),
        processes: Vec::new(),
        elapsed_ms: 0,
    };
    for mut a in answers {
        frame.dcs.push(ctx.targets.get(a.target).map(|t| t.dc.clone()).unwrap_or_default());
        if let Some(top) = a.value.take() {
            a.report.host = top.host.name.clone();
            frame.processes.extend(top.processes.into_iter().map(|p| (top.host.name.clone(), p)));
            frame.hosts.push((top.host.name.clone(), top.host));
        }
        frame.reports.push(a.report);
    }
    k2i_client::merge::top(&mut frame.processes, sort, limit);
    frame.elapsed_ms = started.elapsed().as_millis() as u64;
    frame
}

/// The frame as text: a fleet line, one row per host (failed ones with their status),
/// then the processes.
pub fn render(frame: &Frame) -> String {
    render_within(frame, usize::MAX)
}

/// As [`render`], with at most `host_rows` rows for the hosts: when they do not fit (a live
/// screen over a fleet), one row per datacenter instead, and the hosts not answering named
/// on one line, so that the fleet's top processes stay on the screen.
pub fn render_within(frame: &Frame, host_rows: usize) -> String {
    let ok = frame.reports.iter().filter(|r| r.ok()).count();
    let cpus: u32 = frame.hosts.iter().map(|(_, h)| h.cpus).sum();
    let procs: u32 = frame.hosts.iter().map(|(_, h)| h.processes).sum();
    let mut out =
        format!("fleet: {ok}/{} hosts answering, {cpus} cpus, {procs} processes\n\n", frame.reports.len());
    let failed: Vec<&HostReport> = frame.reports.iter().filter(|r| !r.ok()).collect();
    if frame.hosts.len() + failed.len() <= host_rows {
        out.push_str(&host_table(frame, &failed));
    } else {
        let n = frame.reports.len();
        out.push_str(&format!("{n} hosts, a row per datacenter (`dcos top --once` lists each host)\n"));
        out.push_str(&datacenter_table(frame));
        if !failed.is_empty() {
            out.push_str(&not_answering(&failed));
        }
    }
    out.push('\n');
    let prows: Vec<_> = frame.processes.iter().map(|(h, p)| table::process_row(h, p, 80)).collect();
    out.push_str(&table::render(&table::PROCESS_HEADER, &prows));
    out
}

/// A row per host, then a row per host not answering with its status.
fn host_table(frame: &Frame, failed: &[&HostReport]) -> String {
    let mut rows: Vec<Vec<String>> = frame
        .hosts
        .iter()
        .map(|(name, h)| {
            vec![
                name.clone(),
                h.dc.clone(),
                format!("{:.2} {:.2} {:.2}", h.load[0], h.load[1], h.load[2]),
                h.cpu_percent.map(|c| format!("{c:.0}")).unwrap_or_else(|| "-".into()),
                format!("{}/{}", table::human_bytes(h.mem_used_bytes), table::human_bytes(h.mem_total_bytes)),
                h.processes.to_string(),
            ]
        })
        .collect();
    for r in failed {
        rows.push(vec![
            r.host.clone(),
            "-".into(),
            r.status.to_uppercase(),
            "-".into(),
            "-".into(),
            "-".into(),
        ]);
    }
    table::render(&["HOST", "DC", "LOAD", "%CPU", "MEM", "PROCS"], &rows)
}

/// A row per datacenter: its hosts answering of all, their mean load and CPU percent (of
/// the hosts that have one yet), memory used of total, processes.
fn datacenter_table(frame: &Frame) -> String {
    #[derive(Default)]
    struct Dc {
        all: usize,
        hosts: usize,
        load: [f64; 3],
        cpu: (f64, usize),
        mem: (u64, u64),
        processes: u64,
    }
    let mut dcs: std::collections::BTreeMap<&str, Dc> = std::collections::BTreeMap::new();
    for dc in &frame.dcs {
        dcs.entry(dc.as_str()).or_default().all += 1;
    }
    for (_, h) in &frame.hosts {
        let dc = dcs.entry(h.dc.as_str()).or_default();
        dc.hosts += 1;
        for (sum, l) in dc.load.iter_mut().zip(h.load) {
            *sum += l;
        }
        if let Some(c) = h.cpu_percent {
            dc.cpu = (dc.cpu.0 + c, dc.cpu.1 + 1);
        }
        dc.mem = (dc.mem.0 + h.mem_used_bytes, dc.mem.1 + h.mem_total_bytes);
        dc.processes += u64::from(h.processes);
    }
    let rows: Vec<Vec<String>> = dcs
        .into_iter()
        .map(|(name, dc)| {
            let n = dc.hosts as f64;
            // A datacenter with no host answering has nothing to average or add up.
            let some = |cell: String| if dc.hosts > 0 { cell } else { "-".into() };
            vec![
                name.to_string(),
                format!("{}/{}", dc.hosts, dc.all.max(dc.hosts)),
                some(format!("{:.2} {:.2} {:.2}", dc.load[0] / n, dc.load[1] / n, dc.load[2] / n)),
                match dc.cpu {
                    (_, 0) => "-".into(),
                    (sum, k) => format!("{:.0}", sum / k as f64),
                },
                some(format!("{}/{}", table::human_bytes(dc.mem.0), table::human_bytes(dc.mem.1))),
                some(dc.processes.to_string()),
            ]
        })
        .collect();
    table::render(&["DC", "HOSTS", "LOAD (MEAN)", "%CPU (MEAN)", "MEM", "PROCS"], &rows)
}

/// The hosts not answering on one line: how many by status, and the first few named.
fn not_answering(failed: &[&HostReport]) -> String {
    const NAMED: usize = 5;
    let mut by_status: std::collections::BTreeMap<&str, usize> = std::collections::BTreeMap::new();
    for r in failed {
        *by_status.entry(r.status).or_default() += 1;
    }
    let counts: Vec<String> = by_status.iter().map(|(s, n)| format!("{n} {s}")).collect();
    let names: Vec<&str> = failed.iter().take(NAMED).map(|r| r.host.as_str()).collect();
    let more = failed.len().saturating_sub(NAMED);
    let more = if more > 0 { format!(" and {more} more") } else { String::new() };
    format!("not answering: {} ({}{more})\n", counts.join(", "), names.join(", "))
}

pub async fn run(ctx: &Context, args: &TopArgs) -> Result<u8, SetupError> {
    let sort = parse_sort(&args.sort).map_err(|e| SetupError::Usage(format!("--sort: {}", e.message)))?;
    if args.limit == 0 || args.limit > 1000 {
        return Err(SetupError::Usage("--limit must be between 1 and 1000".into()));
    }
    let live =
        !args.once && ctx.format == Format::Table && std::io::IsTerminal::is_terminal(&std::io::stdout());
    if !live {
        let frames = if args.once { 1 } else { args.iterations.unwrap_or(1) };
        let mut next = tokio::time::Instant::now();
        let mut status = crate::exit::OK;
        for n in 0..frames {
            if n > 0 {
                // A frame starts --interval after the last one started, or at once if that
                // one took longer (no burst of frames to catch up).
                tokio::time::sleep_until(next).await;
                if matches!(ctx.format, Format::Table | Format::Wide) {
                    println!();
                }
            }
            next = tokio::time::Instant::now() + args.interval;
            let live = if n + 1 < frames { next_within(ctx, args.interval) } else { Duration::ZERO };
            let frame = fetch(ctx, &sort, &args.sort, args.limit, live).await;
            print_once(ctx.format, &frame);
            status = output::finish(&frame.reports);
        }
        return Ok(status);
    }
    live_view(ctx, &sort, args).await
}

/// How soon a relay hears the next frame's request after its answer, at the latest: the
/// other relays' answers may take up to `--timeout` more, then the next frame starts within
/// `interval`; with a second for printing.
fn next_within(ctx: &Context, interval: Duration) -> Duration {
    ctx.fanout.timeout + interval + Duration::from_secs(1)
}

fn print_once(format: Format, frame: &Frame) {
    match format {
        Format::Json | Format::Ndjson => {
            /// A frame as one JSON line, serialized from the frame as it is.
            #[derive(serde::Serialize)]
            struct Doc<'a> {
                hosts: &'a [HostReport],
                summaries: Vec<output::Tagged<'a, HostSummary>>,
                processes: Vec<output::Tagged<'a, dcos_core::model::Process>>,
                elapsed_ms: u64,
            }
            output::print_line(&Doc {
                hosts: &frame.reports,
                summaries: frame.hosts.iter().map(|(host, item)| output::Tagged { host, item }).collect(),
                processes: frame.processes.iter().map(|(host, item)| output::Tagged { host, item }).collect(),
                elapsed_ms: frame.elapsed_ms,
            });
        }
        Format::Table | Format::Wide => print!("{}", render(frame)),
    }
}

async fn live_view(ctx: &Context, sort: &[SortKey], args: &TopArgs) -> Result<u8, SetupError> {
    use crossterm::event::{Event, EventStream, KeyCode, KeyEvent, KeyModifiers};
    use crossterm::{cursor, execute, terminal};
    use futures::StreamExt;
    use std::io::Write;

    let mut stdout = std::io::stdout();
    let tty = |e: std::io::Error| SetupError::Tls(format!("terminal: {e}"));
    terminal::enable_raw_mode().map_err(tty)?;
    execute!(stdout, terminal::EnterAlternateScreen, cursor::Hide).map_err(tty)?;
    let mut keys = EventStream::new();
    let mut frames = 0u64;
    let status = loop {
        frames += 1;
        let last = args.iterations.is_some_and(|n| frames >= n);
        let live = if last { Duration::ZERO } else { next_within(ctx, args.interval) };
        let frame = fetch(ctx, sort, &args.sort, args.limit, live).await;
        let status =
            if frame.reports.iter().all(|r| r.ok()) { crate::exit::OK } else { crate::exit::PARTIAL };
        let (_, height) = terminal::size().unwrap_or((80, 24));
        // Host rows while they fit in half the screen, else a row per datacenter: the
        // processes below them stay in sight.
        let text = render_within(&frame, usize::from(height / 2).saturating_sub(4));
        let _ = execute!(stdout, cursor::MoveTo(0, 0), terminal::Clear(terminal::ClearType::All));
        for line in text.lines().take(height.saturating_sub(1) as usize) {
            let _ = write!(stdout, "{line}\r\n");
        }
        let _ = write!(stdout, "q: quit   refreshing every {:?}", args.interval);
        let _ = stdout.flush();
        if args.iterations.is_some_and(|n| frames >= n) {
            break status;
        }
        let quit = tokio::select! {
            _ = tokio::time::sleep(args.interval) => false,
            ev = keys.next() => matches!(ev,
                Some(Ok(Event::Key(KeyEvent { code: KeyCode::Char('q') | KeyCode::Esc, .. })))
                | Some(Ok(Event::Key(KeyEvent { code: KeyCode::Char('c'), modifiers: KeyModifiers::CONTROL, .. })))
                | None | Some(Err(_))),
        };
        if quit {
            break status;
        }
    };
    let _ = execute!(stdout, cursor::Show, terminal::LeaveAlternateScreen);
    let _ = terminal::disable_raw_mode();
    Ok(status)
}

#[cfg(test)]
mod tests {
    use super::*;
    use dcos_core::model::Process;

    fn summary(name: &str, dc: &str, load: f64, cpu: Option<f64>) -> HostSummary {
        HostSummary {
            name: name.into(),
            dc: dc.into(),
            labels: Default::default(),
            kernel: String::new(),
            uptime_s: 1.0,
            load: [load; 3],
            cpus: 2,
            cpu_percent: cpu,
            mem_total_bytes: 4 << 30,
            mem_used_bytes: 1 << 30,
            swap_total_bytes: 0,
            swap_used_bytes: 0,
            processes: 100,
            threads: 200,
            agent_version: String::new(),
            sampled_at: String::new(),
        }
    }

    fn report(host: &str, status: &'static str) -> HostReport {
        HostReport {
            host: host.into(),
            address: String::new(),
            status,
            error: None,
            elapsed_ms: 1,
            via: None,
            age_ms: None,
        }
    }

    /// Four hosts in each of dc-a and dc-b answering, seven of dc-c not; one process.
    fn frame() -> Frame {
        let mut frame = Frame {
            reports: Vec::new(),
            dcs: Vec::new(),
            hosts: Vec::new(),
            processes: Vec::new(),
            elapsed_ms: 5,
        };
        for (dc, load, cpu) in [("dc-a", 1.0, Some(50.0)), ("dc-b", 3.0, None)] {
            for i in 0..4 {
                let name = format!("{dc}-{i}");
                frame.reports.push(report(&name, "ok"));
                frame.dcs.push(dc.into());
                frame.hosts.push((name.clone(), summary(&name, dc, load + i as f64, cpu)));
            }
        }
        for i in 0..7 {
            frame.reports.push(report(&format!("dc-c-{i}"), if i < 2 { "timeout" } else { "unreachable" }));
            frame.dcs.push("dc-c".into());
        }
        let p = Process { pid: 42, cmd: "busy".into(), cpu_percent: Some(99.0), ..Process::default() };
        frame.processes.push(("dc-a-3".into(), p));
        frame
    }

    #[test]
    fn hosts_that_do_not_fit_are_shown_a_row_per_datacenter_and_the_processes_stay() {
        let text = render_within(&frame(), 10);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "fleet: 8/15 hosts answering, 16 cpus, 800 processes", "{text}");
        assert!(lines[2].starts_with("15 hosts, a row per datacenter"), "{text}");
        let row = |dc: &str| {
            lines.iter().find(|l| l.starts_with(dc)).map(|l| l.split_whitespace().collect::<Vec<_>>())
        };
        // Mean load of 1, 2, 3, 4; mean %CPU 50; 4 GiB used of 16; 400 processes.
        assert_eq!(
            row("dc-a").unwrap(),
            ["dc-a", "4/4", "2.50", "2.50", "2.50", "50", "4.0G/16G", "400"],
            "{text}"
        );
        assert_eq!(
            row("dc-b").unwrap()[..6],
            ["dc-b", "4/4", "4.50", "4.50", "4.50", "-"],
            "no CPU yet: {text}"
        );
        assert_eq!(row("dc-c").unwrap(), ["dc-c", "0/7", "-", "-", "-", "-"], "none answering: {text}");
        assert!(
            text.contains(
                "not answering: 2 timeout, 5 unreachable (dc-c-0, dc-c-1, dc-c-2, dc-c-3, dc-c-4 and 2 more)"
            ),
            "{text}"
        );
        assert!(
            lines.iter().any(|l| l.starts_with("dc-a-3") && l.contains("42") && l.contains("[busy]")),
            "{text}"
        );
        assert!(!text.contains("dc-a-0"), "no host rows: {text}");
    }

    #[test]
    fn hosts_that_fit_have_a_row_each_failures_with_their_status() {
        let text = render(&frame());
        for i in 0..4 {
            assert!(text.lines().any(|l| l.starts_with(&format!("dc-b-{i}"))), "{text}");
        }
        assert!(text.lines().any(|l| l.starts_with("dc-c-6") && l.contains("UNREACHABLE")), "{text}");
        assert!(!text.contains("not answering"), "{text}");
        assert_eq!(render_within(&frame(), 15), text, "15 rows hold the 15 hosts");
    }
}
