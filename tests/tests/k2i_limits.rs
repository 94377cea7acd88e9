//! k2i against a client that tries to starve it (issue 17): stalled and oversized bodies,
//! writes by the wrong role, many requests from one identity, costly queries, requests
//! beyond hyper's own limits, and what each request makes the sampler do. The real binary
//! over real TLS; the requests are written by hand where a normal client would not send them.

use dcos_core::model::HostSummary;
use dcos_core::tls::TlsFiles;
use dcos_core::Role;
use dcos_tests::raw_https::{head, Answer, RawHttps};
use dcos_tests::{eventually, urlencode, Daemon, Pki};
use k2i_client::FetchError;
use serde_json::Value;
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(5);

struct Fixture {
    pki: Pki,
    k2i: Daemon,
    admin: TlsFiles,
    viewer: TlsFiles,
}

fn start(extra: &[&str]) -> Fixture {
    let pki = Pki::new();
    let host = pki.issue("node-a", Role::Host);
    let viewer = pki.issue("watcher", Role::Viewer);
    let mut args = vec!["--name", "node-a", "--sysctl-allow", "kernel.domainname"];
    args.extend(extra);
    // Its own UTS namespace: no write here may reach the host's kernel.domainname.
    let k2i = Daemon::k2i_wrapped(&["unshare", "--uts"], &host, &args).expect("k2i starts");
    let admin = pki.files("admin");
    Fixture { pki, k2i, admin, viewer }
}

/// A PUT of kernel.domainname declaring `length` bytes of body and sending `sent` of them.
async fn put_declaring(f: &Fixture, who: &TlsFiles, length: u64, sent: &[u8]) -> RawHttps {
    let mut c = RawHttps::connect(&f.k2i.url, who).await.unwrap();
    let extra = format!("content-type: application/json\r\ncontent-length: {length}\r\n");
    c.send(&head("PUT", "/v1/sysctl/kernel.domainname", &extra)).await.unwrap();
    c.send(sent).await.unwrap();
    c
}

async fn get(f: &Fixture, who: &TlsFiles, path: &str, extra: &str) -> Answer {
    let mut c = RawHttps::connect(&f.k2i.url, who).await.unwrap();
    c.send(&head("GET", path, extra)).await.unwrap();
    c.answer(T).await.unwrap()
}

fn code(a: &Answer) -> (u16, String) {
    (a.status, a.json()["error"]["code"].as_str().unwrap_or_default().to_string())
}

#[tokio::test]
async fn writes_are_refused_before_their_body_and_a_stalled_body_is_cut_off() {
    let f = start(&[]);
    // A viewer's write is refused while its body is still missing.
    let mut c = put_declaring(&f, &f.viewer, 100, b"{\"value\":").await;
    let refused = c.answer(Duration::from_secs(2)).await.expect("403 without waiting for the body");
    assert_eq!(code(&refused), (403, "forbidden".into()));
    // A body declared beyond the limit: 413 at once, nothing of it read.
    let mut c = put_declaring(&f, &f.admin, 99_999_999_999, b"{").await;
    let a = c.answer(Duration::from_secs(2)).await.expect("413 at once");
    assert_eq!(code(&a), (413, "too_large".into()));

    // An admin holds 16 writes, its whole budget, each with 9 of 100 bytes sent.
    let started = Instant::now();
    let mut held = Vec::new();
    for _ in 0..16 {
        held.push(put_declaring(&f, &f.admin, 100, b"{\"value\":").await);
    }
    // Probes see the held requests counted: wait until a 17th is refused, so the checks
    // below run while all 16 are in flight.
    let mut refused = None;
    while refused.is_none() && started.elapsed() < Duration::from_secs(5) {
        let a = get(&f, &f.admin, "/v1/host", "").await;
        if a.status == 429 {
            refused = Some(a);
        }
    }
    let refused = refused.expect("the admin's 17th request is refused while 16 are held");
    assert_eq!(code(&refused), (429, "overloaded".into()));
    assert!(refused.head.contains("retry-after: 1"), "{}", refused.head);
    assert!(refused.json()["error"]["message"].as_str().unwrap().contains("admin"), "names who");
    // Everyone else is served, /healthz included.
    assert_eq!(get(&f, &f.viewer, "/healthz", "").await.status, 200);
    assert_eq!(get(&f, &f.viewer, "/v1/host", "").await.status, 200);
    // Each stalled body is cut off after the body deadline, and the budget comes back.
    for c in &mut held {
        let a = c.answer(Duration::from_secs(15)).await.expect("408 after the body deadline");
        assert_eq!(code(&a), (408, "body_timeout".into()));
    }
    assert!(started.elapsed() < Duration::from_secs(14), "cut off after {:?}", started.elapsed());
    assert_eq!(get(&f, &f.admin, "/v1/host", "").await.status, 200);
}

#[tokio::test]
async fn answers_before_any_handler_still_carry_the_json_error() {
    let f = start(&[]);
    let long = format!("/v1/proc?q={}", "a".repeat(70 * 1024));
    let a = get(&f, &f.viewer, &long, "").await;
    assert_eq!(code(&a), (414, "uri_too_long".into()));
    assert!(a.head.contains("content-type: application/json"), "{}", a.head);
    let many: String = (0..120).map(|i| format!("x-h{i}: v\r\n")).collect();
    let a = get(&f, &f.viewer, "/v1/host", &many).await;
    assert_eq!(code(&a), (431, "headers_too_large".into()));
    let a = get(&f, &f.viewer, "/v1/host", "bad header line\r\n").await;
    assert_eq!(code(&a), (400, "bad_request".into()));
}

#[tokio::test]
async fn a_wrong_token_beside_a_valid_certificate_is_refused() {
    let f = start(&[]);
    let a = get(&f, &f.admin, "/v1/host", "authorization: Bearer not-a-token\r\n").await;
    assert_eq!(code(&a), (401, "invalid_token".into()));
    assert_eq!(get(&f, &f.admin, "/v1/host", "").await.status, 200, "the certificate alone is fine");
}

#[tokio::test]
async fn a_pid_must_be_written_as_the_kernel_writes_it() {
    let f = start(&[]);
    for bad in ["+1", "01", "0x1", "1.0"] {
        let a = get(&f, &f.viewer, &format!("/v1/proc/{bad}"), "").await;
        assert_eq!(code(&a), (400, "bad_pid".into()), "{bad}");
    }
    assert_eq!(get(&f, &f.viewer, "/v1/proc/1", "").await.status, 200);
}

#[tokio::test]
async fn a_sysctl_value_of_more_than_one_line_is_refused_and_nothing_is_written() {
    let audit = tempfile::NamedTempFile::new().unwrap();
    let f = start(&["--audit-log", audit.path().to_str().unwrap()]);
    let admin = f.pki.client("admin");
    let before: Value = admin.get_json(&f.k2i.url, "/v1/sysctl/kernel.domainname", T).await.unwrap();
    for value in ["evil\nsecond", "a\rb", "nul\u{0}"] {
        let body = serde_json::to_vec(&serde_json::json!({ "value": value })).unwrap();
        let put = admin.request("PUT", &f.k2i.url, "/v1/sysctl/kernel.domainname", Some(body), T).await;
        match put {
            Err(FetchError::Http { status: 400, code, .. }) => assert_eq!(code, "bad_value", "{value:?}"),
            other => panic!("{value:?}: expected 400 bad_value, got {other:?}"),
        }
    }
    let after: Value = admin.get_json(&f.k2i.url, "/v1/sysctl/kernel.domainname", T).await.unwrap();
    assert_eq!(after["value"], before["value"], "nothing was written");
    let log = std::fs::read_to_string(audit.path()).unwrap();
    let records: Vec<Value> = log.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(records.len(), 3, "each attempt audited: {log}");
    assert!(records.iter().all(|r| r["result"] == "bad_value"), "none as applied: {log}");
}

#[tokio::test]
async fn the_openapi_document_lists_the_errors_the_server_sends() {
    let f = start(&[]);
    let doc: Value = f.pki.client("admin").get_json(&f.k2i.url, "/v1/openapi.json", T).await.unwrap();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let responses = op["responses"].as_object().unwrap();
            let mut want = vec!["400", "414", "431"];
            if path != "/healthz" {
                want.push("429");
            }
            if path != "/healthz" && path != "/v1/openapi.json" {
                want.push("401");
            }
            if method == "put" {
                want.extend(["403", "408", "413"]);
            }
            for status in want {
                let r = responses.get(status).unwrap_or_else(|| panic!("{method} {path} lacks {status}"));
                let schema = &r["content"]["application/json"]["schema"]["$ref"];
                assert_eq!(schema, "#/components/schemas/ErrorBody", "{method} {path} {status}");
            }
        }
    }
}

/// Where the query budget is refused: its regex count and regex size, named.
#[tokio::test]
async fn a_costly_query_is_refused_naming_the_limit() {
    let f = start(&[]);
    let c = f.pki.client("watcher");
    let q = |expr: &str| format!("/v1/proc?q={}", urlencode(expr));
    let nine = ["cmdline ~ 'a'"; 9].join(" or ");
    match c.get_json::<Value>(&f.k2i.url, &q(&nine), T).await {
        Err(FetchError::Http { status: 400, message, .. }) => {
            assert!(message.contains("at most 8"), "{message}")
        }
        other => panic!("expected 400, got {:?}", other.err()),
    }
    let heavy = [r"cmdline ~ '\w{5}'"; 4].join(" or ");
    match c.get_json::<Value>(&f.k2i.url, &q(&heavy), T).await {
        Err(FetchError::Http { status: 400, message, .. }) => {
            assert!(message.contains("regex budget"), "{message}")
        }
        other => panic!("expected 400, got {other:?}"),
    }
    let fine = ["cmdline ~ 'a'"; 8].join(" or ");
    c.get_json::<Value>(&f.k2i.url, &q(&fine), T).await.expect("eight small regexes are within the budget");
}

/// One viewer with 64 connections asking as fast as it can does not hold others up: it
/// gets 429s past its own budget, and another identity's requests are answered meanwhile.
#[tokio::test]
async fn one_identity_with_64_connections_does_not_cut_k2i_for_others() {
    let f = start(&["--sample-interval", "200ms"]);
    let heavy = format!("/v1/proc?q={}", urlencode(&[r"cmdline ~ '(\w+\s*)+\d{3}q'"; 8].join(" or ")));
    let url = f.k2i.url.clone();
    let until = Instant::now() + Duration::from_secs(3);
    let mut flood = Vec::new();
    for i in 0..64 {
        // A client each: 64 connections of one identity.
        let c = f.pki.client("watcher");
        let (url, path) = (url.clone(), format!("{heavy}&limit={}", 1 + i));
        flood.push(tokio::spawn(async move {
            let mut refused = 0;
            while Instant::now() < until {
                // Else answered, or still waiting behind its own 16 when time ran out.
                if let Err(FetchError::Http { status: 429, .. }) = c.get_json::<Value>(&url, &path, T).await {
                    refused += 1;
                }
            }
            refused
        }));
    }
    let other = f.pki.client("admin");
    let mut slowest = Duration::ZERO;
    while Instant::now() < until {
        let asked = Instant::now();
        let _: HostSummary = other.get_json(&url, "/v1/host", T).await.expect("served meanwhile");
        let _: Value = other.get_json(&url, "/v1/proc?limit=5", T).await.expect("served meanwhile");
        slowest = slowest.max(asked.elapsed());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut refused = 0;
    for t in flood {
        refused += t.await.unwrap();
    }
    assert!(refused > 0, "the flooding identity is held to its own budget");
    assert!(slowest < Duration::from_secs(3), "another identity waited {slowest:?}");
}

fn samples(metrics: &str) -> f64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix("k2i_samples_total "))
        .and_then(|v| v.trim().parse().ok())
        .expect("k2i_samples_total")
}

/// `/metrics` and `/v1/host` take no sample of the process table; a table request takes
/// about one, not a burst at the fast pace after it.
#[tokio::test]
async fn what_a_request_needs_decides_what_is_sampled() {
    let f = start(&["--sample-interval", "100ms", "--idle-interval", "1h"]);
    let c = f.pki.client("admin");
    let scrape = || async {
        let body = c.request("GET", &f.k2i.url, "/metrics", None, T).await.unwrap();
        String::from_utf8(body.to_vec()).unwrap()
    };
    let before = samples(&scrape().await);
    for _ in 0..10 {
        let h: HostSummary = c.get_json(&f.k2i.url, "/v1/host", T).await.unwrap();
        assert!(h.processes > 0 && h.threads >= h.processes && h.mem_total_bytes > 0, "{h:?}");
        scrape().await;
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    let h: HostSummary = c.get_json(&f.k2i.url, "/v1/host", T).await.unwrap();
    let sampled =
        ::time::OffsetDateTime::parse(&h.sampled_at, &::time::format_description::well_known::Rfc3339)
            .unwrap();
    assert!(
        ::time::OffsetDateTime::now_utc() - sampled < ::time::Duration::seconds(1),
        "fresh: {}",
        h.sampled_at
    );
    assert_eq!(samples(&scrape().await), before, "no process-table sample for /v1/host or /metrics");
    // A /v1/top every 400 ms (four intervals) for 2 s: about one sample each.
    for _ in 0..5 {
        let _: Value = c.get_json(&f.k2i.url, "/v1/top", T).await.unwrap();
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    let taken = samples(&scrape().await) - before;
    assert!((5.0..=7.0).contains(&taken), "{taken} samples for 5 requests");
}

fn rss_kb(pid: i32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .unwrap()
        .trim()
        .trim_end_matches(" kB")
        .parse()
        .unwrap()
}

/// Memory taken by many connections goes back once they close (glibc kept it before).
#[tokio::test]
async fn memory_taken_by_500_connections_is_given_back_when_they_close() {
    let f = start(&[]);
    for _ in 0..3 {
        get(&f, &f.viewer, "/v1/host", "").await;
    }
    let base = rss_kb(f.k2i.pid());
    let mut conns = Vec::new();
    for _ in 0..500 {
        let mut c = RawHttps::connect(&f.k2i.url, &f.viewer).await.unwrap();
        c.send(&head("GET", "/v1/host", "")).await.unwrap();
        c.answer(T).await.unwrap();
        conns.push(c);
    }
    let peak = rss_kb(f.k2i.pid());
    assert!(peak > base + 4096, "500 connections took {} kB", peak - base);
    drop(conns);
    let pid = f.k2i.pid();
    let kept = eventually(T, "k2i's memory back near where it was", || async move {
        let now = rss_kb(pid);
        // Less than half of what the connections took is kept (tokio's I/O slab, for one).
        (now.saturating_sub(base) * 2 <= peak - base).then_some(now)
    })
    .await;
    assert!(kept < peak, "{base} kB before, {peak} kB with the connections, {kept} kB after");
}
