//! Ordering processes: sort keys (`-cpu,pid`), their total, deterministic comparison, and
//! picking the top N of many without sorting them all.

use super::error::QueryError;
use super::field::{cmp_values, unknown_field_message, Field};
use dcos_core::model::Process;
use std::cmp::Ordering;

/// One sort key: a field and a direction. Null values sort last in both directions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SortKey {
    pub field: Field,
    pub descending: bool,
}

/// Parses a `sort` value: comma-separated fields, each optionally prefixed with `-`
/// (descending) or `+` (ascending, the default), most significant first.
/// `/v1/top` uses it with its default `-cpu`.
pub fn parse_sort(s: &str) -> Result<Vec<SortKey>, QueryError> {
    if s.trim().is_empty() {
        return Err(QueryError::new("sort", "empty sort (expected a field, e.g. -cpu)"));
    }
    s.split(',')
        .map(|item| {
            let item = item.trim();
            let (descending, name) = match item.strip_prefix('-') {
                Some(rest) => (true, rest),
                None => (false, item.strip_prefix('+').unwrap_or(item)),
            };
            let name = name.trim();
            if name.is_empty() {
                return Err(QueryError::new(
                    "sort",
                    format!("empty sort key in {s:?} (expected a field, e.g. -cpu)"),
                ));
            }
            let field = Field::parse(name)
                .ok_or_else(|| QueryError::new("sort", unknown_field_message(name, None)))?;
            Ok(SortKey { field, descending })
        })
        .collect()
}

/// Compares by `keys`, then by pid and tid ascending, so that equal keys still give one
/// order.
pub fn compare(keys: &[SortKey], a: &Process, b: &Process) -> Ordering {
    keys.iter()
        .map(|k| cmp_values(&k.field.value(a), &k.field.value(b), k.descending))
        .find(|o| o.is_ne())
        .unwrap_or(Ordering::Equal)
        .then_with(|| a.pid.cmp(&b.pid))
        .then_with(|| a.tid.cmp(&b.tid))
}

/// Sorts `procs` by `keys` and keeps the first `limit`. When `limit` is small against
/// the number of processes, the first `limit` are picked in linear time before only they
/// get sorted.
pub(crate) fn sort_limited(procs: &mut Vec<&Process>, keys: &[SortKey], limit: Option<usize>) {
    let cmp = |a: &&Process, b: &&Process| compare(keys, a, b);
    match limit {
        Some(0) => procs.clear(),
        Some(n) if n < procs.len() / 2 => {
            procs.select_nth_unstable_by(n - 1, cmp);
            procs.truncate(n);
            procs.sort_unstable_by(cmp);
        }
        _ => {
            // The comparison is a total order (ties end at pid, tid), so unstable is fine.
            procs.sort_unstable_by(cmp);
            if let Some(n) = limit {
                procs.truncate(n);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::proc;

    fn key(field: Field, descending: bool) -> SortKey {
        SortKey { field, descending }
    }

    #[test]
    fn parses_keys_and_directions() {
        assert_eq!(parse_sort("-cpu").unwrap(), [key(Field::CpuPercent, true)]);
        assert_eq!(parse_sort("pid").unwrap(), [key(Field::Pid, false)]);
        assert_eq!(parse_sort("+rss").unwrap(), [key(Field::MemRssBytes, false)]);
        assert_eq!(
            parse_sort("-mem, user ,start_time").unwrap(),
            [key(Field::MemPercent, true), key(Field::User, false), key(Field::StartTime, false)]
        );
        // A `+` in a URL decodes to a space.
        assert_eq!(parse_sort(" cpu").unwrap(), [key(Field::CpuPercent, false)]);
    }

    #[test]
    fn sort_errors() {
        let e = parse_sort("-cpux").unwrap_err();
        assert_eq!(e.parameter, "sort");
        assert!(e.message.starts_with("unknown field \"cpux\" (fields: pid,"), "{}", e.message);
        assert_eq!(e.position, None);
        assert_eq!(parse_sort("").unwrap_err().message, "empty sort (expected a field, e.g. -cpu)");
        assert_eq!(
            parse_sort("cpu,,pid").unwrap_err().message,
            "empty sort key in \"cpu,,pid\" (expected a field, e.g. -cpu)"
        );
        assert!(parse_sort("-").is_err());
    }

    #[test]
    fn ties_break_on_pid_then_tid() {
        let mut a = proc(5);
        let b = proc(3);
        a.user = b.user.clone();
        let keys = [key(Field::User, true)];
        assert_eq!(compare(&keys, &a, &b), Ordering::Greater);
        let mut t1 = proc(5);
        t1.tid = Some(6);
        let mut t2 = proc(5);
        t2.tid = Some(7);
        assert_eq!(compare(&keys, &t1, &t2), Ordering::Less);
    }

    #[test]
    fn partial_selection_equals_full_sort() {
        // Many ties and nulls: the top N picked in linear time must be the full sort's.
        let procs: Vec<_> = (0..1000)
            .map(|i| {
                let mut p = proc(1000 - i);
                p.cpu_percent = (i % 7 != 0).then_some(f64::from(i % 13));
                p.user = if i % 2 == 0 { "a" } else { "b" }.into();
                p
            })
            .collect();
        for keys in [
            parse_sort("-cpu").unwrap(),
            parse_sort("cpu").unwrap(),
            parse_sort("user,-cpu").unwrap(),
            vec![],
        ] {
            let mut full: Vec<&Process> = procs.iter().collect();
            sort_limited(&mut full, &keys, None);
            for n in [0, 1, 5, 100, 499, 500, 999, 1000, 5000] {
                let mut top: Vec<&Process> = procs.iter().collect();
                sort_limited(&mut top, &keys, Some(n));
                let want: Vec<i32> = full.iter().take(n).map(|p| p.pid).collect();
                let got: Vec<i32> = top.iter().map(|p| p.pid).collect();
                assert_eq!(got, want, "{keys:?} limit {n}");
            }
        }
    }
}
