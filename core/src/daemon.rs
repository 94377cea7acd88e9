//! What every dcos daemon's `main` does before its own work: logging to stderr, a small
//! tokio runtime, and SIGTERM/SIGINT handling installed before the daemon announces itself
//! (whoever starts it may stop it as soon as it has read that line). Feature `daemon`.

use std::future::Future;

/// Logs to stderr, filtered by `RUST_LOG` (default `info`).
pub fn init_logging() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
}

/// A daemon's runtime, timers and I/O: `workers` tokio worker threads, or with 0 one thread
/// for everything (tokio's current-thread scheduler), unless `DCOS_WORKER_THREADS` says
/// otherwise (for measuring).
pub fn runtime(workers: usize) -> std::io::Result<tokio::runtime::Runtime> {
    let workers =
        std::env::var("DCOS_WORKER_THREADS").ok().and_then(|v| v.parse::<usize>().ok()).unwrap_or(workers);
    match workers {
        0 => tokio::runtime::Builder::new_current_thread().enable_all().build(),
        n => tokio::runtime::Builder::new_multi_thread().worker_threads(n).enable_all().build(),
    }
}

/// Resolves on SIGTERM or SIGINT; the handlers are installed when this is called. Call it
/// inside the runtime.
pub fn shutdown_signal() -> std::io::Result<impl Future<Output = ()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    })
}
