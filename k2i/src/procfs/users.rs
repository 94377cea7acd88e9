//! Numeric uid to user name, from `/etc/passwd`, cached and re-read when the file changes.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

/// A cache of user names. Unknown uids are shown as their number, like `ps` does.
#[derive(Debug)]
pub struct Users {
    path: PathBuf,
    mtime: Option<SystemTime>,
    names: HashMap<u32, Arc<str>>,
}

impl Users {
    pub fn new(passwd: impl Into<PathBuf>) -> Users {
        let mut u = Users { path: passwd.into(), mtime: None, names: HashMap::new() };
        u.reload_if_changed();
        u
    }

    /// Re-reads the file if its modification time moved. Cheap: one `stat`.
    pub fn reload_if_changed(&mut self) {
        let mtime = std::fs::metadata(&self.path).and_then(|m| m.modified()).ok();
        if mtime == self.mtime && mtime.is_some() {
            return;
        }
        self.mtime = mtime;
        self.names.clear();
        if let Ok(text) = std::fs::read_to_string(&self.path) {
            for line in text.lines() {
                let mut f = line.split(':');
                let (Some(name), Some(_), Some(uid)) = (f.next(), f.next(), f.next()) else {
                    continue;
                };
                if let Ok(uid) = uid.parse() {
                    self.names.entry(uid).or_insert_with(|| Arc::from(name));
                }
            }
        }
    }

    /// The name of `uid`, or its number.
    pub fn name(&mut self, uid: u32) -> Arc<str> {
        self.names.entry(uid).or_insert_with(|| Arc::from(uid.to_string())).clone()
    }

    /// The uid of a user name, if the passwd file knows it.
    pub fn uid_of(&self, name: &str) -> Option<u32> {
        self.names.iter().find(|(_, n)| &***n == name).map(|(u, _)| *u)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_come_from_passwd_and_unknown_uids_stay_numeric() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("passwd");
        std::fs::write(&p, "root:x:0:0:root:/root:/bin/bash\nwww:x:33:33::/var/www:/bin/sh\nbroken\n")
            .unwrap();
        let mut u = Users::new(&p);
        assert_eq!(&*u.name(0), "root");
        assert_eq!(&*u.name(33), "www");
        assert_eq!(&*u.name(4242), "4242");
        assert_eq!(u.uid_of("www"), Some(33));
    }
}
