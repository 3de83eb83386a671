//! Payload assembly: the [`Encoder`] turns items into [`EncodedPayload`]s.
//!
//! Each path converts one item at a time into its wire form ([`crate::items`]:
//! a repeated-field entry of the payload message, or one JSON object), hands
//! it to the splitter, and drops it: at most one item's encoding and one
//! compressed body per payload under construction are held at once. Items too
//! big for any payload are dropped here, logged and counted.

use adp_telemetry::{Counter, Registry};
use adp_wire::{proto, CompressionKind, EncodedPayload, Endpoint};
use prost::Message;
use tracing::warn;

use std::collections::VecDeque;
use std::fmt;

#[cfg(any(test, feature = "test-support"))]
use crate::direct::DogsketchRef;
use crate::direct::{SeriesRef, SeriesWriter, SketchWriter};
#[cfg(any(test, feature = "test-support"))]
use crate::items::SeriesType;
use crate::items::{check_run, event_proto, CheckParts, EventParts};
use crate::split::{Body, Framing, Limits, Pushed, Splitter};
use crate::{EncodeError, EncoderConfig};

/// Saluki's cap on events per `events_batch` payload.
const MAX_EVENTS_PER_PAYLOAD: u64 = 100;

/// Per-endpoint counters.
#[derive(Clone, Debug)]
struct EndpointTelemetry {
    payloads: Counter,
    items: Counter,
    points: Counter,
    dropped_too_big: Counter,
    bytes_uncompressed: Counter,
    bytes_compressed: Counter,
}

impl EndpointTelemetry {
    fn register(registry: &Registry, endpoint: Endpoint) -> Self {
        let e = [("endpoint", endpoint.as_str())];
        Self {
            payloads: registry.counter("adp_payloads_encoded", "Payloads encoded, after splitting.", &e),
            items: registry.counter(
                "adp_payloads_items",
                "Items (series, sketch contexts, checks, events) encoded.",
                &e,
            ),
            points: registry.counter("adp_payloads_points", "Series points encoded.", &e),
            dropped_too_big: registry.counter(
                "adp_payloads_items_dropped",
                "Items dropped because they exceed a payload limit on their own.",
                &[("endpoint", endpoint.as_str()), ("reason", "too_big")],
            ),
            bytes_uncompressed: registry.counter(
                "adp_payloads_uncompressed_bytes",
                "Payload bytes before compression.",
                &e,
            ),
            bytes_compressed: registry.counter("adp_payloads_compressed_bytes", "Payload bytes after compression.", &e),
        }
    }
}

/// Encodes pipeline items into intake payloads. Cheap to share: encoding
/// takes `&self`, so one encoder can serve every flush.
#[derive(Clone, Debug)]
pub struct Encoder {
    pub(crate) config: EncoderConfig,
    telemetry: [EndpointTelemetry; 5],
    /// Added to every series and sketch (see [`Encoder::set_host_tags`]).
    pub(crate) host_tags: Vec<String>,
}

fn index(endpoint: Endpoint) -> usize {
    match endpoint {
        Endpoint::Series => 0,
        Endpoint::Sketches => 1,
        Endpoint::CheckRun => 2,
        Endpoint::Events => 3,
        Endpoint::Intake => 4,
    }
}

impl Encoder {
    /// Validates `config` and registers the `adp_payloads_*` counters.
    pub fn new(config: EncoderConfig, registry: &Registry) -> Result<Self, EncodeError> {
        if config.serializer_compressor_kind == CompressionKind::Zstd {
            let range = zstd::compression_level_range();
            let level = config.serializer_zstd_compressor_level;
            if !range.contains(&level) {
                return Err(EncodeError::InvalidZstdLevel {
                    level,
                    min: *range.start(),
                    max: *range.end(),
                });
            }
        }
        for (key, value) in [
            (
                "serializer_max_series_payload_size",
                config.serializer_max_series_payload_size,
            ),
            (
                "serializer_max_series_uncompressed_payload_size",
                config.serializer_max_series_uncompressed_payload_size,
            ),
            (
                "serializer_max_series_points_per_payload",
                config.serializer_max_series_points_per_payload,
            ),
            ("serializer_max_payload_size", config.serializer_max_payload_size),
            (
                "serializer_max_uncompressed_payload_size",
                config.serializer_max_uncompressed_payload_size,
            ),
        ] {
            if value == 0 {
                return Err(EncodeError::ZeroLimit { key });
            }
        }
        let telemetry = Endpoint::ALL.map(|e| EndpointTelemetry::register(registry, e));
        Ok(Self {
            config,
            telemetry,
            host_tags: Vec::new(),
        })
    }

    /// The limits payloads for `endpoint` respect.
    pub(crate) fn limits(&self, endpoint: Endpoint) -> Limits {
        let c = &self.config;
        match endpoint {
            Endpoint::Series => Limits {
                max_compressed: c.serializer_max_series_payload_size,
                max_uncompressed: c.serializer_max_series_uncompressed_payload_size,
                max_points: c.serializer_max_series_points_per_payload,
                max_items: u64::MAX,
            },
            Endpoint::Sketches | Endpoint::CheckRun | Endpoint::Events | Endpoint::Intake => Limits {
                max_compressed: c.serializer_max_payload_size,
                max_uncompressed: c.serializer_max_uncompressed_payload_size,
                max_points: u64::MAX,
                max_items: if endpoint == Endpoint::Events {
                    MAX_EVENTS_PER_PAYLOAD
                } else {
                    u64::MAX
                },
            },
        }
    }

    /// The host every item is attributed to unless it names its own.
    pub(crate) fn hostname(&self) -> &str {
        &self.config.hostname
    }

    /// Tags added to every series and sketch: the host tags while
    /// `expected_tags_duration` lasts (see [`Encoder::set_host_tags`]).
    pub(crate) fn extra_tags(&self) -> &[String] {
        &self.host_tags
    }

    /// The payloads of one series per `(name, tags, type, interval, points)`,
    /// each built when the previous one is taken (see [`Lazy`]).
    #[cfg(any(test, feature = "test-support"))]
    pub(crate) fn series_from_parts<'a, T: AsRef<str> + 'a>(
        &'a self,
        series: impl IntoIterator<Item = (&'a str, &'a [T], SeriesType, u64, &'a [(i64, f64)])> + 'a,
    ) -> impl Iterator<Item = Result<EncodedPayload, EncodeError>> + 'a {
        Lazy::series(
            self,
            series.into_iter().map(|(name, tags, kind, interval, points)| {
                (name, "", tags.iter().map(AsRef::as_ref), kind.model(), interval, points)
            }),
        )
    }

    /// The payloads of one sketch context per `(name, tags, dogsketches)`,
    /// each built when the previous one is taken.
    #[cfg(any(test, feature = "test-support"))]
    pub(crate) fn sketches_from_parts<'a, T: AsRef<str> + 'a>(
        &'a self,
        sketches: impl IntoIterator<Item = (&'a str, &'a [T], Vec<proto::Dogsketch>)> + 'a,
    ) -> impl Iterator<Item = Result<EncodedPayload, EncodeError>> + 'a {
        let mut items = sketches.into_iter();
        Lazy {
            writer: Some(self.sketch_writer()),
            next: move |w: &mut SketchWriter<'a>| {
                let (name, tags, dogsketches) = items.next()?;
                let refs = dogsketches.iter().map(|d| DogsketchRef {
                    ts: d.ts,
                    count: d.cnt,
                    min: d.min,
                    max: d.max,
                    avg: d.avg,
                    sum: d.sum,
                    k: d.k.iter().copied(),
                    n: d.n.iter().copied(),
                });
                Some(w.push(name, tags.iter().map(AsRef::as_ref), refs))
            },
            pending: VecDeque::new(),
        }
    }

    /// The payloads of `items`, each built when the previous one is taken:
    /// a caller that sends every payload before asking for the next holds
    /// one compressed payload at a time, not a whole flush's.
    pub(crate) fn protobuf_payloads<M: Message, I: Iterator<Item = M>, F: Fn(&M) -> (&str, u64)>(
        &self,
        endpoint: Endpoint,
        items: I,
        field: u32,
        describe: F,
    ) -> Payloads<'_, I, F> {
        Payloads {
            encoder: self,
            endpoint,
            items,
            field,
            describe,
            splitter: Some(self.splitter(endpoint, Framing::PROTOBUF)),
            ready: std::collections::VecDeque::new(),
            buf: Vec::new(),
        }
    }

    /// Encodes service checks into `/api/v1/check_run` JSON; a missing
    /// timestamp is `now` (Unix seconds).
    pub(crate) fn checks_from_parts<'a, T: AsRef<str> + 'a>(
        &self,
        checks: impl IntoIterator<Item = CheckParts<'a, T>>,
        now: i64,
    ) -> Result<Vec<EncodedPayload>, EncodeError> {
        let endpoint = Endpoint::CheckRun;
        let mut splitter = self.splitter(endpoint, Framing::JSON_ARRAY);
        let mut buf = Vec::new();
        for check in checks {
            buf.clear();
            let run = check_run(&self.config.hostname, now, &check);
            // Serializing plain strings and integers into a Vec cannot fail.
            serde_json::to_writer(&mut buf, &run).expect("service check JSON");
            self.push(endpoint, &mut splitter, &buf, 0, &check.name)?;
        }
        self.finish(endpoint, splitter)
    }

    /// Encodes events into `/api/v1/events_batch` protobuf payloads; a
    /// missing timestamp is `now` (Unix seconds).
    pub(crate) fn events_from_parts<'a, T: AsRef<str> + 'a>(
        &self,
        events: impl IntoIterator<Item = EventParts<'a, T>>,
        now: i64,
    ) -> Result<Vec<EncodedPayload>, EncodeError> {
        let host = self.config.hostname.as_str();
        let protos = events.into_iter().map(|e| event_proto(host, now, &e));
        self.protobuf_payloads(Endpoint::Events, protos, 1, |e: &proto::Event| (e.title.as_str(), 0))
            .collect()
    }

    pub(crate) fn splitter(&self, endpoint: Endpoint, framing: Framing) -> Splitter {
        Splitter::new(
            self.config.serializer_compressor_kind,
            self.config.serializer_zstd_compressor_level,
            self.limits(endpoint),
            framing,
        )
    }

    pub(crate) fn push(
        &self,
        endpoint: Endpoint,
        splitter: &mut Splitter,
        item: &[u8],
        points: u64,
        name: &dyn fmt::Display,
    ) -> Result<(), EncodeError> {
        match splitter
            .push(item, points)
            .map_err(|source| self.compression_error(endpoint, source))?
        {
            Pushed::Added => {}
            Pushed::TooBig => {
                self.telemetry[index(endpoint)].dropped_too_big.inc();
                let limits = self.limits(endpoint);
                warn!(
                    endpoint = endpoint.as_str(),
                    name = %name,
                    encoded_bytes = item.len(),
                    points,
                    max_uncompressed_bytes = limits.max_uncompressed,
                    max_compressed_bytes = limits.max_compressed,
                    max_points = limits.max_points,
                    "Dropped an item that does not fit an empty payload on its own."
                );
            }
        }
        Ok(())
    }

    pub(crate) fn finish(&self, endpoint: Endpoint, splitter: Splitter) -> Result<Vec<EncodedPayload>, EncodeError> {
        let bodies = splitter
            .finish()
            .map_err(|source| self.compression_error(endpoint, source))?;
        Ok(bodies.into_iter().map(|b| self.payload(endpoint, b)).collect())
    }

    /// A finished body as a payload, counted in the telemetry.
    pub(crate) fn payload(&self, endpoint: Endpoint, b: Body) -> EncodedPayload {
        let t = &self.telemetry[index(endpoint)];
        t.payloads.inc();
        t.items.add(b.items);
        t.points.add(b.points);
        t.bytes_uncompressed.add(b.uncompressed_len);
        t.bytes_compressed.add(u64::try_from(b.bytes.len()).unwrap_or(u64::MAX));
        EncodedPayload {
            endpoint,
            body: bytes::Bytes::from(b.bytes),
            content_type: endpoint.content_type(),
            content_encoding: self.config.serializer_compressor_kind.content_encoding(),
            items: b.items,
        }
    }

    fn compression_error(&self, endpoint: Endpoint, source: std::io::Error) -> EncodeError {
        EncodeError::Compression {
            endpoint,
            kind: self.config.serializer_compressor_kind,
            source,
        }
    }
}

/// Payloads built lazily from protobuf items: each is compressed when the
/// previous one has been taken, so a caller that sends every payload before
/// asking for the next holds one compressed payload at a time, not a whole
/// flush's.
pub(crate) struct Payloads<'e, I, F> {
    encoder: &'e Encoder,
    endpoint: Endpoint,
    items: I,
    field: u32,
    describe: F,
    /// `None` once every item was pushed and the last body closed.
    splitter: Option<Splitter>,
    ready: std::collections::VecDeque<Body>,
    buf: Vec<u8>,
}

impl<M: Message, I: Iterator<Item = M>, F: Fn(&M) -> (&str, u64)> Iterator for Payloads<'_, I, F> {
    type Item = Result<EncodedPayload, EncodeError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(body) = self.ready.pop_front() {
                return Some(Ok(self.encoder.payload(self.endpoint, body)));
            }
            let splitter = self.splitter.as_mut()?;
            let Some(item) = self.items.next() else {
                let finished = self.splitter.take()?.finish();
                match finished {
                    Ok(bodies) => self.ready.extend(bodies),
                    Err(source) => return Some(Err(self.encoder.compression_error(self.endpoint, source))),
                }
                continue;
            };
            self.buf.clear();
            prost::encoding::message::encode(self.field, &item, &mut self.buf);
            let (name, points) = (self.describe)(&item);
            if let Err(e) = self.encoder.push(self.endpoint, splitter, &self.buf, points, &name) {
                self.splitter = None;
                return Some(Err(e));
            }
            self.ready.extend(splitter.take_done());
        }
    }
}

/// Payloads built lazily by a writer: `next` pushes one more item into the
/// writer (`None` when there are no more), and a payload is returned as soon
/// as one is finished, so a caller that sends every payload before asking for
/// the next holds one compressed payload at a time.
pub(crate) struct Lazy<W, N> {
    pub(crate) writer: Option<W>,
    pub(crate) next: N,
    pub(crate) pending: VecDeque<EncodedPayload>,
}

/// A writer as [`Lazy`] drives it.
pub(crate) trait Writer: Sized {
    fn next_ready(&mut self) -> Option<EncodedPayload>;
    fn finish(self) -> Result<Vec<EncodedPayload>, EncodeError>;
}

impl Writer for SeriesWriter<'_> {
    fn next_ready(&mut self) -> Option<EncodedPayload> {
        SeriesWriter::next_ready(self)
    }
    fn finish(self) -> Result<Vec<EncodedPayload>, EncodeError> {
        SeriesWriter::finish(self)
    }
}

impl Writer for SketchWriter<'_> {
    fn next_ready(&mut self) -> Option<EncodedPayload> {
        SketchWriter::next_ready(self)
    }
    fn finish(self) -> Result<Vec<EncodedPayload>, EncodeError> {
        SketchWriter::finish(self)
    }
}

impl<'e> Lazy<SeriesWriter<'e>, ()> {
    /// Series given as `(name, suffix, tags, kind, interval, points)`.
    pub(crate) fn series<'a, I, T>(
        encoder: &'e Encoder,
        items: I,
    ) -> Lazy<SeriesWriter<'e>, impl FnMut(&mut SeriesWriter<'e>) -> Option<Result<(), EncodeError>>>
    where
        I: Iterator<Item = (&'a str, &'a str, T, adp_model::SeriesKind, u64, &'a [(i64, f64)])>,
        T: Iterator<Item = &'a str> + Clone,
    {
        let mut items = items;
        Lazy {
            writer: Some(encoder.series_writer()),
            next: move |w: &mut SeriesWriter<'e>| {
                let (name, suffix, tags, kind, interval_secs, points) = items.next()?;
                Some(w.push(&SeriesRef {
                    name,
                    suffix,
                    tags,
                    kind,
                    interval_secs,
                    points,
                }))
            },
            pending: VecDeque::new(),
        }
    }
}

impl<W: Writer, N: FnMut(&mut W) -> Option<Result<(), EncodeError>>> Iterator for Lazy<W, N> {
    type Item = Result<EncodedPayload, EncodeError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(p) = self.pending.pop_front() {
                return Some(Ok(p));
            }
            let writer = self.writer.as_mut()?;
            if let Some(p) = writer.next_ready() {
                return Some(Ok(p));
            }
            match (self.next)(writer) {
                Some(Ok(())) => {}
                Some(Err(e)) => {
                    self.writer = None;
                    return Some(Err(e));
                }
                None => match self.writer.take()?.finish() {
                    Ok(rest) => self.pending.extend(rest),
                    Err(e) => return Some(Err(e)),
                },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use adp_wire::decompress;
    use prost::Message;

    use super::*;
    use crate::items::dogsketch;

    fn encoder(kind: CompressionKind) -> (Encoder, Registry) {
        crate::test_encoder("web-1", kind)
    }

    fn decode_series(p: &EncodedPayload) -> proto::MetricPayload {
        assert_eq!(p.endpoint, Endpoint::Series);
        assert_eq!(p.content_type, "application/x-protobuf");
        let plain = decompress(p.content_encoding, &p.body, 64 << 20).unwrap();
        proto::MetricPayload::decode(plain.as_slice()).unwrap()
    }

    const KINDS: [CompressionKind; 3] = [CompressionKind::Zstd, CompressionKind::Zlib, CompressionKind::None];

    #[test]
    fn series_round_trip_through_every_compression_kind() {
        let tags = ["env:prod", "host:db-7", "device:sda1", "team:x"];
        let points = [(1_700_000_000, 0.5), (1_700_000_010, -2.25)];
        for kind in KINDS {
            let (enc, _) = encoder(kind);
            let payloads = enc
                .encode_series_parts([
                    ("requests", &tags[..], SeriesType::Rate, 10, &points[..]),
                    ("temp", &tags[..1], SeriesType::Gauge, 0, &points[..1]),
                    ("hits", &tags[..0], SeriesType::Count, 10, &points[1..]),
                ])
                .unwrap();
            assert_eq!(payloads.len(), 1);
            assert_eq!(payloads[0].content_encoding, kind.content_encoding());
            assert_eq!(payloads[0].items, 3);
            let decoded = decode_series(&payloads[0]);
            let origin = Some(proto::Metadata {
                origin: Some(proto::Origin {
                    origin_product: 10,
                    origin_category: 10,
                    origin_service: 0,
                }),
            });
            let host = |name: &str| proto::Resource {
                r#type: "host".into(),
                name: name.into(),
            };
            let expected = vec![
                proto::MetricSeries {
                    resources: vec![
                        host("db-7"),
                        proto::Resource {
                            r#type: "device".into(),
                            name: "sda1".into(),
                        },
                    ],
                    metric: "requests".into(),
                    tags: vec!["env:prod".into(), "team:x".into()],
                    points: vec![
                        proto::MetricPoint {
                            value: 0.5,
                            timestamp: 1_700_000_000,
                        },
                        proto::MetricPoint {
                            value: -2.25,
                            timestamp: 1_700_000_010,
                        },
                    ],
                    r#type: proto::MetricType::Rate as i32,
                    unit: String::new(),
                    source_type_name: String::new(),
                    interval: 10,
                    metadata: origin.clone(),
                },
                proto::MetricSeries {
                    resources: vec![host("web-1")],
                    metric: "temp".into(),
                    tags: vec!["env:prod".into()],
                    points: vec![proto::MetricPoint {
                        value: 0.5,
                        timestamp: 1_700_000_000,
                    }],
                    r#type: proto::MetricType::Gauge as i32,
                    unit: String::new(),
                    source_type_name: String::new(),
                    interval: 0,
                    metadata: origin.clone(),
                },
                proto::MetricSeries {
                    resources: vec![host("web-1")],
                    metric: "hits".into(),
                    tags: vec![],
                    points: vec![proto::MetricPoint {
                        value: -2.25,
                        timestamp: 1_700_000_010,
                    }],
                    r#type: proto::MetricType::Count as i32,
                    unit: String::new(),
                    source_type_name: String::new(),
                    interval: 10,
                    metadata: origin,
                },
            ];
            assert_eq!(decoded.series, expected, "{kind}");
        }
    }

    #[test]
    fn an_empty_host_tag_means_no_host() {
        let (enc, _) = encoder(CompressionKind::None);
        let p = enc
            .encode_series_parts([("m", &["host:"][..], SeriesType::Gauge, 0, &[(1, 1.0)][..])])
            .unwrap();
        let s = &decode_series(&p[0]).series[0];
        assert_eq!(
            s.resources,
            vec![proto::Resource {
                r#type: "host".into(),
                name: String::new()
            }]
        );
        assert!(s.tags.is_empty());
    }

    #[test]
    fn many_series_split_under_every_series_limit_and_nothing_is_lost() {
        for kind in KINDS {
            let (enc, registry) = encoder(kind);
            // 2,500 series × 7 points = 17,500 points: the points limit splits them.
            let tags: Vec<Vec<String>> = (0..2_500)
                .map(|i| vec![format!("shard:{i}"), "service:checkout".to_owned()])
                .collect();
            let points: Vec<(i64, f64)> = (0..7).map(|i| (1_700_000_000 + i * 10, f64::from(i as u8))).collect();
            let names: Vec<String> = (0..2_500).map(|i| format!("app.metric.{}", i % 40)).collect();
            let payloads = enc
                .encode_series_parts((0..2_500).map(|i| {
                    (
                        names[i].as_str(),
                        tags[i].as_slice(),
                        SeriesType::Gauge,
                        10,
                        &points[..],
                    )
                }))
                .unwrap();
            assert!(payloads.len() >= 2, "{kind}: {} payloads", payloads.len());
            let mut seen = Vec::new();
            for p in &payloads {
                assert!(p.body.len() <= 512_000);
                let decoded = decode_series(p);
                let plain_len = decompress(p.content_encoding, &p.body, 64 << 20).unwrap().len();
                assert!(plain_len <= 5_242_880);
                let n_points: usize = decoded.series.iter().map(|s| s.points.len()).sum();
                assert!(n_points <= 10_000, "{kind}: {n_points} points");
                assert_eq!(p.items, u64::try_from(decoded.series.len()).unwrap());
                seen.extend(decoded.series.into_iter().map(|s| s.tags[0].clone()));
            }
            let expected: Vec<String> = (0..2_500).map(|i| format!("shard:{i}")).collect();
            assert_eq!(seen, expected, "{kind}: every series exactly once, in order");
            let label = [("endpoint", "series")];
            assert_eq!(registry.value("adp_payloads_items", &label), Some(2_500));
            assert_eq!(registry.value("adp_payloads_points", &label), Some(17_500));
            assert_eq!(
                registry.value("adp_payloads_encoded", &label),
                Some(i64::try_from(payloads.len()).unwrap())
            );
        }
    }

    /// The lazy path builds a payload only when asked: after the first is
    /// taken, the rest of the items are still unencoded.
    #[test]
    fn payloads_are_built_one_at_a_time_and_match_the_collected_ones() {
        let (enc, registry) = encoder(CompressionKind::Zstd);
        let tags: Vec<Vec<String>> = (0..2_500).map(|i| vec![format!("shard:{i}")]).collect();
        let points: Vec<(i64, f64)> = (0..7).map(|i| (1_700_000_000 + i * 10, 1.0)).collect();
        let items = || (0..2_500).map(|i| ("m", tags[i].as_slice(), SeriesType::Gauge, 10, &points[..]));
        let label = [("endpoint", "series")];
        let mut lazy = enc.series_parts_payloads(items());
        let first = lazy.next().unwrap().unwrap();
        assert_eq!(registry.value("adp_payloads_encoded", &label), Some(1));
        assert!(registry.value("adp_payloads_items", &label).unwrap() < 2_500);
        let mut bodies = vec![first.body];
        bodies.extend(lazy.map(|p| p.unwrap().body));
        let collected = enc.encode_series_parts(items()).unwrap();
        assert!(collected.len() >= 2);
        assert_eq!(bodies, collected.into_iter().map(|p| p.body).collect::<Vec<_>>());
    }

    #[test]
    fn large_series_split_by_compressed_size() {
        // Long random-looking tags defeat compression, so the 512,000-byte
        // compressed limit binds before the points limit.
        let (enc, _) = encoder(CompressionKind::Zstd);
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let tags: Vec<Vec<String>> = (0..5_000)
            .map(|_| {
                (0..6)
                    .map(|_| {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        format!("k:{x:016x}{:016x}{:016x}", x.rotate_left(21), x.rotate_left(42))
                    })
                    .collect()
            })
            .collect();
        let points = [(1_700_000_000, 1.0)];
        let payloads = enc
            .encode_series_parts(
                tags.iter()
                    .map(|t| ("m", t.as_slice(), SeriesType::Gauge, 10, &points[..])),
            )
            .unwrap();
        assert!(payloads.len() >= 2, "{} payloads", payloads.len());
        let mut total = 0;
        for p in &payloads {
            assert!(p.body.len() <= 512_000, "{}", p.body.len());
            total += decode_series(p).series.len();
        }
        assert_eq!(total, 5_000);
    }

    #[test]
    fn a_series_over_the_points_limit_is_dropped_and_counted() {
        let (enc, registry) = encoder(CompressionKind::Zstd);
        let big: Vec<(i64, f64)> = (0..10_001).map(|i| (i, 1.0)).collect();
        let small = [(1, 1.0)];
        let payloads = enc
            .encode_series_parts([
                ("small.a", &[] as &[&str], SeriesType::Gauge, 10, &small[..]),
                ("too.big", &[], SeriesType::Gauge, 10, &big[..]),
                ("small.b", &[], SeriesType::Gauge, 10, &small[..]),
            ])
            .unwrap();
        let names: Vec<String> = payloads
            .iter()
            .flat_map(|p| decode_series(p).series)
            .map(|s| s.metric)
            .collect();
        assert_eq!(names, ["small.a", "small.b"]);
        assert_eq!(
            registry.value(
                "adp_payloads_items_dropped",
                &[("endpoint", "series"), ("reason", "too_big")]
            ),
            Some(1)
        );
    }

    #[test]
    fn sketches_round_trip_with_host_tag_and_bins() {
        for kind in KINDS {
            let (enc, _) = encoder(kind);
            let d1 = dogsketch(
                1_700_000_000,
                3,
                -1.0,
                5.0,
                6.0,
                2.0,
                vec![-1300, 0, 1338],
                vec![1, 1, 1],
            );
            let d2 = dogsketch(
                1_700_000_010,
                70_000,
                0.5,
                0.5,
                35_000.0,
                0.5,
                vec![1300],
                vec![65_535, 4_465],
            );
            let payloads = enc
                .encode_sketch_parts([
                    ("latency", &["host:edge", "path:/a"][..], vec![d1.clone(), d2.clone()]),
                    ("size", &["path:/b"][..], vec![d1.clone()]),
                ])
                .unwrap();
            assert_eq!(payloads.len(), 1);
            let p = &payloads[0];
            assert_eq!(
                (p.endpoint, p.items, p.content_type),
                (Endpoint::Sketches, 2, "application/x-protobuf")
            );
            let plain = decompress(p.content_encoding, &p.body, 1 << 20).unwrap();
            let decoded = proto::SketchPayload::decode(plain.as_slice()).unwrap();
            let s = &decoded.sketches;
            assert_eq!((s[0].metric.as_str(), s[0].host.as_str()), ("latency", "edge"));
            assert_eq!(s[0].tags, ["path:/a"]);
            assert_eq!(s[0].dogsketches, vec![d1.clone(), d2]);
            assert_eq!((s[1].host.as_str(), s[1].dogsketches.len()), ("web-1", 1));
        }
    }

    #[test]
    fn service_checks_encode_as_the_check_run_json() {
        let (enc, _) = encoder(CompressionKind::Zlib);
        let tags = ["env:prod", "host:from-tag"];
        let checks = [
            CheckParts {
                name: "app.up",
                status: 0,
                timestamp: Some(100),
                hostname: None,
                message: None,
                tags: &tags[..],
            },
            CheckParts {
                name: "db.up",
                status: 2,
                timestamp: None,
                hostname: Some("own-host"),
                message: Some("down \"hard\""),
                tags: &tags[..1],
            },
            CheckParts {
                name: "x",
                status: 3,
                timestamp: None,
                hostname: None,
                message: None,
                tags: &[],
            },
        ];
        let payloads = enc.encode_check_parts(checks, 555).unwrap();
        assert_eq!(payloads.len(), 1);
        let p = &payloads[0];
        assert_eq!(
            (p.endpoint, p.items, p.content_type, p.content_encoding),
            (Endpoint::CheckRun, 3, "application/json", "deflate")
        );
        let plain = decompress(p.content_encoding, &p.body, 1 << 20).unwrap();
        let json: serde_json::Value = serde_json::from_slice(&plain).unwrap();
        assert_eq!(
            json,
            serde_json::json!([
                {"check": "app.up", "host_name": "from-tag", "timestamp": 100, "status": 0, "message": "", "tags": ["env:prod"]},
                {"check": "db.up", "host_name": "own-host", "timestamp": 555, "status": 2, "message": "down \"hard\"", "tags": ["env:prod"]},
                {"check": "x", "host_name": "web-1", "timestamp": 555, "status": 3, "message": "", "tags": []},
            ])
        );
    }

    #[test]
    fn events_encode_as_events_payload_at_most_100_per_payload() {
        let (enc, registry) = encoder(CompressionKind::Zstd);
        let titles: Vec<String> = (0..250).map(|i| format!("deploy {i}")).collect();
        let tags = ["host:h2", "v:1"];
        let events = titles.iter().enumerate().map(|(i, t)| EventParts {
            title: t,
            text: "line one\nline two",
            timestamp: if i == 0 { Some(42) } else { None },
            hostname: None,
            aggregation_key: Some("deploys"),
            priority: "low",
            source_type_name: Some("ci"),
            alert_type: "success",
            tags: &tags[..],
        });
        let payloads = enc.encode_event_parts(events, 999).unwrap();
        assert_eq!(payloads.iter().map(|p| p.items).collect::<Vec<_>>(), [100, 100, 50]);
        let mut decoded = Vec::new();
        for p in &payloads {
            assert_eq!(
                (p.endpoint, p.content_type),
                (Endpoint::Events, "application/x-protobuf")
            );
            let plain = decompress(p.content_encoding, &p.body, 1 << 20).unwrap();
            decoded.extend(proto::EventsPayload::decode(plain.as_slice()).unwrap().events);
        }
        assert_eq!(decoded.len(), 250);
        assert_eq!(
            decoded[0],
            proto::Event {
                title: "deploy 0".into(),
                text: "line one\nline two".into(),
                ts: 42,
                priority: "low".into(),
                host: "h2".into(),
                tags: vec!["v:1".into()],
                alert_type: "success".into(),
                aggregation_key: "deploys".into(),
                source_type_name: "ci".into(),
            }
        );
        assert_eq!((decoded[249].title.as_str(), decoded[249].ts), ("deploy 249", 999));
        assert_eq!(
            registry.value("adp_payloads_encoded", &[("endpoint", "events")]),
            Some(3)
        );
    }

    #[test]
    fn nothing_to_encode_gives_no_payloads() {
        let (enc, _) = encoder(CompressionKind::Zstd);
        assert!(enc.encode_series_protos([]).unwrap().is_empty());
        assert!(enc
            .encode_check_parts(std::iter::empty::<CheckParts<'_, &str>>(), 0)
            .unwrap()
            .is_empty());
    }

    #[test]
    fn bad_configuration_names_the_key() {
        let registry = Registry::new();
        let config = EncoderConfig {
            serializer_zstd_compressor_level: 99,
            ..EncoderConfig::default()
        };
        let err = Encoder::new(config, &registry).unwrap_err().to_string();
        assert!(
            err.contains("serializer_zstd_compressor_level") && err.contains("99"),
            "{err}"
        );
        let config = EncoderConfig {
            serializer_max_series_points_per_payload: 0,
            ..EncoderConfig::default()
        };
        let err = Encoder::new(config, &registry).unwrap_err().to_string();
        assert!(err.contains("serializer_max_series_points_per_payload"), "{err}");
    }
}
