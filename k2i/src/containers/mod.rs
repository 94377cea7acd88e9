//! Which container a process belongs to, found from its cgroup path and OCI runtime state.
//!
//! [`Catalog`] ties the pieces together for the process sampler: once per tick it
//! [`refresh`](Catalog::refresh)es the OCI state, answers
//! [`container_of`](Catalog::container_of) for every process from a per-path cache, and
//! [`summarize`](Catalog::summarize)s the sampled processes into container rows.
//!
//! - [`cgroup_path`]: the one path of `/proc/PID/cgroup` that names the container.
//! - [`classify`]: runtime naming conventions in cgroup paths.
//! - [`oci_state`]: runc/crun state directories (read by [`dcos_linux::oci`]), named and
//!   cached.
//! - [`stats`]: CPU, memory and freezer state from the cgroup filesystem.

pub mod cgroup_path;
pub mod classify;
pub mod oci_state;
pub mod stats;

pub use cgroup_path::pick_cgroup;
pub use classify::{classify, classify_with_root, Detected};
pub use oci_state::{scan, OciContainer, OciScanner, OciStatus};
pub use stats::{CgroupFs, CgroupVersion, Usage};

use dcos_core::model::{Container, ContainerRef, Process, Runtime};
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

/// Where the catalog looks.
#[derive(Debug, Clone)]
pub struct CatalogConfig {
    /// The cgroup filesystem mount.
    pub cgroup_root: PathBuf,
    /// The proc filesystem mount (to tell whether an OCI container's init is alive).
    pub proc_root: PathBuf,
    /// OCI runtime state roots, each with the runtime it belongs to.
    pub oci_roots: Vec<(Runtime, PathBuf)>,
}

impl Default for CatalogConfig {
    fn default() -> Self {
        CatalogConfig {
            cgroup_root: PathBuf::from("/sys/fs/cgroup"),
            proc_root: PathBuf::from("/proc"),
            // The runtimes' own defaults, and where middlecon (default --state-dir) keeps
            // its workloads' runtime state.
            oci_roots: vec![
                (Runtime::Runc, PathBuf::from("/run/runc")),
                (Runtime::Crun, PathBuf::from("/run/crun")),
                (Runtime::Runsc, PathBuf::from("/run/runsc")),
                (Runtime::Runc, PathBuf::from("/var/lib/middlecon/runtime/runc")),
                (Runtime::Crun, PathBuf::from("/var/lib/middlecon/runtime/crun")),
                (Runtime::Runsc, PathBuf::from("/var/lib/middlecon/runtime/runsc")),
            ],
        }
    }
}

/// Cache entries for cgroup paths no process has asked about for this many ticks are
/// dropped (checked every `PRUNE_AFTER` ticks).
const PRUNE_AFTER: u64 = 60;

/// The host's containers: which one each cgroup path belongs to, and their rows.
#[derive(Debug)]
pub struct Catalog {
    config: CatalogConfig,
    cgroups: CgroupFs,
    oci: OciScanner,
    /// Per distinct cgroup path: its container (or none).
    by_path: HashMap<Arc<str>, PathEntry>,
    /// Per container id: what was found about it. One shared `ContainerRef` per id.
    known: HashMap<Arc<str>, Known>,
    /// Per container id: the previous CPU reading, for `cpu_percent`.
    prev_cpu: HashMap<Arc<str>, CpuReading>,
    tick: u64,
    last_prune: u64,
}

#[derive(Debug)]
struct PathEntry {
    container: Option<Arc<ContainerRef>>,
    last_used: u64,
}

#[derive(Debug)]
struct Known {
    container: Arc<ContainerRef>,
    /// The container's own cgroup: the OCI path, or where the classified component ends.
    root: Arc<str>,
    pod_uid: Option<Arc<str>>,
}

#[derive(Debug)]
struct CpuReading {
    cgroup: Arc<str>,
    cpu_ns: u64,
    at: Instant,
}

/// What is known of a container before it is interned: from OCI state, a path, or both.
struct Identity {
    id: String,
    runtime: Runtime,
    name: String,
    root: String,
    pod_uid: Option<String>,
}

impl Catalog {
    /// A catalog reading the given filesystems; scans the OCI roots once right away.
    pub fn new(config: CatalogConfig) -> Self {
        let cgroups = CgroupFs::detect(config.cgroup_root.clone());
        let mut catalog = Catalog {
            config,
            cgroups,
            oci: OciScanner::new(),
            by_path: HashMap::new(),
            known: HashMap::new(),
            prev_cpu: HashMap::new(),
            tick: 0,
            last_prune: 0,
        };
        catalog.oci.rescan(&catalog.config.oci_roots);
        catalog
    }

    pub fn config(&self) -> &CatalogConfig {
        &self.config
    }

    pub fn cgroups(&self) -> &CgroupFs {
        &self.cgroups
    }

    /// The OCI containers of the last [`refresh`](Self::refresh).
    pub fn oci_containers(&self) -> &[OciContainer] {
        self.oci.containers()
    }

    /// Rescans the OCI state roots (a directory listing and a `stat` per container when
    /// nothing changed). When the OCI containers changed, every cached answer of
    /// [`container_of`](Self::container_of) is forgotten. Call once per tick.
    pub fn refresh(&mut self) {
        self.tick += 1;
        if self.oci.rescan(&self.config.oci_roots) {
            self.by_path.clear();
            self.known.clear();
        } else if self.tick - self.last_prune >= PRUNE_AFTER {
            let tick = self.tick;
            self.last_prune = tick;
            self.by_path.retain(|_, e| tick - e.last_used <= PRUNE_AFTER);
            let live: HashSet<&str> =
                self.by_path.values().filter_map(|e| e.container.as_deref()).map(|c| &*c.id).collect();
            self.known.retain(|id, _| live.contains(&**id));
        }
    }

    /// The container a process whose cgroup is `cgroup` (as chosen by [`pick_cgroup`])
    /// runs in, or `None`. Answers are cached per distinct path, and every process of one
    /// container shares one `ContainerRef`.
    ///
    /// OCI state wins over naming conventions: an OCI container whose cgroup is `cgroup`
    /// or one of its ancestors claims it (keeping the runtime the path names, when the
    /// path names the same container: podman runs its containers with crun), unless the
    /// path names a different container deeper down.
    pub fn container_of(&mut self, cgroup: &Arc<str>) -> Option<Arc<ContainerRef>> {
        if let Some(e) = self.by_path.get_mut(&**cgroup) {
            e.last_used = self.tick;
            return e.container.clone();
        }
        let container = self.resolve(cgroup).map(|identity| self.intern(identity));
        self.by_path.insert(cgroup.clone(), PathEntry { container: container.clone(), last_used: self.tick });
        container
    }

    fn resolve(&self, path: &str) -> Option<Identity> {
        let classified = classify_with_root(path);
        let oci = self
            .oci
            .containers()
            .iter()
            .filter_map(|c| c.state.cgroup.as_deref().map(|cg| (c, cg)))
            .filter(|(_, cg)| *cg != "/" && is_within(path, cg))
            .max_by_key(|(_, cg)| cg.len());
        match (oci, classified) {
            (Some((oc, cg)), Some((d, root))) if d.id != oc.id() && root.len() > cg.len() => {
                Some(from_path(d, root))
            }
            (Some((oc, _)), classified) => Some(from_oci(oc, classified.map(|(d, _)| d))),
            (None, Some((d, root))) => Some(from_path(d, root)),
            (None, None) => None,
        }
    }

    fn intern(&mut self, identity: Identity) -> Arc<ContainerRef> {
        if let Some(k) = self.known.get(identity.id.as_str()) {
            return k.container.clone();
        }
        let id: Arc<str> = identity.id.into();
        let container =
            Arc::new(ContainerRef { id: id.clone(), runtime: identity.runtime, name: identity.name.into() });
        let known = Known {
            container: container.clone(),
            root: identity.root.into(),
            pod_uid: identity.pod_uid.map(Into::into),
        };
        self.known.insert(id, known);
        container
    }

    /// One row per container among `procs` (grouped by container id), plus one per OCI
    /// container without processes, sorted by id.
    ///
    /// A process's `container` is used when set, else looked up with
    /// [`container_of`](Self::container_of). Thread rows (a `tid` other than the `pid`)
    /// are not counted. `cpu_percent` is the cgroup's CPU time since the previous call
    /// over the wall time since then (`now`), in percent of one core; `None` the first
    /// time a container is seen.
    pub fn summarize(&mut self, procs: &[Process], now: Instant) -> Vec<Container> {
        struct Group<'a> {
            container: Arc<ContainerRef>,
            processes: u32,
            lowest_pid: i32,
            shortest_cgroup: &'a Arc<str>,
            earliest_start: &'a Arc<str>,
        }
        let mut groups: HashMap<Arc<str>, Group> = HashMap::new();
        for p in procs {
            if p.tid.is_some_and(|t| t != p.pid) {
                continue;
            }
            let Some(container) = p.container.clone().or_else(|| self.container_of(&p.cgroup)) else {
                continue;
            };
            match groups.get_mut(&container.id) {
                Some(g) => {
                    g.processes += 1;
                    g.lowest_pid = g.lowest_pid.min(p.pid);
                    if p.cgroup.len() < g.shortest_cgroup.len() {
                        g.shortest_cgroup = &p.cgroup;
                    }
                    // RFC 3339 UTC timestamps of one format order as strings.
                    if p.start_time < *g.earliest_start {
                        g.earliest_start = &p.start_time;
                    }
                }
                None => {
                    let g = Group {
                        container: container.clone(),
                        processes: 1,
                        lowest_pid: p.pid,
                        shortest_cgroup: &p.cgroup,
                        earliest_start: &p.start_time,
                    };
                    groups.insert(container.id.clone(), g);
                }
            }
        }

        for (id, g) in &groups {
            if !self.known.contains_key(id) {
                // A reference made before the cache was last cleared: look again.
                self.container_of(g.shortest_cgroup);
            }
        }

        let oci_by_id: HashMap<&str, usize> =
            self.oci.containers().iter().enumerate().rev().map(|(i, c)| (c.id(), i)).collect();
        let mut rows = Vec::with_capacity(groups.len() + oci_by_id.len());
        for (id, g) in &groups {
            let known = self.known.get(id);
            let oci = oci_by_id.get(&**id).map(|&i| &self.oci.containers()[i]);
            let oci_status = oci.map(|o| o.status(&self.config.proc_root, &self.cgroups));
            let cgroup: Arc<str> = match (oci.and_then(|o| o.state.cgroup.as_deref()), known) {
                (Some(c), _) => c.into(),
                (None, Some(k)) => k.root.clone(),
                (None, None) => g.shortest_cgroup.clone(),
            };
            let status = match oci_status {
                Some(s) => s.as_str(),
                None if self.cgroups.is_frozen(&cgroup) => OciStatus::Paused.as_str(),
                None => OciStatus::Running.as_str(),
            };
            let pid = match (oci_status, oci.and_then(|o| o.init_pid())) {
                (Some(s), Some(pid)) if s != OciStatus::Stopped => pid,
                _ => g.lowest_pid,
            };
            let started_at = oci
                .and_then(|o| o.state.created.as_deref())
                .map(Into::into)
                .unwrap_or_else(|| g.earliest_start.clone());
            rows.push(Container {
                id: id.clone(),
                name: g.container.name.clone(),
                runtime: g.container.runtime,
                status: status.to_owned(),
                pid: Some(pid),
                cgroup,
                processes: g.processes,
                cpu_percent: None,
                mem_bytes: None,
                mem_limit_bytes: None,
                started_at: Some(started_at),
                pod_uid: known.and_then(|k| k.pod_uid.clone()),
                bundle: oci.and_then(|o| o.state.bundle.as_deref()).map(Into::into),
                service: oci.and_then(|o| o.service.as_deref()).map(Into::into),
            });
        }

        let mut seen: HashSet<&str> = groups.keys().map(|k| &**k).collect();
        for oc in self.oci.containers() {
            if !seen.insert(oc.id()) {
                continue;
            }
            let status = oc.status(&self.config.proc_root, &self.cgroups);
            let identity = from_oci(oc, oc.state.cgroup.as_deref().and_then(classify));
            rows.push(Container {
                id: oc.id().into(),
                name: identity.name.into(),
                runtime: identity.runtime,
                status: status.as_str().to_owned(),
                pid: oc.init_pid().filter(|_| status != OciStatus::Stopped),
                cgroup: oc.state.cgroup.as_deref().unwrap_or("").into(),
                processes: 0,
                cpu_percent: None,
                mem_bytes: None,
                mem_limit_bytes: None,
                started_at: oc.state.created.as_deref().map(Into::into),
                pod_uid: identity.pod_uid.map(Into::into),
                bundle: oc.state.bundle.as_deref().map(Into::into),
                service: oc.service.as_deref().map(Into::into),
            });
        }

        let mut measured: HashSet<Arc<str>> = HashSet::with_capacity(rows.len());
        for row in &mut rows {
            if row.status == OciStatus::Stopped.as_str() || row.cgroup.is_empty() {
                continue;
            }
            let Some(usage) = self.cgroups.usage(&row.cgroup) else {
                continue;
            };
            row.mem_bytes = usage.mem_bytes;
            row.mem_limit_bytes = usage.mem_limit_bytes;
            let Some(cpu_ns) = usage.cpu_ns else {
                continue;
            };
            measured.insert(row.id.clone());
            let reading = CpuReading { cgroup: row.cgroup.clone(), cpu_ns, at: now };
            if let Some(prev) = self.prev_cpu.insert(row.id.clone(), reading) {
                let wall_ns = now.saturating_duration_since(prev.at).as_nanos() as f64;
                if prev.cgroup == row.cgroup && cpu_ns >= prev.cpu_ns && wall_ns > 0.0 {
                    row.cpu_percent = Some((cpu_ns - prev.cpu_ns) as f64 / wall_ns * 100.0);
                }
            }
        }
        // A container that stopped, or went unmeasured, starts over when next seen.
        self.prev_cpu.retain(|id, _| measured.contains(id));

        rows.sort_by(|a, b| a.id.cmp(&b.id));
        rows
    }
}

/// Whether `path` is `ancestor` or lies below it (at a `/` boundary).
fn is_within(path: &str, ancestor: &str) -> bool {
    let ancestor = ancestor.trim_end_matches('/');
    path.strip_prefix(ancestor).is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

fn from_path(d: Detected, root: &str) -> Identity {
    Identity { id: d.id, runtime: d.runtime, name: d.name, root: root.to_owned(), pod_uid: d.pod_uid }
}

/// An OCI container's identity, completed by what its path says: the runtime and name
/// of the same container when the path names it (podman or docker running through
/// runc/crun), and the pod it sits in.
fn from_oci(oc: &OciContainer, classified: Option<Detected>) -> Identity {
    let (runtime, name, pod_uid) = match classified {
        Some(d) if d.id == oc.id() => {
            let name = if oc.name != oc.id() { oc.name.clone() } else { d.name };
            (d.runtime, name, d.pod_uid)
        }
        Some(d) => (oc.runtime, oc.name.clone(), d.pod_uid),
        None => (oc.runtime, oc.name.clone(), None),
    };
    Identity {
        id: oc.id().to_owned(),
        runtime,
        name,
        root: oc.state.cgroup.clone().unwrap_or_default(),
        pod_uid,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::path::Path;
    use std::time::Duration;

    const ID: &str = "3f4e5d6c7b8a99887766554433221100ffeeddccbbaa00112233445566778899";

    fn write(path: &Path, text: &str) {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
    }

    fn proc_stat(pid: i32, start: u64) -> String {
        format!("{pid} (init) S 1 {pid} {pid} 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 1 0 {start} 1000 10 0\n")
    }

    fn runc_state(id: &str, pid: i32, cgroup: &str, created: &str) -> String {
        serde_json::json!({
            "id": id,
            "init_process_pid": pid,
            "init_process_start": 500,
            "created": created,
            "config": {"labels": [format!("bundle=/srv/{id}")]},
            "cgroup_paths": {
                "memory": format!("/sys/fs/cgroup/memory{cgroup}"),
                "cpuacct": format!("/sys/fs/cgroup/cpuacct{cgroup}"),
                "": format!("/sys/fs/cgroup/unified{cgroup}")
            }
        })
        .to_string()
    }

    fn process(pid: i32, cgroup: &str, start_time: &str) -> Process {
        Process {
            pid,
            ppid: 1,
            user: "root".into(),
            state: 'S',
            cmd: "sh".into(),
            cmdline: Arc::from(vec![Arc::<str>::from("sh")]),
            start_time: start_time.into(),
            cgroup: cgroup.into(),
            ..Process::default()
        }
    }

    /// A v1 host: runc container `web` (alive, pid 100) in `/dcos/web`, runc container
    /// `old` (init gone), a docker container with no OCI state visible.
    struct Host {
        dir: tempfile::TempDir,
    }

    impl Host {
        fn new() -> Host {
            let dir = tempfile::tempdir().unwrap();
            let h = Host { dir };
            let r = h.dir.path();
            write(
                &r.join("run/runc/web/state.json"),
                &runc_state("web", 100, "/dcos/web", "2026-01-01T00:00:00Z"),
            );
            write(
                &r.join("run/runc/old/state.json"),
                &runc_state("old", 999, "/dcos/old", "2025-12-31T00:00:00Z"),
            );
            write(&r.join("proc/100/stat"), &proc_stat(100, 500));
            h.cpu("/dcos/web", 1_000_000_000);
            write(&r.join("cgroup/memory/dcos/web/memory.usage_in_bytes"), "1048576\n");
            write(&r.join("cgroup/memory/dcos/web/memory.limit_in_bytes"), "268435456\n");
            let docker = format!("/system.slice/docker-{ID}.scope");
            h.cpu(&docker, 0);
            write(&r.join(format!("cgroup/memory{docker}/memory.usage_in_bytes")), "4096\n");
            write(&r.join(format!("cgroup/memory{docker}/memory.limit_in_bytes")), "9223372036854771712\n");
            h
        }

        fn cpu(&self, cgroup: &str, ns: u64) {
            write(&self.dir.path().join(format!("cgroup/cpuacct{cgroup}/cpuacct.usage")), &format!("{ns}\n"));
        }

        fn config(&self) -> CatalogConfig {
            let r = self.dir.path();
            CatalogConfig {
                cgroup_root: r.join("cgroup"),
                proc_root: r.join("proc"),
                oci_roots: vec![(Runtime::Runc, r.join("run/runc")), (Runtime::Crun, r.join("run/crun"))],
            }
        }
    }

    fn cg(s: &str) -> Arc<str> {
        s.into()
    }

    #[test]
    fn default_config() {
        let c = CatalogConfig::default();
        assert_eq!(c.cgroup_root, Path::new("/sys/fs/cgroup"));
        assert_eq!(c.proc_root, Path::new("/proc"));
        assert_eq!(
            c.oci_roots,
            [
                (Runtime::Runc, PathBuf::from("/run/runc")),
                (Runtime::Crun, PathBuf::from("/run/crun")),
                (Runtime::Runsc, PathBuf::from("/run/runsc")),
                (Runtime::Runc, PathBuf::from("/var/lib/middlecon/runtime/runc")),
                (Runtime::Crun, PathBuf::from("/var/lib/middlecon/runtime/crun")),
                (Runtime::Runsc, PathBuf::from("/var/lib/middlecon/runtime/runsc")),
            ]
        );
    }

    #[test]
    fn container_of_prefers_oci_and_shares_refs() {
        let host = Host::new();
        let mut cat = Catalog::new(host.config());

        let web = cat.container_of(&cg("/dcos/web")).unwrap();
        assert_eq!((&*web.id, web.runtime, &*web.name), ("web", Runtime::Runc, "web"));
        let sub = cat.container_of(&cg("/dcos/web/worker")).unwrap();
        assert!(Arc::ptr_eq(&web, &sub), "one ContainerRef per container");
        assert!(Arc::ptr_eq(&web, &cat.container_of(&cg("/dcos/web")).unwrap()), "cached");
        assert_eq!(cat.container_of(&cg("/dcos/website")), None, "prefix only at a / boundary");
        assert_eq!(cat.container_of(&cg("/dcos")), None);

        let docker = cat.container_of(&cg(&format!("/system.slice/docker-{ID}.scope"))).unwrap();
        assert_eq!((&*docker.id, docker.runtime, &*docker.name), (ID, Runtime::Docker, &ID[..12]));
        assert_eq!(cat.container_of(&cg("/user.slice/user-0.slice/session-1.scope")), None);
        assert_eq!(cat.container_of(&cg("/")), None);
    }

    #[test]
    fn oci_state_keeps_the_runtime_a_path_names() {
        let host = Host::new();
        let r = host.dir.path();
        let scope = format!("/machine.slice/libpod-{ID}.scope");
        write(
            &r.join(format!("run/crun/{ID}/status")),
            &serde_json::json!({"pid": 100, "cgroup-path": format!("{scope}/container"), "bundle": "/b", "created": "2026-01-01T00:00:00Z"})
                .to_string(),
        );
        let mut cat = Catalog::new(host.config());
        let c = cat.container_of(&cg(&format!("{scope}/container"))).unwrap();
        assert_eq!((&*c.id, c.runtime, &*c.name), (ID, Runtime::Podman, &ID[..12]));

        // A different container nested below an OCI container's cgroup is its own.
        let nested = cat.container_of(&cg(&format!("/dcos/web/docker/{ID}"))).unwrap();
        assert_eq!(nested.runtime, Runtime::Podman, "same id as the podman one: shared");
        let nested = cat.container_of(&cg("/dcos/web/system.slice/runc-inner.scope")).unwrap();
        assert_eq!((&*nested.id, nested.runtime), ("inner", Runtime::Runc));
    }

    #[test]
    fn refresh_forgets_answers_when_oci_state_changes() {
        let host = Host::new();
        let mut cat = Catalog::new(host.config());
        let late = cg("/dcos/late/x");
        assert_eq!(cat.container_of(&late), None);
        cat.refresh();
        assert_eq!(cat.container_of(&late), None, "nothing changed");
        write(
            &host.dir.path().join("run/crun/late/status"),
            r#"{"pid": 300, "cgroup-path": "/dcos/late", "bundle": "/b", "created": "2026-01-01T00:00:00Z"}"#,
        );
        cat.refresh();
        let c = cat.container_of(&late).unwrap();
        assert_eq!((&*c.id, c.runtime), ("late", Runtime::Crun));
        assert_eq!(cat.oci_containers().len(), 3);
    }

    #[test]
    fn summarize_groups_measures_and_lists_stopped_oci_containers() {
        let host = Host::new();
        let mut cat = Catalog::new(host.config());
        let docker = format!("/system.slice/docker-{ID}.scope");
        let mut procs = vec![
            process(101, "/dcos/web/worker", "2026-01-01T00:00:02Z"),
            process(100, "/dcos/web", "2026-01-01T00:00:01Z"),
            process(205, &docker, "2026-02-01T00:00:09Z"),
            process(201, &docker, "2026-02-01T00:00:05Z"),
            process(1, "/init.scope", "2025-01-01T00:00:00Z"),
            process(300, "/user.slice/user-0.slice/session-1.scope", "2026-01-01T00:00:00Z"),
            process(400, "/system.slice/nginx.service", "2026-03-01T00:00:00Z"),
        ];
        // A thread row does not count as a process.
        let mut thread = process(201, &docker, "2026-02-01T00:00:05Z");
        thread.tid = Some(202);
        procs.push(thread);
        for p in &mut procs {
            p.container = cat.container_of(&p.cgroup);
        }

        let t0 = Instant::now();
        let rows = cat.summarize(&procs, t0);
        let ids: Vec<&str> = rows.iter().map(|r| &*r.id).collect();
        assert_eq!(ids, [ID, "nginx.service", "old", "web"]);

        let d = &rows[0];
        assert_eq!((d.runtime, &*d.name, d.status.as_str()), (Runtime::Docker, &ID[..12], "running"));
        assert_eq!((d.pid, d.processes, &*d.cgroup), (Some(201), 2, docker.as_str()));
        assert_eq!(d.started_at.as_deref(), Some("2026-02-01T00:00:05Z"));
        assert_eq!((d.mem_bytes, d.mem_limit_bytes, d.cpu_percent), (Some(4096), None, None));
        assert_eq!((d.pod_uid.as_deref(), d.bundle.as_deref()), (None, None));

        let n = &rows[1];
        assert_eq!((n.runtime, n.processes, n.pid), (Runtime::Systemd, 1, Some(400)));
        assert_eq!((n.mem_bytes, n.cpu_percent), (None, None), "no cgroup files for it");

        let old = &rows[2];
        assert_eq!(
            (old.runtime, old.status.as_str(), old.processes, old.pid),
            (Runtime::Runc, "stopped", 0, None)
        );
        assert_eq!((&*old.cgroup, old.bundle.as_deref()), ("/dcos/old", Some("/srv/old")));
        assert_eq!(old.started_at.as_deref(), Some("2025-12-31T00:00:00Z"));
        assert_eq!((old.mem_bytes, old.cpu_percent), (None, None));

        let web = &rows[3];
        assert_eq!(
            (web.runtime, web.status.as_str(), web.pid, web.processes),
            (Runtime::Runc, "running", Some(100), 2)
        );
        assert_eq!((&*web.cgroup, web.bundle.as_deref()), ("/dcos/web", Some("/srv/web")));
        assert_eq!(web.started_at.as_deref(), Some("2026-01-01T00:00:00Z"), "OCI created wins");
        assert_eq!(
            (web.mem_bytes, web.mem_limit_bytes, web.cpu_percent),
            (Some(1048576), Some(268435456), None)
        );

        // One second later: web used half a core, docker a quarter.
        host.cpu("/dcos/web", 1_500_000_000);
        host.cpu(&docker, 250_000_000);
        write(&host.dir.path().join("cgroup/freezer/dcos/web/freezer.state"), "FROZEN\n");
        let rows = cat.summarize(&procs, t0 + Duration::from_secs(1));
        let pct = |id: &str| rows.iter().find(|r| &*r.id == id).unwrap().cpu_percent.unwrap();
        assert!((pct("web") - 50.0).abs() < 1e-9, "{}", pct("web"));
        assert!((pct(ID) - 25.0).abs() < 1e-9, "{}", pct(ID));
        assert_eq!(rows.iter().find(|r| &*r.id == "web").unwrap().status, "paused");

        // The docker container's processes are gone: its row goes with them.
        procs.retain(|p| *p.cgroup != docker);
        let rows = cat.summarize(&procs, t0 + Duration::from_secs(2));
        assert!(rows.iter().all(|r| &*r.id != ID));
    }

    #[test]
    fn summarize_looks_up_processes_without_a_container_and_finds_pods() {
        let host = Host::new();
        let mut cat = Catalog::new(host.config());
        let uid = "0a1b2c3d-4e5f-6789-abcd-ef0123456789";
        let pod = format!(
            "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{}.slice",
            uid.replace('-', "_")
        );
        let procs = vec![
            process(10, &format!("{pod}/cri-containerd-{ID}.scope"), "2026-01-01T00:00:00Z"),
            process(11, &pod, "2026-01-01T00:00:00Z"),
        ];
        let rows = cat.summarize(&procs, Instant::now());
        assert_eq!(rows.len(), 4);
        let c = rows.iter().find(|r| &*r.id == ID).unwrap();
        assert_eq!((c.runtime, c.pod_uid.as_deref()), (Runtime::Containerd, Some(uid)));
        let p = rows.iter().find(|r| &*r.id == uid).unwrap();
        assert_eq!(
            (p.runtime, &*p.cgroup, p.pod_uid.as_deref()),
            (Runtime::Kubernetes, pod.as_str(), Some(uid))
        );
    }

    #[test]
    fn paths_unused_for_a_while_are_forgotten() {
        let host = Host::new();
        let mut cat = Catalog::new(host.config());
        let kept = cg("/dcos/web");
        cat.container_of(&kept);
        cat.container_of(&cg("/gone/1"));
        cat.container_of(&cg("/gone/2"));
        for _ in 0..=PRUNE_AFTER * 2 {
            cat.refresh();
            cat.container_of(&kept);
        }
        assert_eq!(cat.by_path.len(), 1);
        assert!(cat.by_path.contains_key("/dcos/web"));
        assert_eq!(cat.known.len(), 1);
    }

    #[test]
    fn stale_refs_after_a_cache_clear_still_summarize() {
        let host = Host::new();
        let mut cat = Catalog::new(host.config());
        let mut p = process(100, "/dcos/web", "2026-01-01T00:00:00Z");
        p.container = cat.container_of(&p.cgroup);
        // OCI state changes: caches are cleared, the process keeps its old reference.
        fs::remove_dir_all(host.dir.path().join("run/runc/old")).unwrap();
        cat.refresh();
        let rows = cat.summarize(&[p], Instant::now());
        assert_eq!(rows.len(), 1);
        assert_eq!(
            (&*rows[0].id, rows[0].processes, rows[0].bundle.as_deref()),
            ("web", 1, Some("/srv/web"))
        );
    }
}
