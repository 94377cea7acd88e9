//! What `/proc` says about one process (CPU time, memory) and about the machine.

use anyhow::{bail, Context, Result};
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
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("reading /proc/{pid}/stat"))?;
    parse_cpu_ticks(&text).with_context(|| format!("parsing /proc/{pid}/stat"))
}

/// `utime + stime` (fields 14 and 15) of a `/proc/PID/stat` line. The command name in
/// parentheses may hold spaces and parentheses, so the fields are counted after the last `)`.
pub fn parse_cpu_ticks(stat: &str) -> Result<u64> {
    let Some(close) = stat.rfind(')') else { bail!("no `)` in {stat:?}") };
    // After `)`: field 3 (state) is index 0, so field k is index k - 3.
    let fields: Vec<&str> = stat[close + 1..].split_whitespace().collect();
    let field = |k: usize| -> Result<u64> {
        fields
            .get(k - 3)
            .with_context(|| format!("field {k} missing"))?
            .parse::<u64>()
            .with_context(|| format!("field {k}"))
    };
    Ok(field(14)? + field(15)?)
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
            let Ok(text) = std::fs::read_to_string(entry.path().join("stat")) else { continue };
            let comm = text.find('(').zip(text.rfind(')')).map(|(a, b)| &text[a + 1..b]);
            if comm == Some(thread) {
                named += parse_cpu_ticks(&text).unwrap_or(0);
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
    let text = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    parse_status_kb(&text, key).map(|kb| kb * 1024).with_context(|| format!("{key} in /proc/{pid}/status"))
}

fn parse_status_kb(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let rest = l.strip_prefix(key)?.strip_prefix(':')?;
        rest.split_whitespace().next()?.parse().ok()
    })
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
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else { continue };
        let Ok(text) = std::fs::read_to_string(entry.path().join("stat")) else { continue };
        let (Some(open), Some(close)) = (text.find('('), text.rfind(')')) else { continue };
        let comm = text[open + 1..close].to_string();
        let fields: Vec<&str> = text[close + 1..].split_whitespace().collect();
        let num = |k: usize| fields.get(k - 3).and_then(|f| f.parse::<u64>().ok()).unwrap_or(0);
        out.insert((pid, num(22)), (comm, num(14) + num(15)));
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
        .and_then(|t| parse_status_kb(&t, "MemTotal"))
        .map(|kb| kb as f64 / 1024.0 / 1024.0)
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
    fn cpu_ticks_after_a_tricky_comm() {
        let line = "42 (a) b (c) S 1 42 42 0 -1 4194560 100 0 0 0 17 5 0 0 20 0 1 0 300 1000 50 18446744073709551615";
        assert_eq!(parse_cpu_ticks(line).unwrap(), 22);
        assert!(parse_cpu_ticks("42 (x) S 1").is_err());
    }

    #[test]
    fn own_process_is_readable() {
        let me = std::process::id() as i32;
        assert!(cpu_ticks(me).is_ok());
        assert!(status_bytes(me, "VmRSS").unwrap() > 0);
        assert!(process_count() >= 1);
    }

    #[test]
    fn status_keys_match_whole_names() {
        let t = "VmHWM:\t    2048 kB\nVmRSS:\t    1024 kB\n";
        assert_eq!(parse_status_kb(t, "VmRSS"), Some(1024));
        assert_eq!(parse_status_kb(t, "VmRS"), None);
    }
}
