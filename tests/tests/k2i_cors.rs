//! k2i's CORS (`--cors-origin`, SPEC section 9) as a dashboard in a browser meets it: the
//! real daemon over HTTPS, asked with curl the way a browser asks (a preflight without
//! credentials, then the request with the page's bearer token and its `Origin`).

use dcos_core::Role;
use dcos_tests::{Daemon, Pki};
use std::collections::BTreeMap;
use std::process::Command;

const GRAFANA: &str = "https://grafana.example:3000";
const TOKEN: &str = "dashboard-token";

/// An answer: status, headers (names in lower case), body.
struct Answer {
    status: u16,
    headers: BTreeMap<String, String>,
    body: String,
}

/// `curl` to `url` trusting `ca`, with `args` before the URL.
fn curl<S: AsRef<std::ffi::OsStr>>(ca: &std::path::Path, url: &str, args: &[S]) -> Answer {
    let out = Command::new("curl")
        .args(["-sS", "-i", "--max-time", "5", "--cacert", ca.to_str().unwrap()])
        .args(args)
        .arg(url)
        .output()
        .expect("curl runs");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines.next().and_then(|l| l.split_whitespace().nth(1)).and_then(|s| s.parse().ok());
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Answer {
        status: status.unwrap_or_else(|| panic!("no answer: {text}{}", String::from_utf8_lossy(&out.stderr))),
        headers,
        body: body.to_string(),
    }
}

fn preflight(origin: &str) -> Vec<String> {
    ["-X", "OPTIONS", "-H", &format!("Origin: {origin}")]
        .into_iter()
        .chain([
            "-H",
            "Access-Control-Request-Method: GET",
            "-H",
            "Access-Control-Request-Headers: authorization",
        ])
        .map(String::from)
        .collect()
}

fn k2i(pki: &Pki, extra: &[&str]) -> Daemon {
    let tokens = pki.dir.path().join("tokens");
    std::fs::write(&tokens, format!("{} viewer dashboard\n", dcos_core::tokens::hash_hex(TOKEN))).unwrap();
    let mut args = vec!["--name", "node-a", "--tokens", tokens.to_str().unwrap()];
    args.extend_from_slice(extra);
    Daemon::k2i(&pki.issue("node-a", Role::Host), &args).expect("k2i starts")
}

#[test]
fn a_listed_origin_passes_its_preflight_and_reads_with_a_token_others_do_not() {
    let pki = Pki::new();
    let ca = pki.files("admin").ca;
    let d = k2i(&pki, &["--cors-origin", "http://localhost:7450", "--cors-origin", GRAFANA]);
    let url = format!("{}/v1/host", d.url);

    // The preflight carries no credentials and is answered before authentication.
    let a = curl(&ca, &url, &preflight(GRAFANA));
    assert_eq!(a.status, 204, "{:?}", a.headers);
    assert_eq!(a.headers["access-control-allow-origin"], GRAFANA);
    assert!(a.headers["access-control-allow-methods"].contains("GET"), "{:?}", a.headers);
    assert!(a.headers["access-control-allow-headers"].contains("authorization"), "{:?}", a.headers);

    // Then the page's request: answered, with the header that lets the page read it.
    let bearer = format!("Authorization: Bearer {TOKEN}");
    let a = curl(&ca, &url, &["-H", &format!("Origin: {GRAFANA}"), "-H", &bearer]);
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.headers["access-control-allow-origin"], GRAFANA);
    let host: serde_json::Value = serde_json::from_str(&a.body).unwrap();
    assert_eq!(host["name"], "node-a");
    // Without the token the page is still refused: CORS is not an identity.
    let a = curl(&ca, &url, &["-H", &format!("Origin: {GRAFANA}")]);
    assert_eq!(a.status, 401, "{}", a.body);

    // An origin not listed: its preflight is refused, and its answers carry no CORS header.
    let a = curl(&ca, &url, &preflight("https://evil.example"));
    assert_eq!(a.status, 403, "{}", a.body);
    assert!(a.body.contains("origin_not_allowed"), "{}", a.body);
    let a = curl(&ca, &url, &["-H", "Origin: https://evil.example", "-H", &bearer]);
    assert_eq!(a.status, 200);
    assert!(!a.headers.contains_key("access-control-allow-origin"), "{:?}", a.headers);
}

#[test]
fn without_cors_origin_no_cors_header_is_ever_sent() {
    let pki = Pki::new();
    let ca = pki.files("admin").ca;
    let d = k2i(&pki, &[]);
    let url = format!("{}/v1/host", d.url);
    let a = curl(&ca, &url, &preflight(GRAFANA));
    assert_ne!(a.status, 204);
    let bearer = format!("Authorization: Bearer {TOKEN}");
    let b = curl(&ca, &url, &["-H", &format!("Origin: {GRAFANA}"), "-H", &bearer]);
    assert_eq!(b.status, 200, "{}", b.body);
    for h in [&a.headers, &b.headers] {
        assert!(!h.keys().any(|k| k.starts_with("access-control-")), "{h:?}");
    }
}
