//! `dcos`: thin entry point; the commands live in the `dcos_cli` library.

use clap::CommandFactory;
use dcos_cli::cli::{Cli, Command, FleetArgs, SysctlCommand, TlsArgs};
use dcos_cli::commands::{self, Context};
use dcos_cli::exit;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = match Cli::try_parse_settled(std::env::args_os()) {
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
    let Cli { tls, fleet, command } = cli;
    let status = match command {
        Command::Certs(c) => report(dcos_cli::certs::run(c)),
        Command::Tokens(c) => report(dcos_cli::certs::run_tokens(c)),
        Command::Demo(args) => report(runtime(false).and_then(|rt| rt.block_on(dcos_cli::demo::run(args)))),
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "dcos", &mut std::io::stdout());
            exit::OK
        }
        Command::Man => report(
            clap_mangen::Man::new(Cli::command()).render(&mut std::io::stdout()).map_err(anyhow::Error::from),
        ),
        other => match runtime(talks_to_one_daemon(&other)) {
            Ok(rt) => rt.block_on(run_online(&tls, &fleet, other)),
            Err(e) => report(Err(e)),
        },
    };
    ExitCode::from(status)
}

/// Runs a command that talks to middlecon or to the fleet's k2i.
async fn run_online(tls: &TlsArgs, fleet: &FleetArgs, command: Command) -> u8 {
    let workload = match &command {
        Command::Call(args) => return commands::call::run(tls, fleet, args).await,
        Command::Query(args) => return commands::query::run(tls, fleet, args).await,
        Command::Run(args) => commands::run::run(tls, fleet, args).await,
        Command::Workloads(args) => commands::workloads::run(tls, fleet, args).await,
        Command::Stop(args) => commands::stop::run(tls, fleet, args).await,
        Command::Migrate(args) => commands::migrate::run(tls, fleet, args).await,
        Command::Evacuate(args) => commands::evacuate::run(tls, fleet, args).await,
        Command::Service(c) => commands::service::run(tls, fleet, c).await,
        Command::Ui(args) => dcos_cli::ui::run(tls, fleet, args).await,
        _ => return run_fleet(tls, fleet, &command).await,
    };
    workload.unwrap_or_else(|e| {
        eprintln!("dcos: {e}");
        e.exit_status()
    })
}

/// Runs a fleet command: each selected host's k2i, or `dcos hosts --seed`'s member list.
async fn run_fleet(tls: &TlsArgs, fleet: &FleetArgs, command: &Command) -> u8 {
    let result = async {
        // `dcos hosts --seed` lists membership's view; other fleet commands ask each k2i.
        if let (Command::Hosts(args), Some(seed), None, None) =
            (command, &fleet.seed, &fleet.inventory, &fleet.hosts)
        {
            return commands::hosts::run_seed(tls, fleet, seed, args).await;
        }
        let ctx = Context::new(tls, fleet).await?;
        match command {
            Command::Hosts(args) => commands::hosts::run(&ctx, tls, args).await,
            Command::Ps(args) => commands::ps::run(&ctx, args).await,
            Command::Top(args) => commands::top::run(&ctx, args).await,
            Command::Containers => commands::containers::run(&ctx).await,
            Command::Sysctl(SysctlCommand::Get { name }) => commands::sysctl::get(&ctx, name).await,
            Command::Sysctl(SysctlCommand::Set { assignment, host }) => {
                commands::sysctl::set(&ctx, assignment, host).await
            }
            _ => unreachable!("not a fleet command"),
        }
    };
    result.await.unwrap_or_else(|e| {
        eprintln!("dcos: {e}");
        e.exit_status()
    })
}

fn report(result: anyhow::Result<()>) -> u8 {
    match result {
        Ok(()) => exit::OK,
        Err(e) => {
            eprintln!("dcos: {e:#}");
            exit::FAILED
        }
    }
}

/// Commands that make one call to one daemon: a runtime on this thread starts faster and
/// hands no I/O between threads; the fleet-wide ones get a thread per core.
fn talks_to_one_daemon(command: &Command) -> bool {
    matches!(command, Command::Call(_) | Command::Run(_) | Command::Stop(_) | Command::Migrate(_))
}

fn runtime(one_thread: bool) -> anyhow::Result<tokio::runtime::Runtime> {
    let mut builder = if one_thread {
        tokio::runtime::Builder::new_current_thread()
    } else {
        tokio::runtime::Builder::new_multi_thread()
    };
    Ok(builder.enable_all().build()?)
}
