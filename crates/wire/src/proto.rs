//! Hand-written prost messages for `datadog.agentpayload`, matching
//! `proto/metrics/agent_payload.proto` in DataDog/agent-payload field for field.
//!
//! Writing them by hand (rather than generating them with `prost-build`) keeps
//! `protoc` out of the build on every host, including the Nix sandbox and the
//! armv7 cross build. The cost is that the field numbers here are the contract:
//! the `tests` module at the bottom checks each of them against bytes built by
//! hand from the `.proto` text, so a typo cannot go unnoticed.
//!
//! Nested messages of the `.proto` (`MetricPayload.MetricSeries`,
//! `SketchPayload.Sketch.Dogsketch`, ...) are flattened into this module under
//! their short names; the wire format does not carry message names.
//!
//! The test intake decodes with these same structs, so an encoder and a
//! decoder cannot drift apart silently; the hand-built byte tests are what tie
//! both to the real schema.

/// `datadog.agentpayload.CommonMetadata`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct CommonMetadata {
    /// Field 1.
    #[prost(string, tag = "1")]
    pub agent_version: String,
    /// Field 2.
    #[prost(string, tag = "2")]
    pub timezone: String,
    /// Field 3.
    #[prost(double, tag = "3")]
    pub current_epoch: f64,
    /// Field 4.
    #[prost(string, tag = "4")]
    pub internal_ip: String,
    /// Field 5.
    #[prost(string, tag = "5")]
    pub public_ip: String,
    /// Field 6.
    #[prost(string, tag = "6")]
    pub api_key: String,
}

/// `datadog.agentpayload.Origin` (fields 1–3 are reserved upstream).
#[derive(Clone, PartialEq, prost::Message)]
pub struct Origin {
    /// Field 4: the product that produced the metric (10 = Agent).
    #[prost(uint32, tag = "4")]
    pub origin_product: u32,
    /// Field 5: the product category (10 = DogStatsD).
    #[prost(uint32, tag = "5")]
    pub origin_category: u32,
    /// Field 6: the service within the category (0 for DogStatsD).
    #[prost(uint32, tag = "6")]
    pub origin_service: u32,
}

/// `datadog.agentpayload.Metadata`, carried by series and sketches.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Metadata {
    /// Field 1.
    #[prost(message, optional, tag = "1")]
    pub origin: Option<Origin>,
}

/// `datadog.agentpayload.MetricPayload`: the body of `POST /api/v2/series`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct MetricPayload {
    /// Field 1.
    #[prost(message, repeated, tag = "1")]
    pub series: Vec<MetricSeries>,
}

/// `MetricPayload.MetricType`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum MetricType {
    /// 0: not set (the intake treats it as a gauge).
    Unspecified = 0,
    /// 1: a count over the interval.
    Count = 1,
    /// 2: a per-second rate over the interval.
    Rate = 2,
    /// 3: a gauge.
    Gauge = 3,
}

/// `MetricPayload.MetricPoint`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct MetricPoint {
    /// Field 1: the value.
    #[prost(double, tag = "1")]
    pub value: f64,
    /// Field 2: seconds since the Unix epoch.
    #[prost(int64, tag = "2")]
    pub timestamp: i64,
}

/// `MetricPayload.Resource`, e.g. `{type: "host", name: <hostname>}`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Resource {
    /// Field 1: the resource type (`host`, `device`).
    #[prost(string, tag = "1")]
    pub r#type: String,
    /// Field 2: the resource name.
    #[prost(string, tag = "2")]
    pub name: String,
}

/// `MetricPayload.MetricSeries`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct MetricSeries {
    /// Field 1: at least `{type: "host", name: <hostname>}`.
    #[prost(message, repeated, tag = "1")]
    pub resources: Vec<Resource>,
    /// Field 2: the metric name.
    #[prost(string, tag = "2")]
    pub metric: String,
    /// Field 3: `key:value` tags.
    #[prost(string, repeated, tag = "3")]
    pub tags: Vec<String>,
    /// Field 4: the points.
    #[prost(message, repeated, tag = "4")]
    pub points: Vec<MetricPoint>,
    /// Field 5: a [`MetricType`].
    #[prost(enumeration = "MetricType", tag = "5")]
    pub r#type: i32,
    /// Field 6: the unit name.
    #[prost(string, tag = "6")]
    pub unit: String,
    /// Field 7: the source (check name); empty for DogStatsD.
    #[prost(string, tag = "7")]
    pub source_type_name: String,
    /// Field 8: seconds between points (the flush interval for counts and rates).
    #[prost(int64, tag = "8")]
    pub interval: i64,
    /// Field 9: origin metadata.
    #[prost(message, optional, tag = "9")]
    pub metadata: Option<Metadata>,
}

/// `datadog.agentpayload.SketchPayload`: the body of `POST /api/beta/sketches`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SketchPayload {
    /// Field 1.
    #[prost(message, repeated, tag = "1")]
    pub sketches: Vec<Sketch>,
    /// Field 2.
    #[prost(message, optional, tag = "2")]
    pub metadata: Option<CommonMetadata>,
}

/// `SketchPayload.Sketch`: one distribution context and its sketches.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Sketch {
    /// Field 1: the metric name.
    #[prost(string, tag = "1")]
    pub metric: String,
    /// Field 2: the hostname.
    #[prost(string, tag = "2")]
    pub host: String,
    /// Field 3: the legacy sketch encoding; never written, decoded for completeness.
    #[prost(message, repeated, tag = "3")]
    pub distributions: Vec<Distribution>,
    /// Field 4: `key:value` tags.
    #[prost(string, repeated, tag = "4")]
    pub tags: Vec<String>,
    // Fields 5 and 6 are reserved upstream.
    /// Field 7: one DDSketch per time bucket.
    #[prost(message, repeated, tag = "7")]
    pub dogsketches: Vec<Dogsketch>,
    /// Field 8: origin metadata.
    #[prost(message, optional, tag = "8")]
    pub metadata: Option<Metadata>,
}

/// Declares one of the `.proto`'s two sketch encodings: both begin with the
/// same six summary fields (`ts`, `cnt`, `min`, `max`, `avg`, `sum`, fields
/// 1–6); the fields given follow them.
macro_rules! sketch_message {
    ($(#[$meta:meta])* $name:ident { $($(#[$field_meta:meta])* $field:ident: $ty:ty,)* }) => {
        $(#[$meta])*
        #[derive(Clone, PartialEq, prost::Message)]
        pub struct $name {
            /// Field 1: bucket start, seconds since the Unix epoch.
            #[prost(int64, tag = "1")]
            pub ts: i64,
            /// Field 2: number of samples.
            #[prost(int64, tag = "2")]
            pub cnt: i64,
            /// Field 3: the smallest sample.
            #[prost(double, tag = "3")]
            pub min: f64,
            /// Field 4: the largest sample.
            #[prost(double, tag = "4")]
            pub max: f64,
            /// Field 5: the mean.
            #[prost(double, tag = "5")]
            pub avg: f64,
            /// Field 6: the sum.
            #[prost(double, tag = "6")]
            pub sum: f64,
            $($(#[$field_meta])* pub $field: $ty,)*
        }
    };
}

sketch_message! {
    /// `SketchPayload.Sketch.Distribution` (the legacy GK encoding).
    Distribution {
        /// Field 7.
        #[prost(double, repeated, tag = "7")]
        v: Vec<f64>,
        /// Field 8.
        #[prost(uint32, repeated, tag = "8")]
        g: Vec<u32>,
        /// Field 9.
        #[prost(uint32, repeated, tag = "9")]
        delta: Vec<u32>,
        /// Field 10.
        #[prost(double, repeated, tag = "10")]
        buf: Vec<f64>,
    }
}

sketch_message! {
    /// `SketchPayload.Sketch.Dogsketch`: one Agent DDSketch as sparse bins.
    Dogsketch {
        /// Field 7: bin keys (zigzag `sint32`, packed).
        #[prost(sint32, repeated, tag = "7")]
        k: Vec<i32>,
        /// Field 8: bin counts, parallel to `k`.
        #[prost(uint32, repeated, tag = "8")]
        n: Vec<u32>,
    }
}

/// `datadog.agentpayload.EventsPayload`: the body of `POST /api/v1/events_batch`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct EventsPayload {
    /// Field 1.
    #[prost(message, repeated, tag = "1")]
    pub events: Vec<Event>,
    /// Field 2.
    #[prost(message, optional, tag = "2")]
    pub metadata: Option<CommonMetadata>,
}

/// `EventsPayload.Event`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Event {
    /// Field 1.
    #[prost(string, tag = "1")]
    pub title: String,
    /// Field 2.
    #[prost(string, tag = "2")]
    pub text: String,
    /// Field 3: seconds since the Unix epoch.
    #[prost(int64, tag = "3")]
    pub ts: i64,
    /// Field 4: `normal` or `low`.
    #[prost(string, tag = "4")]
    pub priority: String,
    /// Field 5.
    #[prost(string, tag = "5")]
    pub host: String,
    /// Field 6.
    #[prost(string, repeated, tag = "6")]
    pub tags: Vec<String>,
    /// Field 7: `info`, `error`, `warning` or `success`.
    #[prost(string, tag = "7")]
    pub alert_type: String,
    /// Field 8.
    #[prost(string, tag = "8")]
    pub aggregation_key: String,
    /// Field 9.
    #[prost(string, tag = "9")]
    pub source_type_name: String,
}

#[cfg(test)]
mod tests {
    //! Every field number, checked against bytes written by hand from the
    //! `.proto` text: `key = field_number << 3 | wire_type`, wire types
    //! 0 = varint, 1 = 64-bit, 2 = length-delimited.
    use prost::Message;

    use super::*;

    const VARINT: u8 = 0;
    const I64: u8 = 1;
    const LEN: u8 = 2;

    fn key(field: u8, wire: u8) -> u8 {
        assert!(field < 16, "single-byte keys only in these tests");
        (field << 3) | wire
    }

    fn string_field(field: u8, s: &str) -> Vec<u8> {
        let mut out = vec![key(field, LEN), u8::try_from(s.len()).unwrap()];
        out.extend_from_slice(s.as_bytes());
        out
    }

    fn message_field(field: u8, body: &[u8]) -> Vec<u8> {
        let mut out = vec![key(field, LEN), u8::try_from(body.len()).unwrap()];
        out.extend_from_slice(body);
        out
    }

    fn double_field(field: u8, v: f64) -> Vec<u8> {
        let mut out = vec![key(field, I64)];
        out.extend_from_slice(&v.to_le_bytes());
        out
    }

    fn varint_field(field: u8, v: u8) -> Vec<u8> {
        assert!(v < 0x80);
        vec![key(field, VARINT), v]
    }

    #[test]
    fn metric_series_field_numbers_match_the_proto() {
        let resource = [string_field(1, "host"), string_field(2, "web-1")].concat();
        let point = [double_field(1, 2.5), varint_field(2, 100)].concat();
        let origin = [varint_field(4, 10), varint_field(5, 10), varint_field(6, 3)].concat();
        let metadata = message_field(1, &origin);
        let series = [
            message_field(1, &resource),
            string_field(2, "m"),
            string_field(3, "a:b"),
            message_field(4, &point),
            varint_field(5, 2),
            string_field(6, "byte"),
            string_field(7, "src"),
            varint_field(8, 10),
            message_field(9, &metadata),
        ]
        .concat();
        let payload = message_field(1, &series);

        let decoded = MetricPayload::decode(payload.as_slice()).unwrap();
        let expected = MetricPayload {
            series: vec![MetricSeries {
                resources: vec![Resource {
                    r#type: "host".into(),
                    name: "web-1".into(),
                }],
                metric: "m".into(),
                tags: vec!["a:b".into()],
                points: vec![MetricPoint {
                    value: 2.5,
                    timestamp: 100,
                }],
                r#type: MetricType::Rate as i32,
                unit: "byte".into(),
                source_type_name: "src".into(),
                interval: 10,
                metadata: Some(Metadata {
                    origin: Some(Origin {
                        origin_product: 10,
                        origin_category: 10,
                        origin_service: 3,
                    }),
                }),
            }],
        };
        assert_eq!(decoded, expected);
        // prost writes fields in tag order, as the hand-built bytes are.
        assert_eq!(expected.encode_to_vec(), payload);
    }

    #[test]
    fn metric_type_numbers_match_the_proto() {
        assert_eq!(MetricType::Unspecified as i32, 0);
        assert_eq!(MetricType::Count as i32, 1);
        assert_eq!(MetricType::Rate as i32, 2);
        assert_eq!(MetricType::Gauge as i32, 3);
    }

    #[test]
    fn sketch_field_numbers_match_the_proto() {
        // Packed sint32 keys [-1, 1] zigzag to [1, 2]; packed uint32 counts [3, 4].
        let dogsketch = [
            varint_field(1, 100),
            varint_field(2, 7),
            double_field(3, -1.0),
            double_field(4, 2.0),
            double_field(5, 0.5),
            double_field(6, 3.5),
            message_field(7, &[1, 2]),
            message_field(8, &[3, 4]),
        ]
        .concat();
        let distribution = [varint_field(1, 5), varint_field(2, 1)].concat();
        let origin = [varint_field(4, 10)].concat();
        let sketch = [
            string_field(1, "d"),
            string_field(2, "h"),
            message_field(3, &distribution),
            string_field(4, "t:1"),
            message_field(7, &dogsketch),
            message_field(8, &message_field(1, &origin)),
        ]
        .concat();
        let common = [string_field(1, "7.0"), string_field(6, "key")].concat();
        let payload = [message_field(1, &sketch), message_field(2, &common)].concat();

        let decoded = SketchPayload::decode(payload.as_slice()).unwrap();
        let s = &decoded.sketches[0];
        assert_eq!(
            (s.metric.as_str(), s.host.as_str(), s.tags.as_slice()),
            ("d", "h", &["t:1".to_owned()][..])
        );
        assert_eq!((s.distributions[0].ts, s.distributions[0].cnt), (5, 1));
        let d = &s.dogsketches[0];
        assert_eq!((d.ts, d.cnt, d.min, d.max, d.avg, d.sum), (100, 7, -1.0, 2.0, 0.5, 3.5));
        assert_eq!(d.k, vec![-1, 1]);
        assert_eq!(d.n, vec![3, 4]);
        assert_eq!(s.metadata.as_ref().unwrap().origin.as_ref().unwrap().origin_product, 10);
        let m = decoded.metadata.unwrap();
        assert_eq!((m.agent_version.as_str(), m.api_key.as_str()), ("7.0", "key"));

        // Our encoding of the dogsketch is byte-identical to the hand-built one.
        assert_eq!(d.encode_to_vec(), dogsketch);
    }

    #[test]
    fn event_field_numbers_match_the_proto() {
        let event = [
            string_field(1, "T"),
            string_field(2, "x"),
            varint_field(3, 42),
            string_field(4, "low"),
            string_field(5, "h"),
            string_field(6, "a:b"),
            string_field(7, "error"),
            string_field(8, "k"),
            string_field(9, "s"),
        ]
        .concat();
        let payload = message_field(1, &event);
        let decoded = EventsPayload::decode(payload.as_slice()).unwrap();
        let expected = Event {
            title: "T".into(),
            text: "x".into(),
            ts: 42,
            priority: "low".into(),
            host: "h".into(),
            tags: vec!["a:b".into()],
            alert_type: "error".into(),
            aggregation_key: "k".into(),
            source_type_name: "s".into(),
        };
        assert_eq!(decoded.events, vec![expected.clone()]);
        assert_eq!(expected.encode_to_vec(), event);
    }
}
