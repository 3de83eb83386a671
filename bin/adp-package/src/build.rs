//! `adp-package build`: one architecture's release artifacts from its
//! stripped binary: the FHS tarball, the `.deb`, the OCI image layout and its
//! oci-archive, the debug file, the provenance and `SHA256SUMS`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use clap::ArgGroup;

use crate::arch::Arch;
use crate::deb::write::{debian_version, package_name, Package, SCRIPTS};
use crate::error::{read, remove_dir, write, Error};
use crate::layout::{self, Inputs, CONFIG, PACKAGE, UNIT_NAME};
use crate::provenance::{self, Provenance};
use crate::runtime::Runtime;
use crate::{archive, elf, oci, sbom, util};

/// Inputs of `adp-package build`.
///
/// The runtime comes from exactly one of `--deb` (the make path) and
/// `--rootfs-dir` (the Nix flake), the CA bundle from exactly one of
/// `--ca-deb` and `--ca-bundle`; clap's groups reject none or both.
#[derive(clap::Args, Clone, Debug)]
#[command(group(ArgGroup::new("runtime").required(true).args(["debs", "rootfs_dir"])))]
#[command(group(ArgGroup::new("ca").required(true).args(["ca_deb", "ca_bundle"])))]
pub struct BuildArgs {
    /// The architecture of the binary: its ELF header, the image platform, the .deb's Architecture.
    #[arg(long, value_enum, default_value_t = Arch::Armv7)]
    pub arch: Arch,
    /// The stripped binary (the architecture's Debian interpreter, no RPATH).
    #[arg(long)]
    pub binary: PathBuf,
    /// Separated debug info (`objcopy --only-keep-debug`), shipped beside the tarball.
    #[arg(long)]
    pub debug_file: Option<PathBuf>,
    /// Release version (`0.1.0`), used in file names and image annotations.
    #[arg(long)]
    pub version: String,
    /// Git revision the binary was built from.
    #[arg(long)]
    pub revision: String,
    /// `SOURCE_DATE_EPOCH` (seconds since the epoch): every mtime and timestamp.
    #[arg(long)]
    pub source_date_epoch: u64,
    /// The Debian revision of the .deb (`<version>-<N>`): raise it to ship a
    /// rebuilt package of the same release.
    #[arg(long, default_value_t = 1)]
    pub deb_revision: u32,
    /// Runtime `.deb` files for the image rootfs (libc6, libgcc-s1 of the architecture), sha256-verified.
    #[arg(long = "deb")]
    pub debs: Vec<PathBuf>,
    /// Instead of `--deb`: a directory whose every file, symlink and directory
    /// goes into the image rootfs at the same path (root-owned, 0755/0644).
    #[arg(long)]
    pub rootfs_dir: Option<PathBuf>,
    /// The pinned `ca-certificates` `.deb`: the image's CA bundle is built from it.
    #[arg(long)]
    pub ca_deb: Option<PathBuf>,
    /// Instead of `--ca-deb`: a ready PEM bundle, shipped as /etc/ssl/certs/ca-certificates.crt.
    #[arg(long)]
    pub ca_bundle: Option<PathBuf>,
    /// The workspace's Cargo.lock, for the SBOM and the provenance.
    #[arg(long)]
    pub cargo_lock: PathBuf,
    /// `cargo tree -e normal --target <target> --prefix none --format '{p}'` output:
    /// limits the SBOM to crates built into the binary.
    #[arg(long)]
    pub cargo_tree: Option<PathBuf>,
    /// packaging/debs.lock, named by digest in the provenance.
    #[arg(long)]
    pub debs_lock: Option<PathBuf>,
    /// A toolchain package in the provenance, `NAME[:ARCH]=VERSION` (Debian's), repeated.
    #[arg(long = "toolchain")]
    pub toolchain: Vec<String>,
    /// The provenance's `runDetails.builder.id`.
    #[arg(long, default_value = "urn:agent-data-plane:builder:adp-package")]
    pub builder_id: String,
    /// Directory with the static inputs (unit, config example, passwd, group,
    /// nsswitch.conf, deb/ with the control template, maintainer scripts,
    /// copyright and man page).
    #[arg(long, default_value = "packaging")]
    pub packaging_dir: PathBuf,
    /// The licence text shipped in usr/share/doc/agent-data-plane/LICENSE.
    #[arg(long, default_value = "LICENSE")]
    pub license: PathBuf,
    /// The user (from <packaging-dir>/passwd) the image runs as and that owns its state dirs.
    #[arg(long, default_value = "dd-agent")]
    pub user: String,
    /// Output directory (created; outputs in it are replaced).
    #[arg(long)]
    pub out: PathBuf,
}

/// Writes `outputs` (name → bytes) into `out`, then the provenance statement
/// `statement_name` naming each of them, then `SHA256SUMS` of everything, and
/// prints a line per file.
pub fn write_outputs(
    out: &Path,
    mut outputs: BTreeMap<String, Vec<u8>>,
    statement_name: &str,
    provenance: &Provenance,
) -> Result<(), Error> {
    let subjects: BTreeMap<String, String> = outputs
        .iter()
        .map(|(name, bytes)| (name.clone(), util::sha256_hex(bytes)))
        .collect();
    outputs.insert(statement_name.to_owned(), provenance.statement(&subjects));
    remove_dir(&out.join("oci"))?;
    let mut sums = String::new();
    for (name, bytes) in &outputs {
        write(&out.join(name), bytes)?;
        let sum = util::sha256_hex(bytes);
        sums.push_str(&format!("{sum}  {name}\n"));
        println!("{sum}  {:>10}  {}", bytes.len(), out.join(name).display());
    }
    write(&out.join("SHA256SUMS"), sums.as_bytes())
}

/// The `.deb` of this build.
fn deb_package(args: &BuildArgs, inputs: &Inputs, depends: String) -> Result<Package, Error> {
    let deb_dir = args.packaging_dir.join("deb");
    let control_path = deb_dir.join("control");
    let control_template = String::from_utf8(read(&control_path)?)
        .map_err(|_| Error::Input(format!("{} is not UTF-8", control_path.display())))?;
    let maintainer = control_template
        .lines()
        .find_map(|l| l.strip_prefix("Maintainer:"))
        .map(str::trim)
        .ok_or_else(|| Error::Input(format!("{} has no Maintainer: field", control_path.display())))?;
    package_name(&control_template)
        .filter(|name| *name == PACKAGE)
        .ok_or_else(|| Error::Input(format!("{} must say Package: {PACKAGE}", control_path.display())))?;
    let version = debian_version(&args.version, args.deb_revision);
    let changelog = layout::deb_changelog(
        maintainer,
        &version,
        &args.version,
        &args.revision,
        args.source_date_epoch,
    );
    let data = layout::deb_tree(inputs, &changelog)?;
    layout::check_modes("deb", &data, &[], &[])?;
    let mut scripts = BTreeMap::new();
    for name in SCRIPTS {
        let path = deb_dir.join(name);
        if path.exists() {
            scripts.insert(name.to_owned(), read(&path)?);
        }
    }
    Ok(Package {
        version,
        arch: args.arch,
        depends,
        control_template,
        scripts,
        conffiles: std::iter::once(CONFIG.to_owned())
            .chain(layout::confd_files())
            .map(|path| format!("/{path}"))
            .collect(),
        data,
    })
}

/// What the build was made from.
fn provenance(args: &BuildArgs, lock: &[u8], runtime: &Runtime) -> Result<Provenance, Error> {
    let mut provenance = Provenance {
        version: args.version.clone(),
        revision: args.revision.clone(),
        epoch: args.source_date_epoch,
        deb_revision: args.deb_revision,
        arches: [args.arch].into(),
        builder_id: args.builder_id.clone(),
        dependencies: Default::default(),
    };
    provenance.depend([
        provenance::source_dependency(&args.revision),
        provenance::file_dependency("Cargo.lock", lock),
    ]);
    if let Some(path) = &args.debs_lock {
        provenance.depend([provenance::file_dependency("packaging/debs.lock", &read(path)?)]);
    }
    provenance.depend(
        runtime
            .debs
            .iter()
            .map(|(deb, sha)| provenance::deb_dependency(deb, sha)),
    );
    for spec in &args.toolchain {
        provenance.depend([provenance::toolchain_dependency(spec).map_err(Error::Input)?]);
    }
    Ok(provenance)
}

/// Builds every artifact of one architecture into `args.out`.
pub fn build(args: &BuildArgs) -> Result<(), Error> {
    let binary = read(&args.binary)?;
    let binary_name = args.binary.display().to_string();
    let needs = elf::read(&binary_name, &binary, args.arch)?;
    let interpreter = needs.interpreter.as_deref().unwrap_or("none");
    if interpreter != args.arch.interpreter() {
        return Err(Error::Input(format!(
            "{binary_name} requests the interpreter {interpreter}, but {} systems have {}; \
             patch it with patchelf --set-interpreter {}",
            args.arch,
            args.arch.interpreter(),
            args.arch.interpreter()
        )));
    }
    let depends = needs.depends(&binary_name)?;

    let pkg_dir = &args.packaging_dir;
    let passwd = read(&pkg_dir.join("passwd"))?;
    let user = layout::passwd_owner(&String::from_utf8_lossy(&passwd), &args.user).ok_or_else(|| {
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

    let lock = read(&args.cargo_lock)?;
    let built = match &args.cargo_tree {
        Some(path) => Some(sbom::parse_cargo_tree(&String::from_utf8_lossy(&read(path)?))),
        None => None,
    };
    let sbom = sbom::cyclonedx(
        &sbom::parse_lock(&String::from_utf8_lossy(&lock))?,
        &sbom::SbomOptions {
            root: PACKAGE,
            epoch: args.source_date_epoch,
            built: built.as_ref(),
            license: "Apache-2.0",
        },
    )?;

    let runtime = Runtime::read(
        args.arch,
        &args.debs,
        args.rootfs_dir.as_deref(),
        args.ca_deb.as_deref(),
        args.ca_bundle.as_deref(),
    )?;

    let inputs = Inputs {
        binary,
        unit: read(&pkg_dir.join(UNIT_NAME))?,
        config_example: read(&pkg_dir.join("datadog.yaml.example"))?,
        license: read(&args.license)?,
        sbom,
        passwd,
        group: read(&pkg_dir.join("group"))?,
        nsswitch: read(&pkg_dir.join("nsswitch.conf"))?,
        copyright: read(&pkg_dir.join("deb/copyright"))?,
        manpage: read(&pkg_dir.join("deb/agent-data-plane.1"))?,
        lintian_overrides: read(&pkg_dir.join("deb/lintian-overrides"))?,
    };
    let epoch = args.source_date_epoch;
    let stem = format!("{PACKAGE}-{}-linux-{}", args.version, args.arch);

    let mut outputs: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let tarball_tree = layout::tarball_tree(&inputs)?;
    layout::check_modes("tarball", &tarball_tree, &[], &[])?;
    outputs.insert(format!("{stem}.tar.gz"), archive::gzip(&tarball_tree.to_tar(epoch)?)?);
    if let Some(debug) = &args.debug_file {
        outputs.insert(format!("{stem}.debug"), read(debug)?);
    }
    let deb = deb_package(args, &inputs, depends)?;
    outputs.insert(deb.file_name()?, deb.build(epoch)?);
    let rootfs = layout::rootfs_tree(&inputs, &runtime, user)?;
    layout::check_modes("image rootfs", &rootfs, &["tmp"], &layout::user_owned(user))?;
    let layer_tar = rootfs.to_tar(epoch)?;
    let layer_gz = archive::gzip(&layer_tar)?;
    let spec = layout::image_spec(args.arch, &args.version, &args.revision, epoch, &runtime, user);
    let image = oci::build(&spec, &layer_tar, layer_gz);
    outputs.insert(format!("{stem}.oci.tar"), image.to_archive(epoch)?);
    for (path, bytes) in &image.files {
        outputs.insert(format!("oci/{path}"), bytes.clone());
    }

    let provenance = provenance(args, &lock, &runtime)?;
    write_outputs(&args.out, outputs, &format!("{stem}.intoto.json"), &provenance)?;
    println!(
        "image: {} manifest {} config {} layer {} ({} rootfs entries)",
        args.arch,
        image.manifest.digest,
        image.config.digest,
        image.layer.digest,
        rootfs.iter().count()
    );
    println!(
        "deb: {} Version: {} Depends: {}",
        deb.file_name()?,
        deb.version,
        deb.depends
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::archive::test_support::{read_entries, ReadEntry};
    use crate::deb::{self, Deb, DebEntry};
    use crate::layout::tests::inputs;
    use crate::layout::{BIN_PATH, CA_BUNDLE};
    use clap::Parser;
    use std::fs;

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
        let elf = crate::elf::test_support::build_elf(
            1,
            40,
            "/lib/ld-linux-armhf.so.3",
            &["libc.so.6", "libgcc_s.so.1"],
            &[
                ("libc.so.6", &["GLIBC_2.4", "GLIBC_2.34"]),
                ("libgcc_s.so.1", &["GCC_3.5"]),
            ],
        );
        let binary = write_input("in/agent-data-plane", &elf);
        write_input("packaging/passwd", &i.passwd);
        write_input("packaging/group", &i.group);
        write_input("packaging/nsswitch.conf", &i.nsswitch);
        write_input("packaging/agent-data-plane.service", &i.unit);
        write_input("packaging/datadog.yaml.example", &i.config_example);
        for name in [
            "control",
            "copyright",
            "agent-data-plane.1",
            "lintian-overrides",
            "postinst",
            "prerm",
            "postrm",
        ] {
            write_input(
                &format!("packaging/deb/{name}"),
                &fs::read(Path::new("../../packaging/deb").join(name)).unwrap(),
            );
        }
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
            arch: Arch::Armv7,
            binary,
            debug_file: None,
            version: "0.1.0".into(),
            revision: "abc".into(),
            source_date_epoch: 1_700_000_000,
            deb_revision: 1,
            debs: vec![libc],
            rootfs_dir: None,
            ca_deb: Some(ca),
            ca_bundle: None,
            cargo_lock: lock,
            cargo_tree: None,
            debs_lock: None,
            toolchain: vec!["rustc-web:amd64=1.85.0".into()],
            builder_id: "urn:test".into(),
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
        assert!(names.contains(&"agent-data-plane_0.1.0-1_armhf.deb"));
        assert!(names.contains(&"agent-data-plane-0.1.0-linux-armv7.intoto.json"));
        assert_eq!(names.iter().filter(|n| n.starts_with("oci/blobs/sha256/")).count(), 3);
        let statement: serde_json::Value = serde_json::from_slice(
            &fs::read(dir.path().join("a/agent-data-plane-0.1.0-linux-armv7.intoto.json")).unwrap(),
        )
        .unwrap();
        let subjects = statement["subject"].as_array().unwrap();
        assert_eq!(
            subjects.len(),
            names.len() - 1,
            "every artifact but the statement itself"
        );
        for line in first.lines().filter(|l| !l.ends_with(".intoto.json")) {
            let (sum, name) = line.split_once("  ").unwrap();
            assert!(
                subjects.contains(&serde_json::json!({"name": name, "digest": {"sha256": sum}})),
                "{name}"
            );
        }
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
        let confd_entries = 2 * adp_checks::DEFAULT_CONFD.len() + 1;
        assert_eq!(
            got.iter()
                .filter(|e| e.0.starts_with("etc/datadog-agent/conf.d/"))
                .count(),
            confd_entries,
            "conf.d, a directory and a file per check"
        );
        assert!(got[1..=confd_entries]
            .iter()
            .all(|e| e.1 == if e.0.ends_with('/') { D } else { F } && e.2 == if e.1 == D { 0o755 } else { 0o644 }));
        let mut rest = vec![got[0]];
        rest.extend_from_slice(&got[confd_entries + 1..]);
        assert_eq!(
            rest,
            [
                ("etc/datadog-agent/", D, 0o755),
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
    fn the_deb_depends_on_what_the_binary_links_and_keeps_its_configuration() {
        let dir = tempfile::tempdir().unwrap();
        let args = build_args(dir.path());
        build(&args).unwrap();
        let deb = Deb::parse(
            "deb",
            &fs::read(args.out.join("agent-data-plane_0.1.0-1_armhf.deb")).unwrap(),
        )
        .unwrap();
        assert_eq!(deb.architecture, "armhf");
        assert!(deb.entries.contains_key("etc/datadog-agent/datadog.yaml"));
        let members = crate::deb::read::ar_members(
            "deb",
            &fs::read(args.out.join("agent-data-plane_0.1.0-1_armhf.deb")).unwrap(),
        )
        .unwrap()
        .into_iter()
        .map(|(n, b)| (n, b.to_vec()))
        .collect::<Vec<_>>();
        let control_tar = crate::deb::read::decompress("deb", "control.tar.gz", &members[1].1).unwrap();
        let control = crate::deb::read::read_tar("deb", "control.tar.gz", &control_tar).unwrap();
        let text = |name: &str| match &control[name] {
            DebEntry::File { data, .. } => String::from_utf8(data.clone()).unwrap(),
            other => panic!("{name}: {other:?}"),
        };
        assert!(
            text("control").contains("\nDepends: libc6 (>= 2.34), libgcc-s1 (>= 3.5)\n"),
            "{}",
            text("control")
        );
        let conffiles = text("conffiles");
        assert!(
            conffiles.starts_with("/etc/datadog-agent/datadog.yaml\n"),
            "{conffiles}"
        );
        assert!(
            conffiles.contains("\n/etc/datadog-agent/conf.d/cpu.d/conf.yaml.default\n"),
            "{conffiles}"
        );
        assert_eq!(
            conffiles.lines().count(),
            1 + adp_checks::DEFAULT_CONFD.len(),
            "{conffiles}"
        );
        assert!(text("postinst").contains("useradd --system"));
        assert!(text("md5sums").contains("  usr/bin/agent-data-plane\n"));
    }

    #[test]
    fn a_binary_with_another_interpreter_is_refused_with_the_patchelf_fix() {
        let dir = tempfile::tempdir().unwrap();
        let args = build_args(dir.path());
        let elf = crate::elf::test_support::build_elf(
            1,
            40,
            "/nix/store/x-glibc/lib/ld-linux-armhf.so.3",
            &["libc.so.6"],
            &[],
        );
        fs::write(&args.binary, elf).unwrap();
        let err = build(&args).unwrap_err().to_string();
        assert!(
            err.contains("patchelf --set-interpreter /lib/ld-linux-armhf.so.3"),
            "{err}"
        );
        let arm64 = BuildArgs {
            arch: Arch::Arm64,
            ..args
        };
        let err = build(&arm64).unwrap_err().to_string();
        assert!(err.contains("not a 64-bit little-endian arm64 ELF file"), "{err}");
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
            crate::Cli::try_parse_from(base.iter().chain(extra)).map(|cli| match cli.command {
                crate::Command::Build(args) => *args,
                crate::Command::Release(_) => unreachable!(),
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
