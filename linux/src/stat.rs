//! Parsing `/proc/PID/stat` (and `/proc/PID/task/TID/stat`): the one parser of that file.
//!
//! [`parse`] allocates nothing: it borrows the command name from the caller's buffer and
//! reads the numbers in place. k2i's sampler reads this file for every process on the host
//! every tick, so a `String` or a `Vec` of fields per process would be thousands of
//! allocations a second on a busy host. Callers that want one process's state and start
//! time read it through [`crate::process`].

/// Clock ticks per second of the time fields (`utime`, `stime`, `starttime`). `USER_HZ` is
/// part of the kernel's user-space ABI and is 100 on every architecture Linux exports it for.
pub const CLK_TCK: f64 = 100.0;

/// The `flags` bit of kernel threads (`PF_KTHREAD`).
pub const PF_KTHREAD: u64 = 0x0020_0000;

/// The fields of `/proc/PID/stat` dcos uses, field numbers as in proc(5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat<'a> {
    /// Field 1.
    pub pid: i32,
    /// The kernel's comm (field 2), between the parentheses: bytes, not necessarily UTF-8.
    pub comm: &'a [u8],
    /// Field 3: `R`, `S`, `D`, `Z` (zombie), `X` (dead), ...
    pub state: u8,
    pub ppid: i32,
    pub pgrp: i32,
    pub session: i32,
    pub tty_nr: i64,
    pub flags: u64,
    /// utime + stime, in clock ticks.
    pub cpu_ticks: u64,
    pub nice: i32,
    pub num_threads: u32,
    /// Field 22: clock ticks after boot. With the pid it names one process for good: a
    /// reused pid has a later start time.
    pub starttime: u64,
    pub vsize: u64,
    /// Pages.
    pub rss_pages: u64,
}

/// Parses one `/proc/PID/stat`. `None` if it is not one (truncated, garbage).
///
/// The comm may contain spaces and parentheses, so it is delimited by the first `(` and
/// the *last* `)`.
pub fn parse(raw: &[u8]) -> Option<Stat<'_>> {
    let open = raw.iter().position(|&b| b == b'(')?;
    let close = raw.iter().rposition(|&b| b == b')')?;
    if close < open {
        return None;
    }
    let pid = parse_int(raw[..open].trim_ascii())?;
    let comm = &raw[open + 1..close];
    let mut f = raw.get(close + 1..)?.split(|&b| b == b' ').filter(|s| !s.is_empty());
    // Field numbers as in proc(5); the iterator starts at field 3.
    let state = *f.next()?.first()?;
    let ppid = parse_int(f.next()?)?;
    let pgrp = parse_int(f.next()?)?;
    let session = parse_int(f.next()?)?;
    let tty_nr = parse_int(f.next()?)?;
    let _tpgid = f.next()?;
    let flags = parse_uint(f.next()?)?;
    let mut f = f.skip(4); // minflt cminflt majflt cmajflt
    let utime = parse_uint(f.next()?)?;
    let stime = parse_uint(f.next()?)?;
    let mut f = f.skip(3); // cutime cstime priority
    let nice = parse_int(f.next()?)?;
    let num_threads = parse_uint(f.next()?)?;
    let _itrealvalue = f.next()?;
    let starttime = parse_uint(f.next()?)?;
    let vsize = parse_uint(f.next()?)?;
    let rss_pages = parse_int(f.next()?)?.max(0) as u64;
    Some(Stat {
        pid: pid as i32,
        comm,
        state,
        ppid: ppid as i32,
        pgrp: pgrp as i32,
        session: session as i32,
        tty_nr,
        flags,
        cpu_ticks: utime + stime,
        nice: nice as i32,
        num_threads: num_threads as u32,
        starttime,
        vsize,
        rss_pages,
    })
}

fn parse_uint(s: &[u8]) -> Option<u64> {
    if s.is_empty() || s.len() > 20 {
        return None;
    }
    let mut v: u64 = 0;
    for &b in s {
        if !b.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
    }
    Some(v)
}

fn parse_int(s: &[u8]) -> Option<i64> {
    match s.split_first()? {
        (b'-', rest) => parse_uint(rest).map(|v| -(v as i64)),
        _ => parse_uint(s).map(|v| v as i64),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &[u8] = b"4242 (my (odd) cmd) S 1 4242 4242 34816 4242 4194560 120 0 0 0 250 50 0 0 20 -5 3 0 123456 10485760 512 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0\n";

    #[test]
    fn parses_every_field_the_table_uses_even_with_parentheses_in_comm() {
        let s = parse(SAMPLE).unwrap();
        assert_eq!(s.pid, 4242);
        assert_eq!(s.comm, b"my (odd) cmd");
        assert_eq!(s.state, b'S');
        assert_eq!((s.ppid, s.pgrp, s.session), (1, 4242, 4242));
        assert_eq!(s.tty_nr, 34816);
        assert_eq!(s.cpu_ticks, 300);
        assert_eq!(s.nice, -5);
        assert_eq!(s.num_threads, 3);
        assert_eq!(s.starttime, 123456);
        assert_eq!(s.vsize, 10485760);
        assert_eq!(s.rss_pages, 512);
    }

    #[test]
    fn garbage_and_truncation_are_rejected_not_panicked_on() {
        assert!(parse(b"").is_none());
        assert!(parse(b"12 (x").is_none());
        assert!(parse(b"12 (x) S 1 2").is_none());
        assert!(parse(b") (").is_none());
        for cut in 0..SAMPLE.len() {
            let _ = parse(&SAMPLE[..cut]);
        }
    }
}
