//! Recognizing a container from a cgroup path alone: the naming conventions of docker,
//! containerd, Kubernetes, CRI-O, podman, runc/crun (systemd driver) and systemd units,
//! in both their cgroupfs-driver (v1 style) and systemd-driver (`.slice`/`.scope`) forms.
//!
//! The path is read from its deepest component upwards and the first component that
//! names a container wins, so sub-cgroups a runtime creates below a container (podman's
//! `libpod-ID.scope/container`, nested docker) are attributed to the right one.

use dcos_core::model::Runtime;

/// A container recognized from a cgroup path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Detected {
    pub id: String,
    pub runtime: Runtime,
    pub name: String,
    /// Kubernetes pod UID (with dashes) when the path runs through a pod cgroup.
    pub pod_uid: Option<String>,
}

/// Recognizes the container a cgroup path belongs to; `None` when the path names none.
pub fn classify(path: &str) -> Option<Detected> {
    classify_with_root(path).map(|(d, _)| d)
}

/// Like [`classify`], also answering the container's own cgroup: the prefix of `path`
/// ending at the recognized component (`/machine.slice/libpod-ID.scope` for
/// `/machine.slice/libpod-ID.scope/container`).
pub fn classify_with_root(path: &str) -> Option<(Detected, &str)> {
    // (start, end) byte offsets of the non-empty components.
    let mut comps: Vec<(usize, usize)> = Vec::with_capacity(8);
    let mut start = 0;
    for (i, b) in path.bytes().enumerate() {
        if b == b'/' {
            if i > start {
                comps.push((start, i));
            }
            start = i + 1;
        }
    }
    if path.len() > start {
        comps.push((start, path.len()));
    }
    let comp = |i: usize| &path[comps[i].0..comps[i].1];

    for i in (0..comps.len()).rev() {
        let c = comp(i);
        let parent = if i > 0 { Some(comp(i - 1)) } else { None };
        let root = &path[..comps[i].1];
        match component(c, parent) {
            Component::Container(runtime, id) => {
                let pod_uid = (0..i).rev().find_map(|j| pod_component(comp(j), (j > 0).then(|| comp(j - 1))));
                let name = match runtime {
                    Runtime::Runc | Runtime::Crun => id.to_string(),
                    _ => short_id(id).to_string(),
                };
                let d = Detected { id: id.to_string(), runtime, name, pod_uid };
                return Some((d, root));
            }
            Component::Pod(uid) => {
                let d = Detected {
                    id: uid.clone(),
                    runtime: Runtime::Kubernetes,
                    name: uid.clone(),
                    pod_uid: Some(uid),
                };
                return Some((d, root));
            }
            Component::Unit => {
                let managed = (0..i).any(|j| {
                    let a = comp(j);
                    a == "system.slice" || is_user_manager(a)
                });
                if managed {
                    let d = Detected {
                        id: c.to_string(),
                        runtime: Runtime::Systemd,
                        name: c.to_string(),
                        pod_uid: None,
                    };
                    return Some((d, root));
                }
            }
            Component::BareId(id) => {
                // cgroupfs-driver kubelet: the path does not say which CRI runtime made
                // the container; containerd is by far the most common one.
                let pod_uid = parent.and_then(|p| pod_component(p, (i > 1).then(|| comp(i - 2))));
                if let Some(uid) = pod_uid {
                    let d = Detected {
                        id: id.to_string(),
                        runtime: Runtime::Containerd,
                        name: short_id(id).to_string(),
                        pod_uid: Some(uid),
                    };
                    return Some((d, root));
                }
            }
            Component::NotAContainer => return None,
            Component::Other => {}
        }
    }
    None
}

enum Component<'a> {
    Container(Runtime, &'a str),
    Pod(String),
    /// A `.service` unit (a container only under a systemd manager's tree).
    Unit,
    /// A runtime's helper (conmon): its processes belong to no container.
    NotAContainer,
    /// A full container ID alone: a container when its parent is a pod cgroup.
    BareId(&'a str),
    Other,
}

fn component<'a>(c: &'a str, parent: Option<&str>) -> Component<'a> {
    if let Some(rest) = c.strip_suffix(".scope") {
        if let Some(found) = prefixed(rest, &SCOPE_PREFIXES) {
            return found;
        }
        for (prefix, runtime) in [("runc-", Runtime::Runc), ("crun-", Runtime::Crun)] {
            if let Some(id) = rest.strip_prefix(prefix).filter(|id| !id.is_empty()) {
                return Component::Container(runtime, id);
            }
        }
        return Component::Other;
    }
    if c.ends_with(".service") {
        return if is_user_manager(c) { Component::Other } else { Component::Unit };
    }
    if let Some(uid) = pod_component(c, parent) {
        return Component::Pod(uid);
    }
    // cgroupfs-driver forms: `crio-ID`, `libpod-ID`, and bare IDs under a known parent.
    if let Some(found) = prefixed(c, &CGROUPFS_PREFIXES) {
        return found;
    }
    if is_full_id(c) {
        return match parent {
            Some("docker") => Component::Container(Runtime::Docker, c),
            Some("k8s.io") => Component::Container(Runtime::Containerd, c),
            _ => Component::BareId(c),
        };
    }
    Component::Other
}

/// Systemd-driver scope names: `<prefix><64 hex>.scope`.
const SCOPE_PREFIXES: [(&str, Runtime); 5] = [
    ("docker-", Runtime::Docker),
    ("cri-containerd-", Runtime::Containerd),
    ("nerdctl-", Runtime::Containerd),
    ("crio-", Runtime::CriO),
    ("libpod-", Runtime::Podman),
];

/// Cgroupfs-driver names: `<prefix><64 hex>`.
const CGROUPFS_PREFIXES: [(&str, Runtime); 2] = [("crio-", Runtime::CriO), ("libpod-", Runtime::Podman)];

fn prefixed<'a>(name: &'a str, table: &[(&str, Runtime)]) -> Option<Component<'a>> {
    for &(prefix, runtime) in table {
        let Some(id) = name.strip_prefix(prefix) else {
            continue;
        };
        if id.starts_with("conmon-") {
            return Some(Component::NotAContainer);
        }
        // podman's `--cgroups=split` payload cgroup (quadlet units).
        let id = match runtime {
            Runtime::Podman => id.strip_prefix("payload-").unwrap_or(id),
            _ => id,
        };
        if is_full_id(id) {
            return Some(Component::Container(runtime, id));
        }
    }
    None
}

/// `pod<uid>` below `kubepods` (or a QoS level of it), or the systemd-driver slice
/// `kubepods[-<qos>]-pod<uid_with_underscores>.slice`. Answers the UID with dashes.
fn pod_component(c: &str, parent: Option<&str>) -> Option<String> {
    if let Some(inner) = c.strip_prefix("kubepods-").and_then(|s| s.strip_suffix(".slice")) {
        let at = inner.rfind("pod")?;
        let qos = &inner[..at];
        if !(qos.is_empty() || qos == "besteffort-" || qos == "burstable-" || qos == "guaranteed-") {
            return None;
        }
        return pod_uid(&inner[at + 3..]);
    }
    let uid = c.strip_prefix("pod")?;
    match parent {
        Some("kubepods" | "besteffort" | "burstable" | "guaranteed") => pod_uid(uid),
        _ => None,
    }
}

/// A pod UID: 32 hex digits, as a UUID with dashes (or underscores, systemd-escaped),
/// or bare (static pods). Normalized to dashes.
fn pod_uid(s: &str) -> Option<String> {
    let mut hex = 0;
    for b in s.bytes() {
        match b {
            b'0'..=b'9' | b'a'..=b'f' => hex += 1,
            b'-' | b'_' => {}
            _ => return None,
        }
    }
    if hex != 32 || s.len() > 36 {
        return None;
    }
    Some(s.replace('_', "-"))
}

/// `user@UID.service`: a user's systemd manager, not a service of its own.
fn is_user_manager(c: &str) -> bool {
    c.starts_with("user@") && c.ends_with(".service")
}

/// A full 64-digit lowercase hex container ID (docker, containerd, CRI-O, podman).
fn is_full_id(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn short_id(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "3f4e5d6c7b8a99887766554433221100ffeeddccbbaa00112233445566778899";
    const SHORT: &str = "3f4e5d6c7b8a";
    const UID: &str = "0a1b2c3d-4e5f-6789-abcd-ef0123456789";
    const UID_: &str = "0a1b2c3d_4e5f_6789_abcd_ef0123456789";

    fn expect(path: &str, id: &str, runtime: Runtime, name: &str, pod: Option<&str>) {
        let d = classify(path).unwrap_or_else(|| panic!("{path}: not recognized"));
        assert_eq!(d.id, id, "{path}: id");
        assert_eq!(d.runtime, runtime, "{path}: runtime");
        assert_eq!(d.name, name, "{path}: name");
        assert_eq!(d.pod_uid.as_deref(), pod, "{path}: pod uid");
    }

    #[test]
    fn docker() {
        for path in [
            format!("/docker/{ID}"),
            format!("/system.slice/docker-{ID}.scope"),
            // docker in docker: the innermost container.
            format!("/docker/{}/docker/{ID}", "1".repeat(64)),
        ] {
            expect(&path, ID, Runtime::Docker, SHORT, None);
        }
    }

    #[test]
    fn containerd() {
        for path in [
            format!("/system.slice/cri-containerd-{ID}.scope"),
            format!("/system.slice/nerdctl-{ID}.scope"),
            format!("/k8s.io/{ID}"),
        ] {
            expect(&path, ID, Runtime::Containerd, SHORT, None);
        }
    }

    #[test]
    fn kubernetes_containers_cgroupfs_v1_and_v2() {
        for qos in ["burstable/", "besteffort/", ""] {
            let path = format!("/kubepods/{qos}pod{UID}/{ID}");
            expect(&path, ID, Runtime::Containerd, SHORT, Some(UID));
            let path = format!("/kubepods/{qos}pod{UID}/crio-{ID}");
            expect(&path, ID, Runtime::CriO, SHORT, Some(UID));
        }
    }

    #[test]
    fn kubernetes_containers_systemd_driver() {
        for (runtime_prefix, runtime) in
            [("cri-containerd", Runtime::Containerd), ("crio", Runtime::CriO), ("docker", Runtime::Docker)]
        {
            for qos in ["burstable", "besteffort"] {
                let path = format!(
                    "/kubepods.slice/kubepods-{qos}.slice/kubepods-{qos}-pod{UID_}.slice/{runtime_prefix}-{ID}.scope"
                );
                expect(&path, ID, runtime, SHORT, Some(UID));
            }
            // Guaranteed pods sit directly below kubepods.slice.
            let path = format!("/kubepods.slice/kubepods-pod{UID_}.slice/{runtime_prefix}-{ID}.scope");
            expect(&path, ID, runtime, SHORT, Some(UID));
        }
    }

    #[test]
    fn kubernetes_pod_cgroup_itself() {
        for path in [
            format!("/kubepods/burstable/pod{UID}"),
            format!("/kubepods/pod{UID}"),
            format!("/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{UID_}.slice"),
            format!("/kubepods.slice/kubepods-pod{UID_}.slice"),
        ] {
            expect(&path, UID, Runtime::Kubernetes, UID, Some(UID));
        }
        // A static pod's UID is a bare hash.
        let static_uid = "6a8b1c2d3e4f5a6b7c8d9e0f1a2b3c4d";
        expect(
            &format!("/kubepods/besteffort/pod{static_uid}"),
            static_uid,
            Runtime::Kubernetes,
            static_uid,
            Some(static_uid),
        );
    }

    #[test]
    fn crio() {
        for path in [
            format!("/system.slice/crio-{ID}.scope"),
            format!("/crio-{ID}"),
            format!("/machine.slice/crio-{ID}.scope"),
        ] {
            expect(&path, ID, Runtime::CriO, SHORT, None);
        }
    }

    #[test]
    fn podman() {
        for path in [
            format!("/machine.slice/libpod-{ID}.scope"),
            format!("/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-{ID}.scope"),
            format!("/user.slice/user-1000.slice/user@1000.service/app.slice/libpod-{ID}.scope"),
            format!("/libpod_parent/libpod-{ID}"),
            // v2 sub-cgroups below the container's scope.
            format!("/machine.slice/libpod-{ID}.scope/container"),
            format!("/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-{ID}.scope/container"),
            format!("/system.slice/myapp.service/libpod-payload-{ID}"),
        ] {
            expect(&path, ID, Runtime::Podman, SHORT, None);
        }
    }

    #[test]
    fn runc_and_crun_systemd_driver() {
        expect("/system.slice/runc-web.scope", "web", Runtime::Runc, "web", None);
        expect("/machine.slice/crun-api-1.scope", "api-1", Runtime::Crun, "api-1", None);
        expect("/user.slice/user-1000.slice/user@1000.service/runc-x.scope", "x", Runtime::Runc, "x", None);
    }

    #[test]
    fn systemd_units() {
        for (path, unit) in [
            ("/system.slice/nginx.service", "nginx.service"),
            ("/system.slice/system-getty.slice/getty@tty1.service", "getty@tty1.service"),
            ("/user.slice/user-1000.slice/user@1000.service/app.slice/pipewire.service", "pipewire.service"),
            ("/user.slice/user-1000.slice/user@1000.service/dbus.service", "dbus.service"),
            // A process in a sub-cgroup of a unit (delegation) belongs to the unit.
            ("/system.slice/containerd.service/sub", "containerd.service"),
        ] {
            expect(path, unit, Runtime::Systemd, unit, None);
        }
    }

    #[test]
    fn roots_are_the_recognized_component() {
        let path = format!("/machine.slice/libpod-{ID}.scope/container");
        let (_, root) = classify_with_root(&path).unwrap();
        assert_eq!(root, format!("/machine.slice/libpod-{ID}.scope"));
        let (_, root) = classify_with_root("/system.slice/nginx.service").unwrap();
        assert_eq!(root, "/system.slice/nginx.service");
        let path = format!("/kubepods/pod{UID}/{ID}");
        assert_eq!(classify_with_root(&path).unwrap().1, path);
    }

    #[test]
    fn not_containers() {
        let not = [
            "/".to_string(),
            String::new(),
            "/init.scope".into(),
            "/user.slice/user-1000.slice/session-3.scope".into(),
            "/user.slice/user-1000.slice/user@1000.service".into(),
            "/user.slice/user-1000.slice/user@1000.service/init.scope".into(),
            "/user.slice/user-1000.slice".into(),
            "/system.slice".into(),
            "/machine.slice".into(),
            "/kubepods.slice/kubepods-burstable.slice".into(),
            "/kubepods/burstable".into(),
            "/process_api/989171cb3c3fbba5d4940bcf0cac050c".into(),
            "/dcos/web".into(),
            "/some/random/path".into(),
            // Units outside a systemd manager's tree.
            "/nginx.service".into(),
            "/foo/bar.service".into(),
            // Conmon is not a container, even inside a pod.
            format!("/system.slice/crio-conmon-{ID}.scope"),
            format!("/kubepods.slice/kubepods-pod{UID_}.slice/crio-conmon-{ID}.scope"),
            format!("/kubepods/burstable/pod{UID}/crio-conmon-{ID}"),
            format!("/machine.slice/libpod-conmon-{ID}.scope"),
            format!("/libpod_parent/libpod-conmon-{ID}"),
            // Truncated or malformed IDs.
            format!("/docker/{}", &ID[..63]),
            format!("/docker/{}", &ID[..12]),
            format!("/system.slice/docker-{}.scope", &ID[..40]),
            format!("/system.slice/docker-{}.scope", ID.to_uppercase()),
            format!("/system.slice/cri-containerd-{}z.scope", &ID[..63]),
            format!("/machine.slice/libpod-{}.scope", &ID[..20]),
            format!("/crio-{}", &ID[..10]),
            "/system.slice/runc-.scope".into(),
            // A bare ID under an unknown parent says nothing.
            format!("/elsewhere/{ID}"),
            format!("/{ID}"),
            // Not a pod: bad UID, or `pod` outside kubepods.
            "/kubepods/burstable/pod1234".into(),
            format!("/other/pod{UID}"),
            format!("/kubepods.slice/kubepods-weird-pod{UID_}.slice"),
        ];
        for path in not {
            assert_eq!(classify(&path), None, "{path}");
        }
    }
}
