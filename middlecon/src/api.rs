//! The gRPC API (`proto/middlecon/v1/middlecon.proto`, package `middlecon.v1`), served on
//! the local Unix socket (`--socket`, mode 0660, callers trusted as local) and on TCP with
//! mTLS (`--api`, a client certificate of the fleet CA is required). The Unix socket also
//! speaks the lean local protocol ([`local`]: `Call` without HTTP/2), told apart by the
//! first bytes a connection sends.
//!
//! Who may do what (SPEC section 2 roles, read from the client certificate):
//!
//! - `Membership.Members`: any role (`viewer`, `host`, `admin`) and local callers.
//! - `Messaging.Call` and `Query`: as the `[access]` rules say ([`crate::access`]; by
//!   default `host`, `admin` and local callers, who count as `admin`). A refused `Call` is
//!   answered with the outcome `permission_denied` naming the rule; a refused `Query`
//!   streams one such reply. Forwarded calls carry the caller's role for the answering
//!   host to check again.
//! - `Messaging.Serve`: `host`, `admin` and local callers; a `viewer` gets the gRPC status
//!   `PERMISSION_DENIED`.
//! - `Workloads` ([`workloads`]): `List` for every role; `Run`, `Stop`, `Migrate` and
//!   `Evacuate` for `admin` and local callers.
//! - `Services` ([`services`]): `List` and `Show` for every role; `Create` and `Remove` for
//!   `admin` and local callers.
//! - `Relay.FanOut` ([`relay`]): every role (reads of the datacenter's k2i on the caller's
//!   behalf, SPEC section 8).
//! - Prometheus over HTTP on the same listeners: `GET /v1/sd/k2i` ([`sd`], the fleet's k2i
//!   targets) for every role, and `GET /metrics` (the services' counters) where services run.
//!
//! `Call` routing: a target host that is this host runs the call here (built-in services
//! first, then services of `Serve` streams); another host's name is resolved through
//! membership (not dead), else the `--peer NAME=ADDR` table, and forwarded over QUIC with
//! the same absolute deadline; an unknown name is `unreachable`. `any` and `dc` try this
//! host, then live members (this dc first, then the least loaded) until one serves it.
//! `Query` asks every matching live member at once and streams the replies.

pub mod local;
pub mod relay;
pub mod sd;
pub mod services;
pub mod workloads;

use crate::access::{Caller, LOCAL};
use crate::directory::Directory;
use crate::peer::{self, Outcome, PeerReply, PeerRequest, Services};
use crate::routing::{Registry, Responder};
use dcos_core::tls::{peer_identity, PeerIdentity};
use dcos_proto::v1 as pb;
use relay::RelayApi;
use services::ServicesApi;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::server::Connected;
use tonic::{Request, Response, Status, Streaming};
use workloads::WorkloadsApi;

/// ALPN of the TCP API: gRPC over HTTP/2; HTTP/1.1 for Prometheus (`/metrics`, `/v1/sd/k2i`).
const ALPN: [&[u8]; 2] = [b"h2", b"http/1.1"];
/// The deadline of a call that does not set one.
const DEFAULT_DEADLINE: Duration = Duration::from_secs(10);
/// A connection carrying who is on the other end, for tonic's request extensions, and the
/// bytes already read from it to tell its protocol (the Unix socket's), which reads give
/// back first.
pub struct Conn<S> {
    io: S,
    caller: Caller,
    head: Vec<u8>,
}

impl<S> Conn<S> {
    /// `io` from `caller` (programs serving this API's services themselves: the benchmarks).
    pub fn new(io: S, caller: Caller) -> Conn<S> {
        Conn { io, caller, head: Vec::new() }
    }
}

impl<S> Connected for Conn<S> {
    type ConnectInfo = Caller;
    fn connect_info(&self) -> Caller {
        self.caller.clone()
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Conn<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let me = self.get_mut();
        if !me.head.is_empty() {
            let n = me.head.len().min(buf.remaining());
            buf.put_slice(&me.head[..n]);
            me.head.drain(..n);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut me.io).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Conn<S> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

/// The API's sockets, bound before the daemon announces itself.
pub struct Listeners {
    pub tcp: TcpListener,
    pub unix: UnixListener,
    pub socket: PathBuf,
}

/// Why the API could not listen.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("cannot bind TCP {addr} (api): {source}")]
    Tcp { addr: SocketAddr, source: std::io::Error },
    #[error("cannot listen on {path} (socket): {reason}")]
    Unix { path: PathBuf, reason: String },
}

fn bind_unix(path: &Path) -> Result<UnixListener, ApiError> {
    let err = |reason: String| ApiError::Unix { path: path.to_path_buf(), reason };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| err(e.to_string()))?;
    }
    if path.exists() {
        // A socket left behind by a daemon that is gone is replaced; a live one is not.
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(err("another process is serving it".into()));
        }
        std::fs::remove_file(path).map_err(|e| err(format!("cannot remove the stale socket: {e}")))?;
    }
    let listener = UnixListener::bind(path).map_err(|e| err(e.to_string()))?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660)).map_err(|e| err(e.to_string()))?;
    Ok(listener)
}

impl Listeners {
    /// Binds `api` (TCP) and `socket` (Unix, mode 0660).
    pub async fn bind(api: SocketAddr, socket: &Path) -> Result<Listeners, ApiError> {
        let tcp = TcpListener::bind(api).await.map_err(|source| ApiError::Tcp { addr: api, source })?;
        let unix = bind_unix(socket)?;
        Ok(Listeners { tcp, unix, socket: socket.to_path_buf() })
    }
}

/// What the API handlers share.
#[derive(Clone)]
pub struct Api {
    pub name: String,
    pub dc: String,
    /// This host's identity (for peer calls made on a caller's behalf).
    pub identity: PeerIdentity,
    pub services: Services,
    pub registry: Arc<Registry>,
    pub client: peer::Client,
    /// Where other hosts are.
    pub directory: Directory,
    /// This host's labels (Query filters).
    pub labels: BTreeMap<String, String>,
    /// Turns true when the daemon stops: `Serve` streams then end with OK.
    pub stopping: tokio::sync::watch::Receiver<bool>,
}

fn call_reply(outcome: Outcome, message: impl Into<String>) -> pb::CallReply {
    pb::CallReply { outcome: outcome as i32, message: message.into(), ..pb::CallReply::default() }
}

fn from_peer(reply: PeerReply, responder: &str) -> pb::CallReply {
    pb::CallReply {
        outcome: reply.outcome,
        responder: responder.to_string(),
        headers: reply.headers,
        payload: reply.payload,
        message: reply.message,
    }
}

impl Api {
    fn serves_locally(&self, service: &str) -> bool {
        self.services.get(service).is_some() || self.registry.services().iter().any(|s| s == service)
    }

    async fn local(&self, req: PeerRequest, caller: &Caller) -> pb::CallReply {
        let who = PeerIdentity { name: caller.name.clone(), role: caller.role(), not_after: i64::MAX };
        from_peer(peer::respond(req, &self.services, who).await, &self.name)
    }

    /// Routes one call (see the module documentation).
    pub async fn route(&self, caller: &Caller, call: pb::CallRequest) -> pb::CallReply {
        let req = match self.admit(caller, call.service, call.deadline_unix_ms, call.headers, call.payload) {
            Ok(r) => r,
            Err(denied) => return denied,
        };
        use pb::target::To;
        match call.target.and_then(|t| t.to) {
            Some(To::Host(h)) if h == self.name => self.local(req, caller).await,
            Some(To::Host(h)) => {
                let addr = match self.directory.resolve(&h) {
                    Ok(a) => a,
                    Err(message) => return call_reply(Outcome::Unreachable, message),
                };
                self.forward(&h, addr, req).await
            }
            Some(To::Dc(dc)) => {
                if dc == self.dc && self.serves_locally(&req.service) {
                    return self.local(req, caller).await;
                }
                self.first_answer(self.directory.others(Some(&dc), &BTreeMap::new()), req).await
            }
            // `any` or no target: this host, then this dc, then the least loaded.
            _ if self.serves_locally(&req.service) => self.local(req, caller).await,
            _ => self.first_answer(self.directory.others(None, &BTreeMap::new()), req).await,
        }
    }

    /// Checks the access rules for `caller` and builds the request to route: the absolute
    /// deadline (0: [`DEFAULT_DEADLINE`] from now) and the relay headers naming the caller.
    fn admit(
        &self,
        caller: &Caller,
        service: String,
        deadline_unix_ms: i64,
        mut headers: BTreeMap<String, String>,
        payload: Vec<u8>,
    ) -> Result<PeerRequest, pb::CallReply> {
        if let Err(denied) = self.services.access().check(&service, caller.role()) {
            let mut reply = call_reply(Outcome::PermissionDenied, format!("{}: {denied}", caller.describe()));
            reply.responder = self.name.clone();
            return Err(reply);
        }
        let deadline_unix_ms = if deadline_unix_ms == 0 {
            peer::unix_ms(SystemTime::now() + DEFAULT_DEADLINE)
        } else {
            deadline_unix_ms
        };
        crate::access::set_relay_headers(&mut headers, &caller.name, caller.role());
        Ok(PeerRequest { service, deadline_unix_ms, headers, payload })
    }

    /// Sends `req` to the host `name` at `addr`; the absolute deadline travels with it and
    /// the client gives up at it (plus a short grace for the responder's verdict).
    async fn forward(&self, name: &str, addr: SocketAddr, req: PeerRequest) -> pb::CallReply {
        let deadline = UNIX_EPOCH + Duration::from_millis(req.deadline_unix_ms.max(0) as u64);
        if deadline <= SystemTime::now() {
            return call_reply(
                Outcome::DeadlineExceeded,
                format!("the deadline ({} unix ms) had passed", req.deadline_unix_ms),
            );
        }
        match self.client.request(addr, req).await {
            Ok(reply) => from_peer(reply, name),
            Err(e) => call_reply(e.outcome(), format!("{name}: {e}")),
        }
    }

    /// Asks `hosts` in order until one does not answer `no_responders`.
    async fn first_answer(&self, hosts: Vec<(String, SocketAddr)>, req: PeerRequest) -> pb::CallReply {
        let mut asked = Vec::new();
        for (name, addr) in hosts {
            let reply = self.forward(&name, addr, req.clone()).await;
            match reply.outcome() {
                Outcome::NoResponders | Outcome::Unreachable => asked.push(name),
                _ => return reply,
            }
        }
        let asked = if asked.is_empty() { String::from("no other host known") } else { asked.join(", ") };
        call_reply(
            Outcome::NoResponders,
            format!("no host serves {:?} (this host {}; asked: {asked})", req.service, self.name),
        )
    }
}

type DeliveryStream = ReceiverStream<Result<pb::Delivery, Status>>;
type QueryStream = ReceiverStream<Result<pb::QueryReply, Status>>;

#[tonic::async_trait]
impl pb::messaging_server::Messaging for Api {
    async fn call(&self, request: Request<pb::CallRequest>) -> Result<Response<pb::CallReply>, Status> {
        let caller = Caller::of(&request);
        Ok(Response::new(self.route(&caller, request.into_inner()).await))
    }

    type QueryStream = QueryStream;

    async fn query(&self, request: Request<pb::QueryRequest>) -> Result<Response<QueryStream>, Status> {
        let caller = Caller::of(&request);
        let q = request.into_inner();
        let (tx, rx) = mpsc::channel(16);
        let req = match self.admit(&caller, q.service, q.deadline_unix_ms, q.headers, q.payload) {
            Ok(r) => r,
            Err(denied) => {
                let _ = tx.try_send(Ok(pb::QueryReply { reply: Some(denied) }));
                return Ok(Response::new(ReceiverStream::new(rx)));
            }
        };
        let deadline_unix_ms = req.deadline_unix_ms;
        let mut hosts = self.directory.others((!q.dc.is_empty()).then_some(q.dc.as_str()), &q.labels);
        let me_matches = (q.dc.is_empty() || q.dc == self.dc)
            && q.labels.iter().all(|(k, v)| self.labels.get(k) == Some(v));
        let api = self.clone();
        tokio::spawn(async move {
            let mut calls = tokio::task::JoinSet::new();
            if me_matches {
                let (api, req, caller) = (api.clone(), req.clone(), caller.clone());
                calls.spawn(async move { api.local(req, &caller).await });
            }
            for (name, addr) in hosts.drain(..) {
                let (api, req) = (api.clone(), req.clone());
                calls.spawn(async move { api.forward(&name, addr, req).await });
            }
            let deadline = UNIX_EPOCH + Duration::from_millis(deadline_unix_ms.max(0) as u64);
            let left = deadline.duration_since(SystemTime::now()).unwrap_or_default();
            let max_wait =
                if q.max_wait_ms == 0 { left } else { left.min(Duration::from_millis(q.max_wait_ms.into())) };
            let stop_at = tokio::time::Instant::now() + max_wait;
            let stall = (q.stall_ms > 0).then(|| Duration::from_millis(q.stall_ms.into()));
            let mut sent = 0u32;
            loop {
                let mut until = stop_at;
                if let Some(s) = stall {
                    until = until.min(tokio::time::Instant::now() + s);
                }
                let next = match tokio::time::timeout_at(until, calls.join_next()).await {
                    Ok(Some(Ok(reply))) => reply,
                    Ok(Some(Err(_))) => continue,
                    // All answered, or max_wait / the deadline / a stall.
                    Ok(None) | Err(_) => break,
                };
                if next.outcome() == Outcome::NoResponders {
                    continue;
                }
                if tx.send(Ok(pb::QueryReply { reply: Some(next) })).await.is_err() {
                    break;
                }
                sent += 1;
                if q.max_replies > 0 && sent >= q.max_replies {
                    break;
                }
            }
            // Dropping the set cancels the calls still out.
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    type ServeStream = DeliveryStream;

    async fn serve(
        &self,
        request: Request<Streaming<pb::ServeMessage>>,
    ) -> Result<Response<DeliveryStream>, Status> {
        let caller = Caller::of(&request);
        if !caller.may_serve() {
            return Err(Status::permission_denied(format!(
                "{} may not serve services (host, admin or local callers only)",
                caller.describe()
            )));
        }
        let mut inbound = request.into_inner();
        let (tx, rx) = mpsc::channel(crate::routing::STREAM_CAPACITY);
        let responder = Responder::new(caller.describe(), tx.clone());
        let registry = self.registry.clone();
        let mut stopping = self.stopping.clone();
        tokio::spawn(async move {
            loop {
                let msg = tokio::select! {
                    m = inbound.message() => m,
                    // The runtime dropped its receiving side: the stream is over.
                    _ = tx.closed() => break,
                    // The daemon stops: the stream ends with OK once its senders are gone
                    // (the runtime reconnects to the next daemon), not with a broken connection.
                    _ = stopping.wait_for(|s| *s) => break,
                };
                match msg {
                    Ok(Some(pb::ServeMessage { msg: Some(pb::serve_message::Msg::Register(r)) })) => {
                        for s in &r.services {
                            registry.register(s, &responder);
                        }
                        tracing::info!(by = %responder.owner, services = ?r.services, "services registered");
                        let ack = pb::Delivery {
                            msg: Some(pb::delivery::Msg::Registered(pb::Registered { services: r.services })),
                        };
                        if tx.send(Ok(ack)).await.is_err() {
                            break;
                        }
                    }
                    Ok(Some(pb::ServeMessage { msg: Some(pb::serve_message::Msg::Response(r)) })) => {
                        responder.complete(r)
                    }
                    Ok(Some(_)) => {}
                    Ok(None) | Err(_) => break,
                }
            }
            registry.remove(&responder);
            tracing::info!(by = %responder.owner, "serve stream ended; its registrations end");
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}

#[tonic::async_trait]
impl pb::membership_server::Membership for Api {
    async fn members(
        &self,
        request: Request<pb::MembersRequest>,
    ) -> Result<Response<pb::MembersReply>, Status> {
        // Every role may read membership.
        let _ = Caller::of(&request);
        use crate::membership::State;
        let mut members: Vec<pb::Member> = match &self.directory.members {
            Some(handle) => handle
                .members()
                .into_iter()
                .map(|m| pb::Member {
                    name: m.name,
                    dc: m.dc,
                    labels: m.labels,
                    addr: m.addr.to_string(),
                    k2i: m.k2i,
                    api: m.api,
                    state: match m.state {
                        State::Alive => pb::MemberState::Alive,
                        State::Suspect => pb::MemberState::Suspect,
                        State::Dead => pb::MemberState::Dead,
                    } as i32,
                    // Not heard yet: -1.
                    load: m.load.unwrap_or(-1.0),
                    version: m.version,
                    runtimes: m.runtimes,
                    // Not heard yet: 0.
                    cert_not_after: m.cert_not_after.unwrap_or_default(),
                })
                .collect(),
            None => Vec::new(),
        };
        if !members.iter().any(|m| m.name == self.name) {
            members.insert(
                0,
                pb::Member {
                    name: self.name.clone(),
                    dc: self.dc.clone(),
                    state: pb::MemberState::Alive as i32,
                    version: env!("CARGO_PKG_VERSION").into(),
                    ..pb::Member::default()
                },
            );
        }
        // Hosts only in the static peer table: known, not probed (state unspecified).
        let listed: std::collections::BTreeSet<String> = members.iter().map(|m| m.name.clone()).collect();
        members.extend(self.directory.peers.iter().filter(|(name, _)| !listed.contains(*name)).map(
            |(name, addr)| pb::Member { name: name.clone(), addr: addr.to_string(), ..pb::Member::default() },
        ));
        Ok(Response::new(pb::MembersReply { host: self.name.clone(), members }))
    }
}

fn router(
    api: Api,
    relay: RelayApi,
    workloads: Option<WorkloadsApi>,
    services: Option<ServicesApi>,
) -> tonic::service::Routes {
    let members = api.directory.members.clone();
    let mut routes = tonic::service::Routes::new(pb::messaging_server::MessagingServer::new(api.clone()))
        .add_service(pb::membership_server::MembershipServer::new(api))
        .add_service(pb::relay_server::RelayServer::new(relay));
    // Prometheus finds the fleet's k2i here (HTTP/1.1 or 2, same mTLS, any role).
    let router = std::mem::take(routes.axum_router_mut());
    *routes.axum_router_mut() = router.route(
        sd::K2I_PATH,
        axum::routing::get(move || {
            let members = members.as_ref().map(|m| m.members()).unwrap_or_default();
            async move { axum::Json(sd::k2i_groups(&members)) }
        }),
    );
    if let Some(w) = workloads {
        routes = routes.add_service(pb::workloads_server::WorkloadsServer::new(w));
    }
    if let Some(s) = services {
        let text = s.clone();
        routes = routes.add_service(pb::services_server::ServicesServer::new(s));
        // Prometheus reads the services' counters here (HTTP/1.1 or 2, same mTLS).
        let router = std::mem::take(routes.axum_router_mut());
        *routes.axum_router_mut() = router.route(
            METRICS_PATH,
            axum::routing::get(move || {
                let body = text.metrics();
                async move { ([(axum::http::header::CONTENT_TYPE, OPENMETRICS)], body) }
            }),
        );
    }
    routes
}

/// Where the API serves Prometheus text.
pub const METRICS_PATH: &str = "/metrics";
/// The content type of Prometheus' OpenMetrics text.
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Serves the API on `listeners` until `shutdown` turns true; removes the socket file.
pub async fn serve(
    listeners: Listeners,
    identity: &Arc<dcos_core::reload::ReloadableIdentity>,
    api: Api,
    workloads: Option<WorkloadsApi>,
    services: Option<ServicesApi>,
    shutdown: tokio::sync::watch::Receiver<bool>,
) -> Result<(), String> {
    let tls = identity.server_config(&ALPN, true).map_err(|e| e.to_string())?;
    let relay = RelayApi::new(identity).map_err(|e| e.to_string())?;
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    let Listeners { tcp, unix, socket } = listeners;

    let (conn_tx, conn_rx) = mpsc::channel::<
        Result<Conn<tokio_rustls::server::TlsStream<tokio::net::TcpStream>>, std::io::Error>,
    >(64);
    let mut stop = shutdown.clone();
    tokio::spawn(async move {
        loop {
            let (stream, remote) = tokio::select! {
                a = tcp.accept() => match a {
                    Ok(a) => a,
                    Err(e) => { tracing::warn!("api accept: {e}"); continue; }
                },
                _ = stop.wait_for(|s| *s) => break,
            };
            // Small request/reply frames: no Nagle delay (a delayed ACK on every call).
            let _ = stream.set_nodelay(true);
            let acceptor = acceptor.clone();
            let conn_tx = conn_tx.clone();
            tokio::spawn(async move {
                let tls = match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(stream)).await {
                    Ok(Ok(s)) => s,
                    Ok(Err(e)) => return tracing::info!(%remote, "api TLS handshake failed: {e}"),
                    Err(_) => return tracing::info!(%remote, "api TLS handshake timed out"),
                };
                let who = tls
                    .get_ref()
                    .1
                    .peer_certificates()
                    .and_then(|c| c.first())
                    .and_then(|c| peer_identity(c).ok());
                let Some(who) = who else {
                    return tracing::info!(%remote, "api client certificate carries no dcos identity");
                };
                let _ = conn_tx
                    .send(Ok(Conn {
                        io: tls,
                        caller: Caller { name: who.name, role: Some(who.role) },
                        head: Vec::new(),
                    }))
                    .await;
            });
        }
    });
    let unix_incoming = sniff_unix(unix, api.clone(), shutdown.clone());
    let done = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let tcp_server = tonic::transport::Server::builder()
        .accept_http1(true)
        .add_routes(router(api.clone(), relay.clone(), workloads.clone(), services.clone()))
        .serve_with_incoming_shutdown(ReceiverStream::new(conn_rx), done(shutdown.clone()));
    let unix_server = tonic::transport::Server::builder()
        .accept_http1(true)
        .add_routes(router(api, relay, workloads, services))
        .serve_with_incoming_shutdown(unix_incoming, done(shutdown));
    let (a, b) = tokio::join!(tcp_server, unix_server);
    let _ = std::fs::remove_file(&socket);
    a.and(b).map_err(|e| e.to_string())
}

/// How long a connection to the Unix socket may take to send its first bytes.
const FIRST_BYTES: Duration = Duration::from_secs(10);

/// Accepts on the Unix socket: a connection that opens with the local protocol's preface is
/// served by [`local::serve`]; any other goes to gRPC (the stream returned), its first bytes
/// kept in its [`Conn`].
fn sniff_unix(
    unix: UnixListener,
    api: Api,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> ReceiverStream<Result<Conn<tokio::net::UnixStream>, std::io::Error>> {
    let (conn_tx, conn_rx) = mpsc::channel(64);
    tokio::spawn(async move {
        loop {
            let mut io = tokio::select! {
                a = unix.accept() => match a {
                    Ok((io, _)) => io,
                    Err(e) => { tracing::warn!("api accept (unix): {e}"); continue; }
                },
                _ = stop.wait_for(|s| *s) => break,
            };
            let (api, conn_tx) = (api.clone(), conn_tx.clone());
            tokio::spawn(async move {
                use tokio::io::AsyncReadExt;
                let mut head = [0u8; dcos_proto::local::PREFACE.len()];
                let mut got = 0;
                // Up to the preface's length, or fewer if the connection ends first.
                while got < head.len() {
                    match tokio::time::timeout(FIRST_BYTES, io.read(&mut head[got..])).await {
                        Ok(Ok(0)) => break,
                        Ok(Ok(n)) => got += n,
                        Ok(Err(_)) | Err(_) => return,
                    }
                    if head[..got] != dcos_proto::local::PREFACE[..got] {
                        break;
                    }
                }
                if head[..] == dcos_proto::local::PREFACE[..] {
                    return local::serve(io, api).await;
                }
                let caller = Caller { name: LOCAL.into(), role: None };
                let _ = conn_tx.send(Ok(Conn { io, caller, head: head[..got].to_vec() })).await;
            });
        }
    });
    ReceiverStream::new(conn_rx)
}

/// What the API serves besides messaging and membership, where this daemon runs them.
#[derive(Default, Clone)]
pub struct Hosted {
    pub workloads: Option<Arc<crate::workloads::Workloads>>,
    pub services: Option<Arc<crate::services::Services>>,
}

/// The API running in the background ([`spawn`]).
pub struct Running {
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Running {
    /// Stops serving (open calls are given a second) and removes the socket file.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = tokio::time::timeout(Duration::from_secs(1), self.task).await;
    }
}

/// Serves the API on `listeners` in the background: calls to this host go to `services`
/// (which must dispatch to `registry`), calls to other hosts through the daemon's peer
/// `client`; `Workloads` over `workloads` when given (and migrations a previous run left
/// in doubt are settled).
pub fn spawn(
    listeners: Listeners,
    config: &crate::config::Config,
    client: peer::Client,
    services: Services,
    registry: Arc<Registry>,
    members: Option<crate::membership::Handle>,
    hosted: Hosted,
) -> Running {
    let (stop, rx) = tokio::sync::watch::channel(false);
    let directory = Directory {
        name: config.name.clone(),
        dc: config.dc.clone(),
        members,
        peers: Arc::new(config.peers.clone()),
    };
    let api = Api {
        name: config.name.clone(),
        dc: config.dc.clone(),
        identity: config.identity.current().identity.peer.clone(),
        services,
        registry,
        client: client.clone(),
        directory: directory.clone(),
        labels: config.labels.clone(),
        stopping: rx.clone(),
    };
    let workloads = hosted.workloads.map(|w| {
        let peers = Arc::new(crate::workloads::migrate::quic::QuicPeers::new(client, directory));
        let mover = crate::workloads::migrate::Mover::new(w, peers, Default::default());
        crate::workloads::migrate::recovery::recover(&mover);
        WorkloadsApi::new(mover)
    });
    let fronts = hosted.services.map(|s| ServicesApi::new(s, &config.name));
    let identity = config.identity.clone();
    let task = tokio::spawn(async move {
        if let Err(e) = serve(listeners, &identity, api, workloads, fronts, rx).await {
            tracing::error!("gRPC API stopped: {e}");
        }
    });
    Running { stop, task }
}
