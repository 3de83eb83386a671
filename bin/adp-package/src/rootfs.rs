//! A ready runtime directory (`--rootfs-dir`) read into a [`Tree`]: the Nix
//! flake's alternative to the runtime `.deb`s.
//!
//! In Nix the glibc runtime is a nixos store path, not a package archive, so
//! the flake lays the image's shared libraries out in a directory
//! (`nix/rootfs.nix`) and the whole directory goes into the image as it is.
//! Only what the layout means is kept; everything the host decides is
//! replaced:
//! - files: contents verbatim, mode `0755` if any execute bit is set, else
//!   `0644` (the store's `0444`/`0555` and a scratch copy's `0664`/`0775`
//!   give the same bytes);
//! - directories: `0755`; symlinks: their targets unchanged (relative links
//!   into `nix/store/…` must still resolve inside the image);
//! - owner `0:0` and the build's single mtime for every entry
//!   ([`Tree::to_tar`]), order by path ([`Tree`]).
//!
//! Store paths make entries long (`nix/store/<hash>-glibc-…-2.35-…/lib/…`,
//! about 115 bytes): [`Tree::to_tar`] writes them with ustar's prefix field or
//! a GNU long-name entry, both with fixed header fields.
//!
//! # Missing
//! Devices, FIFOs and sockets are refused rather than represented; hard links
//! become independent copies.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::archive::{file_mode, ArchiveError, Owner, Tree};

/// Why a runtime directory could not be read into the image.
#[derive(Debug, thiserror::Error)]
pub enum RootfsError {
    /// Listing, stat-ing or reading an entry failed.
    #[error("cannot read {path} (under --rootfs-dir)")]
    Read {
        /// The host path.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A name or symlink target is not UTF-8, which image paths must be.
    #[error("{path} (under --rootfs-dir) has a non-UTF-8 {what}")]
    NotUtf8 {
        /// The host path.
        path: PathBuf,
        /// `name` or `symlink target`.
        what: &'static str,
    },
    /// A device, FIFO or socket: nothing the runtime needs, and not portable.
    #[error("{path} (under --rootfs-dir) is neither a file, a directory nor a symlink; remove it from the rootfs")]
    Unsupported {
        /// The host path.
        path: PathBuf,
    },
    /// The entry clashes with another one in the tree.
    #[error(transparent)]
    Archive(#[from] ArchiveError),
}

/// Adds every file, symlink and directory under `dir` (not `dir` itself) to
/// `tree` at its path relative to `dir`; returns how many entries were added.
///
/// `dir` itself may be a symlink (e.g. a Nix `result` link); links inside it
/// are stored as links, never followed.
pub fn dir_into_tree(dir: &Path, tree: &mut Tree) -> Result<u64, RootfsError> {
    let mut count = 0;
    walk(dir, "", tree, &mut count)?;
    Ok(count)
}

fn walk(host: &Path, rel: &str, tree: &mut Tree, count: &mut u64) -> Result<(), RootfsError> {
    let read_err = |path: &Path| {
        let path = path.to_owned();
        move |source| RootfsError::Read { path, source }
    };
    let listing = fs::read_dir(host).map_err(read_err(host))?;
    let mut children = Vec::new();
    for child in listing {
        children.push(child.map_err(read_err(host))?);
    }
    // Sorted so that errors (and the recursion) do not depend on the
    // directory's on-disk order; the tree sorts the entries themselves.
    children.sort_by_key(|c| c.file_name());
    for child in children {
        let path = child.path();
        let name = child.file_name();
        let name = name.to_str().ok_or_else(|| RootfsError::NotUtf8 {
            path: path.clone(),
            what: "name",
        })?;
        let rel = if rel.is_empty() {
            name.to_owned()
        } else {
            format!("{rel}/{name}")
        };
        let meta = fs::symlink_metadata(&path).map_err(read_err(&path))?;
        let kind = meta.file_type();
        if kind.is_symlink() {
            let target = fs::read_link(&path).map_err(read_err(&path))?;
            let target = target.to_str().ok_or_else(|| RootfsError::NotUtf8 {
                path: path.clone(),
                what: "symlink target",
            })?;
            tree.symlink(&rel, target)?;
        } else if kind.is_dir() {
            tree.dir(&rel, 0o755, Owner::ROOT)?;
            walk(&path, &rel, tree, count)?;
        } else if kind.is_file() {
            let data = fs::read(&path).map_err(read_err(&path))?;
            let executable = meta.permissions().mode() & 0o111 != 0;
            tree.file(&rel, data, file_mode(executable), Owner::ROOT)?;
        } else {
            return Err(RootfsError::Unsupported { path });
        }
        *count += 1;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::archive::Kind;
    use std::os::unix::fs::symlink;

    /// The glibc directory of nixos-22.11's armv7 store path, as
    /// `nix/rootfs.nix` lays it out (≈ 75 bytes; its files reach ≈ 100 and
    /// the links to them ≈ 115).
    const GLIBC: &str = "nix/store/0123456789abcdfghijklmnpqrsvwxyz-glibc-armv7l-unknown-linux-gnueabihf-2.35-224/lib";

    /// A Nix-like rootfs under `root` with host modes chosen by `exec`/`plain`/`dirs`.
    fn make_rootfs(root: &Path, exec: u32, plain: u32, dirs: u32) {
        let libdir = root.join(GLIBC);
        fs::create_dir_all(&libdir).unwrap();
        fs::create_dir_all(root.join("lib/arm-linux-gnueabihf")).unwrap();
        fs::write(libdir.join("ld-linux-armhf.so.3"), b"\x7fELF ld").unwrap();
        fs::write(libdir.join("libc.so.6"), b"\x7fELF libc").unwrap();
        fs::write(libdir.join("README"), b"not executable").unwrap();
        fs::set_permissions(libdir.join("ld-linux-armhf.so.3"), fs::Permissions::from_mode(exec)).unwrap();
        fs::set_permissions(libdir.join("libc.so.6"), fs::Permissions::from_mode(exec)).unwrap();
        fs::set_permissions(libdir.join("README"), fs::Permissions::from_mode(plain)).unwrap();
        symlink(
            format!("../{GLIBC}/ld-linux-armhf.so.3"),
            root.join("lib/ld-linux-armhf.so.3"),
        )
        .unwrap();
        symlink(
            format!("../../{GLIBC}/libc.so.6"),
            root.join("lib/arm-linux-gnueabihf/libc.so.6"),
        )
        .unwrap();
        for d in ["lib/arm-linux-gnueabihf", "lib", GLIBC] {
            fs::set_permissions(root.join(d), fs::Permissions::from_mode(dirs)).unwrap();
        }
    }

    fn tree_of(dir: &Path) -> (Tree, u64) {
        let mut tree = Tree::new();
        let count = dir_into_tree(dir, &mut tree).unwrap();
        (tree, count)
    }

    #[test]
    fn files_links_and_dirs_keep_their_layout_with_fixed_modes() {
        let tmp = tempfile::tempdir().unwrap();
        make_rootfs(tmp.path(), 0o555, 0o444, 0o755);
        let (tree, count) = tree_of(tmp.path());
        // nix, nix/store, <glibc>, <glibc>/lib, 3 files, lib, lib/arm-linux-gnueabihf, 2 links.
        assert_eq!(count, 11);
        assert_eq!(tree.iter().count(), 11);
        let ld = tree.get(&format!("{GLIBC}/ld-linux-armhf.so.3")).unwrap();
        assert_eq!((ld.mode, ld.owner), (0o755, Owner::ROOT));
        assert_eq!(ld.kind, Kind::File(b"\x7fELF ld".to_vec()));
        assert_eq!(tree.get(&format!("{GLIBC}/README")).unwrap().mode, 0o644);
        assert_eq!(tree.get("nix/store").unwrap().kind, Kind::Dir);
        assert_eq!(tree.get("nix/store").unwrap().mode, 0o755);
        assert_eq!(
            tree.get("lib/arm-linux-gnueabihf/libc.so.6").unwrap().kind,
            Kind::Symlink(format!("../../{GLIBC}/libc.so.6"))
        );
    }

    #[test]
    fn any_execute_bit_makes_a_file_executable() {
        for (host, image) in [
            (0o500, 0o755),
            (0o410, 0o755),
            (0o401, 0o755),
            (0o666, 0o644),
            (0o400, 0o644),
        ] {
            let tmp = tempfile::tempdir().unwrap();
            let file = tmp.path().join("f");
            fs::write(&file, b"x").unwrap();
            fs::set_permissions(&file, fs::Permissions::from_mode(host)).unwrap();
            let (tree, _) = tree_of(tmp.path());
            assert_eq!(tree.get("f").unwrap().mode, image, "host mode {host:o}");
        }
    }

    #[test]
    fn the_tar_depends_on_contents_not_on_host_modes_paths_or_times() {
        let tmp = tempfile::tempdir().unwrap();
        let (a, b, c) = (
            tmp.path().join("a"),
            tmp.path().join("b/elsewhere"),
            tmp.path().join("c"),
        );
        make_rootfs(&a, 0o555, 0o444, 0o755);
        make_rootfs(&b, 0o775, 0o664, 0o700);
        make_rootfs(&c, 0o555, 0o444, 0o755);
        let old = fs::File::open(b.join(GLIBC).join("libc.so.6")).unwrap();
        old.set_modified(std::time::UNIX_EPOCH).unwrap();
        let tar_a = tree_of(&a).0.to_tar(1_700_000_000).unwrap();
        assert_eq!(tar_a, tree_of(&b).0.to_tar(1_700_000_000).unwrap());
        assert_eq!(tar_a, tree_of(&a).0.to_tar(1_700_000_000).unwrap());
        // One changed byte, or a changed link target, changes the tar.
        fs::set_permissions(c.join(GLIBC).join("README"), fs::Permissions::from_mode(0o644)).unwrap();
        fs::write(c.join(GLIBC).join("README"), b"not executablE").unwrap();
        assert_ne!(tar_a, tree_of(&c).0.to_tar(1_700_000_000).unwrap());
        fs::remove_file(c.join("lib/ld-linux-armhf.so.3")).unwrap();
        symlink("elsewhere", c.join("lib/ld-linux-armhf.so.3")).unwrap();
        fs::write(c.join(GLIBC).join("README"), b"not executable").unwrap();
        fs::set_permissions(c.join(GLIBC).join("README"), fs::Permissions::from_mode(0o444)).unwrap();
        assert_ne!(tar_a, tree_of(&c).0.to_tar(1_700_000_000).unwrap());
    }

    #[test]
    fn long_store_paths_and_link_targets_round_trip_through_the_tar() {
        let tmp = tempfile::tempdir().unwrap();
        make_rootfs(tmp.path(), 0o555, 0o444, 0o755);
        let tar_bytes = tree_of(tmp.path()).0.to_tar(1234).unwrap();
        let mut seen = Vec::new();
        for entry in tar::Archive::new(tar_bytes.as_slice()).entries().unwrap() {
            let entry = entry.unwrap();
            let h = entry.header();
            let path = String::from_utf8(entry.path_bytes().into_owned()).unwrap();
            let link = entry
                .link_name_bytes()
                .map(|l| String::from_utf8(l.into_owned()).unwrap());
            assert_eq!(
                (h.uid().unwrap(), h.gid().unwrap(), h.mtime().unwrap()),
                (0, 0, 1234),
                "{path}"
            );
            seen.push((path, h.mode().unwrap(), link));
        }
        let libc = format!("{GLIBC}/libc.so.6");
        assert!(libc.len() > 100, "the test must exceed ustar's 100-byte name field");
        assert!(seen.contains(&(libc, 0o755, None)));
        assert!(seen.contains(&(format!("{GLIBC}/README"), 0o644, None)));
        assert!(seen.contains(&(format!("{GLIBC}/"), 0o755, None)));
        let target = format!("../../{GLIBC}/libc.so.6");
        assert!(target.len() > 100, "the test must exceed ustar's 100-byte link field");
        assert!(seen.contains(&("lib/arm-linux-gnueabihf/libc.so.6".to_owned(), 0o777, Some(target))));
        assert!(seen.contains(&(
            "lib/ld-linux-armhf.so.3".to_owned(),
            0o777,
            Some(format!("../{GLIBC}/ld-linux-armhf.so.3"))
        )));
        assert_eq!(seen.len(), 11);
    }

    #[test]
    fn sockets_are_refused_with_their_path() {
        let tmp = tempfile::tempdir().unwrap();
        let _listener = std::os::unix::net::UnixListener::bind(tmp.path().join("sock")).unwrap();
        let err = dir_into_tree(tmp.path(), &mut Tree::new()).unwrap_err();
        assert!(matches!(err, RootfsError::Unsupported { .. }), "{err}");
        assert!(err.to_string().contains("sock"), "{err}");
    }

    #[test]
    fn a_missing_directory_is_an_error_naming_it() {
        let tmp = tempfile::tempdir().unwrap();
        let err = dir_into_tree(&tmp.path().join("absent"), &mut Tree::new()).unwrap_err();
        assert!(err.to_string().contains("absent"), "{err}");
    }
}
