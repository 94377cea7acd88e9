//! Prometheus discovers the fleet from one member: middlecon's `GET /v1/sd/k2i` (SPEC
//! section 9) on three real hosts (network namespaces) running k2i and middlecon, read with
//! a viewer certificate and refused without one; then a real Prometheus (Debian's, started on
//! one of the hosts) runs the checked-in `deploy/prometheus/prometheus.yml`, finds every k2i
//! through one member, scrapes them over mTLS, and answers every query of the Grafana
//! dashboard (deploy/grafana); a host that dies leaves the list.

use dcos_core::tls::Identity;
use dcos_core::Role;
use dcos_tests::netns::Fleet;
use dcos_tests::{eventually, mesh, Pki};
use k2i_client::K2iClient;
use serde_json::{json, Value};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(5);
/// Where Prometheus listens on its host.
const PROMETHEUS_PORT: u16 = 9090;

/// The targets `GET /v1/sd/k2i` on `api` lists (via `client`).
async fn discovered(client: &K2iClient, api: &str) -> Option<Value> {
    client.get_json(api, "/v1/sd/k2i", T).await.ok()
}

/// Prometheus' answer to `GET path` on `base` (its HTTP API), as JSON.
fn prometheus_api(base: &str, path: &str) -> Option<Value> {
    let out =
        Command::new("curl").args(["-sS", "--fail", "--max-time", "2", &format!("{base}{path}")]).output();
    serde_json::from_slice(&out.ok()?.stdout).ok()
}

/// Prometheus' answer to the instant query `expr`.
fn prometheus_query(base: &str, expr: &str) -> Value {
    let out = Command::new("curl")
        .args(["-sS", "--fail", "--max-time", "2", "-G", "--data-urlencode"])
        .arg(format!("query={expr}"))
        .arg(format!("{base}/api/v1/query"))
        .output()
        .expect("curl runs");
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("{expr}: {}", String::from_utf8_lossy(&out.stderr)))
}

/// Every string under the key `key` anywhere in `v`.
fn strings_under<'a>(v: &'a Value, key: &str, out: &mut Vec<&'a str>) {
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                match v {
                    Value::String(s) if k == key => out.push(s),
                    _ => strings_under(v, key, out),
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|v| strings_under(v, key, out)),
        _ => {}
    }
}

/// The Grafana dashboard (deploy/grafana/dcos-fleet.json) against this fleet: each PromQL
/// query runs in this Prometheus (those about hosts return a series for every host), each
/// template variable finds its label, each metric is one k2i exports, and the live top-process
/// table's request and columns are what k2i answers.
async fn dashboard_works(api: &str, client: &K2iClient, k2i_url: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/grafana/dcos-fleet.json");
    let dashboard: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let metrics =
        String::from_utf8(client.request("GET", k2i_url, "/metrics", None, T).await.unwrap().to_vec())
            .unwrap();
    let any = |e: &str| e.replace("$dc", ".*").replace("$host", ".*").replace("$k2i", ".*");
    let mut exprs = Vec::new();
    strings_under(&dashboard["panels"], "expr", &mut exprs);
    assert!(exprs.len() >= 10, "{exprs:?}");
    for expr in &exprs {
        let r = prometheus_query(api, &any(expr));
        assert_eq!(r["status"], "success", "{expr}: {r}");
        let series = r["data"]["result"].as_array().map_or(0, Vec::len);
        assert!(expr.contains("k2i_container") || series > 0, "{expr}: no series");
        for name in
            expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).filter(|w| w.starts_with("k2i_"))
        {
            assert!(metrics.contains(&format!("# TYPE {name} ")), "{expr}: k2i exports no {name}");
        }
    }
    let mut definitions = Vec::new();
    strings_under(&dashboard["templating"], "definition", &mut definitions);
    for d in definitions {
        let (metric, label) =
            d.trim_start_matches("label_values(").trim_end_matches(')').rsplit_once(", ").unwrap();
        let r = prometheus_query(api, &format!("count by ({label}) ({})", any(metric)));
        let values = r["data"]["result"].as_array().cloned().unwrap_or_default();
        // One datacenter here; a value per host for the others.
        let want = if label == "dc" { 1 } else { 3 };
        assert!(values.len() == want && values.iter().all(|v| v["metric"][label].is_string()), "{d}: {r}");
    }
    let mut urls = Vec::new();
    strings_under(&dashboard["panels"], "url", &mut urls);
    assert_eq!(urls, ["https://${k2i}/v1/top"]);
    let top: Value = client.get_json(k2i_url, "/v1/top?limit=15&sort=-cpu", T).await.unwrap();
    let first = &top["processes"][0];
    let mut selectors = Vec::new();
    strings_under(&dashboard["panels"], "selector", &mut selectors);
    for s in selectors {
        let key = s.split('.').next().unwrap();
        assert!(first.get(key).is_some(), "the top table's column {s} is not in k2i's answer: {first}");
    }
}

/// The checked-in example with this fleet's files and addresses, and 1 s intervals.
fn example_config(pki: &Pki, viewer: &dcos_core::tls::TlsFiles, sd: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/prometheus/prometheus.yml");
    let mut text = std::fs::read_to_string(&path).expect("deploy/prometheus/prometheus.yml");
    let ca = pki.files("admin").ca;
    for (from, to) in [
        ("/etc/prometheus/dcos/ca.crt", ca.to_str().unwrap()),
        ("/etc/prometheus/dcos/prometheus.crt", viewer.cert.to_str().unwrap()),
        ("/etc/prometheus/dcos/prometheus.key", viewer.key.to_str().unwrap()),
        ("https://middlecon.example:7442", sd),
        ("scrape_interval: 15s", "scrape_interval: 1s"),
        ("scrape_timeout: 5s", "scrape_timeout: 1s"),
        ("refresh_interval: 30s", "refresh_interval: 1s"),
    ] {
        assert!(text.contains(from), "the example no longer has {from:?}");
        text = text.replace(from, to);
    }
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_finds_and_scrapes_every_live_k2i_from_one_member() {
    assert!(
        Command::new("prometheus").arg("--version").output().is_ok(),
        "prometheus is not installed (scripts/setup.sh installs Debian's)"
    );
    let fleet = Fleet::new(3).expect("fleet");
    let pki = Pki::new();
    let _k2i: Vec<_> = (0..3).map(|i| fleet.k2i(i, &fleet.host(i).issue(&pki), &[]).expect("k2i")).collect();
    let _mc: Vec<_> = (0..3)
        .map(|i| {
            let (k2i, rack) = (fleet.host(i).k2i_url(), format!("rack=r{i}"));
            mesh::start(&fleet, &pki, i, &["--k2i", &k2i, "--label", &rack])
        })
        .collect();
    mesh::wait_formed(&fleet, &pki, 3).await;

    // Any member answers for the whole fleet, to any role: host 1, asked by a viewer.
    let viewer = pki.issue("prometheus", Role::Viewer);
    let client = K2iClient::new(&Identity::load(&viewer).unwrap()).unwrap();
    let sd = format!("https://{}", fleet.host(1).api_addr());
    let groups = discovered(&client, &sd).await.expect("the viewer reads /v1/sd/k2i");
    let expected: Vec<Value> = (0..3)
        .map(|i| {
            let h = fleet.host(i);
            json!({
                "targets": [format!("{}:7440", h.addr)],
                "labels": {"__scheme__": "https", "dc": "dc-a", "name": h.name, "rack": format!("r{i}")},
            })
        })
        .collect();
    assert_eq!(groups, Value::Array(expected));
    let anonymous = K2iClient::anonymous(Identity::load(&viewer).unwrap().roots).unwrap();
    let refused = anonymous.request("GET", &sd, "/v1/sd/k2i", None, T).await;
    assert!(refused.is_err(), "no client certificate, no targets: {refused:?}");

    // A real Prometheus on host 0 with the example configuration, discovering through host 1.
    let work = tempfile::tempdir().unwrap();
    let config = work.path().join("prometheus.yml");
    std::fs::write(&config, example_config(&pki, &viewer, &sd)).unwrap();
    let listen = format!("{}:{PROMETHEUS_PORT}", fleet.host(0).addr);
    let started = Instant::now();
    let prometheus = fleet
        .spawn(
            0,
            "prometheus",
            &[
                &format!("--config.file={}", config.display()),
                &format!("--storage.tsdb.path={}", work.path().join("data").display()),
                &format!("--web.listen-address={listen}"),
            ],
        )
        .expect("prometheus starts");
    let api = format!("http://{listen}");
    let up = |want: usize| {
        let api = api.clone();
        move || {
            let api = api.clone();
            async move {
                let r = prometheus_api(&api, "/api/v1/query?query=up%7Bjob%3D%22k2i%22%7D")?;
                let series = r["data"]["result"].as_array()?.clone();
                let all_up = series.iter().all(|s| s["value"][1] == "1");
                (series.len() == want && all_up).then_some(series)
            }
        }
    };
    let series = eventually(Duration::from_secs(20), "Prometheus scraping the three k2i", up(3)).await;
    eprintln!("Prometheus started to all three k2i scraped: {:?}", started.elapsed());
    let mut seen: Vec<(String, String, String)> = series
        .iter()
        .map(|s| {
            let m = &s["metric"];
            let text = |k: &str| m[k].as_str().unwrap_or_default().to_string();
            (text("instance"), text("dc"), text("rack"))
        })
        .collect();
    seen.sort();
    let want: Vec<(String, String, String)> =
        (0..3).map(|i| (format!("host-{i}"), "dc-a".into(), format!("r{i}"))).collect();
    assert_eq!(seen, want, "series named after the hosts, with their dc and labels");
    // k2i's own series arrive too, not only `up`.
    let r = prometheus_api(&api, "/api/v1/query?query=count(k2i_host_processes)").unwrap_or_default();
    assert_eq!(r["data"]["result"][0]["value"][1], "3", "{r}");

    dashboard_works(&api, &client, &fleet.host(0).k2i_url()).await;
    drop(prometheus);

    // A host dies: membership marks it dead and discovery drops it (Prometheus follows at its
    // next refresh).
    fleet.kill_host(2);
    eventually(Duration::from_secs(15), "host-2 gone from /v1/sd/k2i", || async {
        let g = discovered(&client, &sd).await?;
        let names: Vec<&str> = g.as_array()?.iter().filter_map(|g| g["labels"]["name"].as_str()).collect();
        (names == ["host-0", "host-1"]).then_some(())
    })
    .await;
}
