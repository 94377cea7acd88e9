//! Services against fake containers whose instances listen in process (no root): a real
//! front on a loopback port, real connections, the real workload core under them.

use super::*;
use crate::workloads::fake::{self, FakeHost};
use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::time::Instant;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

struct Host {
    machine: FakeHost,
    services: Arc<Services>,
    image: tempfile::TempDir,
}

impl Host {
    async fn new() -> Host {
        let machine = FakeHost::new("h");
        let workloads = machine.open().await;
        let services = Services::open(machine.state.path(), workloads, Arc::new(NoSpill), Arc::new(NoSteer))
            .await
            .unwrap();
        Host { machine, services, image: fake::image() }
    }

    /// The daemon restarts: workloads and services opened again from the state dir.
    async fn restart(&mut self) {
        self.services.shutdown().await;
        let workloads = self.machine.open().await;
        self.services =
            Services::open(self.machine.state.path(), workloads, Arc::new(NoSpill), Arc::new(NoSteer))
                .await
                .unwrap();
    }

    fn spec(&self, name: &str) -> ServiceSpec {
        let mut s = spec::tests::spec(name);
        s.rootfs = self.image.path().to_path_buf();
        s.port = free_port();
        s.start_timeout = Duration::from_secs(2);
        s.drain = Duration::from_secs(2);
        s
    }

    async fn create(&self, spec: ServiceSpec) -> ServiceSpec {
        self.services.create(spec.clone(), false).await.unwrap();
        spec
    }

    fn instances(&self, name: &str) -> Vec<InstanceView> {
        self.services.show(name).unwrap().1
    }

    fn summary(&self, name: &str) -> Summary {
        self.services.show(name).unwrap().0
    }

    /// Workloads of this host (instances included) and their containers.
    fn workloads(&self) -> Vec<String> {
        let mut names: Vec<String> = self.machine.containers.ids();
        names.sort();
        names
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A connection through the front of `spec`: the instance that answered it.
struct Client {
    lines: BufReader<TcpStream>,
    pub instance: String,
}

impl Client {
    async fn connect(spec: &ServiceSpec) -> std::io::Result<Client> {
        let mut conn = TcpStream::connect(("127.0.0.1", spec.port)).await?;
        // The instance answers once the client has spoken (unless it greets first).
        conn.write_all(b"hello\n").await?;
        let mut lines = BufReader::new(conn);
        let mut instance = String::new();
        lines.read_line(&mut instance).await?;
        if instance.is_empty() {
            return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "closed without an answer"));
        }
        Ok(Client { lines, instance: instance.trim().to_string() })
    }

    /// Sends a line and reads it back: the relay works both ways.
    async fn echo(&mut self, text: &str) -> String {
        self.lines.get_mut().write_all(format!("{text}\n").as_bytes()).await.unwrap();
        let mut back = String::new();
        self.lines.read_line(&mut back).await.unwrap();
        back.trim().to_string()
    }
}

#[tokio::test]
async fn a_connection_wakes_a_stopped_service_and_a_burst_starts_one_instance() {
    let host = Host::new().await;
    let mut spec = host.spec("web");
    spec.target_inflight = 100;
    let spec = host.create(spec).await;
    assert!(host.instances("web").is_empty(), "nothing runs before a request");
    let clients: Vec<_> = (0..20).map(|_| Client::connect(&spec)).collect();
    let mut answered = Vec::new();
    for c in clients {
        answered.push(c.await.expect("every held connection is answered"));
    }
    assert_eq!(answered[0].echo("hello").await, "hello");
    assert!(answered.iter().all(|c| c.instance == "web.0"), "one instance for the burst");
    assert_eq!(host.machine.containers.started.load(Ordering::SeqCst), 1);
    let s = host.summary("web");
    assert_eq!((s.cold_starts, s.connections, s.instances, s.inflight), (1, 20, 1, 20));
    // The instance is a workload of the host, tagged with its service, with PORT set.
    let w = host.services.workloads.list_one("web.0").unwrap();
    assert_eq!(w.service.as_deref(), Some("web"));
    assert_eq!(
        w.env.get("PORT").map(String::as_str),
        Some(host.instances("web")[0].port.to_string().as_str())
    );
}

#[tokio::test]
async fn load_over_the_target_starts_more_instances_within_a_second_up_to_max() {
    let host = Host::new().await;
    let mut spec = host.spec("web");
    spec.target_inflight = 2;
    spec.max = 3;
    let spec = host.create(spec).await;
    let first = Client::connect(&spec).await.unwrap();
    let step = Instant::now();
    let mut clients = vec![first];
    for _ in 0..9 {
        clients.push(Client::connect(&spec).await.unwrap());
    }
    fake::eventually(|| host.instances("web").iter().filter(|i| i.state == pool::State::Ready).count() == 3)
        .await;
    assert!(step.elapsed() < Duration::from_secs(1), "scaled in {:?}", step.elapsed());
    // Connections that came while they started went to the instance that was ready; each
    // next one goes to an instance with the fewest open connections.
    for _ in 0..4 {
        let before: BTreeMap<String, u32> =
            host.instances("web").into_iter().map(|i| (i.id, i.inflight)).collect();
        let c = Client::connect(&spec).await.unwrap();
        let least = *before.values().min().unwrap();
        assert_eq!(before[&c.instance], least, "{} took it, with {before:?}", c.instance);
        clients.push(c);
    }
    assert_eq!(host.instances("web").len(), 3, "never more than --max");
}

#[tokio::test]
async fn a_ready_instance_has_a_connection_made_ahead_of_time_for_the_next_client() {
    let host = Host::new().await;
    let mut spec = host.spec("web");
    spec.min = 1;
    let spec = host.create(spec).await;
    let fake = &host.machine.containers;
    // The connection that found it ready is kept for the first client.
    fake::eventually(|| host.instances("web").iter().any(|i| i.state == pool::State::Ready)).await;
    assert_eq!((fake.accepted(), host.instances("web")[0].connections), (1, 0));
    for n in 1..=3 {
        let mut c = Client::connect(&spec).await.unwrap();
        assert_eq!(c.echo("through a warm connection").await, "through a warm connection");
        // Each client took the warm one, and another was made for the next.
        fake::eventually(|| fake.accepted() == n + 1).await;
    }
    // An instance that speaks first gets no connection ahead of time: its greeting is the
    // client's to read.
    let host = Host::new().await;
    host.machine.containers.greets.store(true, Ordering::SeqCst);
    let mut spec = host.spec("web");
    spec.min = 1;
    let spec = host.create(spec).await;
    let fake = &host.machine.containers;
    fake::eventually(|| host.instances("web").iter().any(|i| i.state == pool::State::Ready)).await;
    for _ in 0..3 {
        let c = Client::connect(&spec).await.unwrap();
        assert_eq!(c.instance, "web.0");
    }
    // Once it is known to greet, one connection per client and none ahead of time.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let before = fake.accepted();
    let c = Client::connect(&spec).await.unwrap();
    assert_eq!(c.instance, "web.0");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(fake.accepted(), before + 1, "one connection for the client, none made ahead");
}

#[tokio::test]
async fn an_idle_instance_stops_after_idle_stop_down_to_min() {
    let host = Host::new().await;
    let mut spec = host.spec("web");
    spec.idle_stop = Some(Duration::from_millis(300));
    spec.min = 1;
    spec.target_inflight = 1;
    let spec = host.create(spec).await;
    fake::eventually(|| host.instances("web").iter().any(|i| i.state == pool::State::Ready)).await;
    let (a, b) = (Client::connect(&spec).await.unwrap(), Client::connect(&spec).await.unwrap());
    assert_eq!(host.instances("web").len(), 2, "one more for the second connection");
    drop((a, b));
    let idle = Instant::now();
    fake::eventually(|| host.instances("web").len() == 1).await;
    let took = idle.elapsed();
    assert!(
        took >= Duration::from_millis(300) && took < Duration::from_millis(500),
        "stopped after {took:?}"
    );
    fake::eventually(|| host.workloads().len() == 1).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(host.instances("web").len(), 1, "--min stays");
}

#[tokio::test]
async fn prestart_hands_a_started_spare_to_the_first_connection_and_replaces_it() {
    let host = Host::new().await;
    let mut spec = host.spec("web");
    spec.prestart = true;
    let spec = host.create(spec).await;
    fake::eventually(|| host.instances("web").iter().any(|i| i.spare && i.state == pool::State::Ready)).await;
    let c = Client::connect(&spec).await.unwrap();
    assert_eq!(c.instance, "web.0", "the spare took it");
    fake::eventually(|| host.instances("web").iter().any(|i| i.spare && i.id == "web.1")).await;
    assert_eq!(host.summary("web").cold_starts, 1);
}

#[tokio::test]
async fn renewal_by_requests_replaces_every_instance_and_leaves_nothing_behind() {
    let host = Host::new().await;
    let mut spec = host.spec("web");
    spec.max_requests = 1;
    let spec = host.create(spec).await;
    let mut seen = Vec::new();
    for i in 0..6 {
        let mut c = Client::connect(&spec).await.unwrap();
        assert_eq!(c.echo(&format!("r{i}")).await, format!("r{i}"));
        seen.push(c.instance.clone());
    }
    let distinct: std::collections::BTreeSet<&String> = seen.iter().collect();
    assert_eq!(distinct.len(), 6, "a fresh instance for each connection: {seen:?}");
    // The last one's replacement is on its way; the retired ones are stopped and removed.
    fake::eventually(|| host.workloads().len() <= 2).await;
    let s = host.summary("web");
    assert_eq!((s.renewals, s.failures, s.start_timeouts), (6, 0, 0));
    let dirs = || std::fs::read_dir(host.services.workloads.dir()).unwrap().count();
    fake::eventually(|| dirs() <= host.workloads().len() + crate::workloads::spare::POOL).await;
}

#[tokio::test]
async fn renewal_by_age_replaces_the_instance_and_keeps_the_open_connection() {
    let host = Host::new().await;
    let mut spec = host.spec("web");
    spec.max_age = Some(Duration::from_millis(200));
    spec.drain = Duration::from_secs(5);
    let spec = host.create(spec).await;
    let mut old = Client::connect(&spec).await.unwrap();
    assert_eq!(old.instance, "web.0");
    fake::eventually(|| {
        host.instances("web").iter().any(|i| i.id != "web.0" && i.state == pool::State::Ready)
    })
    .await;
    let new = Client::connect(&spec).await.unwrap();
    assert_ne!(new.instance, "web.0", "new connections go to the new instance");
    assert_eq!(old.echo("still here").await, "still here", "the draining one finishes its connection");
    drop(old);
    fake::eventually(|| !host.workloads().contains(&"web.0".to_string())).await;
}

#[tokio::test]
async fn a_start_that_fails_closes_held_connections_at_once_and_failures_are_rate_limited() {
    let host = Host::new().await;
    let spec = host.create(host.spec("web")).await;
    host.machine.containers.fail_every_start.store(true, Ordering::SeqCst);
    let began = Instant::now();
    let e = Client::connect(&spec).await.err().expect("closed");
    assert!(began.elapsed() < Duration::from_millis(500), "closed after {:?}: {e}", began.elapsed());
    let s = host.summary("web");
    assert_eq!(s.failures, 1);
    assert!(s.last_error.contains("did not start"), "{}", s.last_error);
    for _ in 0..pool::FAILURES_ALLOWED {
        let _ = Client::connect(&spec).await;
    }
    let s = host.summary("web");
    assert_eq!(s.failures as usize, pool::FAILURES_ALLOWED, "starts stop at the rate limit");
    assert!(s.throttled >= 1 && s.last_error.starts_with("throttled"), "{s:?}");
    assert_eq!(host.machine.containers.started.load(Ordering::SeqCst), 0);
    assert!(host.workloads().is_empty(), "nothing left of the failed starts");
}

#[tokio::test]
async fn an_instance_that_never_accepts_is_given_up_at_the_start_timeout() {
    let host = Host::new().await;
    let mut spec = host.spec("web");
    spec.start_timeout = Duration::from_millis(300);
    let spec = host.create(spec).await;
    host.machine.containers.deaf.store(true, Ordering::SeqCst);
    let began = Instant::now();
    assert!(Client::connect(&spec).await.is_err());
    let took = began.elapsed();
    assert!(took >= Duration::from_millis(300) && took < Duration::from_secs(1), "{took:?}");
    fake::eventually(|| host.summary("web").failures == 1).await;
    let s = host.summary("web");
    assert_eq!(s.start_timeouts, 1, "{s:?}");
    assert!(s.last_error.contains("did not accept on port"), "{}", s.last_error);
    fake::eventually(|| host.workloads().is_empty()).await;
}

#[tokio::test]
async fn an_instance_that_exits_is_replaced_at_the_next_connection() {
    let host = Host::new().await;
    let spec = host.create(host.spec("web")).await;
    let first = Client::connect(&spec).await.unwrap().instance;
    host.machine.containers.exit(&first);
    fake::eventually(|| host.instances("web").is_empty()).await;
    let again = Client::connect(&spec).await.unwrap().instance;
    assert_ne!(again, first);
    assert_eq!(host.summary("web").failures, 1);
}

#[tokio::test]
async fn remove_drains_open_connections_then_stops_every_instance() {
    let host = Host::new().await;
    let mut spec = host.spec("web");
    spec.min = 2;
    let spec = host.create(spec).await;
    let mut open = Client::connect(&spec).await.unwrap();
    let services = host.services.clone();
    let removing = tokio::spawn(async move { services.remove("web", Some(Duration::from_secs(5))).await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(open.echo("during the drain").await, "during the drain", "not cut by the removal");
    assert!(TcpStream::connect(("127.0.0.1", spec.port)).await.is_err(), "the front is closed");
    drop(open);
    assert_eq!(removing.await.unwrap().unwrap(), 2);
    assert!(host.services.show("web").is_err());
    fake::eventually(|| host.workloads().is_empty()).await;
    assert!(Services::open(
        host.machine.state.path(),
        host.machine.open().await,
        Arc::new(NoSpill),
        Arc::new(NoSteer)
    )
    .await
    .unwrap()
    .list()
    .is_empty());
}

#[tokio::test]
async fn removing_a_service_while_an_instance_starts_leaves_no_instance() {
    let host = Host::new().await;
    host.machine.containers.start_ms.store(300, Ordering::SeqCst);
    let spec = host.create(host.spec("web")).await;
    let connecting = tokio::spawn(async move { Client::connect(&spec).await.map(|c| c.instance) });
    // Removed while its one instance's container is still being started.
    fake::eventually(|| host.services.workloads.list_one("web.0").is_some()).await;
    host.services.remove("web", Some(Duration::from_secs(1))).await.unwrap();
    assert!(connecting.await.unwrap().is_err(), "the held connection is closed");
    // Long after the start would have finished, nothing of it runs.
    tokio::time::sleep(Duration::from_millis(600)).await;
    fake::eventually(|| host.workloads().is_empty()).await;
    assert!(host.services.workloads.list().is_empty());
}

#[tokio::test]
async fn a_restarted_daemon_readopts_its_instances_without_doubling_them() {
    let mut host = Host::new().await;
    let mut spec = host.spec("web");
    spec.min = 2;
    let spec = host.create(spec).await;
    fake::eventually(|| host.instances("web").iter().filter(|i| i.state == pool::State::Ready).count() == 2)
        .await;
    host.restart().await;
    let again: Vec<String> = host.instances("web").into_iter().map(|i| i.id).collect();
    assert_eq!(again, ["web.0", "web.1"], "the same instances, adopted");
    let c = Client::connect(&spec).await.unwrap();
    assert!(again.contains(&c.instance));
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(host.machine.containers.started.load(Ordering::SeqCst), 2, "none started twice");
    // An instance whose service is gone is stopped at the next start.
    host.machine.containers.exit("web.1");
    host.restart().await;
    fake::eventually(|| host.instances("web").len() == 2).await;
    assert!(!host.workloads().contains(&"web.1".to_string()));
}

#[tokio::test]
async fn bad_definitions_are_refused_with_the_field_named_and_nothing_made() {
    let host = Host::new().await;
    let taken = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
    let mut cases = vec![
        (ServiceSpec { port: taken.local_addr().unwrap().port(), ..host.spec("a") }, "port"),
        (ServiceSpec { rootfs: "/no/such/dir".into(), ..host.spec("b") }, "rootfs"),
        (ServiceSpec { runtime: "kata".into(), ..host.spec("c") }, "kata"),
        (ServiceSpec { min: 5, max: 2, ..host.spec("d") }, "min"),
    ];
    let web = host.create(host.spec("web")).await;
    cases.push((ServiceSpec { port: web.port, ..host.spec("e") }, "port"));
    cases.push((host.spec("web"), "name"));
    for (bad, field) in cases {
        for validate_only in [true, false] {
            let e = host.services.create(bad.clone(), validate_only).await.unwrap_err();
            assert!(e.to_string().contains(field), "{field}: {e}");
        }
    }
    assert_eq!(host.services.list().len(), 1);
    assert_eq!(spec::Store::open(host.machine.state.path()).unwrap().load().len(), 1);
    // validate_only of a good one changes nothing either.
    let ok = host.spec("ok");
    host.services.create(ok.clone(), true).await.unwrap();
    assert!(host.services.show("ok").is_err());
    assert!(TcpStream::connect(("127.0.0.1", ok.port)).await.is_err());
}
