//! A workload's root filesystem at `<workload dir>/bundle/rootfs`: an overlay whose lower
//! layer is the image the workload was run from and whose upper layer, in
//! `<workload dir>/layers/`, holds what the workload writes, as container engines do; or a
//! copy of the image where the kernel refuses that overlay (a state dir on a filesystem that
//! cannot be an upper layer, an image path overlayfs cannot name). The overlay makes `Run`
//! independent of the image's size; its price is that the image must stay in place, unchanged,
//! while workloads use it.
//!
//! A migrated workload arrives as a plain tree (the merged view is what is sent), so only
//! workloads started by `Run` on this host have layers. Whoever removes a workload directory
//! calls [`release`] first. The layers name their image (`layers/image`, a symbolic link),
//! so that [`remount`] can mount the overlay again after the host restarted.

use super::bundle::{copy_tree, BundleError};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

const LAYERS: &str = "layers";
/// The link in the layers to the image, the overlay's lower layer.
const IMAGE: &str = "image";

/// How [`make`] built the root filesystem.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Made {
    /// An overlay over the image.
    Overlay,
    /// A copy of the image (the overlay was refused: the reason is logged).
    Copied,
}

fn rootfs(dir: &Path) -> PathBuf {
    dir.join("bundle").join("rootfs")
}

/// Creates the (empty) directories [`make`] fills: `bundle/rootfs` and the overlay's layers.
pub fn prepare(dir: &Path) -> std::io::Result<()> {
    let [upper, work] = layers(dir);
    for d in [rootfs(dir), upper, work] {
        std::fs::create_dir_all(d)?;
    }
    Ok(())
}

/// The overlay's upper and work directories of the workload in `dir`.
fn layers(dir: &Path) -> [PathBuf; 2] {
    let layers = dir.join(LAYERS);
    [layers.join("upper"), layers.join("work")]
}

/// Makes `<dir>/bundle/rootfs` from `image` (`<dir>/bundle` must exist; the directories
/// may, see [`prepare`]).
pub fn make(image: &Path, dir: &Path) -> Result<Made, BundleError> {
    let target = rootfs(dir);
    match overlay(image, dir, &target) {
        Ok(()) => Ok(Made::Overlay),
        Err(why) => {
            tracing::debug!(image = %image.display(), "no overlay ({why}): copying the image");
            let _ = std::fs::remove_dir_all(dir.join(LAYERS));
            let _ = std::fs::remove_dir(&target);
            copy_tree(image, &target)?;
            Ok(Made::Copied)
        }
    }
}

fn overlay(image: &Path, dir: &Path, target: &Path) -> Result<(), String> {
    let lower = image.to_str().ok_or("the image path is not UTF-8")?;
    // overlayfs splits its options at ',' and lower layers at ':'.
    if lower.contains([',', ':', '\\']) {
        return Err(format!("overlayfs cannot name {lower:?}"));
    }
    let [upper, work] = layers(dir);
    for d in [&upper, &work, &target.to_path_buf()] {
        std::fs::create_dir_all(d).map_err(|e| format!("{}: {e}", d.display()))?;
    }
    // The image's root directory mode (the upper layer's root would otherwise show 0755).
    let mode = std::fs::metadata(image).map_err(|e| format!("{lower}: {e}"))?.mode();
    nix::sys::stat::fchmodat(
        None,
        &upper,
        nix::sys::stat::Mode::from_bits_truncate(mode & 0o7777),
        nix::sys::stat::FchmodatFlags::FollowSymlink,
    )
    .map_err(|e| format!("{}: {e}", upper.display()))?;
    let link = dir.join(LAYERS).join(IMAGE);
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(image, &link).map_err(|e| format!("{}: {e}", link.display()))?;
    mount(lower, dir, target)
}

/// Mounts the overlay of `lower` and the layers in `dir` on `target`.
fn mount(lower: &str, dir: &Path, target: &Path) -> Result<(), String> {
    let [upper, work] = layers(dir);
    let options = format!("lowerdir={lower},upperdir={},workdir={}", upper.display(), work.display());
    if options.len() >= 4000 {
        return Err("the layer paths are too long for one mount".into());
    }
    nix::mount::mount(
        Some("overlay"),
        target,
        Some("overlay"),
        nix::mount::MsFlags::empty(),
        Some(options.as_str()),
    )
    .map_err(|e| format!("mounting the overlay: {e}"))
}

/// Mounts the overlay of the workload in `dir` again if it has layers and is not mounted
/// (the host restarted: mounts do not survive it); whether it mounted one.
pub fn remount(dir: &Path) -> Result<bool, String> {
    if !layered(dir) || mounted(dir) {
        return Ok(false);
    }
    let link = dir.join(LAYERS).join(IMAGE);
    let image = std::fs::read_link(&link)
        .map_err(|e| format!("{}: {e} (layers made before they named their image)", link.display()))?;
    let lower = image.to_str().ok_or("the image path is not UTF-8")?;
    if !image.is_dir() {
        return Err(format!("the image {lower} is gone"));
    }
    mount(lower, dir, &rootfs(dir)).map(|()| true)
}

/// Whether the workload in `dir` has layers (was made by [`make`] as an overlay).
pub fn layered(dir: &Path) -> bool {
    dir.join(LAYERS).is_dir()
}

/// Whether `<dir>/bundle/rootfs` is mounted (a mount point: its device differs from its parent's).
pub fn mounted(dir: &Path) -> bool {
    let target = rootfs(dir);
    match (std::fs::metadata(&target), target.parent().map(std::fs::metadata)) {
        (Ok(t), Some(Ok(p))) => t.dev() != p.dev(),
        _ => false,
    }
}

/// Whether the root filesystem in `dir` shows the workload's files: a copy always does, an
/// overlay only while it is mounted in this daemon's mount namespace (a daemon restarted in
/// another one sees the empty mount point).
pub fn readable(dir: &Path) -> bool {
    !layered(dir) || mounted(dir)
}

/// Unmounts the overlay of the workload in `dir`, if there is one (lazily: a container that
/// still holds it keeps its view until it ends). Before removing the directory.
pub fn release(dir: &Path) {
    if mounted(dir) {
        if let Err(e) = nix::mount::umount2(&rootfs(dir), nix::mount::MntFlags::MNT_DETACH) {
            tracing::warn!(dir = %dir.display(), "unmounting the root filesystem: {e}");
        }
    }
}

/// Removes a workload directory, its overlay unmounted first (so the removal never walks into
/// the merged view).
pub fn remove(dir: &Path) -> std::io::Result<()> {
    release(dir);
    std::fs::remove_dir_all(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(root: &Path) -> PathBuf {
        let image = root.join("image");
        std::fs::create_dir_all(image.join("etc")).unwrap();
        std::fs::write(image.join("etc/motd"), "from the image\n").unwrap();
        image
    }

    #[test]
    fn writes_land_in_the_upper_layer_and_the_image_is_untouched() {
        let tmp = tempfile::tempdir().unwrap();
        let image = image(tmp.path());
        let dir = tmp.path().join("w");
        std::fs::create_dir_all(dir.join("bundle")).unwrap();
        let made = make(&image, &dir).unwrap();
        let root = rootfs(&dir);
        assert_eq!(std::fs::read_to_string(root.join("etc/motd")).unwrap(), "from the image\n");
        std::fs::write(root.join("etc/motd"), "changed\n").unwrap();
        std::fs::write(root.join("new"), "written\n").unwrap();
        assert_eq!(std::fs::read_to_string(image.join("etc/motd")).unwrap(), "from the image\n");
        assert!(!image.join("new").exists());
        assert!(readable(&dir));
        if nix::unistd::geteuid().is_root() {
            // Root on ext4 or tmpfs: the kernel takes the overlay.
            assert_eq!(made, Made::Overlay);
            assert!(mounted(&dir) && layered(&dir));
            assert_eq!(std::fs::read_to_string(dir.join("layers/upper/new")).unwrap(), "written\n");
        }
        remove(&dir).unwrap();
        assert!(!dir.exists());
        assert_eq!(std::fs::read_to_string(image.join("etc/motd")).unwrap(), "from the image\n");
    }

    #[test]
    fn an_overlay_unmounted_by_a_restart_of_the_host_is_mounted_again_with_its_writes() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipped: mounting an overlay needs root");
            return;
        }
        let tmp = tempfile::tempdir().unwrap();
        let image = image(tmp.path());
        let dir = tmp.path().join("w");
        std::fs::create_dir_all(dir.join("bundle")).unwrap();
        assert_eq!(make(&image, &dir).unwrap(), Made::Overlay);
        assert_eq!(remount(&dir), Ok(false), "mounted already: nothing to do");
        std::fs::write(rootfs(&dir).join("new"), "written before\n").unwrap();
        // What a restart of the host does to it: the mount is gone, the layers stay.
        nix::mount::umount2(&rootfs(&dir), nix::mount::MntFlags::MNT_DETACH).unwrap();
        assert!(!readable(&dir));
        assert_eq!(remount(&dir), Ok(true));
        assert!(readable(&dir));
        assert_eq!(std::fs::read_to_string(rootfs(&dir).join("new")).unwrap(), "written before\n");
        assert_eq!(std::fs::read_to_string(rootfs(&dir).join("etc/motd")).unwrap(), "from the image\n");
        // The image removed meanwhile: refused, naming it.
        nix::mount::umount2(&rootfs(&dir), nix::mount::MntFlags::MNT_DETACH).unwrap();
        std::fs::remove_dir_all(&image).unwrap();
        let e = remount(&dir).unwrap_err();
        assert!(e.contains("is gone"), "{e}");
        remove(&dir).unwrap();
    }

    #[test]
    fn an_image_path_overlayfs_cannot_name_is_copied() {
        let tmp = tempfile::tempdir().unwrap();
        let image = image(&tmp.path().join("a,b"));
        let dir = tmp.path().join("w");
        std::fs::create_dir_all(dir.join("bundle")).unwrap();
        assert_eq!(make(&image, &dir).unwrap(), Made::Copied);
        assert!(!layered(&dir) && !mounted(&dir) && readable(&dir));
        assert_eq!(std::fs::read_to_string(rootfs(&dir).join("etc/motd")).unwrap(), "from the image\n");
    }

    #[test]
    fn an_unmounted_overlay_is_not_readable() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("w");
        std::fs::create_dir_all(dir.join(LAYERS).join("upper")).unwrap();
        std::fs::create_dir_all(rootfs(&dir)).unwrap();
        assert!(layered(&dir) && !mounted(&dir));
        assert!(!readable(&dir), "an empty mount point must never be sent as the workload's files");
    }
}
