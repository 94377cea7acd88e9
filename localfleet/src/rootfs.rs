//! A root filesystem for small containers, from Debian's static busybox.

use crate::LocalError;
use std::path::{Path, PathBuf};

/// Builds `dir/rootfs`: Debian's static busybox and its common applets, enough for a
/// small container (used by the demo and by the tests).
pub fn busybox_rootfs(dir: &Path) -> Result<PathBuf, LocalError> {
    let busybox = ["/bin/busybox", "/usr/bin/busybox"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .ok_or(LocalError::NoBusybox)?;
    let rootfs = dir.join("rootfs");
    let bin = rootfs.join("bin");
    std::fs::create_dir_all(&bin)?;
    for d in ["proc", "sys", "dev", "tmp", "etc"] {
        std::fs::create_dir_all(rootfs.join(d))?;
    }
    std::fs::copy(busybox, bin.join("busybox"))?;
    for applet in ["sh", "sleep", "cat", "echo", "ls", "true", "date", "dd", "env"] {
        let link = bin.join(applet);
        if !link.exists() {
            std::os::unix::fs::symlink("busybox", &link)?;
        }
    }
    Ok(rootfs)
}
