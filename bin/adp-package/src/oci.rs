//! An OCI image layout (image-spec v1.1) for `linux/arm/v7`, written without
//! a container engine.
//!
//! One layer (a deterministic gzip'd tar, see [`crate::archive`]), one config,
//! one manifest, and an `index.json` whose manifest descriptor carries the
//! platform and the `org.opencontainers.image.*` annotations. Every JSON
//! document is canonical (sorted keys, no whitespace), so the digests depend
//! only on the inputs. The same layout is also packed as an `oci-archive`
//! (a tar of the layout directory) for `skopeo copy oci-archive:...`.

use std::collections::BTreeMap;

use serde_json::{json, Value};

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

    fn descriptor(&self, media_type: &str) -> Value {
        json!({ "mediaType": media_type, "digest": self.digest, "size": self.bytes.len() as u64 })
    }

    fn path(&self) -> String {
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
    /// The layout as an `oci-archive`: an uncompressed tar of the directory
    /// (`oci-layout`, `index.json`, `blobs/`), deterministic like any [`Tree`].
    pub fn to_archive(&self, mtime: u64) -> Result<Vec<u8>, ArchiveError> {
        let mut tree = Tree::new();
        for (path, bytes) in &self.files {
            tree.file(path, bytes.clone(), 0o644, Owner::ROOT)?;
        }
        tree.add_parents();
        tree.to_tar(mtime)
    }
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
    let config = Blob::new(canonical_json(
        &json!({
            "created": spec.created,
            "architecture": "arm",
            "variant": "v7",
            "os": "linux",
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
        }),
        false,
    ));
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
    manifest_descriptor["platform"] = json!({ "architecture": "arm", "os": "linux", "variant": "v7" });
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
    files.insert(
        "oci-layout".to_owned(),
        canonical_json(&json!({"imageLayoutVersion": "1.0.0"}), false),
    );
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
