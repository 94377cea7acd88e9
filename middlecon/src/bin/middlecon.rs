//! The middlecon daemon: parse and validate settings (exit 2 on a bad one, before binding),
//! bind the peer UDP port and the API, announce `middlecon NAME listening on quic://ADDR
//! api ADDR` as the first stdout line, serve until SIGTERM or SIGINT; reload the TLS files
//! on SIGHUP and when they change.
//!
//! `middlecon purge` instead removes what a stopped daemon left on the machine.

use clap::Parser;
use middlecon::config::{Config, Settings};
use std::path::PathBuf;
use std::process::ExitCode;

/// middlecon runs on one thread (tokio's current-thread scheduler): a call's every step
/// (the socket read, QUIC, the reply) then runs where the event arrived, without waking a
/// second worker, which costs more CPU per call than it saves on two cores. Its blocking
/// work (archives, root filesystems, records) goes to tokio's blocking threads.
/// `DCOS_WORKER_THREADS` overrides it for measuring.
const WORKERS: usize = 0;

/// `middlecon purge`: what `--state-dir` and `--name` of a daemon that is gone for good left
/// on this machine, removed.
#[derive(Debug, Parser)]
#[command(
    name = "middlecon purge",
    bin_name = "middlecon purge",
    version,
    about = "Removes what a stopped middlecon left on this machine: its workloads' containers (killed), \
             cgroups, root filesystem overlays and workload directories. Run it only when that \
             middlecon is stopped for good (a decommissioned host, a test or demo fleet)."
)]
struct Purge {
    /// The stopped daemon's state dir.
    #[arg(long, default_value = "/var/lib/middlecon")]
    state_dir: PathBuf,
    /// The stopped daemon's host name (its cgroups are named after it) [default: the hostname].
    #[arg(long)]
    name: Option<String>,
}

/// Runs `middlecon purge`: exit 0 when nothing is left, 1 when something stays (named).
fn purge(args: Purge) -> ExitCode {
    let name = match dcos_core::settings::name(args.name) {
        Ok(n) => n,
        Err(e) => {
            eprintln!("middlecon purge: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match dcos_core::daemon::runtime(WORKERS) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("middlecon purge: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let left = runtime.block_on(middlecon::workloads::purge(&name, &args.state_dir, "runc"));
    for what in &left {
        eprintln!("middlecon purge: left in place: {what}");
    }
    if left.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn main() -> ExitCode {
    if std::env::args_os().nth(1).is_some_and(|a| a == "purge") {
        return purge(Purge::parse_from(std::env::args_os().skip(1)));
    }
    let flags = Settings::parse();
    dcos_core::daemon::init_logging();
    let config = match Config::from_flags(flags) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("middlecon: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match dcos_core::daemon::runtime(WORKERS) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("middlecon: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        // Signal handlers go in before the address is announced: whoever starts middlecon
        // may stop it as soon as it has read that line.
        let shutdown = match dcos_core::daemon::shutdown_signal() {
            Ok(s) => s,
            Err(e) => {
                eprintln!("middlecon: cannot install signal handlers: {e}");
                return ExitCode::FAILURE;
            }
        };
        if let Err(e) = dcos_core::reload::watch(config.identity.clone()) {
            eprintln!("middlecon: cannot install the SIGHUP handler: {e}");
            return ExitCode::FAILURE;
        }
        let endpoint = match middlecon::peer::endpoint(&config.identity, config.listen) {
            Ok(e) => e,
            Err(e) => {
                eprintln!("middlecon: {e}");
                return ExitCode::FAILURE;
            }
        };
        let api = match middlecon::api::Listeners::bind(config.api, &config.socket).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!("middlecon: {e}");
                return ExitCode::FAILURE;
            }
        };
        let workloads =
            match middlecon::workloads::Workloads::open(&config.name, &config.state_dir, &config.runtime)
                .await
            {
                Ok(w) => w,
                Err(e) => {
                    eprintln!("middlecon: state-dir {}: {e}", config.state_dir.display());
                    return ExitCode::FAILURE;
                }
            };
        let addr = endpoint.local_addr().map(|a| a.to_string()).unwrap_or_default();
        let api_addr = api.tcp.local_addr().map(|a| a.to_string()).unwrap_or_default();
        println!("middlecon {} listening on quic://{addr} api {api_addr}", config.name);
        tracing::info!(name = %config.name, dc = %config.dc, %addr, "middlecon ready");
        middlecon::run(config, endpoint, Some(api), Some(workloads), shutdown).await;
        tracing::info!("middlecon stopped");
        ExitCode::SUCCESS
    })
}
