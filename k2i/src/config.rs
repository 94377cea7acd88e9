//! k2i's settings: command-line flags over a TOML file over defaults, parsed and validated
//! completely before any port is bound. Every error names the setting at fault.

use crate::sysctl::AllowList;
use clap::Parser;
pub use dcos_core::settings::ConfigError;
use dcos_core::settings::{bad, hostname, load_identity, parse_label, read_toml, tls_files};
use dcos_core::tls::Identity;
use dcos_core::tokens::Tokens;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Command-line flags (SPEC section 3). Every one may also be set in `--config`.
#[derive(Debug, Default, Parser)]
#[command(
    name = "k2i",
    version,
    about = "Serves this host's processes, containers and kernel parameters as JSON over HTTPS (mTLS)."
)]
pub struct Flags {
    /// Address to listen on [default: 0.0.0.0:7440].
    #[arg(long)]
    pub listen: Option<String>,
    /// This host's certificate (PEM), issued by `dcos certs issue`.
    #[arg(long)]
    pub cert: Option<PathBuf>,
    /// Private key of --cert (PEM).
    #[arg(long)]
    pub key: Option<PathBuf>,
    /// The fleet CA certificate (PEM); client certificates must chain to it.
    #[arg(long)]
    pub ca: Option<PathBuf>,
    /// Host name reported [default: the hostname].
    #[arg(long)]
    pub name: Option<String>,
    /// Datacenter [default: default].
    #[arg(long)]
    pub dc: Option<String>,
    /// A label, K=V; repeat for more.
    #[arg(long = "label", value_name = "K=V")]
    pub labels: Vec<String>,
    /// How often the process table is sampled, e.g. 1s, 500ms [default: 1s].
    #[arg(long)]
    pub sample_interval: Option<String>,
    /// Sampling interval once nobody has asked for --idle-after [default: 30s].
    #[arg(long)]
    pub idle_interval: Option<String>,
    /// How long without requests before sampling slows to --idle-interval [default: 60s].
    #[arg(long)]
    pub idle_after: Option<String>,
    /// Bearer tokens file: lines of `<sha256 hex> <role> [label]`.
    #[arg(long)]
    pub tokens: Option<PathBuf>,
    /// sysctl keys admins may write: comma-separated patterns, `*` matches within and across dots.
    #[arg(long, value_delimiter = ',')]
    pub sysctl_allow: Vec<String>,
    /// Append sysctl writes as JSON lines to this file (they are always logged too).
    #[arg(long)]
    pub audit_log: Option<PathBuf>,
    /// An OCI runtime state root to read container names from, RUNTIME=DIR (runc or crun);
    /// repeat for more [default: runc=/run/runc, crun=/run/crun].
    #[arg(long = "oci-root", value_name = "RUNTIME=DIR")]
    pub oci_roots: Vec<String>,
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
    pub sample_interval: Option<String>,
    pub idle_interval: Option<String>,
    pub idle_after: Option<String>,
    pub tokens: Option<PathBuf>,
    #[serde(default)]
    pub sysctl_allow: Vec<String>,
    pub audit_log: Option<PathBuf>,
    #[serde(default)]
    pub oci_roots: BTreeMap<String, PathBuf>,
}

/// Everything k2i needs, validated.
#[derive(Debug)]
pub struct Config {
    pub listen: SocketAddr,
    pub identity: Identity,
    pub name: String,
    pub dc: String,
    pub labels: BTreeMap<String, String>,
    pub sample_interval: Duration,
    pub idle_interval: Duration,
    pub idle_after: Duration,
    pub tokens: Tokens,
    pub sysctl_allow: AllowList,
    pub audit_log: Option<PathBuf>,
    pub oci_roots: Vec<(dcos_core::model::Runtime, PathBuf)>,
}

pub const DEFAULT_LISTEN: &str = "0.0.0.0:7440";

fn duration(
    setting: &'static str,
    text: &str,
    min: Duration,
    max: Duration,
) -> Result<Duration, ConfigError> {
    let d = humantime::parse_duration(text)
        .map_err(|e| bad(setting, format!("{text:?} is not a duration like 1s or 500ms ({e})")))?;
    if d < min || d > max {
        return Err(bad(setting, format!("{text} is outside {min:?}..={max:?}")));
    }
    Ok(d)
}

impl Config {
    /// Merges flags over the config file and checks everything, including that the TLS
    /// files load and the certificate is valid now.
    pub fn from_flags(flags: Flags) -> Result<Config, ConfigError> {
        let file: FileConfig = read_toml(flags.config.as_deref())?;
        let listen_text = flags.listen.or(file.listen).unwrap_or_else(|| DEFAULT_LISTEN.into());
        let listen = listen_text
            .parse()
            .map_err(|_| bad("listen", format!("{listen_text:?} is not an address like 0.0.0.0:7440")))?;
        let files = tls_files(flags.cert.or(file.cert), flags.key.or(file.key), flags.ca.or(file.ca))?;
        let identity = load_identity(&files)?;
        let name = flags.name.or(file.name).unwrap_or_else(hostname);
        if name.is_empty() {
            return Err(bad("name", "must not be empty"));
        }
        let dc = flags.dc.or(file.dc).unwrap_or_else(|| "default".into());
        let mut labels = file.labels;
        for l in &flags.labels {
            let (k, v) = parse_label(l).map_err(|m| bad("label", m))?;
            labels.insert(k, v);
        }
        let sample_interval = duration(
            "sample-interval",
            &flags.sample_interval.or(file.sample_interval).unwrap_or_else(|| "1s".into()),
            Duration::from_millis(50),
            Duration::from_secs(3600),
        )?;
        let idle_interval = duration(
            "idle-interval",
            &flags.idle_interval.or(file.idle_interval).unwrap_or_else(|| "30s".into()),
            Duration::from_millis(50),
            Duration::from_secs(3600),
        )?
        .max(sample_interval);
        let idle_after = duration(
            "idle-after",
            &flags.idle_after.or(file.idle_after).unwrap_or_else(|| "60s".into()),
            Duration::from_millis(100),
            Duration::from_secs(86400),
        )?;
        let tokens = match flags.tokens.or(file.tokens) {
            Some(p) => Tokens::load(&p).map_err(|e| bad("tokens", e.to_string()))?,
            None => Tokens::default(),
        };
        let patterns = if flags.sysctl_allow.is_empty() { file.sysctl_allow } else { flags.sysctl_allow };
        let sysctl_allow = AllowList::new(&patterns).map_err(|m| bad("sysctl-allow", m))?;
        let mut roots: Vec<(String, PathBuf)> = file.oci_roots.into_iter().collect();
        for r in &flags.oci_roots {
            let (k, v) =
                r.split_once('=').ok_or_else(|| bad("oci-root", format!("{r:?} is not RUNTIME=DIR")))?;
            roots.push((k.to_string(), PathBuf::from(v)));
        }
        let oci_roots = if roots.is_empty() {
            crate::containers::CatalogConfig::default().oci_roots
        } else {
            roots
                .into_iter()
                .map(|(k, v)| match k.as_str() {
                    "runc" => Ok((dcos_core::model::Runtime::Runc, v)),
                    "crun" => Ok((dcos_core::model::Runtime::Crun, v)),
                    other => Err(bad("oci-root", format!("unknown runtime {other:?}: runc or crun"))),
                })
                .collect::<Result<_, _>>()?
        };
        Ok(Config {
            listen,
            identity,
            name,
            dc,
            labels,
            sample_interval,
            idle_interval,
            idle_after,
            tokens,
            sysctl_allow,
            audit_log: flags.audit_log.or(file.audit_log),
            oci_roots,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn certs() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        dcos_core::pki::init_dir(dir.path()).unwrap();
        dir
    }

    fn flags(dir: &std::path::Path) -> Flags {
        Flags {
            cert: Some(dir.join("admin.crt")),
            key: Some(dir.join("admin.key")),
            ca: Some(dir.join("ca.crt")),
            ..Flags::default()
        }
    }

    #[test]
    fn defaults_and_flags_over_file() {
        let dir = certs();
        let cfg_path = dir.path().join("k2i.toml");
        std::fs::write(
            &cfg_path,
            "dc = \"eu-1\"\nname = \"from-file\"\nsample_interval = \"2s\"\n[labels]\nrack = \"r7\"\n",
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
        assert_eq!(c.sample_interval, Duration::from_secs(2));
        assert_eq!(c.labels.get("rack").map(String::as_str), Some("r7"));
        assert_eq!(c.labels.get("zone").map(String::as_str), Some("a"));
    }

    #[test]
    fn each_bad_setting_is_named() {
        let dir = certs();
        type Change = Box<dyn Fn(&mut Flags)>;
        let cases: Vec<(&str, Change)> = vec![
            ("listen", Box::new(|f| f.listen = Some("nope".into()))),
            ("sample-interval", Box::new(|f| f.sample_interval = Some("fast".into()))),
            ("sample-interval", Box::new(|f| f.sample_interval = Some("1ms".into()))),
            ("label", Box::new(|f| f.labels = vec!["novalue".into()])),
            ("cert", Box::new(|f| f.cert = None)),
            ("key", Box::new(|f| f.key = Some("/nonexistent.key".into()))),
            ("tokens", Box::new(|f| f.tokens = Some("/nonexistent/tokens".into()))),
            ("sysctl-allow", Box::new(|f| f.sysctl_allow = vec!["kernel/../x".into()])),
            ("oci-root", Box::new(|f| f.oci_roots = vec!["docker=/x".into()])),
        ];
        for (setting, change) in cases {
            let mut f = flags(dir.path());
            change(&mut f);
            let err = Config::from_flags(f).unwrap_err();
            assert_eq!(err.setting, setting, "{err}");
        }
    }

    #[test]
    fn unknown_keys_in_the_file_are_refused() {
        let dir = certs();
        let p = dir.path().join("bad.toml");
        std::fs::write(&p, "lisen = \"0.0.0.0:1\"\n").unwrap();
        let mut f = flags(dir.path());
        f.config = Some(p);
        let err = Config::from_flags(f).unwrap_err();
        assert_eq!(err.setting, "config");
        assert!(err.message.contains("lisen"), "{err}");
    }
}
