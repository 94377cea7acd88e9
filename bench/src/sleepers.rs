//! Thousands of extra processes that do nothing, cheaply, and reliably gone afterwards.
//!
//! The benchmark binary re-runs itself as a few *helpers* ([`run_helper_if_requested`] must
//! be the first thing its `main` does). Each helper is single-threaded, leads its own
//! process group, forks its share of children that only `pause()`, says `ready N` on
//! stdout, and waits for its stdin to close. Then it kills its children, reaps every one of
//! them and exits, so nothing is left to an init that may not reap. Should the benchmark
//! die, its end of the pipe closes and the helper cleans up just the same; should a helper
//! die, its children get `SIGKILL` from `PR_SET_PDEATHSIG`. [`Sleepers::stop`] (or drop)
//! closes the pipes, waits, falls back to killing the process groups, and returns once no
//! member of any group is left.

use anyhow::{bail, Context, Result};
use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The argument that turns the benchmark binary into a helper.
pub const HELPER_ARG: &str = "__bench-sleepers";
/// The command name the sleeping children show in `/proc/PID/stat`.
pub const SLEEPER_COMM: &str = "bench-sleeper";

/// If this process was started as a helper (`<exe> __bench-sleepers N`), runs it and exits.
/// Call it first in `main`, while the process has a single thread.
pub fn run_helper_if_requested() {
    let mut args = std::env::args().skip(1);
    if args.next().as_deref() != Some(HELPER_ARG) {
        return;
    }
    let n: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(0);
    std::process::exit(helper(n));
}

fn helper(n: usize) -> i32 {
    // SAFETY: getpid has no preconditions.
    let me = unsafe { libc::getpid() };
    let mut children: Vec<libc::pid_t> = Vec::with_capacity(n);
    let mut fork_error = None;
    for _ in 0..n {
        // SAFETY: this process is single-threaded (see run_helper_if_requested), and the
        // child only makes async-signal-safe system calls before it sleeps for good.
        match unsafe { libc::fork() } {
            0 => unsafe { sleeper(me) },
            -1 => {
                fork_error = Some(std::io::Error::last_os_error());
                break;
            }
            pid => children.push(pid),
        }
    }
    if let Some(e) = &fork_error {
        eprintln!("bench sleepers: fork failed after {} of {n} children: {e}", children.len());
    }
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "ready {}", children.len());
    let _ = out.flush();
    drop(out);
    // Sleep until the benchmark closes our stdin (or dies).
    let mut buf = [0u8; 256];
    let mut stdin = std::io::stdin().lock();
    loop {
        match stdin.read(&mut buf) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    for &pid in &children {
        // SAFETY: plain system calls on our own children.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
    for &pid in &children {
        // SAFETY: as above; a null status pointer is allowed.
        while unsafe { libc::waitpid(pid, std::ptr::null_mut(), 0) } == -1
            && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted
        {}
    }
    i32::from(fork_error.is_some())
}

/// The body of one sleeping child. Never returns.
///
/// # Safety
/// Only to be called in a child right after `fork`.
unsafe fn sleeper(parent: libc::pid_t) -> ! {
    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong);
    if libc::getppid() != parent {
        libc::_exit(0);
    }
    libc::prctl(libc::PR_SET_NAME, c"bench-sleeper".as_ptr() as libc::c_ulong);
    // Hold none of the helper's pipes or the terminal.
    libc::close(0);
    libc::close(1);
    libc::close(2);
    loop {
        libc::pause();
    }
}

struct Helper {
    child: Child,
    pgid: i32,
}

/// Extra sleeping processes, alive until [`Sleepers::stop`] or drop.
pub struct Sleepers {
    helpers: Vec<Helper>,
    /// Sleeping children started (helpers not counted).
    pub count: usize,
}

/// Refuses early, with the reason, when the kernel or the rlimit would stop `extra` forks.
pub fn check_limits(extra: usize) -> Result<()> {
    let now = crate::probe::process_count();
    let read = |p: &str| std::fs::read_to_string(p).ok().and_then(|s| s.trim().parse::<usize>().ok());
    let margin = 512;
    if let Some(pid_max) = read("/proc/sys/kernel/pid_max") {
        if now + extra + margin > pid_max {
            bail!("/proc/sys/kernel/pid_max is {pid_max}: too low for {now} + {extra} processes; raise it (sysctl kernel.pid_max=4194304)");
        }
    }
    if let Some(threads_max) = read("/proc/sys/kernel/threads-max") {
        if now + extra + margin > threads_max {
            bail!("/proc/sys/kernel/threads-max is {threads_max}: too low for {now} + {extra} processes; raise it");
        }
    }
    // RLIMIT_NPROC counts this user's processes; root is exempt.
    // SAFETY: getuid has no preconditions.
    if unsafe { libc::getuid() } != 0 {
        let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        // SAFETY: lim is a valid rlimit to fill.
        if unsafe { libc::getrlimit(libc::RLIMIT_NPROC, &mut lim) } == 0 {
            let want = (now + extra + margin) as libc::rlim_t;
            if lim.rlim_cur != libc::RLIM_INFINITY && lim.rlim_cur < want {
                if lim.rlim_max != libc::RLIM_INFINITY && lim.rlim_max < want {
                    bail!("RLIMIT_NPROC hard limit is {}: too low for {want} processes; run as root or raise `ulimit -u`", lim.rlim_max);
                }
                lim.rlim_cur = want;
                // SAFETY: lim is a valid rlimit.
                if unsafe { libc::setrlimit(libc::RLIMIT_NPROC, &lim) } != 0 {
                    bail!("cannot raise RLIMIT_NPROC to {want}: {}", std::io::Error::last_os_error());
                }
            }
        }
    }
    Ok(())
}

impl Sleepers {
    /// Starts `count` sleeping processes across `helpers` helper processes and waits until
    /// all of them exist.
    pub fn spawn(count: usize, helpers: usize) -> Result<Sleepers> {
        check_limits(count + helpers)?;
        let exe = std::env::current_exe().context("finding the benchmark executable")?;
        let helpers = helpers.clamp(1, count.max(1));
        let mut me = Sleepers { helpers: Vec::new(), count: 0 };
        let mut readers = Vec::new();
        for i in 0..helpers {
            let share = count / helpers + usize::from(i < count % helpers);
            let mut child = Command::new(&exe)
                .arg(HELPER_ARG)
                .arg(share.to_string())
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .process_group(0)
                .spawn()
                .context("starting a sleeper helper")?;
            let pgid = child.id() as i32;
            let stdout = child.stdout.take().context("helper stdout")?;
            me.helpers.push(Helper { child, pgid });
            readers.push((share, dcos_localfleet::FirstLine::read(stdout)));
        }
        for (share, ready) in readers {
            let line = ready.wait(Duration::from_secs(300)).unwrap_or_default();
            let started: usize = line.trim().strip_prefix("ready ").and_then(|n| n.parse().ok()).unwrap_or(0);
            me.count += started;
            if started != share {
                bail!("a helper started {started} of {share} sleeping processes (answer {line:?}); see its error above");
            }
        }
        Ok(me)
    }

    /// Ends every sleeping process and returns once they are all gone.
    pub fn stop(mut self) -> Result<()> {
        self.stop_all()
    }

    fn stop_all(&mut self) -> Result<()> {
        // Closing stdin asks each helper to kill and reap its children; they work in parallel.
        for h in &mut self.helpers {
            drop(h.child.stdin.take());
        }
        let mut problems = Vec::new();
        for mut h in self.helpers.drain(..) {
            let deadline = Instant::now() + Duration::from_secs(60);
            let exited = loop {
                match h.child.try_wait() {
                    Ok(Some(_)) => break true,
                    Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
                    _ => break false,
                }
            };
            if !exited {
                problems.push(format!("helper {} did not finish; killing its process group", h.pgid));
                // SAFETY: plain system call on a process group we created.
                unsafe { libc::killpg(h.pgid, libc::SIGKILL) };
                let _ = h.child.wait();
            }
            // Wait until no member of the group is left (killed children may linger briefly).
            let deadline = Instant::now() + Duration::from_secs(60);
            loop {
                // SAFETY: signal 0 only checks for existence.
                let alive = unsafe { libc::kill(-h.pgid, 0) } == 0;
                if !alive {
                    break;
                }
                if Instant::now() > deadline {
                    problems.push(format!("process group {} still has members", h.pgid));
                    break;
                }
                // SAFETY: as above.
                unsafe { libc::killpg(h.pgid, libc::SIGKILL) };
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            bail!("{}", problems.join("; "))
        }
    }
}

impl Drop for Sleepers {
    fn drop(&mut self) {
        if !self.helpers.is_empty() {
            if let Err(e) = self.stop_all() {
                eprintln!("bench sleepers: {e:#}");
            }
        }
    }
}
