//! The DogStatsD metric types.

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
