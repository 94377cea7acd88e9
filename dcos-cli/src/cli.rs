//! The command-line grammar of `dcos`.

use clap::{Args, Parser, Subcommand};
use std::net::IpAddr;
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "dcos",
    version,
    about = "Operate a dcos fleet: certificates, processes across hosts, a local demo."
)]
pub struct Cli {
    #[command(flatten)]
    pub tls: TlsArgs,
    #[command(flatten)]
    pub fleet: FleetArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// The operator's identity (SPEC section 2).
#[derive(Debug, Clone, Args)]
pub struct TlsArgs {
    /// Your certificate (PEM).
    #[arg(long, global = true, env = "DCOS_CERT")]
    pub cert: Option<PathBuf>,
    /// Its private key (PEM).
    #[arg(long, global = true, env = "DCOS_KEY")]
    pub key: Option<PathBuf>,
    /// The fleet CA certificate (PEM).
    #[arg(long, global = true, env = "DCOS_CA")]
    pub ca: Option<PathBuf>,
}

/// Which hosts to ask and how to answer (SPEC section 6).
#[derive(Debug, Clone, Args)]
pub struct FleetArgs {
    /// Inventory file (TOML: [[host]] with name, dc, labels, k2i, api).
    #[arg(long, global = true, env = "DCOS_INVENTORY")]
    pub inventory: Option<PathBuf>,
    /// A middlecon to ask for the fleet's members.
    #[arg(long, global = true, env = "DCOS_SEED")]
    pub seed: Option<String>,
    /// k2i addresses, comma-separated (default port 7440).
    #[arg(long, global = true, env = "DCOS_HOSTS")]
    pub hosts: Option<String>,
    /// Only hosts of this datacenter.
    #[arg(long, global = true)]
    pub dc: Option<String>,
    /// Only hosts with this label, K=V (repeat: all must match).
    #[arg(long = "label", global = true, value_name = "K=V")]
    pub labels: Vec<String>,
    /// Per-host deadline, e.g. 3s, 500ms.
    #[arg(long, global = true, default_value = "3s", value_parser = parse_duration)]
    pub timeout: std::time::Duration,
    /// Output format.
    #[arg(short = 'o', long = "output", global = true, value_enum, default_value_t = Format::Table)]
    pub output: Format,
}

/// How results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Aligned columns, human units.
    Table,
    /// More columns, nothing cut.
    Wide,
    /// One document: {"hosts": [...], "<items>": [...]}.
    Json,
    /// One JSON object a line, streamed as hosts answer.
    Ndjson,
}

/// Parses `3s`, `500ms`, `1m`.
pub fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    let d =
        humantime::parse_duration(s).map_err(|e| format!("{s:?} is not a duration like 3s or 500ms: {e}"))?;
    if d.is_zero() {
        return Err("must be more than zero".into());
    }
    Ok(d)
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Fleet members: name, dc, state, address, load, version.
    Hosts,
    /// One process table across the fleet, a HOST column first.
    Ps(PsArgs),
    /// Per-host summaries and the fleet's top processes, refreshing.
    Top(TopArgs),
    /// Containers across the fleet.
    Containers,
    /// Kernel parameters across the fleet.
    #[command(subcommand)]
    Sysctl(SysctlCommand),
    /// Print a shell completion script.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff).
    Man,
    /// Create the fleet CA and issue certificates.
    #[command(subcommand)]
    Certs(CertsCommand),
    /// Create bearer tokens for dashboards.
    #[command(subcommand)]
    Tokens(TokensCommand),
    /// Start a small local fleet with its own throwaway CA, and show it.
    Demo(DemoArgs),
    /// Call SERVICE on HOST through a middlecon's gRPC API; prints the reply.
    Call(CallArgs),
    /// Ask every host serving SERVICE (scatter-gather); prints each reply as it comes.
    Query(QueryArgs),
}

/// `dcos query SERVICE [DATA]`; `--dc` and `--label` choose the hosts asked, `--timeout`
/// is the deadline.
#[derive(Debug, Clone, Args)]
pub struct QueryArgs {
    /// The service, e.g. dcos.ping.
    pub service: String,
    /// The request payload (text).
    pub data: Option<String>,
    /// A middlecon gRPC API address, IP[:PORT] (default port 7442) [default: --seed, else
    /// the first inventory host with an `api`].
    #[arg(long, env = "DCOS_API")]
    pub api: Option<String>,
    /// Stop after this many replies.
    #[arg(long)]
    pub max_replies: Option<u32>,
    /// Stop collecting after this long (at most --timeout), e.g. 500ms.
    #[arg(long, value_parser = parse_duration)]
    pub max_wait: Option<std::time::Duration>,
    /// Stop when no reply came for this long, e.g. 200ms.
    #[arg(long, value_parser = parse_duration)]
    pub stall: Option<std::time::Duration>,
}

/// `dcos call HOST SERVICE [DATA]`.
#[derive(Debug, Clone, Args)]
pub struct CallArgs {
    /// The host that should answer (its middlecon name).
    pub host: String,
    /// The service, e.g. dcos.ping.
    pub service: String,
    /// The request payload (text).
    pub data: Option<String>,
    /// A middlecon gRPC API address, IP[:PORT] (default port 7442) [default: HOST's `api`
    /// in the inventory].
    #[arg(long, env = "DCOS_API")]
    pub api: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum CertsCommand {
    /// Write ca.crt, ca.key, admin.crt and admin.key into DIR.
    Init {
        #[arg(long)]
        dir: PathBuf,
    },
    /// Write NAME.crt and NAME.key into DIR, signed by the CA there.
    Issue {
        #[arg(long)]
        dir: PathBuf,
        #[arg(long)]
        name: String,
        /// host, admin or viewer.
        #[arg(long, default_value = "host")]
        role: dcos_core::Role,
        /// An IP address the certificate is valid for (repeat).
        #[arg(long)]
        ip: Vec<IpAddr>,
        /// A DNS name the certificate is valid for (repeat).
        #[arg(long)]
        dns: Vec<String>,
        /// Days of validity.
        #[arg(long, default_value_t = 365)]
        days: u32,
    },
}

#[derive(Debug, Subcommand)]
pub enum TokensCommand {
    /// Print a new token once and append its hash to FILE (give FILE to k2i --tokens).
    New {
        #[arg(long)]
        file: PathBuf,
        /// viewer, host or admin.
        #[arg(long, default_value = "viewer")]
        role: dcos_core::Role,
        /// Who or what holds it (shown in audit logs).
        #[arg(long, default_value = "")]
        name: String,
    },
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Number of local hosts.
    #[arg(long, default_value_t = 3)]
    pub size: u8,
    /// Keep the fleet running until Ctrl-C instead of stopping after showing it.
    #[arg(long)]
    pub keep: bool,
    /// Directory for the demo's CA and logs [default: a temporary directory].
    #[arg(long)]
    pub dir: Option<PathBuf>,
}

#[derive(Debug, Clone, Args)]
pub struct PsArgs {
    /// Only processes of this user (name or uid).
    #[arg(long)]
    pub user: Option<String>,
    /// Only processes whose command name or line contains this.
    #[arg(long)]
    pub cmd: Option<String>,
    /// Only processes of this container (id prefix), or `none`.
    #[arg(long)]
    pub container: Option<String>,
    /// Sort by a field, `-` for descending (e.g. -cpu, rss, user).
    #[arg(long, allow_hyphen_values = true)]
    pub sort: Option<String>,
    /// At most this many rows, fleet-wide.
    #[arg(long)]
    pub limit: Option<usize>,
    /// Filter expression, e.g. 'cpu > 5 and user == "www"'.
    #[arg(short = 'q', long = "query")]
    pub q: Option<String>,
    /// Sum CPU, memory and counts per host, dc, user, cmd or container.
    #[arg(long, value_enum)]
    pub group_by: Option<GroupBy>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum GroupBy {
    Host,
    Dc,
    User,
    Cmd,
    Container,
}

#[derive(Debug, Clone, Args)]
pub struct TopArgs {
    /// Print one frame as text and exit.
    #[arg(long)]
    pub once: bool,
    /// Time between refreshes.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    pub interval: std::time::Duration,
    /// How many of the fleet's top processes to show.
    #[arg(long, default_value_t = 20)]
    pub limit: usize,
    /// Sort the processes by this field (default -cpu).
    #[arg(long, default_value = "-cpu", allow_hyphen_values = true)]
    pub sort: String,
}

#[derive(Debug, Subcommand)]
pub enum SysctlCommand {
    /// Read KEY on every host.
    Get {
        #[arg(value_name = "KEY")]
        name: String,
    },
    /// Write KEY=VALUE on one host (admin only; the key must be allow-listed there).
    Set {
        #[arg(value_name = "KEY=VALUE")]
        assignment: String,
        /// The host to change (its name or address).
        #[arg(long)]
        host: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_grammar_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn global_fleet_options_work_after_the_subcommand() {
        let cli = Cli::try_parse_from([
            "dcos",
            "ps",
            "--hosts",
            "a,b",
            "-o",
            "json",
            "--timeout",
            "1s",
            "--sort",
            "-cpu",
        ])
        .unwrap();
        assert_eq!(cli.fleet.hosts.as_deref(), Some("a,b"));
        assert_eq!(cli.fleet.output, Format::Json);
        assert_eq!(cli.fleet.timeout, std::time::Duration::from_secs(1));
        assert!(Cli::try_parse_from(["dcos", "ps", "--timeout", "0s"]).is_err());
        // Every subcommand's own flags parse alongside the global ones.
        for argv in [
            &["dcos", "demo", "--size", "2", "--hosts", "x"][..],
            &["dcos", "tokens", "new", "--file", "f", "--name", "n", "--label", "a=b"][..],
            &["dcos", "sysctl", "get", "vm.swappiness", "--key", "k.pem"][..],
            &["dcos", "top", "--once", "--sort", "-rss", "--limit", "3"][..],
            &["dcos", "query", "dcos.ping", "--max-replies", "2", "--stall", "200ms", "--dc", "eu"][..],
        ] {
            Cli::try_parse_from(argv).unwrap_or_else(|e| panic!("{argv:?}: {e}"));
        }
    }
}
