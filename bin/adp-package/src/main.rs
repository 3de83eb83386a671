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
//! # The Nix flake: the runtime from a directory and a ready CA bundle.
//! adp-package build ... --rootfs-dir /nix/store/...-adp-armv7-rootfs \
//!     --ca-bundle /nix/store/...-nss-cacert-.../etc/ssl/certs/ca-bundle.crt ...
//! ```
//!
//! The same command is run by `checks/build-adp-armv7.sh` (Debian path) and by
//! the Nix flake (`nix/package.nix`), which has no `.deb`s: its glibc runtime
//! is a nixos store path laid out in a directory, and its CA bundle is
//! nixpkgs' `cacert`, so it passes `--rootfs-dir DIR --ca-bundle FILE` in
//! place of `--deb … --ca-deb …`. Nothing here reads the clock, the host's
//! users, the umask or the locale: every byte written is a function of the
//! inputs (for a directory: its paths, contents, link targets and whether a
//! file is executable).

#![deny(missing_docs)]

mod archive;
mod deb;
mod oci;
mod rootfs;
mod sbom;
mod util;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{ArgGroup, Parser, Subcommand};

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
///
/// The runtime comes from exactly one of `--deb` (the make path) and
/// `--rootfs-dir` (the Nix flake), the CA bundle from exactly one of
/// `--ca-deb` and `--ca-bundle`; clap's groups reject none or both.
#[derive(clap::Args, Clone, Debug)]
#[command(group(ArgGroup::new("runtime").required(true).args(["debs", "rootfs_dir"])))]
#[command(group(ArgGroup::new("ca").required(true).args(["ca_deb", "ca_bundle"])))]
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
    #[arg(long = "deb")]
    debs: Vec<PathBuf>,
    /// Instead of `--deb`: a directory whose every file, symlink and directory
    /// goes into the image rootfs at the same path (root-owned, 0755/0644).
    #[arg(long)]
    rootfs_dir: Option<PathBuf>,
    /// The pinned `ca-certificates` `.deb`: the image's CA bundle is built from it.
    #[arg(long)]
    ca_deb: Option<PathBuf>,
    /// Instead of `--ca-deb`: a ready PEM bundle, shipped as /etc/ssl/certs/ca-certificates.crt.
    #[arg(long)]
    ca_bundle: Option<PathBuf>,
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
    Rootfs(#[from] rootfs::RootfsError),
    #[error(transparent)]
    Sbom(#[from] sbom::SbomError),
    #[error("{0}")]
    Input(String),
}

const PACKAGE: &str = "agent-data-plane";
const BIN_PATH: &str = "usr/bin/agent-data-plane";
const DOC_DIR: &str = "usr/share/doc/agent-data-plane";
const CONFIG_DIR: &str = "etc/datadog-agent";
/// Where the system checks' default configuration files go (`confd_path`).
const CONFD_DIR: &str = "etc/datadog-agent/conf.d";
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
fn ca_bundle_from_deb(ca: &Deb) -> Result<Vec<u8>, Error> {
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

/// PEM certificates in `bundle`, checked so that a wrong `--ca-bundle` file
/// (a DER file, a directory listing, an empty file) fails the build.
fn ca_bundle_certificates(path: &Path, bundle: &[u8]) -> Result<usize, Error> {
    const BEGIN: &[u8] = b"-----BEGIN CERTIFICATE-----";
    let count = bundle.windows(BEGIN.len()).filter(|w| *w == BEGIN).count();
    if count == 0 {
        return Err(Error::Input(format!(
            "--ca-bundle {} holds no PEM certificate ({}); pass a PEM bundle such as nixpkgs' \
             cacert etc/ssl/certs/ca-bundle.crt",
            path.display(),
            String::from_utf8_lossy(BEGIN)
        )));
    }
    Ok(count)
}

/// What the image gets from outside the workspace: the runtime files (C
/// library, libgcc) and the CA bundle, with a line per source for the image
/// history. The provenance names contents, never host paths, so the same
/// inputs at another place give the same image.
struct Runtime {
    /// Runtime files, before the package's own are added.
    tree: Tree,
    /// The bytes of /etc/ssl/certs/ca-certificates.crt.
    ca_bundle: Vec<u8>,
    /// `package:arch=version` per `.deb`, or a summary of a directory or bundle.
    provenance: Vec<String>,
}

/// `package:arch=version`, the image history's name for a `.deb`.
fn deb_provenance(deb: &Deb) -> String {
    format!("{}:{}={}", deb.package, deb.architecture, deb.version)
}

impl Runtime {
    /// Reads `--deb`/`--rootfs-dir` and `--ca-deb`/`--ca-bundle` (clap
    /// guarantees one of each pair).
    fn from_args(args: &BuildArgs) -> Result<Self, Error> {
        let mut tree = Tree::new();
        let mut provenance = Vec::new();
        for path in &args.debs {
            let deb = Deb::parse(&path.display().to_string(), &read(path)?)?;
            deb_into_tree(&deb, &mut tree)?;
            provenance.push(deb_provenance(&deb));
        }
        if let Some(dir) = &args.rootfs_dir {
            let entries = rootfs::dir_into_tree(dir, &mut tree)?;
            provenance.push(format!("rootfs-dir (entries: {entries})"));
        }
        let ca_bundle = match (&args.ca_deb, &args.ca_bundle) {
            (Some(path), None) => {
                let ca = Deb::parse(&path.display().to_string(), &read(path)?)?;
                provenance.push(deb_provenance(&ca));
                ca_bundle_from_deb(&ca)?
            }
            (None, Some(path)) => {
                let bundle = read(path)?;
                let count = ca_bundle_certificates(path, &bundle)?;
                provenance.push(format!("ca-bundle (PEM certificates: {count})"));
                bundle
            }
            _ => return Err(Error::Input("pass exactly one of --ca-deb and --ca-bundle".to_owned())),
        };
        Ok(Self {
            tree,
            ca_bundle,
            provenance,
        })
    }

    /// The runtime of parsed `.deb`s, as `from_args` builds it from files.
    #[cfg(test)]
    fn from_debs(debs: &[Deb], ca: &Deb) -> Result<Self, Error> {
        let mut tree = Tree::new();
        for deb in debs {
            deb_into_tree(deb, &mut tree)?;
        }
        Ok(Self {
            tree,
            ca_bundle: ca_bundle_from_deb(ca)?,
            provenance: debs.iter().chain(std::iter::once(ca)).map(deb_provenance).collect(),
        })
    }
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
    add_confd(&mut tree)?;
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

/// The directories of the image the runtime user owns (and may write):
/// the configuration directory (for `auth_token`) and the run directory.
fn user_owned(user: Owner) -> [(&'static str, Owner); 2] {
    [(CONFIG_DIR, user), ("run/datadog", user)]
}

/// Refuses to write an archive with an entry outside the mode policy
/// ([`Tree::mode_violations`]): a setuid, world-writable or unreadable file
/// would ship to every user of the package or image.
fn check_modes(what: &str, tree: &Tree, sticky: &[&str], owned: &[(&str, Owner)]) -> Result<(), Error> {
    let violations = tree.mode_violations(sticky, owned);
    if violations.is_empty() {
        return Ok(());
    }
    Err(Error::Input(format!(
        "the {what} would ship entries with modes or owners it must not have (fix where bin/adp-package adds them):\n  {}",
        violations.join("\n  ")
    )))
}

/// The image rootfs: runtime files, CA bundle, users, the agent, and the
/// writable directories owned by the runtime user.
fn rootfs_tree(inputs: &Inputs, runtime: &Runtime, user: Owner) -> Result<Tree, Error> {
    let mut tree = runtime.tree.clone();
    tree.file(CA_BUNDLE, runtime.ca_bundle.clone(), 0o644, Owner::ROOT)?;
    tree.file("etc/passwd", inputs.passwd.clone(), 0o644, Owner::ROOT)?;
    tree.file("etc/group", inputs.group.clone(), 0o644, Owner::ROOT)?;
    tree.file("etc/nsswitch.conf", inputs.nsswitch.clone(), 0o644, Owner::ROOT)?;
    tree.file(BIN_PATH, inputs.binary.clone(), 0o755, Owner::ROOT)?;
    for (dir, owner) in user_owned(user) {
        tree.dir(dir, 0o755, owner)?;
    }
    tree.file(
        &format!("{CONFIG_DIR}/datadog.yaml.example"),
        inputs.config_example.clone(),
        0o644,
        Owner::ROOT,
    )?;
    add_confd(&mut tree)?;
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
    tree.symlink("var/run", "../run")?;
    tree.dir("tmp", 0o1777, Owner::ROOT)?;
    tree.add_parents();
    Ok(tree)
}

fn image_spec(args: &BuildArgs, runtime: &Runtime, user: Owner) -> oci::ImageSpec {
    let created = util::rfc3339(args.source_date_epoch);
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
            runtime.provenance.join(", ")
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

    let runtime = Runtime::from_args(args)?;

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
    let tarball_tree = tarball_tree(&inputs)?;
    check_modes("tarball", &tarball_tree, &[], &[])?;
    let tarball = archive::gzip(&tarball_tree.to_tar(epoch)?)?;
    outputs.insert(format!("{stem}.tar.gz"), tarball);
    if let Some(debug) = &args.debug_file {
        outputs.insert(format!("{stem}.debug"), read(debug)?);
    }
    let rootfs = rootfs_tree(&inputs, &runtime, user)?;
    check_modes("image rootfs", &rootfs, &["tmp"], &user_owned(user))?;
    let layer_tar = rootfs.to_tar(epoch)?;
    let layer_gz = archive::gzip(&layer_tar)?;
    let layout = oci::build(&image_spec(args, &runtime, user), &layer_tar, layer_gz);
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
        rootfs.iter().count()
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
    use crate::archive::test_support::{read_entries, ReadEntry};

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

    /// The inputs of a build written under `dir`, and `BuildArgs` for them
    /// that take the runtime from `.deb`s; tests swap the runtime flags.
    fn build_args(dir: &Path) -> BuildArgs {
        let write_input = |name: &str, bytes: &[u8]| {
            let path = dir.join(name);
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
        BuildArgs {
            binary,
            debug_file: None,
            version: "0.1.0".into(),
            revision: "abc".into(),
            source_date_epoch: 1_700_000_000,
            debs: vec![libc],
            rootfs_dir: None,
            ca_deb: Some(ca),
            ca_bundle: None,
            cargo_lock: lock,
            cargo_tree: None,
            packaging_dir: dir.join("packaging"),
            license,
            user: "dd-agent".into(),
            out: dir.join("out"),
        }
    }

    /// Builds into `<dir>/<out>` and returns SHA256SUMS, checked against the files.
    fn build_into(args: &BuildArgs, out: &Path) -> String {
        let args = BuildArgs {
            out: out.to_owned(),
            ..args.clone()
        };
        build(&args).unwrap();
        let sums = fs::read_to_string(out.join("SHA256SUMS")).unwrap();
        for line in sums.lines() {
            let (sum, name) = line.split_once("  ").unwrap();
            let bytes = fs::read(out.join(name)).unwrap();
            assert_eq!(util::sha256_hex(&bytes), sum, "{name}");
        }
        sums
    }

    /// The image layer's entries (path, mode, link target, contents) of a build.
    fn layer_entries(out: &Path) -> Vec<(String, u32, Option<String>, Vec<u8>)> {
        let sums = fs::read_to_string(out.join("SHA256SUMS")).unwrap();
        let mut layers = Vec::new();
        for name in sums.lines().filter_map(|l| l.split_once("  ")).map(|(_, n)| n) {
            let bytes = fs::read(out.join(name)).unwrap();
            if name.starts_with("oci/blobs/") && bytes.starts_with(&[0x1f, 0x8b]) {
                layers.push(bytes);
            }
        }
        assert_eq!(layers.len(), 1, "one gzip layer blob");
        let tar_bytes = {
            let mut tar_bytes = Vec::new();
            std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(layers[0].as_slice()), &mut tar_bytes)
                .unwrap();
            tar_bytes
        };
        let mut entries = Vec::new();
        for entry in tar::Archive::new(tar_bytes.as_slice()).entries().unwrap() {
            let mut entry = entry.unwrap();
            let path = String::from_utf8(entry.path_bytes().into_owned()).unwrap();
            let mode = entry.header().mode().unwrap();
            let link = entry
                .link_name_bytes()
                .map(|l| String::from_utf8(l.into_owned()).unwrap());
            let mut data = Vec::new();
            std::io::Read::read_to_end(&mut entry, &mut data).unwrap();
            entries.push((path, mode, link, data));
        }
        entries
    }

    #[test]
    fn a_full_build_is_byte_identical_twice_and_lists_every_output() {
        let dir = tempfile::tempdir().unwrap();
        let args = build_args(dir.path());
        let first = build_into(&args, &dir.path().join("a"));
        assert_eq!(first, build_into(&args, &dir.path().join("b")));
        let names: Vec<&str> = first.lines().map(|l| l.split_once("  ").unwrap().1).collect();
        assert!(names.contains(&"agent-data-plane-0.1.0-linux-armv7.tar.gz"));
        assert!(names.contains(&"agent-data-plane-0.1.0-linux-armv7.oci.tar"));
        assert!(names.contains(&"oci/index.json"));
        assert!(names.contains(&"oci/oci-layout"));
        assert_eq!(names.iter().filter(|n| n.starts_with("oci/blobs/sha256/")).count(), 3);
        let layer = layer_entries(&dir.path().join("a"));
        assert!(layer.iter().any(|e| e.0 == "lib/libc.so.6" && e.1 == 0o755));
        assert!(layer.iter().any(|e| e.0 == CA_BUNDLE && e.3 == b"A\n"));
    }

    fn gunzip(bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(bytes), &mut out).unwrap();
        out
    }

    #[test]
    fn the_shipped_tarball_is_root_owned_with_a_0755_binary_0644_files_and_0755_directories() {
        let dir = tempfile::tempdir().unwrap();
        let args = build_args(dir.path());
        build(&args).unwrap();
        let tarball = fs::read(args.out.join("agent-data-plane-0.1.0-linux-armv7.tar.gz")).unwrap();
        let entries = read_entries(&gunzip(&tarball));
        let got: Vec<(&str, tar::EntryType, u32)> = entries.iter().map(|e| (e.path.as_str(), e.kind, e.mode)).collect();
        use tar::EntryType::{Directory as D, Regular as F};
        assert_eq!(
            got[..3],
            [
                ("etc/datadog-agent/", D, 0o755),
                ("etc/datadog-agent/conf.d/", D, 0o755),
                ("etc/datadog-agent/conf.d/cpu.d/", D, 0o755),
            ]
        );
        assert_eq!(
            got.iter()
                .filter(|e| e.0.starts_with("etc/datadog-agent/conf.d/"))
                .count(),
            2 * adp_checks::DEFAULT_CONFD.len() + 1,
            "conf.d, a directory and a file per check"
        );
        assert!(got[1..2 * adp_checks::DEFAULT_CONFD.len() + 2]
            .iter()
            .all(|e| e.1 == if e.0.ends_with('/') { D } else { F } && e.2 == if e.1 == D { 0o755 } else { 0o644 }));
        assert_eq!(
            got[2 * adp_checks::DEFAULT_CONFD.len() + 2..],
            [
                ("etc/datadog-agent/datadog.yaml.example", F, 0o644),
                ("usr/bin/agent-data-plane", F, 0o755),
                ("usr/lib/systemd/system/agent-data-plane.service", F, 0o644),
                ("usr/share/doc/agent-data-plane/", D, 0o755),
                ("usr/share/doc/agent-data-plane/LICENSE", F, 0o644),
                ("usr/share/doc/agent-data-plane/sbom.cdx.json", F, 0o644),
            ]
        );
        for ReadEntry {
            path,
            uid,
            gid,
            user,
            group,
            ..
        } in &entries
        {
            assert_eq!((*uid, *gid), (0, 0), "{path}");
            assert!(user.is_empty() && group.is_empty(), "{path}: no names");
        }
    }

    #[test]
    fn the_image_runs_as_a_numeric_non_root_user_and_its_layer_has_nothing_world_writable_or_setuid() {
        let dir = tempfile::tempdir().unwrap();
        let args = build_args(dir.path());
        build(&args).unwrap();
        let blob = |digest: &str| {
            let hex = digest.strip_prefix("sha256:").unwrap();
            fs::read(args.out.join("oci/blobs/sha256").join(hex)).unwrap()
        };
        let json = |bytes: Vec<u8>| serde_json::from_slice::<serde_json::Value>(&bytes).unwrap();
        let index = json(fs::read(args.out.join("oci/index.json")).unwrap());
        let manifest = json(blob(index["manifests"][0]["digest"].as_str().unwrap()));
        let config = json(blob(manifest["config"]["digest"].as_str().unwrap()));
        assert_eq!(config["config"]["User"], "10001:10001", "numeric uid:gid, not a name");

        let layers = manifest["layers"].as_array().unwrap();
        assert_eq!(layers.len(), 1);
        let entries = read_entries(&gunzip(&blob(layers[0]["digest"].as_str().unwrap())));
        assert!(entries.len() > 10, "{entries:?}");
        for ReadEntry {
            path,
            kind,
            mode,
            uid,
            gid,
            ..
        } in &entries
        {
            if *kind == tar::EntryType::Symlink {
                continue;
            }
            assert_eq!(mode & 0o6000, 0, "{path}: setuid/setgid {mode:o}");
            let expected_mode = match path.as_str() {
                "tmp/" => 0o1777,
                p if p.ends_with('/') || p == BIN_PATH || p.ends_with(".so.6") => 0o755,
                _ => 0o644,
            };
            assert_eq!(*mode, expected_mode, "{path}");
            let expected_owner = match path.as_str() {
                "etc/datadog-agent/" | "run/datadog/" => (10001, 10001),
                _ => (0, 0),
            };
            assert_eq!((*uid, *gid), expected_owner, "{path}");
        }
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

    const STORE_LIB: &str =
        "nix/store/0123456789abcdfghijklmnpqrsvwxyz-glibc-armv7l-unknown-linux-gnueabihf-2.35-224/lib";

    /// A rootfs laid out as nix/rootfs.nix does, with the given host modes.
    fn nix_rootfs(root: &Path, exec: u32, dirs: u32) {
        use std::os::unix::fs::PermissionsExt;
        let lib = root.join(STORE_LIB);
        fs::create_dir_all(&lib).unwrap();
        fs::create_dir_all(root.join("lib/arm-linux-gnueabihf")).unwrap();
        fs::write(lib.join("libc.so.6"), b"\x7fELF libc").unwrap();
        fs::set_permissions(lib.join("libc.so.6"), fs::Permissions::from_mode(exec)).unwrap();
        std::os::unix::fs::symlink(
            format!("../../{STORE_LIB}/libc.so.6"),
            root.join("lib/arm-linux-gnueabihf/libc.so.6"),
        )
        .unwrap();
        fs::set_permissions(&lib, fs::Permissions::from_mode(dirs)).unwrap();
    }

    const PEM: &[u8] = b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";

    #[test]
    fn a_rootfs_dir_and_ca_bundle_build_is_byte_identical_wherever_the_inputs_are() {
        let dir = tempfile::tempdir().unwrap();
        let mut args = build_args(dir.path());
        nix_rootfs(&dir.path().join("rootfs-a"), 0o555, 0o555);
        nix_rootfs(&dir.path().join("elsewhere/rootfs-b"), 0o775, 0o700);
        fs::write(dir.path().join("in/ca-bundle.crt"), PEM).unwrap();
        fs::create_dir_all(dir.path().join("other")).unwrap();
        fs::write(dir.path().join("other/bundle.pem"), PEM).unwrap();
        args.debs.clear();
        args.ca_deb = None;
        args.rootfs_dir = Some(dir.path().join("rootfs-a"));
        args.ca_bundle = Some(dir.path().join("in/ca-bundle.crt"));
        let first = build_into(&args, &dir.path().join("a"));
        assert_eq!(first, build_into(&args, &dir.path().join("b")));
        args.rootfs_dir = Some(dir.path().join("elsewhere/rootfs-b"));
        args.ca_bundle = Some(dir.path().join("other/bundle.pem"));
        assert_eq!(
            first,
            build_into(&args, &dir.path().join("c")),
            "host paths and modes leak"
        );

        let layer = layer_entries(&dir.path().join("a"));
        let libc = format!("{STORE_LIB}/libc.so.6");
        assert!(layer.contains(&(libc, 0o755, None, b"\x7fELF libc".to_vec())));
        assert!(layer.contains(&(format!("{STORE_LIB}/"), 0o755, None, Vec::new())));
        assert!(layer.contains(&(
            "lib/arm-linux-gnueabihf/libc.so.6".to_owned(),
            0o777,
            Some(format!("../../{STORE_LIB}/libc.so.6")),
            Vec::new()
        )));
        assert!(layer.contains(&(CA_BUNDLE.to_owned(), 0o644, None, PEM.to_vec())));
        assert!(layer.iter().any(|e| e.0 == BIN_PATH));
        let paths: Vec<&str> = layer.iter().map(|e| e.0.as_str()).collect();
        let mut sorted = paths.clone();
        sorted.sort_unstable();
        assert_eq!(paths, sorted);

        let config = fs::read_dir(dir.path().join("a/oci/blobs/sha256"))
            .unwrap()
            .map(|e| fs::read_to_string(e.unwrap().path()).unwrap_or_default())
            .find(|text| text.contains("created_by"))
            .unwrap();
        assert!(
            config.contains("rootfs-dir (entries: 8), ca-bundle (PEM certificates: 1)"),
            "{config}"
        );
    }

    #[test]
    fn a_ca_bundle_without_certificates_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut args = build_args(dir.path());
        fs::write(dir.path().join("in/empty.crt"), b"").unwrap();
        args.ca_deb = None;
        args.ca_bundle = Some(dir.path().join("in/empty.crt"));
        let err = build(&args).unwrap_err().to_string();
        assert!(err.contains("--ca-bundle") && err.contains("empty.crt"), "{err}");
        assert!(!dir.path().join("out/SHA256SUMS").exists());
    }

    #[test]
    fn the_command_line_takes_one_runtime_source_and_one_ca_source() {
        let parse = |extra: &[&str]| {
            let base = [
                "adp-package",
                "build",
                "--binary",
                "b",
                "--version",
                "1",
                "--revision",
                "r",
                "--source-date-epoch",
                "0",
                "--cargo-lock",
                "l",
                "--out",
                "o",
            ];
            Cli::try_parse_from(base.iter().chain(extra)).map(|cli| match cli.command {
                Command::Build(args) => args,
            })
        };
        let nix = parse(&["--rootfs-dir", "/r", "--ca-bundle", "/c.crt"]).unwrap();
        assert_eq!(nix.rootfs_dir.as_deref(), Some(Path::new("/r")));
        assert_eq!(nix.ca_bundle.as_deref(), Some(Path::new("/c.crt")));
        assert!(nix.debs.is_empty() && nix.ca_deb.is_none());
        let debian = parse(&["--deb", "a.deb", "--deb", "b.deb", "--ca-deb", "ca.deb"]).unwrap();
        assert_eq!(debian.debs.len(), 2);
        assert!(parse(&["--deb", "a.deb", "--ca-bundle", "c"]).is_ok());
        assert!(parse(&["--rootfs-dir", "r", "--ca-deb", "c"]).is_ok());
        assert!(parse(&["--ca-deb", "c"]).is_err(), "no runtime");
        assert!(parse(&["--deb", "a.deb"]).is_err(), "no CA source");
        assert!(parse(&["--deb", "a", "--rootfs-dir", "r", "--ca-deb", "c"]).is_err());
        assert!(parse(&["--deb", "a", "--ca-deb", "c", "--ca-bundle", "d"]).is_err());
    }
}
