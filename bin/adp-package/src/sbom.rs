//! A CycloneDX 1.5 SBOM of the Rust crates compiled into the binary, derived
//! from `Cargo.lock`.
//!
//! - Components: every registry/git package reachable from the root package
//!   through the lock's dependency graph, with `name`, `version`, a
//!   `pkg:cargo/` purl and the lock's `checksum` (sha256 of the `.crate`) as
//!   a `SHA-256` hash. When a list of the packages actually built for the
//!   target is given (`cargo tree -e normal --target ...`), components are
//!   limited to it: the lock alone also lists dev-dependencies and
//!   other-platform crates (e.g. `windows-sys`) that never reach the binary.
//! - Workspace crates (no `source` in the lock) are the root component
//!   (`metadata.component`) and its sub-components.
//! - Deterministic: no random `serialNumber` (it is a UUID derived from the
//!   sha256 of the rest of the document), `metadata.timestamp` is
//!   `SOURCE_DATE_EPOCH`, arrays are sorted, keys are written sorted.
//!
//! # Missing
//! - Licences: Cargo.lock does not carry them (`cargo metadata` would).

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Value};

use crate::util::{canonical_json, rfc3339, sha256_hex};

/// The crates.io index, in its git and sparse spellings.
const CRATES_IO: [&str; 2] = [
    "registry+https://github.com/rust-lang/crates.io-index",
    "sparse+https://index.crates.io/",
];

/// Errors while reading the lock or building the SBOM.
#[derive(Debug, thiserror::Error)]
pub enum SbomError {
    /// A line of Cargo.lock could not be understood.
    #[error("Cargo.lock line {line}: {reason}")]
    Parse {
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        reason: String,
    },
    /// The root package is not in the lock.
    #[error("package {0:?} is not in Cargo.lock (is --root-package the binary's package name?)")]
    NoRoot(String),
    /// A dependency names a package the lock does not define.
    #[error("Cargo.lock: {package} depends on {dependency:?}, which the lock does not define")]
    Dangling {
        /// The depending package.
        package: String,
        /// The dependency spec as written.
        dependency: String,
    },
}

/// One `[[package]]` of Cargo.lock.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LockPackage {
    /// `name`.
    pub name: String,
    /// `version`.
    pub version: String,
    /// `source`, absent for workspace (path) crates.
    pub source: Option<String>,
    /// `checksum`: sha256 of the `.crate` file, for registry packages.
    pub checksum: Option<String>,
    /// `dependencies` as written: `name`, `name version` or `name version (source)`.
    pub dependencies: Vec<String>,
}

impl LockPackage {
    fn key(&self) -> (String, String) {
        (self.name.clone(), self.version.clone())
    }

    /// The component's purl; `None` for workspace crates.
    fn purl(&self) -> Option<String> {
        let source = self.source.as_deref()?;
        let base = format!("pkg:cargo/{}@{}", self.name, self.version);
        if CRATES_IO.contains(&source) {
            Some(base)
        } else if let Some(git) = source.strip_prefix("git+") {
            let url = git.split(['?', '#']).next().unwrap_or(git);
            Some(format!("{base}?vcs_url={}", percent_encode(&format!("git+{url}"))))
        } else {
            let url = source.split_once('+').map_or(source, |(_, u)| u);
            Some(format!("{base}?repository_url={}", percent_encode(url)))
        }
    }

    fn bom_ref(&self) -> String {
        self.purl()
            .unwrap_or_else(|| format!("pkg:cargo/{}@{}", self.name, self.version))
    }
}

/// Percent-encodes `s` for a purl (RFC 3986 unreserved characters and `/` stay).
pub(crate) fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'/' => char::from(b).to_string(),
            other => format!("%{other:02X}"),
        })
        .collect()
}

/// Parses the subset of TOML that Cargo writes in Cargo.lock (versions 3 and 4).
pub fn parse_lock(text: &str) -> Result<Vec<LockPackage>, SbomError> {
    let mut packages = Vec::new();
    let mut current: Option<LockPackage> = None;
    let mut in_deps = false;
    let unquote = |line: usize, v: &str| -> Result<String, SbomError> {
        v.trim()
            .trim_end_matches(',')
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .map(str::to_owned)
            .ok_or_else(|| SbomError::Parse {
                line,
                reason: format!("expected a quoted string, found {v:?}"),
            })
    };
    for (i, raw) in text.lines().enumerate() {
        let line_no = i + 1;
        let line = raw.trim();
        if in_deps {
            if line == "]" {
                in_deps = false;
            } else if let Some(pkg) = current.as_mut() {
                pkg.dependencies.push(unquote(line_no, line)?);
            }
            continue;
        }
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if line.starts_with('[') {
            if let Some(pkg) = current.take() {
                packages.push(pkg);
            }
            if line == "[[package]]" {
                current = Some(LockPackage::default());
            }
            // Other tables ([metadata], [[patch.unused]]) are skipped.
            continue;
        }
        let Some(pkg) = current.as_mut() else {
            continue; // `version = 4` at the top.
        };
        let (key, value) = line.split_once('=').ok_or_else(|| SbomError::Parse {
            line: line_no,
            reason: format!("expected `key = value`, found {line:?}"),
        })?;
        match key.trim() {
            "name" => pkg.name = unquote(line_no, value)?,
            "version" => pkg.version = unquote(line_no, value)?,
            "source" => pkg.source = Some(unquote(line_no, value)?),
            "checksum" => pkg.checksum = Some(unquote(line_no, value)?),
            "dependencies" => {
                let value = value.trim();
                if value == "[" {
                    in_deps = true;
                } else if value != "[]" {
                    return Err(SbomError::Parse {
                        line: line_no,
                        reason: "dependencies must be a multi-line array".to_owned(),
                    });
                }
            }
            _ => {}
        }
    }
    packages.extend(current);
    for (i, pkg) in packages.iter().enumerate() {
        if pkg.name.is_empty() || pkg.version.is_empty() {
            return Err(SbomError::Parse {
                line: 0,
                reason: format!("[[package]] number {} has no name or version", i + 1),
            });
        }
    }
    Ok(packages)
}

/// Parses `cargo tree --prefix none --format '{p}'` output into (name, version)
/// pairs (`serde v1.0.200`, `adp-config v0.1.0 (/build/crates/config)`, `(*)`).
pub fn parse_cargo_tree(text: &str) -> BTreeSet<(String, String)> {
    text.lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            let name = words.next()?;
            let version = words.next()?.strip_prefix('v')?;
            Some((name.to_owned(), version.to_owned()))
        })
        .collect()
}

/// What goes into the SBOM besides the lock.
#[derive(Clone, Debug)]
pub struct SbomOptions<'a> {
    /// The binary's package (`agent-data-plane`).
    pub root: &'a str,
    /// `SOURCE_DATE_EPOCH`.
    pub epoch: u64,
    /// Packages built for the target; `None` keeps the whole lock closure.
    pub built: Option<&'a BTreeSet<(String, String)>>,
    /// SPDX licence id of the workspace.
    pub license: &'a str,
}

/// Builds the CycloneDX 1.5 document (pretty, sorted keys, trailing newline).
pub fn cyclonedx(packages: &[LockPackage], opts: &SbomOptions<'_>) -> Result<Vec<u8>, SbomError> {
    let by_key: BTreeMap<(String, String), &LockPackage> = packages.iter().map(|p| (p.key(), p)).collect();
    let resolve = |from: &LockPackage, spec: &str| -> Result<&LockPackage, SbomError> {
        let mut words = spec.split_whitespace();
        let name = words.next().unwrap_or_default();
        let version = words.next();
        let mut candidates = packages
            .iter()
            .filter(|p| p.name == name && version.is_none_or(|v| p.version == v));
        match (candidates.next(), candidates.next()) {
            (Some(p), None) => Ok(p),
            // Same name and version from two sources: the lock would say `(source)`.
            (Some(p), Some(_)) if version.is_some() => Ok(p),
            _ => Err(SbomError::Dangling {
                package: from.name.clone(),
                dependency: spec.to_owned(),
            }),
        }
    };
    let root = packages
        .iter()
        .find(|p| p.name == opts.root && p.source.is_none())
        .ok_or_else(|| SbomError::NoRoot(opts.root.to_owned()))?;

    // Reachable packages, and the edges among them.
    let mut reached: BTreeSet<(String, String)> = BTreeSet::new();
    let mut edges: BTreeMap<(String, String), BTreeSet<(String, String)>> = BTreeMap::new();
    let mut stack = vec![root];
    // Workspace crates too: a dev-dependency on a workspace crate is not built in.
    let included = |p: &LockPackage| opts.built.is_none_or(|built| built.contains(&p.key()));
    while let Some(pkg) = stack.pop() {
        if !reached.insert(pkg.key()) {
            continue;
        }
        let mut deps = BTreeSet::new();
        for spec in &pkg.dependencies {
            let dep = resolve(pkg, spec)?;
            if included(dep) {
                deps.insert(dep.key());
                stack.push(dep);
            }
        }
        edges.insert(pkg.key(), deps);
    }

    let mut components = Vec::new();
    let mut workspace = Vec::new();
    for key in &reached {
        let pkg = by_key[key];
        if pkg.source.is_none() {
            if pkg.name != opts.root {
                workspace.push(json!({
                    "type": "library",
                    "bom-ref": pkg.bom_ref(),
                    "name": pkg.name,
                    "version": pkg.version,
                }));
            }
            continue;
        }
        let mut component = json!({
            "type": "library",
            "bom-ref": pkg.bom_ref(),
            "name": pkg.name,
            "version": pkg.version,
            "purl": pkg.purl(),
        });
        if let Some(sum) = &pkg.checksum {
            component["hashes"] = json!([{ "alg": "SHA-256", "content": sum }]);
        }
        components.push(component);
    }
    let dependencies: Vec<Value> = edges
        .iter()
        .map(|(key, deps)| {
            json!({
                "ref": by_key[key].bom_ref(),
                "dependsOn": deps.iter().map(|d| by_key[d].bom_ref()).collect::<Vec<_>>(),
            })
        })
        .collect();

    let mut doc = json!({
        "bomFormat": "CycloneDX",
        "specVersion": "1.5",
        "version": 1,
        "metadata": {
            "timestamp": rfc3339(opts.epoch),
            "tools": { "components": [{
                "type": "application",
                "name": env!("CARGO_PKG_NAME"),
                "version": env!("CARGO_PKG_VERSION"),
            }]},
            "component": {
                "type": "application",
                "bom-ref": root.bom_ref(),
                "name": root.name,
                "version": root.version,
                "licenses": [{ "license": { "id": opts.license } }],
                "components": workspace,
            },
        },
        "components": components,
        "dependencies": dependencies,
    });
    let digest = sha256_hex(&canonical_json(&doc, false));
    doc["serialNumber"] = Value::String(format!("urn:uuid:{}", uuid_from_digest(&digest)));
    Ok(canonical_json(&doc, true))
}

/// An RFC 9562 version-8 (custom) UUID from the first 128 bits of a hex digest.
fn uuid_from_digest(hex: &str) -> String {
    let mut b: Vec<u8> = (0..16)
        .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap_or(0))
        .collect();
    b[6] = (b[6] & 0x0f) | 0x80;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = crate::util::hex(&b);
    format!("{}-{}-{}-{}-{}", &h[..8], &h[8..12], &h[12..16], &h[16..20], &h[20..])
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOCK: &str = r#"# This file is automatically @generated by Cargo.
# It is not intended for manual editing.
version = 4

[[package]]
name = "adp-config"
version = "0.1.0"
dependencies = [
 "serde",
]

[[package]]
name = "agent-data-plane"
version = "0.1.0"
dependencies = [
 "adp-config",
 "bitflags 2.6.0",
 "tempfile",
 "windows-sys",
]

[[package]]
name = "bitflags"
version = "1.3.2"
source = "registry+https://github.com/rust-lang/crates.io-index"
checksum = "bef38d45163c2f1dde094a7dfd33ccf595c92905c8f8f4fdc18d06fb1037718a"

[[package]]
name = "bitflags"
version = "2.6.0"
source = "registry+https://github.com/rust-lang/crates.io-index"
checksum = "b048fb63fd8b5923fc5aa7b340d8e156aec7ec02f0c78fa8a6ddc2613f6f71de"

[[package]]
name = "serde"
version = "1.0.210"
source = "registry+https://github.com/rust-lang/crates.io-index"
checksum = "c8e3592472072e6e22e0a54d5904d9febf8508f65fb8552499a1abc7d1078c3a"

[[package]]
name = "tempfile"
version = "3.12.0"
source = "registry+https://github.com/rust-lang/crates.io-index"
checksum = "04cbcdd0c794ebb0d4cf35e88edd2f7d2c4c3e9a5a6dab322839b321c6a87a64"
dependencies = [
 "bitflags 1.3.2",
]

[[package]]
name = "unrelated"
version = "9.9.9"
source = "git+https://example.com/unrelated.git?branch=main#0123abcd"

[[package]]
name = "windows-sys"
version = "0.59.0"
source = "registry+https://github.com/rust-lang/crates.io-index"
checksum = "1e38bc4d79ed67fd075bcc251a1c39b32a1776bbe92e5bef1f0bf1f8c531853b"
"#;

    fn doc(built: Option<&BTreeSet<(String, String)>>) -> Value {
        let packages = parse_lock(LOCK).unwrap();
        let bytes = cyclonedx(
            &packages,
            &SbomOptions {
                root: "agent-data-plane",
                epoch: 1_700_000_000,
                built,
                license: "Apache-2.0",
            },
        )
        .unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    fn names(doc: &Value) -> Vec<String> {
        doc["components"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["purl"].as_str().unwrap().to_owned())
            .collect()
    }

    #[test]
    fn lock_packages_are_parsed_with_sources_and_dependencies() {
        let packages = parse_lock(LOCK).unwrap();
        assert_eq!(packages.len(), 8);
        let root = &packages[1];
        assert_eq!(root.name, "agent-data-plane");
        assert_eq!(root.source, None);
        assert_eq!(
            root.dependencies,
            ["adp-config", "bitflags 2.6.0", "tempfile", "windows-sys"]
        );
        assert_eq!(packages[2].checksum.as_deref().unwrap().len(), 64);
    }

    #[test]
    fn components_are_the_root_closure_with_purls_and_lock_checksums() {
        let doc = doc(None);
        assert_eq!(doc["bomFormat"], "CycloneDX");
        assert_eq!(doc["specVersion"], "1.5");
        assert_eq!(
            names(&doc),
            [
                "pkg:cargo/bitflags@1.3.2",
                "pkg:cargo/bitflags@2.6.0",
                "pkg:cargo/serde@1.0.210",
                "pkg:cargo/tempfile@3.12.0",
                "pkg:cargo/windows-sys@0.59.0"
            ],
            "the git package `unrelated` is not reachable from the root"
        );
        let serde = &doc["components"][2];
        assert_eq!(serde["name"], "serde");
        assert_eq!(serde["version"], "1.0.210");
        assert_eq!(serde["hashes"][0]["alg"], "SHA-256");
        assert_eq!(
            serde["hashes"][0]["content"],
            "c8e3592472072e6e22e0a54d5904d9febf8508f65fb8552499a1abc7d1078c3a"
        );
        let root = &doc["metadata"]["component"];
        assert_eq!(root["name"], "agent-data-plane");
        assert_eq!(root["components"][0]["name"], "adp-config");
        assert_eq!(doc["metadata"]["timestamp"], "2023-11-14T22:13:20Z");
    }

    #[test]
    fn a_built_package_list_drops_dev_and_foreign_platform_crates() {
        let built = parse_cargo_tree(
            "agent-data-plane v0.1.0 (/build/bin/agent-data-plane)\n\
             adp-config v0.1.0 (/build/crates/config)\n\
             serde v1.0.210\n\
             bitflags v2.6.0\n\
             serde v1.0.210 (*)\n",
        );
        let doc = doc(Some(&built));
        assert_eq!(names(&doc), ["pkg:cargo/bitflags@2.6.0", "pkg:cargo/serde@1.0.210"]);
        let deps = doc["dependencies"].as_array().unwrap();
        let root = deps
            .iter()
            .find(|d| d["ref"] == "pkg:cargo/agent-data-plane@0.1.0")
            .unwrap();
        assert_eq!(
            root["dependsOn"],
            json!(["pkg:cargo/adp-config@0.1.0", "pkg:cargo/bitflags@2.6.0"])
        );
        let workspace = &doc["metadata"]["component"]["components"];
        assert_eq!(workspace.as_array().unwrap().len(), 1);
        assert_eq!(workspace[0]["name"], "adp-config");
        // A workspace crate missing from the built list (a dev-dependency) is left out.
        let without_config = parse_cargo_tree("bitflags v2.6.0\n");
        let doc = self::doc(Some(&without_config));
        assert_eq!(doc["metadata"]["component"]["components"], json!([]));
    }

    #[test]
    fn serial_number_is_derived_from_content() {
        let a = doc(None);
        let b = doc(None);
        assert_eq!(a, b);
        let serial = a["serialNumber"].as_str().unwrap();
        assert!(serial.starts_with("urn:uuid:"));
        assert_eq!(&serial[9 + 14..9 + 15], "8", "version-8 UUID: {serial}");
        let built = parse_cargo_tree("serde v1.0.210\n");
        assert_ne!(doc(Some(&built))["serialNumber"], a["serialNumber"]);
    }

    #[test]
    fn git_and_other_registry_sources_get_purl_qualifiers() {
        let pkg = LockPackage {
            name: "x".into(),
            version: "1.0.0".into(),
            source: Some("git+https://example.com/x.git?rev=abc#abcdef".into()),
            ..Default::default()
        };
        assert_eq!(
            pkg.purl().unwrap(),
            "pkg:cargo/x@1.0.0?vcs_url=git%2Bhttps%3A//example.com/x.git"
        );
    }

    #[test]
    fn dangling_dependencies_and_a_missing_root_are_errors() {
        let packages = parse_lock(LOCK).unwrap();
        let opts = SbomOptions {
            root: "nope",
            epoch: 0,
            built: None,
            license: "Apache-2.0",
        };
        assert!(matches!(cyclonedx(&packages, &opts), Err(SbomError::NoRoot(_))));
        let broken = LOCK.replace(" \"windows-sys\",\n", " \"windows-sys\",\n \"ghost\",\n");
        let packages = parse_lock(&broken).unwrap();
        let opts = SbomOptions {
            root: "agent-data-plane",
            ..opts
        };
        assert!(matches!(cyclonedx(&packages, &opts), Err(SbomError::Dangling { .. })));
    }
}
