//! Fixture trees and output lookups for the checks' tests.

use std::time::Instant;

use crate::check::Check;
use crate::output::{CheckSeries, Emitter, MetricType};

/// A temporary tree with the given files (paths relative to its root).
pub(crate) fn fixture(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (rel, text) in files {
        let path = dir.path().join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    dir
}

/// The first whitespace-separated number in a live file (`/proc/uptime`,
/// `/proc/loadavg`), to compare a check's value with.
pub(crate) fn first_number_in(path: &str) -> f64 {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {path}: {e}"));
    let first = text.split_whitespace().next();
    first
        .and_then(|f| f.parse().ok())
        .unwrap_or_else(|| panic!("{path} does not start with a number: {text:?}"))
}

/// Runs the check once, panicking on error.
pub(crate) fn run(check: &mut dyn Check, now: Instant) -> Vec<CheckSeries> {
    let mut out = Emitter::new(1_700_000_000, 64);
    check
        .run(&mut out, now)
        .unwrap_or_else(|e| panic!("{} failed: {e}", check.name()));
    out.into_parts().0
}

/// The value of the only series named `name`.
pub(crate) fn value(series: &[CheckSeries], name: &str) -> Option<f64> {
    let found: Vec<&CheckSeries> = series.iter().filter(|s| s.name == name).collect();
    assert!(found.len() <= 1, "{name} sent {} times", found.len());
    found.first().map(|s| s.value)
}

/// The tags and values of every series named `name`.
pub(crate) fn values(series: &[CheckSeries], name: &str) -> Vec<(Vec<String>, f64)> {
    series
        .iter()
        .filter(|s| s.name == name)
        .map(|s| (s.tags.to_vec(), s.value))
        .collect()
}

/// The value of the series named `name` with `tag`.
pub(crate) fn tagged(series: &[CheckSeries], name: &str, tag: &str) -> Option<f64> {
    series
        .iter()
        .find(|s| s.name == name && s.tags.iter().any(|t| t == tag))
        .map(|s| s.value)
}

/// The type of the first series named `name`.
pub(crate) fn kind(series: &[CheckSeries], name: &str) -> Option<MetricType> {
    series.iter().find(|s| s.name == name).map(|s| s.metric_type)
}
