//! Time-window aggregation of DogStatsD metrics with the Datadog Agent's
//! semantics, producing the series and sketches the intake expects (both
//! in, [`Metric`](adp_model::Metric), and out, [`Flushed`](adp_model::Flushed),
//! are `adp-model` types).
//!
//! # Semantics
//!
//! Samples without a timestamp land in the window holding their arrival time.
//! Windows are `aggregate_window_duration_seconds` wide (10), aligned to
//! multiples of that width since the epoch, and every point carries its
//! window's start as timestamp. A window is *closed* once the clock has
//! reached the next one; [`Aggregator::flush`] releases every closed window
//! (all of them with `force`, at shutdown). Per context and window:
//!
//! | DogStatsD type | sent as |
//! |---|---|
//! | count `c` | RATE, `Σ value / rate` divided by the window, `interval = 10`; an idle counter sends 0 for each later window until `counter_expiry_seconds` (300) after its last sample |
//! | gauge `g` | GAUGE, the last value |
//! | set `s` | GAUGE, the number of distinct members |
//! | histogram `h`, timer `ms` | one series per `histogram_aggregates` entry (`<name>.max`, `.median`, `.avg`, `.count` as RATE, `.min`, `.sum`) and per `histogram_percentiles` entry (`<name>.95percentile`) |
//! | distribution `d` | one [`ddsketch::AgentSketch`] (a [`SketchSeries`](adp_model::SketchSeries) point) |
//!
//! Sample rates weight as in the Agent: counts by `1 / rate`; histograms by
//! `trunc(1 / rate)` in their count and rank statistics but `1 / rate` in
//! their sum; distributions like histograms, through
//! [`AgentSketch::insert_sampled`](ddsketch::AgentSketch::insert_sampled).
//! Counts and gauges with a `|T` timestamp are not aggregated: they leave at
//! the next flush with their own timestamp, counts as COUNT and gauges as
//! GAUGE, with no interval.
//!
//! A histogram series whose full name the blocklist names (the entries of
//! `statsd_metric_blocklist` or `metric_filterlist` ending in one of these
//! suffixes, given by the binary through
//! [`Aggregator::set_histogram_filter`]) is not sent; the histogram's other
//! series are. [`Aggregator::contexts`] lists what is held (for
//! `agent-data-plane dogstatsd top`).
//!
//! # Limits and telemetry
//!
//! At most `aggregate_context_limit` contexts are held; samples that would
//! open another are dropped. `adp_aggregate_contexts` (gauge),
//! `adp_aggregate_dropped_samples{reason}`,
//! `adp_aggregate_flushed_series_points` and
//! `adp_aggregate_flushed_sketch_points` report what happens.
//!
//! # Missing
//!
//! - Timestamped metrics are grouped per context until the next flush without
//!   a bound of their own (they do not count toward the context limit).
//! - A context with several types keeps one state per type class, where the
//!   Agent folds them into whichever type arrived first in the window.
//! - No `host` per series: the payload encoder adds the agent's hostname.
#![deny(missing_docs)]

mod aggregator;
pub mod config;

pub use aggregator::Aggregator;
pub use config::{AggregateConfig, ConfigError, HistogramAggregate, BYTES_PER_CONTEXT};
