//! Pieces every daemon's settings share: the [`settings!`](crate::settings!) declaration that
//! derives a daemon's flags and its TOML file from one struct, the "flags over file" merge,
//! the error that names a setting, reading the file, the TLS files and identity, labels,
//! addresses and the default host name. Each daemon's own `config` module declares its
//! settings with these and validates them into the `Config` it runs with.

use crate::reload::{CrlFile, ReloadableIdentity};
use crate::tls::{Identity, TlsError, TlsFiles};
use crate::Role;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub mod testing;

/// Declares a daemon's settings once, as one struct that is both its command line and its
/// `--config` TOML file:
///
/// - `clap::Parser` (the flags: `--sample-interval` for `sample_interval`; the doc comment
///   of a field is its `--help`) and `serde::Deserialize` (the file: the same names in
///   snake_case, unknown keys refused) are derived on it, with `Debug` and `Default`;
/// - a last field, `config`, is added: the `--config FILE` flag (not a key of the file);
/// - [`Merge`] is implemented field by field, and `flags.over_file()` reads the file that
///   `--config` names and returns the flags over it: the settings in force.
///
/// Every field is "not given" by default: `Option<T>`, a list (`Vec<String>`), `K=V` pairs
/// (`Vec<Pair<V>>`, read from a table in the file with
/// `#[serde(deserialize_with = "dcos_core::settings::table")]`) or a file-only table
/// (`BTreeMap`, with `#[arg(skip)]`). Defaults are applied when the merged settings are
/// validated, never here, or a default would win over the file. The crate using it
/// depends on `clap` (derive) and `serde` (derive).
#[macro_export]
macro_rules! settings {
    (
        $(#[$meta:meta])*
        $vis:vis struct $name:ident {
            $( $(#[$field_meta:meta])* $field_vis:vis $field:ident : $ty:ty ),* $(,)?
        }
    ) => {
        #[derive(Debug, Default, ::clap::Parser, ::serde::Deserialize)]
        #[serde(default, deny_unknown_fields)]
        $(#[$meta])*
        $vis struct $name {
            $( $(#[$field_meta])* $field_vis $field: $ty, )*
            /// TOML file with the same settings; flags win.
            #[arg(long)]
            #[serde(skip)]
            pub config: Option<::std::path::PathBuf>,
        }

        impl $crate::settings::Merge for $name {
            fn over(self, file: Self) -> Self {
                Self {
                    $( $field: $crate::settings::Merge::over(self.$field, file.$field), )*
                    config: self.config,
                }
            }
        }

        impl $name {
            /// These flags over the `--config` file they name (none: the flags alone).
            pub fn over_file(self) -> ::std::result::Result<Self, $crate::settings::ConfigError> {
                let file = $crate::settings::read_toml(self.config.as_deref())?;
                Ok($crate::settings::Merge::over(self, file))
            }
        }
    };
}

/// A setting given as flags over the same setting from the file.
pub trait Merge {
    /// `self` (the flags) over `file`.
    fn over(self, file: Self) -> Self;
}

/// A value: the flag's when given, else the file's.
impl<T> Merge for Option<T> {
    fn over(self, file: Self) -> Self {
        self.or(file)
    }
}

/// A list (`--seed A --seed B`, `seeds = [..]`): the flags' list replaces the file's.
impl Merge for Vec<String> {
    fn over(self, file: Self) -> Self {
        if self.is_empty() {
            file
        } else {
            self
        }
    }
}

/// `K=V` pairs: the file's table, then the flags, so a flag wins for its key.
impl<V> Merge for Vec<Pair<V>> {
    fn over(self, mut file: Self) -> Self {
        file.extend(self);
        file
    }
}

/// A table: the file's entries, and the flags' over them for the same key.
impl<K: Ord, V> Merge for BTreeMap<K, V> {
    fn over(self, mut file: Self) -> Self {
        file.extend(self);
        file
    }
}

/// One `K=V` entry of a setting given as a repeated flag (`--label rack=r7`) or as a table
/// in the file (`[labels]`). A flag's text is kept as given and checked by [`pairs`], so a
/// bad one is reported like every other bad setting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pair<V> {
    Flag(String),
    File(String, V),
}

impl<V> std::str::FromStr for Pair<V> {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Pair::Flag(s.to_string()))
    }
}

/// Reads a file's table into [`Pair::File`]s, in key order.
pub fn table<'de, D: Deserializer<'de>, V: Deserialize<'de>>(d: D) -> Result<Vec<Pair<V>>, D::Error> {
    let map = BTreeMap::<String, V>::deserialize(d)?;
    Ok(map.into_iter().map(|(k, v)| Pair::File(k, v)).collect())
}

/// The pairs of `setting` in order (the file's, then the flags'), each flag split by `split`.
pub fn pairs<V>(
    setting: &'static str,
    pairs: Vec<Pair<V>>,
    split: impl Fn(&str) -> Result<(String, V), String>,
) -> impl Iterator<Item = Result<(String, V), ConfigError>> {
    pairs.into_iter().map(move |p| match p {
        Pair::File(k, v) => Ok((k, v)),
        Pair::Flag(text) => split(&text).map_err(|m| bad(setting, m)),
    })
}

/// Splits `K=V` at the first `=`; `form` names it for the error (`NAME=ADDR`).
pub fn split_pair<V: From<String>>(text: &str, form: &str) -> Result<(String, V), String> {
    let (k, v) = text.split_once('=').ok_or_else(|| format!("{text:?} is not {form}"))?;
    Ok((k.to_string(), V::from(v.to_string())))
}

/// A socket address, `default` when not given; the default is also the example shown.
pub fn address(
    setting: &'static str,
    text: Option<String>,
    default: &str,
) -> Result<SocketAddr, ConfigError> {
    let text = text.unwrap_or_else(|| default.into());
    text.parse().map_err(|_| bad(setting, format!("{text:?} is not an address like {default}")))
}

/// The host name, this machine's when not given; never empty.
pub fn name(text: Option<String>) -> Result<String, ConfigError> {
    let name = text.unwrap_or_else(hostname);
    if name.is_empty() {
        return Err(bad("name", "must not be empty"));
    }
    Ok(name)
}

/// A setting that stops a daemon before it binds. Shown as
/// ``invalid setting `NAME`: why``; the daemon exits 2.
#[derive(Debug, thiserror::Error)]
#[error("invalid setting `{setting}`: {message}")]
pub struct ConfigError {
    pub setting: &'static str,
    pub message: String,
}

/// A [`ConfigError`] for `setting`.
pub fn bad(setting: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError { setting, message: message.into() }
}

/// Reads and parses the `--config` TOML file (unknown keys are the caller's `serde` choice).
pub fn read_toml<T: DeserializeOwned + Default>(path: Option<&Path>) -> Result<T, ConfigError> {
    let Some(path) = path else { return Ok(T::default()) };
    let text =
        std::fs::read_to_string(path).map_err(|e| bad("config", format!("{}: {e}", path.display())))?;
    toml::from_str(&text).map_err(|e| bad("config", format!("{}: {e}", path.display())))
}

/// `--cert`, `--key` and `--ca`, each from the flag or else the file; all required.
pub fn tls_files(
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
    ca: Option<PathBuf>,
) -> Result<TlsFiles, ConfigError> {
    let need = |v: Option<PathBuf>, setting: &'static str| {
        v.ok_or_else(|| {
            bad(setting, format!("required (--{setting} FILE or `{setting}` in the config file)"))
        })
    };
    Ok(TlsFiles { cert: need(cert, "cert")?, key: need(key, "key")?, ca: need(ca, "ca")? })
}

/// Loads the identity, naming the file at fault (`cert`, `key` or `ca`).
pub fn load_identity(files: &TlsFiles) -> Result<Identity, ConfigError> {
    Identity::load(files).map_err(|e| tls_fault(e, files))
}

/// Loads a daemon's reloadable identity with its revocation list (`--crl`, else `crl.pem`
/// beside `--ca` if there), naming the file at fault (`cert`, `key`, `ca` or `crl`); the
/// certificate must carry `role` when one is given.
pub fn load_reloadable(
    files: TlsFiles,
    crl: Option<PathBuf>,
    role: Option<Role>,
) -> Result<Arc<ReloadableIdentity>, ConfigError> {
    let crl = CrlFile::new(crl, &files.ca);
    let crl_path = crl.path.clone();
    ReloadableIdentity::load(files.clone(), Some(crl), role).map_err(|e| match &e {
        TlsError::Crl { .. } => bad("crl", e.to_string()),
        TlsError::Read { path, .. } if *path == crl_path => bad("crl", e.to_string()),
        _ => tls_fault(e, &files),
    })
}

/// The setting a TLS error is about.
fn tls_fault(e: TlsError, files: &TlsFiles) -> ConfigError {
    let setting = match &e {
        TlsError::NoKey { .. } | TlsError::KeyMismatch { .. } => "key",
        TlsError::Read { path, .. } if *path == files.key => "key",
        e if e.to_string().starts_with(&files.ca.display().to_string()) => "ca",
        _ => "cert",
    };
    bad(setting, e.to_string())
}

/// Parses a `K=V` label.
pub fn parse_label(s: &str) -> Result<(String, String), String> {
    let (k, v) = s.split_once('=').ok_or_else(|| format!("{s:?} is not K=V"))?;
    if k.is_empty() || !k.chars().all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c)) {
        return Err(format!("{k:?} is not a label key (letters, digits, - _ . /)"));
    }
    Ok((k.to_string(), v.to_string()))
}

/// This machine's host name, the default `--name`.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_and_missing_files_are_named() {
        assert_eq!(parse_label("rack=r7").unwrap(), ("rack".into(), "r7".into()));
        assert!(parse_label("novalue").is_err());
        assert!(parse_label("a b=c").is_err());
        assert_eq!(tls_files(Some("c".into()), None, Some("a".into())).unwrap_err().setting, "key");
        let e = load_identity(&TlsFiles { cert: "/no/c".into(), key: "/no/k".into(), ca: "/no/a".into() });
        assert_eq!(e.unwrap_err().setting, "cert");
        assert!(!hostname().is_empty());
    }

    crate::settings! {
        /// A daemon's settings, for the tests.
        #[command(name = "demo")]
        struct Demo {
            /// A value.
            #[arg(long)]
            listen: Option<String>,
            /// A list.
            #[arg(long = "seed")]
            seeds: Vec<String>,
            /// Pairs.
            #[arg(long = "label")]
            #[serde(deserialize_with = "crate::settings::table")]
            labels: Vec<Pair<String>>,
            /// Only in the file.
            #[arg(skip)]
            access: BTreeMap<String, Vec<String>>,
        }
    }

    fn merged(argv: &[&str], file: &str) -> Result<Demo, ConfigError> {
        use clap::Parser;
        let dir = tempfile::tempdir().unwrap();
        let merged =
            Demo::parse_from(testing::command_line("demo", dir.path(), &[], argv, file)).over_file()?;
        assert_eq!(merged.config, Some(dir.path().join("demo.toml")), "--config is kept");
        Ok(merged)
    }

    #[test]
    fn flags_win_over_the_file_and_each_alone_counts() {
        let file = "listen = \"file:1\"\nseeds = [\"f1\", \"f2\"]\n[labels]\nb = \"file\"\na = \"file\"\n\
                    [access]\n\"x.*\" = [\"admin\"]\n";
        let only_file = merged(&[], file).unwrap();
        assert_eq!(only_file.listen.as_deref(), Some("file:1"));
        assert_eq!(only_file.seeds, ["f1", "f2"]);
        let table = [Pair::File("a".into(), "file".into()), Pair::File("b".into(), "file".into())];
        assert_eq!(only_file.labels, table, "the table, in key order");
        assert_eq!(only_file.access["x.*"], ["admin"]);

        let only_flags = merged(&["--listen", "flag:1", "--seed", "s1", "--label", "a=flag"], "").unwrap();
        assert_eq!(only_flags.listen.as_deref(), Some("flag:1"));
        assert_eq!(only_flags.seeds, ["s1"]);
        assert_eq!(only_flags.labels, [Pair::Flag("a=flag".into())]);

        let both = merged(&["--listen", "flag:1", "--seed", "s1", "--label", "a=flag"], file).unwrap();
        assert_eq!(both.listen.as_deref(), Some("flag:1"));
        assert_eq!(both.seeds, ["s1"], "a list given as flags replaces the file's");
        let labels: BTreeMap<_, _> =
            pairs("label", both.labels, parse_label).collect::<Result<_, _>>().unwrap();
        assert_eq!((labels["a"].as_str(), labels["b"].as_str()), ("flag", "file"), "a flag wins for its key");
        assert_eq!(both.access["x.*"], ["admin"]);
    }

    #[test]
    fn unknown_and_flag_only_keys_in_the_file_are_refused_by_name() {
        let cases = [
            ("lisen = \"x\"\n", "unknown field `lisen`"),
            ("config = \"x.toml\"\n", "unknown field `config`"),
        ];
        testing::assert_files_fault(&cases, merged);
        let missing = <Demo as clap::Parser>::parse_from(["demo", "--config", "/nonexistent/demo.toml"]);
        assert_eq!(missing.over_file().unwrap_err().setting, "config");
    }

    #[test]
    fn bad_pairs_addresses_and_names_are_named() {
        let flagged =
            pairs("peer", vec![Pair::<String>::Flag("nowhere".into())], |t| split_pair(t, "NAME=ADDR"));
        let err = flagged.collect::<Result<Vec<_>, _>>().unwrap_err();
        assert_eq!((err.setting, err.message.as_str()), ("peer", "\"nowhere\" is not NAME=ADDR"));
        let err = address("api", Some("7442".into()), "0.0.0.0:7442").unwrap_err();
        assert_eq!(err.to_string(), "invalid setting `api`: \"7442\" is not an address like 0.0.0.0:7442");
        assert_eq!(address("api", None, "0.0.0.0:7442").unwrap().port(), 7442);
        assert_eq!(name(Some(String::new())).unwrap_err().setting, "name");
    }
}
