//! Metric samples as the DogStatsD decoder produces them: one [`Metric`] per
//! value, with its resolved [`Context`].

use stringtheory::MetaString;

use crate::Context;

/// The DogStatsD metric types.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MetricKind {
    /// `c`: summed per window, sent as a rate.
    Count,
    /// `g`: last value per window.
    Gauge,
    /// `s`: distinct members per window.
    Set,
    /// `ms`: a histogram of milliseconds.
    Timer,
    /// `h`: client-side histogram aggregates.
    Histogram,
    /// `d`: a server-side sketch (DDSketch).
    Distribution,
}

/// One sample's value.
#[derive(Clone, Debug, PartialEq)]
pub enum MetricValue {
    /// A finite number (every kind but sets).
    Number(f64),
    /// A set member: the whole value field of an `s` message.
    SetMember(MetaString),
}

/// One decoded sample. A multi-value message (`name:1:2:3|d`) yields one
/// `Metric` per value, sharing the same [`Context`].
#[derive(Clone, Debug, PartialEq)]
pub struct Metric {
    /// Name and tags.
    pub context: Context,
    /// The metric type.
    pub kind: MetricKind,
    /// The value.
    pub value: MetricValue,
    /// Client-side sample rate in (0, 1], already clamped to the minimum. The
    /// aggregator weights the sample by `1 / sample_rate`. Timestamped counts
    /// carry 1.0 (the protocol says they ignore the sample rate).
    pub sample_rate: f64,
    /// `|T<unix seconds>`: a timestamped metric, passed through unaggregated.
    pub timestamp: Option<i64>,
}
