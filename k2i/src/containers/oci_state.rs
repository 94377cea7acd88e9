//! Reading OCI runtime state directories (runc's `<root>/<id>/state.json`, crun's
//! `<root>/<id>/status`) into [`OciContainer`]s, and telling whether each is created,
//! running, paused or stopped.
//!
//! Everything here is best effort: a missing, half-written or corrupt state file skips
//! that one container, an unreadable root skips that root.

use super::stats::CgroupFs;
use dcos_core::model::Runtime;
use serde::Deserialize;
use std::collections::HashMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// Labels (runc) or annotations (crun bundles) whose value names the container, first
/// match wins. `dcos.name` is the one dcos workloads set.
pub const NAME_KEYS: [&str; 3] = ["dcos.name", "io.kubernetes.container.name", "nerdctl/name"];

/// One container found in an OCI runtime state directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OciContainer {
    pub id: String,
    /// The runtime the state root was configured as.
    pub runtime: Runtime,
    pub init_pid: Option<i32>,
    /// Start time of the init process in clock ticks after boot (field 22 of
    /// `/proc/PID/stat`), when the runtime recorded it: tells a reused pid apart.
    pub init_start: Option<u64>,
    /// Cgroup path relative to the cgroup mount, e.g. `/dcos/web`.
    pub cgroup: Option<String>,
    pub bundle: Option<String>,
    /// RFC 3339.
    pub created: Option<String>,
    /// From a [`NAME_KEYS`] label or annotation, else the id.
    pub name: String,
    /// `<root>/<id>`.
    pub state_dir: PathBuf,
}

/// The lifecycle state of an OCI container, as `runc list` would say it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OciStatus {
    /// Init is alive but the user process has not been started (`runc create`).
    Created,
    Running,
    Paused,
    Stopped,
}

impl OciStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            OciStatus::Created => "created",
            OciStatus::Running => "running",
            OciStatus::Paused => "paused",
            OciStatus::Stopped => "stopped",
        }
    }
}

impl OciContainer {
    /// `stopped` unless the init process is alive under `proc_root` (and, when the start
    /// time is known, is the same process); then `created` while runc/crun's
    /// `exec.fifo` still exists, `paused` when its cgroup is frozen, else `running`.
    pub fn status(&self, proc_root: &Path, cgroups: &CgroupFs) -> OciStatus {
        let Some(pid) = self.init_pid else {
            return OciStatus::Stopped;
        };
        let pid_dir = proc_root.join(pid.to_string());
        let alive = match fs::read_to_string(pid_dir.join("stat")) {
            Ok(stat) => match parse_stat(&stat) {
                Some((state, _)) if state == 'Z' || state == 'X' => false,
                Some((_, start)) => self.init_start.is_none_or(|want| want == start),
                None => true,
            },
            Err(_) => pid_dir.is_dir(),
        };
        if !alive {
            OciStatus::Stopped
        } else if self.state_dir.join("exec.fifo").exists() {
            OciStatus::Created
        } else if self.cgroup.as_deref().is_some_and(|c| cgroups.is_frozen(c)) {
            OciStatus::Paused
        } else {
            OciStatus::Running
        }
    }
}

/// State and start time (field 3 and 22) from the text of `/proc/PID/stat`.
fn parse_stat(text: &str) -> Option<(char, u64)> {
    // The command name (field 2) may hold spaces and parentheses: fields resume after
    // the last `)`.
    let rest = &text[text.rfind(')')? + 1..];
    let mut fields = rest.split_ascii_whitespace();
    let state = fields.next()?.chars().next()?;
    let start = fields.nth(18)?.parse().ok()?;
    Some((state, start))
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
                let Some(id) = entry.file_name().to_str().map(str::to_owned) else {
                    continue;
                };
                if id.starts_with('.') {
                    continue;
                }
                let dir = entry.path();
                // The format goes by the file present, so a crun root configured as
                // `runc` (or podman's) still reads.
                for (file, parse) in [("state.json", parse_runc as Parser), ("status", parse_crun as Parser)]
                {
                    let path = dir.join(file);
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
                        None => fs::read(&path).ok().and_then(|bytes| parse(&bytes, &id, *runtime, &dir)),
                    };
                    if let Some(c) = &parsed {
                        found.push(c.clone());
                    }
                    files.insert(path, CachedFile { inode, modified, len, runtime: *runtime, parsed });
                    break;
                }
            }
        }
        found.sort_by(|a, b| (&a.id, a.runtime.as_str()).cmp(&(&b.id, b.runtime.as_str())));
        self.files = files;
        let changed = found != self.containers;
        self.containers = found;
        changed
    }
}

type Parser = fn(&[u8], &str, Runtime, &Path) -> Option<OciContainer>;

#[derive(Deserialize)]
struct RuncState {
    id: Option<String>,
    init_process_pid: Option<i64>,
    /// A number; very old runc wrote it as a string.
    init_process_start: Option<serde_json::Value>,
    created: Option<String>,
    cgroup_paths: Option<HashMap<String, String>>,
    config: Option<RuncConfig>,
}

#[derive(Deserialize)]
struct RuncConfig {
    labels: Option<Vec<String>>,
    cgroups: Option<RuncCgroups>,
}

#[derive(Deserialize)]
struct RuncCgroups {
    path: Option<String>,
    parent: Option<String>,
    scope_prefix: Option<String>,
    name: Option<String>,
}

fn parse_runc(bytes: &[u8], dir_name: &str, runtime: Runtime, dir: &Path) -> Option<OciContainer> {
    let s: RuncState = serde_json::from_slice(bytes).ok()?;
    let id = s.id.filter(|i| !i.is_empty()).unwrap_or_else(|| dir_name.to_owned());
    let labels: Vec<(&str, &str)> = s
        .config
        .as_ref()
        .and_then(|c| c.labels.as_ref())
        .map(|l| l.iter().filter_map(|kv| kv.split_once('=')).collect())
        .unwrap_or_default();
    let label = |key: &str| labels.iter().find(|(k, _)| *k == key).map(|(_, v)| v.to_string());
    let name =
        NAME_KEYS.iter().find_map(|k| label(k)).filter(|n| !n.is_empty()).unwrap_or_else(|| id.clone());
    let cgroup = s
        .cgroup_paths
        .as_ref()
        .and_then(relative_from_runc_paths)
        .or_else(|| s.config.as_ref().and_then(|c| c.cgroups.as_ref()).and_then(runc_config_cgroup));
    Some(OciContainer {
        init_pid: pid(s.init_process_pid),
        init_start: s.init_process_start.as_ref().and_then(number).filter(|&n| n != 0),
        cgroup,
        bundle: label("bundle").filter(|b| !b.is_empty()),
        created: s.created.filter(|c| is_rfc3339(c)),
        name,
        id,
        runtime,
        state_dir: dir.to_path_buf(),
    })
}

#[derive(Deserialize)]
struct CrunStatus {
    pid: Option<i64>,
    #[serde(rename = "process-start-time")]
    process_start_time: Option<serde_json::Value>,
    #[serde(rename = "cgroup-path")]
    cgroup_path: Option<String>,
    bundle: Option<String>,
    created: Option<String>,
}

#[derive(Deserialize)]
struct BundleConfig {
    annotations: Option<HashMap<String, String>>,
}

fn parse_crun(bytes: &[u8], dir_name: &str, runtime: Runtime, dir: &Path) -> Option<OciContainer> {
    let s: CrunStatus = serde_json::from_slice(bytes).ok()?;
    let id = dir_name.to_owned();
    let bundle = s.bundle.filter(|b| !b.is_empty());
    // crun keeps no labels: the name comes from the bundle's annotations.
    let name = bundle
        .as_ref()
        .and_then(|b| fs::read(Path::new(b).join("config.json")).ok())
        .and_then(|bytes| serde_json::from_slice::<BundleConfig>(&bytes).ok())
        .and_then(|c| c.annotations)
        .and_then(|a| NAME_KEYS.iter().find_map(|k| a.get(*k).cloned()))
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| id.clone());
    let cgroup = s.cgroup_path.as_deref().filter(|c| !c.is_empty()).and_then(|c| {
        if c.starts_with(CGROUP_MOUNT) {
            strip_v2_mount(c)
        } else if c.starts_with('/') {
            Some(c.to_owned())
        } else {
            Some(format!("/{c}"))
        }
    });
    Some(OciContainer {
        init_pid: pid(s.pid),
        init_start: s.process_start_time.as_ref().and_then(number).filter(|&n| n != 0),
        cgroup,
        bundle,
        created: s.created.filter(|c| is_rfc3339(c)),
        name,
        id,
        runtime,
        state_dir: dir.to_path_buf(),
    })
}

fn pid(p: Option<i64>) -> Option<i32> {
    p.and_then(|p| i32::try_from(p).ok()).filter(|&p| p > 0)
}

fn number(v: &serde_json::Value) -> Option<u64> {
    match v {
        serde_json::Value::Number(n) => n.as_u64(),
        serde_json::Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn is_rfc3339(s: &str) -> bool {
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).is_ok()
}

const CGROUP_MOUNT: &str = "/sys/fs/cgroup";

/// The v1 controllers to take a container's path from, in the order
/// [`super::cgroup_path::pick_cgroup`] prefers them for processes, so the two agree.
const V1_KEYS: [&str; 5] = ["memory", "cpuacct", "cpu", "pids", "name=systemd"];

/// runc's `cgroup_paths` maps each controller (`""` for the v2 tree) to an absolute
/// directory; answers the path relative to the mount.
fn relative_from_runc_paths(paths: &HashMap<String, String>) -> Option<String> {
    V1_KEYS
        .iter()
        .find_map(|k| paths.get(*k).and_then(|abs| strip_v1_mount(abs, k)))
        .or_else(|| paths.get("").and_then(|abs| strip_v2_mount(abs)))
}

/// `/sys/fs/cgroup/cpu,cpuacct/dcos/web` (key `cpu`) → `/dcos/web`: everything after the
/// first component that names the controller.
fn strip_v1_mount(abs: &str, key: &str) -> Option<String> {
    let controller = key.strip_prefix("name=").unwrap_or(key);
    let mut offset = 0;
    for comp in abs.split('/') {
        offset += comp.len() + 1;
        if !comp.is_empty() && comp.split(',').any(|c| c == controller || c == key) {
            let rest = abs.get(offset..).unwrap_or("").trim_end_matches('/');
            return Some(format!("/{rest}"));
        }
    }
    None
}

/// `/sys/fs/cgroup/unified/dcos/web` (hybrid) or `/sys/fs/cgroup/dcos/web` (v2) →
/// `/dcos/web`. `None` for a v2 tree mounted elsewhere.
fn strip_v2_mount(abs: &str) -> Option<String> {
    for mount in ["/sys/fs/cgroup/unified", CGROUP_MOUNT] {
        if let Some(rest) = abs.strip_prefix(mount) {
            if rest.is_empty() || rest.starts_with('/') {
                let rest = rest.trim_end_matches('/');
                return Some(if rest.is_empty() { "/".into() } else { rest.to_owned() });
            }
        }
    }
    None
}

/// The cgroup runc's config asks for: `path` (cgroupfs driver), or, with the systemd
/// driver, `parent`/`scope_prefix`/`name` as the unit `<prefix>-<name>.scope` in the
/// slice `parent` (`system.slice` when unset).
fn runc_config_cgroup(c: &RuncCgroups) -> Option<String> {
    if let Some(p) = c.path.as_deref().filter(|p| !p.is_empty()) {
        return Some(if p.starts_with('/') { p.to_owned() } else { format!("/{p}") });
    }
    let name = c.name.as_deref().filter(|n| !n.is_empty())?;
    let parent = c.parent.as_deref().filter(|p| !p.is_empty()).unwrap_or("system.slice");
    let mut out = slice_path(parent)?;
    if name.ends_with(".slice") {
        out.push('/');
        out.push_str(name);
    } else {
        let prefix = c.scope_prefix.as_deref().unwrap_or("");
        if prefix.is_empty() {
            out.push_str(&format!("/{name}.scope"));
        } else {
            out.push_str(&format!("/{prefix}-{name}.scope"));
        }
    }
    Some(out)
}

/// A systemd slice's cgroup: `a-b.slice` lives in `/a.slice/a-b.slice`.
fn slice_path(slice: &str) -> Option<String> {
    let stem = slice.strip_suffix(".slice")?;
    if stem == "-" || stem.is_empty() {
        return Some(String::new());
    }
    let mut out = String::new();
    let mut end = 0;
    for part in stem.split('-') {
        end += part.len();
        out.push('/');
        out.push_str(&stem[..end]);
        out.push_str(".slice");
        end += 1;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(path: &Path, text: &str) {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
    }

    /// A runc `state.json` shaped like the ones runc 1.1 writes on a hybrid host
    /// (trimmed: runc writes the whole libcontainer config).
    fn runc_state(id: &str, pid: i32, start: u64, cgroup: &str) -> String {
        let controllers = ["blkio", "cpu", "cpuacct", "cpuset", "devices", "freezer", "memory", "pids"];
        let mut paths = serde_json::Map::new();
        for c in controllers {
            paths.insert(c.into(), format!("/sys/fs/cgroup/{c}{cgroup}").into());
        }
        paths.insert("name=systemd".into(), format!("/sys/fs/cgroup/systemd{cgroup}").into());
        paths.insert("".into(), format!("/sys/fs/cgroup/unified{cgroup}").into());
        serde_json::json!({
            "id": id,
            "init_process_pid": pid,
            "init_process_start": start,
            "created": "2026-11-22T04:43:22.719428243Z",
            "config": {
                "no_pivot_root": false,
                "rootfs": format!("/srv/{id}/rootfs"),
                "mounts": [{"source": "proc", "destination": "/proc", "device": "proc"}],
                "cgroups": {"path": cgroup, "scope_prefix": "", "memory": 0},
                "labels": [format!("bundle=/srv/{id}"), "dcos.name=web-frontend"],
                "version": "1.0.2-dev"
            },
            "rootless": false,
            "cgroup_paths": paths,
            "namespace_paths": {"NEWPID": format!("/proc/{pid}/ns/pid")},
            "external_descriptors": ["/dev/null", "/dev/null", "/dev/null"],
            "intel_rdt_path": ""
        })
        .to_string()
    }

    fn proc_stat(pid: i32, state: char, start: u64) -> String {
        // pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt
        // utime stime cutime cstime priority nice threads itrealvalue starttime ...
        format!("{pid} (sh (x) y) {state} 1 {pid} {pid} 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 1 0 {start} 1000 10 0\n")
    }

    #[test]
    fn reads_runc_state() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("runc");
        write(&root.join("web/state.json"), &runc_state("web", 4242, 38578, "/dcos/web"));
        let found = scan(&[(Runtime::Runc, root.clone())]);
        assert_eq!(
            found,
            vec![OciContainer {
                id: "web".into(),
                runtime: Runtime::Runc,
                init_pid: Some(4242),
                init_start: Some(38578),
                cgroup: Some("/dcos/web".into()),
                bundle: Some("/srv/web".into()),
                created: Some("2026-11-22T04:43:22.719428243Z".into()),
                name: "web-frontend".into(),
                state_dir: root.join("web"),
            }]
        );
    }

    #[test]
    fn runc_cgroup_on_pure_v2_and_co_mounted_v1() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().to_path_buf();
        write(
            &root.join("v2/state.json"),
            r#"{"id":"v2","init_process_pid":7,"cgroup_paths":{"":"/sys/fs/cgroup/system.slice/runc-v2.scope"}}"#,
        );
        write(
            &root.join("co/state.json"),
            r#"{"id":"co","init_process_pid":8,"cgroup_paths":{"cpu":"/sys/fs/cgroup/cpu,cpuacct/a/b","cpuacct":"/sys/fs/cgroup/cpu,cpuacct/a/b"}}"#,
        );
        write(
            &root.join("sd/state.json"),
            r#"{"id":"sd","config":{"cgroups":{"path":"","parent":"machine-dcos.slice","scope_prefix":"runc","name":"sd"}}}"#,
        );
        let found = scan(&[(Runtime::Runc, root)]);
        let cg: Vec<(&str, Option<&str>)> =
            found.iter().map(|c| (c.id.as_str(), c.cgroup.as_deref())).collect();
        assert_eq!(
            cg,
            [
                ("co", Some("/a/b")),
                ("sd", Some("/machine.slice/machine-dcos.slice/runc-sd.scope")),
                ("v2", Some("/system.slice/runc-v2.scope"))
            ]
        );
        assert_eq!(found[1].init_pid, None);
        assert_eq!(found[1].name, "sd");
    }

    #[test]
    fn reads_crun_status_and_bundle_annotations() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("crun");
        let bundle = t.path().join("bundle");
        write(&bundle.join("config.json"), r#"{"ociVersion":"1.0.0","annotations":{"dcos.name":"api"}}"#);
        let status = serde_json::json!({
            "pid": 5151,
            "process-start-time": 99,
            "cgroup-path": "/system.slice/crun-c1.scope",
            "scope": "crun-c1.scope",
            "intelrdt": "",
            "rootfs": "/x/rootfs",
            "systemd-cgroup": true,
            "bundle": bundle.to_str().unwrap(),
            "created": "2026-01-02T03:04:05Z",
            "detached": true,
            "external_descriptors": "[]"
        });
        write(&root.join("c1/status"), &status.to_string());
        write(
            &root.join("c2/status"),
            r#"{"pid":1,"cgroup-path":"dcos/c2","bundle":"/nowhere","created":"not a date"}"#,
        );
        let found = scan(&[(Runtime::Crun, root.clone())]);
        assert_eq!(found.len(), 2);
        assert_eq!(
            found[0],
            OciContainer {
                id: "c1".into(),
                runtime: Runtime::Crun,
                init_pid: Some(5151),
                init_start: Some(99),
                cgroup: Some("/system.slice/crun-c1.scope".into()),
                bundle: Some(bundle.to_str().unwrap().into()),
                created: Some("2026-01-02T03:04:05Z".into()),
                name: "api".into(),
                state_dir: root.join("c1"),
            }
        );
        assert_eq!(found[1].cgroup.as_deref(), Some("/dcos/c2"));
        assert_eq!(found[1].name, "c2");
        assert_eq!(found[1].created, None);
    }

    #[test]
    fn bad_files_and_roots_are_skipped() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("runc");
        write(&root.join("good/state.json"), r#"{"id":"good","init_process_pid":1}"#);
        write(&root.join("truncated/state.json"), &runc_state("truncated", 1, 1, "/x")[..200]);
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
        let ids: Vec<&str> = found.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(ids, ["good"]);
    }

    #[test]
    fn rescan_reports_changes_only() {
        let t = tempfile::tempdir().unwrap();
        let roots = [(Runtime::Runc, t.path().to_path_buf())];
        let mut s = OciScanner::new();
        assert!(!s.rescan(&roots), "empty to empty is no change");
        write(&t.path().join("a/state.json"), &runc_state("a", 10, 1, "/a"));
        assert!(s.rescan(&roots));
        assert!(!s.rescan(&roots));
        assert_eq!(s.containers().len(), 1);
        // A file replaced the way runtimes do it (a new file renamed over the old one) is
        // read again, even with the same size.
        write(&t.path().join("a/new"), &runc_state("a", 11, 1, "/a"));
        fs::rename(t.path().join("a/new"), t.path().join("a/state.json")).unwrap();
        assert!(s.rescan(&roots));
        assert_eq!(s.containers()[0].init_pid, Some(11));
        // So is one rewritten in place with a different size.
        write(&t.path().join("a/state.json"), &runc_state("a", 12345, 1, "/a"));
        assert!(s.rescan(&roots));
        assert_eq!(s.containers()[0].init_pid, Some(12345));
        fs::remove_dir_all(t.path().join("a")).unwrap();
        assert!(s.rescan(&roots));
        assert!(s.containers().is_empty());
    }

    #[test]
    fn status_from_proc_exec_fifo_and_freezer() {
        let t = tempfile::tempdir().unwrap();
        let proc_root = t.path().join("proc");
        let cg_root = t.path().join("cgroup");
        fs::create_dir_all(&cg_root).unwrap();
        let cgroups = CgroupFs::detect(&cg_root);
        let state = t.path().join("runc");
        write(&state.join("web/state.json"), &runc_state("web", 100, 555, "/dcos/web"));
        let c = scan(&[(Runtime::Runc, state.clone())]).remove(0);

        assert_eq!(c.status(&proc_root, &cgroups), OciStatus::Stopped, "no such pid");

        write(&proc_root.join("100/stat"), &proc_stat(100, 'S', 555));
        assert_eq!(c.status(&proc_root, &cgroups), OciStatus::Running);

        write(&cg_root.join("freezer/dcos/web/freezer.state"), "FROZEN\n");
        assert_eq!(c.status(&proc_root, &cgroups), OciStatus::Paused);
        write(&cg_root.join("freezer/dcos/web/freezer.state"), "THAWED\n");

        write(&state.join("web/exec.fifo"), "");
        assert_eq!(c.status(&proc_root, &cgroups), OciStatus::Created);
        fs::remove_file(state.join("web/exec.fifo")).unwrap();

        write(&proc_root.join("100/stat"), &proc_stat(100, 'S', 556));
        assert_eq!(c.status(&proc_root, &cgroups), OciStatus::Stopped, "pid reused by another process");

        write(&proc_root.join("100/stat"), &proc_stat(100, 'Z', 555));
        assert_eq!(c.status(&proc_root, &cgroups), OciStatus::Stopped, "zombie init");

        // Only the directory: alive, nothing more to check.
        fs::remove_file(proc_root.join("100/stat")).unwrap();
        assert_eq!(c.status(&proc_root, &cgroups), OciStatus::Running);
    }

    #[test]
    fn v2_freeze() {
        let t = tempfile::tempdir().unwrap();
        let cg_root = t.path().join("cgroup");
        write(&cg_root.join("cgroup.controllers"), "");
        write(&cg_root.join("system.slice/crun-c.scope/cgroup.freeze"), "1\n");
        let proc_root = t.path().join("proc");
        fs::create_dir_all(proc_root.join("77")).unwrap();
        let c = OciContainer {
            id: "c".into(),
            runtime: Runtime::Crun,
            init_pid: Some(77),
            init_start: None,
            cgroup: Some("/system.slice/crun-c.scope".into()),
            bundle: None,
            created: None,
            name: "c".into(),
            state_dir: t.path().join("nothing"),
        };
        assert_eq!(c.status(&proc_root, &CgroupFs::detect(&cg_root)), OciStatus::Paused);
    }

    #[test]
    fn mount_stripping() {
        assert_eq!(strip_v1_mount("/sys/fs/cgroup/memory/dcos/web", "memory").as_deref(), Some("/dcos/web"));
        assert_eq!(strip_v1_mount("/sys/fs/cgroup/memory", "memory").as_deref(), Some("/"));
        assert_eq!(strip_v1_mount("/sys/fs/cgroup/systemd/x", "name=systemd").as_deref(), Some("/x"));
        assert_eq!(strip_v1_mount("/cgroup/cpuacct,cpu/memory/x", "cpu").as_deref(), Some("/memory/x"));
        assert_eq!(strip_v1_mount("/sys/fs/cgroup/pids/x", "memory"), None);
        assert_eq!(strip_v2_mount("/sys/fs/cgroup/unified/a").as_deref(), Some("/a"));
        assert_eq!(strip_v2_mount("/sys/fs/cgroup").as_deref(), Some("/"));
        assert_eq!(strip_v2_mount("/sys/fs/cgroupfoo/a"), None);
        assert_eq!(strip_v2_mount("/mnt/cg/a"), None);
        assert_eq!(slice_path("system.slice").as_deref(), Some("/system.slice"));
        assert_eq!(slice_path("-.slice").as_deref(), Some(""));
        assert_eq!(slice_path("a-b-c.slice").as_deref(), Some("/a.slice/a-b.slice/a-b-c.slice"));
    }
}
