//! The `file_handle` check (`pkg/collector/corechecks/system/filehandles`):
//! from `/proc/sys/fs/file-nr` (allocated, allocated but unused, maximum),
//! gauges `system.fs.file_handles.{allocated,allocated_unused,in_use,used,max}`
//! where `used` = allocated − unused and `in_use` = used / max (0–1).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use crate::check::{Check, CheckError};
use crate::output::Emitter;
use crate::procfs::{malformed, Reader, Roots};

/// The file_handle check.
#[derive(Debug)]
pub struct FileHandleCheck {
    path: PathBuf,
    reader: Reader,
    tags: Arc<[String]>,
}

impl FileHandleCheck {
    /// A file_handle check reading `roots.proc`.
    pub fn new(roots: &Roots, tags: Arc<[String]>) -> Self {
        FileHandleCheck {
            path: roots.proc.join("sys/fs/file-nr"),
            reader: Reader::with_capacity(64),
            tags,
        }
    }
}

impl Check for FileHandleCheck {
    fn name(&self) -> &'static str {
        "file_handle"
    }

    fn run(&mut self, out: &mut Emitter, _now: Instant) -> Result<(), CheckError> {
        let text = self.reader.read_required(&self.path)?;
        let mut fields = text.trim_end_matches('\n').split('\t');
        let mut next = || fields.next().and_then(|f| f.trim().parse::<f64>().ok());
        let (Some(allocated), Some(unused), Some(max), None) = (next(), next(), next(), next()) else {
            return Err(malformed(
                &self.path,
                format!("expected 3 tab-separated numbers, got {:?}", text.trim()),
            ));
        };
        let tags = &self.tags;
        out.gauge("system.fs.file_handles.allocated", allocated, tags);
        out.gauge("system.fs.file_handles.allocated_unused", unused, tags);
        out.gauge("system.fs.file_handles.in_use", (allocated - unused) / max, tags);
        out.gauge("system.fs.file_handles.used", allocated - unused, tags);
        out.gauge("system.fs.file_handles.max", max, tags);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{fixture, run, value};

    #[test]
    fn file_handles_in_use_is_a_fraction() {
        let dir = fixture(&[("proc/sys/fs/file-nr", "1200\t200\t100000\n")]);
        let mut check = FileHandleCheck::new(&Roots::under(dir.path()), Arc::from(Vec::new()));
        let out = run(&mut check, Instant::now());
        assert_eq!(value(&out, "system.fs.file_handles.used"), Some(1000.0));
        assert_eq!(value(&out, "system.fs.file_handles.in_use"), Some(0.01));
        assert_eq!(value(&out, "system.fs.file_handles.max"), Some(100_000.0));
    }

    #[test]
    fn a_malformed_file_nr_is_an_error() {
        let dir = fixture(&[("proc/sys/fs/file-nr", "1200 200\n")]);
        let mut check = FileHandleCheck::new(&Roots::under(dir.path()), Arc::from(Vec::new()));
        assert!(check.run(&mut Emitter::new(0, 8), Instant::now()).is_err());
    }

    #[test]
    fn the_live_file_nr_is_read() {
        let mut check = FileHandleCheck::new(&Roots::default(), Arc::from(Vec::new()));
        let out = run(&mut check, Instant::now());
        assert!(value(&out, "system.fs.file_handles.allocated").unwrap() > 0.0);
    }
}
