//! Roles and the permissions attached to them (SPEC section 2).

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// What a caller may do. Carried in the certificate's subject (OU) or bound to a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Read-only access to every read endpoint.
    Viewer,
    /// A fleet member: peer traffic, and read.
    Host,
    /// Read and write: sysctl writes, run/stop/migrate workloads.
    Admin,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Viewer, Role::Host, Role::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Host => "host",
            Role::Admin => "admin",
        }
    }

    /// Every role may read.
    pub fn can_read(self) -> bool {
        true
    }

    /// Only `admin` changes state (sysctl writes, workloads).
    pub fn can_write(self) -> bool {
        self == Role::Admin
    }

    /// Only fleet members speak the peer protocol.
    pub fn can_peer(self) -> bool {
        self == Role::Host
    }
}

/// The header a relay (a middlecon fanning out for an operator, SPEC section 8) sends to k2i
/// with the operator's name; k2i honours it only from a `host` certificate.
pub const ON_BEHALF_OF_HEADER: &str = "dcos-on-behalf-of";
/// The operator's role beside [`ON_BEHALF_OF_HEADER`]: k2i answers with that role's rights,
/// never more, and refuses every write on a relayed request.
pub const ON_BEHALF_OF_ROLE_HEADER: &str = "dcos-on-behalf-of-role";

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The text was not one of `viewer`, `host`, `admin`.
#[derive(Debug, thiserror::Error)]
#[error("unknown role {0:?}: expected viewer, host or admin")]
pub struct UnknownRole(pub String);

impl FromStr for Role {
    type Err = UnknownRole;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "viewer" => Ok(Role::Viewer),
            "host" => Ok(Role::Host),
            "admin" => Ok(Role::Admin),
            other => Err(UnknownRole(other.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_admin_writes_and_only_host_peers() {
        assert!(Role::Admin.can_write());
        assert!(!Role::Viewer.can_write());
        assert!(!Role::Host.can_write());
        assert!(Role::Host.can_peer());
        assert!(!Role::Admin.can_peer());
        for r in Role::ALL {
            assert!(r.can_read());
            assert_eq!(r.as_str().parse::<Role>().unwrap(), r);
        }
        assert!("root".parse::<Role>().is_err());
    }
}
