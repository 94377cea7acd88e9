//! Where other hosts are: a host's name to its peer (QUIC) address, from membership first
//! and the static `--peer NAME=ADDR` table second, and the members a call may go to. The
//! gRPC API routes calls with it and migrations find their targets with it.

use crate::membership::{Handle, Member, State};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

/// The hosts this daemon knows of.
#[derive(Clone)]
pub struct Directory {
    /// This host's name and datacenter.
    pub name: String,
    pub dc: String,
    /// The fleet as membership sees it; names are looked up here before `peers`.
    pub members: Option<Handle>,
    /// Other hosts by name: their peer addresses (`--peer`).
    pub peers: Arc<BTreeMap<String, SocketAddr>>,
}

impl Directory {
    /// The peer address of the host called `name`: from membership (unless it is dead),
    /// else from the `--peer` table. The error says why there is none, for a person.
    pub fn resolve(&self, name: &str) -> Result<SocketAddr, String> {
        let member = self.members.as_ref().and_then(|m| m.address_of(name));
        match member {
            Some((addr, state)) if state != State::Dead => Ok(addr),
            Some((addr, _)) => self
                .peers
                .get(name)
                .copied()
                .ok_or_else(|| format!("{name} ({addr}) is dead according to membership")),
            None => self
                .peers
                .get(name)
                .copied()
                .ok_or_else(|| format!("no host named {name:?} is known to {}", self.name)),
        }
    }

    /// The runtime classes member `name` gossips, `None` if membership does not know it or
    /// it names none.
    pub fn runtimes(&self, name: &str) -> Option<Vec<String>> {
        let handle = self.members.as_ref()?;
        let member = handle.members().into_iter().find(|m| m.name == name)?;
        Some(member.runtimes).filter(|r| !r.is_empty())
    }

    /// Live members (this host included if membership lists it), with their load.
    pub fn live(&self) -> Vec<(String, Option<f64>)> {
        let Some(handle) = &self.members else { return Vec::new() };
        handle.members().into_iter().filter(|m| m.state == State::Alive).map(|m| (m.name, m.load)).collect()
    }

    /// Other members that are not dead, in `dc` and carrying `labels` if given: this dc
    /// first, then by load (unknown load last), then by name.
    pub fn others(&self, dc: Option<&str>, labels: &BTreeMap<String, String>) -> Vec<(String, SocketAddr)> {
        let Some(handle) = &self.members else { return Vec::new() };
        let mut list: Vec<_> = handle
            .members()
            .into_iter()
            .filter(|m| m.name != self.name && m.state != State::Dead)
            .filter(|m| dc.is_none_or(|d| m.dc == d))
            .filter(|m| labels.iter().all(|(k, v)| m.labels.get(k) == Some(v)))
            .collect();
        list.sort_by(|a, b| {
            let key = |m: &Member| (m.dc != self.dc, m.load.unwrap_or(f64::MAX));
            let (ka, kb) = (key(a), key(b));
            ka.0.cmp(&kb.0).then(ka.1.total_cmp(&kb.1)).then(a.name.cmp(&b.name))
        });
        list.into_iter().map(|m| (m.name, m.addr)).collect()
    }
}
