//! Rendered answers to repeated identical requests, kept until the next snapshot.
//!
//! A snapshot never changes, so two identical `/v1/top` or `/v1/proc` requests against it
//! have byte-identical answers. Dashboards poll the same query from many places at once;
//! each is computed once per sample instead of once per request.

use axum::body::Bytes;
use std::sync::Mutex;

/// Answers larger than this are not kept (full tables: cheap to skip, costly to hold).
pub const MAX_ENTRY_BYTES: usize = 256 * 1024;
/// At most this many distinct requests are kept per snapshot.
pub const MAX_ENTRIES: usize = 64;

#[derive(Debug, Default)]
pub struct ResponseCache {
    inner: Mutex<(u64, Vec<(String, Bytes)>)>,
}

impl ResponseCache {
    /// The answer to `key` rendered from snapshot `seq`, if any.
    pub fn get(&self, seq: u64, key: &str) -> Option<Bytes> {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if inner.0 != seq {
            return None;
        }
        inner.1.iter().find(|(k, _)| k == key).map(|(_, b)| b.clone())
    }

    /// Keeps `body` as the answer to `key` for snapshot `seq` (dropping older snapshots').
    pub fn put(&self, seq: u64, key: String, body: &Bytes) {
        if body.len() > MAX_ENTRY_BYTES {
            return;
        }
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if inner.0 != seq {
            if seq < inner.0 {
                return;
            }
            *inner = (seq, Vec::new());
        }
        if inner.1.len() < MAX_ENTRIES && !inner.1.iter().any(|(k, _)| *k == key) {
            inner.1.push((key, body.clone()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_live_for_one_snapshot_only() {
        let c = ResponseCache::default();
        c.put(1, "/v1/top?".into(), &Bytes::from_static(b"a"));
        assert_eq!(c.get(1, "/v1/top?").as_deref(), Some(&b"a"[..]));
        assert_eq!(c.get(1, "/v1/top?limit=5"), None);
        assert_eq!(c.get(2, "/v1/top?"), None, "a newer snapshot");
        c.put(2, "/v1/top?".into(), &Bytes::from_static(b"b"));
        c.put(1, "/v1/top?".into(), &Bytes::from_static(b"stale"));
        assert_eq!(c.get(2, "/v1/top?").as_deref(), Some(&b"b"[..]));
        c.put(2, "big".into(), &Bytes::from(vec![0u8; MAX_ENTRY_BYTES + 1]));
        assert_eq!(c.get(2, "big"), None);
    }
}
