//! The packaging tool's one error type, and the file helpers that name the
//! path in every error.

use std::fs;
use std::path::{Path, PathBuf};

/// Why a build failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An input could not be read.
    #[error("cannot read {path}")]
    Read {
        /// The input.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// An output could not be written.
    #[error("cannot write {path}")]
    Write {
        /// The output.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// Assembling an archive failed.
    #[error(transparent)]
    Archive(#[from] crate::archive::ArchiveError),
    /// A runtime `.deb` could not be read.
    #[error(transparent)]
    Deb(#[from] crate::deb::DebError),
    /// The package's own `.deb` could not be written.
    #[error(transparent)]
    DebWrite(#[from] crate::deb::write::DebWriteError),
    /// The binary is not what the architecture needs.
    #[error(transparent)]
    Elf(#[from] crate::elf::ElfError),
    /// A `--rootfs-dir` could not be read.
    #[error(transparent)]
    Rootfs(#[from] crate::rootfs::RootfsError),
    /// The SBOM could not be made.
    #[error(transparent)]
    Sbom(#[from] crate::sbom::SbomError),
    /// An input is wrong; the message says which and what to do.
    #[error("{0}")]
    Input(String),
}

/// Reads a whole file.
pub fn read(path: &Path) -> Result<Vec<u8>, Error> {
    fs::read(path).map_err(|source| Error::Read {
        path: path.to_owned(),
        source,
    })
}

/// Writes a whole file, creating its parent directories.
pub fn write(path: &Path, bytes: &[u8]) -> Result<(), Error> {
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

/// Removes a directory tree if it exists (stale blobs from an earlier build
/// would otherwise survive in `oci/`).
pub fn remove_dir(path: &Path) -> Result<(), Error> {
    if path.exists() {
        fs::remove_dir_all(path).map_err(|source| Error::Write {
            path: path.to_owned(),
            source,
        })?;
    }
    Ok(())
}
