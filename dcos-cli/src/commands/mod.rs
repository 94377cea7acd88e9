//! The commands that talk to hosts. The k2i ones (`hosts`, `ps`, `top`, `containers`,
//! `sysctl`) ask the selected hosts through [`crate::fanout`] and print through
//! [`crate::output`], starting from a [`Context`]; `call`, `query`, the workload commands
//! (`run`, `workloads`, `stop`, `migrate`, `evacuate`) and the service commands
//! (`service create|ls|show|rm`), on [`crate::workload`], talk to middlecon's gRPC API,
//! found and reached through [`crate::api`].

pub mod call;
pub mod containers;
pub mod evacuate;
pub mod hosts;
pub mod migrate;
pub mod ps;
pub mod query;
pub mod run;
pub mod service;
pub mod stop;
pub mod sysctl;
pub mod top;
pub mod workloads;

use crate::cli::{FleetArgs, Format, TlsArgs};
use crate::fanout::FanOut;
use crate::fleet::{self, FleetError, Target};
use dcos_core::tls::{Identity, TlsFiles};
use k2i_client::K2iClient;

/// A failure before any host was asked: bad usage (exit 2) or a broken setup (exit 1).
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error(transparent)]
    Fleet(#[from] FleetError),
    #[error("{0}")]
    Usage(String),
    #[error("{0}")]
    Tls(String),
    /// The seed's middlecon API did not answer; `status` as in SPEC section 6.
    #[error("{status}: cannot ask the seed's middlecon API for members: {message}")]
    Unreachable { status: &'static str, message: String },
}

impl SetupError {
    pub fn exit_status(&self) -> u8 {
        match self {
            SetupError::Tls(_) | SetupError::Unreachable { .. } => crate::exit::FAILED,
            _ => crate::exit::USAGE,
        }
    }
}

/// The selected fleet, a client with the operator's identity, and the output format.
pub struct Context {
    pub targets: Vec<Target>,
    pub fanout: FanOut,
    pub format: Format,
}

/// The hosts named by the global options, narrowed by `--dc` and `--label`: an inventory,
/// a `--hosts` list, or the members a `--seed` middlecon lists (those with a k2i URL that
/// are not dead).
pub async fn select_targets(tls: &TlsArgs, args: &FleetArgs) -> Result<Vec<Target>, SetupError> {
    let targets = if let Some(path) = &args.inventory {
        fleet::load_inventory(path)?
    } else if let Some(list) = &args.hosts {
        fleet::from_hosts_list(list)?
    } else if let Some(seed) = &args.seed {
        let (_, reply) = crate::api::members(tls, args, seed).await?;
        fleet::from_members(&reply.members)?
    } else {
        return Err(FleetError::NoFleet.into());
    };
    if targets.is_empty() {
        return Err(FleetError::NoFleet.into());
    }
    Ok(fleet::narrow(targets, args.dc.as_deref(), &args.labels)?)
}

/// Loads the operator's certificate (`--cert --key --ca` or `DCOS_*`).
pub fn identity(tls: &TlsArgs) -> Result<Identity, SetupError> {
    let (Some(cert), Some(key), Some(ca)) = (&tls.cert, &tls.key, &tls.ca) else {
        return Err(SetupError::Usage(
            "give your certificate: --cert FILE --key FILE --ca FILE (or DCOS_CERT, DCOS_KEY, DCOS_CA)"
                .into(),
        ));
    };
    Identity::load(&TlsFiles { cert: cert.clone(), key: key.clone(), ca: ca.clone() })
        .map_err(|e| SetupError::Tls(e.to_string()))
}

impl Context {
    pub async fn new(tls: &TlsArgs, args: &FleetArgs) -> Result<Context, SetupError> {
        let targets = select_targets(tls, args).await?;
        let id = identity(tls)?;
        let client = K2iClient::new(&id).map_err(|e| SetupError::Tls(e.to_string()))?;
        crate::fanout::raise_fd_limit();
        Ok(Context { targets, fanout: FanOut::new(client, args.timeout), format: args.output })
    }
}

/// Percent-encodes a query-string value.
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => out.push(b as char),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}
