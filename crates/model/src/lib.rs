//! The values that cross the Agent Data Plane's stages, and nothing else: no
//! parsing, no I/O, no configuration.
//!
//! ```text
//! adp-dogstatsd ──Metric, Event, ServiceCheck──▶ adp-aggregate ──Flushed──▶ adp-encoder
//!                 └──────────── Event, ServiceCheck ─────────────────────────▶
//! ```
//!
//! - A [`Context`] is a metric's identity, its name and sorted, unique tags,
//!   with their [`context_key`]: the aggregator keys its state on it and the
//!   encoder takes the tags from it. Cloning one is an `Arc` clone, so every
//!   sample of a context shares one copy of its strings.
//! - [`Metric`] (one sample, of a [`MetricKind`], with a [`MetricValue`]),
//!   [`Event`] and [`ServiceCheck`] are what the DogStatsD decoder produces.
//! - [`Flushed`] is what an aggregator flush releases: [`Series`] (of a
//!   [`SeriesKind`]) and [`SketchSeries`].
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

mod context;
mod event;
mod metric;
mod series;

pub use context::{context_key, Context};
pub use event::{Event, EventAlertType, EventPriority, ServiceCheck, ServiceCheckStatus};
pub use metric::{Metric, MetricKind, MetricValue};
pub use series::{Flushed, Series, SeriesKind, SketchSeries};
