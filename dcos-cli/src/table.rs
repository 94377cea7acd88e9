//! Plain-text tables the way `ps` prints them: aligned columns, human units.

use dcos_core::model::Process;

/// `1.2G`, `340M`, `12K`, `512B`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [(&str, u64); 4] = [("T", 1 << 40), ("G", 1 << 30), ("M", 1 << 20), ("K", 1 << 10)];
    for (u, size) in UNITS {
        if n >= size {
            let v = n as f64 / size as f64;
            return if v < 10.0 { format!("{v:.1}{u}") } else { format!("{:.0}{u}", v) };
        }
    }
    format!("{n}B")
}

/// Renders rows with columns padded to their widest cell; the last column is not padded.
pub fn render(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            if i < widths.len() {
                widths[i] = widths[i].max(c.chars().count());
            }
        }
    }
    let mut out = String::new();
    let line = |cells: Vec<&str>, out: &mut String| {
        let last = cells.len().saturating_sub(1);
        for (i, c) in cells.iter().enumerate() {
            if i == last {
                out.push_str(c);
            } else {
                out.push_str(c);
                out.push_str(&" ".repeat(widths[i] - c.chars().count() + 2));
            }
        }
        out.push('\n');
    };
    line(header.to_vec(), &mut out);
    for r in rows {
        line(r.iter().map(String::as_str).collect(), &mut out);
    }
    out
}

/// The process columns, with the host first: HOST PID USER %CPU %MEM RSS S COMMAND.
pub const PROCESS_HEADER: [&str; 8] = ["HOST", "PID", "USER", "%CPU", "%MEM", "RSS", "S", "COMMAND"];

pub fn process_row(host: &str, p: &Process, width: usize) -> Vec<String> {
    let command = if p.cmdline.is_empty() { format!("[{}]", p.cmd) } else { p.cmdline.join(" ") };
    let command: String = command.chars().take(width).collect();
    vec![
        host.to_string(),
        p.pid.to_string(),
        p.user.to_string(),
        p.cpu_percent.map(|c| format!("{c:.1}")).unwrap_or_else(|| "-".into()),
        format!("{:.1}", p.mem_percent),
        human_bytes(p.mem_rss_bytes),
        p.state.to_string(),
        command,
    ]
}

/// `-o wide` process columns.
pub const PROCESS_HEADER_WIDE: [&str; 14] = [
    "HOST",
    "PID",
    "PPID",
    "USER",
    "%CPU",
    "%MEM",
    "RSS",
    "VSZ",
    "S",
    "TTY",
    "TIME",
    "START",
    "CONTAINER",
    "COMMAND",
];

/// `[h]mm:ss` of CPU time, like `ps`'s TIME.
pub fn cpu_time(secs: f64) -> String {
    let s = secs as u64;
    if s >= 3600 {
        format!("{}:{:02}:{:02}", s / 3600, (s / 60) % 60, s % 60)
    } else {
        format!("{}:{:02}", s / 60, s % 60)
    }
}

pub fn process_row_wide(host: &str, p: &Process) -> Vec<String> {
    let command = if p.cmdline.is_empty() { format!("[{}]", p.cmd) } else { p.cmdline.join(" ") };
    vec![
        host.to_string(),
        p.pid.to_string(),
        p.ppid.to_string(),
        p.user.to_string(),
        p.cpu_percent.map(|c| format!("{c:.1}")).unwrap_or_else(|| "-".into()),
        format!("{:.1}", p.mem_percent),
        human_bytes(p.mem_rss_bytes),
        human_bytes(p.mem_vsz_bytes),
        p.state.to_string(),
        p.tty.as_deref().unwrap_or("?").to_string(),
        cpu_time(p.cpu_time_s),
        p.start_time.get(..19).unwrap_or(&p.start_time).replace('T', " "),
        p.container.as_ref().map(|c| c.name.to_string()).unwrap_or_else(|| "-".into()),
        command,
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_are_human() {
        assert_eq!(human_bytes(512), "512B");
        assert_eq!(human_bytes(1536), "1.5K");
        assert_eq!(human_bytes(300 << 20), "300M");
        assert_eq!(human_bytes(3 << 30), "3.0G");
    }

    #[test]
    fn columns_align() {
        let t = render(&["A", "BB"], &[vec!["xxx".into(), "y".into()], vec!["z".into(), "long".into()]]);
        assert_eq!(t, "A    BB\nxxx  y\nz    long\n");
    }
}
