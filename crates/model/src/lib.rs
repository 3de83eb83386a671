//! The values that cross the Agent Data Plane's stages, and nothing else: no
//! parsing, no I/O, no configuration.
//!
//! ```text
//! adp-dogstatsd ──MetricBatch, Event, ServiceCheck──▶ adp-aggregate ──FlushSink──▶ adp-encoder
//!                 └──────────── Event, ServiceCheck ──────────────────────────────▶
//! ```
//!
//! - A [`MetricBatch`] is what the decoder hands the aggregator: samples
//!   ([`Sample`], of a [`MetricKind`]) whose context ([`ContextRef`]) is a
//!   name and tags copied into the batch's text with their [`context_key`].
//!   Contexts are resolved by the aggregator, not here.
//! - [`Event`] and [`ServiceCheck`] are owned, as decoded.
//! - A flush writes [`SeriesView`]s (of a [`SeriesKind`]) and sketches,
//!   borrowed from the aggregator's store, into a [`FlushSink`]: the
//!   encoder's, or [`Flushed`], which keeps owned [`Series`] and
//!   [`SketchSeries`] with their [`Context`] (for tests, and for sources that
//!   build series themselves).
//!
//! Each stage depends on this crate rather than on the stage before it, so
//! the encoder compiles without the DogStatsD listeners and the aggregator
//! without the codec.
//!
//! # Missing
//!
//! - No origin (container) tags on any value: the listeners capture sender
//!   credentials, but nothing resolves them (see `adp-dogstatsd`).
#![deny(missing_docs)]

mod batch;
mod context;
mod event;
mod metric;
mod series;

pub use batch::{BatchMark, ContextRef, MetricBatch, Sample};
pub use context::{context_key, Context};
pub use event::{Event, EventAlertType, EventPriority, ServiceCheck, ServiceCheckStatus};
pub use metric::MetricKind;
pub use series::{FlushSink, Flushed, Series, SeriesKind, SeriesView, SketchSeries};
