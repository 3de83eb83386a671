//! The checks' keys of `datadog.yaml`, declared and read here (their one
//! owner) through the shared reader of `adp-config`.

use std::path::PathBuf;

use adp_config::{key, parse, MemoryBounds, Reader};

use crate::config::DEFAULT_CONFD_PATH;
use crate::procfs::Roots;

/// What the checks' buffers, per-device state and the batches waiting in the
/// output channel hold at most with the default checks on a board with a
/// few disks and interfaces (measured: about 200 KiB; see docs/benchmarks.md).
const FIRM_BYTES: u64 = 1 << 20;

/// Where the checks find their configuration and the system.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChecksSettings {
    /// `confd_path` (`DD_CONFD_PATH`): the directory of `<check>.d/conf.yaml`
    /// files. Defaults to `/etc/datadog-agent/conf.d`.
    pub confd_path: PathBuf,
    /// `procfs_path` (`DD_PROCFS_PATH`): where /proc is mounted (`/host/proc`
    /// for an agent in a container watching its host). Empty means `/proc`.
    /// Defaults to empty.
    pub procfs_path: Option<PathBuf>,
}

impl Default for ChecksSettings {
    fn default() -> Self {
        ChecksSettings {
            confd_path: PathBuf::from(DEFAULT_CONFD_PATH),
            procfs_path: None,
        }
    }
}

impl ChecksSettings {
    /// Reads the checks' keys.
    pub fn read(r: &mut Reader) -> Self {
        let d = Self::default();
        ChecksSettings {
            confd_path: r.get(key!("confd_path"), d.confd_path, parse::path),
            procfs_path: r.get(key!("procfs_path"), d.procfs_path, parse::optional_path),
        }
    }

    /// The roots the checks read.
    pub fn roots(&self) -> Roots {
        Roots {
            proc: self.procfs_path.clone().unwrap_or_else(|| PathBuf::from("/proc")),
            ..Roots::default()
        }
    }

    /// The checks' memory: nothing before they run; at most their buffers and
    /// a full output channel.
    pub fn memory_bounds(&self) -> MemoryBounds {
        MemoryBounds {
            component: "checks",
            minimum: 0,
            firm: FIRM_BYTES,
            key: "confd_path",
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use adp_config::Environment;

    use super::*;

    #[test]
    fn confd_and_procfs_paths_are_read_with_the_agents_defaults() {
        let mut r = Reader::from_env(Path::new("/etc/datadog-agent"), Environment::default());
        let s = ChecksSettings::read(&mut r);
        assert_eq!(s, ChecksSettings::default());
        assert_eq!(s.roots(), Roots::default());

        let mut r = Reader::from_env(
            Path::new("/etc/datadog-agent"),
            Environment::from_pairs([("DD_CONFD_PATH", "/tmp/conf.d"), ("DD_PROCFS_PATH", "/host/proc")]),
        );
        let s = ChecksSettings::read(&mut r);
        r.finish().unwrap();
        assert_eq!(s.confd_path, Path::new("/tmp/conf.d"));
        assert_eq!(s.roots().proc, Path::new("/host/proc"));
        assert_eq!(s.roots().sys, Path::new("/sys"));
    }
}
