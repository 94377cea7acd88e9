//! What `/proc` says about one process (CPU time, memory) and about the machine, and which
//! version a reference tool is.

use anyhow::{Context, Result};
use dcos_linux::{stat, status};
use std::collections::HashMap;
use std::path::Path;

/// Clock ticks per second of the `/proc/PID/stat` time fields.
pub fn clk_tck() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let v = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if v > 0 {
        v as f64
    } else {
        100.0
    }
}

/// `utime + stime` of a process (all its threads, living and dead), in clock ticks.
pub fn cpu_ticks(pid: i32) -> Result<u64> {
    read_stat(&format!("/proc/{pid}/stat"), |s| s.cpu_ticks)
}

/// Reads a `/proc/PID/stat` (or `/proc/PID/task/TID/stat`) and takes `field` of it.
fn read_stat<T>(path: &str, field: impl FnOnce(&stat::Stat<'_>) -> T) -> Result<T> {
    let raw = std::fs::read(path).with_context(|| format!("reading {path}"))?;
    stat::parse(&raw).map(|s| field(&s)).with_context(|| format!("parsing {path}"))
}

/// CPU ticks of a process, total and of its threads named `thread` (e.g. a background
/// sampler), so that work done elsewhere in the process can be told apart.
#[derive(Debug, Clone, Copy, Default)]
pub struct CpuSplit {
    pub total: u64,
    pub named: u64,
}

impl CpuSplit {
    /// Reads the process total and the named threads' ticks now.
    pub fn read(pid: i32, thread: &str) -> Result<CpuSplit> {
        let mut named = 0;
        let dir = format!("/proc/{pid}/task");
        for entry in std::fs::read_dir(&dir).with_context(|| format!("listing {dir}"))? {
            let Ok(entry) = entry else { continue };
            let Ok(raw) = std::fs::read(entry.path().join("stat")) else { continue };
            if let Some(s) = stat::parse(&raw).filter(|s| s.comm == thread.as_bytes()) {
                named += s.cpu_ticks;
            }
        }
        Ok(CpuSplit { total: cpu_ticks(pid)?, named })
    }

    /// Milliseconds of CPU since `earlier`: (whole process, named threads, the rest).
    pub fn since_ms(&self, earlier: &CpuSplit) -> (f64, f64, f64) {
        let to_ms = |t: u64| t as f64 / clk_tck() * 1e3;
        let total = to_ms(self.total.saturating_sub(earlier.total));
        let named = to_ms(self.named.saturating_sub(earlier.named));
        (total, named, (total - named).max(0.0))
    }
}

/// A `kB` line of `/proc/PID/status` (`VmRSS`, `VmHWM`, ...), in bytes.
pub fn status_bytes(pid: i32, key: &str) -> Result<u64> {
    let path = format!("/proc/{pid}/status");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    status::kib_as_bytes(&text, key).with_context(|| format!("{key} in {path}"))
}

/// How many entries of `/proc` are processes.
pub fn process_count() -> usize {
    std::fs::read_dir("/proc")
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter(|e| e.file_name().as_encoded_bytes().iter().all(u8::is_ascii_digit))
                .count()
        })
        .unwrap_or(0)
}

fn read_trimmed(path: impl AsRef<Path>) -> String {
    std::fs::read_to_string(path).map(|s| s.trim().to_string()).unwrap_or_else(|_| "?".into())
}

/// Every process now: (pid, start time) to (command name, CPU ticks).
pub fn cpu_by_process() -> HashMap<(i32, u64), (String, u64)> {
    let mut out = HashMap::new();
    let Ok(dir) = std::fs::read_dir("/proc") else { return out };
    for entry in dir.flatten() {
        if entry.file_name().to_str().and_then(|n| n.parse::<i32>().ok()).is_none() {
            continue;
        }
        let Ok(raw) = std::fs::read(entry.path().join("stat")) else { continue };
        if let Some(s) = stat::parse(&raw) {
            out.insert((s.pid, s.starttime), (String::from_utf8_lossy(s.comm).into_owned(), s.cpu_ticks));
        }
    }
    out
}

/// The processes alive in both `before` and `after` (same pid and start time) that used at
/// least `min_secs` of CPU in between, busiest first: (command, pid, seconds).
pub fn busiest_between(
    before: &HashMap<(i32, u64), (String, u64)>,
    after: &HashMap<(i32, u64), (String, u64)>,
    min_secs: f64,
) -> Vec<(String, i32, f64)> {
    let mut out: Vec<(String, i32, f64)> = after
        .iter()
        .filter_map(|(key, (comm, ticks))| {
            let (_, was) = before.get(key)?;
            let secs = ticks.saturating_sub(*was) as f64 / clk_tck();
            (secs >= min_secs).then(|| (comm.clone(), key.0, secs))
        })
        .collect();
    out.sort_by(|a, b| b.2.total_cmp(&a.2));
    out
}

/// CPU seconds the whole machine spent busy since boot (user, nice, system, irq, softirq,
/// steal: all of `/proc/stat`'s first line but idle and iowait).
pub fn machine_busy_secs() -> f64 {
    let text = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let fields: Vec<u64> =
        text.lines().next().unwrap_or("").split_whitespace().skip(1).filter_map(|f| f.parse().ok()).collect();
    let busy: u64 = [0, 1, 2, 5, 6, 7].iter().filter_map(|&i| fields.get(i)).sum();
    busy as f64 / clk_tck()
}

/// CPU seconds used by this process and by the children it has waited for (and theirs).
pub fn own_and_children_secs() -> f64 {
    let secs = |who| {
        // SAFETY: an all-zero rusage is valid, and getrusage only fills it in.
        let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: ru is a valid rusage to fill.
        if unsafe { libc::getrusage(who, &mut ru) } != 0 {
            return 0.0;
        }
        let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
        tv(ru.ru_utime) + tv(ru.ru_stime)
    };
    secs(libc::RUSAGE_SELF) + secs(libc::RUSAGE_CHILDREN)
}

/// The 1, 5 and 15 minute load averages, as `/proc/loadavg` gives them.
pub fn loadavg() -> String {
    let text = read_trimmed("/proc/loadavg");
    text.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
}

/// The first line `binary --version` prints (a tool the benchmark runs as its reference).
pub fn version(binary: &Path) -> String {
    std::process::Command::new(binary)
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).lines().next().map(str::to_string))
        .unwrap_or_else(|| "unknown version".into())
}

/// A one-line description of the machine: CPUs, CPU model, kernel, memory.
pub fn machine() -> String {
    let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines().find_map(|l| {
                l.strip_prefix("model name").map(|r| r.trim_start_matches([' ', '\t', ':']).to_string())
            })
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let mem_gib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| status::kib_as_bytes(&t, "MemTotal"))
        .map(|bytes| bytes as f64 / 1024.0 / 1024.0 / 1024.0)
        .unwrap_or(0.0);
    format!(
        "{cpus} CPUs ({model}), Linux {}, {mem_gib:.1} GiB RAM",
        read_trimmed("/proc/sys/kernel/osrelease")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_process_is_readable() {
        let me = std::process::id() as i32;
        assert!(cpu_ticks(me).is_ok());
        assert!(status_bytes(me, "VmRSS").unwrap() > 0);
        assert!(process_count() >= 1);
    }

    #[test]
    fn the_cpu_of_a_named_thread_is_told_apart() {
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        let (end_tx, end_rx) = std::sync::mpsc::channel::<()>();
        let spinner = std::thread::Builder::new()
            .name("probe-spin".into())
            .spawn(move || {
                // Busy until the kernel has charged this thread two clock ticks, then idle
                // (alive, so its ticks still count) until the test ends.
                while read_stat("/proc/thread-self/stat", |s| s.cpu_ticks).unwrap() < 2 {
                    std::hint::black_box((0..10_000u64).sum::<u64>());
                }
                done_tx.send(()).unwrap();
                let _ = end_rx.recv();
            })
            .unwrap();
        done_rx.recv().unwrap();
        let me = std::process::id() as i32;
        let split = CpuSplit::read(me, "probe-spin").unwrap();
        assert!(split.named >= 2, "{split:?}");
        // The kernel rounds a thread's and its process's times to ticks separately.
        assert!(split.total + 1 >= split.named, "{split:?}");
        assert_eq!(CpuSplit::read(me, "no-such-thread").unwrap().named, 0);
        let mine = cpu_by_process().into_iter().find(|((pid, _), _)| *pid == me).expect("this process");
        assert!(mine.1 .1 >= split.named, "{mine:?}");
        drop(end_tx);
        spinner.join().unwrap();
    }
}
