//! The Datadog intake's wire formats, shared by whatever writes them (the
//! encoder), sends them (the forwarder) and reads them back (the test
//! intake): endpoints, encoded payloads, the agent-payload protobuf messages
//! and body compression.
//!
//! | [`Endpoint`] | request | body |
//! | --- | --- | --- |
//! | `Series` | `POST /api/v2/series` | protobuf [`proto::MetricPayload`] |
//! | `Sketches` | `POST /api/beta/sketches` | protobuf [`proto::SketchPayload`] |
//! | `CheckRun` | `POST /api/v1/check_run` | JSON array of service checks |
//! | `Events` | `POST /api/v1/events_batch` | protobuf [`proto::EventsPayload`] |
//! | `Intake` | `POST /intake/` | the v5 host-metadata JSON (never stored on disk) |
//!
//! An [`EncodedPayload`] is one request body with its endpoint,
//! `Content-Type` and `Content-Encoding`. Bodies are compressed with a
//! [`CompressionKind`] (`serializer_compressor_kind`: zstd, zlib or none)
//! through a [`StreamCompressor`] that bounds the compressed size before it
//! is known, and read back with [`decompress`], which refuses to inflate past
//! a limit:
//!
//! ```
//! use adp_wire::{decompress, CompressionKind, StreamCompressor};
//!
//! let mut c = StreamCompressor::new(CompressionKind::Zstd, 1).unwrap();
//! c.write(b"[{\"check\":\"app.up\"}]").unwrap();
//! let body = c.finish().unwrap();
//! let plain = decompress(CompressionKind::Zstd.content_encoding(), &body, 1 << 20).unwrap();
//! assert_eq!(plain, b"[{\"check\":\"app.up\"}]");
//! ```
//!
//! This crate knows no pipeline type and no configuration: the forwarder and
//! the test intake depend on it alone.
//!
//! # Missing
//!
//! - No v3 series/sketch messages and no `/api/v1/series` JSON.
//! - Only the `datadog.agentpayload` messages the agent writes; the test
//!   intake rejects any other body.
#![deny(missing_docs)]

pub mod compression;
mod payload;
pub mod proto;

pub use compression::{decompress, CompressionKind, DecompressError, StreamCompressor, UnknownCompressionKind};
pub use payload::{EncodedPayload, Endpoint, CONTENT_TYPE_JSON, CONTENT_TYPE_PROTOBUF};
