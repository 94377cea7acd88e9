//! The OCI containers of the configured runtime state roots, rescanned every tick: each
//! root's state directories read with [`dcos_linux::oci`], named, and kept until their
//! state file changes.
//!
//! Everything here is best effort: a missing, half-written or corrupt state file skips
//! that one container, an unreadable root skips that root.

use super::stats::CgroupFs;
use dcos_core::model::Runtime;
use dcos_linux::oci::{self, ContainerState, Format};
use std::collections::HashMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

pub use dcos_linux::oci::Status as OciStatus;

/// Annotations (runc records them as labels) whose value names the container, first match
/// wins. `dcos.name` is the one dcos workloads set.
pub const NAME_KEYS: [&str; 3] = ["dcos.name", "io.kubernetes.container.name", "nerdctl/name"];
/// The annotation naming the dcos service a container is an instance of.
pub const SERVICE_KEY: &str = "dcos.service";

/// One container found in an OCI runtime state directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OciContainer {
    /// The runtime the state root was configured as.
    pub runtime: Runtime,
    /// From a [`NAME_KEYS`] annotation, else the id.
    pub name: String,
    /// The dcos service it is an instance of ([`SERVICE_KEY`]).
    pub service: Option<String>,
    /// What the runtime recorded.
    pub state: ContainerState,
}

impl OciContainer {
    fn new(runtime: Runtime, state: ContainerState) -> OciContainer {
        let annotations = state.annotations();
        let name = NAME_KEYS
            .iter()
            .find_map(|k| annotations.get(*k))
            .filter(|n| !n.is_empty())
            .cloned()
            .unwrap_or_else(|| state.id.clone());
        let service = annotations.get(SERVICE_KEY).filter(|s| !s.is_empty()).cloned();
        OciContainer { runtime, name, service, state }
    }

    pub fn id(&self) -> &str {
        &self.state.id
    }

    /// The init's pid as the process table has it.
    pub fn init_pid(&self) -> Option<i32> {
        self.state.init_pid.and_then(|p| i32::try_from(p).ok())
    }

    /// The OCI status ([`ContainerState::status`]), `paused` when `cgroups` says the
    /// container's cgroup is frozen.
    pub fn status(&self, proc_root: &Path, cgroups: &CgroupFs) -> OciStatus {
        self.state.status(proc_root, |cgroup| cgroups.is_frozen(cgroup))
    }
}

/// Reads every container under the given state roots, sorted by id.
pub fn scan(roots: &[(Runtime, PathBuf)]) -> Vec<OciContainer> {
    let mut scanner = OciScanner::new();
    scanner.rescan(roots);
    scanner.containers
}

/// A scanner that keeps what it parsed and re-reads a state file only when its inode,
/// size or modification time changed, so rescanning every tick costs a directory listing and a
/// `stat` per container.
#[derive(Debug, Default)]
pub struct OciScanner {
    files: HashMap<PathBuf, CachedFile>,
    containers: Vec<OciContainer>,
}

#[derive(Debug)]
struct CachedFile {
    /// Runtimes replace state files by renaming a new one over them: a new inode.
    inode: u64,
    modified: Option<SystemTime>,
    len: u64,
    runtime: Runtime,
    parsed: Option<OciContainer>,
}

impl OciScanner {
    pub fn new() -> Self {
        Self::default()
    }

    /// The containers of the last scan, sorted by id (then runtime).
    pub fn containers(&self) -> &[OciContainer] {
        &self.containers
    }

    /// Rescans the roots; answers whether the set of containers (or anything known about
    /// one) changed since the last scan.
    pub fn rescan(&mut self, roots: &[(Runtime, PathBuf)]) -> bool {
        let mut files = HashMap::with_capacity(self.files.len());
        let mut found = Vec::new();
        for (runtime, root) in roots {
            let Ok(entries) = fs::read_dir(root) else {
                continue;
            };
            for entry in entries.flatten() {
                if entry.file_name().as_encoded_bytes().starts_with(b".") {
                    continue;
                }
                let Some(name) = entry.file_name().to_str().map(String::from) else { continue };
                // The format goes by the file present, so a crun root configured as
                // `runc` (or podman's) still reads.
                let Some((format, path)) = Format::of_entry(root, &name) else { continue };
                let dir = entry.path();
                let Ok(meta) = fs::metadata(&path) else {
                    continue;
                };
                let (inode, modified, len) = (meta.ino(), meta.modified().ok(), meta.len());
                let cached = self.files.remove(&path).filter(|c| {
                    c.inode == inode
                        && c.modified.is_some()
                        && c.modified == modified
                        && c.len == len
                        && c.runtime == *runtime
                });
                let parsed = match cached {
                    Some(c) => c.parsed,
                    None => fs::read(&path)
                        .ok()
                        .and_then(|bytes| oci::parse(format, &bytes, &dir))
                        .map(|state| OciContainer::new(*runtime, state)),
                };
                if let Some(c) = &parsed {
                    found.push(c.clone());
                }
                files.insert(path, CachedFile { inode, modified, len, runtime: *runtime, parsed });
            }
        }
        found.sort_by(|a, b| (a.id(), a.runtime.as_str()).cmp(&(b.id(), b.runtime.as_str())));
        self.files = files;
        let changed = found != self.containers;
        self.containers = found;
        changed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(path: &Path, text: &str) {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
    }

    fn runc_state(id: &str, pid: i32, labels: &[&str]) -> String {
        serde_json::json!({
            "id": id,
            "init_process_pid": pid,
            "init_process_start": 1,
            "created": "2026-11-22T04:43:22.719428243Z",
            "config": {"labels": labels, "cgroups": {"path": format!("/{id}")}},
        })
        .to_string()
    }

    #[test]
    fn containers_are_named_from_annotations_else_by_id() {
        let t = tempfile::tempdir().unwrap();
        let (runc, crun, bundle) = (t.path().join("runc"), t.path().join("crun"), t.path().join("bundle"));
        write(
            &runc.join("web/state.json"),
            &runc_state("web", 10, &["bundle=/srv/web", "dcos.name=web-frontend"]),
        );
        write(&runc.join("k8s/state.json"), &runc_state("k8s", 11, &["io.kubernetes.container.name=db"]));
        write(&runc.join("plain/state.json"), &runc_state("plain", 12, &["dcos.name="]));
        write(&bundle.join("config.json"), r#"{"annotations":{"nerdctl/name":"api"}}"#);
        let status = serde_json::json!({"pid": 13, "bundle": bundle.to_str().unwrap()});
        write(&crun.join("c1/status"), &status.to_string());
        let found = scan(&[(Runtime::Runc, runc), (Runtime::Crun, crun)]);
        let names: Vec<(&str, Runtime, &str)> =
            found.iter().map(|c| (c.id(), c.runtime, c.name.as_str())).collect();
        assert_eq!(
            names,
            [
                ("c1", Runtime::Crun, "api"),
                ("k8s", Runtime::Runc, "db"),
                ("plain", Runtime::Runc, "plain"),
                ("web", Runtime::Runc, "web-frontend")
            ]
        );
        assert_eq!(found[3].init_pid(), Some(10));
        assert_eq!(found[3].state.bundle.as_deref(), Some("/srv/web"));
    }

    #[test]
    fn a_runsc_root_holds_state_files_not_directories_and_a_pause_is_seen_as_it_changes() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("runsc");
        let state = |status: &str| {
            serde_json::json!({
                "id": "sbx", "status": status, "goferPid": 41, "bundleDir": "/srv/sbx",
                "sandbox": {"id": "sbx", "pid": 42, "cgroup": {"cgroupv1": {"name": "/dcos/h/sbx"}}},
                "spec": {"annotations": {"dcos.name": "sandboxed", "dcos.service": "api"}},
            })
            .to_string()
        };
        write(&root.join("sbx_sandbox:sbx.state"), &state("running"));
        write(&root.join("sbx_sandbox:sbx.lock"), "");
        let roots = [(Runtime::Runsc, root.clone())];
        let mut s = OciScanner::new();
        assert!(s.rescan(&roots));
        let c = &s.containers()[0];
        assert_eq!((c.id(), c.runtime, c.name.as_str()), ("sbx", Runtime::Runsc, "sandboxed"));
        assert_eq!((c.service.as_deref(), c.init_pid()), (Some("api"), Some(42)));
        assert_eq!(c.state.cgroup.as_deref(), Some("/dcos/h/sbx"), "its processes are found by it");
        assert_eq!(s.containers().len(), 1, "the lock file is no container");
        write(&root.join("sbx_sandbox:sbx.state"), &state("paused"));
        assert!(s.rescan(&roots), "runsc rewrote its state");
        assert_eq!(s.containers()[0].state.recorded, Some(OciStatus::Paused));
    }

    #[test]
    fn bad_files_and_roots_are_skipped() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("runc");
        write(&root.join("good/state.json"), r#"{"id":"good","init_process_pid":1}"#);
        write(&root.join("truncated/state.json"), &runc_state("truncated", 1, &[])[..50]);
        write(&root.join("empty/state.json"), "");
        write(&root.join("wrongtype/state.json"), r#"{"id":"w","init_process_pid":"lots"}"#);
        write(&root.join("array/state.json"), "[1,2,3]");
        write(&root.join("nofile/other"), "x");
        write(&root.join(".hidden/state.json"), r#"{"id":"hidden"}"#);
        write(&root.join("plainfile"), "not a dir");
        let found = scan(&[
            (Runtime::Runc, root),
            (Runtime::Crun, t.path().join("does-not-exist")),
            (Runtime::Runc, PathBuf::from("/proc/self/status")),
        ]);
        let ids: Vec<&str> = found.iter().map(|c| c.id()).collect();
        assert_eq!(ids, ["good"]);
    }

    #[test]
    fn rescan_reports_changes_only() {
        let t = tempfile::tempdir().unwrap();
        let roots = [(Runtime::Runc, t.path().to_path_buf())];
        let mut s = OciScanner::new();
        assert!(!s.rescan(&roots), "empty to empty is no change");
        write(&t.path().join("a/state.json"), &runc_state("a", 10, &[]));
        assert!(s.rescan(&roots));
        assert!(!s.rescan(&roots));
        assert_eq!(s.containers().len(), 1);
        // A file replaced the way runtimes do it (a new file renamed over the old one) is
        // read again, even with the same size.
        write(&t.path().join("a/new"), &runc_state("a", 11, &[]));
        fs::rename(t.path().join("a/new"), t.path().join("a/state.json")).unwrap();
        assert!(s.rescan(&roots));
        assert_eq!(s.containers()[0].init_pid(), Some(11));
        // So is one rewritten in place with a different size.
        write(&t.path().join("a/state.json"), &runc_state("a", 12345, &[]));
        assert!(s.rescan(&roots));
        assert_eq!(s.containers()[0].init_pid(), Some(12345));
        fs::remove_dir_all(t.path().join("a")).unwrap();
        assert!(s.rescan(&roots));
        assert!(s.containers().is_empty());
    }

    #[test]
    fn status_is_paused_when_the_cgroup_filesystem_says_frozen() {
        let t = tempfile::tempdir().unwrap();
        let proc_root = t.path().join("proc");
        fs::create_dir_all(proc_root.join("77")).unwrap();
        let v1 = t.path().join("v1");
        write(&v1.join("runc/web/state.json"), &runc_state("web", 77, &[]));
        let web = scan(&[(Runtime::Runc, v1.join("runc"))]).remove(0);
        let v1_cgroups = CgroupFs::detect(v1.join("cgroup"));
        assert_eq!(web.status(&proc_root, &v1_cgroups), OciStatus::Running);
        write(&v1.join("cgroup/freezer/web/freezer.state"), "FROZEN\n");
        assert_eq!(web.status(&proc_root, &v1_cgroups), OciStatus::Paused);

        let v2 = t.path().join("v2");
        write(&v2.join("cgroup/cgroup.controllers"), "");
        write(&v2.join("cgroup/system.slice/crun-c.scope/cgroup.freeze"), "1\n");
        write(&v2.join("crun/c/status"), r#"{"pid":77,"cgroup-path":"/system.slice/crun-c.scope"}"#);
        let c = scan(&[(Runtime::Crun, v2.join("crun"))]).remove(0);
        assert_eq!(c.status(&proc_root, &CgroupFs::detect(v2.join("cgroup"))), OciStatus::Paused);
    }
}
