//! middlecon's settings: command-line flags over a TOML file over defaults, parsed and
//! validated completely before the UDP port is bound. Every error names the setting.

use crate::access::Access;
use dcos_core::reload::ReloadableIdentity;
pub use dcos_core::settings::ConfigError;
use dcos_core::settings::{
    address, bad, load_reloadable, name, pairs, parse_label, split_pair, tls_files, Pair,
};
use dcos_core::Role;
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

dcos_core::settings! {
    /// middlecon's settings (SPEC section 4): each is a flag and, by the same name in
    /// snake_case, a key of the `--config` file, which alone holds the `[access]` rules.
    #[command(
        name = "middlecon",
        version,
        about = "Request/reply between the fleet's hosts over QUIC (mTLS).",
        after_help = "`middlecon purge --help`: remove what a stopped middlecon left on this machine."
    )]
    pub struct Settings {
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
        /// The fleet CA's revocation list (PEM, `dcos certs revoke`); revoked peers and API
        /// clients fail the handshake [default: crl.pem beside --ca, once it exists].
        #[arg(long)]
        pub crl: Option<PathBuf>,
        /// Host name [default: the hostname].
        #[arg(long)]
        pub name: Option<String>,
        /// Datacenter [default: default].
        #[arg(long)]
        pub dc: Option<String>,
        /// A label, K=V; repeat for more.
        #[arg(long = "label", value_name = "K=V")]
        #[serde(deserialize_with = "dcos_core::settings::table")]
        pub labels: Vec<Pair<String>>,
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
        #[serde(deserialize_with = "dcos_core::settings::table")]
        pub peers: Vec<Pair<String>>,
        /// OCI runtime for workloads that name none: runc, crun, runsc or a path [default: runc].
        #[arg(long)]
        pub runtime: Option<String>,
        /// This host's k2i, https://ADDR:PORT, advertised to the fleet in membership (so
        /// `dcos --seed` can reach every host's k2i).
        #[arg(long)]
        pub k2i: Option<String>,
        /// How a service's ready instances get their connections: `kernel` (NAT rules steer
        /// them, the front out of their path; relayed when this host cannot) or `relay`
        /// (the front relays every byte) [default: kernel].
        #[arg(long)]
        pub service_steering: Option<String>,
        /// Service pattern -> roles allowed to call it (see [`crate::access`]); file only.
        #[arg(skip)]
        pub access: BTreeMap<String, Vec<String>>,
    }
}

/// Everything middlecon needs, validated.
#[derive(Debug)]
pub struct Config {
    pub listen: SocketAddr,
    /// Read again on SIGHUP and when its files change (`dcos_core::reload::watch`); it
    /// must stay a `host` certificate.
    pub identity: std::sync::Arc<ReloadableIdentity>,
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
    pub steering: Steering,
}

/// How a service's ready instances get their connections (`--service-steering`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Steering {
    /// NAT rules steer them; the front counts them (`crate::services::steer`).
    Kernel,
    /// The front relays every connection.
    Relay,
}

pub const DEFAULT_LISTEN: &str = "0.0.0.0:7441";
pub const DEFAULT_PORT: u16 = dcos_proto::DEFAULT_PEER_PORT;
pub const DEFAULT_STATE_DIR: &str = "/var/lib/middlecon";
pub const DEFAULT_API: &str = "0.0.0.0:7442";
pub const DEFAULT_API_PORT: u16 = dcos_proto::DEFAULT_API_PORT;
pub const DEFAULT_SOCKET: &str = dcos_proto::DEFAULT_SOCKET;

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
    /// Merges the flags over the `--config` file and checks everything, including that the
    /// TLS files load, the certificate is valid now and carries the `host` role.
    pub fn from_flags(flags: Settings) -> Result<Config, ConfigError> {
        let s = flags.over_file()?;
        let listen = address("listen", s.listen, DEFAULT_LISTEN)?;
        let files = tls_files(s.cert, s.key, s.ca)?;
        let identity = load_reloadable(files, s.crl, Some(Role::Host))?;
        let name = name(s.name)?;
        let dc = s.dc.unwrap_or_else(|| "default".into());
        if dc.is_empty() {
            return Err(bad("dc", "must not be empty"));
        }
        let labels = pairs("label", s.labels, parse_label).collect::<Result<_, _>>()?;
        let seeds =
            s.seeds.iter().map(|s| parse_seed(s)).collect::<Result<_, _>>().map_err(|m| bad("seed", m))?;
        let state_dir = s.state_dir.unwrap_or_else(|| DEFAULT_STATE_DIR.into());
        if !state_dir.is_absolute() {
            return Err(bad("state-dir", format!("{} is not an absolute path", state_dir.display())));
        }
        if state_dir.exists() && !state_dir.is_dir() {
            return Err(bad("state-dir", format!("{} exists and is not a directory", state_dir.display())));
        }
        let api = address("api", s.api, DEFAULT_API)?;
        let socket = s.socket.unwrap_or_else(|| DEFAULT_SOCKET.into());
        if !socket.is_absolute() {
            return Err(bad("socket", format!("{} is not an absolute path", socket.display())));
        }
        let mut peers = BTreeMap::new();
        for entry in pairs("peer", s.peers, |p| split_pair(p, "NAME=ADDR")) {
            let (peer_name, addr): (String, String) = entry?;
            if peer_name.is_empty() {
                return Err(bad("peer", format!("empty host name in {peer_name}={addr}")));
            }
            let addr = parse_seed(&addr).map_err(|m| bad("peer", format!("{peer_name}: {m}")))?;
            peers.insert(peer_name, addr);
        }
        let runtime = s.runtime.unwrap_or_else(|| "runc".into());
        if !(crate::workloads::classes::named(&runtime).is_some()
            || (runtime.starts_with('/') && Path::new(&runtime).is_file()))
        {
            return Err(bad(
                "runtime",
                format!(
                    "{runtime:?} is not a runtime class ({}) or the absolute path of a runtime binary",
                    crate::workloads::classes::names()
                ),
            ));
        }
        let k2i = s.k2i.unwrap_or_default();
        if !k2i.is_empty() {
            let rest = k2i.strip_prefix("https://").unwrap_or_default().trim_end_matches('/');
            if rest.is_empty() || rest.contains(['/', ' ']) || !rest.contains(':') {
                return Err(bad("k2i", format!("{k2i:?} is not a URL like https://10.0.0.5:7440")));
            }
        }
        let k2i = k2i.trim_end_matches('/').to_string();
        let access = Access::from_table(&s.access).map_err(|m| bad("access", m))?;
        let steering = match s.service_steering.as_deref().unwrap_or("kernel") {
            "kernel" => Steering::Kernel,
            "relay" => Steering::Relay,
            other => return Err(bad("service-steering", format!("{other:?} is neither kernel nor relay"))),
        };
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
            steering,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{CommandFactory, Parser};
    use dcos_core::pki::{self, LeafSpec};
    use dcos_core::settings::testing::{
        assert_described, assert_each_named, assert_files_fault, command_line,
    };

    fn certs() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        pki::init_dir(dir.path()).unwrap();
        pki::issue_into_dir(dir.path(), &LeafSpec::new("h1", Role::Host)).unwrap();
        dir
    }

    /// middlecon with `args` and `file` as its `--config`, host h1's TLS files unless given.
    fn load(dir: &Path, args: &[&str], file: &str) -> Result<Config, ConfigError> {
        let tls = [("cert", dir.join("h1.crt")), ("key", dir.join("h1.key")), ("ca", dir.join("ca.crt"))];
        Config::from_flags(Settings::parse_from(command_line("middlecon", dir, &tls, args, file)))
    }

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn defaults_then_the_file_then_the_flags() {
        let dir = certs();
        let c = load(dir.path(), &[], "").unwrap();
        assert_eq!((c.listen, c.api), (addr(DEFAULT_LISTEN), addr(DEFAULT_API)));
        assert_eq!(
            (c.state_dir.to_str(), c.socket.to_str()),
            (Some(DEFAULT_STATE_DIR), Some(DEFAULT_SOCKET))
        );
        assert_eq!((c.dc.as_str(), c.runtime.as_str(), c.k2i.as_str()), ("default", "runc", ""));
        assert!(c.seeds.is_empty() && c.peers.is_empty() && c.labels.is_empty());

        let file = r#"
            dc = "eu-1"
            name = "from-file"
            seeds = ["10.0.0.1"]
            runtime = "crun"
            k2i = "https://10.0.0.9:7440/"
            [labels]
            rack = "r7"
            zone = "b"
            [peers]
            h2 = "10.0.0.2"
            h3 = "10.0.0.3:9"
        "#;
        let c = load(dir.path(), &[], file).unwrap();
        assert_eq!((c.name.as_str(), c.dc.as_str(), c.runtime.as_str()), ("from-file", "eu-1", "crun"));
        assert_eq!(c.seeds, [addr("10.0.0.1:7441")]);
        assert_eq!(c.k2i, "https://10.0.0.9:7440");
        assert_eq!((c.labels["rack"].as_str(), c.peers["h3"]), ("r7", addr("10.0.0.3:9")));

        let flags = [
            "--name",
            "from-flag",
            "--label",
            "zone=a",
            "--seed",
            "10.0.0.7:1",
            "--peer",
            "h2=10.0.0.22",
            "--peer",
            "h4=10.0.0.4",
            "--api",
            "127.0.0.1:0",
            "--socket",
            "/tmp/m.sock",
            "--state-dir",
            "/tmp/m",
        ];
        let c = load(dir.path(), &flags, "").unwrap();
        assert_eq!(
            (c.name.as_str(), c.api, c.seeds.as_slice()),
            ("from-flag", addr("127.0.0.1:0"), &[addr("10.0.0.7:1")][..])
        );
        assert_eq!((c.socket.to_str(), c.state_dir.to_str()), (Some("/tmp/m.sock"), Some("/tmp/m")));

        let c = load(dir.path(), &flags, file).unwrap();
        assert_eq!((c.name.as_str(), c.dc.as_str()), ("from-flag", "eu-1"), "flags win, the file fills in");
        assert_eq!(c.seeds, [addr("10.0.0.7:1")], "seeds given as flags replace the file's");
        assert_eq!((c.labels["rack"].as_str(), c.labels["zone"].as_str()), ("r7", "a"));
        let peers: Vec<_> = c.peers.iter().map(|(n, a)| (n.as_str(), *a)).collect();
        let expected =
            [("h2", addr("10.0.0.22:7441")), ("h3", addr("10.0.0.3:9")), ("h4", addr("10.0.0.4:7441"))];
        assert_eq!(peers, expected, "a flag wins for its host, the file's others stay");
    }

    #[test]
    fn each_bad_setting_is_named_from_either_source() {
        let dir = certs();
        assert_each_named(
            &[
                ("listen", &["--listen", "nope"], "listen = \"nope\""),
                ("label", &["--label", "novalue"], ""),
                ("seed", &["--seed", "host-1:x"], "seeds = [\"host-1:x\"]"),
                ("key", &["--key", "/nonexistent.key"], "key = \"/nonexistent.key\""),
                ("ca", &["--ca", "/nonexistent/ca.crt"], "ca = \"/nonexistent/ca.crt\""),
                ("state-dir", &["--state-dir", "relative/dir"], "state_dir = \"relative/dir\""),
                ("name", &["--name", ""], "name = \"\""),
                ("dc", &["--dc", ""], "dc = \"\""),
                ("api", &["--api", "7442"], "api = \"7442\""),
                ("socket", &["--socket", "api.sock"], "socket = \"api.sock\""),
                ("peer", &["--peer", "host-1"], ""),
                ("peer", &["--peer", "host-1=nowhere"], "[peers]\nhost-1 = \"nowhere\""),
                ("peer", &["--peer", "=10.0.0.1"], "[peers]\n\"\" = \"10.0.0.1\""),
                ("runtime", &["--runtime", "docker"], "runtime = \"docker\""),
                ("runtime", &["--runtime", "/nonexistent/runc"], "runtime = \"/nonexistent/runc\""),
                ("k2i", &["--k2i", "10.0.0.5:7440"], "k2i = \"10.0.0.5:7440\""),
            ],
            |flags, file| load(dir.path(), flags, file),
        );
        let no_cert = ["middlecon", "--key", "k", "--ca", "a"];
        assert_eq!(Config::from_flags(Settings::parse_from(no_cert)).unwrap_err().setting, "cert");
    }

    #[test]
    fn unknown_keys_values_of_the_wrong_type_and_a_missing_file_are_the_files_fault() {
        let dir = certs();
        assert_files_fault(
            &[
                ("lisen = \"0.0.0.0:1\"\n", "lisen"),
                ("config = \"x.toml\"\n", "config"),
                ("peers = [\"h\"]\n", "peers"),
            ],
            |flags, file| load(dir.path(), flags, file),
        );
        let missing = Settings::parse_from(["middlecon", "--config", "/nonexistent/middlecon.toml"]);
        assert_eq!(Config::from_flags(missing).unwrap_err().setting, "config");
    }

    #[test]
    fn access_rules_come_from_the_file_and_bad_roles_stop_the_daemon() {
        let dir = certs();
        let rules = "[access]\n\"admin.*\" = [\"admin\"]\n\"demo.echo\" = [\"viewer\", \"host\"]\n";
        let c = load(dir.path(), &[], rules).unwrap();
        assert!(c.access.check("admin.reboot", Role::Host).is_err());
        assert!(c.access.check("demo.echo", Role::Viewer).is_ok());
        let err = load(dir.path(), &[], "[access]\n\"admin.*\" = [\"root\"]\n").unwrap_err();
        assert_eq!(err.setting, "access", "{err}");
        assert!(err.message.contains("root") && err.message.contains("admin.*"), "{err}");
        let err = Settings::try_parse_from(["middlecon", "--access", "x"]).unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::UnknownArgument, "the rules are the file's alone");
    }

    #[test]
    fn only_host_certificates_run_middlecon() {
        let dir = certs();
        let admin = dir.path().join("admin");
        let args =
            ["--cert", &format!("{}.crt", admin.display()), "--key", &format!("{}.key", admin.display())];
        let err = load(dir.path(), &args, "").unwrap_err();
        assert_eq!(err.setting, "cert");
        assert!(err.message.contains("role admin"), "{err}");
    }

    #[test]
    fn every_option_says_what_it_is_and_its_default() {
        let cmd = Settings::command();
        let options = cmd.get_arguments().map(|a| (a.get_id().as_str(), a.get_help().is_some()));
        assert_described(
            options,
            &cmd.clone().render_long_help().to_string(),
            &[DEFAULT_LISTEN, DEFAULT_API, DEFAULT_STATE_DIR, DEFAULT_SOCKET],
        );
    }
}
