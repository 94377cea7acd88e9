//! One table from many hosts' answers, ordered the way one big `ps` would order it: by the
//! query's sort keys, ties by host name (by host, then pid, when there are none), cut to
//! `--limit`. The CLI merges what it receives with it, and a datacenter relay merges its
//! datacenter's answers with it before sending them on, so a relayed answer is the same
//! table as a direct one.

use dcos_core::model::{ProcList, Process, Top};
use dcos_query::{ProcQuery, SortKey};
use std::cmp::Ordering;

/// The order of two processes of the merged table, `a` on host `ha` and `b` on `hb`.
pub fn order(sort: &[SortKey], ha: &str, a: &Process, hb: &str, b: &Process) -> Ordering {
    if sort.is_empty() {
        ha.cmp(hb).then(a.pid.cmp(&b.pid))
    } else {
        dcos_query::compare(sort, a, b).then_with(|| ha.cmp(hb))
    }
}

/// A process and where it runs.
pub struct Row {
    pub host: String,
    pub dc: String,
    pub process: Process,
}

/// Orders rows by the query's sort (host, then pid, when none).
pub fn merge_order(query: &ProcQuery) -> impl Fn(&Row, &Row) -> Ordering + '_ {
    move |a, b| order(&query.sort, &a.host, &a.process, &b.host, &b.process)
}

/// Sorts `rows` by [`merge_order`] and keeps the first `--limit` of them.
pub fn sort_and_limit(rows: &mut Vec<Row>, query: &ProcQuery) {
    match query.limit {
        // Only the first `limit` need an order: select them, then sort those.
        Some(limit) if limit < rows.len() => {
            if limit == 0 {
                rows.clear();
                return;
            }
            rows.select_nth_unstable_by(limit - 1, merge_order(query));
            rows.truncate(limit);
            rows.sort_by(merge_order(query));
        }
        _ => rows.sort_by(merge_order(query)),
    }
}

/// Keeps, in each host's list, only the processes among the first `limit` of the merged
/// table (each list's `total` is left as the host said). With no limit, nothing changes.
pub fn trim_lists(lists: &mut [ProcList], sort: &[SortKey], limit: Option<usize>) {
    let Some(limit) = limit else { return };
    let keep = select(lists.iter().map(|l| (l.host.as_str(), l.processes.as_slice())), sort, limit);
    retain(lists.iter_mut().map(|l| &mut l.processes), &keep);
}

/// As [`trim_lists`] for `/v1/top` answers: each host keeps its summary and those of its
/// processes that are among the first `limit` of the fleet's.
pub fn trim_tops(tops: &mut [Top], sort: &[SortKey], limit: usize) {
    let keep = select(tops.iter().map(|t| (t.host.name.as_str(), t.processes.as_slice())), sort, limit);
    retain(tops.iter_mut().map(|t| &mut t.processes), &keep);
}

/// The merged top processes of a `dcos top` frame: host and process, first `limit`.
pub fn top(processes: &mut Vec<(String, Process)>, sort: &[SortKey], limit: usize) {
    processes.sort_by(|a, b| order(sort, &a.0, &a.1, &b.0, &b.1));
    processes.truncate(limit);
}

/// Which (list, index) pairs are among the first `limit` of the merged table.
fn select<'a>(
    lists: impl Iterator<Item = (&'a str, &'a [Process])>,
    sort: &[SortKey],
    limit: usize,
) -> Vec<Vec<bool>> {
    let lists: Vec<(&str, &[Process])> = lists.collect();
    let mut all: Vec<(usize, usize)> =
        lists.iter().enumerate().flat_map(|(l, (_, ps))| (0..ps.len()).map(move |i| (l, i))).collect();
    let cmp = |a: &(usize, usize), b: &(usize, usize)| {
        let (ha, pa) = (lists[a.0].0, &lists[a.0].1[a.1]);
        let (hb, pb) = (lists[b.0].0, &lists[b.0].1[b.1]);
        order(sort, ha, pa, hb, pb)
    };
    if limit == 0 {
        all.clear();
    } else if limit < all.len() {
        all.select_nth_unstable_by(limit - 1, cmp);
        all.truncate(limit);
    }
    let mut keep: Vec<Vec<bool>> = lists.iter().map(|(_, ps)| vec![false; ps.len()]).collect();
    for (l, i) in all {
        keep[l][i] = true;
    }
    keep
}

fn retain<'a>(lists: impl Iterator<Item = &'a mut Vec<Process>>, keep: &[Vec<bool>]) {
    for (list, keep) in lists.zip(keep) {
        let mut flags = keep.iter();
        list.retain(|_| flags.next().copied().unwrap_or(false));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(host: &str, cpus: &[f64]) -> ProcList {
        let processes = cpus
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let mut p: Process = serde_json::from_value(serde_json::json!({
                    "pid": i as i32 + 1, "ppid": 0, "pgid": 0, "sid": 0, "user": "u", "uid": 0, "gid": 0,
                    "state": "S", "nice": 0, "threads": 1, "cmd": "x", "cmdline": [], "exe": null,
                    "start_time": "", "cpu_percent": null, "cpu_time_s": 0.0, "mem_rss_bytes": 0,
                    "mem_vsz_bytes": 0, "mem_percent": 0.0, "io_read_bytes": null, "io_write_bytes": null,
                    "tty": null, "cgroup": "", "container": null
                }))
                .expect("a process");
                p.cpu_percent = Some(*c);
                p
            })
            .collect();
        ProcList {
            host: host.into(),
            dc: "d".into(),
            sampled_at: String::new(),
            total: cpus.len(),
            processes,
        }
    }

    #[test]
    fn trimmed_lists_hold_exactly_the_merged_table() {
        let sort = dcos_query::parse_sort("-cpu").unwrap();
        let mut lists = vec![list("a", &[9.0, 5.0, 1.0]), list("b", &[7.0, 5.0, 0.5])];
        let mut rows: Vec<Row> = lists
            .iter()
            .flat_map(|l| {
                l.processes.iter().map(|p| Row { host: l.host.clone(), dc: l.dc.clone(), process: p.clone() })
            })
            .collect();
        let query = ProcQuery::from_pairs([("sort", "-cpu"), ("limit", "4")]).unwrap();
        sort_and_limit(&mut rows, &query);
        let merged: Vec<(String, f64)> =
            rows.iter().map(|r| (r.host.clone(), r.process.cpu_percent.unwrap())).collect();
        assert_eq!(merged, [("a".into(), 9.0), ("b".into(), 7.0), ("a".into(), 5.0), ("b".into(), 5.0)]);
        trim_lists(&mut lists, &sort, Some(4));
        let cpus = |l: &ProcList| l.processes.iter().map(|p| p.cpu_percent.unwrap()).collect::<Vec<_>>();
        assert_eq!((cpus(&lists[0]), cpus(&lists[1])), (vec![9.0, 5.0], vec![7.0, 5.0]));
        assert_eq!(lists[0].total, 3, "total still counts what the host matched");
    }
}
