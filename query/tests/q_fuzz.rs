//! The fuzz target of the `q` parser: property tests with shrinking (proptest).
//!
//! - Any text, token soup or arbitrary, parses or is refused without a panic; a refusal
//!   points inside the text, at a character boundary; what parses evaluates and costs
//!   without a panic.
//! - An expression generated from the grammar parses, and filters as a plain evaluation
//!   of the same tree says it should.
//!
//! The test suite runs proptest's default of 256 cases of each (`PROPTEST_CASES` sets
//! another number); `scripts/fuzz.sh [CASES]` runs them longer, with the other fuzz
//! targets (tests in modules named `fuzz`).

use dcos_core::model::Process;
use dcos_query::ProcQuery;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use std::sync::Arc;

/// Cases from `PROPTEST_CASES` (default 256); a failure is shrunk and printed, not stored.
fn config() -> Config {
    Config { failure_persistence: None, ..Config::default() }
}

/// A few processes that differ in every field the generated expressions use.
fn table() -> Vec<Process> {
    (1..=6)
        .map(|i: i32| {
            let cmd: Arc<str> = ["init", "nginx", "php-fpm", "bash", "sleep", "k2i"][i as usize - 1].into();
            Process {
                pid: i * 7,
                ppid: i / 2,
                nice: i - 3,
                threads: i as u32,
                cmd: cmd.clone(),
                cmdline: vec![cmd, format!("--n={i}").into()].into(),
                user: if i % 2 == 0 { "root".into() } else { "www".into() },
                cpu_percent: (i % 3 != 0).then_some(f64::from(i) * 2.5),
                start_time: "2026-01-01T00:00:00Z".into(),
                cgroup: "/".into(),
                ..Process::default()
            }
        })
        .collect()
}

const PIECES: &[&str] = &[
    "cpu",
    "pid",
    "user",
    "cmdline",
    "rss",
    "foo",
    "and",
    "or",
    "not",
    "AND",
    "null",
    "&&",
    "||",
    "!",
    "(",
    ")",
    "==",
    "!=",
    "<",
    "<=",
    ">",
    ">=",
    "~",
    "!~",
    "=",
    "&",
    "|",
    "-",
    ".",
    "5",
    "-3",
    "1.5",
    "2K",
    "3MiB",
    "4GB",
    "7x",
    "1e5",
    "99999999999999999999",
    "'a'",
    "\"b\"",
    "'(",
    "\"[",
    "'\\",
    "\"",
    "'",
    "\\",
    "é",
    "日本",
    "\u{0}",
    "\t",
    " ",
    "'.*'",
    "'(a|b'",
    "'\\d+'",
    "'\\w{9}'",
];

fn soup() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::collection::vec((prop::sample::select(PIECES), any::<bool>()), 0..16).prop_map(|parts| {
            parts.into_iter().map(|(p, space)| if space { format!("{p} ") } else { p.to_string() }).collect()
        }),
        any::<String>(),
    ]
}

#[test]
fn fuzz_any_text_parses_or_is_refused_at_a_place_in_it() {
    let procs = table();
    TestRunner::new(config())
        .run(&soup(), |src| {
            match ProcQuery::from_pairs([("q", src.as_str())]) {
                Ok(q) => {
                    let _ = q.select(&procs);
                    let _ = q.check_cost(100_000);
                }
                Err(e) => {
                    let pos = e.position.unwrap_or(0);
                    prop_assert!(pos <= src.len(), "{src:?}: {e}");
                    prop_assert!(src.is_char_boundary(pos), "{src:?}: {e}");
                    prop_assert_eq!(e.parameter, "q");
                }
            }
            Ok(())
        })
        .unwrap();
}

/// An expression tree over fields whose meaning is easy to state.
#[derive(Debug, Clone)]
enum Tree {
    Num { field: &'static str, op: &'static str, value: i64 },
    CpuNull { negate: bool },
    Match { text: String, negate: bool },
    Not(Box<Tree>),
    And(Vec<Tree>),
    Or(Vec<Tree>),
}

const NUMERIC: &[&str] = &["pid", "ppid", "nice", "threads"];
const OPS: &[&str] = &["==", "!=", "<", "<=", ">", ">="];

fn tree() -> impl Strategy<Value = Tree> {
    let leaf = prop_oneof![
        (prop::sample::select(NUMERIC), prop::sample::select(OPS), -5i64..50)
            .prop_map(|(field, op, value)| Tree::Num { field, op, value }),
        any::<bool>().prop_map(|negate| Tree::CpuNull { negate }),
        ("[a-z-]{1,3}", any::<bool>()).prop_map(|(text, negate)| Tree::Match { text, negate }),
    ];
    leaf.prop_recursive(4, 24, 4, |inner| {
        prop_oneof![
            inner.clone().prop_map(|t| Tree::Not(Box::new(t))),
            prop::collection::vec(inner.clone(), 2..4).prop_map(Tree::And),
            prop::collection::vec(inner, 2..4).prop_map(Tree::Or),
        ]
    })
}

impl Tree {
    /// The tree as `q` text: every compound in parentheses, keywords in either spelling.
    fn render(&self, upper: bool) -> String {
        let (and, or, not) = if upper { ("AND", "||", "NOT ") } else { ("and", "or", "!") };
        match self {
            Tree::Num { field, op, value } => format!("{field} {op} {value}"),
            Tree::CpuNull { negate } => format!("cpu {} null", if *negate { "!=" } else { "==" }),
            Tree::Match { text, negate } => format!("cmd {} '{text}'", if *negate { "!~" } else { "~" }),
            Tree::Not(t) => format!("{not}({})", t.render(upper)),
            Tree::And(items) => items
                .iter()
                .map(|t| format!("({})", t.render(upper)))
                .collect::<Vec<_>>()
                .join(&format!(" {and} ")),
            Tree::Or(items) => items
                .iter()
                .map(|t| format!("({})", t.render(upper)))
                .collect::<Vec<_>>()
                .join(&format!(" {or} ")),
        }
    }

    /// What the tree means for `p`, evaluated plainly.
    fn holds(&self, p: &Process) -> bool {
        match self {
            Tree::Num { field, op, value } => {
                let v = match *field {
                    "pid" => i64::from(p.pid),
                    "ppid" => i64::from(p.ppid),
                    "nice" => i64::from(p.nice),
                    _ => i64::from(p.threads),
                };
                match *op {
                    "==" => v == *value,
                    "!=" => v != *value,
                    "<" => v < *value,
                    "<=" => v <= *value,
                    ">" => v > *value,
                    _ => v >= *value,
                }
            }
            Tree::CpuNull { negate } => p.cpu_percent.is_none() != *negate,
            Tree::Match { text, negate } => p.cmd.contains(text.as_str()) != *negate,
            Tree::Not(t) => !t.holds(p),
            Tree::And(items) => items.iter().all(|t| t.holds(p)),
            Tree::Or(items) => items.iter().any(|t| t.holds(p)),
        }
    }
}

#[test]
fn fuzz_a_generated_expression_filters_as_its_tree_says() {
    let procs = table();
    TestRunner::new(config())
        .run(&(tree(), any::<bool>()), |(tree, upper)| {
            let src = tree.render(upper);
            // Past the limits of one expression the parser refuses it, as it should.
            let q = match ProcQuery::from_pairs([("q", src.as_str())]) {
                Ok(q) => q,
                Err(e) if e.message.contains("too many regexes") || e.message.contains("nested") => {
                    return Ok(());
                }
                Err(e) => return Err(TestCaseError::fail(format!("{src:?}: {e}"))),
            };
            for p in &procs {
                prop_assert_eq!(q.matches(p), tree.holds(p), "{} on pid {}", src, p.pid);
            }
            Ok(())
        })
        .unwrap();
}
