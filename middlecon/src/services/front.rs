//! A service's front on this host: the TCP listener on the service's port. Each connection
//! is admitted to an instance ([`Service::admit`], which may hold it while one starts) and
//! relayed to the instance's loopback port, bytes both ways, whatever the protocol. A
//! connection that finds the host saturated may be relayed to a peer's front instead
//! ([`Spill`]).

use super::pool::{Refused, Service};
use super::spill::Spill;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// How often a front whose port is taken tries again.
const REBIND: std::time::Duration = std::time::Duration::from_secs(1);

/// Binds the front of a service on `port`, on every address of the host.
pub async fn bind(port: u16) -> std::io::Result<TcpListener> {
    TcpListener::bind(SocketAddr::from(([0, 0, 0, 0], port))).await
}

/// Serves `service`'s front on `listener` (none: bound here, tried again every [`REBIND`]
/// while the port is taken) until `stop` turns true.
pub async fn serve(
    service: Arc<Service>,
    listener: Option<TcpListener>,
    spill: Arc<dyn Spill>,
    mut stop: watch::Receiver<bool>,
) {
    let listener = match listener {
        Some(l) => l,
        None => loop {
            match bind(service.spec.port).await {
                Ok(l) => break l,
                Err(e) => {
                    let why = format!("front: port {} cannot be listened on: {e}", service.spec.port);
                    if service.pool().last_error != why {
                        tracing::error!(service = %service.spec.name, "{why}; trying again every {REBIND:?}");
                        service.pool().last_error = why;
                    }
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(REBIND) => {}
                _ = async { drop(stop.wait_for(|s| *s).await) } => return,
            }
        },
    };
    service.front_bound.store(true, std::sync::atomic::Ordering::SeqCst);
    loop {
        let (conn, from) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of descriptors and the like: say so, let it pass, go on.
                    tracing::warn!(service = %service.spec.name, "accept: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                    continue;
                }
            },
            _ = async { drop(stop.wait_for(|s| *s).await) } => break,
        };
        let _ = conn.set_nodelay(true);
        let (service, spill) = (service.clone(), spill.clone());
        tokio::spawn(async move { handle(service, spill, conn, from).await });
    }
}

/// One connection: to a peer's front when this host is saturated and a peer has room, else
/// to an instance here (held until one accepts).
async fn handle(service: Arc<Service>, spill: Arc<dyn Spill>, conn: TcpStream, from: SocketAddr) {
    let saturated = service.pool().saturated(&service.spec);
    if saturated {
        if let Some(peer) = spill.target(&service.spec, from) {
            if let Ok(upstream) = TcpStream::connect(peer).await {
                service.counters.spilled.inc();
                relay(&service, conn, upstream).await;
                return;
            }
        }
    }
    // An instance that refuses (it died between its last check and now) is failed, and the
    // connection tries the next one.
    for _ in 0..3 {
        let mut lease = match service.admit().await {
            Ok(l) => l,
            Err(Refused::Closing) => {
                service.counters.closed_on_stop.inc();
                return;
            }
            // Counted and logged by admit; dropping the connection closes it.
            Err(_) => return,
        };
        let warm = lease.warm.take().filter(|w| lease.usable(w));
        let upstream = match warm {
            Some(w) => Ok(w),
            None => TcpStream::connect(lease.addr()).await,
        };
        match upstream {
            Ok(upstream) => {
                relay(&service, conn, upstream).await;
                drop(lease);
                return;
            }
            Err(e) => lease.refused(&e.to_string()),
        }
    }
}

/// Relays `conn` and `upstream` until both directions are done ([`super::relay`]).
async fn relay(service: &Service, conn: TcpStream, upstream: TcpStream) {
    if let Err(e) = super::relay::relay(conn, upstream).await {
        tracing::debug!(service = %service.spec.name, "relay ended: {e}");
    }
}
