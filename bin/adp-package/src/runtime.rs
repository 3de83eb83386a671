//! What the image gets from outside the workspace: the runtime files (C
//! library, libgcc) and the CA bundle, from the pinned `.deb`s (the make path)
//! or from a directory and a PEM bundle (the Nix flake), with a line per
//! source for the image history. The history names contents, never host
//! paths, so the same inputs at another place give the same image.

use std::path::Path;

use crate::arch::Arch;
use crate::archive::{file_mode, Owner, Tree};
use crate::deb::{Deb, DebEntry};
use crate::error::{read, Error};
use crate::rootfs;

/// Where the CA bundle is read from in the `ca-certificates` package.
const CA_SOURCE_DIR: &str = "usr/share/ca-certificates/mozilla/";

/// The runtime of one image.
pub struct Runtime {
    /// Runtime files, before the package's own are added.
    pub tree: Tree,
    /// The bytes of /etc/ssl/certs/ca-certificates.crt.
    pub ca_bundle: Vec<u8>,
    /// `package:arch=version` per `.deb`, or a summary of a directory or bundle.
    pub provenance: Vec<String>,
    /// The `.deb` files read, for the build provenance: (parsed package, sha256 of the file).
    pub debs: Vec<(Deb, String)>,
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

/// `package:arch=version`, the image history's name for a `.deb`.
pub fn deb_provenance(deb: &Deb) -> String {
    format!("{}:{}={}", deb.package, deb.architecture, deb.version)
}

/// Reads and checks one `.deb` for `arch`'s image (its architecture, or `all`).
fn read_deb(path: &Path, arch: Arch) -> Result<(Deb, String), Error> {
    let bytes = read(path)?;
    let deb = Deb::parse(&path.display().to_string(), &bytes)?;
    if deb.architecture != "all" && deb.architecture != arch.deb_arch() {
        return Err(Error::Input(format!(
            "{} is for {}, but this is the {arch} image ({}); pass the {} packages of packaging/debs.lock",
            path.display(),
            deb.architecture,
            arch.deb_arch(),
            arch.deb_arch()
        )));
    }
    Ok((deb, crate::util::sha256_hex(&bytes)))
}

impl Runtime {
    /// Reads the runtime `.deb`s or directory, and the CA `.deb` or bundle
    /// (the command line guarantees exactly one of each pair).
    pub fn read(
        arch: Arch,
        debs: &[impl AsRef<Path>],
        rootfs_dir: Option<&Path>,
        ca_deb: Option<&Path>,
        ca_bundle: Option<&Path>,
    ) -> Result<Self, Error> {
        let mut runtime = Runtime {
            tree: Tree::new(),
            ca_bundle: Vec::new(),
            provenance: Vec::new(),
            debs: Vec::new(),
        };
        for path in debs {
            let (deb, sha256) = read_deb(path.as_ref(), arch)?;
            deb_into_tree(&deb, &mut runtime.tree)?;
            runtime.provenance.push(deb_provenance(&deb));
            runtime.debs.push((deb, sha256));
        }
        if let Some(dir) = rootfs_dir {
            let entries = rootfs::dir_into_tree(dir, &mut runtime.tree)?;
            runtime.provenance.push(format!("rootfs-dir (entries: {entries})"));
        }
        runtime.ca_bundle = match (ca_deb, ca_bundle) {
            (Some(path), None) => {
                let (ca, sha256) = read_deb(path, arch)?;
                runtime.provenance.push(deb_provenance(&ca));
                let bundle = ca_bundle_from_deb(&ca)?;
                runtime.debs.push((ca, sha256));
                bundle
            }
            (None, Some(path)) => {
                let bundle = read(path)?;
                let count = ca_bundle_certificates(path, &bundle)?;
                runtime
                    .provenance
                    .push(format!("ca-bundle (PEM certificates: {count})"));
                bundle
            }
            _ => return Err(Error::Input("pass exactly one of --ca-deb and --ca-bundle".to_owned())),
        };
        Ok(runtime)
    }

    /// The runtime of parsed `.deb`s, as [`Runtime::read`] builds it from files.
    #[cfg(test)]
    pub fn from_debs(debs: &[Deb], ca: &Deb) -> Result<Self, Error> {
        let mut tree = Tree::new();
        for deb in debs {
            deb_into_tree(deb, &mut tree)?;
        }
        Ok(Self {
            tree,
            ca_bundle: ca_bundle_from_deb(ca)?,
            provenance: debs.iter().chain(std::iter::once(ca)).map(deb_provenance).collect(),
            debs: Vec::new(),
        })
    }
}
