//! Who may call which service: the `[access]` rules of middlecon's config, checked where a
//! call enters and again on the host that answers it.
//!
//! ```toml
//! [access]
//! "admin.*" = ["admin"]                    # glob on the service name -> roles allowed
//! "demo.echo" = ["admin", "host", "viewer"]
//! ```
//!
//! - A pattern is a service name in which `*` stands for any run of characters (dots
//!   included). When several rules match, the most specific wins: an exact name first,
//!   then the pattern with the most characters other than `*` (then the first in name
//!   order). An empty list closes the service to everyone.
//! - No rule matching: the default, `host` and `admin` may call, `viewer` may not.
//! - Callers on the local Unix socket count as `admin`.
//! - **Forwarded calls**: the entry host checks its own rules with the caller's role, then
//!   forwards the call over the peer transport with the headers [`CALLER_HEADER`] and
//!   [`ROLE_HEADER`] set by itself (whatever the client sent under those names is
//!   dropped). The answering host believes them only because the peer is an authenticated
//!   `host` (mTLS, fleet CA), and checks its own rules with that role; a peer call without
//!   them is checked as the peer itself (role `host`). A host certificate is thereby
//!   trusted to relay its callers' roles truthfully, as it is trusted to run the daemon.
//! - `dcos.swim` (membership's own packets, host certificates only) is never subject to
//!   rules, so no rule can break membership.

use dcos_core::tls::PeerIdentity;
use dcos_core::Role;
use std::collections::BTreeMap;
use std::fmt;

/// Name given to callers on the Unix socket.
pub const LOCAL: &str = "local";

/// Who called the gRPC API: a certificate's identity on TCP, or a local process on the Unix
/// socket.
#[derive(Debug, Clone)]
pub struct Caller {
    pub name: String,
    /// `None` for the Unix socket (trusted as local).
    pub role: Option<Role>,
}

impl Caller {
    /// The caller of `request`, as the API's connection recorded it (a request that has
    /// none is treated as the least trusted caller: a `viewer`).
    pub fn of<T>(request: &tonic::Request<T>) -> Caller {
        request
            .extensions()
            .get::<Caller>()
            .cloned()
            .unwrap_or(Caller { name: "unknown".into(), role: Some(Role::Viewer) })
    }

    /// May this caller register services?
    pub fn may_serve(&self) -> bool {
        matches!(self.role, None | Some(Role::Host) | Some(Role::Admin))
    }

    /// The role the access rules see: local callers count as admin.
    pub fn role(&self) -> Role {
        self.role.unwrap_or(Role::Admin)
    }

    /// The caller for a person: `NAME (role ROLE)`, or `local`.
    pub fn describe(&self) -> String {
        match self.role {
            Some(r) => format!("{} (role {r})", self.name),
            None => LOCAL.to_string(),
        }
    }
}

/// Header carrying the original caller's name on a forwarded call.
pub const CALLER_HEADER: &str = "dcos-caller";
/// Header carrying the original caller's role on a forwarded call.
pub const ROLE_HEADER: &str = "dcos-caller-role";
/// Services the rules never apply to.
const EXEMPT: &[&str] = &[crate::membership::SWIM_SERVICE];

/// One `pattern = [roles]` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub pattern: String,
    pub roles: Vec<Role>,
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let roles: Vec<&str> = self.roles.iter().map(|r| r.as_str()).collect();
        write!(f, "{:?} = [{}]", self.pattern, roles.join(", "))
    }
}

/// The access rules of one daemon.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Access {
    rules: Vec<Rule>,
}

/// A refused call; the message names the rule (or the default) that refused it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Denied(pub String);

/// Whether `pattern` (with `*` wildcards) matches all of `name`.
pub fn glob_match(pattern: &str, name: &str) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or_default();
    let Some(mut rest) = name.strip_prefix(first) else { return false };
    let parts: Vec<&str> = parts.collect();
    let Some((last, middle)) = parts.split_last() else { return rest.is_empty() };
    for p in middle {
        match rest.find(p) {
            Some(i) => rest = &rest[i + p.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

impl Access {
    /// Rules from the config's `[access]` table; every role must be `viewer`, `host` or
    /// `admin` (the error says which pattern holds a bad one).
    pub fn from_table(table: &BTreeMap<String, Vec<String>>) -> Result<Access, String> {
        let mut rules = Vec::new();
        for (pattern, roles) in table {
            if pattern.is_empty() {
                return Err("an empty service pattern".into());
            }
            let roles = roles
                .iter()
                .map(|r| r.parse::<Role>().map_err(|e| format!("{pattern:?}: {e}")))
                .collect::<Result<Vec<_>, _>>()?;
            rules.push(Rule { pattern: pattern.clone(), roles });
        }
        Ok(Access { rules })
    }

    /// The rule that decides for `service`, if any.
    pub fn rule_for(&self, service: &str) -> Option<&Rule> {
        let specificity = |r: &Rule| (r.pattern == service, r.pattern.chars().filter(|c| *c != '*').count());
        let mut best: Option<&Rule> = None;
        for r in self.rules.iter().filter(|r| glob_match(&r.pattern, service)) {
            if best.is_none_or(|b| specificity(r) > specificity(b)) {
                best = Some(r);
            }
        }
        best
    }

    /// May `role` call `service`?
    pub fn check(&self, service: &str, role: Role) -> Result<(), Denied> {
        if EXEMPT.contains(&service) {
            return Ok(());
        }
        match self.rule_for(service) {
            Some(rule) if rule.roles.contains(&role) => Ok(()),
            Some(rule) => {
                Err(Denied(format!("role {role} may not call {service:?} (access rule {rule})")))
            }
            None if matches!(role, Role::Host | Role::Admin) => Ok(()),
            None => Err(Denied(format!(
                "role {role} may not call {service:?} (no access rule matches it; by default only host and admin may call)"
            ))),
        }
    }
}

/// Who a peer call is for: the caller named in the relay headers when the peer (an
/// authenticated host) sent them, else the peer itself.
pub fn relayed_caller(headers: &BTreeMap<String, String>, peer: &PeerIdentity) -> PeerIdentity {
    let Some(role) = headers.get(ROLE_HEADER).and_then(|r| r.parse::<Role>().ok()) else {
        return peer.clone();
    };
    let name = headers.get(CALLER_HEADER).cloned().unwrap_or_default();
    PeerIdentity { name: format!("{name} via {}", peer.name), role, not_after: peer.not_after }
}

/// Replaces whatever relay headers a client sent by the entry host's own.
pub fn set_relay_headers(headers: &mut BTreeMap<String, String>, name: &str, role: Role) {
    headers.retain(|k, _| k != CALLER_HEADER && k != ROLE_HEADER);
    headers.insert(CALLER_HEADER.into(), name.into());
    headers.insert(ROLE_HEADER.into(), role.as_str().into());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn access(lines: &[(&str, &[&str])]) -> Access {
        let table =
            lines.iter().map(|(p, r)| (p.to_string(), r.iter().map(|s| s.to_string()).collect())).collect();
        Access::from_table(&table).unwrap()
    }

    #[test]
    fn globs_match_whole_names() {
        assert!(glob_match("admin.*", "admin.reboot"));
        assert!(glob_match("admin.*", "admin."));
        assert!(!glob_match("admin.*", "xadmin.reboot"));
        assert!(glob_match("*", "anything.at.all"));
        assert!(glob_match("*.status", "db.status"));
        assert!(!glob_match("*.status", "db.status2"));
        assert!(glob_match("a*b*c", "a-x-b-y-c"));
        assert!(!glob_match("a*b*c", "a-c-b"));
        assert!(glob_match("demo.echo", "demo.echo"));
        assert!(!glob_match("demo.echo", "demo.echo2"));
        assert!(!glob_match("ab*ab", "ab"), "the prefix and suffix may not overlap");
    }

    #[test]
    fn the_most_specific_rule_decides() {
        let a = access(&[("admin.*", &["admin"]), ("admin.status", &["viewer", "admin"]), ("*", &["host"])]);
        assert!(a.check("admin.status", Role::Viewer).is_ok(), "the exact name beats the glob");
        let e = a.check("admin.reboot", Role::Viewer).unwrap_err();
        assert!(e.0.contains("\"admin.*\" = [admin]") && e.0.contains("role viewer"), "{e}");
        assert!(a.check("admin.reboot", Role::Host).is_err(), "admin.* is more specific than *");
        assert!(a.check("admin.reboot", Role::Admin).is_ok());
        assert!(a.check("demo.echo", Role::Admin).is_err(), "\"*\" = [host] leaves admin out");
    }

    #[test]
    fn without_a_matching_rule_hosts_and_admins_may_call() {
        let a = access(&[("admin.*", &["admin"])]);
        assert!(a.check("demo.echo", Role::Host).is_ok());
        assert!(a.check("demo.echo", Role::Admin).is_ok());
        let e = a.check("demo.echo", Role::Viewer).unwrap_err();
        assert!(e.0.contains("no access rule"), "{e}");
        assert!(Access::default().check("dcos.ping", Role::Viewer).is_err());
    }

    #[test]
    fn membership_packets_are_never_refused() {
        let a = access(&[("*", &[])]);
        assert!(a.check(crate::membership::SWIM_SERVICE, Role::Host).is_ok());
        assert!(a.check("dcos.ping", Role::Admin).is_err(), "an empty list closes a service");
    }

    #[test]
    fn bad_roles_are_named() {
        let table = BTreeMap::from([("admin.*".to_string(), vec!["admin".to_string(), "root".to_string()])]);
        let e = Access::from_table(&table).unwrap_err();
        assert!(e.contains("admin.*") && e.contains("root"), "{e}");
    }

    #[test]
    fn relay_headers_are_set_by_the_entry_host_only() {
        let peer = PeerIdentity { name: "host-0".into(), role: Role::Host, not_after: 0 };
        let mut h = BTreeMap::from([(ROLE_HEADER.to_string(), "admin".to_string())]);
        set_relay_headers(&mut h, "dash", Role::Viewer);
        let who = relayed_caller(&h, &peer);
        assert_eq!((who.role, who.name.as_str()), (Role::Viewer, "dash via host-0"));
        assert_eq!(relayed_caller(&BTreeMap::new(), &peer), peer, "no headers: the peer itself");
    }
}
