//! The `q` filter expression: lexer, recursive-descent parser (type-checked against the
//! fields) and evaluator.
//!
//! ```text
//! expr       := and_expr (("or" | "||") and_expr)*
//! and_expr   := unary (("and" | "&&") unary)*
//! unary      := ("not" | "!") unary | "(" expr ")" | comparison
//! comparison := FIELD ("==" | "!=" | "<" | "<=" | ">" | ">=") value
//!             | FIELD ("~" | "!~") STRING
//! value      := NUMBER | STRING | "null"
//! ```
//!
//! Keywords (`and`, `or`, `not`, `null`) and field names are case-insensitive. Numbers
//! may be negative, fractional and carry a size suffix: `K`, `M`, `G`, `T`, `KiB` ...
//! `TiB` are powers of 1024, `KB` ... `TB` powers of 1000 (any case). Strings are in
//! `"..."` or `'...'`; `\\`, `\"`, `\'`, `\n`, `\t`, `\r` are escapes and any other
//! backslash is kept, so regexes read naturally (`"\d+"`). `~` is an unanchored regex
//! search. Every comparison with a null field value is false, except `== null` and
//! `!= null`.

use super::error::QueryError;
use super::field::{Field, Kind, Value};
use dcos_core::model::Process;
use regex_automata::meta::Regex;
use std::cmp::Ordering;
use std::fmt;

/// Longest accepted expression, in bytes.
pub(crate) const MAX_LEN: usize = 4096;
/// Deepest accepted nesting of parentheses and `not`.
pub(crate) const MAX_DEPTH: usize = 64;
/// What the regexes of one expression may compile to, in all (bytes of heap): compiling
/// takes time in proportion, so this bounds what one request may spend before it filters.
pub(crate) const REGEX_BUDGET: usize = 1 << 20;
/// Size of each regex's lazy DFA cache.
const REGEX_CACHE: usize = 1 << 20;
/// Most regexes in one expression.
pub(crate) const MAX_REGEXES: usize = 8;
/// What a comparison costs per row, in the units of [`crate::MAX_COST`].
pub(crate) const COMPARISON_COST: u64 = 1;
/// What a regex search costs per row: a search of a command line costs about this many
/// comparisons.
pub(crate) const REGEX_COST: u64 = 16;

/// A parsed, type-checked `q` expression.
#[derive(Debug, Clone)]
pub(crate) enum Expr {
    Or(Vec<Expr>),
    And(Vec<Expr>),
    Not(Box<Expr>),
    /// `field == null` (`negate: false`) or `field != null`.
    IsNull {
        field: Field,
        negate: bool,
    },
    /// A number comparison; false when the field is null.
    Num {
        field: Field,
        op: CmpOp,
        value: f64,
    },
    /// A text comparison; false when the field is null.
    Text {
        field: Field,
        op: CmpOp,
        value: String,
    },
    /// `~` / `!~` (`negate`); false when the field is null.
    Match {
        field: Field,
        regex: Regex,
        negate: bool,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl CmpOp {
    fn holds(self, ord: Ordering) -> bool {
        match self {
            CmpOp::Eq => ord == Ordering::Equal,
            CmpOp::Ne => ord != Ordering::Equal,
            CmpOp::Lt => ord == Ordering::Less,
            CmpOp::Le => ord != Ordering::Greater,
            CmpOp::Gt => ord == Ordering::Greater,
            CmpOp::Ge => ord != Ordering::Less,
        }
    }

    fn symbol(self) -> &'static str {
        match self {
            CmpOp::Eq => "==",
            CmpOp::Ne => "!=",
            CmpOp::Lt => "<",
            CmpOp::Le => "<=",
            CmpOp::Gt => ">",
            CmpOp::Ge => ">=",
        }
    }
}

impl Expr {
    /// Parses and type-checks `src`; errors carry the byte position of the fault.
    pub(crate) fn parse(src: &str) -> Result<Expr, QueryError> {
        if src.len() > MAX_LEN {
            return Err(QueryError {
                parameter: "q",
                message: format!("expression is too long: {} bytes (at most {MAX_LEN})", src.len()),
                position: None,
            });
        }
        if src.trim().is_empty() {
            return Err(QueryError::at(0, "empty expression at position 0"));
        }
        let mut parser = Parser::new(src)?;
        let expr = parser.or_expr(0)?;
        match parser.tok.kind {
            Tok::Eof => Ok(expr),
            Tok::RParen => {
                Err(QueryError::at(parser.tok.pos, format!("unmatched ')' at position {}", parser.tok.pos)))
            }
            _ => Err(QueryError::at(
                parser.tok.pos,
                format!(
                    "expected 'and', 'or' or the end of the expression at position {}, found {}",
                    parser.tok.pos, parser.tok.kind
                ),
            )),
        }
    }

    /// Whether `p` satisfies the expression.
    pub(crate) fn eval(&self, p: &Process) -> bool {
        match self {
            Expr::Or(items) => items.iter().any(|e| e.eval(p)),
            Expr::And(items) => items.iter().all(|e| e.eval(p)),
            Expr::Not(e) => !e.eval(p),
            Expr::IsNull { field, negate } => matches!(field.value(p), Value::Null) != *negate,
            Expr::Num { field, op, value } => match field.value(p) {
                // NaN on either side compares as nothing, not even `!=`.
                Value::Num(v) => v.partial_cmp(value).is_some_and(|o| op.holds(o)),
                _ => false,
            },
            Expr::Text { field, op, value } => match field.value(p) {
                Value::Text(t) => op.holds(t.cmp_str(value)),
                _ => false,
            },
            Expr::Match { field, regex, negate } => match field.value(p) {
                Value::Text(t) => regex.is_match(t.as_str().as_ref()) != *negate,
                _ => false,
            },
        }
    }
}

impl Expr {
    /// What evaluating the expression once costs at most (every branch taken), in the units
    /// of [`crate::MAX_COST`].
    pub(crate) fn cost(&self) -> u64 {
        match self {
            Expr::Or(items) | Expr::And(items) => items.iter().map(Expr::cost).sum(),
            Expr::Not(e) => e.cost(),
            Expr::Match { .. } => REGEX_COST,
            Expr::IsNull { .. } | Expr::Num { .. } | Expr::Text { .. } => COMPARISON_COST,
        }
    }
}

// ---------------------------------------------------------------------------------------
// Lexer

#[derive(Debug, Clone, PartialEq)]
enum Tok<'s> {
    Ident(&'s str),
    Num(f64),
    Str(String),
    Null,
    And,
    Or,
    Not,
    LParen,
    RParen,
    Cmp(CmpOp),
    Match,
    NotMatch,
    Eof,
}

impl fmt::Display for Tok<'_> {
    /// How a token is named in "found ..." messages.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Tok::Ident(name) => write!(f, "{name:?}"),
            Tok::Num(_) => f.write_str("a number"),
            Tok::Str(_) => f.write_str("a string"),
            Tok::Null => f.write_str("'null'"),
            Tok::And => f.write_str("'and'"),
            Tok::Or => f.write_str("'or'"),
            Tok::Not => f.write_str("'not'"),
            Tok::LParen => f.write_str("'('"),
            Tok::RParen => f.write_str("')'"),
            Tok::Cmp(op) => write!(f, "'{}'", op.symbol()),
            Tok::Match => f.write_str("'~'"),
            Tok::NotMatch => f.write_str("'!~'"),
            Tok::Eof => f.write_str("the end of the expression"),
        }
    }
}

#[derive(Debug, Clone)]
struct Token<'s> {
    kind: Tok<'s>,
    /// Byte offset of the token's first character.
    pos: usize,
    /// The token as written.
    text: &'s str,
}

struct Lexer<'s> {
    src: &'s str,
    pos: usize,
}

impl<'s> Lexer<'s> {
    fn peek(&self) -> Option<char> {
        self.src.get(self.pos..).and_then(|s| s.chars().next())
    }

    fn peek2(&self) -> Option<char> {
        let mut it = self.src.get(self.pos..)?.chars();
        it.next();
        it.next()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        Some(c)
    }

    fn eat(&mut self, c: char) -> bool {
        if self.peek() == Some(c) {
            self.pos += c.len_utf8();
            true
        } else {
            false
        }
    }

    fn next_token(&mut self) -> Result<Token<'s>, QueryError> {
        while self.peek().is_some_and(char::is_whitespace) {
            self.bump();
        }
        let start = self.pos;
        let Some(c) = self.bump() else {
            return Ok(Token { kind: Tok::Eof, pos: start, text: "" });
        };
        let kind = match c {
            '(' => Tok::LParen,
            ')' => Tok::RParen,
            '~' => Tok::Match,
            '=' if self.eat('=') => Tok::Cmp(CmpOp::Eq),
            '=' => {
                return Err(QueryError::at(
                    start,
                    format!("unexpected '=' at position {start} (use '==' to compare)"),
                ))
            }
            '!' if self.eat('=') => Tok::Cmp(CmpOp::Ne),
            '!' if self.eat('~') => Tok::NotMatch,
            '!' => Tok::Not,
            '<' if self.eat('=') => Tok::Cmp(CmpOp::Le),
            '<' => Tok::Cmp(CmpOp::Lt),
            '>' if self.eat('=') => Tok::Cmp(CmpOp::Ge),
            '>' => Tok::Cmp(CmpOp::Gt),
            '&' if self.eat('&') => Tok::And,
            '|' if self.eat('|') => Tok::Or,
            '&' | '|' => {
                return Err(QueryError::at(
                    start,
                    format!("unexpected '{c}' at position {start} (use '{c}{c}', or 'and' / 'or')"),
                ))
            }
            '"' | '\'' => Tok::Str(self.string(c, start)?),
            '0'..='9' => self.number(start)?,
            '-' if self.peek().is_some_and(|d| d.is_ascii_digit()) => self.number(start)?,
            c if c.is_ascii_alphabetic() || c == '_' => {
                while self.peek().is_some_and(|d| d.is_ascii_alphanumeric() || d == '_') {
                    self.bump();
                }
                let word = &self.src[start..self.pos];
                if word.eq_ignore_ascii_case("and") {
                    Tok::And
                } else if word.eq_ignore_ascii_case("or") {
                    Tok::Or
                } else if word.eq_ignore_ascii_case("not") {
                    Tok::Not
                } else if word.eq_ignore_ascii_case("null") {
                    Tok::Null
                } else {
                    Tok::Ident(word)
                }
            }
            c => {
                return Err(QueryError::at(start, format!("unexpected character {c:?} at position {start}")))
            }
        };
        Ok(Token { kind, pos: start, text: &self.src[start..self.pos] })
    }

    /// The rest of a string literal whose opening `quote` was at `start`.
    fn string(&mut self, quote: char, start: usize) -> Result<String, QueryError> {
        let unterminated =
            || QueryError::at(start, format!("unterminated string starting at position {start}"));
        let mut out = String::new();
        loop {
            match self.bump().ok_or_else(unterminated)? {
                c if c == quote => return Ok(out),
                '\\' => match self.bump().ok_or_else(unterminated)? {
                    'n' => out.push('\n'),
                    't' => out.push('\t'),
                    'r' => out.push('\r'),
                    c @ ('\\' | '"' | '\'') => out.push(c),
                    // Kept as written, for regexes: "\d", "\.".
                    c => {
                        out.push('\\');
                        out.push(c);
                    }
                },
                c => out.push(c),
            }
        }
    }

    /// The rest of a number (its first character, a digit or `-`, was at `start`).
    fn number(&mut self, start: usize) -> Result<Tok<'s>, QueryError> {
        while self.peek().is_some_and(|d| d.is_ascii_digit()) {
            self.bump();
        }
        if self.peek() == Some('.') && self.peek2().is_some_and(|d| d.is_ascii_digit()) {
            self.bump();
            while self.peek().is_some_and(|d| d.is_ascii_digit()) {
                self.bump();
            }
        }
        let digits = &self.src[start..self.pos];
        let suffix_start = self.pos;
        while self.peek().is_some_and(|d| d.is_ascii_alphanumeric() || d == '_') {
            self.bump();
        }
        let suffix = &self.src[suffix_start..self.pos];
        let multiplier = size_multiplier(suffix).ok_or_else(|| {
            QueryError::at(
                suffix_start,
                format!(
                    "unknown size suffix {suffix:?} at position {suffix_start} \
                     (use K, M, G, T, KiB, MiB, GiB, TiB for powers of 1024 \
                     or KB, MB, GB, TB for powers of 1000)"
                ),
            )
        })?;
        let value = digits.parse::<f64>().map(|v| v * multiplier).ok().filter(|v| v.is_finite());
        match value {
            Some(v) => Ok(Tok::Num(v)),
            None => Err(QueryError::at(start, format!("number out of range at position {start}"))),
        }
    }
}

/// The factor of a size suffix (`""`, `K`/`KiB`, `M`/`MiB`, ... powers of 1024, `KB`, `MB`, ...
/// powers of 1000; any case), `None` for an unknown one. Shared with the CLI's `--memory`.
pub fn size_multiplier(suffix: &str) -> Option<f64> {
    const KI: f64 = 1024.0;
    let m = match suffix.to_ascii_lowercase().as_str() {
        "" => 1.0,
        "k" | "kib" => KI,
        "m" | "mib" => KI * KI,
        "g" | "gib" => KI * KI * KI,
        "t" | "tib" => KI * KI * KI * KI,
        "kb" => 1e3,
        "mb" => 1e6,
        "gb" => 1e9,
        "tb" => 1e12,
        _ => return None,
    };
    Some(m)
}

// ---------------------------------------------------------------------------------------
// Parser

struct Parser<'s> {
    lexer: Lexer<'s>,
    /// The current (not yet consumed) token.
    tok: Token<'s>,
    /// Regexes compiled so far.
    regexes: usize,
    /// What is left of [`REGEX_BUDGET`].
    regex_bytes_left: usize,
}

impl<'s> Parser<'s> {
    fn new(src: &'s str) -> Result<Self, QueryError> {
        let mut lexer = Lexer { src, pos: 0 };
        let tok = lexer.next_token()?;
        Ok(Parser { lexer, tok, regexes: 0, regex_bytes_left: REGEX_BUDGET })
    }

    /// Consumes the current token and returns it.
    fn advance(&mut self) -> Result<Token<'s>, QueryError> {
        let next = self.lexer.next_token()?;
        Ok(std::mem::replace(&mut self.tok, next))
    }

    fn or_expr(&mut self, depth: usize) -> Result<Expr, QueryError> {
        let mut items = vec![self.and_expr(depth)?];
        while self.tok.kind == Tok::Or {
            self.advance()?;
            items.push(self.and_expr(depth)?);
        }
        Ok(if items.len() == 1 { items.remove(0) } else { Expr::Or(items) })
    }

    fn and_expr(&mut self, depth: usize) -> Result<Expr, QueryError> {
        let mut items = vec![self.unary(depth)?];
        while self.tok.kind == Tok::And {
            self.advance()?;
            items.push(self.unary(depth)?);
        }
        Ok(if items.len() == 1 { items.remove(0) } else { Expr::And(items) })
    }

    fn unary(&mut self, depth: usize) -> Result<Expr, QueryError> {
        match self.tok.kind {
            Tok::Not | Tok::LParen if depth >= MAX_DEPTH => Err(QueryError::at(
                self.tok.pos,
                format!(
                    "expression nested too deeply at position {} (at most {MAX_DEPTH} levels of \
                     parentheses and 'not')",
                    self.tok.pos
                ),
            )),
            Tok::Not => {
                self.advance()?;
                Ok(Expr::Not(Box::new(self.unary(depth + 1)?)))
            }
            Tok::LParen => {
                let open = self.advance()?;
                let inner = self.or_expr(depth + 1)?;
                if self.tok.kind != Tok::RParen {
                    return Err(QueryError::at(
                        self.tok.pos,
                        format!(
                            "expected ')' at position {} to close the '(' at position {}, found {}",
                            self.tok.pos, open.pos, self.tok.kind
                        ),
                    ));
                }
                self.advance()?;
                Ok(inner)
            }
            Tok::Ident(_) => self.comparison(),
            _ => Err(QueryError::at(
                self.tok.pos,
                format!(
                    "expected a field name, 'not' or '(' at position {}, found {}",
                    self.tok.pos, self.tok.kind
                ),
            )),
        }
    }

    fn comparison(&mut self) -> Result<Expr, QueryError> {
        let name_tok = self.advance()?;
        let name = name_tok.text;
        let field = Field::parse(name).ok_or_else(|| {
            QueryError::at(name_tok.pos, super::field::unknown_field_message(name, Some(name_tok.pos)))
        })?;
        let op_tok = self.advance()?;
        let (op, is_match, negate) = match op_tok.kind {
            Tok::Cmp(op) => (op, false, false),
            Tok::Match => (CmpOp::Eq, true, false),
            Tok::NotMatch => (CmpOp::Ne, true, true),
            other => {
                return Err(QueryError::at(
                    op_tok.pos,
                    format!(
                        "expected a comparison (==, !=, <, <=, >, >=, ~, !~) after {name:?} at \
                         position {}, found {other}",
                        op_tok.pos
                    ),
                ))
            }
        };
        let op_text = op_tok.text;
        if is_match && field.kind() == Kind::Number {
            return Err(QueryError::at(
                op_tok.pos,
                format!("'{op_text}' needs a text field but {name:?} is numeric at position {}", op_tok.pos),
            ));
        }
        let value = self.advance()?;
        let vpos = value.pos;
        match value.kind {
            Tok::Null if matches!(op, CmpOp::Eq | CmpOp::Ne) && !is_match => {
                Ok(Expr::IsNull { field, negate: op == CmpOp::Ne })
            }
            Tok::Null => Err(QueryError::at(
                vpos,
                format!("null can only be compared with == or != at position {vpos}"),
            )),
            Tok::Str(_) if is_match && self.regexes >= MAX_REGEXES => Err(QueryError::at(
                vpos,
                format!("too many regexes at position {vpos} (at most {MAX_REGEXES} in one expression)"),
            )),
            Tok::Str(pattern) if is_match => {
                self.regexes += 1;
                let config = Regex::config()
                    .nfa_size_limit(Some(self.regex_bytes_left))
                    .hybrid_cache_capacity(REGEX_CACHE)
                    .dfa_size_limit(Some(self.regex_bytes_left));
                let built = Regex::builder().configure(config).build(&pattern);
                let regex =
                    built.map_err(|e| QueryError::at(vpos, regex_error(&e, vpos, self.regex_bytes_left)))?;
                match self.regex_bytes_left.checked_sub(regex.memory_usage()) {
                    Some(left) => self.regex_bytes_left = left,
                    None => return Err(QueryError::at(vpos, budget_message(vpos, self.regex_bytes_left))),
                }
                Ok(Expr::Match { field, regex, negate })
            }
            Tok::Num(_) if is_match => Err(QueryError::at(
                vpos,
                format!("expected a string (a regex) after '{op_text}' at position {vpos}, found a number"),
            )),
            Tok::Num(value) if field.kind() == Kind::Number => Ok(Expr::Num { field, op, value }),
            Tok::Num(_) => Err(QueryError::at(
                vpos,
                format!(
                    "{name:?} is a text field and cannot be compared with a number at position \
                     {vpos} (quote the value)"
                ),
            )),
            Tok::Str(value) if field.kind() == Kind::Text => Ok(Expr::Text { field, op, value }),
            Tok::Str(_) => Err(QueryError::at(
                vpos,
                format!(
                    "{name:?} is a numeric field and cannot be compared with a string at \
                     position {vpos}"
                ),
            )),
            Tok::Eof => {
                Err(QueryError::at(vpos, format!("expected a value after '{op_text}' at position {vpos}")))
            }
            other => Err(QueryError::at(
                vpos,
                format!("expected a value after '{op_text}' at position {vpos}, found {other}"),
            )),
        }
    }
}

/// A regex that does not fit in what is left of [`REGEX_BUDGET`].
fn budget_message(pos: usize, left: usize) -> String {
    format!(
        "regex at position {pos} is too large: the regexes of one expression may compile to at \
         most {REGEX_BUDGET} bytes in all (regex budget), {left} were left"
    )
}

/// The regex engine's error on one line.
fn regex_error(e: &regex_automata::meta::BuildError, pos: usize, left: usize) -> String {
    if e.size_limit().is_some() {
        return budget_message(pos, left);
    }
    let text = match e.syntax_error() {
        Some(syntax) => syntax.to_string(),
        None => e.to_string(),
    };
    // Syntax errors are multi-line with a caret diagram; the last line says what.
    let last = text.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("");
    format!("invalid regex at position {pos}: {}", last.trim().trim_start_matches("error:").trim())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{container, proc, with_cmdline};

    fn parse(src: &str) -> Expr {
        Expr::parse(src).unwrap_or_else(|e| panic!("{src:?}: {e}"))
    }

    fn err(src: &str) -> (String, Option<usize>) {
        match Expr::parse(src) {
            Ok(e) => panic!("{src:?} parsed: {e:?}"),
            Err(e) => {
                assert_eq!(e.parameter, "q");
                (e.message, e.position)
            }
        }
    }

    fn eval(src: &str, p: &Process) -> bool {
        parse(src).eval(p)
    }

    fn www() -> Process {
        let mut p = with_cmdline(proc(10), &["php-fpm: pool www"]);
        p.user = "www".into();
        p.uid = 33;
        p.cpu_percent = Some(12.5);
        p.mem_rss_bytes = 300 << 20;
        p
    }

    #[test]
    fn the_spec_example() {
        let p = www();
        assert!(eval(r#"cpu > 5 and user == "www" and cmdline ~ "php-fpm""#, &p));
        assert!(!eval(r#"cpu > 50 and user == "www" and cmdline ~ "php-fpm""#, &p));
        assert!(eval(r#"CPU > 5 AND User == 'www' && cmdline ~ 'php-fpm'"#, &p));
    }

    #[test]
    fn comparisons() {
        let p = www();
        for (src, want) in [
            ("pid == 10", true),
            ("pid != 10", false),
            ("pid < 11", true),
            ("pid <= 10", true),
            ("pid > 10", false),
            ("pid >= 10", true),
            ("nice > -1", true),
            ("nice < -1", false),
            ("cpu > 12.4", true),
            ("cpu >= 12.5", true),
            ("cpu < 12.5", false),
            ("user != 'root'", true),
            ("user < 'x'", true),
            ("cmd == 'php-fpm: pool www'", true),
            ("state == 'S'", true),
            ("state == 's'", false),
            ("start >= '2024-01-01'", true),
            ("start < '2023'", false),
        ] {
            assert_eq!(eval(src, &p), want, "{src}");
        }
    }

    #[test]
    fn cmdline_is_its_joined_text() {
        let p = with_cmdline(proc(1), &["/usr/bin/python3", "-m", "http.server"]);
        assert!(eval("cmdline == '/usr/bin/python3 -m http.server'", &p));
        assert!(eval("args ~ '-m http\\.serv'", &p));
        assert!(eval("cmdline ~ '^/usr/bin/python3 -m http.server$'", &p));
        assert!(eval("comm == 'python3'", &p));
    }

    #[test]
    fn precedence_and_over_or() {
        // a or b and c == a or (b and c)
        let p = proc(1); // pid 1, user root, cpu null
        assert!(eval("pid == 1 or pid == 2 and user == 'nobody'", &p));
        assert!(!eval("(pid == 1 or pid == 2) and user == 'nobody'", &p));
        assert!(eval("user == 'nobody' and pid == 2 or pid == 1", &p));
        assert!(eval("pid == 2 || pid == 1 && user == 'root'", &p));
    }

    #[test]
    fn not_and_parentheses() {
        let p = proc(1);
        assert!(eval("not pid == 2", &p));
        assert!(eval("!pid == 2", &p));
        assert!(!eval("not (pid == 1 or pid == 2)", &p));
        assert!(eval("not not pid == 1", &p));
        assert!(eval("NOT (pid == 2) and ((user == 'root'))", &p));
        // `not` binds tighter than `and`.
        assert!(!eval("not pid == 1 and user == 'root'", &p));
    }

    #[test]
    fn regex_match_and_not_match() {
        let p = www();
        assert!(eval(r#"cmdline ~ "^php-fpm: pool \w+$""#, &p));
        assert!(eval(r#"cmdline ~ "pool\s+www""#, &p));
        assert!(!eval(r#"cmdline !~ "pool""#, &p));
        assert!(eval(r#"user !~ "^root$""#, &p));
        assert!(eval(r#"cmd ~ "(?i)PHP""#, &p));
        assert!(!eval(r#"cmd ~ "PHP""#, &p));
    }

    #[test]
    fn null_comparisons() {
        let mut p = proc(1);
        assert!(eval("container == null", &p));
        assert!(!eval("container != null", &p));
        assert!(eval("cpu == null", &p));
        assert!(eval("cpu == NULL", &p));
        assert!(eval("io_read == null and exe == null and tty == null", &p));
        // Every other comparison with a null value is false, both ways round.
        for src in [
            "cpu > 0",
            "cpu < 0",
            "cpu == 0",
            "cpu != 0",
            "container == 'abc'",
            "container != 'abc'",
            "container ~ ''",
            "container !~ 'abc'",
            "runtime == 'docker'",
        ] {
            assert!(!eval(src, &p), "{src}");
        }
        assert!(eval("not cpu > 0", &p));
        p.container = container("abc123", "web");
        p.cpu_percent = Some(0.0);
        assert!(eval("container != null and cpu != null", &p));
        assert!(eval("container ~ '^abc' and container_name == 'web'", &p));
        assert!(eval("runtime == 'docker'", &p));
        assert!(eval("cpu == 0", &p));
        assert!(eval("pid != null", &p));
    }

    #[test]
    fn size_suffixes() {
        let cases = [
            ("1", 1.0),
            ("1.5", 1.5),
            ("-2", -2.0),
            ("1K", 1024.0),
            ("1k", 1024.0),
            ("1KiB", 1024.0),
            ("1kib", 1024.0),
            ("1KB", 1000.0),
            ("1kb", 1000.0),
            ("2M", 2.0 * 1024.0 * 1024.0),
            ("2MiB", 2.0 * 1024.0 * 1024.0),
            ("2MB", 2e6),
            ("1.5G", 1.5 * 1024.0 * 1024.0 * 1024.0),
            ("1GiB", 1024.0 * 1024.0 * 1024.0),
            ("3gb", 3e9),
            ("1T", 1024f64.powi(4)),
            ("1TiB", 1024f64.powi(4)),
            ("1TB", 1e12),
        ];
        for (lit, want) in cases {
            match parse(&format!("rss == {lit}")) {
                Expr::Num { field: Field::MemRssBytes, op: CmpOp::Eq, value } => {
                    assert_eq!(value, want, "{lit}")
                }
                other => panic!("{lit}: {other:?}"),
            }
        }
        let p = www(); // 300 MiB
        assert!(eval("rss > 299M and rss < 301MiB", &p));
        assert!(eval("rss > 314MB and rss < 315MB", &p));
    }

    #[test]
    fn string_escapes() {
        let cases = [
            (r#"cmd == "a\"b""#, "a\"b"),
            (r#"cmd == 'a\'b'"#, "a'b"),
            (r#"cmd == "it's""#, "it's"),
            (r#"cmd == 'say "hi"'"#, "say \"hi\""),
            (r#"cmd == "a\\b""#, "a\\b"),
            (r#"cmd == "a\nb\tc\r""#, "a\nb\tc\r"),
            (r#"cmd == "\d""#, "\\d"),
            (r#"cmd == "héllo""#, "héllo"),
        ];
        for (src, want) in cases {
            match parse(src) {
                Expr::Text { value, .. } => assert_eq!(value, want, "{src}"),
                other => panic!("{src}: {other:?}"),
            }
        }
    }

    #[test]
    fn error_positions() {
        let cases: &[(&str, &str, usize)] = &[
            ("cpu > ", "expected a value after '>' at position 6", 6),
            ("cpu > and pid == 1", "expected a value after '>' at position 6, found 'and'", 6),
            ("cpu >= )", "expected a value after '>=' at position 7, found ')'", 7),
            (r#"user == "www" and cmd == "abc"#, "unterminated string starting at position 25", 25),
            ("user == 'ab\\", "unterminated string starting at position 8", 8),
            ("pid == 1 and cmd ~ 'x", "unterminated string starting at position 19", 19),
            ("pid == 1 or cpux > 5", "unknown field \"cpux\" at position 12 (fields: pid,", 12),
            ("user == 5", "\"user\" is a text field and cannot be compared with a number at position 8", 8),
            ("cpu == '5'", "\"cpu\" is a numeric field and cannot be compared with a string at position 7", 7),
            ("pid ~ '1'", "'~' needs a text field but \"pid\" is numeric at position 4", 4),
            ("rss !~ '1'", "'!~' needs a text field but \"rss\" is numeric at position 4", 4),
            ("cmd ~ 5", "expected a string (a regex) after '~' at position 6, found a number", 6),
            ("cmd ~ '(' ", "invalid regex at position 6: unclosed group", 6),
            ("cmd ~ 'a{1000}{1000}'", "regex at position 6 is too large: the regexes of one expression may compile to at most 1048576 bytes in all (regex budget)", 6),
            ("cpu > null", "null can only be compared with == or != at position 6", 6),
            ("cmd ~ null", "null can only be compared with == or != at position 6", 6),
            ("cpu = 5", "unexpected '=' at position 4 (use '==' to compare)", 4),
            ("pid == 1 & pid == 2", "unexpected '&' at position 9", 9),
            ("pid == 1 | pid == 2", "unexpected '|' at position 9", 9),
            ("pid == 1 @", "unexpected character '@' at position 9", 9),
            ("pid == é", "unexpected character 'é' at position 7", 7),
            ("pid == 5x", "unknown size suffix \"x\" at position 8", 8),
            ("pid == 5Kib2", "unknown size suffix \"Kib2\" at position 8", 8),
            ("pid == 1e999", "unknown size suffix \"e999\" at position 8", 8),
            ("pid == -", "unexpected character '-' at position 7", 7),
            ("pid 5", "expected a comparison (==, !=, <, <=, >, >=, ~, !~) after \"pid\" at position 4, found a number", 4),
            ("pid", "expected a comparison (==, !=, <, <=, >, >=, ~, !~) after \"pid\" at position 3, found the end of the expression", 3),
            ("(pid == 1", "expected ')' at position 9 to close the '(' at position 0, found the end of the expression", 9),
            ("pid == 1)", "unmatched ')' at position 8", 8),
            ("pid == 1 pid == 2", "expected 'and', 'or' or the end of the expression at position 9, found \"pid\"", 9),
            ("pid == 1 and", "expected a field name, 'not' or '(' at position 12, found the end of the expression", 12),
            ("and pid == 1", "expected a field name, 'not' or '(' at position 0, found 'and'", 0),
            ("5 < cpu", "expected a field name, 'not' or '(' at position 0, found a number", 0),
            ("not", "expected a field name, 'not' or '(' at position 3, found the end of the expression", 3),
            ("()", "expected a field name, 'not' or '(' at position 1, found ')'", 1),
            ("", "empty expression at position 0", 0),
            ("   ", "empty expression at position 0", 0),
        ];
        for &(src, want, pos) in cases {
            let (msg, at) = err(src);
            assert!(msg.starts_with(want), "{src:?}: got {msg:?}, want {want:?}");
            assert_eq!(at, Some(pos), "{src:?}: {msg}");
        }
    }

    #[test]
    fn huge_number_is_out_of_range() {
        let src = format!("rss > {}T", "9".repeat(400));
        assert_eq!(err(&src), ("number out of range at position 6".to_owned(), Some(6)));
    }

    #[test]
    fn length_limit() {
        let ok = format!("cmd == '{}'", "a".repeat(MAX_LEN - 9));
        assert_eq!(ok.len(), MAX_LEN);
        parse(&ok);
        let long = format!("cmd == '{}'", "a".repeat(MAX_LEN));
        let e = Expr::parse(&long).unwrap_err();
        assert_eq!(e.message, format!("expression is too long: {} bytes (at most 4096)", MAX_LEN + 9));
        assert_eq!(e.position, None);
    }

    #[test]
    fn regex_count_limit() {
        let src = |n: usize| vec!["cmd ~ 'a'"; n].join(" or ");
        parse(&src(MAX_REGEXES));
        let (msg, pos) = err(&src(MAX_REGEXES + 1));
        assert_eq!(pos, Some(13 * MAX_REGEXES + 6));
        assert_eq!(msg, format!("too many regexes at position {} (at most 8 in one expression)", 13 * 8 + 6));
    }

    #[test]
    fn the_regexes_of_one_expression_share_one_budget() {
        // A Unicode \w{5} compiles to about a quarter of the budget: three fit, a fourth not.
        let src = |n: usize| vec![r"cmd ~ '\w{5}'"; n].join(" or ");
        parse(&src(3));
        let (msg, pos) = err(&src(4));
        assert_eq!(pos, Some(3 * 17 + 6), "the fourth regex: {msg}");
        assert!(msg.contains("regex budget") && msg.contains("at most 1048576 bytes in all"), "{msg}");
        // Each alone is well within it.
        parse(r"cmd ~ '\w{5}'");
    }

    #[test]
    fn depth_limit() {
        let nest = |n: usize| format!("{}pid == 1{}", "(".repeat(n), ")".repeat(n));
        assert!(parse(&nest(MAX_DEPTH)).eval(&proc(1)));
        let (msg, pos) = err(&nest(MAX_DEPTH + 1));
        assert_eq!(pos, Some(MAX_DEPTH));
        assert!(msg.starts_with("expression nested too deeply at position 64"), "{msg}");
        let nots = format!("{}pid == 1", "not ".repeat(MAX_DEPTH + 1));
        assert_eq!(err(&nots).1, Some(4 * MAX_DEPTH));
        let bangs = format!("{}pid == 1", "!".repeat(2000));
        assert_eq!(err(&bangs).1, Some(MAX_DEPTH));
        // Long flat chains are not nesting.
        let chain = vec!["pid == 1"; 300].join(" or ");
        assert!(parse(&chain).eval(&proc(1)));
    }

    /// Random inputs are the fuzz target's (`query/tests/q_fuzz.rs`); here, every cut of one
    /// valid expression.
    #[test]
    fn every_prefix_and_suffix_of_a_valid_expression_parses_or_is_refused() {
        let valid = r#"not (cpu > 5K and user == "w\"w") || cmdline !~ 'a(b|c)' && container != null"#;
        parse(valid);
        for (i, _) in valid.char_indices() {
            let _ = Expr::parse(&valid[..i]);
            let _ = Expr::parse(&valid[i..]);
        }
    }
}
