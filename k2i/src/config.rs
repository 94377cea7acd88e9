//! k2i's settings: command-line flags over a TOML file over defaults, parsed and validated
//! completely before any port is bound. Every error names the setting at fault.

use crate::sysctl::AllowList;
use dcos_core::reload::ReloadableIdentity;
pub use dcos_core::settings::ConfigError;
use dcos_core::settings::{
    address, bad, load_reloadable, name, pairs, parse_label, split_pair, tls_files, Pair,
};
use dcos_core::tokens::Tokens;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

dcos_core::settings! {
    /// k2i's settings (SPEC section 3): each is a flag and, by the same name in snake_case,
    /// a key of the `--config` file.
    #[command(
        name = "k2i",
        version,
        about = "Serves this host's processes, containers and kernel parameters as JSON over HTTPS (mTLS)."
    )]
    pub struct Settings {
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
        /// The fleet CA's revocation list (PEM, `dcos certs revoke`); revoked client
        /// certificates fail the handshake [default: crl.pem beside --ca, once it exists].
        #[arg(long)]
        pub crl: Option<PathBuf>,
        /// Host name reported [default: the hostname].
        #[arg(long)]
        pub name: Option<String>,
        /// Datacenter [default: default].
        #[arg(long)]
        pub dc: Option<String>,
        /// A label, K=V; repeat for more.
        #[arg(long = "label", value_name = "K=V")]
        #[serde(deserialize_with = "dcos_core::settings::table")]
        pub labels: Vec<Pair<String>>,
        /// How often the process table is sampled, e.g. 1s, 500ms [default: 1s].
        #[arg(long)]
        pub sample_interval: Option<String>,
        /// Sampling interval when no request asks for a sample [default: 30s].
        #[arg(long)]
        pub idle_interval: Option<String>,
        /// No longer used: sampling follows the requests. Still accepted (and checked), so older
        /// settings load [default: 60s].
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
        #[serde(deserialize_with = "dcos_core::settings::table")]
        pub oci_roots: Vec<Pair<PathBuf>>,
        /// A web origin whose pages may read k2i (CORS), e.g. https://grafana.example:3000,
        /// or `*`; repeat or comma-separate for more [default: none, no CORS headers].
        #[arg(long = "cors-origin", value_name = "ORIGIN", value_delimiter = ',')]
        pub cors_origins: Vec<String>,
    }
}

/// Everything k2i needs, validated.
#[derive(Debug)]
pub struct Config {
    pub listen: SocketAddr,
    /// Read again on SIGHUP and when its files change (`dcos_core::reload::watch`).
    pub identity: std::sync::Arc<ReloadableIdentity>,
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
    pub cors_origins: crate::cors::Origins,
}

pub const DEFAULT_LISTEN: &str = "0.0.0.0:7440";

/// `text` (or `default`) as a duration within `min..=max`.
fn duration(
    setting: &'static str,
    text: Option<String>,
    default: &str,
    min: Duration,
    max: Duration,
) -> Result<Duration, ConfigError> {
    let text = text.unwrap_or_else(|| default.into());
    let d = humantime::parse_duration(&text)
        .map_err(|e| bad(setting, format!("{text:?} is not a duration like 1s or 500ms ({e})")))?;
    if d < min || d > max {
        return Err(bad(setting, format!("{text} is outside {min:?}..={max:?}")));
    }
    Ok(d)
}

impl Config {
    /// Merges the flags over the `--config` file and checks everything, including that the
    /// TLS files load and the certificate is valid now.
    pub fn from_flags(flags: Settings) -> Result<Config, ConfigError> {
        let s = flags.over_file()?;
        let listen = address("listen", s.listen, DEFAULT_LISTEN)?;
        let identity = load_reloadable(tls_files(s.cert, s.key, s.ca)?, s.crl, None)?;
        let name = name(s.name)?;
        let dc = s.dc.unwrap_or_else(|| "default".into());
        let labels = pairs("label", s.labels, parse_label).collect::<Result<_, _>>()?;
        let (fastest, hour) = (Duration::from_millis(50), Duration::from_secs(3600));
        let sample_interval = duration("sample-interval", s.sample_interval, "1s", fastest, hour)?;
        let idle_interval =
            duration("idle-interval", s.idle_interval, "30s", fastest, hour)?.max(sample_interval);
        let idle_after = duration(
            "idle-after",
            s.idle_after,
            "60s",
            Duration::from_millis(100),
            Duration::from_secs(86400),
        )?;
        let tokens = match s.tokens {
            Some(p) => Tokens::load(&p).map_err(|e| bad("tokens", e.to_string()))?,
            None => Tokens::default(),
        };
        let sysctl_allow = AllowList::new(&s.sysctl_allow).map_err(|m| bad("sysctl-allow", m))?;
        let roots: Vec<(String, PathBuf)> =
            pairs("oci-root", s.oci_roots, |r| split_pair(r, "RUNTIME=DIR")).collect::<Result<_, _>>()?;
        let oci_roots = if roots.is_empty() {
            crate::containers::CatalogConfig::default().oci_roots
        } else {
            roots
                .into_iter()
                .map(|(k, v)| match k.as_str() {
                    "runc" => Ok((dcos_core::model::Runtime::Runc, v)),
                    "crun" => Ok((dcos_core::model::Runtime::Crun, v)),
                    "runsc" => Ok((dcos_core::model::Runtime::Runsc, v)),
                    other => Err(bad("oci-root", format!("unknown runtime {other:?}: runc, crun or runsc"))),
                })
                .collect::<Result<_, _>>()?
        };
        let cors_origins = crate::cors::Origins::new(&s.cors_origins).map_err(|m| bad("cors-origin", m))?;
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
            audit_log: s.audit_log,
            oci_roots,
            cors_origins,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{CommandFactory, Parser};
    use dcos_core::model::Runtime;
    use dcos_core::settings::testing::{
        assert_described, assert_each_named, assert_files_fault, command_line,
    };
    use std::path::Path;

    fn certs() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        dcos_core::pki::init_dir(dir.path()).unwrap();
        dir
    }

    /// k2i with `args` and `file` as its `--config`, the TLS files of `dir` unless given.
    fn load(dir: &Path, args: &[&str], file: &str) -> Result<Config, ConfigError> {
        let tls =
            [("cert", dir.join("admin.crt")), ("key", dir.join("admin.key")), ("ca", dir.join("ca.crt"))];
        Config::from_flags(Settings::parse_from(command_line("k2i", dir, &tls, args, file)))
    }

    #[test]
    fn defaults_then_the_file_then_the_flags() {
        let dir = certs();
        let c = load(dir.path(), &[], "").unwrap();
        assert_eq!(c.listen.to_string(), DEFAULT_LISTEN);
        assert_eq!((c.dc.as_str(), c.sample_interval), ("default", Duration::from_secs(1)));
        assert_eq!((c.idle_interval, c.idle_after), (Duration::from_secs(30), Duration::from_secs(60)));
        assert_eq!(c.oci_roots, crate::containers::CatalogConfig::default().oci_roots);
        assert!(c.labels.is_empty() && c.audit_log.is_none());

        let file = r#"
            listen = "127.0.0.1:1"
            dc = "eu-1"
            name = "from-file"
            sample_interval = "2s"
            sysctl_allow = ["vm.*"]
            [labels]
            rack = "r7"
            zone = "b"
            [oci_roots]
            crun = "/f"
        "#;
        let c = load(dir.path(), &[], file).unwrap();
        assert_eq!((c.listen.to_string().as_str(), c.name.as_str()), ("127.0.0.1:1", "from-file"));
        assert_eq!((c.dc.as_str(), c.sample_interval), ("eu-1", Duration::from_secs(2)));
        assert!(c.sysctl_allow.allows("vm.swappiness") && !c.sysctl_allow.allows("kernel.pid_max"));
        assert_eq!(c.labels["zone"], "b");
        assert_eq!(c.oci_roots, [(Runtime::Crun, PathBuf::from("/f"))]);

        let flags = [
            "--name",
            "from-flag",
            "--label",
            "zone=a",
            "--idle-after",
            "5m",
            "--audit-log",
            "/tmp/a.log",
            "--sysctl-allow",
            "kernel.*,net.*",
            "--oci-root",
            "runc=/r",
        ];
        let c = load(dir.path(), &flags, "").unwrap();
        assert_eq!((c.name.as_str(), c.idle_after), ("from-flag", Duration::from_secs(300)));
        assert_eq!(c.audit_log.as_deref(), Some(Path::new("/tmp/a.log")));
        assert_eq!(c.oci_roots, [(Runtime::Runc, PathBuf::from("/r"))]);

        let c = load(dir.path(), &flags, file).unwrap();
        assert_eq!((c.name.as_str(), c.dc.as_str()), ("from-flag", "eu-1"), "flags win, the file fills in");
        assert_eq!((c.labels["rack"].as_str(), c.labels["zone"].as_str()), ("r7", "a"));
        assert!(c.sysctl_allow.allows("net.core.somaxconn") && !c.sysctl_allow.allows("vm.swappiness"));
        let both = [(Runtime::Crun, PathBuf::from("/f")), (Runtime::Runc, PathBuf::from("/r"))];
        assert_eq!(c.oci_roots, both, "the file's roots and the flags'");
    }

    #[test]
    fn each_bad_setting_is_named_from_either_source() {
        let dir = certs();
        assert_each_named(
            &[
                ("listen", &["--listen", "nope"], "listen = \"nope\""),
                ("name", &["--name", ""], "name = \"\""),
                ("sample-interval", &["--sample-interval", "fast"], "sample_interval = \"fast\""),
                ("sample-interval", &["--sample-interval", "1ms"], "sample_interval = \"1ms\""),
                ("idle-interval", &["--idle-interval", "2h"], "idle_interval = \"2h\""),
                ("idle-after", &["--idle-after", "1ms"], "idle_after = \"1ms\""),
                ("label", &["--label", "novalue"], ""),
                ("key", &["--key", "/nonexistent.key"], "key = \"/nonexistent.key\""),
                ("ca", &["--ca", "/nonexistent/ca.crt"], "ca = \"/nonexistent/ca.crt\""),
                ("tokens", &["--tokens", "/nonexistent/tokens"], "tokens = \"/nonexistent/tokens\""),
                ("sysctl-allow", &["--sysctl-allow", "kernel/../x"], "sysctl_allow = [\"kernel/../x\"]"),
                ("oci-root", &["--oci-root", "docker=/x"], "[oci_roots]\ndocker = \"/x\""),
                ("oci-root", &["--oci-root", "runc"], ""),
                ("cors-origin", &["--cors-origin", "grafana.example"], "cors_origins = [\"ftp://x\"]"),
            ],
            |flags, file| load(dir.path(), flags, file),
        );
        let no_cert = ["k2i", "--key", "k", "--ca", "a"];
        assert_eq!(Config::from_flags(Settings::parse_from(no_cert)).unwrap_err().setting, "cert");
    }

    #[test]
    fn unknown_keys_values_of_the_wrong_type_and_a_missing_file_are_the_files_fault() {
        let dir = certs();
        assert_files_fault(
            &[("lisen = \"0.0.0.0:1\"\n", "lisen"), ("labels = \"x\"\n", "labels")],
            |flags, file| load(dir.path(), flags, file),
        );
        let missing = Settings::parse_from(["k2i", "--config", "/nonexistent/k2i.toml"]);
        assert_eq!(Config::from_flags(missing).unwrap_err().setting, "config");
    }

    #[test]
    fn every_option_says_what_it_is_and_its_default() {
        let cmd = Settings::command();
        let options = cmd.get_arguments().map(|a| (a.get_id().as_str(), a.get_help().is_some()));
        assert_described(options, &cmd.clone().render_long_help().to_string(), &[DEFAULT_LISTEN]);
    }
}
