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
    let mut frame = Frame { reports: Vec::new(), hosts: Vec::new(), processes: Vec::new(), elapsed_ms: 0 };
    for mut a in answers {
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
    let ok = frame.reports.iter().filter(|r| r.ok()).count();
    let cpus: u32 = frame.hosts.iter().map(|(_, h)| h.cpus).sum();
    let procs: u32 = frame.hosts.iter().map(|(_, h)| h.processes).sum();
    let mut out =
        format!("fleet: {ok}/{} hosts answering, {cpus} cpus, {procs} processes\n\n", frame.reports.len());
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
    for r in frame.reports.iter().filter(|r| !r.ok()) {
        rows.push(vec![
            r.host.clone(),
            "-".into(),
            r.status.to_uppercase(),
            "-".into(),
            "-".into(),
            "-".into(),
        ]);
    }
    out.push_str(&table::render(&["HOST", "DC", "LOAD", "%CPU", "MEM", "PROCS"], &rows));
    out.push('\n');
    let prows: Vec<_> = frame.processes.iter().map(|(h, p)| table::process_row(h, p, 80)).collect();
    out.push_str(&table::render(&table::PROCESS_HEADER, &prows));
    out
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
        let text = render(&frame);
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
