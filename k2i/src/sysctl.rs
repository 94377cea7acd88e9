//! Kernel parameters under `/proc/sys`: reading, listing by prefix, the write allow-list,
//! and writing with an audit record of who changed what from which value.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Which keys admins may write (`--sysctl-allow`). Empty: none.
#[derive(Debug, Clone, Default)]
pub struct AllowList {
    patterns: Vec<String>,
}

fn valid_key_chars(s: &str, allow_star: bool) -> bool {
    !s.is_empty()
        && s.chars().all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c) || (allow_star && c == '*'))
        && !s.split('.').any(|part| part.is_empty())
}

/// Glob match where `*` matches any run of characters, dots included.
fn glob(pattern: &[u8], text: &[u8]) -> bool {
    match pattern.split_first() {
        None => text.is_empty(),
        Some((b'*', rest)) => (0..=text.len()).any(|i| glob(rest, &text[i..])),
        Some((c, rest)) => text.first() == Some(c) && glob(rest, &text[1..]),
    }
}

impl AllowList {
    pub fn new(patterns: &[String]) -> Result<AllowList, String> {
        let mut out = Vec::new();
        for p in patterns.iter().map(|p| p.trim()).filter(|p| !p.is_empty()) {
            if !valid_key_chars(p, true) || p.matches('*').count() > 4 {
                return Err(format!("{p:?} is not a sysctl pattern like net.ipv4.* or vm.swappiness"));
            }
            out.push(p.to_string());
        }
        Ok(AllowList { patterns: out })
    }

    pub fn allows(&self, key: &str) -> bool {
        self.patterns.iter().any(|p| glob(p.as_bytes(), key.as_bytes()))
    }

    pub fn patterns(&self) -> &[String] {
        &self.patterns
    }
}

/// Why a sysctl operation failed.
#[derive(Debug, thiserror::Error)]
pub enum SysctlError {
    #[error("{0:?} is not a sysctl key (dotted names of letters, digits, '_' and '-')")]
    BadKey(String),
    #[error("no sysctl {0:?} on this host")]
    NotFound(String),
    #[error("sysctl {key:?} cannot be read: {reason}")]
    Unreadable { key: String, reason: String },
    #[error("the kernel refused {value:?} for {key:?}: {reason}")]
    Rejected { key: String, value: String, reason: String },
    #[error("value is {0} bytes; at most 4096")]
    TooLong(usize),
    #[error(
        "the value holds a control character ({0:?}); a sysctl value is one line of text (tabs allowed)"
    )]
    ControlCharacter(char),
}

/// Whether `value` may be written: at most 4096 bytes, one line, no control character but
/// tab (the kernel reads a newline as the end of the value and keeps the rest from taking
/// effect, so a value with one would be audited as written while the kernel kept another).
pub fn check_value(value: &str) -> Result<(), SysctlError> {
    if value.len() > 4096 {
        return Err(SysctlError::TooLong(value.len()));
    }
    match value.chars().find(|c| c.is_control() && *c != '\t') {
        Some(c) => Err(SysctlError::ControlCharacter(c)),
        None => Ok(()),
    }
}

/// `/proc/sys` (or a copy of its layout).
#[derive(Debug, Clone)]
pub struct Sysctl {
    root: PathBuf,
}

impl Default for Sysctl {
    fn default() -> Self {
        Sysctl { root: "/proc/sys".into() }
    }
}

impl Sysctl {
    pub fn new(root: impl Into<PathBuf>) -> Sysctl {
        Sysctl { root: root.into() }
    }

    /// Canonical dotted key and its file. Accepts `net/ipv4/ip_forward` too.
    pub fn resolve(&self, key: &str) -> Result<(String, PathBuf), SysctlError> {
        let dotted = key.replace('/', ".");
        if !valid_key_chars(&dotted, false) {
            return Err(SysctlError::BadKey(key.to_string()));
        }
        let path = dotted.split('.').fold(self.root.clone(), |p, c| p.join(c));
        Ok((dotted, path))
    }

    pub fn get(&self, key: &str) -> Result<(String, String), SysctlError> {
        let (key, path) = self.resolve(key)?;
        if path.is_dir() {
            return Err(SysctlError::NotFound(key));
        }
        match std::fs::read_to_string(&path) {
            Ok(v) => Ok((key, v.trim_end_matches('\n').to_string())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(SysctlError::NotFound(key)),
            Err(e) => Err(SysctlError::Unreadable { key, reason: e.to_string() }),
        }
    }

    /// Every readable key starting with `prefix` (dotted), with its value.
    pub fn list(&self, prefix: &str) -> Result<BTreeMap<String, String>, SysctlError> {
        let prefix = prefix.replace('/', ".");
        if !prefix.is_empty() && !prefix.trim_end_matches('.').split('.').all(|c| valid_key_chars(c, false)) {
            return Err(SysctlError::BadKey(prefix));
        }
        // Walk from the deepest directory the prefix names completely.
        let mut dir = self.root.clone();
        let mut dir_key = String::new();
        let parts: Vec<&str> = prefix.split('.').filter(|p| !p.is_empty()).collect();
        for (i, part) in parts.iter().enumerate() {
            let next = dir.join(part);
            let complete = i + 1 < parts.len() || prefix.ends_with('.') || next.is_dir();
            if complete && next.is_dir() {
                dir = next;
                if !dir_key.is_empty() {
                    dir_key.push('.');
                }
                dir_key.push_str(part);
            } else {
                break;
            }
        }
        let mut out = BTreeMap::new();
        walk(&dir, &dir_key, &prefix, &mut out);
        Ok(out)
    }

    /// Writes `value` and returns the old value. The caller audits.
    pub fn set(&self, key: &str, value: &str) -> Result<(String, String), SysctlError> {
        check_value(value)?;
        let (key, old) = self.get(key)?;
        let (_, path) = self.resolve(&key)?;
        let write = std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .and_then(|mut f| f.write_all(format!("{value}\n").as_bytes()));
        match write {
            Ok(()) => Ok((key, old)),
            Err(e) => Err(SysctlError::Rejected { key, value: value.to_string(), reason: e.to_string() }),
        }
    }
}

fn walk(dir: &Path, key: &str, prefix: &str, out: &mut BTreeMap<String, String>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let k = if key.is_empty() { name } else { format!("{key}.{name}") };
        let Ok(ft) = e.file_type() else { continue };
        if ft.is_dir() {
            if k.starts_with(prefix) || prefix.starts_with(&format!("{k}.")) {
                walk(&e.path(), &k, prefix, out);
            }
        } else if k.starts_with(prefix) {
            if let Ok(v) = std::fs::read_to_string(e.path()) {
                out.insert(k, v.trim_end_matches('\n').to_string());
            }
        }
    }
}

/// One audited write.
#[derive(Debug, serde::Serialize)]
pub struct AuditRecord<'a> {
    pub time: String,
    pub who: &'a str,
    pub role: &'a str,
    pub via: &'a str,
    pub key: &'a str,
    pub old: Option<&'a str>,
    pub new: &'a str,
    pub result: &'a str,
}

/// Logs the record (target `audit`) and appends it to `file` when configured.
pub fn audit(file: Option<&Path>, rec: &AuditRecord<'_>) {
    let line = serde_json::to_string(rec).unwrap_or_default();
    tracing::info!(target: "audit", "{line}");
    if let Some(path) = file {
        let res = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .and_then(|mut f| writeln!(f, "{line}"));
        if let Err(e) = res {
            tracing::error!(target: "audit", "cannot append to audit log {}: {e}", path.display());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allow_list_globs() {
        let a = AllowList::new(&["net.ipv4.*".into(), "vm.swappiness".into()]).unwrap();
        assert!(a.allows("net.ipv4.ip_forward"));
        assert!(a.allows("net.ipv4.conf.all.rp_filter"));
        assert!(a.allows("vm.swappiness"));
        assert!(!a.allows("vm.swappiness2"));
        assert!(!a.allows("kernel.hostname"));
        assert!(!AllowList::default().allows("vm.swappiness"));
        assert!(AllowList::new(&["net/../x".into()]).is_err());
    }

    #[test]
    fn keys_cannot_escape_proc_sys() {
        let s = Sysctl::default();
        for bad in ["..", "net..x", "net/../../etc/passwd", "a b", ""] {
            assert!(matches!(s.resolve(bad), Err(SysctlError::BadKey(_))), "{bad}");
        }
        assert_eq!(s.resolve("net/ipv4/ip_forward").unwrap().0, "net.ipv4.ip_forward");
    }

    #[test]
    fn read_list_and_write_on_a_tree() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("vm")).unwrap();
        std::fs::create_dir_all(dir.path().join("net/ipv4")).unwrap();
        std::fs::write(dir.path().join("vm/swappiness"), "60\n").unwrap();
        std::fs::write(dir.path().join("vm/overcommit_memory"), "0\n").unwrap();
        std::fs::write(dir.path().join("net/ipv4/ip_forward"), "1\n").unwrap();
        let s = Sysctl::new(dir.path());
        assert_eq!(s.get("vm.swappiness").unwrap().1, "60");
        assert!(matches!(s.get("vm.nope"), Err(SysctlError::NotFound(_))));
        assert!(matches!(s.get("vm"), Err(SysctlError::NotFound(_))));
        let vm = s.list("vm").unwrap();
        assert_eq!(vm.len(), 2);
        assert_eq!(s.list("vm.swap").unwrap().keys().collect::<Vec<_>>(), ["vm.swappiness"]);
        assert_eq!(s.list("").unwrap().len(), 3);
        assert_eq!(s.set("vm.swappiness", "10").unwrap().1, "60");
        assert_eq!(s.get("vm.swappiness").unwrap().1, "10");
        for bad in ["20\n30", "20\r", "\u{0}", "2\u{7f}"] {
            assert!(matches!(s.set("vm.swappiness", bad), Err(SysctlError::ControlCharacter(_))), "{bad:?}");
        }
        assert_eq!(s.get("vm.swappiness").unwrap().1, "10", "nothing was written");
        s.set("vm.swappiness", "1\t2").unwrap();
    }
}
