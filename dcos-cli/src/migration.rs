//! Following `Workloads.Migrate` and `Workloads.Evacuate`: the stream of `MigrateProgress`
//! messages becomes one [`Migration`] per workload, shown while it runs (indicatif bars
//! when stderr is a terminal, one line per phase change otherwise) and summed up at the
//! end. There is no overall deadline, but a stream silent for [`STALL`] is given up as
//! `stalled`, and one that ends before a workload's last message leaves it `interrupted`.

use crate::cli::Mode;
use crate::table;
use crate::workload::status_parts;
use dcos_proto::v1 as pb;
use futures::{Stream, StreamExt};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::io::IsTerminal;
use std::time::{Duration, Instant};

/// How long a migration stream may stay silent.
pub const STALL: Duration = Duration::from_secs(30);

/// The phases that take time, in the order they happen.
fn phases() -> impl Iterator<Item = pb::MigratePhase> {
    (1..).map_while(|v| pb::MigratePhase::try_from(v).ok()).take_while(|p| *p != pb::MigratePhase::Done)
}

/// One workload's move, as printed in `-o json`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Migration {
    pub workload: String,
    pub from: String,
    pub to: String,
    pub mode: &'static str,
    pub epoch: u64,
    pub bytes_sent: u64,
    pub downtime_ms: u64,
    pub phase_ms: BTreeMap<String, u64>,
    pub elapsed_ms: u64,
    /// `done` or `failed` (`running` until the end).
    pub status: &'static str,
    pub error: Option<String>,
    pub error_code: Option<String>,
    /// The phase of the latest message.
    #[serde(skip)]
    pub phase: String,
    #[serde(skip)]
    pub bytes_total: u64,
    /// Whether any message about it arrived.
    #[serde(skip)]
    pub heard: bool,
}

impl Migration {
    pub fn new(workload: &str, from: &str, to: &str, mode: &'static str) -> Migration {
        Migration {
            workload: workload.into(),
            from: from.into(),
            to: to.into(),
            mode,
            epoch: 0,
            bytes_sent: 0,
            downtime_ms: 0,
            phase_ms: BTreeMap::new(),
            elapsed_ms: 0,
            status: "running",
            error: None,
            error_code: None,
            phase: String::new(),
            bytes_total: 0,
            heard: false,
        }
    }

    pub fn finished(&self) -> bool {
        self.status != "running"
    }

    /// Takes in one progress message about this workload.
    pub fn apply(&mut self, p: &pb::MigrateProgress) {
        self.heard = true;
        if !p.from.is_empty() {
            self.from.clone_from(&p.from);
        }
        if !p.to.is_empty() {
            self.to.clone_from(&p.to);
        }
        if p.step() != pb::MigratePhase::Unspecified {
            self.phase = p.step().word().into();
        }
        self.bytes_sent = self.bytes_sent.max(p.bytes_sent);
        self.bytes_total = self.bytes_total.max(p.bytes_total);
        self.elapsed_ms = self.elapsed_ms.max(p.elapsed_ms);
        if p.epoch != 0 {
            self.epoch = p.epoch;
        }
        if !p.done {
            return;
        }
        self.phase_ms.clone_from(&p.phase_ms);
        self.downtime_ms = p.downtime_ms;
        let failed = !p.error.is_empty()
            || p.code() != pb::ErrorCode::Unspecified
            || p.step() == pb::MigratePhase::Failed;
        if failed {
            let code = if p.code() == pb::ErrorCode::Unspecified { "failed" } else { p.code().word() };
            let error =
                if p.error.is_empty() { format!("failed in phase {}", self.phase) } else { p.error.clone() };
            self.fail(code, error);
        } else {
            self.status = "done";
        }
    }

    /// Marks it failed with `code` (a word) and `error` (for a person).
    pub fn fail(&mut self, code: &str, error: String) {
        self.status = "failed";
        self.error_code = Some(code.to_string());
        self.error = Some(error);
    }
}

/// How a stream ended.
#[derive(Debug)]
pub enum End {
    /// The server closed it.
    Ended,
    /// Nothing arrived for [`STALL`].
    Stalled(Duration),
    /// A gRPC status instead of (more) progress.
    Status(tonic::Status),
}

/// The migrations of one stream, and how they are shown.
pub struct Tracker {
    pub migrations: Vec<Migration>,
    index: HashMap<String, usize>,
    from: String,
    mode: &'static str,
    display: Display,
    started: Instant,
}

impl Tracker {
    /// Migrations away from `from`, in `mode`, shown on `display`.
    pub fn new(from: &str, mode: &'static str, display: Display) -> Tracker {
        Tracker {
            migrations: Vec::new(),
            index: HashMap::new(),
            from: from.into(),
            mode,
            display,
            started: Instant::now(),
        }
    }

    /// Expects `workload` to move to `to` (so it is reported even if no message names it).
    pub fn expect(&mut self, workload: &str, to: &str) -> usize {
        if let Some(&i) = self.index.get(workload) {
            return i;
        }
        self.migrations.push(Migration::new(workload, &self.from, to, self.mode));
        self.index.insert(workload.to_string(), self.migrations.len() - 1);
        self.migrations.len() - 1
    }

    /// Takes in one message; returns whether its workload is finished.
    pub fn progress(&mut self, p: &pb::MigrateProgress) -> bool {
        // A single migration's messages may leave the name out: they are about the one expected.
        let i = if p.workload.is_empty() && self.migrations.len() == 1 {
            0
        } else {
            self.expect(&p.workload, &p.to)
        };
        let m = &mut self.migrations[i];
        m.apply(p);
        self.display.show(m);
        m.finished()
    }

    /// Fails every migration not finished when the stream ended as `end`, and returns them all.
    pub fn close(mut self, end: &End) -> Vec<Migration> {
        let local_ms = self.started.elapsed().as_millis() as u64;
        for m in &mut self.migrations {
            if m.elapsed_ms == 0 {
                m.elapsed_ms = local_ms;
            }
            if m.finished() {
                continue;
            }
            let last = if m.phase.is_empty() { String::new() } else { format!(" (last phase: {})", m.phase) };
            match end {
                End::Ended => {
                    m.fail("interrupted", format!("the stream ended before the migration finished{last}"))
                }
                End::Stalled(d) => m.fail("stalled", format!("no progress for {}s{last}", d.as_secs())),
                End::Status(s) if !m.heard => {
                    let (code, message) = status_parts(s);
                    m.fail(code, message.to_string())
                }
                End::Status(s) => {
                    let (code, message) = status_parts(s);
                    m.fail("interrupted", format!("{code}: {message}{last}"))
                }
            }
            if m.heard {
                m.phase = "failed".into();
                self.display.show(m);
            }
        }
        self.display.clear();
        self.migrations
    }
}

/// Reads `stream` into `tracker` until it ends, errs, or stays silent for `stall`; with
/// `until_done`, also as soon as a workload is finished (a single migration).
pub async fn follow<S>(mut stream: S, stall: Duration, tracker: &mut Tracker, until_done: bool) -> End
where
    S: Stream<Item = Result<pb::MigrateProgress, tonic::Status>> + Unpin,
{
    loop {
        match tokio::time::timeout(stall, stream.next()).await {
            Err(_) => return End::Stalled(stall),
            Ok(None) => return End::Ended,
            Ok(Some(Err(status))) => return End::Status(status),
            Ok(Some(Ok(p))) => {
                if tracker.progress(&p) && until_done {
                    return End::Ended;
                }
            }
        }
    }
}

/// The stream a `Migrate` or `Evacuate` call opens, or how it ended before any message: a
/// status (the daemon refused), or silence for `stall`.
pub async fn open<F>(call: F, stall: Duration) -> Result<tonic::Streaming<pb::MigrateProgress>, End>
where
    F: std::future::Future<
        Output = Result<tonic::Response<tonic::Streaming<pb::MigrateProgress>>, tonic::Status>,
    >,
{
    match tokio::time::timeout(stall, call).await {
        Ok(Ok(response)) => Ok(response.into_inner()),
        Ok(Err(status)) => Err(End::Status(status)),
        Err(_) => Err(End::Stalled(stall)),
    }
}

/// The protocol's value of a `--mode`.
pub fn mode(m: Mode) -> i32 {
    match m {
        Mode::Cold => pb::MigrateMode::Cold as i32,
        Mode::Live => pb::MigrateMode::Live as i32,
    }
}

/// Where progress goes: bars on a terminal, lines otherwise (both on stderr).
pub enum Display {
    /// Each workload's bar and its prefix (`web -> h1`).
    Bars {
        multi: MultiProgress,
        bars: HashMap<String, (ProgressBar, String)>,
    },
    Lines {
        shown: HashMap<String, String>,
    },
}

impl Display {
    /// Bars when stderr is a terminal, else lines.
    pub fn for_stderr() -> Display {
        if std::io::stderr().is_terminal() {
            Display::Bars { multi: MultiProgress::new(), bars: HashMap::new() }
        } else {
            Display::Lines { shown: HashMap::new() }
        }
    }

    fn show(&mut self, m: &Migration) {
        match self {
            Display::Lines { shown } => {
                if shown.get(&m.workload) != Some(&m.phase) {
                    shown.insert(m.workload.clone(), m.phase.clone());
                    eprintln!("{}", phase_line(m));
                }
            }
            Display::Bars { multi, bars } => {
                if !bars.contains_key(&m.workload) {
                    let bar = multi.add(ProgressBar::new(0));
                    bar.set_style(bar_style());
                    bars.insert(m.workload.clone(), (bar, format!("{} -> {}", m.workload, m.to)));
                    // One width for every prefix, so the bars line up.
                    let width = bars.values().map(|(_, p)| p.chars().count()).max().unwrap_or(0);
                    bars.values().for_each(|(b, p)| b.set_prefix(format!("{p:<width$}")));
                }
                let Some((bar, _)) = bars.get(&m.workload) else { return };
                bar.set_length(m.bytes_total.max(m.bytes_sent));
                bar.set_position(m.bytes_sent);
                match (m.status, &m.error_code) {
                    ("done", _) => {
                        bar.finish_with_message(format!("done, downtime {}", duration(m.downtime_ms)))
                    }
                    ("failed", code) => {
                        bar.abandon_with_message(format!("failed: {}", code.as_deref().unwrap_or("")))
                    }
                    _ => bar.set_message(m.phase.clone()),
                }
            }
        }
    }

    /// Takes the bars off the screen before the summary is printed.
    fn clear(&mut self) {
        if let Display::Bars { multi, .. } = self {
            let _ = multi.clear();
        }
    }
}

fn bar_style() -> ProgressStyle {
    ProgressStyle::with_template("{prefix} [{wide_bar}] {bytes}/{total_bytes} {msg}")
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ")
}

/// The line shown for a phase change: `web -> h1: copy 1.5M/12.0M 0.8s`.
pub fn phase_line(m: &Migration) -> String {
    let mut line =
        format!("{} -> {}: {}", m.workload, m.to, if m.phase.is_empty() { "started" } else { &m.phase });
    if m.bytes_total > 0 || m.bytes_sent > 0 {
        line.push_str(&format!(
            " {}/{}",
            table::human_bytes(m.bytes_sent),
            table::human_bytes(m.bytes_total)
        ));
    }
    line.push_str(&format!(" {}", duration(m.elapsed_ms)));
    if let (Some(code), Some(error)) = (&m.error_code, &m.error) {
        line.push_str(&format!(" ({code}: {error})"));
    }
    line
}

/// `445ms`, `1.23s`, `2m05s`.
pub fn duration(ms: u64) -> String {
    if ms < 1000 {
        format!("{ms}ms")
    } else if ms < 60_000 {
        format!("{:.2}s", ms as f64 / 1000.0)
    } else {
        format!("{}m{:02}s", ms / 60_000, (ms / 1000) % 60)
    }
}

/// Phase times in the order phases happen: `reserve 2ms, freeze 10ms, copy 350ms`.
pub fn phase_times(phase_ms: &BTreeMap<String, u64>) -> String {
    let known = phases().filter_map(|p| phase_ms.get(p.word()).map(|ms| (p.word(), *ms)));
    let others = phase_ms
        .iter()
        .filter(|(p, _)| !phases().any(|k| k.word() == p.as_str()))
        .map(|(p, ms)| (p.as_str(), *ms));
    let parts: Vec<String> = known.chain(others).map(|(p, ms)| format!("{p} {}", duration(ms))).collect();
    if parts.is_empty() {
        "-".into()
    } else {
        parts.join(", ")
    }
}

/// The summary of one migration, for a person.
pub fn summary(m: &Migration) -> String {
    let head = if m.status == "done" {
        format!("{} moved from {} to {} ({}), epoch {}\n", m.workload, m.from, m.to, m.mode, m.epoch)
    } else {
        format!(
            "{} not moved from {} to {} ({}): {}: {}\n",
            m.workload,
            m.from,
            m.to,
            m.mode,
            m.error_code.as_deref().unwrap_or("failed"),
            m.error.as_deref().unwrap_or("")
        )
    };
    if !m.heard {
        // Refused before any progress: there is nothing more to tell.
        return head;
    }
    format!(
        "{head}  phases    {}\n  sent      {} ({} bytes)\n  downtime  {}\n  elapsed   {}\n",
        phase_times(&m.phase_ms),
        table::human_bytes(m.bytes_sent),
        m.bytes_sent,
        duration(m.downtime_ms),
        duration(m.elapsed_ms)
    )
}

/// The evacuation table: WORKLOAD FROM TO STATUS DOWNTIME BYTES ERROR.
pub fn evacuation_table(ms: &[Migration]) -> String {
    let rows: Vec<Vec<String>> = ms
        .iter()
        .map(|m| {
            vec![
                m.workload.clone(),
                m.from.clone(),
                if m.to.is_empty() { "-".into() } else { m.to.clone() },
                m.status.to_string(),
                if m.status == "done" { duration(m.downtime_ms) } else { "-".into() },
                table::human_bytes(m.bytes_sent),
                match (&m.error_code, &m.error) {
                    (Some(c), Some(e)) => format!("{c}: {e}"),
                    _ => "-".into(),
                },
            ]
        })
        .collect();
    table::render(&["WORKLOAD", "FROM", "TO", "STATUS", "DOWNTIME", "BYTES", "ERROR"], &rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(word: &str) -> pb::MigratePhase {
        pb::MigratePhase::from_str_name(&format!("MIGRATE_PHASE_{}", word.to_uppercase())).unwrap()
    }

    fn msg(workload: &str, phase: &str, sent: u64, done: bool) -> pb::MigrateProgress {
        pb::MigrateProgress {
            workload: workload.into(),
            to: "h1".into(),
            from: "h0".into(),
            step: step(phase) as i32,
            bytes_sent: sent,
            bytes_total: 1000,
            done,
            elapsed_ms: sent,
            ..Default::default()
        }
    }

    fn last(workload: &str) -> pb::MigrateProgress {
        pb::MigrateProgress {
            phase_ms: [("reserve", 2), ("freeze", 10), ("copy", 350), ("start", 80), ("delete", 15)]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
            downtime_ms: 445,
            epoch: 3,
            elapsed_ms: 1480,
            ..msg(workload, "done", 1000, true)
        }
    }

    fn lines() -> Display {
        Display::Lines { shown: HashMap::new() }
    }

    async fn run(
        items: Vec<Result<pb::MigrateProgress, tonic::Status>>,
        until_done: bool,
    ) -> (End, Vec<Migration>) {
        let mut t = Tracker::new("h0", "cold", lines());
        t.expect("web", "h1");
        let end = follow(futures::stream::iter(items), Duration::from_secs(5), &mut t, until_done).await;
        let ms = t.close(&end);
        (end, ms)
    }

    #[tokio::test]
    async fn a_finished_migration_is_done_with_its_figures() {
        let (_, ms) = run(
            vec![Ok(msg("web", "reserve", 0, false)), Ok(msg("web", "copy", 500, false)), Ok(last("web"))],
            true,
        )
        .await;
        let m = &ms[0];
        assert_eq!(
            (m.status, m.epoch, m.bytes_sent, m.downtime_ms, m.elapsed_ms),
            ("done", 3, 1000, 445, 1480)
        );
        let v = serde_json::to_value(m).unwrap();
        assert_eq!(
            v.as_object().unwrap().keys().collect::<Vec<_>>(),
            [
                "workload",
                "from",
                "to",
                "mode",
                "epoch",
                "bytes_sent",
                "downtime_ms",
                "phase_ms",
                "elapsed_ms",
                "status",
                "error",
                "error_code"
            ]
        );
        assert!(v["error"].is_null() && v["error_code"].is_null());
        assert_eq!(v["phase_ms"]["copy"], 350);
        assert_eq!(
            summary(m),
            "web moved from h0 to h1 (cold), epoch 3\n\
             \x20 phases    reserve 2ms, freeze 10ms, copy 350ms, start 80ms, delete 15ms\n\
             \x20 sent      1000B (1000 bytes)\n\
             \x20 downtime  445ms\n\
             \x20 elapsed   1.48s\n"
        );
    }

    #[tokio::test]
    async fn failures_carry_their_code() {
        let failed = pb::MigrateProgress {
            error: "disk full on h1".into(),
            code: pb::ErrorCode::NoSpace as i32,
            ..msg("web", "failed", 10, true)
        };
        let (_, ms) = run(vec![Ok(msg("web", "copy", 10, false)), Ok(failed)], true).await;
        assert_eq!((ms[0].status, ms[0].error_code.as_deref()), ("failed", Some("no_space")));
        assert!(
            summary(&ms[0]).starts_with("web not moved from h0 to h1 (cold): no_space: disk full on h1\n")
        );
        // done with neither error nor code, but phase failed: still a failure.
        let (_, ms) = run(vec![Ok(msg("web", "failed", 0, true))], true).await;
        assert_eq!(ms[0].error_code.as_deref(), Some("failed"));
    }

    #[tokio::test]
    async fn a_stream_that_ends_early_is_interrupted_and_a_status_is_mapped() {
        let (end, ms) = run(vec![Ok(msg("web", "copy", 10, false))], true).await;
        assert!(matches!(end, End::Ended));
        assert_eq!(ms[0].error_code.as_deref(), Some("interrupted"));
        assert!(ms[0].error.as_deref().unwrap().contains("last phase: copy"));
        // A status before any progress keeps its meaning; after progress, the move was cut short.
        let (_, ms) =
            run(vec![Err(tonic::Status::aborted("another migration of web is running"))], true).await;
        assert_eq!(ms[0].error_code.as_deref(), Some("conflict"));
        assert_eq!(
            summary(&ms[0]),
            "web not moved from h0 to h1 (cold): conflict: another migration of web is running\n"
        );
        let (_, ms) =
            run(vec![Ok(msg("web", "copy", 10, false)), Err(tonic::Status::unavailable("gone"))], true).await;
        assert_eq!(ms[0].error_code.as_deref(), Some("interrupted"));
        assert!(ms[0].error.as_deref().unwrap().starts_with("unreachable: gone"));
    }

    #[tokio::test]
    async fn a_silent_stream_is_stalled() {
        let mut t = Tracker::new("h0", "live", lines());
        t.expect("web", "h1");
        let stream =
            futures::stream::iter(vec![Ok(msg("web", "copy", 10, false))]).chain(futures::stream::pending());
        let started = Instant::now();
        let end = follow(stream, Duration::from_millis(50), &mut t, true).await;
        assert!(started.elapsed() < Duration::from_secs(2));
        let ms = t.close(&end);
        assert_eq!(ms[0].error_code.as_deref(), Some("stalled"));
    }

    #[tokio::test]
    async fn an_evacuation_tracks_each_workload() {
        let mut t = Tracker::new("h0", "cold", lines());
        let failed = pb::MigrateProgress {
            error: "h2 unreachable".into(),
            code: pb::ErrorCode::Unreachable as i32,
            ..msg("db", "failed", 0, true)
        };
        let items = vec![
            Ok(msg("web", "copy", 10, false)),
            Ok(msg("db", "reserve", 0, false)),
            Ok(last("web")),
            Ok(failed),
        ];
        let end = follow(futures::stream::iter(items), Duration::from_secs(5), &mut t, false).await;
        let ms = t.close(&end);
        assert_eq!(
            ms.iter().map(|m| (m.workload.as_str(), m.status)).collect::<Vec<_>>(),
            [("web", "done"), ("db", "failed")]
        );
        assert_eq!(
            evacuation_table(&ms),
            "WORKLOAD  FROM  TO  STATUS  DOWNTIME  BYTES  ERROR\n\
             web       h0    h1  done    445ms     1000B  -\n\
             db        h0    h1  failed  -         0B     unreachable: h2 unreachable\n"
        );
    }

    #[test]
    fn lines_and_durations_read_well() {
        let mut m = Migration::new("web", "h0", "h1", "cold");
        m.apply(&msg("web", "copy", 512, false));
        assert_eq!(phase_line(&m), "web -> h1: copy 512B/1000B 512ms");
        assert_eq!(duration(999), "999ms");
        assert_eq!(duration(1234), "1.23s");
        assert_eq!(duration(125_000), "2m05s");
        let odd: BTreeMap<String, u64> = [("zeta".to_string(), 1), ("copy".to_string(), 2)].into();
        assert_eq!(phase_times(&odd), "copy 2ms, zeta 1ms");
        assert_eq!(phase_times(&BTreeMap::new()), "-");
        let _ = bar_style();
    }
}
