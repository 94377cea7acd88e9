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

/// A row that may be taken next by [`select_raw`]: row `row` of list `list`, decoded.
struct Candidate<'a> {
    host: &'a str,
    sort: &'a [SortKey],
    list: usize,
    row: usize,
    process: Process,
}

impl Ord for Candidate<'_> {
    /// Reversed: the heap's greatest is the merged table's first.
    fn cmp(&self, other: &Self) -> Ordering {
        order(other.sort, other.host, &other.process, self.host, &self.process)
    }
}

impl PartialOrd for Candidate<'_> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Candidate<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Candidate<'_> {}

/// As [`trim_lists`], on rows still in JSON (each host's name and its rows' text): which rows of
/// each list are among the first `limit` of the merged table, decoding only the rows that
/// may be. k2i answers rows sorted as asked (SPEC section 3; by pid without a sort), so a
/// host's next row is decoded only once the one before it is taken: about one row a host
/// plus `limit`, where decoding every row costs a list's length a host. (A list out of
/// order would lose rows past its first out-of-order one; k2i sorts before it cuts.) A
/// list with a row that does not decode is that list's error (none of its rows taken).
pub fn select_raw(
    lists: &[(&str, Vec<&str>)],
    sort: &[SortKey],
    limit: usize,
) -> Vec<Result<Vec<bool>, String>> {
    let mut keep: Vec<Result<Vec<bool>, String>> =
        lists.iter().map(|(_, rows)| Ok(vec![false; rows.len()])).collect();
    let mut heap = std::collections::BinaryHeap::new();
    let decode = |list: usize, row: usize| -> Result<Candidate<'_>, String> {
        let process = serde_json::from_str::<Process>(lists[list].1[row])
            .map_err(|e| format!("bad answer: process {row}: {e}"))?;
        Ok(Candidate { host: lists[list].0, sort, list, row, process })
    };
    // Drops list `l` for `why`: its rows leave the heap and the table.
    let fail = |l: usize,
                why: String,
                keep: &mut Vec<Result<Vec<bool>, String>>,
                heap: &mut std::collections::BinaryHeap<Candidate<'_>>|
     -> usize {
        let taken = keep[l].as_ref().map_or(0, |k| k.iter().filter(|t| **t).count());
        keep[l] = Err(why);
        heap.retain(|c: &Candidate| c.list != l);
        taken
    };
    let mut taken = 0;
    if limit == 0 {
        return keep;
    }
    for (l, (_, rows)) in lists.iter().enumerate() {
        if !rows.is_empty() {
            match decode(l, 0) {
                Ok(c) => heap.push(c),
                Err(e) => taken -= fail(l, e, &mut keep, &mut heap),
            }
        }
    }
    while taken < limit {
        let Some(best) = heap.pop() else { break };
        let (l, r) = (best.list, best.row);
        if let Ok(k) = &mut keep[l] {
            k[r] = true;
            taken += 1;
        }
        if r + 1 >= lists[l].1.len() {
            continue;
        }
        match decode(l, r + 1) {
            Ok(next) => heap.push(next),
            Err(e) => taken -= fail(l, e, &mut keep, &mut heap),
        }
    }
    keep
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

    /// `select_raw` over `lists` in JSON: each list's kept cpus, or its error.
    fn raw_kept(lists: &[ProcList], json: &[Vec<String>], limit: usize) -> Vec<Result<Vec<f64>, String>> {
        let sort = dcos_query::parse_sort("-cpu").unwrap();
        let input: Vec<(&str, Vec<&str>)> = lists
            .iter()
            .zip(json)
            .map(|(l, r)| (l.host.as_str(), r.iter().map(String::as_str).collect()))
            .collect();
        select_raw(&input, &sort, limit)
            .into_iter()
            .zip(lists)
            .map(|(k, l)| {
                k.map(|k| {
                    l.processes
                        .iter()
                        .zip(k)
                        .filter(|(_, t)| *t)
                        .map(|(p, _)| p.cpu_percent.unwrap())
                        .collect()
                })
            })
            .collect()
    }

    #[test]
    fn rows_in_json_are_selected_as_decoded_ones_are_decoding_few() {
        let sort = dcos_query::parse_sort("-cpu").unwrap();
        let json =
            |l: &ProcList| l.processes.iter().map(|p| serde_json::to_string(p).unwrap()).collect::<Vec<_>>();
        // Sorted as k2i sends them: the same table as trim_lists.
        let lists =
            vec![list("a", &[9.0, 5.0, 1.0]), list("b", &[7.0, 5.0, 0.5]), list("c", &[8.0, 6.0, 0.1])];
        let rows: Vec<Vec<String>> = lists.iter().map(json).collect();
        for limit in 0..=9 {
            let mut trimmed = lists.clone();
            trim_lists(&mut trimmed, &sort, Some(limit));
            let want: Vec<Result<Vec<f64>, String>> = trimmed
                .iter()
                .map(|l| Ok(l.processes.iter().map(|p| p.cpu_percent.unwrap()).collect()))
                .collect();
            assert_eq!(raw_kept(&lists, &rows, limit), want, "limit {limit}");
        }
        // Rows past what the limit can reach are never decoded: a broken one there is not seen.
        let mut broken = rows.clone();
        broken[0][2] = r#"{"pid": "not a process"}"#.into();
        assert_eq!(raw_kept(&lists, &broken, 2), [Ok(vec![9.0]), Ok(vec![]), Ok(vec![8.0])]);
        assert_eq!(raw_kept(&lists, &broken, 3), [Ok(vec![9.0]), Ok(vec![7.0]), Ok(vec![8.0])]);
        // Reached, it fails its host alone, whose rows leave the table.
        let kept = raw_kept(&lists, &broken, 9);
        assert!(kept[0].as_ref().is_err_and(|e| e.contains("bad answer")), "{kept:?}");
        assert_eq!(kept[1..], [Ok(vec![7.0, 5.0, 0.5]), Ok(vec![8.0, 6.0, 0.1])]);
    }
}
