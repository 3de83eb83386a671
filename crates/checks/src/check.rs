//! The check interface and its error type.

use std::io;
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::output::Emitter;

/// One configured instance of a system check.
pub trait Check: Send {
    /// The check's name (`cpu`, `disk`, …).
    fn name(&self) -> &'static str;

    /// One run: read the system and emit series into `out`. `now` is the
    /// run's monotonic time, used for rates.
    fn run(&mut self, out: &mut Emitter, now: Instant) -> Result<(), CheckError>;

    /// Whether a run waits on the network (ntp), so the runner keeps it away
    /// from the checks that only read /proc.
    fn waits_on_network(&self) -> bool {
        false
    }
}

/// Why a check run failed. The runner logs it once and counts it; the check
/// runs again at its next interval.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    /// A file of /proc or /sys could not be read.
    #[error("could not read {} (is /proc mounted and readable by the agent's user?)", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// The check could not collect anything for another reason.
    #[error("{0}")]
    Failed(String),
}

impl CheckError {
    pub(crate) fn read(path: &Path, source: io::Error) -> Self {
        CheckError::Read {
            path: path.to_owned(),
            source,
        }
    }
}
