//! `adp-package` turns a built armv7 `agent-data-plane` into the release
//! artifacts, bit-for-bit reproducibly: the FHS tarball, the OCI image layout
//! and its oci-archive, the SBOM and `SHA256SUMS`.
//!
//! ```text
//! adp-package build --binary target/.../agent-data-plane --debug-file adp.debug \
//!     --version 0.1.0 --revision $(git rev-parse HEAD) --source-date-epoch $(git log -1 --format=%ct) \
//!     --deb libc6_..._armhf.deb --deb libgcc-s1_..._armhf.deb --ca-deb ca-certificates_..._all.deb \
//!     --cargo-lock Cargo.lock --cargo-tree tree.txt --packaging-dir packaging --license LICENSE \
//!     --out result-adp-armv7
//! ```
//!
//! The same command is run by `checks/build-adp-armv7.sh` (Debian path) and by
//! the Nix flake. Nothing here reads the clock, the host's users, the umask or
//! the locale: every byte written is a function of the inputs.

#![deny(missing_docs)]

mod archive;
mod deb;
mod oci;
mod sbom;
mod util;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use archive::{file_mode, Owner, Tree};
use deb::{Deb, DebEntry};

/// Command line.
#[derive(Parser, Debug)]
#[command(name = "adp-package", version, about = "Reproducible packaging of agent-data-plane")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Write the tarball, OCI layout, oci-archive, debug file and SHA256SUMS.
    Build(BuildArgs),
}

/// Inputs of `adp-package build`.
#[derive(clap::Args, Debug)]
struct BuildArgs {
    /// The stripped armv7 binary (interpreter /lib/ld-linux-armhf.so.3, no RPATH).
    #[arg(long)]
    binary: PathBuf,
    /// Separated debug info (`objcopy --only-keep-debug`), shipped beside the tarball.
    #[arg(long)]
    debug_file: Option<PathBuf>,
    /// Release version (`0.1.0`), used in file names and image annotations.
    #[arg(long)]
    version: String,
    /// Git revision the binary was built from.
    #[arg(long)]
    revision: String,
    /// `SOURCE_DATE_EPOCH` (seconds since the epoch): every mtime and timestamp.
    #[arg(long)]
    source_date_epoch: u64,
    /// Runtime `.deb` files for the image rootfs (libc6:armhf, libgcc-s1:armhf), sha256-verified.
    #[arg(long = "deb", required = true)]
    debs: Vec<PathBuf>,
    /// The pinned `ca-certificates` `.deb`: the image's CA bundle is built from it.
    #[arg(long)]
    ca_deb: PathBuf,
    /// The workspace's Cargo.lock, for the SBOM.
    #[arg(long)]
    cargo_lock: PathBuf,
    /// `cargo tree -e normal --target <armv7> --prefix none --format '{p}'` output:
    /// limits the SBOM to crates built into the binary.
    #[arg(long)]
    cargo_tree: Option<PathBuf>,
    /// Directory with the static inputs (unit, config example, passwd, group, nsswitch.conf).
    #[arg(long, default_value = "packaging")]
    packaging_dir: PathBuf,
    /// The licence text shipped in usr/share/doc/agent-data-plane/LICENSE.
    #[arg(long, default_value = "LICENSE")]
    license: PathBuf,
    /// The user (from <packaging-dir>/passwd) the image runs as and that owns its state dirs.
    #[arg(long, default_value = "dd-agent")]
    user: String,
    /// Output directory (created; outputs in it are replaced).
    #[arg(long)]
    out: PathBuf,
}

/// Why a build failed.
#[derive(Debug, thiserror::Error)]
enum Error {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
    #[error(transparent)]
    Archive(#[from] archive::ArchiveError),
    #[error(transparent)]
    Deb(#[from] deb::DebError),
    #[error(transparent)]
    Sbom(#[from] sbom::SbomError),
    #[error("{0}")]
    Input(String),
}

const PACKAGE: &str = "agent-data-plane";
const BIN_PATH: &str = "usr/bin/agent-data-plane";
const DOC_DIR: &str = "usr/share/doc/agent-data-plane";
const CONFIG_DIR: &str = "etc/datadog-agent";
const UNIT_NAME: &str = "agent-data-plane.service";
const CA_BUNDLE: &str = "etc/ssl/certs/ca-certificates.crt";
const CA_SOURCE_DIR: &str = "usr/share/ca-certificates/mozilla/";

fn read(path: &Path) -> Result<Vec<u8>, Error> {
    fs::read(path).map_err(|source| Error::Read {
        path: path.to_owned(),
        source,
    })
}

fn write(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).map_err(|source| Error::Write {
            path: parent.to_owned(),
            source,
        })?;
    }
    fs::write(path, bytes).map_err(|source| Error::Write {
        path: path.to_owned(),
        source,
    })
}

/// Checks the ELF identification: 32-bit, little-endian, ARM (EM_ARM = 40).
fn check_armv7_elf(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    let ok = bytes.len() > 20
        && bytes.starts_with(b"\x7fELF")
        && bytes[4] == 1
        && bytes[5] == 1
        && u16::from_le_bytes([bytes[18], bytes[19]]) == 40;
    if ok {
        Ok(())
    } else {
        Err(Error::Input(format!(
            "{} is not a 32-bit little-endian ARM ELF file; build it with checks/cargo-armv7.sh",
            path.display()
        )))
    }
}

/// The `uid:gid` of `user` in a passwd file.
fn passwd_owner(passwd: &str, user: &str) -> Option<Owner> {
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

/// Which files of the runtime `.deb`s go into the image.
///
/// Dropped: glibc's gconv modules (5.8 MB of iconv charsets; Rust never calls
/// iconv), lintian overrides, and documentation other than the copyright
/// files, which the licences require to travel with the binaries.
fn keep_in_rootfs(path: &str) -> bool {
    if path.starts_with("usr/share/lintian/") || path.contains("/gconv/") {
        return false;
    }
    if let Some(doc) = path.strip_prefix("usr/share/doc/") {
        return doc.split('/').nth(1) == Some("copyright");
    }
    true
}

/// The CA bundle Debian's `update-ca-certificates` would build from the
/// package alone: every `mozilla/*.crt`, sorted by file name, each ending in
/// one newline. (The host's /etc/ssl/certs bundle is not used: it also holds
/// local CAs from /usr/local/share/ca-certificates and differs per machine.)
fn ca_bundle(ca: &Deb) -> Result<Vec<u8>, Error> {
    let mut bundle = Vec::new();
    let mut count = 0_usize;
    for (path, entry) in &ca.entries {
        let is_cert = path
            .strip_prefix(CA_SOURCE_DIR)
            .is_some_and(|name| name.ends_with(".crt") && !name.contains('/'));
        if let (true, DebEntry::File { data, .. }) = (is_cert, entry) {
            let text = data.strip_suffix(b"\n").unwrap_or(data);
            bundle.extend_from_slice(text);
            bundle.push(b'\n');
            count += 1;
        }
    }
    if count == 0 {
        return Err(Error::Input(format!(
            "{} {} has no {CA_SOURCE_DIR}*.crt: is --ca-deb the ca-certificates package?",
            ca.package, ca.version
        )));
    }
    Ok(bundle)
}

fn deb_into_tree(deb: &Deb, tree: &mut Tree) -> Result<(), Error> {
    for (path, entry) in &deb.entries {
        if !keep_in_rootfs(path) {
            continue;
        }
        match entry {
            // Directories come from `add_parents`: 0755 root, like the packages'.
            DebEntry::Dir => {}
            DebEntry::File { data, executable } => {
                tree.file(path, data.clone(), file_mode(*executable), Owner::ROOT)?
            }
            DebEntry::Symlink(target) => tree.symlink(path, target)?,
        }
    }
    Ok(())
}

struct Inputs {
    binary: Vec<u8>,
    unit: Vec<u8>,
    config_example: Vec<u8>,
    license: Vec<u8>,
    sbom: Vec<u8>,
    passwd: Vec<u8>,
    group: Vec<u8>,
    nsswitch: Vec<u8>,
}

/// The FHS tarball: only the directories the package owns get entries, so
/// `tar -C / -xzf` never rewrites the mode or mtime of /usr or /etc.
fn tarball_tree(inputs: &Inputs) -> Result<Tree, Error> {
    let mut tree = Tree::new();
    tree.file(BIN_PATH, inputs.binary.clone(), 0o755, Owner::ROOT)?;
    tree.dir(CONFIG_DIR, 0o755, Owner::ROOT)?;
    tree.file(
        &format!("{CONFIG_DIR}/datadog.yaml.example"),
        inputs.config_example.clone(),
        0o644,
        Owner::ROOT,
    )?;
    tree.file(
        &format!("usr/lib/systemd/system/{UNIT_NAME}"),
        inputs.unit.clone(),
        0o644,
        Owner::ROOT,
    )?;
    tree.dir(DOC_DIR, 0o755, Owner::ROOT)?;
    tree.file(
        &format!("{DOC_DIR}/LICENSE"),
        inputs.license.clone(),
        0o644,
        Owner::ROOT,
    )?;
    tree.file(
        &format!("{DOC_DIR}/sbom.cdx.json"),
        inputs.sbom.clone(),
        0o644,
        Owner::ROOT,
    )?;
    Ok(tree)
}

/// The image rootfs: runtime `.deb`s, CA bundle, users, the agent, and the
/// writable directories owned by the runtime user.
fn rootfs_tree(inputs: &Inputs, debs: &[Deb], ca: &Deb, user: Owner) -> Result<Tree, Error> {
    let mut tree = Tree::new();
    for deb in debs {
        deb_into_tree(deb, &mut tree)?;
    }
    tree.file(CA_BUNDLE, ca_bundle(ca)?, 0o644, Owner::ROOT)?;
    tree.file("etc/passwd", inputs.passwd.clone(), 0o644, Owner::ROOT)?;
    tree.file("etc/group", inputs.group.clone(), 0o644, Owner::ROOT)?;
    tree.file("etc/nsswitch.conf", inputs.nsswitch.clone(), 0o644, Owner::ROOT)?;
    tree.file(BIN_PATH, inputs.binary.clone(), 0o755, Owner::ROOT)?;
    tree.dir(CONFIG_DIR, 0o755, user)?;
    tree.file(
        &format!("{CONFIG_DIR}/datadog.yaml.example"),
        inputs.config_example.clone(),
        0o644,
        Owner::ROOT,
    )?;
    tree.file(
        &format!("{DOC_DIR}/LICENSE"),
        inputs.license.clone(),
        0o644,
        Owner::ROOT,
    )?;
    tree.file(
        &format!("{DOC_DIR}/sbom.cdx.json"),
        inputs.sbom.clone(),
        0o644,
        Owner::ROOT,
    )?;
    // Debian's layout: /var/run is a symlink to /run.
    tree.dir("run", 0o755, Owner::ROOT)?;
    tree.dir("run/datadog", 0o755, user)?;
    tree.symlink("var/run", "../run")?;
    tree.dir("tmp", 0o1777, Owner::ROOT)?;
    tree.add_parents();
    Ok(tree)
}

fn image_spec(args: &BuildArgs, debs: &[Deb], ca: &Deb, user: Owner) -> oci::ImageSpec {
    let created = util::rfc3339(args.source_date_epoch);
    let runtime: Vec<String> = debs
        .iter()
        .chain(std::iter::once(ca))
        .map(|d| format!("{}:{}={}", d.package, d.architecture, d.version))
        .collect();
    let labels = BTreeMap::from([
        ("org.opencontainers.image.title".to_owned(), PACKAGE.to_owned()),
        (
            "org.opencontainers.image.description".to_owned(),
            "Agent Data Plane: DogStatsD receive, aggregate and forward, for ARMv7".to_owned(),
        ),
        ("org.opencontainers.image.licenses".to_owned(), "Apache-2.0".to_owned()),
        (
            "org.opencontainers.image.source".to_owned(),
            "https://github.com/adp-armv7/agent-data-plane".to_owned(),
        ),
    ]);
    oci::ImageSpec {
        version: args.version.clone(),
        revision: args.revision.clone(),
        created,
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
        labels,
        created_by: format!(
            "adp-package {}: {} {} ({}) on {}",
            env!("CARGO_PKG_VERSION"),
            PACKAGE,
            args.version,
            args.revision,
            runtime.join(", ")
        ),
    }
}

fn build(args: &BuildArgs) -> Result<(), Error> {
    let binary = read(&args.binary)?;
    check_armv7_elf(&args.binary, &binary)?;
    let pkg_dir = &args.packaging_dir;
    let passwd = read(&pkg_dir.join("passwd"))?;
    let user = passwd_owner(&String::from_utf8_lossy(&passwd), &args.user).ok_or_else(|| {
        Error::Input(format!(
            "user {:?} is not in {}; add it or pass --user",
            args.user,
            pkg_dir.join("passwd").display()
        ))
    })?;
    if user.uid == 0 {
        return Err(Error::Input(format!(
            "user {:?} is root; the image must run unprivileged",
            args.user
        )));
    }

    let lock = String::from_utf8_lossy(&read(&args.cargo_lock)?).into_owned();
    let built = match &args.cargo_tree {
        Some(path) => Some(sbom::parse_cargo_tree(&String::from_utf8_lossy(&read(path)?))),
        None => None,
    };
    let sbom = sbom::cyclonedx(
        &sbom::parse_lock(&lock)?,
        &sbom::SbomOptions {
            root: PACKAGE,
            epoch: args.source_date_epoch,
            built: built.as_ref(),
            license: "Apache-2.0",
        },
    )?;

    let mut debs = Vec::new();
    for path in &args.debs {
        debs.push(Deb::parse(&path.display().to_string(), &read(path)?)?);
    }
    let ca = Deb::parse(&args.ca_deb.display().to_string(), &read(&args.ca_deb)?)?;

    let inputs = Inputs {
        binary,
        unit: read(&pkg_dir.join(UNIT_NAME))?,
        config_example: read(&pkg_dir.join("datadog.yaml.example"))?,
        license: read(&args.license)?,
        sbom,
        passwd,
        group: read(&pkg_dir.join("group"))?,
        nsswitch: read(&pkg_dir.join("nsswitch.conf"))?,
    };
    let epoch = args.source_date_epoch;
    let stem = format!("{PACKAGE}-{}-linux-armv7", args.version);

    let mut outputs: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let tarball = archive::gzip(&tarball_tree(&inputs)?.to_tar(epoch)?)?;
    outputs.insert(format!("{stem}.tar.gz"), tarball);
    if let Some(debug) = &args.debug_file {
        outputs.insert(format!("{stem}.debug"), read(debug)?);
    }
    let layer_tar = rootfs_tree(&inputs, &debs, &ca, user)?.to_tar(epoch)?;
    let layer_gz = archive::gzip(&layer_tar)?;
    let layout = oci::build(&image_spec(args, &debs, &ca, user), &layer_tar, layer_gz);
    outputs.insert(format!("{stem}.oci.tar"), layout.to_archive(epoch)?);
    for (path, bytes) in &layout.files {
        outputs.insert(format!("oci/{path}"), bytes.clone());
    }

    // Stale blobs from an earlier build would survive in oci/ otherwise.
    let oci_dir = args.out.join("oci");
    if oci_dir.exists() {
        fs::remove_dir_all(&oci_dir).map_err(|source| Error::Write {
            path: oci_dir.clone(),
            source,
        })?;
    }
    let mut sums = String::new();
    for (name, bytes) in &outputs {
        write(&args.out.join(name), bytes)?;
        let sum = util::sha256_hex(bytes);
        sums.push_str(&format!("{sum}  {name}\n"));
        println!("{sum}  {:>10}  {}", bytes.len(), args.out.join(name).display());
    }
    write(&args.out.join("SHA256SUMS"), sums.as_bytes())?;
    println!(
        "image: manifest {} config {} layer {} ({} rootfs entries)",
        layout.manifest.digest,
        layout.config.digest,
        layout.layer.digest,
        rootfs_tree(&inputs, &debs, &ca, user)?.iter().count()
    );
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match &cli.command {
        Command::Build(args) => build(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("adp-package: {err}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs() -> Inputs {
        Inputs {
            binary: b"\x7fELF\x01\x01".to_vec(),
            unit: b"[Unit]\n".to_vec(),
            config_example: b"api_key:\n".to_vec(),
            license: b"Apache".to_vec(),
            sbom: b"{}\n".to_vec(),
            passwd: b"root:x:0:0::/root:/sbin/nologin\ndd-agent:x:10001:10001::/nonexistent:/sbin/nologin\n".to_vec(),
            group: b"root:x:0:\ndd-agent:x:10001:\n".to_vec(),
            nsswitch: b"hosts: files dns\n".to_vec(),
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
        let tree = rootfs_tree(&inputs(), &debs, &ca, user).unwrap();
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
            archive::Kind::File(b"-----A-----\n-----B-----\n".to_vec())
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
    fn non_arm_binaries_are_refused() {
        let mut x86 = vec![0_u8; 64];
        x86[..4].copy_from_slice(b"\x7fELF");
        x86[4] = 2;
        x86[5] = 1;
        x86[18] = 62;
        assert!(check_armv7_elf(Path::new("x"), &x86).is_err());
        let mut arm = x86.clone();
        arm[4] = 1;
        arm[18] = 40;
        assert!(check_armv7_elf(Path::new("x"), &arm).is_ok());
    }

    #[test]
    fn a_full_build_is_byte_identical_twice_and_lists_every_output() {
        let dir = tempfile::tempdir().unwrap();
        let write_input = |name: &str, bytes: &[u8]| {
            let path = dir.path().join(name);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(&path, bytes).unwrap();
            path
        };
        let i = inputs();
        let mut elf = vec![0_u8; 64];
        elf[..6].copy_from_slice(b"\x7fELF\x01\x01");
        elf[18] = 40;
        let binary = write_input("in/agent-data-plane", &elf);
        write_input("packaging/passwd", &i.passwd);
        write_input("packaging/group", &i.group);
        write_input("packaging/nsswitch.conf", &i.nsswitch);
        write_input("packaging/agent-data-plane.service", &i.unit);
        write_input("packaging/datadog.yaml.example", &i.config_example);
        let license = write_input("in/LICENSE", &i.license);
        let lock = write_input(
            "in/Cargo.lock",
            b"version = 4\n\n[[package]]\nname = \"agent-data-plane\"\nversion = \"0.1.0\"\n",
        );
        let libc = write_input(
            "in/libc6.deb",
            &deb::build_test_deb("libc6", "2.36", &[("./lib/libc.so.6", b"c", 0o755)]),
        );
        let ca = write_input(
            "in/ca.deb",
            &deb::build_test_deb(
                "ca-certificates",
                "1",
                &[("./usr/share/ca-certificates/mozilla/A.crt", b"A\n", 0o644)],
            ),
        );
        let run = |out: &str| {
            let args = BuildArgs {
                binary: binary.clone(),
                debug_file: None,
                version: "0.1.0".into(),
                revision: "abc".into(),
                source_date_epoch: 1_700_000_000,
                debs: vec![libc.clone()],
                ca_deb: ca.clone(),
                cargo_lock: lock.clone(),
                cargo_tree: None,
                packaging_dir: dir.path().join("packaging"),
                license: license.clone(),
                user: "dd-agent".into(),
                out: dir.path().join(out),
            };
            build(&args).unwrap();
            fs::read_to_string(dir.path().join(out).join("SHA256SUMS")).unwrap()
        };
        let first = run("a");
        assert_eq!(first, run("b"));
        let names: Vec<&str> = first.lines().map(|l| l.split_once("  ").unwrap().1).collect();
        assert!(names.contains(&"agent-data-plane-0.1.0-linux-armv7.tar.gz"));
        assert!(names.contains(&"agent-data-plane-0.1.0-linux-armv7.oci.tar"));
        assert!(names.contains(&"oci/index.json"));
        assert!(names.contains(&"oci/oci-layout"));
        assert_eq!(names.iter().filter(|n| n.starts_with("oci/blobs/sha256/")).count(), 3);
        for line in first.lines() {
            let (sum, name) = line.split_once("  ").unwrap();
            let bytes = fs::read(dir.path().join("a").join(name)).unwrap();
            assert_eq!(util::sha256_hex(&bytes), sum, "{name}");
        }
    }
}
