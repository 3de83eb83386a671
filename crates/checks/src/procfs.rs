//! Reading /proc and /sys cheaply: one reused buffer per check, paths built
//! once, numbers parsed from borrowed slices.

use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::check::CheckError;

/// The roots the checks read, injectable so that tests run on fixture trees.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Roots {
    /// `/proc`.
    pub proc: PathBuf,
    /// `/sys`.
    pub sys: PathBuf,
    /// `/dev` (for `/dev/disk/by-label`).
    pub dev: PathBuf,
}

impl Default for Roots {
    fn default() -> Self {
        Roots {
            proc: "/proc".into(),
            sys: "/sys".into(),
            dev: "/dev".into(),
        }
    }
}

impl Roots {
    /// All three under one directory (`<base>/proc`, `<base>/sys`,
    /// `<base>/dev`), as fixture trees are laid out.
    pub fn under(base: &Path) -> Self {
        Roots {
            proc: base.join("proc"),
            sys: base.join("sys"),
            dev: base.join("dev"),
        }
    }
}

/// A file reader that keeps its buffer between runs.
#[derive(Debug, Default)]
pub(crate) struct Reader {
    buf: String,
}

impl Reader {
    pub(crate) fn with_capacity(capacity: usize) -> Self {
        Reader {
            buf: String::with_capacity(capacity),
        }
    }

    /// Reads the whole file; the text borrows the reused buffer.
    pub(crate) fn read(&mut self, path: &Path) -> io::Result<&str> {
        self.buf.clear();
        std::fs::File::open(path)?.read_to_string(&mut self.buf)?;
        Ok(&self.buf)
    }

    /// [`Reader::read`] for a file the run cannot do without: failing to
    /// read it fails the run.
    pub(crate) fn read_required(&mut self, path: &Path) -> Result<&str, CheckError> {
        self.read(path).map_err(|e| CheckError::read(path, e))
    }
}

/// The logical CPUs in `/proc/cpuinfo`: its `processor : N` lines.
pub(crate) fn count_processors(cpuinfo: &str) -> u32 {
    cpuinfo
        .lines()
        .filter(|l| {
            l.split_once(':')
                .is_some_and(|(k, v)| k.trim() == "processor" && v.trim().parse::<u32>().is_ok())
        })
        .count() as u32
}

/// One line of `/proc/diskstats`: the device name and its first 11 counters.
/// `None` for a line with fewer than 11 counters and for a device without
/// any activity (all zero), which gopsutil skips too.
pub(crate) fn diskstats_line(line: &str) -> Option<(&str, [u64; 11])> {
    let mut fields = line.split_ascii_whitespace();
    let name = fields.nth(2)?;
    let mut values = [0u64; 11];
    let mut n = 0;
    for (slot, v) in values.iter_mut().zip(fields) {
        *slot = u64_of(v).unwrap_or(0);
        n += 1;
    }
    (n == 11 && values.iter().any(|v| *v != 0)).then_some((name, values))
}

/// The values of the named counters in `/proc/vmstat` (`None` where a name
/// is missing or its value is not a number).
pub(crate) fn vmstat_values<const N: usize>(vmstat: &str, names: [&str; N]) -> [Option<u64>; N] {
    let mut values = [None; N];
    for line in vmstat.lines() {
        let mut f = line.split_ascii_whitespace();
        if let (Some(name), Some(v)) = (f.next(), f.next().and_then(u64_of)) {
            if let Some(i) = names.iter().position(|n| *n == name) {
                values[i] = Some(v);
            }
        }
    }
    values
}

/// Parses an unsigned decimal number.
pub(crate) fn u64_of(s: &str) -> Option<u64> {
    s.parse().ok()
}

/// The run's error for a file it read but could not make sense of.
pub(crate) fn malformed(path: &Path, why: impl std::fmt::Display) -> CheckError {
    let e = io::Error::new(
        io::ErrorKind::InvalidData,
        format!("unexpected format of {}: {why}", path.display()),
    );
    CheckError::read(path, e)
}

/// A raw kernel counter followed from run to run, turned into the Agent's
/// check-sampler values.
#[derive(Debug, Clone, Copy, Default)]
pub struct Counter {
    last: Option<(u64, Instant)>,
}

impl Counter {
    /// The Agent's `Rate`: the increase per second since the previous sample.
    /// `None` on the first sample, when no time passed, and when the counter
    /// went down (the Agent discards negative rates: the counter was reset or
    /// wrapped).
    pub fn rate(&mut self, value: u64, at: Instant) -> Option<f64> {
        let (prev, prev_at) = self.last.replace((value, at))?;
        let seconds = at.checked_duration_since(prev_at)?.as_secs_f64();
        (seconds > 0.0 && value >= prev).then(|| (value - prev) as f64 / seconds)
    }

    /// The Agent's `MonotonicCount`: the increase since the previous sample;
    /// `None` on the first sample, 0 when the counter went down (the Agent
    /// ignores a lower sample and flushes 0).
    pub fn delta(&mut self, value: u64, at: Instant) -> Option<f64> {
        let (prev, _) = self.last.replace((value, at))?;
        Some(value.checked_sub(prev).map_or(0.0, |d| d as f64))
    }
}

/// The increase of a kernel counter that may have wrapped, as the Agent's io
/// check computes it: a counter below its last value wrapped at 2³² when the
/// last value fit in 32 bits (`unsigned long` on a 32-bit kernel, and some
/// fields even on 64-bit ones), at 2⁶⁴ otherwise.
pub fn increment_with_overflow(current: u64, last: u64) -> u64 {
    if current >= last {
        current - last
    } else if last <= u64::from(u32::MAX) {
        current.wrapping_add(u64::from(u32::MAX) - last).wrapping_add(1)
    } else {
        current.wrapping_sub(last)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn rates_need_two_samples_and_drop_decreases() {
        let t0 = Instant::now();
        let mut c = Counter::default();
        assert_eq!(c.rate(100, t0), None);
        assert_eq!(c.rate(400, t0 + Duration::from_secs(15)), Some(20.0));
        assert_eq!(c.rate(400, t0 + Duration::from_secs(15)), None, "no time passed");
        assert_eq!(c.rate(10, t0 + Duration::from_secs(30)), None, "reset");
        assert_eq!(c.rate(40, t0 + Duration::from_secs(45)), Some(2.0));
    }

    #[test]
    fn monotonic_counts_are_deltas_and_zero_after_a_reset() {
        let t0 = Instant::now();
        let mut c = Counter::default();
        assert_eq!(c.delta(7, t0), None);
        assert_eq!(c.delta(10, t0), Some(3.0));
        assert_eq!(c.delta(2, t0), Some(0.0));
        assert_eq!(c.delta(5, t0), Some(3.0));
    }

    #[test]
    fn counters_near_the_u64_limit_keep_their_precision() {
        let t0 = Instant::now();
        let mut c = Counter::default();
        let near = u64::MAX - 1_000;
        c.rate(near, t0);
        // As f64 both values round to 2^64; the difference is taken in u64.
        assert_eq!(c.rate(near + 500, t0 + Duration::from_secs(5)), Some(100.0));
        let mut d = Counter::default();
        d.delta(near, t0);
        assert_eq!(d.delta(u64::MAX, t0), Some(1_000.0));
    }

    #[test]
    fn io_counters_wrap_at_32_bits_when_they_were_32_bit_values() {
        assert_eq!(increment_with_overflow(10, 4), 6);
        // A 32-bit kernel counter wrapped: 0xFFFF_FFF0 → 0x10 is 0x20 later.
        assert_eq!(increment_with_overflow(0x10, 0xFFFF_FFF0), 0x20);
        // A 64-bit counter wrapped.
        assert_eq!(increment_with_overflow(5, u64::MAX - 4), 10);
    }
}
