//! middlecon's settings: command-line flags over a TOML file over defaults, parsed and
//! validated completely before the UDP port is bound. Every error names the setting.

use crate::access::Access;
use clap::Parser;
pub use dcos_core::settings::ConfigError;
use dcos_core::settings::{bad, hostname, load_identity, parse_label, read_toml, tls_files};
use dcos_core::tls::Identity;
use dcos_core::Role;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

/// Command-line flags (SPEC section 4; `--runtime` arrives with workloads). Every one may
/// also be set in `--config`, which alone holds the `[access]` rules.
#[derive(Debug, Default, Parser)]
#[command(name = "middlecon", version, about = "Request/reply between the fleet's hosts over QUIC (mTLS).")]
pub struct Flags {
    /// UDP address for peers (QUIC) [default: 0.0.0.0:7441].
    #[arg(long)]
    pub listen: Option<String>,
    /// This host's certificate (PEM, role `host`), issued by `dcos certs issue`.
    #[arg(long)]
    pub cert: Option<PathBuf>,
    /// Private key of --cert (PEM).
    #[arg(long)]
    pub key: Option<PathBuf>,
    /// The fleet CA certificate (PEM); peers' certificates must chain to it.
    #[arg(long)]
    pub ca: Option<PathBuf>,
    /// Host name [default: the hostname].
    #[arg(long)]
    pub name: Option<String>,
    /// Datacenter [default: default].
    #[arg(long)]
    pub dc: Option<String>,
    /// A label, K=V; repeat for more.
    #[arg(long = "label", value_name = "K=V")]
    pub labels: Vec<String>,
    /// A peer to join through, IP[:PORT] (port 7441 if left out); repeat for more.
    #[arg(long = "seed", value_name = "ADDR")]
    pub seeds: Vec<String>,
    /// Where this daemon keeps its state [default: /var/lib/middlecon].
    #[arg(long)]
    pub state_dir: Option<PathBuf>,
    /// TCP address of the gRPC API (mTLS) [default: 0.0.0.0:7442].
    #[arg(long)]
    pub api: Option<String>,
    /// Unix socket of the local gRPC API (mode 0660) [default: /run/middlecon/api.sock].
    #[arg(long)]
    pub socket: Option<PathBuf>,
    /// Another host, NAME=IP[:PORT] (its peer address, port 7441 if left out), for calls
    /// by host name; repeat for more.
    #[arg(long = "peer", value_name = "NAME=ADDR")]
    pub peers: Vec<String>,
    /// OCI runtime for workloads that name none: runc, crun or a path [default: runc].
    #[arg(long)]
    pub runtime: Option<String>,
    /// This host's k2i, https://ADDR:PORT, advertised to the fleet in membership (so
    /// `dcos --seed` can reach every host's k2i).
    #[arg(long)]
    pub k2i: Option<String>,
    /// TOML file with the same settings; flags win.
    #[arg(long)]
    pub config: Option<PathBuf>,
}

/// The TOML file: the same names as the flags, in snake_case.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub listen: Option<String>,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    pub ca: Option<PathBuf>,
    pub name: Option<String>,
    pub dc: Option<String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub seeds: Vec<String>,
    pub state_dir: Option<PathBuf>,
    pub api: Option<String>,
    pub socket: Option<PathBuf>,
    /// NAME = "IP[:PORT]".
    #[serde(default)]
    pub peers: BTreeMap<String, String>,
    pub runtime: Option<String>,
    pub k2i: Option<String>,
    /// Service pattern -> roles allowed to call it (see [`crate::access`]).
    #[serde(default)]
    pub access: BTreeMap<String, Vec<String>>,
}

/// Everything middlecon needs, validated.
#[derive(Debug)]
pub struct Config {
    pub listen: SocketAddr,
    pub identity: Identity,
    pub name: String,
    pub dc: String,
    pub labels: BTreeMap<String, String>,
    /// Peers to join through (used by membership, next).
    pub seeds: Vec<SocketAddr>,
    pub state_dir: PathBuf,
    /// TCP address of the gRPC API (mTLS).
    pub api: SocketAddr,
    /// Unix socket of the local gRPC API.
    pub socket: PathBuf,
    /// Other hosts' peer addresses by name (`--peer`).
    pub peers: BTreeMap<String, SocketAddr>,
    /// The default OCI runtime of workloads (`runc`, `crun` or an absolute path).
    pub runtime: String,
    /// This host's k2i URL (empty when not given), advertised in membership.
    pub k2i: String,
    /// Who may call which service.
    pub access: Access,
}

pub const DEFAULT_LISTEN: &str = "0.0.0.0:7441";
pub const DEFAULT_PORT: u16 = 7441;
pub const DEFAULT_STATE_DIR: &str = "/var/lib/middlecon";
pub const DEFAULT_API: &str = "0.0.0.0:7442";
pub const DEFAULT_API_PORT: u16 = 7442;
pub const DEFAULT_SOCKET: &str = "/run/middlecon/api.sock";

/// Parses `IP:PORT`, `[IPv6]:PORT` or a bare IP (port 7441).
pub fn parse_seed(s: &str) -> Result<SocketAddr, String> {
    if let Ok(a) = s.parse::<SocketAddr>() {
        return Ok(a);
    }
    s.parse::<IpAddr>()
        .map(|ip| SocketAddr::new(ip, DEFAULT_PORT))
        .map_err(|_| format!("{s:?} is not an address like 10.0.0.5 or 10.0.0.5:7441"))
}

impl Config {
    /// Merges flags over the config file and checks everything, including that the TLS
    /// files load, the certificate is valid now and carries the `host` role.
    pub fn from_flags(flags: Flags) -> Result<Config, ConfigError> {
        let file: FileConfig = read_toml(flags.config.as_deref())?;
        let listen_text = flags.listen.or(file.listen).unwrap_or_else(|| DEFAULT_LISTEN.into());
        let listen = listen_text
            .parse()
            .map_err(|_| bad("listen", format!("{listen_text:?} is not an address like 0.0.0.0:7441")))?;
        let files = tls_files(flags.cert.or(file.cert), flags.key.or(file.key), flags.ca.or(file.ca))?;
        let identity = load_identity(&files)?;
        if identity.peer.role != Role::Host {
            return Err(bad(
                "cert",
                format!(
                    "{} carries role {}; middlecon needs a host certificate (dcos certs issue --role host)",
                    files.cert.display(),
                    identity.peer.role
                ),
            ));
        }
        let name = flags.name.or(file.name).unwrap_or_else(hostname);
        if name.is_empty() {
            return Err(bad("name", "must not be empty"));
        }
        let dc = flags.dc.or(file.dc).unwrap_or_else(|| "default".into());
        if dc.is_empty() {
            return Err(bad("dc", "must not be empty"));
        }
        let mut labels = file.labels;
        for l in &flags.labels {
            let (k, v) = parse_label(l).map_err(|m| bad("label", m))?;
            labels.insert(k, v);
        }
        let seed_texts = if flags.seeds.is_empty() { file.seeds } else { flags.seeds };
        let seeds = seed_texts
            .iter()
            .map(|s| parse_seed(s))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|m| bad("seed", m))?;
        let state_dir = flags.state_dir.or(file.state_dir).unwrap_or_else(|| DEFAULT_STATE_DIR.into());
        if !state_dir.is_absolute() {
            return Err(bad("state-dir", format!("{} is not an absolute path", state_dir.display())));
        }
        if state_dir.exists() && !state_dir.is_dir() {
            return Err(bad("state-dir", format!("{} exists and is not a directory", state_dir.display())));
        }
        let api_text = flags.api.or(file.api).unwrap_or_else(|| DEFAULT_API.into());
        let api = api_text
            .parse()
            .map_err(|_| bad("api", format!("{api_text:?} is not an address like 0.0.0.0:7442")))?;
        let socket = flags.socket.or(file.socket).unwrap_or_else(|| DEFAULT_SOCKET.into());
        if !socket.is_absolute() {
            return Err(bad("socket", format!("{} is not an absolute path", socket.display())));
        }
        let mut peers = BTreeMap::new();
        let flag_peers = flags.peers.iter().map(|p| {
            p.split_once('=')
                .map(|(n, a)| (n.to_string(), a.to_string()))
                .ok_or_else(|| bad("peer", format!("{p:?} is not NAME=ADDR")))
        });
        for entry in file.peers.into_iter().map(Ok).chain(flag_peers) {
            let (peer_name, addr) = entry?;
            if peer_name.is_empty() {
                return Err(bad("peer", format!("empty host name in {peer_name}={addr}")));
            }
            let addr = parse_seed(&addr).map_err(|m| bad("peer", format!("{peer_name}: {m}")))?;
            peers.insert(peer_name, addr);
        }
        let runtime = flags.runtime.or(file.runtime).unwrap_or_else(|| "runc".into());
        if !(runtime == "runc"
            || runtime == "crun"
            || (runtime.starts_with('/') && Path::new(&runtime).is_file()))
        {
            return Err(bad(
                "runtime",
                format!("{runtime:?} is not runc, crun or the absolute path of a runtime binary"),
            ));
        }
        let k2i = flags.k2i.or(file.k2i).unwrap_or_default();
        if !k2i.is_empty() {
            let rest = k2i.strip_prefix("https://").unwrap_or_default().trim_end_matches('/');
            if rest.is_empty() || rest.contains(['/', ' ']) || !rest.contains(':') {
                return Err(bad("k2i", format!("{k2i:?} is not a URL like https://10.0.0.5:7440")));
            }
        }
        let k2i = k2i.trim_end_matches('/').to_string();
        let access = Access::from_table(&file.access).map_err(|m| bad("access", m))?;
        Ok(Config {
            listen,
            identity,
            name,
            dc,
            labels,
            seeds,
            state_dir,
            api,
            socket,
            peers,
            k2i,
            access,
            runtime,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dcos_core::pki::{self, LeafSpec};

    fn certs() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        pki::init_dir(dir.path()).unwrap();
        pki::issue_into_dir(dir.path(), &LeafSpec::new("h1", Role::Host)).unwrap();
        dir
    }

    fn flags(dir: &std::path::Path) -> Flags {
        Flags {
            cert: Some(dir.join("h1.crt")),
            key: Some(dir.join("h1.key")),
            ca: Some(dir.join("ca.crt")),
            ..Flags::default()
        }
    }

    #[test]
    fn defaults_and_flags_over_file() {
        let dir = certs();
        let cfg_path = dir.path().join("middlecon.toml");
        std::fs::write(
            &cfg_path,
            "dc = \"eu-1\"\nname = \"from-file\"\nseeds = [\"10.0.0.1\"]\n[labels]\nrack = \"r7\"\n",
        )
        .unwrap();
        let mut f = flags(dir.path());
        f.config = Some(cfg_path);
        f.name = Some("from-flag".into());
        f.labels = vec!["zone=a".into()];
        let c = Config::from_flags(f).unwrap();
        assert_eq!(c.listen.to_string(), DEFAULT_LISTEN);
        assert_eq!(c.name, "from-flag");
        assert_eq!(c.dc, "eu-1");
        assert_eq!(c.seeds, vec!["10.0.0.1:7441".parse::<SocketAddr>().unwrap()]);
        assert_eq!(c.state_dir, PathBuf::from(DEFAULT_STATE_DIR));
        assert_eq!(c.labels.get("rack").map(String::as_str), Some("r7"));
        assert_eq!(c.labels.get("zone").map(String::as_str), Some("a"));
    }

    #[test]
    fn each_bad_setting_is_named() {
        let dir = certs();
        type Change = Box<dyn Fn(&mut Flags)>;
        let cases: Vec<(&str, Change)> = vec![
            ("listen", Box::new(|f| f.listen = Some("nope".into()))),
            ("label", Box::new(|f| f.labels = vec!["novalue".into()])),
            ("seed", Box::new(|f| f.seeds = vec!["host-1:x".into()])),
            ("cert", Box::new(|f| f.cert = None)),
            ("key", Box::new(|f| f.key = Some("/nonexistent.key".into()))),
            ("ca", Box::new(|f| f.ca = Some("/nonexistent/ca.crt".into()))),
            ("state-dir", Box::new(|f| f.state_dir = Some("relative/dir".into()))),
            ("name", Box::new(|f| f.name = Some(String::new()))),
            ("api", Box::new(|f| f.api = Some("7442".into()))),
            ("socket", Box::new(|f| f.socket = Some("api.sock".into()))),
            ("peer", Box::new(|f| f.peers = vec!["host-1".into()])),
            ("peer", Box::new(|f| f.peers = vec!["host-1=nowhere".into()])),
            ("runtime", Box::new(|f| f.runtime = Some("docker".into()))),
            ("runtime", Box::new(|f| f.runtime = Some("/nonexistent/runc".into()))),
            ("k2i", Box::new(|f| f.k2i = Some("10.0.0.5:7440".into()))),
        ];
        for (setting, change) in cases {
            let mut f = flags(dir.path());
            change(&mut f);
            let err = Config::from_flags(f).unwrap_err();
            assert_eq!(err.setting, setting, "{err}");
        }
    }

    #[test]
    fn access_rules_come_from_the_file_and_bad_roles_stop_the_daemon() {
        let dir = certs();
        let cfg_path = dir.path().join("middlecon.toml");
        let mut f = flags(dir.path());
        f.config = Some(cfg_path.clone());
        std::fs::write(
            &cfg_path,
            "[access]\n\"admin.*\" = [\"admin\"]\n\"demo.echo\" = [\"viewer\", \"host\"]\n",
        )
        .unwrap();
        let c = Config::from_flags(f).unwrap();
        assert!(c.access.check("admin.reboot", Role::Host).is_err());
        assert!(c.access.check("demo.echo", Role::Viewer).is_ok());
        std::fs::write(&cfg_path, "[access]\n\"admin.*\" = [\"root\"]\n").unwrap();
        let mut f = flags(dir.path());
        f.config = Some(cfg_path);
        let err = Config::from_flags(f).unwrap_err();
        assert_eq!(err.setting, "access", "{err}");
        assert!(err.message.contains("root") && err.message.contains("admin.*"), "{err}");
    }

    #[test]
    fn only_host_certificates_run_middlecon() {
        let dir = certs();
        let mut f = flags(dir.path());
        f.cert = Some(dir.path().join("admin.crt"));
        f.key = Some(dir.path().join("admin.key"));
        let err = Config::from_flags(f).unwrap_err();
        assert_eq!(err.setting, "cert");
        assert!(err.message.contains("role admin"), "{err}");
    }
}
