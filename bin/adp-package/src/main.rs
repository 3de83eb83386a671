//! `adp-package` turns a built `agent-data-plane` into the release
//! artifacts, bit-for-bit reproducibly: per architecture the FHS tarball, the
//! `.deb`, the OCI image layout and its oci-archive, the SBOM, a provenance
//! statement and `SHA256SUMS` (`build`); then one release of every
//! architecture with a multi-platform OCI index (`release`).
//!
//! ```text
//! adp-package build --arch armv7 --binary target/.../agent-data-plane --debug-file adp.debug \
//!     --version 0.1.0 --revision $(git rev-parse HEAD) --source-date-epoch $(git log -1 --format=%ct) \
//!     --deb libc6_..._armhf.deb --deb libgcc-s1_..._armhf.deb --ca-deb ca-certificates_..._all.deb \
//!     --cargo-lock Cargo.lock --cargo-tree tree.txt --debs-lock packaging/debs.lock \
//!     --toolchain rustc-web:amd64=1.85.0+dfsg3-1~deb12u3 --packaging-dir packaging --license LICENSE \
//!     --out result-adp-armv7
//! adp-package release --input result-adp-armv7 --input result-adp-arm64 --input result-adp-amd64 \
//!     --out result-release
//! # The Nix flake: the runtime from a directory and a ready CA bundle.
//! adp-package build ... --rootfs-dir /nix/store/...-adp-armv7-rootfs \
//!     --ca-bundle /nix/store/...-nss-cacert-.../etc/ssl/certs/ca-bundle.crt ...
//! ```
//!
//! The same command is run by `checks/build-adp.sh` (Debian path) and by
//! the Nix flake (`nix/package.nix`), which has no `.deb`s: its glibc runtime
//! is a nixos store path laid out in a directory, and its CA bundle is
//! nixpkgs' `cacert`, so it passes `--rootfs-dir DIR --ca-bundle FILE` in
//! place of `--deb … --ca-deb …`. Nothing here reads the clock, the host's
//! users, the umask or the locale: every byte written is a function of the
//! inputs (for a directory: its paths, contents, link targets and whether a
//! file is executable).

#![deny(missing_docs)]

mod arch;
mod archive;
mod build;
mod deb;
mod elf;
mod error;
mod layout;
mod oci;
mod provenance;
mod release;
mod rootfs;
mod runtime;
mod sbom;
mod util;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Command line.
#[derive(Parser, Debug)]
#[command(name = "adp-package", version, about = "Reproducible packaging of agent-data-plane")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// One architecture: the tarball, .deb, OCI layout, oci-archive, debug file, provenance and SHA256SUMS.
    Build(Box<build::BuildArgs>),
    /// One release from every architecture's build: a multi-platform OCI index, provenance, SHA256SUMS.
    Release(release::ReleaseArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match &cli.command {
        Command::Build(args) => build::build(args),
        Command::Release(args) => release::release(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            // Each error says its own part once; the causes follow it.
            eprintln!("adp-package: {}", adp_fmt::error_chain(&err));
            ExitCode::FAILURE
        }
    }
}
