//! Asking every selected host at once: concurrent HTTPS requests over pooled mTLS
//! connections, a bounded window, one shared deadline, and one [`HostReport`] per host,
//! whatever happened to it. Answers stream out in the order hosts reply.
//!
//! The deadline is shared (the command's start plus `--timeout`), so hosts waiting for a
//! place in the window never push the command past its timeout.

use crate::fleet::Target;
use futures::stream::{self, Stream, StreamExt};
use k2i_client::{FetchError, K2iClient};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::time::{Duration, Instant};

/// How one host fared, as printed in `-o json` (`hosts`) and on stderr.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HostReport {
    /// The host's own name once it answered; the selected name otherwise.
    pub host: String,
    pub address: String,
    /// `ok`, `timeout`, `unreachable`, `tls_error`, `http_error` or `refused`.
    pub status: &'static str,
    pub error: Option<String>,
    pub elapsed_ms: u64,
}

impl HostReport {
    pub fn ok(&self) -> bool {
        self.status == "ok"
    }
}

/// One host's answer.
#[derive(Debug)]
pub struct Answer<T> {
    pub target: usize,
    pub report: HostReport,
    pub value: Option<T>,
}

/// Requests in flight at once, at most.
pub const DEFAULT_WINDOW: usize = 1024;

/// Fans requests out over a fleet.
#[derive(Clone)]
pub struct FanOut {
    pub client: K2iClient,
    pub timeout: Duration,
    pub window: usize,
}

impl FanOut {
    pub fn new(client: K2iClient, timeout: Duration) -> FanOut {
        FanOut { client, timeout, window: DEFAULT_WINDOW }
    }

    /// `GET path(target)` on every target, decoded as `T`; one answer per target, all
    /// within the timeout (plus scheduling).
    pub fn get<'a, T, P>(&'a self, targets: &'a [Target], path: P) -> impl Stream<Item = Answer<T>> + 'a
    where
        T: DeserializeOwned + Send + 'static,
        P: Fn(&Target) -> String + 'a,
    {
        let deadline = Instant::now() + self.timeout;
        stream::iter(targets.iter().enumerate())
            .map(move |(i, t)| {
                let path = path(t);
                async move {
                    let started = Instant::now();
                    let left = deadline.saturating_duration_since(started).max(Duration::from_millis(1));
                    let result = self.client.get_json::<T>(&t.k2i, &path, left).await;
                    let elapsed_ms = started.elapsed().as_millis() as u64;
                    let (status, error, value) = match result {
                        Ok(v) => ("ok", None, Some(v)),
                        // The shared deadline, not this request's share of it, is what the
                        // user set: report it.
                        Err(FetchError::Timeout(_)) => {
                            ("timeout", Some(format!("no answer within {:?}", self.timeout)), None)
                        }
                        Err(e) => (e.status(), Some(e.to_string()), None),
                    };
                    let report = HostReport {
                        host: t.name.clone(),
                        address: t.k2i.clone(),
                        status,
                        error,
                        elapsed_ms,
                    };
                    Answer { target: i, report, value }
                }
            })
            .buffer_unordered(self.window.max(1))
    }

    /// As [`FanOut::get`], collected: answers in target order.
    pub async fn get_all<T, P>(&self, targets: &[Target], path: P) -> Vec<Answer<T>>
    where
        T: DeserializeOwned + Send + 'static,
        P: Fn(&Target) -> String,
    {
        let mut all: Vec<Answer<T>> = self.get(targets, path).collect().await;
        all.sort_by_key(|a| a.target);
        all
    }
}

/// Raises the open-files limit to its hard maximum: a fan-out holds one socket per host.
pub fn raise_fd_limit() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        if soft < hard {
            let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
        }
    }
}
