//! Services on real hosts (network namespaces running the real `middlecon`), with busybox
//! `httpd` instances in real runc containers, reached over TCP from outside the fleet as a
//! user's client would: a request wakes a stopped service, idle instances stop, renewals
//! lose no request and leave nothing behind, a crashing instance closes held connections
//! at once and is throttled, a restarted middlecon re-adopts its instances, and a saturated
//! front spills to a peer's. Needs root, runc and busybox.

use dcos_core::tls::Identity;
use dcos_proto::v1 as pb;
use dcos_tests::workload_mesh::Mesh;
use middlecon_client::ServicesClient;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The page every instance serves.
const PAGE: &str = "hello from a dcos service\n";

/// A mesh whose image serves [`PAGE`] with busybox httpd.
fn mesh(n: usize) -> Mesh {
    let mesh = Mesh::new(n);
    std::fs::create_dir_all(mesh.rootfs.join("www")).unwrap();
    std::fs::write(mesh.rootfs.join("www/index.html"), PAGE).unwrap();
    mesh
}

async fn client(mesh: &Mesh, i: usize) -> ServicesClient<tonic::transport::Channel> {
    let identity = Identity::load(&mesh.pki.files("admin")).expect("identity");
    let channel = middlecon_client::connect(mesh.fleet.host(i).api_addr(), &identity).await.expect("API");
    ServicesClient::new(channel)
}

/// `web` on port 8080 of `hosts`, serving the page with busybox httpd on its `PORT`.
fn web(mesh: &Mesh, hosts: &[usize]) -> pb::ServiceSpec {
    pb::ServiceSpec {
        name: "web".into(),
        rootfs: mesh.rootfs.to_str().unwrap().into(),
        port: 8080,
        hosts: hosts.iter().map(|i| mesh.fleet.host(*i).name.clone()).collect(),
        command: ["sh", "-c", "exec busybox httpd -f -p 127.0.0.1:$PORT -h /www"].map(String::from).to_vec(),
        max: 4,
        idle_stop_ms: 60_000,
        target_inflight: 10,
        drain_ms: 5_000,
        ..Default::default()
    }
}

async fn create(mesh: &Mesh, i: usize, spec: pb::ServiceSpec) {
    let req = pb::CreateServiceRequest { spec: Some(spec), validate_only: false };
    if let Err(e) = client(mesh, i).await.create(req).await {
        panic!("create on host {i}: {e}; middlecon's log: {}", mesh.log(i));
    }
}

async fn show(mesh: &Mesh, i: usize) -> pb::ShowServiceReply {
    let req = pb::ShowServiceRequest { name: "web".into() };
    client(mesh, i).await.show(req).await.expect("Show").into_inner()
}

fn front(mesh: &Mesh, i: usize) -> SocketAddr {
    SocketAddr::new(mesh.fleet.host(i).addr.into(), 8080)
}

/// An HTTP/1.0 GET of `/` at `addr`: the status line's code and the body.
async fn get(addr: SocketAddr) -> std::io::Result<(u16, String)> {
    let mut conn = TcpStream::connect(addr).await?;
    conn.write_all(b"GET / HTTP/1.0\r\n\r\n").await?;
    let mut answer = String::new();
    tokio::time::timeout(Duration::from_secs(20), conn.read_to_string(&mut answer))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "no answer within 20 s"))??;
    let code = answer.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = answer.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    if code == 0 {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            format!("no HTTP answer: {answer:?}"),
        ));
    }
    Ok((code, body))
}

/// Entries of host `i`'s workloads directory other than spares: instance directories,
/// live or being removed.
fn workload_dirs(mesh: &Mesh, i: usize) -> Vec<String> {
    std::fs::read_dir(mesh.state_dir(i).join("workloads"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with(".spare-"))
        .collect()
}

/// The cgroups of host `i`'s workloads, in the memory hierarchy.
fn cgroups(mesh: &Mesh, i: usize) -> Vec<String> {
    let daemon = daemon_id(mesh, i);
    std::fs::read_dir(format!("/sys/fs/cgroup/memory/dcos/{daemon}"))
        .map(|d| {
            d.flatten()
                .filter(|e| e.path().is_dir())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

fn daemon_id(mesh: &Mesh, i: usize) -> String {
    middlecon::workloads::bundle::daemon_id(&mesh.fleet.host(i).name, &mesh.state_dir(i))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_wakes_a_stopped_service_and_its_idle_instance_stops_leaving_nothing() {
    let mesh = mesh(1);
    let mut spec = web(&mesh, &[0]);
    spec.idle_stop_ms = 1_000;
    create(&mesh, 0, spec).await;
    assert!(show(&mesh, 0).await.instances.is_empty(), "nothing runs before a request");
    let asked = Instant::now();
    let (code, body) = get(front(&mesh, 0)).await.expect("the first request is answered");
    let cold = asked.elapsed();
    assert_eq!((code, body.as_str()), (200, PAGE));
    let shown = show(&mesh, 0).await;
    let summary = shown.service.unwrap();
    assert_eq!((summary.cold_starts, summary.connections), (1, 1), "{summary:?}");
    assert_eq!(shown.instances.len(), 1);
    assert_eq!(shown.instances[0].state(), pb::InstanceState::Ready);
    // The instance is a workload of the host, tagged with its service, and k2i names it so.
    let listed = mesh.list(0).await;
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!((listed[0].service.as_str(), listed[0].status.as_str()), ("web", "running"));
    let k2i = mesh.k2i(0);
    let admin = mesh.pki.client("admin");
    dcos_tests::eventually(Duration::from_secs(10), "the instance in k2i with its service", || async {
        let l: dcos_core::model::ContainerList =
            admin.get_json(k2i.url(), "/v1/containers", Duration::from_secs(5)).await.ok()?;
        l.containers.iter().any(|c| &*c.name == "web.0" && c.service.as_deref() == Some("web")).then_some(())
    })
    .await;
    // A warm request is answered by the same instance.
    assert_eq!(get(front(&mesh, 0)).await.unwrap().0, 200);
    assert_eq!(show(&mesh, 0).await.instances[0].connections, 2);
    // The counters are Prometheus text on the API's port, behind the same mTLS.
    let admin = mesh.pki.files("admin");
    let url = format!("https://{}/metrics", mesh.fleet.host(0).api_addr());
    let metrics = std::process::Command::new("curl")
        .args([
            "-sS",
            "--fail",
            "--cacert",
            admin.ca.to_str().unwrap(),
            "--cert",
            admin.cert.to_str().unwrap(),
        ])
        .args(["--key", admin.key.to_str().unwrap(), &url])
        .output()
        .expect("curl runs");
    let text = String::from_utf8_lossy(&metrics.stdout);
    assert!(
        text.contains(r#"dcos_service_connections_total{service="web"} 2"#),
        "{text}{}",
        String::from_utf8_lossy(&metrics.stderr)
    );
    assert!(text.contains(r#"dcos_service_cold_starts_total{service="web"} 1"#), "{text}");
    let anonymous = std::process::Command::new("curl")
        .args(["-sS", "--fail", "--cacert", admin.ca.to_str().unwrap(), &url])
        .output()
        .expect("curl runs");
    assert!(!anonymous.status.success(), "no client certificate, no metrics");
    // Idle for 1 s: stopped, with its container, cgroups and directory.
    let idle = Instant::now();
    dcos_tests::eventually(Duration::from_secs(5), "the idle instance stopped", || async {
        show(&mesh, 0).await.instances.is_empty().then_some(())
    })
    .await;
    assert!(idle.elapsed() >= Duration::from_millis(900), "stopped after {:?}", idle.elapsed());
    dcos_tests::eventually(Duration::from_secs(5), "nothing left of the instance", || async {
        let left = (mesh.list(0).await, workload_dirs(&mesh, 0), cgroups(&mesh, 0));
        (left.0.is_empty() && left.1.is_empty() && left.2.is_empty()).then_some(())
    })
    .await;
    // And the next request wakes it again.
    assert_eq!(get(front(&mesh, 0)).await.unwrap().0, 200);
    assert_eq!(show(&mesh, 0).await.service.unwrap().cold_starts, 2);
    eprintln!("cold start, first request to first byte: {cold:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renewals_lose_no_request_and_leave_nothing_behind() {
    let mesh = mesh(1);
    let mut spec = web(&mesh, &[0]);
    spec.max_requests = 1;
    spec.prestart = true;
    create(&mesh, 0, spec).await;
    for i in 0..25 {
        let (code, body) = get(front(&mesh, 0)).await.unwrap_or_else(|e| panic!("request {i}: {e}"));
        assert_eq!((code, body.as_str()), (200, PAGE), "request {i}");
    }
    let summary = show(&mesh, 0).await.service.unwrap();
    assert_eq!((summary.renewals, summary.failures, summary.start_timeouts), (25, 0, 0), "{summary:?}");
    // The retired instances are gone: at most the current one and the spare remain, and no
    // directory, cgroup or workload of the 25 before them.
    dcos_tests::eventually(Duration::from_secs(10), "the retired instances removed", || async {
        let live = mesh.list(0).await.len();
        (live <= 2 && workload_dirs(&mesh, 0).len() <= live && cgroups(&mesh, 0).len() <= live).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashing_instance_closes_held_connections_at_once_and_is_throttled() {
    let mesh = mesh(1);
    let mut spec = web(&mesh, &[0]);
    spec.command = ["sh", "-c", "echo crashing; exit 3"].map(String::from).to_vec();
    create(&mesh, 0, spec).await;
    let asked = Instant::now();
    assert!(get(front(&mesh, 0)).await.is_err(), "no answer from a crashing service");
    assert!(
        asked.elapsed() < Duration::from_secs(3),
        "closed after {:?}, not at the 10 s timeout",
        asked.elapsed()
    );
    let summary = show(&mesh, 0).await.service.unwrap();
    assert!(summary.failures >= 1 && summary.last_error.contains("exited"), "{summary:?}");
    for _ in 0..6 {
        let _ = get(front(&mesh, 0)).await;
    }
    let summary = show(&mesh, 0).await.service.unwrap();
    assert_eq!(summary.failures, 5, "starts stop at the rate limit: {summary:?}");
    assert!(summary.throttled >= 1 && summary.last_error.starts_with("throttled"), "{summary:?}");
    dcos_tests::eventually(Duration::from_secs(5), "no crashed instance left", || async {
        (mesh.list(0).await.is_empty() && workload_dirs(&mesh, 0).is_empty()).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_middlecon_lets_an_open_connection_finish_and_readopts_its_instances() {
    let mut mesh = mesh(1);
    let mut spec = web(&mesh, &[0]);
    spec.min = 2;
    create(&mesh, 0, spec).await;
    dcos_tests::eventually(Duration::from_secs(10), "two ready instances", || async {
        let ready =
            show(&mesh, 0).await.instances.iter().filter(|i| i.state() == pb::InstanceState::Ready).count();
        (ready == 2).then_some(())
    })
    .await;
    let before: Vec<(String, u32)> =
        show(&mesh, 0).await.instances.into_iter().map(|i| (i.id, i.pid)).collect();
    // A request half sent: the connection is open through the front when middlecon stops.
    let mut open = TcpStream::connect(front(&mesh, 0)).await.unwrap();
    open.write_all(b"GET / HTTP/1.0\r\n").await.unwrap();
    let mut daemon = mesh.daemons[0].take().unwrap();
    let pid = daemon.init_pid().expect("middlecon runs");
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), nix::sys::signal::Signal::SIGTERM)
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    // The stopping daemon relays it to its end.
    let answer = finish(open).await;
    assert!(answer.contains(" 200 OK\r\n") && answer.ends_with(PAGE), "{answer:?}");
    assert!(daemon.wait(Duration::from_secs(10)).is_some(), "middlecon ended once its relay did");
    // With no middlecon at all, the kernel still sends new connections to the instances.
    let (code, body) = get(front(&mesh, 0)).await.expect("answered while middlecon is down");
    assert_eq!((code, body.as_str()), (200, PAGE));
    // The new daemon adopts the same two instances, and starts none.
    mesh.daemons[0] = Some(mesh.start(0));
    let after: Vec<(String, u32)> =
        show(&mesh, 0).await.instances.into_iter().map(|i| (i.id, i.pid)).collect();
    assert_eq!(after, before, "the same instances, the same processes");
    assert_eq!(get(front(&mesh, 0)).await.unwrap().0, 200);
    assert_eq!(mesh.list(0).await.len(), 2, "never doubled");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_saturated_front_spills_to_a_peers_front() {
    let mesh = mesh(2);
    let mut spec = web(&mesh, &[0, 1]);
    spec.max = 1;
    spec.target_inflight = 1;
    create(&mesh, 0, spec.clone()).await;
    create(&mesh, 1, spec).await;
    // Host 0's one instance holds one open connection: host 0 is saturated.
    let mut open = TcpStream::connect(front(&mesh, 0)).await.unwrap();
    open.write_all(b"GET / HTTP/1.0\r\n").await.unwrap();
    dcos_tests::eventually(Duration::from_secs(10), "host 0 busy at its target", || async {
        let i = show(&mesh, 0).await.instances;
        (i.len() == 1 && i[0].inflight == 1 && i[0].state() == pb::InstanceState::Ready).then_some(())
    })
    .await;
    // Once gossip has told host 0 that host 1 has room, a new connection to host 0 goes there.
    dcos_tests::eventually(Duration::from_secs(15), "a request spilled to host 1", || async {
        get(front(&mesh, 0)).await.ok()?;
        (show(&mesh, 0).await.service.unwrap().spilled >= 1).then_some(())
    })
    .await;
    assert!(show(&mesh, 1).await.service.unwrap().connections >= 1, "host 1 served it");
    let answer = finish(open).await;
    assert!(answer.ends_with(PAGE));
}

/// Host `i`'s NAT rules, as `iptables-save` prints them in its network namespace.
fn nat_rules(mesh: &Mesh, i: usize) -> String {
    let out = mesh.fleet.exec(i, "iptables-save", &["-t", "nat"]).expect("iptables-save runs");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Waits until host `i`'s NAT rules send new connections to the instance on `port`.
async fn until_steered(mesh: &Mesh, i: usize, port: u32) {
    let steering = format!("-j DNAT --to-destination 127.0.0.1:{port}");
    dcos_tests::eventually(Duration::from_secs(5), "the kernel steering to the instance", || async {
        nat_rules(mesh, i).contains(&steering).then_some(())
    })
    .await;
}

/// Ends the half-sent request on `conn` (`GET / HTTP/1.0` and one line end) and reads the
/// whole answer.
async fn finish(mut conn: TcpStream) -> String {
    conn.write_all(b"\r\n").await.unwrap();
    let mut answer = String::new();
    conn.read_to_string(&mut answer).await.unwrap();
    answer
}

fn signal(mesh: &mut Mesh, i: usize, signal: nix::sys::signal::Signal) {
    let pid = mesh.daemons[i].as_mut().unwrap().init_pid().expect("middlecon runs");
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), signal).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ready_instance_gets_connections_from_the_kernel_counted_and_served_with_middlecon_paused() {
    let mut mesh = mesh(1);
    let mut spec = web(&mesh, &[0]);
    spec.idle_stop_ms = 1_000;
    create(&mesh, 0, spec).await;
    // The first request wakes the service through its front; from then on the kernel
    // sends new connections to the instance.
    assert_eq!(get(front(&mesh, 0)).await.unwrap().0, 200);
    let port = show(&mesh, 0).await.instances[0].port;
    until_steered(&mesh, 0, port).await;
    assert!(show(&mesh, 0).await.instances[0].steered, "service show says the kernel steers to it");
    // middlecon stopped dead: a request is still answered, as the front is not in its path.
    signal(&mut mesh, 0, nix::sys::signal::Signal::SIGSTOP);
    let answered = get(front(&mesh, 0)).await;
    signal(&mut mesh, 0, nix::sys::signal::Signal::SIGCONT);
    assert_eq!(answered.expect("answered with middlecon stopped").1, PAGE);
    // Steered connections are counted: three held open show as the instance's, and as the
    // service's connections.
    let before = show(&mesh, 0).await.service.unwrap().connections;
    let mut held = Vec::new();
    for _ in 0..3 {
        let mut conn = TcpStream::connect(front(&mesh, 0)).await.unwrap();
        conn.write_all(b"GET / HTTP/1.0\r\n").await.unwrap();
        held.push(conn);
    }
    dcos_tests::eventually(Duration::from_secs(5), "three steered connections counted", || async {
        let shown = show(&mesh, 0).await;
        let (service, instance) = (shown.service.unwrap(), &shown.instances[0]);
        (instance.inflight == 3 && service.connections == before + 3).then_some(())
    })
    .await;
    // Held past --idle-stop, they keep the instance: it is not idle while they are open.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert_eq!(show(&mesh, 0).await.instances.len(), 1, "stopped under open connections");
    for conn in held {
        let answer = finish(conn).await;
        assert!(answer.ends_with(PAGE), "{answer:?}");
    }
    // Then idle: it stops, and new connections reach the front again (the chain is empty).
    let idle = Instant::now();
    dcos_tests::eventually(Duration::from_secs(5), "the idle instance stopped", || async {
        show(&mesh, 0).await.instances.is_empty().then_some(())
    })
    .await;
    assert!(idle.elapsed() >= Duration::from_millis(900), "stopped after {:?}", idle.elapsed());
    assert!(!nat_rules(&mesh, 0).contains("-j DNAT"), "{}", nat_rules(&mesh, 0));
    assert_eq!(get(front(&mesh, 0)).await.unwrap().0, 200, "woken again through the front");
    // Removed while a steered connection is open: it is drained to its end, then no rule of
    // the service is left.
    let port = show(&mesh, 0).await.instances[0].port;
    until_steered(&mesh, 0, port).await;
    let mut open = TcpStream::connect(front(&mesh, 0)).await.unwrap();
    open.write_all(b"GET / HTTP/1.0\r\n").await.unwrap();
    dcos_tests::eventually(Duration::from_secs(5), "the open connection counted", || async {
        (show(&mesh, 0).await.instances[0].inflight == 1).then_some(())
    })
    .await;
    let mut api = client(&mesh, 0).await;
    let removing = tokio::spawn(async move {
        api.remove(pb::RemoveServiceRequest { name: "web".into(), drain_ms: 10_000 }).await
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!removing.is_finished(), "the removal waits for the open connection");
    let answer = finish(open).await;
    assert!(answer.ends_with(PAGE), "cut by the removal: {answer:?}");
    removing.await.unwrap().expect("Remove");
    let rules = nat_rules(&mesh, 0);
    assert!(!rules.contains("DCOS-SVC-8080"), "{rules}");
}

/// A UDP socket bound to `bind` inside host `i`'s network namespace (made by a thread that
/// moves there for the call).
fn udp_in(mesh: &Mesh, i: usize, bind: &str) -> std::net::UdpSocket {
    let netns = std::fs::File::open(format!("/var/run/netns/{}", mesh.fleet.host(i).netns)).unwrap();
    std::thread::scope(|s| {
        s.spawn(|| {
            nix::sched::setns(&netns, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
            std::net::UdpSocket::bind(bind).unwrap()
        })
        .join()
        .unwrap()
    })
}

fn sh(mesh: &Mesh, i: usize, script: &str) {
    let out = mesh.fleet.exec(i, "sh", &["-c", script]).unwrap();
    assert!(out.status.success(), "{script}: {}", String::from_utf8_lossy(&out.stderr));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loopback_stays_private_to_other_hosts_though_steering_lets_nat_send_connections_there() {
    let mesh = mesh(2);
    // Steering to loopback instances needs route_localnet, on in host 0 since middlecon started.
    let localnet = mesh.fleet.exec(0, "cat", &["/proc/sys/net/ipv4/conf/all/route_localnet"]).unwrap();
    assert_eq!(String::from_utf8_lossy(&localnet.stdout).trim(), "1");
    // Host 1 plays a machine on host 0's network that sends packets addressed to 127.0.0.1.
    let host0 = mesh.fleet.host(0).addr;
    sh(
        &mesh,
        1,
        &format!(
            "echo 1 > /proc/sys/net/ipv4/conf/all/route_localnet && ip route del local 127.0.0.1 table local \
             && ip route del local 127.0.0.0/8 table local && ip route add 127.0.0.1/32 via {host0}"
        ),
    );
    let inside = udp_in(&mesh, 0, "127.0.0.1:0");
    inside.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
    let port = inside.local_addr().unwrap().port();
    let outside = udp_in(&mesh, 1, "0.0.0.0:0");
    let mut got = [0u8; 16];
    outside.send_to(b"from outside", ("127.0.0.1", port)).unwrap();
    assert!(inside.recv(&mut got).is_err(), "a packet from another host reached a loopback socket");
    // The guard is what stops it: without it, the same packet arrives.
    sh(&mesh, 0, "iptables -D INPUT -j DCOS-LOCALNET");
    outside.send_to(b"from outside", ("127.0.0.1", port)).unwrap();
    let arrived = inside.recv(&mut got);
    sh(&mesh, 0, "iptables -I INPUT -j DCOS-LOCALNET");
    assert_eq!(&got[..arrived.expect("without the guard the packet arrives")], b"from outside");
    // Connections NAT sends to a loopback instance pass the guard: host 1 is served.
    let mut spec = web(&mesh, &[0]);
    spec.min = 1;
    create(&mesh, 0, spec).await;
    let port = dcos_tests::eventually(Duration::from_secs(10), "a ready instance", || async {
        let i = show(&mesh, 0).await.instances.into_iter().find(|i| i.state() == pb::InstanceState::Ready)?;
        Some(i.port)
    })
    .await;
    until_steered(&mesh, 0, port).await;
    let from_host1 =
        mesh.fleet.exec(1, "curl", &["-s", "-m", "5", &format!("http://{host0}:8080/")]).unwrap();
    assert_eq!(String::from_utf8_lossy(&from_host1.stdout), PAGE);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn steered_load_scales_out_and_a_renewal_drains_steered_connections_without_cutting_them() {
    let mesh = mesh(1);
    let mut spec = web(&mesh, &[0]);
    (spec.min, spec.target_inflight, spec.max_age_ms) = (1, 2, 4_000);
    create(&mesh, 0, spec).await;
    let first = dcos_tests::eventually(Duration::from_secs(10), "a ready instance", || async {
        let i = show(&mesh, 0).await.instances.into_iter().find(|i| i.state() == pb::InstanceState::Ready)?;
        nat_rules(&mesh, 0).contains(&format!("127.0.0.1:{}", i.port)).then_some(i.id)
    })
    .await;
    // Six slow connections, steered by the kernel: three instances wanted at two each.
    let mut held = Vec::new();
    for _ in 0..6 {
        let mut conn = TcpStream::connect(front(&mesh, 0)).await.unwrap();
        conn.write_all(b"GET / HTTP/1.0\r\n").await.unwrap();
        held.push(conn);
    }
    let step = Instant::now();
    let olds = dcos_tests::eventually(Duration::from_secs(5), "three ready instances", || async {
        let i = show(&mesh, 0).await.instances;
        let ready: Vec<String> =
            i.iter().filter(|i| i.state() == pb::InstanceState::Ready).map(|i| i.id.clone()).collect();
        (ready.len() >= 3).then_some(ready)
    })
    .await;
    eprintln!("three ready instances {:?} after the step", step.elapsed());
    assert!(olds.contains(&first));
    // Past --max-age every instance is renewed: the new ones take new connections while the
    // old ones drain the held ones, which are answered in full.
    dcos_tests::eventually(Duration::from_secs(15), "the first instance replaced and draining", || async {
        let i = show(&mesh, 0).await.instances;
        let draining = i.iter().any(|i| i.id == first && i.state() == pb::InstanceState::Draining);
        let fresh = i.iter().any(|i| !olds.contains(&i.id) && i.state() == pb::InstanceState::Ready);
        (draining && fresh).then_some(())
    })
    .await;
    assert_eq!(get(front(&mesh, 0)).await.unwrap().1, PAGE, "a new connection during the renewal");
    for conn in held {
        let answer = finish(conn).await;
        assert!(answer.ends_with(PAGE), "a steered connection cut by the renewal: {answer:?}");
    }
    dcos_tests::eventually(Duration::from_secs(10), "the old instances gone once drained", || async {
        let i = show(&mesh, 0).await.instances;
        i.iter().all(|i| !olds.contains(&i.id)).then_some(())
    })
    .await;
    let summary = show(&mesh, 0).await.service.unwrap();
    assert_eq!((summary.failures, summary.start_timeouts), (0, 0), "{summary:?}");
}
