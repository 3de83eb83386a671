//! `adp-package release`: one release from every architecture's build (each
//! `adp-package build` output directory): their tarballs, `.deb`s and debug
//! files side by side, one OCI layout whose tagged image is an index over
//! every platform, its oci-archive, one provenance statement naming every
//! artifact, and `SHA256SUMS`.
//!
//! Nothing is rebuilt: every input file is checked against its directory's
//! `SHA256SUMS` first, and the inputs must come from the same build (version,
//! revision, `SOURCE_DATE_EPOCH`, Debian revision, builder: their provenance
//! says), so a release never mixes two commits.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::build::write_outputs;
use crate::error::{read, Error};
use crate::layout::{self, PACKAGE};
use crate::oci::{self, PlatformImage};
use crate::provenance::Provenance;
use crate::util;

/// Inputs of `adp-package release`.
#[derive(clap::Args, Clone, Debug)]
pub struct ReleaseArgs {
    /// An `adp-package build` output directory, one per architecture (repeated).
    #[arg(long = "input", required = true)]
    pub inputs: Vec<PathBuf>,
    /// Output directory (created; outputs in it are replaced).
    #[arg(long)]
    pub out: PathBuf,
}

/// One architecture's build, its files verified.
struct Input {
    files: BTreeMap<String, Vec<u8>>,
    provenance: Provenance,
    statement: String,
}

fn read_input(dir: &Path) -> Result<Input, Error> {
    let sums_path = dir.join("SHA256SUMS");
    let sums = String::from_utf8_lossy(&read(&sums_path)?).into_owned();
    let mut files = BTreeMap::new();
    for line in sums.lines() {
        let (sum, name) = line
            .split_once("  ")
            .ok_or_else(|| Error::Input(format!("{}: unreadable line {line:?}", sums_path.display())))?;
        let bytes = read(&dir.join(name))?;
        let actual = util::sha256_hex(&bytes);
        if actual != sum {
            return Err(Error::Input(format!(
                "{}: sha256 {actual}, but {} lists {sum}; the build output was changed after it was written \
                 (rebuild it)",
                dir.join(name).display(),
                sums_path.display()
            )));
        }
        files.insert(name.to_owned(), bytes);
    }
    let statements: Vec<&String> = files.keys().filter(|n| n.ends_with(".intoto.json")).collect();
    let [statement] = statements.as_slice() else {
        return Err(Error::Input(format!(
            "{} lists {} provenance statements (*.intoto.json), not one: is {} an `adp-package build` output?",
            sums_path.display(),
            statements.len(),
            dir.display()
        )));
    };
    let statement = (*statement).clone();
    let provenance =
        Provenance::parse(&dir.join(&statement).display().to_string(), &files[&statement]).map_err(Error::Input)?;
    Ok(Input {
        files,
        provenance,
        statement,
    })
}

/// The platform image of one build: its only manifest descriptor and blobs.
fn platform_image(dir: &Path, input: &Input) -> Result<PlatformImage, Error> {
    let index: Value = serde_json::from_slice(input.files.get("oci/index.json").map_or(&[][..], Vec::as_slice))
        .map_err(|e| Error::Input(format!("{}/oci/index.json: {e}", dir.display())))?;
    let manifests = index["manifests"].as_array().cloned().unwrap_or_default();
    let [descriptor] = manifests.as_slice() else {
        return Err(Error::Input(format!(
            "{}/oci/index.json has {} manifests; an architecture's build has exactly one",
            dir.display(),
            manifests.len()
        )));
    };
    let blobs = input
        .files
        .iter()
        .filter_map(|(name, bytes)| {
            name.strip_prefix("oci/")
                .filter(|p| p.starts_with("blobs/"))
                .map(|p| (p.to_owned(), bytes.clone()))
        })
        .collect();
    Ok(PlatformImage {
        descriptor: descriptor.clone(),
        blobs,
    })
}

/// Assembles the release into `args.out`.
pub fn release(args: &ReleaseArgs) -> Result<(), Error> {
    let mut provenance: Option<Provenance> = None;
    let mut images = Vec::new();
    let mut outputs: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    for dir in &args.inputs {
        let input = read_input(dir)?;
        match &mut provenance {
            None => provenance = Some(input.provenance.clone()),
            Some(first) => first
                .merge(&input.provenance, &dir.join(&input.statement).display().to_string())
                .map_err(Error::Input)?,
        }
        let arch = *input
            .provenance
            .arches
            .iter()
            .next()
            .ok_or_else(|| Error::Input(format!("{}: the provenance names no architecture", dir.display())))?;
        images.push((arch, platform_image(dir, &input)?));
        // The per-architecture image and statement are superseded by the release's.
        for (name, bytes) in input.files {
            if name.starts_with("oci/") || name.ends_with(".oci.tar") || name == input.statement {
                continue;
            }
            if outputs.insert(name.clone(), bytes).is_some() {
                return Err(Error::Input(format!("two inputs both have {name}")));
            }
        }
    }
    let provenance = provenance.ok_or_else(|| Error::Input("no --input given".to_owned()))?;
    images.sort_by_key(|(arch, _)| *arch);
    let images: Vec<PlatformImage> = images.into_iter().map(|(_, image)| image).collect();

    let mut annotations = layout::labels();
    annotations.insert("org.opencontainers.image.version".into(), provenance.version.clone());
    annotations.insert("org.opencontainers.image.revision".into(), provenance.revision.clone());
    annotations.insert(
        "org.opencontainers.image.created".into(),
        util::rfc3339(provenance.epoch),
    );
    let (layout, index) = oci::multi_arch(&images, &annotations, &provenance.version);
    let stem = format!("{PACKAGE}-{}", provenance.version);
    outputs.insert(format!("{stem}.oci.tar"), oci::to_archive(&layout, provenance.epoch)?);
    for (path, bytes) in &layout {
        outputs.insert(format!("oci/{path}"), bytes.clone());
    }
    write_outputs(&args.out, outputs, &format!("{stem}.intoto.json"), &provenance)?;
    let arches: Vec<&str> = provenance.arches.iter().map(|a| a.name()).collect();
    println!("image index {} for {}", index.digest, arches.join(", "));
    Ok(())
}
