//! Deterministic archives: an in-memory file tree written as a tar whose bytes
//! depend only on the tree, never on the host that builds it.
//!
//! What varies between hosts and is pinned here:
//! - entry order: a [`BTreeMap`] keyed by the normalised path, so entries are
//!   sorted byte-wise and a directory always precedes its contents;
//! - owners: numeric uid/gid chosen by the caller (root unless stated), no user
//!   or group names (they would be looked up on the host);
//! - modes: `0755` for directories and executables, `0644` for other files,
//!   unless the caller asks for a special mode (e.g. `1777` for `/tmp`);
//! - mtimes: one value for every entry, `SOURCE_DATE_EPOCH`;
//! - format: POSIX ustar headers, with the GNU long-name extension only for
//!   paths that do not fit (the `tar` crate emits it with fixed fields);
//! - gzip: no file name, mtime 0, a fixed OS byte and compression level
//!   ([`gzip`]).
//!
//! Devices, FIFOs and hard links are not represented: a hard link read from a
//! `.deb` becomes a copy of its target ([`crate::deb`]).

use std::collections::BTreeMap;
use std::io::Write;

use flate2::{Compression, GzBuilder};

/// Errors while assembling or writing a tree.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    /// A path is empty, absolute after normalisation, or walks out with `..`.
    #[error("invalid archive path {path:?}: {reason}")]
    InvalidPath {
        /// The path as given.
        path: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// Two different entries claim the same path (e.g. two `.deb` files ship it).
    #[error("conflicting archive entries for {path:?}: {reason}")]
    Conflict {
        /// The normalised path.
        path: String,
        /// What conflicts.
        reason: String,
    },
    /// Writing the tar or gzip stream failed.
    #[error("failed to write archive entry {path:?}")]
    Write {
        /// The entry being written.
        path: String,
        /// The underlying error.
        source: std::io::Error,
    },
}

/// Numeric owner of an entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Owner {
    /// User id.
    pub uid: u32,
    /// Group id.
    pub gid: u32,
}

impl Owner {
    /// `0:0`.
    pub const ROOT: Owner = Owner { uid: 0, gid: 0 };
}

/// What an entry is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A directory.
    Dir,
    /// A regular file with its contents.
    File(Vec<u8>),
    /// A symbolic link to the given target (kept verbatim).
    Symlink(String),
}

/// One entry of a [`Tree`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Directory, file or symlink.
    pub kind: Kind,
    /// Permission bits (`0o7777` range).
    pub mode: u32,
    /// Numeric owner.
    pub owner: Owner,
}

/// Regular file mode for `executable`: `0755` or `0644`.
pub fn file_mode(executable: bool) -> u32 {
    if executable {
        0o755
    } else {
        0o644
    }
}

/// A set of archive entries keyed by normalised relative path (`usr/bin/x`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tree {
    entries: BTreeMap<String, Entry>,
}

/// Normalises `path` to the relative form used as a key: no leading `/` or
/// `./`, no trailing `/`, no empty or `.` components; `..` is rejected.
pub fn normalise(path: &str) -> Result<String, ArchiveError> {
    let mut parts = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                return Err(ArchiveError::InvalidPath {
                    path: path.to_owned(),
                    reason: "`..` components are not allowed",
                })
            }
            p => parts.push(p),
        }
    }
    if parts.is_empty() {
        return Err(ArchiveError::InvalidPath {
            path: path.to_owned(),
            reason: "the path names the archive root",
        });
    }
    Ok(parts.join("/"))
}

impl Tree {
    /// An empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or re-declares with new mode/owner) a directory.
    pub fn dir(&mut self, path: &str, mode: u32, owner: Owner) -> Result<(), ArchiveError> {
        self.insert(path, Kind::Dir, mode, owner)
    }

    /// Adds a regular file; adding the same path twice is allowed only with
    /// identical contents and metadata.
    pub fn file(&mut self, path: &str, data: Vec<u8>, mode: u32, owner: Owner) -> Result<(), ArchiveError> {
        self.insert(path, Kind::File(data), mode, owner)
    }

    /// Adds a symbolic link owned by root (`0777`, as symlink modes are ignored).
    pub fn symlink(&mut self, path: &str, target: &str) -> Result<(), ArchiveError> {
        self.insert(path, Kind::Symlink(target.to_owned()), 0o777, Owner::ROOT)
    }

    /// Adds every missing parent directory as `0755` owned by root.
    pub fn add_parents(&mut self) {
        let missing: Vec<String> = self
            .entries
            .keys()
            .flat_map(|path| {
                path.match_indices('/')
                    .map(|(i, _)| path[..i].to_owned())
                    .collect::<Vec<_>>()
            })
            .filter(|parent| !self.entries.contains_key(parent))
            .collect();
        for parent in missing {
            self.entries.insert(
                parent,
                Entry {
                    kind: Kind::Dir,
                    mode: 0o755,
                    owner: Owner::ROOT,
                },
            );
        }
    }

    /// Every entry whose mode or owner a shipped archive must not have, as
    /// "path: what" lines (empty when the tree is fine). The allowed modes are
    /// exactly: directories `0755`, regular files `0644` or `0755`, symlinks
    /// (whose mode is ignored), and `1777` for the directories in `sticky`
    /// (`/tmp`). So nothing is setuid, setgid or world-writable, and nothing
    /// is hidden from its readers. Every entry is owned by root except those
    /// in `owned`, which must have exactly the given owner.
    pub fn mode_violations(&self, sticky: &[&str], owned: &[(&str, Owner)]) -> Vec<String> {
        let mut violations = Vec::new();
        for (path, entry) in &self.entries {
            let mode = entry.mode;
            let allowed = match entry.kind {
                Kind::Dir => mode == 0o755 || (mode == 0o1777 && sticky.contains(&path.as_str())),
                Kind::File(_) => mode == 0o644 || mode == 0o755,
                Kind::Symlink(_) => true,
            };
            if !allowed {
                violations.push(format!(
                    "{path}: {} with mode {mode:04o} (allowed: directories 0755, files 0644 or 0755)",
                    describe(&entry.kind)
                ));
            }
            let owner = owned.iter().find(|(p, _)| p == path).map_or(Owner::ROOT, |(_, o)| *o);
            if entry.owner != owner {
                violations.push(format!(
                    "{path}: owned by {}:{}, expected {}:{}",
                    entry.owner.uid, entry.owner.gid, owner.uid, owner.gid
                ));
            }
        }
        violations
    }

    /// The entry at `path`, if any.
    #[cfg(test)]
    pub fn get(&self, path: &str) -> Option<&Entry> {
        normalise(path).ok().and_then(|p| self.entries.get(&p))
    }

    /// Entries in archive order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Entry)> {
        self.entries.iter().map(|(p, e)| (p.as_str(), e))
    }

    fn insert(&mut self, path: &str, kind: Kind, mode: u32, owner: Owner) -> Result<(), ArchiveError> {
        let key = normalise(path)?;
        let entry = Entry {
            kind,
            mode: mode & 0o7777,
            owner,
        };
        match self.entries.get(&key) {
            None => {}
            Some(old) if old.kind == Kind::Dir && entry.kind == Kind::Dir => {}
            Some(old) if *old == entry => {}
            Some(old) => {
                return Err(ArchiveError::Conflict {
                    path: key,
                    reason: format!(
                        "{} (mode {:o}) vs {} (mode {:o})",
                        describe(&old.kind),
                        old.mode,
                        describe(&entry.kind),
                        entry.mode
                    ),
                })
            }
        }
        self.entries.insert(key, entry);
        Ok(())
    }

    /// Writes the tree as an uncompressed tar with every mtime set to `mtime`.
    ///
    /// Directories are written with a trailing `/`, as GNU tar does.
    pub fn to_tar(&self, mtime: u64) -> Result<Vec<u8>, ArchiveError> {
        self.write_tar(mtime, false)
    }

    /// Writes the tree as `dpkg-deb` writes a package's members: a `./` entry
    /// for the root, then every path as `./usr/bin/x` (dpkg and lintian read
    /// either form, but this is the one every Debian package has).
    pub fn to_dpkg_tar(&self, mtime: u64) -> Result<Vec<u8>, ArchiveError> {
        self.write_tar(mtime, true)
    }

    fn write_tar(&self, mtime: u64, dot_slash: bool) -> Result<Vec<u8>, ArchiveError> {
        let mut builder = tar::Builder::new(Vec::new());
        let root = Entry {
            kind: Kind::Dir,
            mode: 0o755,
            owner: Owner::ROOT,
        };
        let root = dot_slash.then_some((String::new(), &root));
        for (path, entry) in root.into_iter().chain(self.entries.iter().map(|(p, e)| (p.clone(), e))) {
            let wrap = |source| ArchiveError::Write {
                path: path.clone(),
                source,
            };
            let mut header = tar::Header::new_ustar();
            header.set_mode(entry.mode);
            header.set_uid(u64::from(entry.owner.uid));
            header.set_gid(u64::from(entry.owner.gid));
            header.set_mtime(mtime);
            let name = match entry.kind {
                Kind::Dir if path.is_empty() => "./".to_owned(),
                Kind::Dir => format!("{}{path}/", if dot_slash { "./" } else { "" }),
                _ => format!("{}{path}", if dot_slash { "./" } else { "" }),
            };
            let (kind, data): (tar::EntryType, &[u8]) = match &entry.kind {
                Kind::Dir => (tar::EntryType::Directory, &[]),
                Kind::File(data) => (tar::EntryType::Regular, data),
                Kind::Symlink(_) => (tar::EntryType::Symlink, &[]),
            };
            header.set_entry_type(kind);
            header.set_size(data.len() as u64);
            if dot_slash {
                // The tar crate drops `.` components from paths it is given,
                // so the name goes into the header field as it is.
                let field = &mut header.as_old_mut().name;
                if name.len() > field.len() {
                    return Err(ArchiveError::InvalidPath {
                        path: name,
                        reason: "longer than the 100 bytes of a .deb member's tar name field",
                    });
                }
                field.fill(0);
                field[..name.len()].copy_from_slice(name.as_bytes());
                if let Kind::Symlink(target) = &entry.kind {
                    header.set_link_name(target).map_err(wrap)?;
                }
                header.set_cksum();
                builder.append(&header, data).map_err(wrap)?;
            } else if let Kind::Symlink(target) = &entry.kind {
                builder.append_link(&mut header, &name, target).map_err(wrap)?;
            } else {
                builder.append_data(&mut header, &name, data).map_err(wrap)?;
            }
        }
        builder.into_inner().map_err(|source| ArchiveError::Write {
            path: "<end of archive>".to_owned(),
            source,
        })
    }
}

fn describe(kind: &Kind) -> String {
    match kind {
        Kind::Dir => "a directory".to_owned(),
        Kind::File(data) => format!("a {}-byte file", data.len()),
        Kind::Symlink(target) => format!("a symlink to {target:?}"),
    }
}

/// The OS byte written in gzip headers: 3 (Unix), what `gzip -n` writes on Linux.
pub const GZIP_OS_UNIX: u8 = 3;

/// Gzip-compresses `data` deterministically: no file name, no comment, mtime 0,
/// OS byte [`GZIP_OS_UNIX`], best compression (the bytes depend on the pinned
/// `miniz_oxide` version in Cargo.lock, which the build is locked to).
pub fn gzip(data: &[u8]) -> Result<Vec<u8>, ArchiveError> {
    let mut encoder = GzBuilder::new()
        .mtime(0)
        .operating_system(GZIP_OS_UNIX)
        .write(Vec::new(), Compression::best());
    encoder
        .write_all(data)
        .and_then(|()| encoder.finish())
        .map_err(|source| ArchiveError::Write {
            path: "<gzip stream>".to_owned(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::test_support::{read_entries, ReadEntry};
    use super::*;
    use std::io::Read;

    fn sample(order: &[&str]) -> Tree {
        let mut tree = Tree::new();
        for name in order {
            match *name {
                "bin" => tree
                    .file("usr/bin/agent", b"\x7fELF".to_vec(), 0o755, Owner::ROOT)
                    .unwrap(),
                "conf" => tree
                    .file("./etc/app/conf.yaml", b"a: 1\n".to_vec(), 0o644, Owner::ROOT)
                    .unwrap(),
                "link" => tree.symlink("/lib/ld.so", "arm/ld.so").unwrap(),
                "owned" => tree.dir("etc/app/", 0o755, Owner { uid: 10001, gid: 10001 }).unwrap(),
                _ => unreachable!(),
            }
        }
        tree.add_parents();
        tree
    }

    #[test]
    fn insertion_order_does_not_change_the_bytes() {
        let a = sample(&["bin", "conf", "link", "owned"]).to_tar(1_700_000_000).unwrap();
        let b = sample(&["owned", "link", "conf", "bin"]).to_tar(1_700_000_000).unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn entries_are_sorted_with_fixed_owners_modes_and_mtimes() {
        let tar_bytes = sample(&["bin", "conf", "link", "owned"]).to_tar(1234).unwrap();
        let entries = read_entries(&tar_bytes);
        let paths: Vec<&str> = entries.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "etc/",
                "etc/app/",
                "etc/app/conf.yaml",
                "lib/",
                "lib/ld.so",
                "usr/",
                "usr/bin/",
                "usr/bin/agent"
            ]
        );
        for ReadEntry {
            path,
            mode,
            uid,
            gid,
            mtime,
            kind,
            ..
        } in &entries
        {
            assert_eq!(*mtime, 1234, "{path}");
            match path.as_str() {
                "etc/app/" => assert_eq!((*uid, *gid, *mode), (10001, 10001, 0o755)),
                "etc/app/conf.yaml" => assert_eq!((*uid, *gid, *mode), (0, 0, 0o644)),
                "usr/bin/agent" => assert_eq!((*uid, *gid, *mode), (0, 0, 0o755)),
                "lib/ld.so" => assert_eq!(*kind, tar::EntryType::Symlink),
                p if p.ends_with('/') => {
                    assert_eq!((*uid, *gid, *mode), (0, 0, 0o755));
                    assert_eq!(*kind, tar::EntryType::Directory);
                }
                p => panic!("unexpected entry {p}"),
            }
        }
    }

    #[test]
    fn headers_carry_no_user_or_group_names() {
        let tar_bytes = sample(&["bin"]).to_tar(0).unwrap();
        let mut archive = tar::Archive::new(tar_bytes.as_slice());
        for entry in archive.entries().unwrap() {
            let entry = entry.unwrap();
            assert_eq!(entry.header().username_bytes(), Some(&b""[..]));
            assert_eq!(entry.header().groupname_bytes(), Some(&b""[..]));
        }
    }

    #[test]
    fn long_paths_round_trip() {
        let long = format!("usr/lib/{}/file", "d".repeat(180));
        let mut tree = Tree::new();
        tree.file(&long, b"x".to_vec(), 0o644, Owner::ROOT).unwrap();
        let tar_bytes = tree.to_tar(0).unwrap();
        let paths: Vec<String> = read_entries(&tar_bytes).into_iter().map(|e| e.path).collect();
        assert_eq!(paths, [long]);
    }

    #[test]
    fn conflicting_entries_are_rejected_and_identical_ones_merge() {
        let mut tree = Tree::new();
        tree.file("a", b"1".to_vec(), 0o644, Owner::ROOT).unwrap();
        tree.file("a", b"1".to_vec(), 0o644, Owner::ROOT).unwrap();
        let err = tree.file("a", b"2".to_vec(), 0o644, Owner::ROOT).unwrap_err();
        assert!(err.to_string().contains("conflicting archive entries for \"a\""));
        assert!(tree.dir("a", 0o755, Owner::ROOT).is_err());
    }

    #[test]
    fn only_0755_directories_0644_or_0755_files_and_listed_owners_pass_the_mode_policy() {
        let user = Owner { uid: 10001, gid: 10001 };
        let mut good = sample(&["bin", "conf", "link"]);
        good.dir("tmp", 0o1777, Owner::ROOT).unwrap();
        good.dir("run/state", 0o755, user).unwrap();
        good.add_parents();
        assert_eq!(
            good.mode_violations(&["tmp"], &[("run/state", user)]),
            Vec::<String>::new()
        );

        let cases: [(&str, Kind, u32, Owner, &str); 8] = [
            ("setuid", Kind::File(vec![]), 0o4755, Owner::ROOT, "mode 4755"),
            ("setgid", Kind::File(vec![]), 0o2755, Owner::ROOT, "mode 2755"),
            ("world-writable", Kind::File(vec![]), 0o666, Owner::ROOT, "mode 0666"),
            ("private", Kind::File(vec![]), 0o600, Owner::ROOT, "mode 0600"),
            ("open-dir", Kind::Dir, 0o777, Owner::ROOT, "mode 0777"),
            ("sticky-unlisted", Kind::Dir, 0o1777, Owner::ROOT, "mode 1777"),
            (
                "user-file",
                Kind::File(vec![]),
                0o644,
                user,
                "owned by 10001:10001, expected 0:0",
            ),
            (
                "run/state",
                Kind::Dir,
                0o755,
                Owner::ROOT,
                "owned by 0:0, expected 10001:10001",
            ),
        ];
        for (path, kind, mode, owner, expected) in cases {
            let mut tree = Tree::new();
            tree.insert(path, kind, mode, owner).unwrap();
            let violations = tree.mode_violations(&["tmp"], &[("run/state", user)]);
            assert_eq!(violations.len(), 1, "{path}: {violations:?}");
            assert!(
                violations[0].starts_with(&format!("{path}: ")) && violations[0].contains(expected),
                "{path}: {violations:?}"
            );
        }
    }

    #[test]
    fn paths_escaping_the_root_are_rejected() {
        assert!(normalise("../etc/passwd").is_err());
        assert!(normalise("a/../../b").is_err());
        assert!(normalise("/").is_err());
        assert_eq!(normalise("/./usr//bin/").unwrap(), "usr/bin");
    }

    #[test]
    fn gzip_header_has_no_name_no_time_and_a_fixed_os_byte() {
        let gz = gzip(b"hello").unwrap();
        // ID1 ID2 CM FLG MTIME(4) XFL OS
        assert_eq!(&gz[..4], &[0x1f, 0x8b, 8, 0], "no FNAME/FCOMMENT/FEXTRA flags");
        assert_eq!(&gz[4..8], &[0, 0, 0, 0], "mtime 0");
        assert_eq!(gz[9], GZIP_OS_UNIX);
        assert_eq!(gz, gzip(b"hello").unwrap());
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(gz.as_slice())
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, b"hello");
    }
}

/// Reading archives back, for the tests of this module and of `main.rs`.
#[cfg(test)]
pub(crate) mod test_support {
    /// One tar entry's header fields, as a test checks them.
    #[derive(Debug)]
    pub(crate) struct ReadEntry {
        pub path: String,
        pub kind: tar::EntryType,
        pub mode: u32,
        pub uid: u64,
        pub gid: u64,
        pub mtime: u64,
        pub user: Vec<u8>,
        pub group: Vec<u8>,
    }

    /// Every entry of an uncompressed tar, in archive order.
    pub(crate) fn read_entries(tar_bytes: &[u8]) -> Vec<ReadEntry> {
        let mut archive = tar::Archive::new(tar_bytes);
        archive
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let h = e.header();
                ReadEntry {
                    path: String::from_utf8(e.path_bytes().into_owned()).unwrap(),
                    kind: h.entry_type(),
                    mode: h.mode().unwrap(),
                    uid: h.uid().unwrap(),
                    gid: h.gid().unwrap(),
                    mtime: h.mtime().unwrap(),
                    user: h.username_bytes().unwrap_or_default().to_vec(),
                    group: h.groupname_bytes().unwrap_or_default().to_vec(),
                }
            })
            .collect()
    }
}
