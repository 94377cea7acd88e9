//! `nats-server` processes for the request/reply benchmark, killed when dropped: a single
//! server on plain TCP ([`NatsServer::plain`]), or one server of a cluster ([`NatsServer::clustered`]):
//! routes to the other servers, TLS with verified certificates on client and route
//! connections, as a fleet with one server per host runs it. Also the client options that
//! go with each ([`connect`]).

use anyhow::{ensure, Context, Result};
use dcos_core::tls::TlsFiles;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A port the kernel just handed out on `ip`, released for a server to bind.
pub fn free_port(ip: IpAddr) -> Result<u16> {
    Ok(std::net::TcpListener::bind((ip, 0))?.local_addr()?.port())
}

/// One server of a cluster: its client and route addresses, and its certificate.
#[derive(Debug, Clone)]
pub struct Member {
    pub name: String,
    pub client: SocketAddr,
    pub route: SocketAddr,
    pub tls: TlsFiles,
}

/// A running `nats-server`.
pub struct NatsServer {
    child: Child,
    pub addr: SocketAddr,
    /// The client TLS files, for a clustered server.
    pub tls: Option<TlsFiles>,
}

/// A `tls { }` block: the server's certificate, the fleet CA, client certificates verified.
fn tls_block(tls: &TlsFiles) -> String {
    format!(
        "tls {{\n  cert_file: {:?}\n  key_file: {:?}\n  ca_file: {:?}\n  verify: true\n  timeout: 5\n}}\n",
        tls.cert, tls.key, tls.ca
    )
}

impl NatsServer {
    /// A single server with its defaults on `addr`'s IP (plain TCP, no TLS).
    pub async fn plain(bin: &Path, dir: &Path, ip: IpAddr) -> Result<NatsServer> {
        let addr = SocketAddr::new(ip, free_port(ip)?);
        let args = ["-a".to_string(), ip.to_string(), "-p".into(), addr.port().to_string()];
        let child = spawn(bin, &args, &dir.join("nats-plain.log"))?;
        let server = NatsServer { child, addr, tls: None };
        server.listening().await?;
        Ok(server)
    }

    /// Member `me` of the cluster `all`, with routes to every other member, all TLS.
    pub async fn clustered(bin: &Path, dir: &Path, me: &Member, all: &[Member]) -> Result<NatsServer> {
        let routes: Vec<String> = all
            .iter()
            .filter(|m| m.name != me.name)
            .map(|m| format!("\"nats-route://{}\"", m.route))
            .collect();
        let conf = format!(
            "server_name: {:?}\nhost: \"{}\"\nport: {}\n{}cluster {{\n  name: \"bench\"\n  host: \"{}\"\n  port: {}\n  routes: [{}]\n  {}}}\n",
            me.name,
            me.client.ip(),
            me.client.port(),
            tls_block(&me.tls),
            me.route.ip(),
            me.route.port(),
            routes.join(", "),
            tls_block(&me.tls).replace('\n', "\n  "),
        );
        let path = dir.join(format!("{}.conf", me.name));
        std::fs::write(&path, conf).with_context(|| format!("writing {}", path.display()))?;
        let args = ["-c".to_string(), path.display().to_string()];
        let child = spawn(bin, &args, &dir.join(format!("{}.log", me.name)))?;
        let server = NatsServer { child, addr: me.client, tls: Some(me.tls.clone()) };
        server.listening().await?;
        Ok(server)
    }

    async fn listening(&self) -> Result<()> {
        let started = Instant::now();
        while tokio::net::TcpStream::connect(self.addr).await.is_err() {
            ensure!(
                started.elapsed() < Duration::from_secs(10),
                "nats-server did not listen on {} within 10 s",
                self.addr
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(())
    }

    pub fn url(&self) -> String {
        format!("nats://{}", self.addr)
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    pub fn version(bin: &Path) -> String {
        Command::new(bin)
            .arg("--version")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_default()
    }
}

fn spawn(bin: &Path, args: &[String], log: &Path) -> Result<Child> {
    let log = std::fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
    Command::new(bin)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .with_context(|| format!("starting {} (apt package nats-server)", bin.display()))
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Connects to `url`: with `tls`, TLS is required, the server verified against its CA and
/// the client certificate presented.
pub async fn connect(url: &str, tls: Option<&TlsFiles>, timeout: Duration) -> Result<async_nats::Client> {
    let mut opts = async_nats::ConnectOptions::new().request_timeout(Some(timeout));
    if let Some(t) = tls {
        opts = opts
            .require_tls(true)
            .add_root_certificates(t.ca.clone())
            .add_client_certificate(t.cert.clone(), t.key.clone());
    }
    opts.connect(url).await.with_context(|| format!("connecting to NATS at {url}"))
}
