//! The peer transport: QUIC (quinn) between middlecons, ALPN `middlecon/1`, mutual TLS with
//! certificates of the fleet CA whose role is `host`.
//!
//! - One UDP socket per daemon carries both directions: [`endpoint`] builds a quinn
//!   endpoint that accepts peers (a client certificate is required by the TLS layer) and
//!   dials them with the same identity. Two daemons share one connection: calls go both
//!   ways on it, whoever dialled ([`Client`] adopts the connections [`serve`] accepts).
//!   A peer may open 128 streams (calls) at once at first, doubled while half are in use,
//!   up to 4096. Both sides keep a connection alive (a ping every 5 s; idle timeout 15 s):
//!   a call waiting for its reply on a connection the peer dialled sends nothing else, so
//!   without its own pings a peer killed and restarted meanwhile would leave it hanging
//!   until its deadline or the idle timeout; a ping reaches the new process, whose reset
//!   ends the call at once.
//! - The stateless-reset key is derived from the host's private key, so a daemon restarted
//!   with the same key resets the connections its predecessor left behind at the first
//!   packet. A call that meets such a reset fails at once with `ConnectionLost` (the old
//!   process may have run it before it died); only [`Client::request_idempotent`] (SWIM
//!   packets) sends it once more on a new connection.
//! - After the handshake the server reads the peer's role from its certificate; anything
//!   but `host` is closed with [`CLOSE_PERMISSION_DENIED`] and a reason. Calls arriving on
//!   a connection this daemon dialled are answered only if the server's certificate is a
//!   `host` one too.
//! - One bidirectional stream per call: the caller writes one frame holding a
//!   [`PeerRequest`] and finishes; the responder writes one frame holding a [`PeerReply`].
//!   Each side takes the other's end of stream with the frame when it came with it
//!   ([`at_end`]), so a call closes its stream quietly: a stream left unread (or stopped)
//!   makes quinn send `STOP_SENDING`, and the peer a `RESET_STREAM` in answer, packets for
//!   nothing. A caller that goes away before the reply still stops the stream, which
//!   cancels the call on the responder.
//!   A frame is a 4-byte big-endian length and that many bytes of protobuf
//!   (`proto/middlecon/v1/peer.proto`).
//! - The responder checks the absolute deadline and the access rules ([`crate::access`];
//!   a forwarded call is checked with the role its entry host relays) before running
//!   anything, answers `no_responders` at once for a service it does not serve, bounds
//!   the service by the deadline, and drops (cancels) it if the caller resets the stream.
//! - [`Client`] keeps one connection per peer address (dialled, or adopted from [`serve`])
//!   and re-dials a closed one. A peer that dials with another certificate than the one on
//!   the connection held (restarted with a new key) supersedes it: the old one is closed
//!   with [`CLOSE_SUPERSEDED`].
//! - Bulk transfers (a migrating workload's files) use a stream of their own: the request
//!   frame is followed by data that a [`BulkService`] reads itself ([`Client::open_bulk`]).

use crate::access::{self, Access};
use dcos_core::reload::ReloadableIdentity;
use dcos_core::tls::{peer_identity, Identity, PeerIdentity};
use dcos_core::Role;
use prost::Message;
use quinn::{ConnectionError, Endpoint, RecvStream, SendStream, VarInt};
use rustls_pki_types::CertificateDer;
use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub use dcos_proto::v1::{ErrorCode, Outcome, PeerReply, PeerRequest};

/// The ALPN protocol of the peer transport.
pub const ALPN: &[u8] = b"middlecon/1";
/// The largest request or reply payload, in bytes.
pub const MAX_PAYLOAD: usize = 4 * 1024 * 1024;
/// The largest frame: a full payload plus room for the service name and headers.
const MAX_FRAME: usize = MAX_PAYLOAD + 64 * 1024;
/// Application close code: the daemon is shutting down.
pub const CLOSE_SHUTDOWN: u32 = 0;
/// Application close code: the peer's certificate does not carry the `host` role.
pub const CLOSE_PERMISSION_DENIED: u32 = 1;
/// Application close code: the peer dialled again with another certificate, so this
/// connection led to a process that is gone ([`Client`]'s adoption rule).
pub const CLOSE_SUPERSEDED: u32 = 2;
/// How long a caller waits past its deadline for the responder's own verdict.
const REPLY_GRACE: Duration = Duration::from_millis(100);
/// A connection with no packets for this long is closed (the shorter of both sides' wins).
const IDLE_TIMEOUT: Duration = Duration::from_secs(15);
/// The dialling side pings an otherwise idle connection this often, so it outlives the
/// idle timeout; the accepting side does not (one ping per connection, not two).
const KEEP_ALIVE: Duration = Duration::from_secs(5);
/// Calls a peer may have in flight at once on a connection we accepted, at first ...
const INITIAL_STREAMS: u32 = 128;
/// ... raised (doubling) while at least half of them are in use, up to this. quinn keeps
/// state for every stream it allows, so allowing the maximum from the start would cost
/// memory per connection, times the fleet's size, for streams no call uses.
const MAX_STREAMS: u32 = 4096;

/// The peer socket's receive and send buffers: a daemon busy with handshakes (or starved
/// of CPU) should not have the kernel drop the datagrams of a hundred peers at once (the
/// default, about 200 KiB, holds some 90); capped by `net.core.rmem_max`/`wmem_max`.
const SOCKET_BUFFER: usize = 2 * 1024 * 1024;

pub use dcos_core::unix_ms;

/// Why the peer endpoint could not be built.
#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    #[error("TLS: {0}")]
    Tls(#[from] dcos_core::tls::TlsError),
    #[error("QUIC needs a TLS 1.3 cipher suite it can use for initial packets")]
    NoInitialSuite,
    #[error("cannot bind UDP {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
}

/// Every connection keeps itself alive, dialled or accepted. A daemon's connections
/// (`serving`) allow [`INITIAL_STREAMS`] calls from the peer; a tool's allow none.
fn transport(serving: bool) -> Arc<quinn::TransportConfig> {
    let mut t = quinn::TransportConfig::default();
    t.max_idle_timeout(Some(IDLE_TIMEOUT.try_into().expect("idle timeout fits a VarInt")));
    t.keep_alive_interval(Some(KEEP_ALIVE));
    t.max_concurrent_bidi_streams(VarInt::from_u32(if serving { INITIAL_STREAMS } else { 0 }));
    t.max_concurrent_uni_streams(VarInt::from_u32(0));
    Arc::new(t)
}

fn client_config(tls: Arc<rustls::ClientConfig>, serving: bool) -> Result<quinn::ClientConfig, PeerError> {
    let quic =
        quinn::crypto::rustls::QuicClientConfig::try_from(tls).map_err(|_| PeerError::NoInitialSuite)?;
    let mut cfg = quinn::ClientConfig::new(Arc::new(quic));
    cfg.transport_config(transport(serving));
    Ok(cfg)
}

fn server_config(tls: Arc<rustls::ServerConfig>) -> Result<quinn::ServerConfig, PeerError> {
    let quic =
        quinn::crypto::rustls::QuicServerConfig::try_from(tls).map_err(|_| PeerError::NoInitialSuite)?;
    let mut cfg = quinn::ServerConfig::with_crypto(Arc::new(quic));
    cfg.transport_config(transport(true));
    Ok(cfg)
}

/// What the stateless-reset key is derived from (see [`Identity::derive_secret`]).
const RESET_KEY_PURPOSE: &str = "middlecon/1 QUIC stateless reset key";
/// What the connection-ID key is derived from.
const CID_KEY_PURPOSE: &str = "middlecon/1 QUIC connection ID key";

/// The endpoint settings: a stateless-reset key and a connection-ID key derived from the
/// host key, so that a restarted daemon recognises its predecessor's connection IDs as
/// its own (a packet on an ID it did not make is dropped without a reset) and resets them
/// with tokens its predecessor's peers accept.
fn endpoint_config(identity: &Identity) -> quinn::EndpointConfig {
    let secret = identity.derive_secret(RESET_KEY_PURPOSE);
    let mut cfg =
        quinn::EndpointConfig::new(Arc::new(ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &secret)));
    let cid = identity.derive_secret(CID_KEY_PURPOSE);
    let cid_key = u64::from_le_bytes(cid[..8].try_into().expect("8 of 32 bytes"));
    cfg.cid_generator(move || Box::new(quinn_proto::HashedConnectionIdGenerator::from_key(cid_key)));
    cfg
}

/// A daemon's endpoint on `listen`: accepts peers and dials them, on one UDP socket whose
/// buffers are [`SOCKET_BUFFER`] (as far as the kernel allows). Each handshake, both ways,
/// uses the identity in use then (a reload reaches new connections; open ones stay); the
/// stateless-reset and connection-ID keys are derived from the key at start.
pub fn endpoint(identity: &Arc<ReloadableIdentity>, listen: SocketAddr) -> Result<Endpoint, PeerError> {
    let bind = |source| PeerError::Bind { addr: listen, source };
    let socket = std::net::UdpSocket::bind(listen).map_err(bind)?;
    for (what, set) in [
        ("receive", nix::sys::socket::setsockopt(&socket, nix::sys::socket::sockopt::RcvBuf, &SOCKET_BUFFER)),
        ("send", nix::sys::socket::setsockopt(&socket, nix::sys::socket::sockopt::SndBuf, &SOCKET_BUFFER)),
    ] {
        if let Err(e) = set {
            tracing::debug!("peer socket {what} buffer stays at the default: {e}");
        }
    }
    let runtime = Arc::new(quinn::TokioRuntime);
    let server = server_config(identity.server_config(&[ALPN], true)?)?;
    let mut ep = Endpoint::new(endpoint_config(&identity.current().identity), Some(server), socket, runtime)
        .map_err(bind)?;
    ep.set_default_client_config(client_config(identity.client_config(&[ALPN])?, true)?);
    Ok(ep)
}

/// A dial-only endpoint on an ephemeral port (tests, tools).
pub fn client_endpoint(identity: &Identity) -> Result<Endpoint, PeerError> {
    let any: SocketAddr = "0.0.0.0:0".parse().expect("literal address");
    let mut ep = Endpoint::client(any).map_err(|source| PeerError::Bind { addr: any, source })?;
    ep.set_default_client_config(client_config(identity.client_config(&[ALPN])?, false)?);
    Ok(ep)
}

// ---------------------------------------------------------------------------------------
// Services

/// A call as a service sees it.
#[derive(Debug, Clone)]
pub struct Request {
    /// The caller, from its certificate.
    pub caller: PeerIdentity,
    pub service: String,
    pub deadline: SystemTime,
    pub headers: BTreeMap<String, String>,
    pub payload: Vec<u8>,
}

/// A service's successful answer.
#[derive(Debug, Clone, Default)]
pub struct Response {
    pub headers: BTreeMap<String, String>,
    pub payload: Vec<u8>,
}

/// A service's own error: sent as `app_error` with its code and message.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct AppError {
    /// [`ErrorCode::Unspecified`] for a service whose errors have no code.
    pub code: ErrorCode,
    pub message: String,
}

impl AppError {
    /// An error without a code.
    pub fn new(message: impl Into<String>) -> AppError {
        AppError { code: ErrorCode::Unspecified, message: message.into() }
    }
}

/// What a service returns: its answer, or its own error (sent as `app_error`).
pub type ServiceFuture = Pin<Box<dyn Future<Output = Result<Response, AppError>> + Send>>;

/// Something that answers calls to one service name.
pub trait Service: Send + Sync + 'static {
    fn call(&self, request: Request) -> ServiceFuture;
}

/// What a [`Dispatch`] returns: the whole reply, outcome included (dropping it cancels).
pub type ReplyFuture = Pin<Box<dyn Future<Output = PeerReply> + Send>>;

/// Services that come and go (those registered by `Messaging.Serve` streams): asked for a
/// name the fixed services do not have. `None`: not served here.
pub trait Dispatch: Send + Sync + 'static {
    fn dispatch(&self, request: Request) -> Option<ReplyFuture>;
}

/// A service whose request is followed, on the same stream, by a body it reads itself
/// (bulk transfers). Its future is bounded by the request's deadline like any other.
pub trait BulkService: Send + Sync + 'static {
    fn receive(&self, request: Request, body: RecvStream) -> ServiceFuture;
}

/// The services this host serves, by name.
#[derive(Default, Clone)]
pub struct Services {
    by_name: HashMap<String, Arc<dyn Service>>,
    bulk: HashMap<String, Arc<dyn BulkService>>,
    dynamic: Option<Arc<dyn Dispatch>>,
    access: Arc<Access>,
}

impl Services {
    pub fn new() -> Services {
        Services::default()
    }

    pub fn with(mut self, name: impl Into<String>, service: impl Service) -> Services {
        self.by_name.insert(name.into(), Arc::new(service));
        self
    }

    pub fn with_bulk(mut self, name: impl Into<String>, service: impl BulkService) -> Services {
        self.bulk.insert(name.into(), Arc::new(service));
        self
    }

    pub fn get(&self, name: &str) -> Option<Arc<dyn Service>> {
        self.by_name.get(name).cloned()
    }

    /// Calls are checked against `access` (the default rules without it).
    pub fn with_access(mut self, access: Access) -> Services {
        self.access = Arc::new(access);
        self
    }

    pub fn access(&self) -> &Access {
        &self.access
    }

    /// Asks `dynamic` for any name not among the fixed services.
    pub fn with_dispatch(mut self, dynamic: Arc<dyn Dispatch>) -> Services {
        self.dynamic = Some(dynamic);
        self
    }
}

// ---------------------------------------------------------------------------------------
// Frames

#[derive(Debug, thiserror::Error)]
enum FrameError {
    #[error("frame of {0} bytes is over the {MAX_FRAME}-byte limit")]
    TooLarge(usize),
    #[error("stream ended inside a frame")]
    Truncated,
    #[error(transparent)]
    Read(#[from] quinn::ReadError),
    #[error("undecodable frame: {0}")]
    Decode(#[from] prost::DecodeError),
}

/// Where frames are read from: a QUIC stream, or bytes in a test.
trait FrameSource {
    /// Fills `buf`; [`FrameError::Truncated`] if the stream ends first.
    async fn fill(&mut self, buf: &mut [u8]) -> Result<(), FrameError>;
}

impl FrameSource for RecvStream {
    async fn fill(&mut self, buf: &mut [u8]) -> Result<(), FrameError> {
        self.read_exact(buf).await.map_err(|e| match e {
            quinn::ReadExactError::FinishedEarly(_) => FrameError::Truncated,
            quinn::ReadExactError::ReadError(e) => FrameError::Read(e),
        })
    }
}

/// Reads one frame: a length, checked against [`MAX_FRAME`] before anything is allocated,
/// then that many bytes of protobuf.
async fn read_frame<M: Message + Default>(recv: &mut impl FrameSource) -> Result<M, FrameError> {
    let mut len = [0u8; 4];
    recv.fill(&mut len).await?;
    let n = u32::from_be_bytes(len) as usize;
    if n > MAX_FRAME {
        return Err(FrameError::TooLarge(n));
    }
    let mut buf = vec![0u8; n];
    recv.fill(&mut buf).await?;
    Ok(M::decode(buf.as_slice())?)
}

/// Whether `recv` has ended (its FIN arrived) right after the frame just read, seen without
/// waiting: a stream read to its end is dropped without a `STOP_SENDING`. Bytes after the
/// frame, or no end yet, give false; the stream is then stopped when dropped, as before.
fn at_end(recv: &mut RecvStream) -> bool {
    let next = std::pin::pin!(recv.read_chunk(1, true));
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    matches!(next.poll(&mut cx), std::task::Poll::Ready(Ok(None)))
}

fn encode_frame(msg: &impl Message) -> Vec<u8> {
    let len = msg.encoded_len();
    let mut buf = Vec::with_capacity(4 + len);
    buf.extend_from_slice(&(len as u32).to_be_bytes());
    msg.encode(&mut buf).expect("a Vec grows as needed");
    buf
}

fn reply(outcome: Outcome, message: impl Into<String>) -> PeerReply {
    PeerReply { outcome: outcome as i32, message: message.into(), ..PeerReply::default() }
}

// ---------------------------------------------------------------------------------------
// Server

/// Accepts peers on `client`'s endpoint and answers their calls from `services` until
/// `shutdown` resolves, on accepted connections and on those `client` dials (it adopts the
/// accepted ones for its own calls); then closes every connection and waits (briefly) for
/// the closes to be sent.
pub async fn serve(client: Client, services: Services, shutdown: impl Future<Output = ()>) {
    let services = Arc::new(services);
    if let Some(answering) = &client.shared.answering {
        answering.send_replace(Some(services.clone()));
    }
    let endpoint = client.shared.endpoint.clone();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            incoming = endpoint.accept() => {
                let Some(incoming) = incoming else { break };
                tokio::spawn(accepted(incoming, client.clone(), services.clone()));
            }
            _ = &mut shutdown => break,
        }
    }
    endpoint.close(VarInt::from_u32(CLOSE_SHUTDOWN), b"middlecon shutting down");
    let _ = tokio::time::timeout(Duration::from_secs(1), endpoint.wait_idle()).await;
}

/// The identity in a connection's verified client certificate.
fn identity_of(conn: &quinn::Connection) -> Option<PeerIdentity> {
    peer_identity(&leaf_certificate(conn)?).ok()
}

/// The certificate the other end of `conn` presented.
fn leaf_certificate(conn: &quinn::Connection) -> Option<CertificateDer<'static>> {
    let certs = conn.peer_identity()?.downcast::<Vec<CertificateDer<'static>>>().ok()?;
    certs.first().cloned()
}

async fn accepted(incoming: quinn::Incoming, client: Client, services: Arc<Services>) {
    let remote = incoming.remote_address();
    let conn = match incoming.await {
        Ok(c) => c,
        Err(e) => {
            tracing::info!(%remote, "peer handshake failed: {e}");
            return;
        }
    };
    let caller = match identity_of(&conn) {
        Some(id) if id.role == Role::Host => id,
        other => {
            let reason = match other {
                Some(id) => format!(
                    "permission_denied: {} has role {}; only host certificates may speak the peer protocol",
                    id.name, id.role
                ),
                None => "permission_denied: no dcos identity in the client certificate".to_string(),
            };
            tracing::warn!(%remote, "{reason}");
            conn.close(VarInt::from_u32(CLOSE_PERMISSION_DENIED), reason.as_bytes());
            return;
        }
    };
    tracing::debug!(%remote, peer = %caller.name, "peer connected");
    // A peer dials from its own peer port, so calls to `remote` can use this connection.
    client.adopt(remote, &conn);
    answer_calls(conn.clone(), remote, caller, services).await;
    client.release(remote, &conn);
}

/// Answers calls on a connection this daemon dialled once [`serve`] has set the services,
/// if the server's certificate is a `host` one.
async fn answer_dialled(
    conn: quinn::Connection,
    remote: SocketAddr,
    mut answering: tokio::sync::watch::Receiver<Option<Arc<Services>>>,
) {
    let services = tokio::select! {
        s = answering.wait_for(Option::is_some) => match s {
            Ok(s) => s.clone().expect("waited for Some"),
            Err(_) => return,
        },
        _ = conn.closed() => return,
    };
    match identity_of(&conn) {
        Some(id) if id.role == Role::Host => answer_calls(conn, remote, id, services).await,
        other => tracing::warn!(
            %remote,
            "calls from this peer are not answered: its certificate ({}) is not a host one",
            other.map(|id| format!("{} with role {}", id.name, id.role)).unwrap_or_else(|| "no dcos identity".into())
        ),
    }
}

/// Answers the calls `caller` opens on `conn` until the connection ends.
async fn answer_calls(
    conn: quinn::Connection,
    remote: SocketAddr,
    caller: PeerIdentity,
    services: Arc<Services>,
) {
    let in_flight = Arc::new(AtomicU32::new(0));
    let mut allowed = INITIAL_STREAMS;
    loop {
        match conn.accept_bi().await {
            Ok((send, recv)) => {
                let busy = in_flight.fetch_add(1, Ordering::Relaxed) + 1;
                if busy * 2 >= allowed && allowed < MAX_STREAMS {
                    allowed = (allowed * 2).min(MAX_STREAMS);
                    conn.set_max_concurrent_bi_streams(VarInt::from_u32(allowed));
                }
                let in_flight = in_flight.clone();
                let services = services.clone();
                let caller = caller.clone();
                tokio::spawn(async move {
                    stream(send, recv, services, caller).await;
                    in_flight.fetch_sub(1, Ordering::Relaxed);
                });
            }
            Err(e) => {
                tracing::debug!(%remote, peer = %caller.name, "peer connection ended: {e}");
                return;
            }
        }
    }
}

async fn stream(mut send: SendStream, mut recv: RecvStream, services: Arc<Services>, caller: PeerIdentity) {
    let answer = match read_frame::<PeerRequest>(&mut recv).await {
        Ok(req) if services.bulk.contains_key(&req.service) => {
            let service = services.bulk[&req.service].clone();
            tokio::select! {
                r = receive_bulk(req, service, recv, caller) => Some(r),
                _ = send.stopped() => None,
            }
        }
        Ok(req) => {
            // Nothing more is expected on this stream: stopped, unless it has ended.
            if !at_end(&mut recv) {
                let _ = recv.stop(VarInt::from_u32(0));
            }
            let caller = access::relayed_caller(&req.headers, &caller);
            answer(req, &services, caller, &send).await
        }
        Err(FrameError::TooLarge(n)) => {
            let _ = recv.stop(VarInt::from_u32(0));
            Some(reply(
                Outcome::ResourceExhausted,
                format!("request of {n} bytes is over the {MAX_PAYLOAD}-byte payload limit"),
            ))
        }
        Err(e) => {
            tracing::debug!(peer = %caller.name, "unreadable request: {e}");
            None
        }
    };
    if let Some(a) = answer {
        if send.write_all(&encode_frame(&a)).await.is_ok() {
            let _ = send.finish();
            // Keep the stream until the reply is acknowledged or the caller stops it.
            let _ = send.stopped().await;
        }
    }
}

/// Runs one request to its reply; `None` when the caller went away (nothing to send).
async fn answer(
    req: PeerRequest,
    services: &Services,
    caller: PeerIdentity,
    send: &SendStream,
) -> Option<PeerReply> {
    tokio::select! {
        r = respond(req, services, caller) => Some(r),
        // The caller reset its stream or its connection: drop (cancel) the service call.
        _ = send.stopped() => None,
    }
}

/// Runs a bulk service on the body that follows `req`, bounded by its deadline.
async fn receive_bulk(
    req: PeerRequest,
    service: Arc<dyn BulkService>,
    body: RecvStream,
    caller: PeerIdentity,
) -> PeerReply {
    let deadline = UNIX_EPOCH + Duration::from_millis(req.deadline_unix_ms.max(0) as u64);
    let Ok(left) = deadline.duration_since(SystemTime::now()) else {
        return reply(Outcome::DeadlineExceeded, "the deadline had passed when the transfer arrived");
    };
    let name = req.service.clone();
    let request =
        Request { caller, service: req.service, deadline, headers: req.headers, payload: req.payload };
    service_reply(&name, tokio::time::timeout(left, service.receive(request, body)).await)
}

/// The reply for what a service did within its deadline: its answer (if within the payload
/// limit), its own error as `app_error`, or `deadline_exceeded`.
fn service_reply(
    name: &str,
    done: Result<Result<Response, AppError>, tokio::time::error::Elapsed>,
) -> PeerReply {
    match done {
        Ok(Ok(resp)) if resp.payload.len() > MAX_PAYLOAD => reply(
            Outcome::ResourceExhausted,
            format!("{name} answered {} bytes, over the {MAX_PAYLOAD}-byte limit", resp.payload.len()),
        ),
        Ok(Ok(resp)) => PeerReply {
            outcome: Outcome::Ok as i32,
            message: String::new(),
            headers: resp.headers,
            payload: resp.payload,
            code: ErrorCode::Unspecified as i32,
        },
        Ok(Err(e)) => PeerReply { code: e.code as i32, ..reply(Outcome::AppError, e.message) },
        Err(_) => reply(Outcome::DeadlineExceeded, format!("{name} did not answer before the deadline")),
    }
}

/// Answers one request on this host: the deadline, payload limit and service checks, then
/// the service bounded by the deadline. Dropping the future cancels the call. Used by the
/// peer responder and by the gRPC API for calls to this host.
pub async fn respond(req: PeerRequest, services: &Services, caller: PeerIdentity) -> PeerReply {
    let deadline = UNIX_EPOCH + Duration::from_millis(req.deadline_unix_ms.max(0) as u64);
    let left = match deadline.duration_since(SystemTime::now()) {
        Ok(d) if !d.is_zero() => d,
        _ => {
            return reply(
                Outcome::DeadlineExceeded,
                format!(
                    "the deadline ({} unix ms) had passed when the request arrived",
                    req.deadline_unix_ms
                ),
            )
        }
    };
    if let Err(denied) = services.access.check(&req.service, caller.role) {
        return reply(Outcome::PermissionDenied, denied.0);
    }
    if req.payload.len() > MAX_PAYLOAD {
        return reply(
            Outcome::ResourceExhausted,
            format!("payload of {} bytes is over the {MAX_PAYLOAD}-byte limit", req.payload.len()),
        );
    }
    let name = req.service.clone();
    let request =
        Request { caller, service: req.service, deadline, headers: req.headers, payload: req.payload };
    let call = match services.get(&name) {
        Some(service) => service.call(request),
        None => match services.dynamic.as_ref().and_then(|d| d.dispatch(request)) {
            Some(reply_future) => {
                return tokio::time::timeout(left, reply_future).await.unwrap_or_else(|_| {
                    reply(Outcome::DeadlineExceeded, format!("{name} did not answer before the deadline"))
                })
            }
            None => return reply(Outcome::NoResponders, format!("no service {name:?} on this host")),
        },
    };
    service_reply(&name, tokio::time::timeout(left, call).await)
}

// ---------------------------------------------------------------------------------------
// Client

/// Why a call got no reply from the responder. A reply that came back (whatever its
/// outcome) is not an error: see [`PeerReply::outcome`].
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error("{addr} is unreachable: {reason}")]
    Unreachable { addr: SocketAddr, reason: String },
    #[error("TLS handshake with {addr} failed: {reason}")]
    Handshake { addr: SocketAddr, reason: String },
    #[error("{addr} refused this identity: {reason}")]
    PermissionDenied { addr: SocketAddr, reason: String },
    #[error("no reply from {addr} before the deadline")]
    DeadlineExceeded { addr: SocketAddr },
    #[error("payload of {size} bytes is over the {limit}-byte limit")]
    TooLarge { size: usize, limit: usize },
    #[error("connection to {addr} lost: {reason}")]
    ConnectionLost { addr: SocketAddr, reason: String },
    #[error("{addr}: {reason}")]
    Protocol { addr: SocketAddr, reason: String },
}

impl CallError {
    /// The SPEC outcome this failure amounts to.
    pub fn outcome(&self) -> Outcome {
        match self {
            CallError::Unreachable { .. } | CallError::ConnectionLost { .. } => Outcome::Unreachable,
            CallError::Handshake { .. } | CallError::PermissionDenied { .. } => Outcome::PermissionDenied,
            CallError::DeadlineExceeded { .. } => Outcome::DeadlineExceeded,
            CallError::TooLarge { .. } => Outcome::ResourceExhausted,
            CallError::Protocol { .. } => Outcome::Unreachable,
        }
    }
}

fn is_tls_alert(code: quinn::TransportErrorCode) -> bool {
    (0x100..0x200).contains(&u64::from(code))
}

fn connection_error(addr: SocketAddr, e: ConnectionError) -> CallError {
    match e {
        ConnectionError::TransportError(t) if is_tls_alert(t.code) => {
            CallError::Handshake { addr, reason: t.to_string() }
        }
        ConnectionError::ConnectionClosed(c) if is_tls_alert(c.error_code) => {
            CallError::Handshake { addr, reason: format!("the peer aborted the handshake: {c}") }
        }
        ConnectionError::ApplicationClosed(c)
            if c.error_code == VarInt::from_u32(CLOSE_PERMISSION_DENIED) =>
        {
            CallError::PermissionDenied { addr, reason: String::from_utf8_lossy(&c.reason).into_owned() }
        }
        ConnectionError::TimedOut => CallError::Unreachable { addr, reason: "timed out".into() },
        ConnectionError::Reset => CallError::ConnectionLost {
            addr,
            reason: "reset by the peer: it restarted (the call may have run there before)".into(),
        },
        other => CallError::ConnectionLost { addr, reason: other.to_string() },
    }
}

fn read_error(addr: SocketAddr, e: FrameError) -> CallError {
    match e {
        FrameError::Read(quinn::ReadError::ConnectionLost(c)) => connection_error(addr, c),
        other => CallError::Protocol { addr, reason: format!("bad reply: {other}") },
    }
}

/// Calls services on peers, one reused connection per peer address. Clones share the
/// connections: a daemon has one client, for membership, the API and migrations, which
/// [`serve`] also gives the connections peers dial (so a call back needs no handshake).
#[derive(Clone)]
pub struct Client {
    shared: Arc<Shared>,
}

struct Shared {
    endpoint: Endpoint,
    connections: Mutex<HashMap<SocketAddr, quinn::Connection>>,
    /// One dial at a time per address: calls arriving together while there is no
    /// connection wait for the one handshake instead of each starting its own.
    dialing: Mutex<HashMap<SocketAddr, Arc<tokio::sync::Mutex<()>>>>,
    /// A daemon's client: the services [`serve`] answers with, also on the connections
    /// this client dials (`None` until it runs). A tool's client has none.
    answering: Option<tokio::sync::watch::Sender<Option<Arc<Services>>>>,
}

impl Client {
    /// A tool's client on its own ephemeral UDP port, presenting `identity`: it calls
    /// peers and answers no calls from them.
    pub fn new(identity: &Identity) -> Result<Client, PeerError> {
        Ok(Client::build(client_endpoint(identity)?, false))
    }

    /// A daemon's client dialling from `endpoint` (from [`endpoint`]); give it to [`serve`].
    pub fn with_endpoint(endpoint: Endpoint) -> Client {
        Client::build(endpoint, true)
    }

    fn build(endpoint: Endpoint, daemon: bool) -> Client {
        let shared = Shared {
            endpoint,
            connections: Mutex::default(),
            dialing: Mutex::default(),
            answering: daemon.then(|| tokio::sync::watch::channel(None).0),
        };
        Client { shared: Arc::new(shared) }
    }

    /// How many peers this client holds a connection to (dialled or adopted).
    pub fn connections(&self) -> usize {
        self.shared.connections.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// The endpoint this client dials from.
    pub fn endpoint(&self) -> &Endpoint {
        &self.shared.endpoint
    }

    /// Uses `conn`, which the peer at `addr` has just dialled, for calls to `addr` unless an
    /// open connection to the same peer is there already. (Replacing that one instead made
    /// two daemons that dialled each other at once each keep one connection nobody used,
    /// alive by its keep-alives, and a large fleet took much longer to agree.) An open connection on which the peer presented another certificate is
    /// replaced and closed: the peer was restarted with a new key, and the old connection
    /// leads to a process that is gone. Its successor cannot reset that connection (the
    /// stateless-reset key comes from the host key), so without this, calls would go into
    /// it until its idle timeout (15 s).
    fn adopt(&self, addr: SocketAddr, conn: &quinn::Connection) {
        let mut conns = self.shared.connections.lock().unwrap_or_else(|e| e.into_inner());
        let superseded = match conns.get(&addr) {
            None => None,
            Some(old) if old.close_reason().is_some() => None,
            Some(old) if leaf_certificate(old) == leaf_certificate(conn) => return,
            Some(old) => Some(old.clone()),
        };
        conns.insert(addr, conn.clone());
        drop(conns);
        if let Some(old) = superseded {
            tracing::info!(%addr, "the peer dialled with another certificate (restarted with a new key): its old connection is closed");
            old.close(
                VarInt::from_u32(CLOSE_SUPERSEDED),
                b"superseded: the peer dialled with another certificate",
            );
        }
    }

    /// Forgets `conn`, which has ended, unless another connection to `addr` took its place.
    fn release(&self, addr: SocketAddr, conn: &quinn::Connection) {
        let mut conns = self.shared.connections.lock().unwrap_or_else(|e| e.into_inner());
        if conns.get(&addr).is_some_and(|c| c.stable_id() == conn.stable_id()) {
            conns.remove(&addr);
        }
    }

    /// Calls `service` on the middlecon at `addr` with `payload`, to be answered by
    /// `deadline`. Never waits much past the deadline: an unreachable peer fails with
    /// [`CallError::Unreachable`] (no connection by then) or [`CallError::DeadlineExceeded`]
    /// (connected, no reply).
    pub async fn call(
        &self,
        addr: SocketAddr,
        service: &str,
        payload: Vec<u8>,
        deadline: SystemTime,
    ) -> Result<PeerReply, CallError> {
        let req = PeerRequest {
            service: service.to_string(),
            deadline_unix_ms: unix_ms(deadline),
            headers: BTreeMap::new(),
            payload,
        };
        self.request(addr, req).await
    }

    /// As [`Client::call`], with headers. At most once: a call that meets a stateless reset
    /// (the peer restarted) fails with [`CallError::ConnectionLost`] at once, since the old
    /// process may have run it before it died; the next call goes on a new connection.
    pub async fn request(&self, addr: SocketAddr, req: PeerRequest) -> Result<PeerReply, CallError> {
        self.send(addr, req, false).await
    }

    /// As [`Client::request`], for a request that may run twice (a SWIM packet): one that
    /// meets a stateless reset on a connection from before is sent once more on a new one.
    pub async fn request_idempotent(
        &self,
        addr: SocketAddr,
        req: PeerRequest,
    ) -> Result<PeerReply, CallError> {
        self.send(addr, req, true).await
    }

    async fn send(
        &self,
        addr: SocketAddr,
        req: PeerRequest,
        again_on_reset: bool,
    ) -> Result<PeerReply, CallError> {
        if req.payload.len() > MAX_PAYLOAD {
            return Err(CallError::TooLarge { size: req.payload.len(), limit: MAX_PAYLOAD });
        }
        let deadline = UNIX_EPOCH + Duration::from_millis(req.deadline_unix_ms.max(0) as u64);
        // The responder judges the deadline; we wait a little longer for its verdict.
        let left = deadline.duration_since(SystemTime::now()).unwrap_or_default();
        let give_up = tokio::time::Instant::now() + left + REPLY_GRACE;
        let no_handshake = || CallError::Unreachable {
            addr,
            reason: "no QUIC handshake completed before the deadline".into(),
        };
        let (conn, dialled) =
            tokio::time::timeout_at(give_up, self.connection(addr)).await.map_err(|_| no_handshake())??;
        let first = tokio::time::timeout_at(give_up, exchange(addr, &conn, &req)).await;
        // A stateless reset on a connection from before: the peer restarted and no process
        // holds that connection any more. Once more, on a new one, if that is harmless.
        let first = match first {
            Ok(Err(_))
                if again_on_reset
                    && !dialled
                    && matches!(conn.close_reason(), Some(ConnectionError::Reset)) =>
            {
                tracing::debug!(%addr, "cached connection reset by the peer (restarted); calling again");
                let (conn, _) = tokio::time::timeout_at(give_up, self.connection(addr))
                    .await
                    .map_err(|_| no_handshake())??;
                tokio::time::timeout_at(give_up, exchange(addr, &conn, &req)).await
            }
            other => other,
        };
        first.unwrap_or(Err(CallError::DeadlineExceeded { addr }))
    }

    /// Opens a bulk transfer to the [`BulkService`] `req.service` at `addr`: sends the
    /// request; the caller then writes the body ([`BulkCall::write`]) and reads the reply
    /// ([`BulkCall::finish`]).
    pub async fn open_bulk(&self, addr: SocketAddr, req: PeerRequest) -> Result<BulkCall, CallError> {
        let conn = tokio::time::timeout(Duration::from_secs(10), self.connection(addr))
            .await
            .map_err(|_| CallError::Unreachable {
                addr,
                reason: "no QUIC handshake completed within 10 s".into(),
            })??
            .0;
        let (mut send, recv) = conn.open_bi().await.map_err(|e| connection_error(addr, e))?;
        send.write_all(&encode_frame(&req)).await.map_err(|e| write_error(addr, &conn, e))?;
        Ok(BulkCall { addr, conn, send, recv })
    }

    /// The cached connection to `addr` if it is still open (a closed one is dropped).
    fn open_connection(&self, addr: SocketAddr) -> Option<quinn::Connection> {
        let mut conns = self.shared.connections.lock().unwrap_or_else(|e| e.into_inner());
        match conns.get(&addr) {
            Some(c) if c.close_reason().is_none() => Some(c.clone()),
            Some(_) => {
                conns.remove(&addr);
                None
            }
            None => None,
        }
    }

    /// The open connection to `addr`, dialled if there is none (or it has closed); `true`
    /// if it was dialled just now.
    async fn connection(&self, addr: SocketAddr) -> Result<(quinn::Connection, bool), CallError> {
        if let Some(c) = self.open_connection(addr) {
            return Ok((c, false));
        }
        let gate =
            self.shared.dialing.lock().unwrap_or_else(|e| e.into_inner()).entry(addr).or_default().clone();
        let _turn = gate.lock().await;
        // Whoever dialled while we waited (or the peer, dialling us) may have connected already.
        if let Some(c) = self.open_connection(addr) {
            return Ok((c, false));
        }
        let server_name = addr.ip().to_string();
        let connecting = self
            .shared
            .endpoint
            .connect(addr, &server_name)
            .map_err(|e| CallError::Protocol { addr, reason: format!("cannot dial: {e}") })?;
        let conn = connecting.await.map_err(|e| connection_error(addr, e))?;
        if let Some(answering) = &self.shared.answering {
            let (client, conn) = (self.clone(), conn.clone());
            let answering = answering.subscribe();
            tokio::spawn(async move {
                answer_dialled(conn.clone(), addr, answering).await;
                let _ = conn.closed().await;
                client.release(addr, &conn);
            });
        }
        self.shared.connections.lock().unwrap_or_else(|e| e.into_inner()).insert(addr, conn.clone());
        Ok((conn, true))
    }
}

/// A bulk transfer in progress ([`Client::open_bulk`]). Dropped without
/// [`BulkCall::finish`], the stream is reset and the responder sees the transfer fail.
pub struct BulkCall {
    addr: SocketAddr,
    conn: quinn::Connection,
    send: SendStream,
    recv: RecvStream,
}

fn write_error(addr: SocketAddr, conn: &quinn::Connection, e: quinn::WriteError) -> CallError {
    match conn.close_reason() {
        Some(reason) => connection_error(addr, reason),
        None => CallError::ConnectionLost { addr, reason: format!("sending: {e}") },
    }
}

impl BulkCall {
    /// The body's stream, to write into (flow-controlled by the peer).
    pub fn body(&mut self) -> &mut SendStream {
        &mut self.send
    }

    /// Sends `data`; waits while the peer's flow control holds it back.
    pub async fn write(&mut self, data: &[u8]) -> Result<(), CallError> {
        self.send.write_all(data).await.map_err(|e| write_error(self.addr, &self.conn, e))
    }

    /// Ends the body and waits (at most `wait`) for the responder's reply.
    pub async fn finish(mut self, wait: Duration) -> Result<PeerReply, CallError> {
        let addr = self.addr;
        self.send
            .finish()
            .map_err(|_| CallError::ConnectionLost { addr, reason: "the stream was closed".into() })?;
        match tokio::time::timeout(wait, read_frame::<PeerReply>(&mut self.recv)).await {
            Ok(r) => r.map_err(|e| read_error(addr, e)),
            Err(_) => Err(CallError::DeadlineExceeded { addr }),
        }
    }
}

impl Drop for BulkCall {
    fn drop(&mut self) {
        // After finish() this is a no-op; before it, the responder sees a reset.
        let _ = self.send.reset(VarInt::from_u32(0));
    }
}

async fn exchange(
    addr: SocketAddr,
    conn: &quinn::Connection,
    req: &PeerRequest,
) -> Result<PeerReply, CallError> {
    let (mut send, mut recv) = conn.open_bi().await.map_err(|e| connection_error(addr, e))?;
    let write = async {
        send.write_all(&encode_frame(req)).await?;
        send.finish().map_err(|_| quinn::WriteError::ClosedStream)
    };
    if let Err(e) = write.await {
        // The reply (or the connection's close reason) says more than the write error.
        if let Some(reason) = conn.close_reason() {
            return Err(connection_error(addr, reason));
        }
        return Err(CallError::ConnectionLost { addr, reason: format!("sending the request: {e}") });
    }
    let reply = read_frame::<PeerReply>(&mut recv).await.map_err(|e| read_error(addr, e))?;
    at_end(&mut recv);
    Ok(reply)
}

#[cfg(test)]
mod fuzz {
    //! Fuzz targets of the peer wire: whatever bytes a peer sends, the frame reader ends in
    //! a message or an error, never a panic, and never allocates past [`MAX_FRAME`].
    //! Bounded here (proptest's case count); `scripts/fuzz.sh` runs them longer.
    use super::*;
    use proptest::prelude::*;

    impl FrameSource for &[u8] {
        async fn fill(&mut self, buf: &mut [u8]) -> Result<(), FrameError> {
            if self.len() < buf.len() {
                return Err(FrameError::Truncated);
            }
            let (head, rest) = self.split_at(buf.len());
            buf.copy_from_slice(head);
            *self = rest;
            Ok(())
        }
    }

    fn read<M: Message + Default>(mut bytes: &[u8]) -> Result<M, FrameError> {
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        rt.block_on(read_frame::<M>(&mut bytes))
    }

    fn request() -> impl Strategy<Value = PeerRequest> {
        (".{0,40}", any::<i64>(), proptest::collection::btree_map(".{0,8}", ".{0,8}", 0..4), any::<Vec<u8>>())
            .prop_map(|(service, deadline_unix_ms, headers, payload)| PeerRequest {
                service,
                deadline_unix_ms,
                headers,
                payload,
            })
    }

    proptest! {
        #[test]
        fn any_bytes_are_a_request_or_an_error(bytes in any::<Vec<u8>>()) {
            match read::<PeerRequest>(&bytes) {
                Ok(_) | Err(FrameError::Truncated | FrameError::Decode(_)) => {}
                Err(FrameError::TooLarge(n)) => prop_assert!(n > MAX_FRAME),
                Err(e) => prop_assert!(false, "unexpected {e}"),
            }
        }

        #[test]
        fn a_frame_reads_back_and_any_cut_of_it_is_truncated(req in request(), cut in any::<prop::sample::Index>()) {
            let frame = encode_frame(&req);
            prop_assert_eq!(read::<PeerRequest>(&frame).unwrap(), req);
            let cut = cut.index(frame.len());
            prop_assert!(matches!(read::<PeerRequest>(&frame[..cut]), Err(FrameError::Truncated)));
        }

        #[test]
        fn a_length_over_the_limit_is_refused_before_anything_is_read(n in (MAX_FRAME as u32 + 1)..=u32::MAX) {
            prop_assert!(matches!(read::<PeerReply>(&n.to_be_bytes()), Err(FrameError::TooLarge(m)) if m == n as usize));
        }
    }
}
