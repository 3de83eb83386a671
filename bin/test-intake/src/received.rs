//! What the intake received, decoded: the [`Received`] snapshot and the
//! decoders that fill it.
//!
//! Bodies are decompressed by their `Content-Encoding` (zstd, deflate,
//! identity), then decoded as the endpoint's payload: prost for protobuf
//! (with the same message structs the encoders use, whose field numbers are
//! tested against hand-built bytes in `adp-wire`), serde for JSON.

use std::collections::BTreeMap;

use adp_wire::{proto, Endpoint};
use serde::{Deserialize, Serialize};

/// Largest body the intake inflates (a zstd bomb must fail, not OOM).
pub const MAX_DECOMPRESSED_BYTES: u64 = 64 << 20;

/// One decoded v2 series.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReceivedSeries {
    /// Metric name.
    pub metric: String,
    /// `count`, `rate`, `gauge` or `unspecified`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Interval in seconds.
    pub interval: i64,
    /// The `host` resource's name (empty when absent).
    pub host: String,
    /// Tags.
    pub tags: Vec<String>,
    /// `(timestamp, value)` points.
    pub points: Vec<(i64, f64)>,
    /// Resources other than the host, as `(type, name)`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<(String, String)>,
    /// Unit, when set.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub unit: String,
    /// Source type name, when set.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub source_type_name: String,
    /// Origin `(product, category, service)`, when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<(u32, u32, u32)>,
}

/// One decoded DDSketch of a sketch context.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReceivedDogsketch {
    /// Bucket timestamp.
    pub ts: i64,
    /// Sample count.
    pub cnt: i64,
    /// Minimum.
    pub min: f64,
    /// Maximum.
    pub max: f64,
    /// Average.
    pub avg: f64,
    /// Sum.
    pub sum: f64,
    /// Bin keys.
    pub k: Vec<i32>,
    /// Bin counts.
    pub n: Vec<u32>,
}

/// One decoded sketch context.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReceivedSketch {
    /// Metric name.
    pub metric: String,
    /// Hostname.
    pub host: String,
    /// Tags.
    pub tags: Vec<String>,
    /// The sketches, one per time bucket.
    pub dogsketches: Vec<ReceivedDogsketch>,
}

/// One service check, as `/api/v1/check_run` carries it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReceivedServiceCheck {
    /// Check name.
    pub check: String,
    /// Hostname.
    pub host_name: String,
    /// Unix seconds.
    pub timestamp: i64,
    /// 0 ok, 1 warning, 2 critical, 3 unknown.
    pub status: u8,
    /// Message.
    pub message: String,
    /// Tags.
    pub tags: Vec<String>,
}

/// One decoded event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReceivedEvent {
    /// Title.
    pub title: String,
    /// Text.
    pub text: String,
    /// Unix seconds.
    pub ts: i64,
    /// Priority.
    pub priority: String,
    /// Hostname.
    pub host: String,
    /// Tags.
    pub tags: Vec<String>,
    /// Alert type.
    pub alert_type: String,
    /// Aggregation key.
    pub aggregation_key: String,
    /// Source type name.
    pub source_type_name: String,
}

/// The headers and outcome of one request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestInfo {
    /// `series`, `sketches`, `check_run`, `events`, `validate` or `unknown`.
    pub endpoint: String,
    /// HTTP method.
    pub method: String,
    /// Request path.
    pub path: String,
    /// Whether a non-empty `DD-Api-Key` header was present (the key itself is never kept).
    pub api_key_present: bool,
    /// `Content-Encoding`.
    pub content_encoding: Option<String>,
    /// `Content-Type`.
    pub content_type: Option<String>,
    /// `User-Agent`.
    pub user_agent: Option<String>,
    /// `DD-Agent-Version`.
    pub agent_version: Option<String>,
    /// Body bytes as sent (compressed).
    pub body_bytes: u64,
    /// The status answered (0 when the connection was closed instead).
    pub status: u16,
}

/// Everything received since start or the last reset.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Received {
    /// Decoded series, in arrival order.
    pub series: Vec<ReceivedSeries>,
    /// Decoded sketch contexts.
    pub sketches: Vec<ReceivedSketch>,
    /// Decoded service checks.
    pub service_checks: Vec<ReceivedServiceCheck>,
    /// Decoded events.
    pub events: Vec<ReceivedEvent>,
    /// Host-metadata payloads (`/intake/`), as the JSON objects they are, in
    /// arrival order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub host_metadata: Vec<serde_json::Value>,
    /// Requests per endpoint name, whatever their outcome.
    pub requests: BTreeMap<String, u64>,
    /// Requests accepted (202) and decoded, per endpoint name.
    pub accepted: BTreeMap<String, u64>,
    /// Body bytes received per endpoint name (compressed, as sent).
    pub bytes: BTreeMap<String, u64>,
    /// Headers and outcome of each request (not kept in blackhole mode).
    pub request_log: Vec<RequestInfo>,
    /// Why requests were rejected with 400/403/404/405.
    pub errors: Vec<String>,
    /// Payloads answered with an injected status (a [`Behaviour`](crate::Behaviour)
    /// fault), decoded, in arrival order: what the agent sent but the intake
    /// did not accept. A payload retried after a 503 appears once per refusal.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub refused: Vec<Decoded>,
    /// The most intake requests (payloads, not key checks) handled at once:
    /// how many a client sends concurrently when the intake is slow.
    #[serde(default)]
    pub max_in_flight: u64,
}

impl Received {
    /// Series with this metric name.
    pub fn series_named(&self, metric: &str) -> Vec<&ReceivedSeries> {
        self.series.iter().filter(|s| s.metric == metric).collect()
    }

    /// The `host-tags.system` of the last host-metadata payload (empty when
    /// none came).
    pub fn host_tags(&self) -> Vec<String> {
        self.host_metadata
            .last()
            .and_then(|m| m["host-tags"]["system"].as_array())
            .map(|tags| tags.iter().filter_map(|t| t.as_str().map(str::to_owned)).collect())
            .unwrap_or_default()
    }

    /// Sketch contexts with this metric name.
    pub fn sketches_named(&self, metric: &str) -> Vec<&ReceivedSketch> {
        self.sketches.iter().filter(|s| s.metric == metric).collect()
    }

    /// The request log without the API key checks (`GET /api/v1/validate`,
    /// which the agent sends at start and hourly): the payload requests.
    pub fn payload_requests(&self) -> impl Iterator<Item = &RequestInfo> {
        self.request_log.iter().filter(|q| q.endpoint != "validate")
    }

    /// Requests seen for an endpoint, whatever their outcome.
    pub fn requests_to(&self, endpoint: Endpoint) -> u64 {
        self.requests.get(endpoint.as_str()).copied().unwrap_or(0)
    }

    /// Requests accepted for an endpoint.
    pub fn accepted_by(&self, endpoint: Endpoint) -> u64 {
        self.accepted.get(endpoint.as_str()).copied().unwrap_or(0)
    }

    /// The sum of every point value of series named `metric`.
    pub fn series_value_sum(&self, metric: &str) -> f64 {
        self.series_named(metric)
            .iter()
            .flat_map(|s| s.points.iter())
            .map(|p| p.1)
            .sum()
    }
}

/// One payload, decoded.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Decoded {
    /// `/api/v2/series`.
    Series {
        /// The series.
        series: Vec<ReceivedSeries>,
    },
    /// `/api/beta/sketches`.
    Sketches {
        /// The sketch contexts.
        sketches: Vec<ReceivedSketch>,
    },
    /// `/api/v1/check_run`.
    ServiceChecks {
        /// The checks.
        service_checks: Vec<ReceivedServiceCheck>,
    },
    /// `/api/v1/events_batch`.
    Events {
        /// The events.
        events: Vec<ReceivedEvent>,
    },
    /// `/intake/`: the v5 host-metadata payload.
    HostMetadata {
        /// The payload (a JSON object with `internalHostname`, `host-tags`, …).
        host_metadata: serde_json::Value,
    },
}

impl Decoded {
    /// Appends the decoded items to `received`.
    pub(crate) fn record(self, received: &mut Received) {
        match self {
            Self::Series { series } => received.series.extend(series),
            Self::Sketches { sketches } => received.sketches.extend(sketches),
            Self::ServiceChecks { service_checks } => received.service_checks.extend(service_checks),
            Self::Events { events } => received.events.extend(events),
            Self::HostMetadata { host_metadata } => received.host_metadata.push(host_metadata),
        }
    }
}

fn metric_type_name(t: i32) -> String {
    match proto::MetricType::try_from(t) {
        Ok(proto::MetricType::Count) => "count",
        Ok(proto::MetricType::Rate) => "rate",
        Ok(proto::MetricType::Gauge) => "gauge",
        Ok(proto::MetricType::Unspecified) => "unspecified",
        Err(_) => return format!("invalid({t})"),
    }
    .to_owned()
}

fn series(s: proto::MetricSeries) -> ReceivedSeries {
    let mut host = String::new();
    let mut resources = Vec::new();
    for r in s.resources {
        if r.r#type == "host" && host.is_empty() {
            host = r.name;
        } else {
            resources.push((r.r#type, r.name));
        }
    }
    ReceivedSeries {
        metric: s.metric,
        kind: metric_type_name(s.r#type),
        interval: s.interval,
        host,
        tags: s.tags,
        points: s.points.into_iter().map(|p| (p.timestamp, p.value)).collect(),
        resources,
        unit: s.unit,
        source_type_name: s.source_type_name,
        origin: s
            .metadata
            .and_then(|m| m.origin)
            .map(|o| (o.origin_product, o.origin_category, o.origin_service)),
    }
}

fn sketch(s: proto::Sketch) -> ReceivedSketch {
    ReceivedSketch {
        metric: s.metric,
        host: s.host,
        tags: s.tags,
        dogsketches: s
            .dogsketches
            .into_iter()
            .map(|d| ReceivedDogsketch {
                ts: d.ts,
                cnt: d.cnt,
                min: d.min,
                max: d.max,
                avg: d.avg,
                sum: d.sum,
                k: d.k,
                n: d.n,
            })
            .collect(),
    }
}

fn event(e: proto::Event) -> ReceivedEvent {
    ReceivedEvent {
        title: e.title,
        text: e.text,
        ts: e.ts,
        priority: e.priority,
        host: e.host,
        tags: e.tags,
        alert_type: e.alert_type,
        aggregation_key: e.aggregation_key,
        source_type_name: e.source_type_name,
    }
}

/// Decodes a protobuf payload `P` and converts each item of its list.
fn each<P: prost::Message + Default, T, U>(
    body: &[u8],
    list: impl FnOnce(P) -> Vec<T>,
    convert: impl FnMut(T) -> U,
) -> Result<Vec<U>, prost::DecodeError> {
    Ok(list(P::decode(body)?).into_iter().map(convert).collect())
}

/// Decompresses and decodes one intake body.
pub fn decode(endpoint: Endpoint, content_encoding: &str, body: &[u8]) -> Result<Decoded, String> {
    let plain =
        adp_wire::decompress(content_encoding, body, MAX_DECOMPRESSED_BYTES).map_err(|e| adp_fmt::error_chain(&e))?;
    let what = endpoint.as_str();
    let bad_protobuf = |e: prost::DecodeError| format!("{what}: body is not a valid protobuf payload: {e}");
    Ok(match endpoint {
        Endpoint::Series => Decoded::Series {
            series: each(&plain, |p: proto::MetricPayload| p.series, series).map_err(bad_protobuf)?,
        },
        Endpoint::Sketches => Decoded::Sketches {
            sketches: each(&plain, |p: proto::SketchPayload| p.sketches, sketch).map_err(bad_protobuf)?,
        },
        Endpoint::Events => Decoded::Events {
            events: each(&plain, |p: proto::EventsPayload| p.events, event).map_err(bad_protobuf)?,
        },
        Endpoint::CheckRun => Decoded::ServiceChecks {
            service_checks: serde_json::from_slice(&plain)
                .map_err(|e| format!("{what}: body is not a JSON array of service checks: {e}"))?,
        },
        Endpoint::Intake => {
            let host_metadata: serde_json::Value = serde_json::from_slice(&plain)
                .map_err(|e| format!("{what}: body is not a JSON host-metadata payload: {e}"))?;
            // The intake keys a host by these; a payload without them is refused.
            for field in ["internalHostname", "apiKey"] {
                if !host_metadata[field].is_string() {
                    return Err(format!("{what}: host-metadata payload without a string `{field}`"));
                }
            }
            Decoded::HostMetadata { host_metadata }
        }
    })
}
