//! The on-disk retry storage across kill -9, damaged files and size caps.
