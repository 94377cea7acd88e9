//! The init of a fleet host ([`dcos_tests::netns::Fleet::boot`]): pid 1 of the host's PID
//! namespace. It reaps every process reparented to it (daemons' orphans, containers whose
//! runtime exited) and exits on SIGTERM or SIGINT, which ends the namespace. It starts
//! nothing itself.
//!
//! Signals are blocked and taken with `sigwait`, so it sleeps while nothing happens and no
//! signal is lost between a reap and the next wait (and pid 1 only receives signals it
//! handles or blocks). It prints `ready` once they are blocked.

#![forbid(unsafe_code)]

use nix::errno::Errno;
use nix::sys::signal::{SigSet, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use std::io::Write;

fn main() {
    let mut signals = SigSet::empty();
    for s in [Signal::SIGCHLD, Signal::SIGTERM, Signal::SIGINT] {
        signals.add(s);
    }
    if let Err(e) = signals.thread_block() {
        eprintln!("host-init: blocking signals: {e}");
        std::process::exit(1);
    }
    let mut out = std::io::stdout();
    let _ = writeln!(out, "ready").and_then(|()| out.flush());
    loop {
        reap_all();
        match signals.wait() {
            Ok(Signal::SIGTERM | Signal::SIGINT) => std::process::exit(0),
            Ok(_) => {}
            Err(e) => {
                eprintln!("host-init: sigwait: {e}");
                std::process::exit(1);
            }
        }
    }
}

/// Reaps every child that has ended (SIGCHLDs coalesce: one may stand for many).
fn reap_all() {
    loop {
        match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) | Err(Errno::ECHILD) => return,
            Ok(_) | Err(Errno::EINTR) => {}
            Err(e) => {
                eprintln!("host-init: waitpid: {e}");
                return;
            }
        }
    }
}
