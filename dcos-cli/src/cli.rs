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

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create the fleet CA and issue certificates.
    #[command(subcommand)]
    Certs(CertsCommand),
    /// Create bearer tokens for dashboards.
    #[command(subcommand)]
    Tokens(TokensCommand),
    /// Start a small local fleet with its own throwaway CA, and show it.
    Demo(DemoArgs),
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
        label: String,
    },
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Number of local hosts.
    #[arg(long, default_value_t = 3)]
    pub hosts: u8,
    /// Keep the fleet running until Ctrl-C instead of stopping after showing it.
    #[arg(long)]
    pub keep: bool,
    /// Directory for the demo's CA and logs [default: a temporary directory].
    #[arg(long)]
    pub dir: Option<PathBuf>,
}
