//! The HTTPS client of k2i, for the `dcos` CLI, programs of your own, the tests and the
//! benchmarks.
//!
//! - [`K2iClient`]: TLS 1.3 presenting a certificate ([`K2iClient::new`]), a bearer token
//!   ([`K2iClient::with_token`]) or nothing ([`K2iClient::anonymous`]); pooled connections,
//!   a deadline per request; JSON answers decoded ([`K2iClient::get_json`]) or raw bodies
//!   ([`K2iClient::request`]).
//! - [`FetchError`]: why a request to one host failed, sorted into the per-host statuses of
//!   SPEC section 6 (`timeout`, `unreachable`, `tls_error`, `http_error`, `refused`) by
//!   [`FetchError::status`]; k2i's JSON error bodies are read into its code and message.
//! - [`fanout`]: one request to each of many hosts, a report per host, one deadline.
//! - [`merge`]: the `--sort`/`--limit` merge of many hosts' answers into one table, shared by
//!   the CLI and the datacenter relays so both give the same answer.
#![forbid(unsafe_code)]

pub mod fanout;
pub mod merge;

use dcos_core::model::ErrorBody;
use dcos_core::tls::{Identity, SeenCertificates, TlsError};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde::de::DeserializeOwned;
use std::error::Error as _;
use std::sync::Arc;
use std::time::Duration;

/// Why a request to one host failed.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("connection refused")]
    Refused,
    #[error("unreachable: {0}")]
    Unreachable(String),
    #[error("TLS: {0}")]
    Tls(String),
    #[error("HTTP {status}: {code}: {message}")]
    Http { status: u16, code: String, message: String, position: Option<usize> },
    #[error("bad answer: {0}")]
    Decode(String),
    #[error("bad URL {0:?}")]
    BadUrl(String),
}

impl FetchError {
    /// The per-host status word of SPEC section 6.
    pub fn status(&self) -> &'static str {
        match self {
            FetchError::Timeout(_) => "timeout",
            FetchError::Refused => "refused",
            FetchError::Unreachable(_) | FetchError::BadUrl(_) => "unreachable",
            FetchError::Tls(_) => "tls_error",
            FetchError::Http { .. } | FetchError::Decode(_) => "http_error",
        }
    }
}

/// How long a pooled connection may wait idle for the next request.
const POOL_IDLE: Duration = Duration::from_secs(30);

/// A pooled client; clone freely.
#[derive(Clone)]
pub struct K2iClient {
    http: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    /// The connections' TLS configuration, for [`probe`].
    tls: Arc<rustls::ClientConfig>,
    token: Option<String>,
    /// When each k2i's certificate expires, as seen in the handshakes.
    seen: SeenCertificates,
}

impl K2iClient {
    /// A client presenting `identity`'s certificate.
    pub fn new(identity: &Identity) -> Result<K2iClient, TlsError> {
        let seen = SeenCertificates::default();
        let mut client =
            Self::with_tls((*identity.client_config_seeing(&[], &seen)?).clone(), None, POOL_IDLE);
        client.seen = seen;
        Ok(client)
    }

    /// When the certificate of the k2i at `base` (`https://HOST:PORT`) expires, in seconds
    /// since the epoch, once this client has connected to it (clients with a certificate).
    pub fn certificate_not_after(&self, base: &str) -> Option<i64> {
        let uri: hyper::Uri = base.parse().ok()?;
        self.seen.not_after(uri.host()?.trim_start_matches('[').trim_end_matches(']'))
    }

    /// A client with a TLS configuration of the caller's (a daemon's reloadable identity),
    /// keeping idle connections open for `idle` (a relay keeps them between requests; k2i
    /// keeps a `host` certificate's for two minutes).
    pub fn with_config(tls: rustls::ClientConfig, idle: Duration) -> K2iClient {
        Self::with_tls(tls, None, idle)
    }

    /// A client with a bearer token and no certificate.
    pub fn with_token(roots: Arc<rustls::RootCertStore>, token: String) -> Result<K2iClient, TlsError> {
        let cfg = (*dcos_core::tls::anonymous_client_config(roots)?).clone();
        Ok(Self::with_tls(cfg, Some(token), POOL_IDLE))
    }

    /// A client with no identity at all (health checks, the API document).
    pub fn anonymous(roots: Arc<rustls::RootCertStore>) -> Result<K2iClient, TlsError> {
        let cfg = (*dcos_core::tls::anonymous_client_config(roots)?).clone();
        Ok(Self::with_tls(cfg, None, POOL_IDLE))
    }

    fn with_tls(tls: rustls::ClientConfig, token: Option<String>, idle: Duration) -> K2iClient {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(Duration::from_secs(10)));
        let probe_tls = Arc::new(tls.clone());
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_only()
            .enable_http1()
            .wrap_connector(http);
        let http = Client::builder(TokioExecutor::new()).pool_idle_timeout(idle).build(https);
        K2iClient { http, tls: probe_tls, token, seen: SeenCertificates::default() }
    }

    /// `GET base + path`, decoded as JSON, within `timeout`.
    pub async fn get_json<T: DeserializeOwned>(
        &self,
        base: &str,
        path: &str,
        timeout: Duration,
    ) -> Result<T, FetchError> {
        let body = self.request("GET", base, path, None, timeout).await?;
        serde_json::from_slice(&body).map_err(|e| FetchError::Decode(e.to_string()))
    }

    /// Sends a request and returns the body of a 2xx answer.
    pub async fn request(
        &self,
        method: &str,
        base: &str,
        path: &str,
        body: Option<Vec<u8>>,
        timeout: Duration,
    ) -> Result<Bytes, FetchError> {
        self.request_with(method, base, path, body, &[], timeout).await
    }

    /// As [`K2iClient::request`], with extra `headers`.
    pub async fn request_with(
        &self,
        method: &str,
        base: &str,
        path: &str,
        body: Option<Vec<u8>>,
        headers: &[(&'static str, String)],
        timeout: Duration,
    ) -> Result<Bytes, FetchError> {
        let work = async {
            let resp = self.send(method, url(base, path), body, headers).await?;
            let status = resp.status();
            let bytes = resp
                .into_body()
                .collect()
                .await
                .map_err(|e| FetchError::Unreachable(e.to_string()))?
                .to_bytes();
            if status.is_success() {
                return Ok(bytes);
            }
            Err(http_error(status, &bytes))
        };
        tokio::time::timeout(timeout, work).await.map_err(|_| FetchError::Timeout(timeout))?
    }

    /// `GET base + path` with `headers`, for an answer that keeps coming, one document a
    /// line (`/v1/top?watch=true`): its lines as they arrive, once the head of a 2xx answer
    /// came within `timeout`.
    pub async fn lines_with(
        &self,
        base: &str,
        path: &str,
        headers: &[(&'static str, String)],
        timeout: Duration,
    ) -> Result<Lines, FetchError> {
        let work = async {
            let resp = self.send("GET", url(base, path), None, headers).await?;
            let status = resp.status();
            if status.is_success() {
                return Ok(Lines { body: resp.into_body(), buf: Vec::new() });
            }
            let bytes = resp.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
            Err(http_error(status, &bytes))
        };
        tokio::time::timeout(timeout, work).await.map_err(|_| FetchError::Timeout(timeout))?
    }

    /// Sends a request to `url`; the answer's head.
    async fn send(
        &self,
        method: &str,
        url: String,
        body: Option<Vec<u8>>,
        headers: &[(&'static str, String)],
    ) -> Result<hyper::Response<hyper::body::Incoming>, FetchError> {
        let uri: hyper::Uri = url.parse().map_err(|_| FetchError::BadUrl(url.clone()))?;
        let mut req = hyper::Request::builder().method(method).uri(uri);
        if let Some(t) = &self.token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        if body.is_some() {
            req = req.header("content-type", "application/json");
        }
        for (name, value) in headers {
            req = req.header(*name, value.as_str());
        }
        let req = req
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|_| FetchError::BadUrl(url))?;
        let uri = req.uri().clone();
        match self.http.request(req).await.map_err(classify) {
            Err(FetchError::Unreachable(why)) => {
                Err(probe(&self.tls, &uri).await.unwrap_or(FetchError::Unreachable(why)))
            }
            answer => answer,
        }
    }
}

/// The longest [`probe`] takes.
const PROBE_WAIT: Duration = Duration::from_secs(1);

/// Why the server at `uri` refuses this client's connections, if it says so: a handshake of
/// its own, then a read for the server's verdict, which comes within a round trip of the
/// handshake's end (waited for twice the handshake's time). With TLS 1.3 the server judges
/// the client's certificate after the client has finished its handshake, so a request on a
/// connection the server then refuses (a revoked or expired certificate, a CA it does not
/// know) can fail as a closed connection, its alert unread; the probe reads it. Taken only
/// when a request failed as unreachable.
async fn probe(tls: &Arc<rustls::ClientConfig>, uri: &hyper::Uri) -> Option<FetchError> {
    use tokio::io::AsyncReadExt;
    let host = uri.host()?.trim_start_matches('[').trim_end_matches(']').to_string();
    let name = rustls_pki_types::ServerName::try_from(host.clone()).ok()?;
    let tcp = tokio::net::TcpStream::connect((host.as_str(), uri.port_u16().unwrap_or(443)));
    let work = async {
        let tcp = tcp.await.ok()?;
        let began = tokio::time::Instant::now();
        let mut stream = match tokio_rustls::TlsConnector::from(tls.clone()).connect(name, tcp).await {
            Ok(s) => s,
            Err(e) => return Some(e),
        };
        let verdict = began.elapsed() * 2 + Duration::from_millis(20);
        match tokio::time::timeout(verdict, stream.read(&mut [0u8; 1])).await {
            Ok(Err(e)) => Some(e),
            _ => None,
        }
    };
    let failed = tokio::time::timeout(PROBE_WAIT, work).await.ok().flatten()?;
    cause(&failed).filter(|f| matches!(f, FetchError::Tls(_)))
}

/// A refused connection or a TLS failure found among `err` and its causes, looking inside
/// `io::Error`s too (connectors nest them, and `source()` skips the error an `io::Error`
/// wraps).
fn cause(err: &(dyn std::error::Error + 'static)) -> Option<FetchError> {
    if let Some(tls) = err.downcast_ref::<rustls::Error>() {
        return Some(FetchError::Tls(tls.to_string()));
    }
    if let Some(io) = err.downcast_ref::<std::io::Error>() {
        if io.kind() == std::io::ErrorKind::ConnectionRefused {
            return Some(FetchError::Refused);
        }
        if let Some(found) = io.get_ref().and_then(|inner| cause(inner)) {
            return Some(found);
        }
    }
    err.source().and_then(cause)
}

/// `base` (`https://HOST:PORT`, a trailing `/` or not) and `path`.
fn url(base: &str, path: &str) -> String {
    format!("{}{}", base.trim_end_matches('/'), path)
}

/// The lines of an answer that keeps coming ([`K2iClient::lines_with`]).
#[derive(Debug)]
pub struct Lines {
    body: hyper::body::Incoming,
    /// What came after the last complete line.
    buf: Vec<u8>,
}

impl Lines {
    /// The next complete line, without its newline; `None` once the answer has ended (a
    /// last line without a newline is dropped: the stream was cut).
    pub async fn next(&mut self) -> Option<Result<Bytes, FetchError>> {
        loop {
            if let Some(end) = memchr::memchr(b'\n', &self.buf) {
                let mut line: Vec<u8> = self.buf.drain(..=end).collect();
                line.pop();
                return Some(Ok(Bytes::from(line)));
            }
            match self.body.frame().await? {
                Ok(frame) => {
                    let Ok(data) = frame.into_data() else { continue };
                    // A chunk that is one whole line (as k2i writes them) is passed on as it is.
                    let one = !data.is_empty() && memchr::memchr(b'\n', &data) == Some(data.len() - 1);
                    if self.buf.is_empty() && one {
                        return Some(Ok(data.slice(..data.len() - 1)));
                    }
                    self.buf.extend_from_slice(&data);
                }
                Err(e) => return Some(Err(FetchError::Unreachable(e.to_string()))),
            }
        }
    }
}

/// The error of a non-2xx answer: k2i's JSON error body read into its code and message.
fn http_error(status: hyper::StatusCode, bytes: &[u8]) -> FetchError {
    let (code, message, position) = match serde_json::from_slice::<ErrorBody>(bytes) {
        Ok(e) => (e.error.code, e.error.message, e.error.position),
        Err(_) => (String::new(), String::from_utf8_lossy(bytes).into_owned(), None),
    };
    FetchError::Http { status: status.as_u16(), code, message, position }
}

/// Sorts a transport failure into refused / TLS ([`cause`]) or unreachable.
fn classify(e: hyper_util::client::legacy::Error) -> FetchError {
    if let Some(found) = e.source().and_then(cause) {
        return found;
    }
    tracing::debug!("transport error: {e:?}");
    let chain = std::iter::successors(e.source(), |s| (*s).source())
        .map(|s| s.to_string())
        .collect::<Vec<_>>()
        .join(": ");
    FetchError::Unreachable(if chain.is_empty() { e.to_string() } else { chain })
}

#[cfg(test)]
mod tests {
    use super::*;
    use dcos_core::pki::{self, files_in, LeafSpec};
    use dcos_core::Role;

    /// A CA in a directory of its own with `name` issued for 127.0.0.1.
    fn ca_with(name: &str, role: Role) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        pki::init_dir(dir.path()).unwrap();
        let mut spec = LeafSpec::new(name, role);
        spec.ips = vec!["127.0.0.1".parse().unwrap()];
        pki::issue_into_dir(dir.path(), &spec).unwrap();
        dir
    }

    /// A server presenting `k2i` of `dir` and requiring a client certificate of that CA;
    /// it completes handshakes and holds the connections open without answering.
    async fn server(dir: &std::path::Path) -> hyper::Uri {
        let identity = Identity::load(&files_in(dir, "k2i")).unwrap();
        let acceptor =
            tokio_rustls::TlsAcceptor::from(identity.server_config_require_client_auth(&[]).unwrap());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((tcp, _)) = listener.accept().await {
                if let Ok(tls) = acceptor.accept(tcp).await {
                    held.push(tls);
                }
            }
        });
        format!("https://{addr}").parse().unwrap()
    }

    #[tokio::test]
    async fn a_probe_reads_why_the_server_refuses_the_client_and_nothing_when_it_does_not() {
        let fleet = ca_with("k2i", Role::Host);
        let uri = server(fleet.path()).await;
        // A client certificate of another CA: refused once the client's handshake is done.
        let other = ca_with("stranger", Role::Admin);
        let mut stranger = files_in(other.path(), "stranger");
        stranger.ca = fleet.path().join("ca.crt");
        let tls = Identity::load(&stranger).unwrap().client_config(&[]).unwrap();
        match probe(&tls, &uri).await {
            Some(FetchError::Tls(why)) => assert!(why.contains("alert"), "{why}"),
            other => panic!("the server's alert, not {other:?}"),
        }
        // One of the fleet's: accepted, so there is nothing to say.
        pki::issue_into_dir(fleet.path(), &LeafSpec::new("admin", Role::Admin)).unwrap();
        let tls = Identity::load(&files_in(fleet.path(), "admin")).unwrap().client_config(&[]).unwrap();
        assert!(probe(&tls, &uri).await.is_none());
    }
}
