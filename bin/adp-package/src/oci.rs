//! OCI image layouts (image-spec v1.1), written without a container engine.
//!
//! One image per architecture ([`build`]): one layer (a deterministic gzip'd
//! tar, see [`crate::archive`]), one config, one manifest, and an
//! `index.json` whose manifest descriptor carries the platform and the
//! `org.opencontainers.image.*` annotations. The release joins them
//! ([`multi_arch`]): an image index blob listing each platform's manifest,
//! which `index.json` names as the one tagged image, as `docker buildx`
//! writes a multi-platform layout (so `skopeo inspect --raw oci:DIR` shows
//! the index and `skopeo copy --all` pushes every platform). Every JSON
//! document is canonical (sorted keys, no whitespace), so the digests depend
//! only on the inputs. A layout is also packed as an `oci-archive` (a tar of
//! the layout directory) for `skopeo copy oci-archive:...`.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use crate::arch::Arch;
use crate::archive::{ArchiveError, Owner, Tree};
use crate::util::{canonical_json, sha256_hex};

/// Media type of an image index.
pub const INDEX_MEDIA_TYPE: &str = "application/vnd.oci.image.index.v1+json";
/// Media type of an image manifest.
pub const MANIFEST_MEDIA_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
/// Media type of an image config.
pub const CONFIG_MEDIA_TYPE: &str = "application/vnd.oci.image.config.v1+json";
/// Media type of a gzip'd layer.
pub const LAYER_MEDIA_TYPE: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

/// What the image is and how it runs.
#[derive(Clone, Debug)]
pub struct ImageSpec {
    /// The platform.
    pub arch: Arch,
    /// `org.opencontainers.image.version`, also the `ref.name` tag.
    pub version: String,
    /// `org.opencontainers.image.revision` (git commit).
    pub revision: String,
    /// RFC 3339 creation time (from `SOURCE_DATE_EPOCH`).
    pub created: String,
    /// The numeric user the container runs as (from `packaging/passwd`).
    pub user: Owner,
    /// `Entrypoint`.
    pub entrypoint: Vec<String>,
    /// `Cmd`.
    pub cmd: Vec<String>,
    /// `ExposedPorts` keys (`8125/udp`).
    pub exposed_ports: Vec<String>,
    /// `Env` (`KEY=value`).
    pub env: Vec<String>,
    /// Extra `org.opencontainers.image.*` labels/annotations (title, licenses, source...).
    pub labels: BTreeMap<String, String>,
    /// `history[0].created_by`: what produced the layer.
    pub created_by: String,
}

/// A content-addressed blob.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Blob {
    /// `sha256:<hex>`.
    pub digest: String,
    /// The bytes.
    pub bytes: Vec<u8>,
}

impl Blob {
    /// Wraps `bytes`, computing the digest.
    pub fn new(bytes: Vec<u8>) -> Blob {
        Blob {
            digest: format!("sha256:{}", sha256_hex(&bytes)),
            bytes,
        }
    }

    /// `{mediaType, digest, size}` of this blob.
    pub fn descriptor(&self, media_type: &str) -> Value {
        json!({ "mediaType": media_type, "digest": self.digest, "size": self.bytes.len() as u64 })
    }

    /// Its path in a layout.
    pub fn path(&self) -> String {
        format!("blobs/sha256/{}", &self.digest["sha256:".len()..])
    }
}

/// A complete image layout: relative path → bytes.
#[derive(Clone, Debug)]
pub struct Layout {
    /// `oci-layout`, `index.json` and `blobs/sha256/*`.
    pub files: BTreeMap<String, Vec<u8>>,
    /// The manifest blob (its digest is what a registry calls the image digest).
    pub manifest: Blob,
    /// The config blob.
    pub config: Blob,
    /// The gzip'd layer blob.
    pub layer: Blob,
}

impl Layout {
    /// The layout as an `oci-archive` ([`to_archive`]).
    pub fn to_archive(&self, mtime: u64) -> Result<Vec<u8>, ArchiveError> {
        to_archive(&self.files, mtime)
    }
}

/// A layout's files as an `oci-archive`: an uncompressed tar of the directory
/// (`oci-layout`, `index.json`, `blobs/`), deterministic like any [`Tree`].
pub fn to_archive(files: &BTreeMap<String, Vec<u8>>, mtime: u64) -> Result<Vec<u8>, ArchiveError> {
    let mut tree = Tree::new();
    for (path, bytes) in files {
        tree.file(path, bytes.clone(), 0o644, Owner::ROOT)?;
    }
    tree.add_parents();
    tree.to_tar(mtime)
}

/// The `platform` object of `arch`.
pub fn platform(arch: Arch) -> Value {
    let (architecture, variant) = arch.oci_platform();
    let mut platform = json!({ "architecture": architecture, "os": "linux" });
    if let Some(variant) = variant {
        platform["variant"] = json!(variant);
    }
    platform
}

/// `oci-layout`, the same in every layout.
fn layout_marker() -> Vec<u8> {
    canonical_json(&json!({"imageLayoutVersion": "1.0.0"}), false)
}

/// One platform's image for the multi-platform index: its manifest
/// descriptor (with `platform`) and every blob it needs, by layout path.
pub struct PlatformImage {
    /// The manifest descriptor as the platform's own `index.json` has it.
    pub descriptor: Value,
    /// `blobs/sha256/<hex>` → bytes (manifest, config, layers).
    pub blobs: BTreeMap<String, Vec<u8>>,
}

/// A layout holding one image index over every platform's image: the index
/// blob carries `annotations` (version, revision, created, labels) and lists
/// each manifest with its platform; `index.json` names the index blob,
/// tagged `ref_name`. Returns the files and the index blob.
pub fn multi_arch(
    images: &[PlatformImage],
    annotations: &BTreeMap<String, String>,
    ref_name: &str,
) -> (BTreeMap<String, Vec<u8>>, Blob) {
    let mut files = BTreeMap::new();
    let mut manifests = Vec::new();
    for image in images {
        let mut descriptor = image.descriptor.clone();
        // The tag belongs to the index; each manifest keeps its own annotations.
        if let Some(map) = descriptor.get_mut("annotations").and_then(Value::as_object_mut) {
            map.remove("org.opencontainers.image.ref.name");
        }
        manifests.push(descriptor);
        files.extend(image.blobs.clone());
    }
    let index = Blob::new(canonical_json(
        &json!({
            "schemaVersion": 2,
            "mediaType": INDEX_MEDIA_TYPE,
            "manifests": manifests,
            "annotations": annotations,
        }),
        false,
    ));
    let mut top_annotations = annotations.clone();
    top_annotations.insert("org.opencontainers.image.ref.name".into(), ref_name.to_owned());
    let mut descriptor = index.descriptor(INDEX_MEDIA_TYPE);
    descriptor["annotations"] = json!(top_annotations);
    files.insert(
        "index.json".to_owned(),
        canonical_json(
            &json!({ "schemaVersion": 2, "mediaType": INDEX_MEDIA_TYPE, "manifests": [descriptor] }),
            false,
        ),
    );
    files.insert("oci-layout".to_owned(), layout_marker());
    files.insert(index.path(), index.bytes.clone());
    (files, index)
}

/// Builds the layout from the rootfs layer (`layer_tar` uncompressed, for the
/// diff_id, and `layer_gz`, the stored blob).
pub fn build(spec: &ImageSpec, layer_tar: &[u8], layer_gz: Vec<u8>) -> Layout {
    let diff_id = format!("sha256:{}", sha256_hex(layer_tar));
    let layer = Blob::new(layer_gz);

    let mut annotations: BTreeMap<String, String> = spec.labels.clone();
    annotations.insert("org.opencontainers.image.version".into(), spec.version.clone());
    annotations.insert("org.opencontainers.image.revision".into(), spec.revision.clone());
    annotations.insert("org.opencontainers.image.created".into(), spec.created.clone());

    let exposed: serde_json::Map<String, Value> = spec.exposed_ports.iter().map(|p| (p.clone(), json!({}))).collect();
    let mut config = json!({
            "created": spec.created,
            "config": {
                "User": format!("{}:{}", spec.user.uid, spec.user.gid),
                "ExposedPorts": exposed,
                "Env": spec.env,
                "Entrypoint": spec.entrypoint,
                "Cmd": spec.cmd,
                "WorkingDir": "/",
                "StopSignal": "SIGTERM",
                "Labels": annotations,
            },
            "rootfs": { "type": "layers", "diff_ids": [diff_id] },
            "history": [{ "created": spec.created, "created_by": spec.created_by }],
    });
    for (key, value) in platform(spec.arch).as_object().into_iter().flatten() {
        config[key] = value.clone();
    }
    let config = Blob::new(canonical_json(&config, false));
    let manifest = Blob::new(canonical_json(
        &json!({
            "schemaVersion": 2,
            "mediaType": MANIFEST_MEDIA_TYPE,
            "config": config.descriptor(CONFIG_MEDIA_TYPE),
            "layers": [layer.descriptor(LAYER_MEDIA_TYPE)],
            "annotations": annotations,
        }),
        false,
    ));
    let mut index_annotations = annotations.clone();
    index_annotations.insert("org.opencontainers.image.ref.name".into(), spec.version.clone());
    let mut manifest_descriptor = manifest.descriptor(MANIFEST_MEDIA_TYPE);
    manifest_descriptor["platform"] = platform(spec.arch);
    manifest_descriptor["annotations"] = json!(index_annotations);
    let index = canonical_json(
        &json!({
            "schemaVersion": 2,
            "mediaType": INDEX_MEDIA_TYPE,
            "manifests": [manifest_descriptor],
        }),
        false,
    );

    let mut files = BTreeMap::new();
    files.insert("oci-layout".to_owned(), layout_marker());
    files.insert("index.json".to_owned(), index);
    for blob in [&manifest, &config, &layer] {
        files.insert(blob.path(), blob.bytes.clone());
    }
    Layout {
        files,
        manifest,
        config,
        layer,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> ImageSpec {
        ImageSpec {
            arch: Arch::Armv7,
            version: "0.1.0".into(),
            revision: "0123456789abcdef".into(),
            created: "2023-11-14T22:13:20Z".into(),
            user: Owner { uid: 10001, gid: 10001 },
            entrypoint: vec!["/usr/bin/agent-data-plane".into()],
            cmd: vec!["run".into()],
            exposed_ports: vec!["8125/udp".into(), "5100/tcp".into()],
            env: vec!["PATH=/usr/bin:/bin".into()],
            labels: BTreeMap::new(),
            created_by: "test".into(),
        }
    }

    fn json_of(bytes: &[u8]) -> Value {
        serde_json::from_slice(bytes).unwrap()
    }

    #[test]
    fn config_carries_platform_runtime_settings_and_the_layer_diff_id() {
        let layout = build(&spec(), b"tar bytes", b"gz bytes".to_vec());
        let config = json_of(&layout.config.bytes);
        assert_eq!(config["os"], "linux");
        assert_eq!(config["architecture"], "arm");
        assert_eq!(config["variant"], "v7");
        assert_eq!(config["created"], "2023-11-14T22:13:20Z");
        assert_eq!(config["config"]["User"], "10001:10001");
        assert_eq!(config["config"]["Entrypoint"], json!(["/usr/bin/agent-data-plane"]));
        assert_eq!(config["config"]["Cmd"], json!(["run"]));
        assert_eq!(
            config["config"]["ExposedPorts"],
            json!({"8125/udp": {}, "5100/tcp": {}})
        );
        assert_eq!(
            config["rootfs"]["diff_ids"][0],
            format!("sha256:{}", sha256_hex(b"tar bytes"))
        );
        assert_eq!(config["history"][0]["created"], "2023-11-14T22:13:20Z");
    }

    #[test]
    fn descriptors_point_at_blobs_by_digest_and_size() {
        let layout = build(&spec(), b"tar bytes", b"gz bytes".to_vec());
        let index = json_of(&layout.files["index.json"]);
        let desc = &index["manifests"][0];
        assert_eq!(index["schemaVersion"], 2);
        assert_eq!(desc["mediaType"], MANIFEST_MEDIA_TYPE);
        assert_eq!(
            desc["platform"],
            json!({"architecture": "arm", "os": "linux", "variant": "v7"})
        );
        assert_eq!(desc["annotations"]["org.opencontainers.image.ref.name"], "0.1.0");
        assert_eq!(
            desc["annotations"]["org.opencontainers.image.revision"],
            "0123456789abcdef"
        );
        assert_eq!(
            desc["annotations"]["org.opencontainers.image.created"],
            "2023-11-14T22:13:20Z"
        );

        let digest = desc["digest"].as_str().unwrap();
        let manifest_bytes = &layout.files[&format!("blobs/sha256/{}", &digest[7..])];
        assert_eq!(format!("sha256:{}", sha256_hex(manifest_bytes)), digest);
        assert_eq!(desc["size"], manifest_bytes.len() as u64);

        let manifest = json_of(manifest_bytes);
        for (desc, media_type) in [
            (&manifest["config"], CONFIG_MEDIA_TYPE),
            (&manifest["layers"][0], LAYER_MEDIA_TYPE),
        ] {
            assert_eq!(desc["mediaType"], media_type);
            let hex = &desc["digest"].as_str().unwrap()[7..];
            let blob = &layout.files[&format!("blobs/sha256/{hex}")];
            assert_eq!(sha256_hex(blob), hex);
            assert_eq!(desc["size"], blob.len() as u64);
        }
        assert_eq!(
            json_of(&layout.files["oci-layout"]),
            json!({"imageLayoutVersion": "1.0.0"})
        );
    }

    #[test]
    fn arm64_and_amd64_images_name_their_platform_without_a_variant() {
        for (arch, name) in [(Arch::Arm64, "arm64"), (Arch::Amd64, "amd64")] {
            let layout = build(&ImageSpec { arch, ..spec() }, b"t", b"g".to_vec());
            let config = json_of(&layout.config.bytes);
            assert_eq!(
                (config["architecture"].as_str(), config.get("variant")),
                (Some(name), None)
            );
            let index = json_of(&layout.files["index.json"]);
            assert_eq!(
                index["manifests"][0]["platform"],
                json!({"architecture": name, "os": "linux"})
            );
        }
    }

    #[test]
    fn the_multi_arch_layout_tags_one_index_listing_every_platform_and_holds_every_blob() {
        let images: Vec<PlatformImage> = Arch::ALL
            .into_iter()
            .map(|arch| {
                let layout = build(
                    &ImageSpec { arch, ..spec() },
                    arch.name().as_bytes(),
                    arch.name().into(),
                );
                let index = json_of(&layout.files["index.json"]);
                PlatformImage {
                    descriptor: index["manifests"][0].clone(),
                    blobs: layout
                        .files
                        .into_iter()
                        .filter(|(p, _)| p.starts_with("blobs/"))
                        .collect(),
                }
            })
            .collect();
        let annotations = BTreeMap::from([("org.opencontainers.image.version".to_owned(), "0.1.0".to_owned())]);
        let (files, index_blob) = multi_arch(&images, &annotations, "0.1.0");
        let top = json_of(&files["index.json"]);
        assert_eq!(top["manifests"].as_array().unwrap().len(), 1);
        assert_eq!(top["manifests"][0]["mediaType"], INDEX_MEDIA_TYPE);
        assert_eq!(top["manifests"][0]["digest"], index_blob.digest);
        assert_eq!(
            top["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"],
            "0.1.0"
        );
        let index = json_of(&files[&index_blob.path()]);
        let platforms: Vec<&Value> = index["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| &m["platform"])
            .collect();
        assert_eq!(
            platforms,
            [
                &json!({"architecture": "arm", "os": "linux", "variant": "v7"}),
                &json!({"architecture": "arm64", "os": "linux"}),
                &json!({"architecture": "amd64", "os": "linux"}),
            ]
        );
        for manifest in index["manifests"].as_array().unwrap() {
            assert!(manifest["annotations"]
                .get("org.opencontainers.image.ref.name")
                .is_none());
            let hex = &manifest["digest"].as_str().unwrap()[7..];
            let bytes = &files[&format!("blobs/sha256/{hex}")];
            for desc in std::iter::once(&json_of(bytes)["config"]).chain(json_of(bytes)["layers"].as_array().unwrap()) {
                assert!(files.contains_key(&format!("blobs/sha256/{}", &desc["digest"].as_str().unwrap()[7..])));
            }
        }
        // 3 x (manifest, config, layer) + the index + index.json + oci-layout.
        assert_eq!(files.len(), 12);
    }

    #[test]
    fn same_inputs_give_the_same_archive_and_a_new_revision_changes_it() {
        let a = build(&spec(), b"t", b"g".to_vec());
        let b = build(&spec(), b"t", b"g".to_vec());
        assert_eq!(a.to_archive(5).unwrap(), b.to_archive(5).unwrap());
        let mut other = spec();
        other.revision = "fedcba".into();
        let c = build(&other, b"t", b"g".to_vec());
        assert_ne!(a.files["index.json"], c.files["index.json"]);
        assert_eq!(a.layer, c.layer);
    }
}
