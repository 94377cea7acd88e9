//! Which hosts a command talks to: an inventory file, a `--hosts` list, or a seed
//! middlecon's member list ([`from_members`]); narrowed by `--dc` and `--label`.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;

/// One host to ask.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Target {
    /// Name shown until the host answers with its own.
    pub name: String,
    #[serde(default = "default_dc")]
    pub dc: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Base URL of its k2i, `https://ADDR:7440`.
    pub k2i: String,
    /// Its middlecon gRPC API address.
    #[serde(default)]
    pub api: Option<String>,
}

fn default_dc() -> String {
    "default".into()
}

/// Why no fleet could be selected. All are usage errors (exit 2).
#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    #[error("no fleet: give --inventory FILE, --hosts ADDR,... or --seed ADDR (or DCOS_INVENTORY, DCOS_HOSTS, DCOS_SEED)")]
    NoFleet,
    #[error("{path}: {message}")]
    Inventory { path: String, message: String },
    #[error("--hosts: {0:?} is not an address like 10.0.0.5, 10.0.0.5:7440 or https://web-1:7440")]
    BadAddress(String),
    #[error("--label: {0:?} is not K=V")]
    BadLabel(String),
    #[error("none of the seed's {0} members that are not dead advertises a k2i URL (start middlecon with --k2i URL)")]
    NoK2i(usize),
    #[error("no host matches --dc/--label among the {0} selected (hosts given by --hosts carry no dc or labels: use --inventory)")]
    NothingMatches(usize),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct InventoryFile {
    #[serde(default)]
    host: Vec<Target>,
}

/// Parses an inventory (`[[host]]` tables with `name`, `dc`, `labels`, `k2i`, `api`).
pub fn parse_inventory(text: &str, path: &str) -> Result<Vec<Target>, FleetError> {
    let inv: InventoryFile = toml::from_str(text)
        .map_err(|e| FleetError::Inventory { path: path.into(), message: e.to_string() })?;
    let mut seen = std::collections::HashSet::new();
    for t in &inv.host {
        if !seen.insert(&t.name) {
            return Err(FleetError::Inventory {
                path: path.into(),
                message: format!("host {:?} appears twice", t.name),
            });
        }
        normalize_url(&t.k2i).map_err(|_| FleetError::Inventory {
            path: path.into(),
            message: format!("host {:?}: k2i {:?} is not an address", t.name, t.k2i),
        })?;
    }
    Ok(inv
        .host
        .into_iter()
        .map(|mut t| {
            t.k2i = normalize_url(&t.k2i).unwrap_or(t.k2i);
            t
        })
        .collect())
}

pub fn load_inventory(path: &Path) -> Result<Vec<Target>, FleetError> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path)
        .map_err(|e| FleetError::Inventory { path: shown.clone(), message: e.to_string() })?;
    parse_inventory(&text, &shown)
}

/// `10.0.0.5` → `https://10.0.0.5:7440`; keeps an explicit scheme and port.
pub fn normalize_url(addr: &str) -> Result<String, FleetError> {
    let bad = || FleetError::BadAddress(addr.to_string());
    let rest = addr.trim().strip_prefix("https://").unwrap_or(addr.trim()).trim_end_matches('/');
    if rest.is_empty()
        || rest.contains('/')
        || rest.starts_with("http:")
        || rest.contains(char::is_whitespace)
    {
        return Err(bad());
    }
    let has_port = if rest.starts_with('[') { rest.contains("]:") } else { rest.matches(':').count() == 1 };
    let url = if has_port { format!("https://{rest}") } else { format!("https://{rest}:7440") };
    url.parse::<hyper::Uri>().map_err(|_| bad())?;
    Ok(url)
}

/// `--hosts a,b,c`: targets named after their address.
pub fn from_hosts_list(list: &str) -> Result<Vec<Target>, FleetError> {
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|a| {
            let k2i = normalize_url(a)?;
            let name = k2i.trim_start_matches("https://").to_string();
            Ok(Target { name, dc: default_dc(), labels: BTreeMap::new(), k2i, api: None })
        })
        .collect()
}

/// The members a seed listed (`Membership.Members`) that are not dead and advertise a
/// k2i URL; fails when none does.
pub fn from_members(members: &[dcos_proto::v1::Member]) -> Result<Vec<Target>, FleetError> {
    use dcos_proto::v1::MemberState;
    let live: Vec<_> = members.iter().filter(|m| m.state() != MemberState::Dead).collect();
    let targets: Vec<Target> = live
        .iter()
        .filter(|m| !m.k2i.is_empty())
        .filter_map(|m| {
            Some(Target {
                name: m.name.clone(),
                dc: m.dc.clone(),
                labels: m.labels.clone(),
                k2i: normalize_url(&m.k2i).ok()?,
                api: (!m.api.is_empty()).then(|| m.api.clone()),
            })
        })
        .collect();
    if targets.is_empty() {
        return Err(FleetError::NoK2i(live.len()));
    }
    Ok(targets)
}

/// `--label K=V` options as pairs.
pub fn parse_labels(labels: &[String]) -> Result<Vec<(String, String)>, FleetError> {
    labels
        .iter()
        .map(|l| {
            l.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .ok_or(FleetError::BadLabel(l.clone()))
        })
        .collect()
}

/// Whether a host in datacenter `dc` carrying `labels` is selected by `--dc` (`want_dc`)
/// and the `--label` pairs ([`parse_labels`]).
pub fn selected(
    dc: &str,
    labels: &BTreeMap<String, String>,
    want_dc: Option<&str>,
    wanted: &[(String, String)],
) -> bool {
    want_dc.is_none_or(|d| dc == d) && wanted.iter().all(|(k, v)| labels.get(k) == Some(v))
}

/// Keeps the targets in `dc` (if given) carrying every `labels` pair.
pub fn narrow(targets: Vec<Target>, dc: Option<&str>, labels: &[String]) -> Result<Vec<Target>, FleetError> {
    let wanted = parse_labels(labels)?;
    let before = targets.len();
    let kept: Vec<Target> = targets.into_iter().filter(|t| selected(&t.dc, &t.labels, dc, &wanted)).collect();
    if kept.is_empty() && before > 0 {
        return Err(FleetError::NothingMatches(before));
    }
    Ok(kept)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_get_scheme_and_default_port() {
        assert_eq!(normalize_url("10.0.0.5").unwrap(), "https://10.0.0.5:7440");
        assert_eq!(normalize_url("10.0.0.5:9000").unwrap(), "https://10.0.0.5:9000");
        assert_eq!(normalize_url("https://web-1:7440/").unwrap(), "https://web-1:7440");
        assert_eq!(normalize_url("[::1]:7440").unwrap(), "https://[::1]:7440");
        for bad in ["", "http://x", "a b", "x/y"] {
            assert!(normalize_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn inventory_parses_and_narrows_by_dc_and_label() {
        let inv = r#"
[[host]]
name = "web-1"
dc = "eu-1"
labels = { rack = "r7", role = "web" }
k2i = "10.0.0.5"

[[host]]
name = "db-1"
dc = "us-2"
k2i = "https://10.1.0.5:7440"
api = "10.1.0.5:7442"
"#;
        let t = parse_inventory(inv, "inv.toml").unwrap();
        assert_eq!(t.len(), 2);
        assert_eq!(t[0].k2i, "https://10.0.0.5:7440");
        assert_eq!(narrow(t.clone(), Some("eu-1"), &[]).unwrap().len(), 1);
        assert_eq!(narrow(t.clone(), None, &["rack=r7".into()]).unwrap()[0].name, "web-1");
        assert!(matches!(narrow(t.clone(), Some("mars"), &[]), Err(FleetError::NothingMatches(2))));
        assert!(matches!(narrow(t, None, &["nolabel".into()]), Err(FleetError::BadLabel(_))));
    }

    #[test]
    fn bad_inventories_are_named() {
        let e = parse_inventory("[[host]]\nname = \"a\"\n", "f.toml").unwrap_err().to_string();
        assert!(e.starts_with("f.toml:") && e.contains("k2i"), "{e}");
        let dup = "[[host]]\nname=\"a\"\nk2i=\"x\"\n[[host]]\nname=\"a\"\nk2i=\"y\"\n";
        assert!(parse_inventory(dup, "f").unwrap_err().to_string().contains("twice"));
        assert!(parse_inventory("[[hots]]\n", "f").is_err());
    }

    #[test]
    fn seed_members_become_targets_when_alive_with_a_k2i() {
        use dcos_proto::v1::{Member, MemberState};
        let m = |name: &str, k2i: &str, state: MemberState| Member {
            name: name.into(),
            dc: "eu-1".into(),
            k2i: k2i.into(),
            api: "10.0.0.1:7442".into(),
            state: state as i32,
            ..Member::default()
        };
        let t = from_members(&[
            m("a", "https://10.0.0.1:7440", MemberState::Alive),
            m("b", "", MemberState::Alive),
            m("c", "https://10.0.0.3:7440", MemberState::Dead),
            m("d", "10.0.0.4", MemberState::Suspect),
        ])
        .unwrap();
        assert_eq!(t.iter().map(|t| t.name.as_str()).collect::<Vec<_>>(), ["a", "d"]);
        assert_eq!(t[1].k2i, "https://10.0.0.4:7440");
        assert_eq!((t[0].dc.as_str(), t[0].api.as_deref()), ("eu-1", Some("10.0.0.1:7442")));
        let e = from_members(&[m("b", "", MemberState::Alive)]).unwrap_err().to_string();
        assert!(e.contains("--k2i"), "{e}");
    }

    #[test]
    fn hosts_list_splits_on_commas() {
        let t = from_hosts_list("10.0.0.1, 10.0.0.2:9000,").unwrap();
        assert_eq!(
            t.iter().map(|t| t.k2i.as_str()).collect::<Vec<_>>(),
            ["https://10.0.0.1:7440", "https://10.0.0.2:9000"]
        );
        assert!(from_hosts_list("ok,http://bad").is_err());
    }
}
