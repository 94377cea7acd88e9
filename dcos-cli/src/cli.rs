//! The command-line grammar of `dcos`.

use clap::parser::ValueSource;
use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};
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

impl Cli {
    /// Parses `argv` as [`Parser::try_parse_from`] does, then settles `--api` against
    /// `--socket`: the one given on the command line wins over the other from the
    /// environment (`DCOS_API`, `DCOS_SOCKET`), so an exported `DCOS_API` does not stand in
    /// the way of `--socket`. Both on the command line, or both from the environment only,
    /// is bad usage. On `service create`, `--hosts` names the service's hosts, given on the
    /// command line only (see [`ServiceCreateArgs::hosts`]).
    pub fn try_parse_settled<I, T>(argv: I) -> Result<Cli, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        let matches = Cli::command().try_get_matches_from(argv)?;
        let mut cli = Cli::from_arg_matches(&matches)?;
        // The matches of the subcommand that runs (`service create`'s, not `service`'s).
        let mut sub = &matches;
        while let Some((_, deeper)) = sub.subcommand() {
            sub = deeper;
        }
        if let Command::Service(ServiceCommand::Create(create)) = &mut cli.command {
            // Its own --hosts shadows the global one (see `ServiceCreateArgs::hosts`), but
            // clap hands a global's value to every level under the same id, so DCOS_HOSTS
            // (k2i addresses) would arrive as the service's hosts: only the command line
            // names them. And the service's host names are no k2i addresses.
            if sub.value_source("hosts") == Some(ValueSource::EnvVariable) {
                create.hosts = None;
            }
            cli.fleet.hosts = None;
        }
        let Some(api) = cli.command.api_args_mut() else {
            return Ok(cli);
        };
        if api.api.is_some() && api.socket.is_some() {
            let from_env = |id: &str| sub.value_source(id) == Some(ValueSource::EnvVariable);
            match (from_env("api"), from_env("socket")) {
                (true, false) => api.api = None,
                (false, true) => api.socket = None,
                _ => {
                    return Err(Cli::command().error(
                        clap::error::ErrorKind::ArgumentConflict,
                        "--api (DCOS_API) and --socket (DCOS_SOCKET) name two middlecons: give one",
                    ))
                }
            }
        }
        Ok(cli)
    }
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
    /// ps, top, containers with --seed: ask each datacenter's hosts through one of its
    /// middlecons (auto: when the hosts span more than one datacenter).
    #[arg(long, global = true, value_enum, default_value_t = crate::relay::RelayMode::Auto)]
    pub relay: crate::relay::RelayMode,
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

/// The subcommands. Each one's arguments are built only when it is the one parsed
/// (`defer`): building all of them cost every `dcos` run time and page faults
/// (docs/benchmarks.md).
/// A deferred subcommand's `Args` struct would put its doc comment over the variant's as
/// the subcommand's description, so those structs carry plain comments.
#[derive(Debug, Subcommand)]
#[command(defer = true)]
pub enum Command {
    /// Fleet members: name, dc, state, address, load, version.
    Hosts(HostsArgs),
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
        /// The shell to complete for.
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
    /// Run an OCI workload on a host (needs the admin role).
    Run(RunArgs),
    /// Workloads across the fleet (every selected host's middlecon).
    Workloads(WorkloadsArgs),
    /// Stop a workload (found across the fleet unless --host is given).
    Stop(StopArgs),
    /// Move a workload to another host, showing its progress.
    Migrate(MigrateArgs),
    /// Move every workload off HOST to peers chosen by their load.
    Evacuate(EvacuateArgs),
    /// Services: containers started by a request, stopped when idle, scaled and renewed.
    #[command(subcommand)]
    Service(ServiceCommand),
    /// A web page of the fleet, served on this machine with your identity (no server in the fleet).
    Ui(UiArgs),
}

impl Command {
    /// The middlecon API options of a command that talks to middlecon.
    pub fn api_args_mut(&mut self) -> Option<&mut ApiArgs> {
        match self {
            Command::Call(a) => Some(&mut a.api),
            Command::Query(a) => Some(&mut a.api),
            Command::Run(a) => Some(&mut a.api),
            Command::Workloads(a) => Some(&mut a.api),
            Command::Stop(a) => Some(&mut a.api),
            Command::Migrate(a) => Some(&mut a.moving.api),
            Command::Evacuate(a) => Some(&mut a.moving.api),
            Command::Service(ServiceCommand::Create(a)) => Some(&mut a.api),
            Command::Service(ServiceCommand::Ls(a)) => Some(&mut a.api),
            Command::Service(ServiceCommand::Show(a)) => Some(&mut a.api),
            Command::Service(ServiceCommand::Rm(a)) => Some(&mut a.api),
            _ => None,
        }
    }
}

// Where a middlecon's gRPC API is, when not found through `--seed` or the inventory.
#[derive(Debug, Clone, Args)]
pub struct ApiArgs {
    /// A middlecon gRPC API address, IP[:PORT] (default port 7442) [default: --seed, else
    /// the host's `api` in the inventory].
    #[arg(long, env = "DCOS_API")]
    pub api: Option<String>,
    /// The middlecon on this machine, through its Unix socket (its --socket, e.g.
    /// /run/middlecon/api.sock): no certificate needed, the socket's file mode decides.
    /// Given on the command line, it wins over DCOS_API (and --api over DCOS_SOCKET).
    #[arg(long, env = "DCOS_SOCKET")]
    pub socket: Option<PathBuf>,
}

// `dcos query SERVICE [DATA]`; `--dc` and `--label` choose the hosts asked, `--timeout`
// is the deadline.
#[derive(Debug, Clone, Args)]
pub struct QueryArgs {
    /// The service, e.g. dcos.ping.
    pub service: String,
    /// The request payload (text).
    pub data: Option<String>,
    #[command(flatten)]
    pub api: ApiArgs,
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

// `dcos call HOST SERVICE [DATA]`.
#[derive(Debug, Clone, Args)]
pub struct CallArgs {
    /// The host that should answer (its middlecon name).
    pub host: String,
    /// The service, e.g. dcos.ping.
    pub service: String,
    /// The request payload (text).
    pub data: Option<String>,
    #[command(flatten)]
    pub api: ApiArgs,
}

// `dcos run --host H --name N --rootfs DIR [...] -- CMD ARGS...`.
#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// The host to run it on (its middlecon name). With --socket it may be left out: the
    /// local host; if given, the local middlecon refuses the run unless it is that host.
    #[arg(long, required_unless_present = "socket")]
    pub host: Option<String>,
    /// The workload's name, unique on the host: [A-Za-z0-9][A-Za-z0-9_.-]{0,62}.
    #[arg(long, value_parser = parse_workload_name)]
    pub name: String,
    /// The root filesystem: a directory on that host (made absolute here).
    #[arg(long)]
    pub rootfs: PathBuf,
    #[command(flatten)]
    pub container: ContainerArgs,
    #[command(flatten)]
    pub api: ApiArgs,
    /// The command and its arguments, inside the rootfs (after `--`).
    #[arg(last = true, value_name = "CMD")]
    pub command: Vec<String>,
}

// What a container is given, by `run` and (each instance) by `service create`.
#[derive(Debug, Clone, Args)]
pub struct ContainerArgs {
    /// runc, crun, runsc (gVisor: the sandbox) or a path to an OCI runtime [default: the
    /// daemon's --runtime].
    #[arg(long)]
    pub runtime: Option<String>,
    /// Memory limit: bytes, or 64M, 1G, 512KiB, 2GB [default: none].
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub memory: Option<u64>,
    /// CPU limit in cores, e.g. 0.5 [default: none].
    #[arg(long, value_parser = parse_cpus)]
    pub cpus: Option<f64>,
    /// An environment variable K=V (repeat).
    #[arg(long = "env", value_name = "K=V", value_parser = parse_env)]
    pub env: Vec<(String, String)>,
}

// `dcos workloads`.
#[derive(Debug, Clone, Args)]
pub struct WorkloadsArgs {
    #[command(flatten)]
    pub api: ApiArgs,
}

// `dcos stop N [--host H]`.
#[derive(Debug, Clone, Args)]
pub struct StopArgs {
    /// The workload's name.
    #[arg(value_parser = parse_workload_name)]
    pub name: String,
    /// The host it runs on [default: the one selected host that has it].
    #[arg(long)]
    pub host: Option<String>,
    #[command(flatten)]
    pub api: ApiArgs,
}

/// How a workload moves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// Freeze, copy, start on the target, confirm, delete on the source.
    Cold,
    /// Checkpoint and restore with CRIU (where `criu check` passes on both hosts).
    Live,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Cold => "cold",
            Mode::Live => "live",
        }
    }
}

// What `migrate` and `evacuate` share.
#[derive(Debug, Clone, Args)]
pub struct MoveArgs {
    /// cold or live.
    #[arg(long, value_enum, default_value_t = Mode::Cold)]
    pub mode: Mode,
    /// Bandwidth limit in bytes per second: 10M, 10MB/s, 10MiB/s, 500000 [default: none].
    #[arg(long, value_name = "RATE", value_parser = parse_rate)]
    pub bwlimit: Option<u64>,
    #[command(flatten)]
    pub api: ApiArgs,
}

// `dcos migrate N --to HOST [--from H]`.
#[derive(Debug, Clone, Args)]
pub struct MigrateArgs {
    /// The workload's name.
    #[arg(value_parser = parse_workload_name)]
    pub name: String,
    /// The target host's name.
    #[arg(long)]
    pub to: String,
    /// The source host [default: the one selected host that has it].
    #[arg(long)]
    pub from: Option<String>,
    /// The runtime class to run it with on the target: runc, crun or runsc (gVisor, the
    /// sandbox) [default: the class it has].
    #[arg(long, value_name = "R")]
    pub runtime: Option<String>,
    #[command(flatten)]
    pub moving: MoveArgs,
}

// `dcos evacuate HOST`.
#[derive(Debug, Clone, Args)]
pub struct EvacuateArgs {
    /// The host to empty.
    pub host: String,
    /// How many migrations run at once [default: the host's, 2].
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub parallel: Option<u32>,
    /// Only these hosts may take workloads, comma-separated [default: every live member].
    #[arg(long, value_delimiter = ',', value_name = "HOST,...")]
    pub to: Vec<String>,
    #[command(flatten)]
    pub moving: MoveArgs,
}

/// `dcos service ...` (SPEC section 7).
#[derive(Debug, Subcommand)]
pub enum ServiceCommand {
    /// Define a service on its hosts and open its fronts (checked on every host first).
    Create(Box<ServiceCreateArgs>),
    /// Services across the fleet, their figures summed over the hosts that place them.
    Ls(ServiceLsArgs),
    /// One service's instances on every host, and each host's counters.
    Show(ServiceShowArgs),
    /// Close a service's fronts, drain and stop its instances, and forget it, on every host.
    Rm(ServiceRmArgs),
}

// `dcos service create NAME --rootfs DIR --port PORT [...] -- CMD ARGS...`.
#[derive(Debug, Clone, Args)]
pub struct ServiceCreateArgs {
    /// The service's name, unique on each host: [A-Za-z0-9][A-Za-z0-9_-]{0,39}.
    pub name: String,
    /// The image of every instance: a directory on each host (made absolute here).
    #[arg(long)]
    pub rootfs: PathBuf,
    /// The front's TCP port on each host.
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..))]
    pub port: u16,
    /// The hosts to place it on, by their middlecon names, comma-separated [default: the
    /// selected fleet: --seed's members, the inventory, --api or --socket, narrowed by --dc
    /// and --label]. Here --hosts names hosts, not k2i addresses (and DCOS_HOSTS is not read).
    // The same id as the global `--hosts`: clap then leaves the global out of this
    // subcommand, so the option is this one's alone (`Cli::try_parse_settled` settles the
    // rest).
    #[arg(long = "hosts", id = "hosts", value_name = "H,...")]
    pub hosts: Option<String>,
    // Each instance's runtime, limits and environment (PORT is middlecon's to set).
    #[command(flatten)]
    pub container: ContainerArgs,
    /// Instances per host kept even when idle.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub min: u32,
    /// Instances per host at most.
    #[arg(long, value_name = "N", default_value_t = 4)]
    pub max: u32,
    /// Stop an instance after this long without a connection, down to --min (0: never).
    #[arg(long, value_name = "D", default_value = "60s", value_parser = parse_duration_or_zero)]
    pub idle_stop: std::time::Duration,
    /// Open connections per ready instance above which a host starts another.
    #[arg(long, value_name = "N", default_value_t = 10)]
    pub target_inflight: u32,
    /// Renew an instance older than this (0: never) [default: never].
    #[arg(long, value_name = "D", value_parser = parse_duration_or_zero)]
    pub max_age: Option<std::time::Duration>,
    /// Renew an instance after this many connections (0: never).
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub max_requests: u64,
    /// How long a renewed or removed instance may finish its open connections.
    #[arg(long, value_name = "D", default_value = "30s", value_parser = parse_duration_or_zero)]
    pub drain: std::time::Duration,
    /// Keep one started, idle instance for the next cold start.
    #[arg(long)]
    pub prestart: bool,
    /// How long a held connection waits for an instance to accept before it is closed.
    #[arg(long, value_name = "D", default_value = "10s", value_parser = parse_duration)]
    pub start_timeout: std::time::Duration,
    #[command(flatten)]
    pub api: ApiArgs,
    /// The instance's command and its arguments, inside the rootfs (after `--`); it gets
    /// PORT, the loopback port to listen on, in its environment.
    #[arg(last = true, value_name = "CMD")]
    pub command: Vec<String>,
}

// `dcos service ls`.
#[derive(Debug, Clone, Args)]
pub struct ServiceLsArgs {
    #[command(flatten)]
    pub api: ApiArgs,
}

// `dcos service show NAME`.
#[derive(Debug, Clone, Args)]
pub struct ServiceShowArgs {
    /// The service's name.
    pub name: String,
    #[command(flatten)]
    pub api: ApiArgs,
}

// `dcos service rm NAME [--drain D]`.
#[derive(Debug, Clone, Args)]
pub struct ServiceRmArgs {
    /// The service's name.
    pub name: String,
    /// How long open connections may finish before they are cut [default: the service's
    /// --drain].
    #[arg(long, value_name = "D", value_parser = parse_duration)]
    pub drain: Option<std::time::Duration>,
    #[command(flatten)]
    pub api: ApiArgs,
}

/// A duration as [`parse_duration`] takes it, or `0`.
pub fn parse_duration_or_zero(s: &str) -> Result<std::time::Duration, String> {
    if s.trim() == "0" {
        return Ok(std::time::Duration::ZERO);
    }
    humantime::parse_duration(s).map_err(|e| format!("{s:?} is not a duration like 60s, 500ms or 0: {e}"))
}

/// A workload name as SPEC section 5 allows it.
pub fn parse_workload_name(s: &str) -> Result<String, String> {
    dcos_core::names::check_workload_name(s).map(|()| s.to_string())
}

/// A size in bytes: `4096`, `512B`, `64M`, `1.5G`, `512KiB` (powers of 1024), `2GB` (of 1000).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let text = s.trim();
    let split = text.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(text.len());
    let (number, suffix) = text.split_at(split);
    let bad = || format!("{s:?} is not a size like 4096, 64M, 1G or 2GB");
    let value: f64 = number.parse().map_err(|_| bad())?;
    let factor = if suffix.eq_ignore_ascii_case("b") {
        1.0
    } else {
        dcos_query::size_multiplier(suffix).ok_or_else(bad)?
    };
    if factor == 1.0 && value.fract() != 0.0 {
        return Err(format!("{s:?}: a number of bytes is whole"));
    }
    let bytes = (value * factor).round();
    if !bytes.is_finite() || bytes >= u64::MAX as f64 {
        return Err(format!("{s:?} is too large"));
    }
    Ok(bytes as u64)
}

/// A rate in bytes per second: a size, optionally followed by `/s` (`10M`, `10MB/s`, `10MiB/s`).
pub fn parse_rate(s: &str) -> Result<u64, String> {
    let text = s.trim();
    let size = text.strip_suffix("/s").or_else(|| text.strip_suffix("/S")).unwrap_or(text);
    parse_size(size)
        .map_err(|_| format!("{s:?} is not a rate like 10M, 10MB/s or 10MiB/s (bytes per second)"))
}

/// CPU cores: a number, 0 or more.
pub fn parse_cpus(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.0 => Ok(v),
        _ => Err(format!("{s:?} is not a number of cores like 0.5 or 2")),
    }
}

/// An environment variable `K=V`: K is not empty and has no `=`, NUL or white space.
pub fn parse_env(s: &str) -> Result<(String, String), String> {
    let (k, v) = s.split_once('=').ok_or_else(|| format!("{s:?} is not K=V"))?;
    if k.is_empty() || k.contains(|c: char| c == '\0' || c.is_whitespace()) {
        return Err(format!("{k:?} is not a variable name"));
    }
    if v.contains('\0') {
        return Err(format!("the value of {k} has a NUL byte"));
    }
    Ok((k.to_string(), v.to_string()))
}

#[derive(Debug, Subcommand)]
pub enum CertsCommand {
    /// Write ca.crt, ca.key, admin.crt and admin.key into DIR.
    Init {
        /// The directory to write them into: created if missing, refused if it holds a ca.key.
        #[arg(long)]
        dir: PathBuf,
    },
    /// Write NAME.crt and NAME.key into DIR, signed by the CA there.
    Issue {
        /// The CA's directory (`dcos certs init --dir`): ca.crt and ca.key are read there.
        #[arg(long)]
        dir: PathBuf,
        /// Who the certificate is for: a host's name (as its daemons' --name) or a person's.
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
    /// Revoke a certificate: add its serial to DIR/crl.pem, signed by the CA there. Daemons
    /// whose --ca is in DIR (or whose --crl names the file) refuse it at the next handshake.
    #[command(group(clap::ArgGroup::new("which").required(true).args(["serial", "cert"])))]
    Revoke {
        /// The CA's directory (`dcos certs init --dir`): ca.crt and ca.key are read there.
        #[arg(long)]
        dir: PathBuf,
        /// The serial number, in hex (as `openssl x509 -serial` prints it).
        #[arg(long)]
        serial: Option<String>,
        /// The certificate to revoke (PEM).
        #[arg(value_name = "CERT.pem")]
        cert: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum TokensCommand {
    /// Print a new token once and append its hash to FILE (give FILE to k2i --tokens).
    New {
        /// The token file (one hash per line), created if missing.
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

// `dcos ui [--listen ADDR]`: the fleet in a browser, on the operator's own machine.
#[derive(Debug, Clone, Args)]
pub struct UiArgs {
    /// Where the page is served; keep it on a loopback address.
    #[arg(long, default_value = "127.0.0.1:7450")]
    pub listen: std::net::SocketAddr,
    /// How many of the fleet's top processes the page shows.
    #[arg(long, default_value_t = 30)]
    pub top: usize,
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
pub struct HostsArgs {
    /// Warn about certificates (each host's k2i certificate, and yours) that expire within
    /// this many days; 0: never.
    #[arg(long, value_name = "DAYS", default_value_t = 14)]
    pub warn_expiry: u32,
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
    /// Refresh this many times, then exit (default: until `q`); without a terminal, or with
    /// -o json/ndjson, the frames are printed one after another (JSON: one document a line).
    #[arg(short = 'n', long, conflicts_with = "once", value_parser = clap::value_parser!(u64).range(1..))]
    pub iterations: Option<u64>,
}

#[derive(Debug, Subcommand)]
pub enum SysctlCommand {
    /// Read KEY on every host.
    Get {
        /// The parameter, as sysctl names it: `vm.swappiness` (or `vm/swappiness`).
        #[arg(value_name = "KEY")]
        name: String,
    },
    /// Write KEY=VALUE on one host (admin only; the key must be allow-listed there).
    Set {
        /// The parameter and its new value (`vm.swappiness=10`).
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
    fn a_deferred_subcommand_keeps_the_description_the_top_level_help_lists() {
        // `dcos --help` lists the variants' descriptions; `dcos run --help` shows what the
        // subcommand has once built (`defer`). They must be the same, and there must be one.
        let listed: Vec<(String, Option<String>)> = Cli::command()
            .get_subcommands()
            .map(|c| (c.get_name().to_string(), c.get_about().map(|a| a.to_string())))
            .collect();
        let mut built = Cli::command();
        built.build();
        for (name, about) in listed {
            let sub = built.find_subcommand(&name).unwrap();
            assert!(about.is_some(), "{name} has no description");
            assert_eq!(sub.get_about().map(|a| a.to_string()), about, "{name}'s own help");
        }
        let run = built.find_subcommand("run").unwrap();
        assert!(run.get_arguments().any(|a| a.get_id() == "rootfs"), "run is built with its arguments");
    }

    #[test]
    fn every_option_of_every_command_says_what_it_is() {
        fn check(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for arg in cmd.get_arguments() {
                let builtin = matches!(arg.get_id().as_str(), "help" | "version");
                if !builtin && !arg.is_hide_set() && arg.get_help().is_none() {
                    missing.push(format!("{path} {}", arg.get_id()));
                }
            }
            for sub in cmd.get_subcommands() {
                check(sub, &format!("{path} {}", sub.get_name()), missing);
            }
        }
        let mut built = Cli::command();
        built.build();
        let mut missing = Vec::new();
        check(&built, "dcos", &mut missing);
        assert!(missing.is_empty(), "options without a description in --help: {missing:?}");
    }

    #[test]
    fn man_page_and_completions_cover_the_workload_and_service_commands() {
        let mut man = Vec::new();
        clap_mangen::Man::new(Cli::command()).render(&mut man).unwrap();
        let mut bash = Vec::new();
        clap_complete::generate(clap_complete::Shell::Bash, &mut Cli::command(), "dcos", &mut bash);
        let (man, bash) = (String::from_utf8(man).unwrap(), String::from_utf8(bash).unwrap());
        for command in ["run", "workloads", "stop", "migrate", "evacuate", "service"] {
            assert!(man.contains(&format!("dcos\\-{command}")), "man page lacks {command}");
            assert!(bash.contains(&format!("dcos__subcmd__{command}\"")), "completions lack {command}");
        }
        assert!(bash.contains("--bwlimit") && bash.contains("--rootfs"));
        for command in ["create", "ls", "show", "rm"] {
            let name = format!("dcos__subcmd__service__subcmd__{command}\"");
            assert!(bash.contains(&name), "completions lack service {command}");
        }
        assert!(bash.contains("--idle-stop") && bash.contains("--prestart"));
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

    #[test]
    fn sizes_take_bytes_and_suffixes() {
        for (text, want) in [
            ("4096", 4096),
            ("512B", 512),
            ("64M", 64 << 20),
            ("64m", 64 << 20),
            ("1G", 1 << 30),
            ("1.5G", 3 << 29),
            ("512KiB", 512 << 10),
            ("2GB", 2_000_000_000),
            ("0", 0),
        ] {
            assert_eq!(parse_size(text), Ok(want), "{text}");
        }
        for bad in ["", "M", "lots", "-1", "1.5", "10X", "1e3", "99999999999T"] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn rates_are_bytes_per_second() {
        for (text, want) in
            [("10M", 10 << 20), ("10MB/s", 10_000_000), ("10MiB/s", 10 << 20), ("500000", 500_000)]
        {
            assert_eq!(parse_rate(text), Ok(want), "{text}");
        }
        let e = parse_rate("fast").unwrap_err();
        assert!(e.contains("not a rate like 10M"), "{e}");
        assert!(parse_rate("10M/h").is_err());
    }

    #[test]
    fn env_cpus_and_names() {
        assert_eq!(parse_env("A=b=c"), Ok(("A".into(), "b=c".into())));
        assert_eq!(parse_env("EMPTY="), Ok(("EMPTY".into(), String::new())));
        for bad in ["A", "=v", "A B=1", "A\0=1"] {
            assert!(parse_env(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_cpus("0.5"), Ok(0.5));
        for bad in ["-1", "nan", "inf", "half"] {
            assert!(parse_cpus(bad).is_err(), "{bad}");
        }
        assert!(parse_workload_name("web-1").is_ok());
        assert!(parse_workload_name("web/1").is_err());
    }

    #[test]
    fn workload_commands_parse() {
        let cli = Cli::try_parse_from([
            "dcos",
            "migrate",
            "web",
            "--to",
            "h1",
            "--from",
            "h0",
            "--mode",
            "live",
            "--bwlimit",
            "10MB/s",
            "--api",
            "10.0.0.1",
            "--runtime",
            "runsc",
        ])
        .unwrap();
        let Command::Migrate(m) = cli.command else { panic!("not migrate") };
        assert_eq!((m.name.as_str(), m.to.as_str(), m.from.as_deref()), ("web", "h1", Some("h0")));
        assert_eq!(m.runtime.as_deref(), Some("runsc"));
        assert_eq!((m.moving.mode, m.moving.bwlimit), (Mode::Live, Some(10_000_000)));
        assert_eq!(m.moving.api.api.as_deref(), Some("10.0.0.1"));
        let cli = Cli::try_parse_from(["dcos", "migrate", "web", "--to", "h1"]).unwrap();
        let Command::Migrate(m) = cli.command else { panic!("not migrate") };
        assert_eq!((m.moving.mode, m.moving.bwlimit, m.from, m.runtime), (Mode::Cold, None, None, None));
        let cli =
            Cli::try_parse_from(["dcos", "evacuate", "h0", "--parallel", "4", "--to", "h1,h2"]).unwrap();
        let Command::Evacuate(e) = cli.command else { panic!("not evacuate") };
        assert_eq!((e.host.as_str(), e.parallel, e.to), ("h0", Some(4), vec!["h1".to_string(), "h2".into()]));
        let e =
            Cli::try_parse_settled(["dcos", "workloads", "--api", "10.0.0.1", "--socket", "/run/mc.sock"])
                .unwrap_err();
        assert_eq!(e.kind(), clap::error::ErrorKind::ArgumentConflict, "{e}");
        assert!(e.to_string().contains("give one"), "{e}");
        let cli = Cli::try_parse_settled(["dcos", "workloads", "--socket", "/run/mc.sock"]).unwrap();
        let Command::Workloads(w) = cli.command else { panic!("workloads") };
        assert_eq!(w.api.socket.as_deref(), Some(std::path::Path::new("/run/mc.sock")));
        let cli = Cli::try_parse_from(["dcos", "stop", "web", "--timeout", "10s", "-o", "json"]).unwrap();
        assert_eq!(cli.fleet.timeout, std::time::Duration::from_secs(10));
        let Command::Stop(s) = cli.command else { panic!("not stop") };
        assert_eq!((s.name.as_str(), s.host), ("web", None));
        for bad in [
            &["dcos", "migrate", "web"][..],
            &["dcos", "migrate", "web", "--to", "h1", "--mode", "warm"][..],
            &["dcos", "migrate", "web", "--to", "h1", "--bwlimit", "fast"][..],
            &["dcos", "migrate", "we b", "--to", "h1"][..],
            &["dcos", "evacuate", "h0", "--parallel", "0"][..],
            &["dcos", "evacuate"][..],
            &["dcos", "stop"][..],
            &["dcos", "stop", "-x"][..],
        ] {
            let e = Cli::try_parse_from(bad).unwrap_err();
            assert!(e.use_stderr(), "{bad:?} must be a usage error");
        }
    }
}
