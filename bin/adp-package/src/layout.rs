//! Where every file goes in each artifact: the FHS tarball, the image rootfs
//! and the `.deb`'s data tree, with their owners and modes, and the image's
//! runtime settings. The artifacts share paths and bytes; they differ in what
//! a user of each needs around the binary (the image: a libc and a CA bundle;
//! the `.deb`: a conffile, a copyright file, a changelog and a man page).

use std::collections::BTreeMap;

use crate::arch::Arch;
use crate::archive::{self, Owner, Tree};
use crate::error::Error;
use crate::oci;
use crate::runtime::Runtime;
use crate::util;

/// The package name.
pub const PACKAGE: &str = "agent-data-plane";
/// The binary.
pub const BIN_PATH: &str = "usr/bin/agent-data-plane";
/// The package's documentation directory.
pub const DOC_DIR: &str = "usr/share/doc/agent-data-plane";
/// The configuration directory (the Datadog Agent's).
pub const CONFIG_DIR: &str = "etc/datadog-agent";
/// The configuration file, a conffile of the `.deb`.
pub const CONFIG: &str = "etc/datadog-agent/datadog.yaml";
/// Where the system checks' default configuration files go (`confd_path`).
pub const CONFD_DIR: &str = "etc/datadog-agent/conf.d";
/// The systemd unit's file name.
pub const UNIT_NAME: &str = "agent-data-plane.service";
/// The CA bundle of the image.
pub const CA_BUNDLE: &str = "etc/ssl/certs/ca-certificates.crt";

/// The files every artifact is made of, read from the packaging directory.
pub struct Inputs {
    /// The stripped binary.
    pub binary: Vec<u8>,
    /// `packaging/agent-data-plane.service`.
    pub unit: Vec<u8>,
    /// `packaging/datadog.yaml.example`.
    pub config_example: Vec<u8>,
    /// The licence text.
    pub license: Vec<u8>,
    /// The CycloneDX SBOM.
    pub sbom: Vec<u8>,
    /// The image's `/etc/passwd`.
    pub passwd: Vec<u8>,
    /// The image's `/etc/group`.
    pub group: Vec<u8>,
    /// The image's `/etc/nsswitch.conf`.
    pub nsswitch: Vec<u8>,
    /// `packaging/deb/copyright` (machine-readable, DEP-5).
    pub copyright: Vec<u8>,
    /// `packaging/deb/agent-data-plane.1`.
    pub manpage: Vec<u8>,
    /// `packaging/deb/lintian-overrides`.
    pub lintian_overrides: Vec<u8>,
}

/// The FHS tarball: only the directories the package owns get entries, so
/// `tar -C / -xzf` never rewrites the mode or mtime of /usr or /etc.
pub fn tarball_tree(inputs: &Inputs) -> Result<Tree, Error> {
    let mut tree = Tree::new();
    tree.file(BIN_PATH, inputs.binary.clone(), 0o755, Owner::ROOT)?;
    tree.dir(CONFIG_DIR, 0o755, Owner::ROOT)?;
    add_confd(&mut tree)?;
    tree.dir(DOC_DIR, 0o755, Owner::ROOT)?;
    add_documents(&mut tree, shared_documents(inputs))?;
    add_documents(
        &mut tree,
        [(format!("usr/lib/systemd/system/{UNIT_NAME}"), inputs.unit.clone())],
    )?;
    Ok(tree)
}

/// The system checks' shipped configuration (the IoT Agent's set, from
/// `adp_checks::DEFAULT_CONFD`): `conf.d/<check>.d/conf.yaml.default`, root's,
/// replaced on upgrade; users add `conf.yaml` files beside them.
fn add_confd(tree: &mut Tree) -> Result<(), Error> {
    tree.dir(CONFD_DIR, 0o755, Owner::ROOT)?;
    for (rel, text) in adp_checks::DEFAULT_CONFD {
        let path = format!("{CONFD_DIR}/{rel}");
        if let Some((dir, _)) = path.rsplit_once('/') {
            tree.dir(dir, 0o755, Owner::ROOT)?;
        }
        tree.file(&path, text.as_bytes().to_vec(), 0o644, Owner::ROOT)?;
    }
    Ok(())
}

/// The paths of the checks' shipped configuration files, relative to `/`:
/// the `.deb` lists them as conffiles, as Debian policy asks of every file
/// it ships under /etc.
pub fn confd_files() -> impl Iterator<Item = String> {
    adp_checks::DEFAULT_CONFD
        .iter()
        .map(|(rel, _)| format!("{CONFD_DIR}/{rel}"))
}

/// The `.deb`'s files. Unlike the tarball, the package ships `datadog.yaml`
/// itself (the example's text) as a conffile: dpkg then keeps an edited copy
/// on upgrade, asks when the shipped one changed too, and removes it on purge
/// (a file the administrator copies from an example is none of that). The
/// unit is in /lib/systemd/system, where bookworm's systemd packages and
/// deb-systemd-helper look; the doc directory has what Debian policy asks:
/// the copyright file and a compressed changelog; lintian's overrides say
/// why each overridden tag does not apply.
pub fn deb_tree(inputs: &Inputs, changelog: &[u8]) -> Result<Tree, Error> {
    let mut tree = Tree::new();
    tree.file(BIN_PATH, inputs.binary.clone(), 0o755, Owner::ROOT)?;
    tree.file(CONFIG, inputs.config_example.clone(), 0o644, Owner::ROOT)?;
    add_confd(&mut tree)?;
    add_documents(
        &mut tree,
        [
            (format!("lib/systemd/system/{UNIT_NAME}"), inputs.unit.clone()),
            (format!("{DOC_DIR}/copyright"), inputs.copyright.clone()),
            (format!("{DOC_DIR}/changelog.Debian.gz"), archive::gzip(changelog)?),
            (format!("{DOC_DIR}/sbom.cdx.json"), inputs.sbom.clone()),
            (
                "usr/share/man/man1/agent-data-plane.1.gz".to_owned(),
                archive::gzip(&inputs.manpage)?,
            ),
            (
                format!("usr/share/lintian/overrides/{PACKAGE}"),
                inputs.lintian_overrides.clone(),
            ),
        ],
    )?;
    tree.add_parents();
    Ok(tree)
}

/// The read-only files the tarball and the image both ship: the
/// configuration example, the licence and the SBOM.
fn shared_documents(inputs: &Inputs) -> [(String, Vec<u8>); 3] {
    [
        (
            format!("{CONFIG_DIR}/datadog.yaml.example"),
            inputs.config_example.clone(),
        ),
        (format!("{DOC_DIR}/LICENSE"), inputs.license.clone()),
        (format!("{DOC_DIR}/sbom.cdx.json"), inputs.sbom.clone()),
    ]
}

/// Adds files that are root's and read-only to everyone else (`0644`).
fn add_documents<const N: usize>(tree: &mut Tree, files: [(String, Vec<u8>); N]) -> Result<(), Error> {
    for (path, data) in files {
        tree.file(&path, data, 0o644, Owner::ROOT)?;
    }
    Ok(())
}

/// The `.deb`'s `changelog.Debian`: one entry for this build.
pub fn deb_changelog(maintainer: &str, deb_version: &str, version: &str, revision: &str, epoch: u64) -> Vec<u8> {
    format!(
        "{PACKAGE} ({deb_version}) stable; urgency=medium\n\n  \
         * Release {version}, built from revision {revision}.\n\n \
         -- {maintainer}  {}\n",
        util::rfc2822(epoch)
    )
    .into_bytes()
}

/// The directories of the image the runtime user owns (and may write):
/// the configuration directory (for `auth_token`) and the run directory.
pub fn user_owned(user: Owner) -> [(&'static str, Owner); 2] {
    [(CONFIG_DIR, user), ("run/datadog", user)]
}

/// Refuses to write an archive with an entry outside the mode policy
/// ([`Tree::mode_violations`]): a setuid, world-writable or unreadable file
/// would ship to every user of the package or image.
pub fn check_modes(what: &str, tree: &Tree, sticky: &[&str], owned: &[(&str, Owner)]) -> Result<(), Error> {
    let violations = tree.mode_violations(sticky, owned);
    if violations.is_empty() {
        return Ok(());
    }
    Err(Error::Input(format!(
        "the {what} would ship entries with modes or owners it must not have (fix where bin/adp-package adds them):\n  {}",
        violations.join("\n  ")
    )))
}

/// The `uid:gid` of `user` in a passwd file.
pub fn passwd_owner(passwd: &str, user: &str) -> Option<Owner> {
    passwd.lines().find_map(|line| {
        let fields: Vec<&str> = line.split(':').collect();
        match fields.as_slice() {
            [name, _, uid, gid, ..] if *name == user => Some(Owner {
                uid: uid.parse().ok()?,
                gid: gid.parse().ok()?,
            }),
            _ => None,
        }
    })
}

/// The image rootfs: runtime files, CA bundle, users, the agent, and the
/// writable directories owned by the runtime user.
pub fn rootfs_tree(inputs: &Inputs, runtime: &Runtime, user: Owner) -> Result<Tree, Error> {
    let mut tree = runtime.tree.clone();
    tree.file(CA_BUNDLE, runtime.ca_bundle.clone(), 0o644, Owner::ROOT)?;
    tree.file("etc/passwd", inputs.passwd.clone(), 0o644, Owner::ROOT)?;
    tree.file("etc/group", inputs.group.clone(), 0o644, Owner::ROOT)?;
    tree.file("etc/nsswitch.conf", inputs.nsswitch.clone(), 0o644, Owner::ROOT)?;
    tree.file(BIN_PATH, inputs.binary.clone(), 0o755, Owner::ROOT)?;
    for (dir, owner) in user_owned(user) {
        tree.dir(dir, 0o755, owner)?;
    }
    add_documents(&mut tree, shared_documents(inputs))?;
    add_confd(&mut tree)?;
    // Debian's layout: /var/run is a symlink to /run.
    tree.dir("run", 0o755, Owner::ROOT)?;
    tree.symlink("var/run", "../run")?;
    tree.dir("tmp", 0o1777, Owner::ROOT)?;
    tree.add_parents();
    Ok(tree)
}

/// The image's configuration and annotations.
pub fn image_spec(
    arch: Arch,
    version: &str,
    revision: &str,
    epoch: u64,
    runtime: &Runtime,
    user: Owner,
) -> oci::ImageSpec {
    oci::ImageSpec {
        arch,
        version: version.to_owned(),
        revision: revision.to_owned(),
        created: util::rfc3339(epoch),
        user,
        entrypoint: vec![format!("/{BIN_PATH}")],
        cmd: vec!["run".to_owned()],
        exposed_ports: vec!["8125/udp".into(), "5100/tcp".into(), "5101/tcp".into()],
        env: vec![
            "PATH=/usr/sbin:/usr/bin:/sbin:/bin".into(),
            format!("SSL_CERT_FILE=/{CA_BUNDLE}"),
            // A container has no core Agent beside it and is reached over its
            // own network namespace: run standalone and listen beyond loopback.
            "DD_DATA_PLANE_ENABLED=true".into(),
            "DD_DATA_PLANE_STANDALONE_MODE=true".into(),
            "DD_DOGSTATSD_NON_LOCAL_TRAFFIC=true".into(),
        ],
        labels: labels(),
        created_by: format!(
            "adp-package {}: {PACKAGE} {version} ({revision}) for {arch} on {}",
            env!("CARGO_PKG_VERSION"),
            runtime.provenance.join(", ")
        ),
    }
}

/// The `org.opencontainers.image.*` labels every image and the index carry.
pub fn labels() -> BTreeMap<String, String> {
    BTreeMap::from([
        ("org.opencontainers.image.title".to_owned(), PACKAGE.to_owned()),
        (
            "org.opencontainers.image.description".to_owned(),
            "Agent Data Plane: DogStatsD receive, aggregate and forward, for small boards".to_owned(),
        ),
        ("org.opencontainers.image.licenses".to_owned(), "Apache-2.0".to_owned()),
        (
            "org.opencontainers.image.source".to_owned(),
            "https://github.com/adp-armv7/agent-data-plane".to_owned(),
        ),
    ])
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::deb::{self, Deb};

    pub(crate) fn inputs() -> Inputs {
        Inputs {
            binary: b"\x7fELF\x01\x01".to_vec(),
            unit: b"[Unit]\n".to_vec(),
            config_example: b"api_key:\n".to_vec(),
            license: b"Apache".to_vec(),
            sbom: b"{}\n".to_vec(),
            passwd: b"root:x:0:0::/root:/sbin/nologin\ndd-agent:x:10001:10001::/nonexistent:/sbin/nologin\n".to_vec(),
            group: b"root:x:0:\ndd-agent:x:10001:\n".to_vec(),
            nsswitch: b"hosts: files dns\n".to_vec(),
            copyright: include_bytes!("../../../packaging/deb/copyright").to_vec(),
            manpage: include_bytes!("../../../packaging/deb/agent-data-plane.1").to_vec(),
            lintian_overrides: include_bytes!("../../../packaging/deb/lintian-overrides").to_vec(),
        }
    }

    fn debs() -> (Vec<Deb>, Deb) {
        let libc = deb::build_test_deb(
            "libc6",
            "2.36-9+deb12u14",
            &[
                ("./lib/arm-linux-gnueabihf/libc.so.6", b"libc", 0o755),
                ("./usr/lib/arm-linux-gnueabihf/gconv/UTF-16.so", b"x", 0o644),
                ("./usr/share/doc/libc6/copyright", b"(c)", 0o644),
                ("./usr/share/doc/libc6/changelog.Debian.gz", b"gz", 0o644),
                ("./usr/share/lintian/overrides/libc6", b"", 0o644),
                (
                    "symlink:./lib/ld-linux-armhf.so.3->arm-linux-gnueabihf/ld-linux-armhf.so.3",
                    b"",
                    0o777,
                ),
            ],
        );
        let ca = deb::build_test_deb(
            "ca-certificates",
            "20250419",
            &[
                ("./usr/share/ca-certificates/mozilla/B.crt", b"-----B-----\n", 0o644),
                ("./usr/share/ca-certificates/mozilla/A.crt", b"-----A-----", 0o644),
                ("./usr/sbin/update-ca-certificates", b"#!/bin/sh", 0o755),
            ],
        );
        (
            vec![Deb::parse("libc6.deb", &libc).unwrap()],
            Deb::parse("ca.deb", &ca).unwrap(),
        )
    }

    #[test]
    fn rootfs_keeps_runtime_files_and_copyrights_only() {
        let (debs, ca) = debs();
        let user = Owner { uid: 10001, gid: 10001 };
        let runtime = Runtime::from_debs(&debs, &ca).unwrap();
        let tree = rootfs_tree(&inputs(), &runtime, user).unwrap();
        assert!(tree.get("lib/arm-linux-gnueabihf/libc.so.6").is_some());
        assert!(tree.get("usr/share/doc/libc6/copyright").is_some());
        assert!(tree.get("usr/share/doc/libc6/changelog.Debian.gz").is_none());
        assert!(tree.get("usr/lib/arm-linux-gnueabihf/gconv/UTF-16.so").is_none());
        assert!(tree.get("usr/share/lintian").is_none());
        assert!(tree.get("usr/sbin/update-ca-certificates").is_none());
        assert_eq!(tree.get("etc/datadog-agent").unwrap().owner, user);
        assert_eq!(tree.get("run/datadog").unwrap().owner, user);
        assert_eq!(tree.get("tmp").unwrap().mode, 0o1777);
        assert_eq!(
            tree.get(CA_BUNDLE).unwrap().kind,
            crate::archive::Kind::File(b"-----A-----\n-----B-----\n".to_vec())
        );
    }

    #[test]
    fn tarball_has_the_fhs_files_and_no_system_directory_entries() {
        let tree = tarball_tree(&inputs()).unwrap();
        let paths: Vec<&str> = tree.iter().map(|(p, _)| p).collect();
        assert_eq!(
            paths,
            [
                "etc/datadog-agent",
                "etc/datadog-agent/conf.d",
                "etc/datadog-agent/conf.d/cpu.d",
                "etc/datadog-agent/conf.d/cpu.d/conf.yaml.default",
                "etc/datadog-agent/conf.d/disk.d",
                "etc/datadog-agent/conf.d/disk.d/conf.yaml.default",
                "etc/datadog-agent/conf.d/file_handle.d",
                "etc/datadog-agent/conf.d/file_handle.d/conf.yaml.example",
                "etc/datadog-agent/conf.d/io.d",
                "etc/datadog-agent/conf.d/io.d/conf.yaml.default",
                "etc/datadog-agent/conf.d/load.d",
                "etc/datadog-agent/conf.d/load.d/conf.yaml.default",
                "etc/datadog-agent/conf.d/memory.d",
                "etc/datadog-agent/conf.d/memory.d/conf.yaml.default",
                "etc/datadog-agent/conf.d/network.d",
                "etc/datadog-agent/conf.d/network.d/conf.yaml.default",
                "etc/datadog-agent/conf.d/ntp.d",
                "etc/datadog-agent/conf.d/ntp.d/conf.yaml.default",
                "etc/datadog-agent/conf.d/uptime.d",
                "etc/datadog-agent/conf.d/uptime.d/conf.yaml.default",
                "etc/datadog-agent/datadog.yaml.example",
                "usr/bin/agent-data-plane",
                "usr/lib/systemd/system/agent-data-plane.service",
                "usr/share/doc/agent-data-plane",
                "usr/share/doc/agent-data-plane/LICENSE",
                "usr/share/doc/agent-data-plane/sbom.cdx.json",
            ]
        );
    }

    #[test]
    fn the_runtime_user_comes_from_passwd() {
        let passwd = String::from_utf8(inputs().passwd).unwrap();
        assert_eq!(
            passwd_owner(&passwd, "dd-agent"),
            Some(Owner { uid: 10001, gid: 10001 })
        );
        assert_eq!(passwd_owner(&passwd, "nobody"), None);
    }

    #[test]
    fn an_archive_outside_the_mode_policy_is_refused_naming_the_entry() {
        let mut tree = Tree::new();
        tree.file("usr/bin/su", b"x".to_vec(), 0o4755, Owner::ROOT).unwrap();
        let err = check_modes("tarball", &tree, &[], &[]).unwrap_err().to_string();
        assert!(
            err.contains("the tarball would ship") && err.contains("usr/bin/su: a 1-byte file with mode 4755"),
            "{err}"
        );
        assert!(check_modes("tarball", &tarball_tree(&inputs()).unwrap(), &[], &[]).is_ok());
    }

    #[test]
    fn the_deb_ships_the_configuration_unit_man_page_and_debian_docs() {
        let changelog = deb_changelog("M <m@example.org>", "0.1.0-1", "0.1.0", "abc", 1_700_000_000);
        assert_eq!(
            String::from_utf8(changelog.clone()).unwrap(),
            "agent-data-plane (0.1.0-1) stable; urgency=medium\n\n  * Release 0.1.0, built from revision abc.\n\n \
             -- M <m@example.org>  Tue, 14 Nov 2023 22:13:20 +0000\n"
        );
        let tree = deb_tree(&inputs(), &changelog).unwrap();
        let files: Vec<&str> = tree
            .iter()
            .filter(|(_, e)| matches!(e.kind, crate::archive::Kind::File(_)))
            .map(|(p, _)| p)
            .collect();
        assert_eq!(
            files,
            [
                "etc/datadog-agent/conf.d/cpu.d/conf.yaml.default",
                "etc/datadog-agent/conf.d/disk.d/conf.yaml.default",
                "etc/datadog-agent/conf.d/file_handle.d/conf.yaml.example",
                "etc/datadog-agent/conf.d/io.d/conf.yaml.default",
                "etc/datadog-agent/conf.d/load.d/conf.yaml.default",
                "etc/datadog-agent/conf.d/memory.d/conf.yaml.default",
                "etc/datadog-agent/conf.d/network.d/conf.yaml.default",
                "etc/datadog-agent/conf.d/ntp.d/conf.yaml.default",
                "etc/datadog-agent/conf.d/uptime.d/conf.yaml.default",
                "etc/datadog-agent/datadog.yaml",
                "lib/systemd/system/agent-data-plane.service",
                "usr/bin/agent-data-plane",
                "usr/share/doc/agent-data-plane/changelog.Debian.gz",
                "usr/share/doc/agent-data-plane/copyright",
                "usr/share/doc/agent-data-plane/sbom.cdx.json",
                "usr/share/lintian/overrides/agent-data-plane",
                "usr/share/man/man1/agent-data-plane.1.gz",
            ]
        );
        assert!(check_modes("deb", &tree, &[], &[]).is_ok());
    }
}
