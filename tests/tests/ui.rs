//! `dcos ui` in a real headless browser (Debian's chromium, `--dump-dom` once the page's
//! scripts have run) against two network-namespace hosts running k2i and middlecon with a
//! busybox workload: the page shows the hosts with their load, the fleet's top processes,
//! the workload and its container; `#host=NAME` shows that host's processes; a migration
//! started the way the page starts it moves the workload and shows its progress. The API
//! refuses a browser without this run's secret, a foreign `Host`, a `POST` from another
//! origin, and a migration asked by a viewer (whose page has no migrate form).

use dcos_core::tls::TlsFiles;
use dcos_core::Role;
use dcos_tests::eventually;
use dcos_tests::workload_mesh::Mesh;
use serde_json::Value;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running `dcos ui`; killed when dropped.
struct Page {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    base: String,
    secret: String,
}

impl Page {
    fn start(inventory: &Path, tls: &TlsFiles) -> Page {
        let mut child = Command::new(dcos_tests::bin("dcos"))
            .args(["ui", "--listen", "127.0.0.1:0", "--inventory"])
            .arg(inventory)
            .args(tls.flags())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("dcos ui starts");
        let out = child.stdout.take().unwrap();
        let line = dcos_localfleet::first_line(out, Duration::from_secs(10)).expect("dcos ui prints its URL");
        let url = line.rsplit(' ').next().unwrap().to_string();
        let (base, secret) = url.split_once("/?token=").expect("a URL with the secret");
        Page { child, base: base.into(), secret: secret.into() }
    }

    fn url(&self, fragment: &str) -> String {
        format!("{}/?token={}{fragment}", self.base, self.secret)
    }

    /// `curl` on the page's API as the page calls it (its cookie), plus `extra`.
    fn api(&self, path: &str, extra: &[&str]) -> (u16, Value) {
        let out = Command::new("curl")
            .args(["-sS", "--max-time", "10", "-w", "\n%{http_code}", "-H"])
            .arg(format!("Cookie: dcos_ui={}", self.secret))
            .args(extra)
            .arg(format!("{}{path}", self.base))
            .output()
            .expect("curl runs");
        let text = String::from_utf8_lossy(&out.stdout);
        let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
        (code.trim().parse().unwrap_or(0), serde_json::from_str(body).unwrap_or(Value::Null))
    }

    fn post_migrate(&self, name: &str, to: &str) -> (u16, Value) {
        let origin = format!("Origin: {}", self.base);
        let body = format!(r#"{{"name":"{name}","to":"{to}"}}"#);
        self.api("/api/migrate", &["-H", &origin, "-H", "Content-Type: application/json", "--data", &body])
    }
}

impl Drop for Page {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The page's DOM after its scripts ran for `budget_ms` of (virtual) time.
fn browse(url: &str, budget_ms: u32) -> String {
    let profile = tempfile::tempdir().unwrap();
    let out = Command::new("chromium")
        .args(["--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run"])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(format!("--virtual-time-budget={budget_ms}"))
        .args(["--dump-dom", url])
        .stderr(Stdio::null())
        .output()
        .expect("chromium runs (scripts/setup.sh installs it)");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// With `DCOS_UI_SCREENSHOTS=DIR`, a picture of the page at `url` in `DIR/name` (for docs).
fn screenshot(url: &str, name: &str) {
    let Some(dir) = std::env::var_os("DCOS_UI_SCREENSHOTS") else { return };
    let profile = tempfile::tempdir().unwrap();
    let shot = Command::new("chromium")
        .args([
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--window-size=1400,1000",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(["--virtual-time-budget=4000"])
        .arg(format!("--screenshot={}", Path::new(&dir).join(name).display()))
        .arg(url)
        .stderr(Stdio::null())
        .output()
        .unwrap();
    assert!(shot.status.success(), "the screenshot {name}");
}

/// The text of the table `id` in `dom` (tags stripped), one line per row.
fn table(dom: &str, id: &str) -> String {
    let start = dom.find(&format!("<table id=\"{id}\"")).unwrap_or_else(|| panic!("no table {id}"));
    let end = start + dom[start..].find("</table>").unwrap();
    let mut text = String::new();
    let mut in_tag = false;
    for c in dom[start..end].replace("</tr>", "\n").replace("</td>", " ").chars() {
        match c {
            '<' => in_tag = true,
            '>' => in_tag = false,
            c if !in_tag => text.push(c),
            _ => {}
        }
    }
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_shows_the_fleet_a_host_and_moves_a_workload() {
    let mesh = Mesh::new(2);
    let _k2i: Vec<_> = (0..2).map(|i| mesh.k2i(i)).collect();
    mesh.run(0, "web", "while true; do sleep 1; done").await;
    let inventory = mesh.pki.dir.path().join("fleet.toml");
    let hosts: String = mesh
        .fleet
        .hosts()
        .iter()
        .map(|h| {
            format!(
                "[[host]]\nname = \"{}\"\ndc = \"dc-a\"\nk2i = \"{}\"\napi = \"{}\"\n",
                h.name,
                h.k2i_url(),
                h.api_addr()
            )
        })
        .collect();
    std::fs::write(&inventory, hosts).unwrap();
    let page = Page::start(&inventory, &mesh.pki.files("admin"));

    // The fleet page: both hosts with their load, the workload and its container, top processes.
    let dom = browse(&page.url(""), 4000);
    let hosts = table(&dom, "hosts");
    for h in ["host-0", "host-1"] {
        let row = hosts.lines().find(|l| l.starts_with(h)).unwrap_or_else(|| panic!("{h} not in:\n{hosts}"));
        assert!(row.contains(" default ok "), "{row}");
    }
    let workloads = table(&dom, "workloads");
    assert!(workloads.lines().any(|l| l.starts_with("web host-0 runc running")), "{workloads}");
    let containers = table(&dom, "containers");
    assert!(containers.lines().any(|l| l.starts_with("host-0 web runc")), "{containers}");
    assert!(
        table(&dom, "top").lines().filter(|l| l.starts_with("host-")).count() >= 2,
        "{}",
        table(&dom, "top")
    );
    assert!(dom.contains("2/2 hosts answering"), "the summary line");
    assert!(dom.contains("admin (admin)"), "who is looking");
    assert!(dom.contains(r#"<form id="migrate">"#), "an admin gets the migrate form");

    // One host's processes: the workload's shell is among host-0's.
    let dom = browse(&page.url("#host=host-0"), 3000);
    let procs = table(&dom, "procs");
    assert!(procs.contains("sh -c while true; do sleep 1; done"), "{procs}");
    assert!(dom.contains(r#"<main id="fleet-view" hidden="">"#), "the host view replaces the fleet view");

    // A migration, asked as the page asks; its progress, then the workload on host-1.
    let asked = Instant::now();
    let (code, said) = page.post_migrate("web", "host-1");
    assert_eq!(code, 202, "{said}");
    let done = eventually(Duration::from_secs(30), "the migration done", || async {
        let (_, m) = page.api("/api/migrations", &[]);
        let m = m["migrations"][0].clone();
        (m["status"] != "running").then_some(m)
    })
    .await;
    assert_eq!(done["status"], "done", "{done}");
    eprintln!("migration through dcos ui: {:?}, downtime {} ms", asked.elapsed(), done["downtime_ms"]);
    let dom = browse(&page.url(""), 4000);
    let migrations = table(&dom, "migrations");
    assert!(migrations.lines().any(|l| l.starts_with("web host-0 host-1 done")), "{migrations}");
    assert!(table(&dom, "workloads").lines().any(|l| l.starts_with("web host-1 runc running")));
    screenshot(&page.url(""), "ui-fleet.png");
    screenshot(&page.url("#host=host-1"), "ui-host.png");

    // What the API refuses.
    let bare = Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", &format!("{}/api/fleet", page.base)])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&bare.stdout), "401", "no secret, no fleet");
    assert_eq!(page.api("/api/fleet", &["-H", "Host: evil.example:7450"]).0, 403, "a foreign Host");
    let json = ["-H", "Content-Type: application/json", "--data", r#"{"name":"web","to":"host-0"}"#];
    assert_eq!(page.api("/api/migrate", &json).0, 403, "a POST without this page's origin");
    let viewer = Page::start(&inventory, &mesh.pki.issue("watcher", Role::Viewer));
    let (code, said) = viewer.post_migrate("web", "host-0");
    assert_eq!(code, 403, "{said}");
    assert!(said["error"].as_str().unwrap_or_default().contains("viewer"), "{said}");
    let dom = browse(&viewer.url(""), 3000);
    assert!(dom.contains(r#"<form id="migrate" hidden="">"#), "a viewer's page has no migrate form");
}
