//! When the host booted: the `btime` line of `/proc/stat`, in seconds since the epoch.
//! What ran before it (processes, mounts, runtime state in memory) did not survive it.

use std::path::Path;

/// The host's boot time in milliseconds since the epoch (whole seconds: the kernel's
/// resolution), from `<proc>/stat`.
pub fn unix_ms(proc: &Path) -> std::io::Result<i64> {
    let stat = std::fs::read_to_string(proc.join("stat"))?;
    stat.lines()
        .find_map(|l| l.strip_prefix("btime "))
        .and_then(|b| b.trim().parse::<i64>().ok())
        .map(|secs| secs * 1000)
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidData, "no btime line in /proc/stat"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_btime_line_in_milliseconds() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("stat"), "cpu  1 2 3\nbtime 1764000000\nprocesses 9\n").unwrap();
        assert_eq!(unix_ms(tmp.path()).unwrap(), 1_764_000_000_000);
        std::fs::write(tmp.path().join("stat"), "cpu  1 2 3\n").unwrap();
        assert_eq!(unix_ms(tmp.path()).unwrap_err().kind(), std::io::ErrorKind::InvalidData);
    }

    #[test]
    fn this_host_booted_in_the_past() {
        let now =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
        let boot = unix_ms(crate::proc_root()).unwrap();
        assert!(boot > 0 && boot <= now, "{boot} {now}");
    }
}
