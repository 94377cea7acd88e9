//! The host's process table refreshed by k2i's sampler or by the `sysinfo` crate, each in a
//! process of its own, so that the memory measured is that table's alone, among the same
//! processes. `k2i-bench` runs [`measure`] for each [`Table`] in turn, run after run.
//!
//! Both produce the fields of a `/v1/proc` row that sysinfo has: pid, parent, user (name),
//! command name, command line, executable, state, CPU percent and time, resident and
//! virtual memory, start time, thread count, I/O bytes, uid and gid. The sampler's tick
//! also gives what sysinfo lacks (process group, session, nice, terminal, cgroup and
//! container), which a k2i built on sysinfo would still read from `/proc` itself.

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The argument that turns the benchmark binary into one table's measurement.
pub const CHILD_ARG: &str = "__process-table";

/// Pause between refreshes: CPU percentages need time to pass, as between sampler ticks.
pub const GAP: Duration = Duration::from_millis(100);

/// Who refreshes the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Table {
    /// k2i's `Sampler` (`new` + `tick`).
    Sampler,
    /// sysinfo with every process's tasks listed: its only source of a thread count.
    Sysinfo,
    /// sysinfo without tasks: no thread count, everything else.
    SysinfoNoThreads,
}

impl Table {
    pub const ALL: [Table; 3] = [Table::Sampler, Table::Sysinfo, Table::SysinfoNoThreads];

    pub fn arg(self) -> &'static str {
        match self {
            Table::Sampler => "sampler",
            Table::Sysinfo => "sysinfo",
            Table::SysinfoNoThreads => "sysinfo-no-threads",
        }
    }

    /// How the report names it.
    pub fn label(self) -> &'static str {
        match self {
            Table::Sampler => "k2i sampler (`Sampler::new` + `tick`), every field",
            Table::Sysinfo => "sysinfo, same fields, thread counts from its task lists",
            Table::SysinfoNoThreads => "sysinfo, same fields but no thread count (tasks off)",
        }
    }

    fn from_arg(s: &str) -> Option<Table> {
        Table::ALL.into_iter().find(|t| t.arg() == s)
    }
}

/// What one child measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Measured {
    /// Construction and the first refresh (every process new), ms.
    pub first_ms: f64,
    /// Each later refresh, ms.
    pub steady_ms: Vec<f64>,
    /// Processes and kernel threads in the last refresh.
    pub rows: usize,
    /// Their threads, added up (0 where the table has no thread count).
    pub threads: u64,
    /// The child's VmRSS before the table was made, and after its last refresh; VmHWM.
    pub rss_before: u64,
    pub rss_after: u64,
    pub hwm: u64,
}

/// If this process was started as a table measurement (`<exe> __process-table TABLE N`),
/// runs it, prints the [`Measured`] as JSON and exits.
pub fn run_child_if_requested() {
    let mut args = std::env::args().skip(1);
    if args.next().as_deref() != Some(CHILD_ARG) {
        return;
    }
    let table = args.next().as_deref().and_then(Table::from_arg);
    let refreshes: usize = args.next().and_then(|n| n.parse().ok()).unwrap_or(5);
    let result = table.context("no such table").and_then(|t| child(t, refreshes));
    match result.and_then(|m| Ok(serde_json::to_string(&m)?)) {
        Ok(line) => {
            println!("{line}");
            std::process::exit(0);
        }
        Err(e) => {
            eprintln!("{CHILD_ARG}: {e:#}");
            std::process::exit(1);
        }
    }
}

/// Runs `table` with `refreshes` refreshes after the first in a fresh process.
pub fn measure(table: Table, refreshes: usize) -> Result<Measured> {
    let exe = std::env::current_exe().context("finding the benchmark executable")?;
    let mut child = Command::new(exe)
        .args([CHILD_ARG, table.arg(), &refreshes.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context("starting a process-table measurement")?;
    let mut out = String::new();
    child.stdout.take().context("child stdout")?.read_to_string(&mut out)?;
    let status = child.wait()?;
    if !status.success() {
        bail!("the {} measurement failed: {status}", table.arg());
    }
    serde_json::from_str(out.trim()).with_context(|| format!("the {} measurement said {out:?}", table.arg()))
}

fn rss(key: &str) -> Result<u64> {
    crate::probe::status_bytes(std::process::id() as i32, key)
}

/// One refresh: the rows it has, and their threads added up.
trait Refresh {
    fn refresh(&mut self) -> (usize, u64);
}

/// k2i's sampler, made on the first refresh.
struct SamplerTable(Option<k2i::sampler::Sampler>);

impl Refresh for SamplerTable {
    fn refresh(&mut self) -> (usize, u64) {
        let s = self.0.get_or_insert_with(|| {
            let cfg =
                k2i::sampler::SamplerConfig::new("bench".into(), "bench".into(), Duration::from_secs(1));
            k2i::sampler::Sampler::new(cfg)
        });
        let snap = s.tick();
        (snap.processes.len() + snap.kernel_threads.len(), u64::from(snap.host.threads))
    }
}

/// sysinfo's `System` and user list, made on the first refresh, asked for what a process
/// row needs: what never changes (user, command line, executable) once per process, the
/// rest every time.
struct SysinfoTable {
    made: Option<(sysinfo::System, HashMap<sysinfo::Uid, String>)>,
    kind: sysinfo::ProcessRefreshKind,
}

impl SysinfoTable {
    fn new(tasks: bool) -> SysinfoTable {
        use sysinfo::{ProcessRefreshKind, UpdateKind};
        let kind = ProcessRefreshKind::nothing()
            .with_cpu()
            .with_memory()
            .with_disk_usage()
            .with_user(UpdateKind::OnlyIfNotSet)
            .with_cmd(UpdateKind::OnlyIfNotSet)
            .with_exe(UpdateKind::OnlyIfNotSet);
        SysinfoTable { made: None, kind: if tasks { kind.with_tasks() } else { kind.without_tasks() } }
    }
}

/// The fields of one row as sysinfo gives them, borrowed from its table.
#[allow(dead_code)] // Made to be had, then dropped: what is measured is getting them.
struct SysinfoRow<'a> {
    pid: u32,
    ppid: u32,
    user: &'a str,
    uid: Option<&'a sysinfo::Uid>,
    gid: Option<sysinfo::Gid>,
    cmd: &'a std::ffi::OsStr,
    cmdline: &'a [std::ffi::OsString],
    exe: Option<&'a std::path::Path>,
    state: sysinfo::ProcessStatus,
    cpu_percent: f32,
    cpu_time_ms: u64,
    rss: u64,
    vsz: u64,
    start_time: u64,
    threads: usize,
    io: sysinfo::DiskUsage,
}

impl Refresh for SysinfoTable {
    fn refresh(&mut self) -> (usize, u64) {
        let (sys, users) = self.made.get_or_insert_with(|| {
            let users = sysinfo::Users::new_with_refreshed_list()
                .map(|u| u.iter().map(|u| (u.id().clone(), u.name().to_string())).collect())
                .unwrap_or_default();
            (sysinfo::System::new().expect("sysinfo supports Linux"), users)
        });
        sys.refresh_processes_specifics(sysinfo::ProcessesToUpdate::All, true, self.kind);
        let rows: Vec<SysinfoRow<'_>> = sys
            .processes()
            .values()
            // With tasks listed, each thread is in the table too: a process row is not one.
            .filter(|p| p.thread_kind() != Some(sysinfo::ThreadKind::Userland))
            .map(|p| SysinfoRow {
                pid: p.pid().as_u32(),
                ppid: p.parent().map_or(0, |p| p.as_u32()),
                user: p.user_id().and_then(|u| users.get(u)).map_or("", String::as_str),
                uid: p.user_id(),
                gid: p.group_id(),
                cmd: p.name(),
                cmdline: p.cmd(),
                exe: p.exe(),
                state: p.status(),
                cpu_percent: p.cpu_usage(),
                cpu_time_ms: p.accumulated_cpu_time(),
                rss: p.memory(),
                vsz: p.virtual_memory(),
                start_time: p.start_time(),
                // The task list leaves out the main thread.
                threads: p.tasks().map_or(0, |t| t.len() + 1),
                io: p.disk_usage(),
            })
            .collect();
        let threads = rows.iter().map(|r| r.threads as u64).sum();
        (std::hint::black_box(rows).len(), threads)
    }
}

fn child(table: Table, refreshes: usize) -> Result<Measured> {
    let rss_before = rss("VmRSS")?;
    let mut t: Box<dyn Refresh> = match table {
        Table::Sampler => Box::new(SamplerTable(None)),
        Table::Sysinfo => Box::new(SysinfoTable::new(true)),
        Table::SysinfoNoThreads => Box::new(SysinfoTable::new(false)),
    };
    let started = Instant::now();
    let (mut rows, mut threads) = t.refresh();
    let first_ms = crate::stats::ms(started.elapsed());
    let mut steady_ms = Vec::with_capacity(refreshes);
    for _ in 0..refreshes {
        std::thread::sleep(GAP);
        let started = Instant::now();
        (rows, threads) = t.refresh();
        steady_ms.push(crate::stats::ms(started.elapsed()));
    }
    Ok(Measured {
        first_ms,
        steady_ms,
        rows,
        threads,
        rss_before,
        rss_after: rss("VmRSS")?,
        hwm: rss("VmHWM")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_tables_see_this_process_and_its_threads() {
        for table in Table::ALL {
            assert_eq!(Table::from_arg(table.arg()), Some(table));
        }
        let me = std::process::id();
        let mut sampler = SamplerTable(None);
        let (rows, threads) = sampler.refresh();
        assert!(rows > 1 && threads >= rows as u64, "{rows} rows, {threads} threads");
        let mut sys = SysinfoTable::new(true);
        let (rows_sys, threads_sys) = sys.refresh();
        assert!(rows_sys > 1 && threads_sys >= rows_sys as u64 / 2, "{rows_sys} rows, {threads_sys} threads");
        let (sys, _) = sys.made.as_ref().unwrap();
        let p = sys.process(sysinfo::Pid::from_u32(me)).expect("this process");
        assert!(p.memory() > 0 && !p.cmd().is_empty());
        let status = dcos_linux::status::read(dcos_linux::proc_root(), me).unwrap();
        let threads = dcos_linux::status::numbers(&status, "Threads")[0] as usize;
        assert_eq!(p.tasks().map(|t| t.len() + 1), Some(threads), "the task list and the main thread");
        let mut without = SysinfoTable::new(false);
        assert_eq!(without.refresh().1, 0, "no tasks, no thread count");
    }
}
