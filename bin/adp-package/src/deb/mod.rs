//! Debian binary packages: reading the pinned runtime `.deb`s the image is
//! made of ([`read`]), and writing agent-data-plane's own `.deb` ([`write`])
//! with the reproducibility rules of every other artifact.

pub(crate) mod read;
pub mod write;

pub use read::{Deb, DebEntry, DebError};

#[cfg(test)]
pub(crate) use read::build_test_deb;
