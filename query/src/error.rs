//! The one error type of the query module: which parameter was wrong, why, and for a
//! `q` expression the byte offset of the fault.

/// A rejected query parameter (an HTTP 400 `bad_query`).
///
/// `Display` gives `"{parameter}: {message}"`, ready for the `message` of an error body;
/// `position` goes to the body's `position` (only set for `q` expressions).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{parameter}: {message}")]
pub struct QueryError {
    /// The parameter at fault (`"q"`, `"sort"`, `"limit"`, ...), or `"query"` for an
    /// unknown parameter name.
    pub parameter: &'static str,
    /// What is wrong, for a person. For `q` it already says "at position N".
    pub message: String,
    /// For a `q` expression: the byte offset of the offending token.
    pub position: Option<usize>,
}

impl QueryError {
    pub(crate) fn new(parameter: &'static str, message: impl Into<String>) -> Self {
        QueryError { parameter, message: message.into(), position: None }
    }

    /// An error in a `q` expression at byte `position`; `message` already says where.
    pub(crate) fn at(position: usize, message: impl Into<String>) -> Self {
        QueryError { parameter: "q", message: message.into(), position: Some(position) }
    }
}
