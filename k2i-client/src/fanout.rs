//! Asking many k2i at once: concurrent HTTPS requests over pooled mTLS connections, a
//! bounded window, one shared deadline, and one [`HostReport`] per host, whatever happened
//! to it. Answers stream out in the order hosts reply. The `dcos` CLI fans out with it from
//! the operator's machine, and a middlecon relay (SPEC section 8) from inside a datacenter.
//!
//! The deadline is shared (the start plus the timeout), so hosts waiting for a place in the
//! window never push the fan-out past its timeout.

use crate::{FetchError, K2iClient};
use futures::stream::{self, Stream, StreamExt};
pub use hyper::body::Bytes;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::time::{Duration, Instant};

/// How one host fared, as the CLI prints it in `-o json` (`hosts`) and on stderr.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HostReport {
    /// The host's own name once it answered; the selected name otherwise.
    pub host: String,
    pub address: String,
    /// `ok`, `timeout`, `unreachable`, `tls_error`, `http_error` or `refused`.
    pub status: &'static str,
    pub error: Option<String>,
    pub elapsed_ms: u64,
    /// The relay that asked the host for the operator (SPEC section 8); absent when the
    /// operator's machine asked it directly.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub via: Option<String>,
    /// How old the host's answer was when its relay sent it, in milliseconds: present when
    /// a relay answered from what it keeps fresh for a refreshing `dcos top`, absent when
    /// the host was asked for this answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub age_ms: Option<u64>,
}

impl HostReport {
    pub fn ok(&self) -> bool {
        self.status == "ok"
    }
}

/// The status words of SPEC section 6, for reports read back from a relay.
pub const STATUSES: [&str; 6] = ["ok", "timeout", "unreachable", "tls_error", "http_error", "refused"];

/// `word` as one of [`STATUSES`] (an unknown word is `unreachable`).
pub fn status_word(word: &str) -> &'static str {
    STATUSES.iter().copied().find(|s| *s == word).unwrap_or("unreachable")
}

/// The reads a fan-out may make, directly or through a relay: each a `GET` of one path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Read {
    /// `GET /v1/proc?QUERY`.
    Processes,
    /// `GET /v1/top?QUERY`.
    Top,
    /// `GET /v1/containers`.
    Containers,
}

impl Read {
    /// The path and query asked of every host; `query` is a query string without `?`
    /// (ignored for containers).
    pub fn path(self, query: &str) -> String {
        match self {
            Read::Processes if query.is_empty() => "/v1/proc".into(),
            Read::Processes => format!("/v1/proc?{query}"),
            Read::Top if query.is_empty() => "/v1/top".into(),
            Read::Top => format!("/v1/top?{query}"),
            Read::Containers => "/v1/containers".into(),
        }
    }
}

/// A host to ask: a name to report until it answers with its own, and its k2i base URL.
pub trait Endpoint {
    fn name(&self) -> &str;
    fn k2i(&self) -> &str;
}

/// One host's answer.
#[derive(Debug)]
pub struct Answer<T> {
    /// Its index in the targets asked.
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
    /// Headers sent with every request (a relay's on-behalf-of headers).
    pub headers: Vec<(&'static str, String)>,
    /// When the fan-out began, if before this call (a second round of the same request
    /// asks some hosts again): the deadline is this plus the timeout.
    pub began: Option<Instant>,
}

impl FanOut {
    pub fn new(client: K2iClient, timeout: Duration) -> FanOut {
        FanOut { client, timeout, window: DEFAULT_WINDOW, headers: Vec::new(), began: None }
    }

    /// `GET path(target)` on every target, decoded as `T`; one answer per target, all
    /// within the timeout (plus scheduling).
    pub fn get<'a, T>(
        &'a self,
        targets: &'a [impl Endpoint + Sync],
        path: impl Fn(&dyn Endpoint) -> String + 'a,
    ) -> impl Stream<Item = Answer<T>> + 'a
    where
        T: DeserializeOwned + Send + 'static,
    {
        self.fetch(targets, path, |body| {
            serde_json::from_slice(&body).map_err(|e| FetchError::Decode(e.to_string()))
        })
    }

    /// As [`FanOut::get`], the bodies undecoded (a relay passes them on as they are).
    pub fn get_raw<'a>(
        &'a self,
        targets: &'a [impl Endpoint + Sync],
        path: impl Fn(&dyn Endpoint) -> String + 'a,
    ) -> impl Stream<Item = Answer<Bytes>> + 'a {
        self.fetch(targets, path, Ok)
    }

    fn fetch<'a, T, E, P, D>(
        &'a self,
        targets: &'a [E],
        path: P,
        decode: D,
    ) -> impl Stream<Item = Answer<T>> + 'a
    where
        T: Send + 'static,
        E: Endpoint + Sync,
        P: Fn(&dyn Endpoint) -> String + 'a,
        D: Fn(Bytes) -> Result<T, FetchError> + Copy + 'a,
    {
        let deadline = self.began.unwrap_or_else(Instant::now) + self.timeout;
        stream::iter(targets.iter().enumerate())
            .map(move |(i, t)| {
                let path = path(t as &dyn Endpoint);
                async move {
                    let started = Instant::now();
                    let left = deadline.saturating_duration_since(started).max(Duration::from_millis(1));
                    let result = self
                        .client
                        .request_with("GET", t.k2i(), &path, None, &self.headers, left)
                        .await
                        .and_then(decode);
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
                        host: t.name().to_string(),
                        address: t.k2i().to_string(),
                        status,
                        error,
                        elapsed_ms,
                        via: None,
                        age_ms: None,
                    };
                    Answer { target: i, report, value }
                }
            })
            .buffer_unordered(self.window.max(1))
    }

    /// As [`FanOut::get`], collected: answers in target order.
    pub async fn get_all<T>(
        &self,
        targets: &[impl Endpoint + Sync],
        path: impl Fn(&dyn Endpoint) -> String,
    ) -> Vec<Answer<T>>
    where
        T: DeserializeOwned + Send + 'static,
    {
        let mut all: Vec<Answer<T>> = self.get(targets, path).collect().await;
        all.sort_by_key(|a| a.target);
        all
    }
}
