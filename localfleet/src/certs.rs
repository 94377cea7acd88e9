//! Certificates of a local fleet: every host on 127.0.0.1.

use crate::LocalError;
use dcos_core::pki::{self, LeafSpec};
use dcos_core::Role;
use std::net::Ipv4Addr;
use std::path::Path;

/// A certificate request for `name` with `role`, valid for 127.0.0.1 and `localhost`.
pub fn loopback_leaf(name: &str, role: Role) -> LeafSpec {
    let mut spec = LeafSpec::new(name, role);
    spec.ips = vec![Ipv4Addr::LOCALHOST.into()];
    spec.dns = vec!["localhost".into()];
    spec
}

/// Creates a fleet CA in `dir` (with its `admin`) and one `host` certificate per name,
/// valid for 127.0.0.1: `dir/NAME.crt`, `dir/NAME.key`, `dir/ca.crt`.
pub fn make_certs(dir: &Path, names: &[String]) -> Result<(), LocalError> {
    pki::init_dir(dir)?;
    for name in names {
        pki::issue_into_dir(dir, &loopback_leaf(name, Role::Host))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use dcos_core::tls::{Identity, TlsFiles};

    #[test]
    fn every_host_gets_a_loopback_certificate_of_the_one_ca() {
        let dir = tempfile::tempdir().unwrap();
        make_certs(dir.path(), &["a".into(), "b".into()]).unwrap();
        for name in ["a", "b", "admin"] {
            let files = TlsFiles {
                cert: dir.path().join(format!("{name}.crt")),
                key: dir.path().join(format!("{name}.key")),
                ca: dir.path().join("ca.crt"),
            };
            let id = Identity::load(&files).unwrap();
            let role = if name == "admin" { Role::Admin } else { Role::Host };
            assert_eq!((id.peer.name.as_str(), id.peer.role), (name, role));
        }
    }
}
