//! `dcos ps`: one process table across the fleet. Filters, sort and limit travel to every
//! host (each answers only its own top N); the answers are merged here with the same sort.

use super::{encode, Context, SetupError};
use crate::cli::{Format, GroupBy, PsArgs};
use crate::fanout::HostReport;
use crate::output;
use crate::table;
use dcos_core::model::ProcList;
use dcos_query::ProcQuery;
use futures::StreamExt;
use k2i_client::fanout::Read;
use k2i_client::merge;
use serde_json::value::RawValue;
use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufWriter, Write};

/// The query string sent to every host, checked here first so a typo is one error, not
/// one per host.
pub fn query_string(args: &PsArgs) -> Result<(String, ProcQuery), SetupError> {
    let mut pairs: Vec<(&str, String)> = Vec::new();
    let opt = |k: &'static str, v: &Option<String>| v.as_ref().map(|v| (k, v.clone()));
    pairs.extend(opt("user", &args.user));
    pairs.extend(opt("cmd", &args.cmd));
    pairs.extend(opt("container", &args.container));
    pairs.extend(opt("q", &args.q));
    pairs.extend(opt("sort", &args.sort));
    pairs.extend(args.limit.map(|l| ("limit", l.to_string())));
    let query = ProcQuery::from_pairs(pairs.iter().map(|(k, v)| (*k, v.as_str()))).map_err(|e| {
        let flag = match e.parameter {
            "q" => "-q",
            "sort" => "--sort",
            "limit" => "--limit",
            "user" => "--user",
            "cmd" => "--cmd",
            "container" => "--container",
            other => other,
        };
        let at = e
            .position
            .map(|p| format!("\n  {}\n  {}^", args.q.as_deref().unwrap_or(""), " ".repeat(p)))
            .unwrap_or_default();
        SetupError::Usage(format!("{flag}: {}{at}", e.message))
    })?;
    let qs = pairs.iter().map(|(k, v)| format!("{k}={}", encode(v))).collect::<Vec<_>>().join("&");
    Ok((qs, query))
}

pub use k2i_client::merge::{merge_order, Row};

/// A host's processes as k2i sent them, each left undecoded.
type RawList = ProcList<Box<RawValue>>;

pub async fn run(ctx: &Context, args: &PsArgs) -> Result<u8, SetupError> {
    let (qs, query) = query_string(args)?;
    let raw = args.group_by.is_none()
        && (ctx.format == Format::Ndjson || (ctx.format == Format::Json && query.sort.is_empty()));
    if raw {
        return Ok(run_raw(ctx, &qs, query.limit).await);
    }
    let mut reports: Vec<HostReport> = Vec::with_capacity(ctx.targets.len());
    let mut rows: Vec<Row> = Vec::new();
    let mut answers = ctx.answers::<ProcList>(Read::Processes, &qs);
    while let Some(mut answer) = answers.next().await {
        if let Some(list) = answer.value.take() {
            answer.report.host = list.host.clone();
            let dc = if list.dc.is_empty() { ctx.targets[answer.target].dc.clone() } else { list.dc };
            rows.extend(list.processes.into_iter().map(|p| Row {
                host: list.host.clone(),
                dc: dc.clone(),
                process: p,
            }));
        }
        reports.push(answer.report);
    }
    reports.sort_by(|a, b| a.host.cmp(&b.host));
    merge::sort_and_limit(&mut rows, &query);
    match args.group_by {
        Some(by) => print_groups(ctx.format, &reports, &group(&rows, by)),
        None => print_rows(ctx.format, &reports, &rows),
    }
    Ok(output::finish(&reports))
}

/// `-o ndjson`, and `-o json` in the default order (host, then pid: each host's table as it
/// comes, the hosts by name): the processes are passed through as k2i wrote them, each
/// tagged with its host, never decoded into fields and encoded again.
async fn run_raw(ctx: &Context, qs: &str, limit: Option<usize>) -> u8 {
    let ndjson = ctx.format == Format::Ndjson;
    let mut out = BufWriter::with_capacity(1 << 16, std::io::stdout());
    let mut reports: Vec<HostReport> = Vec::with_capacity(ctx.targets.len());
    let mut lists: Vec<RawList> = Vec::new();
    let mut answers = ctx.answers::<RawList>(Read::Processes, qs);
    while let Some(mut answer) = answers.next().await {
        if let Some(list) = answer.value.take() {
            answer.report.host = list.host.clone();
            if ndjson {
                for p in &list.processes {
                    let _ = write_tagged(&mut out, &list.host, p).and_then(|_| out.write_all(b"\n"));
                }
            } else {
                lists.push(list);
            }
        }
        if ndjson {
            let _ = serde_json::to_writer(&mut out, &output::host_status_line(&answer.report));
            let _ = out.write_all(b"\n").and_then(|_| out.flush());
        }
        reports.push(answer.report);
    }
    reports.sort_by(|a, b| a.host.cmp(&b.host));
    if !ndjson {
        lists.sort_by(|a, b| a.host.cmp(&b.host));
        let rows = lists.iter().flat_map(|l| l.processes.iter().map(move |p| (l.host.as_str(), p)));
        let _ = write_document(&mut out, &reports, rows.take(limit.unwrap_or(usize::MAX)));
    }
    let _ = out.flush();
    output::finish(&reports)
}

/// `{"hosts": [...], "processes": [...]}` from undecoded processes.
fn write_document<'a>(
    out: &mut impl Write,
    reports: &[HostReport],
    rows: impl Iterator<Item = (&'a str, &'a Box<RawValue>)>,
) -> std::io::Result<()> {
    out.write_all(b"{\"hosts\":")?;
    serde_json::to_writer(&mut *out, reports)?;
    out.write_all(b",\"processes\":[")?;
    for (i, (host, p)) in rows.enumerate() {
        if i > 0 {
            out.write_all(b",")?;
        }
        write_tagged(out, host, p)?;
    }
    out.write_all(b"]}\n")
}

/// `{"host": HOST, <the process's fields>}` from a process as k2i wrote it.
fn write_tagged(out: &mut impl Write, host: &str, process: &RawValue) -> std::io::Result<()> {
    out.write_all(b"{\"host\":")?;
    serde_json::to_writer(&mut *out, host)?;
    match process.get().trim_start().strip_prefix('{').map(str::trim_start) {
        Some(rest) if rest.starts_with('}') => out.write_all(b"}"),
        Some(rest) => {
            out.write_all(b",")?;
            out.write_all(rest.as_bytes())
        }
        None => {
            out.write_all(b",\"value\":")?;
            out.write_all(process.get().as_bytes())?;
            out.write_all(b"}")
        }
    }
}

fn print_rows(format: Format, reports: &[HostReport], rows: &[Row]) {
    match format {
        Format::Json => {
            let items: Vec<_> =
                rows.iter().map(|r| output::Tagged { host: &r.host, item: &r.process }).collect();
            output::print_document("processes", reports, &items);
        }
        Format::Ndjson => {
            rows.iter().for_each(|r| output::print_line(&output::Tagged { host: &r.host, item: &r.process }))
        }
        Format::Table => {
            let cells: Vec<_> = rows.iter().map(|r| table::process_row(&r.host, &r.process, 100)).collect();
            print!("{}", table::render(&table::PROCESS_HEADER, &cells));
        }
        Format::Wide => {
            let cells: Vec<_> = rows.iter().map(|r| table::process_row_wide(&r.host, &r.process)).collect();
            print!("{}", table::render(&table::PROCESS_HEADER_WIDE, &cells));
        }
    }
}

/// Sums for one `--group-by` key.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Group {
    pub group: String,
    pub processes: u64,
    pub cpu_percent: f64,
    pub mem_rss_bytes: u64,
    pub hosts: usize,
}

pub fn group(rows: &[Row], by: GroupBy) -> Vec<Group> {
    let mut acc: BTreeMap<String, (u64, f64, u64, BTreeSet<&str>)> = BTreeMap::new();
    for r in rows {
        let p = &r.process;
        let key = match by {
            GroupBy::Host => r.host.clone(),
            GroupBy::Dc => r.dc.clone(),
            GroupBy::User => p.user.to_string(),
            GroupBy::Cmd => p.cmd.to_string(),
            GroupBy::Container => {
                p.container.as_ref().map(|c| c.name.to_string()).unwrap_or_else(|| "-".into())
            }
        };
        let e = acc.entry(key).or_default();
        e.0 += 1;
        e.1 += p.cpu_percent.unwrap_or(0.0);
        e.2 += p.mem_rss_bytes;
        e.3.insert(&r.host);
    }
    let mut groups: Vec<Group> = acc
        .into_iter()
        .map(|(group, (n, cpu, rss, hosts))| Group {
            group,
            processes: n,
            cpu_percent: (cpu * 10.0).round() / 10.0,
            mem_rss_bytes: rss,
            hosts: hosts.len(),
        })
        .collect();
    groups
        .sort_by(|a, b| b.cpu_percent.total_cmp(&a.cpu_percent).then(b.mem_rss_bytes.cmp(&a.mem_rss_bytes)));
    groups
}

fn print_groups(format: Format, reports: &[HostReport], groups: &[Group]) {
    match format {
        Format::Json => {
            let items: Vec<_> = groups.iter().map(|g| serde_json::to_value(g).unwrap_or_default()).collect();
            output::print_document("groups", reports, &items);
        }
        Format::Ndjson => {
            groups.iter().for_each(|g| output::print_line(&serde_json::to_value(g).unwrap_or_default()))
        }
        Format::Table | Format::Wide => {
            let cells: Vec<Vec<String>> = groups
                .iter()
                .map(|g| {
                    vec![
                        g.group.clone(),
                        g.processes.to_string(),
                        format!("{:.1}", g.cpu_percent),
                        table::human_bytes(g.mem_rss_bytes),
                        g.hosts.to_string(),
                    ]
                })
                .collect();
            print!("{}", table::render(&["GROUP", "PROCS", "%CPU", "RSS", "HOSTS"], &cells));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_expression_is_caught_before_any_host_is_asked() {
        let args = PsArgs {
            user: None,
            cmd: None,
            container: None,
            sort: None,
            limit: None,
            q: Some("cpu > ".into()),
            group_by: None,
        };
        let err = query_string(&args).expect_err("rejected").to_string();
        assert!(err.starts_with("-q:") && err.contains("position 6"), "{err}");
        assert!(err.ends_with("      ^"), "points at the fault: {err}");
    }

    #[test]
    fn filters_become_an_encoded_query_string() {
        let args = PsArgs {
            user: Some("www".into()),
            cmd: None,
            container: None,
            sort: Some("-cpu".into()),
            limit: Some(20),
            q: Some("rss > 1M".into()),
            group_by: None,
        };
        let (qs, query) = query_string(&args).unwrap();
        assert_eq!(qs, "user=www&q=rss%20%3E%201M&sort=-cpu&limit=20");
        assert_eq!(query.limit, Some(20));
    }
}
