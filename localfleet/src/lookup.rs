//! Where the binaries are: the workspace's own, as built beside the running executable,
//! and an OCI runtime where middlecon looks for one.

use crate::LocalError;
use std::path::{Path, PathBuf};

/// The directories searched for an OCI runtime, in middlecon's order.
const RUNTIME_DIRS: [&str; 6] =
    ["/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"];

/// A binary of the workspace built with the running executable: beside it (`dcos` or a
/// benchmark in `target/<profile>/`) or one directory up (a test in
/// `target/<profile>/deps/`).
pub fn built_binary(name: &str) -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    exe.ancestors().skip(1).take(2).map(|dir| dir.join(name)).find(|p| p.is_file())
}

/// As [`built_binary`], else `name` on `PATH` (an installed `dcos` finds an installed
/// `k2i`).
pub fn sibling_binary(name: &str) -> Result<PathBuf, LocalError> {
    built_binary(name)
        .or_else(|| {
            let paths = std::env::var_os("PATH")?;
            std::env::split_paths(&paths).map(|p| p.join(name)).find(|p| p.is_file())
        })
        .ok_or_else(|| LocalError::NoBinary(name.into()))
}

/// The OCI runtime `name` (`runc`, `crun`), if installed where middlecon looks for it.
pub fn oci_runtime(name: &str) -> Option<PathBuf> {
    RUNTIME_DIRS.iter().map(|d| Path::new(d).join(name)).find(|p| p.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_binary_is_named_with_what_to_do() {
        assert_eq!(built_binary("no-such-dcos-binary"), None);
        let e = sibling_binary("no-such-dcos-binary").unwrap_err().to_string();
        assert_eq!(
            e,
            "cannot find the no-such-dcos-binary binary next to dcos or on PATH (build it: cargo build --release)"
        );
        // The test executable is in target/<profile>/deps/: found one directory up too.
        let exe = std::env::current_exe().unwrap();
        let name = exe.file_name().unwrap().to_str().unwrap();
        assert_eq!(built_binary(name), Some(exe.clone()));
        assert_eq!(oci_runtime("no-such-runtime"), None);
    }
}
