//! The peer transport in-process on 127.0.0.1: services that count their calls, fail or
//! take too long, so what the responder does (and does not do) is visible.

use dcos_core::pki::{self, LeafSpec};
use dcos_core::reload::ReloadableIdentity;
use dcos_core::tls::{Identity, TlsFiles};
use dcos_core::Role;
use middlecon::peer::{self, Client, Outcome, Request, Response, Service, ServiceFuture, Services};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

struct Counting(Arc<AtomicUsize>);
impl Service for Counting {
    fn call(&self, r: Request) -> ServiceFuture {
        self.0.fetch_add(1, Ordering::SeqCst);
        Box::pin(async move { Ok(Response { payload: r.caller.name.into_bytes(), ..Response::default() }) })
    }
}

struct Failing;
impl Service for Failing {
    fn call(&self, _: Request) -> ServiceFuture {
        Box::pin(async {
            Err(peer::AppError { code: peer::ErrorCode::NoSpace, message: "disk full".into() })
        })
    }
}

/// Sleeps 10 s; counts how many of its calls were dropped (cancelled) before finishing.
struct Slow(Arc<AtomicUsize>);
struct Dropped(Arc<AtomicUsize>);
impl Drop for Dropped {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}
impl Service for Slow {
    fn call(&self, _: Request) -> ServiceFuture {
        let guard = Dropped(self.0.clone());
        Box::pin(async move {
            // Deliberately longer than any deadline or wait in these tests.
            tokio::time::sleep(Duration::from_secs(10)).await;
            std::mem::forget(guard);
            Ok(Response::default())
        })
    }
}

/// Waits until `done` holds, checking every 10 ms, for 3 s at most; the caller asserts.
async fn until(done: impl Fn() -> bool) {
    let give_up = Instant::now() + Duration::from_secs(3);
    while !done() && Instant::now() < give_up {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn identity(dir: &std::path::Path, name: &str) -> Identity {
    let mut spec = LeafSpec::new(name, Role::Host);
    spec.ips = vec!["127.0.0.1".parse().unwrap()];
    pki::issue_into_dir(dir, &spec).unwrap();
    Identity::load(&TlsFiles {
        cert: dir.join(format!("{name}.crt")),
        key: dir.join(format!("{name}.key")),
        ca: dir.join("ca.crt"),
    })
    .unwrap()
}

#[tokio::test]
async fn the_responder_checks_deadlines_reports_app_errors_and_cancels() {
    let dir = tempfile::tempdir().unwrap();
    pki::init_dir(dir.path()).unwrap();
    let server = identity(dir.path(), "srv");
    let calls = Arc::new(AtomicUsize::new(0));
    let dropped = Arc::new(AtomicUsize::new(0));
    let services = Services::new()
        .with("count", Counting(calls.clone()))
        .with("fail", Failing)
        .with("slow", Slow(dropped.clone()));
    let ep =
        peer::endpoint(&ReloadableIdentity::fixed(server).unwrap(), "127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = ep.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(peer::serve(Client::with_endpoint(ep), services, async {
        let _ = stopped.await;
    }));
    let c = Client::new(&identity(dir.path(), "caller")).unwrap();
    let soon = || SystemTime::now() + Duration::from_secs(5);

    let r = c.call(addr, "count", vec![], soon()).await.unwrap();
    assert_eq!(r.outcome(), Outcome::Ok);
    assert_eq!(r.payload, b"caller", "the service sees the caller's certificate name");
    assert_eq!(calls.load(Ordering::SeqCst), 1);

    let r = c.call(addr, "count", vec![], SystemTime::now() - Duration::from_millis(1)).await.unwrap();
    assert_eq!(r.outcome(), Outcome::DeadlineExceeded);
    assert_eq!(calls.load(Ordering::SeqCst), 1, "a past deadline does not run the service");

    let r = c.call(addr, "fail", vec![], soon()).await.unwrap();
    assert_eq!(r.outcome(), Outcome::AppError);
    assert_eq!(r.message, "disk full");
    assert_eq!(r.code(), peer::ErrorCode::NoSpace, "the service's code travels with its error");

    // The responder stops a slow service at the deadline and says so.
    let started = Instant::now();
    let r = c.call(addr, "slow", vec![], SystemTime::now() + Duration::from_millis(300)).await.unwrap();
    assert_eq!(r.outcome(), Outcome::DeadlineExceeded, "{r:?}");
    assert!(started.elapsed() < Duration::from_secs(2));
    until(|| dropped.load(Ordering::SeqCst) >= 1).await;
    assert_eq!(dropped.load(Ordering::SeqCst), 1, "the slow call was cancelled");

    // A caller that goes away cancels the service on the responder.
    let call = c.call(addr, "slow", vec![], soon());
    assert!(tokio::time::timeout(Duration::from_millis(200), call).await.is_err());
    until(|| dropped.load(Ordering::SeqCst) >= 2).await;
    assert_eq!(dropped.load(Ordering::SeqCst), 2, "the abandoned call was cancelled");

    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(3), serving).await.expect("serve returns on shutdown").unwrap();
}

/// A daemon's endpoint on 127.0.0.1 serving `count`, with the client it shares the
/// endpoint with, and the sender that stops it.
fn daemon(
    dir: &std::path::Path,
    name: &str,
) -> (Client, std::net::SocketAddr, Arc<AtomicUsize>, tokio::sync::oneshot::Sender<()>) {
    let fixed = ReloadableIdentity::fixed(identity(dir, name)).unwrap();
    let ep = peer::endpoint(&fixed, "127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = ep.local_addr().unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let client = Client::with_endpoint(ep);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let services = Services::new().with("count", Counting(calls.clone()));
    tokio::spawn(peer::serve(client.clone(), services, async {
        let _ = stopped.await;
    }));
    (client, addr, calls, stop)
}

#[tokio::test]
async fn two_daemons_call_each_other_over_the_one_connection_either_dialled() {
    let dir = tempfile::tempdir().unwrap();
    pki::init_dir(dir.path()).unwrap();
    let (a, a_addr, a_calls, _stop_a) = daemon(dir.path(), "a");
    let (b, b_addr, b_calls, _stop_b) = daemon(dir.path(), "b");
    let soon = || SystemTime::now() + Duration::from_secs(5);

    let r = a.call(b_addr, "count", vec![], soon()).await.unwrap();
    assert_eq!((r.outcome(), r.payload.as_slice()), (Outcome::Ok, &b"a"[..]), "{r:?}");
    // b answers a on the connection a dialled, and calls a back on it: no second handshake.
    let r = b.call(a_addr, "count", vec![], soon()).await.unwrap();
    assert_eq!(
        (r.outcome(), r.payload.as_slice()),
        (Outcome::Ok, &b"b"[..]),
        "a sees b's certificate: {r:?}"
    );
    assert_eq!((a_calls.load(Ordering::SeqCst), b_calls.load(Ordering::SeqCst)), (1, 1));
    assert_eq!(a.endpoint().open_connections(), 1, "a holds the one connection it dialled");
    assert_eq!(b.endpoint().open_connections(), 1, "b called a back on the connection a dialled");
    for _ in 0..3 {
        assert_eq!(a.call(b_addr, "count", vec![], soon()).await.unwrap().outcome(), Outcome::Ok);
        assert_eq!(b.call(a_addr, "count", vec![], soon()).await.unwrap().outcome(), Outcome::Ok);
    }
    assert_eq!((a.endpoint().open_connections(), b.endpoint().open_connections()), (1, 1));
    assert_eq!((a_calls.load(Ordering::SeqCst), b_calls.load(Ordering::SeqCst)), (4, 4));

    // A connection that ends is forgotten: a tool's, from a port nobody calls back.
    let tool = Client::new(&identity(dir.path(), "tool")).unwrap();
    assert_eq!(tool.call(a_addr, "count", vec![], soon()).await.unwrap().outcome(), Outcome::Ok);
    assert_eq!(a.connections(), 2, "a holds b's connection and the tool's");
    tool.endpoint().close(0u32.into(), b"done");
    until(|| a.connections() <= 1).await;
    assert_eq!(a.connections(), 1, "the tool's closed connection is not kept");
    assert_eq!(a.call(b_addr, "count", vec![], soon()).await.unwrap().outcome(), Outcome::Ok);
}
