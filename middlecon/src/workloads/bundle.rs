//! A workload's OCI bundle: `config.json` built with the `oci-spec` types from the
//! workload's [`Record`], and copying a tree (a root filesystem where no overlay can be made).
//!
//! The container shares the host's network namespace (middlecon sets up no container
//! networking), gets its own PID, mount, IPC, UTS and cgroup namespaces, a writable root
//! (the writable state a cold migration moves), and the cgroup `/dcos/<daemon>/<name>`,
//! where `<daemon>` is the host name and a hash of the state dir, so that several
//! middlecons on one machine (even of the same name) never share a cgroup.

use super::record::Record;
use oci_spec::runtime::{
    LinuxBuilder, LinuxCpuBuilder, LinuxMemoryBuilder, LinuxNamespaceType, LinuxResourcesBuilder, Spec,
};
use std::collections::HashMap;
use std::path::Path;

/// The annotation k2i reads a container's name from.
pub const NAME_ANNOTATION: &str = "dcos.name";
/// The annotation naming the service a container is an instance of.
pub const SERVICE_ANNOTATION: &str = "dcos.service";
/// CFS period used for `cpus` limits, in microseconds.
const CPU_PERIOD_US: u64 = 100_000;

/// Why a bundle could not be made.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error("building config.json: {0}")]
    Spec(String),
    #[error("{path}: {source}")]
    Io { path: String, source: std::io::Error },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> BundleError + '_ {
    move |source| BundleError::Io { path: path.display().to_string(), source }
}

/// A daemon's part of its workloads' cgroup paths: `<host>-<8 hex digits of the state dir's
/// SHA-256>`, unique among the middlecons of one machine.
pub fn daemon_id(host: &str, state_dir: &Path) -> String {
    use sha2::Digest;
    let safe: String =
        host.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' }).collect();
    let digest = sha2::Sha256::digest(state_dir.as_os_str().as_encoded_bytes());
    format!("{safe}-{}", hex::encode(&digest[..4]))
}

/// The OCI spec for `record` run by the daemon `daemon` ([`daemon_id`]).
pub fn spec(record: &Record, daemon: &str) -> Result<Spec, BundleError> {
    let e = |e: oci_spec::OciSpecError| BundleError::Spec(e.to_string());
    let mut spec = Spec::default();
    spec.set_hostname(Some(record.name.clone()));
    let mut annotations = HashMap::new();
    annotations.insert(NAME_ANNOTATION.to_string(), record.name.clone());
    if let Some(service) = &record.service {
        annotations.insert(SERVICE_ANNOTATION.to_string(), service.clone());
    }
    spec.set_annotations(Some(annotations));

    let mut process = spec.process().clone().unwrap_or_default();
    process.set_args(Some(record.command.clone()));
    let mut env = process.env().clone().unwrap_or_default();
    env.extend(record.env.iter().map(|(k, v)| format!("{k}={v}")));
    process.set_env(Some(env));
    spec.set_process(Some(process));

    let mut root = spec.root().clone().unwrap_or_default();
    root.set_readonly(Some(false));
    spec.set_root(Some(root));

    let defaults = spec.linux().clone().unwrap_or_default();
    let namespaces: Vec<_> = defaults
        .namespaces()
        .clone()
        .unwrap_or_default()
        .into_iter()
        .filter(|n| n.typ() != LinuxNamespaceType::Network)
        .collect();
    let mut resources = LinuxResourcesBuilder::default();
    if record.memory_bytes > 0 {
        resources = resources
            .memory(LinuxMemoryBuilder::default().limit(record.memory_bytes as i64).build().map_err(e)?);
    }
    if record.cpus > 0.0 {
        let quota = (record.cpus * CPU_PERIOD_US as f64).round().max(1000.0) as i64;
        resources =
            resources.cpu(LinuxCpuBuilder::default().quota(quota).period(CPU_PERIOD_US).build().map_err(e)?);
    }
    let linux = LinuxBuilder::default()
        .namespaces(namespaces)
        .masked_paths(defaults.masked_paths().clone().unwrap_or_default())
        .readonly_paths(defaults.readonly_paths().clone().unwrap_or_default())
        .cgroups_path(super::cgroup::path(daemon, &record.name))
        .resources(resources.build().map_err(e)?)
        .build()
        .map_err(e)?;
    spec.set_linux(Some(linux));
    Ok(spec)
}

/// Writes `bundle/config.json` for `record` run by `daemon`.
pub fn write_config(bundle: &Path, record: &Record, daemon: &str) -> Result<(), BundleError> {
    let path = bundle.join("config.json");
    spec(record, daemon)?.save(&path).map_err(|e| BundleError::Spec(format!("{}: {e}", path.display())))
}

/// Copies the tree at `from` to `to` (which must not exist): directories, regular files
/// and symbolic links with their permission bits; other file types are skipped.
pub fn copy_tree(from: &Path, to: &Path) -> Result<u64, BundleError> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::symlink_metadata(from).map_err(io(from))?;
    let mut bytes = 0;
    if meta.file_type().is_symlink() {
        let target = std::fs::read_link(from).map_err(io(from))?;
        std::os::unix::fs::symlink(target, to).map_err(io(to))?;
    } else if meta.is_dir() {
        std::fs::create_dir(to).map_err(io(to))?;
        for entry in std::fs::read_dir(from).map_err(io(from))? {
            let entry = entry.map_err(io(from))?;
            bytes += copy_tree(&entry.path(), &to.join(entry.file_name()))?;
        }
        std::fs::set_permissions(to, std::fs::Permissions::from_mode(meta.permissions().mode()))
            .map_err(io(to))?;
    } else if meta.is_file() {
        bytes += std::fs::copy(from, to).map_err(io(from))?;
    }
    Ok(bytes)
}

/// Bytes and entries under `dir` (not following links): the size of its archive, nearly.
pub fn tree_size(dir: &Path) -> (u64, u64) {
    let mut bytes = 0;
    let mut entries = 1;
    if let Ok(list) = std::fs::read_dir(dir) {
        for entry in list.flatten() {
            let Ok(meta) = entry.path().symlink_metadata() else { continue };
            if meta.is_dir() {
                let (b, n) = tree_size(&entry.path());
                bytes += b;
                entries += n;
            } else {
                bytes += meta.len();
                entries += 1;
            }
        }
    }
    (bytes, entries)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workloads::record::Phase;

    fn record() -> Record {
        Record {
            name: "web".into(),
            runtime: "runc".into(),
            command: vec!["sleep".into(), "60".into()],
            env: [("MODE".to_string(), "fast".to_string())].into(),
            memory_bytes: 32 << 20,
            cpus: 0.5,
            epoch: 0,
            started_unix_ms: 0,
            phase: Phase::Owned,
            service: None,
        }
    }

    #[test]
    fn the_spec_carries_command_env_limits_cgroup_and_name() {
        let id = daemon_id("host 1", Path::new("/var/lib/middlecon"));
        assert!(id.starts_with("host_1-") && id.len() == "host_1-".len() + 8, "{id}");
        assert_ne!(id, daemon_id("host 1", Path::new("/var/lib/other")));
        let s = spec(&record(), &id).unwrap();
        let v = serde_json::to_value(&s).unwrap();
        assert_eq!(v["process"]["args"], serde_json::json!(["sleep", "60"]));
        assert!(v["process"]["env"].as_array().unwrap().iter().any(|e| e == "MODE=fast"));
        assert_eq!(v["root"]["readonly"], false);
        assert_eq!(v["linux"]["cgroupsPath"], format!("/dcos/{id}/web"));
        assert_eq!(v["linux"]["resources"]["memory"]["limit"], 32 << 20);
        assert_eq!(v["linux"]["resources"]["cpu"]["quota"], 50_000);
        assert_eq!(v["annotations"][NAME_ANNOTATION], "web");
        let ns: Vec<&str> = v["linux"]["namespaces"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["type"].as_str().unwrap())
            .collect();
        assert!(ns.contains(&"pid") && !ns.contains(&"network"), "{ns:?}");
    }

    #[test]
    fn a_tree_is_copied_with_links_and_modes() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let src = d.path().join("src");
        std::fs::create_dir_all(src.join("bin")).unwrap();
        std::fs::write(src.join("bin/tool"), b"#!x").unwrap();
        std::fs::set_permissions(src.join("bin/tool"), std::fs::Permissions::from_mode(0o755)).unwrap();
        std::os::unix::fs::symlink("tool", src.join("bin/alias")).unwrap();
        let dst = d.path().join("dst");
        assert_eq!(copy_tree(&src, &dst).unwrap(), 3);
        assert_eq!(std::fs::read_link(dst.join("bin/alias")).unwrap(), Path::new("tool"));
        let mode = std::fs::metadata(dst.join("bin/tool")).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o755);
        assert_eq!(tree_size(&src).0, 3 + "tool".len() as u64);
    }
}
