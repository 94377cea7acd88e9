//! Why a workload operation failed: [`WorkloadError`], each variant with its [`ErrorCode`],
//! the code that crosses the wire typed (a peer's app error, the gRPC API's status details,
//! a migration's last progress message) and that users see as a word (`dcos: no_space: ...`).

pub use dcos_proto::v1::ErrorCode;

/// Why a workload operation failed. [`WorkloadError::code`] is its code on the wire.
#[derive(Debug, thiserror::Error)]
pub enum WorkloadError {
    #[error("{0}")]
    Invalid(String),
    #[error("no workload {name:?} on {host}")]
    NotFound { name: String, host: String },
    #[error("a workload named {name:?} already exists on {host}")]
    Exists { name: String, host: String },
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    NoSpace(String),
    #[error(transparent)]
    NoRuntime(super::runtime::RuntimeError),
    #[error(transparent)]
    Runtime(super::runtime::RuntimeError),
    #[error("{0}")]
    Io(String),
    #[error("{0}")]
    Unreachable(String),
    #[error("{0}")]
    Transfer(String),
    #[error("{0}")]
    Precondition(String),
    #[error("{0}")]
    PermissionDenied(String),
    /// The target may or may not have started it: the source stays frozen until it knows.
    #[error("{0}")]
    InDoubt(String),
    /// A peer's error with a code this build has no variant for (a peer older than the
    /// codes, or a newer one with a code added since): kept as the peer gave it.
    #[error("{message}")]
    Peer { code: ErrorCode, message: String },
}

impl WorkloadError {
    pub fn code(&self) -> ErrorCode {
        match self {
            WorkloadError::Invalid(_) => ErrorCode::Invalid,
            WorkloadError::NotFound { .. } => ErrorCode::NotFound,
            WorkloadError::Exists { .. } => ErrorCode::Exists,
            WorkloadError::Conflict(_) => ErrorCode::Conflict,
            WorkloadError::NoSpace(_) => ErrorCode::NoSpace,
            WorkloadError::NoRuntime(_) => ErrorCode::NoRuntime,
            WorkloadError::Runtime(_) => ErrorCode::Runtime,
            WorkloadError::Io(_) => ErrorCode::Io,
            WorkloadError::Unreachable(_) => ErrorCode::Unreachable,
            WorkloadError::Transfer(_) => ErrorCode::Transfer,
            WorkloadError::Precondition(_) => ErrorCode::Precondition,
            WorkloadError::PermissionDenied(_) => ErrorCode::PermissionDenied,
            WorkloadError::InDoubt(_) => ErrorCode::InDoubt,
            WorkloadError::Peer { code, .. } => *code,
        }
    }

    /// A peer's app error (`code` as it came on the wire) as this host reports it, the peer
    /// named in front of its message. A name already taken there is a conflict here: the
    /// migration cannot go to it, whoever holds the name.
    pub fn from_peer(code: ErrorCode, message: &str, peer: &str) -> WorkloadError {
        let m = format!("{peer}: {message}");
        match code {
            ErrorCode::Invalid => WorkloadError::Invalid(m),
            ErrorCode::Exists | ErrorCode::Conflict => WorkloadError::Conflict(m),
            ErrorCode::NoSpace => WorkloadError::NoSpace(m),
            ErrorCode::NoRuntime => WorkloadError::NoRuntime(super::runtime::RuntimeError::Peer(m)),
            ErrorCode::Precondition => WorkloadError::Precondition(m),
            ErrorCode::Unreachable => WorkloadError::Unreachable(m),
            ErrorCode::PermissionDenied => WorkloadError::PermissionDenied(m),
            ErrorCode::Transfer => WorkloadError::Transfer(m),
            ErrorCode::Io => WorkloadError::Io(m),
            code => WorkloadError::Peer { code, message: m },
        }
    }
}

/// An io error on `what`, as a [`WorkloadError::Io`] (or [`WorkloadError::NoSpace`] when the
/// disk is full).
pub(crate) fn io_err(what: impl std::fmt::Display) -> impl FnOnce(std::io::Error) -> WorkloadError {
    move |e| {
        if is_no_space(&e) {
            WorkloadError::NoSpace(format!("{what}: {e}"))
        } else {
            WorkloadError::Io(format!("{what}: {e}"))
        }
    }
}

/// Whether `e` says the disk is full (the tar unpacker wraps the kernel's error in text of
/// its own, so the text counts too).
pub(crate) fn is_no_space(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::StorageFull
        || e.raw_os_error() == Some(libc::ENOSPC)
        || e.to_string().contains("No space left")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_peers_code_comes_back_typed_and_an_unknown_one_as_such() {
        let e = WorkloadError::from_peer(ErrorCode::NoSpace, "3 MiB free, 9 MiB needed", "host-1");
        assert_eq!(e.code(), ErrorCode::NoSpace);
        assert_eq!(e.to_string(), "host-1: 3 MiB free, 9 MiB needed");
        assert_eq!(WorkloadError::from_peer(ErrorCode::Exists, "taken", "h").code(), ErrorCode::Conflict);
        let old = WorkloadError::from_peer(ErrorCode::Unspecified, "conflict: web is incoming", "h");
        assert_eq!(old.code(), ErrorCode::Unspecified, "not guessed from the text, not io");
        assert_eq!(old.code().word(), "unknown");
        let full = io_err("unpacking")(std::io::Error::from_raw_os_error(libc::ENOSPC));
        assert_eq!(full.code(), ErrorCode::NoSpace);
    }
}
