//! Reading a daemon's log (tracing's default format, colours or not): the lines of one
//! event and the `key=value` fields on them, e.g. the times middlecon logs with
//! `workload running` or `instance ready`.

/// `line` without terminal colour sequences (`ESC [ ... m`).
pub fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for d in chars.by_ref() {
                if d == 'm' {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The lines of `log` that carry `message`, colours stripped.
pub fn events(log: &str, message: &str) -> Vec<String> {
    log.lines().map(strip_ansi).filter(|l| l.contains(message)).collect()
}

/// The value of field `key` on a (stripped) line: what follows `key=` up to the next space.
pub fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    line.split_whitespace().find_map(|token| token.strip_prefix(key)?.strip_prefix('='))
}

/// Field `key` parsed as a number.
pub fn number(line: &str, key: &str) -> Option<f64> {
    field(line, key)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_of_a_coloured_line() {
        let log = "\u{1b}[2m2026\u{1b}[0m \u{1b}[32m INFO\u{1b}[0m x: instance ready \
                   \u{1b}[3mservice\u{1b}[0m\u{1b}[2m=\u{1b}[0mweb \u{1b}[3minstance\u{1b}[0m\u{1b}[2m=\u{1b}[0mweb.3 \
                   \u{1b}[3mready_ms\u{1b}[0m\u{1b}[2m=\u{1b}[0m41\nother line instance=web.4\n";
        let lines = events(log, "instance ready");
        assert_eq!(lines.len(), 1);
        assert_eq!(field(&lines[0], "instance"), Some("web.3"));
        assert_eq!(number(&lines[0], "ready_ms"), Some(41.0));
        assert_eq!(field(&lines[0], "ready"), None, "a key is a whole word");
    }
}
