//! `dcos`: thin entry point; the commands live in the `dcos_cli` library.

use clap::Parser;
use dcos_cli::cli::{Cli, Command};
use dcos_cli::exit;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let usage = e.use_stderr();
            let _ = e.print();
            return ExitCode::from(if usage { exit::USAGE } else { exit::OK });
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("DCOS_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let result = match cli.command {
        Command::Certs(c) => dcos_cli::certs::run(c),
        Command::Tokens(c) => dcos_cli::certs::run_tokens(c),
        Command::Demo(args) => runtime().and_then(|rt| rt.block_on(dcos_cli::demo::run(args))),
    };
    match result {
        Ok(()) => ExitCode::from(exit::OK),
        Err(e) => {
            eprintln!("dcos: {e:#}");
            ExitCode::from(exit::FAILED)
        }
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread().enable_all().build()?)
}
