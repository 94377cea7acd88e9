//! `fleet-bench proxy`: a TCP proxy that adds a round trip between datacenters, since netem
//! is not available. It listens on `--listen-ip:P` for every port P of `--ports` and
//! forwards to `--to-ip:P`. A connection's upstream connect waits one round trip (the TCP
//! handshake across the link), and every chunk of bytes waits half a round trip in each
//! direction, in order (a delay line, not a bandwidth limit). It runs at nice -20, as the
//! kernel's netem would run ahead of every process.

use anyhow::{bail, Context, Result};
use clap::Args;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::time::Instant;

#[derive(Debug, Clone, Args)]
pub struct ProxyArgs {
    /// The address the proxy listens on.
    #[arg(long)]
    listen_ip: IpAddr,
    /// The address it forwards to, on the same port.
    #[arg(long)]
    to_ip: IpAddr,
    /// Port ranges FIRST-LAST (repeat).
    #[arg(long, required = true)]
    ports: Vec<String>,
    /// The added round trip, in milliseconds.
    #[arg(long, default_value_t = 30)]
    rtt_ms: u64,
}

fn ranges(specs: &[String]) -> Result<Vec<u16>> {
    let mut ports = Vec::new();
    for spec in specs {
        let (a, b) = spec.split_once('-').unwrap_or((spec, spec));
        let (a, b): (u16, u16) = (a.parse().context("a port")?, b.parse().context("a port")?);
        if a > b {
            bail!("--ports {spec}: the first port is after the last");
        }
        ports.extend(a..=b);
    }
    Ok(ports)
}

pub fn run(args: &ProxyArgs) -> Result<()> {
    // Go when the driver goes, however it ends.
    // SAFETY: prctl with integer arguments only.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) };
    super::raise_fd_limit();
    // The proxy stands for the network (netem adds its delay in the kernel, ahead of every
    // process): at the highest priority, a chunk waits its half round trip, not that and a
    // turn on a core among the endpoints, relays and dcos. Set before the runtime's threads
    // exist, so that they inherit it.
    // SAFETY: setpriority with integer arguments only (who 0: this thread).
    if unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, -20) } != 0 {
        eprintln!("proxy: cannot raise its priority: {}", std::io::Error::last_os_error());
    }
    let ports = ranges(&args.ports)?;
    let rtt = Duration::from_millis(args.rtt_ms);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async {
        for &port in &ports {
            let listener = TcpListener::bind((args.listen_ip, port))
                .await
                .with_context(|| format!("binding {}:{port}", args.listen_ip))?;
            let to = SocketAddr::new(args.to_ip, port);
            tokio::spawn(accept(listener, to, rtt));
        }
        anyhow::Ok(())
    })?;
    println!("ready {} ports, {} ms round trip", ports.len(), args.rtt_ms);
    let mut sink = Vec::new();
    let _ = std::io::Read::read_to_end(&mut std::io::stdin(), &mut sink);
    std::process::exit(0);
}

async fn accept(listener: TcpListener, to: SocketAddr, rtt: Duration) {
    loop {
        let Ok((client, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        tokio::spawn(async move {
            // The handshake's round trip across the link.
            tokio::time::sleep(rtt).await;
            let Ok(server) = TcpStream::connect(to).await else { return };
            let _ = client.set_nodelay(true);
            let _ = server.set_nodelay(true);
            let (cr, cw) = client.into_split();
            let (sr, sw) = server.into_split();
            tokio::join!(delay_line(cr, sw, rtt / 2), delay_line(sr, cw, rtt / 2));
        });
    }
}

/// Copies `from` to `to`, each chunk written `delay` after it was read; passes the end on.
async fn delay_line(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, delay: Duration) {
    let (tx, mut rx) = mpsc::unbounded_channel::<(Instant, Vec<u8>)>();
    let reader = async move {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match from.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if tx.send((Instant::now() + delay, buf[..n].to_vec())).is_err() {
                        break;
                    }
                }
            }
        }
        // Dropping `tx` ends the writer after what is in flight.
    };
    let writer = async move {
        while let Some((at, bytes)) = rx.recv().await {
            tokio::time::sleep_until(at).await;
            if to.write_all(&bytes).await.is_err() {
                return;
            }
        }
        let _ = tokio::time::sleep(delay).await;
        let _ = to.shutdown().await;
    };
    tokio::join!(reader, writer);
}
