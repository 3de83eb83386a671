//! Writes a `.deb` as `dpkg-deb --build` would, byte for byte the same from
//! the same inputs: the `ar` container (`debian-binary`, `control.tar.gz`,
//! `data.tar.gz`) with every member dated `SOURCE_DATE_EPOCH`, owned by 0:0,
//! mode 100644; tar members from [`Tree::to_dpkg_tar`] (sorted, `./`-rooted,
//! root-owned, one mtime); gzip from [`archive::gzip`] (no name, mtime 0).
//!
//! The control file is `packaging/deb/control` with its `@VERSION@`,
//! `@ARCHITECTURE@`, `@INSTALLED_SIZE@` and `@DEPENDS@` filled in; `md5sums`
//! lists every regular file; `conffiles` names the files dpkg must keep when
//! the administrator edited them.
//!
//! # Missing
//! - xz or zstd members (gzip is what every dpkg reads and flate2 writes
//!   deterministically; the binary compresses to about 45 %).

use std::collections::BTreeMap;

use crate::arch::Arch;
use crate::archive::{self, ArchiveError, Kind, Owner, Tree};
use crate::util::md5_hex;

/// Why a `.deb` could not be written.
#[derive(Debug, thiserror::Error)]
pub enum DebWriteError {
    /// The control template lacks a placeholder, or has one this writer does not fill.
    #[error("packaging/deb/control: {0}")]
    Template(String),
    /// A conffile is not a regular file of the package.
    #[error("conffile {0} is not a regular file in the package (conffiles must be files the package ships)")]
    Conffile(String),
    /// A maintainer script name dpkg does not run.
    #[error("maintainer script {0:?} is not one of preinst, postinst, prerm, postrm")]
    Script(String),
    /// Assembling the member tars failed.
    #[error(transparent)]
    Archive(#[from] ArchiveError),
}

/// The maintainer scripts dpkg runs.
pub const SCRIPTS: [&str; 4] = ["preinst", "postinst", "prerm", "postrm"];

/// Everything a `.deb` is made of.
#[derive(Clone, Debug)]
pub struct Package {
    /// The Debian version (`0.1.0-1`).
    pub version: String,
    /// The architecture (`Architecture:`).
    pub arch: Arch,
    /// `Depends:` (computed from the binary, see [`crate::elf`]).
    pub depends: String,
    /// `packaging/deb/control`, with placeholders.
    pub control_template: String,
    /// Maintainer scripts by name (`postinst` → bytes).
    pub scripts: BTreeMap<String, Vec<u8>>,
    /// Absolute paths of the conffiles.
    pub conffiles: Vec<String>,
    /// The installed files.
    pub data: Tree,
}

/// The Debian version of a release version: SemVer's pre-release `-` becomes
/// `~` (so `0.2.0~rc.1` sorts before `0.2.0`), then `-<revision>`.
pub fn debian_version(version: &str, revision: u32) -> String {
    format!("{}-{revision}", version.replace('-', "~"))
}

/// `Package:` of a control text.
pub fn package_name(control: &str) -> Option<&str> {
    control.lines().find_map(|l| l.strip_prefix("Package:")).map(str::trim)
}

/// The first `@WORD@` (upper case and `_`) left in `text`.
fn placeholder(text: &str) -> Option<&str> {
    text.match_indices('@').find_map(|(at, _)| {
        let rest = &text[at + 1..];
        let len = rest.find(|c: char| !(c.is_ascii_uppercase() || c == '_'))?;
        (len > 0 && rest[len..].starts_with('@')).then(|| &text[at..at + len + 2])
    })
}

/// dpkg's `Installed-Size`: KiB, each file rounded up, 1 for every other entry.
fn installed_size(data: &Tree) -> u64 {
    data.iter()
        .map(|(_, e)| match &e.kind {
            Kind::File(bytes) => (bytes.len() as u64).div_ceil(1024),
            _ => 1,
        })
        .sum()
}

impl Package {
    /// The control file: the template with its placeholders filled in.
    pub fn control(&self) -> Result<String, DebWriteError> {
        let mut text = self.control_template.clone();
        for (key, value) in [
            ("@VERSION@", self.version.clone()),
            ("@ARCHITECTURE@", self.arch.deb_arch().to_owned()),
            ("@INSTALLED_SIZE@", installed_size(&self.data).to_string()),
            ("@DEPENDS@", self.depends.clone()),
        ] {
            if !text.contains(key) {
                return Err(DebWriteError::Template(format!("no {key} placeholder")));
            }
            text = text.replace(key, &value);
        }
        if let Some(unknown) = placeholder(&text) {
            return Err(DebWriteError::Template(format!(
                "unknown placeholder {unknown} (known: @VERSION@, @ARCHITECTURE@, @INSTALLED_SIZE@, @DEPENDS@)"
            )));
        }
        if package_name(&text).is_none_or(str::is_empty) {
            return Err(DebWriteError::Template("no Package: field".to_owned()));
        }
        if !text.ends_with('\n') {
            text.push('\n');
        }
        Ok(text)
    }

    /// The file name dpkg-deb and apt give it: `NAME_VERSION_ARCH.deb`.
    pub fn file_name(&self) -> Result<String, DebWriteError> {
        let control = self.control()?;
        let name = package_name(&control).unwrap_or_default();
        Ok(format!("{name}_{}_{}.deb", self.version, self.arch.deb_arch()))
    }

    /// The `.deb`'s bytes.
    pub fn build(&self, mtime: u64) -> Result<Vec<u8>, DebWriteError> {
        let mut control = Tree::new();
        control.file("control", self.control()?.into_bytes(), 0o644, Owner::ROOT)?;
        let mut md5sums = String::new();
        for (path, entry) in self.data.iter() {
            if let Kind::File(bytes) = &entry.kind {
                md5sums.push_str(&format!("{}  {path}\n", md5_hex(bytes)));
            }
        }
        control.file("md5sums", md5sums.into_bytes(), 0o644, Owner::ROOT)?;
        if !self.conffiles.is_empty() {
            let mut list = String::new();
            for conffile in &self.conffiles {
                let shipped = conffile
                    .strip_prefix('/')
                    .and_then(|p| self.data.iter().find(|(path, _)| *path == p))
                    .is_some_and(|(_, e)| matches!(e.kind, Kind::File(_)));
                if !shipped {
                    return Err(DebWriteError::Conffile(conffile.clone()));
                }
                list.push_str(conffile);
                list.push('\n');
            }
            control.file("conffiles", list.into_bytes(), 0o644, Owner::ROOT)?;
        }
        for (name, bytes) in &self.scripts {
            if !SCRIPTS.contains(&name.as_str()) {
                return Err(DebWriteError::Script(name.clone()));
            }
            control.file(name, bytes.clone(), 0o755, Owner::ROOT)?;
        }
        let members = [
            ("debian-binary", b"2.0\n".to_vec()),
            ("control.tar.gz", archive::gzip(&control.to_dpkg_tar(mtime)?)?),
            ("data.tar.gz", archive::gzip(&self.data.to_dpkg_tar(mtime)?)?),
        ];
        let mut out = b"!<arch>\n".to_vec();
        for (name, data) in members {
            out.extend_from_slice(
                format!(
                    "{name:<16}{mtime:<12}{:<6}{:<6}{:<8}{:<10}`\n",
                    0,
                    0,
                    100_644,
                    data.len()
                )
                .as_bytes(),
            );
            out.extend_from_slice(&data);
            if data.len() % 2 == 1 {
                out.push(b'\n');
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::archive::test_support::read_entries;
    use crate::deb::read::{ar_members, decompress};
    use crate::deb::{Deb, DebEntry};

    const TEMPLATE: &str = "Package: agent-data-plane\nVersion: @VERSION@\nArchitecture: @ARCHITECTURE@\n\
        Installed-Size: @INSTALLED_SIZE@\nDepends: @DEPENDS@\nDescription: x\n y\n";

    fn package() -> Package {
        let mut data = Tree::new();
        data.file("usr/bin/agent-data-plane", vec![7; 3000], 0o755, Owner::ROOT)
            .unwrap();
        data.file(
            "etc/datadog-agent/datadog.yaml",
            b"api_key:\n".to_vec(),
            0o644,
            Owner::ROOT,
        )
        .unwrap();
        data.add_parents();
        Package {
            version: debian_version("0.1.0", 1),
            arch: Arch::Armv7,
            depends: "libc6 (>= 2.34)".into(),
            control_template: TEMPLATE.into(),
            scripts: BTreeMap::from([("postinst".to_owned(), b"#!/bin/sh\nexit 0\n".to_vec())]),
            conffiles: vec!["/etc/datadog-agent/datadog.yaml".into()],
            data,
        }
    }

    #[test]
    fn the_package_reads_back_with_its_fields_files_and_control_members() {
        let pkg = package();
        assert_eq!(pkg.file_name().unwrap(), "agent-data-plane_0.1.0-1_armhf.deb");
        let bytes = pkg.build(1_700_000_000).unwrap();
        assert_eq!(bytes, pkg.build(1_700_000_000).unwrap(), "deterministic");
        let deb = Deb::parse("x.deb", &bytes).unwrap();
        assert_eq!(
            (deb.package.as_str(), deb.version.as_str(), deb.architecture.as_str()),
            ("agent-data-plane", "0.1.0-1", "armhf")
        );
        assert_eq!(
            deb.entries["usr/bin/agent-data-plane"],
            DebEntry::File {
                data: vec![7; 3000],
                executable: true
            }
        );

        let members = ar_members("x.deb", &bytes).unwrap();
        let names: Vec<&str> = members.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["debian-binary", "control.tar.gz", "data.tar.gz"]);
        assert_eq!(members[0].1, b"2.0\n");
        let control_tar = decompress("x.deb", "control.tar.gz", members[1].1).unwrap();
        let control = read_entries(&control_tar);
        let listed: Vec<(&str, u32)> = control.iter().map(|e| (e.path.as_str(), e.mode)).collect();
        assert_eq!(
            listed,
            [
                ("./", 0o755),
                ("./conffiles", 0o644),
                ("./control", 0o644),
                ("./md5sums", 0o644),
                ("./postinst", 0o755)
            ]
        );
        let data_tar = decompress("x.deb", "data.tar.gz", members[2].1).unwrap();
        let data = read_entries(&data_tar);
        assert_eq!(data[0].path, "./");
        assert!(data
            .iter()
            .all(|e| e.path.starts_with("./") && e.mtime == 1_700_000_000 && e.uid == 0));
    }

    #[test]
    fn control_fields_are_filled_and_sizes_counted_in_kib() {
        let control = package().control().unwrap();
        assert!(control.contains("Version: 0.1.0-1\nArchitecture: armhf\n"), "{control}");
        // 3000 bytes -> 3 KiB, 9 bytes -> 1, four directories -> 1 each.
        assert!(control.contains("Installed-Size: 8\n"), "{control}");
        assert!(control.contains("Depends: libc6 (>= 2.34)\n"), "{control}");
    }

    #[test]
    fn ar_headers_carry_the_epoch_and_root_and_nothing_from_the_host() {
        let bytes = package().build(1_234_567_890).unwrap();
        let header = &bytes[8..68];
        assert_eq!(&header[..16], b"debian-binary   ");
        assert_eq!(&header[16..28], b"1234567890  ");
        assert_eq!(&header[28..48], b"0     0     100644  ");
    }

    #[test]
    fn a_conffile_the_package_does_not_ship_is_refused() {
        let mut pkg = package();
        pkg.conffiles = vec!["/etc/datadog-agent/other.yaml".into()];
        let err = pkg.build(0).unwrap_err().to_string();
        assert!(err.contains("/etc/datadog-agent/other.yaml"), "{err}");
        pkg.conffiles = vec!["/etc/datadog-agent".into()];
        assert!(pkg.build(0).is_err(), "a directory is no conffile");
    }

    #[test]
    fn template_placeholders_must_all_be_known_and_present() {
        let mut pkg = package();
        pkg.control_template = TEMPLATE.replace("@DEPENDS@", "libc6");
        assert!(pkg.control().unwrap_err().to_string().contains("@DEPENDS@"));
        pkg.control_template = format!("{TEMPLATE}Built-Using: @BUILT_USING@\n");
        assert!(pkg.control().unwrap_err().to_string().contains("@BUILT_USING@"));
        pkg.control_template = format!("{TEMPLATE}Maintainer: a <a@b.example>, c <c@d.example>\n");
        assert!(pkg.control().is_ok(), "e-mail addresses are no placeholders");
    }

    #[test]
    fn pre_releases_sort_before_the_release_in_debian_versions() {
        assert_eq!(debian_version("0.2.0-rc.1", 1), "0.2.0~rc.1-1");
        assert_eq!(debian_version("0.1.0", 2), "0.1.0-2");
    }
}
