//! Prometheus HTTP service discovery on the API (`GET /v1/sd/k2i`, SPEC section 9): the
//! fleet's k2i as Prometheus' `http_sd_configs` reads them, from this host's membership.
//!
//! One target group per member that is not dead (alive or suspect: a suspect host may be
//! only slow, and a target that comes and goes would break its series) and advertises a k2i
//! URL. Its target is the URL's `ADDR:PORT`; its labels are `name`, `dc`, the member's own
//! labels (a name Prometheus would refuse has its other characters turned into `_`; one
//! that would shadow `name`, `dc` or a reserved `__` label is left out) and `__scheme__`
//! `https`, so a scrape config needs no scheme of its own. Groups come sorted by name, so
//! the document changes only when the fleet does.
//!
//! Any role may read it, on TCP with mTLS like the rest of the API (and on the local socket).

use crate::membership::{Member, State};
use serde::Serialize;
use std::collections::BTreeMap;

/// Where the API serves the k2i targets.
pub const K2I_PATH: &str = "/v1/sd/k2i";

/// One `http_sd` target group.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TargetGroup {
    pub targets: Vec<String>,
    pub labels: BTreeMap<String, String>,
}

/// A label name Prometheus accepts (`[a-zA-Z_][a-zA-Z0-9_]*`), made from `key`.
fn label_name(key: &str) -> String {
    let mut name: String =
        key.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' { c } else { '_' }).collect();
    if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
        name.insert(0, '_');
    }
    name
}

/// The `ADDR:PORT` of a k2i URL (`https://ADDR:PORT`, as middlecon's config checks it).
fn target(k2i: &str) -> Option<String> {
    let rest = k2i.strip_prefix("https://")?;
    let host_port = rest.split('/').next().unwrap_or_default();
    (!host_port.is_empty()).then(|| host_port.to_string())
}

/// The target groups for `members` (see the module documentation).
pub fn k2i_groups(members: &[Member]) -> Vec<TargetGroup> {
    let mut groups: Vec<(String, TargetGroup)> = members
        .iter()
        .filter(|m| m.state != State::Dead)
        .filter_map(|m| {
            let target = target(&m.k2i)?;
            let mut labels = BTreeMap::new();
            for (k, v) in &m.labels {
                let name = label_name(k);
                if name != "name" && name != "dc" && !name.starts_with("__") {
                    labels.insert(name, v.clone());
                }
            }
            labels.insert("name".into(), m.name.clone());
            labels.insert("dc".into(), m.dc.clone());
            labels.insert("__scheme__".into(), "https".into());
            Some((m.name.clone(), TargetGroup { targets: vec![target], labels }))
        })
        .collect();
    groups.sort_by(|a, b| a.0.cmp(&b.0));
    groups.into_iter().map(|(_, g)| g).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(name: &str, k2i: &str, state: State, labels: &[(&str, &str)]) -> Member {
        Member {
            name: name.into(),
            dc: "dc-a".into(),
            labels: labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            k2i: k2i.into(),
            api: String::new(),
            addr: "10.0.0.1:7441".parse().unwrap(),
            state,
            load: None,
            version: "0.1.0".into(),
            runtimes: Vec::new(),
            saturated: Vec::new(),
            cert_not_after: None,
        }
    }

    #[test]
    fn live_members_with_a_k2i_become_sorted_groups_with_their_labels() {
        let members = [
            member("b", "https://10.0.0.2:7440", State::Suspect, &[("rack", "r2")]),
            member("a", "https://10.0.0.1:7440/", State::Alive, &[("rack", "r1")]),
            member("dead", "https://10.0.0.3:7440", State::Dead, &[]),
            member("no-k2i", "", State::Alive, &[]),
        ];
        let groups = k2i_groups(&members);
        let json = serde_json::to_value(&groups).unwrap();
        assert_eq!(
            json,
            serde_json::json!([
                {"targets": ["10.0.0.1:7440"], "labels": {"__scheme__": "https", "dc": "dc-a", "name": "a", "rack": "r1"}},
                {"targets": ["10.0.0.2:7440"], "labels": {"__scheme__": "https", "dc": "dc-a", "name": "b", "rack": "r2"}},
            ])
        );
    }

    #[test]
    fn label_names_are_made_valid_and_never_shadow_ours() {
        let members = [member(
            "a",
            "https://[fd00::1]:7440",
            State::Alive,
            &[("team.owner", "x"), ("9zone", "z"), ("name", "evil"), ("__scheme__", "http"), ("dc", "y")],
        )];
        let groups = k2i_groups(&members);
        assert_eq!(groups[0].targets, ["[fd00::1]:7440"]);
        let labels: Vec<(&str, &str)> =
            groups[0].labels.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(
            labels,
            [("_9zone", "z"), ("__scheme__", "https"), ("dc", "dc-a"), ("name", "a"), ("team_owner", "x")]
        );
    }
}
