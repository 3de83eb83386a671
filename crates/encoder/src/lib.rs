//! Encodes aggregated metrics, sketches, service checks and events into the
//! request bodies the Datadog intake accepts, split under the intake's size
//! limits and compressed as the Datadog Agent does.
//!
//! `adp-model` values in, `adp-wire` [`EncodedPayload`]s out; this crate
//! knows neither the DogStatsD listeners nor the aggregator.
//!
//! # Payloads
//!
//! | input | endpoint | body | limits (compressed / uncompressed / other) |
//! | --- | --- | --- | --- |
//! | series | `POST /api/v2/series` | protobuf `MetricPayload` | 512,000 / 5,242,880 / 10,000 points |
//! | sketches | `POST /api/beta/sketches` | protobuf `SketchPayload` | 2,621,440 / 4,194,304 / – |
//! | service checks | `POST /api/v1/check_run` | JSON array | 2,621,440 / 4,194,304 / – |
//! | events | `POST /api/v1/events_batch` | protobuf `EventsPayload` | 2,621,440 / 4,194,304 / 100 events |
//! | check series (system checks) | `POST /api/v2/series` | protobuf `MetricPayload` | as series |
//! | host metadata | `POST /intake/` | the caller's JSON, one document | 2,621,440 / 4,194,304 / – |
//!
//! The protobuf messages are the hand-written prost structs of
//! [`adp_wire::proto`] (no `protoc` at build time); the test intake decodes
//! with the same structs. Bodies are compressed with
//! `serializer_compressor_kind` (zstd at level 1 by default, as in the Agent;
//! zlib or none selectable), and every [`EncodedPayload`] names its endpoint,
//! `Content-Type` and `Content-Encoding`.
//!
//! The agent calls these methods of the [`Encoder`]:
//! [`flush_writer`](Encoder::flush_writer), the
//! [`FlushSink`](adp_model::FlushSink) the aggregator's flush writes its
//! series and sketches into, straight into the compressor, with the names
//! and tags borrowed from the context store (the caller takes each payload
//! as it is finished, so a flush never holds all its compressed payloads at
//! once); [`encode_service_checks`](Encoder::encode_service_checks) and
//! [`encode_events`](Encoder::encode_events); for the host and its system
//! checks, [`check_series_payloads`](Encoder::check_series_payloads),
//! [`host_metadata_payload`](Encoder::host_metadata_payload) and
//! [`set_host_tags`](Encoder::set_host_tags) (see `src/host.rs`).
//! [`series_payloads`](Encoder::series_payloads) and
//! [`sketch_payloads`](Encoder::sketch_payloads) encode owned
//! [`Series`](adp_model::Series) the same way, each payload built when the
//! previous one is taken:
//!
//! ```
//! use adp_encoder::{Encoder, EncoderConfig};
//! use adp_model::{context_key, Context, Series, SeriesKind};
//! use adp_wire::{decompress, proto};
//! use prost::Message;
//!
//! let config = EncoderConfig { hostname: "board-1".into(), ..EncoderConfig::default() };
//! let encoder = Encoder::new(config, &adp_telemetry::Registry::new()).unwrap();
//! let context = Context::from_parts(context_key("temp", ["room:a"]), "temp".into(), Box::new(["room:a".into()]));
//! let series = [Series {
//!     name: context.name().clone(),
//!     context,
//!     kind: SeriesKind::Gauge,
//!     interval_secs: 10,
//!     points: vec![(1_700_000_000, 21.5)],
//! }];
//! let payload = encoder.series_payloads(&series).next().unwrap().unwrap();
//! assert_eq!((payload.endpoint.path(), payload.content_encoding), ("/api/v2/series", "zstd"));
//! let body = decompress(payload.content_encoding, &payload.body, 1 << 20).unwrap();
//! let series = &proto::MetricPayload::decode(body.as_slice()).unwrap().series[0];
//! assert_eq!((series.metric.as_str(), series.resources[0].name.as_str()), ("temp", "board-1"));
//! ```
//!
//! With the `test-support` feature, the encoder also takes items as borrowed
//! parts (`encode_series_parts`, `encode_check_parts`, ...) or as ready-made
//! protobuf messages (`encode_series_protos`, ...), for tests that need exact
//! control over what is sent; see `src/test_support.rs`.
//!
//! **Events** use Saluki's (the Agent Data Plane's) format: protobuf
//! `EventsPayload` to `/api/v1/events_batch`, at most 100 events per payload,
//! rather than the Agent's older `/intake/` JSON. It is the same schema family
//! as the metrics payloads, the intake's own protobuf, and it keeps one
//! encoder path for every protobuf kind.
//!
//! # Hosts and tags
//!
//! Following the Agent's DogStatsD enrichment, a `host:<name>` tag is removed
//! from the tags and names the host instead of the configured `hostname`
//! (`host:` with an empty name means "no host"); with several, the last in
//! sorted order wins. For series, a `device:<name>` tag likewise becomes a
//! `{type: "device"}` resource, as the Agent's v2 series serializer does. An
//! event's or service check's own `|h:` hostname takes precedence over both.
//! Every series carries the `{type: "host", name}` resource (the Agent always
//! writes it, with an empty name when there is no host), an empty `unit` and
//! `source_type_name`, and origin metadata product 10 (Agent), category 10
//! (DogStatsD), service 0.
//!
//! # Splitting
//!
//! Items (one series, one sketch context, one check, one event) are never cut
//! across payloads. A batch that exceeds a limit becomes several payloads; a
//! single item too large for an empty payload is dropped, logged and counted
//! in `adp_payloads_items_dropped_total{reason="too_big"}`. The compressed
//! size is bounded before it is known by the codec's worst-case bound (see
//! [`adp_wire::compression`]), so no payload is ever re-encoded.
//!
//! # Layout
//!
//! `items.rs` builds one item's wire form; `encode.rs` assembles payloads
//! (splitter, telemetry, the lazy [`Encoder::series_payloads`] iterator);
//! `split.rs` decides where a payload ends; `inputs.rs` maps the `adp-model`
//! types onto the item builders.
//!
//! # Missing
//!
//! - `CommonMetadata` (agent version, API key) is not written into sketch and
//!   event payloads (Saluki's events encoder writes only the events); the
//!   intake takes the API key from the `DD-Api-Key` header.
//! - No v3 series/sketch payloads and no `/api/v1/series` JSON fallback.
#![deny(missing_docs)]

mod direct;
mod encode;
mod host;
mod inputs;
mod items;
mod split;
#[cfg(any(test, feature = "test-support"))]
mod test_support;

use adp_config::{key, parse, MemoryBounds, Reader};
#[cfg(doc)]
use adp_wire::EncodedPayload;
use adp_wire::{CompressionKind, Endpoint};

pub use direct::{dogsketch_ref, DogsketchRef, FlushWriter, SeriesRef, SeriesWriter, SketchWriter};
pub use encode::Encoder;
pub use host::{check_origin_service, CheckSeriesParts};
#[cfg(any(test, feature = "test-support"))]
pub use items::{dogsketch, CheckParts, EventParts, SeriesType};

/// Encoder configuration, with the Datadog Agent's key names.
#[derive(Clone, Debug, PartialEq)]
pub struct EncoderConfig {
    /// The host every item is attributed to unless it names its own; empty
    /// means no host. Not a key this crate reads: the binary sets the host
    /// name it resolved. Defaults to empty.
    pub hostname: String,
    /// `serializer_compressor_kind`: `zstd`, `zlib` (`deflate`) or `none`.
    /// Defaults to zstd.
    pub serializer_compressor_kind: CompressionKind,
    /// `serializer_zstd_compressor_level`: the zstd level (1 = fastest,
    /// up to 22). Defaults to 1.
    pub serializer_zstd_compressor_level: i32,
    /// `serializer_max_series_payload_size`: compressed bytes per series
    /// payload. Defaults to 512,000.
    pub serializer_max_series_payload_size: u64,
    /// `serializer_max_series_uncompressed_payload_size`: uncompressed bytes
    /// per series payload. Defaults to 5,242,880.
    pub serializer_max_series_uncompressed_payload_size: u64,
    /// `serializer_max_series_points_per_payload`: points per series payload.
    /// Defaults to 10,000.
    pub serializer_max_series_points_per_payload: u64,
    /// `serializer_max_payload_size`: compressed bytes per sketch, check or
    /// event payload. Defaults to 2,621,440.
    pub serializer_max_payload_size: u64,
    /// `serializer_max_uncompressed_payload_size`: uncompressed bytes per
    /// sketch, check or event payload. Defaults to 4,194,304.
    pub serializer_max_uncompressed_payload_size: u64,
}

/// The Agent's default zstd level.
const DEFAULT_ZSTD_LEVEL: i32 = 1;

impl Default for EncoderConfig {
    fn default() -> Self {
        Self {
            hostname: String::new(),
            serializer_compressor_kind: CompressionKind::Zstd,
            serializer_zstd_compressor_level: DEFAULT_ZSTD_LEVEL,
            serializer_max_series_payload_size: 512_000,
            serializer_max_series_uncompressed_payload_size: 5_242_880,
            serializer_max_series_points_per_payload: 10_000,
            serializer_max_payload_size: 2_621_440,
            serializer_max_uncompressed_payload_size: 4_194_304,
        }
    }
}

impl EncoderConfig {
    /// Reads the `serializer_*` keys (their one owner); out-of-range values are
    /// reported by `r`. `hostname` is left empty for the caller to set.
    pub fn read(r: &mut Reader) -> Self {
        let d = Self::default();
        Self {
            hostname: d.hostname,
            serializer_compressor_kind: r.get_with(
                key!("serializer_compressor_kind"),
                d.serializer_compressor_kind,
                parse::choice(&[
                    ("zstd", CompressionKind::Zstd),
                    ("zlib", CompressionKind::Zlib),
                    ("deflate", CompressionKind::Zlib),
                    ("none", CompressionKind::None),
                ]),
                |k| serde_json::Value::from(k.as_str()),
            ),
            serializer_zstd_compressor_level: r.get(
                key!("serializer_zstd_compressor_level"),
                d.serializer_zstd_compressor_level,
                parse::integer(1, 22),
            ),
            serializer_max_series_payload_size: r.get(
                key!("serializer_max_series_payload_size"),
                d.serializer_max_series_payload_size,
                parse::positive_size,
            ),
            serializer_max_series_uncompressed_payload_size: r.get(
                key!("serializer_max_series_uncompressed_payload_size"),
                d.serializer_max_series_uncompressed_payload_size,
                parse::positive_size,
            ),
            serializer_max_series_points_per_payload: r.get(
                key!("serializer_max_series_points_per_payload"),
                d.serializer_max_series_points_per_payload,
                parse::integer(1, u64::from(u32::MAX)),
            ),
            serializer_max_payload_size: r.get(
                key!("serializer_max_payload_size"),
                d.serializer_max_payload_size,
                parse::positive_size,
            ),
            serializer_max_uncompressed_payload_size: r.get(
                key!("serializer_max_uncompressed_payload_size"),
                d.serializer_max_uncompressed_payload_size,
                parse::positive_size,
            ),
        }
    }

    /// At most one uncompressed series payload and one other payload being
    /// built at a time.
    pub fn memory_bounds(&self) -> MemoryBounds {
        MemoryBounds {
            component: "encoder",
            minimum: 0,
            firm: self
                .serializer_max_series_uncompressed_payload_size
                .saturating_add(self.serializer_max_uncompressed_payload_size),
            key: "serializer_max_uncompressed_payload_size",
        }
    }
}

/// Why encoding failed. Items too big for any payload are not errors (they
/// are dropped and counted); these are.
#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    /// The zstd level is outside what zstd accepts.
    #[error("invalid `serializer_zstd_compressor_level` {level}: zstd accepts {min} to {max}")]
    InvalidZstdLevel {
        /// The configured level.
        level: i32,
        /// The smallest accepted level.
        min: i32,
        /// The largest accepted level.
        max: i32,
    },
    /// A payload size limit is zero, which no item could ever fit.
    #[error("`{key}` is 0: no payload could hold anything; unset it to use the default")]
    ZeroLimit {
        /// The configuration key.
        key: &'static str,
    },
    /// The compressor failed (it writes to memory, so this means zstd itself
    /// refused, e.g. out of memory).
    #[error("cannot compress a {endpoint} payload with {kind}")]
    Compression {
        /// The payload being built.
        endpoint: Endpoint,
        /// The compression kind (`serializer_compressor_kind`).
        kind: CompressionKind,
        /// The compressor's error.
        source: std::io::Error,
    },
}

/// An encoder for `hostname` compressing with `kind`, and the registry that
/// holds its telemetry: the encoder of this crate's tests.
#[cfg(test)]
pub(crate) fn test_encoder(hostname: &str, kind: CompressionKind) -> (Encoder, adp_telemetry::Registry) {
    let registry = adp_telemetry::Registry::new();
    let config = EncoderConfig {
        hostname: hostname.to_owned(),
        serializer_compressor_kind: kind,
        ..EncoderConfig::default()
    };
    (Encoder::new(config, &registry).unwrap(), registry)
}

#[cfg(test)]
mod config_tests {
    use super::*;

    adp_config::test_read!(EncoderConfig);

    #[test]
    fn serializer_keys_are_read_with_the_agents_defaults_and_spellings() {
        assert_eq!(read("", &[]).unwrap(), EncoderConfig::default());
        let c = read(
            "serializer_compressor_kind: deflate\n",
            &[("DD_SERIALIZER_MAX_PAYLOAD_SIZE", "1MiB")],
        )
        .unwrap();
        assert_eq!(c.serializer_compressor_kind, CompressionKind::Zlib);
        assert_eq!(c.serializer_max_payload_size, 1 << 20);
        let errors = invalid(
            "serializer_compressor_kind: lz4\n",
            &[
                ("DD_SERIALIZER_ZSTD_COMPRESSOR_LEVEL", "30"),
                ("DD_SERIALIZER_MAX_SERIES_PAYLOAD_SIZE", "0"),
            ],
        );
        let keys: Vec<&str> = errors.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "serializer_compressor_kind",
                "serializer_zstd_compressor_level",
                "serializer_max_series_payload_size"
            ]
        );
        assert_eq!(errors[0].expected, "one of zstd, zlib, deflate, none");
    }

    #[test]
    fn memory_bounds_are_one_payload_of_each_kind_being_built() {
        let b = EncoderConfig::default().memory_bounds();
        assert_eq!(b.firm, 5_242_880 + 4_194_304);
    }
}
