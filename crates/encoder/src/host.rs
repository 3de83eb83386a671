//! What the board as a host adds to the payloads: the system checks' series
//! (as the Agent's check sampler sends them), the v5 host-metadata payload
//! for `/intake/`, and the host tags added to every series and sketch while
//! `expected_tags_duration` lasts.
//!
//! - **Check series** carry their run's timestamp and interval 0,
//!   `source_type_name: "System"` (the check sampler's), and the origin the
//!   Agent's serializer gives a core check: product 10 (Agent), category 11
//!   (integration metrics) and the check's own service (cpu 202, load 203,
//!   memory 196, disk 48, io 193, network 114, uptime 194, file_handle 191,
//!   ntp 184). `host:` and `device:` tags are handled as for DogStatsD series.
//! - **Host metadata** is the JSON the caller built, compressed with
//!   `serializer_compressor_kind` like every other payload (the Agent's
//!   `sendMetadata`), as one payload under `serializer_max_payload_size` (the
//!   Agent does not split it either: a larger one is dropped, logged and
//!   counted).
//! - **Host tags** ([`Encoder::set_host_tags`]) are appended to the tags of
//!   every series and sketch, DogStatsD's and the checks' (the Agent adds them
//!   at flush, in its aggregator); service checks and events keep theirs.

use adp_model::SeriesKind;
use adp_wire::{proto, EncodedPayload, Endpoint};

use crate::items::split_tags;
use crate::split::Framing;
use crate::{EncodeError, Encoder};

/// The check sampler's `source_type_name`.
const CHECK_SOURCE_TYPE_NAME: &str = "System";
const ORIGIN_PRODUCT_AGENT: u32 = 10;
const ORIGIN_CATEGORY_INTEGRATION_METRICS: u32 = 11;

/// The origin service of a core check's series (the Agent's
/// `metricSourceToOriginService`); 0 for a check it does not know.
pub fn check_origin_service(check: &str) -> u32 {
    match check {
        "disk" => 48,
        "network" => 114,
        "ntp" => 184,
        "file_handle" => 191,
        "io" => 193,
        "uptime" => 194,
        "memory" => 196,
        "cpu" => 202,
        "load" => 203,
        _ => 0,
    }
}

/// One point of one check series, borrowed from the check's output.
#[derive(Clone, Copy, Debug)]
pub struct CheckSeriesParts<'a> {
    /// The check that sent it (`cpu`), which names its origin service.
    pub check: &'a str,
    /// The metric name.
    pub name: &'a str,
    /// Its tags.
    pub tags: &'a [String],
    /// `Gauge` (values and computed rates) or `Count` (monotonic counts).
    pub kind: SeriesKind,
    /// Unix seconds of the run.
    pub timestamp: i64,
    /// The value.
    pub value: f64,
}

impl Encoder {
    /// Adds `tags` to every series and sketch encoded from now on; an empty
    /// slice stops adding them.
    pub fn set_host_tags(&mut self, tags: &[String]) {
        self.host_tags.clear();
        self.host_tags.extend_from_slice(tags);
    }

    /// The host tags being added (see [`Encoder::set_host_tags`]).
    pub fn host_tags(&self) -> &[String] {
        &self.host_tags
    }

    /// Encodes check series into `/api/v2/series` payloads, each built when
    /// the previous one is taken (as [`Encoder::series_payloads`]).
    pub fn check_series_payloads<'a>(
        &'a self,
        series: impl IntoIterator<Item = CheckSeriesParts<'a>> + 'a,
    ) -> impl Iterator<Item = Result<EncodedPayload, EncodeError>> + 'a {
        let host = self.config.hostname.as_str();
        let protos = series.into_iter().map(move |s| {
            let kind = match s.kind {
                SeriesKind::Count => proto::MetricType::Count,
                SeriesKind::Rate => proto::MetricType::Rate,
                SeriesKind::Gauge => proto::MetricType::Gauge,
            };
            // A few series per run: prost's structs, not the flush's
            // hand-written encoding.
            let mut split = split_tags(s.tags, true);
            let resources = split.series_resources(host);
            let mut tags = split.tags;
            tags.extend_from_slice(&self.host_tags);
            proto::MetricSeries {
                resources,
                metric: s.name.to_owned(),
                tags,
                points: vec![proto::MetricPoint {
                    value: s.value,
                    timestamp: s.timestamp,
                }],
                r#type: kind as i32,
                unit: String::new(),
                source_type_name: CHECK_SOURCE_TYPE_NAME.to_owned(),
                interval: 0,
                metadata: Some(proto::Metadata {
                    origin: Some(proto::Origin {
                        origin_product: ORIGIN_PRODUCT_AGENT,
                        origin_category: ORIGIN_CATEGORY_INTEGRATION_METRICS,
                        origin_service: check_origin_service(s.check),
                    }),
                }),
            }
        });
        self.protobuf_payloads(Endpoint::Series, protos, 1, |s: &proto::MetricSeries| {
            (s.metric.as_str(), u64::try_from(s.points.len()).unwrap_or(u64::MAX))
        })
    }

    /// The host-metadata JSON `body` as an `/intake/` payload, compressed;
    /// none when it exceeds the payload limits on its own (logged, counted in
    /// `adp_payloads_items_dropped_total{endpoint="intake"}`).
    pub fn host_metadata_payload(&self, body: &[u8]) -> Result<Option<EncodedPayload>, EncodeError> {
        let endpoint = Endpoint::Intake;
        // One JSON document, no framing around it.
        let mut splitter = self.splitter(endpoint, Framing::PROTOBUF);
        self.push(endpoint, &mut splitter, body, 0, &"host metadata")?;
        Ok(self.finish(endpoint, splitter)?.into_iter().next())
    }
}

#[cfg(test)]
mod tests {
    use adp_model::{Context, Series};
    use adp_telemetry::Registry;
    use adp_wire::{decompress, CompressionKind};
    use prost::Message;
    use stringtheory::MetaString;

    use super::*;
    use crate::EncoderConfig;

    fn encoder(kind: CompressionKind) -> (Encoder, Registry) {
        crate::test_encoder("board-9", kind)
    }

    fn decode(p: &EncodedPayload) -> Vec<proto::MetricSeries> {
        let plain = decompress(p.content_encoding, &p.body, 1 << 24).unwrap();
        proto::MetricPayload::decode(plain.as_slice()).unwrap().series
    }

    #[test]
    fn check_series_carry_their_timestamp_the_system_source_and_the_checks_origin() {
        let (encoder, _) = encoder(CompressionKind::Zstd);
        let disk_tags = vec!["device:/dev/mmcblk0p2".to_owned(), "device_name:mmcblk0p2".to_owned()];
        let parts = [
            CheckSeriesParts {
                check: "cpu",
                name: "system.cpu.user",
                tags: &[],
                kind: SeriesKind::Gauge,
                timestamp: 1_700_000_015,
                value: 12.5,
            },
            CheckSeriesParts {
                check: "disk",
                name: "system.disk.read_time",
                tags: &disk_tags,
                kind: SeriesKind::Count,
                timestamp: 1_700_000_015,
                value: 40.0,
            },
        ];
        let payloads: Vec<_> = encoder.check_series_payloads(parts).collect::<Result<_, _>>().unwrap();
        assert_eq!(payloads.len(), 1);
        let series = decode(&payloads[0]);
        let cpu = &series[0];
        assert_eq!(
            (cpu.metric.as_str(), cpu.r#type, cpu.interval),
            ("system.cpu.user", 3, 0)
        );
        assert_eq!((cpu.points[0].timestamp, cpu.points[0].value), (1_700_000_015, 12.5));
        assert_eq!(cpu.source_type_name, "System");
        assert_eq!(cpu.resources[0].name, "board-9");
        let origin = cpu.metadata.as_ref().unwrap().origin.as_ref().unwrap();
        assert_eq!(
            (origin.origin_product, origin.origin_category, origin.origin_service),
            (10, 11, 202)
        );
        let disk = &series[1];
        assert_eq!(disk.r#type, 1, "count");
        assert_eq!(disk.tags, ["device_name:mmcblk0p2"]);
        assert_eq!(disk.resources[1].name, "/dev/mmcblk0p2", "device: becomes a resource");
        assert_eq!(
            disk.metadata.as_ref().unwrap().origin.as_ref().unwrap().origin_service,
            48
        );
        assert_eq!(check_origin_service("jetson"), 0);
    }

    #[test]
    fn host_tags_are_added_to_series_and_sketches_until_cleared() {
        let (mut encoder, _) = encoder(CompressionKind::Zstd);
        let context = Context::from_parts(1, MetaString::from("app.hits"), Box::new([MetaString::from("a:1")]));
        let dogstatsd = [Series {
            name: MetaString::from("app.hits"),
            context,
            kind: SeriesKind::Gauge,
            interval_secs: 10,
            points: vec![(1_700_000_000, 1.0)],
        }];
        let check = [CheckSeriesParts {
            check: "load",
            name: "system.load.1",
            tags: &[],
            kind: SeriesKind::Gauge,
            timestamp: 1_700_000_000,
            value: 0.5,
        }];
        let tags_of = |encoder: &Encoder| {
            let a = decode(&encoder.series_payloads(&dogstatsd).next().unwrap().unwrap())[0]
                .tags
                .clone();
            let b = decode(&encoder.check_series_payloads(check).next().unwrap().unwrap())[0]
                .tags
                .clone();
            (a, b)
        };
        encoder.set_host_tags(&["env:prod".to_owned(), "team:iot".to_owned()]);
        assert_eq!(encoder.host_tags(), ["env:prod", "team:iot"]);
        assert_eq!(
            tags_of(&encoder),
            (
                vec!["a:1".into(), "env:prod".into(), "team:iot".into()],
                vec!["env:prod".into(), "team:iot".into()]
            )
        );
        encoder.set_host_tags(&[]);
        assert_eq!(tags_of(&encoder), (vec!["a:1".into()], vec![]));
    }

    #[test]
    fn host_metadata_is_one_compressed_json_payload_for_intake() {
        for kind in [CompressionKind::Zstd, CompressionKind::Zlib, CompressionKind::None] {
            let (encoder, registry) = encoder(kind);
            let body = br#"{"apiKey":"k","internalHostname":"board-9","host-tags":{"system":["env:prod"]}}"#;
            let p = encoder.host_metadata_payload(body).unwrap().unwrap();
            assert_eq!(p.endpoint, Endpoint::Intake);
            assert_eq!(
                (p.content_type, p.content_encoding),
                ("application/json", kind.content_encoding())
            );
            assert_eq!(decompress(p.content_encoding, &p.body, 1 << 20).unwrap(), body);
            assert_eq!(
                registry.value("adp_payloads_encoded", &[("endpoint", "intake")]),
                Some(1)
            );
        }
        let registry = Registry::new();
        let tiny = Encoder::new(
            EncoderConfig {
                serializer_max_uncompressed_payload_size: 10,
                ..EncoderConfig::default()
            },
            &registry,
        )
        .unwrap();
        assert_eq!(tiny.host_metadata_payload(&[b'x'; 100]).unwrap(), None);
        assert_eq!(
            registry.value(
                "adp_payloads_items_dropped",
                &[("endpoint", "intake"), ("reason", "too_big")]
            ),
            Some(1)
        );
    }
}
