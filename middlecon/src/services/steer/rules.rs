//! The NAT rules that steer a service's new connections: one chain per front,
//! `DCOS-SVC-<port>`, jumped to from `PREROUTING` (connections from other hosts) and `OUTPUT`
//! (this host's own) for TCP to that port on a local address, holding one `DNAT` to
//! `127.0.0.1:<instance port>` per instance, chosen at random with equal chances. An empty
//! chain lets connections reach the front. Each change is one `iptables-restore --noflush`
//! transaction: it applies whole or not at all.
//!
//! Instances listen on loopback, so connections from other hosts are sent to `127.0.0.1`:
//! that needs `route_localnet` ([`allow_localnet`]), and with it the guard that keeps
//! loopback private ([`GUARD`]): a packet from outside for `127.0.0.0/8` is dropped unless
//! it belongs to a connection NAT sent there.

use std::collections::BTreeMap;
use std::process::Stdio;
use tokio::io::AsyncWriteExt;

/// The prefix of every chain this module makes.
const PREFIX: &str = "DCOS-SVC-";
/// The filter chain that keeps loopback private once `route_localnet` is on.
const GUARD_CHAIN: &str = "DCOS-LOCALNET";
/// Its rules, hooked into `INPUT` once.
pub const GUARD: &str = "*filter\n:DCOS-LOCALNET - [0:0]\n-A INPUT -j DCOS-LOCALNET\n\
-A DCOS-LOCALNET ! -i lo -d 127.0.0.0/8 -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP\nCOMMIT\n";

/// The chain of the front on `port`.
pub fn chain(port: u16) -> String {
    format!("{PREFIX}{port}")
}

/// What a front's rules should be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rules {
    /// The chain exists, hooked in, redirecting to these instance ports (none: the front).
    Steer(Vec<u16>),
    /// Neither the chain nor its hooks exist.
    Gone,
}

fn hooks(port: u16) -> [String; 2] {
    let c = chain(port);
    ["PREROUTING", "OUTPUT"]
        .map(|hook| format!("{hook} -p tcp -m addrtype --dst-type LOCAL --dport {port} -j {c}"))
}

/// The `iptables-restore` input that brings the front on `port` from `had` to `want`.
pub fn script(port: u16, had: &Rules, want: &Rules) -> String {
    let c = chain(port);
    let mut s = String::from("*nat\n");
    let hooked = matches!(had, Rules::Steer(_));
    match want {
        Rules::Steer(to) => {
            // Declaring a chain creates it, or empties one that exists.
            s.push_str(&format!(":{c} - [0:0]\n"));
            if !hooked {
                for h in hooks(port) {
                    s.push_str(&format!("-A {h}\n"));
                }
            }
            let n = to.len();
            for (i, p) in to.iter().enumerate() {
                let pick = match n - i {
                    1 => String::new(),
                    left => format!(" -m statistic --mode random --probability {:.6}", 1.0 / left as f64),
                };
                s.push_str(&format!("-A {c} -p tcp{pick} -j DNAT --to-destination 127.0.0.1:{p}\n"));
            }
        }
        Rules::Gone if hooked => {
            for h in hooks(port) {
                s.push_str(&format!("-D {h}\n"));
            }
            s.push_str(&format!("-F {c}\n-X {c}\n"));
        }
        Rules::Gone => {}
    }
    s.push_str("COMMIT\n");
    s
}

/// Applies `script` with `iptables-restore --noflush`; its stderr is the error.
pub async fn apply(script: &str) -> Result<(), String> {
    let mut child = tokio::process::Command::new("iptables-restore")
        .arg("--noflush")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("iptables-restore: {e}"))?;
    let mut stdin = child.stdin.take().expect("piped");
    stdin.write_all(script.as_bytes()).await.map_err(|e| format!("iptables-restore: {e}"))?;
    drop(stdin);
    let out = child.wait_with_output().await.map_err(|e| format!("iptables-restore: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("iptables-restore: {}", String::from_utf8_lossy(&out.stderr).trim()))
    }
}

/// `table` of this network namespace, as `iptables-save` prints it.
async fn save(table: &str) -> Result<String, String> {
    let out = tokio::process::Command::new("iptables-save")
        .args(["-t", table])
        .output()
        .await
        .map_err(|e| format!("iptables-save: {e}"))?;
    if !out.status.success() {
        return Err(format!("iptables-save: {}", String::from_utf8_lossy(&out.stderr).trim()));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The fronts that have a chain in this network namespace now, each with the instance
/// ports it steers to.
pub async fn existing() -> Result<BTreeMap<u16, Vec<u16>>, String> {
    Ok(parse_saved(&save("nat").await?))
}

/// The chains of `iptables-save -t nat` output (see [`existing`]).
fn parse_saved(saved: &str) -> BTreeMap<u16, Vec<u16>> {
    let mut chains: BTreeMap<u16, Vec<u16>> = BTreeMap::new();
    for line in saved.lines() {
        if let Some(port) = line.strip_prefix(':').and_then(|l| l.strip_prefix(PREFIX)) {
            if let Some(port) = port.split(' ').next().and_then(|p| p.parse().ok()) {
                chains.entry(port).or_default();
            }
        } else if let Some(rule) = line.strip_prefix("-A ").and_then(|l| l.strip_prefix(PREFIX)) {
            let front = rule.split(' ').next().and_then(|p| p.parse().ok());
            let to = rule.rsplit_once("--to-destination 127.0.0.1:").and_then(|(_, p)| p.trim().parse().ok());
            if let (Some(front), Some(to)) = (front, to) {
                chains.entry(front).or_default().push(to);
            }
        }
    }
    chains
}

/// Lets NAT send connections from other hosts to loopback (`route_localnet`), with the
/// [`GUARD`] in place first (added once).
pub async fn allow_localnet() -> Result<(), String> {
    if !save("filter").await?.contains(&format!(":{GUARD_CHAIN} ")) {
        apply(GUARD).await?;
    }
    std::fs::write("/proc/sys/net/ipv4/conf/all/route_localnet", "1")
        .map_err(|e| format!("net.ipv4.conf.all.route_localnet: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steering_to_three_instances_gives_each_an_equal_chance_and_hooks_the_chain_once() {
        let s = script(8080, &Rules::Gone, &Rules::Steer(vec![4001, 4002, 4003]));
        let redirects: Vec<&str> = s.lines().filter(|l| l.contains("-j DNAT")).collect();
        assert_eq!(redirects.len(), 3);
        assert!(
            redirects[0].contains("--probability 0.333333")
                && redirects[0].ends_with("--to-destination 127.0.0.1:4001")
        );
        assert!(
            redirects[1].contains("--probability 0.500000")
                && redirects[1].ends_with("--to-destination 127.0.0.1:4002")
        );
        assert!(
            !redirects[2].contains("statistic") && redirects[2].ends_with("--to-destination 127.0.0.1:4003")
        );
        assert_eq!(
            s.lines().filter(|l| l.starts_with("-A PREROUTING") || l.starts_with("-A OUTPUT")).count(),
            2
        );
        assert!(!s.contains("-D "));
        assert!(s.starts_with("*nat\n:DCOS-SVC-8080 - [0:0]\n") && s.ends_with("COMMIT\n"));
    }

    #[test]
    fn a_change_of_instances_rewrites_only_the_chain_and_removal_unhooks_and_deletes_it() {
        let had = Rules::Steer(vec![4001]);
        let s = script(8080, &had, &Rules::Steer(vec![]));
        assert_eq!(s, "*nat\n:DCOS-SVC-8080 - [0:0]\nCOMMIT\n");
        let s = script(8080, &had, &Rules::Gone);
        assert!(s.contains("-D PREROUTING -p tcp -m addrtype --dst-type LOCAL --dport 8080 -j DCOS-SVC-8080"));
        assert!(s.contains("-D OUTPUT") && s.contains("-F DCOS-SVC-8080\n-X DCOS-SVC-8080\n"));
        // Nothing was made: nothing to remove.
        assert_eq!(script(8080, &Rules::Gone, &Rules::Gone), "*nat\nCOMMIT\n");
    }

    #[test]
    fn chains_left_by_an_earlier_daemon_are_read_back_with_their_instances() {
        let saved = "*nat\n:PREROUTING ACCEPT [0:0]\n:DCOS-SVC-8080 - [0:0]\n:DCOS-SVC-9000 - [0:0]\n\
            -A PREROUTING -p tcp -m addrtype --dst-type LOCAL -m tcp --dport 8080 -j DCOS-SVC-8080\n\
            -A DCOS-SVC-8080 -p tcp -m statistic --mode random --probability 0.50000000000 -j DNAT --to-destination 127.0.0.1:4001\n\
            -A DCOS-SVC-8080 -p tcp -j DNAT --to-destination 127.0.0.1:4002\nCOMMIT\n";
        let chains = parse_saved(saved);
        assert_eq!(chains.len(), 2);
        assert_eq!(chains[&8080], vec![4001, 4002]);
        assert!(chains[&9000].is_empty());
    }
}
