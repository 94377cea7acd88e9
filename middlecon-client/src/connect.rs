//! Opening a channel to a middlecon's API: TCP with the fleet's mTLS (HTTP/2 over TLS 1.3,
//! presenting an [`Identity`]) or the local Unix socket, and why it failed ([`ConnectError`]).

use crate::Endpoint;
use dcos_core::tls::Identity;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tonic::transport::Channel;

/// ALPN of the TCP API.
const ALPN_H2: &[u8] = b"h2";
/// How long a TCP connection (and its TLS handshake) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Why no channel to a middlecon's API could be opened. [`ConnectError::status`] sorts it
/// into the per-host statuses of SPEC section 6.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConnectError {
    /// The TCP API at `addr` failed; `detail` is the error and its causes, each said once.
    #[error("cannot reach the middlecon API at {addr}: {detail}")]
    Tcp { addr: SocketAddr, detail: String },
    /// The Unix socket at `path` failed.
    #[error("cannot reach the local middlecon socket {}: {detail}", path.display())]
    Unix { path: PathBuf, detail: String },
    /// TCP takes a certificate and none was given.
    #[error("{0}: no certificate to present (give --cert, --key and --ca)")]
    NoIdentity(SocketAddr),
    /// The path exists but is no socket (the kernel would only say "connection refused").
    #[error(
        "{} is not a Unix socket: give the middlecon's --socket (default {})",
        .0.display(),
        crate::DEFAULT_SOCKET
    )]
    NotASocket(PathBuf),
    /// No channel within the caller's limit ([`Endpoint`] and limit).
    #[error("cannot reach the middlecon API at {0} within {1:?}")]
    Timeout(Endpoint, Duration),
}

impl ConnectError {
    /// The per-host status of SPEC section 6: `refused`, `tls_error`, `timeout` or
    /// `unreachable`.
    pub fn status(&self) -> &'static str {
        match self {
            ConnectError::Tcp { detail, .. } | ConnectError::Unix { detail, .. } => sort(detail),
            ConnectError::NoIdentity(_) => "tls_error",
            ConnectError::NotASocket(_) => "unreachable",
            ConnectError::Timeout(..) => "timeout",
        }
    }
}

/// A channel to the API at `addr` over mTLS, presenting `identity`.
pub async fn connect(addr: SocketAddr, identity: &Identity) -> Result<Channel, ConnectError> {
    let failed = |detail: String| ConnectError::Tcp { addr, detail };
    let tls = identity.client_config(&[ALPN_H2]).map_err(|e| failed(e.to_string()))?;
    let connector = tokio_rustls::TlsConnector::from(tls);
    let server_name = rustls_pki_types::ServerName::from(addr.ip());
    tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .map_err(|e| failed(e.to_string()))?
        .connect_timeout(CONNECT_TIMEOUT)
        .connect_with_connector(tower::service_fn(move |_uri| {
            let connector = connector.clone();
            let server_name = server_name.clone();
            async move {
                let tcp = tokio::net::TcpStream::connect(addr).await?;
                tcp.set_nodelay(true)?;
                let tls = connector.connect(server_name, tcp).await?;
                Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(tls))
            }
        }))
        .await
        .map_err(|e| failed(format!("{e}: {}", error_chain(&e))))
}

/// A channel to the API on the Unix socket at `path`.
pub async fn connect_unix(path: &Path) -> Result<Channel, ConnectError> {
    use std::os::unix::fs::FileTypeExt;
    if std::fs::metadata(path).is_ok_and(|m| !m.file_type().is_socket()) {
        return Err(ConnectError::NotASocket(path.into()));
    }
    let dial = path.to_path_buf();
    tonic::transport::Endpoint::from_static("http://localhost")
        .connect_with_connector(tower::service_fn(move |_uri| {
            let path = dial.clone();
            async move {
                let s = tokio::net::UnixStream::connect(path).await?;
                Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(s))
            }
        }))
        .await
        .map_err(|e| ConnectError::Unix { path: path.into(), detail: format!("{e}: {}", error_chain(&e)) })
}

/// A channel to the API at `endpoint`: with `identity` over TCP (which must then be given),
/// without one on the local socket.
pub async fn connect_to(endpoint: &Endpoint, identity: Option<&Identity>) -> Result<Channel, ConnectError> {
    match (endpoint, identity) {
        (Endpoint::Tcp(addr), Some(id)) => connect(*addr, id).await,
        (Endpoint::Tcp(addr), None) => Err(ConnectError::NoIdentity(*addr)),
        (Endpoint::Unix(path), _) => connect_unix(path).await,
    }
}

/// Sorts a connection failure's text (its whole chain of causes) into a per-host status.
fn sort(error: &str) -> &'static str {
    let e = error.to_ascii_lowercase();
    if e.contains("connection refused") {
        "refused"
    } else if ["certificate", "alert", "tls", "handshake"].iter().any(|w| e.contains(w)) {
        "tls_error"
    } else if e.contains("timed out") || e.contains("elapsed") {
        "timeout"
    } else {
        "unreachable"
    }
}

/// The causes of `e`, outermost first, each said once (hyper and the io error below it often
/// print the same text).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut cur = e.source();
    while let Some(s) = cur {
        let text = s.to_string();
        if parts.last() != Some(&text) && text != e.to_string() {
            parts.push(text);
        }
        cur = s.source();
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use dcos_core::pki::{self, LeafSpec};
    use dcos_core::tls::TlsFiles;
    use dcos_core::Role;

    /// An error with a text and an optional cause.
    #[derive(Debug)]
    struct Layer(&'static str, Option<Box<Layer>>);

    impl std::fmt::Display for Layer {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(self.0)
        }
    }

    impl std::error::Error for Layer {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            self.1.as_deref().map(|l| l as _)
        }
    }

    #[test]
    fn a_cause_that_repeats_the_text_above_it_is_said_once() {
        // hyper's connect error and the io error under it print the same words.
        let io = Layer("Connection refused (os error 111)", None);
        let hyper = Layer("Connection refused (os error 111)", Some(Box::new(io)));
        let top = Layer("transport error", Some(Box::new(hyper)));
        assert_eq!(error_chain(&top), "Connection refused (os error 111)");
        let tls = Layer("invalid peer certificate: Expired", None);
        let top = Layer("tls handshake", Some(Box::new(tls)));
        assert_eq!(error_chain(&top), "invalid peer certificate: Expired");
    }

    #[test]
    fn connection_failures_are_sorted() {
        assert_eq!(sort("transport error: Connection refused (os error 111)"), "refused");
        assert_eq!(sort("x: invalid peer certificate: UnknownIssuer"), "tls_error");
        assert_eq!(sort("x: received fatal alert: UnknownCA"), "tls_error");
        assert_eq!(sort("x: transport error: timed out"), "timeout");
        assert_eq!(sort("x: No route to host"), "unreachable");
    }

    #[tokio::test]
    async fn a_file_that_is_not_a_socket_is_named_as_such() {
        let file = tempfile::NamedTempFile::new().unwrap();
        let e = connect_to(&Endpoint::Unix(file.path().into()), None).await.unwrap_err();
        assert_eq!(e.status(), "unreachable");
        assert!(e.to_string().contains("is not a Unix socket"), "{e}");
        let e = connect_to(&Endpoint::Unix("/nonexistent/api.sock".into()), None).await.unwrap_err();
        assert_eq!(e.status(), "unreachable");
        assert!(e.to_string().starts_with("cannot reach the local middlecon socket /nonexistent/api.sock: "));
        assert!(e.to_string().contains("No such file or directory"), "{e}");
    }

    /// A fleet CA in a temporary directory with `name` issued for 127.0.0.1.
    fn fleet(name: &str, role: Role) -> (tempfile::TempDir, Identity) {
        let dir = tempfile::tempdir().unwrap();
        pki::init_dir(dir.path()).unwrap();
        let mut spec = LeafSpec::new(name, role);
        spec.ips = vec!["127.0.0.1".parse().unwrap()];
        pki::issue_into_dir(dir.path(), &spec).unwrap();
        let files = TlsFiles {
            cert: dir.path().join(format!("{name}.crt")),
            key: dir.path().join(format!("{name}.key")),
            ca: dir.path().join("ca.crt"),
        };
        (dir, Identity::load(&files).unwrap())
    }

    #[tokio::test]
    async fn tcp_needs_a_certificate_and_a_closed_port_is_refused() {
        let (_dir, operator) = fleet("ops", Role::Admin);
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
        let e = connect_to(&Endpoint::Tcp(closed), None).await.unwrap_err();
        assert_eq!(
            (e.status(), e.to_string()),
            ("tls_error", format!("{closed}: no certificate to present (give --cert, --key and --ca)"))
        );
        let e = connect(closed, &operator).await.unwrap_err();
        assert_eq!(e.status(), "refused", "{e}");
        assert!(e.to_string().starts_with(&format!("cannot reach the middlecon API at {closed}: ")), "{e}");
    }

    #[tokio::test]
    async fn a_server_of_another_fleet_is_a_tls_error() {
        let (_ours, operator) = fleet("ops", Role::Admin);
        let (_theirs, server) = fleet("other", Role::Host);
        let acceptor = tokio_rustls::TlsAcceptor::from(server.server_config(&[ALPN_H2]).unwrap());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let _ = acceptor.accept(tcp).await;
            }
        });
        let e = connect(addr, &operator).await.unwrap_err();
        assert_eq!(e.status(), "tls_error", "{e}");
        assert!(e.to_string().contains("certificate"), "{e}");
    }
}
