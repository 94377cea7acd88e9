//! The middlecon daemon: parse and validate settings (exit 2 on a bad one, before binding),
//! bind the peer UDP port and the API, announce `middlecon NAME listening on quic://ADDR
//! api ADDR` as the first stdout line, serve until SIGTERM or SIGINT.

use clap::Parser;
use middlecon::config::{Config, Settings};
use std::process::ExitCode;

fn main() -> ExitCode {
    let flags = Settings::parse();
    dcos_core::daemon::init_logging();
    let config = match Config::from_flags(flags) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("middlecon: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match dcos_core::daemon::runtime() {
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
