//! The context store and time-window aggregation of DogStatsD metrics with
//! the Datadog Agent's semantics: decoded samples in
//! ([`MetricBatch`](adp_model::MetricBatch)), and, at each flush, the series
//! and sketches the intake expects written into a
//! [`FlushSink`](adp_model::FlushSink) — the encoder's payload writer, or
//! [`Flushed`](adp_model::Flushed) for owned copies.
//!
//! # The context store
//!
//! A sample arrives with its context key already computed by the decoder
//! (name and tags, order-independent). The aggregator finds the context's
//! slot with one hash probe (none for the further values of the same
//! message); the slot holds the key, the offset of the context's name and
//! tag ids, and its windows inline. Only a context not seen before reads the
//! batch's strings: its tags are sorted and deduplicated and each distinct
//! string is stored once in a [`StringStore`](stringtheory::StringStore),
//! named by a 4-byte id whose reference count moves when a context is
//! created or removed, never per sample. Per context that is 64 bytes of
//! slot (windows included), `4 × (tags + 2)` bytes of ids, about 9 bytes of
//! index, plus its share of the distinct strings (each string costs 5–6
//! bytes of header and about 7 of index besides its bytes). The decoder keeps
//! no context cache: there is one place a context lives, and one memory
//! bound for all of them.
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
//! A new context is refused, and its samples dropped and counted in
//! `adp_aggregate_dropped_samples{reason}`, only when `aggregate_context_limit`
//! contexts are held (`context_limit`), when the memory limiter forbids
//! growth and no freed memory can hold it ([`Growth::ReuseOnly`],
//! `memory_limit`), or, with `dogstatsd_allow_context_heap_allocs: false`,
//! when the interner is full (`interner_full`); non-finite values are
//! `invalid_value`. Refusals are logged once per flush with their counts.
//! `adp_aggregate_contexts` (gauge), `adp_aggregate_flushed_series_points`
//! and `adp_aggregate_flushed_sketch_points` report the rest; the store:
//! `adp_context_strings`, `adp_context_string_bytes{storage="interner"|"heap"}`,
//! `adp_context_memory_bytes`, `adp_context_interner_fallback_strings` and
//! `_bytes` (strings that went to the heap); where the bytes go:
//! `adp_context_resident_bytes{part}` (strings, string_index, tag_lists,
//! slots, index) and `adp_context_value_bytes` (sketches, histogram samples
//! and set members, walked at the start of each flush).
//!
//! # Missing
//!
//! - Timestamped metrics wait per context until the next flush without a
//!   bound of their own on their points (their contexts count toward the
//!   context limit).
//! - Tag sets shared by many contexts are stored once per context (as id
//!   lists), not once per distinct set.
//! - A context with several types keeps one state per type class, where the
//!   Agent folds them into whichever type arrived first in the window.
//! - No `host` per series: the payload encoder adds the agent's hostname.
#![deny(missing_docs)]

mod aggregator;
pub mod config;

pub use aggregator::{unix_now, Aggregator, ContextMemory, FlushJob, Growth, ResidentParts};
pub use config::{AggregateConfig, ConfigError, HistogramAggregate, BYTES_PER_CONTEXT};
