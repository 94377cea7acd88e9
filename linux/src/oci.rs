//! The state an OCI runtime keeps of each container under its `--root`: runc's
//! `<root>/<id>/state.json`, crun's `<root>/<id>/status`, runsc's (gVisor)
//! `<root>/<id>_sandbox:<id>.state`. Read without starting a runtime process (`runc state`
//! costs several milliseconds a container): which process is the container's init (for
//! runsc, the sandbox: gVisor's user-space kernel, which runs the container's processes),
//! whether it still runs ([`liveness`], [`ContainerState::status`]), its cgroup, bundle and
//! creation time.
//!
//! Everything here is best effort: a missing, half-written or corrupt state file is no
//! state (`None`), never an error or a panic.

use crate::process;
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

/// Which runtime's format a state directory holds, told by the file in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// `state.json` (runc, and youki).
    Runc,
    /// `status` (crun).
    Crun,
    /// `<root>/<sandbox>_sandbox:<id>.state`, a file beside the others, not a directory
    /// (runsc, gVisor). dcos runs one container per sandbox, named alike.
    Runsc,
}

/// What ends the name of a runsc state file.
const RUNSC_SUFFIX: &str = ".state";
/// What joins a runsc sandbox's id to its container's id in a state file's name.
const RUNSC_JOIN: &str = "_sandbox:";

impl Format {
    /// Every format, in the order the state of a container is looked for.
    pub const ALL: [Format; 3] = [Format::Runc, Format::Crun, Format::Runsc];

    /// The file that holds the state of container `id` under `root`.
    pub fn state_file(self, root: &Path, id: &str) -> PathBuf {
        match self {
            Format::Runc => root.join(id).join("state.json"),
            Format::Crun => root.join(id).join("status"),
            Format::Runsc => root.join(format!("{id}{RUNSC_JOIN}{id}{RUNSC_SUFFIX}")),
        }
    }

    /// The state file that the entry `name` of a runtime root stands for, with its format:
    /// a container's directory holding `state.json` or `status`, or runsc's state file
    /// itself. `None` for anything else (runsc's lock files, a directory without state).
    pub fn of_entry(root: &Path, name: &str) -> Option<(Format, PathBuf)> {
        if name.ends_with(RUNSC_SUFFIX) && name.contains(RUNSC_JOIN) {
            return Some((Format::Runsc, root.join(name)));
        }
        [Format::Runc, Format::Crun]
            .into_iter()
            .map(|f| (f, f.state_file(root, name)))
            .find(|(_, path)| path.exists())
    }
}

/// What a runtime recorded of one container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerState {
    /// runc's `id`, else the directory's name.
    pub id: String,
    pub format: Format,
    /// The container's init process, as the runtime started it. It may have ended since:
    /// [`ContainerState::init_runs`] tells.
    pub init_pid: Option<u32>,
    /// The init's start time (field 22 of `/proc/PID/stat`, clock ticks after boot), where
    /// the runtime recorded it: tells the init from a later process given the same pid.
    pub init_start: Option<u64>,
    /// Cgroup path relative to the cgroup mount, e.g. `/dcos/web`.
    pub cgroup: Option<String>,
    pub bundle: Option<String>,
    /// RFC 3339; a value that is not is left out.
    pub created: Option<String>,
    /// runc's labels, `key=value` split at the first `=`: `bundle` and every annotation of
    /// the bundle; runsc's annotations (from the spec it keeps). crun keeps none
    /// ([`ContainerState::annotations`] reads its bundle).
    pub labels: Vec<(String, String)>,
    /// `<root>/<id>`.
    pub dir: PathBuf,
    /// The status the runtime wrote itself, where it keeps one (runsc: `paused` is its own
    /// doing, not the cgroup freezer's).
    pub recorded: Option<Status>,
    /// The id of the runsc sandbox the init pid is the process of (its command line names
    /// it), and the gofer's pid: a reused pid is told apart by its command line, as runsc
    /// records no start time.
    pub sandbox: Option<Sandbox>,
}

/// A runsc sandbox as its state records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sandbox {
    pub id: String,
    /// The gofer: the sandbox's file server, a process of the container's too.
    pub gofer_pid: Option<u32>,
}

/// The OCI lifecycle state of a container, as `runc list` would say it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Init is alive but the user process has not been started (`runc create`).
    Created,
    Running,
    Paused,
    Stopped,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Stopped => "stopped",
        }
    }
}

/// What the state and `/proc` say of a container's init ([`liveness`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Liveness {
    /// The runtime keeps no state (or no init pid) for the container.
    Unknown,
    /// Its init runs (or is frozen), with this pid.
    Running(u32),
    /// Its init has ended, or the pid now belongs to another process.
    Stopped,
}

impl ContainerState {
    /// Whether the init is still alive under `proc_root` and, where its start time was
    /// recorded, is the same process ([`process::still_runs`]). No init pid: not running.
    pub fn init_runs(&self, proc_root: &Path) -> bool {
        self.init_pid.is_some_and(|pid| {
            process::still_runs(proc_root, pid, self.init_start)
                && self.sandbox.as_ref().is_none_or(|s| is_sandbox(proc_root, pid, &s.id))
        })
    }

    /// Created and not started yet: runc and crun keep `exec.fifo` in the state directory
    /// from `create` until `start`; runsc says `created` in its state.
    pub fn awaiting_start(&self) -> bool {
        self.recorded == Some(Status::Created) || self.dir.join("exec.fifo").exists()
    }

    /// `stopped` unless the init runs ([`ContainerState::init_runs`]); then `created` while
    /// it [awaits its start](ContainerState::awaiting_start), `paused` when the runtime
    /// recorded it or `frozen` says so of its cgroup (see [`crate::freezer`]), else
    /// `running`.
    pub fn status(&self, proc_root: &Path, frozen: impl FnOnce(&str) -> bool) -> Status {
        if !self.init_runs(proc_root) {
            Status::Stopped
        } else if self.awaiting_start() {
            Status::Created
        } else if self.recorded == Some(Status::Paused) || self.cgroup.as_deref().is_some_and(frozen) {
            Status::Paused
        } else {
            Status::Running
        }
    }

    /// The bundle's annotations: runc's labels but `bundle` (runc records every annotation
    /// as a label), or, for crun, the `annotations` of the bundle's `config.json`.
    pub fn annotations(&self) -> BTreeMap<String, String> {
        match self.format {
            Format::Runc => self.labels.iter().filter(|(k, _)| k != "bundle").cloned().collect(),
            Format::Runsc => self.labels.iter().cloned().collect(),
            Format::Crun => self
                .bundle
                .as_ref()
                .and_then(|b| std::fs::read(Path::new(b).join("config.json")).ok())
                .and_then(|bytes| serde_json::from_slice::<BundleConfig>(&bytes).ok())
                .and_then(|c| c.annotations)
                .unwrap_or_default(),
        }
    }
}

/// Reads the state of container `id` under runtime root `root`: the first of the state
/// files ([`Format::ALL`]) present, `None` if none is or it does not parse.
pub fn read(root: &Path, id: &str) -> Option<ContainerState> {
    Format::ALL.into_iter().find_map(|f| {
        let bytes = std::fs::read(f.state_file(root, id)).ok()?;
        parse(f, &bytes, &root.join(id))
    })
}

/// Whether runtime root `root` keeps any state of container `id` (runc and crun: its
/// directory; runsc: its state file).
pub fn has_state(root: &Path, id: &str) -> bool {
    root.join(id).exists() || Format::Runsc.state_file(root, id).exists()
}

/// The ids of the containers runtime root `root` keeps state of, in no order.
pub fn ids(root: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(root) else { return Vec::new() };
    entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            match Format::of_entry(root, &name)? {
                (Format::Runsc, _) => {
                    Some(name.strip_suffix(RUNSC_SUFFIX)?.split_once(RUNSC_JOIN)?.1.to_owned())
                }
                _ => Some(name),
            }
        })
        .collect()
}

/// What the state of container `id` under `root` and `proc_root` say of its init: what
/// `runtime state` would say (`running` or `stopped`; frozen is the cgroup's to tell, or
/// the runtime's own: [`ContainerState::recorded`]).
pub fn liveness(root: &Path, proc_root: &Path, id: &str) -> Liveness {
    match read(root, id) {
        Some(s @ ContainerState { init_pid: Some(pid), .. }) => {
            if s.init_runs(proc_root) {
                Liveness::Running(pid)
            } else {
                Liveness::Stopped
            }
        }
        _ => Liveness::Unknown,
    }
}

/// Parses the state file of the container whose directory is (or, for runsc, would be)
/// `dir` (`<root>/<id>`) in `format`.
pub fn parse(format: Format, bytes: &[u8], dir: &Path) -> Option<ContainerState> {
    let dir_name = dir.file_name()?.to_str()?;
    match format {
        Format::Runc => parse_runc(bytes, dir_name, dir),
        Format::Crun => parse_crun(bytes, dir_name, dir),
        Format::Runsc => parse_runsc(bytes, dir),
    }
}

/// Whether process `pid` is runsc's sandbox `id`: its command line starts with
/// `runsc-sandbox` and ends with the id. A command line that cannot be read (a fixture
/// tree) says nothing against it.
fn is_sandbox(proc_root: &Path, pid: u32, id: &str) -> bool {
    let Ok(cmdline) = std::fs::read(proc_root.join(pid.to_string()).join("cmdline")) else { return true };
    let mut args = cmdline.split(|b| *b == 0).filter(|a| !a.is_empty());
    let first = args.next().unwrap_or_default();
    first.starts_with(b"runsc-sandbox") && args.next_back() == Some(id.as_bytes())
}

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

fn parse_runc(bytes: &[u8], dir_name: &str, dir: &Path) -> Option<ContainerState> {
    let s: RuncState = serde_json::from_slice(bytes).ok()?;
    let labels: Vec<(String, String)> = s
        .config
        .as_ref()
        .and_then(|c| c.labels.as_ref())
        .map(|l| l.iter().filter_map(|kv| kv.split_once('=')).map(|(k, v)| (k.into(), v.into())).collect())
        .unwrap_or_default();
    let cgroup = s
        .cgroup_paths
        .as_ref()
        .and_then(relative_from_runc_paths)
        .or_else(|| s.config.as_ref().and_then(|c| c.cgroups.as_ref()).and_then(runc_config_cgroup));
    Some(ContainerState {
        id: s.id.filter(|i| !i.is_empty()).unwrap_or_else(|| dir_name.to_owned()),
        format: Format::Runc,
        init_pid: pid(s.init_process_pid),
        init_start: s.init_process_start.as_ref().and_then(number).filter(|&n| n != 0),
        cgroup,
        bundle: labels.iter().find(|(k, _)| k == "bundle").map(|(_, v)| v.clone()).filter(|b| !b.is_empty()),
        created: s.created.filter(|c| is_rfc3339(c)),
        labels,
        dir: dir.to_path_buf(),
        recorded: None,
        sandbox: None,
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
    annotations: Option<BTreeMap<String, String>>,
}

fn parse_crun(bytes: &[u8], dir_name: &str, dir: &Path) -> Option<ContainerState> {
    let s: CrunStatus = serde_json::from_slice(bytes).ok()?;
    let cgroup = s.cgroup_path.as_deref().filter(|c| !c.is_empty()).and_then(|c| {
        if c.starts_with(CGROUP_MOUNT) {
            strip_v2_mount(c)
        } else if c.starts_with('/') {
            Some(c.to_owned())
        } else {
            Some(format!("/{c}"))
        }
    });
    Some(ContainerState {
        id: dir_name.to_owned(),
        format: Format::Crun,
        init_pid: pid(s.pid),
        init_start: s.process_start_time.as_ref().and_then(number).filter(|&n| n != 0),
        cgroup,
        bundle: s.bundle.filter(|b| !b.is_empty()),
        created: s.created.filter(|c| is_rfc3339(c)),
        labels: Vec::new(),
        dir: dir.to_path_buf(),
        recorded: None,
        sandbox: None,
    })
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RunscState {
    id: Option<String>,
    bundle_dir: Option<String>,
    created_at: Option<String>,
    status: Option<String>,
    gofer_pid: Option<i64>,
    sandbox: Option<RunscSandbox>,
    spec: Option<BundleConfig>,
}

#[derive(Deserialize)]
struct RunscSandbox {
    id: Option<String>,
    pid: Option<i64>,
    cgroup: Option<RunscCgroup>,
}

#[derive(Deserialize)]
struct RunscCgroup {
    cgroupv1: Option<RunscCgroupV1>,
    cgroupv2: Option<RunscCgroupV2>,
}

#[derive(Deserialize)]
struct RunscCgroupV1 {
    name: Option<String>,
}

#[derive(Deserialize)]
struct RunscCgroupV2 {
    path: Option<String>,
}

fn parse_runsc(bytes: &[u8], dir: &Path) -> Option<ContainerState> {
    let s: RunscState = serde_json::from_slice(bytes).ok()?;
    let id = s.id.filter(|i| !i.is_empty())?;
    let sandbox = s.sandbox?;
    let cgroup = sandbox.cgroup.as_ref().and_then(|c| {
        let path = c
            .cgroupv1
            .as_ref()
            .and_then(|v1| v1.name.clone())
            .or_else(|| c.cgroupv2.as_ref().and_then(|v2| v2.path.clone()))?;
        let path = path.trim_end_matches('/');
        Some(if path.starts_with('/') { path.to_owned() } else { format!("/{path}") })
    });
    let recorded = match s.status.as_deref() {
        Some("created") => Some(Status::Created),
        Some("running") => Some(Status::Running),
        Some("paused") => Some(Status::Paused),
        Some("stopped") => Some(Status::Stopped),
        _ => None,
    };
    Some(ContainerState {
        format: Format::Runsc,
        init_pid: pid(sandbox.pid),
        init_start: None,
        cgroup: cgroup.filter(|c| c != "/"),
        bundle: s.bundle_dir.filter(|b| !b.is_empty()),
        created: s.created_at.filter(|c| is_rfc3339(c)),
        labels: s.spec.and_then(|c| c.annotations).unwrap_or_default().into_iter().collect(),
        dir: dir.with_file_name(&id),
        recorded,
        sandbox: Some(Sandbox { id: sandbox.id.unwrap_or_else(|| id.clone()), gofer_pid: pid(s.gofer_pid) }),
        id,
    })
}

/// A pid as recorded: positive, and within `pid_t`.
fn pid(p: Option<i64>) -> Option<u32> {
    p.filter(|&p| p > 0 && p <= i64::from(i32::MAX)).map(|p| p as u32)
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

/// The v1 controllers to take a container's path from, in the order k2i picks a process's
/// cgroup from `/proc/PID/cgroup` (`pick_cgroup`), so the two agree.
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
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    /// A runc `state.json` shaped like the ones runc 1.1 writes on a hybrid host
    /// (trimmed: runc writes the whole libcontainer config).
    fn runc_state(id: &str, pid: u32, start: u64, cgroup: &str) -> String {
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
                "labels": [format!("bundle=/srv/{id}"), "dcos.name=web-frontend", "note=a=b"],
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

    fn proc_stat(pid: u32, state: char, start: u64) -> String {
        format!("{pid} (sh (x) y) {state} 1 {pid} {pid} 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 1 0 {start} 1000 10 0\n")
    }

    #[test]
    fn reads_runc_state() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("runc");
        write(&root.join("web/state.json"), &runc_state("web", 4242, 38578, "/dcos/web"));
        let s = read(&root, "web").expect("runc's state");
        let label = |k: &str, v: &str| (k.to_string(), v.to_string());
        assert_eq!(
            s,
            ContainerState {
                id: "web".into(),
                format: Format::Runc,
                init_pid: Some(4242),
                init_start: Some(38578),
                cgroup: Some("/dcos/web".into()),
                bundle: Some("/srv/web".into()),
                created: Some("2026-11-22T04:43:22.719428243Z".into()),
                labels: vec![
                    label("bundle", "/srv/web"),
                    label("dcos.name", "web-frontend"),
                    label("note", "a=b")
                ],
                dir: root.join("web"),
                recorded: None,
                sandbox: None,
            }
        );
        let annotations = s.annotations();
        assert_eq!(annotations.get("dcos.name").map(String::as_str), Some("web-frontend"));
        assert!(!annotations.contains_key("bundle"), "runc's own label is no annotation");
    }

    #[test]
    fn runc_cgroup_on_pure_v2_co_mounted_v1_and_systemd() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path();
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
            r#"{"config":{"cgroups":{"path":"","parent":"machine-dcos.slice","scope_prefix":"runc","name":"sd"}}}"#,
        );
        let cgroup = |id: &str| read(root, id).and_then(|s| s.cgroup);
        assert_eq!(cgroup("v2").as_deref(), Some("/system.slice/runc-v2.scope"));
        assert_eq!(cgroup("co").as_deref(), Some("/a/b"));
        assert_eq!(cgroup("sd").as_deref(), Some("/machine.slice/machine-dcos.slice/runc-sd.scope"));
        let sd = read(root, "sd").unwrap();
        assert_eq!((sd.id.as_str(), sd.init_pid), ("sd", None), "no id in the file: the directory's");
    }

    #[test]
    fn reads_crun_status_and_its_bundle_annotations() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("crun");
        let bundle = t.path().join("bundle");
        write(&bundle.join("config.json"), r#"{"ociVersion":"1.0.0","annotations":{"dcos.name":"api"}}"#);
        let status = serde_json::json!({
            "pid": 5151,
            "process-start-time": 99,
            "cgroup-path": "/system.slice/crun-c1.scope",
            "scope": "crun-c1.scope",
            "rootfs": "/x/rootfs",
            "systemd-cgroup": true,
            "bundle": bundle.to_str().unwrap(),
            "created": "2026-01-02T03:04:05Z",
            "detached": true,
        });
        write(&root.join("c1/status"), &status.to_string());
        write(
            &root.join("c2/status"),
            r#"{"pid":1,"cgroup-path":"dcos/c2","bundle":"/nowhere","created":"not a date"}"#,
        );
        let c1 = read(&root, "c1").unwrap();
        assert_eq!(
            c1,
            ContainerState {
                id: "c1".into(),
                format: Format::Crun,
                init_pid: Some(5151),
                init_start: Some(99),
                cgroup: Some("/system.slice/crun-c1.scope".into()),
                bundle: Some(bundle.to_str().unwrap().into()),
                created: Some("2026-01-02T03:04:05Z".into()),
                labels: Vec::new(),
                dir: root.join("c1"),
                recorded: None,
                sandbox: None,
            }
        );
        assert_eq!(c1.annotations().get("dcos.name").map(String::as_str), Some("api"));
        let c2 = read(&root, "c2").unwrap();
        assert_eq!((c2.cgroup.as_deref(), c2.created.as_deref()), (Some("/dcos/c2"), None));
        assert!(c2.annotations().is_empty(), "no bundle to read");
    }

    /// A runsc state file shaped like the ones runsc (release 20221219) writes on a v1 host
    /// (trimmed: runsc keeps the whole spec).
    fn runsc_state(id: &str, sandbox_pid: u32, gofer_pid: u32, status: &str) -> String {
        serde_json::json!({
            "id": id,
            "bundleDir": format!("/srv/{id}"),
            "createdAt": "2026-12-06T23:01:48.175200811Z",
            "owner": "",
            "status": status,
            "goferPid": gofer_pid,
            "sandbox": {
                "id": id,
                "pid": sandbox_pid,
                "cgroup": {"cgroupv1": {"name": format!("/dcos/h-1/{id}"), "parents": null, "own": {"memory": true}}},
                "originalOomScoreAdj": 0
            },
            "spec": {"ociVersion": "1.0.2-dev", "annotations": {"dcos.name": id, "dcos.service": "api"}},
            "saver": {"rootDir": "/x", "id": {"sandboxId": id, "containerId": id}}
        })
        .to_string()
    }

    #[test]
    fn reads_runsc_state_beside_the_others_and_tells_its_sandbox_from_a_reused_pid() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("runsc");
        let proc_root = t.path().join("proc");
        write(&root.join("web_sandbox:web.state"), &runsc_state("web", 300, 299, "running"));
        write(&root.join("web_sandbox:web.lock"), "");
        write(&root.join("db_sandbox:db.state"), &runsc_state("db", 400, 399, "paused"));
        let mut ids = ids(&root);
        ids.sort();
        assert_eq!(ids, ["db", "web"], "the lock files are no containers");
        assert!(has_state(&root, "web") && !has_state(&root, "api"));
        let web = read(&root, "web").expect("runsc's state");
        assert_eq!(web.format, Format::Runsc);
        assert_eq!((web.id.as_str(), web.init_pid, web.init_start), ("web", Some(300), None));
        assert_eq!(web.cgroup.as_deref(), Some("/dcos/h-1/web"));
        assert_eq!((web.bundle.as_deref(), web.created.is_some()), (Some("/srv/web"), true));
        assert_eq!(web.sandbox, Some(Sandbox { id: "web".into(), gofer_pid: Some(299) }));
        assert_eq!(web.annotations().get("dcos.service").map(String::as_str), Some("api"));
        let thawed = |_: &str| false;
        assert_eq!(web.status(&proc_root, thawed), Status::Stopped, "no sandbox process");
        write(&proc_root.join("300/stat"), &proc_stat(300, 'S', 7));
        write(&proc_root.join("300/cmdline"), "runsc-sandbox\0--root=/x\0boot\0web\0");
        assert_eq!(web.status(&proc_root, thawed), Status::Running);
        assert_eq!(liveness(&root, &proc_root, "web"), Liveness::Running(300));
        let db = read(&root, "db").unwrap();
        write(&proc_root.join("400/stat"), &proc_stat(400, 'S', 7));
        assert_eq!(db.status(&proc_root, thawed), Status::Paused, "runsc's own pause, not the freezer's");
        write(&proc_root.join("300/cmdline"), "sh\0-c\0web\0");
        assert_eq!(web.status(&proc_root, thawed), Status::Stopped, "the pid now runs something else");
        assert_eq!(liveness(&root, &proc_root, "web"), Liveness::Stopped);
        write(&proc_root.join("300/cmdline"), "runsc-sandbox\0boot\0other\0");
        assert_eq!(liveness(&root, &proc_root, "web"), Liveness::Stopped, "another sandbox");
        // Found from a root's entries as k2i scans them.
        assert_eq!(Format::of_entry(&root, "web_sandbox:web.state").map(|(f, _)| f), Some(Format::Runsc));
        assert_eq!(Format::of_entry(&root, "web_sandbox:web.lock"), None);
    }

    #[test]
    fn cut_short_or_wrongly_typed_state_is_no_state() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path();
        write(&root.join("half/state.json"), &runc_state("half", 1, 1, "/x")[..200]);
        write(&root.join("empty/state.json"), "");
        write(&root.join("wrongtype/state.json"), r#"{"id":"w","init_process_pid":"lots"}"#);
        write(&root.join("array/status"), "[1,2,3]");
        write(&root.join("other/config.json"), "{}");
        write(&root.join("negative/status"), r#"{"pid":-5}"#);
        write(&root.join("huge/status"), r#"{"pid":4294967297}"#);
        for id in ["half", "empty", "wrongtype", "array", "other", "missing"] {
            assert_eq!(read(root, id), None, "{id}");
            assert_eq!(liveness(root, crate::proc_root(), id), Liveness::Unknown, "{id}");
        }
        assert_eq!(read(root, "negative").unwrap().init_pid, None);
        assert_eq!(read(root, "huge").unwrap().init_pid, None, "beyond pid_t");
    }

    #[test]
    fn status_from_a_fake_proc_exec_fifo_and_the_freezer() {
        let t = tempfile::tempdir().unwrap();
        let proc_root = t.path().join("proc");
        let root = t.path().join("runc");
        write(&root.join("web/state.json"), &runc_state("web", 100, 555, "/dcos/web"));
        let c = read(&root, "web").unwrap();
        let thawed = |_: &str| false;

        assert_eq!(c.status(&proc_root, thawed), Status::Stopped, "no such pid");
        assert_eq!(liveness(&root, &proc_root, "web"), Liveness::Stopped);

        write(&proc_root.join("100/stat"), &proc_stat(100, 'S', 555));
        assert_eq!(c.status(&proc_root, thawed), Status::Running);
        assert_eq!(liveness(&root, &proc_root, "web"), Liveness::Running(100));
        assert_eq!(c.status(&proc_root, |cg| cg == "/dcos/web"), Status::Paused);

        write(&root.join("web/exec.fifo"), "");
        assert_eq!(c.status(&proc_root, thawed), Status::Created);
        std::fs::remove_file(root.join("web/exec.fifo")).unwrap();

        write(&proc_root.join("100/stat"), &proc_stat(100, 'S', 556));
        assert_eq!(c.status(&proc_root, thawed), Status::Stopped, "pid reused by another process");
        assert_eq!(liveness(&root, &proc_root, "web"), Liveness::Stopped);

        write(&proc_root.join("100/stat"), &proc_stat(100, 'Z', 555));
        assert_eq!(c.status(&proc_root, thawed), Status::Stopped, "zombie init");

        // Only the directory: alive, nothing more to check.
        std::fs::remove_file(proc_root.join("100/stat")).unwrap();
        assert_eq!(c.status(&proc_root, thawed), Status::Running);
    }

    #[test]
    fn a_real_init_is_running_until_it_ends() {
        let t = tempfile::tempdir().unwrap();
        let proc_root = crate::proc_root();
        let mut init = std::process::Command::new("sleep").arg("30").spawn().unwrap();
        let pid = init.id();
        let start = process::start_time(proc_root, pid).unwrap();
        write(
            &t.path().join("r/state.json"),
            &format!(r#"{{"init_process_pid":{pid},"init_process_start":{start}}}"#),
        );
        write(&t.path().join("c/status"), &format!(r#"{{"pid":{pid},"process-start-time":{start}}}"#));
        write(&t.path().join("n/status"), &format!(r#"{{"pid":{pid}}}"#));
        for id in ["r", "c", "n"] {
            assert_eq!(liveness(t.path(), proc_root, id), Liveness::Running(pid), "{id}");
        }
        init.kill().unwrap();
        init.wait().unwrap();
        for id in ["r", "c", "n"] {
            assert_eq!(liveness(t.path(), proc_root, id), Liveness::Stopped, "{id}");
        }
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
