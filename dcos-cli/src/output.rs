//! Printing what hosts answered: tables, `-o json` documents, `-o ndjson` lines, failures
//! on stderr, and the exit status of SPEC section 6.

use crate::exit;
use crate::fanout::HostReport;
use serde::Serialize;
use serde_json::{Map, Value};
use std::io::Write;

/// An item tagged with the host it came from: `{"host": ..., <item fields>}`.
pub fn with_host(host: &str, item: &impl Serialize) -> Value {
    let mut out = Map::new();
    out.insert("host".into(), Value::from(host));
    match serde_json::to_value(item) {
        Ok(Value::Object(fields)) => out.extend(fields.into_iter().filter(|(k, _)| k != "host")),
        Ok(other) => {
            out.insert("value".into(), other);
        }
        Err(_) => {}
    }
    Value::Object(out)
}

/// An item tagged with its host without copying it: serializes as `{"host": ..., <item>}`.
/// Prefer it to [`with_host`] for large outputs.
#[derive(Serialize)]
pub struct Tagged<'a, T: Serialize> {
    pub host: &'a str,
    #[serde(flatten)]
    pub item: &'a T,
}

/// `-o json`: `{"hosts": [...], "<kind>": [...]}`, written straight to stdout.
pub fn print_document<T: Serialize>(kind: &str, reports: &[HostReport], items: &[T]) {
    #[derive(Serialize)]
    struct Document<'a, T: Serialize> {
        hosts: &'a [HostReport],
        #[serde(flatten)]
        items: Map1<'a, T>,
    }
    struct Map1<'a, T>(&'a str, &'a [T]);
    impl<T: Serialize> Serialize for Map1<'_, T> {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            use serde::ser::SerializeMap;
            let mut m = s.serialize_map(Some(1))?;
            m.serialize_entry(self.0, self.1)?;
            m.end()
        }
    }
    let mut out = std::io::BufWriter::with_capacity(1 << 16, std::io::stdout().lock());
    let _ = serde_json::to_writer(&mut out, &Document { hosts: reports, items: Map1(kind, items) });
    let _ = writeln!(out);
}

/// `-o ndjson`: one line per item, and one `{"host_status": {...}}` line per host.
pub fn print_line(value: &impl Serialize) {
    // Buffered: stdout alone would write a large document (a `top` frame) a kilobyte at a
    // time. 8 KiB: callers print many small lines through here too.
    let mut out = std::io::BufWriter::with_capacity(8 << 10, std::io::stdout().lock());
    let _ = serde_json::to_writer(&mut out, value);
    let _ = writeln!(out);
}

pub fn host_status_line(report: &HostReport) -> Value {
    serde_json::json!({ "host_status": report })
}

/// `-o ndjson` of a whole answer: the items, then one `host_status` line per host.
pub fn print_ndjson<T: Serialize>(items: &[T], reports: &[HostReport]) {
    items.iter().for_each(print_line);
    reports.iter().for_each(|r| print_line(&host_status_line(r)));
}

/// Names each host that did not answer on stderr and returns the exit status: 0 all
/// answered, 3 some did, 1 none did.
pub fn finish(reports: &[HostReport]) -> u8 {
    let failed: Vec<&HostReport> = reports.iter().filter(|r| !r.ok()).collect();
    for r in &failed {
        eprintln!(
            "dcos: {} ({}): {}: {}",
            r.host,
            r.address,
            r.status,
            r.error.as_deref().unwrap_or("failed")
        );
    }
    if failed.is_empty() {
        exit::OK
    } else if failed.len() == reports.len() {
        exit::FAILED
    } else {
        exit::PARTIAL
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(status: &'static str) -> HostReport {
        HostReport {
            host: "h".into(),
            address: "a".into(),
            status,
            error: None,
            elapsed_ms: 1,
            via: None,
            age_ms: None,
        }
    }

    #[test]
    fn exit_status_tells_all_some_and_none() {
        assert_eq!(finish(&[report("ok"), report("ok")]), exit::OK);
        assert_eq!(finish(&[report("ok"), report("timeout")]), exit::PARTIAL);
        assert_eq!(finish(&[report("refused"), report("timeout")]), exit::FAILED);
    }

    #[test]
    fn items_carry_their_host_first() {
        let v = with_host("web-1", &serde_json::json!({"pid": 1, "host": "ignored"}));
        assert_eq!(v.as_object().unwrap().keys().collect::<Vec<_>>(), ["host", "pid"]);
        assert_eq!(v["host"], "web-1");
    }
}
