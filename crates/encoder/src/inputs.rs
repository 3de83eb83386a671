//! The agent's entry points: the aggregator's [`Series`] and
//! [`SketchSeries`], DogStatsD's [`ServiceCheck`]s and [`Event`]s (all
//! `adp-model`) in, payloads out. Each method borrows its items and hands
//! their fields to the parts path of [`crate::encode`], so conversion
//! allocates only the strings of the one item being encoded.

use std::collections::VecDeque;

use adp_model::{Event, Series, ServiceCheck, SketchSeries};
use adp_wire::EncodedPayload;

use crate::direct::{dogsketch_ref, SketchWriter};
use crate::encode::Lazy;
use crate::items::{CheckParts, EventParts};
use crate::{EncodeError, Encoder};

impl Encoder {
    /// Encodes aggregated series into `/api/v2/series` payloads, each built
    /// when the previous one is taken: a caller that sends every payload
    /// before asking for the next holds one compressed payload at a time, not
    /// a whole flush's.
    pub fn series_payloads<'a>(
        &'a self,
        series: &'a [Series],
    ) -> impl Iterator<Item = Result<EncodedPayload, EncodeError>> + 'a {
        Lazy::series(
            self,
            series.iter().map(|s| {
                (
                    s.name.as_str(),
                    "",
                    s.context.tags().iter().map(|t| t.as_str()),
                    s.kind,
                    s.interval_secs,
                    s.points.as_slice(),
                )
            }),
        )
    }

    /// Encodes distribution sketches into `/api/beta/sketches` payloads, each
    /// built when the previous one is taken (as [`Self::series_payloads`]).
    pub fn sketch_payloads<'a>(
        &'a self,
        sketches: &'a [SketchSeries],
    ) -> impl Iterator<Item = Result<EncodedPayload, EncodeError>> + 'a {
        let mut items = sketches.iter();
        Lazy {
            writer: Some(self.sketch_writer()),
            next: move |w: &mut SketchWriter<'a>| {
                let s = items.next()?;
                let tags = s.context.tags().iter().map(|t| t.as_str());
                Some(w.push(
                    s.context.name().as_str(),
                    tags,
                    s.points.iter().map(|(ts, sk)| dogsketch_ref(*ts, sk)),
                ))
            },
            pending: VecDeque::new(),
        }
    }

    /// Encodes service checks into `/api/v1/check_run` JSON payloads; checks
    /// without a timestamp get `now` (Unix seconds).
    pub fn encode_service_checks(&self, checks: &[ServiceCheck], now: i64) -> Result<Vec<EncodedPayload>, EncodeError> {
        self.checks_from_parts(
            checks.iter().map(|c| CheckParts {
                name: &c.name,
                status: c.status as u8,
                timestamp: c.timestamp,
                hostname: c.hostname.as_deref(),
                message: c.message.as_deref(),
                tags: c.tags.as_slice(),
            }),
            now,
        )
    }

    /// Encodes events into `/api/v1/events_batch` protobuf payloads; events
    /// without a timestamp get `now` (Unix seconds).
    pub fn encode_events(&self, events: &[Event], now: i64) -> Result<Vec<EncodedPayload>, EncodeError> {
        self.events_from_parts(
            events.iter().map(|e| EventParts {
                title: &e.title,
                text: &e.text,
                timestamp: e.timestamp,
                hostname: e.hostname.as_deref(),
                aggregation_key: e.aggregation_key.as_deref(),
                priority: e.priority.as_str(),
                source_type_name: e.source_type_name.as_deref(),
                alert_type: e.alert_type.as_str(),
                tags: e.tags.as_slice(),
            }),
            now,
        )
    }
}

#[cfg(test)]
mod tests {
    use adp_model::{Context, EventAlertType, EventPriority, SeriesKind, ServiceCheckStatus};
    use adp_wire::decompress;
    use adp_wire::proto;
    use ddsketch::AgentSketch;
    use prost::Message;
    use stringtheory::MetaString;

    use super::*;
    use crate::EncoderConfig;

    fn context(name: &str, tags: &[&str]) -> Context {
        let mut tags: Vec<MetaString> = tags.iter().map(|t| MetaString::from(*t)).collect();
        tags.sort();
        Context::from_parts(7, MetaString::from(name), tags.into_boxed_slice())
    }

    fn encoder() -> Encoder {
        crate::test_encoder("board", EncoderConfig::default().serializer_compressor_kind).0
    }

    fn plain(p: &EncodedPayload) -> Vec<u8> {
        decompress(p.content_encoding, &p.body, 1 << 24).unwrap()
    }

    #[test]
    fn aggregated_series_keep_name_kind_interval_and_points() {
        let ctx = context("req", &["b:2", "a:1", "host:other"]);
        let series = [
            Series {
                name: "req.count".into(),
                context: ctx.clone(),
                kind: SeriesKind::Rate,
                interval_secs: 10,
                points: vec![(10, 0.5)],
            },
            Series {
                name: "req.max".into(),
                context: ctx,
                kind: SeriesKind::Gauge,
                interval_secs: 10,
                points: vec![(10, 3.0)],
            },
            Series {
                name: "ts.count".into(),
                context: context("ts.count", &[]),
                kind: SeriesKind::Count,
                interval_secs: 0,
                points: vec![(1_700_000_000, 4.0)],
            },
        ];
        let payloads = encoder()
            .series_payloads(&series)
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        let decoded = proto::MetricPayload::decode(plain(&payloads[0]).as_slice())
            .unwrap()
            .series;
        let summary: Vec<_> = decoded
            .iter()
            .map(|s| {
                (
                    s.metric.as_str(),
                    s.r#type,
                    s.interval,
                    s.resources[0].name.as_str(),
                    s.tags.clone(),
                    s.points[0].value,
                )
            })
            .collect();
        assert_eq!(
            summary,
            [
                (
                    "req.count",
                    2,
                    10,
                    "other",
                    vec!["a:1".to_owned(), "b:2".to_owned()],
                    0.5
                ),
                ("req.max", 3, 10, "other", vec!["a:1".to_owned(), "b:2".to_owned()], 3.0),
                ("ts.count", 1, 0, "board", vec![], 4.0),
            ]
        );
    }

    #[test]
    fn sketches_carry_the_agent_sketch_summary_and_bins() {
        let mut sketch = AgentSketch::new();
        for v in [1.0, 2.0, 2.0, 1000.0, -5.0, 0.0] {
            sketch.insert(v);
        }
        let (k, n) = sketch.to_dogsketch_parts();
        let s = SketchSeries {
            context: context("lat", &["x:y"]),
            interval_secs: 10,
            points: vec![(20, sketch.clone())],
        };
        let payloads = encoder().sketch_payloads(&[s]).collect::<Result<Vec<_>, _>>().unwrap();
        let decoded = proto::SketchPayload::decode(plain(&payloads[0]).as_slice()).unwrap();
        let d = &decoded.sketches[0].dogsketches[0];
        assert_eq!(
            (decoded.sketches[0].metric.as_str(), decoded.sketches[0].host.as_str()),
            ("lat", "board")
        );
        assert_eq!((d.ts, d.cnt, d.min, d.max, d.sum), (20, 6, -5.0, 1000.0, 1000.0));
        assert_eq!((d.k.clone(), d.n.clone()), (k, n));
        let back = AgentSketch::from_dogsketch_parts(d.cnt, d.min, d.max, d.sum, d.avg, &d.k, &d.n).unwrap();
        assert_eq!(back.quantile(0.5), sketch.quantile(0.5));
    }

    #[test]
    fn dogstatsd_checks_and_events_are_encoded() {
        let check = ServiceCheck {
            name: "svc".into(),
            status: ServiceCheckStatus::Warning,
            timestamp: None,
            hostname: None,
            message: Some("slow".into()),
            tags: vec!["host:h9".into(), "z:1".into()],
        };
        let payloads = encoder().encode_service_checks(&[check], 77).unwrap();
        let json: serde_json::Value = serde_json::from_slice(&plain(&payloads[0])).unwrap();
        assert_eq!(
            json,
            serde_json::json!([{"check": "svc", "host_name": "h9", "timestamp": 77, "status": 1, "message": "slow", "tags": ["z:1"]}])
        );

        let event = Event {
            title: "t".into(),
            text: "x\ny".into(),
            timestamp: Some(5),
            hostname: Some("own".into()),
            aggregation_key: None,
            priority: EventPriority::Low,
            source_type_name: None,
            alert_type: EventAlertType::Warning,
            tags: vec!["host:ignored".into()],
        };
        let payloads = encoder().encode_events(&[event], 77).unwrap();
        let decoded = proto::EventsPayload::decode(plain(&payloads[0]).as_slice()).unwrap();
        let e = &decoded.events[0];
        assert_eq!(
            (
                e.ts,
                e.host.as_str(),
                e.priority.as_str(),
                e.alert_type.as_str(),
                e.tags.len()
            ),
            (5, "own", "low", "warning", 0)
        );
    }
}
