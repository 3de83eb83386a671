//! What an aggregator flush produces: [`Series`] for the v2 series endpoint
//! and [`SketchSeries`] for the sketches endpoint, written into a
//! [`FlushSink`] as borrowed views ([`SeriesView`]) so that an encoder can
//! write them into payloads straight from the aggregator's state; [`Flushed`]
//! is the sink that collects owned copies.

use std::convert::Infallible;

use ddsketch::AgentSketch;
use stringtheory::MetaString;

use crate::{context_key, Context};

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

/// One series of a flush, borrowed from the aggregator: `name` + `suffix` is
/// the metric name (a histogram's `.max` series shares its context's name).
#[derive(Clone, Debug)]
pub struct SeriesView<'a, T> {
    /// The context's metric name.
    pub name: &'a str,
    /// Appended to `name` (`.max`, `.95percentile`; empty for most series).
    pub suffix: &'a str,
    /// The context's tags, sorted and unique.
    pub tags: T,
    /// The intake type.
    pub kind: SeriesKind,
    /// The aggregation window in seconds (0 for timestamped metrics).
    pub interval_secs: u64,
    /// `(unix seconds, value)`, ascending by time.
    pub points: &'a [(i64, f64)],
}

/// Where an aggregator flush writes its series and sketches, one at a time
/// and borrowed: an encoder writes them into payloads, [`Flushed`] keeps
/// owned copies.
pub trait FlushSink {
    /// What a failing write returns (the flush stops there).
    type Error;

    /// One series.
    fn series<'t, T>(&mut self, series: SeriesView<'_, T>) -> Result<(), Self::Error>
    where
        T: Iterator<Item = &'t str> + Clone;

    /// The sketches of one distribution context, one per closed window
    /// (`(window start, sketch)`, ascending).
    fn sketches<'t, 's, T, P>(&mut self, name: &str, tags: T, interval_secs: u64, points: P) -> Result<(), Self::Error>
    where
        T: Iterator<Item = &'t str> + Clone,
        P: Iterator<Item = (i64, &'s AgentSketch)> + Clone;
}

/// An owned context from borrowed parts (sorted, unique tags).
fn owned_context<'a>(name: &str, tags: impl Iterator<Item = &'a str> + Clone) -> Context {
    Context::from_parts(
        context_key(name, tags.clone()),
        MetaString::from(name),
        tags.map(MetaString::from).collect(),
    )
}

impl FlushSink for Flushed {
    type Error = Infallible;

    fn series<'t, T>(&mut self, s: SeriesView<'_, T>) -> Result<(), Infallible>
    where
        T: Iterator<Item = &'t str> + Clone,
    {
        self.series.push(Series {
            name: MetaString::from(format!("{}{}", s.name, s.suffix)),
            context: owned_context(s.name, s.tags),
            kind: s.kind,
            interval_secs: s.interval_secs,
            points: s.points.to_vec(),
        });
        Ok(())
    }

    fn sketches<'t, 's, T, P>(&mut self, name: &str, tags: T, interval_secs: u64, points: P) -> Result<(), Infallible>
    where
        T: Iterator<Item = &'t str> + Clone,
        P: Iterator<Item = (i64, &'s AgentSketch)> + Clone,
    {
        self.sketches.push(SketchSeries {
            context: owned_context(name, tags),
            interval_secs,
            points: points.map(|(ts, s)| (ts, s.clone())).collect(),
        });
        Ok(())
    }
}
