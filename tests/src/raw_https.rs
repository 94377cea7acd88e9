//! HTTP/1.1 written by hand over a real TLS connection: the requests a well-behaved client
//! would not send (a body that stalls, a `Content-Length` it never meant, a request line
//! beyond any limit), and the answer read back as status, head and body.

use anyhow::{bail, Context, Result};
use dcos_core::tls::{Identity, TlsFiles};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

/// One connection to `url` (`https://IP:PORT`) presenting `tls`'s certificate.
pub struct RawHttps {
    pub stream: TlsStream<TcpStream>,
}

/// An answer: the status, the head as text (lower-cased names), the body.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub head: String,
    pub body: Vec<u8>,
}

impl Answer {
    /// The body as JSON (panics if it is not).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", String::from_utf8_lossy(&self.body)))
    }
}

impl RawHttps {
    pub async fn connect(url: &str, tls: &TlsFiles) -> Result<RawHttps> {
        let config: Arc<tokio_rustls::rustls::ClientConfig> =
            Identity::load(tls)?.client_config(&[b"http/1.1"])?;
        let addr = url.trim_start_matches("https://").trim_end_matches('/');
        let tcp = TcpStream::connect(addr).await.with_context(|| format!("connecting to {addr}"))?;
        tcp.set_nodelay(true)?;
        let name = rustls_pki_types::ServerName::try_from("127.0.0.1")?.to_owned();
        let stream = TlsConnector::from(config).connect(name, tcp).await.context("TLS handshake")?;
        Ok(RawHttps { stream })
    }

    /// Writes `bytes` as they are.
    pub async fn send(&mut self, bytes: &[u8]) -> Result<()> {
        self.stream.write_all(bytes).await?;
        self.stream.flush().await?;
        Ok(())
    }

    /// Reads one answer within `limit`: the head, then a body of its `content-length`.
    pub async fn answer(&mut self, limit: Duration) -> Result<Answer> {
        tokio::time::timeout(limit, self.read_answer()).await.context("no answer in time")?
    }

    async fn read_answer(&mut self) -> Result<Answer> {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        let end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            let n = self.stream.read(&mut chunk).await?;
            if n == 0 {
                bail!("connection closed before a full head: {:?}", String::from_utf8_lossy(&buf));
            }
            buf.extend_from_slice(&chunk[..n]);
        };
        let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
        let status = head.get(9..12).and_then(|s| s.parse().ok()).context("no status")?;
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        let mut body = buf[end..].to_vec();
        while body.len() < length {
            let n = self.stream.read(&mut chunk).await?;
            if n == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..n]);
        }
        Ok(Answer { status, head, body })
    }
}

/// A request head for `method path` with `extra` header lines (each ending in `\r\n`).
pub fn head(method: &str, path: &str, extra: &str) -> Vec<u8> {
    format!("{method} {path} HTTP/1.1\r\nhost: 127.0.0.1\r\n{extra}\r\n").into_bytes()
}
