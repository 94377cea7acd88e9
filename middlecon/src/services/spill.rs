//! Where a saturated front sends a connection: the front of a peer that places the service
//! and has room, by what membership gossips ([`Members`]); or nowhere ([`NoSpill`]).
//!
//! Each host says with its SWIM packets which of its services are saturated
//! ([`Spill::publish`]); a saturated front picks, among the live members the service is
//! placed on, one that did not say so, the least loaded first. A connection that comes from
//! a fleet member (a peer's front spilling to this one) is never spilled again, so spills
//! do not loop.

use super::spec::ServiceSpec;
use crate::membership::{Handle, State};
use std::net::SocketAddr;

/// Where a saturated front may send a connection.
pub trait Spill: Send + Sync + 'static {
    /// A peer's front of `spec` with room for a connection from `from`, if any.
    fn target(&self, spec: &ServiceSpec, from: SocketAddr) -> Option<SocketAddr>;

    /// Tells the fleet which services are saturated on this host now.
    fn publish(&self, saturated: &[String]);
}

/// A front that never spills (a host alone, or tests).
pub struct NoSpill;

impl Spill for NoSpill {
    fn target(&self, _: &ServiceSpec, _: SocketAddr) -> Option<SocketAddr> {
        None
    }

    fn publish(&self, _: &[String]) {}
}

/// Spills to peers as membership knows them.
pub struct Members {
    /// This host's name.
    pub me: String,
    pub members: Handle,
}

impl Spill for Members {
    fn target(&self, spec: &ServiceSpec, from: SocketAddr) -> Option<SocketAddr> {
        let members = self.members.members();
        if members.iter().any(|m| m.addr.ip() == from.ip()) {
            return None;
        }
        members
            .into_iter()
            .filter(|m| m.state == State::Alive && m.name != self.me && spec.hosts.contains(&m.name))
            .filter(|m| !m.saturated.contains(&spec.name))
            .min_by(|a, b| a.load.unwrap_or(f64::MAX).total_cmp(&b.load.unwrap_or(f64::MAX)))
            .map(|m| SocketAddr::new(m.addr.ip(), spec.port))
    }

    fn publish(&self, saturated: &[String]) {
        self.members.set_saturated(saturated);
    }
}
