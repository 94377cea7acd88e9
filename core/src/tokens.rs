//! Bearer tokens for dashboards that cannot present a client certificate.
//!
//! The tokens file holds one token a line as `<sha256 hex of the token> <role> [label]`;
//! `#` starts a comment. Plain tokens are never stored: a presented token is hashed and
//! looked up.

use crate::role::Role;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};

/// A tokens file that could not be used; names the file and line.
#[derive(Debug, thiserror::Error)]
pub enum TokenFileError {
    #[error("{path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path}:{line}: {reason}")]
    Syntax { path: PathBuf, line: usize, reason: String },
}

/// A role bound to a token, with the label the operator gave it (used in audit logs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenGrant {
    pub role: Role,
    pub label: String,
}

/// The loaded tokens file.
#[derive(Debug, Clone, Default)]
pub struct Tokens {
    by_hash: HashMap<[u8; 32], TokenGrant>,
}

/// Hex SHA-256 of a token, as written in the tokens file.
pub fn hash_hex(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

impl Tokens {
    pub fn load(path: &Path) -> Result<Tokens, TokenFileError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| TokenFileError::Read { path: path.into(), source })?;
        Tokens::parse(&text).map_err(|(line, reason)| TokenFileError::Syntax {
            path: path.into(),
            line,
            reason,
        })
    }

    /// Parses the file's text; the error carries the 1-based line number.
    pub fn parse(text: &str) -> Result<Tokens, (usize, String)> {
        let mut by_hash = HashMap::new();
        for (i, raw) in text.lines().enumerate() {
            let line = raw.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let mut parts = line.split_whitespace();
            let hash = parts.next().unwrap_or_default();
            let hash = hash.strip_prefix("sha256:").unwrap_or(hash);
            let mut digest = [0u8; 32];
            hex::decode_to_slice(hash, &mut digest)
                .map_err(|_| (i + 1, "expected the 64-hex-digit SHA-256 of a token first".to_string()))?;
            let role = parts
                .next()
                .ok_or_else(|| (i + 1, "missing role after the hash".to_string()))?
                .parse::<Role>()
                .map_err(|e| (i + 1, e.to_string()))?;
            let label = parts.collect::<Vec<_>>().join(" ");
            let label = if label.is_empty() { format!("token:{}", &hash[..8]) } else { label };
            by_hash.insert(digest, TokenGrant { role, label });
        }
        Ok(Tokens { by_hash })
    }

    /// The grant for a presented token, if any.
    pub fn lookup(&self, token: &str) -> Option<&TokenGrant> {
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        self.by_hash.get(&digest)
    }

    pub fn len(&self) -> usize {
        self.by_hash.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_hash.is_empty()
    }
}

/// A fresh random token (256 bits from the kernel, hex).
pub fn generate() -> std::io::Result<String> {
    let mut buf = [0u8; 32];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut buf)?;
    Ok(hex::encode(buf))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_found_by_its_hash_and_a_wrong_one_is_not() {
        let text = format!("# dashboards\n{} viewer grafana\n\n", hash_hex("s3cret"));
        let t = Tokens::parse(&text).unwrap();
        assert_eq!(t.lookup("s3cret").unwrap().role, Role::Viewer);
        assert_eq!(t.lookup("s3cret").unwrap().label, "grafana");
        assert!(t.lookup("s3cre").is_none());
        assert!(t.lookup("").is_none());
    }

    #[test]
    fn bad_lines_are_reported_with_their_number() {
        assert_eq!(Tokens::parse("\nnothex viewer").unwrap_err().0, 2);
        let h = hash_hex("x");
        assert!(Tokens::parse(&format!("{h} root")).unwrap_err().1.contains("unknown role"));
        assert!(Tokens::parse(&h).unwrap_err().1.contains("missing role"));
    }
}
