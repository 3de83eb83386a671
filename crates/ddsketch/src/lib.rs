//! The Datadog Agent's DDSketch (`pkg/quantile`), the sketch that DogStatsD
//! distributions are aggregated into and sent to the intake as `Dogsketch`es.
//!
//! # Why not `sketches-ddsketch`
//!
//! The intake merges sketches from every Agent, so a sketch must use exactly
//! the Agent's parameters and layout: relative accuracy `1/128`
//! (`gamma = 1.015625`), a minimum indexable magnitude of 1e-9, `i16` keys
//! computed as a rounded logarithm with the Agent's bias, `u16` bin counts
//! that spill into extra bins of the same key, and at most 4096 bins with the
//! lowest ones collapsed first. The crates.io `sketches-ddsketch` uses other
//! parameters and a different encoding. [`config`] documents the mapping;
//! [`AgentSketch`] the bins and the summary.
//!
//! # Example
//!
//! ```
//! use ddsketch::AgentSketch;
//!
//! let mut a = AgentSketch::new();
//! let mut b = AgentSketch::new();
//! a.insert(12.5);
//! b.insert_n(0.25, 3); // a weighted insert: three samples of 0.25
//! a.merge(&b);
//! assert_eq!(a.count(), 4);
//! let (k, n) = a.to_dogsketch_parts(); // the protobuf Dogsketch k/n arrays
//! assert_eq!(n.iter().sum::<u32>(), 4);
//! assert_eq!(k.len(), 2);
//! ```
//!
//! # Performance notes
//!
//! A bin is four bytes and a sketch is a `Vec` of bins plus five numbers, so
//! an empty sketch does not allocate and a full one holds 16 KiB. Inserting
//! into an existing bin is a binary search and an increment; a new key is a
//! `Vec` insertion (a `memmove` of at most 16 KiB). The Agent buffers keys and
//! sorts them in batches instead; the resulting bins are the same.
//!
//! # Missing
//!
//! - The Agent's `InsertInterpolate` (histogram buckets into a sketch), which
//!   only OpenMetrics/OTLP histograms use.
#![deny(missing_docs)]

pub mod config;
mod sketch;

pub use config::{BIN_LIMIT, EPS, GAMMA, MIN_INDEXABLE};
pub use sketch::{AgentSketch, FromPartsError};
