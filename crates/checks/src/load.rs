//! The `load` check (`pkg/collector/corechecks/system/cpu/load`): gauges
//! `system.load.{1,5,15}` from `/proc/loadavg` and `system.load.norm.{1,5,15}`,
//! the same divided by the logical CPUs (counted once, at the first run, from
//! `/proc/cpuinfo`, as the Agent does when it configures the check).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use crate::check::{Check, CheckError};
use crate::output::Emitter;
use crate::procfs::{count_processors, malformed, Reader, Roots};

/// The load check.
#[derive(Debug)]
pub struct LoadCheck {
    loadavg: PathBuf,
    cpuinfo: PathBuf,
    reader: Reader,
    cpus: Option<f64>,
    tags: Arc<[String]>,
}

impl LoadCheck {
    /// A load check reading `roots.proc`.
    pub fn new(roots: &Roots, tags: Arc<[String]>) -> Self {
        LoadCheck {
            loadavg: roots.proc.join("loadavg"),
            cpuinfo: roots.proc.join("cpuinfo"),
            reader: Reader::with_capacity(128),
            cpus: None,
            tags,
        }
    }
}

impl Check for LoadCheck {
    fn name(&self) -> &'static str {
        "load"
    }

    fn run(&mut self, out: &mut Emitter, _now: Instant) -> Result<(), CheckError> {
        let cpus = match self.cpus {
            Some(n) => n,
            None => {
                let n = count_processors(self.reader.read_required(&self.cpuinfo)?);
                *self.cpus.insert(f64::from(n))
            }
        };
        let text = self.reader.read_required(&self.loadavg)?;
        let mut fields = text.split_ascii_whitespace().map(str::parse::<f64>);
        let (Some(Ok(l1)), Some(Ok(l5)), Some(Ok(l15))) = (fields.next(), fields.next(), fields.next()) else {
            return Err(malformed(&self.loadavg, "expected three load averages"));
        };
        let tags = &self.tags;
        out.gauge("system.load.1", l1, tags);
        out.gauge("system.load.5", l5, tags);
        out.gauge("system.load.15", l15, tags);
        out.gauge("system.load.norm.1", l1 / cpus, tags);
        out.gauge("system.load.norm.5", l5 / cpus, tags);
        out.gauge("system.load.norm.15", l15 / cpus, tags);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{first_number_in, fixture, run, value};

    #[test]
    fn load_averages_and_their_per_cpu_norms() {
        let dir = fixture(&[
            ("proc/loadavg", "0.80 1.20 2.00 3/210 4242\n"),
            (
                "proc/cpuinfo",
                "processor : 0\n\nprocessor : 1\n\nprocessor : 2\n\nprocessor : 3\n",
            ),
        ]);
        let mut check = LoadCheck::new(&Roots::under(dir.path()), Arc::from(Vec::new()));
        let out = run(&mut check, Instant::now());
        assert_eq!(value(&out, "system.load.1"), Some(0.8));
        assert_eq!(value(&out, "system.load.15"), Some(2.0));
        assert_eq!(value(&out, "system.load.norm.1"), Some(0.2));
        assert_eq!(value(&out, "system.load.norm.5"), Some(0.3));
    }

    #[test]
    fn the_live_load_matches_proc_loadavg() {
        let mut check = LoadCheck::new(&Roots::default(), Arc::from(Vec::new()));
        let out = run(&mut check, Instant::now());
        let proc = first_number_in("/proc/loadavg");
        let got = value(&out, "system.load.1").unwrap();
        assert!(
            (got - proc).abs() <= 0.5,
            "system.load.1 = {got}, /proc/loadavg = {proc}"
        );
    }
}
