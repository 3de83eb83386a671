//! Build provenance: an in-toto Statement v1 with a SLSA Provenance v1
//! predicate, naming every artifact by its sha256 (the subjects) and what
//! made it: the source revision, `SOURCE_DATE_EPOCH`, the pinned inputs
//! (`Cargo.lock`, `packaging/debs.lock` and each runtime `.deb` by digest)
//! and the toolchain packages by version.
//!
//! Deterministic like every artifact: no start or finish time, no
//! invocation id, no host name; arrays are sorted, keys written sorted. A
//! rebuild of the same revision with the same toolchain gives the same
//! statement, so a user checks a download by rebuilding and comparing
//! subjects (packaging/README.md, "Verify a download").
//!
//! The statement is not signed (no DSSE envelope): it is as trustworthy as
//! the rebuild that reproduces it.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Value};

use crate::arch::Arch;
use crate::deb::Deb;
use crate::sbom::percent_encode;
use crate::util::{canonical_json, sha256_hex};

/// The documentation of this build type (what the parameters mean).
pub const BUILD_TYPE: &str = "https://github.com/adp-armv7/agent-data-plane/blob/main/packaging/README.md#provenance";
/// The source repository.
const SOURCE: &str = "git+https://github.com/adp-armv7/agent-data-plane";

/// What a build was made from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Provenance {
    /// The release version (`0.1.0`).
    pub version: String,
    /// The source revision (a commit, `-dirty` with uncommitted changes).
    pub revision: String,
    /// `SOURCE_DATE_EPOCH`.
    pub epoch: u64,
    /// The Debian revision of the `.deb`s.
    pub deb_revision: u32,
    /// The architectures built.
    pub arches: BTreeSet<Arch>,
    /// `runDetails.builder.id`.
    pub builder_id: String,
    /// `resolvedDependencies`: in-toto ResourceDescriptors.
    pub dependencies: BTreeSet<String>,
}

/// A pinned input file by name and sha256.
pub fn file_dependency(name: &str, bytes: &[u8]) -> Value {
    json!({ "name": name, "digest": { "sha256": sha256_hex(bytes) } })
}

/// A Debian package as a purl.
fn deb_purl(name: &str, version: &str, arch: Option<&str>) -> String {
    let mut purl = format!("pkg:deb/debian/{}@{}", percent_encode(name), percent_encode(version));
    if let Some(arch) = arch {
        purl.push_str(&format!("?arch={}", percent_encode(arch)));
    }
    purl
}

/// A runtime `.deb` by purl and the sha256 of its file.
pub fn deb_dependency(deb: &Deb, sha256: &str) -> Value {
    json!({
        "uri": deb_purl(&deb.package, &deb.version, Some(&deb.architecture)),
        "digest": { "sha256": sha256 },
    })
}

/// A toolchain package, `NAME[:ARCH]=VERSION` (the Debian package's name and
/// version as dpkg-query prints them), as a purl.
pub fn toolchain_dependency(spec: &str) -> Result<Value, String> {
    let (name, version) = spec
        .split_once('=')
        .filter(|(n, v)| !n.is_empty() && !v.is_empty())
        .ok_or_else(|| {
            format!("--toolchain {spec:?} is not NAME[:ARCH]=VERSION (e.g. rustc-web:amd64=1.85.0+dfsg3-1~deb12u3)")
        })?;
    let (name, arch) = match name.split_once(':') {
        Some((n, a)) => (n, Some(a)),
        None => (name, None),
    };
    Ok(json!({ "uri": deb_purl(name, version, arch) }))
}

/// The source revision: by commit digest when it is a clean commit.
pub fn source_dependency(revision: &str) -> Value {
    let clean = revision.len() == 40 && revision.bytes().all(|b| b.is_ascii_hexdigit());
    if clean {
        json!({ "uri": format!("{SOURCE}@{revision}"), "digest": { "gitCommit": revision } })
    } else {
        json!({ "uri": SOURCE, "annotations": { "revision": revision } })
    }
}

impl Provenance {
    /// Adds resolved dependencies.
    pub fn depend(&mut self, dependencies: impl IntoIterator<Item = Value>) {
        self.dependencies.extend(
            dependencies
                .into_iter()
                .map(|d| String::from_utf8_lossy(&canonical_json(&d, false)).into_owned()),
        );
    }

    /// The statement for `subjects` (artifact name → sha256 hex).
    pub fn statement(&self, subjects: &BTreeMap<String, String>) -> Vec<u8> {
        let subject: Vec<Value> = subjects
            .iter()
            .map(|(name, sha256)| json!({ "name": name, "digest": { "sha256": sha256 } }))
            .collect();
        let dependencies: Vec<Value> = self
            .dependencies
            .iter()
            .map(|d| serde_json::from_str(d).unwrap_or(Value::Null))
            .collect();
        let arches: Vec<&str> = self.arches.iter().map(|a| a.name()).collect();
        canonical_json(
            &json!({
                "_type": "https://in-toto.io/Statement/v1",
                "subject": subject,
                "predicateType": "https://slsa.dev/provenance/v1",
                "predicate": {
                    "buildDefinition": {
                        "buildType": BUILD_TYPE,
                        "externalParameters": {
                            "source": { "uri": SOURCE, "revision": self.revision },
                            "version": self.version,
                            "architectures": arches,
                        },
                        "internalParameters": {
                            "SOURCE_DATE_EPOCH": self.epoch,
                            "debRevision": self.deb_revision,
                        },
                        "resolvedDependencies": dependencies,
                    },
                    "runDetails": { "builder": { "id": self.builder_id } },
                },
            }),
            true,
        )
    }

    /// Reads back what [`Provenance::statement`] wrote; `name` is used in errors.
    pub fn parse(name: &str, bytes: &[u8]) -> Result<Provenance, String> {
        let bad = |what: &str| format!("{name}: {what} (not a statement adp-package build wrote?)");
        let doc: Value = serde_json::from_slice(bytes).map_err(|e| bad(&format!("not JSON: {e}")))?;
        if doc["predicate"]["buildDefinition"]["buildType"] != BUILD_TYPE {
            return Err(bad("another buildType"));
        }
        let def = &doc["predicate"]["buildDefinition"];
        let text = |v: &Value, what: &str| v.as_str().map(str::to_owned).ok_or_else(|| bad(&format!("no {what}")));
        let mut arches = BTreeSet::new();
        for a in def["externalParameters"]["architectures"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let name = a.as_str().unwrap_or_default();
            let arch = Arch::ALL
                .into_iter()
                .find(|x| x.name() == name)
                .ok_or_else(|| bad(&format!("unknown architecture {name:?}")))?;
            arches.insert(arch);
        }
        let mut provenance = Provenance {
            version: text(&def["externalParameters"]["version"], "version")?,
            revision: text(&def["externalParameters"]["source"]["revision"], "revision")?,
            epoch: def["internalParameters"]["SOURCE_DATE_EPOCH"]
                .as_u64()
                .ok_or_else(|| bad("no SOURCE_DATE_EPOCH"))?,
            deb_revision: def["internalParameters"]["debRevision"]
                .as_u64()
                .and_then(|r| u32::try_from(r).ok())
                .ok_or_else(|| bad("no debRevision"))?,
            arches,
            builder_id: text(&doc["predicate"]["runDetails"]["builder"]["id"], "builder id")?,
            dependencies: BTreeSet::new(),
        };
        provenance.depend(def["resolvedDependencies"].as_array().cloned().unwrap_or_default());
        Ok(provenance)
    }

    /// Joins another architecture's provenance into this one; both must be
    /// the same release (version, revision, epoch, Debian revision, builder).
    pub fn merge(&mut self, other: &Provenance, other_name: &str) -> Result<(), String> {
        let same = (
            &self.version,
            &self.revision,
            self.epoch,
            self.deb_revision,
            &self.builder_id,
        ) == (
            &other.version,
            &other.revision,
            other.epoch,
            other.deb_revision,
            &other.builder_id,
        );
        if !same {
            return Err(format!(
                "{other_name} is from another build: version {} revision {} SOURCE_DATE_EPOCH {} deb revision {} builder {}, \
                 but the first input is version {} revision {} SOURCE_DATE_EPOCH {} deb revision {} builder {}; \
                 rebuild every architecture from one checkout (make release)",
                other.version,
                other.revision,
                other.epoch,
                other.deb_revision,
                other.builder_id,
                self.version,
                self.revision,
                self.epoch,
                self.deb_revision,
                self.builder_id
            ));
        }
        if let Some(dup) = self.arches.intersection(&other.arches).next() {
            return Err(format!("{other_name}: {dup} is given twice"));
        }
        self.arches.extend(other.arches.iter().copied());
        self.dependencies.extend(other.dependencies.iter().cloned());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(arch: Arch) -> Provenance {
        let mut p = Provenance {
            version: "0.1.0".into(),
            revision: "0123456789abcdef0123456789abcdef01234567".into(),
            epoch: 1_700_000_000,
            deb_revision: 1,
            arches: BTreeSet::from([arch]),
            builder_id: "urn:test".into(),
            dependencies: BTreeSet::new(),
        };
        p.depend([
            source_dependency(&p.revision.clone()),
            file_dependency("Cargo.lock", b"lock"),
            toolchain_dependency("rustc-web:amd64=1.85.0+dfsg3-1~deb12u3").unwrap(),
        ]);
        p
    }

    #[test]
    fn the_statement_names_subjects_inputs_and_toolchain_and_reads_back() {
        let p = sample(Arch::Armv7);
        let subjects = BTreeMap::from([("a.tar.gz".to_owned(), "ab".repeat(32))]);
        let bytes = p.statement(&subjects);
        assert_eq!(bytes, p.statement(&subjects), "deterministic");
        let doc: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(doc["_type"], "https://in-toto.io/Statement/v1");
        assert_eq!(doc["predicateType"], "https://slsa.dev/provenance/v1");
        assert_eq!(
            doc["subject"][0],
            json!({"name": "a.tar.gz", "digest": {"sha256": "ab".repeat(32)}})
        );
        let deps = doc["predicate"]["buildDefinition"]["resolvedDependencies"].to_string();
        assert!(
            deps.contains("pkg:deb/debian/rustc-web@1.85.0%2Bdfsg3-1~deb12u3?arch=amd64"),
            "{deps}"
        );
        assert!(
            deps.contains(r#""gitCommit":"0123456789abcdef0123456789abcdef01234567""#),
            "{deps}"
        );
        assert_eq!(Provenance::parse("p.json", &bytes).unwrap(), p);
    }

    #[test]
    fn architectures_of_one_release_merge_and_of_another_do_not() {
        let mut all = sample(Arch::Armv7);
        let mut arm64 = sample(Arch::Arm64);
        arm64.depend([file_dependency("libc6 arm64", b"x")]);
        all.merge(&arm64, "arm64").unwrap();
        assert_eq!(all.arches.len(), 2);
        assert_eq!(all.dependencies.len(), 4, "shared inputs once, the arm64 runtime added");
        assert!(all.merge(&arm64, "arm64 again").unwrap_err().contains("given twice"));
        let mut other = sample(Arch::Amd64);
        other.revision = "fedcba".into();
        let err = all.merge(&other, "amd64/provenance").unwrap_err();
        assert!(
            err.contains("amd64/provenance is from another build") && err.contains("fedcba"),
            "{err}"
        );
    }

    #[test]
    fn a_dirty_tree_is_named_by_revision_without_a_commit_digest() {
        let dep = source_dependency("0123abcd-dirty");
        assert!(dep.get("digest").is_none());
        assert_eq!(dep["annotations"]["revision"], "0123abcd-dirty");
        assert!(toolchain_dependency("rustc-web").is_err());
    }
}
