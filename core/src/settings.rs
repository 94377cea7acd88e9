//! Pieces every daemon's settings share: the error that names a setting, reading the TOML
//! file, the TLS files and identity, labels and the default host name. Each daemon's own
//! `config` module merges its flags over its file with these.

use crate::tls::{Identity, TlsError, TlsFiles};
use serde::de::DeserializeOwned;
use std::path::{Path, PathBuf};

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
    Identity::load(files).map_err(|e| {
        let setting = match &e {
            TlsError::NoKey { .. } => "key",
            TlsError::Read { path, .. } if *path == files.key => "key",
            e if e.to_string().starts_with(&files.ca.display().to_string()) => "ca",
            _ => "cert",
        };
        bad(setting, e.to_string())
    })
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
}
