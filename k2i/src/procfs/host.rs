//! Host-wide figures: load, memory, uptime, CPU time, kernel release.

use std::path::Path;

/// Raw host counters from one sample.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HostCounters {
    pub load: [f64; 3],
    pub uptime_s: f64,
    pub mem_total_bytes: u64,
    pub mem_used_bytes: u64,
    pub swap_total_bytes: u64,
    pub swap_used_bytes: u64,
    /// Busy and total jiffies from the `cpu` line of `/proc/stat`.
    pub cpu_busy: u64,
    pub cpu_total: u64,
    pub cpus: u32,
    /// Boot time, seconds since the epoch (`btime`).
    pub boot_time: i64,
    /// Threads on the host, kernel threads included (the scheduling entities of `loadavg`).
    pub threads: u64,
}

/// Reads `/proc/{loadavg,uptime,meminfo,stat}` under `root`.
pub fn read(root: &Path) -> HostCounters {
    let mut h = HostCounters::default();
    if let Ok(s) = std::fs::read_to_string(root.join("loadavg")) {
        let fields: Vec<&str> = s.split_whitespace().collect();
        let load = |i: usize| fields.get(i).and_then(|v| v.parse().ok()).unwrap_or(0.0);
        h.load = [load(0), load(1), load(2)];
        // "running/total"
        h.threads = fields.get(3).and_then(|v| v.split_once('/')?.1.parse().ok()).unwrap_or(0);
    }
    if let Ok(s) = std::fs::read_to_string(root.join("uptime")) {
        h.uptime_s = s.split_whitespace().next().and_then(|v| v.parse().ok()).unwrap_or(0.0);
    }
    if let Ok(s) = std::fs::read_to_string(root.join("meminfo")) {
        parse_meminfo(&s, &mut h);
    }
    if let Ok(s) = std::fs::read_to_string(root.join("stat")) {
        parse_stat(&s, &mut h);
    }
    h
}

fn parse_meminfo(s: &str, h: &mut HostCounters) {
    let (mut total, mut avail, mut free, mut swap_total, mut swap_free) = (0, None, 0, 0, 0);
    for line in s.lines() {
        let mut it = line.split_whitespace();
        let (Some(key), Some(val)) = (it.next(), it.next()) else {
            continue;
        };
        let kib: u64 = val.parse().unwrap_or(0);
        match key {
            "MemTotal:" => total = kib,
            "MemAvailable:" => avail = Some(kib),
            "MemFree:" => free = kib,
            "SwapTotal:" => swap_total = kib,
            "SwapFree:" => swap_free = kib,
            _ => {}
        }
    }
    h.mem_total_bytes = total * 1024;
    h.mem_used_bytes = total.saturating_sub(avail.unwrap_or(free)) * 1024;
    h.swap_total_bytes = swap_total * 1024;
    h.swap_used_bytes = swap_total.saturating_sub(swap_free) * 1024;
}

fn parse_stat(s: &str, h: &mut HostCounters) {
    for line in s.lines() {
        if let Some(rest) = line.strip_prefix("cpu ") {
            let v: Vec<u64> = rest.split_whitespace().map(|x| x.parse().unwrap_or(0)).collect();
            // user nice system idle iowait irq softirq steal (guest counted in user)
            let total: u64 = v.iter().take(8).sum();
            let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
            h.cpu_total = total;
            h.cpu_busy = total.saturating_sub(idle);
        } else if line.starts_with("cpu") {
            h.cpus += 1;
        } else if let Some(b) = line.strip_prefix("btime ") {
            h.boot_time = b.trim().parse().unwrap_or(0);
        }
    }
}

/// The kernel release (`uname -r`).
pub fn kernel_release(root: &Path) -> String {
    std::fs::read_to_string(root.join("sys/kernel/osrelease"))
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// Host CPU busy percent between two samples, 0..=100 × cpus.
pub fn cpu_percent(prev: &HostCounters, now: &HostCounters) -> Option<f64> {
    let total = now.cpu_total.checked_sub(prev.cpu_total)?;
    let busy = now.cpu_busy.checked_sub(prev.cpu_busy)?;
    if total == 0 {
        return None;
    }
    Some(busy as f64 / total as f64 * 100.0 * f64::from(now.cpus.max(1)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_used_is_total_minus_available() {
        let mut h = HostCounters::default();
        parse_meminfo(
            "MemTotal:  1000 kB\nMemFree: 100 kB\nMemAvailable: 600 kB\nSwapTotal: 50 kB\nSwapFree: 20 kB\n",
            &mut h,
        );
        assert_eq!(h.mem_total_bytes, 1000 * 1024);
        assert_eq!(h.mem_used_bytes, 400 * 1024);
        assert_eq!(h.swap_used_bytes, 30 * 1024);
    }

    #[test]
    fn cpu_line_gives_busy_and_total_and_cpu_count() {
        let mut a = HostCounters::default();
        parse_stat("cpu  100 0 100 700 100 0 0 0 0 0\ncpu0 1\ncpu1 1\nbtime 1700000000\n", &mut a);
        assert_eq!((a.cpu_busy, a.cpu_total, a.cpus, a.boot_time), (200, 1000, 2, 1700000000));
        let mut b = a.clone();
        b.cpu_total += 100;
        b.cpu_busy += 50;
        assert_eq!(cpu_percent(&a, &b), Some(100.0));
    }
}
