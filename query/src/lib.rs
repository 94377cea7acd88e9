//! Filtering, sorting and projecting the process table (the `/v1/proc` query parameters).
//!
//! [`ProcQuery::from_pairs`] reads the decoded query string; [`ProcQuery::select`] filters,
//! counts, sorts and limits a snapshot; [`ProcQuery::project`] turns one process into the
//! JSON the client asked for. Every rejected parameter is a [`QueryError`].
//!
//! - `field`: the field names (and aliases) usable in `sort`, `fields` and `q`.
//! - `expr`: the `q` expression language.
//! - `sort`: sort keys and the top-N selection.
#![forbid(unsafe_code)]

mod error;
mod expr;
mod field;
mod sort;
#[cfg(test)]
mod testutil;

pub use error::QueryError;
pub use expr::size_multiplier;
pub use field::Field;
pub use sort::{compare, parse_sort, SortKey};

use dcos_core::model::Process;
use expr::Expr;

/// The largest accepted `limit`.
pub const MAX_LIMIT: usize = 100_000;
/// What one query may cost: rows times the cost of `q` on one row, where a comparison
/// costs 1 and a regex search 16 (the CPU budget of a request, with the regex count and
/// the regex budget of `q` itself).
pub const MAX_COST: u64 = 4_000_000;

/// The parameters `/v1/proc` accepts.
const PARAMETERS: &[&str] = &[
    "pid",
    "ppid",
    "user",
    "cmd",
    "container",
    "state",
    "q",
    "sort",
    "limit",
    "fields",
    "threads",
    "kernel",
];

/// A parsed `/v1/proc` query. `ProcQuery::default()` matches everything, sorts by pid and
/// projects nothing away.
///
/// The filters are private (see [`ProcQuery::matches`]); the switches and the ordering are
/// public so a handler can apply its own defaults (e.g. `/v1/top`: `sort = -cpu`,
/// `limit = 20` when absent).
#[derive(Debug, Clone, Default)]
pub struct ProcQuery {
    pids: Option<Vec<i32>>,
    ppids: Option<Vec<i32>>,
    user: Option<UserFilter>,
    cmd: Option<String>,
    container: Option<ContainerFilter>,
    states: Option<Vec<char>>,
    expr: Option<Expr>,
    /// Sort keys, most significant first; empty means pid ascending. Ties always end on
    /// pid (then tid) ascending.
    pub sort: Vec<SortKey>,
    /// At most this many processes in the answer (`total` still counts all matches).
    pub limit: Option<usize>,
    /// The projection (`fields`); `None` is the whole process.
    pub fields: Option<Vec<Field>>,
    /// List threads rather than processes (for the caller's sampler; not a filter here).
    pub threads: bool,
    /// Include kernel threads (for the caller; not a filter here). Default false.
    pub kernel: bool,
}

#[derive(Debug, Clone)]
enum UserFilter {
    Name(String),
    /// A number: the uid, or a user literally named so.
    Uid(u32, String),
}

#[derive(Debug, Clone)]
enum ContainerFilter {
    /// Only processes outside any container.
    None,
    /// Container id starting with this (ASCII case-insensitive).
    IdPrefix(String),
}

/// The outcome of [`ProcQuery::select`].
#[derive(Debug, Clone)]
pub struct Selection<'a> {
    /// Matching processes before `limit`.
    pub total: usize,
    /// The matches, sorted and limited.
    pub processes: Vec<&'a Process>,
}

impl ProcQuery {
    /// Parses decoded query-string pairs (e.g. axum's `Query<Vec<(String, String)>>`).
    pub fn from_query(pairs: &[(String, String)]) -> Result<Self, QueryError> {
        Self::from_pairs(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())))
    }

    /// Parses decoded `(name, value)` pairs. Unknown names, repeated names and bad values
    /// are errors.
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Result<Self, QueryError> {
        let mut q = ProcQuery::default();
        let mut seen: Vec<&'static str> = Vec::new();
        for (name, value) in pairs {
            let Some(&param) = PARAMETERS.iter().find(|&&p| p == name) else {
                return Err(unknown_parameter(name));
            };
            if seen.contains(&param) {
                return Err(QueryError::new(
                    param,
                    format!("query parameter {param:?} given more than once"),
                ));
            }
            seen.push(param);
            match param {
                "pid" => q.pids = Some(parse_ids(param, value)?),
                "ppid" => q.ppids = Some(parse_ids(param, value)?),
                "user" => {
                    let v = non_empty(param, value)?;
                    q.user = Some(match v.parse::<u32>() {
                        Ok(uid) => UserFilter::Uid(uid, v.to_owned()),
                        Err(_) => UserFilter::Name(v.to_owned()),
                    });
                }
                "cmd" => q.cmd = Some(non_empty(param, value)?.to_owned()),
                "container" => {
                    let v = non_empty(param, value)?;
                    q.container = Some(if v.eq_ignore_ascii_case("none") {
                        ContainerFilter::None
                    } else {
                        ContainerFilter::IdPrefix(v.to_owned())
                    });
                }
                "state" => q.states = Some(parse_states(value)?),
                "q" => q.expr = Some(Expr::parse(value)?),
                "sort" => q.sort = parse_sort(value)?,
                "limit" => q.limit = Some(parse_limit(value)?),
                "fields" => q.fields = Some(parse_fields(value)?),
                "threads" => q.threads = parse_bool(param, value)?,
                "kernel" => q.kernel = parse_bool(param, value)?,
                _ => return Err(unknown_parameter(name)),
            }
        }
        Ok(q)
    }

    /// Whether `p` passes every filter (`pid`, `ppid`, `user`, `cmd`, `container`,
    /// `state`, `q`). `threads` and `kernel` are the caller's business.
    pub fn matches(&self, p: &Process) -> bool {
        self.pids.as_ref().is_none_or(|ids| ids.contains(&p.pid))
            && self.ppids.as_ref().is_none_or(|ids| ids.contains(&p.ppid))
            && self.user.as_ref().is_none_or(|u| match u {
                UserFilter::Name(name) => *p.user == **name,
                UserFilter::Uid(uid, name) => p.uid == *uid || *p.user == **name,
            })
            && self.cmd.as_ref().is_none_or(|needle| cmd_contains(p, needle))
            && self.container.as_ref().is_none_or(|c| match (c, &p.container) {
                (ContainerFilter::None, c) => c.is_none(),
                (ContainerFilter::IdPrefix(_), None) => false,
                (ContainerFilter::IdPrefix(prefix), Some(c)) => {
                    c.id.get(..prefix.len()).is_some_and(|head| head.eq_ignore_ascii_case(prefix))
                }
            })
            && self.states.as_ref().is_none_or(|s| s.contains(&p.state))
            && self.expr.as_ref().is_none_or(|e| e.eval(p))
    }

    /// 400 unless running `q` over `rows` processes stays within [`MAX_COST`].
    pub fn check_cost(&self, rows: usize) -> Result<(), QueryError> {
        let per_row = self.expr.as_ref().map_or(0, Expr::cost);
        let cost = per_row.saturating_mul(rows as u64);
        if cost <= MAX_COST {
            return Ok(());
        }
        Err(QueryError::new(
            "q",
            format!(
                "too costly for this host: {rows} processes times {per_row} (a comparison costs 1, a \
                 regex 16) is {cost}; at most {MAX_COST} per request (cost budget). Use fewer regexes \
                 or comparisons"
            ),
        ))
    }

    /// Filters `procs`, counts the matches, sorts them (by `sort`, default pid ascending;
    /// nulls last; ties by pid) and keeps the first `limit`.
    pub fn select<'a>(&self, procs: impl IntoIterator<Item = &'a Process>) -> Selection<'a> {
        let mut processes: Vec<&Process> = procs.into_iter().filter(|p| self.matches(p)).collect();
        let total = processes.len();
        sort::sort_limited(&mut processes, &self.sort, self.limit);
        Selection { total, processes }
    }

    /// `p` as JSON: only the `fields` asked for, under their canonical names (keys in
    /// alphabetical order), or the whole process when there is no projection.
    pub fn project(&self, p: &Process) -> serde_json::Value {
        match &self.fields {
            None => serde_json::to_value(p).unwrap_or(serde_json::Value::Null),
            Some(fields) => {
                serde_json::Value::Object(fields.iter().map(|f| (f.name().to_owned(), f.json(p))).collect())
            }
        }
    }
}

fn unknown_parameter(name: &str) -> QueryError {
    QueryError::new(
        "query",
        format!("unknown query parameter {name:?} (parameters: {})", PARAMETERS.join(", ")),
    )
}

/// `cmd` matches a substring of the command name or of the space-joined command line.
fn cmd_contains(p: &Process, needle: &str) -> bool {
    if p.cmd.contains(needle) {
        return true;
    }
    if needle.contains(' ') && p.cmdline.len() > 1 {
        p.cmdline.join(" ").contains(needle)
    } else {
        // Without a space the needle cannot span two arguments.
        p.cmdline.iter().any(|a| a.contains(needle))
    }
}

fn non_empty<'v>(param: &'static str, value: &'v str) -> Result<&'v str, QueryError> {
    let v = value.trim();
    if v.is_empty() {
        Err(QueryError::new(param, format!("{param} must not be empty")))
    } else {
        Ok(v)
    }
}

fn parse_ids(param: &'static str, value: &str) -> Result<Vec<i32>, QueryError> {
    value
        .split(',')
        .map(|item| item.trim().parse::<i32>().ok().filter(|id| *id >= 0))
        .collect::<Option<Vec<i32>>>()
        .ok_or_else(|| {
            QueryError::new(
                param,
                format!(
                    "invalid {param} {value:?}: expected a non-negative integer or a \
                     comma-separated list of them"
                ),
            )
        })
}

fn parse_states(value: &str) -> Result<Vec<char>, QueryError> {
    let states: Vec<char> = value.trim().chars().filter(|&c| c != ',').collect();
    if states.is_empty() || !states.iter().all(char::is_ascii_alphabetic) {
        return Err(QueryError::new(
            "state",
            format!("invalid state {value:?}: expected state letters as in ps, e.g. R or RD"),
        ));
    }
    Ok(states)
}

fn parse_limit(value: &str) -> Result<usize, QueryError> {
    let n = value.trim().parse::<u64>().map_err(|_| {
        QueryError::new("limit", format!("invalid limit {value:?}: expected a non-negative integer"))
    })?;
    usize::try_from(n)
        .ok()
        .filter(|&n| n <= MAX_LIMIT)
        .ok_or_else(|| QueryError::new("limit", format!("limit {n} is too large (at most {MAX_LIMIT})")))
}

fn parse_fields(value: &str) -> Result<Vec<Field>, QueryError> {
    let mut fields = Vec::new();
    for name in value.split(',').map(str::trim) {
        if name.is_empty() {
            return Err(QueryError::new(
                "fields",
                format!("empty field name in {value:?} (expected e.g. pid,cmd,cpu)"),
            ));
        }
        let f = Field::parse(name)
            .ok_or_else(|| QueryError::new("fields", field::unknown_field_message(name, None)))?;
        if !fields.contains(&f) {
            fields.push(f);
        }
    }
    Ok(fields)
}

fn parse_bool(param: &'static str, value: &str) -> Result<bool, QueryError> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        _ => Err(QueryError::new(param, format!("invalid {param} {value:?}: expected true, false, 1 or 0"))),
    }
}

#[cfg(test)]
mod tests {
    use super::testutil::{container, proc, with_cmdline};
    use super::*;
    use serde_json::json;

    fn query(pairs: &[(&str, &str)]) -> ProcQuery {
        ProcQuery::from_pairs(pairs.iter().copied()).unwrap_or_else(|e| panic!("{pairs:?}: {e}"))
    }

    fn error(pairs: &[(&str, &str)]) -> QueryError {
        match ProcQuery::from_pairs(pairs.iter().copied()) {
            Ok(q) => panic!("{pairs:?} parsed: {q:?}"),
            Err(e) => e,
        }
    }

    fn pids(q: &ProcQuery, procs: &[Process]) -> Vec<i32> {
        q.select(procs).processes.iter().map(|p| p.pid).collect()
    }

    /// A small table: pids 1..=6 with varied users, commands, states and containers.
    fn table() -> Vec<Process> {
        let mut t = vec![
            with_cmdline(proc(1), &["/sbin/init", "splash"]),
            with_cmdline(proc(2), &["/usr/sbin/nginx", "-g", "daemon off;"]),
            with_cmdline(proc(3), &["php-fpm: pool www"]),
            with_cmdline(proc(4), &["php-fpm: pool www"]),
            with_cmdline(proc(5), &["/usr/bin/postgres", "-D", "/var/lib/pg"]),
            with_cmdline(proc(6), &["bash"]),
        ];
        t[1].ppid = 1;
        t[2].ppid = 2;
        t[3].ppid = 2;
        t[2].user = "www".into();
        t[2].uid = 33;
        t[3].user = "www".into();
        t[3].uid = 33;
        t[4].user = "postgres".into();
        t[4].uid = 70;
        t[2].state = 'R';
        t[4].state = 'D';
        t[2].container = container("abc123", "web");
        t[3].container = container("abc999", "web2");
        t[4].container = container("def456", "db");
        for (p, cpu) in t.iter_mut().zip([Some(0.5), Some(3.0), Some(25.0), Some(25.0), None, Some(1.0)]) {
            p.cpu_percent = cpu;
        }
        t
    }

    #[test]
    fn a_query_costs_rows_times_predicates_and_a_regex_sixteen() {
        let q = query(&[("q", "cmdline ~ 'a' and pid > 1 and user == 'x'")]);
        let per_row = 16 + 1 + 1;
        q.check_cost((MAX_COST / per_row) as usize).unwrap();
        let e = q.check_cost((MAX_COST / per_row) as usize + 1).unwrap_err();
        assert_eq!(e.parameter, "q");
        assert!(e.message.contains("cost budget") && e.message.contains("at most 4000000"), "{e}");
        query(&[("pid", "1")]).check_cost(usize::MAX).unwrap();
    }

    #[test]
    fn default_matches_everything_by_pid() {
        let q = ProcQuery::default();
        let mut t = table();
        t.reverse();
        let s = q.select(&t);
        assert_eq!(s.total, 6);
        assert_eq!(s.processes.iter().map(|p| p.pid).collect::<Vec<_>>(), [1, 2, 3, 4, 5, 6]);
        assert!(!q.threads && !q.kernel);
        assert_eq!(query(&[]).limit, None);
    }

    #[test]
    fn pid_and_ppid() {
        let t = table();
        assert_eq!(pids(&query(&[("pid", "3")]), &t), [3]);
        assert_eq!(pids(&query(&[("pid", "5,1, 3")]), &t), [1, 3, 5]);
        assert_eq!(pids(&query(&[("pid", "99")]), &t), Vec::<i32>::new());
        assert_eq!(pids(&query(&[("ppid", "2")]), &t), [3, 4]);
        assert_eq!(pids(&query(&[("ppid", "1,2"), ("pid", "2,3")]), &t), [2, 3]);
    }

    #[test]
    fn user_by_name_or_uid() {
        let t = table();
        assert_eq!(pids(&query(&[("user", "www")]), &t), [3, 4]);
        assert_eq!(pids(&query(&[("user", "33")]), &t), [3, 4]);
        assert_eq!(pids(&query(&[("user", "0")]), &t), [1, 2, 6]);
        assert_eq!(pids(&query(&[("user", "nobody")]), &t), Vec::<i32>::new());
    }

    #[test]
    fn cmd_substring() {
        let t = table();
        assert_eq!(pids(&query(&[("cmd", "php")]), &t), [3, 4]);
        // In the command line only, within one argument and across arguments.
        assert_eq!(pids(&query(&[("cmd", "/var/lib")]), &t), [5]);
        assert_eq!(pids(&query(&[("cmd", "-g daemon")]), &t), [2]);
        assert_eq!(pids(&query(&[("cmd", "bash")]), &t), [6]);
        assert_eq!(pids(&query(&[("cmd", "BASH")]), &t), Vec::<i32>::new());
    }

    #[test]
    fn container_prefix_or_none() {
        let t = table();
        assert_eq!(pids(&query(&[("container", "abc")]), &t), [3, 4]);
        assert_eq!(pids(&query(&[("container", "ABC1")]), &t), [3]);
        assert_eq!(pids(&query(&[("container", "def456")]), &t), [5]);
        assert_eq!(pids(&query(&[("container", "def4567")]), &t), Vec::<i32>::new());
        assert_eq!(pids(&query(&[("container", "none")]), &t), [1, 2, 6]);
    }

    #[test]
    fn state_letters() {
        let t = table();
        assert_eq!(pids(&query(&[("state", "R")]), &t), [3]);
        assert_eq!(pids(&query(&[("state", "RD")]), &t), [3, 5]);
        assert_eq!(pids(&query(&[("state", "R,D")]), &t), [3, 5]);
        assert_eq!(pids(&query(&[("state", "r")]), &t), Vec::<i32>::new());
    }

    #[test]
    fn q_expression_combines_with_other_filters() {
        let t = table();
        let q = query(&[("q", r#"cpu > 5 and user == "www" and cmdline ~ "php-fpm""#)]);
        assert_eq!(pids(&q, &t), [3, 4]);
        let q = query(&[("q", "cpu > 5 or container == null"), ("pid", "1,3,5")]);
        assert_eq!(pids(&q, &t), [1, 3]);
        assert_eq!(pids(&query(&[("q", "cpu == null")]), &t), [5]);
        assert_eq!(pids(&query(&[("q", "runtime == 'docker' and not container_name ~ '^web'")]), &t), [5]);
    }

    #[test]
    fn sort_directions_ties_and_nulls() {
        let t = table();
        // cpu: 1:0.5 2:3 3:25 4:25 5:null 6:1
        assert_eq!(pids(&query(&[("sort", "-cpu")]), &t), [3, 4, 2, 6, 1, 5]);
        assert_eq!(pids(&query(&[("sort", "cpu")]), &t), [1, 6, 2, 3, 4, 5]);
        assert_eq!(pids(&query(&[("sort", "-pid")]), &t), [6, 5, 4, 3, 2, 1]);
        assert_eq!(pids(&query(&[("sort", "user")]), &t), [5, 1, 2, 6, 3, 4]);
        assert_eq!(pids(&query(&[("sort", "-user,-pid")]), &t), [4, 3, 6, 2, 1, 5]);
        // Nulls last both ways: container (id) is null for 1, 2, 6.
        assert_eq!(pids(&query(&[("sort", "container")]), &t), [3, 4, 5, 1, 2, 6]);
        assert_eq!(pids(&query(&[("sort", "-container")]), &t), [5, 4, 3, 1, 2, 6]);
        // Text sort of cmdline compares the joined text.
        assert_eq!(pids(&query(&[("sort", "args")]), &t), [1, 5, 2, 6, 3, 4]);
    }

    #[test]
    fn limit_counts_total_before_limiting() {
        let t = table();
        let q = query(&[("sort", "-cpu"), ("limit", "2")]);
        assert_eq!(q.limit, Some(2));
        let s = q.select(&t);
        assert_eq!(s.total, 6);
        assert_eq!(s.processes.iter().map(|p| p.pid).collect::<Vec<_>>(), [3, 4]);
        let s = query(&[("limit", "0"), ("user", "www")]).select(&t);
        assert_eq!((s.total, s.processes.len()), (2, 0));
        let s = query(&[("limit", "100000")]).select(&t);
        assert_eq!((s.total, s.processes.len()), (6, 6));
    }

    #[test]
    fn top_n_of_many() {
        let many: Vec<Process> = (1..=10_000)
            .map(|pid| {
                let mut p = proc(pid);
                p.cpu_percent = Some(f64::from((pid * 7919) % 1000) / 10.0);
                p
            })
            .collect();
        let q = query(&[("sort", "-cpu"), ("limit", "5")]);
        let s = q.select(&many);
        assert_eq!(s.total, 10_000);
        let cpus: Vec<f64> = s.processes.iter().filter_map(|p| p.cpu_percent).collect();
        assert_eq!(cpus, [99.9; 5]);
        let got: Vec<i32> = s.processes.iter().map(|p| p.pid).collect();
        let mut want: Vec<i32> = many.iter().filter(|p| p.cpu_percent == Some(99.9)).map(|p| p.pid).collect();
        want.truncate(5);
        assert_eq!(got, want);
    }

    #[test]
    fn projection() {
        let t = table();
        let q = query(&[("fields", "pid,cpu, cmdline,container,runtime,tty")]);
        assert_eq!(
            q.fields.as_deref(),
            Some(
                &[
                    Field::Pid,
                    Field::CpuPercent,
                    Field::Cmdline,
                    Field::Container,
                    Field::Runtime,
                    Field::Tty
                ][..]
            )
        );
        assert_eq!(
            q.project(&t[2]),
            json!({
                "pid": 3,
                "cpu_percent": 25.0,
                "cmdline": ["php-fpm: pool www"],
                "container": {"id": "abc123", "runtime": "docker", "name": "web"},
                "runtime": "docker",
                "tty": null,
            })
        );
        assert_eq!(
            q.project(&t[0]),
            json!({
                "pid": 1,
                "cpu_percent": 0.5,
                "cmdline": ["/sbin/init", "splash"],
                "container": null,
                "runtime": null,
                "tty": null,
            })
        );
        // Repeats collapse; no projection is the full model.
        assert_eq!(query(&[("fields", "pid,pid")]).fields, Some(vec![Field::Pid]));
        assert_eq!(ProcQuery::default().project(&t[4]), serde_json::to_value(&t[4]).unwrap());
    }

    #[test]
    fn switches() {
        let q = query(&[("threads", "true"), ("kernel", "1")]);
        assert!(q.threads && q.kernel);
        let q = query(&[("threads", "0"), ("kernel", "FALSE")]);
        assert!(!q.threads && !q.kernel);
        // Not filters: they do not change what matches.
        assert_eq!(query(&[("threads", "true")]).select(&table()).total, 6);
    }

    #[test]
    fn from_query_takes_owned_pairs() {
        let pairs = vec![("pid".to_owned(), "3".to_owned()), ("fields".to_owned(), "pid".to_owned())];
        let q = ProcQuery::from_query(&pairs).unwrap();
        assert_eq!(pids(&q, &table()), [3]);
    }

    #[test]
    fn parameter_errors() {
        // (pairs, parameter at fault, start of the message)
        type Case = (&'static [(&'static str, &'static str)], &'static str, &'static str);
        let cases: &[Case] = &[
            (&[("foo", "1")], "query", "unknown query parameter \"foo\" (parameters: pid, ppid,"),
            (&[("pid", "1"), ("pid", "2")], "pid", "query parameter \"pid\" given more than once"),
            (&[("pid", "abc")], "pid", "invalid pid \"abc\": expected a non-negative integer"),
            (&[("pid", "1,,2")], "pid", "invalid pid \"1,,2\""),
            (&[("pid", "-1")], "pid", "invalid pid \"-1\""),
            (&[("pid", "")], "pid", "invalid pid \"\""),
            (&[("ppid", "99999999999")], "ppid", "invalid ppid \"99999999999\""),
            (&[("user", " ")], "user", "user must not be empty"),
            (&[("cmd", "")], "cmd", "cmd must not be empty"),
            (&[("container", "")], "container", "container must not be empty"),
            (&[("state", "R1")], "state", "invalid state \"R1\": expected state letters"),
            (&[("state", "")], "state", "invalid state \"\""),
            (&[("q", "cpu > ")], "q", "expected a value after '>' at position 6"),
            (&[("sort", "-nope")], "sort", "unknown field \"nope\" (fields: pid,"),
            (&[("limit", "-1")], "limit", "invalid limit \"-1\": expected a non-negative integer"),
            (&[("limit", "ten")], "limit", "invalid limit \"ten\""),
            (&[("limit", "100001")], "limit", "limit 100001 is too large (at most 100000)"),
            (&[("limit", "99999999999999999999999")], "limit", "invalid limit"),
            (&[("fields", "pid,,cmd")], "fields", "empty field name in \"pid,,cmd\""),
            (&[("fields", "pid,cpux")], "fields", "unknown field \"cpux\" (fields: pid,"),
            (&[("threads", "yes")], "threads", "invalid threads \"yes\": expected true, false, 1 or 0"),
            (&[("kernel", "")], "kernel", "invalid kernel \"\": expected true, false, 1 or 0"),
        ];
        for &(pairs, param, want) in cases {
            let e = error(pairs);
            assert_eq!(e.parameter, param, "{pairs:?}: {e}");
            assert!(e.message.starts_with(want), "{pairs:?}: got {:?}, want {want:?}", e.message);
            let position = if param == "q" { Some(6) } else { None };
            assert_eq!(e.position, position, "{pairs:?}");
        }
        assert_eq!(error(&[("q", "cpu > ")]).to_string(), "q: expected a value after '>' at position 6");
    }
}
