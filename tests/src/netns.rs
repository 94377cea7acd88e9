//! A multi-host fleet for end-to-end tests, made of Linux network namespaces on one machine.
//!
//! [`Fleet::new`] builds, for fleet index `F` (claimed by locking `/run/dcos-test-fleets/F`):
//!
//! - a bridge `dcfFbr` in the root namespace with address `10.241.F.254/24`, so the test
//!   process reaches every host directly (no forwarding, no default route, nothing routed
//!   outside `10.241.F.0/24`);
//! - for host `i`, a network namespace `dcfF-hi` whose `eth0` (`10.241.F.(i+1)/24`) is the far
//!   end of the veth `dcfFvi` enslaved to the bridge, and `lo` up.
//!
//! Processes run on a host in one of two ways:
//!
//! - Alone: [`Fleet::spawn`] (or [`Fleet::k2i`]) puts the program in the host's network
//!   namespace *and* in a PID namespace of its own with its own `/proc`
//!   (`ip netns exec NS unshare --pid --fork --mount-proc --kill-child ...`), where it is
//!   pid 1; so a k2i there sees only itself and what it starts.
//! - Sharing the host: [`Fleet::boot`] starts the host's init ([`HOST_INIT`], a tiny reaping
//!   pid 1) in a new PID and mount namespace with its own `/proc`; [`Fleet::spawn_on`],
//!   [`Fleet::k2i_on`] and [`Fleet::exec_on`] run programs inside it
//!   (`nsenter --target <init> --pid --mount --net -- ...`, booting the host if needed). All
//!   of a host's programs, and the containers they start (through [`Fleet::enter`]), see
//!   each other and nothing of the other hosts; a program's orphans are reparented to the
//!   host's init, so killing one program ([`HostProcess::kill`]) leaves what it started
//!   running, while [`Fleet::kill_host`] kills the init and with it the whole host.
//!   [`Fleet::tmpfs_on`] gives a host a small disk of its own (a tmpfs in its mount
//!   namespace) to fill up.
//!
//! Faults: [`Fleet::kill_host`], [`HostProcess::kill`],
//! [`Fleet::blackhole`], [`Fleet::isolate`], [`Fleet::cut`], undone by [`Fleet::heal`] and
//! [`Fleet::uncut`]; they are iptables rules inside the hosts' own namespaces (the harness
//! owns their filter tables), never in the root namespace.
//!
//! The module owns every interface, namespace and lock file whose name starts with `dcf` /
//! `dcos-test-fleets`. Dropping a [`Fleet`] (also while a test panics) kills its processes and
//! removes all of it. A test process killed outright cannot clean up; the next [`Fleet::new`]
//! anywhere on the machine removes the leftovers of every fleet whose lock is no longer held.
//! A host's init, its processes, containers and tmpfs mounts are all inside its network and
//! PID namespaces, so the same kill of every process in the network namespace removes them
//! (mounts made inside a host exist only in its mount namespace, which dies with them).
//!
//! Needs root, iproute2, iptables, util-linux `unshare`, `nsenter` and `mount`, and the
//! `host-init` binary of this crate built. Several fleets may exist at once,
//! in one test process or in many (nextest); up to [`MAX_FLEETS`] at a time.

use crate::Pki;
use anyhow::{bail, ensure, Context, Result};
use dcos_core::tls::TlsFiles;
use dcos_core::Role;
use dcos_linux::{process, status};
use std::collections::{BTreeMap, BTreeSet};
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Where fleets claim their index; one file per live fleet, flock-ed by its owner.
pub const LOCK_DIR: &str = "/run/dcos-test-fleets";
/// How many fleets may exist at once (fleet `F` uses `10.241.F.0/24`).
pub const MAX_FLEETS: u32 = 200;
/// The port [`Fleet::k2i`] listens on, on the host's address.
pub const K2I_PORT: u16 = 7440;
/// The ports [`Fleet::middlecon`] listens on, on the host's address: peers (QUIC) and the
/// gRPC API (TCP with mTLS).
pub const MIDDLECON_PORT: u16 = 7441;
pub const API_PORT: u16 = 7442;
/// The dcos-tests binary [`Fleet::boot`] runs as a host's pid 1.
pub const HOST_INIT: &str = "host-init";
const NET_PREFIX: [u8; 2] = [10, 241];
const GATEWAY_OCTET: u8 = 254;
const MAX_HOSTS: usize = 253;

/// One host of a [`Fleet`].
#[derive(Debug, Clone)]
pub struct Host {
    /// Its position in the fleet.
    pub index: usize,
    /// `host-<index>`: what [`Fleet::k2i`] passes as `--name` and issues the certificate to.
    pub name: String,
    /// Its address on the fleet's bridge (`eth0` inside the namespace).
    pub addr: Ipv4Addr,
    /// Its network namespace (`ip netns exec <netns> ...`).
    pub netns: String,
    /// The root-namespace end of its veth pair, enslaved to the bridge.
    pub veth: String,
}

impl Host {
    /// `https://<addr>:7440`, where [`Fleet::k2i`] listens.
    pub fn k2i_url(&self) -> String {
        format!("https://{}:{K2I_PORT}", self.addr)
    }

    /// `<addr>:7442`, where [`Fleet::middlecon`]'s gRPC API listens.
    pub fn api_addr(&self) -> std::net::SocketAddr {
        std::net::SocketAddr::new(IpAddr::V4(self.addr), API_PORT)
    }

    /// Issues this host's certificate (role `host`, valid for its address only).
    pub fn issue(&self, pki: &Pki) -> TlsFiles {
        pki.issue_for(&self.name, Role::Host, &[IpAddr::V4(self.addr)])
    }
}

/// A fault injected with iptables inside the hosts' namespaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Fault {
    /// Every packet in or out of the host's `eth0` vanishes.
    Blackhole(usize),
    /// As `Blackhole`, except to and from the test process (the bridge address).
    Isolate(usize),
    /// Packets between the two hosts vanish (`a < b`).
    Cut(usize, usize),
}

/// N hosts as network namespaces on a bridge; see the module documentation.
pub struct Fleet {
    /// The claimed fleet index `F`.
    pub index: u32,
    /// The bridge in the root namespace.
    pub bridge: String,
    /// The bridge's address (`10.241.F.254`), the test process's address on the fleet.
    pub gateway: Ipv4Addr,
    hosts: Vec<Host>,
    /// Wrapper pid (the `unshare` process, our child) -> host index, while running.
    running: Arc<Mutex<BTreeMap<u32, usize>>>,
    /// Host index -> its init ([`Fleet::boot`]), also registered in `running`.
    boots: Mutex<BTreeMap<usize, HostProcess>>,
    faults: Mutex<BTreeSet<Fault>>,
    logs: tempfile::TempDir,
    spawned: AtomicUsize,
    lock: Option<FleetLock>,
}

impl Fleet {
    /// Builds `n` hosts (1..=253), first removing what fleets of dead test processes left.
    pub fn new(n: usize) -> Result<Fleet> {
        ensure!((1..=MAX_HOSTS).contains(&n), "a fleet has 1 to {MAX_HOSTS} hosts");
        sweep_stale()?;
        let (index, lock) = claim()?;
        let mut fleet = Fleet {
            index,
            bridge: bridge_name(index),
            gateway: addr(index, GATEWAY_OCTET),
            hosts: Vec::new(),
            running: Arc::default(),
            boots: Mutex::default(),
            faults: Mutex::default(),
            logs: tempfile::Builder::new().prefix(&format!("dcos-fleet{index}-")).tempdir()?,
            spawned: AtomicUsize::new(0),
            lock: Some(lock),
        };
        // From here on, an error drops `fleet`, which removes whatever was built.
        let br = fleet.bridge.clone();
        ip(&["link", "add", &br, "type", "bridge"])?;
        ip(&["addr", "add", &format!("{}/24", fleet.gateway), "dev", &br])?;
        ip(&["link", "set", &br, "up"])?;
        for i in 0..n {
            let host = Host {
                index: i,
                name: format!("host-{i}"),
                addr: addr(index, i as u8 + 1),
                netns: format!("{}{i}", netns_prefix(index)),
                veth: format!("{}{i}", veth_prefix(index)),
            };
            let (ns, veth) = (host.netns.as_str(), host.veth.as_str());
            ip(&["netns", "add", ns])?;
            ip(&["link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns])?;
            ip(&["link", "set", veth, "master", &br])?;
            ip(&["link", "set", veth, "up"])?;
            ip(&["-n", ns, "addr", "add", &format!("{}/24", host.addr), "dev", "eth0"])?;
            ip(&["-n", ns, "link", "set", "eth0", "up"])?;
            ip(&["-n", ns, "link", "set", "lo", "up"])?;
            fleet.hosts.push(host);
        }
        Ok(fleet)
    }

    pub fn host(&self, i: usize) -> &Host {
        &self.hosts[i]
    }

    pub fn hosts(&self) -> &[Host] {
        &self.hosts
    }

    /// Runs `program args` to completion in host `i`'s network namespace (not in a PID
    /// namespace of its own): checks, `iptables`, connects. Bound it yourself
    /// (`timeout 2 ...`) if it may hang on a fault.
    pub fn exec(&self, i: usize, program: &str, args: &[&str]) -> Result<Output> {
        Command::new("ip")
            .args(["netns", "exec", &self.hosts[i].netns, program])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .with_context(|| format!("running {program} on {}", self.hosts[i].name))
    }

    /// Starts `program args` on host `i`: in its network namespace and in a new PID
    /// namespace with its own `/proc`, where `program` is pid 1. Stdout is piped (read it
    /// with [`HostProcess::line`]), stderr goes to a log ([`HostProcess::stderr`]).
    pub fn spawn(&self, i: usize, program: impl AsRef<Path>, args: &[&str]) -> Result<HostProcess> {
        let mut wrapper = Command::new("ip");
        wrapper.args(["netns", "exec", &self.hosts[i].netns]).args([
            "unshare",
            "--pid",
            "--fork",
            "--mount-proc",
            "--kill-child",
        ]);
        self.start(i, wrapper, program.as_ref(), args)
    }

    /// As [`Fleet::spawn`], then waits (20 s) for a stdout line with an `https://` URL (k2i)
    /// or a `quic://` one (middlecon), which becomes [`HostProcess::url`].
    pub fn spawn_daemon(&self, i: usize, program: impl AsRef<Path>, args: &[&str]) -> Result<HostProcess> {
        let p = self.spawn(i, program, args)?;
        self.announced(p)
    }

    /// Starts the workspace's k2i on host `i`, listening on `<addr>:7440` with
    /// `--name host-<i>`, and waits for its announce. `tls` must be valid for the host's
    /// address ([`Host::issue`]).
    pub fn k2i(&self, i: usize, tls: &TlsFiles, extra_args: &[&str]) -> Result<HostProcess> {
        let args = self.k2i_args(i, tls, extra_args)?;
        self.spawn_daemon(i, crate::bin("k2i"), &args.iter().map(String::as_str).collect::<Vec<_>>())
    }

    /// Starts k2i on host `i` in datacenter `dc` (`--sample-interval 200ms`, the host's
    /// certificate from `pki`) after the shell commands `before` (e.g. `sleep 1000 &`), in
    /// the same PID namespace; waits for its announce.
    pub fn k2i_after(&self, i: usize, pki: &Pki, dc: &str, before: &str) -> Result<HostProcess> {
        let host = &self.hosts[i];
        let tls = host.issue(pki);
        let listen = format!("{}:{K2I_PORT}", host.addr);
        let k2i = crate::bin("k2i");
        let script = format!("{before} exec \"$0\" \"$@\"");
        let (cert, key, ca) = (path_str(&tls.cert)?, path_str(&tls.key)?, path_str(&tls.ca)?);
        let args = [
            "-c",
            &script,
            path_str(&k2i)?,
            "--listen",
            &listen,
            "--name",
            &host.name,
            "--dc",
            dc,
            "--sample-interval",
            "200ms",
            "--cert",
            cert,
            "--key",
            key,
            "--ca",
            ca,
        ];
        self.spawn_daemon(i, "sh", &args)
    }

    /// Boots host `i`: starts its init ([`HOST_INIT`], a reaping pid 1) in the host's network
    /// namespace and in a new PID and mount namespace with its own `/proc`
    /// (`nsenter --net=... unshare --pid --fork --mount-proc --kill-child host-init`), and
    /// returns the init's pid in the test's PID namespace. Does nothing but return that pid
    /// if the host is up; boots it afresh after [`Fleet::kill_host`].
    ///
    /// The host's mount namespace starts as a private copy of the test's (same files, same
    /// `/sys` with its cgroup mounts, its own `/proc`); mounts made in it later
    /// ([`Fleet::tmpfs_on`]) stay in it, and mounts made outside later do not enter it.
    pub fn boot(&self, i: usize) -> Result<u32> {
        let host = &self.hosts[i];
        let mut boots = lock(&self.boots);
        if let Some(pid) = boots.get_mut(&i).and_then(HostProcess::init_pid) {
            return Ok(pid);
        }
        let mut wrapper = Command::new("nsenter");
        wrapper.arg(format!("--net=/run/netns/{}", host.netns)).args([
            "--",
            "unshare",
            "--pid",
            "--fork",
            "--mount-proc",
            "--kill-child",
        ]);
        let mut init = self.start(i, wrapper, &crate::bin(HOST_INIT), &[])?;
        // It blocks its signals before saying so: from then on a SIGTERM is not lost.
        if init.line(Duration::from_secs(10)).as_deref() != Some("ready") {
            init.kill();
            bail!("{HOST_INIT} did not start on {}: {}", host.name, init.stderr());
        }
        let pid = init.init_pid().with_context(|| format!("{HOST_INIT} of {} ended", host.name))?;
        boots.insert(i, init);
        Ok(pid)
    }

    /// The pid (in the test's PID namespace) of host `i`'s init, if it is booted and up.
    pub fn host_init_pid(&self, i: usize) -> Option<u32> {
        lock(&self.boots).get_mut(&i).and_then(HostProcess::init_pid)
    }

    /// The command prefix that runs a program inside host `i`'s namespaces (PID, mount,
    /// network): `nsenter --target <init> --pid --mount --net --`. Boots the host if needed.
    /// For runtimes and tools that take a wrapper (e.g. [`crate::oci::Container::run_in`]).
    pub fn enter(&self, i: usize) -> Result<Vec<String>> {
        let init = self.boot(i)?;
        Ok(["nsenter", "--target", &init.to_string(), "--pid", "--mount", "--net", "--"]
            .map(String::from)
            .to_vec())
    }

    /// Runs `program args` to completion inside host `i` (booted if needed), as one more
    /// process of the host: it sees the host's processes and `/proc`, and the host's k2i
    /// sees it. Its working directory is `/`.
    pub fn exec_on(&self, i: usize, program: &str, args: &[&str]) -> Result<Output> {
        self.command_on(i)?
            .arg(program)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .with_context(|| format!("running {program} inside {}", self.hosts[i].name))
    }

    /// Starts `program args` inside host `i` (booted if needed), sharing the host's PID,
    /// mount and network namespaces with its other processes. The handle behaves as one from
    /// [`Fleet::spawn`] except that [`HostProcess::kill`] SIGKILLs this program alone: what
    /// it started and left behind (reparented to the host's init) keeps running, until
    /// [`Fleet::kill_host`] or the fleet's teardown. Its working directory is `/`.
    pub fn spawn_on(&self, i: usize, program: impl AsRef<Path>, args: &[&str]) -> Result<HostProcess> {
        let wrapper = self.command_on(i)?;
        let mut p = self.start(i, wrapper, program.as_ref(), args)?;
        // nsenter forks the program into the host's PID namespace; until it has, a kill
        // could only hit nsenter and miss the program.
        let deadline = Instant::now() + Duration::from_secs(5);
        while p.init_pid().is_none() && p.is_running() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(2));
        }
        Ok(p)
    }

    /// As [`Fleet::spawn_on`], then waits for the announce as [`Fleet::spawn_daemon`] does.
    pub fn spawn_daemon_on(&self, i: usize, program: impl AsRef<Path>, args: &[&str]) -> Result<HostProcess> {
        let p = self.spawn_on(i, program, args)?;
        self.announced(p)
    }

    /// As [`Fleet::k2i`], inside host `i` ([`Fleet::spawn_daemon_on`]): it sees the host's
    /// processes and containers, started before or after it.
    pub fn k2i_on(&self, i: usize, tls: &TlsFiles, extra_args: &[&str]) -> Result<HostProcess> {
        let args = self.k2i_args(i, tls, extra_args)?;
        self.spawn_daemon_on(i, crate::bin("k2i"), &args.iter().map(String::as_str).collect::<Vec<_>>())
    }

    /// The test-namespace pid of the process host `i` knows as `host_pid`, if host `i` is up
    /// and has it (a process of the host itself, or of a container on it).
    pub fn test_pid(&self, i: usize, host_pid: u32) -> Option<u32> {
        let init = self.host_init_pid(i)?;
        // NSpid lists a pid per level, from ours down; the host's level is its init's last.
        let level = ns_pids(init).len().checked_sub(1)?;
        let host_ns = ns_inode(init, "pid")?;
        let dir = std::fs::read_dir("/proc").ok()?;
        dir.flatten().filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok()).find(|&p| {
            ns_pids(p).get(level) == Some(&host_pid)
                && (ns_inode(p, "pid") == Some(host_ns) || descends_from(p, init))
        })
    }

    /// Mounts a tmpfs of `size_bytes` (rounded up to whole pages) at `path` inside host `i`'s
    /// mount namespace (booted if needed): the host's disk that fills up. Only the host sees
    /// it (the test reaches it at [`Tmpfs::outside`]). `path` must be an existing absolute
    /// directory (the host's files are the test's, e.g. a temporary directory). It is
    /// unmounted when the guard is dropped, and it vanishes with the host's mount namespace
    /// ([`Fleet::kill_host`], the fleet's teardown, the sweep of a killed test's fleet), so
    /// nothing of it can outlive the fleet.
    pub fn tmpfs_on(&self, i: usize, path: impl AsRef<Path>, size_bytes: u64) -> Result<Tmpfs> {
        let path = path.as_ref();
        // size=0 would mean "no limit" to tmpfs.
        ensure!(size_bytes > 0, "a tmpfs needs a size above 0 bytes");
        ensure!(path.is_absolute(), "the tmpfs mount point {} is not absolute", path.display());
        ensure!(path.is_dir(), "the tmpfs mount point {} is not a directory", path.display());
        let init = self.boot(i)?;
        let source = format!("dcf{}-tmpfs", self.index);
        let out = self.exec_on(
            i,
            "mount",
            &["-t", "tmpfs", "-o", &format!("size={size_bytes}"), &source, path_str(path)?],
        )?;
        ensure!(
            out.status.success(),
            "mounting a tmpfs at {} on {}: {}",
            path.display(),
            self.hosts[i].name,
            String::from_utf8_lossy(&out.stderr).trim()
        );
        let mnt_ns = ns_inode(init, "mnt").context("the host's mount namespace")?;
        let outside = PathBuf::from(format!("/proc/{init}/root")).join(path.strip_prefix("/")?);
        Ok(Tmpfs { host: i, path: path.to_owned(), outside, init, mnt_ns })
    }

    /// `nsenter` into host `i`'s namespaces, ready for the program and its arguments.
    fn command_on(&self, i: usize) -> Result<Command> {
        let enter = self.enter(i)?;
        let mut cmd = Command::new(&enter[0]);
        cmd.args(&enter[1..]);
        Ok(cmd)
    }

    /// Starts `wrapper program args` for host `i` with the handle's stdio and registers the
    /// wrapper for teardown.
    fn start(&self, i: usize, mut cmd: Command, program: &Path, args: &[&str]) -> Result<HostProcess> {
        let host = &self.hosts[i];
        let name = program.file_name().unwrap_or_default().to_string_lossy();
        let n = self.spawned.fetch_add(1, Ordering::Relaxed);
        let stderr_log = self.logs.path().join(format!("{n}-{}-{name}.stderr", host.name));
        cmd.arg(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(File::create(&stderr_log)?);
        // Registered under the lock so that a concurrent teardown cannot miss it.
        let mut running = lock(&self.running);
        let mut child =
            cmd.spawn().with_context(|| format!("starting {} on {}", program.display(), host.name))?;
        running.insert(child.id(), i);
        drop(running);
        let stdout = child.stdout.take().context("stdout")?;
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            // Reads to the end even when nobody listens, so the process never gets EPIPE.
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let _ = tx.send(line);
            }
        });
        Ok(HostProcess { host: i, url: None, stderr_log, child, lines, running: self.running.clone() })
    }

    /// Waits (20 s) for `p`'s announce line; see [`Fleet::spawn_daemon`].
    fn announced(&self, mut p: HostProcess) -> Result<HostProcess> {
        let deadline = Instant::now() + Duration::from_secs(20);
        while let Some(line) = p.line(deadline.saturating_duration_since(Instant::now())) {
            if let Some(url) =
                line.split_whitespace().find(|w| w.starts_with("https://") || w.starts_with("quic://"))
            {
                p.url = Some(url.to_string());
                return Ok(p);
            }
        }
        p.kill();
        bail!("no announce from the daemon on {}; stderr: {}", self.hosts[p.host].name, p.stderr())
    }

    fn k2i_args(&self, i: usize, tls: &TlsFiles, extra_args: &[&str]) -> Result<Vec<String>> {
        let host = &self.hosts[i];
        let listen = format!("{}:{K2I_PORT}", host.addr);
        let (cert, key, ca) = (path_str(&tls.cert)?, path_str(&tls.key)?, path_str(&tls.ca)?);
        let mut args: Vec<String> =
            ["--listen", &listen, "--name", &host.name, "--cert", cert, "--key", key, "--ca", ca]
                .map(String::from)
                .to_vec();
        args.extend(extra_args.iter().map(|a| a.to_string()));
        Ok(args)
    }

    /// Starts the workspace's middlecon on host `i` as `host-<i>`: peers on `<addr>:7441`,
    /// the API on `<addr>:7442` and on [`Fleet::api_socket`], its state directory in the
    /// fleet's temporary directory (the hosts share a filesystem), with `extra_args`
    /// (`--dc`, `--peer`, `--seed`, ...); waits for its announce. `tls` must be valid for
    /// the host's address ([`Host::issue`]).
    pub fn middlecon(&self, i: usize, tls: &TlsFiles, extra_args: &[&str]) -> Result<HostProcess> {
        let args = self.middlecon_args(i, tls, extra_args)?;
        self.spawn_daemon(i, crate::bin("middlecon"), &args.iter().map(String::as_str).collect::<Vec<_>>())
    }

    /// As [`Fleet::middlecon`], inside host `i` ([`Fleet::spawn_daemon_on`]): it sees the
    /// cgroup mounts, so it can run workloads.
    pub fn middlecon_on(&self, i: usize, tls: &TlsFiles, extra_args: &[&str]) -> Result<HostProcess> {
        self.middlecon_binary_on(i, &crate::bin("middlecon"), tls, extra_args)
    }

    /// As [`Fleet::middlecon_on`], with another middlecon binary (a benchmark's release build).
    pub fn middlecon_binary_on(
        &self,
        i: usize,
        binary: &Path,
        tls: &TlsFiles,
        extra_args: &[&str],
    ) -> Result<HostProcess> {
        let args = self.middlecon_args(i, tls, extra_args)?;
        self.spawn_daemon_on(i, binary, &args.iter().map(String::as_str).collect::<Vec<_>>())
    }

    fn middlecon_args(&self, i: usize, tls: &TlsFiles, extra_args: &[&str]) -> Result<Vec<String>> {
        let host = &self.hosts[i];
        let listen = format!("{}:{MIDDLECON_PORT}", host.addr);
        let api = host.api_addr().to_string();
        let state = self.middlecon_state_dir(i);
        let socket = self.api_socket(i);
        let (cert, key, ca) = (path_str(&tls.cert)?, path_str(&tls.key)?, path_str(&tls.ca)?);
        let mut args: Vec<&str> = vec!["--listen", &listen, "--api", &api, "--name", &host.name];
        args.extend(["--state-dir", path_str(&state)?, "--socket", path_str(&socket)?]);
        args.extend(["--cert", cert, "--key", key, "--ca", ca]);
        args.extend_from_slice(extra_args);
        Ok(args.into_iter().map(String::from).collect())
    }

    /// The local API socket of host `i`'s [`Fleet::middlecon`].
    pub fn api_socket(&self, i: usize) -> PathBuf {
        self.middlecon_state_dir(i).join("api.sock")
    }

    /// The `--state-dir` of host `i`'s [`Fleet::middlecon`] (in the fleet's temporary
    /// directory: the hosts share a filesystem).
    pub fn middlecon_state_dir(&self, i: usize) -> PathBuf {
        self.logs.path().join(format!("{}-middlecon", self.hosts[i].name))
    }

    /// [`HostProcess::kill`]: SIGKILLs `p` (from [`Fleet::spawn`]: its whole PID namespace)
    /// and waits until it is gone.
    pub fn kill(&self, p: &mut HostProcess) {
        p.kill();
    }

    /// Kills every process on host `i` (its PID namespaces, the booted one with all its
    /// processes and containers included, then anything else in its network namespace), as
    /// if the machine had lost power. Its network stays up: a connect to it is refused. The
    /// [`HostProcess`] handles stay valid (and dead); the next [`Fleet::boot`] (or
    /// `*_on` call) boots the host afresh, with an empty process table.
    pub fn kill_host(&self, i: usize) {
        let running = lock(&self.running);
        let wrappers: Vec<u32> = running.iter().filter(|(_, &h)| h == i).map(|(&pid, _)| pid).collect();
        kill_wrappers(&wrappers);
        drop(running);
        kill_netns_processes(&self.hosts[i].netns);
    }

    /// Makes host `i` vanish from the network: every packet in or out of its `eth0` is
    /// dropped, so connects to it time out (they are not refused). Undo with [`Fleet::heal`].
    pub fn blackhole(&self, i: usize) -> Result<()> {
        self.change_faults(|f| {
            f.insert(Fault::Blackhole(i));
        })
    }

    /// As [`Fleet::blackhole`] but the test process (the bridge address) still reaches the
    /// host: it is partitioned from its peers only.
    pub fn isolate(&self, i: usize) -> Result<()> {
        self.change_faults(|f| {
            f.insert(Fault::Isolate(i));
        })
    }

    /// Drops every packet between hosts `i` and `j` (both directions; a transfer between
    /// them stalls). Undo with [`Fleet::uncut`] or [`Fleet::heal`].
    pub fn cut(&self, i: usize, j: usize) -> Result<()> {
        ensure!(i != j, "cannot cut host {i} from itself");
        self.change_faults(|f| {
            f.insert(Fault::Cut(i.min(j), i.max(j)));
        })
    }

    pub fn uncut(&self, i: usize, j: usize) -> Result<()> {
        self.change_faults(|f| {
            f.remove(&Fault::Cut(i.min(j), i.max(j)));
        })
    }

    /// Removes every fault involving host `i`: its blackhole, its isolation, its cuts.
    pub fn heal(&self, i: usize) -> Result<()> {
        self.change_faults(|f| {
            f.retain(|fault| match *fault {
                Fault::Blackhole(h) | Fault::Isolate(h) => h != i,
                Fault::Cut(a, b) => a != i && b != i,
            })
        })
    }

    /// Applies `change` to the fault set and rewrites the filter table of every host whose
    /// rules changed (atomically, with `iptables-restore`).
    fn change_faults(&self, change: impl FnOnce(&mut BTreeSet<Fault>)) -> Result<()> {
        let mut faults = lock(&self.faults);
        let before: Vec<String> = (0..self.hosts.len()).map(|h| self.rules(&faults, h)).collect();
        let mut next = faults.clone();
        change(&mut next);
        for (h, old) in before.iter().enumerate() {
            let new = self.rules(&next, h);
            if new != *old {
                self.restore_filter(h, &new)?;
            }
        }
        *faults = next;
        Ok(())
    }

    /// Host `h`'s `filter` table in iptables-restore form, given `faults`.
    fn rules(&self, faults: &BTreeSet<Fault>, h: usize) -> String {
        let mut t =
            String::from("*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n");
        for fault in faults {
            match *fault {
                Fault::Blackhole(x) if x == h => {
                    t += "-A INPUT -i eth0 -j DROP\n-A OUTPUT -o eth0 -j DROP\n";
                }
                Fault::Isolate(x) if x == h => {
                    let gw = self.gateway;
                    t += &format!("-A INPUT -i eth0 ! -s {gw}/32 -j DROP\n");
                    t += &format!("-A OUTPUT -o eth0 ! -d {gw}/32 -j DROP\n");
                }
                Fault::Cut(a, b) if a == h || b == h => {
                    let other = self.hosts[if a == h { b } else { a }].addr;
                    t += &format!("-A INPUT -s {other}/32 -j DROP\n");
                    t += &format!("-A OUTPUT -d {other}/32 -j DROP\n");
                }
                _ => {}
            }
        }
        t + "COMMIT\n"
    }

    fn restore_filter(&self, h: usize, table: &str) -> Result<()> {
        let ns = &self.hosts[h].netns;
        let mut child = Command::new("ip")
            .args(["netns", "exec", ns, "iptables-restore", "-w"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .context("running iptables-restore")?;
        child.stdin.take().context("stdin")?.write_all(table.as_bytes())?;
        let out = child.wait_with_output()?;
        ensure!(
            out.status.success(),
            "iptables-restore in {ns} failed: {}\n{table}",
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(())
    }
}

impl Drop for Fleet {
    /// Kills every process on the hosts, deletes veths, namespaces and bridge, then releases
    /// the fleet's index. Problems are reported on stderr (a panic here would abort).
    fn drop(&mut self) {
        {
            let running = lock(&self.running);
            kill_wrappers(&running.keys().copied().collect::<Vec<_>>());
        }
        if let Err(e) = remove_leftovers(self.index) {
            eprintln!("fleet {}: teardown: {e:#}", self.index);
        }
        // The hosts' containers died with them, without a runtime `delete`: their cgroups
        // (and each middlecon's own) are still there, and would pile up run after run.
        for i in 0..self.hosts.len() {
            let daemon =
                middlecon::workloads::bundle::daemon_id(&self.hosts[i].name, &self.middlecon_state_dir(i));
            let left = middlecon::workloads::cgroup::Cgroups::new(&daemon).remove_all(Duration::from_secs(2));
            if !left.is_empty() {
                eprintln!("fleet {}: teardown: cgroups still busy: {left:?}", self.index);
            }
        }
        if let Some(l) = self.lock.take() {
            l.release();
        }
    }
}

/// A process started on a host, by [`Fleet::spawn`]: pid 1 of its own PID namespace, inside
/// the `unshare` wrapper this handle holds; or by [`Fleet::spawn_on`]: one process of the
/// host's booted PID namespace, the child of the `nsenter` wrapper this handle holds.
/// Dropping it kills it ([`HostProcess::kill`]) and waits.
pub struct HostProcess {
    /// The host it runs on.
    pub host: usize,
    /// The URL it announced, for [`Fleet::spawn_daemon`] and [`Fleet::k2i`].
    pub url: Option<String>,
    pub stderr_log: PathBuf,
    child: Child,
    lines: Receiver<String>,
    running: Arc<Mutex<BTreeMap<u32, usize>>>,
}

impl HostProcess {
    /// The next line of its stdout, or `None` after `timeout` or at the end of its output.
    pub fn line(&mut self, timeout: Duration) -> Option<String> {
        self.lines.recv_timeout(timeout).ok()
    }

    /// The announced URL; panics if it announced none.
    pub fn url(&self) -> &str {
        self.url.as_deref().expect("the process announced no URL")
    }

    /// What it wrote to stderr so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_log).unwrap_or_default()
    }

    /// The pid of the wrapper (`unshare` or `nsenter`), in the test's PID namespace.
    pub fn wrapper_pid(&self) -> u32 {
        self.child.id()
    }

    /// The test-namespace pid of the program itself (from [`Fleet::spawn`], pid 1 in its
    /// namespace), once started; `None` before the wrapper forked or after it ended.
    pub fn init_pid(&mut self) -> Option<u32> {
        if !self.is_running() {
            return None;
        }
        // Unreaped, the wrapper's pid cannot be reused.
        children_of(self.child.id()).first().copied()
    }

    /// Whether the program still runs. Reaps the wrapper once it has ended.
    pub fn is_running(&mut self) -> bool {
        // A reaped pid may be reused: it leaves the fleet's list (which teardown kills) at
        // once, under the list's lock.
        let mut running = lock(&self.running);
        let ended = !matches!(self.child.try_wait(), Ok(None));
        if ended {
            running.remove(&self.child.id());
        }
        !ended
    }

    /// Waits up to `timeout` for the program to end by itself; its exit status, or `None`
    /// if it still runs.
    pub fn wait(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            // The wrapper (`unshare --fork`) exits with the program's status. Reaped under
            // the list's lock, as in `is_running`.
            {
                let mut running = lock(&self.running);
                if let Ok(Some(status)) = self.child.try_wait() {
                    running.remove(&self.child.id());
                    return Some(status);
                }
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The program's pid as its host sees it (what the host's k2i reports), while it runs:
    /// `1` from [`Fleet::spawn`].
    pub fn ns_pid(&mut self) -> Option<u32> {
        ns_pids(self.init_pid()?).last().copied()
    }

    /// SIGKILLs the program and waits until it is gone (its sockets are closed when this
    /// returns). From [`Fleet::spawn`], that kills its whole PID namespace; from
    /// [`Fleet::spawn_on`], only the program: its orphans stay with the host's init.
    pub fn kill(&mut self) {
        let pid = self.child.id();
        {
            let mut running = lock(&self.running);
            if running.remove(&pid).is_some() {
                kill_wrappers(&[pid]);
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for HostProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A tmpfs mounted inside one host ([`Fleet::tmpfs_on`]); unmounted when dropped (if that
/// host has not been killed or rebooted since, which took it away already).
#[derive(Debug)]
pub struct Tmpfs {
    /// The host whose mount namespace holds it.
    pub host: usize,
    path: PathBuf,
    outside: PathBuf,
    /// The host's init (test-namespace pid) and mount namespace when it was mounted.
    init: u32,
    mnt_ns: u64,
}

impl Tmpfs {
    /// Where the host's processes see it.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Where the test process reaches it: `/proc/<host init>/root/<path>`.
    pub fn outside(&self) -> &Path {
        &self.outside
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        // The same init in the same mount namespace: the pid was not reused.
        if ns_inode(self.init, "mnt") != Some(self.mnt_ns) {
            return;
        }
        let out = Command::new("nsenter")
            .args(["--target", &self.init.to_string(), "--mount", "--", "umount"])
            .arg(&self.path)
            .stdin(Stdio::null())
            .output();
        match out {
            Ok(o) if o.status.success() => {}
            Ok(o) => {
                eprintln!("unmounting {}: {}", self.path.display(), String::from_utf8_lossy(&o.stderr).trim())
            }
            Err(e) => eprintln!("unmounting {}: {e}", self.path.display()),
        }
    }
}

/// A claimed fleet index: an exclusive flock on `LOCK_DIR/<index>`, held while the fleet
/// lives. The kernel drops the lock when its owner dies, however it dies.
struct FleetLock {
    path: PathBuf,
    file: File,
}

impl FleetLock {
    /// Takes index `index` if nobody holds it.
    fn try_take(index: u32) -> Result<Option<FleetLock>> {
        std::fs::create_dir_all(LOCK_DIR).with_context(|| format!("creating {LOCK_DIR}"))?;
        let path = Path::new(LOCK_DIR).join(index.to_string());
        loop {
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(&path)
                .with_context(|| format!("opening {}", path.display()))?;
            // SAFETY: flock on a descriptor we own.
            if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
                let e = std::io::Error::last_os_error();
                if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
                    return Ok(None);
                }
                return Err(e).context("flock");
            }
            // The previous owner may have unlinked the file between our open and our lock;
            // the lock is only meaningful on the file the path names now.
            match std::fs::metadata(&path) {
                Ok(m) if m.ino() == file.metadata()?.ino() => {
                    file.set_len(0)?;
                    (&file).write_all(format!("{}\n", std::process::id()).as_bytes())?;
                    return Ok(Some(FleetLock { path, file }));
                }
                _ => continue,
            }
        }
    }

    /// Unlinks the lock file, then unlocks it (in this order, see `try_take`).
    fn release(self) {
        let _ = std::fs::remove_file(&self.path);
        drop(self.file);
    }
}

/// Claims the lowest free index whose subnet no route of the root namespace overlaps,
/// removing what a dead owner of that index left.
fn claim() -> Result<(u32, FleetLock)> {
    let routes = root_routes()?;
    for index in 0..MAX_FLEETS {
        if routes.iter().any(|&(net, len)| overlaps(net, len, addr(index, 0), 24)) {
            // Someone else's network, or a live fleet's: leave it alone.
            continue;
        }
        if let Some(lock) = FleetLock::try_take(index)? {
            remove_leftovers(index)?;
            return Ok((index, lock));
        }
    }
    bail!("no free fleet index below {MAX_FLEETS} (see {LOCK_DIR})")
}

/// Removes the leftovers of every fleet whose owner is gone: any index named by a lock file,
/// a namespace or an interface that nobody holds the lock of.
fn sweep_stale() -> Result<()> {
    let mut indexes = BTreeSet::new();
    if let Ok(dir) = std::fs::read_dir(LOCK_DIR) {
        for e in dir.flatten() {
            if let Some(i) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) {
                indexes.insert(i);
            }
        }
    }
    for name in netns_names().into_iter().chain(link_names()?) {
        if let Some(i) = name
            .strip_prefix("dcf")
            .and_then(|s| s.split(|c: char| !c.is_ascii_digit()).next())
            .and_then(|s| s.parse::<u32>().ok())
        {
            indexes.insert(i);
        }
    }
    for index in indexes {
        if let Some(lock) = FleetLock::try_take(index)? {
            match remove_leftovers(index) {
                Ok(()) => lock.release(),
                // Not fatal for this fleet; the index stays unusable until fixed.
                Err(e) => eprintln!("stale fleet {index}: {e:#}"),
            }
        }
    }
    Ok(())
}

/// Kills every process in fleet `index`'s namespaces and deletes its veths, namespaces and
/// bridge (whatever of them exists).
fn remove_leftovers(index: u32) -> Result<()> {
    let (nsp, vp, br) = (netns_prefix(index), veth_prefix(index), bridge_name(index));
    let namespaces: Vec<String> =
        netns_names().into_iter().filter(|n| n.strip_prefix(&nsp).is_some_and(is_number)).collect();
    for ns in &namespaces {
        kill_netns_processes(ns);
    }
    let mut errors = Vec::new();
    for link in link_names()? {
        if link.strip_prefix(&vp).is_some_and(is_number) || link == br {
            // Deleting one end of a veth deletes both, now (a namespace dies asynchronously).
            if let Err(e) = ip(&["link", "del", &link]) {
                errors.push(e);
            }
        }
    }
    for ns in &namespaces {
        if let Err(e) = ip(&["netns", "del", ns]) {
            errors.push(e);
        }
    }
    match errors.into_iter().next() {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// SIGKILLs pid 1 of each wrapper's PID namespace (the wrapper, our child, then reaps it
/// and exits), waits up to 5 s for the wrappers to exit, and kills those that did not.
/// The wrappers stay unreaped for their `Child` handles to wait on.
fn kill_wrappers(wrappers: &[u32]) {
    for &w in wrappers {
        let inits = children_of(w);
        if inits.is_empty() {
            signal_kill(w);
        }
        for p in inits {
            signal_kill(p);
        }
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    for &w in wrappers {
        while !exited(w) {
            if Instant::now() > deadline {
                signal_kill(w);
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

/// SIGKILLs everything left in network namespace `ns` and waits until every process it
/// signalled is gone (2 s at most). Processes whose parent is in the namespace too (PID
/// namespace inits, programs under an `nsenter`) are killed first and alone, so that their
/// parents are alive to reap them: killed together, a host's program whose `nsenter` died
/// first would be left to the machine's init to reap, and the host's init, which cannot
/// finish dying before every process of its PID namespace is reaped, would linger (out of
/// the network namespace already, so no longer listed by `ip netns pids`).
fn kill_netns_processes(ns: &str) {
    let deadline = Instant::now() + Duration::from_secs(2);
    let mut signalled = BTreeSet::new();
    loop {
        let pids: Vec<u32> = Command::new("ip")
            .args(["netns", "pids", ns])
            .output()
            .map(|o| {
                String::from_utf8_lossy(&o.stdout).split_whitespace().filter_map(|p| p.parse().ok()).collect()
            })
            .unwrap_or_default();
        signalled.retain(|&p| process::running(dcos_linux::proc_root(), p));
        if (pids.is_empty() && signalled.is_empty()) || Instant::now() > deadline {
            return;
        }
        let inner: Vec<u32> = pids.iter().copied().filter(|p| pids.contains(&ppid(*p))).collect();
        for p in if inner.is_empty() { pids } else { inner } {
            signal_kill(p);
            signalled.insert(p);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Whether our child `pid` has exited, without reaping it.
fn exited(pid: u32) -> bool {
    // SAFETY: waitid fills `info`; WNOWAIT leaves the child to its `Child` handle.
    unsafe {
        let mut info: libc::siginfo_t = std::mem::zeroed();
        let r = libc::waitid(libc::P_PID, pid, &mut info, libc::WEXITED | libc::WNOHANG | libc::WNOWAIT);
        r != 0 || info.si_pid() != 0
    }
}

fn signal_kill(pid: u32) {
    // SAFETY: sending a signal has no memory effects.
    unsafe {
        libc::kill(pid as i32, libc::SIGKILL);
    }
}

/// The parent of `pid` (0 if it is gone).
fn ppid(pid: u32) -> u32 {
    process::brief(dcos_linux::proc_root(), pid).map_or(0, |b| b.ppid)
}

/// `pid`'s pids in each PID namespace from ours down to its own (`NSpid` of its status).
fn ns_pids(pid: u32) -> Vec<u32> {
    let text = status::read(dcos_linux::proc_root(), pid).unwrap_or_default();
    status::numbers(&text, "NSpid").into_iter().filter_map(|p| u32::try_from(p).ok()).collect()
}

/// The inode of `pid`'s namespace of `kind` (`pid`, `mnt`, `net`...).
fn ns_inode(pid: u32, kind: &str) -> Option<u64> {
    let target = std::fs::read_link(format!("/proc/{pid}/ns/{kind}")).ok()?;
    // "pid:[4026531836]"
    target.to_str()?.split(['[', ']']).nth(1)?.parse().ok()
}

/// Whether `ancestor` is `pid`'s parent, grandparent...
fn descends_from(pid: u32, ancestor: u32) -> bool {
    let mut p = pid;
    for _ in 0..64 {
        p = ppid(p);
        if p == ancestor {
            return true;
        }
        if p <= 1 {
            return false;
        }
    }
    false
}

/// The children of `pid` (this kernel has no /proc/PID/task/TID/children: scan).
fn children_of(pid: u32) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&p| ppid(p) == pid)
        .collect()
}

/// Destinations of the root namespace's IPv4 routes, all tables, default routes aside.
fn root_routes() -> Result<Vec<(Ipv4Addr, u8)>> {
    let out = run("ip", &["-4", "-o", "route", "show", "table", "all"])?;
    const TYPES: &[&str] = &[
        "unicast",
        "local",
        "broadcast",
        "multicast",
        "anycast",
        "throw",
        "unreachable",
        "prohibit",
        "blackhole",
        "nat",
    ];
    Ok(out
        .lines()
        .filter_map(|l| {
            let dest = l.split_whitespace().find(|w| !TYPES.contains(w))?;
            let (a, len) = dest.split_once('/').unwrap_or((dest, "32"));
            Some((a.parse().ok()?, len.parse().ok()?)) // "default" does not parse
        })
        .collect())
}

fn overlaps(a: Ipv4Addr, alen: u8, b: Ipv4Addr, blen: u8) -> bool {
    let len = alen.min(blen) as u32;
    let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
    u32::from(a) & mask == u32::from(b) & mask
}

fn netns_names() -> Vec<String> {
    std::fs::read_dir("/run/netns")
        .map(|d| d.flatten().filter_map(|e| e.file_name().into_string().ok()).collect())
        .unwrap_or_default()
}

/// Names of the root namespace's interfaces.
fn link_names() -> Result<Vec<String>> {
    Ok(std::fs::read_dir("/sys/class/net")
        .context("listing /sys/class/net")?
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .collect())
}

fn is_number(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

fn addr(index: u32, host: u8) -> Ipv4Addr {
    Ipv4Addr::new(NET_PREFIX[0], NET_PREFIX[1], index as u8, host)
}

fn bridge_name(index: u32) -> String {
    format!("dcf{index}br")
}

fn netns_prefix(index: u32) -> String {
    format!("dcf{index}-h")
}

fn veth_prefix(index: u32) -> String {
    format!("dcf{index}v")
}

fn path_str(p: &Path) -> Result<&str> {
    p.to_str().with_context(|| format!("{} is not UTF-8", p.display()))
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Runs `ip args`, failing with its stderr.
fn ip(args: &[&str]) -> Result<()> {
    run("ip", args).map(drop)
}

fn run(program: &str, args: &[&str]) -> Result<String> {
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {program}"))?;
    if !out.status.success() {
        bail!("{program} {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subnets_overlap_by_prefix() {
        let net = |s: &str| s.parse::<Ipv4Addr>().unwrap();
        assert!(overlaps(net("10.241.3.0"), 24, net("10.241.3.7"), 32));
        assert!(overlaps(net("10.0.0.0"), 8, net("10.241.3.0"), 24));
        assert!(!overlaps(net("10.241.4.0"), 24, net("10.241.3.0"), 24));
        assert!(!overlaps(net("192.0.2.0"), 24, net("10.241.0.0"), 24));
    }
}
