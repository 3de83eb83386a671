//! DogStatsD ingestion for the Agent Data Plane: UDP and Unix-socket listeners
//! with origin credentials and the complete v1.3 codec, decoding into keyed,
//! unresolved metric samples.
//!
//! The path of a packet:
//!
//! 1. a [`listener`] task receives it (UDP, Unix datagram with `SCM_CREDENTIALS`,
//!    or a Unix stream connection with its framing);
//! 2. the [`decoder::Decoder`] splits it into messages and parses each with the
//!    borrowing [`codec`];
//! 3. each metric message's name and tags are copied once into the batch's
//!    [`MetricBatch`](adp_model::MetricBatch) with their context key, one
//!    sample per value: the aggregator resolves the context (one hash probe;
//!    the strings are read only for a context it has not seen);
//! 4. the batch, with owned [`Event`](adp_model::Event)s and
//!    [`ServiceCheck`](adp_model::ServiceCheck)s, goes downstream in a
//!    [`decoder::Batch`] over a bounded channel, counted in [`telemetry`].
//!
//! [`source::DogStatsDConfig`] (Agent key names) builds the whole thing.
//!
//! # Missing
//!
//! - Origin detection: credentials and `c:`/`e:`/`card:` are captured but not
//!   turned into container tags (no tagger exists in this agent).
//! - Tags with invalid UTF-8 reject their message instead of being repaired.
#![deny(missing_docs)]

pub mod codec;
pub mod config;
pub mod decoder;
pub mod enrich;
pub mod listener;
pub mod mapper;
pub mod source;
pub mod telemetry;
pub mod utf8;

pub use decoder::{Batch, Decoder};
pub use listener::credentials::Credentials;
pub use source::{DogStatsDConfig, DogStatsDSource, RunningSource};
