//! Reading Debian binary packages (`.deb`) without dpkg: the `ar` container,
//! the `control` fields and the `data.tar.{xz,gz}` file tree.
//!
//! The image's runtime (glibc, libgcc_s, CA certificates) comes from `.deb`
//! files pinned by sha256 in `packaging/debs.lock`; the build script verifies
//! those hashes before this module sees the bytes. Reading them here, rather
//! than extracting with the host's `dpkg-deb`/`tar`, means the host's umask,
//! owner mapping and clock never reach the image: only paths, contents, the
//! executable bit and symlink targets are taken from the package.
//!
//! # Missing
//! - `data.tar.zst` (Ubuntu's default) and `data.tar.bz2`; Debian bookworm
//!   uses xz, and the error names the member found.

use std::collections::BTreeMap;
use std::io::Read;

/// Errors while reading a `.deb`.
#[derive(Debug, thiserror::Error)]
pub enum DebError {
    /// The `ar` container is malformed.
    #[error("{deb}: not a valid .deb ar archive: {reason}")]
    Ar {
        /// The package file.
        deb: String,
        /// What is wrong.
        reason: String,
    },
    /// A required member is missing or uses an unsupported compression.
    #[error("{deb}: {reason}")]
    Member {
        /// The package file.
        deb: String,
        /// What is missing.
        reason: String,
    },
    /// Decompressing or reading a member tar failed.
    #[error("{deb}: failed to read {member}: {reason}")]
    Read {
        /// The package file.
        deb: String,
        /// The member (`data.tar.xz`, ...).
        member: String,
        /// The underlying error.
        reason: String,
    },
}

/// One entry of a package's data tree, normalised to relative paths.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DebEntry {
    /// A directory.
    Dir,
    /// A regular file and whether any execute bit was set.
    File {
        /// Contents.
        data: Vec<u8>,
        /// Any of the `0o111` bits set in the package.
        executable: bool,
    },
    /// A symbolic link and its target.
    Symlink(String),
}

/// A parsed `.deb`.
#[derive(Clone, Debug)]
pub struct Deb {
    /// `Package:` from the control file.
    pub package: String,
    /// `Version:` from the control file.
    pub version: String,
    /// `Architecture:` from the control file.
    pub architecture: String,
    /// The data tree keyed by relative path (`lib/arm-linux-gnueabihf/libc.so.6`).
    pub entries: BTreeMap<String, DebEntry>,
}

impl Deb {
    /// Parses the bytes of a `.deb`; `name` is used in error messages.
    pub fn parse(name: &str, bytes: &[u8]) -> Result<Deb, DebError> {
        let members = ar_members(name, bytes)?;
        let member = |prefix: &str| {
            members
                .iter()
                .find(|(n, _)| n.starts_with(prefix))
                .ok_or_else(|| DebError::Member {
                    deb: name.to_owned(),
                    reason: format!("no {prefix}.* member"),
                })
        };
        let (control_name, control_tar) = member("control.tar")?;
        let (data_name, data_tar) = member("data.tar")?;
        let control_tar = decompress(name, control_name, control_tar)?;
        let control_entries = read_tar(name, control_name, &control_tar)?;
        let control = match control_entries.get("control") {
            Some(DebEntry::File { data, .. }) => String::from_utf8_lossy(data).into_owned(),
            _ => {
                return Err(DebError::Member {
                    deb: name.to_owned(),
                    reason: format!("{control_name} has no ./control file"),
                })
            }
        };
        let field = |key: &str| -> Result<String, DebError> {
            control
                .lines()
                .find_map(|line| {
                    line.strip_prefix(key)
                        .and_then(|rest| rest.strip_prefix(':'))
                        .map(|v| v.trim().to_owned())
                })
                .ok_or_else(|| DebError::Member {
                    deb: name.to_owned(),
                    reason: format!("control file has no {key}: field"),
                })
        };
        let data_tar = decompress(name, data_name, data_tar)?;
        Ok(Deb {
            package: field("Package")?,
            version: field("Version")?,
            architecture: field("Architecture")?,
            entries: read_tar(name, data_name, &data_tar)?,
        })
    }
}

/// Splits a System V / GNU `ar` archive into (member name, bytes).
pub(crate) fn ar_members<'a>(deb: &str, bytes: &'a [u8]) -> Result<Vec<(String, &'a [u8])>, DebError> {
    let bad = |reason: String| DebError::Ar {
        deb: deb.to_owned(),
        reason,
    };
    let mut rest = bytes
        .strip_prefix(b"!<arch>\n")
        .ok_or_else(|| bad("missing the !<arch> magic".to_owned()))?;
    let mut members = Vec::new();
    while !rest.is_empty() {
        if rest.len() < 60 {
            return Err(bad(format!("truncated member header ({} bytes)", rest.len())));
        }
        let (header, body) = rest.split_at(60);
        if &header[58..60] != b"`\n" {
            return Err(bad("member header without the `\\n terminator".to_owned()));
        }
        let name = String::from_utf8_lossy(&header[..16])
            .trim_end()
            .trim_end_matches('/')
            .to_owned();
        let size: usize = std::str::from_utf8(&header[48..58])
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .ok_or_else(|| bad(format!("member {name:?} has an unreadable size")))?;
        if body.len() < size {
            return Err(bad(format!(
                "member {name:?} claims {size} bytes, {} remain",
                body.len()
            )));
        }
        members.push((name, &body[..size]));
        // Members are 2-byte aligned.
        let next = size + (size & 1);
        rest = body.get(next..).unwrap_or(&[]);
    }
    Ok(members)
}

pub(crate) fn decompress(deb: &str, member: &str, bytes: &[u8]) -> Result<Vec<u8>, DebError> {
    let read_err = |reason: String| DebError::Read {
        deb: deb.to_owned(),
        member: member.to_owned(),
        reason,
    };
    let mut out = Vec::new();
    match member.rsplit_once('.').map(|(_, ext)| ext) {
        Some("tar") => out.extend_from_slice(bytes),
        Some("xz") => lzma_rs::xz_decompress(&mut std::io::BufReader::new(bytes), &mut out)
            .map_err(|e| read_err(e.to_string()))?,
        Some("gz") => {
            flate2::read::GzDecoder::new(bytes)
                .read_to_end(&mut out)
                .map_err(|e| read_err(e.to_string()))?;
        }
        _ => {
            return Err(DebError::Member {
                deb: deb.to_owned(),
                reason: format!("member {member} uses an unsupported compression (supported: .tar, .tar.xz, .tar.gz)"),
            })
        }
    }
    Ok(out)
}

pub(crate) fn read_tar(deb: &str, member: &str, bytes: &[u8]) -> Result<BTreeMap<String, DebEntry>, DebError> {
    let read_err = |reason: String| DebError::Read {
        deb: deb.to_owned(),
        member: member.to_owned(),
        reason,
    };
    let mut entries = BTreeMap::new();
    let mut hard_links = Vec::new();
    let mut archive = tar::Archive::new(bytes);
    for entry in archive.entries().map_err(|e| read_err(e.to_string()))? {
        let mut entry = entry.map_err(|e| read_err(e.to_string()))?;
        let raw_path = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let Ok(path) = crate::archive::normalise(&raw_path) else {
            // "./" itself: the package root.
            continue;
        };
        let kind = entry.header().entry_type();
        let link_target = || -> Result<String, DebError> {
            entry
                .link_name_bytes()
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .ok_or_else(|| read_err(format!("{raw_path}: link without a target")))
        };
        let value = match kind {
            tar::EntryType::Directory => DebEntry::Dir,
            tar::EntryType::Symlink => DebEntry::Symlink(link_target()?),
            tar::EntryType::Link => {
                hard_links.push((path, link_target()?));
                continue;
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                let executable = entry.header().mode().map_err(|e| read_err(e.to_string()))? & 0o111 != 0;
                let mut data = Vec::new();
                entry
                    .read_to_end(&mut data)
                    .map_err(|e| read_err(format!("{raw_path}: {e}")))?;
                DebEntry::File { data, executable }
            }
            other => {
                return Err(read_err(format!(
                    "{raw_path}: unsupported entry type {other:?} (devices and FIFOs are not packaged)"
                )))
            }
        };
        entries.insert(path, value);
    }
    for (path, target) in hard_links {
        let target_key = crate::archive::normalise(&target).map_err(|e| read_err(e.to_string()))?;
        let value = entries
            .get(&target_key)
            .cloned()
            .ok_or_else(|| read_err(format!("{path}: hard link to missing {target}")))?;
        entries.insert(path, value);
    }
    Ok(entries)
}

/// Builds a `.deb` in memory (uncompressed members) for tests.
#[cfg(test)]
pub(crate) fn build_test_deb(package: &str, version: &str, files: &[(&str, &[u8], u32)]) -> Vec<u8> {
    fn tar_of(files: &[(&str, &[u8], u32)]) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        for (path, data, mode) in files {
            let mut header = tar::Header::new_gnu();
            header.set_mode(*mode);
            header.set_mtime(1_600_000_000);
            header.set_uid(1000);
            if let Some(target) = path.strip_prefix("symlink:") {
                let (link, target) = target.split_once("->").unwrap();
                header.set_entry_type(tar::EntryType::Symlink);
                header.set_size(0);
                builder.append_link(&mut header, link, target).unwrap();
            } else {
                header.set_size(data.len() as u64);
                builder.append_data(&mut header, path, *data).unwrap();
            }
        }
        builder.into_inner().unwrap()
    }
    fn member(out: &mut Vec<u8>, name: &str, data: &[u8]) {
        out.extend_from_slice(
            format!("{name:<16}{:<12}{:<6}{:<6}{:<8}{:<10}`\n", 0, 0, 0, 100644, data.len()).as_bytes(),
        );
        out.extend_from_slice(data);
        if data.len() % 2 == 1 {
            out.push(b'\n');
        }
    }
    let control = format!("Package: {package}\nVersion: {version}\nArchitecture: armhf\n");
    let mut out = b"!<arch>\n".to_vec();
    member(&mut out, "debian-binary", b"2.0\n");
    member(
        &mut out,
        "control.tar",
        &tar_of(&[("./control", control.as_bytes(), 0o644)]),
    );
    member(&mut out, "data.tar", &tar_of(files));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_fields_and_data_entries_are_read() {
        let deb = build_test_deb(
            "libc6",
            "2.36-9",
            &[
                ("./lib/arm/libc.so.6", b"\x7fELF-odd", 0o755),
                ("./usr/share/doc/libc6/copyright", b"GPL", 0o600),
                ("symlink:./lib/ld.so->arm/ld.so", b"", 0o777),
            ],
        );
        let deb = Deb::parse("test.deb", &deb).unwrap();
        assert_eq!((deb.package.as_str(), deb.version.as_str()), ("libc6", "2.36-9"));
        assert_eq!(deb.architecture, "armhf");
        assert_eq!(
            deb.entries["lib/arm/libc.so.6"],
            DebEntry::File {
                data: b"\x7fELF-odd".to_vec(),
                executable: true
            }
        );
        assert_eq!(
            deb.entries["usr/share/doc/libc6/copyright"],
            DebEntry::File {
                data: b"GPL".to_vec(),
                executable: false
            }
        );
        assert_eq!(deb.entries["lib/ld.so"], DebEntry::Symlink("arm/ld.so".to_owned()));
    }

    #[test]
    fn truncated_ar_archives_are_rejected_with_the_file_name() {
        let deb = build_test_deb("x", "1", &[("./a", b"abc", 0o644)]);
        let err = Deb::parse("x_1_armhf.deb", &deb[..deb.len() - 10]).unwrap_err();
        assert!(err.to_string().starts_with("x_1_armhf.deb: "), "{err}");
        assert!(Deb::parse("y.deb", b"not an archive").is_err());
    }
}
