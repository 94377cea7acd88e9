//! Reading `/proc`: the raw material of the process table and the host summary.
//!
//! Everything here is a plain, synchronous read of one kernel file. `/proc/PID/stat`, read
//! per process per tick, is parsed without allocating by [`dcos_linux::stat`]; [`ProcFs`]
//! reads it into one reused buffer. The root is a parameter so tests can point it at a
//! fixture tree.

pub mod detail;
pub mod host;
pub mod users;

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

/// A `/proc` tree and a reusable read buffer.
#[derive(Debug)]
pub struct ProcFs {
    root: PathBuf,
    path: String,
    buf: Vec<u8>,
}

impl ProcFs {
    pub fn new(root: impl Into<PathBuf>) -> ProcFs {
        ProcFs { root: root.into(), path: String::with_capacity(64), buf: Vec::with_capacity(4096) }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn set_path(&mut self, pid: i32, tid: Option<i32>, file: &str) {
        use std::fmt::Write;
        self.path.clear();
        let _ = write!(self.path, "{}/{pid}/", self.root.display());
        if let Some(tid) = tid {
            let _ = write!(self.path, "task/{tid}/");
        }
        self.path.push_str(file);
    }

    /// Reads `/proc/PID/<file>` (or `/proc/PID/task/TID/<file>`) into the shared buffer.
    pub fn read(&mut self, pid: i32, tid: Option<i32>, file: &str) -> io::Result<&[u8]> {
        self.set_path(pid, tid, file);
        self.buf.clear();
        File::open(&self.path)?.read_to_end(&mut self.buf)?;
        Ok(&self.buf)
    }

    /// `readlink /proc/PID/<file>`.
    pub fn readlink(&mut self, pid: i32, file: &str) -> io::Result<PathBuf> {
        self.set_path(pid, None, file);
        std::fs::read_link(&self.path)
    }

    /// Owner of `/proc/PID`, which the kernel sets to the process's effective uid and gid.
    pub fn owner(&mut self, pid: i32) -> io::Result<(u32, u32)> {
        use std::os::unix::fs::MetadataExt;
        self.set_path(pid, None, "");
        let m = std::fs::metadata(&self.path)?;
        Ok((m.uid(), m.gid()))
    }

    /// Every pid in the tree, in directory order.
    pub fn pids(&self) -> io::Result<Vec<i32>> {
        let mut out = Vec::with_capacity(1024);
        for entry in std::fs::read_dir(&self.root)? {
            let Ok(entry) = entry else { continue };
            if let Some(pid) = parse_pid(entry.file_name().as_encoded_bytes()) {
                out.push(pid);
            }
        }
        Ok(out)
    }

    /// The thread ids of a process (`/proc/PID/task`).
    pub fn tids(&self, pid: i32) -> io::Result<Vec<i32>> {
        let dir = self.root.join(pid.to_string()).join("task");
        let mut out = Vec::new();
        for entry in std::fs::read_dir(dir)? {
            let Ok(entry) = entry else { continue };
            if let Some(tid) = parse_pid(entry.file_name().as_encoded_bytes()) {
                out.push(tid);
            }
        }
        out.sort_unstable();
        Ok(out)
    }
}

fn parse_pid(name: &[u8]) -> Option<i32> {
    if name.is_empty() || name.len() > 10 || !name.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(name).ok()?.parse().ok()
}

/// Splits a NUL-separated `/proc/PID/cmdline` into its arguments.
pub fn split_cmdline(raw: &[u8]) -> Vec<String> {
    let raw = raw.strip_suffix(b"\0").unwrap_or(raw);
    if raw.is_empty() {
        return Vec::new();
    }
    raw.split(|b| *b == 0).map(|a| String::from_utf8_lossy(a).into_owned()).collect()
}

/// `read_bytes` and `write_bytes` of `/proc/PID/io`.
pub fn parse_io(raw: &[u8]) -> Option<(u64, u64)> {
    let text = std::str::from_utf8(raw).ok()?;
    let mut read = None;
    let mut write = None;
    for line in text.lines() {
        if let Some(v) = line.strip_prefix("read_bytes: ") {
            read = v.trim().parse().ok();
        } else if let Some(v) = line.strip_prefix("write_bytes: ") {
            write = v.trim().parse().ok();
        }
    }
    Some((read?, write?))
}

/// Name of a terminal from the `tty_nr` of `/proc/PID/stat`; `None` for no terminal.
pub fn tty_name(tty_nr: i64) -> Option<String> {
    if tty_nr <= 0 {
        return None;
    }
    let major = (tty_nr >> 8) & 0xfff;
    let minor = (tty_nr & 0xff) | ((tty_nr >> 12) & 0xfff00);
    Some(match major {
        136..=143 => format!("pts/{}", minor + (major - 136) * 256),
        4 if minor < 64 => format!("tty{minor}"),
        4 => format!("ttyS{}", minor - 64),
        5 if minor == 0 => "tty".to_string(),
        5 if minor == 1 => "console".to_string(),
        _ => format!("{major}:{minor}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cmdline_arguments_split_on_nul_and_keep_empty_ones() {
        assert_eq!(split_cmdline(b"sleep\x00100\x00"), ["sleep", "100"]);
        assert_eq!(split_cmdline(b"a\x00\x00b\x00"), ["a", "", "b"]);
        assert!(split_cmdline(b"").is_empty());
    }

    #[test]
    fn io_counters_parse() {
        let raw = b"rchar: 1\nwchar: 2\nsyscr: 3\nsyscw: 4\nread_bytes: 4096\nwrite_bytes: 8192\ncancelled_write_bytes: 0\n";
        assert_eq!(parse_io(raw), Some((4096, 8192)));
        assert_eq!(parse_io(b"garbage"), None);
    }

    #[test]
    fn terminals_are_named_like_ps() {
        assert_eq!(tty_name(0), None);
        assert_eq!(tty_name(34816).as_deref(), Some("pts/0"));
        assert_eq!(tty_name(34819).as_deref(), Some("pts/3"));
        assert_eq!(tty_name(1025).as_deref(), Some("tty1"));
        assert_eq!(tty_name((4 << 8) | 64).as_deref(), Some("ttyS0"));
    }

    #[test]
    fn pids_are_digits_only() {
        assert_eq!(parse_pid(b"123"), Some(123));
        assert_eq!(parse_pid(b"self"), None);
        assert_eq!(parse_pid(b"12a"), None);
        assert_eq!(parse_pid(b"99999999999"), None);
    }
}
