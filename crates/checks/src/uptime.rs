//! The `uptime` check (`pkg/collector/corechecks/system/uptime`): gauge
//! `system.uptime`, whole seconds since boot.
//!
//! The Agent computes it as now − `btime` (gopsutil caches `btime` from
//! `/proc/stat`); this reads `/proc/uptime` (CLOCK_BOOTTIME) instead, which
//! gives the same whole seconds but stays right when the wall clock jumps —
//! as it does on a board without a real-time clock when NTP sets the time.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use crate::check::{Check, CheckError};
use crate::output::Emitter;
use crate::procfs::{malformed, Reader, Roots};

/// The uptime check.
#[derive(Debug)]
pub struct UptimeCheck {
    path: PathBuf,
    reader: Reader,
    tags: Arc<[String]>,
}

impl UptimeCheck {
    /// An uptime check reading `roots.proc`.
    pub fn new(roots: &Roots, tags: Arc<[String]>) -> Self {
        UptimeCheck {
            path: roots.proc.join("uptime"),
            reader: Reader::with_capacity(64),
            tags,
        }
    }
}

impl Check for UptimeCheck {
    fn name(&self) -> &'static str {
        "uptime"
    }

    fn run(&mut self, out: &mut Emitter, _now: Instant) -> Result<(), CheckError> {
        let text = self.reader.read_required(&self.path)?;
        let seconds = text
            .split_ascii_whitespace()
            .next()
            .and_then(|s| s.parse::<f64>().ok())
            .ok_or_else(|| malformed(&self.path, "expected seconds since boot"))?;
        out.gauge("system.uptime", seconds.trunc(), &self.tags);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{first_number_in, fixture, run, value};

    #[test]
    fn uptime_is_whole_seconds() {
        let dir = fixture(&[("proc/uptime", "350735.47 234388.90\n")]);
        let mut check = UptimeCheck::new(&Roots::under(dir.path()), Arc::from(Vec::new()));
        assert_eq!(
            value(&run(&mut check, Instant::now()), "system.uptime"),
            Some(350_735.0)
        );
    }

    #[test]
    fn the_live_uptime_matches_proc_uptime() {
        let mut check = UptimeCheck::new(&Roots::default(), Arc::from(Vec::new()));
        let got = value(&run(&mut check, Instant::now()), "system.uptime").unwrap();
        let proc = first_number_in("/proc/uptime");
        assert!(
            (got - proc).abs() <= 5.0,
            "system.uptime = {got}, /proc/uptime = {proc}"
        );
    }
}
