//! The background sampler: one thread that reads `/proc` and publishes an immutable
//! [`Snapshot`] that request handlers share.
//!
//! What never changes for a process's life (cmdline, exe, user, cgroup, start time) is
//! read once, keyed by pid and start time; a tick reads `/proc/PID/stat` for every process
//! and `/proc/PID/io` only for processes that ran since the last tick (plus a slow rotation
//! over the rest).
//!
//! What a request needs decides what is read. A request for the process table takes the
//! snapshot if it is at most `--sample-interval` old; up to two intervals old, it is answered
//! at once and a new tick is started for the next one; older, it waits for a new tick. So
//! sampling follows the requests: a client asking every minute costs one pass a minute.
//! Without requests the sampler ticks every `idle_interval`. `/v1/host` and `/metrics` need
//! no pass over the processes: [`SamplerHandle::host`] reads the host's counters alone.

use crate::containers::{self, Catalog, CatalogConfig};
use crate::intern::Interner;
use crate::procfs::{self, host, users::Users, ProcFs};
use dcos_core::model::{Container, HostSummary, Process};
use dcos_linux::stat::{self, CLK_TCK, PF_KTHREAD};
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use tokio::sync::watch;

/// How and what to sample.
#[derive(Debug, Clone)]
pub struct SamplerConfig {
    pub proc_root: PathBuf,
    pub passwd: PathBuf,
    /// The age at which a snapshot is no longer fresh for a request.
    pub interval: Duration,
    /// Interval between ticks when no request asks for one.
    pub idle_interval: Duration,
    pub catalog: CatalogConfig,
    /// Name, dc and labels reported in the host summary.
    pub host_name: String,
    pub dc: String,
    pub labels: BTreeMap<String, String>,
}

impl SamplerConfig {
    pub fn new(host_name: String, dc: String, interval: Duration) -> SamplerConfig {
        SamplerConfig {
            proc_root: "/proc".into(),
            passwd: "/etc/passwd".into(),
            interval,
            idle_interval: Duration::from_secs(30).max(interval),
            catalog: CatalogConfig::default(),
            host_name,
            dc,
            labels: BTreeMap::new(),
        }
    }
}

/// One immutable view of the host, shared by every request until the next tick.
#[derive(Debug)]
pub struct Snapshot {
    /// Increases by one every tick.
    pub seq: u64,
    pub taken: Instant,
    pub sampled_at: String,
    /// User-space processes, by pid.
    pub processes: Vec<Process>,
    /// Kernel threads (shown with `kernel=true`), by pid.
    pub kernel_threads: Vec<Process>,
    pub host: HostSummary,
    pub containers: Vec<Container>,
    /// How long the tick that produced this snapshot took.
    pub tick_duration: Duration,
    /// The host counters read by this tick.
    pub counters: host::HostCounters,
}

impl Snapshot {
    /// The process with `pid`, user or kernel.
    pub fn find(&self, pid: i32) -> Option<&Process> {
        let by_pid = |v: &'_ [Process]| v.binary_search_by_key(&pid, |p| p.pid).ok();
        by_pid(&self.processes)
            .map(|i| &self.processes[i])
            .or_else(|| by_pid(&self.kernel_threads).map(|i| &self.kernel_threads[i]))
    }
}

/// What is kept per live process between ticks.
#[derive(Debug)]
struct Entry {
    starttime: u64,
    info: Arc<StaticInfo>,
    cpu_ticks: u64,
    io: Option<(u64, u64)>,
    comm: Arc<str>,
    tick: u64,
}

/// What is read once per process (again after an exec).
#[derive(Debug, Clone)]
struct StaticInfo {
    user: Arc<str>,
    uid: u32,
    gid: u32,
    cmdline: Arc<[Arc<str>]>,
    exe: Option<Arc<str>>,
    start_time: Arc<str>,
    cgroup: Arc<str>,
    kernel: bool,
}

/// The owned fields of one `/proc/PID/stat` read this tick.
#[derive(Debug, Clone, Copy)]
struct Row {
    pid: i32,
    comm: [u8; 64],
    comm_len: u8,
    state: u8,
    ppid: i32,
    pgrp: i32,
    session: i32,
    tty_nr: i64,
    flags: u64,
    cpu_ticks: u64,
    nice: i32,
    threads: u32,
    starttime: u64,
    vsize: u64,
    rss_pages: u64,
}

impl Row {
    fn from_stat(s: &stat::Stat<'_>) -> Row {
        let mut comm = [0u8; 64];
        let n = s.comm.len().min(64);
        comm[..n].copy_from_slice(&s.comm[..n]);
        Row {
            pid: s.pid,
            comm,
            comm_len: n as u8,
            state: s.state,
            ppid: s.ppid,
            pgrp: s.pgrp,
            session: s.session,
            tty_nr: s.tty_nr,
            flags: s.flags,
            cpu_ticks: s.cpu_ticks,
            nice: s.nice,
            threads: s.num_threads,
            starttime: s.starttime,
            vsize: s.vsize,
            rss_pages: s.rss_pages,
        }
    }

    fn comm(&self) -> &[u8] {
        &self.comm[..self.comm_len as usize]
    }

    fn kernel(&self) -> bool {
        self.flags & PF_KTHREAD != 0
    }
}

/// Raw once-per-process reads, done off the main loop (possibly in parallel).
#[derive(Debug, Default)]
struct RawStatic {
    uid: u32,
    gid: u32,
    cmdline: Vec<String>,
    exe: Option<String>,
    cgroup: String,
    io: Option<(u64, u64)>,
}

fn read_static(fs: &mut ProcFs, pid: i32, kernel: bool) -> RawStatic {
    let mut raw = RawStatic::default();
    if let Ok((uid, gid)) = fs.owner(pid) {
        raw.uid = uid;
        raw.gid = gid;
    }
    if kernel {
        raw.cgroup = "/".into();
        return raw;
    }
    if let Ok(b) = fs.read(pid, None, "cmdline") {
        raw.cmdline = procfs::split_cmdline(b);
    }
    raw.exe = fs.readlink(pid, "exe").ok().map(|p| p.to_string_lossy().into_owned());
    raw.cgroup = match fs.read(pid, None, "cgroup") {
        Ok(b) => containers::pick_cgroup(&String::from_utf8_lossy(b)).to_string(),
        Err(_) => "/".into(),
    };
    raw.io = fs.read(pid, None, "io").ok().and_then(procfs::parse_io);
    raw
}

/// Above this many new processes in one tick, their first reads are split across threads.
const PARALLEL_THRESHOLD: usize = 256;
/// Processes that did not run get their io counters and cmdline re-read once every this
/// many ticks.
const ROTATION: u64 = 16;

/// The sampling engine. Synchronous: [`spawn`] runs it on its own thread.
pub struct Sampler {
    cfg: SamplerConfig,
    fs: ProcFs,
    users: Users,
    catalog: Catalog,
    entries: HashMap<i32, Entry>,
    strings: Interner<str>,
    cmdlines: Interner<[Arc<str>]>,
    tick: u64,
    prev_at: Option<Instant>,
    prev_host: Option<host::HostCounters>,
    boot_time: i64,
    page_size: u64,
    kernel: String,
}

impl Sampler {
    pub fn new(cfg: SamplerConfig) -> Sampler {
        let page_size = nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
            .ok()
            .flatten()
            .map(|v| v as u64)
            .unwrap_or(4096);
        let counters = host::read(&cfg.proc_root);
        Sampler {
            fs: ProcFs::new(&cfg.proc_root),
            users: Users::new(&cfg.passwd),
            catalog: Catalog::new(cfg.catalog.clone()),
            kernel: host::kernel_release(&cfg.proc_root),
            boot_time: counters.boot_time,
            cfg,
            entries: HashMap::new(),
            strings: Interner::default(),
            cmdlines: Interner::default(),
            tick: 0,
            prev_at: None,
            prev_host: None,
            page_size,
        }
    }

    fn start_time(&mut self, starttime: u64) -> Arc<str> {
        let secs = self.boot_time + (starttime as f64 / CLK_TCK) as i64;
        let text = OffsetDateTime::from_unix_timestamp(secs)
            .ok()
            .and_then(|t| t.format(&Rfc3339).ok())
            .unwrap_or_default();
        self.strings.str(&text)
    }

    /// Reads `/proc` once and builds the next snapshot.
    pub fn tick(&mut self) -> Snapshot {
        let started = Instant::now();
        self.tick += 1;
        let tick = self.tick;
        self.users.reload_if_changed();
        self.catalog.refresh();

        // Pass 1: /proc/PID/stat for everyone.
        let pids = self.fs.pids().unwrap_or_default();
        let mut rows = Vec::with_capacity(pids.len());
        for pid in pids {
            if let Ok(raw) = self.fs.read(pid, None, "stat") {
                if let Some(s) = stat::parse(raw) {
                    rows.push(Row::from_stat(&s));
                }
            }
        }

        // Pass 2: first reads for processes not seen before (pid reuse counts as new), and
        // again for processes whose comm changed: they called exec, so cmdline and exe did too.
        rows.sort_unstable_by_key(|r| r.pid);
        let stale: Vec<(Row, bool)> = rows
            .iter()
            .filter_map(|r| match self.entries.get(&r.pid) {
                Some(e) if e.starttime == r.starttime && *e.comm.as_bytes() == *r.comm() => None,
                Some(e) if e.starttime == r.starttime => Some((*r, true)),
                _ => Some((*r, false)),
            })
            .collect();
        let targets: Vec<(i32, bool)> = stale.iter().map(|(r, _)| (r.pid, r.kernel())).collect();
        let raws = self.read_new(&targets);
        for ((row, execd), raw) in stale.into_iter().zip(raws) {
            let info = StaticInfo {
                user: self.users.name(raw.uid),
                uid: raw.uid,
                gid: raw.gid,
                cmdline: self.cmdlines.args(raw.cmdline, &mut self.strings),
                exe: raw.exe.map(|e| self.strings.str(&e)),
                start_time: self.start_time(row.starttime),
                cgroup: self.strings.str(&raw.cgroup),
                kernel: row.kernel(),
            };
            // After an exec the CPU history carries on; a new process starts without one
            // (tick 0: no cpu_percent until its second sample).
            let (cpu_ticks, seen) = match self.entries.get(&row.pid) {
                Some(e) if execd => (e.cpu_ticks, e.tick),
                _ => (row.cpu_ticks, 0),
            };
            self.entries.insert(
                row.pid,
                Entry {
                    starttime: row.starttime,
                    info: Arc::new(info),
                    cpu_ticks,
                    io: raw.io,
                    comm: Arc::from(String::from_utf8_lossy(row.comm()).as_ref()),
                    tick: seen,
                },
            );
        }

        // Pass 3: build rows, cpu_percent from the previous tick.
        let now = Instant::now();
        let elapsed = self.prev_at.map(|p| now.duration_since(p).as_secs_f64());
        let counters = host::read(&self.cfg.proc_root);
        let mem_total = counters.mem_total_bytes.max(1) as f64;
        let mut processes = Vec::with_capacity(rows.len());
        let mut kernel_threads = Vec::new();
        let mut threads_total: u64 = 0;
        for row in &rows {
            let Some(entry) = self.entries.get_mut(&row.pid) else {
                continue;
            };
            let first = entry.tick == 0;
            let ran = row.cpu_ticks != entry.cpu_ticks;
            let cpu_percent = match (first, elapsed) {
                (false, Some(secs)) if secs > 0.0 => {
                    let d = row.cpu_ticks.saturating_sub(entry.cpu_ticks) as f64 / CLK_TCK;
                    Some((d / secs * 100.0 * 10.0).round() / 10.0)
                }
                // Seen for the first time: its CPU time over its lifetime, as `ps` gives it.
                _ => Some(lifetime_cpu_percent(row.cpu_ticks, row.starttime, counters.uptime_s)),
            };
            let rotate = (row.pid as u64 + tick).is_multiple_of(ROTATION);
            if !first && !entry.info.kernel && (ran || rotate) {
                entry.io = self.fs.read(row.pid, None, "io").ok().and_then(procfs::parse_io);
            }
            if !first && !entry.info.kernel && rotate {
                // Processes may rewrite their own argv (daemons naming their workers).
                if let Ok(raw) = self.fs.read(row.pid, None, "cmdline") {
                    let args = procfs::split_cmdline(raw);
                    if !args.iter().map(String::as_str).eq(entry.info.cmdline.iter().map(|a| &**a)) {
                        let mut info = (*entry.info).clone();
                        info.cmdline = self.cmdlines.args(args, &mut self.strings);
                        entry.info = Arc::new(info);
                    }
                }
            }
            entry.cpu_ticks = row.cpu_ticks;
            entry.tick = tick;
            threads_total += u64::from(row.threads);
            let info = &entry.info;
            let rss = row.rss_pages * self.page_size;
            let p = Process {
                pid: row.pid,
                tid: None,
                ppid: row.ppid,
                pgid: row.pgrp,
                sid: row.session,
                user: info.user.clone(),
                uid: info.uid,
                gid: info.gid,
                state: row.state as char,
                nice: row.nice,
                threads: row.threads,
                cmd: entry.comm.clone(),
                cmdline: info.cmdline.clone(),
                exe: info.exe.clone(),
                start_time: info.start_time.clone(),
                cpu_percent,
                cpu_time_s: row.cpu_ticks as f64 / CLK_TCK,
                mem_rss_bytes: rss,
                mem_vsz_bytes: row.vsize,
                mem_percent: ((rss as f64 / mem_total) * 1000.0).round() / 10.0,
                io_read_bytes: entry.io.map(|io| io.0),
                io_write_bytes: entry.io.map(|io| io.1),
                tty: procfs::tty_name(row.tty_nr).map(Arc::from),
                cgroup: info.cgroup.clone(),
                container: None,
            };
            if info.kernel {
                kernel_threads.push(p);
            } else {
                processes.push(p);
            }
        }
        self.entries.retain(|_, e| e.tick == tick);
        let keep = 4 * self.entries.len() + 1024;
        self.strings.prune(keep);
        self.cmdlines.prune(keep);

        // Containers: attribute every process, then summarize per container.
        for p in &mut processes {
            p.container = self.catalog.container_of(&p.cgroup);
        }
        let containers = self.catalog.summarize(&processes, now);

        let cpu_percent = self.prev_host.as_ref().and_then(|prev| host::cpu_percent(prev, &counters));
        let sampled_at = OffsetDateTime::from(SystemTime::now()).format(&Rfc3339).unwrap_or_default();
        let mut host = HostSummary {
            name: self.cfg.host_name.clone(),
            dc: self.cfg.dc.clone(),
            labels: self.cfg.labels.clone(),
            kernel: self.kernel.clone(),
            processes: (processes.len() + kernel_threads.len()) as u32,
            threads: threads_total as u32,
            agent_version: dcos_core::VERSION.to_string(),
            uptime_s: 0.0,
            load: [0.0; 3],
            cpus: 0,
            cpu_percent: None,
            mem_total_bytes: 0,
            mem_used_bytes: 0,
            swap_total_bytes: 0,
            swap_used_bytes: 0,
            sampled_at: String::new(),
        };
        apply_counters(&mut host, &counters, cpu_percent, &sampled_at);
        self.prev_host = Some(counters.clone());
        self.prev_at = Some(now);
        Snapshot {
            seq: tick,
            taken: now,
            sampled_at,
            processes,
            kernel_threads,
            host,
            containers,
            tick_duration: started.elapsed(),
            counters,
        }
    }

    fn read_new(&mut self, new: &[(i32, bool)]) -> Vec<RawStatic> {
        if new.len() < PARALLEL_THRESHOLD {
            return new.iter().map(|&(pid, k)| read_static(&mut self.fs, pid, k)).collect();
        }
        let half = new.len() / 2;
        let (a, b) = new.split_at(half);
        let root = self.cfg.proc_root.clone();
        std::thread::scope(|s| {
            let other = s.spawn(|| {
                let mut fs = ProcFs::new(&root);
                b.iter().map(|&(pid, k)| read_static(&mut fs, pid, k)).collect::<Vec<_>>()
            });
            let mut out: Vec<RawStatic> =
                a.iter().map(|&(pid, k)| read_static(&mut self.fs, pid, k)).collect();
            out.extend(other.join().unwrap_or_default());
            out
        })
    }

    /// The threads of one process, read now (`threads=true`). Per-thread `cpu_percent` is
    /// `null`: the sampler keeps no per-thread history.
    pub fn threads_of(proc_root: &std::path::Path, p: &Process) -> Vec<Process> {
        let mut fs = ProcFs::new(proc_root);
        let tids = fs.tids(p.pid).unwrap_or_default();
        let mut out = Vec::with_capacity(tids.len());
        for tid in tids {
            let Ok(raw) = fs.read(p.pid, Some(tid), "stat") else {
                continue;
            };
            let Some(s) = stat::parse(raw) else { continue };
            let mut t = p.clone();
            t.tid = Some(tid);
            t.state = s.state as char;
            t.cmd = Arc::from(String::from_utf8_lossy(s.comm).as_ref());
            t.cpu_time_s = s.cpu_ticks as f64 / CLK_TCK;
            t.cpu_percent = None;
            t.nice = s.nice;
            out.push(t);
        }
        out
    }
}

/// CPU time over the process's lifetime, percent of one core, to 0.1: what `ps` shows as
/// `%CPU`, for a process without an earlier sample to measure an interval from.
fn lifetime_cpu_percent(cpu_ticks: u64, starttime: u64, uptime_s: f64) -> f64 {
    let age = uptime_s - starttime as f64 / CLK_TCK;
    if age <= 0.0 {
        return 0.0;
    }
    ((cpu_ticks as f64 / CLK_TCK) / age * 1000.0).round() / 10.0
}

/// The counter fields of a host summary, from `c`.
fn apply_counters(h: &mut HostSummary, c: &host::HostCounters, cpu_percent: Option<f64>, sampled_at: &str) {
    h.uptime_s = c.uptime_s;
    h.load = c.load;
    h.cpus = c.cpus;
    h.cpu_percent = cpu_percent.map(|c| (c * 10.0).round() / 10.0);
    h.mem_total_bytes = c.mem_total_bytes;
    h.mem_used_bytes = c.mem_used_bytes;
    h.swap_total_bytes = c.swap_total_bytes;
    h.swap_used_bytes = c.swap_used_bytes;
    h.sampled_at = sampled_at.to_string();
}

/// The last host-only reading ([`SamplerHandle::host`]).
struct HostReading {
    at: Instant,
    counters: host::HostCounters,
    summary: HostSummary,
}

/// The request side of a running sampler.
#[derive(Clone)]
pub struct SamplerHandle {
    rx: watch::Receiver<Arc<Snapshot>>,
    wake: mpsc::SyncSender<()>,
    /// The sequence number a request wants a snapshot of (at least); a wake-up finding
    /// the sampler already there takes no tick.
    wanted: Arc<AtomicU64>,
    interval: Duration,
    host: Arc<Mutex<Option<HostReading>>>,
    pub proc_root: PathBuf,
}

impl SamplerHandle {
    /// A fresh enough snapshot for a request: the current one if at most one interval old;
    /// up to two intervals old, the current one while a new tick starts for the next
    /// request; older, a new one (waiting at most 2 s).
    pub async fn current(&self) -> Arc<Snapshot> {
        let snap = self.rx.borrow().clone();
        let age = snap.taken.elapsed();
        if age <= self.interval {
            return snap;
        }
        if age <= self.interval * 2 {
            self.want_after(snap.seq);
            return snap;
        }
        self.refresh().await
    }

    /// Asks for a tick after snapshot `seq`, unless one is asked for already.
    fn want_after(&self, seq: u64) {
        if self.wanted.fetch_max(seq + 1, Ordering::Relaxed) <= seq {
            let _ = self.wake.try_send(());
        }
    }

    /// Wakes the sampler and waits (at most 2 s) for a snapshot newer than the current one.
    pub async fn refresh(&self) -> Arc<Snapshot> {
        let mut rx = self.rx.clone();
        let seq = rx.borrow_and_update().seq;
        self.wanted.fetch_max(seq + 1, Ordering::Relaxed);
        let _ = self.wake.try_send(());
        match tokio::time::timeout(Duration::from_secs(2), rx.changed()).await {
            Ok(Ok(())) => rx.borrow().clone(),
            _ => self.rx.borrow().clone(),
        }
    }

    /// How often a snapshot is taken while requests keep asking (`--sample-interval`).
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// The current snapshot, whatever its age, asking for no tick (what the process table
    /// gave last, for `/metrics`).
    pub fn peek(&self) -> Arc<Snapshot> {
        self.rx.borrow().clone()
    }

    /// The host summary read now (at most one interval old) from the host's own counters
    /// and the number of entries in `/proc`: no pass over the processes, no tick.
    pub fn host(&self) -> HostSummary {
        let mut last = self.host.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(r) = last.as_ref().filter(|r| r.at.elapsed() <= self.interval) {
            return r.summary.clone();
        }
        let snap = self.peek();
        let counters = host::read(&self.proc_root);
        // CPU busy since the later of the last reading and the last tick.
        let prev = match last.as_ref() {
            Some(r) if r.counters.cpu_total > snap.counters.cpu_total => &r.counters,
            _ => &snap.counters,
        };
        let cpu = host::cpu_percent(prev, &counters).or(snap.host.cpu_percent);
        let mut summary = snap.host.clone();
        if let Ok(pids) = ProcFs::new(&self.proc_root).pids() {
            summary.processes = pids.len() as u32;
        }
        if counters.threads > 0 {
            summary.threads = counters.threads as u32;
        }
        let sampled_at = OffsetDateTime::from(SystemTime::now()).format(&Rfc3339).unwrap_or_default();
        apply_counters(&mut summary, &counters, cpu, &sampled_at);
        *last = Some(HostReading { at: Instant::now(), counters, summary: summary.clone() });
        summary
    }
}

/// Takes the first snapshot now, then keeps sampling on a dedicated thread until every
/// handle is dropped: when a request asks, and every `idle_interval` without one.
pub fn spawn(cfg: SamplerConfig) -> std::io::Result<SamplerHandle> {
    let interval = cfg.interval;
    let idle_interval = cfg.idle_interval;
    let proc_root = cfg.proc_root.clone();
    let mut sampler = Sampler::new(cfg);
    let first = sampler.tick();
    let (tx, rx) = watch::channel(Arc::new(first));
    let (wake_tx, wake_rx) = mpsc::sync_channel::<()>(1);
    let wanted = Arc::new(AtomicU64::new(0));
    let asked = wanted.clone();
    std::thread::Builder::new().name("k2i-sampler".into()).spawn(move || loop {
        match wake_rx.recv_timeout(idle_interval) {
            // Woken for a tick that was taken meanwhile: nothing to do.
            Ok(()) if sampler.tick >= asked.load(Ordering::Relaxed) => continue,
            Ok(()) | Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => return,
        }
        let snap = sampler.tick();
        if tx.send(Arc::new(snap)).is_err() {
            return;
        }
    })?;
    Ok(SamplerHandle { rx, wake: wake_tx, wanted, interval, host: Arc::default(), proc_root })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::process::{Command, Stdio};

    fn sampler() -> Sampler {
        Sampler::new(SamplerConfig::new("t".into(), "dc".into(), Duration::from_millis(100)))
    }

    /// Polls `found` until it answers, for at most 10 s.
    fn wait_for<T>(what: &str, mut found: impl FnMut() -> Option<T>) -> T {
        let until = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(v) = found() {
                return v;
            }
            assert!(Instant::now() < until, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn an_exec_after_the_first_sample_updates_cmdline_and_keeps_cpu_history() {
        // The shell execs when the test says so: a line on its stdin.
        let mut child = Command::new("sh")
            .args(["-c", "read go; exec sleep 3600.75"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let pid = child.id() as i32;
        let mut s = sampler();
        let before =
            wait_for("the shell, sampled", || s.tick().find(pid).filter(|p| &*p.cmd == "sh").cloned());
        writeln!(child.stdin.as_mut().unwrap(), "go").unwrap();
        let after =
            wait_for("the exec, sampled", || s.tick().find(pid).filter(|p| &*p.cmd == "sleep").cloned());
        let _ = child.kill();
        let _ = child.wait();
        assert_eq!(after.cmdline.iter().map(|a| &**a).collect::<Vec<_>>(), ["sleep", "3600.75"]);
        assert!(after.exe.as_deref().is_some_and(|e| e.ends_with("sleep")), "{:?}", after.exe);
        assert!(after.cpu_percent.is_some(), "an exec is not a new process");
        assert_eq!(after.start_time, before.start_time);
    }

    #[test]
    fn cpu_percent_is_over_the_interval_after_the_first_sample_and_kernel_threads_are_apart() {
        let mut s = sampler();
        let first = s.tick();
        assert!(first.processes.iter().all(|p| p.cpu_percent.is_some()), "never null");
        let me = std::process::id() as i32;
        assert!(first.find(me).is_some());
        assert!(first.kernel_threads.iter().any(|k| k.pid == 2), "kthreadd is a kernel thread");
        assert!(first.processes.iter().all(|p| p.pid != 2));
        // The host's CPU percent needs the kernel's CPU counters to have moved in between.
        let counted = host::read(&s.cfg.proc_root).cpu_total;
        wait_for("the host's CPU counters to move", || {
            (host::read(&s.cfg.proc_root).cpu_total > counted).then_some(())
        });
        let second = s.tick();
        assert!(second.find(me).unwrap().cpu_percent.is_some());
        assert_eq!(second.seq, first.seq + 1);
        assert!(second.host.cpu_percent.is_some() && first.host.cpu_percent.is_none());
        assert!(second.processes.windows(2).all(|w| w[0].pid < w[1].pid), "sorted by pid");
    }

    #[test]
    fn a_process_seen_for_the_first_time_shows_its_lifetime_cpu_as_ps_does() {
        let busy = Command::new("sh").args(["-c", "while :; do :; done"]).spawn().unwrap();
        let pid = busy.id() as i32;
        struct Kill(std::process::Child);
        impl Drop for Kill {
            fn drop(&mut self) {
                let _ = self.0.kill();
                let _ = self.0.wait();
            }
        }
        let _busy = Kill(busy);
        let mut fs = ProcFs::new("/proc");
        // Half a second of CPU, so that ps's whole-second arithmetic has something to divide.
        wait_for("the busy loop to use 0.5 s of CPU", || {
            let raw = fs.read(pid, None, "stat").ok()?;
            (stat::parse(raw)?.cpu_ticks as f64 / CLK_TCK >= 0.5).then_some(())
        });
        let mut s = sampler();
        let seen = s.tick().find(pid).unwrap().cpu_percent.expect("not null on its first sample");
        let out = Command::new("ps").args(["-o", "pcpu=", "-p", &pid.to_string()]).output().unwrap();
        let ps: f64 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
        assert!(seen > 10.0, "a busy loop at {seen}%");
        assert!((seen - ps).abs() <= 20.0, "k2i {seen}% against ps {ps}%");
        assert_eq!(lifetime_cpu_percent(150, 100, 3.0), 75.0, "1.5 s of CPU over 2 s");
        assert_eq!(lifetime_cpu_percent(0, 300, 3.0), 0.0, "started just now");
    }
}
