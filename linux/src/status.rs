//! Parsing `/proc/PID/status`: `Key:<tab>value` lines (`VmRSS:  1024 kB`, `NSpid: 7 1`).
//! `/proc/meminfo` has the same form, so [`kib_as_bytes`] reads it too.

use std::path::Path;

/// Reads `<proc_root>/<pid>/status`.
pub fn read(proc_root: &Path, pid: u32) -> std::io::Result<String> {
    std::fs::read_to_string(proc_root.join(pid.to_string()).join("status"))
}

/// The value of line `key` (the whole name: `VmRS` does not match `VmRSS`), trimmed.
pub fn value<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    text.lines().find_map(|line| line.strip_prefix(key)?.strip_prefix(':').map(str::trim))
}

/// A `kB` line (`VmRSS`, `VmHWM`, `RssAnon`; `MemTotal` of `/proc/meminfo`), in bytes.
pub fn kib_as_bytes(text: &str, key: &str) -> Option<u64> {
    let kib: u64 = value(text, key)?.split_whitespace().next()?.parse().ok()?;
    kib.checked_mul(1024)
}

/// A line of numbers (`NSpid`, `Uid`, `Groups`); unparsable ones are left out.
pub fn numbers(text: &str, key: &str) -> Vec<u64> {
    value(text, key)
        .map(|v| v.split_whitespace().filter_map(|n| n.parse().ok()).collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATUS: &str = "Name:\tsleep\nUmask:\t0022\nState:\tS (sleeping)\nNSpid:\t4242\t7\t1\nUid:\t0\t0\t0\t0\nVmHWM:\t    2048 kB\nVmRSS:\t    1024 kB\n";

    #[test]
    fn keys_match_whole_names() {
        assert_eq!(value(STATUS, "State"), Some("S (sleeping)"));
        assert_eq!(kib_as_bytes(STATUS, "VmRSS"), Some(1024 * 1024));
        assert_eq!(kib_as_bytes(STATUS, "VmHWM"), Some(2048 * 1024));
        assert_eq!(kib_as_bytes(STATUS, "VmRS"), None);
        assert_eq!(kib_as_bytes(STATUS, "Name"), None, "not a number");
        assert_eq!(numbers(STATUS, "NSpid"), [4242, 7, 1]);
        assert!(numbers(STATUS, "Missing").is_empty());
        assert_eq!(kib_as_bytes("MemTotal:       24576000 kB\n", "MemTotal"), Some(24576000 * 1024));
    }

    #[test]
    fn this_process_has_a_resident_set() {
        let text = read(crate::proc_root(), std::process::id()).unwrap();
        assert!(kib_as_bytes(&text, "VmRSS").unwrap() > 0);
        assert!(!numbers(&text, "NSpid").is_empty());
    }
}
