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
use crate::fanout::{Answer, FanOut};
use crate::fleet::{self, FleetError, Target};
use crate::relay::{RelayMode, Relays};
use dcos_core::tls::{Identity, TlsFiles};
use futures::stream::{BoxStream, StreamExt};
use k2i_client::fanout::Read;
use k2i_client::K2iClient;
use serde::de::DeserializeOwned;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

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

/// The selected fleet, a client with the operator's identity, the output format, and the
/// relays to ask through, when relaying (`--relay`, SPEC section 8).
pub struct Context {
    pub targets: Vec<Target>,
    pub fanout: FanOut,
    pub format: Format,
    pub relays: Option<Arc<Relays>>,
}

/// The hosts named by the global options, narrowed by `--dc` and `--label`: an inventory,
/// a `--hosts` list, or the members a `--seed` middlecon lists (those with a k2i URL that
/// are not dead).
pub async fn select_targets(tls: &TlsArgs, args: &FleetArgs) -> Result<Vec<Target>, SetupError> {
    Ok(select(tls, args).await?.0)
}

/// As [`select_targets`], with the seed's members when a seed was asked.
async fn select(
    tls: &TlsArgs,
    args: &FleetArgs,
) -> Result<(Vec<Target>, Option<Vec<dcos_proto::v1::Member>>), SetupError> {
    let mut members = None;
    let targets = if let Some(path) = &args.inventory {
        fleet::load_inventory(path)?
    } else if let Some(list) = &args.hosts {
        fleet::from_hosts_list(list)?
    } else if let Some(seed) = &args.seed {
        let asked = std::time::Instant::now();
        let (_, reply) = crate::api::members(tls, args, seed).await?;
        tracing::debug!(seed = %seed, "{} members in {:?}", reply.members.len(), asked.elapsed());
        let targets = fleet::from_members(&reply.members)?;
        members = Some(reply.members);
        targets
    } else {
        return Err(FleetError::NoFleet.into());
    };
    if targets.is_empty() {
        return Err(FleetError::NoFleet.into());
    }
    Ok((fleet::narrow(targets, args.dc.as_deref(), &args.labels)?, members))
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
        let (targets, members) = select(tls, args).await?;
        let id = identity(tls)?;
        let client = K2iClient::new(&id).map_err(|e| SetupError::Tls(e.to_string()))?;
        crate::fanout::raise_fd_limit();
        let dcs: BTreeSet<&str> = targets.iter().map(|t| t.dc.as_str()).collect();
        let relays = match (args.relay, members) {
            (RelayMode::Never, _) => None,
            (RelayMode::Always, None) => {
                return Err(SetupError::Usage(
                    "--relay always: relays are found through --seed (or DCOS_SEED)".into(),
                ))
            }
            (RelayMode::Auto, _) if dcs.len() < 2 => None,
            (_, Some(members)) => Some(Arc::new(Relays::new(&members, id))),
            (RelayMode::Auto, None) => None,
        };
        Ok(Context { targets, fanout: FanOut::new(client, args.timeout), format: args.output, relays })
    }

    /// `read` with `query` (a query string without `?`) on every target: through the
    /// relays when relaying, else directly; answers as hosts reply, `target` indexing
    /// [`Context::targets`].
    pub fn answers<T>(&self, read: Read, query: &str) -> BoxStream<'_, Answer<T>>
    where
        T: DeserializeOwned + Send + 'static,
    {
        self.live_answers(read, query, Duration::ZERO)
    }

    /// As [`Context::answers`]; through relays, the same request is to come again within
    /// `live` (a refreshing `top`: the relays keep its answer fresh; zero: none will).
    pub fn live_answers<T>(&self, read: Read, query: &str, live: Duration) -> BoxStream<'_, Answer<T>>
    where
        T: DeserializeOwned + Send + 'static,
    {
        match &self.relays {
            Some(relays) => relays.answers(&self.fanout, &self.targets, read, query, live),
            None => {
                let path = read.path(query);
                self.fanout.get(&self.targets, move |_| path.clone()).boxed()
            }
        }
    }

    /// As [`Context::answers`], collected in target order.
    pub async fn all_answers<T>(&self, read: Read, query: &str) -> Vec<Answer<T>>
    where
        T: DeserializeOwned + Send + 'static,
    {
        self.all_live_answers(read, query, Duration::ZERO).await
    }

    /// As [`Context::live_answers`], collected in target order.
    pub async fn all_live_answers<T>(&self, read: Read, query: &str, live: Duration) -> Vec<Answer<T>>
    where
        T: DeserializeOwned + Send + 'static,
    {
        // Each answer goes straight to its target's place (sorting would move every answer,
        // summaries and rows inline, many times over).
        let mut slots: Vec<Option<Answer<T>>> = self.targets.iter().map(|_| None).collect();
        let mut answers = self.live_answers(read, query, live);
        while let Some(a) = answers.next().await {
            let target = a.target;
            debug_assert!(target < slots.len(), "an answer for target {target} of {}", slots.len());
            if let Some(slot) = slots.get_mut(target) {
                *slot = Some(a);
            }
        }
        slots.into_iter().flatten().collect()
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
