//! middlecon on a [`Fleet`] ([`Fleet::middlecon`]): one daemon per host with its API on
//! `<addr>:7442`, its Unix socket and state under its own directory, seeded with host 0; a runtime process
//! serving services on a host's socket ([`runtime`], the `test-runtime` binary); and
//! clients of a host's TCP API with a certificate of a given role.

use crate::netns::{Fleet, HostProcess, MIDDLECON_PORT};
use crate::Pki;
use dcos_core::tls::Identity;
use dcos_core::Role;
use dcos_proto::v1 as pb;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};
use tonic::transport::Channel;

/// Host `i`'s local API socket (under its state directory, [`Fleet::middlecon_state_dir`]).
pub fn socket(fleet: &Fleet, i: usize) -> PathBuf {
    fleet.api_socket(i)
}

pub fn api_addr(fleet: &Fleet, i: usize) -> SocketAddr {
    fleet.host(i).api_addr()
}

/// Starts middlecon on host `i` as `host-<i>` in dc `dc-a`, seeded with host 0, with
/// `extra` flags (e.g. `--config FILE`, `--k2i URL`).
pub fn start(fleet: &Fleet, pki: &Pki, i: usize, extra: &[&str]) -> HostProcess {
    start_with(fleet, pki, i, true, extra)
}

/// As [`start`]; without `seeded`, no `--seed` (the host knows others only from `extra`,
/// e.g. `--peer NAME=ADDR`).
pub fn start_with(fleet: &Fleet, pki: &Pki, i: usize, seeded: bool, extra: &[&str]) -> HostProcess {
    let tls = fleet.host(i).issue(pki);
    let seed = format!("{}:{MIDDLECON_PORT}", fleet.host(0).addr);
    let mut args = vec!["--dc", "dc-a"];
    if seeded {
        args.extend(["--seed", &seed]);
    }
    args.extend_from_slice(extra);
    fleet.middlecon(i, &tls, &args).expect("middlecon starts")
}

/// A channel to host `i`'s TCP API presenting `name`'s certificate (issued with `role`;
/// `admin` is the CA's own admin).
pub async fn channel(fleet: &Fleet, pki: &Pki, i: usize, name: &str, role: Role) -> Channel {
    let files = if name == "admin" { pki.files("admin") } else { pki.issue(name, role) };
    let identity = Identity::load(&files).expect("identity");
    middlecon_client::connect(api_addr(fleet, i), &identity).await.expect("connects to the API")
}

/// Waits until each of hosts 0..n lists all `n` members alive (at most 10 s): a test that
/// asks any host about the fleet (`dcos hosts --seed`) finds it formed there too.
pub async fn wait_formed(fleet: &Fleet, pki: &Pki, n: usize) {
    for i in 0..n {
        let ch = channel(fleet, pki, i, "admin", Role::Admin).await;
        let what = format!("every member alive on host {i}");
        crate::eventually(Duration::from_secs(10), &what, || {
            let mut m = pb::membership_client::MembershipClient::new(ch.clone());
            async move {
                let r = m.members(pb::MembersRequest {}).await.ok()?.into_inner();
                let alive = r.members.iter().filter(|m| m.state() == pb::MemberState::Alive).count();
                (alive == n).then_some(())
            }
        })
        .await
    }
}

/// A `test-runtime` process on host `i` serving `services` on its socket, once it has
/// seen its registration acknowledged.
pub fn runtime(fleet: &Fleet, i: usize, services: &[&str]) -> HostProcess {
    let sock = socket(fleet, i);
    let mut args = vec![sock.to_str().unwrap()];
    args.extend_from_slice(services);
    let mut p = fleet.spawn(i, crate::bin("test-runtime"), &args).expect("the runtime starts");
    let line = p.line(Duration::from_secs(10));
    assert_eq!(line.as_deref(), Some("registered"), "runtime: {}", p.stderr());
    p
}

/// Waits (at most `limit`) for the runtime's next line starting with `prefix`; `None` if
/// none came.
pub fn next_line(p: &mut HostProcess, prefix: &str, limit: Duration) -> Option<String> {
    let until = Instant::now() + limit;
    while let Some(line) = p.line(until.saturating_duration_since(Instant::now())) {
        if line.starts_with(prefix) {
            return Some(line);
        }
    }
    None
}

/// Unix milliseconds `ms` from now.
pub fn in_ms(ms: u64) -> i64 {
    dcos_core::unix_ms(SystemTime::now() + Duration::from_millis(ms))
}

/// A call of `service` on `host` (`""`: any host) due in `ms` milliseconds.
pub fn call(service: &str, host: &str, ms: u64, payload: &[u8]) -> pb::CallRequest {
    let to = if host.is_empty() { pb::target::To::Any(true) } else { pb::target::To::Host(host.into()) };
    pb::CallRequest {
        service: service.into(),
        target: Some(pb::Target { to: Some(to) }),
        deadline_unix_ms: in_ms(ms),
        headers: Default::default(),
        payload: payload.to_vec(),
    }
}

/// The resident set size of process `pid`, in bytes (`VmRSS` in `/proc/PID/status`).
pub fn rss_bytes(pid: u32) -> Option<u64> {
    let status = dcos_linux::status::read(dcos_linux::proc_root(), pid).ok()?;
    dcos_linux::status::kib_as_bytes(&status, "VmRSS")
}

/// Runs `dcos` with `name`'s certificate (issued before) and `args`, no fleet from the environment.
pub fn dcos_as(pki: &Pki, name: &str, args: &[&str]) -> std::process::Output {
    let f = pki.files(name);
    std::process::Command::new(crate::bin("dcos"))
        .args(["--cert", f.cert.to_str().unwrap(), "--key", f.key.to_str().unwrap()])
        .args(["--ca", f.ca.to_str().unwrap()])
        .args(args)
        .env_remove("DCOS_API")
        .env_remove("DCOS_SEED")
        .env_remove("DCOS_INVENTORY")
        .env_remove("DCOS_HOSTS")
        .output()
        .expect("dcos runs")
}
