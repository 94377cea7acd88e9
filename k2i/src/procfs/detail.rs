//! What `/v1/proc/{pid}` adds to a process row: open files, limits and namespaces. Read on
//! request only, never by the sampler.

use dcos_core::model::Limit;
use std::collections::BTreeMap;
use std::path::Path;

/// Open file descriptors: number to link target. At most `max` entries.
pub fn fds(root: &Path, pid: i32, max: usize) -> BTreeMap<String, String> {
    let dir = root.join(pid.to_string()).join("fd");
    let mut out = BTreeMap::new();
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return out;
    };
    for entry in entries.flatten().take(max) {
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Ok(target) = std::fs::read_link(entry.path()) {
            out.insert(name, target.to_string_lossy().into_owned());
        }
    }
    out
}

/// Namespaces: kind to identifier (`net:[4026531840]`).
pub fn namespaces(root: &Path, pid: i32) -> BTreeMap<String, String> {
    let dir = root.join(pid.to_string()).join("ns");
    let mut out = BTreeMap::new();
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return out;
    };
    for entry in entries.flatten() {
        if let Ok(target) = std::fs::read_link(entry.path()) {
            out.insert(
                entry.file_name().to_string_lossy().into_owned(),
                target.to_string_lossy().into_owned(),
            );
        }
    }
    out
}

/// Parses `/proc/PID/limits`.
pub fn limits(root: &Path, pid: i32) -> BTreeMap<String, Limit> {
    let text = std::fs::read_to_string(root.join(pid.to_string()).join("limits")).unwrap_or_default();
    parse_limits(&text)
}

fn parse_limits(text: &str) -> BTreeMap<String, Limit> {
    let mut out = BTreeMap::new();
    for line in text.lines().skip(1) {
        // Columns are aligned: name is the text before the first run of two spaces.
        let Some(split) = line.find("  ") else {
            continue;
        };
        let name = line[..split].trim().to_lowercase().replace(' ', "_");
        let mut rest = line[split..].split_whitespace();
        let value = |v: Option<&str>| v.and_then(|v| v.parse::<u64>().ok());
        let soft = value(rest.next());
        let hard = value(rest.next());
        let units = rest.next().map(str::to_string);
        out.insert(name, Limit { soft, hard, units });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_table_parses_with_unlimited_as_none() {
        let text = "Limit                     Soft Limit           Hard Limit           Units     \n\
Max cpu time              unlimited            unlimited            seconds   \n\
Max open files            1024                 524288               files     \n";
        let l = parse_limits(text);
        assert_eq!(l["max_open_files"].soft, Some(1024));
        assert_eq!(l["max_open_files"].hard, Some(524288));
        assert_eq!(l["max_cpu_time"].soft, None);
        assert_eq!(l["max_cpu_time"].units.as_deref(), Some("seconds"));
    }
}
