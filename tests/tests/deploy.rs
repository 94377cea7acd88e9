//! The deployment files are valid for the tools that read them: the systemd units as the
//! package installs them pass `systemd-analyze verify` (on this machine's root with the
//! package laid over it, so the binaries and targets they name exist) and k2i's sandbox
//! scores OK in `systemd-analyze security`; the Kubernetes manifest passes
//! `kubernetes-validate --strict` (the API's JSON schemas, offline).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// `script` in a mount namespace of its own where `$ROOT` is this machine's root with the
/// package's files (extracted into `upper`) laid over it.
fn over_root(work: &Path, upper: &Path, script: &str) -> Output {
    let (root, ovl) = (work.join("root"), work.join("ovl"));
    std::fs::create_dir_all(&root).unwrap();
    std::fs::create_dir_all(&ovl).unwrap();
    let mount = format!(
        "mount -t overlay overlay -o lowerdir=/,upperdir={},workdir={} {} && ROOT={} && {script}",
        upper.display(),
        ovl.display(),
        root.display(),
        root.display()
    );
    Command::new("unshare").args(["--mount", "sh", "-c", &mount]).output().expect("unshare runs")
}

#[test]
fn the_packaged_units_verify_and_k2i_is_sandboxed() {
    let work = tempfile::Builder::new().prefix("dcos-units-").tempdir().unwrap();
    let bins = dcos_tests::bin("k2i").parent().unwrap().display().to_string();
    let out = Command::new(repo().join("scripts/package-deb.sh"))
        .args(["--bin-dir", &bins, "--fast", "--out"])
        .arg(work.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "package-deb: {}", text(&out));
    let deb = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let upper = work.path().join("upper");
    let x = Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&upper).output().unwrap();
    assert!(x.status.success(), "{}", text(&x));

    let units = "/lib/systemd/system/k2i.service /lib/systemd/system/middlecon.service";
    let verify = over_root(work.path(), &upper, &format!("systemd-analyze verify --root=$ROOT {units}"));
    assert!(verify.status.success() && text(&verify).trim().is_empty(), "{}", text(&verify));

    let security = over_root(
        work.path(),
        &upper,
        "systemd-analyze security --offline=yes --root=$ROOT k2i.service middlecon.service",
    );
    let report = text(&security);
    let score = |unit: &str| -> f64 {
        let line = format!("Overall exposure level for {unit}: ");
        let rest = report.split_once(&line).unwrap_or_else(|| panic!("no score for {unit}: {report}")).1;
        rest.split_whitespace().next().unwrap().parse().unwrap()
    };
    let (k2i, middlecon) = (score("k2i.service"), score("middlecon.service"));
    eprintln!("systemd-analyze security: k2i {k2i}, middlecon {middlecon}");
    assert!(k2i <= 3.0, "k2i's unit is less sandboxed than intended ({k2i}):\n{report}");
    assert!(middlecon < 9.0, "middlecon's unit lost its hardening ({middlecon}):\n{report}");
}

#[test]
fn the_kubernetes_manifest_matches_the_api_schemas() {
    let manifests: Vec<PathBuf> = std::fs::read_dir(repo().join("deploy/kubernetes"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    assert!(!manifests.is_empty());
    let out = Command::new("kubernetes-validate").args(["--strict", "--quiet"]).args(&manifests).output();
    let out = out.expect("kubernetes-validate is not installed (scripts/setup.sh installs it from PyPI)");
    assert!(out.status.success(), "{}", text(&out));
    // A DaemonSet that could not see the node's processes would validate too: check the point.
    let daemonset = std::fs::read_to_string(repo().join("deploy/kubernetes/k2i-daemonset.yaml")).unwrap();
    for needed in ["hostPID: true", "hostNetwork: true", "mountPath: /sys/fs/cgroup", "SYS_PTRACE"] {
        assert!(daemonset.contains(needed), "the DaemonSet lacks {needed}");
    }
}

#[test]
fn the_grafana_dashboard_is_well_formed() {
    let text = std::fs::read_to_string(repo().join("deploy/grafana/dcos-fleet.json")).unwrap();
    let d: serde_json::Value = serde_json::from_str(&text).expect("the dashboard is JSON");
    for key in ["uid", "title", "schemaVersion", "panels", "templating", "time"] {
        assert!(d.get(key).is_some(), "the dashboard lacks {key}");
    }
    let vars: Vec<(&str, &str)> = d["templating"]["list"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| (v["name"].as_str().unwrap(), v["type"].as_str().unwrap()))
        .collect();
    // Every `$name` / `${name}` used is a variable of the dashboard (or Grafana's own `$__`).
    for (i, _) in text.match_indices('$') {
        let rest = text[i + 1..].trim_start_matches('{');
        let name: String = rest.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
        assert!(name.starts_with("__") || vars.iter().any(|(v, _)| *v == name), "${name} is not a variable");
    }
    let panels = d["panels"].as_array().unwrap();
    let mut ids = std::collections::BTreeSet::new();
    let mut cells = std::collections::BTreeSet::new();
    for p in panels {
        assert!(ids.insert(p["id"].as_u64().unwrap()), "panel id {} twice", p["id"]);
        let g = &p["gridPos"];
        let (x, y, w, h) = (
            g["x"].as_u64().unwrap(),
            g["y"].as_u64().unwrap(),
            g["w"].as_u64().unwrap(),
            g["h"].as_u64().unwrap(),
        );
        assert!(x + w <= 24 && w > 0 && h > 0, "{}: gridPos {g}", p["title"]);
        for cell in (x..x + w).flat_map(|cx| (y..y + h).map(move |cy| (cx, cy))) {
            assert!(cells.insert(cell), "{} overlaps another panel at {cell:?}", p["title"]);
        }
        if p["type"] == "row" {
            continue;
        }
        // Each panel's data source is one of the dashboard's data-source variables.
        let uid = p["datasource"]["uid"].as_str().unwrap();
        let var = uid.trim_start_matches("${").trim_end_matches('}');
        assert!(vars.contains(&(var, "datasource")), "{}: data source {uid}", p["title"]);
        assert!(!p["targets"].as_array().unwrap().is_empty(), "{} has no query", p["title"]);
    }
    let types: std::collections::BTreeSet<&str> = panels.iter().filter_map(|p| p["type"].as_str()).collect();
    assert!(types.is_subset(&["row", "stat", "table", "timeseries"].into()), "{types:?}");
}
