//! [`AggregateConfig`]: the aggregator's settings, under the Datadog Agent's
//! key names, and their validation.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use adp_config::{key, parse, ConfigValue, MemoryBounds, Raw, Reader};

/// Bytes one aggregation context holds, for the memory bounds: its slot in
/// the context store (windows inline), its id list, its index entry and its
/// share of the strings past the interner. Measured, not derived, and before
/// the context store (issue #16): `make bench` (churn) reached the default
/// limit of 1,000,000 short-named counters at 475 MiB RSS, ~500 bytes each;
/// the store's own accounting is about 115 bytes for such a context, so this
/// is kept as a conservative bound until the churn run is repeated. A
/// histogram window holds its samples and can exceed it.
pub const BYTES_PER_CONTEXT: u64 = 500;

/// A summary statistic sent for every histogram and timer context
/// (`histogram_aggregates`), as series `<name>.<aggregate>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum HistogramAggregate {
    /// `<name>.max`: the largest sample (GAUGE).
    Max,
    /// `<name>.min`: the smallest sample (GAUGE).
    Min,
    /// `<name>.median`: the sample at weighted rank `(count − 1) / 2` (GAUGE).
    Median,
    /// `<name>.avg`: the weighted mean, `sum / count` (GAUGE).
    Avg,
    /// `<name>.sum`: the sample-rate-weighted sum (GAUGE).
    Sum,
    /// `<name>.count`: the sample-rate-weighted number of samples per second
    /// of the window (RATE).
    Count,
}

impl HistogramAggregate {
    /// Every aggregate, in the order the Agent documents them.
    pub const ALL: [Self; 6] = [Self::Max, Self::Min, Self::Median, Self::Avg, Self::Sum, Self::Count];

    /// The configuration spelling, which is also the series name suffix
    /// without its dot.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Max => "max",
            Self::Min => "min",
            Self::Median => "median",
            Self::Avg => "avg",
            Self::Sum => "sum",
            Self::Count => "count",
        }
    }
}

impl fmt::Display for HistogramAggregate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl ConfigValue for HistogramAggregate {
    fn show(&self) -> serde_json::Value {
        serde_json::Value::from(self.as_str())
    }
}

impl FromStr for HistogramAggregate {
    type Err = ConfigError;

    /// Parses `max`, `min`, `median`, `avg`, `sum` or `count` (ASCII case
    /// ignored).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|a| a.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| ConfigError::UnknownHistogramAggregate(s.to_owned()))
    }
}

/// Why an [`AggregateConfig`] cannot be used.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The window is zero seconds wide.
    #[error("aggregate_window_duration_seconds is 0; set it to a window width of at least 1 second (default 10)")]
    ZeroWindow,
    /// The flush interval is zero.
    #[error("aggregate_flush_interval is 0; set it to a positive duration (default 15s)")]
    ZeroFlushInterval,
    /// The context limit is zero, which would drop every sample.
    #[error("aggregate_context_limit is 0, which would drop every metric; set it to at least 1 (default 1000000)")]
    ZeroContextLimit,
    /// A percentile is outside `[0, 1]` or not a number.
    #[error("histogram_percentiles contains {0}; each percentile must be a number between 0 and 1, such as 0.95")]
    PercentileOutOfRange(f64),
    /// An aggregate name is not one of the six the Agent knows.
    #[error("histogram_aggregates contains {0:?}; valid aggregates are max, min, median, avg, sum and count")]
    UnknownHistogramAggregate(String),
}

/// How the aggregator windows, limits and summarises metrics. Field names are
/// the Datadog Agent's configuration keys.
#[derive(Clone, Debug, PartialEq)]
pub struct AggregateConfig {
    /// Width of an aggregation window in seconds. Windows are aligned to
    /// multiples of this width since the Unix epoch, and every point carries
    /// its window's start as timestamp; it is also the `interval` of the
    /// RATE series that counts become. Must be at least 1. Defaults to 10.
    pub aggregate_window_duration_seconds: u64,
    /// How often the caller should flush closed windows. The aggregator does
    /// not keep time itself; the pipeline's flush timer uses this. Must be
    /// positive. Defaults to 15 s.
    pub aggregate_flush_interval: Duration,
    /// The most contexts (name + tags + metric type) held at once, across all
    /// unflushed windows and idle counters. Samples that would create a
    /// context beyond the limit are dropped and counted. Must be at least 1.
    /// Defaults to 1,000,000.
    pub aggregate_context_limit: u64,
    /// How long an idle counter keeps reporting 0, in seconds since its last
    /// sample: a zero is sent for every closed window that starts less than
    /// this long after the last update. 0 disables the zeros. Defaults to 300.
    pub counter_expiry_seconds: u64,
    /// The series sent for each histogram and timer context. Duplicates are
    /// ignored; an empty list sends only percentiles. Defaults to max,
    /// median, avg, count.
    pub histogram_aggregates: Vec<HistogramAggregate>,
    /// The percentile series sent for each histogram and timer context, as
    /// fractions in `[0, 1]`: 0.95 becomes `<name>.95percentile` (rounded to
    /// whole percents, as the Agent does). Empty sends none. Defaults to 0.95.
    pub histogram_percentiles: Vec<f64>,
}

impl Default for AggregateConfig {
    fn default() -> Self {
        Self {
            aggregate_window_duration_seconds: 10,
            aggregate_flush_interval: Duration::from_secs(15),
            aggregate_context_limit: 1_000_000,
            counter_expiry_seconds: 300,
            histogram_aggregates: vec![
                HistogramAggregate::Max,
                HistogramAggregate::Median,
                HistogramAggregate::Avg,
                HistogramAggregate::Count,
            ],
            histogram_percentiles: vec![0.95],
        }
    }
}

impl AggregateConfig {
    /// Reads the aggregator's keys; out-of-range values are reported by `r`.
    pub fn read(r: &mut Reader) -> Self {
        let d = Self::default();
        Self {
            aggregate_window_duration_seconds: r.get(
                key!("aggregate_window_duration_seconds"),
                d.aggregate_window_duration_seconds,
                parse::integer(1, 3600),
            ),
            aggregate_flush_interval: r.get(
                key!("aggregate_flush_interval"),
                d.aggregate_flush_interval,
                parse::duration(Duration::from_millis(10)),
            ),
            aggregate_context_limit: r.get(
                key!("aggregate_context_limit"),
                d.aggregate_context_limit,
                parse::integer(1, u64::from(u32::MAX)),
            ),
            counter_expiry_seconds: r.get(
                key!("counter_expiry_seconds").aliases(&["dogstatsd_expiry_seconds"]),
                d.counter_expiry_seconds,
                parse::integer(0, 86_400),
            ),
            histogram_aggregates: r.get(key!("histogram_aggregates"), d.histogram_aggregates, aggregates),
            histogram_percentiles: r.get(key!("histogram_percentiles"), d.histogram_percentiles, percentiles),
        }
    }

    /// At most `aggregate_context_limit` contexts of [`BYTES_PER_CONTEXT`].
    pub fn memory_bounds(&self) -> MemoryBounds {
        MemoryBounds {
            component: "aggregator",
            minimum: 0,
            firm: self.aggregate_context_limit.saturating_mul(BYTES_PER_CONTEXT),
            key: "aggregate_context_limit",
        }
    }

    /// Checks every field, naming the key to fix on error.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.aggregate_window_duration_seconds == 0 {
            return Err(ConfigError::ZeroWindow);
        }
        if self.aggregate_flush_interval.is_zero() {
            return Err(ConfigError::ZeroFlushInterval);
        }
        if self.aggregate_context_limit == 0 {
            return Err(ConfigError::ZeroContextLimit);
        }
        if let Some(&p) = self.histogram_percentiles.iter().find(|p| !(0.0..=1.0).contains(*p)) {
            return Err(ConfigError::PercentileOutOfRange(p));
        }
        Ok(())
    }

    /// The percentiles as whole percents (`int(p·100 + 0.5)`, the Agent's
    /// rounding, so 0.29 is 29 and not 28), sorted and deduplicated.
    pub(crate) fn percents(&self) -> Vec<u8> {
        let mut percents: Vec<u8> = self
            .histogram_percentiles
            .iter()
            .filter(|p| (0.0..=1.0).contains(*p))
            // In 0.5..=100.5 before truncation, so it fits.
            .map(|p| (p * 100.0 + 0.5) as u8)
            .collect();
        percents.sort_unstable();
        percents.dedup();
        percents
    }

    /// The aggregates without duplicates, in configured order.
    pub(crate) fn aggregates(&self) -> Vec<HistogramAggregate> {
        let mut out: Vec<HistogramAggregate> = Vec::with_capacity(self.histogram_aggregates.len());
        for &a in &self.histogram_aggregates {
            if !out.contains(&a) {
                out.push(a);
            }
        }
        out
    }
}

/// `histogram_aggregates`: any of the six, case-insensitive, duplicates dropped.
fn aggregates(raw: Raw<'_>) -> Result<Vec<HistogramAggregate>, String> {
    let expected = || {
        format!(
            "a list of: {}",
            HistogramAggregate::ALL.map(HistogramAggregate::as_str).join(", ")
        )
    };
    let mut out = Vec::new();
    for item in parse::list(raw).map_err(|_| expected())? {
        let a: HistogramAggregate = item.parse().map_err(|_| expected())?;
        if !out.contains(&a) {
            out.push(a);
        }
    }
    Ok(out)
}

/// `histogram_percentiles`: numbers in (0, 1), as YAML numbers or strings
/// ("0.95"), rounded to two decimals like the Agent, duplicates dropped.
fn percentiles(raw: Raw<'_>) -> Result<Vec<f64>, String> {
    const EXPECTED: &str = "a list of percentiles between 0 and 1 exclusive, e.g. [\"0.95\", \"0.99\"]";
    let mut out = Vec::new();
    for item in parse::list(raw).map_err(|_| EXPECTED.to_owned())? {
        let p: f64 = item.trim().parse().map_err(|_| EXPECTED.to_owned())?;
        let p = (p * 100.0).round() / 100.0;
        if !(p > 0.0 && p < 1.0) {
            return Err(EXPECTED.to_owned());
        }
        if !out.contains(&p) {
            out.push(p);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    adp_config::test_read!(AggregateConfig);

    #[test]
    fn keys_are_read_with_agent_names_aliases_and_lists() {
        assert_eq!(read("", &[]).unwrap(), AggregateConfig::default());
        let c = read(
            "dogstatsd_expiry_seconds: 30\nhistogram_percentiles: ['0.5', 0.95, '0.95', 0.991]\n",
            &[
                ("DD_HISTOGRAM_AGGREGATES", "max  MIN sum max"),
                ("DD_AGGREGATE_FLUSH_INTERVAL", "250ms"),
            ],
        )
        .unwrap();
        assert_eq!(c.counter_expiry_seconds, 30, "the Agent's older name is read too");
        assert_eq!(
            c.histogram_aggregates,
            [
                HistogramAggregate::Max,
                HistogramAggregate::Min,
                HistogramAggregate::Sum
            ]
        );
        assert_eq!(
            c.histogram_percentiles,
            [0.5, 0.95, 0.99],
            "rounded to two decimals, deduplicated"
        );
        assert_eq!(c.aggregate_flush_interval, Duration::from_millis(250));
        c.validate().unwrap();
    }

    #[test]
    fn percentiles_outside_zero_to_one_and_unknown_aggregates_are_rejected_once_each() {
        let errors = invalid(
            "",
            &[
                ("DD_HISTOGRAM_PERCENTILES", "0.95 0.999"),
                ("DD_HISTOGRAM_AGGREGATES", "max p50"),
            ],
        );
        assert_eq!(errors.len(), 2);
        assert_eq!(errors[0].key, "histogram_aggregates");
        assert_eq!(errors[0].expected, "a list of: max, min, median, avg, sum, count");
        assert_eq!(errors[1].key, "histogram_percentiles");
    }

    #[test]
    fn memory_bounds_follow_the_context_limit_in_u64() {
        let c = AggregateConfig {
            aggregate_context_limit: 4_000_000_000,
            ..AggregateConfig::default()
        };
        assert_eq!(
            c.memory_bounds().firm,
            4_000_000_000 * BYTES_PER_CONTEXT,
            "above 4 GiB, exact"
        );
    }

    #[test]
    fn defaults_are_the_agents() {
        let c = AggregateConfig::default();
        assert_eq!(c.aggregate_window_duration_seconds, 10);
        assert_eq!(c.aggregate_flush_interval, Duration::from_secs(15));
        assert_eq!(c.aggregate_context_limit, 1_000_000);
        assert_eq!(c.counter_expiry_seconds, 300);
        assert_eq!(
            c.aggregates().iter().map(|a| a.as_str()).collect::<Vec<_>>(),
            ["max", "median", "avg", "count"]
        );
        assert_eq!(c.percents(), [95]);
        assert_eq!(c.validate(), Ok(()));
    }

    #[test]
    fn invalid_fields_name_their_key() {
        let bad = |f: fn(&mut AggregateConfig)| {
            let mut c = AggregateConfig::default();
            f(&mut c);
            c.validate().unwrap_err()
        };
        assert_eq!(
            bad(|c| c.aggregate_window_duration_seconds = 0),
            ConfigError::ZeroWindow
        );
        assert_eq!(
            bad(|c| c.aggregate_flush_interval = Duration::ZERO),
            ConfigError::ZeroFlushInterval
        );
        assert_eq!(bad(|c| c.aggregate_context_limit = 0), ConfigError::ZeroContextLimit);
        assert_eq!(
            bad(|c| c.histogram_percentiles = vec![0.5, 1.5]),
            ConfigError::PercentileOutOfRange(1.5)
        );
        let nan = bad(|c| c.histogram_percentiles = vec![f64::NAN]);
        assert!(matches!(nan, ConfigError::PercentileOutOfRange(p) if p.is_nan()));
        assert!(bad(|c| c.aggregate_context_limit = 0)
            .to_string()
            .contains("aggregate_context_limit"));
        assert!(bad(|c| c.histogram_percentiles = vec![2.0])
            .to_string()
            .starts_with("histogram_percentiles contains 2;"));
    }

    #[test]
    fn percentiles_round_like_the_agent_and_deduplicate() {
        let c = AggregateConfig {
            histogram_percentiles: vec![0.99, 0.29, 0.5, 0.95, 0.951, 0.0, 1.0],
            ..AggregateConfig::default()
        };
        assert_eq!(c.percents(), [0, 29, 50, 95, 99, 100]);
    }

    #[test]
    fn aggregates_parse_case_insensitively_and_deduplicate() {
        assert_eq!("Median".parse::<HistogramAggregate>(), Ok(HistogramAggregate::Median));
        assert_eq!(" sum ".parse::<HistogramAggregate>(), Ok(HistogramAggregate::Sum));
        let err = "p99".parse::<HistogramAggregate>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "histogram_aggregates contains \"p99\"; valid aggregates are max, min, median, avg, sum and count"
        );
        let c = AggregateConfig {
            histogram_aggregates: vec![
                HistogramAggregate::Sum,
                HistogramAggregate::Max,
                HistogramAggregate::Sum,
            ],
            ..AggregateConfig::default()
        };
        assert_eq!(c.aggregates(), [HistogramAggregate::Sum, HistogramAggregate::Max]);
    }
}
