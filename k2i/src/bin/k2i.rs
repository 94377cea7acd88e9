//! The k2i daemon: parse and validate settings (exit 2 on a bad one, before binding), bind,
//! announce the address on stdout, serve until SIGTERM or SIGINT; reload the TLS files on
//! SIGHUP and when they change.

use clap::Parser;
use k2i::config::{Config, Settings};
use std::process::ExitCode;

fn main() -> ExitCode {
    tune_allocator();
    let flags = Settings::parse();
    dcos_core::daemon::init_logging();
    let config = match Config::from_flags(flags) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("k2i: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match dcos_core::daemon::runtime(2) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("k2i: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        // Signal handlers go in before the address is announced: whoever starts k2i may
        // stop it as soon as it has read that line.
        let shutdown = match dcos_core::daemon::shutdown_signal() {
            Ok(s) => s,
            Err(e) => {
                eprintln!("k2i: cannot install signal handlers: {e}");
                return ExitCode::FAILURE;
            }
        };
        if let Err(e) = dcos_core::reload::watch(config.identity.clone()) {
            eprintln!("k2i: cannot install the SIGHUP handler: {e}");
            return ExitCode::FAILURE;
        }
        let listener = match tokio::net::TcpListener::bind(config.listen).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!("k2i: cannot listen on {}: {e}", config.listen);
                return ExitCode::FAILURE;
            }
        };
        let addr = listener.local_addr().map(|a| a.to_string()).unwrap_or_default();
        println!("k2i {} listening on https://{addr}", config.name);
        tracing::info!(name = %config.name, dc = %config.dc, %addr, "k2i ready");
        match k2i::run(config, listener, Some(release_memory), shutdown).await {
            Ok(()) => {
                tracing::info!("k2i stopped");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("k2i: {e:#}");
                ExitCode::FAILURE
            }
        }
    })
}

/// glibc grows one malloc arena per thread and, after a large block is freed, raises its
/// mmap threshold so the next large blocks come from (and stay in) the heap: a daemon that
/// once answered a large table would keep that memory. Two arenas and a fixed 128 KiB mmap
/// threshold keep k2i small; large response buffers go back to the system when freed.
fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets allocator parameters; it runs before any other thread
    // exists, and the values are in the documented ranges.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 256 * 1024);
    }
}

/// Gives the free memory of every glibc heap back to the system, the pages in the middle of
/// a heap too (k2i calls it once a burst of connections has closed).
fn release_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free pages to the kernel; it takes the allocator's
    // own locks and is safe to call from any thread at any time.
    unsafe {
        libc::malloc_trim(0);
    }
}
