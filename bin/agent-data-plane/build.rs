//! Embeds the build's identity for `agent-data-plane version` and the start-up log:
//!
//! - `ADP_GIT_HASH`: the environment variable of that name when set (the
//!   reproducible build passes it, having no `.git`), else `git rev-parse --short
//!   HEAD`, else `unknown`;
//! - `ADP_BUILD_TIME`: `SOURCE_DATE_EPOCH` as UTC RFC 3339 when set, else
//!   `unknown`. Never the wall clock: two builds of one commit must be identical.

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=ADP_GIT_HASH");
    println!("cargo:rerun-if-env-changed=SOURCE_DATE_EPOCH");

    let manifest_dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let hash = match std::env::var("ADP_GIT_HASH") {
        Ok(h) if is_short_hash(h.trim()) => h.trim().to_owned(),
        Ok(h) if !h.trim().is_empty() => {
            println!("cargo:warning=ignoring ADP_GIT_HASH={h:?}: expected 7 to 40 hexadecimal digits");
            git_hash(&manifest_dir).unwrap_or_else(|| "unknown".to_owned())
        }
        _ => git_hash(&manifest_dir).unwrap_or_else(|| "unknown".to_owned()),
    };
    println!("cargo:rustc-env=ADP_GIT_HASH={hash}");

    let build_time = match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(epoch) => match epoch.trim().parse::<i64>() {
            Ok(secs) => adp_fmt::Utc::from_unix(secs).rfc3339(),
            Err(_) => {
                println!("cargo:warning=ignoring SOURCE_DATE_EPOCH={epoch:?}: not an integer");
                "unknown".to_owned()
            }
        },
        Err(_) => "unknown".to_owned(),
    };
    println!("cargo:rustc-env=ADP_BUILD_TIME={build_time}");
}

fn is_short_hash(h: &str) -> bool {
    (7..=40).contains(&h.len()) && h.bytes().all(|b| b.is_ascii_hexdigit())
}

fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).current_dir(dir).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8(out.stdout).ok()?;
    Some(text.trim().to_owned()).filter(|t| !t.is_empty())
}

/// The short hash of HEAD, re-read whenever HEAD or the branch it points at moves.
fn git_hash(dir: &Path) -> Option<String> {
    let git_dir = PathBuf::from(git(dir, &["rev-parse", "--absolute-git-dir"])?);
    let head = git_dir.join("HEAD");
    if head.exists() {
        println!("cargo:rerun-if-changed={}", head.display());
    }
    if let Some(branch) = git(dir, &["symbolic-ref", "-q", "HEAD"]) {
        let branch_ref = git_dir.join(branch);
        if branch_ref.exists() {
            println!("cargo:rerun-if-changed={}", branch_ref.display());
        }
        // Branches may live only in packed-refs after `git gc`.
        let packed = git_dir.join("packed-refs");
        if packed.exists() {
            println!("cargo:rerun-if-changed={}", packed.display());
        }
    }
    git(dir, &["rev-parse", "--short", "HEAD"]).filter(|h| is_short_hash(h))
}
