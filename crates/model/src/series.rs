//! What an aggregator flush produces: [`Series`] for the v2 series endpoint
//! and [`SketchSeries`] for the sketches endpoint.

use ddsketch::AgentSketch;
use stringtheory::MetaString;

use crate::Context;

/// The intake's metric type of a series (`MetricType` in the v2 protobuf).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SeriesKind {
    /// A count over the point's interval (timestamped DogStatsD counts).
    Count,
    /// A per-second rate over `interval_secs` (aggregated counts and
    /// histogram `.count`); `value × interval` recovers the count.
    Rate,
    /// A value at a point in time.
    Gauge,
}

/// One series: a metric name, the tags of its context, a type and points.
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    /// The metric name; for histograms and timers the context's name plus a
    /// suffix such as `.max` or `.95percentile`.
    pub name: MetaString,
    /// The context the series came from; encoders take the tags from it.
    pub context: Context,
    /// The intake type.
    pub kind: SeriesKind,
    /// The aggregation window in seconds (0 for timestamped metrics, which
    /// were not aggregated).
    pub interval_secs: u64,
    /// `(unix seconds, value)`, ascending by time: the window starts for
    /// aggregated metrics, the client's timestamps for timestamped ones.
    pub points: Vec<(i64, f64)>,
}

/// The sketches of one distribution context, one per closed window.
#[derive(Clone, Debug, PartialEq)]
pub struct SketchSeries {
    /// The distribution's context (name and tags).
    pub context: Context,
    /// The aggregation window in seconds.
    pub interval_secs: u64,
    /// `(window start, sketch)`, ascending by time; never empty sketches.
    pub points: Vec<(i64, AgentSketch)>,
}

/// Everything one flush of the aggregator (`adp_aggregate::Aggregator::flush`)
/// releases.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Flushed {
    /// Counts, gauges, sets, histogram/timer aggregates and timestamped
    /// metrics.
    pub series: Vec<Series>,
    /// Distributions.
    pub sketches: Vec<SketchSeries>,
}

impl Flushed {
    /// Whether nothing was flushed.
    pub fn is_empty(&self) -> bool {
        self.series.is_empty() && self.sketches.is_empty()
    }

    /// The number of series points plus sketch points.
    pub fn point_count(&self) -> u64 {
        let series: usize = self.series.iter().map(|s| s.points.len()).sum();
        let sketches: usize = self.sketches.iter().map(|s| s.points.len()).sum();
        series as u64 + sketches as u64
    }
}
