//! Process fields by name: the [`Field`] enum, its canonical names and aliases, whether
//! it is numeric or text, and reading it from a [`Process`] (as a comparable value for
//! filters and sorting, or as JSON for projections).

use dcos_core::model::Process;
use std::borrow::Cow;
use std::cmp::Ordering;
use std::fmt;
use std::sync::Arc;

/// A process field usable in `sort`, `fields` and `q`.
///
/// [`Field::name`] is the canonical snake_case name of the JSON model; [`Field::parse`]
/// also takes the short aliases (`cpu`, `mem`, `rss`, `vsz`, `time`, `start`, `comm`,
/// `args`, `io_read`, `io_write`, `container_id`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Field {
    Pid,
    Tid,
    Ppid,
    Pgid,
    Sid,
    User,
    Uid,
    Gid,
    State,
    Nice,
    Threads,
    Cmd,
    /// Compares as its arguments joined by single spaces.
    Cmdline,
    Exe,
    StartTime,
    CpuPercent,
    CpuTimeS,
    MemRssBytes,
    MemVszBytes,
    MemPercent,
    IoReadBytes,
    IoWriteBytes,
    Tty,
    Cgroup,
    /// The container id in filters and sorting; the whole `{id, runtime, name}` object
    /// (or `null`) in a projection.
    Container,
    /// The container's name, `null` outside a container.
    ContainerName,
    /// The container's runtime (`docker`, `cri-o`, ...), `null` outside a container.
    Runtime,
}

/// Whether a field compares as a number or as text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Number,
    Text,
}

const ALIASES: &[(&str, Field)] = &[
    ("cpu", Field::CpuPercent),
    ("mem", Field::MemPercent),
    ("rss", Field::MemRssBytes),
    ("vsz", Field::MemVszBytes),
    ("time", Field::CpuTimeS),
    ("start", Field::StartTime),
    ("comm", Field::Cmd),
    ("args", Field::Cmdline),
    ("io_read", Field::IoReadBytes),
    ("io_write", Field::IoWriteBytes),
    ("container_id", Field::Container),
];

impl Field {
    /// Every field, in the order of the JSON model.
    pub const ALL: &'static [Field] = &[
        Field::Pid,
        Field::Tid,
        Field::Ppid,
        Field::Pgid,
        Field::Sid,
        Field::User,
        Field::Uid,
        Field::Gid,
        Field::State,
        Field::Nice,
        Field::Threads,
        Field::Cmd,
        Field::Cmdline,
        Field::Exe,
        Field::StartTime,
        Field::CpuPercent,
        Field::CpuTimeS,
        Field::MemRssBytes,
        Field::MemVszBytes,
        Field::MemPercent,
        Field::IoReadBytes,
        Field::IoWriteBytes,
        Field::Tty,
        Field::Cgroup,
        Field::Container,
        Field::ContainerName,
        Field::Runtime,
    ];

    /// The canonical snake_case name (the JSON key in projections).
    pub fn name(self) -> &'static str {
        match self {
            Field::Pid => "pid",
            Field::Tid => "tid",
            Field::Ppid => "ppid",
            Field::Pgid => "pgid",
            Field::Sid => "sid",
            Field::User => "user",
            Field::Uid => "uid",
            Field::Gid => "gid",
            Field::State => "state",
            Field::Nice => "nice",
            Field::Threads => "threads",
            Field::Cmd => "cmd",
            Field::Cmdline => "cmdline",
            Field::Exe => "exe",
            Field::StartTime => "start_time",
            Field::CpuPercent => "cpu_percent",
            Field::CpuTimeS => "cpu_time_s",
            Field::MemRssBytes => "mem_rss_bytes",
            Field::MemVszBytes => "mem_vsz_bytes",
            Field::MemPercent => "mem_percent",
            Field::IoReadBytes => "io_read_bytes",
            Field::IoWriteBytes => "io_write_bytes",
            Field::Tty => "tty",
            Field::Cgroup => "cgroup",
            Field::Container => "container",
            Field::ContainerName => "container_name",
            Field::Runtime => "runtime",
        }
    }

    /// A field from its canonical name or an alias, ASCII case-insensitively.
    pub fn parse(name: &str) -> Option<Field> {
        Field::ALL
            .iter()
            .copied()
            .find(|f| f.name().eq_ignore_ascii_case(name))
            .or_else(|| ALIASES.iter().find(|(alias, _)| alias.eq_ignore_ascii_case(name)).map(|&(_, f)| f))
    }

    pub(crate) fn kind(self) -> Kind {
        match self {
            Field::User
            | Field::State
            | Field::Cmd
            | Field::Cmdline
            | Field::Exe
            | Field::StartTime
            | Field::Tty
            | Field::Cgroup
            | Field::Container
            | Field::ContainerName
            | Field::Runtime => Kind::Text,
            _ => Kind::Number,
        }
    }

    /// The field of `p` as a comparable value.
    pub(crate) fn value(self, p: &Process) -> Value<'_> {
        fn opt_num<T: Into<f64> + Copy>(v: Option<T>) -> Value<'static> {
            v.map_or(Value::Null, |v| Value::Num(v.into()))
        }
        fn opt_str(v: Option<&str>) -> Value<'_> {
            v.map_or(Value::Null, |s| Value::Text(Text::Str(s)))
        }
        fn text(s: &str) -> Value<'_> {
            Value::Text(Text::Str(s))
        }
        match self {
            Field::Pid => Value::Num(p.pid.into()),
            Field::Tid => opt_num(p.tid),
            Field::Ppid => Value::Num(p.ppid.into()),
            Field::Pgid => Value::Num(p.pgid.into()),
            Field::Sid => Value::Num(p.sid.into()),
            Field::User => text(&p.user),
            Field::Uid => Value::Num(p.uid.into()),
            Field::Gid => Value::Num(p.gid.into()),
            Field::State => {
                let mut buf = [0u8; 4];
                let len = p.state.encode_utf8(&mut buf).len();
                Value::Text(Text::Char(buf, len))
            }
            Field::Nice => Value::Num(p.nice.into()),
            Field::Threads => Value::Num(p.threads.into()),
            Field::Cmd => text(&p.cmd),
            Field::Cmdline => Value::Text(Text::Args(&p.cmdline)),
            Field::Exe => opt_str(p.exe.as_deref()),
            Field::StartTime => text(&p.start_time),
            Field::CpuPercent => opt_num(p.cpu_percent),
            Field::CpuTimeS => Value::Num(p.cpu_time_s),
            // Byte counts beyond 2^53 lose precision; no process gets near that.
            Field::MemRssBytes => Value::Num(p.mem_rss_bytes as f64),
            Field::MemVszBytes => Value::Num(p.mem_vsz_bytes as f64),
            Field::MemPercent => Value::Num(p.mem_percent),
            Field::IoReadBytes => p.io_read_bytes.map_or(Value::Null, |b| Value::Num(b as f64)),
            Field::IoWriteBytes => p.io_write_bytes.map_or(Value::Null, |b| Value::Num(b as f64)),
            Field::Tty => opt_str(p.tty.as_deref()),
            Field::Cgroup => text(&p.cgroup),
            Field::Container => opt_str(p.container.as_ref().map(|c| &*c.id)),
            Field::ContainerName => opt_str(p.container.as_ref().map(|c| &*c.name)),
            Field::Runtime => opt_str(p.container.as_ref().map(|c| c.runtime.as_str())),
        }
    }

    /// The field of `p` as it appears in the JSON model (`null` for an absent value).
    pub(crate) fn json(self, p: &Process) -> serde_json::Value {
        use serde_json::Value as J;
        fn s(v: &str) -> J {
            J::String(v.to_owned())
        }
        fn opt<T: Into<J>>(v: Option<T>) -> J {
            v.map_or(J::Null, Into::into)
        }
        match self {
            Field::Pid => p.pid.into(),
            Field::Tid => opt(p.tid),
            Field::Ppid => p.ppid.into(),
            Field::Pgid => p.pgid.into(),
            Field::Sid => p.sid.into(),
            Field::User => s(&p.user),
            Field::Uid => p.uid.into(),
            Field::Gid => p.gid.into(),
            Field::State => J::String(p.state.to_string()),
            Field::Nice => p.nice.into(),
            Field::Threads => p.threads.into(),
            Field::Cmd => s(&p.cmd),
            Field::Cmdline => J::Array(p.cmdline.iter().map(|a| s(a)).collect()),
            Field::Exe => p.exe.as_deref().map_or(J::Null, s),
            Field::StartTime => s(&p.start_time),
            Field::CpuPercent => opt(p.cpu_percent),
            Field::CpuTimeS => p.cpu_time_s.into(),
            Field::MemRssBytes => p.mem_rss_bytes.into(),
            Field::MemVszBytes => p.mem_vsz_bytes.into(),
            Field::MemPercent => p.mem_percent.into(),
            Field::IoReadBytes => opt(p.io_read_bytes),
            Field::IoWriteBytes => opt(p.io_write_bytes),
            Field::Tty => p.tty.as_deref().map_or(J::Null, s),
            Field::Cgroup => s(&p.cgroup),
            Field::Container => match &p.container {
                Some(c) => serde_json::to_value(&**c).unwrap_or(J::Null),
                None => J::Null,
            },
            Field::ContainerName => p.container.as_ref().map_or(J::Null, |c| s(&c.name)),
            Field::Runtime => p.container.as_ref().map_or(J::Null, |c| s(c.runtime.as_str())),
        }
    }
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// `unknown field "x" (fields: ...)`, with ` at position N` after the name when given.
pub(crate) fn unknown_field_message(name: &str, position: Option<usize>) -> String {
    let canonical: Vec<&str> = Field::ALL.iter().map(|f| f.name()).collect();
    let aliases: Vec<&str> = ALIASES.iter().map(|&(a, _)| a).collect();
    let at = position.map(|p| format!(" at position {p}")).unwrap_or_default();
    format!("unknown field {name:?}{at} (fields: {}; aliases: {})", canonical.join(", "), aliases.join(", "))
}

/// A field's value, borrowed from the process where possible.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Value<'a> {
    Null,
    Num(f64),
    Text(Text<'a>),
}

/// A text value; `cmdline` stays a slice and reads as its arguments joined by spaces.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Text<'a> {
    Str(&'a str),
    /// One char, UTF-8 encoded: the buffer and its used length.
    Char([u8; 4], usize),
    Args(&'a [Arc<str>]),
}

impl Text<'_> {
    /// The first piece of the text and the arguments that follow it (each after a space).
    fn pieces(&self) -> (&[u8], &[Arc<str>]) {
        match self {
            Text::Str(s) => (s.as_bytes(), &[]),
            Text::Char(buf, len) => (buf.get(..*len).unwrap_or_default(), &[]),
            Text::Args(args) => match args.split_first() {
                Some((first, rest)) => (first.as_bytes(), rest),
                None => (&[], &[]),
            },
        }
    }

    /// The UTF-8 bytes of the text, without building it.
    pub(crate) fn bytes(&self) -> impl Iterator<Item = u8> + '_ {
        let (head, rest) = self.pieces();
        head.iter().copied().chain(rest.iter().flat_map(|a| std::iter::once(b' ').chain(a.bytes())))
    }

    /// The text as one string (allocates only for a multi-argument cmdline).
    pub(crate) fn as_str(&self) -> Cow<'_, str> {
        match self {
            Text::Args(args) if args.len() > 1 => Cow::Owned(args.join(" ")),
            _ => String::from_utf8_lossy(self.pieces().0),
        }
    }

    /// Byte-wise (= code point) order, as `str` orders.
    pub(crate) fn cmp_str(&self, other: &str) -> Ordering {
        self.bytes().cmp(other.bytes())
    }
}

/// Sort order of two values of one field: nulls last whatever the direction.
pub(crate) fn cmp_values(a: &Value<'_>, b: &Value<'_>, descending: bool) -> Ordering {
    let ord = match (a, b) {
        (Value::Null, Value::Null) => return Ordering::Equal,
        (Value::Null, _) => return Ordering::Greater,
        (_, Value::Null) => return Ordering::Less,
        (Value::Num(x), Value::Num(y)) => x.total_cmp(y),
        (Value::Text(x), Value::Text(y)) => x.bytes().cmp(y.bytes()),
        // One field never yields both kinds; order numbers first to stay total.
        (Value::Num(_), Value::Text(_)) => Ordering::Less,
        (Value::Text(_), Value::Num(_)) => Ordering::Greater,
    };
    if descending {
        ord.reverse()
    } else {
        ord
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{container, proc};

    #[test]
    fn canonical_names_round_trip() {
        for &f in Field::ALL {
            assert_eq!(Field::parse(f.name()), Some(f), "{f}");
        }
        assert_eq!(Field::parse("CPU_Percent"), Some(Field::CpuPercent));
        assert_eq!(Field::parse("cpux"), None);
        assert_eq!(Field::parse(""), None);
    }

    #[test]
    fn aliases() {
        for (name, f) in ALIASES {
            assert_eq!(Field::parse(name), Some(*f), "{name}");
        }
        // The names users type most, in any case; JSON names as they are.
        let cases = [
            ("CPU", Field::CpuPercent),
            ("rss", Field::MemRssBytes),
            ("args", Field::Cmdline),
            ("container", Field::Container),
            ("container_name", Field::ContainerName),
            ("runtime", Field::Runtime),
        ];
        for (name, f) in cases {
            assert_eq!(Field::parse(name), Some(f), "{name}");
        }
    }

    #[test]
    fn kinds() {
        assert_eq!(Field::CpuPercent.kind(), Kind::Number);
        assert_eq!(Field::Tid.kind(), Kind::Number);
        assert_eq!(Field::State.kind(), Kind::Text);
        assert_eq!(Field::Cmdline.kind(), Kind::Text);
        assert_eq!(Field::Runtime.kind(), Kind::Text);
    }

    #[test]
    fn unknown_field_lists_the_valid_ones() {
        let m = unknown_field_message("cpux", Some(0));
        assert!(m.starts_with("unknown field \"cpux\" at position 0 (fields: pid, tid, ppid"), "{m}");
        assert!(m.contains("aliases: cpu, mem"), "{m}");
    }

    #[test]
    fn cmdline_reads_as_joined_text() {
        let mut p = proc(1);
        p.cmdline = vec!["php-fpm:".into(), "pool".into(), "www".into()].into();
        let Value::Text(t) = Field::Cmdline.value(&p) else { panic!("not text") };
        assert_eq!(t.as_str(), "php-fpm: pool www");
        assert_eq!(t.bytes().collect::<Vec<u8>>(), b"php-fpm: pool www");
        assert_eq!(t.cmp_str("php-fpm: pool www"), Ordering::Equal);
        assert_eq!(t.cmp_str("php-fpm: pool"), Ordering::Greater);
        p.cmdline = Vec::<Arc<str>>::new().into();
        let Value::Text(t) = Field::Cmdline.value(&p) else { panic!("not text") };
        assert_eq!(t.as_str(), "");
    }

    #[test]
    fn state_reads_as_one_letter() {
        let mut p = proc(1);
        p.state = 'D';
        let Value::Text(t) = Field::State.value(&p) else { panic!("not text") };
        assert_eq!(t.as_str(), "D");
    }

    #[test]
    fn container_fields() {
        let mut p = proc(1);
        assert!(matches!(Field::Container.value(&p), Value::Null));
        assert_eq!(Field::Container.json(&p), serde_json::Value::Null);
        p.container = container("abc123", "web");
        let Value::Text(t) = Field::Container.value(&p) else { panic!("not text") };
        assert_eq!(t.as_str(), "abc123");
        let Value::Text(t) = Field::Runtime.value(&p) else { panic!("not text") };
        assert_eq!(t.as_str(), "docker");
        assert_eq!(
            Field::Container.json(&p),
            serde_json::json!({"id": "abc123", "runtime": "docker", "name": "web"})
        );
        assert_eq!(Field::ContainerName.json(&p), "web");
    }

    #[test]
    fn json_matches_the_serde_model() {
        let mut p = proc(7);
        p.tid = Some(8);
        p.cpu_percent = Some(1.5);
        p.io_read_bytes = Some(10);
        p.tty = Some("pts/1".into());
        p.container = container("abc", "db");
        let full = serde_json::to_value(&p).unwrap();
        for &f in Field::ALL {
            if let Some(v) = full.get(f.name()) {
                assert_eq!(&f.json(&p), v, "{f}");
            }
        }
        assert_eq!(Field::Tid.json(&proc(1)), serde_json::Value::Null);
    }

    #[test]
    fn nulls_sort_last_both_ways() {
        let n = Value::Null;
        let one = Value::Num(1.0);
        let two = Value::Num(2.0);
        assert_eq!(cmp_values(&one, &two, false), Ordering::Less);
        assert_eq!(cmp_values(&one, &two, true), Ordering::Greater);
        assert_eq!(cmp_values(&n, &one, false), Ordering::Greater);
        assert_eq!(cmp_values(&n, &one, true), Ordering::Greater);
        assert_eq!(cmp_values(&one, &n, true), Ordering::Less);
        assert_eq!(cmp_values(&n, &n, true), Ordering::Equal);
    }
}
