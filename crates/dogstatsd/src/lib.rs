//! DogStatsD ingestion for the Agent Data Plane: UDP and Unix-socket listeners
//! with origin credentials and the complete v1.3 codec, decoding into keyed,
//! unresolved metric samples.
//!
//! The path of a packet:
//!
//! 1. a [`listener`] task receives it (UDP, Unix datagram with `SCM_CREDENTIALS`,
//!    or a Unix stream connection with its framing);
//! 2. the [`decoder::Decoder`] splits it into messages and parses each with the
//!    borrowing [`codec`] (tags that are not UTF-8 are repaired, [`utf8`]);
//! 3. [`enrich`] does what the Agent's DogStatsD server does to a metric:
//!    the [`mapper`] (`dogstatsd_mapper_profiles`), the namespace, the
//!    blocklist, `dogstatsd_tags` (on events and service checks too) and the
//!    histogram copies; with nothing configured it is skipped;
//! 4. each metric message's final name and tags are copied once into the
//!    batch's [`MetricBatch`](adp_model::MetricBatch) with their context key,
//!    one sample per value: the aggregator resolves the context (one hash
//!    probe; the strings are read only for a context it has not seen);
//! 5. the batch, with owned [`Event`](adp_model::Event)s and
//!    [`ServiceCheck`](adp_model::ServiceCheck)s, goes downstream in a
//!    [`decoder::Batch`] over a bounded channel, counted in [`telemetry`].
//!
//! [`source::DogStatsDConfig`] (Agent key names) builds the whole thing.
//! [`debug`] serves `agent-data-plane dogstatsd stats` and `top` from the
//! aggregator task.
//!
//! # Missing
//!
//! - Origin detection: credentials and `c:`/`e:`/`card:` are captured but not
//!   turned into container tags (no tagger exists in this agent).
//! - `dogstatsd top` reads the live aggregator only; the Agent's context dump
//!   to a file (`-p PATH`) is not written.
#![deny(missing_docs)]

pub mod codec;
pub mod config;
pub mod debug;
pub mod decoder;
pub mod enrich;
pub mod listener;
pub mod mapper;
pub mod source;
pub mod telemetry;
pub mod utf8;

pub use decoder::{Batch, Decoder};
pub use listener::credentials::Credentials;
pub use source::{DogStatsDConfig, DogStatsDSource, Pacer, RunningSource};
